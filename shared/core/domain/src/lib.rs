#![doc = include_str!("../README.md")]

mod aggregate;
mod connection;
mod credential;
mod delivery;
mod error;
mod event;
mod failure;
mod filter;
mod ids;
mod provider;
mod redact;
mod run;
mod source;
mod subscription;
mod values;

#[cfg(test)]
mod testkit;

pub use aggregate::Aggregate;
pub use connection::{
    ConnectionConfig, ConnectionStatus, ConnectionTestResult, IntegrationConnection, NewConnection,
    TestOutcome,
};
pub use credential::{
    CredentialKind, CredentialStatus, IntegrationCredential, NewCredential, RotationDueReason,
    RotationPolicy,
};
pub use delivery::{
    DeliveryAttempt, DeliveryAttemptReport, DeliveryStatus, NewDelivery, WebhookDelivery,
};
pub use error::{EventDecodeError, ParseError, TransitionError};
pub use event::{
    CredentialRotationDue, DomainEvent, EventKind, ExternalApiClientRegistered,
    IntegrationConnectionEstablished, IntegrationCredentialRotated, IntegrationFailed,
    IntegrationProviderRegistered, IntegrationRunCompleted, PaymentChanged, RecordChanged,
    WebhookDelivered, WebhookReceived, WebhookSubscribed, WebhookSubscriptionDisabled,
};
pub use failure::{FailureClassification, FailureSubject, IntegrationFailure, NewFailure};
pub use filter::{EventName, EventTypeFilter, EventTypeFilters};
pub use ids::{
    ClientId, ConnectionId, CredentialId, DeliveryId, FailureId, RotationId, RunId, SourceId,
    SubscriptionId,
};
pub use provider::{
    AuthScheme, ExternalApiClient, IntegrationProvider, NewApiClient, NewProvider,
    ProviderCategory, RateLimitHints, ResetFormat,
};
pub use redact::RedactedText;
pub use run::{AttemptOutcome, IntegrationRun, NewRun, RunAttempt, RunStatus, RunUsage};
pub use source::{InboundWebhook, NewSource, WebhookScheme, WebhookSource};
pub use subscription::{DisableReason, NewSubscription, SubscriptionStatus, WebhookSubscription};
pub use values::{
    DisplayName, HttpUrl, IdempotencyKey, OperationName, PayloadRef, ProviderKey, SecretRef,
    TenantId, TraceId,
};

/// Re-exported so callers build [`ExternalApiClient`] versions without naming the crate themselves.
pub use semver;
