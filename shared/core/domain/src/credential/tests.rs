use super::*;
use crate::testkit::{at, tenant};

const DAY: u64 = 86_400;

fn secret(v: &str) -> SecretRef {
    SecretRef::new("cred-github-acme", v).expect("valid")
}

fn active_with(policy: RotationPolicy) -> IntegrationCredential {
    IntegrationCredential::new(
        NewCredential {
            tenant_id: tenant(),
            id: CredentialId::new(),
            provider_key: ProviderKey::parse("github").expect("valid"),
            connection_id: Some(ConnectionId::new()),
            kind: CredentialKind::GithubApp,
            secret: secret("v1"),
            policy,
        },
        at(0),
    )
}

fn active() -> IntegrationCredential {
    active_with(RotationPolicy::default())
}

fn rotating() -> (IntegrationCredential, RotationId) {
    let mut c = active();
    let rot = RotationId::new();
    c.start_rotation(rot, secret("v2"), None, at(10))
        .expect("start");
    (c, rot)
}

fn revoked() -> IntegrationCredential {
    let mut c = active();
    c.revoke(at(5)).expect("revoke");
    c
}

#[test]
fn new_credential_is_active_with_its_secret_current() {
    let c = active();
    assert_eq!(c.status(), CredentialStatus::Active);
    assert_eq!(c.current(), &secret("v1"));
    assert_eq!(c.current_since(), at(0));
    assert!(c.previous().is_none());
    assert!(c.pending().is_none());
    assert_eq!(c.version(), 1);
}

// --- start_rotation ---

#[test]
fn start_rotation_moves_active_to_rotating() {
    let mut c = active();
    let rot = RotationId::new();
    assert_eq!(
        c.start_rotation(rot, secret("v2"), Some(at(1000)), at(10)),
        Ok(Vec::new())
    );
    assert_eq!(c.status(), CredentialStatus::Rotating);
    assert_eq!(c.pending(), Some(&secret("v2")));
    assert_eq!(
        c.current(),
        &secret("v1"),
        "the old secret stays in use while testing"
    );
    assert_eq!(c.rotation_id(), Some(rot));
    assert_eq!(c.version(), 2);
}

#[test]
fn start_rotation_is_refused_while_rotating_or_revoked() {
    let (mut c, _) = rotating();
    assert_eq!(
        c.start_rotation(RotationId::new(), secret("v3"), None, at(11)),
        Err(TransitionError::Forbidden {
            aggregate: "credential",
            from: "rotating",
            to: "rotating"
        })
    );
    assert_eq!(
        c.pending(),
        Some(&secret("v2")),
        "the rotation in progress is untouched"
    );

    let mut c = revoked();
    assert_eq!(
        c.start_rotation(RotationId::new(), secret("v3"), None, at(11)),
        Err(TransitionError::Forbidden {
            aggregate: "credential",
            from: "revoked",
            to: "rotating"
        })
    );
}

#[test]
fn start_rotation_refuses_the_current_secret() {
    let mut c = active();
    assert_eq!(
        c.start_rotation(RotationId::new(), secret("v1"), None, at(1)),
        Err(TransitionError::SameSecret)
    );
    assert_eq!(c.status(), CredentialStatus::Active);
}

// --- promote ---

#[test]
fn promote_swaps_secrets_and_emits_rotated() {
    let (mut c, rot) = rotating();
    let events = c.promote(rot, at(20)).expect("promote");
    assert_eq!(c.status(), CredentialStatus::Active);
    assert_eq!(c.current(), &secret("v2"));
    assert_eq!(c.previous(), Some(&secret("v1")));
    assert!(c.pending().is_none());
    assert_eq!(c.current_since(), at(20));
    assert_eq!(c.rotation_id(), None);
    assert_eq!(c.last_rotation_id(), Some(rot));
    assert_eq!(events.len(), 1);
    match &events[0] {
        DomainEvent::IntegrationCredentialRotated(e) => {
            assert_eq!(e.credential_id, c.id());
            assert_eq!(e.rotation_id, rot);
            assert_eq!(e.kind, CredentialKind::GithubApp);
            assert_eq!(e.connection_id, c.connection_id());
            assert_eq!(e.occurred_at, at(20));
        }
        other => panic!("unexpected event {other:?}"),
    }
}

#[test]
fn promote_moves_the_pending_expiry_into_the_policy() {
    let mut c = active_with(RotationPolicy {
        expires_at: Some(at(100)),
        ..RotationPolicy::default()
    });
    let rot = RotationId::new();
    c.start_rotation(rot, secret("v2"), Some(at(5000)), at(10))
        .expect("start");
    c.promote(rot, at(20)).expect("promote");
    assert_eq!(c.policy().expires_at, Some(at(5000)));
}

#[test]
fn promoting_twice_is_refused_as_already_promoted() {
    let (mut c, rot) = rotating();
    c.promote(rot, at(20)).expect("first promote");
    let snapshot = c.clone();
    assert_eq!(
        c.promote(rot, at(21)),
        Err(TransitionError::AlreadyPromoted(rot))
    );
    assert_eq!(c, snapshot, "no double swap");
    assert_eq!(c.previous(), Some(&secret("v1")));
}

