//! The payment app's record of each payment ([`PaymentRecord`], document `payment-<id>` in
//! the tenant's partition), created with the `createPayment` run's success and reconciled
//! from the processor ([`PaymentReconciler`], on the kit's [`integration_kit::records`]).
//!
//! - **Monotonic.** Statuses are ranked `requires_action < processing < requires_capture <
//!   succeeded < partially_refunded < refunded < disputed`; `canceled` is terminal and
//!   reachable only before success. A fetched status ranked below the record's is not
//!   applied, and is kept in the history as ignored; a further partial refund (more
//!   refunded, same status) is a change.
//! - **Reconciled, not believed.** A callback only says "look": the payment is fetched from
//!   the processor and its state trusted, so callbacks may come late, twice, out of order
//!   or not at all. Each vendor event is applied once (the kit's marker per delivery id).
//! - **Checked.** A fetched amount or currency that differs from what the run asked for is
//!   never applied: one `IntegrationFailure` of the creating run, for review.
//! - **Swept.** While a payment is not final (`succeeded` or after, or `canceled`), a look
//!   is scheduled per payment: after `PAYMENT_SWEEP_AFTER_SECONDS` (900), then doubling
//!   up to six hours, at most [`MAX_SWEEPS`] times. No scan.
//! - **Published.** Each applied change publishes its event (`payment.succeeded`,
//!   `payment.failed` for a cancellation, `payment.refunded`, `payment.disputed`) for the
//!   tenant's webhook subscriptions; a payment seen past `succeeded` for the first time
//!   publishes `payment.succeeded` too.

use std::time::Duration;

use api_kit::{ApiError, Caller};
use app_context::{AppContext, InvalidSetting};
use async_trait::async_trait;
use axum::extract::{Path, State};
use axum::routing::{MethodRouter, get};
use chrono::{DateTime, TimeDelta, Utc};
use domain::{DomainEvent, EventKind, PaymentChanged, RunId, TenantId};
use functions_runtime::{FunctionDecl, InvocationError};
use integration_kit::direct::Direct;
use integration_kit::records::{Reconcile, ReconcileReason, Reconciler};
use ports::{PortError, WriteOp};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use crate::{GetPayment, Payment, PaymentStatus};

/// Setting: how long after its creation a payment not yet final is first looked at again,
/// in seconds (1 to one day; 900).
pub const SWEEP_AFTER_SETTING: &str = "PAYMENT_SWEEP_AFTER_SECONDS";
const DEFAULT_SWEEP_AFTER: Duration = Duration::from_secs(15 * 60);
/// The longest pause between two looks at a payment.
const MAX_SWEEP_INTERVAL: Duration = Duration::from_secs(6 * 3600);
/// Looks at a payment that stays unfinished (about four days at the default interval).
pub const MAX_SWEEPS: u32 = 20;
/// Looks at a callback's payment the app does not know yet (its run may not have
/// committed), 2, 4, 8, ... seconds apart.
const MAX_EARLY_CALLBACK_LOOKS: u32 = 6;

const DOC_TYPE: &str = "payment";

/// The record's document id (processor ids are letters, digits, `_` and `-`).
pub fn payment_doc_id(payment_id: &str) -> String {
    format!("payment-{payment_id}")
}

/// Where a status stands in the monotonic order; `canceled` stands apart.
fn rank(status: PaymentStatus) -> Option<u8> {
    Some(match status {
        PaymentStatus::RequiresAction => 0,
        PaymentStatus::Processing => 1,
        PaymentStatus::RequiresCapture => 2,
        PaymentStatus::Succeeded => 3,
        PaymentStatus::PartiallyRefunded => 4,
        PaymentStatus::Refunded => 5,
        PaymentStatus::Disputed => 6,
        PaymentStatus::Canceled => return None,
    })
}

/// One look's outcome in the record's history.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Change {
    pub at: DateTime<Utc>,
    pub from: PaymentStatus,
    pub to: PaymentStatus,
    /// `callback`, `run` or `sweep`.
    pub reason: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub vendor_event_id: Option<String>,
    /// False for a status the processor reported that would go backwards.
    pub applied: bool,
}

