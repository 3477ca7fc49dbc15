//! [`WebhookSource`]: a tenant's inbound webhook source and the event a verified delivery becomes.

use std::fmt;
use std::str::FromStr;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::aggregate::{impl_aggregate, touch};
use crate::error::ParseError;
use crate::event::{DomainEvent, WebhookReceived};
use crate::ids::{ConnectionId, SourceId};
use crate::values::{PayloadRef, SecretRef, TenantId};

/// The signature scheme an inbound source uses. Written in kebab-case (`standard-webhooks`,
/// `azure-devops`) to match the design's names and the app slugs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum WebhookScheme {
    /// `X-Hub-Signature-256`.
    Github,
    /// `Stripe-Signature`.
    Stripe,
    /// `X-Twilio-Signature`.
    Twilio,
    /// `webhook-id` / `webhook-timestamp` / `webhook-signature`.
    StandardWebhooks,
    /// `X-Slack-Signature`.
    Slack,
    /// `X-Shopify-Hmac-Sha256`.
    Shopify,
    /// Azure DevOps service hooks (basic auth or shared secret).
    AzureDevops,
    /// Azure Event Grid (validation handshake, SAS key).
    EventGrid,
    /// A plain HMAC-SHA256 of the body in a configurable header.
    GenericHmac,
    /// `X-Zendesk-Webhook-Signature` over the timestamp and the body.
    Zendesk,
    /// `X-HubSpot-Signature-v3` over method, URI, body and timestamp.
    Hubspot,
    /// Adyen's standard notifications: an HMAC per item, in the body.
    Adyen,
    /// BILL's notifications: `x-bill-sha-signature` over the body.
    Bill,
}

impl WebhookScheme {
    /// Every scheme.
    pub const ALL: [Self; 13] = [
        Self::Github,
        Self::Stripe,
        Self::Twilio,
        Self::StandardWebhooks,
        Self::Slack,
        Self::Shopify,
        Self::AzureDevops,
        Self::EventGrid,
        Self::GenericHmac,
        Self::Zendesk,
        Self::Hubspot,
        Self::Adyen,
        Self::Bill,
    ];

    /// The scheme as written in JSON.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Github => "github",
            Self::Stripe => "stripe",
            Self::Twilio => "twilio",
            Self::StandardWebhooks => "standard-webhooks",
            Self::Slack => "slack",
            Self::Shopify => "shopify",
            Self::AzureDevops => "azure-devops",
            Self::EventGrid => "event-grid",
            Self::GenericHmac => "generic-hmac",
            Self::Zendesk => "zendesk",
            Self::Hubspot => "hubspot",
            Self::Adyen => "adyen",
            Self::Bill => "bill",
        }
    }
}

impl fmt::Display for WebhookScheme {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for WebhookScheme {
    type Err = ParseError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::ALL
            .into_iter()
            .find(|scheme| scheme.as_str() == s)
            .ok_or(ParseError::Malformed {
                what: "webhook scheme",
                reason: "unknown scheme",
            })
    }
}

/// Input of [`WebhookSource::new`].
#[derive(Debug, Clone)]
pub struct NewSource {
    /// The owning tenant.
    pub tenant_id: TenantId,
    /// The new id (part of the inbound URL).
    pub id: SourceId,
    /// The signature scheme.
    pub scheme: WebhookScheme,
    /// The verification secret in custody.
    pub secret: SecretRef,
    /// The connection it belongs to, if any.
    pub connection_id: Option<ConnectionId>,
}

/// A tenant's inbound webhook source.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct WebhookSource {
    tenant_id: TenantId,
    id: SourceId,
    version: u64,
    created_at: DateTime<Utc>,
    updated_at: DateTime<Utc>,
    scheme: WebhookScheme,
    secret: SecretRef,
    connection_id: Option<ConnectionId>,
}
impl_aggregate!(WebhookSource, "webhookSource", id: SourceId);

/// What the gateway learned from a verified inbound delivery.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct InboundWebhook {
    /// The vendor's delivery id (`X-GitHub-Delivery`, Stripe event id): the idempotency key for replays.
    pub vendor_delivery_id: Option<String>,
    /// The vendor's event type (`pull_request`, `payment_intent.succeeded`).
    pub vendor_event_type: Option<String>,
    /// The body's content type.
    pub content_type: Option<String>,
}

impl WebhookSource {
    /// The longest vendor-supplied string kept in the event, in characters.
    pub const MAX_VENDOR_FIELD: usize = 256;

    /// A new source.
    pub fn new(new: NewSource, now: DateTime<Utc>) -> Self {
        Self {
            tenant_id: new.tenant_id,
            id: new.id,
            version: 1,
            created_at: now,
            updated_at: now,
            scheme: new.scheme,
            secret: new.secret,
            connection_id: new.connection_id,
        }
    }

    /// Points the source at a new verification secret (vendor-side rotation).
    pub fn replace_secret(&mut self, secret: SecretRef, now: DateTime<Utc>) {
        self.secret = secret;
        touch(&mut self.version, &mut self.updated_at, now);
    }

    /// The `WebhookReceived` event for a delivery whose signature was verified and whose raw body is
    /// stored at `payload_ref`. Vendor strings are cut to [`Self::MAX_VENDOR_FIELD`] characters and
    /// stripped of control characters, since the vendor controls them.
    pub fn received(
        &self,
        inbound: InboundWebhook,
        payload_ref: PayloadRef,
        now: DateTime<Utc>,
    ) -> DomainEvent {
        DomainEvent::WebhookReceived(WebhookReceived {
            tenant_id: self.tenant_id.clone(),
            source_id: self.id,
            scheme: self.scheme,
            connection_id: self.connection_id,
            vendor_delivery_id: inbound.vendor_delivery_id.map(|s| clean_vendor_field(&s)),
            vendor_event_type: inbound.vendor_event_type.map(|s| clean_vendor_field(&s)),
            content_type: inbound.content_type.map(|s| clean_vendor_field(&s)),
            payload_ref,
            occurred_at: now,
        })
    }

    /// The signature scheme.
    pub fn scheme(&self) -> WebhookScheme {
        self.scheme
    }
    /// The verification secret in custody.
    pub fn secret(&self) -> &SecretRef {
        &self.secret
    }
    /// The connection it belongs to.
    pub fn connection_id(&self) -> Option<ConnectionId> {
        self.connection_id
    }
}

/// Drops control characters and cuts to [`WebhookSource::MAX_VENDOR_FIELD`] characters.
fn clean_vendor_field(s: &str) -> String {
    s.chars()
        .filter(|c| !c.is_control())
        .take(WebhookSource::MAX_VENDOR_FIELD)
        .collect()
}

#[cfg(test)]
mod tests;
