//! `DeliverWebhook` (Service Bus, `webhook-deliveries`): one attempt of one delivery.
//! `DeliverOrderedWebhook` (`webhook-deliveries-ordered`, sessions) does the same for ordered
//! subscriptions; `DeliverWebhook` hands their attempts on to it (see `ordering.rs`).
//!
//! 1. The message names `(delivery, cycle, attempt)`. Unless that attempt is the delivery's
//!    next one (the delivery in flight, in that cycle, with `attempt - 1` attempts recorded),
//!    the message is a redelivery or stale and does nothing.
//! 2. The subscription's signing secrets (the current one, plus the previous during a
//!    rotation overlap) are resolved through custody; the payload is read from blob storage.
//! 3. The payload is POSTed through the SSRF-guarded client with `webhook-id` = the delivery
//!    id (the same on every attempt and replay), `webhook-timestamp` and `webhook-signature`.
//! 4. One batch, guarded by the etags of the delivery and the subscription, records the
//!    attempt and its consequences: 2xx → `delivered` (`WebhookDelivered`); 410 → the
//!    subscription is disabled (`WebhookSubscriptionDisabled`) and the delivery dead-lettered;
//!    any other failure → the subscription's failure streak grows (and it is disabled if it
//!    has failed for longer than `WEBHOOK_DISABLE_AFTER_SECONDS`), and either the next
//!    attempt is queued, scheduled (`Retry-After` or the jittered schedule), or, the schedule
//!    exhausted, the delivery is dead-lettered with an `IntegrationFailure`
//!    (`IntegrationFailed`). A conflict re-reads and re-applies the same observation, so an
//!    endpoint is not called again because of a concurrent change. For an ordered delivery
//!    that ends (delivered or dead-lettered), the same batch releases the next delivery of
//!    its lane; a retry keeps the lane held, so nothing behind it is attempted meanwhile.
//!
//! The endpoint may see an attempt twice only if the process dies between its answer and
//! the commit; it then gets the same `webhook-id`, which is what Standard Webhooks receivers
//! de-duplicate on.

use std::sync::Arc;
use std::time::{Duration, Instant};

use api_kit::ApiError;
use app_context::AppContext;
use bytes::Bytes;
use chrono::{DateTime, TimeDelta, Utc};
use domain::{
    CredentialKind, DeliveryAttemptReport, DeliveryStatus, DisableReason, FailureClassification,
    FailureId, FailureSubject, IntegrationFailure, NewFailure, RedactedText, SubscriptionStatus,
    TenantId, WebhookDelivery, WebhookSubscription,
};
use envelope::Envelope;
use functions_runtime::{Invocation, InvocationError, InvocationResponse};
use ports::WriteOp;
use secrecy::ExposeSecret as _;

use super::ordering::{self, lane_of};
use super::retry::{Outcome, Schedule, retry_after};
use super::{
    AttemptDue, DELIVERY_ATTEMPT, FAILURE, StoredDelivery, StoredSubscription, attempt_write,
    commit, delivery_write, document, read_delivery, read_subscription, subscription_write,
};
use crate::settings::Settings;

/// The bus's max delivery count (design §7): on the last delivery of a message that cannot
/// be processed, the delivery is dead-lettered rather than left in flight forever.
const MAX_DELIVERY_COUNT: u32 = 10;
/// How much of an endpoint's error body is kept on the attempt.
const ERROR_SNIPPET: usize = 200;

/// What the function needs, built once per app.
pub(crate) struct Deliverer {
    ctx: AppContext,
    resolver: custody::Resolver,
    guard: netguard::Guard,
    client: reqwest::Client,
    timeout: Duration,
    schedule: Schedule,
    disable_after: TimeDelta,
    pacing: super::pacing::Pacing,
}

impl Deliverer {
    pub(crate) fn new(ctx: &AppContext, settings: &Settings) -> Arc<Self> {
        let d = &settings.delivery;
        Arc::new(Deliverer {
            resolver: custody::Resolver::new(ctx.documents.clone(), ctx.secrets.clone()),
            client: settings.guard.client(d.timeout),
            guard: settings.guard.clone(),
            timeout: d.timeout,
            schedule: d.schedule.clone(),
            disable_after: TimeDelta::from_std(d.disable_after).unwrap_or(TimeDelta::days(5)),
            pacing: super::pacing::Pacing::new(d.breaker_threshold, d.breaker_open),
            ctx: ctx.clone(),
        })
    }
}

/// What happened to this attempt, observed once and then recorded (possibly after re-reads).
#[derive(Debug)]
enum Attempted {
    /// The endpoint was called (or the guard refused its address).
    Made {
        outcome: Outcome,
        report: DeliveryAttemptReport,
    },
    /// No call was made, and none will be: the delivery is dead-lettered.
    NotMade {
        class: FailureClassification,
        reason: &'static str,
    },
}

/// Which queue an invocation's message came from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Via {
    /// `webhook-deliveries`: unordered attempts are made; ordered ones are handed on.
    Queue,
    /// `webhook-deliveries-ordered`, in the lane's session.
    Session,
}

/// `DeliverWebhook`, on `webhook-deliveries`.
pub(crate) async fn deliver_webhook(
    d: Arc<Deliverer>,
    inv: Invocation,
) -> Result<InvocationResponse, InvocationError> {
    run(d, inv, Via::Queue).await
}

