//! A Function App as the handler sees it: its declared functions, the code behind each, and
//! the axum router that speaks the custom-handler protocol.

use std::collections::HashMap;
use std::future::Future;
use std::path::Path;
use std::pin::Pin;
use std::sync::Arc;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, Path as UrlPath, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};

use crate::declare::{DeclarationError, FunctionDecl, Trigger, validate};
use crate::problem::problem;
use crate::triggers::{ServiceBusMessage, TimerInfo};
use crate::wire::{DecodeError, InvocationRequest, InvocationResponse};

/// Largest invocation body accepted: a 100 MB Service Bus Premium message, base64-encoded,
/// inside its envelope.
pub const INVOCATION_BODY_LIMIT: usize = 140 * 1024 * 1024;

/// Header carrying the invocation id on every host request.
pub const INVOCATION_ID_HEADER: &str = "x-azure-functions-invocationid";

/// One call of a non-HTTP function.
#[derive(Clone, Debug)]
pub struct Invocation {
    pub function: String,
    pub trigger_binding: String,
    pub invocation_id: Option<String>,
    /// The exact bytes the host sent.
    pub body: Bytes,
    payload: Payload,
}

/// What was decoded before the handler ran: Service Bus triggers take the fast typed path
/// (the hot path), everything else the generic tree.
#[derive(Clone, Debug)]
enum Payload {
    ServiceBus(ServiceBusMessage),
    Generic(InvocationRequest),
}

impl Invocation {
    /// The Service Bus message (triggers are declared binary, so the body is exact).
    pub fn service_bus(&self) -> Result<&ServiceBusMessage, DecodeError> {
        match &self.payload {
            Payload::ServiceBus(m) => Ok(m),
            Payload::Generic(_) => Err(DecodeError::WrongType {
                field: self.trigger_binding.clone(),
                expected: "a Service Bus trigger",
            }),
        }
    }

    pub fn timer(&self) -> Result<TimerInfo, DecodeError> {
        TimerInfo::from_invocation(&self.request()?, &self.trigger_binding)
    }

    /// The whole invocation as a generic JSON tree (parsed on demand for Service Bus
    /// triggers).
    pub fn request(&self) -> Result<InvocationRequest, DecodeError> {
        match &self.payload {
            Payload::Generic(r) => Ok(r.clone()),
            Payload::ServiceBus(_) => InvocationRequest::parse(&self.body),
        }
    }
}

/// A failed invocation: the host sees a non-2xx reply (so Service Bus redelivers). The
/// message goes to stderr, which the host logs; it is never sent in the reply.
#[derive(Debug)]
pub struct InvocationError {
    pub message: String,
    /// Whether the failure is the payload's fault (it will fail again on redelivery).
    pub permanent: bool,
}

impl InvocationError {
    pub fn transient(message: impl Into<String>) -> Self {
        InvocationError {
            message: message.into(),
            permanent: false,
        }
    }

    pub fn permanent(message: impl Into<String>) -> Self {
        InvocationError {
            message: message.into(),
            permanent: true,
        }
    }
}

impl From<DecodeError> for InvocationError {
    fn from(e: DecodeError) -> Self {
        InvocationError::permanent(e.to_string())
    }
}

pub type InvocationResult = Result<InvocationResponse, InvocationError>;
type BoxFuture = Pin<Box<dyn Future<Output = InvocationResult> + Send>>;
type Handler = Arc<dyn Fn(Invocation) -> BoxFuture + Send + Sync>;

/// A Function App: a slug (`registry`, `sms`, ...), its function declarations, the handlers
/// of its non-HTTP functions, and the router of its HTTP API (`/api/...`).
#[derive(Clone)]
pub struct FunctionApp {
    slug: String,
    functions: Vec<FunctionDecl>,
    handlers: HashMap<String, Handler>,
    http: Router,
    spans: Option<SpanMaker>,
    /// How the host hands HTTP requests to the handler ([`FunctionApp::proxying`]).
    proxying: bool,
}