#[test]
fn promote_refuses_another_rotation() {
    let (mut c, _) = rotating();
    let other = RotationId::new();
    assert_eq!(
        c.promote(other, at(20)),
        Err(TransitionError::RotationMismatch { given: other })
    );
    assert_eq!(c.status(), CredentialStatus::Rotating);
}

#[test]
fn promote_is_refused_when_active_without_that_rotation_or_revoked() {
    let mut c = active();
    assert_eq!(
        c.promote(RotationId::new(), at(1)),
        Err(TransitionError::Forbidden {
            aggregate: "credential",
            from: "active",
            to: "active"
        })
    );
    let mut c = revoked();
    assert_eq!(
        c.promote(RotationId::new(), at(6)),
        Err(TransitionError::Forbidden {
            aggregate: "credential",
            from: "revoked",
            to: "active"
        })
    );
}

#[test]
fn promote_reports_an_inconsistent_document_instead_of_panicking() {
    let (c, rot) = rotating();
    let mut json = serde_json::to_value(&c).expect("serialize");
    json["pending"] = serde_json::Value::Null;
    let mut broken: IntegrationCredential = serde_json::from_value(json).expect("deserialize");
    assert!(matches!(
        broken.promote(rot, at(20)),
        Err(TransitionError::Inconsistent { .. })
    ));
}

// --- abort_rotation ---

#[test]
fn abort_keeps_the_old_secret() {
    let (mut c, rot) = rotating();
    assert_eq!(c.abort_rotation(rot, at(20)), Ok(Vec::new()));
    assert_eq!(c.status(), CredentialStatus::Active);
    assert_eq!(c.current(), &secret("v1"));
    assert!(c.pending().is_none());
    assert!(c.previous().is_none());
    assert_eq!(c.current_since(), at(0), "the old secret keeps its age");
    assert_eq!(c.last_rotation_id(), None);
    // a new rotation may start afterwards
    assert!(
        c.start_rotation(RotationId::new(), secret("v3"), None, at(30))
            .is_ok()
    );
}

#[test]
fn abort_refuses_another_rotation_a_promoted_one_and_other_states() {
    let (mut c, rot) = rotating();
    let other = RotationId::new();
    assert_eq!(
        c.abort_rotation(other, at(20)),
        Err(TransitionError::RotationMismatch { given: other })
    );

    c.promote(rot, at(21)).expect("promote");
    assert_eq!(
        c.abort_rotation(rot, at(22)),
        Err(TransitionError::AlreadyPromoted(rot))
    );

    let mut c = active();
    assert_eq!(
        c.abort_rotation(RotationId::new(), at(1)),
        Err(TransitionError::Forbidden {
            aggregate: "credential",
            from: "active",
            to: "active"
        })
    );
    let mut c = revoked();
    assert_eq!(
        c.abort_rotation(RotationId::new(), at(6)),
        Err(TransitionError::Forbidden {
            aggregate: "credential",
            from: "revoked",
            to: "active"
        })
    );
}

// --- revoke ---

#[test]
fn revoke_from_active_and_rotating() {
    let mut c = active();
    assert_eq!(c.revoke(at(1)), Ok(Vec::new()));
    assert_eq!(c.status(), CredentialStatus::Revoked);

    let (mut c, rot) = rotating();
    assert_eq!(c.revoke(at(11)), Ok(Vec::new()));
    assert_eq!(c.status(), CredentialStatus::Revoked);
    assert_eq!(
        c.pending(),
        Some(&secret("v2")),
        "kept so custody can be purged"
    );
    assert!(
        c.promote(rot, at(12)).is_err(),
        "a revoked credential cannot be promoted"
    );
}

#[test]
fn revoked_is_terminal() {
    let mut c = revoked();
    assert_eq!(
        c.revoke(at(6)),
        Err(TransitionError::Forbidden {
            aggregate: "credential",
            from: "revoked",
            to: "revoked"
        })
    );
}

// --- rotation due ---

#[test]
fn no_policy_is_never_due() {
    let c = active();
    assert!(c.rotation_deadline().is_none());
    assert!(!c.is_due_for_rotation(at(1_000_000_000)));
    assert!(c.rotation_due_event(at(1_000_000_000)).is_none());
}

#[test]
fn max_age_makes_it_due_at_age_minus_notice() {
    let c = active_with(RotationPolicy {
        max_age_seconds: Some(90 * DAY),
        notice_seconds: 7 * DAY,
        ..Default::default()
    });
    let due_from = (83 * DAY) as i64;
    assert!(!c.is_due_for_rotation(at(due_from - 1)));
    assert!(c.is_due_for_rotation(at(due_from)));
    assert!(
        c.is_due_for_rotation(at(200 * DAY as i64)),
        "overdue is due"
    );
    match c.rotation_due_event(at(due_from)) {
        Some(DomainEvent::CredentialRotationDue(e)) => {
            assert_eq!(e.reason, RotationDueReason::MaxAge);
            assert_eq!(e.deadline, at((90 * DAY) as i64));
            assert_eq!(e.credential_id, c.id());
            assert_eq!(e.occurred_at, at(due_from));
        }
        other => panic!("unexpected {other:?}"),
    }
}

