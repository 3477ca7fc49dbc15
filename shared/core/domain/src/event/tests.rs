use std::collections::HashSet;

use super::*;
use crate::connection::{ConnectionTestResult, IntegrationConnection, NewConnection};
use crate::credential::{IntegrationCredential, NewCredential, RotationPolicy};
use crate::delivery::{DeliveryAttemptReport, NewDelivery, WebhookDelivery};
use crate::failure::{IntegrationFailure, NewFailure};
use crate::provider::{ExternalApiClient, IntegrationProvider, NewApiClient, NewProvider};
use crate::run::{IntegrationRun, NewRun};
use crate::source::{InboundWebhook, NewSource, WebhookSource};
use crate::subscription::{NewSubscription, WebhookSubscription};
use crate::testkit::{at, tenant};
use crate::values::{IdempotencyKey, SecretRef};

/// One event of every variant, produced through the aggregates so the test covers what they emit.
fn one_of_each() -> Vec<DomainEvent> {
    let mut events = Vec::new();
    let github = ProviderKey::parse("github").expect("valid");
    let url = HttpUrl::parse("https://api.github.com").expect("valid");

    let mut conn = IntegrationConnection::new(
        NewConnection {
            tenant_id: tenant(),
            id: ConnectionId::new(),
            provider_key: github.clone(),
            display_name: DisplayName::parse("c").expect("valid"),
            config: Default::default(),
            credential_id: CredentialId::new(),
        },
        at(0),
    );
    events.extend(
        conn.record_test(ConnectionTestResult::succeeded(at(1), None), at(1))
            .expect("establish"),
    );

    let mut run = IntegrationRun::queue(
        NewRun {
            tenant_id: tenant(),
            id: RunId::new(),
            connection_id: conn.id(),
            provider_key: github.clone(),
            operation: OperationName::parse("repos.get").expect("valid"),
            input_ref: PayloadRef::parse("in").expect("valid"),
            idempotency_key: Some(IdempotencyKey::parse("k").expect("valid")),
            trace_id: TraceId::parse("4bf92f3577b34da6a3ce929d0e0e4736").expect("valid"),
        },
        at(0),
    );
    run.start(at(1)).expect("start");
    events.extend(
        run.succeed(
            Some(serde_json::json!({"ok": true})),
            RunUsage::default(),
            at(2),
        )
        .expect("succeed"),
    );

    let (_, failed) = IntegrationFailure::record(
        NewFailure {
            tenant_id: tenant(),
            id: FailureId::new(),
            subject: FailureSubject::Run(run.id()),
            provider_key: Some(github.clone()),
            classification: FailureClassification::Timeout,
            vendor_status: None,
            vendor_code: None,
            message: RedactedText::from_redacted("timed out"),
            retryable: true,
            dead_lettered: false,
            trace_id: Some(run.trace_id()),
        },
        at(3),
    );
    events.push(failed);

    let (_, registered) = IntegrationProvider::register(
        NewProvider {
            key: github.clone(),
            display_name: DisplayName::parse("GitHub").expect("valid"),
            category: ProviderCategory::SourceControl,
            auth_scheme: AuthScheme::GithubApp,
            base_url: url.clone(),
            rate_limit_hints: None,
        },
        at(4),
    );
    events.push(registered);

    let (_, client) = ExternalApiClient::register(
        NewApiClient {
            id: ClientId::new(),
            provider_key: github.clone(),
            name: DisplayName::parse("rest").expect("valid"),
            version: semver::Version::new(1, 2, 3),
            base_url: url.clone(),
        },
        at(5),
    );
    events.push(client);

    let mut cred = IntegrationCredential::new(
        NewCredential {
            tenant_id: tenant(),
            id: CredentialId::new(),
            provider_key: github.clone(),
            connection_id: Some(conn.id()),
            kind: CredentialKind::ApiKey,
            secret: SecretRef::new("s", "1").expect("valid"),
            policy: RotationPolicy {
                max_age_seconds: Some(10),
                ..Default::default()
            },
        },
        at(0),
    );
    events.extend(cred.rotation_due_event(at(10)));
    let rot = RotationId::new();
    cred.start_rotation(rot, SecretRef::new("s", "2").expect("valid"), None, at(11))
        .expect("start");
    events.extend(cred.promote(rot, at(12)).expect("promote"));

    let (mut sub, subscribed) = WebhookSubscription::subscribe(
        NewSubscription {
            tenant_id: tenant(),
            id: SubscriptionId::new(),
            url: HttpUrl::parse("https://hooks.example.com").expect("valid"),
            description: None,
            event_types: EventTypeFilters::parse_all(["*"]).expect("valid"),
            secret: SecretRef::new("w", "1").expect("valid"),
            rate_limit_per_second: None,
            ordered: false,
        },
        at(13),
    );
    events.push(subscribed);
    events.extend(
        sub.disable(DisableReason::Requested, at(14))
            .expect("disable"),
    );

    let mut delivery = WebhookDelivery::new(
        NewDelivery {
            tenant_id: tenant(),
            id: DeliveryId::new(),
            subscription_id: sub.id(),
            event_id: "evt_1".into(),
            event_name: EventKind::IntegrationRunCompleted.event_name(),
            payload_ref: PayloadRef::parse("p").expect("valid"),
        },
        at(15),
    );
    events.extend(
        delivery
            .record_success(
                DeliveryAttemptReport {
                    status_code: Some(200),
                    ..Default::default()
                },
                at(16),
            )
            .expect("deliver"),
    );

    let source = WebhookSource::new(
        NewSource {
            tenant_id: tenant(),
            id: SourceId::new(),
            scheme: WebhookScheme::Stripe,
            secret: SecretRef::new("whsec", "1").expect("valid"),
            connection_id: None,
        },
        at(0),
    );
    events.push(source.received(
        InboundWebhook::default(),
        PayloadRef::parse("raw").expect("valid"),
        at(17),
    ));
    let changed = |record_id: &str| RecordChanged {
        tenant_id: tenant(),
        connection_id: ConnectionId::new(),
        provider_key: ProviderKey::parse("zendesk").expect("valid"),
        record_id: record_id.to_owned(),
        change: "status_changed".to_owned(),
        property: Some("status".to_owned()),
        value: Some("solved".to_owned()),
        run_id: Some(RunId::new()),
        vendor_event_id: None,
        occurred_at: at(18),
    };
    events.push(DomainEvent::CrmContactChanged(changed("501")));
    events.push(DomainEvent::CrmDealChanged(changed("502")));
    events.push(DomainEvent::SupportTicketChanged(changed("35436")));
    let paid = |status: &str| PaymentChanged {
        tenant_id: tenant(),
        connection_id: ConnectionId::new(),
        provider_key: ProviderKey::parse("stripe").expect("valid"),
        payment_id: "pi_3MtwBwLkdIwHu7ix28a3tqPa".to_owned(),
        run_id: Some(RunId::new()),
        previous_status: "processing".to_owned(),
        status: status.to_owned(),
        amount: 1099,
        amount_refunded: 0,
        currency: "usd".to_owned(),
        reason: "callback".to_owned(),
        vendor_event_id: Some("evt_1NG8Du2eZvKYlo2CUI79vXWy".to_owned()),
        occurred_at: at(19),
    };
    events.push(DomainEvent::PaymentSucceeded(paid("succeeded")));
    events.push(DomainEvent::PaymentFailed(paid("canceled")));
    events.push(DomainEvent::PaymentRefunded(paid("refunded")));
    events.push(DomainEvent::PaymentDisputed(paid("disputed")));
    events
}

