//! Streamed chat completions end to end through the runner (the openai app is proxied, so
//! its answers stream as the Functions host would stream them): chunks reach the caller
//! as the upstream makes them, the usage chunk only when asked, keep-alives while the
//! upstream is silent, fallback only before the first chunk, a cut stream ending in an
//! error event and a failure record.

use std::time::{Duration, Instant};

use serde_json::{Value, json};
use testkit::TestPlatform;

use super::models::{CHAT, ask, connect};

/// What a caller read of a stream: each SSE frame (comments included) and when it came.
struct Heard {
    status: u16,
    content_type: String,
    run: String,
    frames: Vec<(Instant, String)>,
}

impl Heard {
    /// The `data:` payloads, `[DONE]` included.
    fn data(&self) -> Vec<&str> {
        self.frames
            .iter()
            .filter_map(|(_, f)| f.strip_prefix("data: "))
            .collect()
    }

    fn chunks(&self) -> Vec<Value> {
        self.data()
            .into_iter()
            .filter(|d| *d != "[DONE]")
            .map(|d| serde_json::from_str(d).unwrap())
            .collect()
    }

    fn content(&self) -> String {
        self.chunks()
            .iter()
            .filter_map(|c| {
                c["choices"][0]["delta"]["content"]
                    .as_str()
                    .map(str::to_owned)
            })
            .collect()
    }
}

async fn stream(platform: &TestPlatform, token: &str, body: Value) -> Heard {
    stream_at(platform, token, CHAT, body).await
}

