//! The `openai` provider: OpenAI's REST API (`https://api.openai.com/v1`, or the
//! connection's `baseUrl` for a proxy or a compatible server).
//!
//! Credential: `apiKey` (`{apiKey}`), sent as a bearer token; the connection's config may
//! name an `organization` and a `project` (`OpenAI-Organization`, `OpenAI-Project`).
//!
//! Calls: `POST /chat/completions` (answered whole, or streamed as server-sent events) and
//! `POST /embeddings` (the caller's body, `model` set to the upstream's name);
//! the connection test is `GET /models`. A completion costs but changes nothing, so a
//! throttled or failed one is safe to repeat. Answers: OpenAI's error body
//! (`{"error":{message,type,param,code}}`) goes into the failure, redacted, with its `code`;
//! a 429 is a rate limit whose wait comes from `retry-after` or the `x-ratelimit-reset-*`
//! durations (`6m0s`, the pipeline reads them) — except `insufficient_quota`, which no wait
//! cures: never retried (another connection may still serve the model).

use async_trait::async_trait;
use domain::{CredentialKind, FailureClassification};
use integration_kit::{Provider, ProviderCall, Served, malformed, vendor_text};
use model_gateway::ModelProvider;
use model_gateway::models::Models;
use model_gateway::stream::{Chunks, sse_chunks};
use reqwest::header::HeaderMap;
use reqwest::{Method, StatusCode};
use resilience::{CallError, Classifier, Safety, StreamTimeouts, Verdict, classify_status};
use serde_json::Value;

pub const KEY: &str = "openai";
pub const DEFAULT_BASE_URL: &str = "https://api.openai.com/v1";

pub struct OpenAi;

/// The connection's config.
#[derive(Debug, serde::Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct OpenAiConfig {
    models: Models,
    #[serde(rename = "baseUrl")]
    _base_url: Option<String>,
    #[serde(default)]
    organization: Option<String>,
    #[serde(default)]
    project: Option<String>,
}

impl integration_kit::ProviderConfig for OpenAiConfig {
    fn check(&self) -> Result<(), integration_kit::InputError> {
        self.models.check()?;
        for (field, value) in [
            ("organization", &self.organization),
            ("project", &self.project),
        ] {
            if value
                .as_deref()
                .is_some_and(|v| v.is_empty() || v.len() > 128 || !v.is_ascii())
            {
                return Err(integration_kit::InputError::at(
                    field,
                    "must be an id of 1 to 128 ASCII characters",
                ));
            }
        }
        Ok(())
    }
}

#[async_trait]
impl Provider for OpenAi {
    fn key(&self) -> &'static str {
        KEY
    }

    fn credential_kinds(&self) -> &'static [CredentialKind] {
        &[CredentialKind::ApiKey]
    }

    /// `GET /models`: any valid key may list models, at no cost.
    async fn test_connection(&self, call: &ProviderCall<'_>) -> Result<(), CallError> {
        let answer = request(call, Method::GET, "/models", None).await?;
        serde_json::from_slice::<Value>(&answer.body)
            .map(drop)
            .map_err(|_| malformed("the model list is not JSON"))
    }

    fn serves(served: &mut Served<Self>) {
        served
            .operation::<model_gateway::Complete>()
            .operation::<model_gateway::Embed>()
            .config::<OpenAiConfig>();
    }
}

model_gateway::serves_model_operations!(OpenAi);

#[async_trait]
impl ModelProvider for OpenAi {
    async fn chat(&self, call: &ProviderCall<'_>, body: &Value) -> Result<Value, CallError> {
        let answer = request(call, Method::POST, "/chat/completions", Some(body)).await?;
        let completion: Value = serde_json::from_slice(&answer.body)
            .map_err(|_| malformed("the chat completion is not JSON"))?;
        if completion["choices"].as_array().is_none() {
            return Err(malformed("the chat completion has no choices"));
        }
        Ok(completion)
    }

