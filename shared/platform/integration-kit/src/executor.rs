//! `ExecuteRun` (Service Bus, `runs-<slug>`): executes runs, and answers the registry's
//! connection re-tests.
//!
//! A run is executed at most once per attempt, whatever the bus does:
//! 1. `queued → running` is committed (etag-guarded) before any vendor call; a concurrent
//!    duplicate loses the race and stops.
//! 2. A redelivered command that finds the run `running` leaves it alone while the attempt
//!    may still be in flight (it schedules a check for when it cannot be any more), and only
//!    then treats the attempt as interrupted (`retry`, then `start` again).
//! 3. The vendor call goes through the resilience pipeline; with failover, the tenant's
//!    other connections of the app are tried in priority order when a provider is down.
//! 4. The outcome is one batch: `succeeded` + `IntegrationRunCompleted`; or `waiting` + a
//!    resume scheduled on the bus; or a retry of the run scheduled on the bus; or `failed` +
//!    exactly one `IntegrationFailure` + `IntegrationFailed`.
//! 5. A waiting run's command (the scheduled resume) asks the provider again
//!    ([`Serves::resume`](crate::Serves::resume), a read: asking twice is harmless) and
//!    commits what it says guarded by the run's etag, so a duplicate resume applies nothing
//!    twice. Past the operation's maximum wait the run fails with `timeout`.

use std::sync::Arc;
use std::time::Duration;

use app_context::commands::{RETEST_REQUESTED, RetestCompleted, RetestOutcome, RetestRequested};
use chrono::{DateTime, TimeDelta, Utc};
use domain::{
    FailureClassification, FailureId, FailureSubject, IntegrationConnection, IntegrationFailure,
    NewFailure, RedactedText, RunStatus, TenantId,
};
use envelope::{Envelope, TraceParent};
use functions_runtime::{Invocation, InvocationError, InvocationResponse};
use ports::{ETag, PortError, WriteOp};
use rand::Rng as _;
use resilience::{CallError, VendorFailure};
use serde_json::json;

use crate::connections::{failover_candidates, redact};
use crate::operation::{Done, ErasedStep, Step};
use crate::provider::ProviderCall;
use crate::runs::{RunRequested, command, read_input};
use crate::store::{
    FAILURE, Failover, INLINE_OUTPUT, RUN, StoredRun, VENDOR_MESSAGE, Waiting, connection_doc_id,
    failure_doc_id, run_doc_id, vendor_message_doc_id,
};
use crate::{Kit, RUN_REQUESTED};

/// The bus's max delivery count (design §7).
const MAX_DELIVERY_COUNT: u32 = 10;

pub(crate) fn permanent(e: impl std::fmt::Display) -> InvocationError {
    InvocationError::permanent(e.to_string())
}

pub(crate) fn transient(e: impl std::fmt::Display) -> InvocationError {
    InvocationError::transient(e.to_string())
}

pub(crate) async fn handle(
    kit: Arc<Kit>,
    inv: Invocation,
) -> Result<InvocationResponse, InvocationError> {
    let msg = inv.service_bus()?;
    let event =
        Envelope::parse(&msg.body).map_err(|e| permanent(format!("not an envelope: {e}")))?;
    let tenant = TenantId::parse(event.tenant_id()).map_err(permanent)?;
    match event.event_type() {
        RUN_REQUESTED => {
            let request: RunRequested = event.data_json().map_err(permanent)?;
            execute(&kit, &tenant, &event, request, msg.delivery_count).await?;
        }
        RETEST_REQUESTED => {
            let request: RetestRequested = event.data_json().map_err(permanent)?;
            retest(&kit, &tenant, &event, request).await?;
        }
        app_context::commands::WEBHOOK_ROUTED => {
            crate::vendor_webhooks::handle(&kit, &tenant, &event).await?;
        }
        crate::records::RECORD_RECONCILE => {
            crate::records::handle(&kit, &tenant, &event).await?;
        }
        other => return Err(permanent(format!("unexpected message type {other}"))),
    }
    Ok(InvocationResponse::default())
}

/// How long after an attempt started it cannot be in flight any more: twice the pipeline's
/// deadline (the primary's single attempt and the failover candidates' calls share it in
/// practice), plus a margin for the commits around the call.
pub(crate) fn in_flight_for(kit: &Kit) -> TimeDelta {
    let deadline = kit.pipeline.policy().deadline;
    TimeDelta::from_std(deadline * 2 + Duration::from_secs(5)).unwrap_or(TimeDelta::minutes(2))
}

async fn read_run(
    kit: &Kit,
    tenant: &TenantId,
    request: &RunRequested,
) -> Result<Option<(StoredRun, ETag)>, InvocationError> {
    let Some(doc) = kit
        .ctx
        .documents
        .read(kit.app.slug, tenant.as_str(), &run_doc_id(&request.run_id))
        .await
        .map_err(transient)?
    else {
        return Ok(None);
    };
    let run = doc.parse().map_err(permanent)?;
    Ok(Some((run, doc.etag)))
}