/// `DeliverOrderedWebhook`, on the session queue `webhook-deliveries-ordered`.
pub(crate) async fn deliver_ordered_webhook(
    d: Arc<Deliverer>,
    inv: Invocation,
) -> Result<InvocationResponse, InvocationError> {
    run(d, inv, Via::Session).await
}

async fn run(
    d: Arc<Deliverer>,
    inv: Invocation,
    via: Via,
) -> Result<InvocationResponse, InvocationError> {
    let msg = inv.service_bus()?;
    let event = Envelope::parse(&msg.body)
        .map_err(|e| InvocationError::permanent(format!("not an envelope: {e}")))?;
    if event.event_type() != DELIVERY_ATTEMPT {
        return Err(InvocationError::permanent(format!(
            "unexpected message type {}",
            event.event_type()
        )));
    }
    let tenant = TenantId::parse(event.tenant_id())
        .map_err(|e| InvocationError::permanent(e.to_string()))?;
    let due: AttemptDue = event
        .data_json()
        .map_err(|e| InvocationError::permanent(e.to_string()))?;
    let done = match (&due.session, via) {
        (Some(session), Via::Queue) => hand_off(&d, msg, &tenant, session).await,
        _ => attempt(&d, &tenant, &due).await,
    };
    match done {
        Ok(()) => Ok(InvocationResponse::default()),
        Err(e) if msg.delivery_count >= MAX_DELIVERY_COUNT => {
            tracing::error!(delivery = %due.delivery_id, error = ?e, "a delivery could not be processed on the message's last delivery; dead-lettering it");
            let gave_up = Attempted::NotMade {
                class: FailureClassification::Transient,
                reason: "the delivery could not be prepared (its secret or payload was unreadable)",
            };
            record(
                &d,
                &tenant,
                &due,
                &gave_up,
                Utc::now(),
                FailureId::new(),
                None,
            )
            .await
            .map_err(|e| InvocationError::transient(format!("{e:?}")))?;
            Ok(InvocationResponse::default())
        }
        Err(e) => Err(InvocationError::transient(format!("{e:?}"))),
    }
}

/// Moves an ordered attempt, committed through the outbox to `webhook-deliveries` (the
/// outbox sets no `SessionId`), to its lane's session on `webhook-deliveries-ordered`: the
/// same bytes and `MessageId`, so a repeated hand-off is dropped by duplicate detection. The
/// message is settled only after the send, so a failed hand-off is redelivered, not lost.
async fn hand_off(
    d: &Deliverer,
    msg: &functions_runtime::triggers::ServiceBusMessage,
    tenant: &TenantId,
    session: &str,
) -> Result<(), ApiError> {
    let message = ports::OutgoingMessage::new(msg.message_id.clone(), msg.body.clone())
        .content_type("application/cloudevents+json; charset=utf-8")
        .subject(DELIVERY_ATTEMPT)
        .property("tenantId", tenant.as_str())
        .session_id(session);
    d.ctx
        .bus
        .send(app_context::WEBHOOK_DELIVERIES_ORDERED_QUEUE, vec![message])
        .await
        .map_err(|e| ApiError::from_port(e, "conflict"))
}

/// Whether `due` is the delivery's next attempt.
fn is_due(delivery: &WebhookDelivery, due: &AttemptDue) -> bool {
    matches!(
        delivery.status(),
        DeliveryStatus::Pending | DeliveryStatus::Failed
    ) && delivery.cycle() == due.cycle
        && delivery.attempts_in_cycle().saturating_add(1) == due.attempt
}

async fn attempt(d: &Deliverer, tenant: &TenantId, due: &AttemptDue) -> Result<(), ApiError> {
    let ctx = &d.ctx;
    let Some((stored, delivery_etag)) =
        read_delivery(ctx, tenant.as_str(), &due.delivery_id).await?
    else {
        tracing::warn!(delivery = %due.delivery_id, "a message for an unknown delivery; ignored");
        return Ok(());
    };
    let delivery = &stored.delivery;
    if !is_due(delivery, due) {
        tracing::debug!(delivery = %due.delivery_id, cycle = due.cycle, attempt = due.attempt, "attempt recorded already or stale; ignored");
        return Ok(());
    }
    if ordering::waits(ctx, tenant, &stored).await? {
        // Its lane releases it when the delivery before it ends.
        tracing::debug!(delivery = %due.delivery_id, "not its turn in its lane; ignored");
        return Ok(());
    }
    let session = lane_of(&stored).map(|l| l.session_id());
    let read = read_subscription(ctx, tenant.as_str(), &delivery.subscription_id()).await?;
    let subscription = read
        .as_ref()
        .map(|(s, _)| s)
        .filter(|s| s.subscription.status() == SubscriptionStatus::Active);
    let attempted = match subscription {
        None => Attempted::NotMade {
            class: FailureClassification::Unprocessable,
            reason: "the subscription is disabled; the delivery was not attempted",
        },
        Some(s) => {
            let id = s.subscription.id();
            let rate = s.subscription.rate_limit_per_second().map(|r| r.get());
            if let Some(wait) = d.pacing.admit(id, rate, Instant::now()) {
                return defer(d, tenant, due, session.as_deref(), wait).await;
            }
            let attempted = match call(d, s, &stored).await {
                Ok(attempted) => attempted,
                Err(e) => {
                    // No verdict on the endpoint: a probe's turn goes to the next caller.
                    d.pacing.release(id);
                    return Err(e);
                }
            };
            let success = matches!(&attempted, Attempted::Made { outcome, .. } if matches!(outcome, super::retry::Outcome::Delivered(_)));
            d.pacing.observe(id, success, Instant::now());
            attempted
        }
    };
    // What was read before the call is what the record starts from: no second read unless
    // something changed meanwhile (then the etags say so and the loop reads again).
    let before = Some((stored, delivery_etag, read));
    record(
        d,
        tenant,
        due,
        &attempted,
        Utc::now(),
        FailureId::new(),
        before,
    )
    .await
}

