use super::*;
use crate::testkit::{at, tenant};

fn secret(v: &str) -> SecretRef {
    SecretRef::new("whsec-sub", v).expect("valid")
}

fn active() -> WebhookSubscription {
    WebhookSubscription::subscribe(
        NewSubscription {
            tenant_id: tenant(),
            id: SubscriptionId::new(),
            url: HttpUrl::parse("https://hooks.example.com/in").expect("valid"),
            description: Some(DisplayName::parse("CI hooks").expect("valid")),
            event_types: EventTypeFilters::parse_all(["integration.run.*"]).expect("valid"),
            secret: secret("1"),
            rate_limit_per_second: NonZeroU32::new(10),
            ordered: true,
        },
        at(0),
    )
    .0
}

fn disabled() -> WebhookSubscription {
    let mut s = active();
    s.disable(DisableReason::Requested, at(1)).expect("disable");
    s
}

#[test]
fn subscribe_emits_subscribed() {
    let (sub, event) = WebhookSubscription::subscribe(
        NewSubscription {
            tenant_id: tenant(),
            id: SubscriptionId::new(),
            url: HttpUrl::parse("https://hooks.example.com/in").expect("valid"),
            description: None,
            event_types: EventTypeFilters::parse_all(["*"]).expect("valid"),
            secret: secret("1"),
            rate_limit_per_second: None,
            ordered: false,
        },
        at(7),
    );
    assert_eq!(sub.status(), SubscriptionStatus::Active);
    assert_eq!(sub.failure_streak(), 0);
    match event {
        DomainEvent::WebhookSubscribed(e) => {
            assert_eq!(e.subscription_id, sub.id());
            assert_eq!(e.url.as_str(), "https://hooks.example.com/in");
            assert_eq!(e.event_types, *sub.event_types());
            assert_eq!(e.occurred_at, at(7));
        }
        other => panic!("unexpected {other:?}"),
    }
}

#[test]
fn wants_checks_status_and_filters() {
    let sub = active();
    assert!(sub.wants("integration.run.completed"));
    assert!(!sub.wants("integration.webhook.delivered"));
    assert!(!disabled().wants("integration.run.completed"));
}

#[test]
fn disable_moves_active_to_disabled_with_an_event() {
    let mut sub = active();
    let events = sub
        .disable(DisableReason::EndpointGone, at(5))
        .expect("disable");
    assert_eq!(sub.status(), SubscriptionStatus::Disabled);
    assert_eq!(sub.disabled_reason(), Some(DisableReason::EndpointGone));
    assert_eq!(events.len(), 1);
    match &events[0] {
        DomainEvent::WebhookSubscriptionDisabled(e) => {
            assert_eq!(e.subscription_id, sub.id());
            assert_eq!(e.reason, DisableReason::EndpointGone);
            assert_eq!(e.occurred_at, at(5));
        }
        other => panic!("unexpected {other:?}"),
    }
}

#[test]
fn disable_is_refused_when_disabled() {
    let mut sub = disabled();
    assert_eq!(
        sub.disable(DisableReason::FailingTooLong, at(5)),
        Err(TransitionError::Forbidden {
            aggregate: "subscription",
            from: "disabled",
            to: "disabled"
        })
    );
    assert_eq!(
        sub.disabled_reason(),
        Some(DisableReason::Requested),
        "reason unchanged"
    );
}

#[test]
fn enable_moves_disabled_to_active_and_resets_the_streak() {
    let mut sub = active();
    sub.record_failure(at(1));
    sub.record_failure(at(2));
    sub.disable(DisableReason::FailingTooLong, at(3))
        .expect("disable");
    assert_eq!(sub.enable(at(4)), Ok(Vec::new()));
    assert_eq!(sub.status(), SubscriptionStatus::Active);
    assert_eq!(sub.disabled_reason(), None);
    assert_eq!(sub.failure_streak(), 0);
    assert_eq!(sub.first_failure_at(), None);
}

