//! The `ollama` provider: an Ollama server's native API (`docs/api.md`), its base URL the
//! connection's `baseUrl` (required; self-hosted servers are often on private addresses,
//! which the SSRF guard refuses unless an operator approved the `host:port` for the tenant:
//! `integration_kit::private_endpoints`).
//!
//! Calls: `POST /api/chat` (whole with `stream: false`, or Ollama's NDJSON stream: one JSON
//! object per line, the `done: true` line with the token counts; a line `{"error": …}`
//! mid-stream is a failure though the status was 200), `POST /api/embed`, and
//! `GET /api/tags` as the connection test. Requests and answers are translated to and from
//! OpenAI's shapes ([`translate`]).
//!
//! Credential: `apiKey` or `bearerToken`, sent as a bearer token (a local server ignores it;
//! Ollama's hosted API and proxies in front of servers want one).
//!
//! A model may have to load before its first token: the connection's `firstByteTimeoutMs`
//! (default 120 000, 1 000 to 600 000) bounds the wait for the first byte of a stream, and
//! a whole answer's attempt.

pub mod translate;

use std::time::Duration;

use async_trait::async_trait;
use domain::{CredentialKind, FailureClassification};
use integration_kit::{
    InputError, Provider, ProviderCall, Served, answered, malformed, vendor_text,
};
use model_gateway::ModelProvider;
use model_gateway::models::Models;
use model_gateway::stream::Chunks;
use reqwest::header::HeaderMap;
use reqwest::{Method, StatusCode};
use resilience::{
    CallError, Classifier, Safety, StreamTimeouts, VendorFailure, VendorStream, Verdict,
};
use serde_json::Value;

pub const KEY: &str = "ollama";
/// How long a model may take to send its first byte unless the connection says.
pub const DEFAULT_FIRST_BYTE_MS: u64 = 120_000;

pub struct Ollama;

/// The connection's config.
#[derive(Debug, serde::Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct OllamaConfig {
    models: Models,
    base_url: Option<String>,
    #[serde(default)]
    first_byte_timeout_ms: Option<u64>,
}

impl OllamaConfig {
    fn first_byte(&self) -> Duration {
        Duration::from_millis(self.first_byte_timeout_ms.unwrap_or(DEFAULT_FIRST_BYTE_MS))
    }
}

impl integration_kit::ProviderConfig for OllamaConfig {
    fn check(&self) -> Result<(), InputError> {
        self.models.check()?;
        if self.base_url.is_none() {
            return Err(InputError::at(
                "baseUrl",
                "the Ollama server's URL is required (http://host:11434)",
            ));
        }
        if self
            .first_byte_timeout_ms
            .is_some_and(|ms| !(1_000..=600_000).contains(&ms))
        {
            return Err(InputError::at(
                "firstByteTimeoutMs",
                "from 1000 to 600000 milliseconds",
            ));
        }
        Ok(())
    }
}

#[async_trait]
impl Provider for Ollama {
    fn key(&self) -> &'static str {
        KEY
    }

    fn credential_kinds(&self) -> &'static [CredentialKind] {
        &[CredentialKind::ApiKey, CredentialKind::BearerToken]
    }

    /// `GET /api/tags`: the server's models, at no cost.
    async fn test_connection(&self, call: &ProviderCall<'_>) -> Result<(), CallError> {
        let tags = send(call, Method::GET, "/api/tags", None).await?;
        if tags["models"].is_array() {
            Ok(())
        } else {
            Err(malformed("the model list has no models"))
        }
    }

    fn serves(served: &mut Served<Self>) {
        model_gateway::serve::<Self, OllamaConfig>(served);
    }
}

model_gateway::serves_model_operations!(Ollama);

#[async_trait]
impl ModelProvider for Ollama {
    async fn chat(&self, call: &ProviderCall<'_>, request: &Value) -> Result<Value, CallError> {
        let body = translate::chat_request(request, false);
        let answer = send(call, Method::POST, "/api/chat", Some(&body)).await?;
        if answer["message"].is_null() {
            return Err(malformed("the chat answer has no message"));
        }
        Ok(translate::chat_answer(
            &answer,
            call.idempotency_key.unwrap_or("ollama"),
        ))
    }

    async fn chat_stream(
        &self,
        call: &ProviderCall<'_>,
        request: &Value,
    ) -> Result<Chunks, CallError> {
        let config: OllamaConfig = call.config_as()?;
        let body = translate::chat_request(request, true);
        let url = format!("{}/api/chat", call.base_url(""));
        let auth = bearer(call)?;
        let answers = Answers {
            secrets: call.credential.values().collect(),
        };
        let stream = call
            .pipeline
            .stream(
                call.call(Safety::Idempotent, &answers),
                StreamTimeouts {
                    first_byte: config.first_byte(),
                    ..StreamTimeouts::default()
                },
                || call.http.post(&url).bearer_auth(&auth).json(&body),
            )
            .await?;
        let secrets: Vec<String> = call.credential.values().map(str::to_owned).collect();
        Ok(ndjson_chunks(
            stream,
            translate::ChunkMaker::new(call.idempotency_key.unwrap_or("ollama")),
            secrets,
        ))
    }