/// Holds an attempt back (rate limit or open breaker): the same attempt comes back after
/// `wait` as a new scheduled message (in its lane's session for an ordered delivery, which
/// keeps holding the lane); nothing is recorded, the endpoint is not called.
async fn defer(
    d: &Deliverer,
    tenant: &TenantId,
    due: &AttemptDue,
    session: Option<&str>,
    wait: Duration,
) -> Result<(), ApiError> {
    let at = Utc::now() + TimeDelta::from_std(wait).unwrap_or(TimeDelta::seconds(1));
    let id = format!(
        "{}.{}.{}.after.{}",
        due.delivery_id,
        due.cycle,
        due.attempt,
        at.timestamp_millis()
    );
    let env = super::attempt_envelope(tenant, due, id.clone())?;
    let mut message = ports::OutgoingMessage::new(id, env.to_vec())
        .content_type("application/cloudevents+json; charset=utf-8")
        .subject(super::DELIVERY_ATTEMPT)
        .property("tenantId", tenant.as_str())
        .scheduled_at(at);
    let queue = match session {
        Some(s) => {
            message = message.session_id(s);
            app_context::WEBHOOK_DELIVERIES_ORDERED_QUEUE
        }
        None => app_context::WEBHOOK_DELIVERIES_QUEUE,
    };
    d.ctx
        .bus
        .send(queue, vec![message])
        .await
        .map_err(|e| ApiError::from_port(e, "conflict"))?;
    tracing::debug!(delivery = %due.delivery_id, wait_ms = wait.as_millis() as u64, "attempt held back");
    Ok(())
}

/// Resolves the secrets, reads the payload and makes the call.
async fn call(
    d: &Deliverer,
    stored: &StoredSubscription,
    target: &StoredDelivery,
) -> Result<Attempted, ApiError> {
    let delivery = &target.delivery;
    let now = Utc::now();
    let mut secrets = Vec::new();
    let mut known = Vec::new();
    for reference in stored.subscription.signing_secrets(now) {
        let material = d
            .resolver
            .material(CredentialKind::HmacSecret, reference)
            .await
            .map_err(|e| {
                tracing::error!(subscription = %stored.subscription.id(), error = %e, "the signing secret cannot be read");
                ApiError::Unavailable
            })?;
        let raw = material
            .get("secret")
            .map(|s| s.expose_secret().to_owned())
            .ok_or_else(|| ApiError::internal("a signing secret without its field"))?;
        secrets.push(webhooks::Secret::standard_webhooks(&raw).map_err(ApiError::internal)?);
        known.push(raw);
    }
    let body = match &target.payload {
        Some(inline) => Bytes::from(inline.clone()),
        None => {
            let (container, name) = delivery
                .payload_ref()
                .as_str()
                .split_once('/')
                .ok_or_else(|| ApiError::internal("a payload reference without a container"))?;
            d.ctx
                .blobs
                .get(container, name)
                .await
                .map_err(|e| ApiError::from_port(e, "conflict"))?
                .0
        }
    };
    let known: Vec<&str> = known.iter().map(String::as_str).collect();
    Ok(send(
        d,
        stored.subscription.url().as_str(),
        &secrets,
        &known,
        delivery,
        body,
    )
    .await)
}

/// The error text of a failed call: the error and its causes, without the URL (which may
/// carry a token), redacted, short.
fn error_text(e: reqwest::Error, known: &[&str]) -> RedactedText {
    let e = e.without_url();
    let mut text = e.to_string();
    let mut source = std::error::Error::source(&e);
    while let Some(s) = source {
        text.push_str(": ");
        text.push_str(&s.to_string());
        source = s.source();
    }
    let short: String = text.chars().take(ERROR_SNIPPET).collect();
    RedactedText::redact(&short, known)
}

