use super::*;
use crate::testkit::{at, tenant};

fn new_failure(subject: FailureSubject) -> NewFailure {
    NewFailure {
        tenant_id: tenant(),
        id: FailureId::new(),
        subject,
        provider_key: Some(ProviderKey::parse("openai").expect("valid")),
        classification: FailureClassification::RateLimited,
        vendor_status: Some(429),
        vendor_code: Some(RedactedText::from_redacted("rate_limit_exceeded")),
        message: RedactedText::redact("limit hit for key sk-abcdefghijklmnop", &[]),
        retryable: true,
        dead_lettered: false,
        trace_id: Some(TraceId::parse("4bf92f3577b34da6a3ce929d0e0e4736").expect("valid")),
    }
}

#[test]
fn record_emits_integration_failed_with_the_same_facts() {
    let run = RunId::new();
    let (failure, event) = IntegrationFailure::record(new_failure(FailureSubject::Run(run)), at(3));
    assert_eq!(failure.version(), 1);
    assert_eq!(failure.subject(), FailureSubject::Run(run));
    assert!(!failure.message().as_str().contains("sk-abcdefghijklmnop"));
    match event {
        DomainEvent::IntegrationFailed(e) => {
            assert_eq!(e.failure_id, failure.id());
            assert_eq!(e.subject, FailureSubject::Run(run));
            assert_eq!(e.classification, FailureClassification::RateLimited);
            assert_eq!(e.vendor_status, Some(429));
            assert_eq!(
                e.vendor_code.as_ref().map(RedactedText::as_str),
                Some("rate_limit_exceeded")
            );
            assert_eq!(e.message, *failure.message());
            assert!(e.retryable);
            assert!(!e.dead_lettered);
            assert_eq!(e.trace_id, failure.trace_id());
            assert_eq!(e.occurred_at, at(3));
        }
        other => panic!("unexpected event {other:?}"),
    }
}

#[test]
fn mark_dead_lettered_once() {
    let (mut failure, _) =
        IntegrationFailure::record(new_failure(FailureSubject::Run(RunId::new())), at(0));
    assert_eq!(failure.mark_dead_lettered(at(1)), Ok(Vec::new()));
    assert!(failure.dead_lettered());
    assert!(!failure.retryable(), "dead-lettered work is not retried");
    assert_eq!(failure.version(), 2);
    assert_eq!(
        failure.mark_dead_lettered(at(2)),
        Err(TransitionError::Forbidden {
            aggregate: "failure",
            from: "dead_lettered",
            to: "dead_lettered"
        })
    );
    assert_eq!(failure.version(), 2);
}

#[test]
fn retryable_defaults_follow_the_classification() {
    use FailureClassification::*;
    for c in [Transient, RateLimited, Timeout, CircuitOpen] {
        assert!(c.is_retryable_by_default(), "{c:?}");
    }
    for c in [Auth, Validation, VendorError, Unprocessable] {
        assert!(!c.is_retryable_by_default(), "{c:?}");
    }
}

#[test]
fn classification_names_match_the_design() {
    use FailureClassification::*;
    let names: Vec<serde_json::Value> = [
        Transient,
        RateLimited,
        Timeout,
        CircuitOpen,
        Auth,
        Validation,
        VendorError,
        Unprocessable,
    ]
    .iter()
    .map(|c| serde_json::to_value(c).expect("serialize"))
    .collect();
    assert_eq!(
        names,
        [
            "transient",
            "rate_limited",
            "timeout",
            "circuit_open",
            "auth",
            "validation",
            "vendor_error",
            "unprocessable"
        ]
    );
}

#[test]
fn subject_serializes_as_kind_and_id_and_has_a_path() {
    let dlv = DeliveryId::new();
    let subject = FailureSubject::Delivery(dlv);
    let json = serde_json::to_value(subject).expect("serialize");
    assert_eq!(
        json,
        serde_json::json!({"kind": "delivery", "id": dlv.to_string()})
    );
    assert_eq!(
        serde_json::from_value::<FailureSubject>(json).expect("deserialize"),
        subject
    );
    assert_eq!(subject.path(), format!("deliveries/{dlv}"));
    let run = RunId::new();
    assert_eq!(FailureSubject::Run(run).path(), format!("runs/{run}"));
    let conn = ConnectionId::new();
    assert_eq!(
        FailureSubject::Connection(conn).path(),
        format!("connections/{conn}")
    );
    let cred = CredentialId::new();
    assert_eq!(
        FailureSubject::Credential(cred).path(),
        format!("credentials/{cred}")
    );
    // the id must be of the subject's type
    let wrong = serde_json::json!({"kind": "delivery", "id": run.to_string()});
    assert!(serde_json::from_value::<FailureSubject>(wrong).is_err());
}

#[test]
fn document_round_trips() {
    let (failure, _) = IntegrationFailure::record(
        new_failure(FailureSubject::Connection(ConnectionId::new())),
        at(0),
    );
    let json = serde_json::to_value(&failure).expect("serialize");
    assert_eq!(json["classification"], "rate_limited");
    assert_eq!(json["vendorStatus"], 429);
    assert_eq!(json["subject"]["kind"], "connection");
    let back: IntegrationFailure = serde_json::from_value(json).expect("deserialize");
    assert_eq!(back, failure);
}
