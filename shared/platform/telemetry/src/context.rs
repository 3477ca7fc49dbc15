//! W3C trace context in and out: a span continuing an incoming `traceparent`, and the current
//! span's context rendered for an outbound call.

use std::collections::HashMap;

use opentelemetry::propagation::TextMapPropagator as _;
use opentelemetry::trace::TraceContextExt as _;
use opentelemetry_sdk::propagation::TraceContextPropagator;
use tracing::Span;
use tracing_opentelemetry::OpenTelemetrySpanExt as _;

/// The header (and envelope extension) carrying the trace id and the caller's span id.
pub const TRACEPARENT: &str = "traceparent";
/// The header carrying vendor-specific trace state; passed along when present.
pub const TRACESTATE: &str = "tracestate";

/// A span for work that arrives from elsewhere (an invocation, a message, a request), whose
/// OpenTelemetry parent is `traceparent`: Application Insights shows it as a *request* in the
/// caller's operation (its operation id is the trace id of `traceparent`).
///
/// `name` becomes the span's (and the request's) name. `traceparent` comes from an incoming
/// `traceparent` header or an envelope's `traceparent` extension (`envelope::TraceParent`
/// displays as one). When it is `None` or malformed (W3C: ignore it) the span continues the
/// current span's trace if there is one, else starts a new trace.
///
/// The span is `server`-kind: every invocation reaches a custom handler as an HTTP request from
/// the host, even a Service Bus message or a timer tick.
pub fn span_from_traceparent(name: &str, traceparent: Option<&str>) -> Span {
    let span = tracing::info_span!("invocation", otel.name = name, otel.kind = "server");
    set_remote_parent(&span, traceparent, None);
    span
}

/// Makes `traceparent` (and `tracestate`) the OpenTelemetry parent of `span`, which must not
/// have been entered yet. Does nothing when the value is absent or malformed, or when no
/// telemetry subscriber is installed.
pub fn set_remote_parent(span: &Span, traceparent: Option<&str>, tracestate: Option<&str>) {
    let Some(parent) = remote_context(traceparent, tracestate) else {
        return;
    };
    // Fails only without the OpenTelemetry layer (a test's own subscriber) or for a span
    // already started; either way the span simply keeps its local parent.
    if let Err(e) = span.set_parent(parent) {
        tracing::debug!(error = %e, "cannot continue the incoming trace");
    }
}

/// The OpenTelemetry context of a remote parent, or `None` for an absent or malformed value.
fn remote_context(
    traceparent: Option<&str>,
    tracestate: Option<&str>,
) -> Option<opentelemetry::Context> {
    let mut carrier = HashMap::with_capacity(2);
    carrier.insert(TRACEPARENT.to_owned(), traceparent?.trim().to_owned());
    if let Some(state) = tracestate {
        carrier.insert(TRACESTATE.to_owned(), state.trim().to_owned());
    }
    let cx = TraceContextPropagator::new().extract(&carrier);
    cx.span().span_context().is_valid().then_some(cx)
}

/// The current span's context as a `traceparent` value (`00-<trace id>-<span id>-<flags>`)
/// for an outbound call or an outgoing envelope; `None` outside any traced span or without
/// the telemetry subscriber.
///
/// For an outbound call, enter a `client`-kind span first (see
/// [`http_client_span`](crate::http_client_span)) and call this inside it: the callee's
/// request then hangs under that dependency in Application Insights.
pub fn current_traceparent() -> Option<String> {
    current_headers().remove(TRACEPARENT)
}

/// Adds `traceparent` (and `tracestate`, when there is one) for the current span to
/// `headers`; leaves them untouched outside any traced span.
pub fn inject_trace_headers(headers: &mut http::HeaderMap) {
    for (name, value) in current_headers() {
        let (Ok(name), Ok(value)) = (
            http::HeaderName::try_from(name),
            http::HeaderValue::try_from(value),
        ) else {
            continue;
        };
        headers.insert(name, value);
    }
}

fn current_headers() -> HashMap<String, String> {
    let mut carrier = HashMap::new();
    TraceContextPropagator::new().inject_context(&current_context(), &mut carrier);
    // The propagator writes `tracestate` even when there is none; an empty header is noise
    // to every receiver (and some refuse it).
    if carrier.get(TRACESTATE).is_some_and(|s| s.trim().is_empty()) {
        carrier.remove(TRACESTATE);
    }
    carrier
}

/// The OpenTelemetry context of the innermost span that has one.
///
/// `Span::current()` is tried first: it also works for a span that was created and entered
/// but whose OpenTelemetry span is still unstarted. When the current span is not seen by the
/// OpenTelemetry layer (a `debug` span, or a target the layer filters out) it has no context;
/// the layer's activated context is then that of the nearest entered ancestor it does see.
fn current_context() -> opentelemetry::Context {
    let cx = Span::current().context();
    if cx.span().span_context().is_valid() {
        cx
    } else {
        opentelemetry::Context::current()
    }
}