pub(crate) async fn commit(
    kit: &Kit,
    tenant: &TenantId,
    ops: Vec<WriteOp>,
    events: &[domain::DomainEvent],
    traceparent: Option<&TraceParent>,
) -> Result<(), PortError> {
    let mut ops = ops;
    ops.extend(
        outbox::event_writes(events, kit.app.source, traceparent)
            .map_err(|e| PortError::Invalid(e.to_string()))?,
    );
    kit.ctx
        .documents
        .batch(kit.app.slug, tenant.as_str(), ops)
        .await?;
    kit.ctx.outbox_committed();
    Ok(())
}

pub(crate) fn run_write(stored: &StoredRun, etag: ETag) -> Result<WriteOp, InvocationError> {
    let doc = api_kit::Aggregates::document(stored, RUN).map_err(|_| permanent("run"))?;
    Ok(WriteOp::replace(
        run_doc_id(&stored.run.id()),
        doc,
        Some(etag),
    ))
}

pub(crate) async fn execute(
    kit: &Kit,
    tenant: &TenantId,
    event: &Envelope,
    request: RunRequested,
    delivery_count: u32,
) -> Result<(), InvocationError> {
    let Some((mut stored, etag)) = read_run(kit, tenant, &request).await? else {
        return Err(permanent(format!("run {} does not exist", request.run_id)));
    };
    let now = Utc::now();
    match stored.run.status() {
        s if s.is_terminal() => return Ok(()),
        RunStatus::Waiting => return resume(kit, tenant, event, stored, etag).await,
        RunStatus::Running => {
            let started = stored.run.current_attempt().map_or(now, |a| a.started_at);
            let stale_at = started + in_flight_for(kit);
            if now < stale_at {
                // Another delivery is (or may be) executing it: look again when it cannot
                // be. The check's id is fixed per attempt, so duplicates are one message.
                let number = stored.run.attempts().len();
                let id = format!("check-{}-{number}", stored.run.id());
                let check = command(kit, tenant.as_str(), stored.run.id(), Some(id), None)
                    .map_err(permanent)?;
                let write = outbox::outbox_write_at(
                    &check,
                    &app_context::runs_queue(kit.app.slug),
                    Some(stale_at),
                );
                return match commit(kit, tenant, vec![write], &[], None).await {
                    Ok(()) | Err(PortError::AlreadyExists) => Ok(()),
                    Err(e) => Err(transient(e)),
                };
            }
            stored
                .run
                .retry(
                    RedactedText::from_redacted("the attempt was interrupted"),
                    now,
                )
                .map_err(permanent)?;
        }
        _ => {}
    }
    let attempts_before = stored.run.attempts().len();
    stored.run.start(now).map_err(permanent)?;
    let etag = match kit
        .ctx
        .documents
        .batch(
            kit.app.slug,
            tenant.as_str(),
            vec![run_write(&stored, etag)?],
        )
        .await
    {
        Ok(mut etags) => etags.pop().flatten().ok_or_else(|| transient("no etag"))?,
        // Someone else moved the run: they execute it.
        Err(PortError::PreconditionFailed) => return Ok(()),
        Err(e) => return Err(transient(e)),
    };
    let traceparent = event.traceparent().cloned();
    let result = attempt(kit, tenant, &mut stored, traceparent.as_ref(), None).await;
    let attempt_number = attempts_before + 1;
    let last_delivery = delivery_count >= MAX_DELIVERY_COUNT;
    finish(
        kit,
        tenant,
        stored,
        etag,
        result,
        attempt_number,
        last_delivery,
        traceparent.as_ref(),
    )
    .await
    .map(drop)
}

/// The first attempt of a run its request committed `running` and executes itself (a
/// caller waiting for it): the same attempt and outcome as [`execute`], with the
/// connection and input the request read. Answers the run as committed.
pub(crate) async fn execute_started(
    kit: &Kit,
    tenant: &TenantId,
    started: crate::runs::Started,
    traceparent: &TraceParent,
) -> Result<StoredRun, InvocationError> {
    let crate::runs::Started {
        mut stored,
        etag,
        connection,
        input,
    } = started;
    let result = attempt(
        kit,
        tenant,
        &mut stored,
        Some(traceparent),
        Some((connection, input)),
    )
    .await;
    finish(
        kit,
        tenant,
        stored,
        etag,
        result,
        1,
        false,
        Some(traceparent),
    )
    .await
}

