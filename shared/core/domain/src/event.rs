//! Domain events: the `data` of the canonical envelope.
//!
//! See [`DomainEvent`] for the mapping from variants to CloudEvents types, names and subjects.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::credential::{CredentialKind, RotationDueReason};
use crate::error::EventDecodeError;
use crate::failure::{FailureClassification, FailureSubject};
use crate::filter::{EventName, EventTypeFilters};
use crate::ids::{
    ClientId, ConnectionId, CredentialId, DeliveryId, FailureId, RotationId, RunId, SourceId,
    SubscriptionId,
};
use crate::provider::{AuthScheme, ProviderCategory};
use crate::redact::RedactedText;
use crate::run::RunUsage;
use crate::source::WebhookScheme;
use crate::subscription::DisableReason;
use crate::values::{
    DisplayName, HttpUrl, OperationName, PayloadRef, ProviderKey, TenantId, TraceId,
};

/// A connection passed its test and may be used.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct IntegrationConnectionEstablished {
    /// The tenant.
    pub tenant_id: TenantId,
    /// The connection.
    pub connection_id: ConnectionId,
    /// Its provider.
    pub provider_key: ProviderKey,
    /// Its credential.
    pub credential_id: CredentialId,
    /// When.
    pub occurred_at: DateTime<Utc>,
}

/// A run succeeded.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct IntegrationRunCompleted {
    /// The tenant.
    pub tenant_id: TenantId,
    /// The run.
    pub run_id: RunId,
    /// Its connection.
    pub connection_id: ConnectionId,
    /// Its provider.
    pub provider_key: ProviderKey,
    /// The operation.
    pub operation: OperationName,
    /// Attempts it took.
    pub attempts: u32,
    /// What it consumed.
    pub usage: RunUsage,
    /// A short output summary.
    pub output_summary: Option<serde_json::Value>,
    /// Its trace.
    pub trace_id: TraceId,
    /// When.
    pub occurred_at: DateTime<Utc>,
}

/// A failure was recorded.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct IntegrationFailed {
    /// The tenant.
    pub tenant_id: TenantId,
    /// The failure.
    pub failure_id: FailureId,
    /// What failed.
    pub subject: FailureSubject,
    /// The provider involved.
    pub provider_key: Option<ProviderKey>,
    /// The class.
    pub classification: FailureClassification,
    /// The vendor's HTTP status.
    pub vendor_status: Option<u16>,
    /// The vendor's error code.
    pub vendor_code: Option<RedactedText>,
    /// What happened, redacted.
    pub message: RedactedText,
    /// Whether retrying may help.
    pub retryable: bool,
    /// Whether the work was dead-lettered.
    pub dead_lettered: bool,
    /// The trace.
    pub trace_id: Option<TraceId>,
    /// When.
    pub occurred_at: DateTime<Utc>,
}

/// A provider joined the catalogue.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct IntegrationProviderRegistered {
    /// Always the platform partition.
    pub tenant_id: TenantId,
    /// The key.
    pub provider_key: ProviderKey,
    /// Name shown to people.
    pub display_name: DisplayName,
    /// Category.
    pub category: ProviderCategory,
    /// Authentication scheme.
    pub auth_scheme: AuthScheme,
    /// Base URL.
    pub base_url: HttpUrl,
    /// When.
    pub occurred_at: DateTime<Utc>,
}

/// A provider gained a versioned API client.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ExternalApiClientRegistered {
    /// Always the platform partition.
    pub tenant_id: TenantId,
    /// The client.
    pub client_id: ClientId,
    /// Its provider.
    pub provider_key: ProviderKey,
    /// Its name.
    pub name: DisplayName,
    /// The API version.
    pub version: semver::Version,
    /// Its base URL.
    pub base_url: HttpUrl,
    /// When.
    pub occurred_at: DateTime<Utc>,
}

/// A credential's new secret version was promoted.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct IntegrationCredentialRotated {
    /// The tenant.
    pub tenant_id: TenantId,
    /// The credential.
    pub credential_id: CredentialId,
    /// The rotation.
    pub rotation_id: RotationId,
    /// Its provider.
    pub provider_key: ProviderKey,
    /// The connection using it.
    pub connection_id: Option<ConnectionId>,
    /// Its kind.
    pub kind: CredentialKind,
    /// When.
    pub occurred_at: DateTime<Utc>,
}