#[test]
fn the_fixture_covers_every_kind_once() {
    let kinds: Vec<EventKind> = one_of_each().iter().map(DomainEvent::kind).collect();
    assert_eq!(kinds.len(), EventKind::ALL.len());
    for kind in EventKind::ALL {
        assert_eq!(kinds.iter().filter(|k| **k == kind).count(), 1, "{kind:?}");
    }
}

/// `connectsoft.<area>.<noun>.<verb>.v1` or `connectsoft.<area>.<verb>.v1` (area `integration`,
/// `crm`, `support` or `payment`) with
/// lowercase, hyphenated words.
fn is_well_formed_type(t: &str) -> bool {
    // (area, words after it): a payment is the area's own aggregate (`payment.succeeded`).
    let areas = [
        ("integration", 2),
        ("crm", 2),
        ("support", 2),
        ("payment", 1),
    ];
    let Some((middle, words)) = areas.iter().find_map(|(area, words)| {
        t.strip_prefix(&format!("connectsoft.{area}."))
            .and_then(|r| r.strip_suffix(".v1"))
            .map(|m| (m, *words))
    }) else {
        return false;
    };
    let parts: Vec<&str> = middle.split('.').collect();
    parts.len() == words
        && parts.iter().all(|p| {
            !p.is_empty()
                && !p.starts_with('-')
                && !p.ends_with('-')
                && p.chars().all(|c| c.is_ascii_lowercase() || c == '-')
        })
}

