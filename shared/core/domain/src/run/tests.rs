use super::*;
use crate::failure::{FailureClassification, NewFailure};
use crate::testkit::{at, tenant};

fn queued() -> IntegrationRun {
    IntegrationRun::queue(
        NewRun {
            tenant_id: tenant(),
            id: RunId::new(),
            connection_id: ConnectionId::new(),
            provider_key: ProviderKey::parse("github").expect("valid"),
            operation: OperationName::parse("pullRequests.open").expect("valid"),
            input_ref: PayloadRef::parse("runs/acme/in.json").expect("valid"),
            idempotency_key: Some(IdempotencyKey::parse("order-42").expect("valid")),
            trace_id: TraceId::parse("4bf92f3577b34da6a3ce929d0e0e4736").expect("valid"),
        },
        at(0),
    )
}

fn failure_for(run: &IntegrationRun) -> IntegrationFailure {
    IntegrationFailure::record(
        NewFailure {
            tenant_id: run.tenant_id().clone(),
            id: FailureId::new(),
            subject: FailureSubject::Run(run.id()),
            provider_key: Some(run.provider_key().clone()),
            classification: FailureClassification::Validation,
            vendor_status: Some(422),
            vendor_code: None,
            message: RedactedText::from_redacted("validation failed"),
            retryable: false,
            dead_lettered: false,
            trace_id: Some(run.trace_id()),
        },
        at(0),
    )
    .0
}

fn usage(n: u64) -> RunUsage {
    RunUsage {
        tokens_in: n,
        tokens_out: n * 2,
        cost_micros: n * 10,
        units: n,
    }
}

fn in_status(status: RunStatus) -> IntegrationRun {
    let mut run = queued();
    match status {
        RunStatus::Queued => {}
        RunStatus::Running => {
            run.start(at(1)).expect("start");
        }
        RunStatus::Waiting => {
            run.start(at(1)).expect("start");
            run.wait(usage(1), at(2)).expect("wait");
        }
        RunStatus::Succeeded => {
            run.start(at(1)).expect("start");
            run.succeed(None, usage(1), at(2)).expect("succeed");
        }
        RunStatus::Failed => {
            run.start(at(1)).expect("start");
            let f = failure_for(&run);
            run.fail(&f, at(2)).expect("fail");
        }
        RunStatus::DeadLettered => {
            let f = failure_for(&run);
            run.dead_letter(&f, at(2)).expect("dead letter");
        }
    }
    assert_eq!(run.status(), status);
    run
}

const ALL: [RunStatus; 6] = [
    RunStatus::Queued,
    RunStatus::Running,
    RunStatus::Waiting,
    RunStatus::Succeeded,
    RunStatus::Failed,
    RunStatus::DeadLettered,
];

fn forbidden(from: RunStatus, to: &'static str) -> TransitionError {
    TransitionError::Forbidden {
        aggregate: "run",
        from: from.as_str(),
        to,
    }
}

#[test]
fn queued_run_has_no_attempts() {
    let run = queued();
    assert_eq!(run.status(), RunStatus::Queued);
    assert!(run.attempts().is_empty());
    assert!(run.current_attempt().is_none());
    assert_eq!(run.usage(), RunUsage::default());
    assert_eq!(
        run.idempotency_key().map(IdempotencyKey::as_str),
        Some("order-42")
    );
}

#[test]
fn start_opens_an_attempt() {
    let mut run = queued();
    assert_eq!(run.start(at(5)), Ok(Vec::new()));
    assert_eq!(run.status(), RunStatus::Running);
    let attempt = run.current_attempt().expect("open attempt");
    assert_eq!(attempt.number, 1);
    assert_eq!(attempt.started_at, at(5));
    assert_eq!(attempt.outcome, None);
    assert_eq!(run.version(), 2);
}

#[test]
fn start_is_refused_unless_queued() {
    for from in ALL.into_iter().filter(|s| *s != RunStatus::Queued) {
        let mut run = in_status(from);
        let before = run.clone();
        assert_eq!(
            run.start(at(9)),
            Err(forbidden(from, "running")),
            "from {from:?}"
        );
        assert_eq!(run, before);
    }
}

#[test]
fn succeed_closes_the_attempt_and_emits_completed() {
    let mut run = in_status(RunStatus::Running);
    run.add_usage(usage(5), at(2));
    let summary = serde_json::json!({"number": 12});
    let events = run
        .succeed(Some(summary.clone()), usage(1), at(3))
        .expect("succeed");
    assert_eq!(run.status(), RunStatus::Succeeded);
    assert!(run.status().is_terminal());
    assert_eq!(run.completed_at(), Some(at(3)));
    assert_eq!(run.usage(), usage(6), "earlier usage is kept");
    assert_eq!(run.attempts()[0].outcome, Some(AttemptOutcome::Succeeded));
    assert_eq!(run.attempts()[0].finished_at, Some(at(3)));
    assert!(run.current_attempt().is_none());
    assert_eq!(events.len(), 1);
    match &events[0] {
        DomainEvent::IntegrationRunCompleted(e) => {
            assert_eq!(e.run_id, run.id());
            assert_eq!(e.attempts, 1);
            assert_eq!(e.usage, usage(6));
            assert_eq!(e.output_summary, Some(summary));
            assert_eq!(e.trace_id, run.trace_id());
            assert_eq!(e.operation.as_str(), "pullRequests.open");
        }
        other => panic!("unexpected {other:?}"),
    }
}

