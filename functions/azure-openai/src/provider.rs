//! The `azure-openai` provider: Azure OpenAI (Foundry) deployments, in either of its two
//! URL styles (config `api`):
//!
//! - `v1` (the default, GA): `{baseUrl}/openai/v1/chat/completions` and `/embeddings`, the
//!   body's `model` the **deployment** name, no `api-version`; the connection test is
//!   `GET /openai/v1/models`.
//! - `deployments` (the dated API): `{baseUrl}/openai/deployments/{deployment}/chat/completions`
//!   (and `/embeddings`) `?api-version={apiVersion}` (default `2024-10-21`, the GA version),
//!   the deployment in the path; the connection test is `GET /openai/models?api-version=…`;
//!   the Responses API is `{baseUrl}/openai/responses?api-version=…` with the deployment as
//!   `model` (it needs a version that has it, 2025-03-01-preview or later).
//!
//! The Responses API (`/responses`) is served in both styles, whole or as typed events.
//!
//! `baseUrl` is the resource's endpoint (`https://{resource}.openai.azure.com`); a
//! connection's `config.models` maps model names to deployment names (`{name, upstream}`),
//! and a tenant's connections in several regions, by priority, give regional failover.
//!
//! Credentials: `apiKey` (the `api-key` header), an Entra ID service principal
//! (`oauth2ClientCredentials`: a bearer token for `https://cognitiveservices.azure.com/.default`
//! unless the credential names a scope), or the Function App's own managed identity
//! (`managedIdentity`, optionally a user-assigned identity's `clientId`; tokens from the
//! platform's identity endpoint, nothing secret stored). A token refused with a 401 is
//! dropped from the cache and fetched once more.
//!
//! Answers: OpenAI's error shape ([`model_gateway::wire::Answers`]); a prompt refused by
//! the content filter (400 `content_filter`) is the caller's request at fault: not retried,
//! not failed over. Successful answers keep Azure's content-filter annotations
//! (`prompt_filter_results`, `choices[].content_filter_results`), and so does the run. A
//! 429's wait comes from `retry-after-ms` first, then `retry-after` (the pipeline reads
//! both).

use async_trait::async_trait;
use domain::CredentialKind;
use integration_kit::{InputError, Provider, ProviderCall, Served};
use model_gateway::models::Models;
use model_gateway::stream::{Chunks, Dialect};
use model_gateway::{ModelProvider, wire};
use reqwest::Method;
use resilience::{CallError, StreamTimeouts};
use secrecy::ExposeSecret as _;
use serde_json::Value;

pub const KEY: &str = "azure-openai";
/// The Entra ID scope of Azure OpenAI.
pub const ENTRA_SCOPE: &str = "https://cognitiveservices.azure.com/.default";
/// The same, as the resource a managed identity is asked a token for.
pub const RESOURCE: &str = "https://cognitiveservices.azure.com";
/// The dated API's version when the connection names none (GA).
pub const DEFAULT_API_VERSION: &str = "2024-10-21";

pub struct AzureOpenAi;

/// Which of Azure OpenAI's URL styles a connection uses.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
enum Api {
    #[default]
    V1,
    Deployments,
}

/// The connection's config.
#[derive(Debug, serde::Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct AzureConfig {
    models: Models,
    base_url: Option<String>,
    #[serde(default)]
    api: Api,
    #[serde(default)]
    api_version: Option<String>,
}

/// A deployment name as Azure allows it (letters, digits, `-`, `_`, `.`; it goes in the
/// URL's path unescaped).
fn valid_deployment(name: &str) -> bool {
    (1..=64).contains(&name.len())
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
}

impl integration_kit::ProviderConfig for AzureConfig {
    fn check(&self) -> Result<(), InputError> {
        self.models.check()?;
        if self.base_url.is_none() {
            return Err(InputError::at(
                "baseUrl",
                "the resource's endpoint is required (https://{resource}.openai.azure.com)",
            ));
        }
        if let Some(bad) = self
            .models
            .0
            .iter()
            .find(|m| !valid_deployment(m.upstream()))
        {
            return Err(InputError::at(
                "models",
                format!(
                    "{:?} is not a deployment name (1 to 64 letters, digits, '-', '_' or '.')",
                    bad.upstream()
                ),
            ));
        }
        if let Some(v) = &self.api_version
            && (v.is_empty()
                || v.len() > 32
                || !v.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-'))
        {
            return Err(InputError::at(
                "apiVersion",
                "an api-version such as 2024-10-21 or 2025-04-01-preview",
            ));
        }
        Ok(())
    }
}

#[async_trait]
impl Provider for AzureOpenAi {
    fn key(&self) -> &'static str {
        KEY
    }

    fn credential_kinds(&self) -> &'static [CredentialKind] {
        &[
            CredentialKind::ApiKey,
            CredentialKind::Oauth2ClientCredentials,
            CredentialKind::ManagedIdentity,
        ]
    }

    /// The resource's model list: any valid credential may read it, at no cost.
    async fn test_connection(&self, call: &ProviderCall<'_>) -> Result<(), CallError> {
        send(call, Target::Models, None, |r| async move {
            r.models(call).await
        })
        .await
    }

    fn serves(served: &mut Served<Self>) {
        model_gateway::serve::<Self, AzureConfig>(served);
    }
}