#[test]
fn event_types_are_unique_and_well_formed() {
    let mut types = HashSet::new();
    let mut names = HashSet::new();
    for kind in EventKind::ALL {
        let t = kind.event_type();
        assert!(is_well_formed_type(t), "{t}");
        assert!(types.insert(t), "duplicate type {t}");
        assert!(names.insert(kind.name()), "duplicate name {}", kind.name());
        // the type is the short name namespaced and versioned
        assert_eq!(t, format!("connectsoft.{}.v1", kind.name()));
        assert!(
            EventName::parse(kind.name()).is_ok(),
            "{} must be a valid event name",
            kind.name()
        );
        assert_eq!(EventKind::from_event_type(t), Some(kind));
    }
    assert_eq!(types.len(), EventKind::ALL.len());
    assert!(!is_well_formed_type("connectsoft.integration.run.v1"));
    assert!(!is_well_formed_type(
        "connectsoft.integration.Run.completed.v1"
    ));
    assert_eq!(
        EventKind::from_event_type("connectsoft.integration.run.completed.v2"),
        None
    );
}

#[test]
fn design_examples_map_as_documented() {
    assert_eq!(
        EventKind::IntegrationRunCompleted.event_type(),
        "connectsoft.integration.run.completed.v1"
    );
    assert_eq!(
        EventKind::IntegrationRunCompleted.name(),
        "integration.run.completed"
    );
    assert_eq!(
        EventKind::IntegrationProviderRegistered.event_type(),
        "connectsoft.integration.provider.registered.v1"
    );
    assert_eq!(
        EventKind::WebhookReceived.event_type(),
        "connectsoft.integration.webhook.received.v1"
    );
}

#[test]
fn serde_tag_equals_event_type_and_round_trips() {
    for event in one_of_each() {
        let json = serde_json::to_value(&event).expect("serialize");
        assert_eq!(json["type"], event.event_type());
        assert!(json["data"]["tenantId"].is_string(), "{json}");
        assert!(json["data"]["occurredAt"].is_string(), "{json}");
        let back: DomainEvent = serde_json::from_value(json).expect("deserialize");
        assert_eq!(back, event);
    }
}

#[test]
fn data_and_decode_round_trip() {
    for event in one_of_each() {
        let data = event.to_data().expect("encode");
        let value: serde_json::Value = serde_json::from_slice(&data).expect("json");
        assert!(value.get("type").is_none(), "data carries no tag");
        let back = DomainEvent::decode(event.event_type(), &data).expect("decode");
        assert_eq!(back, event);
    }
}

#[test]
fn decode_reports_unknown_types_and_bad_data() {
    assert!(
        matches!(DomainEvent::decode("x.y", b"{}"), Err(EventDecodeError::UnknownType(t)) if t == "x.y")
    );
    let err = DomainEvent::decode("connectsoft.integration.run.completed.v1", b"{\"runId\":1}")
        .expect_err("bad data");
    assert!(matches!(
        err,
        EventDecodeError::Data {
            event_type: "connectsoft.integration.run.completed.v1",
            ..
        }
    ));
    assert_eq!(
        err.to_string(),
        "event data does not match connectsoft.integration.run.completed.v1"
    );
    assert!(DomainEvent::decode("connectsoft.integration.run.completed.v1", b"\xff").is_err());
}

