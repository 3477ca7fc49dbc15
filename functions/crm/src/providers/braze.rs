//! The `braze` provider: Braze's REST API, `POST /users/track`, on the workspace's cluster
//! (the connection's `baseUrl`: `https://rest.iad-01.braze.com`, `https://rest.fra-01.braze.eu`,
//! ...), with a REST API key that has the `users.track` permission (`Authorization: Bearer`).
//!
//! What each call relies on, from Braze's reference:
//! - `upsertContact`: one object of `attributes`, identified by `external_id` (the caller's
//!   `externalId`) or else by `email` (Braze updates the profile with that email, or creates
//!   an email-only one), with `email`, `first_name`, `last_name`, `phone` and the free
//!   properties as custom attributes. Attributes are set, so repeating them is harmless;
//!   Braze does not say whether the profile is new (`created: null`).
//! - `trackEvent`: one object of `events` (`name`, `time`, `properties`, the value and
//!   currency among them), identified the same way. Braze has no idempotency: an event sent
//!   twice is two events, so it is not repeated after it may have arrived.
//! - Success is 2xx `{"message": "success", ...}`; a 2xx with `errors` (`[{type,
//!   input_array, index}]`) means the object was refused: a failure with Braze's words, not
//!   a success. A fatal answer is `{"message": ..., "errors": [...]}` with 400.
//! - Limits: `X-RateLimit-Limit` / `-Remaining` / `-Reset` (Unix seconds) on every answer (a
//!   spent one holds calls until the reset), 429 when over.
//!
//! The connection test sends an empty `/users/track` request: Braze answers it 400 ("Valid
//! data must be provided...") once the key is accepted, 401 otherwise; nothing is written.

use async_trait::async_trait;
use domain::{CredentialKind, FailureClassification};
use integration_kit::{
    Answer, Done, Provider, ProviderCall, Served, Serves, Step, VendorAnswers, answered,
    call_failed, malformed,
};
use reqwest::Method;
use resilience::{CallError, Safety, VendorFailure};
use serde_json::{Map, Value, json};

use crate::{Contact, ContactUpserted, Event, EventTracked, TrackEvent, UpsertContact};

pub struct Braze;

/// The connection's config: the workspace's REST endpoint (required: Braze has one per
/// cluster).
#[derive(Debug, serde::Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct BrazeConfig {
    #[serde(rename = "baseUrl")]
    _base_url: String,
}

impl integration_kit::ProviderConfig for BrazeConfig {}

#[async_trait]
impl Provider for Braze {
    fn key(&self) -> &'static str {
        "braze"
    }

    fn credential_kinds(&self) -> &'static [CredentialKind] {
        &[CredentialKind::ApiKey, CredentialKind::BearerToken]
    }

    async fn test_connection(&self, call: &ProviderCall<'_>) -> Result<(), CallError> {
        match track(call, json!({}), Safety::Safe).await {
            Ok(_) => Ok(()),
            // The key was accepted; the empty request was not.
            Err(e) if e.failure.vendor_status == Some(400) => Ok(()),
            Err(e) => Err(e),
        }
    }

    fn serves(served: &mut Served<Self>) {
        served
            .operation::<UpsertContact>()
            .operation::<TrackEvent>()
            .config::<BrazeConfig>();
    }
}

/// Who an object is about: the caller's id, or the email.
fn identify(object: &mut Map<String, Value>, user_id: Option<&str>, email: Option<&str>) {
    if let Some(id) = user_id {
        object.insert("external_id".into(), json!(id));
    } else if let Some(email) = email {
        object.insert("email".into(), json!(email));
    }
}

