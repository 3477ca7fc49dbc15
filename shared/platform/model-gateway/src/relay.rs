//! Relaying an upstream's stream to the caller as server-sent events, as it comes.
//!
//! The relay task reads the upstream's items (chat chunks or Responses API events) and
//! writes each as its frame into the answer's body; while the upstream is silent it writes a
//! keep-alive comment; a failure (the stream cut, an error event, a clock run out, the
//! stream's time cap) ends the stream with an error event in the flavor's shape, which the
//! OpenAI SDKs raise. A caller who goes away stops the upstream (its stream is dropped). What
//! the run records is the flavor's to say ([`Flavor::finish`]).

use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::http::StatusCode;
use axum::response::Response;
use domain::FailureClassification;
use futures::StreamExt as _;
use resilience::{CallError, VendorFailure};
use serde_json::{Value, json};

use crate::error::OpenAiError;
use crate::quota::Tokens;
use crate::routes::Used;
use crate::stream::{Assembled, Chunks, DONE_FRAME, KEEP_ALIVE_FRAME, frame, is_usage_only};

/// How a stream ended, for its run.
pub(crate) struct Ended {
    pub(crate) outcome: Result<Value, CallError>,
    pub(crate) used: Used,
}

fn failed(failure: VendorFailure) -> CallError {
    CallError {
        failure,
        attempts: 1,
        retryable: false,
    }
}

/// What differs between the streams the gateway relays.
pub(crate) trait Flavor: Send + 'static {
    /// Sees an item; its frame, or `None` when the caller is not sent it.
    fn frame(&mut self, item: &Value) -> Option<Bytes>;
    /// What follows the last item of a stream that ended well (`[DONE]` for chats).
    fn end(&self) -> Option<Bytes>;
    /// The event that ends a failed stream.
    fn error(&mut self, e: &OpenAiError) -> Bytes;
    /// The run's outcome and usage: `failure` when the stream failed, `caller_gone` when the
    /// caller left before its end.
    fn finish(self, failure: Option<VendorFailure>, caller_gone: bool) -> Ended;
}

/// Chat completions: `data:` frames, `[DONE]`, `data: {"error": …}`; the run records the
/// completion the chunks make and the final chunk's usage (relayed only when asked for).
pub(crate) struct ChatRelay {
    assembled: Assembled,
    wants_usage: bool,
}

impl ChatRelay {
    pub(crate) fn new(wants_usage: bool) -> Self {
        ChatRelay {
            assembled: Assembled::default(),
            wants_usage,
        }
    }
}

impl Flavor for ChatRelay {
    fn frame(&mut self, chunk: &Value) -> Option<Bytes> {
        self.assembled.add(chunk);
        (self.wants_usage || !is_usage_only(chunk)).then(|| frame(chunk))
    }

    fn end(&self) -> Option<Bytes> {
        Some(Bytes::from_static(DONE_FRAME))
    }

    fn error(&mut self, e: &OpenAiError) -> Bytes {
        e.event()
    }

    fn finish(self, failure: Option<VendorFailure>, caller_gone: bool) -> Ended {
        let used = match (&failure, self.assembled.usage()) {
            (None, Some(_)) => Used::Reported(Tokens::of(&self.assembled.completion())),
            _ => Used::Unknown,
        };
        let outcome = match failure {
            Some(failure) => Err(failed(failure)),
            None => {
                let mut completion = self.assembled.completion();
                if caller_gone {
                    completion["incomplete"] = json!("the caller closed the stream");
                }
                Ok(completion)
            }
        };
        Ended { outcome, used }
    }
}

/// The Responses API: `event: <type>` + `data:` frames, no `[DONE]`; its own `error` event
/// (with the next `sequence_number`); the run records the terminal event's response.
#[derive(Default)]
pub(crate) struct ResponsesRelay {
    terminal: Option<Value>,
    next_sequence: u64,
}

impl Flavor for ResponsesRelay {
    fn frame(&mut self, event: &Value) -> Option<Bytes> {
        if let Some(n) = event["sequence_number"].as_u64() {
            self.next_sequence = n + 1;
        }
        let kind = event["type"].as_str().unwrap_or("message");
        if crate::stream::TERMINAL_EVENTS.contains(&kind) {
            self.terminal = Some(event.clone());
        }
        Some(Bytes::from(format!("event: {kind}\ndata: {event}\n\n")))
    }

    fn end(&self) -> Option<Bytes> {
        None
    }

