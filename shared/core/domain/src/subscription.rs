//! [`WebhookSubscription`]: a tenant's outbound endpoint, its signing secrets and its health.

use std::num::NonZeroU32;

use chrono::{DateTime, TimeDelta, Utc};
use serde::{Deserialize, Serialize};

use crate::aggregate::{impl_aggregate, touch};
use crate::error::TransitionError;
use crate::event::{DomainEvent, WebhookSubscribed, WebhookSubscriptionDisabled};
use crate::filter::EventTypeFilters;
use crate::ids::SubscriptionId;
use crate::values::{DisplayName, HttpUrl, SecretRef, TenantId};

/// Where a subscription stands.
///
/// | from \ call | `disable`            | `enable`                      |
/// |-------------|----------------------|-------------------------------|
/// | `active`    | `disabled` + event   | refused                       |
/// | `disabled`  | refused              | `active` (failure streak reset) |
///
/// `record_success`, `record_failure` and `rotate_secret` are bookkeeping, allowed in both states.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SubscriptionStatus {
    /// Receives deliveries.
    Active,
    /// Receives nothing until enabled.
    Disabled,
}

impl SubscriptionStatus {
    /// The status as written in JSON.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Active => "active",
            Self::Disabled => "disabled",
        }
    }
}

/// Why a subscription was disabled.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DisableReason {
    /// The endpoint answered `410 Gone`.
    EndpointGone,
    /// The endpoint kept failing for longer than allowed.
    FailingTooLong,
    /// The tenant or an operator asked for it.
    Requested,
}

/// Input of [`WebhookSubscription::subscribe`].
#[derive(Debug, Clone)]
pub struct NewSubscription {
    /// The owning tenant.
    pub tenant_id: TenantId,
    /// The new id.
    pub id: SubscriptionId,
    /// The endpoint.
    pub url: HttpUrl,
    /// A note for people.
    pub description: Option<DisplayName>,
    /// Which events it wants.
    pub event_types: EventTypeFilters,
    /// The signing secret (`whsec_…`) in custody.
    pub secret: SecretRef,
    /// Deliveries per second the endpoint accepts.
    pub rate_limit_per_second: Option<NonZeroU32>,
    /// Deliver in order (one at a time, Service Bus session per subscription).
    pub ordered: bool,
}

/// A tenant's outbound webhook endpoint.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct WebhookSubscription {
    tenant_id: TenantId,
    id: SubscriptionId,
    version: u64,
    created_at: DateTime<Utc>,
    updated_at: DateTime<Utc>,
    url: HttpUrl,
    description: Option<DisplayName>,
    event_types: EventTypeFilters,
    secret: SecretRef,
    previous_secret: Option<SecretRef>,
    previous_secret_until: Option<DateTime<Utc>>,
    status: SubscriptionStatus,
    disabled_reason: Option<DisableReason>,
    failure_streak: u32,
    first_failure_at: Option<DateTime<Utc>>,
    rate_limit_per_second: Option<NonZeroU32>,
    ordered: bool,
}
impl_aggregate!(WebhookSubscription, "webhookSubscription", id: SubscriptionId);

impl WebhookSubscription {
    const AGGREGATE: &'static str = "subscription";

    /// A new active subscription; emits `WebhookSubscribed`.
    pub fn subscribe(new: NewSubscription, now: DateTime<Utc>) -> (Self, DomainEvent) {
        let sub = Self {
            tenant_id: new.tenant_id,
            id: new.id,
            version: 1,
            created_at: now,
            updated_at: now,
            url: new.url,
            description: new.description,
            event_types: new.event_types,
            secret: new.secret,
            previous_secret: None,
            previous_secret_until: None,
            status: SubscriptionStatus::Active,
            disabled_reason: None,
            failure_streak: 0,
            first_failure_at: None,
            rate_limit_per_second: new.rate_limit_per_second,
            ordered: new.ordered,
        };
        let event = DomainEvent::WebhookSubscribed(WebhookSubscribed {
            tenant_id: sub.tenant_id.clone(),
            subscription_id: sub.id,
            url: sub.url.clone(),
            event_types: sub.event_types.clone(),
            occurred_at: now,
        });
        (sub, event)
    }

    fn forbidden(&self, to: SubscriptionStatus) -> TransitionError {
        TransitionError::Forbidden {
            aggregate: Self::AGGREGATE,
            from: self.status.as_str(),
            to: to.as_str(),
        }
    }

    /// Whether an event with this name should be delivered here now.
    pub fn wants(&self, event_name: &str) -> bool {
        self.status == SubscriptionStatus::Active && self.event_types.matches(event_name)
    }