model_gateway::serves_model_operations!(AzureOpenAi);

#[async_trait]
impl ModelProvider for AzureOpenAi {
    async fn chat(&self, call: &ProviderCall<'_>, body: &Value) -> Result<Value, CallError> {
        send(call, Target::Chat, Some(body), |r| async move {
            r.completion(call).await
        })
        .await
    }

    async fn chat_stream(
        &self,
        call: &ProviderCall<'_>,
        body: &Value,
    ) -> Result<Chunks, CallError> {
        send(call, Target::Chat, Some(body), |r| async move {
            r.stream(call, StreamTimeouts::default()).await
        })
        .await
    }

    fn serves_responses(&self) -> bool {
        true
    }

    async fn respond(&self, call: &ProviderCall<'_>, body: &Value) -> Result<Value, CallError> {
        send(call, Target::Responses, Some(body), |r| async move {
            r.response(call).await
        })
        .await
    }

    async fn respond_stream(
        &self,
        call: &ProviderCall<'_>,
        body: &Value,
    ) -> Result<Chunks, CallError> {
        send(call, Target::Responses, Some(body), |r| async move {
            r.events(call, StreamTimeouts::default(), Dialect::Responses)
                .await
        })
        .await
    }

    async fn embed(&self, call: &ProviderCall<'_>, body: &Value) -> Result<Value, CallError> {
        send(call, Target::Embeddings, Some(body), |r| async move {
            r.embeddings(call).await
        })
        .await
    }
}

/// What a request is for.
#[derive(Debug, Clone, Copy)]
enum Target {
    Models,
    Chat,
    Embeddings,
    Responses,
}

/// Builds the request (URL style, credential) and runs `exchange` on it; with an Entra ID
/// token, a 401 drops the token and runs it once more with a fresh one.
async fn send<'c, T, F, Fut>(
    call: &'c ProviderCall<'_>,
    target: Target,
    body: Option<&Value>,
    exchange: F,
) -> Result<T, CallError>
where
    F: Fn(wire::Request<'c>) -> Fut,
    Fut: std::future::Future<Output = Result<T, CallError>>,
{
    let config: AzureConfig = call.config_as()?;
    // The gateway set the body's `model` to the connection's upstream name: the deployment.
    let deployment = body.and_then(|b| b["model"].as_str()).unwrap_or_default();
    let url = url(&config, &call.base_url(""), target, deployment)?;
    let body = body.map(|b| {
        let mut b = b.clone();
        // The dated API names the deployment in the path, not in the body.
        if config.api == Api::Deployments
            && !matches!(target, Target::Responses)
            && let Some(o) = b.as_object_mut()
        {
            o.remove("model");
        }
        b
    });
    let kind = call.credential.kind();
    let uses_token = kind != CredentialKind::ApiKey;
    call.with_fresh_token_on_401(uses_token, || async {
        let auth = match kind {
            CredentialKind::Oauth2ClientCredentials => {
                let token = call.client_credentials_token(ENTRA_SCOPE).await?;
                bearer(&token)
            }
            CredentialKind::ManagedIdentity => {
                let token = call.managed_identity_token(RESOURCE).await?;
                bearer(&token)
            }
            _ => ("api-key", call.secret("apiKey")?.to_owned()),
        };
        exchange(wire::Request {
            http: call.http,
            method: match target {
                Target::Models => Method::GET,
                Target::Chat | Target::Embeddings | Target::Responses => Method::POST,
            },
            url: url.clone(),
            headers: vec![auth],
            body: body.clone(),
            answers: wire::Answers::of(KEY, call),
        })
        .await
    })
    .await
}

/// An Entra ID token as the `authorization` header.
fn bearer(token: &integration_kit::AccessToken) -> (&'static str, String) {
    (
        "authorization",
        format!("Bearer {}", token.token.expose_secret()),
    )
}

/// The request's URL in the connection's API style.
fn url(
    config: &AzureConfig,
    base: &str,
    target: Target,
    deployment: &str,
) -> Result<String, CallError> {
    let base = base.trim_end_matches('/');
    let version = config.api_version.as_deref().unwrap_or(DEFAULT_API_VERSION);
    let path = match target {
        Target::Models => "models",
        Target::Chat => "chat/completions",
        Target::Embeddings => "embeddings",
        Target::Responses => "responses",
    };
    Ok(match (config.api, target) {
        (Api::V1, _) => format!("{base}/openai/v1/{path}"),
        (Api::Deployments, Target::Models) => {
            format!("{base}/openai/models?api-version={version}")
        }
        // The dated Responses API is resource-wide, the deployment in the body.
        (Api::Deployments, Target::Responses) => {
            format!("{base}/openai/responses?api-version={version}")
        }
        (Api::Deployments, _) => {
            if !valid_deployment(deployment) {
                return Err(integration_kit::call_failed(
                    domain::FailureClassification::Validation,
                    "the request names no deployment the connection serves",
                ));
            }
            format!("{base}/openai/deployments/{deployment}/{path}?api-version={version}")
        }
    })
}

#[cfg(test)]
mod tests;
