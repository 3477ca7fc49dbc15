use proptest::prelude::*;

use super::*;

fn record(status: PaymentStatus) -> PaymentRecord {
    PaymentRecord::new(
        "fake-payment",
        RunId::new(),
        "pay_1",
        1099,
        "USD",
        status,
        Utc::now(),
    )
}

fn fetched(status: PaymentStatus, refunded: u64) -> Payment {
    Payment {
        payment_id: "pay_1".into(),
        status,
        processor_status: "whatever".into(),
        amount: 1099,
        amount_received: 1099,
        amount_refunded: refunded,
        currency: "usd".into(),
    }
}

fn callback() -> ReconcileReason {
    ReconcileReason::Callback {
        vendor_event_id: Some("evt_1".into()),
        attempt: 0,
    }
}

use PaymentStatus::*;

#[test]
fn forward_moves_publish_their_events() {
    let mut r = record(Processing);
    let now = Utc::now();
    assert_eq!(
        r.apply(&fetched(Succeeded, 0), &callback(), now),
        Applied::Moved(vec![EventKind::PaymentSucceeded])
    );
    assert_eq!(
        r.apply(&fetched(PartiallyRefunded, 100), &callback(), now),
        Applied::Moved(vec![EventKind::PaymentRefunded])
    );
    // More refunded, the same status: another refund.
    assert_eq!(
        r.apply(&fetched(PartiallyRefunded, 300), &callback(), now),
        Applied::Moved(vec![EventKind::PaymentRefunded])
    );
    assert_eq!(r.amount_refunded, 300);
    assert_eq!(
        r.apply(&fetched(Refunded, 1099), &callback(), now),
        Applied::Moved(vec![EventKind::PaymentRefunded])
    );
    assert_eq!(
        r.apply(&fetched(Disputed, 1099), &callback(), now),
        Applied::Moved(vec![EventKind::PaymentDisputed])
    );
    assert_eq!(r.status, Disputed);
    assert_eq!(r.history.len(), 5);
    assert!(r.history.iter().all(|c| c.applied));
    assert_eq!(r.history[0].vendor_event_id.as_deref(), Some("evt_1"));
}

#[test]
fn a_success_seen_late_publishes_the_success_too() {
    let mut r = record(Processing);
    assert_eq!(
        r.apply(&fetched(Refunded, 1099), &callback(), Utc::now()),
        Applied::Moved(vec![
            EventKind::PaymentSucceeded,
            EventKind::PaymentRefunded
        ])
    );
}

#[test]
fn backward_reports_are_recorded_and_not_applied() {
    let mut r = record(Succeeded);
    assert_eq!(
        r.apply(&fetched(Processing, 0), &callback(), Utc::now()),
        Applied::Ignored
    );
    assert_eq!(r.status, Succeeded);
    assert_eq!(r.history.len(), 1);
    assert!(!r.history[0].applied);
    assert_eq!(
        (r.history[0].from, r.history[0].to),
        (Succeeded, Processing)
    );
    // The same status again is nothing new, and not recorded.
    assert_eq!(
        r.apply(&fetched(Succeeded, 0), &callback(), Utc::now()),
        Applied::Same
    );
    assert_eq!(r.history.len(), 1);
}

#[test]
fn cancellation_ends_an_unfinished_payment_only() {
    let mut r = record(RequiresCapture);
    assert_eq!(
        r.apply(&fetched(Canceled, 0), &callback(), Utc::now()),
        Applied::Moved(vec![EventKind::PaymentFailed])
    );
    assert!(r.is_final());
    // Nothing comes after a cancellation.
    assert_eq!(
        r.apply(&fetched(Succeeded, 0), &callback(), Utc::now()),
        Applied::Ignored
    );
    assert_eq!(r.status, Canceled);
    // A succeeded payment is not canceled.
    let mut r = record(Succeeded);
    assert_eq!(
        r.apply(&fetched(Canceled, 0), &callback(), Utc::now()),
        Applied::Ignored
    );
}

#[test]
fn another_amount_or_currency_is_never_applied() {
    let mut r = record(Processing);
    let before = r.clone();
    let mut more = fetched(Succeeded, 0);
    more.amount = 1100;
    assert_eq!(r.apply(&more, &callback(), Utc::now()), Applied::Mismatch);
    let mut euros = fetched(Succeeded, 0);
    euros.currency = "eur".into();
    assert_eq!(r.apply(&euros, &callback(), Utc::now()), Applied::Mismatch);
    assert_eq!(r, before);
}

#[test]
fn only_unfinished_payments_are_swept() {
    for (status, done) in [
        (RequiresAction, false),
        (Processing, false),
        (RequiresCapture, false),
        (Succeeded, true),
        (Refunded, true),
        (Canceled, true),
    ] {
        assert_eq!(record(status).is_final(), done, "{status:?}");
    }
}

#[test]
fn sweeps_back_off_to_six_hours() {
    let first = Duration::from_secs(900);
    assert_eq!(sweep_delay(first, 1), first);
    assert_eq!(sweep_delay(first, 2), first * 2);
    assert_eq!(sweep_delay(first, 3), first * 4);
    assert_eq!(sweep_delay(first, 20), MAX_SWEEP_INTERVAL);
}

#[test]
fn the_record_reads_back_from_its_document() {
    let r = record(Processing);
    let doc = r.document();
    assert_eq!(doc["docType"], "payment");
    assert_eq!(doc["currency"], "usd");
    let back: PaymentRecord = serde_json::from_value(doc).unwrap();
    assert_eq!(back, r);
}

fn any_status() -> impl Strategy<Value = PaymentStatus> {
    prop_oneof![
        Just(RequiresAction),
        Just(Processing),
        Just(RequiresCapture),
        Just(Succeeded),
        Just(PartiallyRefunded),
        Just(Refunded),
        Just(Disputed),
        Just(Canceled),
    ]
}

proptest! {
    /// Whatever the processor reports, in whatever order: the record never goes back, a
    /// cancellation is final, and every report that changed nothing is either the same or
    /// recorded as ignored.
    #[test]
    fn the_record_never_goes_back(reports in prop::collection::vec((any_status(), 0u64..=1099), 1..20)) {
        let mut r = record(RequiresAction);
        for (status, refunded) in reports {
            let before = r.clone();
            let applied = r.apply(&fetched(status, refunded), &callback(), Utc::now());
            match (rank(before.status), rank(r.status)) {
                (Some(b), Some(a)) => prop_assert!(a >= b),
                (None, after) => prop_assert!(after.is_none(), "left canceled"),
                (Some(b), None) => prop_assert!(b < 3, "canceled after success"),
            }
            prop_assert!(r.amount_refunded >= before.amount_refunded);
            if applied == Applied::Same {
                prop_assert_eq!(&r, &before);
            }
        }
    }
}