#[test]
fn subjects_name_the_resource() {
    for event in one_of_each() {
        let subject = event.subject();
        let expected_prefix = match event.kind() {
            EventKind::IntegrationConnectionEstablished => "connections/conn_",
            EventKind::IntegrationRunCompleted => "runs/run_",
            EventKind::IntegrationFailed => "failures/fail_",
            EventKind::IntegrationProviderRegistered => "providers/github",
            EventKind::ExternalApiClientRegistered => "providers/github/clients/cli_",
            EventKind::IntegrationCredentialRotated | EventKind::CredentialRotationDue => {
                "credentials/cred_"
            }
            EventKind::WebhookSubscribed | EventKind::WebhookSubscriptionDisabled => {
                "subscriptions/sub_"
            }
            EventKind::WebhookDelivered => "deliveries/dlv_",
            EventKind::WebhookReceived => "sources/src_",
            EventKind::CrmContactChanged => "contacts/501",
            EventKind::CrmDealChanged => "deals/502",
            EventKind::SupportTicketChanged => "tickets/35436",
            EventKind::PaymentSucceeded
            | EventKind::PaymentFailed
            | EventKind::PaymentRefunded
            | EventKind::PaymentDisputed => "payments/pi_3Mtw",
        };
        assert!(
            subject.starts_with(expected_prefix),
            "{subject} for {:?}",
            event.kind()
        );
    }
}

#[test]
fn tenant_time_and_trace_accessors() {
    for event in one_of_each() {
        let platform = matches!(
            event.kind(),
            EventKind::IntegrationProviderRegistered | EventKind::ExternalApiClientRegistered
        );
        assert_eq!(
            event.tenant_id().is_platform(),
            platform,
            "{:?}",
            event.kind()
        );
        if !platform {
            assert_eq!(event.tenant_id(), &tenant());
        }
        let has_trace = matches!(
            event.kind(),
            EventKind::IntegrationRunCompleted | EventKind::IntegrationFailed
        );
        assert_eq!(event.trace_id().is_some(), has_trace, "{:?}", event.kind());
        assert!(event.occurred_at() >= at(0));
    }
}

#[test]
fn fan_out_excludes_loops_and_platform_events() {
    for event in one_of_each() {
        let expected = !matches!(
            event.kind(),
            EventKind::WebhookDelivered
                | EventKind::WebhookSubscribed
                | EventKind::IntegrationProviderRegistered
                | EventKind::ExternalApiClientRegistered
        );
        assert_eq!(event.fans_out_to_webhooks(), expected, "{:?}", event.kind());
    }
    let delivery_failure = IntegrationFailure::record(
        NewFailure {
            tenant_id: tenant(),
            id: FailureId::new(),
            subject: FailureSubject::Delivery(DeliveryId::new()),
            provider_key: None,
            classification: FailureClassification::Transient,
            vendor_status: None,
            vendor_code: None,
            message: RedactedText::from_redacted("exhausted"),
            retryable: false,
            dead_lettered: true,
            trace_id: None,
        },
        at(0),
    )
    .1;
    assert!(!delivery_failure.fans_out_to_webhooks());
}

#[test]
fn events_carry_no_secret_references_or_values() {
    for event in one_of_each() {
        let text = String::from_utf8(event.to_data().expect("encode")).expect("utf8");
        for field in [
            "\"secret\"",
            "\"current\"",
            "\"pending\"",
            "\"previous\"",
            "\"version\":\"1\"",
        ] {
            assert!(!text.contains(field), "{field} in {text}");
        }
    }
}

#[test]
fn doc_table_matches_the_code() {
    let source = include_str!("../event.rs");
    for kind in EventKind::ALL {
        let prefix = format!("/// | `{kind:?}`");
        let row = source
            .lines()
            .find(|l| l.starts_with(&prefix))
            .unwrap_or_else(|| panic!("no row for {kind:?}"));
        assert!(row.contains(&format!("`{}`", kind.event_type())), "{row}");
        assert!(row.contains(&format!("`{}`", kind.name())), "{row}");
    }
}