#[test]
fn enable_is_refused_when_active() {
    let mut sub = active();
    assert_eq!(
        sub.enable(at(1)),
        Err(TransitionError::Forbidden {
            aggregate: "subscription",
            from: "active",
            to: "active"
        })
    );
}

#[test]
fn failure_streak_bookkeeping() {
    let mut sub = active();
    sub.record_failure(at(10));
    sub.record_failure(at(20));
    assert_eq!(sub.failure_streak(), 2);
    assert_eq!(
        sub.first_failure_at(),
        Some(at(10)),
        "the streak keeps its start"
    );
    sub.record_success(at(30));
    assert_eq!(sub.failure_streak(), 0);
    assert_eq!(sub.first_failure_at(), None);
    let version = sub.version();
    sub.record_success(at(31));
    assert_eq!(
        sub.version(),
        version,
        "a success without a streak changes nothing"
    );
    sub.record_failure(at(40));
    assert_eq!(
        sub.first_failure_at(),
        Some(at(40)),
        "a new streak starts fresh"
    );
}

#[test]
fn should_disable_after_failing_for_the_whole_period() {
    let period = TimeDelta::days(5);
    let mut sub = active();
    assert!(!sub.should_disable(at(1_000_000), period), "no failures");
    sub.record_failure(at(0));
    assert!(!sub.should_disable(at(5 * 86_400 - 1), period));
    assert!(sub.should_disable(at(5 * 86_400), period));
    sub.record_success(at(10));
    assert!(
        !sub.should_disable(at(10 * 86_400), period),
        "a success ends the streak"
    );
    sub.record_failure(at(0));
    sub.disable(DisableReason::FailingTooLong, at(1))
        .expect("disable");
    assert!(
        !sub.should_disable(at(10 * 86_400), period),
        "already disabled"
    );
}

#[test]
fn failure_streak_saturates() {
    let sub = active();
    let mut json = serde_json::to_value(&sub).expect("serialize");
    json["failureStreak"] = serde_json::json!(u32::MAX);
    let mut sub: WebhookSubscription = serde_json::from_value(json).expect("deserialize");
    sub.record_failure(at(1));
    assert_eq!(sub.failure_streak(), u32::MAX);
}

#[test]
fn secret_rotation_keeps_the_old_secret_during_the_overlap() {
    let mut sub = active();
    assert_eq!(sub.signing_secrets(at(0)), vec![&secret("1")]);
    sub.rotate_secret(secret("2"), at(100), at(10));
    assert_eq!(sub.secret(), &secret("2"));
    assert_eq!(sub.previous_secret(), Some(&secret("1")));
    assert_eq!(sub.previous_secret_until(), Some(at(100)));
    assert_eq!(
        sub.signing_secrets(at(99)),
        vec![&secret("2"), &secret("1")]
    );
    assert_eq!(sub.signing_secrets(at(100)), vec![&secret("2")]);
    sub.rotate_secret(secret("3"), at(200), at(20));
    assert_eq!(
        sub.previous_secret(),
        Some(&secret("2")),
        "the oldest secret is dropped"
    );
}

#[test]
fn document_round_trips() {
    let mut sub = active();
    sub.record_failure(at(3));
    sub.disable(DisableReason::FailingTooLong, at(4))
        .expect("disable");
    let json = serde_json::to_value(&sub).expect("serialize");
    assert_eq!(json["status"], "disabled");
    assert_eq!(json["disabledReason"], "failing_too_long");
    assert_eq!(json["eventTypes"], serde_json::json!(["integration.run.*"]));
    assert_eq!(json["rateLimitPerSecond"], 10);
    assert_eq!(json["ordered"], true);
    let back: WebhookSubscription = serde_json::from_value(json.clone()).expect("deserialize");
    assert_eq!(back, sub);
    let mut bad = json;
    bad["rateLimitPerSecond"] = serde_json::json!(0);
    assert!(serde_json::from_value::<WebhookSubscription>(bad).is_err());
}
