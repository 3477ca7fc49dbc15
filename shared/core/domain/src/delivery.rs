//! [`WebhookDelivery`]: one event to one subscription, its attempts and its state machine.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::aggregate::{impl_aggregate, touch};
use crate::error::TransitionError;
use crate::event::{DomainEvent, WebhookDelivered};
use crate::failure::{FailureSubject, IntegrationFailure};
use crate::filter::EventName;
use crate::ids::{DeliveryId, FailureId, SubscriptionId};
use crate::redact::RedactedText;
use crate::values::{PayloadRef, TenantId};

/// Where a delivery stands.
///
/// | from \ call     | `record_success`     | `record_failure` | `retry_now` | `dead_letter`   | `replay`  |
/// |-----------------|----------------------|------------------|-------------|-----------------|-----------|
/// | `pending`       | `delivered` + event  | `failed`         | refused     | `dead_lettered` | refused   |
/// | `failed`        | `delivered` + event  | `failed`         | `pending`   | `dead_lettered` | refused   |
/// | `delivered`     | refused              | refused          | refused     | refused         | `pending` |
/// | `dead_lettered` | refused              | refused          | refused     | refused         | `pending` |
///
/// `failed` means "last attempt failed, next one scheduled at `next_attempt_at`"; the retry attempt
/// may be recorded straight from `failed`. `replay` starts a new cycle of attempts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DeliveryStatus {
    /// Waiting for its first attempt (of the cycle).
    Pending,
    /// The endpoint accepted it.
    Delivered,
    /// The last attempt failed; a retry is scheduled.
    Failed,
    /// Attempts exhausted or the endpoint is gone.
    DeadLettered,
}

impl DeliveryStatus {
    /// The status as written in JSON.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Pending => "pending",
            Self::Delivered => "delivered",
            Self::Failed => "failed",
            Self::DeadLettered => "dead_lettered",
        }
    }
}

/// What the sender observed for one attempt.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct DeliveryAttemptReport {
    /// The endpoint's HTTP status; `None` when no response came (timeout, refused connection).
    pub status_code: Option<u16>,
    /// How long the attempt took.
    pub latency_ms: Option<u64>,
    /// What went wrong, redacted.
    pub error: Option<RedactedText>,
}

/// One recorded attempt.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DeliveryAttempt {
    /// The cycle it belongs to (1, then +1 per replay).
    pub cycle: u32,
    /// 1-based over the delivery's whole life.
    pub number: u32,
    /// When it was made.
    pub at: DateTime<Utc>,
    /// The endpoint's HTTP status.
    pub status_code: Option<u16>,
    /// How long it took.
    pub latency_ms: Option<u64>,
    /// What went wrong.
    pub error: Option<RedactedText>,
}

/// Input of [`WebhookDelivery::new`].
#[derive(Debug, Clone)]
pub struct NewDelivery {
    /// The owning tenant.
    pub tenant_id: TenantId,
    /// The new id (also the `webhook-id` header, stable across retries).
    pub id: DeliveryId,
    /// The subscription.
    pub subscription_id: SubscriptionId,
    /// The envelope id of the event.
    pub event_id: String,
    /// The event's short name.
    pub event_name: EventName,
    /// Where the payload is kept.
    pub payload_ref: PayloadRef,
}

/// One event on its way to one subscription.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct WebhookDelivery {
    tenant_id: TenantId,
    id: DeliveryId,
    version: u64,
    created_at: DateTime<Utc>,
    updated_at: DateTime<Utc>,
    subscription_id: SubscriptionId,
    event_id: String,
    event_name: EventName,
    payload_ref: PayloadRef,
    status: DeliveryStatus,
    attempts: Vec<DeliveryAttempt>,
    cycle: u32,
    next_attempt_at: Option<DateTime<Utc>>,
    delivered_at: Option<DateTime<Utc>>,
    failure_id: Option<FailureId>,
}
impl_aggregate!(WebhookDelivery, "webhookDelivery", id: DeliveryId);

impl WebhookDelivery {
    const AGGREGATE: &'static str = "delivery";

    /// A new `pending` delivery due `now`.
    pub fn new(new: NewDelivery, now: DateTime<Utc>) -> Self {
        Self {
            tenant_id: new.tenant_id,
            id: new.id,
            version: 1,
            created_at: now,
            updated_at: now,
            subscription_id: new.subscription_id,
            event_id: new.event_id,
            event_name: new.event_name,
            payload_ref: new.payload_ref,
            status: DeliveryStatus::Pending,
            attempts: Vec::new(),
            cycle: 1,
            next_attempt_at: Some(now),
            delivered_at: None,
            failure_id: None,
        }
    }

    fn forbidden(&self, to: DeliveryStatus) -> TransitionError {
        TransitionError::Forbidden {
            aggregate: Self::AGGREGATE,
            from: self.status.as_str(),
            to: to.as_str(),
        }
    }

    fn require_in_flight(&self, to: DeliveryStatus) -> Result<(), TransitionError> {
        match self.status {
            DeliveryStatus::Pending | DeliveryStatus::Failed => Ok(()),
            DeliveryStatus::Delivered | DeliveryStatus::DeadLettered => Err(self.forbidden(to)),
        }
    }

    fn push_attempt(&mut self, report: DeliveryAttemptReport, now: DateTime<Utc>) {
        let number = u32::try_from(self.attempts.len())
            .unwrap_or(u32::MAX)
            .saturating_add(1);
        self.attempts.push(DeliveryAttempt {
            cycle: self.cycle,
            number,
            at: now,
            status_code: report.status_code,
            latency_ms: report.latency_ms,
            error: report.error,
        });
    }