/// A credential should be rotated now.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CredentialRotationDue {
    /// The tenant.
    pub tenant_id: TenantId,
    /// The credential.
    pub credential_id: CredentialId,
    /// Its provider.
    pub provider_key: ProviderKey,
    /// The connection using it.
    pub connection_id: Option<ConnectionId>,
    /// Why.
    pub reason: RotationDueReason,
    /// The deadline (max age reached or expiry).
    pub deadline: DateTime<Utc>,
    /// When it was noticed.
    pub occurred_at: DateTime<Utc>,
}

/// A webhook subscription was created.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct WebhookSubscribed {
    /// The tenant.
    pub tenant_id: TenantId,
    /// The subscription.
    pub subscription_id: SubscriptionId,
    /// The endpoint.
    pub url: HttpUrl,
    /// What it listens to.
    pub event_types: EventTypeFilters,
    /// When.
    pub occurred_at: DateTime<Utc>,
}

/// A webhook subscription was disabled.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct WebhookSubscriptionDisabled {
    /// The tenant.
    pub tenant_id: TenantId,
    /// The subscription.
    pub subscription_id: SubscriptionId,
    /// Why.
    pub reason: DisableReason,
    /// When.
    pub occurred_at: DateTime<Utc>,
}

/// An outbound delivery was accepted by its endpoint.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct WebhookDelivered {
    /// The tenant.
    pub tenant_id: TenantId,
    /// The delivery.
    pub delivery_id: DeliveryId,
    /// Its subscription.
    pub subscription_id: SubscriptionId,
    /// The envelope id of the delivered event.
    pub event_id: String,
    /// The delivered event's short name.
    pub event_name: EventName,
    /// The endpoint's status code.
    pub status_code: Option<u16>,
    /// Attempts in the cycle that succeeded.
    pub attempts: u32,
    /// When.
    pub occurred_at: DateTime<Utc>,
}

/// A verified inbound webhook was stored and normalised.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct WebhookReceived {
    /// The tenant.
    pub tenant_id: TenantId,
    /// The source.
    pub source_id: SourceId,
    /// Its scheme.
    pub scheme: WebhookScheme,
    /// The connection the source belongs to.
    pub connection_id: Option<ConnectionId>,
    /// The vendor's delivery id.
    pub vendor_delivery_id: Option<String>,
    /// The vendor's event type.
    pub vendor_event_type: Option<String>,
    /// The body's content type.
    pub content_type: Option<String>,
    /// Where the raw body is kept.
    pub payload_ref: PayloadRef,
    /// When.
    pub occurred_at: DateTime<Utc>,
}

/// A record at a vendor changed (a CRM contact or deal, a support ticket), as the vendor's
/// webhook said, for one of the tenant's connections. The three kinds share this data.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RecordChanged {
    /// The tenant.
    pub tenant_id: TenantId,
    /// The connection whose vendor sent it.
    pub connection_id: ConnectionId,
    /// Its provider.
    pub provider_key: ProviderKey,
    /// The vendor's id of the record (a HubSpot object id, a Zendesk ticket id).
    pub record_id: String,
    /// What changed, in the vendor's words (`contact.propertyChange`,
    /// `zen:event-type:ticket.status_changed`).
    pub change: String,
    /// The property that changed, when the vendor names one (`status`, `email`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub property: Option<String>,
    /// Its new value, when the vendor gives it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub value: Option<String>,
    /// The last run that touched the record, when the platform knows it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub run_id: Option<RunId>,
    /// The vendor's id of the event, when it has one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub vendor_event_id: Option<String>,
    /// When the vendor says it happened (else when it was received).
    pub occurred_at: DateTime<Utc>,
}

