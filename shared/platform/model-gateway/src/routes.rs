//! The OpenAI-compatible routes.

use std::sync::Arc;
use std::time::{Duration, Instant};

use api_kit::{ApiError, Caller};
use app_context::{AppContext, InvalidSetting};
use axum::Json;
use axum::body::Bytes;
use axum::extract::{FromRef, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{MethodRouter, get, post};
use domain::{FailureClassification, IntegrationConnection, RunId, TenantId};
use envelope::TraceParent;
use functions_runtime::FunctionDecl;
use futures::StreamExt as _;
use futures::future::BoxFuture;
use integration_kit::Done;
use integration_kit::direct::{Begun, Direct, DirectRun, Intent, Prepared};
use resilience::CallError;
use serde_json::{Value, json};

use crate::error::OpenAiError;
use crate::models::models_of;
use crate::quota::{Admission, Ask, DEFAULT_MAX_TOKENS, Limits, Quotas, Shape, Tokens};
use crate::relay;
use crate::stream::Chunks;
use crate::{COMPLETE, EMBED, ModelProvider};

/// The routes' state: the kit, the app's model providers and the streams' settings.
#[derive(Clone)]
pub(crate) struct Gateway {
    pub(crate) direct: Direct,
    providers: Arc<Vec<Arc<dyn ModelProvider>>>,
    streams: StreamSettings,
    pub(crate) quotas: Arc<Quotas>,
}

/// Setting: the longest silence (milliseconds, 100 to 300000, default 15000) before a
/// keep-alive comment goes to a streaming caller whose upstream is silent.
pub const STREAM_KEEPALIVE_SETTING: &str = "MODEL_STREAM_KEEPALIVE_MS";
/// Setting: the longest a stream may run (seconds, 1 to 3600, default 200: below the
/// 230 s an HTTP-triggered function may take in Azure), after which it ends with an error
/// event.
pub const STREAM_MAX_SETTING: &str = "MODEL_STREAM_MAX_SECONDS";

#[derive(Debug, Clone, Copy)]
struct StreamSettings {
    keep_alive: Duration,
    max: Duration,
}

impl StreamSettings {
    fn from(ctx: &AppContext) -> Result<Self, InvalidSetting> {
        Ok(StreamSettings {
            keep_alive: settings::millis(ctx, STREAM_KEEPALIVE_SETTING, 100..=300_000)?
                .unwrap_or(Duration::from_secs(15)),
            max: settings::seconds(ctx, STREAM_MAX_SETTING, 1..=3600)?
                .unwrap_or(Duration::from_secs(200)),
        })
    }
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
    /// The tenant's connections that serve `model` for a call of `kind`, in priority order
    /// (each has a provider here that takes the call).
    async fn serving(
        &self,
        tenant: &TenantId,
        model: &str,
        kind: Kind,
    ) -> Result<Vec<(IntegrationConnection, String)>, OpenAiError> {
        let connections = self
            .direct
            .connections(tenant.as_str())
            .await
            .map_err(|_| OpenAiError::unavailable())?;
        Ok(connections
            .iter()
            .filter(|c| {
                self.provider(c.provider_key().as_str())
                    .is_some_and(|p| kind != Kind::Respond || p.serves_responses())
            })
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
) -> Result<Vec<(FunctionDecl, MethodRouter)>, InvalidSetting> {
    let state = Gateway {
        streams: StreamSettings::from(direct.ctx())?,
        quotas: Arc::new(Quotas::new(direct.ctx().documents.clone(), direct.slug())),
        direct,
        providers: Arc::new(providers),
    };
    let responses = state.providers.iter().any(|p| p.serves_responses());
    let mut functions = vec![
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
            get(list_models).with_state(state.clone()),
        ),
    ];
    if responses {
        functions.push((
            FunctionDecl::http("Responses", "v1/responses", &["post"]).api(json!({
                "summary": "OpenAI-compatible Responses API (typed events when streamed; errors in OpenAI's shape)"
            })),
            post(responses_route).with_state(state.clone()),
        ));
    }
    functions.extend(crate::usage::routes(state));
    Ok(functions)
}

/// The caller's tenant and the subject of its token, or OpenAI's 401.
fn tenant_of(caller: Result<Caller, ApiError>) -> Result<(TenantId, String), OpenAiError> {
    let caller = caller.map_err(|_| OpenAiError::unauthenticated())?;
    let tenant =
        TenantId::parse_tenant(caller.tenant_id()).map_err(|_| OpenAiError::unauthenticated())?;
    Ok((tenant, caller.principal.subject))
}

/// The largest request body read (the runner and the host cap bodies too).
const MAX_BODY: usize = 4 * 1024 * 1024;

/// What a request asks: a chat completion, embeddings, or a response (the Responses API).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    Chat,
    Embed,
    Respond,
}

impl Kind {
    /// The operation its calls are recorded as.
    fn operation(self) -> &'static str {
        match self {
            Kind::Chat => COMPLETE,
            Kind::Embed => EMBED,
            Kind::Respond => crate::RESPOND,
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

    /// The request's rules: an object with a `model`; for a chat, non-empty `messages`,
    /// `stream` a boolean if present, `stream_options` (an object, `include_usage` a
    /// boolean) only with `stream: true`; for embeddings, an `input` that is a non-empty string or a
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
                let streams = match &request["stream"] {
                    Value::Null | Value::Bool(false) => false,
                    Value::Bool(true) => true,
                    _ => {
                        return Err(OpenAiError::invalid(
                            Some("stream"),
                            "stream must be a boolean",
                        ));
                    }
                };
                match &request["stream_options"] {
                    Value::Null => {}
                    _ if !streams => {
                        return Err(OpenAiError::invalid(
                            Some("stream_options"),
                            "stream_options is only allowed when stream is true",
                        ));
                    }
                    Value::Object(o) if o.get("include_usage").is_none_or(|u| u.is_boolean()) => {}
                    _ => {
                        return Err(OpenAiError::invalid(
                            Some("stream_options"),
                            "stream_options must be an object whose include_usage is a boolean",
                        ));
                    }
                }
            }
            Kind::Respond => {
                let usable = match &request["input"] {
                    Value::String(s) => !s.is_empty(),
                    Value::Array(items) => !items.is_empty(),
                    _ => false,
                };
                if !usable {
                    return Err(OpenAiError::invalid(
                        Some("input"),
                        "input must be a non-empty string or a non-empty list of input items",
                    ));
                }
                if !matches!(request["stream"], Value::Null | Value::Bool(_)) {
                    return Err(OpenAiError::invalid(
                        Some("stream"),
                        "stream must be a boolean",
                    ));
                }
                if !(request["max_output_tokens"].is_null()
                    || request["max_output_tokens"].as_u64().is_some_and(|n| n > 0))
                {
                    return Err(OpenAiError::invalid(
                        Some("max_output_tokens"),
                        "max_output_tokens must be a positive integer",
                    ));
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
/// what fails a run over ([`integration_kit::fails_over`]), and also a model that answered
/// nonsense or an account out of quota (another connection may still serve the model).
fn falls_back(e: &CallError) -> bool {
    integration_kit::fails_over(e)
        || e.class() == FailureClassification::VendorError
        || e.failure.vendor_code.as_deref() == Some(crate::error::INSUFFICIENT_QUOTA)
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

async fn responses_route(
    State(gateway): State<Gateway>,
    caller: Result<Caller, ApiError>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    match call_model(&gateway, Kind::Respond, caller, &headers, &body).await {
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

/// A checked and admitted request, and the identity of its run.
struct Asked {
    tenant: TenantId,
    subject: String,
    kind: Kind,
    request: Value,
    model: String,
    traceparent: TraceParent,
    run_id: RunId,
    started_at: chrono::DateTime<chrono::Utc>,
    clock: Instant,
    /// The tenant's limits, and what the request took of them.
    limits: Option<Arc<Limits>>,
    admission: Option<Admission>,
    /// The connections tried before the one that decided (the fallback chain).
    tried: Vec<String>,
    /// The write of the run, `running`, beside the upstream call ([`Asked::durable`]).
    begun: Option<Begun>,
    /// Whether that write succeeded.
    stored: bool,
}

/// What a call used, as far as is known when it ends.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Used {
    /// What the upstream reported (its answer's or its final chunk's usage).
    Reported(Tokens),
    /// Nothing: it failed before the upstream did any work.
    Nothing,
    /// Unknown: a stream that ended early; the quotas keep the whole reservation.
    Unknown,
}

impl Asked {
    /// Waits until the run is durable (written `running` beside the upstream call): no
    /// answer leaves before, so a process that dies after it leaves a run to sweep.
    async fn durable(&mut self) {
        if let Some(begun) = self.begun.take() {
            self.stored = begun.stored().await;
        }
    }

    /// What `response` needs to name the run: `x-request-id`.
    fn named(&self, mut response: Response) -> Response {
        if let Ok(id) = HeaderValue::from_str(&self.run_id.to_string()) {
            response.headers_mut().insert("x-request-id", id);
        }
        response
    }

    /// Records the call as a run with its usage entry in the same batch, and settles its
    /// quotas (after the answer, off the caller's path). `first_byte`: when the first
    /// chunk of a stream came (a whole answer's is its end).
    fn record(
        self,
        gateway: &Gateway,
        connection: IntegrationConnection,
        outcome: Result<Value, CallError>,
        used: Used,
        first_byte: Option<Duration>,
    ) {
        let latency = self.clock.elapsed();
        let tokens = match used {
            Used::Reported(t) => t,
            Used::Nothing | Used::Unknown => Tokens::default(),
        };
        let cost = self
            .limits
            .as_ref()
            .and_then(|l| l.cost_micros(&self.model, &tokens));
        let entry = crate::usage::Entry {
            run_id: self.run_id,
            operation: self.kind.operation(),
            subject: &self.subject,
            model: &self.model,
            connection: &connection,
            succeeded: outcome.is_ok(),
            tokens,
            cost_micros: cost,
            prices: self.limits.as_ref().and_then(|l| l.prices.as_ref()),
            latency,
            first_byte: first_byte.unwrap_or(latency),
            trace_id: self.traceparent.trace_id().to_string(),
            tried: &self.tried,
            at: chrono::Utc::now(),
        }
        .write();
        let record = DirectRun {
            tenant: self.tenant,
            run_id: self.run_id,
            operation: self.kind.operation(),
            connection,
            input: self.request,
            outcome: outcome.map(|answer| {
                Done::new(answer).usage(domain::RunUsage {
                    tokens_in: tokens.input,
                    tokens_out: tokens.output,
                    cost_micros: cost.unwrap_or(0),
                    units: 0,
                })
            }),
            traceparent: self.traceparent,
            started_at: self.started_at,
            also: entry.into_iter().collect(),
            begun: self.stored,
        };
        let direct = gateway.direct.clone();
        let quotas = gateway.quotas.clone();
        let admission = self.admission;
        tokio::spawn(async move {
            if let Some(admission) = admission {
                let (spent, cost) = match used {
                    Used::Reported(t) => (t, cost.unwrap_or(0)),
                    Used::Nothing => (Tokens::default(), 0),
                    Used::Unknown => (admission.reserved, admission.reserved_cost_micros),
                };
                quotas.settle(admission, spent, cost).await;
            }
            let run = record.run_id;
            if let Err(e) = direct.record(record).await {
                tracing::error!(run = %run, error = %e, "a model call's run could not be recorded");
            }
        });
    }
}

/// One attempt on one connection: the provider, the prepared call, the upstream's request
/// (its `model` the connection's name for it) and the trace.
type Attempt<T> = fn(
    Arc<dyn ModelProvider>,
    Prepared,
    Value,
    TraceParent,
) -> BoxFuture<'static, Result<T, CallError>>;

/// The tenant's connections serving the model, tried in priority order until one answers
/// or refuses the request itself: the connection that decided, and how (the ones tried
/// before it are kept in `asked.tried`).
async fn first_serving<T>(
    gateway: &Gateway,
    asked: &mut Asked,
    request: &Value,
    candidates: Vec<(IntegrationConnection, String)>,
    attempt: Attempt<T>,
) -> Option<(IntegrationConnection, Result<T, CallError>)> {
    let count = candidates.len();
    for (i, (connection, upstream)) in candidates.into_iter().enumerate() {
        let Some(provider) = gateway.provider(connection.provider_key().as_str()) else {
            continue;
        };
        let mut upstream_request = request.clone();
        upstream_request["model"] = json!(upstream);
        let result = match gateway
            .direct
            .prepare(&asked.tenant, &connection, asked.run_id)
            .await
        {
            Ok(prepared) => {
                attempt(
                    provider.clone(),
                    prepared,
                    upstream_request,
                    asked.traceparent,
                )
                .await
            }
            Err(e) => Err(e),
        };
        match result {
            Err(e) if i + 1 < count && falls_back(&e) => {
                tracing::warn!(tenant = %asked.tenant, run = %asked.run_id,
                    connection = %connection.id(), class = ?e.class(),
                    "a model call failed; the next connection serves it");
                asked.tried.push(connection.id().to_string());
            }
            result => return Some((connection, result)),
        }
    }
    None
}

/// One model call: a chat completion or embeddings, answered whole, or a streamed chat.
async fn call_model(
    gateway: &Gateway,
    kind: Kind,
    caller: Result<Caller, ApiError>,
    headers: &HeaderMap,
    body: &[u8],
) -> Result<Response, Response> {
    let (tenant, subject) = tenant_of(caller).map_err(IntoResponse::into_response)?;
    let (request, model) = kind.read(body).map_err(IntoResponse::into_response)?;
    let candidates = gateway
        .serving(&tenant, &model, kind)
        .await
        .map_err(IntoResponse::into_response)?;
    if candidates.is_empty() {
        return Err(OpenAiError::model_not_found(&model).into_response());
    }
    let unavailable = |_| OpenAiError::unavailable().into_response();
    let limits = gateway
        .quotas
        .limits(tenant.as_str())
        .await
        .map_err(unavailable)?;
    let admission = match &limits {
        None => None,
        Some(limits) => {
            let ask = Ask {
                subject: &subject,
                model: &model,
                tokens: Tokens::estimate(
                    &request,
                    match kind {
                        Kind::Chat => Shape::Chat,
                        Kind::Embed => Shape::Embeddings,
                        Kind::Respond => Shape::Response,
                    },
                    limits.default_max_tokens.unwrap_or(DEFAULT_MAX_TOKENS),
                ),
            };
            match gateway
                .quotas
                .admit(tenant.as_str(), limits, &ask, chrono::Utc::now())
                .await
            {
                Ok(admission) => Some(admission),
                Err(Ok(refusal)) => {
                    return Err(OpenAiError::over_limit(&refusal).into_response());
                }
                Err(Err(e)) => return Err(unavailable(e)),
            }
        }
    };
    let mut asked = Asked {
        tenant,
        subject,
        clock: Instant::now(),
        limits,
        admission,
        tried: Vec::new(),
        kind,
        traceparent: headers
            .get("traceparent")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| TraceParent::parse(v).ok())
            .unwrap_or_else(TraceParent::new_root),
        run_id: RunId::new(),
        started_at: chrono::Utc::now(),
        request,
        model,
        begun: None,
        stored: false,
    };
    asked.begun = Some(gateway.direct.begin(Intent {
        tenant: &asked.tenant,
        run_id: asked.run_id,
        operation: kind.operation(),
        connection: &candidates[0].0,
        input: &asked.request,
        traceparent: &asked.traceparent,
        started_at: asked.started_at,
    }));
    if asked.request["stream"] == true {
        return match kind {
            Kind::Respond => stream_response(gateway, asked, candidates).await,
            _ => stream_chat(gateway, asked, candidates).await,
        };
    }
    let attempt: Attempt<Value> = match kind {
        Kind::Chat => |provider, prepared, request, tp| {
            Box::pin(async move { provider.chat(&prepared.call(Some(&tp)), &request).await })
        },
        Kind::Embed => |provider, prepared, request, tp| {
            Box::pin(async move { provider.embed(&prepared.call(Some(&tp)), &request).await })
        },
        Kind::Respond => |provider, prepared, request, tp| {
            Box::pin(async move { provider.respond(&prepared.call(Some(&tp)), &request).await })
        },
    };
    let request = asked.request.clone();
    let Some((connection, result)) =
        first_serving(gateway, &mut asked, &request, candidates, attempt).await
    else {
        return Err(OpenAiError::model_not_found(&asked.model).into_response());
    };
    asked.durable().await;
    let (answer, used) = match &result {
        Ok(answer) => (
            Ok(asked.named((StatusCode::OK, Json(answer)).into_response())),
            Used::Reported(Tokens::of(answer)),
        ),
        Err(e) => (
            Err(asked.named(OpenAiError::upstream(e).into_response())),
            Used::Nothing,
        ),
    };
    // The run is written after the answer leaves; what it holds is decided here.
    asked.record(gateway, connection, result, used, None);
    answer
}

/// A streamed chat: the first connection whose stream yields a first chunk serves it
/// (fallback happens only before that, so nothing has reached the caller yet); then the
/// chunks are relayed as they come ([`relay`]). Upstreams are always asked for their usage
/// (`stream_options.include_usage`), which the run records; the usage chunk reaches the
/// caller only if it asked.
async fn stream_chat(
    gateway: &Gateway,
    asked: Asked,
    candidates: Vec<(IntegrationConnection, String)>,
) -> Result<Response, Response> {
    let mut request = asked.request.clone();
    if !request["stream_options"].is_object() {
        request["stream_options"] = json!({});
    }
    request["stream_options"]["include_usage"] = json!(true);
    let attempt: Attempt<(Chunks, Option<Value>)> = |provider, prepared, request, tp| {
        Box::pin(async move {
            let chunks = provider
                .chat_stream(&prepared.call(Some(&tp)), &request)
                .await?;
            first_item(chunks).await
        })
    };
    let flavor = relay::ChatRelay::new(asked.request["stream_options"]["include_usage"] == true);
    stream_with(gateway, asked, candidates, &request, attempt, flavor).await
}

/// A streamed response (the Responses API): as [`stream_chat`], its typed events relayed
/// as they come, the terminal event last (no `[DONE]`).
async fn stream_response(
    gateway: &Gateway,
    asked: Asked,
    candidates: Vec<(IntegrationConnection, String)>,
) -> Result<Response, Response> {
    let request = asked.request.clone();
    let attempt: Attempt<(Chunks, Option<Value>)> = |provider, prepared, request, tp| {
        Box::pin(async move {
            let events = provider
                .respond_stream(&prepared.call(Some(&tp)), &request)
                .await?;
            first_item(events).await
        })
    };
    stream_with(
        gateway,
        asked,
        candidates,
        &request,
        attempt,
        relay::ResponsesRelay::default(),
    )
    .await
}

/// A stream and its first item, or the failure that came instead (which may fall back).
async fn first_item(mut items: Chunks) -> Result<(Chunks, Option<Value>), CallError> {
    match items.next().await {
        Some(Ok(first)) => Ok((items, Some(first))),
        Some(Err(failure)) => Err(CallError {
            retryable: failure.class.is_retryable_by_default(),
            failure,
            attempts: 1,
        }),
        None => Ok((items, None)),
    }
}

/// The first connection whose stream yields a first item serves it; its items are then
/// relayed in `flavor`'s frames ([`relay::relay`]).
async fn stream_with<F: relay::Flavor>(
    gateway: &Gateway,
    mut asked: Asked,
    candidates: Vec<(IntegrationConnection, String)>,
    request: &Value,
    attempt: Attempt<(Chunks, Option<Value>)>,
    flavor: F,
) -> Result<Response, Response> {
    let Some((connection, result)) =
        first_serving(gateway, &mut asked, request, candidates, attempt).await
    else {
        return Err(OpenAiError::model_not_found(&asked.model).into_response());
    };
    let first_byte = asked.clock.elapsed();
    asked.durable().await;
    match result {
        Ok((items, first)) => {
            let (tx, body) = relay::channel();
            let settings = relay::Settings {
                keep_alive: gateway.streams.keep_alive,
                max: gateway.streams.max,
            };
            let response = asked.named(relay::event_stream(body));
            let gateway = gateway.clone();
            tokio::spawn(async move {
                let ended = relay::relay(tx, items, first, flavor, settings).await;
                asked.record(
                    &gateway,
                    connection,
                    ended.outcome,
                    ended.used,
                    Some(first_byte),
                );
            });
            Ok(response)
        }
        Err(e) => {
            let response = asked.named(OpenAiError::upstream(&e).into_response());
            asked.record(gateway, connection, Err(e), Used::Nothing, None);
            Err(response)
        }
    }
}

/// `GET /api/v1/models`: every model the tenant's connections of this app serve, once.
async fn list_models(State(gateway): State<Gateway>, caller: Result<Caller, ApiError>) -> Response {
    let tenant = match tenant_of(caller) {
        Ok((t, _)) => t,
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
