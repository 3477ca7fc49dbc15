//! [`IntegrationCredential`]: a reference to a secret in custody, its rotation policy and the rotation
//! state machine.

use chrono::{DateTime, TimeDelta, Utc};
use serde::{Deserialize, Serialize};

use crate::aggregate::{impl_aggregate, touch};
use crate::error::TransitionError;
use crate::event::{CredentialRotationDue, DomainEvent, IntegrationCredentialRotated};
use crate::ids::{ConnectionId, CredentialId, RotationId};
use crate::values::{ProviderKey, SecretRef, TenantId};

/// What kind of secret the credential is; decides how the provider adapter uses it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum CredentialKind {
    /// An API key.
    ApiKey,
    /// A user name and password.
    Basic,
    /// OAuth 2 client id and secret.
    Oauth2ClientCredentials,
    /// An OAuth 2 refresh token.
    Oauth2RefreshToken,
    /// A GitHub App private key and ids.
    GithubApp,
    /// A shared HMAC secret.
    HmacSecret,
    /// A static bearer token.
    BearerToken,
    /// The platform's own managed identity (the Function App's; a user-assigned one's
    /// `clientId` optionally): tokens come from the platform's identity endpoint, and no
    /// secret is stored.
    ManagedIdentity,
}

/// Where a credential stands.
///
/// | from \ call   | `start_rotation` | `promote`            | `abort_rotation`     | `revoke`  |
/// |---------------|------------------|----------------------|----------------------|-----------|
/// | `active`      | `rotating`       | refused¹             | refused¹             | `revoked` |
/// | `rotating`    | refused          | `active` + event²    | `active` (old kept)² | `revoked` |
/// | `revoked`     | refused          | refused              | refused              | refused   |
///
/// ¹ `AlreadyPromoted` when the rotation named is the last one promoted, so a retried saga step can tell
/// "done already" from "wrong state". ² Only for the rotation in progress (`RotationMismatch` otherwise).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CredentialStatus {
    /// In use.
    Active,
    /// A new secret version is being tested; the current one is still used.
    Rotating,
    /// Withdrawn for good.
    Revoked,
}

impl CredentialStatus {
    /// The status as written in JSON.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Active => "active",
            Self::Rotating => "rotating",
            Self::Revoked => "revoked",
        }
    }
}

/// When a credential must be rotated. Durations are whole seconds so the JSON stays plain numbers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RotationPolicy {
    /// Rotate this long after the current secret became current.
    pub max_age_seconds: Option<u64>,
    /// The current secret stops working at this time (vendor-imposed expiry).
    pub expires_at: Option<DateTime<Utc>>,
    /// Rotation is due this long before the earlier of the two deadlines.
    pub notice_seconds: u64,
}

/// Why a rotation is due.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum RotationDueReason {
    /// The secret reached its maximum age.
    MaxAge,
    /// The secret is about to expire.
    Expiry,
}

/// Input of [`IntegrationCredential::new`].
#[derive(Debug, Clone)]
pub struct NewCredential {
    /// The owning tenant.
    pub tenant_id: TenantId,
    /// The new id.
    pub id: CredentialId,
    /// The provider the secret is for (decides which app re-tests a rotation).
    pub provider_key: ProviderKey,
    /// The connection using it, if any.
    pub connection_id: Option<ConnectionId>,
    /// What kind of secret it is.
    pub kind: CredentialKind,
    /// The secret version in custody.
    pub secret: SecretRef,
    /// When to rotate.
    pub policy: RotationPolicy,
}

/// A credential: which secret in custody to use, and how it is rotated. Never holds the secret value.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct IntegrationCredential {
    tenant_id: TenantId,
    id: CredentialId,
    version: u64,
    created_at: DateTime<Utc>,
    updated_at: DateTime<Utc>,
    provider_key: ProviderKey,
    connection_id: Option<ConnectionId>,
    kind: CredentialKind,
    status: CredentialStatus,
    current: SecretRef,
    /// When `current` became current; the start of its max age.
    current_since: DateTime<Utc>,
    previous: Option<SecretRef>,
    pending: Option<SecretRef>,
    pending_expires_at: Option<DateTime<Utc>>,
    rotation_id: Option<RotationId>,
    last_rotation_id: Option<RotationId>,
    policy: RotationPolicy,
}
impl_aggregate!(IntegrationCredential, "integrationCredential", id: CredentialId);

impl IntegrationCredential {
    const AGGREGATE: &'static str = "credential";

