//! The `openai` provider: OpenAI's REST API (`https://api.openai.com/v1`, or the
//! connection's `baseUrl` for a proxy or a compatible server).
//!
//! Credential: `apiKey` (`{apiKey}`), sent as a bearer token; the connection's config may
//! name an `organization` and a `project` (`OpenAI-Organization`, `OpenAI-Project`).
//!
//! Calls: `POST /chat/completions` (answered whole, or streamed as server-sent events),
//! `POST /responses` (the Responses API, whole or as typed events) and `POST /embeddings`
//! (the caller's body, `model` set to the upstream's name);
//! the connection test is `GET /models`. A completion costs but changes nothing, so a
//! throttled or failed one is safe to repeat. Answers: OpenAI's error body
//! (`{"error":{message,type,param,code}}`) goes into the failure, redacted, with its `code`;
//! a 429 is a rate limit whose wait comes from `retry-after` or the `x-ratelimit-reset-*`
//! durations (`6m0s`, the pipeline reads them; a success whose `x-ratelimit-remaining-*` is 0
//! holds the connection's calls until that reset too, so the gateway falls back at once) — except `insufficient_quota`, which no wait
//! cures: never retried (another connection may still serve the model).

use async_trait::async_trait;
use domain::CredentialKind;
use integration_kit::{Provider, ProviderCall, Served};
use model_gateway::models::Models;
use model_gateway::stream::{Chunks, Dialect};
use model_gateway::{ModelProvider, wire};
use reqwest::Method;
use resilience::{CallError, StreamTimeouts};
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
        request(call, Method::GET, "/models", None)?
            .models(call)
            .await
    }

    fn serves(served: &mut Served<Self>) {
        model_gateway::serve::<Self, OpenAiConfig>(served);
    }
}

model_gateway::serves_model_operations!(OpenAi);

#[async_trait]
impl ModelProvider for OpenAi {
    async fn chat(&self, call: &ProviderCall<'_>, body: &Value) -> Result<Value, CallError> {
        request(call, Method::POST, "/chat/completions", Some(body))?
            .completion(call)
            .await
    }

    /// `POST /chat/completions` with `stream: true`: OpenAI's server-sent events, each
    /// `data:` a chunk, `data: [DONE]` at the end, `data: {"error": …}` if it fails after
    /// the stream began.
    async fn chat_stream(
        &self,
        call: &ProviderCall<'_>,
        body: &Value,
    ) -> Result<Chunks, CallError> {
        request(call, Method::POST, "/chat/completions", Some(body))?
            .stream(call, StreamTimeouts::default())
            .await
    }

    fn serves_responses(&self) -> bool {
        true
    }

    /// `POST /responses`: the `response` object.
    async fn respond(&self, call: &ProviderCall<'_>, body: &Value) -> Result<Value, CallError> {
        request(call, Method::POST, "/responses", Some(body))?
            .response(call)
            .await
    }

    /// `POST /responses` with `stream: true`: typed events, the terminal one last, no
    /// `[DONE]`.
    async fn respond_stream(
        &self,
        call: &ProviderCall<'_>,
        body: &Value,
    ) -> Result<Chunks, CallError> {
        request(call, Method::POST, "/responses", Some(body))?
            .events(call, StreamTimeouts::default(), Dialect::Responses)
            .await
    }

    async fn embed(&self, call: &ProviderCall<'_>, body: &Value) -> Result<Value, CallError> {
        request(call, Method::POST, "/embeddings", Some(body))?
            .embeddings(call)
            .await
    }
}

/// A request to OpenAI: the bearer key, the organization and project headers.
fn request<'c>(
    call: &'c ProviderCall<'_>,
    method: Method,
    path: &str,
    body: Option<&Value>,
) -> Result<wire::Request<'c>, CallError> {
    let config: OpenAiConfig = call.config_as()?;
    let mut headers = vec![(
        "authorization",
        format!("Bearer {}", call.secret("apiKey")?),
    )];
    if let Some(org) = config.organization {
        headers.push(("openai-organization", org));
    }
    if let Some(project) = config.project {
        headers.push(("openai-project", project));
    }
    Ok(wire::Request {
        http: call.http,
        method,
        url: format!("{}{path}", call.base_url(DEFAULT_BASE_URL)),
        headers,
        body: body.cloned(),
        answers: wire::Answers::of(KEY, call),
    })
}

#[cfg(test)]
mod tests;