/// A payment's state at its processor changed, as the payment app reconciled it (the
/// processor's object fetched and trusted, whatever order its callbacks came in). The four
/// payment events share this data.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PaymentChanged {
    /// The tenant.
    pub tenant_id: TenantId,
    /// The connection the payment was made through.
    pub connection_id: ConnectionId,
    /// Its provider (`stripe`).
    pub provider_key: ProviderKey,
    /// The processor's id of the payment (`pi_…`).
    pub payment_id: String,
    /// The run that created the payment.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub run_id: Option<RunId>,
    /// The status before (`processing`) and now (`succeeded`), processor-neutral.
    pub previous_status: String,
    pub status: String,
    /// Minor units, and refunded so far.
    pub amount: u64,
    pub amount_refunded: u64,
    /// Lowercase ISO 4217.
    pub currency: String,
    /// What made the platform look: `callback` (with the processor's event id), `run` or
    /// `sweep`.
    pub reason: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub vendor_event_id: Option<String>,
    /// When it was applied.
    pub occurred_at: DateTime<Utc>,
}

/// The kinds of [`DomainEvent`], for topology (subscription SQL filters) and decoding.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum EventKind {
    /// See [`IntegrationConnectionEstablished`].
    IntegrationConnectionEstablished,
    /// See [`IntegrationRunCompleted`].
    IntegrationRunCompleted,
    /// See [`IntegrationFailed`].
    IntegrationFailed,
    /// See [`IntegrationProviderRegistered`].
    IntegrationProviderRegistered,
    /// See [`ExternalApiClientRegistered`].
    ExternalApiClientRegistered,
    /// See [`IntegrationCredentialRotated`].
    IntegrationCredentialRotated,
    /// See [`CredentialRotationDue`].
    CredentialRotationDue,
    /// See [`WebhookSubscribed`].
    WebhookSubscribed,
    /// See [`WebhookSubscriptionDisabled`].
    WebhookSubscriptionDisabled,
    /// See [`WebhookDelivered`].
    WebhookDelivered,
    /// See [`WebhookReceived`].
    WebhookReceived,
    /// A CRM contact changed ([`RecordChanged`]).
    CrmContactChanged,
    /// A CRM deal changed ([`RecordChanged`]).
    CrmDealChanged,
    /// A support ticket changed ([`RecordChanged`]).
    SupportTicketChanged,
    /// A payment succeeded ([`PaymentChanged`]).
    PaymentSucceeded,
    /// A payment failed or was canceled ([`PaymentChanged`]).
    PaymentFailed,
    /// A payment was refunded, in part or in full ([`PaymentChanged`]).
    PaymentRefunded,
    /// A payment was disputed ([`PaymentChanged`]).
    PaymentDisputed,
}

impl EventKind {
    /// Every kind.
    pub const ALL: [Self; 18] = [
        Self::IntegrationConnectionEstablished,
        Self::IntegrationRunCompleted,
        Self::IntegrationFailed,
        Self::IntegrationProviderRegistered,
        Self::ExternalApiClientRegistered,
        Self::IntegrationCredentialRotated,
        Self::CredentialRotationDue,
        Self::WebhookSubscribed,
        Self::WebhookSubscriptionDisabled,
        Self::WebhookDelivered,
        Self::WebhookReceived,
        Self::CrmContactChanged,
        Self::CrmDealChanged,
        Self::SupportTicketChanged,
        Self::PaymentSucceeded,
        Self::PaymentFailed,
        Self::PaymentRefunded,
        Self::PaymentDisputed,
    ];

    /// Kinds whose events never fan out to webhook subscriptions, whatever their content
    /// (see [`DomainEvent::fans_out_to_webhooks`]): the gateway's topic subscription filters
    /// them out, so the bus does not deliver what would be dropped.
    pub const NEVER_FANNED_OUT: [Self; 4] = [
        Self::WebhookDelivered,
        Self::WebhookSubscribed,
        Self::IntegrationProviderRegistered,
        Self::ExternalApiClientRegistered,
    ];