/// Whether a failed call was the SSRF guard refusing the address at connect time.
fn refused_by_guard(e: &reqwest::Error) -> bool {
    let mut source: Option<&(dyn std::error::Error + 'static)> = Some(e);
    while let Some(s) = source {
        if s.downcast_ref::<netguard::Refused>().is_some()
            || s.to_string().contains("otherwise internal address")
        {
            return true;
        }
        source = s.source();
    }
    false
}

async fn send(
    d: &Deliverer,
    url: &str,
    secrets: &[webhooks::Secret],
    known: &[&str],
    delivery: &WebhookDelivery,
    body: Bytes,
) -> Attempted {
    let refused = |text: String| Attempted::Made {
        outcome: Outcome::Refused,
        report: DeliveryAttemptReport {
            status_code: None,
            latency_ms: None,
            error: Some(RedactedText::redact(&text, known)),
        },
    };
    let parsed = match reqwest::Url::parse(url) {
        Ok(u) => u,
        Err(e) => return refused(format!("the endpoint URL is unusable: {e}")),
    };
    if let Err(e) = d.guard.check_url(&parsed) {
        return refused(format!("refused by the SSRF guard: {e}"));
    }
    let msg_id = delivery.id().to_string();
    let headers = match webhooks::outbound::signed_headers(
        secrets.iter(),
        &msg_id,
        Utc::now().timestamp(),
        &body,
    ) {
        Ok(h) => h,
        Err(e) => return refused(format!("the delivery cannot be signed: {e}")),
    };
    let started = Instant::now();
    let mut headers = headers;
    // The endpoint sees the trace this delivery runs in, when there is one.
    telemetry::inject_trace_headers(&mut headers);
    let result = d
        .client
        .post(parsed)
        .headers(headers)
        .header(reqwest::header::CONTENT_TYPE, "application/json")
        .header(
            reqwest::header::USER_AGENT,
            concat!("integration-platform-webhooks/", env!("CARGO_PKG_VERSION")),
        )
        .body(body)
        .send()
        .await;
    let latency = |started: Instant| u64::try_from(started.elapsed().as_millis()).ok();
    match result {
        Ok(response) => {
            let code = response.status().as_u16();
            let wait = response
                .headers()
                .get(reqwest::header::RETRY_AFTER)
                .and_then(|v| v.to_str().ok())
                .and_then(|v| retry_after(v, Utc::now()));
            let outcome = Outcome::from_status(code, wait);
            let error = match outcome {
                Outcome::Delivered(_) => None,
                _ => {
                    // The start of the endpoint's answer, bounded: enough to say why.
                    let mut response = response;
                    let snippet = match response.chunk().await {
                        Ok(Some(chunk)) => String::from_utf8_lossy(
                            chunk.get(..ERROR_SNIPPET.min(chunk.len())).unwrap_or(&[]),
                        )
                        .into_owned(),
                        _ => String::new(),
                    };
                    let text = if snippet.trim().is_empty() {
                        format!("HTTP {code}")
                    } else {
                        format!("HTTP {code}: {}", snippet.trim())
                    };
                    Some(RedactedText::redact(
                        &text.chars().take(ERROR_SNIPPET).collect::<String>(),
                        known,
                    ))
                }
            };
            Attempted::Made {
                outcome,
                report: DeliveryAttemptReport {
                    status_code: Some(code),
                    latency_ms: latency(started),
                    error,
                },
            }
        }
        Err(e) => {
            let outcome = if e.is_timeout() {
                Outcome::Timeout
            } else if refused_by_guard(&e) {
                Outcome::Refused
            } else {
                Outcome::Connection
            };
            let error = if outcome == Outcome::Timeout {
                RedactedText::from_redacted(format!(
                    "no answer within {} s",
                    d.timeout.as_secs_f64()
                ))
            } else {
                error_text(e, known)
            };
            Attempted::Made {
                outcome,
                report: DeliveryAttemptReport {
                    status_code: None,
                    latency_ms: latency(started),
                    error: Some(error),
                },
            }
        }
    }
}

/// How a delivery ends when it is dead-lettered.
fn failure_for(
    tenant: &TenantId,
    delivery: &WebhookDelivery,
    id: FailureId,
    class: FailureClassification,
    vendor_status: Option<u16>,
    message: String,
    now: DateTime<Utc>,
) -> (IntegrationFailure, domain::DomainEvent) {
    IntegrationFailure::record(
        NewFailure {
            tenant_id: tenant.clone(),
            id,
            subject: FailureSubject::Delivery(delivery.id()),
            provider_key: None,
            classification: class,
            vendor_status,
            vendor_code: None,
            message: RedactedText::from_redacted(message),
            retryable: class.is_retryable_by_default(),
            dead_lettered: true,
            trace_id: None,
        },
        now,
    )
}

fn transition(e: domain::TransitionError) -> ApiError {
    ApiError::Conflict(e.to_string())
}

/// The delivery and its subscription as read (with their etags) before an attempt.
type Prefetched = (
    super::StoredDelivery,
    ports::ETag,
    Option<(StoredSubscription, ports::ETag)>,
);

/// Records `attempted` on the delivery (and the subscription's health), in one batch guarded
/// by etags; a conflict re-reads both and applies the same observation again.
async fn record(
    d: &Deliverer,
    tenant: &TenantId,
    due: &AttemptDue,
    attempted: &Attempted,
    now: DateTime<Utc>,
    failure_id: FailureId,
    mut before: Option<Prefetched>,
) -> Result<(), ApiError> {
    let ctx = &d.ctx;
    // The jitter is drawn once, so a re-applied observation schedules the same retry.
    let unit: f64 = rand::random();
    for _ in 0..10 {
        let prefetched = match before.take() {
            Some(prefetched) => prefetched,
            None => match load(ctx, tenant, due).await? {
                Some(loaded) => loaded,
                None => return Ok(()),
            },
        };
        let (mut stored, delivery_etag, mut subscription) = prefetched;
        if !is_due(&stored.delivery, due) {
            return Ok(()); // recorded meanwhile by a concurrent copy of the message
        }
        let observed = Observed {
            d,
            tenant,
            due,
            now,
            unit,
        };
        let mut change = observed.apply(attempted, &mut stored, subscription.as_mut())?;
        if let Some(dead) = change.dead_letter.take() {
            dead.record(tenant, &mut stored.delivery, failure_id, now, &mut change)?;
        }
        // The delivery has ended: the next one of its lane may go now, and only now.
        if !ordering::in_flight(&stored.delivery)
            && let Some(next) = stored.lane.as_ref().and_then(|p| p.next)
            && let Some(op) = ordering::release(ctx, tenant, &next).await?
        {
            change.ops.push(op);
        }
        change
            .ops
            .push(delivery_write(ctx, &stored, Some(delivery_etag))?);
        if change.subscription_changed
            && let Some((s, etag)) = subscription
        {
            change.ops.push(subscription_write(&s, Some(etag))?);
        }
        match commit(ctx, tenant, change.ops, &change.events, "changed meanwhile").await {
            Ok(()) => {
                let delivery = &stored.delivery;
                tracing::info!(tenant = %tenant, delivery = %delivery.id(), attempt = due.attempt, status = delivery.status().as_str(), "delivery attempt recorded");
                return Ok(());
            }
            Err(ApiError::Conflict(_)) => continue,
            Err(e) => return Err(e),
        }
    }
    Err(ApiError::Conflict(
        "the delivery kept changing while being recorded".into(),
    ))
}

/// The delivery and its subscription as they are now; `None` when the delivery is gone.
async fn load(
    ctx: &AppContext,
    tenant: &TenantId,
    due: &AttemptDue,
) -> Result<Option<Prefetched>, ApiError> {
    let Some((stored, etag)) = read_delivery(ctx, tenant.as_str(), &due.delivery_id).await? else {
        return Ok(None);
    };
    let subscription =
        read_subscription(ctx, tenant.as_str(), &stored.delivery.subscription_id()).await?;
    Ok(Some((stored, etag, subscription)))
}

/// What one observation changes, gathered before the batch is written.
#[derive(Default)]
struct Change {
    ops: Vec<WriteOp>,
    events: Vec<domain::DomainEvent>,
    subscription_changed: bool,
    dead_letter: Option<DeadLetter>,
}

/// Why a delivery ends without success, and the report of its last attempt.
struct DeadLetter {
    class: FailureClassification,
    status: Option<u16>,
    message: String,
    report: Option<DeliveryAttemptReport>,
}

impl DeadLetter {
    /// Dead-letters the delivery with one `IntegrationFailure` (document and event).
    fn record(
        self,
        tenant: &TenantId,
        delivery: &mut WebhookDelivery,
        failure_id: FailureId,
        now: DateTime<Utc>,
        change: &mut Change,
    ) -> Result<(), ApiError> {
        let (failure, event) = failure_for(
            tenant,
            delivery,
            failure_id,
            self.class,
            self.status,
            self.message,
            now,
        );
        change.events.extend(
            delivery
                .dead_letter(&failure, self.report, now)
                .map_err(transition)?,
        );
        change.events.push(event);
        change.ops.push(WriteOp::create(
            format!("failure-{}", failure.id()),
            document(&failure, FAILURE)?,
        ));
        Ok(())
    }
}

/// One attempt's observation, applied to the delivery and its subscription.
struct Observed<'a> {
    d: &'a Deliverer,
    tenant: &'a TenantId,
    due: &'a AttemptDue,
    now: DateTime<Utc>,
    /// The jitter of the next wait, drawn once per observation.
    unit: f64,
}

