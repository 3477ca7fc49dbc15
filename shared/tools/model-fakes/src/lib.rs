//! Test-only: OpenAI's HTTP API (and Azure OpenAI's, [`FakeOpenAi::start_azure`]; Ollama's
//! native API is [`ollama::FakeOllama`]) on a local port, in its documented shapes, answering with
//! the deterministic content of the gateway's `fake-model` (the last user message echoed,
//! usage counted in words, unit-vector embeddings): the upstream the end-to-end tests and
//! the benchmarks call over real HTTP, and the one a comparison harness points another
//! gateway at.
//!
//! Served under `/v1`: `GET /models`, `POST /chat/completions` (whole, or server-sent events
//! with `stream: true`: a role chunk, a chunk per word, the finish, the usage chunk when
//! `stream_options.include_usage`, then `data: [DONE]`), `POST /embeddings` (floats or
//! base64). What OpenAI does wrong-footed callers, it does too: a missing or wrong key is
//! 401 `invalid_api_key`; a body that is not JSON, or without `model`, is 400
//! `invalid_request_error`; an unknown path is 404 `unknown_url`. Some model names play a
//! vendor's bad day:
//!
//! - `rate-limited`: 429 `rate_limit_exceeded` with `retry-after: 1` and
//!   `x-ratelimit-reset-requests: 1s`;
//! - `insufficient-quota`: 429 `insufficient_quota` (no wait cures it);
//! - `cut`: a stream whose connection drops after two chunks (a whole answer: a 500);
//! - `fails-mid-stream`: a stream that ends with an `{"error": …}` event after two chunks.
//!
//! As Azure OpenAI it takes the `api-key` header instead of a bearer, serves the same under
//! `/openai/v1/` (the deployment as `model`) and under
//! `/openai/deployments/{deployment}/…?api-version=…` (the deployment in the path; a
//! missing `api-version` is a 404), and adds Azure's content-filter annotations
//! (`prompt_filter_results`, `choices[].content_filter_results`) to its answers.

pub mod ollama;

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

/// How the fake behaves.
#[derive(Debug, Clone)]
pub struct Options {
    /// The only API key it accepts (`Authorization: Bearer …`).
    pub api_key: String,
    /// Before every answer (a stream's first chunk).
    pub latency: Duration,
    /// Before every chunk of a stream after the first.
    pub chunk_delay: Duration,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            api_key: "sk-fake-0123456789abcdefghijklmnop".to_owned(),
            latency: Duration::ZERO,
            chunk_delay: Duration::ZERO,
        }
    }
}

struct Inner {
    options: Options,
    requests: AtomicU64,
    azure: bool,
}

/// The fake, serving until dropped.
pub struct FakeOpenAi {
    /// `http://localhost:<port>/v1`: a name, not an IP literal, so callers' SSRF guards
    /// resolve it (and must be told to allow it).
    pub base_url: String,
    inner: Arc<Inner>,
    task: tokio::task::JoinHandle<()>,
}

impl FakeOpenAi {
    /// OpenAI: `base_url` is `http://localhost:<port>/v1`.
    pub async fn start(options: Options) -> std::io::Result<FakeOpenAi> {
        Self::serve(options, false).await
    }

    /// Azure OpenAI: `base_url` is the resource's endpoint, `http://localhost:<port>`.
    pub async fn start_azure(options: Options) -> std::io::Result<FakeOpenAi> {
        Self::serve(options, true).await
    }