    /// The CloudEvents `type`.
    pub fn event_type(self) -> &'static str {
        match self {
            Self::IntegrationConnectionEstablished => {
                "connectsoft.integration.connection.established.v1"
            }
            Self::IntegrationRunCompleted => "connectsoft.integration.run.completed.v1",
            Self::IntegrationFailed => "connectsoft.integration.failure.recorded.v1",
            Self::IntegrationProviderRegistered => "connectsoft.integration.provider.registered.v1",
            Self::ExternalApiClientRegistered => "connectsoft.integration.client.registered.v1",
            Self::IntegrationCredentialRotated => "connectsoft.integration.credential.rotated.v1",
            Self::CredentialRotationDue => "connectsoft.integration.credential.rotation-due.v1",
            Self::WebhookSubscribed => "connectsoft.integration.webhook.subscribed.v1",
            Self::WebhookSubscriptionDisabled => "connectsoft.integration.webhook.disabled.v1",
            Self::WebhookDelivered => "connectsoft.integration.webhook.delivered.v1",
            Self::WebhookReceived => "connectsoft.integration.webhook.received.v1",
            Self::CrmContactChanged => "connectsoft.crm.contact.changed.v1",
            Self::CrmDealChanged => "connectsoft.crm.deal.changed.v1",
            Self::SupportTicketChanged => "connectsoft.support.ticket.changed.v1",
            Self::PaymentSucceeded => "connectsoft.payment.succeeded.v1",
            Self::PaymentFailed => "connectsoft.payment.failed.v1",
            Self::PaymentRefunded => "connectsoft.payment.refunded.v1",
            Self::PaymentDisputed => "connectsoft.payment.disputed.v1",
        }
    }

    /// The short name used in webhook payloads and subscription filters.
    pub fn name(self) -> &'static str {
        match self {
            Self::IntegrationConnectionEstablished => "integration.connection.established",
            Self::IntegrationRunCompleted => "integration.run.completed",
            Self::IntegrationFailed => "integration.failure.recorded",
            Self::IntegrationProviderRegistered => "integration.provider.registered",
            Self::ExternalApiClientRegistered => "integration.client.registered",
            Self::IntegrationCredentialRotated => "integration.credential.rotated",
            Self::CredentialRotationDue => "integration.credential.rotation-due",
            Self::WebhookSubscribed => "integration.webhook.subscribed",
            Self::WebhookSubscriptionDisabled => "integration.webhook.disabled",
            Self::WebhookDelivered => "integration.webhook.delivered",
            Self::WebhookReceived => "integration.webhook.received",
            Self::CrmContactChanged => "crm.contact.changed",
            Self::CrmDealChanged => "crm.deal.changed",
            Self::SupportTicketChanged => "support.ticket.changed",
            Self::PaymentSucceeded => "payment.succeeded",
            Self::PaymentFailed => "payment.failed",
            Self::PaymentRefunded => "payment.refunded",
            Self::PaymentDisputed => "payment.disputed",
        }
    }

    /// The short name as an [`EventName`].
    pub fn event_name(self) -> EventName {
        EventName::from_static(self.name())
    }

    /// The kind with this CloudEvents `type`.
    pub fn from_event_type(event_type: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|k| k.event_type() == event_type)
    }
}

