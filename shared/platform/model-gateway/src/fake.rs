//! `fake-model`: a model provider in the process, for demos, tests and benchmarks. It
//! answers deterministically, in OpenAI's shape: the reply echoes the last user message
//! (`"echo: …"`), cut to `max_completion_tokens` (or `max_tokens`) words; usage counts
//! words (prompt: every message's content; completion: the reply). Config:
//! `{models, latencyMs?, fail?}`, where `fail` is `rate_limited` (429 with a one-second
//! `Retry-After`), `unavailable` (a 503) or `refused` (a 400 the caller caused): what
//! fallback and error tests need. Any API key is accepted, except `rejected`.

use async_trait::async_trait;
use domain::{CredentialKind, FailureClassification};
use integration_kit::{Provider, ProviderCall, Served, call_failed};
use resilience::CallError;
use serde_json::{Value, json};

use crate::ModelProvider;
use crate::models::Models;

pub const KEY: &str = "fake-model";

pub struct FakeModel;

/// The fake's config.
#[derive(Debug, serde::Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct FakeConfig {
    models: Models,
    #[serde(default)]
    latency_ms: Option<u64>,
    #[serde(default)]
    fail: Option<Failure>,
}

#[derive(Debug, Clone, Copy, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
enum Failure {
    RateLimited,
    Unavailable,
    Refused,
}

impl integration_kit::ProviderConfig for FakeConfig {
    fn check(&self) -> Result<(), integration_kit::InputError> {
        self.models.check()?;
        if self.latency_ms.is_some_and(|ms| ms > 60_000) {
            return Err(integration_kit::InputError::at(
                "latencyMs",
                "at most 60000 milliseconds",
            ));
        }
        Ok(())
    }
}

#[async_trait]
impl Provider for FakeModel {
    fn key(&self) -> &'static str {
        KEY
    }

    fn credential_kinds(&self) -> &'static [CredentialKind] {
        &[CredentialKind::ApiKey]
    }

    async fn test_connection(&self, call: &ProviderCall<'_>) -> Result<(), CallError> {
        accepts(call)
    }

    fn serves(served: &mut Served<Self>) {
        served.operation::<crate::Complete>().config::<FakeConfig>();
    }
}

crate::serves_complete!(FakeModel);

fn accepts(call: &ProviderCall<'_>) -> Result<(), CallError> {
    if call.secret("apiKey")? == "rejected" {
        return Err(call_failed(
            FailureClassification::Auth,
            "fake-model refused the API key",
        ));
    }
    Ok(())
}

fn words(text: &str) -> u64 {
    text.split_whitespace().count() as u64
}

/// A message's text: a string, or the text parts of a content array.
fn text_of(content: &Value) -> String {
    match content {
        Value::String(s) => s.clone(),
        Value::Array(parts) => parts
            .iter()
            .filter_map(|p| p["text"].as_str())
            .collect::<Vec<_>>()
            .join(" "),
        _ => String::new(),
    }
}

#[async_trait]
impl ModelProvider for FakeModel {
    async fn chat(&self, call: &ProviderCall<'_>, request: &Value) -> Result<Value, CallError> {
        accepts(call)?;
        let config: FakeConfig = call.config_as()?;
        if let Some(ms) = config.latency_ms {
            tokio::time::sleep(std::time::Duration::from_millis(ms)).await;
        }
        match config.fail {
            Some(Failure::RateLimited) => {
                let mut e = call_failed(
                    FailureClassification::RateLimited,
                    "fake-model: rate limit reached",
                );
                e.failure.retry_after = Some(std::time::Duration::from_secs(1));
                e.failure.vendor_code = Some("rate_limit_exceeded".into());
                return Err(e);
            }
            Some(Failure::Unavailable) => {
                return Err(call_failed(
                    FailureClassification::Transient,
                    "fake-model: unavailable",
                ));
            }
            Some(Failure::Refused) => {
                return Err(call_failed(
                    FailureClassification::Validation,
                    "fake-model: the request was refused",
                ));
            }
            None => {}
        }
        let messages = request["messages"].as_array().cloned().unwrap_or_default();
        let prompt: u64 = messages
            .iter()
            .map(|m| words(&text_of(&m["content"])))
            .sum();
        let last_user = messages
            .iter()
            .rev()
            .find(|m| m["role"] == "user")
            .map(|m| text_of(&m["content"]))
            .unwrap_or_default();
        let cap = request["max_completion_tokens"]
            .as_u64()
            .or_else(|| request["max_tokens"].as_u64())
            .unwrap_or(u64::MAX);
        let all: Vec<&str> = std::iter::once("echo:")
            .chain(last_user.split_whitespace())
            .collect();
        let kept = usize::try_from(cap).unwrap_or(usize::MAX).min(all.len());
        let reply = all[..kept].join(" ");
        let finish = if kept < all.len() { "length" } else { "stop" };
        let completion = words(&reply);
        let id = call.idempotency_key.unwrap_or("fake");
        Ok(json!({
            "id": format!("chatcmpl-{id}"),
            "object": "chat.completion",
            "created": chrono::Utc::now().timestamp(),
            "model": request["model"],
            "choices": [{"index": 0, "message": {"role": "assistant", "content": reply},
                         "finish_reason": finish}],
            "usage": {"prompt_tokens": prompt, "completion_tokens": completion,
                      "total_tokens": prompt + completion},
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use integration_kit::testing::Harness;

    fn harness(config: Value) -> Harness {
        Harness::new(KEY, CredentialKind::ApiKey, json!({"apiKey": "k"}), config)
    }

    #[tokio::test]
    async fn replies_are_deterministic_and_counted() {
        let h = harness(json!({"models": ["m"]}));
        let request = json!({"model": "m", "max_tokens": 3, "messages": [
            {"role": "system", "content": "be brief"},
            {"role": "user", "content": [{"type": "text", "text": "one two three four"}]}]});
        let a = FakeModel.chat(&h.call(), &request).await.unwrap();
        assert_eq!(a["choices"][0]["message"]["content"], "echo: one two");
        assert_eq!(a["choices"][0]["finish_reason"], "length");
        assert_eq!(a["usage"]["prompt_tokens"], 6);
        assert_eq!(a["usage"]["completion_tokens"], 3);
        let b = FakeModel.chat(&h.call(), &request).await.unwrap();
        assert_eq!(a["choices"], b["choices"]);
    }

    #[tokio::test]
    async fn failures_are_what_the_config_asks() {
        let request = json!({"model": "m", "messages": [{"role": "user", "content": "x"}]});
        for (fail, class) in [
            ("rate_limited", FailureClassification::RateLimited),
            ("unavailable", FailureClassification::Transient),
            ("refused", FailureClassification::Validation),
        ] {
            let h = harness(json!({"models": ["m"], "fail": fail}));
            let e = FakeModel.chat(&h.call(), &request).await.unwrap_err();
            assert_eq!(e.class(), class, "{fail}");
        }
    }
}