impl Observed<'_> {
    fn apply(
        &self,
        attempted: &Attempted,
        stored: &mut super::StoredDelivery,
        subscription: Option<&mut (StoredSubscription, ports::ETag)>,
    ) -> Result<Change, ApiError> {
        let subscription = subscription.map(|(s, _)| &mut s.subscription);
        match attempted {
            Attempted::NotMade { class, reason } => Ok(Change {
                dead_letter: Some(DeadLetter {
                    class: *class,
                    status: None,
                    message: (*reason).to_owned(),
                    report: None,
                }),
                ..Change::default()
            }),
            Attempted::Made {
                outcome: Outcome::Delivered(_),
                report,
            } => self.delivered(report, &mut stored.delivery, subscription),
            Attempted::Made {
                outcome: Outcome::Gone,
                report,
            } => self.gone(report, subscription),
            Attempted::Made { outcome, report } => {
                // Retries of an ordered delivery stay in its lane's session.
                let session = lane_of(stored).map(|l| l.session_id());
                self.failed(outcome, report, session, &mut stored.delivery, subscription)
            }
        }
    }

    fn delivered(
        &self,
        report: &DeliveryAttemptReport,
        delivery: &mut WebhookDelivery,
        subscription: Option<&mut WebhookSubscription>,
    ) -> Result<Change, ApiError> {
        let mut change = Change {
            events: delivery
                .record_success(report.clone(), self.now)
                .map_err(transition)?,
            ..Change::default()
        };
        if let Some(s) = subscription {
            let before = s.version();
            s.record_success(self.now);
            change.subscription_changed = s.version() != before;
        }
        Ok(change)
    }

    /// 410: the endpoint is gone for good; its subscription is disabled.
    fn gone(
        &self,
        report: &DeliveryAttemptReport,
        subscription: Option<&mut WebhookSubscription>,
    ) -> Result<Change, ApiError> {
        let mut change = Change::default();
        if let Some(s) = subscription {
            s.record_failure(self.now);
            if s.status() == SubscriptionStatus::Active {
                change.events.extend(
                    s.disable(DisableReason::EndpointGone, self.now)
                        .map_err(transition)?,
                );
            }
            change.subscription_changed = true;
        }
        change.dead_letter = Some(DeadLetter {
            class: FailureClassification::VendorError,
            status: Some(410),
            message: "the endpoint answered 410 Gone; its subscription is disabled".into(),
            report: Some(report.clone()),
        });
        Ok(change)
    }

    /// A failed attempt: the next one scheduled when the failure is retryable, the schedule
    /// not exhausted and the endpoint not disabled; else the delivery is dead-lettered.
    fn failed(
        &self,
        failed: &Outcome,
        report: &DeliveryAttemptReport,
        session: Option<String>,
        delivery: &mut WebhookDelivery,
        subscription: Option<&mut WebhookSubscription>,
    ) -> Result<Change, ApiError> {
        let (now, due) = (self.now, self.due);
        let mut change = Change::default();
        let mut disabled = false;
        if let Some(s) = subscription {
            s.record_failure(now);
            change.subscription_changed = true;
            if s.should_disable(now, self.d.disable_after) {
                change.events.extend(
                    s.disable(DisableReason::FailingTooLong, now)
                        .map_err(transition)?,
                );
            }
            disabled = s.status() != SubscriptionStatus::Active;
        }
        let next = due.attempt.saturating_add(1);
        let last = report
            .error
            .as_ref()
            .map_or_else(|| format!("{failed:?}"), |e| e.as_str().to_owned());
        match self.d.schedule.wait_before(next, self.unit) {
            Some(wait) if failed.retryable() && !disabled => {
                let wait = failed.retry_after().unwrap_or(wait);
                let at = now + TimeDelta::from_std(wait).unwrap_or(TimeDelta::seconds(1));
                change.events.extend(
                    delivery
                        .record_failure(report.clone(), at, now)
                        .map_err(transition)?,
                );
                let next_due = AttemptDue {
                    delivery_id: due.delivery_id,
                    cycle: due.cycle,
                    attempt: next,
                    session,
                };
                change
                    .ops
                    .push(attempt_write(self.tenant, &next_due, Some(at))?);
            }
            _ => {
                let message = if !failed.retryable() {
                    format!("the endpoint cannot be called: {last}")
                } else if disabled {
                    format!(
                        "the endpoint has been failing for too long and was disabled; last attempt: {last}"
                    )
                } else {
                    format!("gave up after {} attempts; last: {last}", due.attempt)
                };
                change.dead_letter = Some(DeadLetter {
                    class: failed.classification(),
                    status: failed.status_code(),
                    message,
                    report: Some(report.clone()),
                });
            }
        }
        Ok(change)
    }
}

