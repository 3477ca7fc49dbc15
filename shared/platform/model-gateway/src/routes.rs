//! The OpenAI-compatible routes.

use std::sync::Arc;

use api_kit::{ApiError, Caller};
use app_context::AppContext;
use axum::Json;
use axum::body::Bytes;
use axum::extract::{FromRef, State};
use axum::http::{HeaderMap, HeaderValue};
use axum::response::{IntoResponse, Response};
use axum::routing::{MethodRouter, get, post};
use domain::{FailureClassification, IntegrationConnection, RunId, TenantId};
use envelope::TraceParent;
use functions_runtime::FunctionDecl;
use integration_kit::Done;
use integration_kit::direct::{Direct, DirectRun};
use serde_json::{Value, json};

use crate::error::OpenAiError;
use crate::models::models_of;
use crate::{COMPLETE, EMBED, ModelProvider, usage_of};

/// The routes' state: the kit and the app's model providers.
#[derive(Clone)]
struct Gateway {
    direct: Direct,
    providers: Arc<Vec<Arc<dyn ModelProvider>>>,
}

impl FromRef<Gateway> for AppContext {
    fn from_ref(state: &Gateway) -> AppContext {
        state.direct.ctx().clone()
    }
}

impl Gateway {
    fn provider(&self, key: &str) -> Option<&Arc<dyn ModelProvider>> {
        self.providers.iter().find(|p| p.key() == key)
    }

    /// The tenant's connections serving `model`, in priority order, with the name their
    /// upstream knows it by.
    async fn serving(
        &self,
        tenant: &TenantId,
        model: &str,
    ) -> Result<Vec<(IntegrationConnection, String)>, OpenAiError> {
        let connections = self
            .direct
            .connections(tenant.as_str())
            .await
            .map_err(|_| OpenAiError::unavailable())?;
        Ok(connections
            .iter()
            .filter(|c| self.provider(c.provider_key().as_str()).is_some())
            .filter_map(|c| {
                models_of(c.config())
                    .into_iter()
                    .find(|m| m.name() == model)
                    .map(|m| (c.clone(), m.upstream().to_owned()))
            })
            .collect())
    }
}

/// The model gateway's HTTP functions, for [`integration_kit::VendorApp::routes`].
pub fn routes(
    direct: Direct,
    providers: Vec<Arc<dyn ModelProvider>>,
) -> Vec<(FunctionDecl, MethodRouter)> {
    let state = Gateway {
        direct,
        providers: Arc::new(providers),
    };
    vec![
        (
            FunctionDecl::http("ChatCompletions", "v1/chat/completions", &["post"]).api(
                json!({"summary": "OpenAI-compatible chat completions (errors in OpenAI's shape)"}),
            ),
            post(chat_completions).with_state(state.clone()),
        ),
        (
            FunctionDecl::http("Embeddings", "v1/embeddings", &["post"])
                .api(json!({"summary": "OpenAI-compatible embeddings (errors in OpenAI's shape)"})),
            post(embeddings).with_state(state.clone()),
        ),
        (
            FunctionDecl::http("ListModels", "v1/models", &["get"])
                .api(json!({"summary": "The models the caller's tenant may use through this app"})),
            get(list_models).with_state(state),
        ),
    ]
}

/// The caller's tenant, or OpenAI's 401.
fn tenant_of(caller: Result<Caller, ApiError>) -> Result<TenantId, OpenAiError> {
    let caller = caller.map_err(|_| OpenAiError::unauthenticated())?;
    TenantId::parse_tenant(caller.tenant_id()).map_err(|_| OpenAiError::unauthenticated())
}

/// The largest request body read (the runner and the host cap bodies too).
const MAX_BODY: usize = 4 * 1024 * 1024;

/// What a request asks: a chat completion or embeddings.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    Chat,
    Embed,
}