    async fn serve(options: Options, azure: bool) -> std::io::Result<FakeOpenAi> {
        use axum::routing::{get, post};
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let port = listener.local_addr()?.port();
        let inner = Arc::new(Inner {
            options,
            requests: AtomicU64::new(0),
            azure,
        });
        let v1 = if azure { "/openai/v1" } else { "/v1" };
        let mut app = axum::Router::new()
            .route(&format!("{v1}/models"), get(models))
            .route(&format!("{v1}/chat/completions"), post(chat))
            .route(&format!("{v1}/embeddings"), post(embeddings))
            .route(&format!("{v1}/responses"), post(responses));
        if azure {
            // The dated API: the same handlers, behind its `api-version` and with the
            // deployment from the path as the body's `model` ([`dated`]).
            app = app.merge(
                axum::Router::new()
                    .route("/openai/models", get(models))
                    .route("/openai/responses", post(responses))
                    .route(
                        "/openai/deployments/{deployment}/chat/completions",
                        post(chat),
                    )
                    .route(
                        "/openai/deployments/{deployment}/embeddings",
                        post(embeddings),
                    )
                    .layer(axum::middleware::from_fn(dated)),
            );
        }
        let app = app
            .fallback(|| async {
                error(
                    StatusCode::NOT_FOUND,
                    "invalid_request_error",
                    Some("unknown_url"),
                    "Unknown request URL. Please check the URL for typos.",
                )
            })
            .with_state(inner.clone());
        let task = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Ok(FakeOpenAi {
            base_url: if azure {
                format!("http://localhost:{port}")
            } else {
                format!("http://localhost:{port}/v1")
            },
            inner,
            task,
        })
    }

    /// The API key it accepts.
    pub fn api_key(&self) -> &str {
        &self.inner.options.api_key
    }

    /// Requests it has been sent, refused ones included.
    pub fn requests(&self) -> u64 {
        self.inner.requests.load(Ordering::Relaxed)
    }
}

impl Drop for FakeOpenAi {
    fn drop(&mut self) {
        self.task.abort();
    }
}

fn error(status: StatusCode, kind: &str, code: Option<&str>, message: &str) -> Response {
    (
        status,
        axum::Json(
            json!({"error": {"message": message, "type": kind, "param": null, "code": code}}),
        ),
    )
        .into_response()
}

/// The key check every route starts with (and the request count): the refusal, if any.
fn refusal(inner: &Inner, headers: &HeaderMap) -> Option<Response> {
    inner.requests.fetch_add(1, Ordering::Relaxed);
    let has =
        |name: &str, value: &str| headers.get(name).and_then(|v| v.to_str().ok()) == Some(value);
    let bearer = format!("Bearer {}", inner.options.api_key);
    // Azure OpenAI takes its key as `api-key`, or an Entra ID token as a bearer (the fake's
    // key stands for both).
    if has("authorization", &bearer) || (inner.azure && has("api-key", &inner.options.api_key)) {
        return None;
    }
    Some(error(
        StatusCode::UNAUTHORIZED,
        "invalid_request_error",
        Some("invalid_api_key"),
        "Incorrect API key provided. You can find your API key at https://platform.openai.com/account/api-keys.",
    ))
}

/// The request body as a JSON object with a `model`, or OpenAI's 400.
fn read(body: &[u8]) -> Result<Value, Box<Response>> {
    let request: Value = serde_json::from_slice(body).map_err(|_| {
        Box::new(error(
            StatusCode::BAD_REQUEST,
            "invalid_request_error",
            None,
            "We could not parse the JSON body of your request. (HINT: This likely means you aren't using your HTTP library correctly. The OpenAI API expects a JSON payload, but what was sent was not valid JSON.)",
        ))
    })?;
    if !request["model"].is_string() {
        return Err(Box::new(error(
            StatusCode::BAD_REQUEST,
            "invalid_request_error",
            None,
            "you must provide a model parameter",
        )));
    }
    Ok(request)
}

/// What every call goes through first: the key, the body, the bad day its model asks for.
/// Answers the request and its model.
fn admit(
    inner: &Inner,
    headers: &HeaderMap,
    body: &[u8],
) -> Result<(Value, String), Box<Response>> {
    if let Some(r) = refusal(inner, headers) {
        return Err(Box::new(r));
    }
    let request = read(body)?;
    let model = request["model"].as_str().unwrap_or_default().to_owned();
    match bad_day(&model) {
        Some(r) => Err(Box::new(r)),
        None => Ok((request, model)),
    }
}