/// Every event the domain emits. Serialises as `{"type": "<CloudEvents type>", "data": {...}}`; the
/// envelope uses [`DomainEvent::event_type`] and [`DomainEvent::to_data`] instead.
///
/// | Variant                            | CloudEvents `type`                                    | Short name (webhook filters)          | `subject`                      |
/// |------------------------------------|-------------------------------------------------------|---------------------------------------|--------------------------------|
/// | `IntegrationConnectionEstablished` | `connectsoft.integration.connection.established.v1`   | `integration.connection.established`  | `connections/conn_…`           |
/// | `IntegrationRunCompleted`          | `connectsoft.integration.run.completed.v1`            | `integration.run.completed`           | `runs/run_…`                   |
/// | `IntegrationFailed`                | `connectsoft.integration.failure.recorded.v1`         | `integration.failure.recorded`        | `failures/fail_…`              |
/// | `IntegrationProviderRegistered`    | `connectsoft.integration.provider.registered.v1`      | `integration.provider.registered`     | `providers/<key>`              |
/// | `ExternalApiClientRegistered`      | `connectsoft.integration.client.registered.v1`        | `integration.client.registered`       | `providers/<key>/clients/cli_…`|
/// | `IntegrationCredentialRotated`     | `connectsoft.integration.credential.rotated.v1`       | `integration.credential.rotated`      | `credentials/cred_…`           |
/// | `CredentialRotationDue`            | `connectsoft.integration.credential.rotation-due.v1`  | `integration.credential.rotation-due` | `credentials/cred_…`           |
/// | `WebhookSubscribed`                | `connectsoft.integration.webhook.subscribed.v1`       | `integration.webhook.subscribed`      | `subscriptions/sub_…`          |
/// | `WebhookSubscriptionDisabled`      | `connectsoft.integration.webhook.disabled.v1`         | `integration.webhook.disabled`        | `subscriptions/sub_…`          |
/// | `WebhookDelivered`                 | `connectsoft.integration.webhook.delivered.v1`        | `integration.webhook.delivered`       | `deliveries/dlv_…`             |
/// | `WebhookReceived`                  | `connectsoft.integration.webhook.received.v1`         | `integration.webhook.received`        | `sources/src_…`                |
/// | `CrmContactChanged`                | `connectsoft.crm.contact.changed.v1`                  | `crm.contact.changed`                 | `contacts/<vendor id>`         |
/// | `CrmDealChanged`                   | `connectsoft.crm.deal.changed.v1`                     | `crm.deal.changed`                    | `deals/<vendor id>`            |
/// | `SupportTicketChanged`             | `connectsoft.support.ticket.changed.v1`               | `support.ticket.changed`              | `tickets/<vendor id>`          |
/// | `PaymentSucceeded`                 | `connectsoft.payment.succeeded.v1`                    | `payment.succeeded`                   | `payments/<processor id>`      |
/// | `PaymentFailed`                    | `connectsoft.payment.failed.v1`                       | `payment.failed`                      | `payments/<processor id>`      |
/// | `PaymentRefunded`                  | `connectsoft.payment.refunded.v1`                     | `payment.refunded`                    | `payments/<processor id>`      |
/// | `PaymentDisputed`                  | `connectsoft.payment.disputed.v1`                     | `payment.disputed`                    | `payments/<processor id>`      |
///
/// The type is `connectsoft.<short name>.v1`: the short name is what tenants see in webhook payloads and
/// subscription filters, the `v1` versions the data schema. `IntegrationFailed` is a "failure recorded"
/// because its subject may be a run, a delivery, a connection test or a rotation. All webhook events sit
/// under `integration.webhook.*` so one filter selects them.
///
/// Events carry ids, the tenant and non-secret facts only; payloads stay in Blob and are referenced.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", content = "data")]
pub enum DomainEvent {
    /// A connection became usable.
    #[serde(rename = "connectsoft.integration.connection.established.v1")]
    IntegrationConnectionEstablished(IntegrationConnectionEstablished),
    /// A run succeeded.
    #[serde(rename = "connectsoft.integration.run.completed.v1")]
    IntegrationRunCompleted(IntegrationRunCompleted),
    /// A failure was recorded.
    #[serde(rename = "connectsoft.integration.failure.recorded.v1")]
    IntegrationFailed(IntegrationFailed),
    /// A provider was registered.
    #[serde(rename = "connectsoft.integration.provider.registered.v1")]
    IntegrationProviderRegistered(IntegrationProviderRegistered),
    /// An API client was registered.
    #[serde(rename = "connectsoft.integration.client.registered.v1")]
    ExternalApiClientRegistered(ExternalApiClientRegistered),
    /// A credential was rotated.
    #[serde(rename = "connectsoft.integration.credential.rotated.v1")]
    IntegrationCredentialRotated(IntegrationCredentialRotated),
    /// A credential is due for rotation.
    #[serde(rename = "connectsoft.integration.credential.rotation-due.v1")]
    CredentialRotationDue(CredentialRotationDue),
    /// A subscription was created.
    #[serde(rename = "connectsoft.integration.webhook.subscribed.v1")]
    WebhookSubscribed(WebhookSubscribed),
    /// A subscription was disabled.
    #[serde(rename = "connectsoft.integration.webhook.disabled.v1")]
    WebhookSubscriptionDisabled(WebhookSubscriptionDisabled),
    /// A delivery was accepted.
    #[serde(rename = "connectsoft.integration.webhook.delivered.v1")]
    WebhookDelivered(WebhookDelivered),
    /// An inbound webhook was received.
    #[serde(rename = "connectsoft.integration.webhook.received.v1")]
    WebhookReceived(WebhookReceived),
    /// A CRM contact changed at the vendor.
    #[serde(rename = "connectsoft.crm.contact.changed.v1")]
    CrmContactChanged(RecordChanged),
    /// A CRM deal changed at the vendor.
    #[serde(rename = "connectsoft.crm.deal.changed.v1")]
    CrmDealChanged(RecordChanged),
    /// A support ticket changed at the vendor.
    #[serde(rename = "connectsoft.support.ticket.changed.v1")]
    SupportTicketChanged(RecordChanged),
    /// A payment succeeded at its processor.
    #[serde(rename = "connectsoft.payment.succeeded.v1")]
    PaymentSucceeded(PaymentChanged),
    /// A payment failed or was canceled at its processor.
    #[serde(rename = "connectsoft.payment.failed.v1")]
    PaymentFailed(PaymentChanged),
    /// A payment was refunded at its processor.
    #[serde(rename = "connectsoft.payment.refunded.v1")]
    PaymentRefunded(PaymentChanged),
    /// A payment was disputed at its processor.
    #[serde(rename = "connectsoft.payment.disputed.v1")]
    PaymentDisputed(PaymentChanged),
}

