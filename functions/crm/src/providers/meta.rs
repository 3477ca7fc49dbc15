//! The `meta-capi` provider: Meta's Conversions API, `trackEvent` only.
//!
//! What it relies on, from Meta's reference:
//! - `POST https://graph.facebook.com/{version}/{pixel_id}/events` with `{data: [event],
//!   test_event_code?}` and the access token (sent as `Authorization: Bearer`, so it never
//!   sits in a URL); the version is the connection's `apiVersion` (default [`API_VERSION`]:
//!   Graph versions live about two years, and a connection can move on without a release).
//! - The event: `event_name`, `event_time` (Unix seconds, at most 7 days back: older is
//!   refused here, since Meta would refuse the whole request), `event_id` = the run's id
//!   (Meta de-duplicates events of one pixel with the same name and id, so a repeated run
//!   counts once, and the call may be retried), `action_source` (the connection's,
//!   default `system_generated`), `user_data` with `em` the SHA-256 of the trimmed,
//!   lowercased email and `external_id` the SHA-256 of the caller's id (Meta takes no
//!   unhashed personal data), `custom_data` with the value, currency and free properties.
//! - `test_event_code` from the connection's config, for test connections (the events then
//!   show in Events Manager's test view only).
//! - Success is 200 `{events_received, messages, fbtrace_id}`. Errors are `{"error":
//!   {message, type, code, error_subcode, fbtrace_id}}`, usually with 400 whatever the
//!   cause, so the code decides: 190 (token), 10 and 200–299 (permission) are `auth`; 4, 17,
//!   32, 613 and 80000–80099 (throttling) are `rate_limited`; 1 and 2 are transient; 100
//!   and the rest are refusals.
//!
//! Credential: `bearerToken` (a system user's access token). Config: `pixelId`,
//! `apiVersion?`, `actionSource?`, `testEventCode?`. The connection test reads the pixel
//! (`GET /{version}/{pixel_id}?fields=id`).

use async_trait::async_trait;
use domain::{CredentialKind, FailureClassification};
use integration_kit::{
    Answer, Done, InputError, Provider, ProviderCall, Served, Serves, Step, VendorAnswers,
    call_failed,
};
use reqwest::Method;
use reqwest::header::HeaderMap;
use resilience::{CallError, Safety, VendorFailure};
use serde_json::{Map, Value, json};
use sha2::{Digest as _, Sha256};

use crate::{Event, EventTracked, TrackEvent};

pub const DEFAULT_BASE_URL: &str = "https://graph.facebook.com";
/// The Graph API version calls pin unless the connection names another.
pub const API_VERSION: &str = "v25.0";
/// The furthest back an event's time may be.
const MAX_BACKDATE: chrono::TimeDelta = chrono::TimeDelta::days(7);

pub struct Meta;

#[derive(Debug, serde::Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct MetaConfig {
    pixel_id: String,
    #[serde(default)]
    api_version: Option<String>,
    #[serde(default)]
    action_source: Option<String>,
    #[serde(default)]
    test_event_code: Option<String>,
    #[serde(default, rename = "baseUrl")]
    _base_url: Option<String>,
}

const ACTION_SOURCES: &[&str] = &[
    "email",
    "website",
    "app",
    "phone_call",
    "chat",
    "physical_store",
    "system_generated",
    "business_messaging",
    "other",
];

impl integration_kit::ProviderConfig for MetaConfig {
    fn check(&self) -> Result<(), InputError> {
        if !(5..=20).contains(&self.pixel_id.len())
            || !self.pixel_id.bytes().all(|b| b.is_ascii_digit())
        {
            return Err(InputError::at("pixelId", "must be a pixel's numeric id"));
        }
        if let Some(v) = &self.api_version {
            let digits = v.strip_prefix('v').and_then(|r| r.strip_suffix(".0"));
            if !digits.is_some_and(|d| !d.is_empty() && d.bytes().all(|b| b.is_ascii_digit())) {
                return Err(InputError::at(
                    "apiVersion",
                    "must be a Graph version (v25.0)",
                ));
            }
        }
        if let Some(a) = &self.action_source
            && !ACTION_SOURCES.contains(&a.as_str())
        {
            return Err(InputError::at(
                "actionSource",
                format!("must be one of {}", ACTION_SOURCES.join(", ")),
            ));
        }
        if let Some(code) = &self.test_event_code
            && !(1..=64).contains(&code.len())
        {
            return Err(InputError::at(
                "testEventCode",
                "must be 1 to 64 characters",
            ));
        }
        Ok(())
    }
}

impl MetaConfig {
    fn version(&self) -> &str {
        self.api_version.as_deref().unwrap_or(API_VERSION)
    }
}

