//! Custody belongs to the registry: apps hand a tenant's secret to it through its API with
//! the caller's own token (so the secret lands in the caller's tenant), and keep only the
//! reference it answers with.

use app_context::AppContext;
use domain::{CredentialId, CredentialKind, SecretRef};
use serde_json::{Map, Value, json};

use crate::{ApiError, Caller};

/// The registry's base URL setting (`http://127.0.0.1:7071/registry` locally).
pub const REGISTRY_URL_SETTING: &str = "REGISTRY_URL";

/// Checks the registry's URL setting at start-up (apps that keep secrets call it while they
/// are built): unset is allowed (custody then answers 503, logged), malformed is not.
pub fn check_registry_url(ctx: &AppContext) -> Result<(), app_context::InvalidSetting> {
    settings::base_url(ctx, REGISTRY_URL_SETTING).map(drop)
}

/// Stores `secret` (the secret fields of a credential of `kind`) as a new credential of the
/// caller's tenant; answers its id and the reference of the stored version. A secret the
/// registry refuses is the caller's mistake (400 `invalid_secret`, with the registry's
/// reason, which never quotes the secret).
pub async fn store_credential(
    ctx: &AppContext,
    caller: &Caller,
    provider_key: &str,
    kind: CredentialKind,
    secret: Map<String, Value>,
    connection_id: Option<&str>,
) -> Result<(CredentialId, SecretRef), ApiError> {
    let registry = ctx.setting(REGISTRY_URL_SETTING).ok_or_else(|| {
        tracing::error!("{REGISTRY_URL_SETTING} is not set: secrets cannot be kept");
        ApiError::Unavailable
    })?;
    let mut body = json!({"providerKey": provider_key, "kind": kind, "secret": secret});
    if let Some(id) = connection_id {
        body["connectionId"] = json!(id);
    }
    let mut trace = reqwest::header::HeaderMap::new();
    telemetry::inject_trace_headers(&mut trace);
    let response = http()
        .post(format!(
            "{}/api/integrations/credentials",
            registry.trim_end_matches('/')
        ))
        .headers(trace)
        .bearer_auth(caller.token())
        .json(&body)
        .send()
        .await
        .map_err(|e| {
            tracing::error!(error = %e, "the registry is unreachable");
            ApiError::Unavailable
        })?;
    let status = response.status();
    let value: Value = response.json().await.map_err(|_| ApiError::Unavailable)?;
    if status.as_u16() == 400 {
        let code = match value["code"].as_str() {
            Some("unknown_provider") => "unknown_provider",
            _ => "invalid_secret",
        };
        return Err(ApiError::bad_request(
            code,
            value["detail"].as_str().unwrap_or("the secret was refused"),
        ));
    }
    if !status.is_success() {
        tracing::error!(%status, code = %value["code"], "the registry refused the secret");
        return Err(ApiError::Unavailable);
    }
    let id = value["id"]
        .as_str()
        .and_then(|s| CredentialId::parse(s).ok());
    let reference = serde_json::from_value::<SecretRef>(value["current"].clone()).ok();
    match (id, reference) {
        (Some(id), Some(reference)) => Ok((id, reference)),
        _ => Err(ApiError::internal(
            "the registry's answer to a stored secret has no id or reference",
        )),
    }
}

fn http() -> reqwest::Client {
    static CLIENT: std::sync::OnceLock<reqwest::Client> = std::sync::OnceLock::new();
    CLIENT
        .get_or_init(|| {
            reqwest::Client::builder()
                .timeout(std::time::Duration::from_secs(10))
                .build()
                .unwrap_or_default()
        })
        .clone()
}