    /// `pending | failed → delivered`; emits `WebhookDelivered`.
    pub fn record_success(
        &mut self,
        report: DeliveryAttemptReport,
        now: DateTime<Utc>,
    ) -> Result<Vec<DomainEvent>, TransitionError> {
        self.require_in_flight(DeliveryStatus::Delivered)?;
        let status_code = report.status_code;
        self.push_attempt(report, now);
        self.status = DeliveryStatus::Delivered;
        self.next_attempt_at = None;
        self.delivered_at = Some(now);
        touch(&mut self.version, &mut self.updated_at, now);
        Ok(vec![DomainEvent::WebhookDelivered(WebhookDelivered {
            tenant_id: self.tenant_id.clone(),
            delivery_id: self.id,
            subscription_id: self.subscription_id,
            event_id: self.event_id.clone(),
            event_name: self.event_name.clone(),
            status_code,
            attempts: self.attempts_in_cycle(),
            occurred_at: now,
        })])
    }

    /// `pending | failed → failed`: the attempt failed and the next one is scheduled at
    /// `next_attempt_at` (computed by the caller's backoff policy, honouring `Retry-After`).
    pub fn record_failure(
        &mut self,
        report: DeliveryAttemptReport,
        next_attempt_at: DateTime<Utc>,
        now: DateTime<Utc>,
    ) -> Result<Vec<DomainEvent>, TransitionError> {
        self.require_in_flight(DeliveryStatus::Failed)?;
        self.push_attempt(report, now);
        self.status = DeliveryStatus::Failed;
        self.next_attempt_at = Some(next_attempt_at);
        touch(&mut self.version, &mut self.updated_at, now);
        Ok(Vec::new())
    }

    /// `failed → pending`, due now: retry without waiting for the schedule (an operator's "retry",
    /// or the endpoint was re-enabled).
    pub fn retry_now(&mut self, now: DateTime<Utc>) -> Result<Vec<DomainEvent>, TransitionError> {
        if self.status != DeliveryStatus::Failed {
            return Err(self.forbidden(DeliveryStatus::Pending));
        }
        self.status = DeliveryStatus::Pending;
        self.next_attempt_at = Some(now);
        touch(&mut self.version, &mut self.updated_at, now);
        Ok(Vec::new())
    }

    /// `pending | failed → dead_lettered`, recording the last attempt if there was one. The failure's
    /// `IntegrationFailed` comes from [`IntegrationFailure::record`].
    pub fn dead_letter(
        &mut self,
        failure: &IntegrationFailure,
        final_attempt: Option<DeliveryAttemptReport>,
        now: DateTime<Utc>,
    ) -> Result<Vec<DomainEvent>, TransitionError> {
        self.require_in_flight(DeliveryStatus::DeadLettered)?;
        if failure.tenant_id() != &self.tenant_id
            || failure.subject() != FailureSubject::Delivery(self.id)
        {
            return Err(TransitionError::FailureMismatch {
                aggregate: Self::AGGREGATE,
                failure: failure.id(),
            });
        }
        if let Some(report) = final_attempt {
            self.push_attempt(report, now);
        }
        self.status = DeliveryStatus::DeadLettered;
        self.next_attempt_at = None;
        self.failure_id = Some(failure.id());
        touch(&mut self.version, &mut self.updated_at, now);
        Ok(Vec::new())
    }

    /// `delivered | dead_lettered → pending`: sends the same event again (same delivery id, so the
    /// receiver can de-duplicate) in a new cycle of attempts. Refused while a delivery is in flight.
    pub fn replay(&mut self, now: DateTime<Utc>) -> Result<Vec<DomainEvent>, TransitionError> {
        match self.status {
            DeliveryStatus::Delivered | DeliveryStatus::DeadLettered => {}
            DeliveryStatus::Pending | DeliveryStatus::Failed => {
                return Err(self.forbidden(DeliveryStatus::Pending));
            }
        }
        self.status = DeliveryStatus::Pending;
        self.cycle = self.cycle.saturating_add(1);
        self.next_attempt_at = Some(now);
        self.delivered_at = None;
        self.failure_id = None;
        touch(&mut self.version, &mut self.updated_at, now);
        Ok(Vec::new())
    }

    /// Attempts made in the current cycle; the backoff schedule's step.
    pub fn attempts_in_cycle(&self) -> u32 {
        let n = self
            .attempts
            .iter()
            .filter(|a| a.cycle == self.cycle)
            .count();
        u32::try_from(n).unwrap_or(u32::MAX)
    }

    /// The subscription.
    pub fn subscription_id(&self) -> SubscriptionId {
        self.subscription_id
    }
    /// The envelope id of the event.
    pub fn event_id(&self) -> &str {
        &self.event_id
    }
    /// The event's short name.
    pub fn event_name(&self) -> &EventName {
        &self.event_name
    }
    /// Where the payload is kept.
    pub fn payload_ref(&self) -> &PayloadRef {
        &self.payload_ref
    }
    /// The status.
    pub fn status(&self) -> DeliveryStatus {
        self.status
    }
    /// All attempts, oldest first.
    pub fn attempts(&self) -> &[DeliveryAttempt] {
        &self.attempts
    }
    /// The current cycle (1, then +1 per replay).
    pub fn cycle(&self) -> u32 {
        self.cycle
    }
    /// When the next attempt is due.
    pub fn next_attempt_at(&self) -> Option<DateTime<Utc>> {
        self.next_attempt_at
    }
    /// When it was delivered.
    pub fn delivered_at(&self) -> Option<DateTime<Utc>> {
        self.delivered_at
    }
    /// The failure that dead-lettered it.
    pub fn failure_id(&self) -> Option<FailureId> {
        self.failure_id
    }
}

#[cfg(test)]
mod tests;
