use super::*;
use crate::failure::{FailureClassification, NewFailure};
use crate::testkit::{at, tenant};

fn pending() -> WebhookDelivery {
    WebhookDelivery::new(
        NewDelivery {
            tenant_id: tenant(),
            id: DeliveryId::new(),
            subscription_id: SubscriptionId::new(),
            event_id: "evt_1".into(),
            event_name: EventName::parse("integration.run.completed").expect("valid"),
            payload_ref: PayloadRef::parse("deliveries/acme/evt_1.json").expect("valid"),
        },
        at(0),
    )
}

fn ok(code: u16) -> DeliveryAttemptReport {
    DeliveryAttemptReport {
        status_code: Some(code),
        latency_ms: Some(80),
        error: None,
    }
}

fn err(code: Option<u16>) -> DeliveryAttemptReport {
    DeliveryAttemptReport {
        status_code: code,
        latency_ms: Some(5000),
        error: Some(RedactedText::from_redacted("timeout")),
    }
}

fn failure_for(d: &WebhookDelivery) -> IntegrationFailure {
    IntegrationFailure::record(
        NewFailure {
            tenant_id: d.tenant_id().clone(),
            id: FailureId::new(),
            subject: FailureSubject::Delivery(d.id()),
            provider_key: None,
            classification: FailureClassification::Transient,
            vendor_status: Some(503),
            vendor_code: None,
            message: RedactedText::from_redacted("attempts exhausted"),
            retryable: false,
            dead_lettered: true,
            trace_id: None,
        },
        at(0),
    )
    .0
}

fn in_status(status: DeliveryStatus) -> WebhookDelivery {
    let mut d = pending();
    match status {
        DeliveryStatus::Pending => {}
        DeliveryStatus::Delivered => {
            d.record_success(ok(200), at(1)).expect("deliver");
        }
        DeliveryStatus::Failed => {
            d.record_failure(err(Some(500)), at(60), at(1))
                .expect("fail");
        }
        DeliveryStatus::DeadLettered => {
            let f = failure_for(&d);
            d.dead_letter(&f, None, at(1)).expect("dead letter");
        }
    }
    assert_eq!(d.status(), status);
    d
}

const ALL: [DeliveryStatus; 4] = [
    DeliveryStatus::Pending,
    DeliveryStatus::Delivered,
    DeliveryStatus::Failed,
    DeliveryStatus::DeadLettered,
];

fn forbidden(from: DeliveryStatus, to: &'static str) -> TransitionError {
    TransitionError::Forbidden {
        aggregate: "delivery",
        from: from.as_str(),
        to,
    }
}

#[test]
fn new_delivery_is_pending_and_due_now() {
    let d = pending();
    assert_eq!(d.status(), DeliveryStatus::Pending);
    assert_eq!(d.next_attempt_at(), Some(at(0)));
    assert_eq!(d.cycle(), 1);
    assert_eq!(d.attempts_in_cycle(), 0);
}

#[test]
fn success_from_pending_and_failed_delivers_with_an_event() {
    for from in [DeliveryStatus::Pending, DeliveryStatus::Failed] {
        let mut d = in_status(from);
        let events = d.record_success(ok(204), at(100)).expect("allowed");
        assert_eq!(d.status(), DeliveryStatus::Delivered, "from {from:?}");
        assert_eq!(d.delivered_at(), Some(at(100)));
        assert_eq!(d.next_attempt_at(), None);
        let last = d.attempts().last().expect("attempt recorded");
        assert_eq!(last.status_code, Some(204));
        assert_eq!(last.at, at(100));
        assert_eq!(events.len(), 1);
        match &events[0] {
            DomainEvent::WebhookDelivered(e) => {
                assert_eq!(e.delivery_id, d.id());
                assert_eq!(e.subscription_id, d.subscription_id());
                assert_eq!(e.event_id, "evt_1");
                assert_eq!(e.status_code, Some(204));
                assert_eq!(e.attempts, d.attempts_in_cycle());
                assert_eq!(e.event_name.as_str(), "integration.run.completed");
            }
            other => panic!("unexpected {other:?}"),
        }
    }
}

#[test]
fn failure_from_pending_and_failed_schedules_a_retry() {
    for from in [DeliveryStatus::Pending, DeliveryStatus::Failed] {
        let mut d = in_status(from);
        let before = d.attempts().len();
        assert_eq!(
            d.record_failure(err(None), at(500), at(100)),
            Ok(Vec::new())
        );
        assert_eq!(d.status(), DeliveryStatus::Failed, "from {from:?}");
        assert_eq!(d.next_attempt_at(), Some(at(500)));
        assert_eq!(d.attempts().len(), before + 1);
        let last = d.attempts().last().expect("attempt");
        assert_eq!(last.status_code, None);
        assert_eq!(
            last.error.as_ref().map(RedactedText::as_str),
            Some("timeout")
        );
        assert_eq!(usize::try_from(last.number).ok(), Some(before + 1));
    }
}

