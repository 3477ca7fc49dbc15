//! `fake-model`: a model provider in the process, for demos, tests and benchmarks. It
//! answers deterministically, in OpenAI's shape: the reply echoes the last user message
//! (`"echo: …"`), cut to `max_completion_tokens` (or `max_tokens`) words; usage counts
//! words (prompt: every message's content; completion: the reply). Embeddings are unit
//! vectors derived from each input's bytes (`dimensions`, default 8), the same text always
//! the same vector. Streams carry the same reply: a first chunk with the role, one chunk
//! per word, one with the finish reason, then the usage (so the chunk count follows the
//! prompt and `max_tokens`). Config:
//! `{models, latencyMs?, fail?, chunkDelayMs?, cutAfter?}`, where `fail` is `rate_limited`
//! (429 with a one-second `Retry-After`), `unavailable` (a 503) or `refused` (a 400 the
//! caller caused); `latencyMs` comes before the answer (a stream's first chunk),
//! `chunkDelayMs` before each later chunk, and `cutAfter: n` cuts a stream after its
//! first `n` chunks (0: before any): what fallback and error tests need. Any API key is
//! accepted, except `rejected`.

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
    #[serde(default)]
    chunk_delay_ms: Option<u64>,
    #[serde(default)]
    cut_after: Option<u32>,
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
        for (field, ms) in [
            ("latencyMs", self.latency_ms),
            ("chunkDelayMs", self.chunk_delay_ms),
        ] {
            if ms.is_some_and(|ms| ms > 60_000) {
                return Err(integration_kit::InputError::at(
                    field,
                    "at most 60000 milliseconds",
                ));
            }
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
        crate::serve::<Self, FakeConfig>(served);
    }
}

crate::serves_model_operations!(FakeModel);

/// A unit vector of `dimensions` drawn from `text` (FNV-1a over its bytes, one hash per
/// component): deterministic, and different texts point elsewhere.
fn vector(text: &str, dimensions: usize) -> Vec<f64> {
    let raw: Vec<f64> = (0..dimensions as u64)
        .map(|i| {
            let mut h: u64 = 0xcbf2_9ce4_8422_2325 ^ i;
            for b in text.bytes() {
                h ^= u64::from(b);
                h = h.wrapping_mul(0x0100_0000_01b3);
            }
            (h >> 11) as f64 / (1u64 << 53) as f64 * 2.0 - 1.0
        })
        .collect();
    let norm = raw
        .iter()
        .map(|x| x * x)
        .sum::<f64>()
        .sqrt()
        .max(f64::MIN_POSITIVE);
    raw.into_iter().map(|x| x / norm).collect()
}

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

/// The config's latency and failure, as every call meets them.
async fn behave(call: &ProviderCall<'_>) -> Result<(), CallError> {
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
    Ok(())
}

/// A stream of `items` as the config plays it: `chunkDelayMs` before each after the first,
/// cut after `cutAfter` of them.
fn play(items: std::collections::VecDeque<Value>, config: &FakeConfig) -> crate::stream::Chunks {
    let delay = std::time::Duration::from_millis(config.chunk_delay_ms.unwrap_or(0));
    let cut_after = config.cut_after;
    Box::pin(futures::stream::unfold(
        (items, 0u32),
        move |(mut items, sent)| async move {
            if cut_after.is_some_and(|n| sent >= n) {
                if sent == u32::MAX {
                    return None;
                }
                let cut = resilience::VendorFailure::new(
                    FailureClassification::Transient,
                    "fake-model: the stream was cut",
                );
                return Some((Err(cut), (items, u32::MAX)));
            }
            let item = items.pop_front()?;
            if sent > 0 && !delay.is_zero() {
                tokio::time::sleep(delay).await;
            }
            Some((Ok(item), (items, sent + 1)))
        },
    ))
}