#[async_trait]
impl Serves<UpsertContact> for Braze {
    async fn execute(
        &self,
        call: &ProviderCall<'_>,
        input: &Contact,
    ) -> Result<Step<ContactUpserted>, CallError> {
        let mut attributes: Map<String, Value> = input
            .properties
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        identify(
            &mut attributes,
            input.external_id.as_deref(),
            Some(input.email.as_str()),
        );
        attributes.insert("email".into(), json!(input.email.as_str()));
        for (name, value) in [
            ("first_name", input.first_name.as_deref()),
            ("last_name", input.last_name.as_deref()),
            ("phone", input.phone.as_deref()),
        ] {
            if let Some(v) = value {
                attributes.insert(name.into(), json!(v));
            }
        }
        track(call, json!({"attributes": [attributes]}), Safety::Safe).await?;
        let id = input
            .external_id
            .as_ref()
            .map_or_else(|| input.email.to_string(), |i| i.to_string());
        Ok(Done::new(ContactUpserted {
            contact_id: id,
            created: None,
        })
        .into())
    }
}

#[async_trait]
impl Serves<TrackEvent> for Braze {
    async fn execute(
        &self,
        call: &ProviderCall<'_>,
        input: &Event,
    ) -> Result<Step<EventTracked>, CallError> {
        let mut properties: Map<String, Value> = input
            .properties
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        if let Some(value) = input.value {
            properties.insert("value".into(), json!(value));
        }
        if let Some(currency) = &input.currency {
            properties.insert("currency".into(), json!(currency.as_str()));
        }
        let mut event = Map::new();
        identify(&mut event, input.user_id.as_deref(), input.email.as_deref());
        event.insert("name".into(), json!(input.name.as_str()));
        event.insert(
            "time".into(),
            json!(input.time.unwrap_or_else(chrono::Utc::now).to_rfc3339()),
        );
        if !properties.is_empty() {
            event.insert("properties".into(), Value::Object(properties));
        }
        // Braze counts a repeated event twice.
        track(call, json!({"events": [event]}), Safety::Unsafe).await?;
        Ok(Done::new(EventTracked { accepted: true }).into())
    }
}

/// `POST /users/track`; a 2xx carrying `errors` is Braze refusing the object.
async fn track(call: &ProviderCall<'_>, body: Value, safety: Safety) -> Result<Value, CallError> {
    let key = match call.credential.kind() {
        CredentialKind::BearerToken => call.secret("token")?,
        _ => call.secret("apiKey")?,
    };
    let url = format!("{}/users/track", call.base_url(""));
    let answers = answers(call);
    let answer = super::send_json(
        call,
        Method::POST,
        &url,
        Some(key),
        Some(&body),
        safety,
        &answers,
    )
    .await?;
    if answer["message"].is_null() {
        return Err(malformed("the answer has no message"));
    }
    if let Some(errors) = answer["errors"].as_array().filter(|e| !e.is_empty()) {
        let mut failure = call_failed(
            FailureClassification::Unprocessable,
            answered(
                "braze",
                201,
                &error_words(&answer, errors),
                answers.secrets(),
            ),
        );
        failure.failure.vendor_code = Some("object_refused".into());
        return Err(failure);
    }
    Ok(answer)
}

/// Braze's words: its message, then each refused object's `type` and place.
fn error_words(answer: &Value, errors: &[Value]) -> String {
    let mut words = Vec::new();
    if let Some(m) = answer["message"].as_str().filter(|m| *m != "success") {
        words.push(m.to_owned());
    }
    for e in errors.iter().take(3) {
        match e {
            Value::String(s) => words.push(s.clone()),
            e => words.push(format!(
                "{} ({}[{}])",
                e["type"].as_str().unwrap_or("refused"),
                e["input_array"].as_str().unwrap_or("?"),
                e["index"].as_u64().unwrap_or(0)
            )),
        }
    }
    words.join("; ")
}

/// Braze's answers: the status decides; its message and the refused objects explain.
fn answers<'s>(
    call: &'s ProviderCall<'_>,
) -> VendorAnswers<'s, impl Fn(&mut VendorFailure, &Answer<'_>) -> String + Send + Sync> {
    VendorAnswers::new("braze", super::secrets(call, None), |_, answer| {
        let errors = answer.error["errors"]
            .as_array()
            .cloned()
            .unwrap_or_default();
        error_words(answer.error, &errors)
    })
}

#[cfg(test)]
mod tests;
