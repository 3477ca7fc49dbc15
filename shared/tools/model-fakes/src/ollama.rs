//! Ollama's native API on a local port (`docs/api.md`), answering with `fake-model`'s
//! content: `GET /api/tags`, `POST /api/chat` (streamed as NDJSON unless `stream: false`,
//! Ollama's default being to stream; the last line `done: true` with `done_reason` and the
//! token counts), `POST /api/embed`. Errors are `{"error": "…"}` and nothing else, as
//! Ollama's: an unknown model is a 404 `model 'x' not found`. Model names that play a bad
//! day: `missing` (404), `cut` (the connection drops after two lines), `fails-mid-stream`
//! (an `{"error": …}` line after two lines, the status still 200). No key is needed; a
//! bearer is accepted.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

use crate::Options;

struct Inner {
    options: Options,
    requests: AtomicU64,
}

/// The fake, serving until dropped.
pub struct FakeOllama {
    /// `http://localhost:<port>`.
    pub base_url: String,
    inner: Arc<Inner>,
    task: tokio::task::JoinHandle<()>,
}

impl FakeOllama {
    /// `options.api_key` is not checked (a local Ollama takes none).
    pub async fn start(options: Options) -> std::io::Result<FakeOllama> {
        use axum::routing::{get, post};
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let port = listener.local_addr()?.port();
        let inner = Arc::new(Inner {
            options,
            requests: AtomicU64::new(0),
        });
        let app = axum::Router::new()
            .route("/api/tags", get(tags))
            .route("/api/chat", post(chat))
            .route("/api/embed", post(embed))
            .fallback(|| async { error(StatusCode::NOT_FOUND, "404 page not found") })
            .with_state(inner.clone());
        let task = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Ok(FakeOllama {
            base_url: format!("http://localhost:{port}"),
            inner,
            task,
        })
    }

    /// Requests it has been sent.
    pub fn requests(&self) -> u64 {
        self.inner.requests.load(Ordering::Relaxed)
    }
}

impl Drop for FakeOllama {
    fn drop(&mut self) {
        self.task.abort();
    }
}

fn error(status: StatusCode, message: &str) -> Response {
    (status, axum::Json(json!({"error": message}))).into_response()
}

const CREATED_AT: &str = "2026-12-08T10:00:00.000000Z";

async fn tags(State(inner): State<Arc<Inner>>) -> Response {
    inner.requests.fetch_add(1, Ordering::Relaxed);
    axum::Json(
        json!({"models": [{"name": "llama3.2:latest", "model": "llama3.2:latest",
        "modified_at": CREATED_AT, "size": 2_019_393_189u64, "digest": "a80c4f17acd5",
        "details": {"format": "gguf", "family": "llama", "families": ["llama"],
                    "parameter_size": "3.2B", "quantization_level": "Q4_K_M"}}]}),
    )
    .into_response()
}

/// The request, or Ollama's 400.
fn read(inner: &Inner, body: &[u8]) -> Result<Value, Box<Response>> {
    inner.requests.fetch_add(1, Ordering::Relaxed);
    let request: Value = serde_json::from_slice(body)
        .ok()
        .filter(Value::is_object)
        .ok_or_else(|| {
            Box::new(error(
                StatusCode::BAD_REQUEST,
                "invalid character in JSON body",
            ))
        })?;
    match request["model"].as_str() {
        None | Some("") => Err(Box::new(error(
            StatusCode::BAD_REQUEST,
            "model is required",
        ))),
        Some("missing") => Err(Box::new(error(
            StatusCode::NOT_FOUND,
            "model 'missing' not found",
        ))),
        Some(_) => Ok(request),
    }
}

async fn chat(State(inner): State<Arc<Inner>>, body: Bytes) -> Response {
    let request = match read(&inner, &body) {
        Ok(r) => r,
        Err(r) => return *r,
    };
    // fake-model's content, from an OpenAI-shaped view of the request.
    let openai = json!({"model": request["model"], "messages": request["messages"],
                        "max_tokens": request["options"]["num_predict"]});
    let completion = model_gateway::fake::completion(&openai, "ollama");
    let text = completion["choices"][0]["message"]["content"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    let done_reason = completion["choices"][0]["finish_reason"].clone();
    let (prompt, eval) = (
        completion["usage"]["prompt_tokens"].clone(),
        completion["usage"]["completion_tokens"].clone(),
    );
    tokio::time::sleep(inner.options.latency).await;
    let model = request["model"].clone();
    let done = json!({"model": model, "created_at": CREATED_AT,
        "message": {"role": "assistant", "content": ""}, "done": true, "done_reason": done_reason,
        "total_duration": 5_000_000u64, "load_duration": 1_000_000u64,
        "prompt_eval_count": prompt, "prompt_eval_duration": 1_000_000u64,
        "eval_count": eval, "eval_duration": 3_000_000u64});
    if request["stream"] == false {
        let mut whole = done;
        whole["message"]["content"] = json!(text);
        return axum::Json(whole).into_response();
    }
    let mut lines: Vec<Result<Bytes, std::io::Error>> = text
        .split(' ')
        .enumerate()
        .map(|(i, w)| {
            let piece = if i == 0 {
                w.to_owned()
            } else {
                format!(" {w}")
            };
            let line = json!({"model": model, "created_at": CREATED_AT,
                              "message": {"role": "assistant", "content": piece}, "done": false});
            Ok(Bytes::from(format!("{line}\n")))
        })
        .collect();
    match model.as_str() {
        Some("cut") => {
            lines.truncate(2);
            lines.push(Err(std::io::Error::other("connection reset")));
        }
        Some("fails-mid-stream") => {
            lines.truncate(2);
            lines.push(Ok(Bytes::from(format!(
                "{}\n",
                json!({"error": "an error was encountered while running the model: unexpected EOF"})
            ))));
        }
        _ => lines.push(Ok(Bytes::from(format!("{done}\n")))),
    }
    let delay = inner.options.chunk_delay;
    let body = futures::stream::unfold(
        (lines.into_iter(), true),
        move |(mut lines, first)| async move {
            let line = lines.next()?;
            if !first && !delay.is_zero() {
                tokio::time::sleep(delay).await;
            }
            if line.is_err() {
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            Some((line, (lines, false)))
        },
    );
    Response::builder()
        .header("content-type", "application/x-ndjson")
        .body(Body::from_stream(body))
        .unwrap_or_default()
}

async fn embed(State(inner): State<Arc<Inner>>, body: Bytes) -> Response {
    let request = match read(&inner, &body) {
        Ok(r) => r,
        Err(r) => return *r,
    };
    let mut openai = json!({"model": request["model"], "input": request["input"]});
    if let Some(d) = request["dimensions"].as_u64() {
        openai["dimensions"] = json!(d);
    }
    let list = model_gateway::fake::embeddings(&openai);
    let embeddings: Vec<Value> = list["data"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|d| d["embedding"].clone())
        .collect();
    tokio::time::sleep(inner.options.latency).await;
    axum::Json(json!({"model": request["model"], "embeddings": embeddings,
        "total_duration": 1_000_000u64, "load_duration": 100_000u64,
        "prompt_eval_count": list["usage"]["prompt_tokens"]}))
    .into_response()
}
