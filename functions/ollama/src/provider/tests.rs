//! The provider against the fake Ollama of `model-fakes` over real HTTP (Ollama's native
//! shapes: `/api/chat` whole and as NDJSON, `/api/embed`, `/api/tags`, `{"error": …}`
//! bodies and lines), and against a server that takes its time to load a model.

use std::time::Duration;

use domain::{CredentialKind, FailureClassification};
use futures::StreamExt as _;
use integration_kit::testing::{FakeVendor, Harness, Reply};
use model_fakes::ollama::FakeOllama;
use serde_json::{Value, json};

use super::*;

fn harness(base: &str, config: Value) -> Harness {
    let mut config = config;
    config["baseUrl"] = json!(base);
    Harness::new(
        KEY,
        CredentialKind::ApiKey,
        json!({"apiKey": "ollama"}),
        config,
    )
}

fn ask(model: &str, stream: bool) -> Value {
    json!({"model": model, "stream": stream, "stream_options": {"include_usage": true},
           "messages": [{"role": "user", "content": "one two three"}]})
}

#[tokio::test]
async fn whole_and_streamed_chats_and_embeddings_come_back_in_openais_shapes() {
    let fake = FakeOllama::start(model_fakes::Options::default())
        .await
        .unwrap();
    let h = harness(&fake.base_url, json!({"models": ["llama3.2"]}));
    Ollama.test_connection(&h.call()).await.unwrap();
    let whole = Ollama
        .chat(&h.call(), &ask("llama3.2", false))
        .await
        .unwrap();
    assert_eq!(whole["object"], "chat.completion");
    assert_eq!(
        whole["choices"][0]["message"]["content"],
        "echo: one two three"
    );
    assert_eq!(whole["choices"][0]["finish_reason"], "stop");
    assert_eq!(whole["usage"]["prompt_tokens"], 3);
    assert_eq!(whole["usage"]["completion_tokens"], 4);
    let chunks: Vec<Value> = Ollama
        .chat_stream(&h.call(), &ask("llama3.2", true))
        .await
        .unwrap()
        .map(Result::unwrap)
        .collect()
        .await;
    let mut assembled = model_gateway::stream::Assembled::default();
    chunks.iter().for_each(|c| assembled.add(c));
    assert_eq!(
        assembled.completion()["choices"],
        whole["choices"],
        "the stream is the same answer"
    );
    assert_eq!(assembled.usage().unwrap()["total_tokens"], 7);
    let list = Ollama
        .embed(
            &h.call(),
            &json!({"model": "all-minilm", "input": ["a b", "c"], "dimensions": 4,
                    "encoding_format": "base64"}),
        )
        .await
        .unwrap();
    assert_eq!(list["data"].as_array().unwrap().len(), 2);
    assert!(list["data"][0]["embedding"].is_string(), "base64 as asked");
    assert_eq!(list["usage"]["prompt_tokens"], 3);
}

#[tokio::test]
async fn errors_in_the_body_and_mid_stream_are_failures() {
    let fake = FakeOllama::start(model_fakes::Options::default())
        .await
        .unwrap();
    let h = harness(&fake.base_url, json!({"models": ["x"]})).attempts(1);
    let e = Ollama
        .chat(&h.call(), &ask("missing", false))
        .await
        .unwrap_err();
    assert_eq!(e.class(), FailureClassification::Validation);
    assert!(
        e.failure.message.contains("model 'missing' not found"),
        "{e}"
    );
    for (model, class) in [
        ("cut", FailureClassification::Transient),
        ("fails-mid-stream", FailureClassification::VendorError),
    ] {
        let items: Vec<_> = Ollama
            .chat_stream(&h.call(), &ask(model, true))
            .await
            .unwrap()
            .collect()
            .await;
        let last = items.last().unwrap().as_ref().unwrap_err();
        assert_eq!(last.class, class, "{model}: {last:?}");
        assert!(
            items[..items.len() - 1].iter().all(Result::is_ok),
            "{model}"
        );
    }
}

#[tokio::test]
async fn a_model_that_loads_slowly_is_waited_for_up_to_the_connections_first_byte_timeout() {
    // 1.5 s to the answer: past the test policy's 300 ms attempt timeout, within the
    // connection's 5 s; past a connection's 1 s.
    let slow = FakeVendor::start(|_, _| {
        Reply::json(
            200,
            json!({"model": "llama3.2", "created_at": "2026-12-08T10:00:00Z",
                   "message": {"role": "assistant", "content": "loaded"}, "done": true,
                   "done_reason": "stop", "prompt_eval_count": 1, "eval_count": 1}),
        )
        .after(Duration::from_millis(1_500))
    })
    .await;
    let h = harness(
        &slow.base,
        json!({"models": ["llama3.2"], "firstByteTimeoutMs": 5000}),
    );
    let answer = Ollama
        .chat(&h.call(), &ask("llama3.2", false))
        .await
        .unwrap();
    assert_eq!(answer["choices"][0]["message"]["content"], "loaded");
    let h = harness(
        &slow.base,
        json!({"models": ["llama3.2"], "firstByteTimeoutMs": 1000}),
    )
    .attempts(1);
    let e = Ollama
        .chat(&h.call(), &ask("llama3.2", false))
        .await
        .unwrap_err();
    assert_eq!(e.class(), FailureClassification::Timeout);
}

#[test]
fn a_connection_names_its_server_and_a_sane_first_byte_timeout() {
    use integration_kit::ProviderConfig as _;
    let config = |v: Value| serde_json::from_value::<OllamaConfig>(v).unwrap().check();
    assert!(config(json!({"models": ["m"], "baseUrl": "http://gpu:11434"})).is_ok());
    assert!(config(json!({"models": ["m"]})).is_err());
    assert!(
        config(json!({"models": ["m"], "baseUrl": "http://gpu:11434",
                          "firstByteTimeoutMs": 10}))
        .is_err()
    );
}
