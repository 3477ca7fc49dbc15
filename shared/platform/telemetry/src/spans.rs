//! Spans for HTTP: incoming requests (Application Insights *requests*) and outbound calls
//! (*dependencies*), with the attributes the exporter maps to names, URLs and result codes.
//!
//! Query strings are never recorded: Functions keys (`?code=`), SAS signatures and OAuth
//! codes travel there, and every span attribute is exported as a property.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

use axum::extract::MatchedPath;
use tracing::{Instrument as _, Span};

use crate::context::{TRACEPARENT, TRACESTATE, set_remote_parent};

/// A span for an incoming HTTP request, continuing the request's `traceparent` header.
///
/// Named `METHOD route`: the matched route template when axum has matched one (the layer is
/// inside the router, e.g. `Router::route_layer`), else the path. Record the outcome with
/// [`record_response_status`]; [`HttpServerLayer`] does both for every request.
pub fn http_server_span<B>(request: &http::Request<B>) -> Span {
    let method = request.method().as_str();
    let path = request.uri().path();
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map_or(path, MatchedPath::as_str);
    let span = tracing::info_span!(
        "http_request",
        otel.name = %format_args!("{method} {route}"),
        otel.kind = "server",
        otel.status_code = tracing::field::Empty,
        http.request.method = method,
        http.route = route,
        url.path = path,
        http.response.status_code = tracing::field::Empty,
    );
    let header = |name: &str| request.headers().get(name).and_then(|v| v.to_str().ok());
    set_remote_parent(&span, header(TRACEPARENT), header(TRACESTATE));
    span
}

/// Records an incoming request's outcome on its span: the status code, and an error status
/// for 5xx (a 4xx is the caller's failure, not this service's).
pub fn record_response_status(span: &Span, status: http::StatusCode) {
    span.record("http.response.status_code", status.as_u16());
    if status.is_server_error() {
        span.record("otel.status_code", "error");
    }
}

/// A `client`-kind span for an outbound HTTP call: Application Insights shows it as an HTTP
/// *dependency* of the current request. Create it as a child of the work it serves, enter it
/// around the call, and send [`current_traceparent`](crate::current_traceparent) (or
/// [`inject_trace_headers`](crate::inject_trace_headers)) from inside it; record the outcome
/// with [`record_dependency_status`].
///
/// `url` is recorded without its query, fragment or user info. A URL that does not parse is
/// recorded as its path only (or not at all).
pub fn http_client_span(method: &str, url: &str) -> Span {
    let parts = UrlParts::parse(url);
    let span = tracing::info_span!(
        "http_call",
        otel.name = %format_args!("{method} {}", parts.path),
        otel.kind = "client",
        otel.status_code = tracing::field::Empty,
        http.request.method = method,
        url.full = tracing::field::Empty,
        server.address = tracing::field::Empty,
        server.port = tracing::field::Empty,
        http.response.status_code = tracing::field::Empty,
    );
    if let Some(host) = parts.host {
        span.record("server.address", host);
        span.record(
            "url.full",
            format!("{}://{}{}", parts.scheme, parts.authority, parts.path),
        );
    }
    if let Some(port) = parts.port {
        span.record("server.port", port);
    }
    span
}

/// Records an outbound call's outcome on its span: the status code, and ok / error (any 4xx
/// or 5xx) so the dependency's success is explicit.
pub fn record_dependency_status(span: &Span, status: http::StatusCode) {
    span.record("http.response.status_code", status.as_u16());
    let outcome = if status.is_client_error() || status.is_server_error() {
        "error"
    } else {
        "ok"
    };
    span.record("otel.status_code", outcome);
}

/// Marks a span as failed without a status code (a timeout, a refused connection).
pub fn record_failure(span: &Span) {
    span.record("otel.status_code", "error");
}

/// The parts of a URL that may be recorded.
struct UrlParts<'a> {
    scheme: &'a str,
    /// Host and port, without user info.
    authority: &'a str,
    host: Option<&'a str>,
    port: Option<u16>,
    path: &'a str,
}

impl<'a> UrlParts<'a> {
    fn parse(url: &'a str) -> UrlParts<'a> {
        // Cut the query and fragment first, so nothing after them is ever looked at.
        let url = url.split(['?', '#']).next().unwrap_or_default();
        let (scheme, rest) = url.split_once("://").unwrap_or(("", url));
        let (authority, path) = match rest.find('/') {
            Some(i) if !scheme.is_empty() => rest.split_at(i),
            None if !scheme.is_empty() => (rest, "/"),
            _ => ("", rest),
        };
        // User info (`user:password@`) is a credential.
        let authority = authority.rsplit_once('@').map_or(authority, |(_, a)| a);
        let (host, port) = match authority.rsplit_once(':') {
            // `[::1]:8080` splits at the last colon; `[::1]` alone has no port.
            Some((h, p)) if !p.contains(']') => (h, p.parse().ok()),
            _ => (authority, None),
        };
        UrlParts {
            scheme,
            authority,
            host: (!host.is_empty()).then_some(host),
            port,
            path: if path.is_empty() { "/" } else { path },
        }
    }
}

/// A tower layer giving every request an [`http_server_span`], with the response's status
/// recorded on it. Add it with `Router::layer` (named by path) or `Router::route_layer`
/// (named by route template).
#[derive(Debug, Clone, Copy, Default)]
pub struct HttpServerLayer;

impl<S> tower::Layer<S> for HttpServerLayer {
    type Service = HttpServer<S>;

    fn layer(&self, inner: S) -> HttpServer<S> {
        HttpServer { inner }
    }
}

/// The service [`HttpServerLayer`] wraps around an inner service.
#[derive(Debug, Clone)]
pub struct HttpServer<S> {
    inner: S,
}

impl<S, B, R> tower::Service<http::Request<B>> for HttpServer<S>
where
    S: tower::Service<http::Request<B>, Response = http::Response<R>>,
    S::Future: Send + 'static,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = Pin<Box<dyn Future<Output = Result<S::Response, S::Error>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: http::Request<B>) -> Self::Future {
        let span = http_server_span(&request);
        // Whatever the inner service does before returning its future is in the span too.
        let future = span.in_scope(|| self.inner.call(request));
        let recorded = span.clone();
        Box::pin(
            async move {
                let result = future.await;
                match &result {
                    Ok(response) => record_response_status(&recorded, response.status()),
                    Err(_) => record_failure(&recorded),
                }
                result
            }
            .instrument(span),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::UrlParts;

    #[test]
    fn url_parts_drop_query_fragment_and_user_info() {
        let p = UrlParts::parse("https://user:pw@api.example.com:8443/v1/send?sig=secret#frag");
        assert_eq!(p.scheme, "https");
        assert_eq!(p.authority, "api.example.com:8443");
        assert_eq!(p.host, Some("api.example.com"));
        assert_eq!(p.port, Some(8443));
        assert_eq!(p.path, "/v1/send");

        let p = UrlParts::parse("http://[::1]:8080");
        assert_eq!(p.host, Some("[::1]"));
        assert_eq!(p.port, Some(8080));
        assert_eq!(p.path, "/");

        let p = UrlParts::parse("/relative?code=key");
        assert_eq!(p.host, None);
        assert_eq!(p.path, "/relative");
    }
}