#[test]
fn expiry_makes_it_due_and_the_earlier_deadline_wins() {
    let c = active_with(RotationPolicy {
        max_age_seconds: Some(90 * DAY),
        expires_at: Some(at((30 * DAY) as i64)),
        notice_seconds: DAY,
    });
    assert_eq!(
        c.rotation_deadline(),
        Some((RotationDueReason::Expiry, at((30 * DAY) as i64)))
    );
    assert!(!c.is_due_for_rotation(at((29 * DAY) as i64 - 1)));
    assert!(c.is_due_for_rotation(at((29 * DAY) as i64)));

    let c = active_with(RotationPolicy {
        max_age_seconds: Some(10 * DAY),
        expires_at: Some(at((30 * DAY) as i64)),
        notice_seconds: 0,
    });
    assert_eq!(
        c.rotation_deadline(),
        Some((RotationDueReason::MaxAge, at((10 * DAY) as i64)))
    );
}

#[test]
fn promotion_restarts_the_max_age_clock() {
    let mut c = active_with(RotationPolicy {
        max_age_seconds: Some(10 * DAY),
        ..Default::default()
    });
    assert!(c.is_due_for_rotation(at((10 * DAY) as i64)));
    let rot = RotationId::new();
    c.start_rotation(rot, secret("v2"), None, at((10 * DAY) as i64))
        .expect("start");
    assert!(
        !c.is_due_for_rotation(at((10 * DAY) as i64)),
        "a rotating credential is not due again"
    );
    c.promote(rot, at((10 * DAY) as i64)).expect("promote");
    assert!(!c.is_due_for_rotation(at((15 * DAY) as i64)));
    assert!(c.is_due_for_rotation(at((20 * DAY) as i64)));
}

#[test]
fn revoked_credentials_are_never_due() {
    let mut c = active_with(RotationPolicy {
        max_age_seconds: Some(1),
        ..Default::default()
    });
    c.revoke(at(1)).expect("revoke");
    assert!(!c.is_due_for_rotation(at(1000)));
}

#[test]
fn extreme_policies_do_not_panic() {
    let c = active_with(RotationPolicy {
        max_age_seconds: Some(u64::MAX),
        expires_at: None,
        notice_seconds: u64::MAX,
    });
    assert!(
        c.rotation_deadline().is_none(),
        "an unrepresentable age has no deadline"
    );
    assert!(!c.is_due_for_rotation(at(0)));

    let c = active_with(RotationPolicy {
        max_age_seconds: Some(1),
        expires_at: None,
        notice_seconds: u64::MAX,
    });
    assert!(
        c.is_due_for_rotation(at(0)),
        "a notice longer than time itself means always due"
    );
}

// --- bookkeeping and serde ---

#[test]
fn take_previous_returns_it_once() {
    let (mut c, rot) = rotating();
    c.promote(rot, at(20)).expect("promote");
    let version = c.version();
    assert_eq!(c.take_previous(at(30)), Some(secret("v1")));
    assert_eq!(c.version(), version + 1);
    assert_eq!(c.take_previous(at(31)), None);
    assert_eq!(c.version(), version + 1, "nothing changed the second time");
}

#[test]
fn bind_connection_sets_the_link() {
    let mut c = active();
    let conn = ConnectionId::new();
    c.bind_connection(conn, at(3));
    assert_eq!(c.connection_id(), Some(conn));
    assert_eq!(c.updated_at(), at(3));
}

#[test]
fn kind_names_match_the_design() {
    let names: Vec<serde_json::Value> = [
        CredentialKind::ApiKey,
        CredentialKind::Basic,
        CredentialKind::Oauth2ClientCredentials,
        CredentialKind::Oauth2RefreshToken,
        CredentialKind::GithubApp,
        CredentialKind::HmacSecret,
        CredentialKind::BearerToken,
        CredentialKind::ManagedIdentity,
    ]
    .iter()
    .map(|k| serde_json::to_value(k).expect("serialize"))
    .collect();
    assert_eq!(
        names,
        [
            "apiKey",
            "basic",
            "oauth2ClientCredentials",
            "oauth2RefreshToken",
            "githubApp",
            "hmacSecret",
            "bearerToken",
            "managedIdentity"
        ]
    );
}

#[test]
fn document_round_trips_and_holds_no_secret_values() {
    let (c, _) = rotating();
    let json = serde_json::to_value(&c).expect("serialize");
    assert_eq!(json["status"], "rotating");
    assert_eq!(json["pending"]["version"], "v2");
    assert_eq!(json["current"]["name"], "cred-github-acme");
    assert_eq!(json["policy"]["noticeSeconds"], 0);
    let back: IntegrationCredential = serde_json::from_value(json).expect("deserialize");
    assert_eq!(back, c);
}