/// A payment as the platform keeps it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PaymentRecord {
    pub payment_id: String,
    /// The provider (`stripe`, `fake-payment`).
    pub processor: String,
    /// The run that created it.
    pub run_id: RunId,
    /// What the run asked for (minor units) and in what currency (lowercase).
    pub amount: u64,
    pub currency: String,
    pub status: PaymentStatus,
    pub amount_refunded: u64,
    pub history: Vec<Change>,
    /// Scheduled looks so far.
    pub sweeps: u32,
    /// The processor's amount or currency differed from the run's (a failure was recorded).
    #[serde(default)]
    pub mismatch: bool,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

/// What applying a fetched payment did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Applied {
    /// Nothing new.
    Same,
    /// The record moved; these events are due.
    Moved(Vec<EventKind>),
    /// The processor reported an earlier status: recorded, not applied.
    Ignored,
    /// Amount or currency differ from the run's: not applied.
    Mismatch,
}

impl PaymentRecord {
    /// A new record of the payment `created` by run `run_id`.
    pub fn new(
        processor: &str,
        run_id: RunId,
        payment_id: &str,
        amount: u64,
        currency: &str,
        status: PaymentStatus,
        now: DateTime<Utc>,
    ) -> Self {
        PaymentRecord {
            payment_id: payment_id.to_owned(),
            processor: processor.to_owned(),
            run_id,
            amount,
            currency: currency.to_ascii_lowercase(),
            status,
            amount_refunded: 0,
            history: Vec::new(),
            sweeps: 0,
            mismatch: false,
            created_at: now,
            updated_at: now,
        }
    }

    /// The document, as stored.
    pub fn document(&self) -> Value {
        let mut doc = serde_json::to_value(self).unwrap_or_default();
        doc["docType"] = json!(DOC_TYPE);
        doc
    }

    /// Whether the payment no longer needs looking after: succeeded (or past it), or
    /// canceled. Refunds and disputes after that come by callbacks and runs.
    pub fn is_final(&self) -> bool {
        rank(self.status).is_none_or(|r| r >= 3)
    }

    /// Applies the processor's word about the payment.
    pub fn apply(
        &mut self,
        fetched: &Payment,
        reason: &ReconcileReason,
        now: DateTime<Utc>,
    ) -> Applied {
        if fetched.amount != self.amount || !fetched.currency.eq_ignore_ascii_case(&self.currency) {
            return Applied::Mismatch;
        }
        let (from, to) = (self.status, fetched.status);
        let more_refunded = fetched.amount_refunded > self.amount_refunded;
        let forward = match (rank(from), rank(to)) {
            (None, _) => false,
            (Some(f), None) => f < 3,
            (Some(f), Some(t)) => t > f || (t == f && more_refunded),
        };
        let change = |applied| Change {
            at: now,
            from,
            to,
            reason: reason.name().to_owned(),
            vendor_event_id: reason.vendor_event_id().map(str::to_owned),
            applied,
        };
        if !forward {
            if from == to {
                return Applied::Same;
            }
            self.history.push(change(false));
            self.updated_at = now;
            return Applied::Ignored;
        }
        let mut events = Vec::new();
        let crossed_success = rank(from).is_some_and(|f| f < 3) && rank(to).is_some_and(|t| t >= 3);
        if crossed_success {
            events.push(EventKind::PaymentSucceeded);
        }
        match to {
            PaymentStatus::Canceled => events.push(EventKind::PaymentFailed),
            PaymentStatus::PartiallyRefunded | PaymentStatus::Refunded => {
                events.push(EventKind::PaymentRefunded)
            }
            PaymentStatus::Disputed => events.push(EventKind::PaymentDisputed),
            _ => {}
        }
        self.history.push(change(true));
        self.status = to;
        self.amount_refunded = self.amount_refunded.max(fetched.amount_refunded);
        self.updated_at = now;
        Applied::Moved(events)
    }

    fn event(
        &self,
        kind: EventKind,
        previous: PaymentStatus,
        r: &Reconcile<'_>,
        now: DateTime<Utc>,
    ) -> DomainEvent {
        let data = PaymentChanged {
            tenant_id: r.tenant.clone(),
            connection_id: r.connection.id(),
            provider_key: r.connection.provider_key().clone(),
            payment_id: self.payment_id.clone(),
            run_id: Some(self.run_id),
            previous_status: status_word(previous),
            status: status_word(self.status),
            amount: self.amount,
            amount_refunded: self.amount_refunded,
            currency: self.currency.clone(),
            reason: r.reason.name().to_owned(),
            vendor_event_id: r.reason.vendor_event_id().map(str::to_owned),
            occurred_at: now,
        };
        match kind {
            EventKind::PaymentFailed => DomainEvent::PaymentFailed(data),
            EventKind::PaymentRefunded => DomainEvent::PaymentRefunded(data),
            EventKind::PaymentDisputed => DomainEvent::PaymentDisputed(data),
            _ => DomainEvent::PaymentSucceeded(data),
        }
    }
}

