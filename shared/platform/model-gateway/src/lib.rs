//! The model gateway: what the model apps (`openai`, `azure-openai`, `ollama`) share. Each
//! app is thin (its provider adapters and its slug); this crate serves, under the app's
//! `/api`, an OpenAI-compatible surface that official OpenAI SDKs use unchanged (base URL
//! `…/<slug>/api/v1`, the platform's bearer token as their API key):
//!
//! - `POST /api/v1/chat/completions`, answered whole or, with `stream: true`, relayed chunk
//!   by chunk as server-sent events ([`stream`]; fallback only before the first chunk,
//!   keep-alives while the upstream is silent, an error event when it fails mid-way);
//! - `POST /api/v1/embeddings`;
//! - `POST /api/v1/responses` (the Responses API, whole or as typed events; served when a
//!   provider of the app has it: [`ModelProvider::serves_responses`]);
//! - `GET /api/v1/models`: the models the caller's tenant may use through the app.
//!
//! Routing: a tenant's connections of the app name the models they serve
//! (`config.models`: a name, or `{name, upstream}` for an alias; [`models`]); a request for
//! a model goes to the connections that serve it in priority order (`config.priority`), and
//! falls back to the next one when a connection is down, throttled or refused its
//! credential, never when the request itself was refused. A model no connection serves is
//! 404 `model_not_found`. Errors on these routes use OpenAI's error shape
//! (`{"error":{message,type,param,code}}`, [`error::OpenAiError`]), not problem+json, so SDKs
//! surface them.
//!
//! Quotas ([`quota`]): a tenant's limits (requests and tokens per minute, spend per day and
//! month) hold exactly across instances; a request over one is a 429 in OpenAI's shape.
//! Usage ([`usage`]): every call leaves an entry in a ledger the usage route sums.
//!
//! Every call is recorded as a run of the app's `complete` (or `embed`) operation (through
//! [`integration_kit::direct`]): its input, its answer, its usage (tokens in and out), the
//! connection that served it, `IntegrationRunCompleted` or an `IntegrationFailure` with
//! `IntegrationFailed`, written after the answer. Callers get the run's id in
//! `x-request-id` (what the SDKs report as the request id).

pub mod error;
pub mod fake;
pub mod models;
pub mod quota;
mod relay;
mod routes;
pub mod stream;
pub mod usage;
pub mod wire;

use async_trait::async_trait;
use integration_kit::{Provider, ProviderCall};
use resilience::CallError;
use serde_json::Value;

pub use routes::{STREAM_KEEPALIVE_SETTING, STREAM_MAX_SETTING, routes};

/// The operation chat completions are recorded as.
pub const COMPLETE: &str = "complete";
/// The operation embeddings are recorded as.
pub const EMBED: &str = "embed";
/// The operation Responses API calls are recorded as (recorded only: not a run callers
/// start through `POST /api/integrations/runs`).
pub const RESPOND: &str = "respond";

/// A provider the gateway can route model calls to: a kit [`Provider`] (its connections,
/// credential kinds and connection test) that also speaks chat completions.
#[async_trait]
pub trait ModelProvider: Provider {
    /// A chat completion: `request` is an OpenAI chat completions body whose `model` is
    /// already the upstream's name for it; the answer is an OpenAI `chat.completion` object
    /// (providers with another wire format translate both ways).
    async fn chat(&self, call: &ProviderCall<'_>, request: &Value) -> Result<Value, CallError>;

    /// A streamed chat completion: `request` as for [`ModelProvider::chat`] with
    /// `stream: true` and `stream_options.include_usage: true`; the answer is the stream of
    /// `chat.completion.chunk` objects (the final one with the usage, when the upstream
    /// gives it), which must not borrow `call` (the gateway relays it after the call
    /// returns). A failure before the stream begins is the `CallError`; one after, the
    /// stream's last item.
    async fn chat_stream(
        &self,
        call: &ProviderCall<'_>,
        request: &Value,
    ) -> Result<stream::Chunks, CallError>;

    /// Embeddings: `request` is an OpenAI embeddings body (`input` a string or a list of
    /// them) whose `model` is the upstream's name; the answer is OpenAI's `list` of
    /// `embedding` objects with its `usage`.
    async fn embed(&self, call: &ProviderCall<'_>, request: &Value) -> Result<Value, CallError>;

    /// Whether it serves the Responses API ([`ModelProvider::respond`]); an app serves
    /// `POST /api/v1/responses` when one of its providers does.
    fn serves_responses(&self) -> bool {
        false
    }

    /// The Responses API: `request` a Responses request (`model` the upstream's name), the
    /// answer the `response` object.
    async fn respond(
        &self,
        _call: &ProviderCall<'_>,
        _request: &Value,
    ) -> Result<Value, CallError> {
        Err(not_served())
    }

    /// The Responses API streamed: its typed events (each with its `type`), the terminal
    /// one (`response.completed`, `response.incomplete`, `response.failed`) last.
    async fn respond_stream(
        &self,
        _call: &ProviderCall<'_>,
        _request: &Value,
    ) -> Result<stream::Chunks, CallError> {
        Err(not_served())
    }
}

/// What a provider without the Responses API answers (the gateway never asks it).
fn not_served() -> CallError {
    integration_kit::call_failed(
        domain::FailureClassification::Validation,
        "this provider does not serve the Responses API",
    )
}

/// The tokens an OpenAI-shaped answer says it used (`usage.prompt_tokens`,
/// `usage.completion_tokens`).
pub fn usage_of(answer: &Value) -> domain::RunUsage {
    let tokens = |field: &str| answer["usage"][field].as_u64().unwrap_or(0);
    domain::RunUsage {
        tokens_in: tokens("prompt_tokens"),
        tokens_out: tokens("completion_tokens"),
        ..domain::RunUsage::default()
    }
}

/// `complete`: a chat completion as a run of the kit (`POST /api/integrations/runs`), for
/// callers that want it asynchronous; every call of the OpenAI-compatible route is recorded
/// as one too. The input is an OpenAI chat completions body (non-streaming) whose `model`
/// the run's connection serves; the output is the `chat.completion` object.
pub struct Complete;

impl integration_kit::Operation for Complete {
    const NAME: &'static str = COMPLETE;
    type Input = ChatRequest;
    type Output = Value;
}

/// `embed`: embeddings as a run of the kit; every call of the OpenAI-compatible route is
/// recorded as one too. The input is an OpenAI embeddings body; the output OpenAI's list.
pub struct Embed;

impl integration_kit::Operation for Embed {
    const NAME: &'static str = EMBED;
    type Input = EmbedRequest;
    type Output = Value;
}

/// A chat completions request: a JSON object with a `model` and non-empty `messages`,
/// `stream` absent or false; every other member is passed on as the caller wrote it.
#[derive(Debug, Clone, PartialEq)]
pub struct ChatRequest(pub Value);

/// An embeddings request: a JSON object with a `model` and an `input` (a non-empty string or
/// a non-empty list of them); every other member is passed on as the caller wrote it.
#[derive(Debug, Clone, PartialEq)]
pub struct EmbedRequest(pub Value);

impl<'de> serde::Deserialize<'de> for ChatRequest {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let value = Value::deserialize(d)?;
        routes::Kind::Chat
            .check(&value)
            .map(|_| ChatRequest(value))
            .map_err(|e| serde::de::Error::custom(e.message))
    }
}

impl<'de> serde::Deserialize<'de> for EmbedRequest {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let value = Value::deserialize(d)?;
        routes::Kind::Embed
            .check(&value)
            .map(|_| EmbedRequest(value))
            .map_err(|e| serde::de::Error::custom(e.message))
    }
}