/// The chunks of a completion's stream, as OpenAI sends them (the last one the usage).
pub fn chunks_of(completion: &Value) -> std::collections::VecDeque<Value> {
    let chunk = |choices: Value| {
        json!({"id": completion["id"], "object": "chat.completion.chunk",
               "created": completion["created"], "model": completion["model"],
               "choices": choices})
    };
    let choice = &completion["choices"][0];
    let text = choice["message"]["content"].as_str().unwrap_or_default();
    let mut out = std::collections::VecDeque::new();
    out.push_back(chunk(
        json!([{"index": 0, "delta": {"role": "assistant", "content": ""},
                                "finish_reason": null}]),
    ));
    for (i, word) in text.split(' ').enumerate() {
        let piece = if i == 0 {
            word.to_owned()
        } else {
            format!(" {word}")
        };
        out.push_back(chunk(json!([{"index": 0, "delta": {"content": piece},
                                    "finish_reason": null}])));
    }
    out.push_back(chunk(json!([{"index": 0, "delta": {},
                                "finish_reason": choice["finish_reason"]}])));
    let mut usage = chunk(json!([]));
    usage["usage"] = completion["usage"].clone();
    out.push_back(usage);
    out
}

#[async_trait]
impl ModelProvider for FakeModel {
    async fn chat_stream(
        &self,
        call: &ProviderCall<'_>,
        request: &Value,
    ) -> Result<crate::stream::Chunks, CallError> {
        let config: FakeConfig = call.config_as()?;
        let mut chunks = chunks_of(&self.chat(call, request).await?);
        if request["stream_options"]["include_usage"] != true {
            chunks.pop_back();
        }
        Ok(play(chunks, &config))
    }

    fn serves_responses(&self) -> bool {
        true
    }

    async fn respond(&self, call: &ProviderCall<'_>, request: &Value) -> Result<Value, CallError> {
        behave(call).await?;
        Ok(response(request, call.idempotency_key.unwrap_or("fake")))
    }

    async fn respond_stream(
        &self,
        call: &ProviderCall<'_>,
        request: &Value,
    ) -> Result<crate::stream::Chunks, CallError> {
        let config: FakeConfig = call.config_as()?;
        let events = response_events(&self.respond(call, request).await?);
        Ok(play(events, &config))
    }

    async fn embed(&self, call: &ProviderCall<'_>, request: &Value) -> Result<Value, CallError> {
        behave(call).await?;
        Ok(embeddings(request))
    }

    async fn chat(&self, call: &ProviderCall<'_>, request: &Value) -> Result<Value, CallError> {
        behave(call).await?;
        Ok(completion(request, call.idempotency_key.unwrap_or("fake")))
    }
}

/// The fake's embeddings for an OpenAI embeddings request: a unit vector per input
/// ([`vector`]), as floats or, for `encoding_format: base64`, little-endian float32s; usage
/// counts words. Also what the HTTP fakes of the model vendors answer.
pub fn embeddings(request: &Value) -> Value {
    let inputs: Vec<String> = match &request["input"] {
        Value::String(s) => vec![s.clone()],
        Value::Array(items) => items
            .iter()
            .filter_map(|i| i.as_str().map(str::to_owned))
            .collect(),
        _ => Vec::new(),
    };
    let dimensions = request["dimensions"]
        .as_u64()
        .map_or(8, |d| usize::try_from(d.clamp(1, 4096)).unwrap_or(8));
    let tokens: u64 = inputs.iter().map(|i| words(i)).sum();
    // OpenAI's `encoding_format`: floats, or `base64` of little-endian float32s (what
    // the official SDKs ask for unless told otherwise).
    let base64 = request["encoding_format"] == "base64";
    let data: Vec<Value> = inputs
        .iter()
        .enumerate()
        .map(|(i, text)| {
            let v = vector(text, dimensions);
            let embedding = if base64 {
                let bytes: Vec<u8> = v.iter().flat_map(|x| (*x as f32).to_le_bytes()).collect();
                json!(base64::Engine::encode(
                    &base64::engine::general_purpose::STANDARD,
                    bytes
                ))
            } else {
                json!(v)
            };
            json!({"object": "embedding", "index": i, "embedding": embedding})
        })
        .collect();
    json!({"object": "list", "data": data, "model": request["model"],
           "usage": {"prompt_tokens": tokens, "total_tokens": tokens}})
}

