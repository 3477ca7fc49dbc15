//! The `hubspot` provider: HubSpot's CRM API v3 (`https://api.hubapi.com`), the documented
//! "legacy" `/crm/v3` paths (HubSpot also publishes date-versioned ones; the v3 ones stay
//! documented and served).
//!
//! What each call relies on, from HubSpot's reference:
//! - `upsertContact`: `POST /crm/v3/objects/contacts/batch/upsert` with one input
//!   `{idProperty, id, properties}`: `idProperty` is `email` (the contact's identity), or the
//!   connection's `contactIdProperty` (a contact property with unique values) when the
//!   caller gives its own `externalId`. The answer's `results[0]` has the contact's `id` and
//!   `new` (created or updated). An upsert sets values: repeating it is harmless.
//! - `upsertDeal`: `POST /crm/v3/objects/deals/batch/upsert` keyed by the connection's
//!   `dealKeyProperty` (default `integration_deal_key`, which must exist as a deal property
//!   with unique values: HubSpot then upserts on it atomically), its value the caller's `key`
//!   or the run's id, so a retried run updates the deal it created instead of creating a
//!   second; then, with `contactId`, `PUT /crm/v4/objects/deals/{id}/associations/default/
//!   contacts/{contactId}` (the default association; repeating it is harmless).
//! - A `207` multi-status answer with `errors` is a failure with HubSpot's words.
//! - The connection test is `GET /account-info/v3/details` (`portalId`).
//! - Errors are `{status, message, correlationId, category, errors: [{message, in}]}`; the
//!   words and the correlation id go into the failure, the category is its vendor code
//!   (`RATE_LIMITS` a rate limit, whatever the status).
//! - Limits: 429 (`policyName` `TEN_SECONDLY_ROLLING` or `DAILY`); on every answer
//!   `X-HubSpot-RateLimit-Remaining` / `-Interval-Milliseconds` (the ten-second window:
//!   spent, the pipeline waits the interval) and `X-HubSpot-RateLimit-Daily-Remaining` (the
//!   daily one: spent, calls wait an hour at a time, since the answer does not say when the
//!   account's midnight is) (`resilience::hints`).
//!
//! Credentials: `bearerToken` (a private app's access token) or `oauth2RefreshToken`
//! (`{clientId, clientSecret, refreshToken, tokenUrl: "https://api.hubapi.com/oauth/v1/token"}`:
//! the refresh grant through the kit's token cache, HubSpot's access tokens living about 30
//! minutes; a 401 drops the cached token and the call is made once more with a fresh one).
//!
//! Webhooks (`hubspot` sources of the connection, signature v3): `contact.*` and `deal.*`
//! events change nothing here and are published as `crm.contact.changed` /
//! `crm.deal.changed` with the object id, the subscription type and the changed property.

use std::sync::Arc;

use async_trait::async_trait;
use domain::{CredentialKind, FailureClassification};
use integration_kit::{
    AccessToken, Answer, Done, InputError, Provider, ProviderCall, RecordChange, RecordKind,
    Served, Serves, Step, VendorAnswers, VendorWebhook, WebhookEffect, answered, call_failed,
    malformed,
};
use reqwest::Method;
use resilience::{CallError, Safety, VendorFailure};
use secrecy::{ExposeSecret as _, SecretString};
use serde_json::{Map, Value, json};

use crate::{
    Contact, ContactUpserted, Deal, DealUpserted, UpsertContact, UpsertDeal, property_text,
};

pub const DEFAULT_BASE_URL: &str = "https://api.hubapi.com";
/// The deal property deals are keyed by unless the connection names another.
pub const DEFAULT_DEAL_KEY_PROPERTY: &str = "integration_deal_key";

pub struct HubSpot;

#[derive(Debug, serde::Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct HubSpotConfig {
    #[serde(default, rename = "baseUrl")]
    _base_url: Option<String>,
    /// A contact property with unique values that holds the caller's `externalId`.
    #[serde(default)]
    contact_id_property: Option<String>,
    /// The deal property with unique values that holds the caller's key of a deal.
    #[serde(default)]
    deal_key_property: Option<String>,
}

/// HubSpot's internal property names: lowercase letters, digits and `_`.
fn property_name(field: &str, name: &str) -> Result<(), InputError> {
    if (1..=100).contains(&name.len())
        && name.starts_with(|c: char| c.is_ascii_lowercase())
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
    {
        Ok(())
    } else {
        Err(InputError::at(
            field,
            "must be a HubSpot property's internal name (lowercase letters, digits and _)",
        ))
    }
}

impl integration_kit::ProviderConfig for HubSpotConfig {
    fn check(&self) -> Result<(), InputError> {
        if let Some(p) = &self.contact_id_property {
            property_name("contactIdProperty", p)?;
        }
        if let Some(p) = &self.deal_key_property {
            property_name("dealKeyProperty", p)?;
        }
        Ok(())
    }
}

