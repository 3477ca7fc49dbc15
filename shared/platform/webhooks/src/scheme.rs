//! Which signature scheme a source uses, with its settings (stored with the `WebhookSource`).

use serde::{Deserialize, Serialize};

/// Five minutes, the tolerance of Stripe's, Slack's and the Standard Webhooks libraries.
pub const DEFAULT_TOLERANCE_SECS: u64 = 300;

fn default_tolerance() -> u64 {
    DEFAULT_TOLERANCE_SECS
}

fn yes() -> bool {
    true
}

/// An inbound signature scheme and its settings.
///
/// Serialised with a `kind` tag and camelCase names, e.g. `{"kind":"stripe","toleranceSecs":300}`
/// or `{"kind":"azureDevOps","mode":{"type":"basic","username":"ado"}}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(
    tag = "kind",
    rename_all = "camelCase",
    rename_all_fields = "camelCase"
)]
#[non_exhaustive]
pub enum Scheme {
    /// `X-Hub-Signature-256: sha256=<hex>` over the raw body.
    Github,
    /// `Stripe-Signature: t=…,v1=…` over `"{t}.{body}"`.
    Stripe {
        /// Largest accepted distance between `t` and now.
        #[serde(default = "default_tolerance")]
        tolerance_secs: u64,
    },
    /// `X-Twilio-Signature`: base64 HMAC over the URL and the sorted form parameters.
    Twilio {
        /// SHA-1 (auth token, the default) or SHA-256 (Webhook Rules shared key).
        #[serde(default)]
        variant: TwilioVariant,
    },
    /// `webhook-id`/`webhook-timestamp`/`webhook-signature`, `v1` HMAC or `v1a` ed25519.
    StandardWebhooks {
        /// Largest accepted distance between `webhook-timestamp` and now.
        #[serde(default = "default_tolerance")]
        tolerance_secs: u64,
    },
    /// `X-Slack-Signature: v0=<hex>` over `"v0:{ts}:{body}"`.
    Slack {
        /// Largest accepted distance between `X-Slack-Request-Timestamp` and now.
        #[serde(default = "default_tolerance")]
        tolerance_secs: u64,
    },
    /// `X-Shopify-Hmac-SHA256` (or `Shopify-Hmac-Sha256`): base64 HMAC over the raw body.
    Shopify,
    /// Service hooks: no signature, a shared secret in basic auth or a custom header.
    AzureDevOps {
        /// Where the shared secret arrives.
        mode: AzureDevOpsAuth,
    },
    /// Event Grid: a shared secret in query parameter `code` or header `x-webhook-key`; the
    /// subscription validation handshake is recognised.
    EventGrid {
        /// Whether the validation handshake must carry the shared secret too (default true:
        /// put the secret in the subscription URL's `code` parameter, which Event Grid sends
        /// with the handshake as well).
        #[serde(default = "yes")]
        handshake_requires_secret: bool,
    },
    /// Our own HMAC contract (see [`GenericHmac`]).
    GenericHmac(GenericHmac),
    /// SendGrid signed Event Webhook: ECDSA P-256/SHA-256 over `timestamp + body`.
    SendGrid {
        /// SendGrid documents none; five minutes by default.
        #[serde(default = "default_tolerance")]
        tolerance_secs: u64,
    },
    /// `X-HubSpot-Signature-v3`: base64 HMAC-SHA256 over method + URI + body + timestamp
    /// (Unix milliseconds in `X-HubSpot-Request-Timestamp`).
    Hubspot {
        /// HubSpot's own: five minutes.
        #[serde(default = "default_tolerance")]
        tolerance_secs: u64,
    },
    /// `X-Zendesk-Webhook-Signature`: base64 HMAC-SHA256 over `timestamp + body`, the
    /// timestamp (ISO 8601) in `X-Zendesk-Webhook-Signature-Timestamp`.
    Zendesk {
        /// Zendesk documents none; five minutes by default.
        #[serde(default = "default_tolerance")]
        tolerance_secs: u64,
    },
    /// Adyen's standard notifications: each `NotificationRequestItem` carries
    /// `additionalData.hmacSignature`, base64 HMAC-SHA256 (the hex-decoded key) over its
    /// colon-joined fields. Adyen signs no timestamp: no replay window, and redeliveries are
    /// recognised by the item's `pspReference`, `eventCode` and `success`.
    Adyen,
    /// BILL: `x-bill-sha-signature`, base64 HMAC-SHA256 of the body with the subscription's
    /// security key; no timestamp (events carry a unique `metadata.eventId`).
    Bill,
}

