//! OpenAI's wire format, for the providers that speak it (`openai`, `azure-openai`, any
//! OpenAI-compatible server): a request built again for each attempt with the provider's
//! URL and auth headers, sent whole or streamed through the pipeline, and OpenAI's error
//! body read into the failure ([`Answers`]).

use domain::FailureClassification;
use integration_kit::{ProviderCall, answered, malformed, vendor_text};
use reqwest::header::{HeaderMap, HeaderValue};
use reqwest::{Method, StatusCode};
use resilience::{CallError, Classifier, Safety, StreamTimeouts, VendorResponse, Verdict};
use serde_json::Value;

use crate::error::INSUFFICIENT_QUOTA;
use crate::stream::{Chunks, Dialect, sse_events};

/// The code of a request refused by a content filter (Azure OpenAI): the request itself is
/// at fault, so it is neither retried nor failed over.
pub const CONTENT_FILTER: &str = "content_filter";

/// One request in OpenAI's wire format.
pub struct Request<'c> {
    pub http: &'c reqwest::Client,
    pub method: Method,
    pub url: String,
    /// Auth and the provider's own headers; `authorization` and `api-key` are sent marked
    /// sensitive (never in debug output).
    pub headers: Vec<(&'static str, String)>,
    pub body: Option<Value>,
    pub answers: Answers<'c>,
}

impl Request<'_> {
    /// The request as one attempt sends it.
    pub fn build(&self) -> reqwest::RequestBuilder {
        let mut builder = self.http.request(self.method.clone(), &self.url);
        for (name, value) in &self.headers {
            if let Ok(mut v) = HeaderValue::from_str(value) {
                v.set_sensitive(matches!(*name, "authorization" | "api-key"));
                builder = builder.header(*name, v);
            }
        }
        if let Some(body) = &self.body {
            builder = builder.json(body);
        }
        builder
    }

    /// Sends it through the pipeline (a completion costs but changes nothing: safe to
    /// repeat after a failure).
    pub async fn send(&self, call: &ProviderCall<'_>) -> Result<VendorResponse, CallError> {
        call.pipeline
            .send(call.call(Safety::Idempotent, &self.answers), || {
                self.build()
            })
            .await
    }

    /// Sends it and reads the answer as a JSON object that has `field` (`choices`,
    /// `data`); `what` names the answer in the failure.
    async fn object(
        &self,
        call: &ProviderCall<'_>,
        field: &str,
        what: &str,
    ) -> Result<Value, CallError> {
        let answer = self.send(call).await?;
        let value: Value = serde_json::from_slice(&answer.body)
            .map_err(|_| malformed(&format!("the {what} is not JSON")))?;
        if value.get(field).is_none() {
            return Err(malformed(&format!("the {what} has no {field}")));
        }
        Ok(value)
    }

    /// A chat completion (an object with `choices`).
    pub async fn completion(&self, call: &ProviderCall<'_>) -> Result<Value, CallError> {
        self.object(call, "choices", "chat completion").await
    }

    /// Embeddings (a list with `data`).
    pub async fn embeddings(&self, call: &ProviderCall<'_>) -> Result<Value, CallError> {
        self.object(call, "data", "embeddings").await
    }

    /// A Responses API response (an object with `output`).
    pub async fn response(&self, call: &ProviderCall<'_>) -> Result<Value, CallError> {
        self.object(call, "output", "response").await
    }

    /// A model list (with `data`): what a connection test reads.
    pub async fn models(&self, call: &ProviderCall<'_>) -> Result<(), CallError> {
        self.object(call, "data", "model list").await.map(drop)
    }

    /// Sends it with `stream: true` in the body and reads OpenAI's server-sent chunks.
    pub async fn stream(
        &self,
        call: &ProviderCall<'_>,
        timeouts: StreamTimeouts,
    ) -> Result<Chunks, CallError> {
        self.events(call, timeouts, Dialect::Chat).await
    }

    /// Sends it with `stream: true` in the body and reads its events in `dialect`.
    pub async fn events(
        &self,
        call: &ProviderCall<'_>,
        timeouts: StreamTimeouts,
        dialect: Dialect,
    ) -> Result<Chunks, CallError> {
        let stream = call
            .pipeline
            .stream(
                call.call(Safety::Idempotent, &self.answers),
                timeouts,
                || self.build(),
            )
            .await?;
        let secrets: Vec<String> = self
            .answers
            .secrets
            .iter()
            .map(|s| (*s).to_owned())
            .collect();
        Ok(sse_events(
            stream,
            self.answers.vendor,
            move |message| {
                vendor_text(
                    message,
                    &secrets.iter().map(String::as_str).collect::<Vec<_>>(),
                )
            },
            dialect,
        ))
    }
}

/// OpenAI's answers: the status decides, refined by the error body's `code`.
pub struct Answers<'s> {
    /// The vendor's name in failure messages.
    pub vendor: &'static str,
    /// What must never appear in a failure (the credential's values).
    pub secrets: Vec<&'s str>,
}

impl<'s> Answers<'s> {
    pub fn of(vendor: &'static str, call: &'s ProviderCall<'_>) -> Self {
        Answers {
            vendor,
            secrets: call.credential.values().collect(),
        }
    }
}

impl Classifier for Answers<'_> {
    fn classify(&self, status: StatusCode, headers: &HeaderMap, body: &[u8]) -> Verdict {
        let Some((mut failure, error)) = integration_kit::failed_answer(status, headers, body)
        else {
            return Verdict::Success;
        };
        let error = &error["error"];
        let code = error["code"]
            .as_str()
            .or_else(|| error["type"].as_str())
            .map(str::to_owned);
        match code.as_deref() {
            // Billing, not pacing: no wait cures it.
            Some(INSUFFICIENT_QUOTA) => {
                failure.class = FailureClassification::Unprocessable;
                failure.retry_after = None;
            }
            Some(CONTENT_FILTER) => failure.class = FailureClassification::Validation,
            _ => {}
        }
        failure.vendor_code = code;
        let message = error["message"].as_str().unwrap_or_default();
        failure.message = answered(self.vendor, status.as_u16(), message, &self.secrets);
        Verdict::Failure(failure)
    }
}