#[async_trait]
impl Provider for HubSpot {
    fn key(&self) -> &'static str {
        "hubspot"
    }

    fn credential_kinds(&self) -> &'static [CredentialKind] {
        &[
            CredentialKind::BearerToken,
            CredentialKind::Oauth2RefreshToken,
        ]
    }

    /// `GET /account-info/v3/details`: the portal the token belongs to.
    async fn test_connection(&self, call: &ProviderCall<'_>) -> Result<(), CallError> {
        let details = request(
            call,
            Method::GET,
            "/account-info/v3/details",
            None,
            Safety::Safe,
        )
        .await?;
        if details["portalId"].is_null() {
            return Err(malformed("the account details lack a portalId"));
        }
        Ok(())
    }

    fn webhook(&self, webhook: &VendorWebhook<'_>) -> Result<Vec<WebhookEffect>, String> {
        let body: Value =
            serde_json::from_slice(webhook.body).map_err(|e| format!("not JSON: {e}"))?;
        Ok(changes(&body)
            .into_iter()
            .map(WebhookEffect::Changed)
            .collect())
    }

    fn serves(served: &mut Served<Self>) {
        served
            .operation::<UpsertContact>()
            .operation::<UpsertDeal>()
            .config::<HubSpotConfig>();
    }
}

/// The contact and deal events of a HubSpot webhook body (an array of events).
pub(crate) fn changes(body: &Value) -> Vec<RecordChange> {
    let events = match body {
        Value::Array(events) => events.as_slice(),
        one @ Value::Object(_) => std::slice::from_ref(one),
        _ => &[],
    };
    events
        .iter()
        .filter_map(|e| {
            let subscription = e["subscriptionType"].as_str()?;
            let kind = match subscription.split('.').next()? {
                "contact" => RecordKind::CrmContact,
                "deal" => RecordKind::CrmDeal,
                _ => return None,
            };
            let record_id = match &e["objectId"] {
                Value::Number(n) => n.to_string(),
                Value::String(s) => s.clone(),
                _ => return None,
            };
            Some(RecordChange {
                kind,
                record_id,
                change: subscription.to_owned(),
                property: e["propertyName"].as_str().map(str::to_owned),
                value: match &e["propertyValue"] {
                    Value::Null => None,
                    v => Some(property_text(v)),
                },
                occurred_at: e["occurredAt"]
                    .as_i64()
                    .and_then(chrono::DateTime::from_timestamp_millis),
                vendor_event_id: match &e["eventId"] {
                    Value::Number(n) => Some(n.to_string()),
                    Value::String(s) => Some(s.clone()),
                    _ => None,
                },
                patch: None,
            })
        })
        .collect()
}

fn text_properties(properties: &crate::Properties) -> Map<String, Value> {
    properties
        .iter()
        .map(|(k, v)| (k.clone(), json!(property_text(v))))
        .collect()
}

#[async_trait]
impl Serves<UpsertContact> for HubSpot {
    async fn execute(
        &self,
        call: &ProviderCall<'_>,
        input: &Contact,
    ) -> Result<Step<ContactUpserted>, CallError> {
        let config: HubSpotConfig = call.config_as()?;
        let mut properties = text_properties(&input.properties);
        properties.insert("email".into(), json!(input.email.as_str()));
        for (name, value) in [
            ("firstname", input.first_name.as_deref()),
            ("lastname", input.last_name.as_deref()),
            ("phone", input.phone.as_deref()),
        ] {
            if let Some(v) = value {
                properties.insert(name.into(), json!(v));
            }
        }
        let (id_property, id) = match (&config.contact_id_property, &input.external_id) {
            (Some(property), Some(external)) => (property.as_str(), external.as_str()),
            _ => ("email", input.email.as_str()),
        };
        let body =
            json!({"inputs": [{"idProperty": id_property, "id": id, "properties": properties}]});
        let answer = request(
            call,
            Method::POST,
            "/crm/v3/objects/contacts/batch/upsert",
            Some(&body),
            Safety::Safe,
        )
        .await?;
        let (id, created) = upserted(&answer)?;
        Ok(Done::new(ContactUpserted {
            contact_id: id.clone(),
            created: Some(created),
        })
        .vendor_message_id(id)
        .into())
    }
}

