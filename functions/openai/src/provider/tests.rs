//! The provider against a fake OpenAI over real HTTP, in its documented shapes: the bearer
//! key, `OpenAI-Organization`, the chat completion, its error body, 429 with the rate-limit
//! durations, and `insufficient_quota`.

use domain::{CredentialKind, FailureClassification};
use futures::StreamExt as _;
use integration_kit::testing::{
    Case, FakeVendor, Harness, Piece, Recorded, Reply, THROTTLE_SECS, assert_no_secret, conformance,
};
use serde_json::{Value, json};

use super::*;

const API_KEY: &str = "sk-proj-test0123456789abcdefghijklmnopqrstuvwxyz";

fn error(status: u16, kind: &str, code: &str, message: &str) -> Reply {
    Reply::json(
        status,
        json!({"error": {"message": message, "type": kind, "param": null, "code": code}}),
    )
}

fn completion(model: &str) -> Value {
    json!({"id": "chatcmpl-1", "object": "chat.completion", "created": 1_788_000_000u64,
           "model": model,
           "choices": [{"index": 0, "message": {"role": "assistant", "content": "Hello"},
                        "finish_reason": "stop"}],
           "usage": {"prompt_tokens": 12, "completion_tokens": 1, "total_tokens": 13}})
}

fn openai(r: &Recorded) -> Reply {
    if r.header("authorization") != Some(format!("Bearer {API_KEY}").as_str()) {
        return error(
            401,
            "invalid_request_error",
            "invalid_api_key",
            "Incorrect API key provided: sk-proj-****.",
        );
    }
    match (r.method.as_str(), r.path.as_str()) {
        ("GET", "/v1/models") => Reply::json(200, json!({"object": "list", "data": []})),
        ("POST", "/v1/embeddings") => Reply::json(
            200,
            json!({"object": "list", "model": "text-embedding-3-small",
                   "data": [{"object": "embedding", "index": 0, "embedding": [0.1, -0.2]}],
                   "usage": {"prompt_tokens": 2, "total_tokens": 2}}),
        ),
        ("POST", "/v1/chat/completions")
            if r.json()["stream"] == true && r.json()["model"] != "broke" =>
        {
            stream(r)
        }
        ("POST", "/v1/chat/completions") => match r.json()["model"].as_str() {
            Some("gpt-4o-mini") => Reply::json(200, completion("gpt-4o-mini-2024-07-18")),
            Some("broke") => error(
                429,
                "insufficient_quota",
                "insufficient_quota",
                "You exceeded your current quota, please check your plan and billing details.",
            ),
            Some("busy") => error(
                429,
                "requests",
                "rate_limit_exceeded",
                "Rate limit reached for requests",
            )
            .header("x-ratelimit-remaining-requests", "0")
            .header("x-ratelimit-reset-requests", "1s"),
            _ => error(
                404,
                "invalid_request_error",
                "model_not_found",
                "The model `x` does not exist or you do not have access to it.",
            ),
        },
        _ => error(
            404,
            "invalid_request_error",
            "unknown_url",
            "Unknown request URL",
        ),
    }
}

/// A chunk of OpenAI's chat stream.
fn chunk(delta: Value, finish: Value) -> Piece {
    Piece::Data(format!(
        "data: {}\n\n",
        json!({"id": "chatcmpl-2", "object": "chat.completion.chunk", "created": 1_788_000_000u64,
               "model": "gpt-4o-mini-2024-07-18", "system_fingerprint": "fp_1",
               "choices": [{"index": 0, "delta": delta, "logprobs": null, "finish_reason": finish}]})
    ))
}

/// OpenAI's chat stream, per model: whole (usage when asked, then `[DONE]`), cut after two
/// chunks (`cut`), or ended by an error event that quotes the key (`fails`).
fn stream(r: &Recorded) -> Reply {
    let asked = r.json();
    let mut pieces = vec![
        chunk(
            json!({"role": "assistant", "content": "", "refusal": null}),
            Value::Null,
        ),
        Piece::Wait(std::time::Duration::from_millis(20)),
        chunk(json!({"content": "Hel"}), Value::Null),
    ];
    match asked["model"].as_str() {
        Some("cut") => pieces.extend([
            Piece::Wait(std::time::Duration::from_millis(20)),
            Piece::Cut,
        ]),
        Some("fails") => pieces.push(Piece::Data(format!(
            "data: {}\n\n",
            json!({"error": {"message": format!("The server had an error (key {API_KEY})"),
                             "type": "server_error", "param": null, "code": "server_error"}})
        ))),
        _ => {
            pieces.push(chunk(json!({"content": "lo"}), Value::Null));
            pieces.push(chunk(json!({}), json!("stop")));
            if asked["stream_options"]["include_usage"] == true {
                pieces.push(Piece::Data(format!(
                    "data: {}\n\n",
                    json!({"id": "chatcmpl-2", "object": "chat.completion.chunk", "choices": [],
                           "usage": {"prompt_tokens": 9, "completion_tokens": 2, "total_tokens": 11}})
                )));
            }
            pieces.push(Piece::Data("data: [DONE]\n\n".into()));
        }
    }
    Reply::streamed(200, "text/event-stream; charset=utf-8", pieces)
}