/// One attempt of a run: candidates in failover order, each through the pipeline.
async fn attempt(
    kit: &Kit,
    tenant: &TenantId,
    stored: &mut StoredRun,
    traceparent: Option<&TraceParent>,
    read: Option<(IntegrationConnection, serde_json::Value)>,
) -> Result<(IntegrationConnection, ErasedStep), Attempted> {
    let run = &stored.run;
    let (primary, input) = match read {
        Some(read) => read,
        None => primary_and_input(kit, tenant, run).await?,
    };
    let mut candidates = if kit.app.failover {
        failover_candidates(kit, tenant.as_str(), &primary)
            .await
            .map_err(|_| Attempted::Internal("the connections could not be listed"))?
    } else {
        // Without failover, only the fallback the connection names, if it does.
        let fallback = crate::connections::named_fallback(kit, tenant.as_str(), &primary)
            .await
            .map_err(|_| Attempted::Internal("the connections could not be listed"))?;
        std::iter::once(primary).chain(fallback).collect()
    };
    // Providers whose circuit is open go last: a healthy one is a better first try.
    candidates.sort_by_key(|c| {
        kit.pipeline.is_open(&crate::call_key(
            tenant.as_str(),
            c.provider_key().as_str(),
            &c.id(),
        ))
    });
    let idempotency_key = format!("{}", run.id());
    let operation = run.operation().as_str().to_owned();
    // Only connections whose provider performs the operation can serve the run.
    candidates.retain(|c| kit.handler(c.provider_key().as_str(), &operation).is_some());
    let count = candidates.len();
    let mut last = None;
    for (i, connection) in candidates.into_iter().enumerate() {
        let (Some(provider), Some(handler)) = (
            kit.provider(connection.provider_key().as_str()),
            kit.handler(connection.provider_key().as_str(), &operation),
        ) else {
            continue;
        };
        let resolved = match credential_of(kit, tenant, &connection).await {
            Ok(r) => r,
            Err(Attempted::Failed(e)) => {
                last = Some(e);
                continue;
            }
            Err(internal) => return Err(internal),
        };
        let key = crate::call_key(tenant.as_str(), provider.key(), &connection.id());
        let receipt_url = kit.receipt_url_for(
            tenant.as_str(),
            &connection.id(),
            provider.as_ref(),
            &resolved.material,
        );
        let more = i + 1 < count;
        let reach = match crate::private_endpoints::reach(kit, tenant.as_str(), connection.config())
            .await
        {
            Ok(reach) => reach,
            Err(e) => {
                last = Some(e);
                continue;
            }
        };
        let call = ProviderCall {
            pipeline: &kit.pipeline,
            http: &reach.http,
            guard: &reach.guard,
            key: &key,
            config: connection.config(),
            credential: &resolved.material,
            traceparent,
            idempotency_key: Some(&idempotency_key),
            // The next provider is a better retry than the same one.
            max_attempts: more.then_some(1),
            rate_limit: kit.rate_limit(provider.key()).await,
            receipt_url: receipt_url.as_deref(),
            tokens: &kit.tokens,
        };
        match handler.execute(&call, &input).await {
            Ok(output) => return Ok((connection, output)),
            Err(e) => {
                let message = redact(&e, &resolved.material);
                tracing::warn!(
                    tenant = %tenant, run = %stored.run.id(), connection = %connection.id(),
                    provider = provider.key(), class = ?e.class(), "a provider call failed"
                );
                let fails_over = crate::fails_over(&e);
                let e = CallError {
                    failure: VendorFailure {
                        message: message.as_str().to_owned(),
                        ..e.failure
                    },
                    ..e
                };
                // More candidates exist only with failover or a named fallback.
                if !(fails_over && more) {
                    return Err(Attempted::Failed(e));
                }
                stored.failovers.push(Failover {
                    connection_id: connection.id(),
                    provider: provider.key().to_owned(),
                    class: e.class(),
                    reason: message.as_str().to_owned(),
                });
                last = Some(e);
            }
        }
    }
    Err(Attempted::Failed(last.unwrap_or_else(|| {
        crate::provider::fail(
            FailureClassification::Validation,
            "no connection of this app can serve the run",
        )
    })))
}

/// A connection a run names; gone, the run fails (`validation`, `gone` saying which).
async fn run_connection(
    kit: &Kit,
    tenant: &TenantId,
    id: &domain::ConnectionId,
    gone: &'static str,
) -> Result<IntegrationConnection, Attempted> {
    match kit
        .store
        .read::<IntegrationConnection>(&kit.ctx, tenant.as_str(), &connection_doc_id(id))
        .await
    {
        Ok(Some((c, _))) => Ok(c),
        Ok(None) => Err(Attempted::Failed(crate::provider::fail(
            FailureClassification::Validation,
            gone,
        ))),
        Err(_) => Err(Attempted::Internal("the connection could not be read")),
    }
}