/// Makes the span an invocation runs in, from the function's name and the W3C
/// `traceparent` the message carries (application property `traceparent`, or
/// `Diagnostic-Id` as Azure SDKs write it), if any. Hosts give one that links the span to
/// that trace (`telemetry::span_from_traceparent`); this crate knows no tracing back-end.
pub type SpanMaker = fn(function: &str, traceparent: Option<&str>) -> tracing::Span;

impl std::fmt::Debug for FunctionApp {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FunctionApp")
            .field("slug", &self.slug)
            .field(
                "functions",
                &self.functions.iter().map(|d| &d.name).collect::<Vec<_>>(),
            )
            .finish_non_exhaustive()
    }
}

impl FunctionApp {
    /// A new app; it declares `GET /api/openapi.json` (its OpenAPI document, see
    /// [`crate::openapi`]) from the start.
    pub fn new(slug: impl Into<String>) -> Self {
        FunctionApp {
            slug: slug.into(),
            functions: vec![
                FunctionDecl::http(crate::openapi::FUNCTION, crate::openapi::ROUTE, &["get"])
                    .public()
                    .api(serde_json::json!({"summary": "This OpenAPI document"})),
            ],
            handlers: HashMap::new(),
            http: Router::new(),
            spans: None,
            proxying: false,
        }
    }

    /// The host proxies HTTP requests to this app (`enableProxyingHttpRequest`) instead of
    /// forwarding them (`enableForwardingHttpRequest`, the default): answers then stream to
    /// the caller as the handler writes them, where forwarding buffers each whole answer
    /// first. For apps whose answers stream (the model apps); packaging writes the app's
    /// host.json so, and the local runner plays each mode.
    pub fn proxying(mut self) -> Self {
        self.proxying = true;
        self
    }

    /// Whether the host proxies this app's HTTP requests ([`FunctionApp::proxying`]).
    pub fn is_proxying(&self) -> bool {
        self.proxying
    }

    /// Runs every non-HTTP invocation in a span made by `maker` (see [`SpanMaker`]).
    pub fn with_invocation_spans(mut self, maker: SpanMaker) -> Self {
        self.spans = Some(maker);
        self
    }

    pub fn slug(&self) -> &str {
        &self.slug
    }

    /// The routes that serve this app's HTTP functions, under `/api/...`.
    pub fn http_routes(mut self, router: Router) -> Self {
        self.http = self.http.merge(router);
        self
    }

    /// Declares an HTTP function and the code that answers it, from one route: the host's
    /// route template (what `function.json` says) is also the axum path under `/api/`, so the
    /// two cannot drift apart. The methods are `handler`'s; the declaration's are what the
    /// host forwards (an end-to-end test sends each declared method).
    pub fn route(mut self, decl: FunctionDecl, handler: axum::routing::MethodRouter) -> Self {
        if let crate::declare::Trigger::Http { route, .. } = &decl.trigger {
            self.http = self.http.route(&crate::openapi::axum_path(route), handler);
        }
        self.functions.push(decl);
        self
    }

    /// Declares a forwarded HTTP function (served by the router given to `http_routes`).
    pub fn http_function(mut self, decl: FunctionDecl) -> Self {
        self.functions.push(decl);
        self
    }

    /// Declares a Service Bus or timer function and the code that runs it.
    pub fn function<F, Fut>(mut self, decl: FunctionDecl, handler: F) -> Self
    where
        F: Fn(Invocation) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = InvocationResult> + Send + 'static,
    {
        self.handlers.insert(
            decl.name.to_ascii_lowercase(),
            Arc::new(move |inv| Box::pin(handler(inv))),
        );
        self.functions.push(decl);
        self
    }

    pub fn declarations(&self) -> &[FunctionDecl] {
        &self.functions
    }