fn sha256_hex(text: &str) -> String {
    Sha256::digest(text.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// The request body of `event` (its id the run's).
fn payload(
    config: &MetaConfig,
    event: &Event,
    event_id: Option<&str>,
    now: chrono::DateTime<chrono::Utc>,
) -> Result<Value, CallError> {
    let time = event.time.unwrap_or(now);
    if now - time > MAX_BACKDATE {
        return Err(call_failed(
            FailureClassification::Validation,
            "Meta takes events at most 7 days old: the time is too far back",
        ));
    }
    let mut user = Map::new();
    if let Some(email) = &event.email {
        user.insert(
            "em".into(),
            json!([sha256_hex(&email.trim().to_ascii_lowercase())]),
        );
    }
    if let Some(id) = &event.user_id {
        user.insert("external_id".into(), json!([sha256_hex(id)]));
    }
    let mut custom: Map<String, Value> = event
        .properties
        .iter()
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    if let Some(value) = event.value {
        custom.insert("value".into(), json!(value));
    }
    if let Some(currency) = &event.currency {
        custom.insert("currency".into(), json!(currency.as_str()));
    }
    let mut one = json!({
        "event_name": event.name.as_str(),
        "event_time": time.timestamp(),
        "action_source": config.action_source.as_deref().unwrap_or("system_generated"),
        "user_data": user,
    });
    if let Some(id) = event_id {
        one["event_id"] = json!(id);
    }
    if !custom.is_empty() {
        one["custom_data"] = Value::Object(custom);
    }
    let mut body = json!({"data": [one]});
    if let Some(code) = &config.test_event_code {
        body["test_event_code"] = json!(code);
    }
    Ok(body)
}

#[async_trait]
impl Provider for Meta {
    fn key(&self) -> &'static str {
        "meta-capi"
    }

    fn credential_kinds(&self) -> &'static [CredentialKind] {
        &[CredentialKind::BearerToken]
    }

    /// `GET /{version}/{pixel_id}?fields=id`: the token may see the pixel.
    async fn test_connection(&self, call: &ProviderCall<'_>) -> Result<(), CallError> {
        let config: MetaConfig = call.config_as()?;
        let path = format!("/{}/{}?fields=id", config.version(), config.pixel_id);
        let pixel = graph(call, Method::GET, &path, None, Safety::Safe).await?;
        if pixel["id"].as_str() != Some(config.pixel_id.as_str()) {
            return Err(integration_kit::malformed("the pixel answered another id"));
        }
        Ok(())
    }

    fn serves(served: &mut Served<Self>) {
        served.operation::<TrackEvent>().config::<MetaConfig>();
    }
}

#[async_trait]
impl Serves<TrackEvent> for Meta {
    async fn execute(
        &self,
        call: &ProviderCall<'_>,
        input: &Event,
    ) -> Result<Step<EventTracked>, CallError> {
        let config: MetaConfig = call.config_as()?;
        let body = payload(&config, input, call.idempotency_key, chrono::Utc::now())?;
        let path = format!("/{}/{}/events", config.version(), config.pixel_id);
        // Meta de-duplicates on the event's name and id (the run's): a repeat counts once.
        let safety = if call.idempotency_key.is_some() {
            Safety::Idempotent
        } else {
            Safety::Unsafe
        };
        let answer = graph(call, Method::POST, &path, Some(&body), safety).await?;
        let received = answer["events_received"]
            .as_u64()
            .ok_or_else(|| integration_kit::malformed("the answer has no events_received"))?;
        Ok(Done::new(EventTracked {
            accepted: received >= 1,
        })
        .into())
    }
}

async fn graph(
    call: &ProviderCall<'_>,
    method: Method,
    path: &str,
    body: Option<&Value>,
    safety: Safety,
) -> Result<Value, CallError> {
    let token = call.secret("token")?;
    let url = format!("{}{path}", call.base_url(DEFAULT_BASE_URL));
    let answers = answers(call);
    super::send_json(call, method, &url, Some(token), body, safety, &answers).await
}

/// A Graph error code's class.
fn class_of(code: i64) -> Option<FailureClassification> {
    Some(match code {
        190 | 10 | 200..=299 => FailureClassification::Auth,
        4 | 17 | 32 | 613 | 80_000..=80_099 => FailureClassification::RateLimited,
        1 | 2 => FailureClassification::Transient,
        100 => FailureClassification::Validation,
        _ => return None,
    })
}

/// Meta's business-use-case throttle: `X-Business-Use-Case-Usage` is `{"<business id>":
/// [{type, call_count, total_time, total_cputime, estimated_time_to_regain_access}]}`, the
/// last in minutes; the longest wait of any use case.
fn regain_access(headers: &HeaderMap) -> Option<std::time::Duration> {
    let usage: Value =
        serde_json::from_str(headers.get("x-business-use-case-usage")?.to_str().ok()?).ok()?;
    usage
        .as_object()?
        .values()
        .filter_map(Value::as_array)
        .flatten()
        .filter_map(|u| u["estimated_time_to_regain_access"].as_u64())
        .max()
        .filter(|m| *m > 0)
        .map(|m| std::time::Duration::from_secs(m * 60).min(resilience::hints::MAX_HINT))
}

/// Graph's answers: the error code decides the class whatever the status (Graph answers 400
/// for most things); code and subcode are the vendor code; throttling waits as the business
/// use case header says when nothing else does.
fn answers<'s>(
    call: &'s ProviderCall<'_>,
) -> VendorAnswers<'s, impl Fn(&mut VendorFailure, &Answer<'_>) -> String + Send + Sync> {
    VendorAnswers::new("meta", super::secrets(call, None), |failure, answer| {
        let error = &answer.error["error"];
        if let Some(class) = error["code"].as_i64().and_then(class_of) {
            failure.class = class;
        }
        if failure.class == FailureClassification::RateLimited && failure.retry_after.is_none() {
            failure.retry_after = regain_access(answer.headers);
        }
        if let Some(code) = error["code"].as_i64() {
            failure.vendor_code = Some(match error["error_subcode"].as_i64() {
                Some(sub) => format!("{code}/{sub}"),
                None => code.to_string(),
            });
        }
        let mut words = error["message"].as_str().unwrap_or_default().to_owned();
        if let Some(m) = error["error_user_msg"].as_str() {
            words.push_str("; ");
            words.push_str(m);
        }
        if let Some(t) = error["fbtrace_id"].as_str() {
            words.push_str(&format!("; fbtrace_id {t}"));
        }
        words
    })
}

#[cfg(test)]
mod tests;