fn status_word(status: PaymentStatus) -> String {
    serde_json::to_value(status)
        .ok()
        .and_then(|v| v.as_str().map(str::to_owned))
        .unwrap_or_default()
}

/// The pause before the `n`th scheduled look: the interval, doubling, at most six hours.
fn sweep_delay(first: Duration, n: u32) -> Duration {
    first
        .saturating_mul(1u32 << n.saturating_sub(1).min(16))
        .min(MAX_SWEEP_INTERVAL)
}

fn at(now: DateTime<Utc>, after: Duration) -> DateTime<Utc> {
    now + TimeDelta::from_std(after).unwrap_or(TimeDelta::hours(6))
}

fn transient(e: impl std::fmt::Display) -> InvocationError {
    InvocationError::transient(e.to_string())
}

/// The payment app's [`Reconciler`].
pub struct PaymentReconciler {
    sweep_after: Duration,
}

impl PaymentReconciler {
    pub fn from_settings(ctx: &AppContext) -> Result<Self, InvalidSetting> {
        Ok(PaymentReconciler {
            sweep_after: settings::seconds(ctx, SWEEP_AFTER_SETTING, 1..=24 * 3600)?
                .unwrap_or(DEFAULT_SWEEP_AFTER),
        })
    }
}

#[async_trait]
impl Reconciler for PaymentReconciler {
    async fn reconcile(&self, r: &Reconcile<'_>) -> Result<(), InvocationError> {
        let tenant = r.tenant.as_str();
        let id = payment_doc_id(r.record_id);
        let mut fetched: Option<Payment> = None;
        for _ in 0..5 {
            let now = Utc::now();
            let Some(doc) = r
                .ctx()
                .documents
                .read(r.slug(), tenant, &id)
                .await
                .map_err(transient)?
            else {
                return early_callback(r, now).await;
            };
            let mut record: PaymentRecord = doc.parse().map_err(transient)?;
            if record.processor != r.connection.provider_key().as_str() {
                tracing::info!(
                    tenant,
                    payment = r.record_id,
                    "a callback of another processor's payment is ignored"
                );
                return Ok(());
            }
            let before = record.clone();
            let mut ops = Vec::new();
            let mut events = Vec::new();
            // The look its own creating run asked for knows the payment already.
            let creating_run =
                matches!(r.reason, ReconcileReason::Run { run_id } if *run_id == record.run_id);
            if !creating_run {
                if fetched.is_none() {
                    fetched = Some(
                        match r
                            .fetch::<GetPayment>(json!({"paymentId": r.record_id}))
                            .await
                        {
                            Ok(p) => p,
                            Err(e) if e.retryable => return Err(transient(e.failure.message)),
                            Err(e) => {
                                tracing::warn!(tenant, payment = r.record_id, error = %e.failure.message,
                                    "a payment could not be fetched from its processor");
                                return Ok(());
                            }
                        },
                    );
                }
                let payment = fetched.as_ref().expect("fetched above");
                let previous = record.status;
                match record.apply(payment, r.reason, now) {
                    Applied::Moved(kinds) => {
                        events.extend(kinds.into_iter().map(|k| record.event(k, previous, r, now)))
                    }
                    Applied::Mismatch if !record.mismatch => {
                        record.mismatch = true;
                        record.updated_at = now;
                        let (op, event) = r.failure(
                            record.run_id,
                            domain::FailureClassification::VendorError,
                            format!(
                                "the processor's payment {} is {} {}, the run asked for {} {}: not applied, for review",
                                record.payment_id,
                                payment.amount,
                                payment.currency,
                                record.amount,
                                record.currency
                            ),
                            now,
                        )?;
                        ops.push(op);
                        events.push(event);
                    }
                    Applied::Mismatch | Applied::Same | Applied::Ignored => {}
                }
            }
            // The sweep: one chain per payment, started by its creating run's look and
            // carried on by each scheduled look while the payment is not final.
            let continues = match r.reason {
                ReconcileReason::Run { .. } => creating_run && record.sweeps == 0,
                ReconcileReason::Sweep { n } => *n == record.sweeps,
                ReconcileReason::Callback { .. } => false,
            };
            if continues && !record.is_final() && !record.mismatch && record.sweeps < MAX_SWEEPS {
                record.sweeps += 1;
                let n = record.sweeps;
                ops.push(r.later(
                    ReconcileReason::Sweep { n },
                    &format!("sweep-{n}"),
                    at(now, sweep_delay(self.sweep_after, n)),
                )?);
            }
            if record == before {
                return Ok(());
            }
            ops.insert(
                0,
                WriteOp::replace(&id, record.document(), Some(doc.etag.clone())),
            );
            match r.commit(ops, &events).await {
                Ok(()) => {
                    tracing::info!(tenant, payment = r.record_id, status = ?record.status, reason = r.reason.name(), "payment reconciled");
                    return Ok(());
                }
                Err(PortError::PreconditionFailed) => continue,
                Err(e) => return Err(transient(e)),
            }
        }
        Err(transient("the payment kept changing"))
    }
}