#[cfg(test)]
mod tests {
    //! The lane rules against the embedded store and broker (no runner, no consumers): what
    //! each step commits is read back from the outbox.

    use std::collections::BTreeMap;

    use app_context::{WEBHOOK_DELIVERIES_ORDERED_QUEUE, WEBHOOK_DELIVERIES_QUEUE};
    use domain::{DeliveryId, EventName, NewDelivery, PayloadRef, SubscriptionId};
    use ports::{BrokerReceiver as _, Entity, EntitySpec, Query};
    use serde_json::Value;

    use super::*;
    use crate::outbound::ordering::{Lane, NotEntered, OrderingKey, enter_lane, waits};
    use crate::outbound::{SCHEDULE_SETTING, StoredDelivery};

    struct Fixture {
        _dir: tempfile::TempDir,
        ctx: AppContext,
        broker: Arc<embedded::SqliteBroker>,
        d: Arc<Deliverer>,
        tenant: TenantId,
        sub: SubscriptionId,
    }

    async fn fixture(schedule: &str) -> Fixture {
        let dir = tempfile::tempdir().unwrap();
        let durability = embedded::Durability::Normal;
        let broker =
            Arc::new(embedded::SqliteBroker::open(&dir.path().join("b.db"), durability).unwrap());
        broker
            .ensure_topology(&app_context::platform_topology(
                &[crate::registration()],
                &EntitySpec::default(),
            ))
            .await
            .unwrap();
        let settings = BTreeMap::from([(SCHEDULE_SETTING.to_owned(), schedule.to_owned())]);
        let ctx = AppContext {
            documents: Arc::new(
                embedded::SqliteDocumentStore::open(&dir.path().join("d.db"), durability).unwrap(),
            ),
            bus: broker.clone(),
            blobs: Arc::new(
                embedded::SqliteBlobStore::open(&dir.path().join("blobs.db"), durability).unwrap(),
            ),
            secrets: Arc::new(embedded::EncryptedSecretStore::open_in(dir.path()).unwrap()),
            authenticator: Arc::new(auth::DevTokens::load_or_create(dir.path()).unwrap()),
            settings: Arc::new(settings),
            outbox_waker: Arc::default(),
            catalogue: Default::default(),
        };
        Fixture {
            d: Deliverer::new(&ctx, &Settings::read(&ctx).unwrap()),
            ctx,
            broker,
            _dir: dir,
            tenant: TenantId::parse_tenant("tenant-o").unwrap(),
            sub: SubscriptionId::new(),
        }
    }

    impl Fixture {
        fn lane(&self, key: Option<&str>) -> Lane {
            Lane {
                subscription: self.sub,
                key: key.map(|k| OrderingKey::parse(k).unwrap()),
            }
        }

        fn delivery(&self) -> StoredDelivery {
            StoredDelivery {
                delivery: WebhookDelivery::new(
                    NewDelivery {
                        tenant_id: self.tenant.clone(),
                        id: DeliveryId::new(),
                        subscription_id: self.sub,
                        event_id: envelope::new_event_id(),
                        event_name: EventName::parse("order.updated").unwrap(),
                        payload_ref: PayloadRef::parse("webhooks-outbound/tenant-o/evt").unwrap(),
                    },
                    Utc::now(),
                ),
                lane: None,
                payload: None,
            }
        }