/// The run's connection and input, as stored.
async fn primary_and_input(
    kit: &Kit,
    tenant: &TenantId,
    run: &domain::IntegrationRun,
) -> Result<(IntegrationConnection, serde_json::Value), Attempted> {
    let primary = run_connection(
        kit,
        tenant,
        &run.connection_id(),
        "the run's connection no longer exists",
    )
    .await?;
    let input = read_input(kit, tenant.as_str(), &run.id())
        .await
        .map_err(|_| Attempted::Internal("the run's input could not be read"))?;
    Ok((primary, input))
}

/// The connection's credential as a provider call needs it: one gone or revoked fails the
/// call as `auth`; a store that cannot answer is ours.
async fn credential_of(
    kit: &Kit,
    tenant: &TenantId,
    connection: &IntegrationConnection,
) -> Result<Arc<custody::Resolved>, Attempted> {
    match kit
        .resolver
        .resolve(tenant.as_str(), &connection.credential_id())
        .await
    {
        Ok(r) => Ok(r),
        Err(custody::ResolveError::NotFound | custody::ResolveError::Revoked) => {
            Err(Attempted::Failed(crate::provider::fail(
                FailureClassification::Auth,
                "the connection's credential is gone or revoked",
            )))
        }
        Err(_) => Err(Attempted::Internal("the credential could not be resolved")),
    }
}