    /// The declarations as the host is given them (`function.json`, the runner's routing):
    /// every function that takes `GET` takes `HEAD` too (axum answers it from the `GET`
    /// handler, without a body), and the first function of each route also takes the
    /// methods no function of that route takes, so that the host forwards them and the
    /// handler answers 405 with `Allow` instead of the host's bare 404. The OpenAPI
    /// document and the handlers keep the real methods.
    pub fn host_declarations(&self) -> Vec<FunctionDecl> {
        let mut out = self.functions.clone();
        let mut by_route: HashMap<String, (usize, Vec<String>)> = HashMap::new();
        for (i, f) in out.iter_mut().enumerate() {
            if let Trigger::Http { route, methods, .. } = &mut f.trigger {
                if methods.iter().any(|m| m == "get") && !methods.iter().any(|m| m == "head") {
                    methods.push("head".into());
                }
                let entry = by_route.entry(route.clone()).or_insert((i, Vec::new()));
                entry.1.extend(methods.iter().cloned());
            }
        }
        for (first, taken) in by_route.into_values() {
            // A function without methods already takes every method.
            if taken.is_empty() {
                continue;
            }
            if let Trigger::Http { methods, .. } = &mut out[first].trigger {
                for m in HOST_METHODS {
                    if !taken.iter().any(|t| t == m) {
                        methods.push((*m).to_owned());
                    }
                }
            }
        }
        out
    }

    /// The app's OpenAPI 3.1 document (served at `GET /api/openapi.json`).
    pub fn openapi(&self) -> serde_json::Value {
        crate::openapi::document(&self.slug, env!("CARGO_PKG_VERSION"), &self.functions)
    }

    /// Checks the declarations (host rules) and that every non-HTTP function has code.
    pub fn validate(&self) -> Result<(), DeclarationError> {
        validate(&self.functions)?;
        for f in &self.functions {
            if !f.is_http() && !self.handlers.contains_key(&f.name.to_ascii_lowercase()) {
                return Err(DeclarationError::Missing {
                    function: f.name.clone(),
                    what: "handler",
                });
            }
        }
        Ok(())
    }

    /// Writes `<dir>/<Function>/function.json` for every function (its host declaration).
    pub fn write_function_json(&self, dir: &Path) -> std::io::Result<()> {
        for f in &self.host_declarations() {
            let folder = dir.join(&f.name);
            std::fs::create_dir_all(&folder)?;
            let text =
                serde_json::to_string_pretty(&f.function_json()).map_err(std::io::Error::other)?;
            std::fs::write(folder.join("function.json"), text + "\n")?;
        }
        Ok(())
    }

    /// The custom handler: `GET /` for readiness, `POST /<FunctionName>` for invocations,
    /// and the app's forwarded HTTP routes.
    pub fn router(&self) -> Router {
        let invoke_state = Arc::new(Invoker {
            handlers: self.handlers.clone(),
            spans: self.spans,
            bindings: self
                .functions
                .iter()
                .filter(|f| !matches!(f.trigger, Trigger::Http { .. }))
                .map(|f| {
                    let service_bus = matches!(f.trigger, Trigger::ServiceBus { .. });
                    (
                        f.name.to_ascii_lowercase(),
                        (f.name.clone(), f.trigger_binding.clone(), service_bus),
                    )
                })
                .collect(),
        });
        let invocations = Router::new()
            .route("/{function}", post(invoke))
            .layer(DefaultBodyLimit::max(INVOCATION_BODY_LIMIT))
            .with_state(invoke_state);
        let document = Arc::new(self.openapi().to_string());
        Router::new()
            .route("/", get(|| async { StatusCode::OK }))
            .route(
                &format!("/api/{}", crate::openapi::ROUTE),
                get(move || {
                    let document = document.clone();
                    async move {
                        (
                            [(axum::http::header::CONTENT_TYPE, "application/json")],
                            document.as_str().to_owned(),
                        )
                    }
                }),
            )
            .merge(invocations)
            .merge(
                self.http
                    .clone()
                    .layer(axum::middleware::map_response(method_not_allowed)),
            )
            .fallback(|| async { problem(StatusCode::NOT_FOUND, "not_found", "no such route") })
    }
}

/// The methods the host is told every route takes (`OPTIONS` stays the platform's CORS).
const HOST_METHODS: &[&str] = &["get", "head", "post", "put", "patch", "delete"];

