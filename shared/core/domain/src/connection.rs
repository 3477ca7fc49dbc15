//! [`IntegrationConnection`]: a tenant's link to one provider, and its state machine.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::aggregate::{impl_aggregate, touch};
use crate::error::TransitionError;
use crate::event::{DomainEvent, IntegrationConnectionEstablished};
use crate::ids::{ConnectionId, CredentialId, FailureId};
use crate::redact::RedactedText;
use crate::values::{DisplayName, ProviderKey, TenantId};

/// Non-secret connection settings (organisation, region, deployment name). Secrets go to custody.
pub type ConnectionConfig = serde_json::Map<String, serde_json::Value>;

/// Where a connection stands.
///
/// | from \ event   | test succeeds          | test fails        | `disable` | `enable` |
/// |----------------|------------------------|-------------------|-----------|----------|
/// | `pending`      | `established` + event  | `failed`          | `disabled`| refused  |
/// | `established`  | stays (re-test)        | `failed`          | `disabled`| refused  |
/// | `failed`       | `established` + event  | stays (re-test)   | `disabled`| refused  |
/// | `disabled`     | refused                | refused           | refused   | `pending`|
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ConnectionStatus {
    /// Created, not yet tested.
    Pending,
    /// The last test succeeded; runs may use it.
    Established,
    /// The last test failed.
    Failed,
    /// Switched off; no tests or runs until enabled.
    Disabled,
}

impl ConnectionStatus {
    /// The status as written in JSON.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Pending => "pending",
            Self::Established => "established",
            Self::Failed => "failed",
            Self::Disabled => "disabled",
        }
    }
}

/// How a connection test ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TestOutcome {
    /// The vendor accepted the credential.
    Succeeded,
    /// The test failed; an [`IntegrationFailure`](crate::IntegrationFailure) says why.
    Failed,
}

/// The result of testing a connection against the vendor.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ConnectionTestResult {
    /// When the test ran.
    pub tested_at: DateTime<Utc>,
    /// How it ended.
    pub outcome: TestOutcome,
    /// How long the vendor took.
    pub latency_ms: Option<u64>,
    /// The failure recorded for a failed test.
    pub failure_id: Option<FailureId>,
    /// A short, redacted explanation.
    pub message: Option<RedactedText>,
}

impl ConnectionTestResult {
    /// A successful test.
    pub fn succeeded(tested_at: DateTime<Utc>, latency_ms: Option<u64>) -> Self {
        Self {
            tested_at,
            outcome: TestOutcome::Succeeded,
            latency_ms,
            failure_id: None,
            message: None,
        }
    }

    /// A failed test and the failure recorded for it.
    pub fn failed(tested_at: DateTime<Utc>, failure_id: FailureId, message: RedactedText) -> Self {
        Self {
            tested_at,
            outcome: TestOutcome::Failed,
            latency_ms: None,
            failure_id: Some(failure_id),
            message: Some(message),
        }
    }
}

/// Input of [`IntegrationConnection::new`].
#[derive(Debug, Clone)]
pub struct NewConnection {
    /// The owning tenant.
    pub tenant_id: TenantId,
    /// The new id.
    pub id: ConnectionId,
    /// The provider it links to.
    pub provider_key: ProviderKey,
    /// Name shown to people.
    pub display_name: DisplayName,
    /// Non-secret settings.
    pub config: ConnectionConfig,
    /// The credential in custody.
    pub credential_id: CredentialId,
}

/// A tenant's link to one provider.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct IntegrationConnection {
    tenant_id: TenantId,
    id: ConnectionId,
    version: u64,
    created_at: DateTime<Utc>,
    updated_at: DateTime<Utc>,
    provider_key: ProviderKey,
    display_name: DisplayName,
    config: ConnectionConfig,
    credential_id: CredentialId,
    status: ConnectionStatus,
    last_test_result: Option<ConnectionTestResult>,
}
impl_aggregate!(IntegrationConnection, "integrationConnection", id: ConnectionId);