/// A callback for a payment the app has no record of: its creating run may not have
/// committed yet, so it is looked at again a few times, then dropped as not this
/// platform's.
async fn early_callback(r: &Reconcile<'_>, now: DateTime<Utc>) -> Result<(), InvocationError> {
    let ReconcileReason::Callback {
        vendor_event_id,
        attempt,
    } = r.reason
    else {
        return Ok(());
    };
    if *attempt >= MAX_EARLY_CALLBACK_LOOKS {
        tracing::info!(tenant = %r.tenant, payment = r.record_id, "a callback names a payment this platform did not make");
        return Ok(());
    }
    let next = attempt + 1;
    let tag = format!(
        "early-{next}-{}",
        vendor_event_id.as_deref().unwrap_or("none")
    );
    let op = r.later(
        ReconcileReason::Callback {
            vendor_event_id: vendor_event_id.clone(),
            attempt: next,
        },
        &tag,
        at(now, Duration::from_secs(1 << next)),
    )?;
    match r.commit(vec![op], &[]).await {
        Ok(()) | Err(PortError::AlreadyExists) => Ok(()),
        Err(e) => Err(transient(e)),
    }
}

/// The record a run that creates a payment (`createPayment`, `payBill`) creates with its
/// success: what the run asked for (`amount` in minor units, `currency`), the processor's id
/// and status.
pub fn created_record(
    processor: &str,
    run: Option<&str>,
    payment: &Payment,
    amount: u64,
    currency: &str,
) -> Option<(String, Value)> {
    let run_id = RunId::parse(run?).ok()?;
    let record = PaymentRecord::new(
        processor,
        run_id,
        &payment.payment_id,
        amount,
        currency,
        payment.status,
        Utc::now(),
    );
    Some((payment_doc_id(&payment.payment_id), record.document()))
}

/// `GET /api/payments/{paymentId}`: the platform's record of a payment, with its history;
/// another tenant's is 404.
async fn show(
    State(ctx): State<AppContext>,
    caller: Caller,
    Path(payment): Path<String>,
) -> Result<axum::Json<Value>, ApiError> {
    let tenant = TenantId::parse_tenant(caller.tenant_id())
        .map_err(|e| ApiError::Forbidden(e.to_string()))?;
    let missing = || ApiError::not_found("the payment");
    crate::ProcessorId::try_from(payment.clone()).map_err(|_| missing())?;
    let doc = ctx
        .documents
        .read(crate::SLUG, tenant.as_str(), &payment_doc_id(&payment))
        .await
        .map_err(|e| ApiError::from_port(e, "conflict"))?
        .ok_or_else(missing)?;
    let record: PaymentRecord = doc.parse().map_err(ApiError::internal)?;
    Ok(axum::Json(
        serde_json::to_value(record).map_err(ApiError::internal)?,
    ))
}

/// The app's own routes.
pub fn routes(direct: Direct) -> Result<Vec<(FunctionDecl, MethodRouter)>, InvalidSetting> {
    Ok(vec![(
        FunctionDecl::http("GetPaymentRecord", "payments/{paymentId}", &["get"]).api(json!({
            "summary": "The platform's record of a payment: reconciled status and its history"
        })),
        get(show).with_state(direct.ctx().clone()),
    )])
}

#[cfg(test)]
mod tests;