/// axum's 405 for a known route (its `Allow` header listing the route's methods), as a
/// problem like every other refusal.
async fn method_not_allowed(response: Response) -> Response {
    if response.status() != StatusCode::METHOD_NOT_ALLOWED {
        return response;
    }
    let allow = response.headers().get(axum::http::header::ALLOW).cloned();
    let detail = match allow.as_ref().and_then(|v| v.to_str().ok()) {
        Some(methods) => format!("this route takes {methods}"),
        None => "this route does not take this method".to_owned(),
    };
    let mut answer = problem(
        StatusCode::METHOD_NOT_ALLOWED,
        "method_not_allowed",
        &detail,
    );
    if let Some(allow) = allow {
        answer
            .headers_mut()
            .insert(axum::http::header::ALLOW, allow);
    }
    answer
}

struct Invoker {
    handlers: HashMap<String, Handler>,
    spans: Option<SpanMaker>,
    /// Declared name, trigger binding name, and whether the trigger is Service Bus.
    bindings: HashMap<String, (String, String, bool)>,
}

async fn invoke(
    State(inv): State<Arc<Invoker>>,
    UrlPath(function): UrlPath<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let key = function.to_ascii_lowercase();
    let (Some(handler), Some((name, binding, service_bus))) =
        (inv.handlers.get(&key), inv.bindings.get(&key))
    else {
        // A real host only calls declared functions; say so clearly to anyone else.
        return problem(
            StatusCode::NOT_FOUND,
            "unknown_function",
            &format!("no function named {function:?}"),
        );
    };
    let invocation_id = headers
        .get(INVOCATION_ID_HEADER)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    let decoded = if *service_bus {
        ServiceBusMessage::from_binary_invocation(&body, binding).map(Payload::ServiceBus)
    } else {
        InvocationRequest::parse(&body).map(Payload::Generic)
    };
    let payload = match decoded {
        Ok(p) => p,
        Err(e) => {
            tracing::error!(function = %name, invocation_id = ?invocation_id, error = %e, "invocation body rejected");
            // Not JSON at all is a malformed request; JSON of the wrong shape is a payload
            // this function can never process.
            let status = match e {
                DecodeError::Json(_)
                | DecodeError::NotAnObject
                | DecodeError::SectionNotObject(_) => StatusCode::BAD_REQUEST,
                _ => StatusCode::UNPROCESSABLE_ENTITY,
            };
            return problem(status, "invalid_invocation", &e.to_string());
        }
    };
    let span = inv.spans.map(|make| {
        let traceparent = match &payload {
            Payload::ServiceBus(m) => m
                .property("traceparent")
                .or_else(|| m.property("Diagnostic-Id")),
            Payload::Generic(_) => None,
        };
        make(name, traceparent.as_deref())
    });
    let call = Invocation {
        function: name.clone(),
        trigger_binding: binding.clone(),
        invocation_id: invocation_id.clone(),
        body,
        payload,
    };
    // A panic in a handler must fail this invocation only, not the process that serves all
    // the others.
    let work = handler(call);
    let spawned = match span {
        Some(span) => tokio::spawn(tracing::Instrument::instrument(work, span)),
        None => tokio::spawn(work),
    };
    match spawned.await {
        Ok(Ok(reply)) => (
            StatusCode::OK,
            [(header::CONTENT_TYPE, "application/json")],
            reply.to_bytes(),
        )
            .into_response(),
        Ok(Err(e)) => {
            tracing::error!(function = %name, invocation_id = ?invocation_id, permanent = e.permanent, error = %e.message, "invocation failed");
            let status = if e.permanent {
                StatusCode::UNPROCESSABLE_ENTITY
            } else {
                StatusCode::INTERNAL_SERVER_ERROR
            };
            problem(
                status,
                "invocation_failed",
                "the function failed; see the handler's log",
            )
        }
        Err(join) => {
            tracing::error!(function = %name, invocation_id = ?invocation_id, error = %join, "invocation panicked");
            problem(
                StatusCode::INTERNAL_SERVER_ERROR,
                "invocation_panicked",
                "the function failed; see the handler's log",
            )
        }
    }
}