        /// A new delivery entered in the lane of `key`.
        async fn enter(&self, key: Option<&str>) -> DeliveryId {
            let stored = self.delivery();
            enter_lane(
                &self.ctx,
                &self.tenant,
                &self.lane(key),
                &stored,
                None,
                &[],
                None,
            )
            .await
            .unwrap();
            stored.delivery.id()
        }

        async fn stored(&self, id: &DeliveryId) -> StoredDelivery {
            read_delivery(&self.ctx, self.tenant.as_str(), id)
                .await
                .unwrap()
                .unwrap()
                .0
        }

        /// Attempt messages committed so far (events aside): message id → (entity, attempt,
        /// scheduled).
        async fn queued(&self) -> BTreeMap<String, (String, AttemptDue, bool)> {
            let page = self
                .ctx
                .documents
                .query(
                    crate::CONTAINER,
                    &Query::partition(self.tenant.as_str()).filter("docType", "outbox"),
                )
                .await
                .unwrap();
            page.documents
                .iter()
                .filter(|doc| doc.body["subject"] == DELIVERY_ATTEMPT)
                .map(|doc| {
                    let field = |k: &str| doc.body[k].as_str().unwrap_or_default().to_owned();
                    let env = Envelope::parse(field("envelope").as_bytes()).unwrap();
                    let due: AttemptDue = env.data_json().unwrap();
                    let scheduled = !doc.body["scheduledAt"].is_null();
                    (field("messageId"), (field("entity"), due, scheduled))
                })
                .collect()
        }

        async fn record(&self, id: &DeliveryId, attempted: &Attempted) {
            let stored = self.stored(id).await;
            let due =
                ordering::next_attempt(&stored.delivery, lane_of(&stored).map(|l| l.session_id()));
            record(
                &self.d,
                &self.tenant,
                &due,
                attempted,
                Utc::now(),
                FailureId::new(),
                None,
            )
            .await
            .unwrap();
        }
    }

    fn answered(code: u16) -> Attempted {
        Attempted::Made {
            outcome: Outcome::from_status(code, None),
            report: DeliveryAttemptReport {
                status_code: Some(code),
                ..Default::default()
            },
        }
    }

    fn first(id: &DeliveryId) -> String {
        format!("{id}.1.1")
    }

