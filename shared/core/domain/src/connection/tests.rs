use super::*;
use crate::testkit::{at, tenant};

fn pending() -> IntegrationConnection {
    let mut config = ConnectionConfig::new();
    config.insert("org".into(), "acme".into());
    IntegrationConnection::new(
        NewConnection {
            tenant_id: tenant(),
            id: ConnectionId::new(),
            provider_key: ProviderKey::parse("github").expect("valid"),
            display_name: DisplayName::parse("Acme GitHub").expect("valid"),
            config,
            credential_id: CredentialId::new(),
        },
        at(0),
    )
}

fn ok_test(t: i64) -> ConnectionTestResult {
    ConnectionTestResult::succeeded(at(t), Some(120))
}

fn failed_test(t: i64) -> ConnectionTestResult {
    ConnectionTestResult::failed(
        at(t),
        FailureId::new(),
        RedactedText::from_redacted("401 bad credentials"),
    )
}

fn in_status(status: ConnectionStatus) -> IntegrationConnection {
    let mut c = pending();
    match status {
        ConnectionStatus::Pending => {}
        ConnectionStatus::Established => {
            c.record_test(ok_test(1), at(1)).expect("establish");
        }
        ConnectionStatus::Failed => {
            c.record_test(failed_test(1), at(1)).expect("fail");
        }
        ConnectionStatus::Disabled => {
            c.disable(at(1)).expect("disable");
        }
    }
    assert_eq!(c.status(), status);
    c
}

const ALL: [ConnectionStatus; 4] = [
    ConnectionStatus::Pending,
    ConnectionStatus::Established,
    ConnectionStatus::Failed,
    ConnectionStatus::Disabled,
];

#[test]
fn new_connection_is_pending_and_unusable() {
    let c = pending();
    assert_eq!(c.status(), ConnectionStatus::Pending);
    assert!(!c.is_usable());
    assert_eq!(c.version(), 1);
    assert!(c.last_test_result().is_none());
    assert_eq!(c.config().get("org").and_then(|v| v.as_str()), Some("acme"));
}

#[test]
fn successful_test_establishes_from_pending_and_failed_with_an_event() {
    for from in [ConnectionStatus::Pending, ConnectionStatus::Failed] {
        let mut c = in_status(from);
        let version = c.version();
        let events = c.record_test(ok_test(10), at(10)).expect("allowed");
        assert_eq!(c.status(), ConnectionStatus::Established, "from {from:?}");
        assert!(c.is_usable());
        assert_eq!(c.version(), version + 1);
        assert_eq!(c.updated_at(), at(10));
        assert_eq!(
            c.last_test_result().map(|r| r.outcome),
            Some(TestOutcome::Succeeded)
        );
        assert_eq!(events.len(), 1);
        match &events[0] {
            DomainEvent::IntegrationConnectionEstablished(e) => {
                assert_eq!(e.connection_id, c.id());
                assert_eq!(e.credential_id, c.credential_id());
                assert_eq!(e.tenant_id, tenant());
                assert_eq!(e.occurred_at, at(10));
            }
            other => panic!("unexpected event {other:?}"),
        }
    }
}

#[test]
fn successful_retest_of_an_established_connection_records_without_an_event() {
    let mut c = in_status(ConnectionStatus::Established);
    let events = c.record_test(ok_test(20), at(20)).expect("allowed");
    assert!(events.is_empty());
    assert_eq!(c.status(), ConnectionStatus::Established);
    assert_eq!(c.last_test_result().map(|r| r.tested_at), Some(at(20)));
}

#[test]
fn failed_test_moves_pending_established_and_failed_to_failed() {
    for from in [
        ConnectionStatus::Pending,
        ConnectionStatus::Established,
        ConnectionStatus::Failed,
    ] {
        let mut c = in_status(from);
        let result = failed_test(30);
        let failure_id = result.failure_id;
        let events = c.record_test(result, at(30)).expect("allowed");
        assert!(events.is_empty());
        assert_eq!(c.status(), ConnectionStatus::Failed, "from {from:?}");
        assert!(!c.is_usable());
        assert_eq!(c.last_test_result().and_then(|r| r.failure_id), failure_id);
    }
}

#[test]
fn disabled_connection_refuses_tests() {
    for result in [ok_test(5), failed_test(5)] {
        let mut c = in_status(ConnectionStatus::Disabled);
        let before = c.clone();
        let to = if result.outcome == TestOutcome::Succeeded {
            "established"
        } else {
            "failed"
        };
        assert_eq!(
            c.record_test(result, at(5)),
            Err(TransitionError::Forbidden {
                aggregate: "connection",
                from: "disabled",
                to
            })
        );
        assert_eq!(c, before, "a refused transition changes nothing");
    }
}

#[test]
fn disable_is_allowed_from_every_other_status() {
    for from in [
        ConnectionStatus::Pending,
        ConnectionStatus::Established,
        ConnectionStatus::Failed,
    ] {
        let mut c = in_status(from);
        assert_eq!(c.disable(at(40)), Ok(Vec::new()));
        assert_eq!(c.status(), ConnectionStatus::Disabled);
        assert!(!c.is_usable());
    }
}

#[test]
fn disabling_twice_is_refused() {
    let mut c = in_status(ConnectionStatus::Disabled);
    assert_eq!(
        c.disable(at(2)),
        Err(TransitionError::Forbidden {
            aggregate: "connection",
            from: "disabled",
            to: "disabled"
        })
    );
}

#[test]
fn enable_returns_a_disabled_connection_to_pending() {
    let mut c = in_status(ConnectionStatus::Disabled);
    assert_eq!(c.enable(at(50)), Ok(Vec::new()));
    assert_eq!(c.status(), ConnectionStatus::Pending);
    // and it can be established again
    assert_eq!(c.record_test(ok_test(51), at(51)).map(|e| e.len()), Ok(1));
}

#[test]
fn enable_is_refused_unless_disabled() {
    for from in ALL.into_iter().filter(|s| *s != ConnectionStatus::Disabled) {
        let mut c = in_status(from);
        assert_eq!(
            c.enable(at(2)),
            Err(TransitionError::Forbidden {
                aggregate: "connection",
                from: from.as_str(),
                to: "pending"
            })
        );
        assert_eq!(c.status(), from);
    }
}

#[test]
fn error_message_names_from_and_to() {
    let mut c = in_status(ConnectionStatus::Disabled);
    let err = c.record_test(ok_test(1), at(1)).expect_err("refused");
    assert_eq!(
        err.to_string(),
        "connection cannot go from disabled to established"
    );
}

#[test]
fn status_serde_uses_the_design_names() {
    for status in ALL {
        let json = serde_json::to_value(status).expect("serialize");
        assert_eq!(json, status.as_str());
    }
}

#[test]
fn document_round_trips_in_every_status() {
    for status in ALL {
        let c = in_status(status);
        let json = serde_json::to_value(&c).expect("serialize");
        assert_eq!(json["status"], status.as_str());
        assert_eq!(json["tenantId"], "acme");
        assert!(json.get("credentialId").is_some());
        let back: IntegrationConnection = serde_json::from_value(json).expect("deserialize");
        assert_eq!(back, c);
    }
}
