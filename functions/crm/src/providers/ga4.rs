//! The `ga4` provider: Google Analytics 4's Measurement Protocol, `trackEvent` only.
//!
//! What it relies on, from Google's reference:
//! - `POST {origin}/mp/collect?measurement_id=G-…&api_secret=…` with `{client_id, user_id?,
//!   timestamp_micros, events: [{name, params}]}`; the origin is
//!   `https://www.google-analytics.com`, or `https://region1.google-analytics.com` for EU
//!   collection (the connection's `baseUrl`). It answers 2xx (204) whatever it does with the
//!   payload: it reports no errors, so names are checked here against its rules (event and
//!   parameter names at most 40 letters, digits or `_`, starting with a letter; at most 25
//!   parameters; string values at most 100 characters; not the reserved prefixes `_`,
//!   `firebase_`, `ga_`, `google_`, `gtag.`) and a refusal is a `validation` failure.
//! - The validation server, `POST {origin}/debug/mp/collect`, answers 200
//!   `{"validationMessages": [{fieldPath, description, validationCode}]}`: the connection
//!   test sends a sample event there and fails with its messages, if any.
//! - `client_id` is required for web streams: the caller's `userId` (also sent as
//!   `user_id`), else a pseudonymous id derived from the email (SHA-256, never the address:
//!   Google forbids personal data in Measurement Protocol payloads).
//! - `timestamp_micros` may go back at most 72 hours: an older `time` is refused here.
//! - No idempotency key: an event sent twice may count twice, so it is not repeated after it
//!   may have arrived.
//!
//! Credential: `apiKey`, the stream's Measurement Protocol API secret. Config:
//! `measurementId` (`G-…`), `baseUrl` (EU collection).

use async_trait::async_trait;
use domain::{CredentialKind, FailureClassification};
use integration_kit::{
    Answer, Done, InputError, Provider, ProviderCall, Served, Serves, Step, VendorAnswers,
    call_failed, query_value,
};
use reqwest::Method;
use resilience::{CallError, Safety};
use serde_json::{Map, Value, json};
use sha2::{Digest as _, Sha256};

use crate::{Event, EventTracked, TrackEvent};

pub const DEFAULT_BASE_URL: &str = "https://www.google-analytics.com";
/// The furthest back an event's time may be.
const MAX_BACKDATE: chrono::TimeDelta = chrono::TimeDelta::hours(72);

pub struct Ga4;

#[derive(Debug, serde::Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct Ga4Config {
    measurement_id: String,
    #[serde(default, rename = "baseUrl")]
    _base_url: Option<String>,
}

impl integration_kit::ProviderConfig for Ga4Config {
    fn check(&self) -> Result<(), InputError> {
        let id = self.measurement_id.strip_prefix("G-").unwrap_or_default();
        if (4..=20).contains(&id.len()) && id.bytes().all(|b| b.is_ascii_alphanumeric()) {
            Ok(())
        } else {
            Err(InputError::at(
                "measurementId",
                "must be a web stream's measurement id (G-XXXXXXXXXX)",
            ))
        }
    }
}

/// A name as the Measurement Protocol takes it.
fn ga4_name(name: &str) -> bool {
    (1..=40).contains(&name.len())
        && name.starts_with(|c: char| c.is_ascii_alphabetic())
        && name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_')
        && !["firebase_", "ga_", "google_"]
            .iter()
            .any(|p| name.starts_with(p))
}

fn refused(why: impl Into<String>) -> CallError {
    call_failed(FailureClassification::Validation, why)
}