/// The fake's completion for an OpenAI chat request (its `id` is `chatcmpl-{id}`): the
/// last user message echoed, cut to the token cap, usage counted in words. Also what the
/// HTTP fakes of the model vendors answer.
pub fn completion(request: &Value, id: &str) -> Value {
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
    json!({
        "id": format!("chatcmpl-{id}"),
        "object": "chat.completion",
        "created": chrono::Utc::now().timestamp(),
        "model": request["model"],
        "choices": [{"index": 0, "message": {"role": "assistant", "content": reply},
                     "finish_reason": finish}],
        "usage": {"prompt_tokens": prompt, "completion_tokens": completion,
                  "total_tokens": prompt + completion},
    })
}

/// The chat request a Responses API request amounts to: `instructions` as the system
/// message, `input` (a string, or messages whose content is a string or `input_text`
/// parts) as the conversation, `max_output_tokens` as the cap.
pub fn chat_of_response_request(request: &Value) -> Value {
    let mut messages = Vec::new();
    if let Some(instructions) = request["instructions"].as_str() {
        messages.push(json!({"role": "system", "content": instructions}));
    }
    match &request["input"] {
        Value::String(text) => messages.push(json!({"role": "user", "content": text})),
        Value::Array(items) => {
            for item in items {
                messages.push(json!({"role": item["role"].as_str().unwrap_or("user"),
                                     "content": item["content"]}));
            }
        }
        _ => {}
    }
    json!({"model": request["model"], "messages": messages,
           "max_tokens": request["max_output_tokens"]})
}

/// The fake's Responses API object for a request (its `id` is `resp_{id}`): the same reply
/// as [`completion`], as one output message; `incomplete` when `max_output_tokens` cut it.
pub fn response(request: &Value, id: &str) -> Value {
    let c = completion(&chat_of_response_request(request), id);
    let cut = c["choices"][0]["finish_reason"] == "length";
    let (input, output) = (
        c["usage"]["prompt_tokens"].as_u64().unwrap_or(0),
        c["usage"]["completion_tokens"].as_u64().unwrap_or(0),
    );
    json!({
        "id": format!("resp_{id}"),
        "object": "response",
        "created_at": c["created"],
        "status": if cut { "incomplete" } else { "completed" },
        "incomplete_details": if cut { json!({"reason": "max_output_tokens"}) } else { Value::Null },
        "error": null,
        "model": request["model"],
        "instructions": request["instructions"],
        "max_output_tokens": request["max_output_tokens"],
        "output": [{"type": "message", "id": format!("msg_{id}"), "status": "completed",
                    "role": "assistant",
                    "content": [{"type": "output_text", "text": c["choices"][0]["message"]["content"],
                                 "annotations": []}]}],
        "usage": {"input_tokens": input, "input_tokens_details": {"cached_tokens": 0},
                  "output_tokens": output, "output_tokens_details": {"reasoning_tokens": 0},
                  "total_tokens": input + output},
    })
}

