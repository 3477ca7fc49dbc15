//! Private endpoints an operator approved for a tenant (apps that enable it with
//! [`crate::VendorApp::private_endpoints`]: self-hosted vendors such as an Ollama server on
//! a private network).
//!
//! Every vendor URL a tenant gives is user input: the SSRF guard refuses internal addresses.
//! A tenant alone can never change that; an operator (the `operator` role) approves named
//! `host:port` endpoints for one tenant, and the approval is recorded (who, when, why) in
//! the app's container, in the tenant's partition:
//!
//! - `PUT /api/integrations/private-endpoints/{tenantId}` (operator):
//!   `{"endpoints": ["gpu-box.internal:11434", "10.20.0.7:11434"], "reason": "…"}` replaces
//!   the tenant's approvals (an empty list withdraws them);
//! - `GET /api/integrations/private-endpoints` (any token, its own tenant).
//!
//! A connection of that tenant whose `baseUrl` names an approved endpoint (host and port) may
//! be created, over http too, and its calls go through a guard that allows that host; every
//! other address stays behind the guard. A withdrawn approval stops the calls within five
//! seconds (the approvals are cached that long per instance).

use std::sync::Arc;
use std::time::Duration;

use api_kit::{ApiError, Caller, JsonBody, OPERATOR_ROLE};
use axum::Json;
use axum::extract::{Path, State};
use axum::response::{IntoResponse, Response};
use axum::routing::{MethodRouter, get, put};
use chrono::{DateTime, Utc};
use domain::{ConnectionConfig, TenantId};
use functions_runtime::FunctionDecl;
use ports::WriteOp;
use serde::{Deserialize, Serialize};
use serde_json::json;

use crate::{Kit, KitState};

/// The approvals' document id.
const DOC: &str = "private-endpoints";
/// How long an instance keeps a tenant's approvals before reading them again.
pub(crate) const APPROVALS_TTL: Duration = Duration::from_secs(5);
const MAX_ENDPOINTS: usize = 100;

/// A tenant's approved private endpoints, as recorded.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Approvals {
    /// `host:port`, the host in lower case.
    pub endpoints: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub approved_by: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub approved_at: Option<DateTime<Utc>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

impl Approvals {
    /// Whether `url`'s host and port (the scheme's default when absent) are approved.
    fn covers(&self, url: &reqwest::Url) -> Option<String> {
        let host = url
            .host_str()?
            .trim_start_matches('[')
            .trim_end_matches(']');
        let port = url.port_or_known_default()?;
        let wanted = format!("{}:{port}", host.to_ascii_lowercase());
        self.endpoints
            .contains(&wanted)
            .then(|| host.to_ascii_lowercase())
    }
}

/// An approval as an operator writes it.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct Approve {
    endpoints: Vec<String>,
    #[serde(default)]
    reason: Option<String>,
}

/// `host:port`, checked and in lower case.
fn endpoint(raw: &str) -> Result<String, String> {
    if raw.contains(['/', '@', '?', '#']) || raw.chars().any(char::is_whitespace) {
        return Err(format!("{raw:?} is not host:port"));
    }
    let url = reqwest::Url::parse(&format!("http://{raw}/"))
        .map_err(|_| format!("{raw:?} is not host:port"))?;
    match (url.host_str(), raw.rsplit_once(':')) {
        (Some(host), Some((_, port)))
            if !host.is_empty() && port.parse::<u16>().is_ok_and(|p| p > 0) =>
        {
            let port = port.parse::<u16>().unwrap_or_default();
            Ok(format!(
                "{}:{port}",
                host.trim_start_matches('[')
                    .trim_end_matches(']')
                    .to_ascii_lowercase()
            ))
        }
        _ => Err(format!("{raw:?} is not host:port")),
    }
}

pub(crate) fn functions(state: &KitState) -> Vec<(FunctionDecl, MethodRouter)> {
    if !state.0.app.private_endpoints {
        return Vec::new();
    }
    vec![
        (
            FunctionDecl::http("PrivateEndpoints", "integrations/private-endpoints", &["get"])
                .api(json!({"summary": "The private endpoints an operator approved for the caller's tenant"})),
            get(own).with_state(state.clone()),
        ),
        (
            FunctionDecl::http(
                "ApprovePrivateEndpoints",
                "integrations/private-endpoints/{tenantId}",
                &["put"],
            )
            .api(json!({"summary": "Replaces a tenant's approved private endpoints (operator role)"})),
            put(approve).with_state(state.clone()),
        ),
    ]
}

async fn own(State(state): State<KitState>, caller: Caller) -> Result<Response, ApiError> {
    let approvals = read(&state.0, caller.tenant_id())
        .await
        .map_err(|e| ApiError::from_port(e, "approvals"))?;
    Ok(Json(approvals.as_deref().cloned().unwrap_or_default()).into_response())
}