/// The bad days some model names ask for, before any answer.
fn bad_day(model: &str) -> Option<Response> {
    match model {
        "rate-limited" => {
            let mut r = error(
                StatusCode::TOO_MANY_REQUESTS,
                "requests",
                Some("rate_limit_exceeded"),
                "Rate limit reached for requests. Please try again in 1s.",
            );
            let h = r.headers_mut();
            h.insert("retry-after", "1".parse().ok()?);
            h.insert("x-ratelimit-limit-requests", "60".parse().ok()?);
            h.insert("x-ratelimit-remaining-requests", "0".parse().ok()?);
            h.insert("x-ratelimit-reset-requests", "1s".parse().ok()?);
            Some(r)
        }
        "insufficient-quota" => Some(error(
            StatusCode::TOO_MANY_REQUESTS,
            "insufficient_quota",
            Some("insufficient_quota"),
            "You exceeded your current quota, please check your plan and billing details.",
        )),
        _ => None,
    }
}

async fn models(State(inner): State<Arc<Inner>>, headers: HeaderMap) -> Response {
    if let Some(r) = refusal(&inner, &headers) {
        return r;
    }
    axum::Json(json!({"object": "list", "data": [
        {"id": "gpt-4o-mini", "object": "model", "created": 1_721_172_741u64, "owned_by": "system"},
        {"id": "text-embedding-3-small", "object": "model", "created": 1_705_948_997u64, "owned_by": "system"},
    ]}))
    .into_response()
}

async fn embeddings(State(inner): State<Arc<Inner>>, headers: HeaderMap, body: Bytes) -> Response {
    let (request, _) = match admit(&inner, &headers, &body) {
        Ok(admitted) => admitted,
        Err(r) => return *r,
    };
    tokio::time::sleep(inner.options.latency).await;
    axum::Json(model_gateway::fake::embeddings(&request)).into_response()
}

async fn chat(State(inner): State<Arc<Inner>>, headers: HeaderMap, body: Bytes) -> Response {
    let (request, model) = match admit(&inner, &headers, &body) {
        Ok(admitted) => admitted,
        Err(r) => return *r,
    };
    let id = format!("fake{}", inner.requests.load(Ordering::Relaxed));
    let mut completion = model_gateway::fake::completion(&request, &id);
    if inner.azure {
        let safe = json!({"hate": {"filtered": false, "severity": "safe"},
                          "self_harm": {"filtered": false, "severity": "safe"},
                          "sexual": {"filtered": false, "severity": "safe"},
                          "violence": {"filtered": false, "severity": "safe"}});
        completion["prompt_filter_results"] =
            json!([{"prompt_index": 0, "content_filter_results": safe}]);
        completion["choices"][0]["content_filter_results"] = safe;
    }
    tokio::time::sleep(inner.options.latency).await;
    if request["stream"] != true {
        if model == "cut" {
            return error(
                StatusCode::INTERNAL_SERVER_ERROR,
                "server_error",
                None,
                "The server had an error while processing your request.",
            );
        }
        return axum::Json(completion).into_response();
    }
    let mut chunks = model_gateway::fake::chunks_of(&completion);
    if request["stream_options"]["include_usage"] != true {
        chunks.pop_back();
    }
    let mut frames: Vec<Result<Bytes, std::io::Error>> = chunks
        .iter()
        .map(|c| Ok(Bytes::from(format!("data: {c}\n\n"))))
        .collect();
    match model.as_str() {
        "cut" => {
            frames.truncate(2);
            frames.push(Err(std::io::Error::other("connection reset")));
        }
        "fails-mid-stream" => {
            frames.truncate(2);
            frames.push(Ok(Bytes::from(format!(
                "data: {}\n\n",
                json!({"error": {"message": "The server had an error while processing your request.",
                                 "type": "server_error", "param": null, "code": null}})
            ))));
        }
        _ => frames.push(Ok(Bytes::from_static(b"data: [DONE]\n\n"))),
    }
    stream_of(frames, inner.options.chunk_delay, &id)
}