#[test]
fn succeed_is_refused_unless_running_or_waiting() {
    for from in ALL
        .into_iter()
        .filter(|s| ![RunStatus::Running, RunStatus::Waiting].contains(s))
    {
        let mut run = in_status(from);
        assert_eq!(
            run.succeed(None, usage(1), at(9)),
            Err(forbidden(from, "succeeded")),
            "from {from:?}"
        );
    }
}

#[test]
fn retry_requeues_and_the_next_start_is_attempt_two() {
    let mut run = in_status(RunStatus::Running);
    assert_eq!(
        run.retry(RedactedText::from_redacted("503 from vendor"), at(2)),
        Ok(Vec::new())
    );
    assert_eq!(run.status(), RunStatus::Queued);
    assert_eq!(run.attempts()[0].outcome, Some(AttemptOutcome::Failed));
    assert_eq!(
        run.attempts()[0].error.as_ref().map(RedactedText::as_str),
        Some("503 from vendor")
    );
    assert!(run.failure_id().is_none(), "retries record no failure");
    run.start(at(3)).expect("second attempt");
    assert_eq!(run.current_attempt().map(|a| a.number), Some(2));
    let events = run
        .succeed(None, RunUsage::default(), at(4))
        .expect("succeed");
    match &events[0] {
        DomainEvent::IntegrationRunCompleted(e) => assert_eq!(e.attempts, 2),
        other => panic!("unexpected {other:?}"),
    }
}

#[test]
fn a_waiting_run_ends_with_the_vendor() {
    let mut run = in_status(RunStatus::Waiting);
    assert!(!RunStatus::Waiting.is_terminal());
    assert_eq!(run.attempts().len(), 1);
    assert_eq!(run.attempts()[0].outcome, Some(AttemptOutcome::Waiting));
    assert_eq!(run.attempts()[0].finished_at, Some(at(2)));
    assert_eq!(run.usage(), usage(1));
    assert!(
        run.current_attempt().is_none(),
        "no attempt is open while waiting"
    );
    // Waiting is not running: no second wait, no retry.
    assert_eq!(
        run.wait(usage(1), at(3)),
        Err(forbidden(RunStatus::Waiting, "waiting"))
    );
    let events = run.succeed(None, usage(2), at(5)).expect("succeed");
    assert_eq!(run.status(), RunStatus::Succeeded);
    assert_eq!(run.usage(), usage(3));
    assert_eq!(run.completed_at(), Some(at(5)));
    // The attempt that started the vendor's work stays as it was.
    assert_eq!(run.attempts()[0].outcome, Some(AttemptOutcome::Waiting));
    match &events[0] {
        DomainEvent::IntegrationRunCompleted(e) => assert_eq!(e.attempts, 1),
        other => panic!("unexpected {other:?}"),
    }
    let mut run = in_status(RunStatus::Waiting);
    let f = failure_for(&run);
    assert_eq!(run.fail(&f, at(6)), Ok(Vec::new()));
    assert_eq!(run.status(), RunStatus::Failed);
    assert_eq!(run.attempts()[0].outcome, Some(AttemptOutcome::Waiting));
}

#[test]
fn wait_is_refused_unless_running() {
    for from in ALL.into_iter().filter(|s| *s != RunStatus::Running) {
        let mut run = in_status(from);
        assert_eq!(
            run.wait(usage(1), at(9)),
            Err(forbidden(from, "waiting")),
            "from {from:?}"
        );
    }
}

#[test]
fn retry_is_refused_unless_running() {
    for from in ALL.into_iter().filter(|s| *s != RunStatus::Running) {
        let mut run = in_status(from);
        assert_eq!(
            run.retry(RedactedText::from_redacted("x"), at(9)),
            Err(forbidden(from, "queued")),
            "from {from:?}"
        );
    }
}

#[test]
fn fail_records_the_failure() {
    let mut run = in_status(RunStatus::Running);
    let f = failure_for(&run);
    assert_eq!(run.fail(&f, at(4)), Ok(Vec::new()));
    assert_eq!(run.status(), RunStatus::Failed);
    assert_eq!(run.failure_id(), Some(f.id()));
    assert_eq!(run.completed_at(), Some(at(4)));
    assert_eq!(run.attempts()[0].outcome, Some(AttemptOutcome::Failed));
    assert_eq!(run.attempts()[0].error.as_ref(), Some(f.message()));
}

#[test]
fn fail_is_refused_unless_running_or_waiting() {
    for from in ALL
        .into_iter()
        .filter(|s| ![RunStatus::Running, RunStatus::Waiting].contains(s))
    {
        let mut run = in_status(from);
        let f = failure_for(&run);
        assert_eq!(
            run.fail(&f, at(9)),
            Err(forbidden(from, "failed")),
            "from {from:?}"
        );
    }
}