impl DomainEvent {
    /// The kind.
    pub fn kind(&self) -> EventKind {
        match self {
            Self::IntegrationConnectionEstablished(_) => {
                EventKind::IntegrationConnectionEstablished
            }
            Self::IntegrationRunCompleted(_) => EventKind::IntegrationRunCompleted,
            Self::IntegrationFailed(_) => EventKind::IntegrationFailed,
            Self::IntegrationProviderRegistered(_) => EventKind::IntegrationProviderRegistered,
            Self::ExternalApiClientRegistered(_) => EventKind::ExternalApiClientRegistered,
            Self::IntegrationCredentialRotated(_) => EventKind::IntegrationCredentialRotated,
            Self::CredentialRotationDue(_) => EventKind::CredentialRotationDue,
            Self::WebhookSubscribed(_) => EventKind::WebhookSubscribed,
            Self::WebhookSubscriptionDisabled(_) => EventKind::WebhookSubscriptionDisabled,
            Self::WebhookDelivered(_) => EventKind::WebhookDelivered,
            Self::WebhookReceived(_) => EventKind::WebhookReceived,
            Self::CrmContactChanged(_) => EventKind::CrmContactChanged,
            Self::CrmDealChanged(_) => EventKind::CrmDealChanged,
            Self::SupportTicketChanged(_) => EventKind::SupportTicketChanged,
            Self::PaymentSucceeded(_) => EventKind::PaymentSucceeded,
            Self::PaymentFailed(_) => EventKind::PaymentFailed,
            Self::PaymentRefunded(_) => EventKind::PaymentRefunded,
            Self::PaymentDisputed(_) => EventKind::PaymentDisputed,
        }
    }

