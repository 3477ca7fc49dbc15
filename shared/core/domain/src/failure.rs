//! [`IntegrationFailure`]: the record of something that went wrong, classified, without secrets.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::aggregate::{impl_aggregate, touch};
use crate::error::TransitionError;
use crate::event::{DomainEvent, IntegrationFailed};
use crate::ids::{ConnectionId, CredentialId, DeliveryId, FailureId, RunId};
use crate::redact::RedactedText;
use crate::values::{ProviderKey, TenantId, TraceId};

/// What kind of failure it was; drives retry decisions and alerting.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FailureClassification {
    /// A network blip or a 5xx that may pass.
    Transient,
    /// The vendor throttled us (429).
    RateLimited,
    /// The call took too long.
    Timeout,
    /// The circuit breaker refused the call.
    CircuitOpen,
    /// The credential was refused (401/403).
    Auth,
    /// Our input was refused before or by the vendor (400).
    Validation,
    /// The vendor reported an error we cannot classify further.
    VendorError,
    /// The vendor understood the request and will not do it (422, business rule).
    Unprocessable,
}

impl FailureClassification {
    /// Whether failures of this class are worth retrying unless the caller knows better.
    pub fn is_retryable_by_default(self) -> bool {
        matches!(
            self,
            Self::Transient | Self::RateLimited | Self::Timeout | Self::CircuitOpen
        )
    }
}

/// What a failure belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(tag = "kind", content = "id", rename_all = "camelCase")]
pub enum FailureSubject {
    /// A run.
    Run(RunId),
    /// An outbound webhook delivery.
    Delivery(DeliveryId),
    /// A connection test.
    Connection(ConnectionId),
    /// A credential rotation.
    Credential(CredentialId),
}

impl FailureSubject {
    /// The subject as a CloudEvents-style path (`runs/run_…`).
    pub fn path(&self) -> String {
        match self {
            Self::Run(id) => format!("runs/{id}"),
            Self::Delivery(id) => format!("deliveries/{id}"),
            Self::Connection(id) => format!("connections/{id}"),
            Self::Credential(id) => format!("credentials/{id}"),
        }
    }
}

/// Input of [`IntegrationFailure::record`].
#[derive(Debug, Clone)]
pub struct NewFailure {
    /// The owning tenant.
    pub tenant_id: TenantId,
    /// The new id.
    pub id: FailureId,
    /// What it belongs to.
    pub subject: FailureSubject,
    /// The provider involved, if any.
    pub provider_key: Option<ProviderKey>,
    /// The class.
    pub classification: FailureClassification,
    /// The vendor's HTTP status, if the vendor answered.
    pub vendor_status: Option<u16>,
    /// The vendor's own error code (`rate_limit_exceeded`), if it gave one.
    pub vendor_code: Option<RedactedText>,
    /// What happened, already redacted.
    pub message: RedactedText,
    /// Whether retrying may help.
    pub retryable: bool,
    /// Whether the work was dead-lettered.
    pub dead_lettered: bool,
    /// The trace of the work.
    pub trace_id: Option<TraceId>,
}

/// Something that went wrong. Text fields are [`RedactedText`], so a secret cannot reach it by accident.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct IntegrationFailure {
    tenant_id: TenantId,
    id: FailureId,
    version: u64,
    created_at: DateTime<Utc>,
    updated_at: DateTime<Utc>,
    subject: FailureSubject,
    provider_key: Option<ProviderKey>,
    classification: FailureClassification,
    vendor_status: Option<u16>,
    vendor_code: Option<RedactedText>,
    message: RedactedText,
    retryable: bool,
    dead_lettered: bool,
    trace_id: Option<TraceId>,
}
impl_aggregate!(IntegrationFailure, "integrationFailure", id: FailureId);

impl IntegrationFailure {
    /// Records a failure and emits `IntegrationFailed`.
    pub fn record(new: NewFailure, now: DateTime<Utc>) -> (Self, DomainEvent) {
        let failure = Self {
            tenant_id: new.tenant_id,
            id: new.id,
            version: 1,
            created_at: now,
            updated_at: now,
            subject: new.subject,
            provider_key: new.provider_key,
            classification: new.classification,
            vendor_status: new.vendor_status,
            vendor_code: new.vendor_code,
            message: new.message,
            retryable: new.retryable,
            dead_lettered: new.dead_lettered,
            trace_id: new.trace_id,
        };
        let event = failure.failed_event(now);
        (failure, event)
    }

    fn failed_event(&self, now: DateTime<Utc>) -> DomainEvent {
        DomainEvent::IntegrationFailed(IntegrationFailed {
            tenant_id: self.tenant_id.clone(),
            failure_id: self.id,
            subject: self.subject,
            provider_key: self.provider_key.clone(),
            classification: self.classification,
            vendor_status: self.vendor_status,
            vendor_code: self.vendor_code.clone(),
            message: self.message.clone(),
            retryable: self.retryable,
            dead_lettered: self.dead_lettered,
            trace_id: self.trace_id,
            occurred_at: now,
        })
    }

    /// Marks the failure's work as dead-lettered (a poison message after its last delivery). Emits
    /// nothing: the failure was already announced. Marking twice is refused.
    pub fn mark_dead_lettered(
        &mut self,
        now: DateTime<Utc>,
    ) -> Result<Vec<DomainEvent>, TransitionError> {
        if self.dead_lettered {
            return Err(TransitionError::Forbidden {
                aggregate: "failure",
                from: "dead_lettered",
                to: "dead_lettered",
            });
        }
        self.dead_lettered = true;
        self.retryable = false;
        touch(&mut self.version, &mut self.updated_at, now);
        Ok(Vec::new())
    }

    /// What it belongs to.
    pub fn subject(&self) -> FailureSubject {
        self.subject
    }
    /// The provider involved.
    pub fn provider_key(&self) -> Option<&ProviderKey> {
        self.provider_key.as_ref()
    }
    /// The class.
    pub fn classification(&self) -> FailureClassification {
        self.classification
    }
    /// The vendor's HTTP status.
    pub fn vendor_status(&self) -> Option<u16> {
        self.vendor_status
    }
    /// The vendor's error code.
    pub fn vendor_code(&self) -> Option<&RedactedText> {
        self.vendor_code.as_ref()
    }
    /// What happened.
    pub fn message(&self) -> &RedactedText {
        &self.message
    }
    /// Whether retrying may help.
    pub fn retryable(&self) -> bool {
        self.retryable
    }
    /// Whether the work was dead-lettered.
    pub fn dead_lettered(&self) -> bool {
        self.dead_lettered
    }
    /// The trace of the work.
    pub fn trace_id(&self) -> Option<TraceId> {
        self.trace_id
    }
}

#[cfg(test)]
mod tests;