    /// `active → disabled`; emits `WebhookSubscriptionDisabled`.
    pub fn disable(
        &mut self,
        reason: DisableReason,
        now: DateTime<Utc>,
    ) -> Result<Vec<DomainEvent>, TransitionError> {
        if self.status != SubscriptionStatus::Active {
            return Err(self.forbidden(SubscriptionStatus::Disabled));
        }
        self.status = SubscriptionStatus::Disabled;
        self.disabled_reason = Some(reason);
        touch(&mut self.version, &mut self.updated_at, now);
        Ok(vec![DomainEvent::WebhookSubscriptionDisabled(
            WebhookSubscriptionDisabled {
                tenant_id: self.tenant_id.clone(),
                subscription_id: self.id,
                reason,
                occurred_at: now,
            },
        )])
    }

    /// `disabled → active`. The failure streak starts over, or the next failure would disable it again.
    pub fn enable(&mut self, now: DateTime<Utc>) -> Result<Vec<DomainEvent>, TransitionError> {
        if self.status != SubscriptionStatus::Disabled {
            return Err(self.forbidden(SubscriptionStatus::Active));
        }
        self.status = SubscriptionStatus::Active;
        self.disabled_reason = None;
        self.failure_streak = 0;
        self.first_failure_at = None;
        touch(&mut self.version, &mut self.updated_at, now);
        Ok(Vec::new())
    }

    /// A delivery succeeded: the streak ends.
    pub fn record_success(&mut self, now: DateTime<Utc>) {
        if self.failure_streak == 0 && self.first_failure_at.is_none() {
            return; // nothing changed; keep the document (and its version) as is
        }
        self.failure_streak = 0;
        self.first_failure_at = None;
        touch(&mut self.version, &mut self.updated_at, now);
    }

    /// A delivery attempt failed: the streak grows; its start is remembered.
    pub fn record_failure(&mut self, now: DateTime<Utc>) {
        self.failure_streak = self.failure_streak.saturating_add(1);
        self.first_failure_at.get_or_insert(now);
        touch(&mut self.version, &mut self.updated_at, now);
    }

    /// Whether an active subscription has been failing, without a success, for at least
    /// `max_failing_period`. The caller then calls [`Self::disable`] with
    /// [`DisableReason::FailingTooLong`].
    pub fn should_disable(&self, now: DateTime<Utc>, max_failing_period: TimeDelta) -> bool {
        self.status == SubscriptionStatus::Active
            && self
                .first_failure_at
                .is_some_and(|first| now.signed_duration_since(first) >= max_failing_period)
    }

    /// Replaces the signing secret. The old one stays valid for signing until `overlap_until`, so
    /// receivers can switch over; a rotation during an overlap drops the older secret.
    pub fn rotate_secret(
        &mut self,
        new_secret: SecretRef,
        overlap_until: DateTime<Utc>,
        now: DateTime<Utc>,
    ) {
        self.previous_secret = Some(std::mem::replace(&mut self.secret, new_secret));
        self.previous_secret_until = Some(overlap_until);
        touch(&mut self.version, &mut self.updated_at, now);
    }

    /// The secrets to sign with at `now`: the current one, plus the previous during its overlap.
    /// Standard Webhooks allows several signatures in one header.
    pub fn signing_secrets(&self, now: DateTime<Utc>) -> Vec<&SecretRef> {
        let mut secrets = vec![&self.secret];
        if let (Some(prev), Some(until)) = (&self.previous_secret, self.previous_secret_until)
            && now < until
        {
            secrets.push(prev);
        }
        secrets
    }

    /// The endpoint.
    pub fn url(&self) -> &HttpUrl {
        &self.url
    }
    /// The note for people.
    pub fn description(&self) -> Option<&DisplayName> {
        self.description.as_ref()
    }
    /// Which events it wants.
    pub fn event_types(&self) -> &EventTypeFilters {
        &self.event_types
    }
    /// The current signing secret.
    pub fn secret(&self) -> &SecretRef {
        &self.secret
    }
    /// The previous signing secret.
    pub fn previous_secret(&self) -> Option<&SecretRef> {
        self.previous_secret.as_ref()
    }
    /// Until when the previous secret still signs.
    pub fn previous_secret_until(&self) -> Option<DateTime<Utc>> {
        self.previous_secret_until
    }
    /// The status.
    pub fn status(&self) -> SubscriptionStatus {
        self.status
    }
    /// Why it was disabled.
    pub fn disabled_reason(&self) -> Option<DisableReason> {
        self.disabled_reason
    }
    /// Consecutive failed attempts.
    pub fn failure_streak(&self) -> u32 {
        self.failure_streak
    }
    /// When the current streak began.
    pub fn first_failure_at(&self) -> Option<DateTime<Utc>> {
        self.first_failure_at
    }
    /// Deliveries per second the endpoint accepts.
    pub fn rate_limit_per_second(&self) -> Option<NonZeroU32> {
        self.rate_limit_per_second
    }
    /// Whether deliveries are ordered.
    pub fn ordered(&self) -> bool {
        self.ordered
    }
}

#[cfg(test)]
mod tests;
