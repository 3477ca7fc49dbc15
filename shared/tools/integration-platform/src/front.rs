//! The runner's HTTP front door: plays the Functions host's HTTP front-end for every app,
//! mounted under `/<slug>`. A request is matched against the declared HTTP functions (route
//! template and methods) exactly as the host would, then forwarded to the app's handler with
//! the original method, `/api/...` path, query, headers and exact body bytes.

use std::collections::BTreeMap;
use std::sync::Arc;

use axum::Router;
use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{HeaderValue, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use functions_runtime::problem::problem;
use functions_runtime::route::RouteTemplate;
use functions_runtime::{FunctionApp, Trigger};
use http_body_util::BodyExt as _;
use tower::ServiceExt as _;

/// The host version the runner reports in `X-Azure-Functions-HostVersion` and `User-Agent`.
pub const HOST_VERSION: &str = "4.1048.200.26180";

/// Largest forwarded request body (the host's own default limit is 100 MB).
pub(crate) const MAX_REQUEST_BYTES: usize = 100 * 1024 * 1024;
/// The host's (Kestrel's) longest request line: 8 KiB; past it, 414.
pub(crate) const MAX_URI_BYTES: usize = 8 * 1024;
/// The host's (Kestrel's) largest request headers, in all: 32 KiB; past them, 431.
pub(crate) const MAX_HEADER_BYTES: usize = 32 * 1024;

pub(crate) struct HttpFunction {
    name: String,
    template: RouteTemplate,
    methods: Vec<String>,
}

pub(crate) struct MountedApp {
    pub(crate) router: Router,
    functions: Vec<HttpFunction>,
    /// Proxied (answers stream through) or forwarded (each answer buffered whole first), as
    /// the host treats the app.
    proxying: bool,
}

impl MountedApp {
    pub(crate) fn new(app: &FunctionApp) -> anyhow::Result<Self> {
        let mut functions = Vec::new();
        // As the host is given them: HEAD beside GET, the other methods to the handler's 405.
        for f in &app.host_declarations() {
            if let Trigger::Http { route, methods, .. } = &f.trigger {
                let template =
                    RouteTemplate::parse(route).map_err(|e| anyhow::anyhow!("{}: {e}", f.name))?;
                functions.push(HttpFunction {
                    name: f.name.clone(),
                    template,
                    methods: methods.clone(),
                });
            }
        }
        // Most specific first, as ASP.NET routing orders them.
        functions.sort_by_key(|f| std::cmp::Reverse(f.template.precedence()));
        Ok(MountedApp {
            router: app.router(),
            functions,
            proxying: app.is_proxying(),
        })
    }

    fn find(&self, path: &str, method: &str) -> Option<&HttpFunction> {
        self.functions.iter().find(|f| {
            (f.methods.is_empty() || f.methods.iter().any(|m| m.eq_ignore_ascii_case(method)))
                && f.template.matches(path).is_some()
        })
    }
}

pub(crate) struct Front {
    pub(crate) apps: BTreeMap<String, MountedApp>,
    pub(crate) index: serde_json::Value,
}

pub(crate) fn router(front: Arc<Front>) -> Router {
    // One request span per call at the front door, as the host's front-end would record
    // it, continuing the caller's `traceparent`.
    Router::new()
        .fallback(dispatch)
        .with_state(front)
        .layer(telemetry::HttpServerLayer)
}

/// The host rebuilds the query from its parsed form: repeated keys become one
/// comma-joined value (`?a=1&a=2` → `?a=1%2C2`).
fn rebuild_query(query: &str) -> String {
    let mut merged: Vec<(String, Vec<String>)> = Vec::new();
    for pair in query.split('&').filter(|p| !p.is_empty()) {
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        match merged
            .iter_mut()
            .find(|(name, _)| name.eq_ignore_ascii_case(k))
        {
            Some((_, values)) => values.push(v.to_owned()),
            None => merged.push((k.to_owned(), vec![v.to_owned()])),
        }
    }
    merged
        .into_iter()
        .map(|(k, v)| {
            if v.len() == 1 {
                format!("{k}={}", v[0])
            } else {
                format!("{k}={}", v.join("%2C"))
            }
        })
        .collect::<Vec<_>>()
        .join("&")
}

async fn dispatch(State(front): State<Arc<Front>>, request: Request) -> Response {
    // The host's limits, answered as problems like every other refusal (hyper's own limits,
    // far larger, still answer bare).
    if request.uri().to_string().len() > MAX_URI_BYTES {
        return problem(
            StatusCode::URI_TOO_LONG,
            "uri_too_long",
            "the request URI is over 8 KiB",
        );
    }
    let header_bytes: usize = request
        .headers()
        .iter()
        .map(|(name, value)| name.as_str().len() + value.len() + 4)
        .sum();
    if header_bytes > MAX_HEADER_BYTES {
        return problem(
            StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
            "headers_too_large",
            "the request headers are over 32 KiB in all",
        );
    }
    let path = request.uri().path().to_owned();
    if path == "/" {
        return (
            StatusCode::OK,
            [(header::CONTENT_TYPE, "application/json")],
            front.index.to_string(),
        )
            .into_response();
    }
    let mut parts = path.trim_start_matches('/').splitn(2, '/');
    let slug = parts.next().unwrap_or_default();
    let rest = parts.next().unwrap_or_default();
    let Some(app) = front.apps.get(slug) else {
        return problem(
            StatusCode::NOT_FOUND,
            "unknown_app",
            &format!("no app is mounted at /{slug}"),
        );
    };
    let Some(below_prefix) = rest
        .strip_prefix("api/")
        .or_else(|| (rest == "api").then_some(""))
    else {
        return problem(
            StatusCode::NOT_FOUND,
            "not_found",
            "app routes live under /<slug>/api/",
        );
    };
    let method = request.method().as_str().to_owned();
    let Some(function) = app.find(below_prefix, &method) else {
        return problem(
            StatusCode::NOT_FOUND,
            "not_found",
            "no function serves this route and method",
        );
    };
    let invocation_id = uuid::Uuid::new_v4().to_string();
    let (mut parts, body) = request.into_parts();
    let query = parts
        .uri
        .query()
        .map(rebuild_query)
        .filter(|q| !q.is_empty());
    let uri = match query {
        Some(q) => format!("/api/{below_prefix}?{q}"),
        None => format!("/api/{below_prefix}"),
    };
    parts.uri = match uri.parse::<Uri>() {
        Ok(u) => u,
        Err(_) => {
            return problem(
                StatusCode::BAD_REQUEST,
                "bad_uri",
                "the request path cannot be forwarded",
            );
        }
    };
    // The host forwards a body only when the request declared a Content-Length; chunked
    // uploads arrive without one. Reproduce that so the difference shows up locally.
    let declared = parts
        .headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok())
        .unwrap_or(0);
    if declared > MAX_REQUEST_BYTES as u64 {
        return problem(
            StatusCode::PAYLOAD_TOO_LARGE,
            "too_large",
            "the request body is too large",
        );
    }
    // Read at most the limit, whatever the client claims, so a lying or chunked client
    // cannot make the runner buffer without bound.
    let bytes = match http_body_util::Limited::new(body, MAX_REQUEST_BYTES)
        .collect()
        .await
    {
        Ok(b) => b.to_bytes(),
        Err(e) if e.is::<http_body_util::LengthLimitError>() => {
            return problem(
                StatusCode::PAYLOAD_TOO_LARGE,
                "too_large",
                "the request body is too large",
            );
        }
        Err(_) => {
            return problem(
                StatusCode::BAD_REQUEST,
                "bad_body",
                "the request body could not be read",
            );
        }
    };
    let body = if declared > 0 {
        Body::from(bytes)
    } else {
        if !bytes.is_empty() {
            tracing::warn!(function = %function.name, "a chunked request body was dropped, as the Functions host does; send Content-Length");
        }
        Body::empty()
    };
    let h = &mut parts.headers;
    if let Ok(v) = HeaderValue::from_str(&invocation_id) {
        h.insert("x-azure-functions-invocationid", v);
    }
    h.insert(
        "x-azure-functions-hostversion",
        HeaderValue::from_static(HOST_VERSION),
    );
    let agent = match h.get(header::USER_AGENT).and_then(|v| v.to_str().ok()) {
        Some(ua) => format!("{ua} Azure-Functions-Host/{HOST_VERSION}"),
        None => format!("Azure-Functions-Host/{HOST_VERSION}"),
    };
    if let Ok(v) = HeaderValue::from_str(&agent) {
        h.insert(header::USER_AGENT, v);
    }
    let started = std::time::Instant::now();
    let response = match app
        .router
        .clone()
        .oneshot(Request::from_parts(parts, body))
        .await
    {
        Ok(r) => r,
        Err(never) => match never {},
    };
    tracing::debug!(function = %function.name, %invocation_id, status = response.status().as_u16(), elapsed_us = started.elapsed().as_micros() as u64, "http invocation");
    if app.proxying {
        return response;
    }
    // Forwarding: the host reads the handler's whole answer before it answers the caller,
    // so nothing streams (a stream reaches the caller at its end, at once).
    let (mut parts, body) = response.into_parts();
    match body.collect().await {
        Ok(collected) => {
            let bytes = collected.to_bytes();
            parts.headers.remove(header::TRANSFER_ENCODING);
            if let Ok(len) = HeaderValue::from_str(&bytes.len().to_string()) {
                parts.headers.insert(header::CONTENT_LENGTH, len);
            }
            Response::from_parts(parts, Body::from(bytes))
        }
        Err(_) => problem(
            StatusCode::BAD_GATEWAY,
            "handler_failed",
            "the handler's answer broke off",
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::rebuild_query;

    #[test]
    fn repeated_query_keys_are_joined_like_the_host() {
        assert_eq!(rebuild_query("a=1&a=2&b=x"), "a=1%2C2&b=x");
        assert_eq!(rebuild_query("flag&x=1"), "flag=&x=1");
        assert_eq!(rebuild_query(""), "");
    }
}