/// `POST /responses`: the `response` object, or its typed events (`event:` and `data:`,
/// no `[DONE]`); `cut` drops the connection after three events, `fails-mid-stream` sends an
/// `error` event instead of the rest.
async fn responses(State(inner): State<Arc<Inner>>, headers: HeaderMap, body: Bytes) -> Response {
    let (request, model) = match admit(&inner, &headers, &body) {
        Ok(admitted) => admitted,
        Err(r) => return *r,
    };
    if !(request["input"].is_string() || request["input"].is_array()) {
        return error(
            StatusCode::BAD_REQUEST,
            "invalid_request_error",
            None,
            "Missing required parameter: 'input'.",
        );
    }
    let id = format!("fake{}", inner.requests.load(Ordering::Relaxed));
    let response = model_gateway::fake::response(&request, &id);
    tokio::time::sleep(inner.options.latency).await;
    if request["stream"] != true {
        return axum::Json(response).into_response();
    }
    let mut frames: Vec<Result<Bytes, std::io::Error>> =
        model_gateway::fake::response_events(&response)
            .iter()
            .map(|e| {
                Ok(Bytes::from(format!(
                    "event: {}\ndata: {e}\n\n",
                    e["type"].as_str().unwrap_or_default()
                )))
            })
            .collect();
    match model.as_str() {
        "cut" => {
            frames.truncate(3);
            frames.push(Err(std::io::Error::other("connection reset")));
        }
        "fails-mid-stream" => {
            frames.truncate(3);
            frames.push(Ok(Bytes::from(format!(
                "event: error\ndata: {}\n\n",
                json!({"type": "error", "code": "server_error", "param": null,
                       "message": "The server had an error while processing your request.",
                       "sequence_number": 3})
            ))));
        }
        _ => {}
    }
    stream_of(frames, inner.options.chunk_delay, &id)
}