fn harness(base: &str, config: Value) -> Harness {
    let mut config = config;
    config["baseUrl"] = json!(format!("{base}/v1"));
    Harness::new(
        KEY,
        CredentialKind::ApiKey,
        json!({"apiKey": API_KEY}),
        config,
    )
}

fn ask(model: &str) -> Value {
    json!({"model": model, "messages": [{"role": "user", "content": "Hi"}]})
}

#[tokio::test]
async fn a_completion_is_asked_with_the_key_and_the_organization() {
    let fake = FakeVendor::start(|r, _| openai(r)).await;
    let h = harness(
        &fake.base,
        json!({"models": ["gpt-4o-mini"], "organization": "org-1", "project": "proj_1"}),
    );
    let answer = OpenAi.chat(&h.call(), &ask("gpt-4o-mini")).await.unwrap();
    assert_eq!(answer["usage"]["total_tokens"], 13);
    let sent = &fake.requests()[0];
    assert_eq!(sent.header("openai-organization"), Some("org-1"));
    assert_eq!(sent.header("openai-project"), Some("proj_1"));
    assert_eq!(sent.json(), ask("gpt-4o-mini"));
    OpenAi.test_connection(&h.call()).await.unwrap();
    let list = OpenAi
        .embed(
            &h.call(),
            &json!({"model": "text-embedding-3-small", "input": "a b"}),
        )
        .await
        .unwrap();
    assert_eq!(list["data"][0]["embedding"], json!([0.1, -0.2]));
    assert_eq!(model_gateway::usage_of(&list).tokens_in, 2);
}

#[tokio::test]
async fn an_alias_is_asked_for_by_its_upstream_name_in_a_run() {
    let fake = FakeVendor::start(|r, _| openai(r)).await;
    let h = harness(
        &fake.base,
        json!({"models": [{"name": "fast", "upstream": "gpt-4o-mini"}]}),
    );
    let ran = integration_kit::testing::execute::<model_gateway::Complete, _>(
        &OpenAi,
        &h.call(),
        &ask("fast"),
    )
    .await
    .unwrap();
    assert_eq!(ran.usage.tokens_in, 12);
    assert_eq!(ran.usage.tokens_out, 1);
    assert_eq!(fake.requests()[0].json()["model"], "gpt-4o-mini");
    let e = integration_kit::testing::execute::<model_gateway::Complete, _>(
        &OpenAi,
        &h.call(),
        &ask("gpt-4o-mini"),
    )
    .await
    .unwrap_err();
    assert_eq!(
        e.class(),
        FailureClassification::Validation,
        "not served here"
    );
}

#[tokio::test]
async fn throttling_waits_but_an_empty_quota_is_not_retried() {
    let fake = FakeVendor::start(|r, _| openai(r)).await;
    let h = harness(&fake.base, json!({"models": ["x"]})).attempts(2);
    let e = OpenAi.chat(&h.call(), &ask("broke")).await.unwrap_err();
    assert_eq!(e.class(), FailureClassification::Unprocessable);
    assert_eq!(e.failure.vendor_code.as_deref(), Some("insufficient_quota"));
    assert_eq!(fake.requests().len(), 1, "not retried");
    let e = OpenAi.chat(&h.call(), &ask("busy")).await.unwrap_err();
    assert_eq!(e.class(), FailureClassification::RateLimited);
    assert_eq!(
        e.failure.vendor_code.as_deref(),
        Some("rate_limit_exceeded")
    );
    assert!(
        e.failure.retry_after.is_some(),
        "the reset duration is read"
    );
    // A refused key never shows in the failure.
    let mut h = harness(&fake.base, json!({"models": ["x"]}));
    h.credential = custody::SecretMaterial::new(
        CredentialKind::ApiKey,
        json!({"apiKey": "sk-wrong-0123456789"})
            .as_object()
            .cloned()
            .unwrap(),
    )
    .unwrap();
    let e = OpenAi
        .chat(&h.call(), &ask("gpt-4o-mini"))
        .await
        .unwrap_err();
    assert_eq!(e.class(), FailureClassification::Auth);
    assert_no_secret(&e, &["sk-wrong-0123456789"]);
}

fn streamed(model: &str) -> Value {
    let mut asked = ask(model);
    asked["stream"] = json!(true);
    asked["stream_options"] = json!({"include_usage": true});
    asked
}