impl IntegrationConnection {
    const AGGREGATE: &'static str = "connection";

    /// A new, untested (`pending`) connection.
    pub fn new(new: NewConnection, now: DateTime<Utc>) -> Self {
        Self {
            tenant_id: new.tenant_id,
            id: new.id,
            version: 1,
            created_at: now,
            updated_at: now,
            provider_key: new.provider_key,
            display_name: new.display_name,
            config: new.config,
            credential_id: new.credential_id,
            status: ConnectionStatus::Pending,
            last_test_result: None,
        }
    }

    fn forbidden(&self, to: ConnectionStatus) -> TransitionError {
        TransitionError::Forbidden {
            aggregate: Self::AGGREGATE,
            from: self.status.as_str(),
            to: to.as_str(),
        }
    }

    /// Applies a test result. Success moves `pending`/`failed` to `established` and emits
    /// `IntegrationConnectionEstablished`; a successful re-test of an established connection (after a
    /// credential rotation) only records the result, so the event means "became usable". Failure moves
    /// to `failed`. A disabled connection is not tested.
    pub fn record_test(
        &mut self,
        result: ConnectionTestResult,
        now: DateTime<Utc>,
    ) -> Result<Vec<DomainEvent>, TransitionError> {
        let target = match result.outcome {
            TestOutcome::Succeeded => ConnectionStatus::Established,
            TestOutcome::Failed => ConnectionStatus::Failed,
        };
        if self.status == ConnectionStatus::Disabled {
            return Err(self.forbidden(target));
        }
        let became_established =
            target == ConnectionStatus::Established && self.status != ConnectionStatus::Established;
        self.status = target;
        self.last_test_result = Some(result);
        touch(&mut self.version, &mut self.updated_at, now);
        let mut events = Vec::new();
        if became_established {
            events.push(DomainEvent::IntegrationConnectionEstablished(
                IntegrationConnectionEstablished {
                    tenant_id: self.tenant_id.clone(),
                    connection_id: self.id,
                    provider_key: self.provider_key.clone(),
                    credential_id: self.credential_id,
                    occurred_at: now,
                },
            ));
        }
        Ok(events)
    }

    /// Switches the connection off from any other status.
    pub fn disable(&mut self, now: DateTime<Utc>) -> Result<Vec<DomainEvent>, TransitionError> {
        if self.status == ConnectionStatus::Disabled {
            return Err(self.forbidden(ConnectionStatus::Disabled));
        }
        self.status = ConnectionStatus::Disabled;
        touch(&mut self.version, &mut self.updated_at, now);
        Ok(Vec::new())
    }

    /// Switches a disabled connection back on. It returns to `pending`, not to its old status: the
    /// credential may have changed while it was off, so it must pass a fresh test before runs use it.
    pub fn enable(&mut self, now: DateTime<Utc>) -> Result<Vec<DomainEvent>, TransitionError> {
        if self.status != ConnectionStatus::Disabled {
            return Err(self.forbidden(ConnectionStatus::Pending));
        }
        self.status = ConnectionStatus::Pending;
        touch(&mut self.version, &mut self.updated_at, now);
        Ok(Vec::new())
    }

    /// Whether runs may use the connection.
    pub fn is_usable(&self) -> bool {
        self.status == ConnectionStatus::Established
    }

    /// The provider.
    pub fn provider_key(&self) -> &ProviderKey {
        &self.provider_key
    }
    /// Name shown to people.
    pub fn display_name(&self) -> &DisplayName {
        &self.display_name
    }
    /// Non-secret settings.
    pub fn config(&self) -> &ConnectionConfig {
        &self.config
    }
    /// The credential in custody.
    pub fn credential_id(&self) -> CredentialId {
        self.credential_id
    }
    /// The status.
    pub fn status(&self) -> ConnectionStatus {
        self.status
    }
    /// The last test result.
    pub fn last_test_result(&self) -> Option<&ConnectionTestResult> {
        self.last_test_result.as_ref()
    }
}

#[cfg(test)]
mod tests;