    fn error(&mut self, e: &OpenAiError) -> Bytes {
        let event = json!({"type": "error", "code": e.code, "message": e.message,
                           "param": e.param, "sequence_number": self.next_sequence});
        Bytes::from(format!("event: error\ndata: {event}\n\n"))
    }

    fn finish(self, failure: Option<VendorFailure>, caller_gone: bool) -> Ended {
        if let Some(failure) = failure {
            return Ended {
                outcome: Err(failed(failure)),
                used: Used::Unknown,
            };
        }
        let Some(terminal) = self.terminal else {
            let why = if caller_gone {
                "the caller closed the stream before the response ended"
            } else {
                "the stream ended before its terminal event"
            };
            return Ended {
                outcome: Err(failed(VendorFailure::new(
                    FailureClassification::Transient,
                    why,
                ))),
                used: Used::Unknown,
            };
        };
        let response = terminal["response"].clone();
        let used = if response["usage"].is_object() {
            Used::Reported(Tokens::of(&response))
        } else {
            Used::Unknown
        };
        let outcome = if terminal["type"] == "response.failed" {
            let error = &response["error"];
            let mut f = VendorFailure::new(
                FailureClassification::VendorError,
                format!(
                    "the response failed: {}",
                    error["message"].as_str().unwrap_or("no reason given")
                ),
            );
            f.vendor_code = error["code"].as_str().map(str::to_owned);
            Err(failed(f))
        } else {
            Ok(response)
        };
        Ended { outcome, used }
    }
}

/// The stream's clocks and cadence.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Settings {
    pub(crate) keep_alive: Duration,
    pub(crate) max: Duration,
}

/// The sender the relay writes frames into, and the answer's body that reads them.
pub(crate) fn channel() -> (tokio::sync::mpsc::Sender<Bytes>, Body) {
    let (tx, rx) = tokio::sync::mpsc::channel::<Bytes>(32);
    let body = futures::stream::unfold(rx, |mut rx| async move {
        rx.recv()
            .await
            .map(|bytes| (Ok::<_, std::convert::Infallible>(bytes), rx))
    });
    (tx, Body::from_stream(body))
}

/// A `text/event-stream` answer with `body`.
pub(crate) fn event_stream(body: Body) -> Response {
    let mut response = Response::new(body);
    *response.status_mut() = StatusCode::OK;
    let headers = response.headers_mut();
    headers.insert(
        "content-type",
        axum::http::HeaderValue::from_static("text/event-stream; charset=utf-8"),
    );
    headers.insert(
        "cache-control",
        axum::http::HeaderValue::from_static("no-cache"),
    );
    response
}

/// Relays `items` (after `first`, already read) to `tx` in `flavor`'s frames until the
/// stream ends, fails, passes its cap, or the caller leaves.
pub(crate) async fn relay<F: Flavor>(
    tx: tokio::sync::mpsc::Sender<Bytes>,
    mut items: Chunks,
    first: Option<Value>,
    mut flavor: F,
    settings: Settings,
) -> Ended {
    let mut failure: Option<VendorFailure> = None;
    let mut caller_gone = false;
    let cap = tokio::time::sleep(settings.max);
    tokio::pin!(cap);
    let mut next = first.map(Ok);
    loop {
        let item = match next.take() {
            Some(item) => Some(item),
            None => tokio::select! {
                item = items.next() => item,
                () = tokio::time::sleep(settings.keep_alive) => {
                    if tx.send(Bytes::from_static(KEEP_ALIVE_FRAME)).await.is_err() {
                        caller_gone = true;
                        break;
                    }
                    continue;
                }
                () = &mut cap => Some(Err(VendorFailure::new(
                    FailureClassification::Timeout,
                    format!("the stream ran past its {} s limit", settings.max.as_secs()),
                ))),
                () = tx.closed() => {
                    caller_gone = true;
                    break;
                }
            },
        };
        let out = match item {
            None => {
                if let Some(end) = flavor.end() {
                    let _ = tx.send(end).await;
                }
                break;
            }
            Some(Ok(item)) => match flavor.frame(&item) {
                Some(frame) => frame,
                None => continue,
            },
            Some(Err(f)) => {
                let event = flavor.error(&OpenAiError::upstream(&failed(f.clone())));
                let _ = tx.send(event).await;
                failure = Some(f);
                break;
            }
        };
        if tx.send(out).await.is_err() {
            caller_gone = true;
            break;
        }
    }
    // Dropping the upstream's stream closes its connection: it stops generating.
    drop(items);
    drop(tx);
    flavor.finish(failure, caller_gone)
}