async fn stream_at(platform: &TestPlatform, token: &str, path: &str, body: Value) -> Heard {
    let mut body = body;
    body["stream"] = json!(true);
    let mut r = platform
        .client
        .post(platform.url(path))
        .bearer_auth(token)
        .json(&body)
        .send()
        .await
        .unwrap();
    let status = r.status().as_u16();
    let content_type = r.headers()["content-type"].to_str().unwrap().to_owned();
    let run = r.headers()["x-request-id"].to_str().unwrap().to_owned();
    let mut frames = Vec::new();
    let mut buf = String::new();
    while let Some(bytes) = r.chunk().await.unwrap() {
        let now = Instant::now();
        buf.push_str(std::str::from_utf8(&bytes).unwrap());
        while let Some(end) = buf.find("\n\n") {
            frames.push((now, buf[..end].to_owned()));
            buf.drain(..end + 2);
        }
    }
    assert!(buf.is_empty(), "a frame left unfinished: {buf:?}");
    Heard {
        status,
        content_type,
        run,
        frames,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stream_reaches_the_caller_chunk_by_chunk_and_is_recorded_whole() {
    let platform = TestPlatform::start(
        &[registry::registration(), openai::registration()],
        json!({"MODEL_STREAM_KEEPALIVE_MS": "100"}),
    )
    .await;
    let token = platform.token("tenant-s", &[]);
    connect(
        &platform,
        &token,
        "slow",
        json!({"models": ["m"], "chunkDelayMs": 250}),
    )
    .await;
    let mut asked = ask("m", "one two three");
    asked["stream_options"] = json!({"include_usage": true});
    let heard = stream(&platform, &token, asked).await;
    assert_eq!(heard.status, 200);
    assert!(heard.content_type.starts_with("text/event-stream"));
    assert_eq!(heard.content(), "echo: one two three");
    assert_eq!(heard.data().last(), Some(&"[DONE]"));
    let chunks = heard.chunks();
    let usage = chunks.last().unwrap();
    assert_eq!(usage["choices"], json!([]), "the usage chunk, asked for");
    assert_eq!(usage["usage"]["completion_tokens"], 4);
    // Six chunks 250 ms apart: the first reached the caller long before the last existed
    // (a buffered answer would bring them all at once).
    let first = heard.frames.first().unwrap().0;
    let last = heard.frames.last().unwrap().0;
    assert!(
        last - first >= Duration::from_millis(800),
        "{:?}",
        last - first
    );
    // Silences of 250 ms against a 100 ms keep-alive: comments in between.
    assert!(
        heard.frames.iter().any(|(_, f)| f == ": keep-alive"),
        "no keep-alive"
    );

    // The run holds the completion the chunks made, and the usage of the final chunk.
    let recorded = platform
        .run_until("openai", &token, &heard.run, &["succeeded", "failed"])
        .await;
    assert_eq!(recorded["status"], "succeeded", "{recorded}");
    assert_eq!(
        recorded["output"]["choices"][0]["message"]["content"],
        "echo: one two three"
    );
    assert_eq!(recorded["output"]["choices"][0]["finish_reason"], "stop");
    assert_eq!(recorded["usage"]["tokensOut"], 4, "{recorded}");

    // Not asked for, the usage chunk is not relayed, yet the run still has the usage.
    let heard = stream(&platform, &token, ask("m", "five six")).await;
    assert!(heard.chunks().iter().all(|c| c["usage"].is_null()));
    let recorded = platform
        .run_until("openai", &token, &heard.run, &["succeeded", "failed"])
        .await;
    assert_eq!(recorded["usage"]["tokensOut"], 3, "{recorded}");

    // Another tenant sees none of it.
    let other = platform.token("tenant-t", &[]);
    let r = platform
        .get(
            &format!("/openai/api/integrations/runs/{}", heard.run),
            &other,
        )
        .await;
    assert_eq!(r.status(), 404);
    platform.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fallback_happens_before_the_first_chunk_never_after() {
    let platform = TestPlatform::start(
        &[registry::registration(), openai::registration()],
        json!({}),
    )
    .await;
    let token = platform.token("tenant-f", &[]);
    // `m`: the preferred connection's stream dies before its first chunk; the next serves.
    let dead = connect(
        &platform,
        &token,
        "dead",
        json!({"models": ["m", "z"], "priority": 1, "cutAfter": 0}),
    )
    .await;
    let backup = connect(
        &platform,
        &token,
        "backup",
        json!({"models": ["m", "n"], "priority": 3}),
    )
    .await;
    // `n`: the preferred connection's stream dies after two chunks: too late to fall back.
    let flaky = connect(
        &platform,
        &token,
        "flaky",
        json!({"models": ["n"], "priority": 2, "cutAfter": 2}),
    )
    .await;

    let heard = stream(&platform, &token, ask("m", "hello")).await;
    assert_eq!(heard.status, 200);
    assert_eq!(heard.content(), "echo: hello");
    let recorded = platform
        .run_until("openai", &token, &heard.run, &["succeeded", "failed"])
        .await;
    assert_eq!(recorded["status"], "succeeded", "{recorded}");
    assert!(recorded.to_string().contains(&backup), "{recorded}");
    assert!(!recorded.to_string().contains(&dead), "{recorded}");

    let heard = stream(&platform, &token, ask("n", "hello")).await;
    assert_eq!(heard.status, 200, "the stream had begun");
    assert_eq!(heard.content(), "echo:", "the two chunks before the cut");
    let last: Value = serde_json::from_str(heard.data().last().unwrap()).unwrap();
    assert_eq!(
        last["error"]["type"], "api_error",
        "an error event ends it: {last}"
    );
    assert!(!heard.data().contains(&"[DONE]"));
    let recorded = platform
        .run_until("openai", &token, &heard.run, &["succeeded", "failed"])
        .await;
    assert_eq!(recorded["status"], "failed", "{recorded}");
    assert!(recorded.to_string().contains(&flaky), "{recorded}");
    let failures = platform.failures_of_run("openai", &token, &heard.run).await;
    assert_eq!(failures.len(), 1, "{failures:?}");
    assert_eq!(failures[0]["classification"], "transient");

    // Every connection's stream dead before a chunk: the caller gets an error answer, not
    // a stream, and the run its failure.
    let r = platform
        .client
        .post(platform.url(CHAT))
        .bearer_auth(&token)
        .json(&json!({"model": "z", "stream": true,
                      "messages": [{"role": "user", "content": "x"}]}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 502);
    let run = r.headers()["x-request-id"].to_str().unwrap().to_owned();
    assert_eq!(
        r.json::<Value>().await.unwrap()["error"]["type"],
        "api_error"
    );
    let recorded = platform
        .run_until("openai", &token, &run, &["succeeded", "failed"])
        .await;
    assert_eq!(recorded["status"], "failed", "{recorded}");

    let r = platform
        .client
        .post(platform.url(CHAT))
        .bearer_auth(&token)
        .json(
            &json!({"model": "m", "stream": true, "stream_options": {"include_usage": "yes"},
                      "messages": [{"role": "user", "content": "x"}]}),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    assert_eq!(
        r.json::<Value>().await.unwrap()["error"]["param"],
        "stream_options"
    );
    platform.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn responses_stream_typed_events_and_a_cut_one_ends_with_an_error_event() {
    let platform = TestPlatform::start(
        &[
            registry::registration(),
            openai::registration(),
            ollama::registration(),
        ],
        json!({}),
    )
    .await;
    let token = platform.token("tenant-r", &[]);
    connect(&platform, &token, "fine", json!({"models": ["m"]})).await;
    connect(
        &platform,
        &token,
        "flaky",
        json!({"models": ["n"], "cutAfter": 5}),
    )
    .await;
    const RESPONSES: &str = "/openai/api/v1/responses";
    let heard = stream_at(
        &platform,
        &token,
        RESPONSES,
        json!({"model": "m", "input": "one two", "instructions": "be brief"}),
    )
    .await;
    assert_eq!(heard.status, 200);
    // Typed events: `event:` names the data's `type`, no `[DONE]`, the terminal one last.
    let events: Vec<(String, Value)> = heard
        .frames
        .iter()
        .filter(|(_, f)| f.starts_with("event: "))
        .map(|(_, f)| {
            let (event, data) = f.split_once('\n').unwrap();
            let data: Value = serde_json::from_str(data.strip_prefix("data: ").unwrap()).unwrap();
            (event.strip_prefix("event: ").unwrap().to_owned(), data)
        })
        .collect();
    assert!(events.iter().all(|(e, d)| d["type"] == e.as_str()));
    assert_eq!(events[0].0, "response.created");
    assert_eq!(events.last().unwrap().0, "response.completed");
    let text: String = events
        .iter()
        .filter(|(e, _)| e == "response.output_text.delta")
        .map(|(_, d)| d["delta"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(text, "echo: one two");
    assert!(!heard.frames.iter().any(|(_, f)| f.contains("[DONE]")));
    let recorded = platform
        .run_until("openai", &token, &heard.run, &["succeeded", "failed"])
        .await;
    assert_eq!(recorded["status"], "succeeded", "{recorded}");
    assert_eq!(recorded["operation"], "respond");
    assert_eq!(recorded["output"]["status"], "completed");
    assert_eq!(recorded["usage"]["tokensOut"], 3, "{recorded}");

    // Cut after five events: an `error` event with the next sequence number, and a failure.
    let heard = stream_at(
        &platform,
        &token,
        RESPONSES,
        json!({"model": "n", "input": "one two three"}),
    )
    .await;
    let last = &heard.frames.last().unwrap().1;
    assert!(last.starts_with("event: error\n"), "{last}");
    let error: Value = serde_json::from_str(last.split_once("data: ").unwrap().1).unwrap();
    assert_eq!(error["type"], "error");
    assert_eq!(error["sequence_number"], 5);
    let recorded = platform
        .run_until("openai", &token, &heard.run, &["succeeded", "failed"])
        .await;
    assert_eq!(recorded["status"], "failed", "{recorded}");

    // Whole, and refused when unusable; the ollama app has no Responses API.
    let r = platform
        .post(
            RESPONSES,
            &token,
            json!({"model": "m", "input": "hi there"}),
        )
        .await;
    assert_eq!(r.status(), 200);
    let response: Value = r.json().await.unwrap();
    assert_eq!(response["object"], "response");
    assert_eq!(
        response["output"][0]["content"][0]["text"],
        "echo: hi there"
    );
    let r = platform
        .post(RESPONSES, &token, json!({"model": "m", "input": ""}))
        .await;
    assert_eq!(r.status(), 400);
    assert_eq!(r.json::<Value>().await.unwrap()["error"]["param"], "input");
    let r = platform
        .post(
            "/ollama/api/v1/responses",
            &token,
            json!({"model": "m", "input": "x"}),
        )
        .await;
    assert_eq!(r.status(), 404);
    platform.shutdown().await;
}