    async fn embed(&self, call: &ProviderCall<'_>, request: &Value) -> Result<Value, CallError> {
        let body = translate::embed_request(request);
        let answer = send(call, Method::POST, "/api/embed", Some(&body)).await?;
        translate::embed_answer(&answer, request)
            .ok_or_else(|| malformed("the embeddings answer has no embeddings"))
    }
}

/// The credential as a bearer token.
fn bearer(call: &ProviderCall<'_>) -> Result<String, CallError> {
    Ok(match call.credential.kind() {
        CredentialKind::BearerToken => call.secret("token")?,
        _ => call.secret("apiKey")?,
    }
    .to_owned())
}

/// A whole request, its answer a JSON object (the attempt may take a model's load time).
async fn send(
    call: &ProviderCall<'_>,
    method: Method,
    path: &str,
    body: Option<&Value>,
) -> Result<Value, CallError> {
    let config: OllamaConfig = call.config_as()?;
    let url = format!("{}{path}", call.base_url(""));
    let auth = bearer(call)?;
    let answers = Answers {
        secrets: call.credential.values().collect(),
    };
    let patience = config.first_byte();
    let answer = call
        .pipeline
        .send(
            call.call(Safety::Idempotent, &answers)
                .attempt_timeout(patience),
            || {
                let mut builder = call
                    .http
                    .request(method.clone(), &url)
                    .bearer_auth(&auth)
                    // The client's own timeout is a short attempt's.
                    .timeout(patience + Duration::from_secs(5));
                if let Some(body) = body {
                    builder = builder.json(body);
                }
                builder
            },
        )
        .await?;
    serde_json::from_slice::<Value>(&answer.body)
        .ok()
        .filter(Value::is_object)
        .ok_or_else(|| malformed("the answer is not a JSON object"))
}

/// Ollama's NDJSON stream as OpenAI chunks: each line translated ([`translate::ChunkMaker`]),
/// a line `{"error": …}` a failure, the body ending before the `done` line a cut stream.
fn ndjson_chunks(
    stream: VendorStream,
    maker: translate::ChunkMaker,
    secrets: Vec<String>,
) -> Chunks {
    struct State {
        stream: VendorStream,
        maker: translate::ChunkMaker,
        buf: Vec<u8>,
        ready: std::collections::VecDeque<Value>,
        done: bool,
        ended: bool,
        secrets: Vec<String>,
    }
    let state = State {
        stream,
        maker,
        buf: Vec::new(),
        ready: Default::default(),
        done: false,
        ended: false,
        secrets,
    };
    Box::pin(futures::stream::unfold(state, |mut s| async move {
        loop {
            if let Some(chunk) = s.ready.pop_front() {
                return Some((Ok(chunk), s));
            }
            if s.ended {
                return None;
            }
            if s.done {
                s.ended = true;
                continue;
            }
            if let Some(end) = s.buf.iter().position(|b| *b == b'\n') {
                let line: Vec<u8> = s.buf.drain(..=end).collect();
                let line = String::from_utf8_lossy(&line);
                let line = line.trim();
                if line.is_empty() {
                    continue;
                }
                let failure = match serde_json::from_str::<Value>(line) {
                    Ok(v) if v.get("error").is_some() => {
                        let secrets: Vec<&str> = s.secrets.iter().map(String::as_str).collect();
                        VendorFailure::new(
                            FailureClassification::VendorError,
                            format!(
                                "ollama ended the stream with an error: {}",
                                vendor_text(v["error"].as_str().unwrap_or("unknown"), &secrets)
                            ),
                        )
                    }
                    Ok(v) if v.is_object() => {
                        s.done = v["done"] == true;
                        s.ready.extend(s.maker.line(&v));
                        continue;
                    }
                    _ => VendorFailure::new(
                        FailureClassification::VendorError,
                        "ollama sent a stream line that is not a JSON object",
                    ),
                };
                s.ended = true;
                return Some((Err(failure), s));
            }
            let failure = match s.stream.next().await {
                Some(Ok(bytes)) if s.buf.len() + bytes.len() <= 1 << 20 => {
                    s.buf.extend_from_slice(&bytes);
                    continue;
                }
                Some(Ok(_)) => VendorFailure::new(
                    FailureClassification::VendorError,
                    "ollama sent a stream line over 1 MiB",
                ),
                Some(Err(f)) => f,
                None => VendorFailure::new(
                    FailureClassification::Transient,
                    "ollama's stream ended before its done line",
                ),
            };
            s.ended = true;
            return Some((Err(failure), s));
        }
    }))
}

/// Ollama's answers: the status decides; the body's `error` (its only field) is the
/// message, redacted.
struct Answers<'s> {
    secrets: Vec<&'s str>,
}

impl Classifier for Answers<'_> {
    fn classify(&self, status: StatusCode, headers: &HeaderMap, body: &[u8]) -> Verdict {
        let Some((mut failure, error)) = integration_kit::failed_answer(status, headers, body)
        else {
            return Verdict::Success;
        };
        failure.message = answered(
            "ollama",
            status.as_u16(),
            error["error"].as_str().unwrap_or_default(),
            &self.secrets,
        );
        Verdict::Failure(failure)
    }
}

#[cfg(test)]
mod tests;
