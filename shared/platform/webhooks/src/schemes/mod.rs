//! One module per scheme. Each authenticates first, then reads the metadata.

mod adyen;
mod azure_devops;
mod bill;
mod event_grid;
mod generic;
mod github;
mod hubspot;
mod sendgrid;
mod shopify;
mod slack;
mod standard;
mod stripe;
mod twilio;
mod zendesk;

use chrono::{DateTime, Utc};

use crate::{Handshake, Scheme, Secret, Unverified, VerifyError};

/// What a scheme learnt once the request was authenticated.
#[derive(Debug, Default)]
pub(crate) struct Outcome {
    pub(crate) delivery_id: Option<String>,
    pub(crate) event_type: Option<String>,
    pub(crate) handshake: Option<Handshake>,
    pub(crate) signed_at: Option<i64>,
}

pub(crate) fn verify(
    req: &Unverified<'_>,
    scheme: &Scheme,
    secret: &Secret,
    now: DateTime<Utc>,
) -> Result<Outcome, VerifyError> {
    match scheme {
        Scheme::Github => github::verify(req, secret),
        Scheme::Stripe { tolerance_secs } => stripe::verify(req, secret, now, *tolerance_secs),
        Scheme::Twilio { variant } => twilio::verify(req, secret, *variant),
        Scheme::StandardWebhooks { tolerance_secs } => {
            standard::verify(req, secret, now, *tolerance_secs)
        }
        Scheme::Slack { tolerance_secs } => slack::verify(req, secret, now, *tolerance_secs),
        Scheme::Shopify => shopify::verify(req, secret),
        Scheme::AzureDevOps { mode } => azure_devops::verify(req, secret, mode),
        Scheme::EventGrid {
            handshake_requires_secret,
        } => event_grid::verify(req, secret, *handshake_requires_secret),
        Scheme::GenericHmac(cfg) => generic::verify(req, secret, now, cfg),
        Scheme::SendGrid { tolerance_secs } => sendgrid::verify(req, secret, now, *tolerance_secs),
        Scheme::Zendesk { tolerance_secs } => zendesk::verify(req, secret, now, *tolerance_secs),
        Scheme::Hubspot { tolerance_secs } => hubspot::verify(req, secret, now, *tolerance_secs),
        Scheme::Adyen => adyen::verify(req, secret),
        Scheme::Bill => bill::verify(req, secret),
    }
}

/// The body as JSON, if it is JSON (read only after authentication).
pub(crate) fn json_body(body: &[u8]) -> Option<serde_json::Value> {
    serde_json::from_slice(body).ok()
}

/// The events of a JSON body that is an array of events (or a single event object).
pub(crate) fn events(body: &[u8]) -> Vec<serde_json::Value> {
    match json_body(body) {
        Some(serde_json::Value::Array(items)) => items,
        Some(v @ serde_json::Value::Object(_)) => vec![v],
        _ => Vec::new(),
    }
}

/// Delivery id and event type of a batch: the id of a single event (a batch of several has
/// none: the body hash is used), the type when every event shares it.
pub(crate) fn batch_meta(
    events: &[serde_json::Value],
    id_field: &str,
    type_field: &str,
) -> (Option<String>, Option<String>) {
    let id = match events {
        [one] => crate::headers::json_str(one, &[id_field]),
        _ => None,
    };
    let mut types = events
        .iter()
        .map(|e| crate::headers::json_str(e, &[type_field]));
    let first = types.next().flatten();
    let event_type = if types.all(|t| t == first) {
        first
    } else {
        None
    };
    (id, event_type)
}