enum Attempted {
    /// The vendor(s) refused or failed.
    Failed(CallError),
    /// We could not even try (storage trouble): the message is redelivered.
    Internal(&'static str),
}

#[allow(clippy::too_many_arguments)]
async fn finish(
    kit: &Kit,
    tenant: &TenantId,
    mut stored: StoredRun,
    etag: ETag,
    result: Result<(IntegrationConnection, ErasedStep), Attempted>,
    attempt_number: usize,
    last_delivery: bool,
    traceparent: Option<&TraceParent>,
) -> Result<StoredRun, InvocationError> {
    let now = Utc::now();
    let run_id = stored.run.id();
    let mut ops = Vec::new();
    let mut events = Vec::new();
    match result {
        Ok((connection, Step::Done(done))) => {
            succeed(
                kit,
                tenant,
                &mut stored,
                &connection,
                done,
                now,
                &mut ops,
                &mut events,
            )
            .await?;
        }
        Ok((connection, Step::Wait(wait))) => {
            let max_wait = kit.max_wait(stored.run.operation().as_str());
            let deadline = now + TimeDelta::from_std(max_wait).unwrap_or(TimeDelta::hours(6));
            stored.served_by = Some(connection.id());
            stored.served_by_provider = Some(connection.provider_key().as_str().to_owned());
            stored.run.wait(wait.usage, now).map_err(permanent)?;
            let waiting = Waiting {
                state: wait.state,
                since: now,
                deadline,
                next_check: now,
                checks: 0,
                failed_checks: 0,
                scheduled: 0,
            };
            stored.output = wait.progress;
            stored.waiting = Some(waiting);
            if let Some(correlation) = &wait.correlation {
                ops.push(crate::vendor_webhooks::correlation_write(
                    connection.provider_key().as_str(),
                    correlation,
                    run_id,
                    max_wait + CORRELATION_MARGIN,
                ));
            }
            ops.push(schedule_check(
                kit,
                tenant,
                &mut stored,
                wait.after,
                now,
                traceparent,
            )?);
            tracing::info!(tenant = %tenant, run = %run_id, "run waits for its vendor");
        }
        Err(Attempted::Internal(why)) if !last_delivery => {
            // Put the run back so the redelivery starts a fresh attempt at once.
            stored
                .run
                .retry(RedactedText::from_redacted(why), now)
                .map_err(permanent)?;
            let write = run_write(&stored, etag)?;
            let _ = kit
                .ctx
                .documents
                .batch(kit.app.slug, tenant.as_str(), vec![write])
                .await;
            return Err(transient(why));
        }
        Err(Attempted::Internal(why)) => {
            let e = crate::provider::fail(FailureClassification::Transient, why);
            record_failure(&mut stored, tenant, &e, true, now, &mut ops, &mut events)?;
        }
        Err(Attempted::Failed(e)) => {
            let retry = e.retryable && (attempt_number as u32) < kit.max_run_attempts;
            if retry {
                let delay = run_retry_delay(attempt_number as u32, e.failure.retry_after);
                let at = now + TimeDelta::from_std(delay).unwrap_or(TimeDelta::seconds(30));
                stored
                    .run
                    .retry(RedactedText::from_redacted(e.failure.message.clone()), now)
                    .map_err(permanent)?;
                let next = command(
                    kit,
                    tenant.as_str(),
                    run_id,
                    Some(format!("retry-{run_id}-{attempt_number}")),
                    traceparent.cloned(),
                )
                .map_err(permanent)?;
                ops.push(outbox::outbox_write_at(
                    &next,
                    &app_context::runs_queue(kit.app.slug),
                    Some(at),
                ));
                tracing::info!(tenant = %tenant, run = %run_id, class = ?e.class(), retry_at = %at, "run will be retried");
            } else {
                record_failure(&mut stored, tenant, &e, false, now, &mut ops, &mut events)?;
                tracing::info!(tenant = %tenant, run = %run_id, class = ?e.class(), "run failed");
            }
        }
    }
    ops.insert(0, run_write(&stored, etag)?);
    commit(kit, tenant, ops, &events, traceparent)
        .await
        .map_err(transient)?;
    if stored.run.status().is_terminal() {
        kit.signals.finished(&run_id);
    }
    Ok(stored)
}

/// The success of a run: the output kept (inline, or in blob storage when large), the
/// summary, `succeeded` + `IntegrationRunCompleted`, and the vendor message id's index.
#[allow(clippy::too_many_arguments)]
pub(crate) async fn succeed(
    kit: &Kit,
    tenant: &TenantId,
    stored: &mut StoredRun,
    connection: &IntegrationConnection,
    done: Done<serde_json::Value>,
    now: DateTime<Utc>,
    ops: &mut Vec<WriteOp>,
    events: &mut Vec<domain::DomainEvent>,
) -> Result<(), InvocationError> {
    let run_id = stored.run.id();
    stored.served_by = Some(connection.id());
    stored.served_by_provider = Some(connection.provider_key().as_str().to_owned());
    let encoded = serde_json::to_vec(&done.output).map_err(permanent)?;
    let mut summary = done
        .summary
        .unwrap_or_else(|| crate::runs::summary_of(&done.output, encoded.len()));
    if let serde_json::Value::Object(m) = &mut summary {
        m.insert("provider".into(), json!(connection.provider_key()));
        m.insert("connectionId".into(), json!(connection.id()));
    }
    stored.waiting = None;
    if encoded.len() <= INLINE_OUTPUT {
        stored.output = Some(done.output);
        stored.output_ref = None;
    } else {
        // Written before the run's commit: a crash in between leaves a blob that the next
        // success overwrites, never a run pointing at nothing.
        let path = crate::runs::output_blob(tenant.as_str(), &run_id);
        kit.ctx
            .blobs
            .put(
                crate::OUTPUT_CONTAINER,
                &path,
                bytes::Bytes::from(encoded),
                ports::PutOptions {
                    content_type: Some("application/json".into()),
                    if_none_match: false,
                },
            )
            .await
            .map_err(transient)?;
        stored.output = None;
        stored.output_ref = Some(format!("{}/{path}", crate::OUTPUT_CONTAINER));
    }
    events.extend(
        stored
            .run
            .succeed(Some(summary), done.usage, now)
            .map_err(permanent)?,
    );
    ops.extend(
        done.creates
            .into_iter()
            .map(|(id, body)| WriteOp::create(id, body)),
    );
    if let (Some(after), Some(record)) = (done.reconcile_after, &done.vendor_message_id) {
        let at = now + TimeDelta::from_std(after).unwrap_or(TimeDelta::zero());
        ops.push(
            crate::records::schedule(
                kit,
                tenant,
                crate::records::ReconcileRequested {
                    connection_id: connection.id(),
                    record_id: record.clone(),
                    reason: crate::records::ReconcileReason::Run { run_id },
                },
                &format!("run-{run_id}"),
                at,
                None,
            )
            .map_err(permanent)?,
        );
    }
    if let Some(message_id) = &done.vendor_message_id {
        ops.push(WriteOp::upsert(
            vendor_message_doc_id(connection.provider_key().as_str(), message_id),
            json!({"docType": VENDOR_MESSAGE, "runId": run_id, "messageId": message_id}),
        ));
        if kit
            .provider(connection.provider_key().as_str())
            .is_some_and(|p| p.polls_receipts())
        {
            ops.push(crate::poll::watch(connection, run_id, message_id, now));
        }
    }
    tracing::info!(tenant = %tenant, run = %run_id, "run succeeded");
    Ok(())
}

/// Schedules the next look at a waiting run: a command on `runs-<slug>` due after `after`
/// (never past the deadline), its id fixed per check so a repeated schedule is one message.
fn schedule_check(
    kit: &Kit,
    tenant: &TenantId,
    stored: &mut StoredRun,
    after: Duration,
    now: DateTime<Utc>,
    traceparent: Option<&TraceParent>,
) -> Result<WriteOp, InvocationError> {
    let run_id = stored.run.id();
    let waiting = stored
        .waiting
        .as_mut()
        .ok_or_else(|| permanent("a waiting run without its state"))?;
    let after = after.clamp(MIN_CHECK_INTERVAL, kit.max_check_interval);
    let at =
        (now + TimeDelta::from_std(after).unwrap_or(TimeDelta::seconds(30))).min(waiting.deadline);
    waiting.next_check = at;
    waiting.scheduled += 1;
    let number = waiting.scheduled;
    let next = command(
        kit,
        tenant.as_str(),
        run_id,
        Some(format!("resume-{run_id}-{number}")),
        traceparent.cloned(),
    )
    .map_err(permanent)?;
    Ok(outbox::outbox_write_at(
        &next,
        &app_context::runs_queue(kit.app.slug),
        Some(at),
    ))
}

/// How much longer than a run may wait its correlation index is kept.
const CORRELATION_MARGIN: Duration = Duration::from_secs(24 * 3600);

/// The shortest and longest waits between two looks at a waiting run, whatever the
/// provider asks.
const MIN_CHECK_INTERVAL: Duration = Duration::from_millis(100);
pub(crate) const MAX_CHECK_INTERVAL: Duration = Duration::from_secs(3600);

/// A waiting run's scheduled look: ask the provider where the vendor's work stands and
/// apply the answer (done, still waiting, failed, or past the operation's maximum wait).
async fn resume(
    kit: &Kit,
    tenant: &TenantId,
    event: &Envelope,
    mut stored: StoredRun,
    etag: ETag,
) -> Result<(), InvocationError> {
    let now = Utc::now();
    let Some(waiting) = stored.waiting.clone() else {
        return Err(permanent("a waiting run without its state"));
    };
    // An early duplicate of an older check: the current one is scheduled.
    if now + TimeDelta::milliseconds(50) < waiting.next_check {
        return Ok(());
    }
    let traceparent = event.traceparent().cloned();
    let result = check(kit, tenant, &stored, &waiting.state, traceparent.as_ref()).await;
    let run_id = stored.run.id();
    let mut ops = Vec::new();
    let mut events = Vec::new();
    match result {
        Ok((connection, Step::Done(done))) => {
            succeed(
                kit,
                tenant,
                &mut stored,
                &connection,
                done,
                now,
                &mut ops,
                &mut events,
            )
            .await?;
        }
        Ok((connection, Step::Wait(wait))) if now < waiting.deadline => {
            stored.run.add_usage(wait.usage, now);
            if let Some(correlation) = &wait.correlation {
                let left = (waiting.deadline - now).to_std().unwrap_or_default();
                ops.push(crate::vendor_webhooks::correlation_write(
                    connection.provider_key().as_str(),
                    correlation,
                    run_id,
                    left + CORRELATION_MARGIN,
                ));
            }
            if let Some(w) = stored.waiting.as_mut() {
                w.state = wait.state;
                w.checks += 1;
                w.failed_checks = 0;
            }
            if wait.progress.is_some() {
                stored.output = wait.progress;
            }
            ops.push(schedule_check(
                kit,
                tenant,
                &mut stored,
                wait.after,
                now,
                traceparent.as_ref(),
            )?);
        }
        Ok((_, Step::Wait(_))) => {
            let e = timed_out(&waiting);
            record_failure(&mut stored, tenant, &e, false, now, &mut ops, &mut events)?;
            tracing::info!(tenant = %tenant, run = %run_id, "a waiting run timed out");
        }
        Err(Attempted::Internal(why)) => return Err(transient(why)),
        Err(Attempted::Failed(e)) if e.retryable && now < waiting.deadline => {
            let failed = waiting.failed_checks + 1;
            if let Some(w) = stored.waiting.as_mut() {
                w.failed_checks = failed;
            }
            let delay = run_retry_delay(failed, e.failure.retry_after);
            tracing::info!(tenant = %tenant, run = %run_id, class = ?e.class(), "a waiting run's check failed; it will look again");
            ops.push(schedule_check(
                kit,
                tenant,
                &mut stored,
                delay,
                now,
                traceparent.as_ref(),
            )?);
        }
        Err(Attempted::Failed(e)) => {
            let e = if now < waiting.deadline {
                e
            } else {
                timed_out(&waiting)
            };
            record_failure(&mut stored, tenant, &e, false, now, &mut ops, &mut events)?;
            tracing::info!(tenant = %tenant, run = %run_id, class = ?e.class(), "a waiting run failed");
        }
    }
    if stored.run.status().is_terminal() {
        stored.waiting = None;
    }
    ops.insert(0, run_write(&stored, etag)?);
    match commit(kit, tenant, ops, &events, traceparent.as_ref()).await {
        Ok(()) => {
            if stored.run.status().is_terminal() {
                kit.signals.finished(&run_id);
            }
            Ok(())
        }
        // A webhook or another check moved the run first: what it applied stands.
        Err(PortError::PreconditionFailed) => Ok(()),
        Err(e) => Err(transient(e)),
    }
}

fn timed_out(waiting: &Waiting) -> CallError {
    crate::provider::fail(
        FailureClassification::Timeout,
        format!(
            "the vendor had not finished after {} s, the operation's maximum wait",
            (waiting.deadline - waiting.since).num_seconds()
        ),
    )
}

/// One look at a waiting run through the connection that accepted its work.
async fn check(
    kit: &Kit,
    tenant: &TenantId,
    stored: &StoredRun,
    state: &serde_json::Value,
    traceparent: Option<&TraceParent>,
) -> Result<(IntegrationConnection, ErasedStep), Attempted> {
    let run = &stored.run;
    let connection_id = stored.served_by.unwrap_or(run.connection_id());
    let connection = run_connection(
        kit,
        tenant,
        &connection_id,
        "the connection that accepted the run no longer exists",
    )
    .await?;
    let provider_key = connection.provider_key().as_str();
    let (Some(provider), Some(handler)) = (
        kit.provider(provider_key),
        kit.handler(provider_key, run.operation().as_str()),
    ) else {
        return Err(Attempted::Failed(crate::provider::fail(
            FailureClassification::Validation,
            "the connection's provider no longer performs the operation",
        )));
    };
    let input = read_input(kit, tenant.as_str(), &run.id())
        .await
        .map_err(|_| Attempted::Internal("the run's input could not be read"))?;
    let resolved = credential_of(kit, tenant, &connection).await?;
    let key = crate::call_key(tenant.as_str(), provider.key(), &connection.id());
    let idempotency_key = run.id().to_string();
    let reach = crate::private_endpoints::reach(kit, tenant.as_str(), connection.config())
        .await
        .map_err(Attempted::Failed)?;
    let call = ProviderCall {
        pipeline: &kit.pipeline,
        http: &reach.http,
        guard: &reach.guard,
        key: &key,
        config: connection.config(),
        credential: &resolved.material,
        traceparent,
        idempotency_key: Some(&idempotency_key),
        max_attempts: None,
        rate_limit: kit.rate_limit(provider.key()).await,
        receipt_url: None,
        tokens: &kit.tokens,
    };
    match handler.resume(&call, &input, state).await {
        Ok(step) => Ok((connection, step)),
        Err(e) => {
            let message = redact(&e, &resolved.material);
            Err(Attempted::Failed(CallError {
                failure: VendorFailure {
                    message: message.as_str().to_owned(),
                    ..e.failure
                },
                ..e
            }))
        }
    }
}

/// The run's one `IntegrationFailure`: the run fails (or is dead-lettered) with it.
pub(crate) fn record_failure(
    stored: &mut StoredRun,
    tenant: &TenantId,
    e: &CallError,
    dead_letter: bool,
    now: DateTime<Utc>,
    ops: &mut Vec<WriteOp>,
    events: &mut Vec<domain::DomainEvent>,
) -> Result<(), InvocationError> {
    let failure_id = FailureId::new();
    let (failure, event) = IntegrationFailure::record(
        NewFailure {
            tenant_id: tenant.clone(),
            id: failure_id,
            subject: FailureSubject::Run(stored.run.id()),
            provider_key: Some(stored.run.provider_key().clone()),
            classification: e.class(),
            vendor_status: e.failure.vendor_status,
            vendor_code: e
                .failure
                .vendor_code
                .as_deref()
                .map(RedactedText::from_redacted),
            message: RedactedText::from_redacted(e.failure.message.clone()),
            retryable: e.retryable,
            dead_lettered: dead_letter,
            trace_id: Some(stored.run.trace_id()),
        },
        now,
    );
    if dead_letter {
        stored.run.dead_letter(&failure, now).map_err(permanent)?;
    } else {
        stored.run.fail(&failure, now).map_err(permanent)?;
    }
    ops.push(WriteOp::create(
        failure_doc_id(&failure_id),
        api_kit::Aggregates::document(&failure, FAILURE).map_err(|_| permanent("failure"))?,
    ));
    events.push(event);
    Ok(())
}

/// An `IntegrationFailure` about `subject` outside a run's own outcome (a record the app
/// will not apply): its document, for the failure ledger, and its event.
pub(crate) fn standalone_failure(
    tenant: &TenantId,
    subject: FailureSubject,
    provider_key: Option<domain::ProviderKey>,
    class: domain::FailureClassification,
    message: String,
    now: DateTime<Utc>,
) -> Result<(WriteOp, domain::DomainEvent), InvocationError> {
    let failure_id = FailureId::new();
    let (failure, event) = IntegrationFailure::record(
        NewFailure {
            tenant_id: tenant.clone(),
            id: failure_id,
            subject,
            provider_key,
            classification: class,
            vendor_status: None,
            vendor_code: None,
            message: RedactedText::from_redacted(message),
            retryable: false,
            dead_lettered: false,
            trace_id: None,
        },
        now,
    );
    let doc = api_kit::Aggregates::document(&failure, FAILURE).map_err(|_| permanent("failure"))?;
    Ok((WriteOp::create(failure_doc_id(&failure_id), doc), event))
}

/// The delay before a run's next try: full jitter under 2, 4, 8, ... seconds (capped at 5
/// minutes), and never sooner than the vendor asked.
fn run_retry_delay(attempt: u32, vendor_hint: Option<Duration>) -> Duration {
    let ceiling = Duration::from_secs(1u64 << attempt.min(8)).min(Duration::from_secs(300));
    let jittered = Duration::from_millis(
        rand::thread_rng().gen_range(0..=u64::try_from(ceiling.as_millis()).unwrap_or(300_000)),
    );
    jittered.max(vendor_hint.unwrap_or_default())
}

/// The registry's rotation asks: does the connection work with the pending secret? The
/// answer goes back through the outbox with a fixed id per rotation, so a redelivered
/// request answers once.
async fn retest(
    kit: &Kit,
    tenant: &TenantId,
    event: &Envelope,
    request: RetestRequested,
) -> Result<(), InvocationError> {
    let (outcome, detail) = match retest_outcome(kit, tenant, &request).await? {
        Ok(()) => (RetestOutcome::Succeeded, None),
        Err((outcome, detail)) => (outcome, Some(detail)),
    };
    let reply = RetestCompleted {
        rotation_id: request.rotation_id,
        outcome,
        detail,
    };
    let envelope = Envelope::builder(
        kit.app.source,
        app_context::commands::RETEST_COMPLETED,
        tenant.as_str(),
    )
    .id(format!("retest-{}", request.rotation_id))
    .subject(format!("credentials/{}", request.credential_id))
    .caused_by(event)
    .json_data(&reply)
    .map_err(permanent)?;
    let write = outbox::outbox_write(&envelope, &request.reply_to);
    match commit(kit, tenant, vec![write], &[], None).await {
        Ok(()) | Err(PortError::AlreadyExists) => Ok(()),
        Err(e) => Err(transient(e)),
    }
}

async fn retest_outcome(
    kit: &Kit,
    tenant: &TenantId,
    request: &RetestRequested,
) -> Result<Result<(), (RetestOutcome, String)>, InvocationError> {
    let not_supported = |why: &str| Ok(Err((RetestOutcome::NotSupported, why.to_owned())));
    let Some(provider) = kit.provider(request.provider_key.as_str()) else {
        return not_supported("this app does not serve the credential's provider");
    };
    let Some(connection_id) = request.connection_id else {
        return not_supported("the credential belongs to no connection");
    };
    let connection = match kit
        .store
        .read::<IntegrationConnection>(
            &kit.ctx,
            tenant.as_str(),
            &connection_doc_id(&connection_id),
        )
        .await
    {
        Ok(Some((c, _))) => c,
        // A connection the tenant does not have (never made, deleted, or another tenant's
        // id) cannot vouch for the new secret: the re-test fails rather than promote it
        // untested.
        Ok(None) => {
            return Ok(Err((
                RetestOutcome::Failed,
                "the credential's connection does not exist".to_owned(),
            )));
        }
        Err(_) => return Err(transient("the connection could not be read")),
    };
    if connection.credential_id() != request.credential_id {
        return Ok(Err((
            RetestOutcome::Failed,
            "the credential's connection uses another credential".to_owned(),
        )));
    }
    let kind = match kit
        .resolver
        .resolve(tenant.as_str(), &request.credential_id)
        .await
    {
        Ok(r) => r.kind,
        Err(e) => return Ok(Err((RetestOutcome::Failed, e.to_string()))),
    };
    let material = match kit.resolver.material(kind, &request.pending_secret).await {
        Ok(m) => m,
        Err(custody::ResolveError::Port(e)) => return Err(transient(e)),
        Err(e) => return Ok(Err((RetestOutcome::Failed, e.to_string()))),
    };
    match crate::connections::test(
        kit,
        tenant,
        &connection_id,
        provider.as_ref(),
        connection.config(),
        &material,
    )
    .await
    {
        Ok(_) => Ok(Ok(())),
        Err(e) => Ok(Err((
            RetestOutcome::Failed,
            redact(&e, &material).as_str().to_owned(),
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn run_retry_delays_grow_and_respect_the_vendor() {
        for attempt in 1..20 {
            let d = run_retry_delay(attempt, None);
            assert!(d <= Duration::from_secs(300));
            assert!(d <= Duration::from_secs(1u64 << attempt.min(8)));
        }
        let d = run_retry_delay(1, Some(Duration::from_secs(42)));
        assert_eq!(d, Duration::from_secs(42));
    }
}