/// What every model provider serves (its `Provider::serves`): `complete` and `embed`
/// ([`serves_model_operations!`]), with its connections' config `C`.
pub fn serve<P, C>(served: &mut integration_kit::Served<P>)
where
    P: Provider + integration_kit::Serves<Complete> + integration_kit::Serves<Embed> + 'static,
    C: integration_kit::ProviderConfig,
{
    served
        .operation::<Complete>()
        .operation::<Embed>()
        .config::<C>();
}

/// What every model provider's `Serves<Complete>` does: the connection's name for the model
/// (an alias resolved), then [`ModelProvider::chat`].
pub async fn complete<P: ModelProvider + ?Sized>(
    provider: &P,
    call: &ProviderCall<'_>,
    input: &ChatRequest,
) -> Result<integration_kit::Step<Value>, CallError> {
    let request = upstream_request(call, &input.0)?;
    let answer = provider.chat(call, &request).await?;
    let usage = usage_of(&answer);
    Ok(integration_kit::Done::new(answer).usage(usage).into())
}

/// What every model provider's `Serves<Embed>` does ([`ModelProvider::embed`]).
pub async fn embed<P: ModelProvider + ?Sized>(
    provider: &P,
    call: &ProviderCall<'_>,
    input: &EmbedRequest,
) -> Result<integration_kit::Step<Value>, CallError> {
    let request = upstream_request(call, &input.0)?;
    let answer = provider.embed(call, &request).await?;
    let usage = usage_of(&answer);
    Ok(integration_kit::Done::new(answer).usage(usage).into())
}

/// `request` with its `model` the connection's upstream name for it (a `validation` failure
/// when the connection does not serve it).
fn upstream_request(call: &ProviderCall<'_>, request: &Value) -> Result<Value, CallError> {
    let asked = request["model"].as_str().unwrap_or_default();
    let upstream = models::models_of(call.config)
        .into_iter()
        .find(|m| m.name() == asked)
        .ok_or_else(|| {
            integration_kit::call_failed(
                domain::FailureClassification::Validation,
                format!("the connection serves no model named {asked:?}"),
            )
        })?;
    let mut request = request.clone();
    request["model"] = Value::String(upstream.upstream().to_owned());
    Ok(request)
}

/// Implements the kit's `Serves<Complete>` and `Serves<Embed>` for a model provider
/// ([`complete`], [`embed`]); its `serves` then lists both operations.
#[macro_export]
macro_rules! serves_model_operations {
    ($provider:ty) => {
        #[async_trait::async_trait]
        impl integration_kit::Serves<$crate::Complete> for $provider {
            async fn execute(
                &self,
                call: &integration_kit::ProviderCall<'_>,
                input: &$crate::ChatRequest,
            ) -> Result<integration_kit::Step<serde_json::Value>, resilience::CallError> {
                $crate::complete(self, call, input).await
            }
        }

        #[async_trait::async_trait]
        impl integration_kit::Serves<$crate::Embed> for $provider {
            async fn execute(
                &self,
                call: &integration_kit::ProviderCall<'_>,
                input: &$crate::EmbedRequest,
            ) -> Result<integration_kit::Step<serde_json::Value>, resilience::CallError> {
                $crate::embed(self, call, input).await
            }
        }
    };
}