impl Kind {
    /// The operation its calls are recorded as.
    fn operation(self) -> &'static str {
        match self {
            Kind::Chat => COMPLETE,
            Kind::Embed => EMBED,
        }
    }

    /// The request as JSON, checked ([`Kind::check`]); answers it and its model.
    fn read(self, body: &[u8]) -> Result<(Value, String), OpenAiError> {
        if body.len() > MAX_BODY {
            return Err(OpenAiError::invalid(
                None,
                format!("the request body is over {} MiB", MAX_BODY >> 20),
            ));
        }
        let request: Value = serde_json::from_slice(body).map_err(|e| {
            OpenAiError::invalid(
                None,
                format!("the request body is not JSON ({})", e.classify_name()),
            )
        })?;
        let model = self.check(&request)?;
        Ok((request, model))
    }

    /// The request's rules: an object with a `model`; for a chat, non-empty `messages` and
    /// `stream` absent or false; for embeddings, an `input` that is a non-empty string or a
    /// non-empty list of them. Answers the model.
    pub(crate) fn check(self, request: &Value) -> Result<String, OpenAiError> {
        if !request.is_object() {
            return Err(OpenAiError::invalid(
                None,
                "the request body must be a JSON object",
            ));
        }
        let model = match &request["model"] {
            Value::String(m) if !m.is_empty() => m.clone(),
            _ => {
                return Err(OpenAiError::invalid(
                    Some("model"),
                    "model is required: a model name your connections serve",
                ));
            }
        };
        match self {
            Kind::Chat => {
                if request["messages"].as_array().is_none_or(Vec::is_empty) {
                    return Err(OpenAiError::invalid(
                        Some("messages"),
                        "messages must be a non-empty array",
                    ));
                }
                match &request["stream"] {
                    Value::Null | Value::Bool(false) => {}
                    Value::Bool(true) => {
                        return Err(OpenAiError::invalid(
                            Some("stream"),
                            "streaming is not served by this gateway yet; send stream: false",
                        ));
                    }
                    _ => {
                        return Err(OpenAiError::invalid(
                            Some("stream"),
                            "stream must be a boolean",
                        ));
                    }
                }
            }
            Kind::Embed => {
                let usable = match &request["input"] {
                    Value::String(s) => !s.is_empty(),
                    Value::Array(items) => {
                        !items.is_empty()
                            && items
                                .iter()
                                .all(|i| i.as_str().is_some_and(|s| !s.is_empty()))
                    }
                    _ => false,
                };
                if !usable {
                    return Err(OpenAiError::invalid(
                        Some("input"),
                        "input must be a non-empty string or a non-empty list of them",
                    ));
                }
            }
        }
        Ok(model)
    }
}

/// serde_json's kind of error, without echoing the body.
trait ClassifyName {
    fn classify_name(&self) -> &'static str;
}

impl ClassifyName for serde_json::Error {
    fn classify_name(&self) -> &'static str {
        match self.classify() {
            serde_json::error::Category::Io => "unreadable",
            serde_json::error::Category::Syntax => "a syntax error",
            serde_json::error::Category::Data => "unexpected data",
            serde_json::error::Category::Eof => "it ends early",
        }
    }
}

/// Whether a failed call should go on to the tenant's next connection serving the model:
/// the connection is down, throttled, out of quota or refused its credential; never when
/// the request itself was refused (another connection would refuse it too).
fn falls_back(e: &resilience::CallError) -> bool {
    matches!(
        e.class(),
        FailureClassification::Transient
            | FailureClassification::Timeout
            | FailureClassification::CircuitOpen
            | FailureClassification::RateLimited
            | FailureClassification::Auth
            | FailureClassification::VendorError
    ) || e.failure.vendor_code.as_deref() == Some(crate::error::INSUFFICIENT_QUOTA)
}

async fn chat_completions(
    State(gateway): State<Gateway>,
    caller: Result<Caller, ApiError>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    match call_model(&gateway, Kind::Chat, caller, &headers, &body).await {
        Ok(response) | Err(response) => response,
    }
}

async fn embeddings(
    State(gateway): State<Gateway>,
    caller: Result<Caller, ApiError>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    match call_model(&gateway, Kind::Embed, caller, &headers, &body).await {
        Ok(response) | Err(response) => response,
    }
}

