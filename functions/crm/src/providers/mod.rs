//! One module per vendor, and the one way they send JSON.

pub mod braze;
pub mod fake;
pub mod ga4;
pub mod hubspot;
pub mod meta;

use integration_kit::{ProviderCall, malformed};
use reqwest::Method;
use reqwest::header::ACCEPT;
use resilience::{CallError, Classifier, Safety};
use serde_json::Value;

/// One JSON call through the pipeline (`bearer` as `Authorization: Bearer`), its answer's
/// body read as JSON (`Value::Null` for an empty one).
pub(crate) async fn send_json(
    call: &ProviderCall<'_>,
    method: Method,
    url: &str,
    bearer: Option<&str>,
    body: Option<&Value>,
    safety: Safety,
    classifier: &dyn Classifier,
) -> Result<Value, CallError> {
    let answer = call
        .pipeline
        .send(call.call(safety, classifier), || {
            let mut builder = call
                .http
                .request(method.clone(), url)
                .header(ACCEPT, "application/json");
            if let Some(token) = bearer {
                builder = builder.bearer_auth(token);
            }
            if let Some(body) = body {
                builder = builder.json(body);
            }
            builder
        })
        .await?;
    if answer.body.is_empty() {
        return Ok(Value::Null);
    }
    serde_json::from_slice(&answer.body).map_err(|_| malformed("not JSON"))
}

/// The secrets a classifier masks: the credential's values and the bearer sent.
pub(crate) fn secrets<'s>(call: &'s ProviderCall<'_>, bearer: Option<&'s str>) -> Vec<&'s str> {
    call.credential.values().chain(bearer).collect()
}