#[tokio::test]
async fn a_stream_comes_chunk_by_chunk_and_ends_with_its_usage() {
    let fake = FakeVendor::start(|r, _| openai(r)).await;
    let h = harness(&fake.base, json!({"models": ["gpt-4o-mini"]}));
    let chunks: Vec<Value> = OpenAi
        .chat_stream(&h.call(), &streamed("gpt-4o-mini"))
        .await
        .unwrap()
        .map(|c| c.expect("no failure"))
        .collect()
        .await;
    assert_eq!(chunks.len(), 5, "{chunks:?}");
    let mut assembled = model_gateway::stream::Assembled::default();
    chunks.iter().for_each(|c| assembled.add(c));
    let completion = assembled.completion();
    assert_eq!(completion["choices"][0]["message"]["content"], "Hello");
    assert_eq!(completion["choices"][0]["finish_reason"], "stop");
    assert_eq!(model_gateway::usage_of(&completion).tokens_in, 9);
    let sent = fake.requests()[0].json();
    assert_eq!(sent["stream_options"]["include_usage"], true);
    assert_eq!(
        fake.requests()[0].header("authorization"),
        Some(format!("Bearer {API_KEY}").as_str())
    );
}

#[tokio::test]
async fn a_cut_stream_and_an_error_event_end_it_with_one_failure_without_the_key() {
    let fake = FakeVendor::start(|r, _| openai(r)).await;
    let h = harness(&fake.base, json!({"models": ["x"]}));
    for (model, class) in [
        ("cut", FailureClassification::Transient),
        ("fails", FailureClassification::VendorError),
    ] {
        let items: Vec<_> = OpenAi
            .chat_stream(&h.call(), &streamed(model))
            .await
            .unwrap()
            .collect()
            .await;
        assert_eq!(items.len(), 3, "{model}: two chunks, then the failure");
        let failure = items[2].as_ref().unwrap_err();
        assert_eq!(failure.class, class, "{model}: {failure:?}");
        assert!(!failure.message.contains(API_KEY), "{}", failure.message);
    }
    // Refused before the stream began: the usual error, through the pipeline.
    let e = match OpenAi.chat_stream(&h.call(), &streamed("broke")).await {
        Err(e) => e,
        Ok(_) => panic!("an empty quota is not a stream"),
    };
    assert_eq!(e.failure.vendor_code.as_deref(), Some("insufficient_quota"));
}

/// OpenAI's documented answers for the kit's conformance suite.
struct Script;

impl integration_kit::testing::VendorScript for Script {
    fn reply(&self, case: Case, _request: &Recorded) -> Result<Reply, &'static str> {
        Ok(match case {
            Case::Success => Reply::json(200, completion("gpt-4o-mini")),
            Case::Invalid => error(400, "invalid_request_error", "invalid_value", "bad"),
            Case::Unauthorized => error(401, "invalid_request_error", "invalid_api_key", "no"),
            Case::Throttled => error(429, "requests", "rate_limit_exceeded", "slow down")
                .header("retry-after", &THROTTLE_SECS.to_string()),
            Case::ServerError => error(500, "server_error", "server_error", "oops"),
            Case::Malformed => Reply::text(200, "<html>not json</html>"),
        })
    }
}

#[tokio::test]
async fn the_provider_passes_the_kits_conformance_suite() {
    let skipped = conformance::<model_gateway::Complete, _, _>(
        &OpenAi,
        Script,
        |base| harness(base, json!({"models": ["gpt-4o-mini"]})),
        ask("gpt-4o-mini"),
        &[API_KEY],
        // A completion changes nothing: repeating one after a 5xx is safe.
        true,
    )
    .await;
    assert!(skipped.is_empty(), "{skipped:?}");
}

/// The Responses API against the fake OpenAI of `model-fakes`: the response whole, its typed
/// events to the terminal one, and streams that are cut or end with an `error` event.
#[tokio::test]
async fn responses_come_whole_or_as_typed_events_and_their_failures_are_reported() {
    let fake = model_fakes::FakeOpenAi::start(model_fakes::Options::default())
        .await
        .unwrap();
    let h = Harness::new(
        KEY,
        CredentialKind::ApiKey,
        json!({"apiKey": fake.api_key()}),
        json!({"models": ["m"], "baseUrl": fake.base_url}),
    )
    .attempts(1);
    let asked = |model: &str| json!({"model": model, "input": "one two", "stream": true});
    let whole = OpenAi
        .respond(&h.call(), &json!({"model": "m", "input": "one two"}))
        .await
        .unwrap();
    assert_eq!(whole["output"][0]["content"][0]["text"], "echo: one two");
    let events: Vec<Value> = OpenAi
        .respond_stream(&h.call(), &asked("m"))
        .await
        .unwrap()
        .map(Result::unwrap)
        .collect()
        .await;
    assert_eq!(events.last().unwrap()["type"], "response.completed");
    assert_eq!(
        events.last().unwrap()["response"]["usage"]["output_tokens"],
        3
    );
    for (model, class, says) in [
        ("cut", FailureClassification::Transient, "cut short"),
        (
            "fails-mid-stream",
            FailureClassification::VendorError,
            "had an error",
        ),
    ] {
        let items: Vec<_> = OpenAi
            .respond_stream(&h.call(), &asked(model))
            .await
            .unwrap()
            .collect()
            .await;
        let failure = items.last().unwrap().as_ref().unwrap_err();
        assert_eq!(failure.class, class, "{model}");
        assert!(
            failure.message.contains(says),
            "{model}: {}",
            failure.message
        );
    }
}