#[test]
fn fail_refuses_a_failure_of_another_run_or_tenant() {
    let mut run = in_status(RunStatus::Running);
    let other = failure_for(&queued());
    assert_eq!(
        run.fail(&other, at(4)),
        Err(TransitionError::FailureMismatch {
            aggregate: "run",
            failure: other.id()
        })
    );
    assert_eq!(run.status(), RunStatus::Running);
    assert!(run.current_attempt().is_some(), "attempt still open");

    let foreign = IntegrationFailure::record(
        NewFailure {
            tenant_id: TenantId::parse("other").expect("valid"),
            id: FailureId::new(),
            subject: FailureSubject::Run(run.id()),
            provider_key: None,
            classification: FailureClassification::Auth,
            vendor_status: None,
            vendor_code: None,
            message: RedactedText::from_redacted("x"),
            retryable: false,
            dead_lettered: false,
            trace_id: None,
        },
        at(0),
    )
    .0;
    assert!(matches!(
        run.fail(&foreign, at(4)),
        Err(TransitionError::FailureMismatch { .. })
    ));
}

#[test]
fn dead_letter_from_queued_and_running() {
    let mut run = in_status(RunStatus::Queued);
    let f = failure_for(&run);
    assert_eq!(run.dead_letter(&f, at(5)), Ok(Vec::new()));
    assert_eq!(run.status(), RunStatus::DeadLettered);
    assert!(run.attempts().is_empty());
    assert_eq!(run.failure_id(), Some(f.id()));

    let mut run = in_status(RunStatus::Running);
    let f = failure_for(&run);
    assert_eq!(run.dead_letter(&f, at(5)), Ok(Vec::new()));
    assert_eq!(run.status(), RunStatus::DeadLettered);
    assert_eq!(
        run.attempts()[0].outcome,
        Some(AttemptOutcome::Failed),
        "open attempt closed"
    );
    assert_eq!(run.completed_at(), Some(at(5)));
}

#[test]
fn dead_letter_is_refused_from_terminal_states_and_for_foreign_failures() {
    for from in [
        RunStatus::Succeeded,
        RunStatus::Failed,
        RunStatus::DeadLettered,
    ] {
        let mut run = in_status(from);
        let f = failure_for(&run);
        assert_eq!(
            run.dead_letter(&f, at(9)),
            Err(forbidden(from, "dead_lettered")),
            "from {from:?}"
        );
    }
    let mut run = queued();
    let other = failure_for(&queued());
    assert!(matches!(
        run.dead_letter(&other, at(1)),
        Err(TransitionError::FailureMismatch { .. })
    ));
    assert_eq!(run.status(), RunStatus::Queued);
}

#[test]
fn running_document_without_an_open_attempt_is_reported() {
    let run = in_status(RunStatus::Running);
    let mut json = serde_json::to_value(&run).expect("serialize");
    json["attempts"] = serde_json::json!([]);
    let mut broken: IntegrationRun = serde_json::from_value(json).expect("deserialize");
    let before = broken.clone();
    assert!(matches!(
        broken.succeed(None, usage(1), at(3)),
        Err(TransitionError::Inconsistent { .. })
    ));
    assert!(matches!(
        broken.retry(RedactedText::from_redacted("x"), at(3)),
        Err(TransitionError::Inconsistent { .. })
    ));
    assert_eq!(broken, before, "nothing changed");
}

#[test]
fn usage_sums_saturate() {
    let max = RunUsage {
        tokens_in: u64::MAX,
        tokens_out: u64::MAX,
        cost_micros: u64::MAX,
        units: u64::MAX,
    };
    assert_eq!(max.saturating_add(usage(1)), max);
    assert_eq!(usage(1).saturating_add(usage(2)), usage(3));
}

#[test]
fn version_saturates_instead_of_panicking() {
    let run = queued();
    let mut json = serde_json::to_value(&run).expect("serialize");
    json["version"] = serde_json::json!(u64::MAX);
    let mut run: IntegrationRun = serde_json::from_value(json).expect("deserialize");
    run.start(at(1)).expect("start");
    assert_eq!(run.version(), u64::MAX);
}

#[test]
fn status_names_and_document_round_trip() {
    for status in ALL {
        assert_eq!(
            serde_json::to_value(status).expect("serialize"),
            status.as_str()
        );
        let run = in_status(status);
        let json = serde_json::to_value(&run).expect("serialize");
        assert_eq!(json["status"], status.as_str());
        assert_eq!(json["traceId"], "4bf92f3577b34da6a3ce929d0e0e4736");
        let back: IntegrationRun = serde_json::from_value(json).expect("deserialize");
        assert_eq!(back, run);
    }
    assert_eq!(RunStatus::DeadLettered.as_str(), "dead_lettered");
    assert!(!RunStatus::Queued.is_terminal());
    assert!(!RunStatus::Running.is_terminal());
}