/// An answer that sends `frames` as they are played (a delay before each after the first).
fn stream_of(frames: Vec<Result<Bytes, std::io::Error>>, delay: Duration, id: &str) -> Response {
    let body = futures::stream::unfold(
        (frames.into_iter(), true),
        move |(mut frames, first)| async move {
            let frame = frames.next()?;
            if !first && !delay.is_zero() {
                tokio::time::sleep(delay).await;
            }
            // Hyper sends what it has before it meets a failed frame; a cut comes after
            // the frames before it have gone out.
            if frame.is_err() {
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            Some((frame, (frames, false)))
        },
    );
    Response::builder()
        .header("content-type", "text/event-stream; charset=utf-8")
        .header("x-request-id", format!("req_{id}"))
        .body(Body::from_stream(body))
        .unwrap_or_default()
}

fn missing_version() -> Response {
    error(
        StatusCode::NOT_FOUND,
        "invalid_request_error",
        Some("404"),
        "Resource not found",
    )
}

/// The body of a dated call: the deployment from the path as its `model`.
fn with_deployment(body: &Bytes, deployment: &str) -> Bytes {
    match serde_json::from_slice::<Value>(body) {
        Ok(mut v) if v.is_object() => {
            v["model"] = json!(deployment);
            Bytes::from(v.to_string())
        }
        _ => body.clone(),
    }
}

/// What the dated API adds before the handlers: a required `api-version` (404 without one,
/// as Azure answers), and the deployment named in the path as the body's `model`.
async fn dated(request: axum::extract::Request, next: axum::middleware::Next) -> Response {
    let versioned = request
        .uri()
        .query()
        .is_some_and(|q| q.split('&').any(|p| p.starts_with("api-version=")));
    if !versioned {
        return missing_version();
    }
    let deployment = request
        .uri()
        .path()
        .strip_prefix("/openai/deployments/")
        .and_then(|rest| rest.split('/').next())
        .map(str::to_owned);
    let Some(deployment) = deployment else {
        return next.run(request).await;
    };
    let (parts, body) = request.into_parts();
    let body = axum::body::to_bytes(body, 16 << 20)
        .await
        .unwrap_or_default();
    let request =
        axum::extract::Request::from_parts(parts, Body::from(with_deployment(&body, &deployment)));
    next.run(request).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn it_answers_like_openai_and_refuses_like_it() {
        let fake = FakeOpenAi::start(Options::default()).await.unwrap();
        let http = reqwest::Client::new();
        let url = |p: &str| format!("{}{p}", fake.base_url);
        let r = http
            .post(url("/chat/completions"))
            .bearer_auth(fake.api_key())
            .json(&json!({"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hi there"}]}))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200);
        let c: Value = r.json().await.unwrap();
        assert_eq!(c["choices"][0]["message"]["content"], "echo: hi there");
        let r = http
            .post(url("/chat/completions"))
            .bearer_auth(fake.api_key())
            .json(
                &json!({"model": "m", "stream": true, "stream_options": {"include_usage": true},
                          "messages": [{"role": "user", "content": "a b"}]}),
            )
            .send()
            .await
            .unwrap();
        assert!(
            r.headers()["content-type"]
                .to_str()
                .unwrap()
                .starts_with("text/event-stream")
        );
        let text = r.text().await.unwrap();
        assert!(text.ends_with("data: [DONE]\n\n"), "{text}");
        assert!(text.contains("\"usage\""), "{text}");
        let r = http
            .post(url("/chat/completions"))
            .bearer_auth("sk-wrong")
            .json(&json!({"model": "m"}))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 401);
        let r = http
            .post(url("/chat/completions"))
            .bearer_auth(fake.api_key())
            .body("{not json")
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 400);
        let r = http
            .post(url("/embeddings"))
            .bearer_auth(fake.api_key())
            .json(&json!({"model": "rate-limited", "input": "x"}))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 429);
        assert_eq!(r.headers()["x-ratelimit-reset-requests"], "1s");
        let r = http
            .post(url("/chat/completions"))
            .bearer_auth(fake.api_key())
            .json(&json!({"model": "cut", "stream": true, "messages": [{"role": "user", "content": "a b c"}]}))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200);
        assert!(r.text().await.is_err(), "the connection drops mid-body");
        assert_eq!(fake.requests(), 6);
    }

    #[tokio::test]
    async fn as_azure_it_serves_both_url_styles_with_its_key_header() {
        let fake = FakeOpenAi::start_azure(Options::default()).await.unwrap();
        let http = reqwest::Client::new();
        let ask = json!({"messages": [{"role": "user", "content": "hi"}]});
        let r = http
            .post(format!(
                "{}/openai/deployments/gpt-4o-mini/chat/completions?api-version=2024-10-21",
                fake.base_url
            ))
            .header("api-key", fake.api_key())
            .json(&ask)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200);
        let c: Value = r.json().await.unwrap();
        assert_eq!(c["model"], "gpt-4o-mini", "the deployment from the path");
        assert!(c["prompt_filter_results"].is_array());
        let r = http
            .post(format!(
                "{}/openai/deployments/gpt-4o-mini/chat/completions",
                fake.base_url
            ))
            .header("api-key", fake.api_key())
            .json(&ask)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 404, "no api-version");
        let r = http
            .post(format!("{}/openai/v1/chat/completions", fake.base_url))
            .bearer_auth(fake.api_key())
            .json(&json!({"model": "d", "messages": []}))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200, "a bearer (an Entra ID token) is taken too");
    }
}
