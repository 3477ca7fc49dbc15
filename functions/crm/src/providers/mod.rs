//! One module per vendor, and the one way they send JSON.

pub mod braze;
pub mod fake;
pub mod ga4;
pub mod hubspot;
pub mod meta;

use integration_kit::{JsonCall, ProviderCall};
use reqwest::Method;
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
    let authorization = bearer.map(|t| format!("Bearer {t}"));
    call.json(
        JsonCall {
            method,
            url,
            authorization: authorization.as_deref(),
            headers: &[],
            body,
            safety,
        },
        classifier,
    )
    .await
}

/// The secrets a classifier masks: the credential's values and the bearer sent.
pub(crate) fn secrets<'s>(call: &'s ProviderCall<'_>, bearer: Option<&'s str>) -> Vec<&'s str> {
    call.credential.values().chain(bearer).collect()
}