/// One model call: the tenant's connections serving the model, tried in priority order
/// until one answers (or refuses the request itself); the answer, then its run recorded.
async fn call_model(
    gateway: &Gateway,
    kind: Kind,
    caller: Result<Caller, ApiError>,
    headers: &HeaderMap,
    body: &[u8],
) -> Result<Response, Response> {
    let tenant = tenant_of(caller).map_err(IntoResponse::into_response)?;
    let (request, model) = kind.read(body).map_err(IntoResponse::into_response)?;
    let candidates = gateway
        .serving(&tenant, &model)
        .await
        .map_err(IntoResponse::into_response)?;
    if candidates.is_empty() {
        return Err(OpenAiError::model_not_found(&model).into_response());
    }
    let traceparent = headers
        .get("traceparent")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| TraceParent::parse(v).ok())
        .unwrap_or_else(TraceParent::new_root);
    let run_id = RunId::new();
    let started_at = chrono::Utc::now();
    let count = candidates.len();
    let mut outcome = None;
    for (i, (connection, upstream)) in candidates.into_iter().enumerate() {
        let Some(provider) = gateway.provider(connection.provider_key().as_str()) else {
            continue;
        };
        let mut upstream_request = request.clone();
        upstream_request["model"] = json!(upstream);
        let result = match gateway.direct.prepare(&tenant, &connection, run_id).await {
            Ok(prepared) => {
                let call = prepared.call(Some(&traceparent));
                match kind {
                    Kind::Chat => provider.chat(&call, &upstream_request).await,
                    Kind::Embed => provider.embed(&call, &upstream_request).await,
                }
            }
            Err(e) => Err(e),
        };
        let last = i + 1 == count;
        match result {
            Err(e) if !last && falls_back(&e) => {
                tracing::warn!(tenant = %tenant, run = %run_id, connection = %connection.id(),
                    class = ?e.class(), "a model call failed; the next connection serves it");
            }
            result => {
                outcome = Some((connection, result));
                break;
            }
        }
    }
    let Some((connection, result)) = outcome else {
        return Err(OpenAiError::model_not_found(&model).into_response());
    };
    let answer = match &result {
        Ok(answer) => {
            let mut response = (axum::http::StatusCode::OK, Json(answer.clone())).into_response();
            if let Ok(id) = HeaderValue::from_str(&run_id.to_string()) {
                response.headers_mut().insert("x-request-id", id);
            }
            Ok(response)
        }
        Err(e) => {
            let mut response = OpenAiError::upstream(e).into_response();
            if let Ok(id) = HeaderValue::from_str(&run_id.to_string()) {
                response.headers_mut().insert("x-request-id", id);
            }
            Err(response)
        }
    };
    // The run is written after the answer leaves; what it holds is decided here.
    let record = DirectRun {
        tenant,
        run_id,
        operation: kind.operation(),
        connection,
        input: request,
        outcome: result.map(|answer| {
            let usage = usage_of(&answer);
            Done::new(answer).usage(usage)
        }),
        traceparent,
        started_at,
    };
    let direct = gateway.direct.clone();
    tokio::spawn(async move {
        let run = record.run_id;
        if let Err(e) = direct.record(record).await {
            tracing::error!(run = %run, error = %e, "a model call's run could not be recorded");
        }
    });
    answer
}

/// `GET /api/v1/models`: every model the tenant's connections of this app serve, once.
async fn list_models(State(gateway): State<Gateway>, caller: Result<Caller, ApiError>) -> Response {
    let tenant = match tenant_of(caller) {
        Ok(t) => t,
        Err(e) => return e.into_response(),
    };
    let connections = match gateway.direct.connections(tenant.as_str()).await {
        Ok(c) => c,
        Err(_) => return OpenAiError::unavailable().into_response(),
    };
    let mut seen = std::collections::BTreeMap::new();
    for c in connections.iter() {
        if gateway.provider(c.provider_key().as_str()).is_none() {
            continue;
        }
        for m in models_of(c.config()) {
            seen.entry(m.name().to_owned()).or_insert_with(|| {
                json!({"id": m.name(), "object": "model",
                       "created": c.created_at().timestamp(),
                       "owned_by": c.provider_key()})
            });
        }
    }
    Json(json!({"object": "list", "data": seen.into_values().collect::<Vec<_>>()})).into_response()
}