    #[tokio::test]
    async fn a_later_delivery_of_a_key_waits_until_the_one_before_it_is_delivered() {
        let f = fixture("0,1,1").await;
        let session = f.lane(Some("order-1")).session_id();
        let a = f.enter(Some("order-1")).await;
        let b = f.enter(Some("order-1")).await;
        let c = f.enter(Some("order-2")).await;

        let q = f.queued().await;
        let (entity, due, scheduled) = &q[&first(&a)];
        assert_eq!(
            entity, WEBHOOK_DELIVERIES_QUEUE,
            "through the outbox's queue"
        );
        assert_eq!(due.session.as_deref(), Some(session.as_str()));
        assert!(!scheduled);
        assert!(
            !q.contains_key(&first(&b)),
            "b is not queued while a is in flight"
        );
        assert!(q.contains_key(&first(&c)), "another key is not held back");
        assert_eq!(f.stored(&a).await.lane.unwrap().next, Some(b));
        assert_eq!(f.stored(&b).await.lane.unwrap().after, Some(a));
        assert!(waits(&f.ctx, &f.tenant, &f.stored(&b).await).await.unwrap());
        assert!(!waits(&f.ctx, &f.tenant, &f.stored(&c).await).await.unwrap());

        // a fails: its retry is scheduled in the same session, and b still waits.
        f.record(&a, &answered(500)).await;
        let q = f.queued().await;
        let (_, retry, scheduled) = &q[&format!("{a}.1.2")];
        assert_eq!(retry.session.as_deref(), Some(session.as_str()));
        assert!(scheduled);
        assert!(!q.contains_key(&first(&b)), "a retry keeps the lane held");
        assert!(waits(&f.ctx, &f.tenant, &f.stored(&b).await).await.unwrap());

        // a is delivered on its second attempt: b is released in the same batch.
        f.record(&a, &answered(204)).await;
        let q = f.queued().await;
        let (entity, due, scheduled) = &q[&first(&b)];
        assert_eq!(entity, WEBHOOK_DELIVERIES_QUEUE);
        assert_eq!(due.session.as_deref(), Some(session.as_str()));
        assert_eq!((due.cycle, due.attempt), (1, 1));
        assert!(!scheduled);
        assert!(!waits(&f.ctx, &f.tenant, &f.stored(&b).await).await.unwrap());

        // b is now the tail, delivered: the next one goes at once.
        f.record(&b, &answered(200)).await;
        let d = f.enter(Some("order-1")).await;
        assert!(f.queued().await.contains_key(&first(&d)));
        assert_eq!(f.stored(&d).await.lane.unwrap().after, None);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn concurrent_entries_form_one_chain() {
        let f = Arc::new(fixture("0").await);
        let mut tasks = Vec::new();
        for _ in 0..8 {
            let f = f.clone();
            tasks.push(tokio::spawn(async move { f.enter(Some("busy")).await }));
        }
        let mut ids = Vec::new();
        for t in tasks {
            ids.push(t.await.unwrap());
        }
        let q = f.queued().await;
        let released: Vec<&DeliveryId> =
            ids.iter().filter(|id| q.contains_key(&first(id))).collect();
        assert_eq!(
            released.len(),
            1,
            "exactly one delivery of the lane is queued"
        );
        // Following `next` from the released one visits every delivery once.
        let mut seen = vec![*released[0]];
        let mut at = *released[0];
        while let Some(next) = f.stored(&at).await.lane.unwrap().next {
            assert_eq!(f.stored(&next).await.lane.unwrap().after, Some(at));
            seen.push(next);
            at = next;
        }
        seen.sort_by_key(|id| id.to_string());
        ids.sort_by_key(|id| id.to_string());
        assert_eq!(seen, ids);
    }

    #[tokio::test]
    async fn a_dead_lettered_delivery_ends_its_turn() {
        let f = fixture("0").await;
        let a = f.enter(None).await;
        let b = f.enter(None).await;
        let c = f.enter(None).await;
        f.record(&a, &answered(503)).await;
        assert_eq!(
            f.stored(&a).await.delivery.status(),
            DeliveryStatus::DeadLettered,
            "one attempt only"
        );
        let q = f.queued().await;
        assert!(q.contains_key(&first(&b)), "b released by a's end");
        assert!(!q.contains_key(&first(&c)), "c still behind b");
        // b was never made (its subscription is gone): that ends it as well.
        let not_made = Attempted::NotMade {
            class: FailureClassification::Unprocessable,
            reason: "the subscription is disabled; the delivery was not attempted",
        };
        f.record(&b, &not_made).await;
        assert!(f.queued().await.contains_key(&first(&c)));
    }

    #[tokio::test]
    async fn a_replayed_delivery_goes_behind_the_one_in_flight() {
        let f = fixture("0,1,1").await;
        let a = f.enter(Some("k")).await;
        f.record(&a, &answered(200)).await;
        let b = f.enter(Some("k")).await;
        assert!(f.queued().await.contains_key(&first(&b)), "a has ended");

        let (mut replayed, etag) = read_delivery(&f.ctx, f.tenant.as_str(), &a)
            .await
            .unwrap()
            .unwrap();
        replayed.delivery.replay(Utc::now()).unwrap();
        let lane = lane_of(&replayed).unwrap();
        enter_lane(&f.ctx, &f.tenant, &lane, &replayed, Some(&etag), &[], None)
            .await
            .unwrap();
        assert!(
            !f.queued().await.contains_key(&format!("{a}.2.1")),
            "the replay waits for b"
        );
        assert_eq!(f.stored(&a).await.lane.unwrap().after, Some(b));

        f.record(&b, &answered(200)).await;
        let q = f.queued().await;
        let (_, due, _) = &q[&format!("{a}.2.1")];
        assert_eq!(
            (due.cycle, due.attempt),
            (2, 1),
            "released in its new cycle"
        );

        // The same replay again, from the delivery as read before the first: refused (the
        // delivery changed), not applied twice.
        let err = enter_lane(&f.ctx, &f.tenant, &lane, &replayed, Some(&etag), &[], None).await;
        assert!(matches!(err, Err(NotEntered::Settled)), "{err:?}");
    }

    #[tokio::test]
    async fn the_same_fan_out_enters_a_lane_once() {
        let f = fixture("0").await;
        let lane = f.lane(Some("k"));
        let marker = || WriteOp::create("fanout-x", serde_json::json!({"docType": "fanout"}));
        let one = f.delivery();
        enter_lane(
            &f.ctx,
            &f.tenant,
            &lane,
            &one,
            None,
            &[marker()],
            Some("fanout-x"),
        )
        .await
        .unwrap();
        let two = f.delivery();
        let again = enter_lane(
            &f.ctx,
            &f.tenant,
            &lane,
            &two,
            None,
            &[marker()],
            Some("fanout-x"),
        )
        .await;
        assert!(matches!(again, Err(NotEntered::Settled)), "{again:?}");
        assert!(
            read_delivery(&f.ctx, f.tenant.as_str(), &two.delivery.id())
                .await
                .unwrap()
                .is_none()
        );
        assert_eq!(f.stored(&one.delivery.id()).await.lane.unwrap().next, None);
    }

    #[tokio::test]
    async fn an_ordered_attempt_is_handed_on_to_its_session_once() {
        let f = fixture("0").await;
        let session = f.lane(Some("k")).session_id();
        let msg = functions_runtime::triggers::ServiceBusMessage {
            body: Bytes::from_static(b"{}"),
            message_id: "dlv_x.1.1".into(),
            delivery_count: 1,
            sequence_number: None,
            enqueued_time: None,
            content_type: None,
            correlation_id: None,
            session_id: None,
            subject: None,
            dead_letter_source: None,
            application_properties: serde_json::Map::<String, Value>::new(),
        };
        hand_off(&f.d, &msg, &f.tenant, &session).await.unwrap();
        hand_off(&f.d, &msg, &f.tenant, &session).await.unwrap();
        let ordered = Entity::queue(WEBHOOK_DELIVERIES_ORDERED_QUEUE);
        assert_eq!(
            f.broker.active_count(&ordered).await.unwrap(),
            1,
            "the repeated hand-off is dropped by duplicate detection"
        );
        let got = f.broker.receive(&ordered, 10).await.unwrap();
        assert_eq!(got.len(), 1);
        assert_eq!(got[0].message.session_id.as_deref(), Some(session.as_str()));
        assert_eq!(got[0].message.message_id, "dlv_x.1.1");
        assert_eq!(got[0].message.body.as_ref(), b"{}");
    }
}