impl Scheme {
    /// A short stable name for logs and metrics.
    pub fn name(&self) -> &'static str {
        match self {
            Self::Github => "github",
            Self::Stripe { .. } => "stripe",
            Self::Twilio { .. } => "twilio",
            Self::StandardWebhooks { .. } => "standard-webhooks",
            Self::Slack { .. } => "slack",
            Self::Shopify => "shopify",
            Self::AzureDevOps { .. } => "azure-devops",
            Self::EventGrid { .. } => "event-grid",
            Self::GenericHmac(_) => "generic-hmac",
            Self::SendGrid { .. } => "sendgrid",
            Self::Zendesk { .. } => "zendesk",
            Self::Hubspot { .. } => "hubspot",
            Self::Adyen => "adyen",
            Self::Bill => "bill",
        }
    }

    /// Stripe with the default tolerance.
    pub fn stripe() -> Self {
        Self::Stripe {
            tolerance_secs: DEFAULT_TOLERANCE_SECS,
        }
    }

    /// Standard Webhooks with the default tolerance.
    pub fn standard_webhooks() -> Self {
        Self::StandardWebhooks {
            tolerance_secs: DEFAULT_TOLERANCE_SECS,
        }
    }

    /// Slack with the default tolerance.
    pub fn slack() -> Self {
        Self::Slack {
            tolerance_secs: DEFAULT_TOLERANCE_SECS,
        }
    }

    /// SendGrid with the default tolerance.
    pub fn sendgrid() -> Self {
        Self::SendGrid {
            tolerance_secs: DEFAULT_TOLERANCE_SECS,
        }
    }

    /// HubSpot (signature v3) with the default tolerance.
    pub fn hubspot() -> Self {
        Self::Hubspot {
            tolerance_secs: DEFAULT_TOLERANCE_SECS,
        }
    }

    /// Zendesk with the default tolerance.
    pub fn zendesk() -> Self {
        Self::Zendesk {
            tolerance_secs: DEFAULT_TOLERANCE_SECS,
        }
    }

    /// Event Grid requiring the secret on the handshake too.
    pub fn event_grid() -> Self {
        Self::EventGrid {
            handshake_requires_secret: true,
        }
    }
}

/// Twilio's signing algorithm.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum TwilioVariant {
    /// HMAC-SHA1 keyed with the account's auth token.
    #[default]
    Sha1,
    /// HMAC-SHA256 keyed with a Webhook Rules shared key.
    Sha256,
}

/// How Azure DevOps service hooks present the shared secret.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "camelCase")]
pub enum AzureDevOpsAuth {
    /// `Authorization: Basic` with this user name; the password is the secret.
    Basic {
        /// The expected user name (compared in constant time too).
        username: String,
    },
    /// A custom header (`httpHeaders` of the subscription) whose value is the secret.
    Header {
        /// The header name.
        name: String,
    },
}

/// Encoding of a generic HMAC signature.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum SignatureEncoding {
    /// Lower- or upper-case hex.
    #[default]
    Hex,
    /// Standard base64 with padding.
    Base64,
}

/// Our generic HMAC-SHA256 contract: `X-Signature: sha256=<hex>` over `"{ts}.{body}"` with
/// `X-Timestamp`, or over the body alone when `timestamp_header` is `None`. Several signatures
/// separated by spaces or commas are accepted (rotation); any match passes. `X-Event-Id` and
/// `X-Event-Type` carry the dedupe key and the event type.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct GenericHmac {
    /// Signature header (default `X-Signature`).
    pub header: String,
    /// Prefix of each signature (default `sha256=`; may be empty).
    pub prefix: String,
    /// Timestamp header (default `X-Timestamp`); `None` signs the body alone, without replay
    /// protection.
    pub timestamp_header: Option<String>,
    /// Hex (default) or base64.
    pub encoding: SignatureEncoding,
    /// Largest accepted distance between the timestamp and now.
    pub tolerance_secs: u64,
}

impl Default for GenericHmac {
    fn default() -> Self {
        Self {
            header: "X-Signature".to_owned(),
            prefix: "sha256=".to_owned(),
            timestamp_header: Some("X-Timestamp".to_owned()),
            encoding: SignatureEncoding::Hex,
            tolerance_secs: DEFAULT_TOLERANCE_SECS,
        }
    }
}

#[cfg(test)]
mod tests;