#[test]
fn retry_now_moves_failed_to_pending() {
    let mut d = in_status(DeliveryStatus::Failed);
    assert_eq!(d.retry_now(at(10)), Ok(Vec::new()));
    assert_eq!(d.status(), DeliveryStatus::Pending);
    assert_eq!(d.next_attempt_at(), Some(at(10)));
}

#[test]
fn retry_now_is_refused_unless_failed() {
    for from in ALL.into_iter().filter(|s| *s != DeliveryStatus::Failed) {
        let mut d = in_status(from);
        assert_eq!(
            d.retry_now(at(10)),
            Err(forbidden(from, "pending")),
            "from {from:?}"
        );
    }
}

#[test]
fn dead_letter_from_pending_and_failed() {
    for from in [DeliveryStatus::Pending, DeliveryStatus::Failed] {
        let mut d = in_status(from);
        let f = failure_for(&d);
        let before = d.attempts().len();
        assert_eq!(
            d.dead_letter(&f, Some(err(Some(503))), at(200)),
            Ok(Vec::new())
        );
        assert_eq!(d.status(), DeliveryStatus::DeadLettered, "from {from:?}");
        assert_eq!(d.failure_id(), Some(f.id()));
        assert_eq!(d.next_attempt_at(), None);
        assert_eq!(d.attempts().len(), before + 1, "final attempt recorded");
    }
    let mut d = pending();
    let f = failure_for(&d);
    d.dead_letter(&f, None, at(1)).expect("dead letter");
    assert!(d.attempts().is_empty(), "no attempt when none was made");
}

#[test]
fn dead_letter_refuses_a_foreign_failure() {
    let mut d = pending();
    let other = failure_for(&pending());
    assert_eq!(
        d.dead_letter(&other, None, at(1)),
        Err(TransitionError::FailureMismatch {
            aggregate: "delivery",
            failure: other.id()
        })
    );
    assert_eq!(d.status(), DeliveryStatus::Pending);
}

#[test]
fn terminal_states_refuse_attempts_and_dead_lettering() {
    for from in [DeliveryStatus::Delivered, DeliveryStatus::DeadLettered] {
        let mut d = in_status(from);
        let before = d.clone();
        assert_eq!(
            d.record_success(ok(200), at(9)),
            Err(forbidden(from, "delivered"))
        );
        assert_eq!(
            d.record_failure(err(None), at(10), at(9)),
            Err(forbidden(from, "failed"))
        );
        let f = failure_for(&d);
        assert_eq!(
            d.dead_letter(&f, None, at(9)),
            Err(forbidden(from, "dead_lettered"))
        );
        assert_eq!(d, before);
    }
}

#[test]
fn replay_from_terminal_states_starts_a_new_cycle() {
    for from in [DeliveryStatus::Delivered, DeliveryStatus::DeadLettered] {
        let mut d = in_status(from);
        let attempts = d.attempts().len();
        assert_eq!(d.replay(at(300)), Ok(Vec::new()));
        assert_eq!(d.status(), DeliveryStatus::Pending, "from {from:?}");
        assert_eq!(d.cycle(), 2);
        assert_eq!(d.attempts_in_cycle(), 0);
        assert_eq!(d.attempts().len(), attempts, "history kept");
        assert_eq!(d.next_attempt_at(), Some(at(300)));
        assert_eq!(d.delivered_at(), None);
        assert_eq!(d.failure_id(), None);
        let events = d.record_success(ok(200), at(301)).expect("deliver again");
        assert_eq!(d.attempts().last().map(|a| a.cycle), Some(2));
        match &events[0] {
            DomainEvent::WebhookDelivered(e) => assert_eq!(e.attempts, 1),
            other => panic!("unexpected {other:?}"),
        }
    }
}

#[test]
fn replay_is_refused_while_in_flight() {
    for from in [DeliveryStatus::Pending, DeliveryStatus::Failed] {
        let mut d = in_status(from);
        assert_eq!(
            d.replay(at(9)),
            Err(forbidden(from, "pending")),
            "from {from:?}"
        );
        assert_eq!(d.cycle(), 1);
    }
}

#[test]
fn attempts_in_cycle_counts_the_backoff_step() {
    let mut d = pending();
    d.record_failure(err(Some(500)), at(10), at(1)).expect("1");
    d.record_failure(err(Some(500)), at(20), at(11)).expect("2");
    assert_eq!(d.attempts_in_cycle(), 2);
    assert_eq!(
        d.attempts().iter().map(|a| a.number).collect::<Vec<_>>(),
        [1, 2]
    );
}

#[test]
fn status_names_and_document_round_trip() {
    for status in ALL {
        assert_eq!(
            serde_json::to_value(status).expect("serialize"),
            status.as_str()
        );
        let d = in_status(status);
        let json = serde_json::to_value(&d).expect("serialize");
        assert_eq!(json["status"], status.as_str());
        assert_eq!(json["eventName"], "integration.run.completed");
        let back: WebhookDelivery = serde_json::from_value(json).expect("deserialize");
        assert_eq!(back, d);
    }
}