    /// A new active credential whose secret became current `now`.
    pub fn new(new: NewCredential, now: DateTime<Utc>) -> Self {
        Self {
            tenant_id: new.tenant_id,
            id: new.id,
            version: 1,
            created_at: now,
            updated_at: now,
            provider_key: new.provider_key,
            connection_id: new.connection_id,
            kind: new.kind,
            status: CredentialStatus::Active,
            current: new.secret,
            current_since: now,
            previous: None,
            pending: None,
            pending_expires_at: None,
            rotation_id: None,
            last_rotation_id: None,
            policy: new.policy,
        }
    }

    fn forbidden(&self, to: CredentialStatus) -> TransitionError {
        TransitionError::Forbidden {
            aggregate: Self::AGGREGATE,
            from: self.status.as_str(),
            to: to.as_str(),
        }
    }

    /// The earliest deadline of the policy and why; `None` when the policy sets none (or the date
    /// arithmetic overflows, which only a nonsense policy can cause).
    pub fn rotation_deadline(&self) -> Option<(RotationDueReason, DateTime<Utc>)> {
        let by_age = self
            .policy
            .max_age_seconds
            .and_then(|s| i64::try_from(s).ok())
            .and_then(TimeDelta::try_seconds)
            .and_then(|age| self.current_since.checked_add_signed(age))
            .map(|at| (RotationDueReason::MaxAge, at));
        let by_expiry = self
            .policy
            .expires_at
            .map(|at| (RotationDueReason::Expiry, at));
        match (by_age, by_expiry) {
            (Some(a), Some(e)) => Some(if e.1 <= a.1 { e } else { a }),
            (a, e) => a.or(e),
        }
    }

    /// Whether the rotation timer should start a rotation: the credential is active (not already
    /// rotating, not revoked) and `now` is within the notice period of the deadline, or past it.
    pub fn is_due_for_rotation(&self, now: DateTime<Utc>) -> bool {
        self.due(now).is_some()
    }

    fn due(&self, now: DateTime<Utc>) -> Option<(RotationDueReason, DateTime<Utc>)> {
        if self.status != CredentialStatus::Active {
            return None;
        }
        let (reason, deadline) = self.rotation_deadline()?;
        let notice = i64::try_from(self.policy.notice_seconds)
            .ok()
            .and_then(TimeDelta::try_seconds)
            .unwrap_or(TimeDelta::MAX);
        // A notice longer than the calendar means "always due".
        let due_from = deadline
            .checked_sub_signed(notice)
            .unwrap_or(DateTime::<Utc>::MIN_UTC);
        (now >= due_from).then_some((reason, deadline))
    }

    /// `CredentialRotationDue` when [`Self::is_due_for_rotation`]; changes nothing. The timer emits it
    /// and starts the rotation saga.
    pub fn rotation_due_event(&self, now: DateTime<Utc>) -> Option<DomainEvent> {
        let (reason, deadline) = self.due(now)?;
        Some(DomainEvent::CredentialRotationDue(CredentialRotationDue {
            tenant_id: self.tenant_id.clone(),
            credential_id: self.id,
            provider_key: self.provider_key.clone(),
            connection_id: self.connection_id,
            reason,
            deadline,
            occurred_at: now,
        }))
    }

    /// `active → rotating`: a new secret version is stored in custody and is about to be tested.
    /// `pending_expires_at` is the new secret's own expiry, which becomes the policy's on promotion.
    pub fn start_rotation(
        &mut self,
        rotation_id: RotationId,
        pending: SecretRef,
        pending_expires_at: Option<DateTime<Utc>>,
        now: DateTime<Utc>,
    ) -> Result<Vec<DomainEvent>, TransitionError> {
        if self.status != CredentialStatus::Active {
            return Err(self.forbidden(CredentialStatus::Rotating));
        }
        if pending == self.current {
            return Err(TransitionError::SameSecret);
        }
        self.status = CredentialStatus::Rotating;
        self.pending = Some(pending);
        self.pending_expires_at = pending_expires_at;
        self.rotation_id = Some(rotation_id);
        touch(&mut self.version, &mut self.updated_at, now);
        Ok(Vec::new())
    }

    /// Checks that `rotation_id` is the rotation in progress.
    fn check_rotation(&self, rotation_id: RotationId) -> Result<(), TransitionError> {
        match self.status {
            CredentialStatus::Rotating if self.rotation_id == Some(rotation_id) => Ok(()),
            CredentialStatus::Rotating => {
                Err(TransitionError::RotationMismatch { given: rotation_id })
            }
            CredentialStatus::Active if self.last_rotation_id == Some(rotation_id) => {
                Err(TransitionError::AlreadyPromoted(rotation_id))
            }
            CredentialStatus::Active | CredentialStatus::Revoked => {
                Err(self.forbidden(CredentialStatus::Active))
            }
        }
    }