    /// `POST /chat/completions` with `stream: true`: OpenAI's server-sent events, each
    /// `data:` a chunk, `data: [DONE]` at the end, `data: {"error": …}` if it fails after
    /// the stream began.
    async fn chat_stream(
        &self,
        call: &ProviderCall<'_>,
        body: &Value,
    ) -> Result<Chunks, CallError> {
        let request = Request::of(call, Method::POST, "/chat/completions", Some(body))?;
        let stream = call
            .pipeline
            .stream(
                call.call(Safety::Idempotent, &request.answers),
                StreamTimeouts::default(),
                || request.build(),
            )
            .await?;
        let secrets: Vec<String> = call.credential.values().map(str::to_owned).collect();
        Ok(sse_chunks(stream, KEY, move |message| {
            vendor_text(
                message,
                &secrets.iter().map(String::as_str).collect::<Vec<_>>(),
            )
        }))
    }

    async fn embed(&self, call: &ProviderCall<'_>, body: &Value) -> Result<Value, CallError> {
        let answer = request(call, Method::POST, "/embeddings", Some(body)).await?;
        let list: Value = serde_json::from_slice(&answer.body)
            .map_err(|_| malformed("the embeddings are not JSON"))?;
        if list["data"].as_array().is_none() {
            return Err(malformed("the embeddings have no data"));
        }
        Ok(list)
    }
}

async fn request(
    call: &ProviderCall<'_>,
    method: Method,
    path: &str,
    body: Option<&Value>,
) -> Result<resilience::VendorResponse, CallError> {
    let request = Request::of(call, method, path, body)?;
    call.pipeline
        .send(call.call(Safety::Idempotent, &request.answers), || {
            request.build()
        })
        .await
}

/// One request to OpenAI, built again for each attempt: the bearer key, the
/// organization and project headers, the JSON body.
struct Request<'c> {
    http: &'c reqwest::Client,
    method: Method,
    url: String,
    key: &'c str,
    config: OpenAiConfig,
    body: Option<&'c Value>,
    answers: Answers<'c>,
}

impl<'c> Request<'c> {
    fn of(
        call: &'c ProviderCall<'_>,
        method: Method,
        path: &str,
        body: Option<&'c Value>,
    ) -> Result<Self, CallError> {
        Ok(Request {
            http: call.http,
            method,
            url: format!("{}{path}", call.base_url(DEFAULT_BASE_URL)),
            key: call.secret("apiKey")?,
            config: call.config_as()?,
            body,
            answers: Answers {
                secrets: call.credential.values().collect(),
            },
        })
    }

    fn build(&self) -> reqwest::RequestBuilder {
        let mut builder = self
            .http
            .request(self.method.clone(), &self.url)
            .bearer_auth(self.key);
        if let Some(org) = &self.config.organization {
            builder = builder.header("OpenAI-Organization", org);
        }
        if let Some(project) = &self.config.project {
            builder = builder.header("OpenAI-Project", project);
        }
        if let Some(body) = self.body {
            builder = builder.json(body);
        }
        builder
    }
}

/// OpenAI's answers: the status decides, refined by the error body's `code`.
struct Answers<'s> {
    secrets: Vec<&'s str>,
}

impl Classifier for Answers<'_> {
    fn classify(&self, status: StatusCode, headers: &HeaderMap, body: &[u8]) -> Verdict {
        let mut failure = match classify_status(status, headers) {
            Verdict::Success => return Verdict::Success,
            Verdict::Failure(f) => f,
        };
        let error: Value = serde_json::from_slice(body).unwrap_or(Value::Null);
        let error = &error["error"];
        let code = error["code"]
            .as_str()
            .or_else(|| error["type"].as_str())
            .map(str::to_owned);
        if code.as_deref() == Some("insufficient_quota") {
            // Billing, not pacing: no wait cures it.
            failure.class = FailureClassification::Unprocessable;
            failure.retry_after = None;
        }
        failure.vendor_code = code;
        let message = error["message"].as_str().unwrap_or_default();
        failure.message = if message.is_empty() {
            format!("openai answered {}", status.as_u16())
        } else {
            format!(
                "openai answered {}: {}",
                status.as_u16(),
                vendor_text(message, &self.secrets)
            )
        };
        Verdict::Failure(failure)
    }
}

#[cfg(test)]
mod tests;