#[async_trait]
impl Serves<UpsertDeal> for HubSpot {
    async fn execute(
        &self,
        call: &ProviderCall<'_>,
        input: &Deal,
    ) -> Result<Step<DealUpserted>, CallError> {
        let config: HubSpotConfig = call.config_as()?;
        let key_property = config
            .deal_key_property
            .as_deref()
            .unwrap_or(DEFAULT_DEAL_KEY_PROPERTY);
        let key = input
            .key
            .as_deref()
            .or(call.idempotency_key)
            .ok_or_else(|| {
                call_failed(
                    FailureClassification::Validation,
                    "a deal needs a key (or a run to take it from)",
                )
            })?;
        let mut properties = text_properties(&input.properties);
        properties.insert("dealname".into(), json!(input.name.as_str()));
        if let Some(amount) = input.amount {
            properties.insert("amount".into(), json!(amount.to_string()));
        }
        if let Some(currency) = &input.currency {
            properties.insert("deal_currency_code".into(), json!(currency.as_str()));
        }
        if let Some(stage) = &input.stage {
            properties.insert("dealstage".into(), json!(stage.as_str()));
        }
        let body =
            json!({"inputs": [{"idProperty": key_property, "id": key, "properties": properties}]});
        let answer = request(
            call,
            Method::POST,
            "/crm/v3/objects/deals/batch/upsert",
            Some(&body),
            Safety::Safe,
        )
        .await?;
        let (id, created) = upserted(&answer)?;
        if let Some(contact) = &input.contact_id {
            let path = format!(
                "/crm/v4/objects/deals/{id}/associations/default/contacts/{}",
                integration_kit::query_value(contact)
            );
            request(call, Method::PUT, &path, None, Safety::Safe).await?;
        }
        Ok(Done::new(DealUpserted {
            deal_id: id.clone(),
            created: Some(created),
        })
        .vendor_message_id(id)
        .into())
    }
}

/// The object a batch upsert of one input answered: its id and whether it is new. A
/// multi-status answer with errors is HubSpot refusing the input.
fn upserted(answer: &Value) -> Result<(String, bool), CallError> {
    if let Some(error) = answer["errors"].as_array().and_then(|e| e.first()) {
        let mut failure = call_failed(
            FailureClassification::Unprocessable,
            answered("hubspot", 207, &error_words(error), &[]),
        );
        failure.failure.vendor_code = error["category"].as_str().map(str::to_owned);
        return Err(failure);
    }
    let result = &answer["results"][0];
    let id = result["id"]
        .as_str()
        .ok_or_else(|| malformed("the upsert answered no id"))?;
    Ok((id.to_owned(), result["new"].as_bool().unwrap_or(false)))
}

/// One call to HubSpot, its JSON answer; an OAuth token refused is fetched again once.
async fn request(
    call: &ProviderCall<'_>,
    method: Method,
    path: &str,
    body: Option<&Value>,
    safety: Safety,
) -> Result<Value, CallError> {
    let oauth = call.credential.kind() == CredentialKind::Oauth2RefreshToken;
    call.with_fresh_token_on_401(oauth, || async {
        let bearer = bearer(call).await?;
        let url = format!("{}{path}", call.base_url(DEFAULT_BASE_URL));
        let answers = answers(super::secrets(call, Some(bearer.expose_secret())));
        super::send_json(
            call,
            method.clone(),
            &url,
            Some(bearer.expose_secret()),
            body,
            safety,
            &answers,
        )
        .await
    })
    .await
}

/// The private app's token, or an access token from the refresh token.
async fn bearer(call: &ProviderCall<'_>) -> Result<SecretString, CallError> {
    match call.credential.kind() {
        CredentialKind::Oauth2RefreshToken => {
            let token: Arc<AccessToken> = call.refreshed_access_token().await?;
            Ok(token.token.clone())
        }
        _ => Ok(SecretString::from(call.secret("token")?.to_owned())),
    }
}

/// HubSpot's words: the message, the first details, the correlation id.
fn error_words(error: &Value) -> String {
    let mut words = vec![error["message"].as_str().unwrap_or_default().to_owned()];
    if let Some(details) = error["errors"].as_array() {
        for d in details.iter().take(3) {
            if let Some(m) = d["message"].as_str()
                && !words[0].contains(m)
            {
                words.push(m.to_owned());
            }
        }
    }
    if let Some(id) = error["correlationId"].as_str() {
        words.push(format!("correlationId {id}"));
    }
    words.retain(|w| !w.is_empty());
    words.join("; ")
}

/// HubSpot's answers: the status decides, `RATE_LIMITS` makes any status a rate limit; the
/// category is the vendor code, the words say the rest.
fn answers<'s>(
    secrets: Vec<&'s str>,
) -> VendorAnswers<'s, impl Fn(&mut VendorFailure, &Answer<'_>) -> String + Send + Sync> {
    VendorAnswers::new("hubspot", secrets, |failure, answer| {
        let category = answer.error["category"]
            .as_str()
            .or_else(|| answer.error["errorType"].as_str());
        if matches!(category, Some("RATE_LIMITS" | "RATE_LIMIT")) {
            failure.class = FailureClassification::RateLimited;
        }
        failure.vendor_code = category.map(str::to_owned);
        error_words(answer.error)
    })
}

#[cfg(test)]
mod tests;