    /// `rotating → active`: the new secret passed its test. The current secret becomes `previous`
    /// (kept for calls already in flight), the pending one becomes current, and
    /// `IntegrationCredentialRotated` is emitted. Promoting twice is refused with `AlreadyPromoted`.
    pub fn promote(
        &mut self,
        rotation_id: RotationId,
        now: DateTime<Utc>,
    ) -> Result<Vec<DomainEvent>, TransitionError> {
        self.check_rotation(rotation_id)?;
        let Some(pending) = self.pending.take() else {
            return Err(TransitionError::Inconsistent {
                aggregate: Self::AGGREGATE,
                detail: "rotating without a pending secret",
            });
        };
        self.previous = Some(std::mem::replace(&mut self.current, pending));
        self.current_since = now;
        self.policy.expires_at = self.pending_expires_at.take();
        self.status = CredentialStatus::Active;
        self.rotation_id = None;
        self.last_rotation_id = Some(rotation_id);
        touch(&mut self.version, &mut self.updated_at, now);
        Ok(vec![DomainEvent::IntegrationCredentialRotated(
            IntegrationCredentialRotated {
                tenant_id: self.tenant_id.clone(),
                credential_id: self.id,
                rotation_id,
                provider_key: self.provider_key.clone(),
                connection_id: self.connection_id,
                kind: self.kind,
                occurred_at: now,
            },
        )])
    }

    /// `rotating → active` keeping the old secret: the new one failed its test. The saga records an
    /// `IntegrationFailure` (which emits `IntegrationFailed`) and deletes the pending version from custody.
    pub fn abort_rotation(
        &mut self,
        rotation_id: RotationId,
        now: DateTime<Utc>,
    ) -> Result<Vec<DomainEvent>, TransitionError> {
        self.check_rotation(rotation_id)?;
        self.pending = None;
        self.pending_expires_at = None;
        self.rotation_id = None;
        self.status = CredentialStatus::Active;
        touch(&mut self.version, &mut self.updated_at, now);
        Ok(Vec::new())
    }

    /// `active | rotating → revoked`, for good. The secret references are kept so the caller can purge
    /// every version from custody.
    pub fn revoke(&mut self, now: DateTime<Utc>) -> Result<Vec<DomainEvent>, TransitionError> {
        if self.status == CredentialStatus::Revoked {
            return Err(self.forbidden(CredentialStatus::Revoked));
        }
        self.status = CredentialStatus::Revoked;
        self.rotation_id = None;
        touch(&mut self.version, &mut self.updated_at, now);
        Ok(Vec::new())
    }

    /// Forgets the previous secret once no call can still be using it; returns it so the caller can
    /// delete it from custody.
    pub fn take_previous(&mut self, now: DateTime<Utc>) -> Option<SecretRef> {
        let previous = self.previous.take();
        if previous.is_some() {
            touch(&mut self.version, &mut self.updated_at, now);
        }
        previous
    }

    /// Links the credential to the connection using it.
    pub fn bind_connection(&mut self, connection_id: ConnectionId, now: DateTime<Utc>) {
        self.connection_id = Some(connection_id);
        touch(&mut self.version, &mut self.updated_at, now);
    }

    /// The provider.
    pub fn provider_key(&self) -> &ProviderKey {
        &self.provider_key
    }
    /// The connection using it.
    pub fn connection_id(&self) -> Option<ConnectionId> {
        self.connection_id
    }
    /// The kind of secret.
    pub fn kind(&self) -> CredentialKind {
        self.kind
    }
    /// The status.
    pub fn status(&self) -> CredentialStatus {
        self.status
    }
    /// The secret to use for calls.
    pub fn current(&self) -> &SecretRef {
        &self.current
    }
    /// When the current secret became current.
    pub fn current_since(&self) -> DateTime<Utc> {
        self.current_since
    }
    /// The secret replaced by the last rotation.
    pub fn previous(&self) -> Option<&SecretRef> {
        self.previous.as_ref()
    }
    /// The secret under test during a rotation.
    pub fn pending(&self) -> Option<&SecretRef> {
        self.pending.as_ref()
    }
    /// The rotation in progress.
    pub fn rotation_id(&self) -> Option<RotationId> {
        self.rotation_id
    }
    /// The last rotation promoted.
    pub fn last_rotation_id(&self) -> Option<RotationId> {
        self.last_rotation_id
    }
    /// The rotation policy.
    pub fn policy(&self) -> &RotationPolicy {
        &self.policy
    }
}

#[cfg(test)]
mod tests;