/// The typed events of a response's stream, as the Responses API sends them: created, in
/// progress, the output item and its content part added, a text delta per word, the text,
/// part and item done, then the terminal event (`response.completed` or
/// `response.incomplete`) with the whole response. Each has its `sequence_number`.
pub fn response_events(response: &Value) -> std::collections::VecDeque<Value> {
    let item = &response["output"][0];
    let item_id = item["id"].clone();
    let text = item["content"][0]["text"].as_str().unwrap_or_default();
    let mut pending = response.clone();
    pending["status"] = json!("in_progress");
    pending["output"] = json!([]);
    pending["usage"] = Value::Null;
    pending["incomplete_details"] = Value::Null;
    let mut started = item.clone();
    started["status"] = json!("in_progress");
    started["content"] = json!([]);
    let part = |t: &str| json!({"type": "output_text", "text": t, "annotations": []});
    let at = |extra: Value| {
        let mut e = json!({"item_id": item_id, "output_index": 0, "content_index": 0});
        if let (Some(e), Some(x)) = (e.as_object_mut(), extra.as_object()) {
            e.extend(x.clone());
        }
        e
    };
    let mut events = vec![
        ("response.created", json!({"response": pending})),
        ("response.in_progress", json!({"response": pending})),
        (
            "response.output_item.added",
            json!({"output_index": 0, "item": started}),
        ),
        ("response.content_part.added", at(json!({"part": part("")}))),
    ];
    for (i, word) in text.split(' ').enumerate() {
        let delta = if i == 0 {
            word.to_owned()
        } else {
            format!(" {word}")
        };
        events.push(("response.output_text.delta", at(json!({"delta": delta}))));
    }
    events.push(("response.output_text.done", at(json!({"text": text}))));
    events.push((
        "response.content_part.done",
        at(json!({"part": part(text)})),
    ));
    events.push((
        "response.output_item.done",
        json!({"output_index": 0, "item": item}),
    ));
    let terminal = if response["status"] == "incomplete" {
        "response.incomplete"
    } else {
        "response.completed"
    };
    events.push((terminal, json!({"response": response})));
    events
        .into_iter()
        .enumerate()
        .map(|(n, (kind, mut e))| {
            e["type"] = json!(kind);
            e["sequence_number"] = json!(n);
            e
        })
        .collect()
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
    async fn embeddings_are_unit_vectors_as_floats_or_base64() {
        let h = harness(json!({"models": ["m"]}));
        let floats = FakeModel
            .embed(
                &h.call(),
                &json!({"model": "m", "input": ["a b", "c"], "dimensions": 3}),
            )
            .await
            .unwrap();
        let v: Vec<f64> = serde_json::from_value(floats["data"][0]["embedding"].clone()).unwrap();
        assert_eq!(v.len(), 3);
        assert!((v.iter().map(|x| x * x).sum::<f64>() - 1.0).abs() < 1e-9);
        assert_ne!(
            floats["data"][0]["embedding"],
            floats["data"][1]["embedding"]
        );
        assert_eq!(floats["usage"]["prompt_tokens"], 3);
        let packed = FakeModel
            .embed(
                &h.call(),
                &json!({"model": "m", "input": "a b", "dimensions": 3, "encoding_format": "base64"}),
            )
            .await
            .unwrap();
        let bytes = base64::Engine::decode(
            &base64::engine::general_purpose::STANDARD,
            packed["data"][0]["embedding"].as_str().unwrap(),
        )
        .unwrap();
        let decoded: Vec<f32> = bytes
            .chunks(4)
            .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
            .collect();
        assert_eq!(decoded, v.iter().map(|x| *x as f32).collect::<Vec<_>>());
    }

    #[tokio::test]
    async fn streams_carry_the_reply_word_by_word_then_the_usage_or_a_cut() {
        use futures::StreamExt as _;
        let request = json!({"model": "m", "stream": true,
            "stream_options": {"include_usage": true},
            "messages": [{"role": "user", "content": "one two"}]});
        let h = harness(json!({"models": ["m"]}));
        let chunks: Vec<Value> = FakeModel
            .chat_stream(&h.call(), &request)
            .await
            .unwrap()
            .map(Result::unwrap)
            .collect()
            .await;
        let mut assembled = crate::stream::Assembled::default();
        chunks.iter().for_each(|c| assembled.add(c));
        let whole = FakeModel.chat(&h.call(), &request).await.unwrap();
        assert_eq!(
            chunks.len(),
            1 + 3 + 1 + 1,
            "role, a chunk per word, finish, usage"
        );
        assert_eq!(
            assembled.completion()["choices"],
            whole["choices"],
            "the stream is the same reply"
        );
        assert_eq!(assembled.usage(), Some(&whole["usage"]));
        let cut = harness(json!({"models": ["m"], "cutAfter": 2}));
        let items: Vec<_> = FakeModel
            .chat_stream(&cut.call(), &request)
            .await
            .unwrap()
            .collect()
            .await;
        assert_eq!(items.len(), 3);
        assert!(items[..2].iter().all(Result::is_ok));
        assert_eq!(
            items[2].as_ref().unwrap_err().class,
            FailureClassification::Transient
        );
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