async fn approve(
    State(state): State<KitState>,
    caller: Caller,
    Path(tenant): Path<String>,
    JsonBody(body): JsonBody<Approve>,
) -> Result<Response, ApiError> {
    caller.require(OPERATOR_ROLE)?;
    let tenant = TenantId::parse_tenant(&tenant)
        .map_err(|_| ApiError::bad_request("invalid_tenant", "not a tenant id"))?;
    if body.endpoints.len() > MAX_ENDPOINTS {
        return Err(ApiError::bad_request(
            "invalid_endpoints",
            format!("at most {MAX_ENDPOINTS} endpoints"),
        ));
    }
    let mut endpoints = body
        .endpoints
        .iter()
        .map(|e| endpoint(e))
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| ApiError::bad_request("invalid_endpoints", e))?;
    endpoints.sort();
    endpoints.dedup();
    if body
        .reason
        .as_ref()
        .is_some_and(|r| r.chars().count() > 500)
    {
        return Err(ApiError::bad_request(
            "invalid_reason",
            "reason: at most 500 characters",
        ));
    }
    let approvals = Approvals {
        endpoints,
        approved_by: Some(caller.principal.subject.clone()),
        approved_at: Some(Utc::now()),
        reason: body.reason,
    };
    let doc = serde_json::to_value(&approvals).map_err(ApiError::internal)?;
    state
        .0
        .ctx
        .documents
        .batch(
            state.0.app.slug,
            tenant.as_str(),
            vec![WriteOp::upsert(DOC, doc)],
        )
        .await
        .map_err(|e| ApiError::from_port(e, "approvals"))?;
    state.0.approvals.invalidate(tenant.as_str()).await;
    tracing::info!(tenant = %tenant, operator = %caller.principal.subject,
        endpoints = approvals.endpoints.len(), "private endpoints approved");
    Ok(Json(approvals).into_response())
}

/// The tenant's approvals (`None`: none), read at most once per five seconds.
async fn read(kit: &Kit, tenant: &str) -> Result<Option<Arc<Approvals>>, ports::PortError> {
    kit.approvals
        .try_get_with(tenant.to_owned(), async {
            let doc = kit.ctx.documents.read(kit.app.slug, tenant, DOC).await?;
            doc.map(|d| d.parse::<Approvals>().map(Arc::new))
                .transpose()
        })
        .await
        .map_err(|e| (*e).clone())
}

/// The host of `config`'s `baseUrl` when an operator approved its endpoint for `tenant`.
pub(crate) async fn approved_host(
    kit: &Kit,
    tenant: &str,
    config: &ConnectionConfig,
) -> Result<Option<String>, ports::PortError> {
    if !kit.app.private_endpoints {
        return Ok(None);
    }
    let Some(url) = config
        .get(crate::provider::BASE_URL)
        .and_then(serde_json::Value::as_str)
        .and_then(|u| reqwest::Url::parse(u).ok())
    else {
        return Ok(None);
    };
    Ok(read(kit, tenant)
        .await?
        .and_then(|approvals| approvals.covers(&url)))
}

/// How a connection's calls reach its vendor: the kit's client and guard, or, for an
/// approved private endpoint, ones that also allow its host.
#[derive(Clone)]
pub(crate) struct Reach {
    pub(crate) http: reqwest::Client,
    pub(crate) guard: netguard::Guard,
}

/// The [`Reach`] of a connection of `tenant` with `config`; refused (`url_refused`) when its
/// `baseUrl` is an internal IP literal no operator approved (or no longer approves): the
/// guard's resolver never sees a literal, so it is checked here, before any call.
pub(crate) async fn reach(
    kit: &Kit,
    tenant: &str,
    config: &ConnectionConfig,
) -> Result<Reach, resilience::CallError> {
    let plain = || Reach {
        http: kit.http.clone(),
        guard: kit.guard.clone(),
    };
    // An app without approvals has nothing to look up on a call: its connections' internal
    // literals were refused when they were made.
    if !kit.app.private_endpoints {
        return Ok(plain());
    }
    let host = match approved_host(kit, tenant, config).await {
        Ok(Some(host)) => host,
        // Unreadable approvals approve nothing: the guard stays as it is.
        Ok(None) | Err(_) => {
            let literal_refused = config
                .get(crate::provider::BASE_URL)
                .and_then(serde_json::Value::as_str)
                .and_then(|u| reqwest::Url::parse(u).ok())
                .is_some_and(|url| kit.guard.check_url(&url).is_err());
            if literal_refused {
                let mut failure = resilience::VendorFailure::new(
                    domain::FailureClassification::Validation,
                    "the vendor's address is internal and no operator approves it for this tenant",
                );
                failure.vendor_code = Some(resilience::URL_REFUSED.to_owned());
                return Err(resilience::CallError {
                    failure,
                    attempts: 0,
                    retryable: false,
                });
            }
            return Ok(plain());
        }
    };
    let guard = kit.guard.also_allowing([host.as_str()]);
    let http = kit
        .private_clients
        .get_with(host, async {
            guard.client(kit.pipeline.policy().attempt_timeout + Duration::from_secs(5))
        })
        .await;
    Ok(Reach { http, guard })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn endpoints_are_host_and_port() {
        assert_eq!(
            endpoint("GPU-Box.internal:11434").unwrap(),
            "gpu-box.internal:11434"
        );
        assert_eq!(endpoint("10.0.0.7:11434").unwrap(), "10.0.0.7:11434");
        assert_eq!(endpoint("[fd00::7]:443").unwrap(), "fd00::7:443");
        for bad in [
            "gpu-box",
            "gpu-box:0",
            "gpu-box:99999",
            "http://gpu:1",
            ":80",
            "a b:80",
        ] {
            assert!(endpoint(bad).is_err(), "{bad}");
        }
        let approvals = Approvals {
            endpoints: vec!["gpu-box.internal:11434".into()],
            ..Approvals::default()
        };
        let url = |u: &str| reqwest::Url::parse(u).unwrap();
        assert_eq!(
            approvals.covers(&url("http://GPU-box.internal:11434/api")),
            Some("gpu-box.internal".into())
        );
        assert_eq!(
            approvals.covers(&url("http://gpu-box.internal:11435/")),
            None
        );
        assert_eq!(
            approvals.covers(&url("http://gpu-box.internal/")),
            None,
            "port 80"
        );
    }
}