/// The request body of `event`.
fn payload(event: &Event, now: chrono::DateTime<chrono::Utc>) -> Result<Value, CallError> {
    if !ga4_name(&event.name) {
        return Err(refused(format!(
            "GA4 event names are at most 40 letters, digits or _, starting with a letter: {:?}",
            event.name.as_str()
        )));
    }
    let mut params = Map::new();
    for (name, value) in &event.properties {
        if !ga4_name(name) {
            return Err(refused(format!(
                "GA4 parameter names are at most 40 letters, digits or _, starting with a letter: {name:?}"
            )));
        }
        if value.as_str().is_some_and(|s| s.chars().count() > 100) {
            return Err(refused(format!(
                "GA4 parameter values are at most 100 characters: {name}"
            )));
        }
        params.insert(name.clone(), value.clone());
    }
    if let Some(value) = event.value {
        params.insert("value".into(), json!(value));
    }
    if let Some(currency) = &event.currency {
        params.insert("currency".into(), json!(currency.as_str()));
    }
    if params.len() > 25 {
        return Err(refused("GA4 takes at most 25 parameters per event"));
    }
    let time = event.time.unwrap_or(now);
    if now - time > MAX_BACKDATE {
        return Err(refused(
            "GA4 takes events at most 72 hours old: the time is too far back",
        ));
    }
    let client_id = match (&event.user_id, &event.email) {
        (Some(id), _) => id.to_string(),
        (None, Some(email)) => Sha256::digest(email.to_ascii_lowercase().as_bytes())[..16]
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect(),
        (None, None) => return Err(refused("userId or email is required")),
    };
    let mut body = json!({
        "client_id": client_id,
        "timestamp_micros": time.timestamp_micros(),
        "events": [{"name": event.name.as_str(), "params": params}],
    });
    if let Some(id) = &event.user_id {
        body["user_id"] = json!(id.as_str());
    }
    Ok(body)
}

#[async_trait]
impl Provider for Ga4 {
    fn key(&self) -> &'static str {
        "ga4"
    }

    fn credential_kinds(&self) -> &'static [CredentialKind] {
        &[CredentialKind::ApiKey]
    }

    /// A sample event to the validation server: its messages, if any, fail the test.
    async fn test_connection(&self, call: &ProviderCall<'_>) -> Result<(), CallError> {
        let sample = json!({"client_id": "connection-test",
                            "events": [{"name": "connection_test", "params": {}}]});
        let answer = collect(call, "/debug/mp/collect", &sample, Safety::Safe).await?;
        let Some(messages) = answer["validationMessages"].as_array() else {
            return Err(integration_kit::malformed("no validationMessages"));
        };
        if let Some(m) = messages.first() {
            return Err(refused(format!(
                "GA4's validation server: {} ({})",
                m["description"].as_str().unwrap_or_default(),
                m["validationCode"].as_str().unwrap_or_default()
            )));
        }
        Ok(())
    }

    fn serves(served: &mut Served<Self>) {
        served.operation::<TrackEvent>().config::<Ga4Config>();
    }
}

#[async_trait]
impl Serves<TrackEvent> for Ga4 {
    async fn execute(
        &self,
        call: &ProviderCall<'_>,
        input: &Event,
    ) -> Result<Step<EventTracked>, CallError> {
        let body = payload(input, chrono::Utc::now())?;
        // Nothing de-duplicates a repeated event.
        collect(call, "/mp/collect", &body, Safety::Unsafe).await?;
        Ok(Done::new(EventTracked { accepted: true }).into())
    }
}

/// `POST {origin}{path}?measurement_id=…&api_secret=…`.
async fn collect(
    call: &ProviderCall<'_>,
    path: &str,
    body: &Value,
    safety: Safety,
) -> Result<Value, CallError> {
    let config: Ga4Config = call.config_as()?;
    let url = format!(
        "{}{path}?measurement_id={}&api_secret={}",
        call.base_url(DEFAULT_BASE_URL),
        query_value(&config.measurement_id),
        query_value(call.secret("apiKey")?)
    );
    // Google's error pages are text.
    let answers = VendorAnswers::new(
        "ga4",
        super::secrets(call, None),
        |_, answer: &Answer<'_>| String::from_utf8_lossy(answer.body).into_owned(),
    );
    super::send_json(call, Method::POST, &url, None, Some(body), safety, &answers).await
}

#[cfg(test)]
mod tests;