    /// The CloudEvents `type` (`connectsoft.integration.run.completed.v1`).
    pub fn event_type(&self) -> &'static str {
        self.kind().event_type()
    }

    /// The short name (`integration.run.completed`) matched by webhook subscription filters.
    pub fn name(&self) -> &'static str {
        self.kind().name()
    }

    /// The tenant the event belongs to (the platform for catalogue events).
    pub fn tenant_id(&self) -> &TenantId {
        match self {
            Self::IntegrationConnectionEstablished(e) => &e.tenant_id,
            Self::IntegrationRunCompleted(e) => &e.tenant_id,
            Self::IntegrationFailed(e) => &e.tenant_id,
            Self::IntegrationProviderRegistered(e) => &e.tenant_id,
            Self::ExternalApiClientRegistered(e) => &e.tenant_id,
            Self::IntegrationCredentialRotated(e) => &e.tenant_id,
            Self::CredentialRotationDue(e) => &e.tenant_id,
            Self::WebhookSubscribed(e) => &e.tenant_id,
            Self::WebhookSubscriptionDisabled(e) => &e.tenant_id,
            Self::WebhookDelivered(e) => &e.tenant_id,
            Self::WebhookReceived(e) => &e.tenant_id,
            Self::CrmContactChanged(e)
            | Self::CrmDealChanged(e)
            | Self::SupportTicketChanged(e) => &e.tenant_id,
            Self::PaymentSucceeded(e)
            | Self::PaymentFailed(e)
            | Self::PaymentRefunded(e)
            | Self::PaymentDisputed(e) => &e.tenant_id,
        }
    }

    /// The CloudEvents `subject`: the resource the event is about (`runs/run_…`).
    pub fn subject(&self) -> String {
        match self {
            Self::IntegrationConnectionEstablished(e) => format!("connections/{}", e.connection_id),
            Self::IntegrationRunCompleted(e) => format!("runs/{}", e.run_id),
            Self::IntegrationFailed(e) => format!("failures/{}", e.failure_id),
            Self::IntegrationProviderRegistered(e) => format!("providers/{}", e.provider_key),
            Self::ExternalApiClientRegistered(e) => {
                format!("providers/{}/clients/{}", e.provider_key, e.client_id)
            }
            Self::IntegrationCredentialRotated(e) => format!("credentials/{}", e.credential_id),
            Self::CredentialRotationDue(e) => format!("credentials/{}", e.credential_id),
            Self::WebhookSubscribed(e) => format!("subscriptions/{}", e.subscription_id),
            Self::WebhookSubscriptionDisabled(e) => format!("subscriptions/{}", e.subscription_id),
            Self::WebhookDelivered(e) => format!("deliveries/{}", e.delivery_id),
            Self::WebhookReceived(e) => format!("sources/{}", e.source_id),
            Self::CrmContactChanged(e) => format!("contacts/{}", e.record_id),
            Self::CrmDealChanged(e) => format!("deals/{}", e.record_id),
            Self::SupportTicketChanged(e) => format!("tickets/{}", e.record_id),
            Self::PaymentSucceeded(e)
            | Self::PaymentFailed(e)
            | Self::PaymentRefunded(e)
            | Self::PaymentDisputed(e) => format!("payments/{}", e.payment_id),
        }
    }

    /// When it happened (the envelope's `time`).
    pub fn occurred_at(&self) -> DateTime<Utc> {
        match self {
            Self::IntegrationConnectionEstablished(e) => e.occurred_at,
            Self::IntegrationRunCompleted(e) => e.occurred_at,
            Self::IntegrationFailed(e) => e.occurred_at,
            Self::IntegrationProviderRegistered(e) => e.occurred_at,
            Self::ExternalApiClientRegistered(e) => e.occurred_at,
            Self::IntegrationCredentialRotated(e) => e.occurred_at,
            Self::CredentialRotationDue(e) => e.occurred_at,
            Self::WebhookSubscribed(e) => e.occurred_at,
            Self::WebhookSubscriptionDisabled(e) => e.occurred_at,
            Self::WebhookDelivered(e) => e.occurred_at,
            Self::WebhookReceived(e) => e.occurred_at,
            Self::CrmContactChanged(e)
            | Self::CrmDealChanged(e)
            | Self::SupportTicketChanged(e) => e.occurred_at,
            Self::PaymentSucceeded(e)
            | Self::PaymentFailed(e)
            | Self::PaymentRefunded(e)
            | Self::PaymentDisputed(e) => e.occurred_at,
        }
    }

    /// The trace the event belongs to, when the domain knows it (runs, failures). Others take the
    /// trace of the request that produced them.
    pub fn trace_id(&self) -> Option<TraceId> {
        match self {
            Self::IntegrationRunCompleted(e) => Some(e.trace_id),
            Self::IntegrationFailed(e) => e.trace_id,
            _ => None,
        }
    }

    /// Whether the event may be fanned out to the tenant's webhook subscriptions.
    ///
    /// `WebhookDelivered`, and failures of deliveries, are not: delivering them creates more deliveries
    /// and so more of them, a loop that a `*` subscription (or a failing endpoint) would never leave.
    /// Catalogue events belong to the platform partition, which has no subscribers.
    /// `WebhookSubscribed` is not either: it would reach the new endpoint itself, racing the
    /// caller who has just been shown the secret needed to verify it.
    pub fn fans_out_to_webhooks(&self) -> bool {
        match self {
            Self::WebhookDelivered(_) | Self::WebhookSubscribed(_) => false,
            Self::IntegrationFailed(e) => !matches!(e.subject, FailureSubject::Delivery(_)),
            other => !other.tenant_id().is_platform(),
        }
    }

    /// The envelope's `data`: the event's JSON without the type tag.
    pub fn to_data(&self) -> Result<Vec<u8>, serde_json::Error> {
        match self {
            Self::IntegrationConnectionEstablished(e) => serde_json::to_vec(e),
            Self::IntegrationRunCompleted(e) => serde_json::to_vec(e),
            Self::IntegrationFailed(e) => serde_json::to_vec(e),
            Self::IntegrationProviderRegistered(e) => serde_json::to_vec(e),
            Self::ExternalApiClientRegistered(e) => serde_json::to_vec(e),
            Self::IntegrationCredentialRotated(e) => serde_json::to_vec(e),
            Self::CredentialRotationDue(e) => serde_json::to_vec(e),
            Self::WebhookSubscribed(e) => serde_json::to_vec(e),
            Self::WebhookSubscriptionDisabled(e) => serde_json::to_vec(e),
            Self::WebhookDelivered(e) => serde_json::to_vec(e),
            Self::WebhookReceived(e) => serde_json::to_vec(e),
            Self::CrmContactChanged(e)
            | Self::CrmDealChanged(e)
            | Self::SupportTicketChanged(e) => serde_json::to_vec(e),
            Self::PaymentSucceeded(e)
            | Self::PaymentFailed(e)
            | Self::PaymentRefunded(e)
            | Self::PaymentDisputed(e) => serde_json::to_vec(e),
        }
    }

    /// Decodes an envelope's `type` and `data` back into an event.
    pub fn decode(event_type: &str, data: &[u8]) -> Result<Self, EventDecodeError> {
        let kind = EventKind::from_event_type(event_type)
            .ok_or_else(|| EventDecodeError::UnknownType(event_type.to_owned()))?;
        let wrap = |source| EventDecodeError::Data {
            event_type: kind.event_type(),
            source,
        };
        Ok(match kind {
            EventKind::IntegrationConnectionEstablished => {
                Self::IntegrationConnectionEstablished(serde_json::from_slice(data).map_err(wrap)?)
            }
            EventKind::IntegrationRunCompleted => {
                Self::IntegrationRunCompleted(serde_json::from_slice(data).map_err(wrap)?)
            }
            EventKind::IntegrationFailed => {
                Self::IntegrationFailed(serde_json::from_slice(data).map_err(wrap)?)
            }
            EventKind::IntegrationProviderRegistered => {
                Self::IntegrationProviderRegistered(serde_json::from_slice(data).map_err(wrap)?)
            }
            EventKind::ExternalApiClientRegistered => {
                Self::ExternalApiClientRegistered(serde_json::from_slice(data).map_err(wrap)?)
            }
            EventKind::IntegrationCredentialRotated => {
                Self::IntegrationCredentialRotated(serde_json::from_slice(data).map_err(wrap)?)
            }
            EventKind::CredentialRotationDue => {
                Self::CredentialRotationDue(serde_json::from_slice(data).map_err(wrap)?)
            }
            EventKind::WebhookSubscribed => {
                Self::WebhookSubscribed(serde_json::from_slice(data).map_err(wrap)?)
            }
            EventKind::WebhookSubscriptionDisabled => {
                Self::WebhookSubscriptionDisabled(serde_json::from_slice(data).map_err(wrap)?)
            }
            EventKind::WebhookDelivered => {
                Self::WebhookDelivered(serde_json::from_slice(data).map_err(wrap)?)
            }
            EventKind::WebhookReceived => {
                Self::WebhookReceived(serde_json::from_slice(data).map_err(wrap)?)
            }
            EventKind::CrmContactChanged => {
                Self::CrmContactChanged(serde_json::from_slice(data).map_err(wrap)?)
            }
            EventKind::CrmDealChanged => {
                Self::CrmDealChanged(serde_json::from_slice(data).map_err(wrap)?)
            }
            EventKind::SupportTicketChanged => {
                Self::SupportTicketChanged(serde_json::from_slice(data).map_err(wrap)?)
            }
            EventKind::PaymentSucceeded => {
                Self::PaymentSucceeded(serde_json::from_slice(data).map_err(wrap)?)
            }
            EventKind::PaymentFailed => {
                Self::PaymentFailed(serde_json::from_slice(data).map_err(wrap)?)
            }
            EventKind::PaymentRefunded => {
                Self::PaymentRefunded(serde_json::from_slice(data).map_err(wrap)?)
            }
            EventKind::PaymentDisputed => {
                Self::PaymentDisputed(serde_json::from_slice(data).map_err(wrap)?)
            }
        })
    }
}

#[cfg(test)]
mod tests;
