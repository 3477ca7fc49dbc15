//! The runner in-process: HTTP forwarding, Service Bus triggers with redelivery and
//! dead-lettering, the outbox to a topic subscription, timers.

use std::time::{Duration, Instant};

use ports::{BrokerReceiver, Entity};
use serde_json::{Value, json};

use crate::support::Probe;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http_in_bus_hop_and_back_out() {
    let p = Probe::start("0 0 0 1 1 *").await;
    let tok = p.token("tenant-a");

    // The index says where everything is.
    let index: Value = p.send("GET", "/", None, None).await.json().await.unwrap();
    let names: Vec<&str> = index["apps"][0]["functions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["name"].as_str().unwrap())
        .collect();
    assert!(
        names.contains(&"ProcessMessage")
            && names.contains(&"SendMessage")
            && names.contains(&"Tick")
    );

    // No token: the app refuses (the runner forwards, the app authenticates).
    let r = p
        .send(
            "POST",
            "/probe/api/messages",
            None,
            Some(json!({"id": "m1"})),
        )
        .await;
    assert_eq!(r.status(), 401);
    assert_eq!(r.headers()["content-type"], "application/problem+json");

    let r = p
        .post("/probe/api/messages", &tok, json!({"id": "m1"}))
        .await;
    assert_eq!(r.status(), 202);
    let record = p.eventually("/probe/api/messages/m1", &tok).await;
    assert_eq!(
        record["messageId"], "m1",
        "the handler saw the broker's MessageId"
    );
    assert_eq!(record["deliveryCount"], 1);
    assert!(
        record["invocationId"]
            .as_str()
            .is_some_and(|s| s.len() == 36),
        "the runner sends an invocation id"
    );

    // Another tenant cannot see it.
    let other = p.token("tenant-b");
    let r = p
        .send("GET", "/probe/api/messages/m1", Some(&other), None)
        .await;
    assert_eq!(r.status(), 404);

    // Unknown app, unknown route: 404 problem+json, as the host answers.
    for (method, path) in [
        ("GET", "/nope/api/x"),
        ("GET", "/probe/api/unknown"),
        ("GET", "/probe/messages"),
    ] {
        let r = p.send(method, path, None, None).await;
        assert_eq!(r.status(), 404, "{method} {path}");
        assert_eq!(r.headers()["content-type"], "application/problem+json");
    }
    // A known route with a method it does not take: the host forwards it (every route is
    // declared with every method) and the handler answers 405 with `Allow`.
    let r = p.send("DELETE", "/probe/api/messages/m1", None, None).await;
    assert_eq!(r.status(), 405);
    assert_eq!(r.headers()["content-type"], "application/problem+json");
    assert_eq!(r.headers()["allow"], "GET,HEAD");
    let problem: serde_json::Value = r.json().await.unwrap();
    assert_eq!(problem["code"], "method_not_allowed");
    // HEAD wherever GET works: the same status and headers, no body.
    let r = p
        .send("HEAD", "/probe/api/messages/m1", Some(&tok), None)
        .await;
    assert_eq!(r.status(), 200);
    assert!(r.bytes().await.unwrap().is_empty());
    p.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failed_invocations_are_redelivered_then_dead_lettered() {
    let p = Probe::start("0 0 0 1 1 *").await;
    let tok = p.token("t1");

    let r = p
        .post(
            "/probe/api/messages",
            &tok,
            json!({"id": "flaky", "fail": 2}),
        )
        .await;
    assert_eq!(r.status(), 202);
    let record = p.eventually("/probe/api/messages/flaky", &tok).await;
    assert_eq!(
        record["deliveryCount"], 3,
        "two failures, then success on the third delivery"
    );

    let r = p
        .post(
            "/probe/api/messages",
            &tok,
            json!({"id": "poison", "fail": 1000}),
        )
        .await;
    assert_eq!(r.status(), 202);
    let queue = Entity::queue("runs-probe");
    let deadline = Instant::now() + Duration::from_secs(15);
    let dead = loop {
        let dead = p.runner.broker.peek_dead_letters(&queue, 10).await.unwrap();
        if !dead.is_empty() {
            break dead;
        }
        assert!(
            Instant::now() < deadline,
            "the poison message was not dead-lettered"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert_eq!(dead[0].message.message_id, "poison");
    assert_eq!(
        dead[0].delivery_count, 10,
        "dead-lettered after the tenth delivery"
    );
    assert_eq!(
        dead[0].dead_letter_reason.as_deref(),
        Some("MaxDeliveryCountExceeded")
    );
    let r = p
        .send("GET", "/probe/api/messages/poison", Some(&tok), None)
        .await;
    assert_eq!(r.status(), 404, "a poison message never produced a record");
    p.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn committed_events_reach_subscribers_through_the_outbox() {
    let p = Probe::start("0 0 0 1 1 *").await;
    let tok = p.token("t-events");

    let r = p
        .post("/probe/api/events", &tok, json!({"id": "thing-1"}))
        .await;
    assert_eq!(r.status(), 202);
    let body: Value = r.json().await.unwrap();
    let event_id = body["eventId"].as_str().unwrap().to_owned();
    let record = p
        .eventually(&format!("/probe/api/events/{event_id}"), &tok)
        .await;
    assert_eq!(
        record["messageId"],
        event_id.as_str(),
        "the bus MessageId is the envelope id"
    );
    assert_eq!(record["type"], "connectsoft.integration.probe.recorded.v1");
    assert_eq!(
        record["subject"],
        "connectsoft.integration.probe.recorded.v1"
    );
    assert_eq!(record["data"]["thingId"], "thing-1");
    let dup = p
        .post("/probe/api/events", &tok, json!({"id": "thing-1"}))
        .await;
    assert_eq!(dup.status(), 409);
    p.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn timers_fire_on_their_ncrontab_schedule() {
    let p = Probe::start("*/1 * * * * *").await;
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let ticks: Value = p
            .send("GET", "/probe/api/ticks", None, None)
            .await
            .json()
            .await
            .unwrap();
        if ticks["count"].as_u64().unwrap_or(0) >= 2 {
            assert_eq!(ticks["lastPastDue"], false);
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the every-second timer did not fire twice in 10 s"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    p.shutdown().await;
}

/// Sends raw bytes over TCP and returns the start of the answer (status line, headers).
async fn raw_head(addr: std::net::SocketAddr, request: &[u8]) -> String {
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
    let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
    s.write_all(request).await.unwrap();
    let mut buf = vec![0u8; 1024];
    let n = tokio::time::timeout(Duration::from_secs(10), s.read(&mut buf))
        .await
        .expect("an answer within 10 s")
        .unwrap();
    String::from_utf8_lossy(&buf[..n]).into_owned()
}

/// Sends raw bytes over TCP and returns the status line's code.
async fn raw_status(addr: std::net::SocketAddr, request: &[u8]) -> u16 {
    raw_head(addr, request)
        .await
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oversized_and_chunked_bodies_are_handled_like_the_host() {
    let p = Probe::start("0 0 0 1 1 *").await;
    let tok = p.token("t1");
    let head = format!(
        "POST /probe/api/messages HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {tok}\r\nContent-Type: application/json\r\n"
    );
    // A declared length over the limit is refused before anything is read.
    let big = format!("{head}Content-Length: 200000000\r\n\r\n");
    assert_eq!(raw_status(p.runner.addr, big.as_bytes()).await, 413);
    // A chunked body reaches the handler empty, as with the real host (which forwards a
    // body only with Content-Length): the app then rejects the missing JSON.
    let chunked =
        format!("{head}Transfer-Encoding: chunked\r\n\r\nC\r\n{{\"id\":\"ch1\"}}\r\n0\r\n\r\n");
    assert_eq!(raw_status(p.runner.addr, chunked.as_bytes()).await, 400);
    // The same body with a Content-Length is accepted.
    let sized = format!("{head}Content-Length: 12\r\n\r\n{{\"id\":\"ch1\"}}");
    assert_eq!(raw_status(p.runner.addr, sized.as_bytes()).await, 202);
    p.shutdown().await;
}

/// The host's limits on the request line (8 KiB) and the headers (32 KiB in all) answer
/// 414 and 431 as problems, like every other refusal of the runner.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_long_uri_and_large_headers_are_refused_as_problems() {
    let p = Probe::start("0 0 0 1 1 *").await;
    let long = format!(
        "GET /probe/api/ticks?x={} HTTP/1.1\r\nHost: x\r\n\r\n",
        "a".repeat(9 * 1024)
    );
    let head = raw_head(p.runner.addr, long.as_bytes()).await;
    assert!(head.starts_with("HTTP/1.1 414"), "{head}");
    assert!(head.contains("application/problem+json"), "{head}");
    let headers = format!(
        "GET /probe/api/ticks HTTP/1.1\r\nHost: x\r\nX-Big: {}\r\n\r\n",
        "b".repeat(33 * 1024)
    );
    let head = raw_head(p.runner.addr, headers.as_bytes()).await;
    assert!(head.starts_with("HTTP/1.1 431"), "{head}");
    assert!(head.contains("application/problem+json"), "{head}");
    // Just under both limits: served.
    let fine = format!(
        "GET /probe/api/ticks?x={} HTTP/1.1\r\nHost: x\r\nX-Big: {}\r\n\r\n",
        "a".repeat(7 * 1024),
        "b".repeat(30 * 1024)
    );
    assert_ne!(raw_status(p.runner.addr, fine.as_bytes()).await, 414);
    assert_ne!(raw_status(p.runner.addr, fine.as_bytes()).await, 431);
    p.shutdown().await;
}

/// One runner per data folder: a second one refuses to start, naming the first; once the
/// first stops, the folder is free again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_runner_on_the_same_data_folder_refuses_to_start() {
    let p = Probe::start("0 0 0 1 1 *").await;
    let dir = p.platform.dir().to_owned();
    let args = || integration_platform::RunArgs {
        listen: Some("127.0.0.1:0".parse().unwrap()),
        data_dir: dir.join("data"),
        settings: Some(dir.join("local.settings.json")),
        lock_seconds: 2,
        function_timeout: 30,
        max_concurrent_calls: Some(4),
    };
    let e = match integration_platform::Runner::start(&[e2e::registration()], args()).await {
        Ok(_) => panic!("a second runner started on the same folder"),
        Err(e) => format!("{e:#}"),
    };
    assert!(
        e.contains(&format!("another runner (PID {})", std::process::id())),
        "{e}"
    );
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt as _;
        let mode = |p: &std::path::Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode(&dir.join("data")), 0o700);
        assert_eq!(mode(&dir.join("data").join("documents.db")), 0o600);
    }
    let p = p.platform.restart(&[e2e::registration()]).await;
    p.shutdown().await;
}

/// Holds a streaming answer after its first chunk until the test lets it go on.
static GATE: tokio::sync::Notify = tokio::sync::Notify::const_new();

/// `GET /api/chunks`: `first` at once, `rest` once the gate opens.
fn chunks_app(slug: &'static str) -> functions_runtime::FunctionApp {
    let chunks = axum::routing::get(|| async {
        let stream = futures::stream::unfold(0u8, |step| async move {
            match step {
                0 => Some((Ok::<_, std::io::Error>("first\n"), 1)),
                1 => {
                    GATE.notified().await;
                    Some((Ok("rest\n"), 2))
                }
                _ => None,
            }
        });
        axum::body::Body::from_stream(stream)
    });
    functions_runtime::FunctionApp::new(slug).route(
        functions_runtime::FunctionDecl::http("Chunks", "chunks", &["get"]).public(),
        chunks,
    )
}

fn chunks_registration(
    slug: &'static str,
    build: fn(
        &app_context::AppContext,
    ) -> Result<functions_runtime::FunctionApp, app_context::InvalidSetting>,
) -> app_context::AppRegistration {
    app_context::AppRegistration {
        slug,
        build,
        containers: &[],
        reads: &[],
        subscriptions: Vec::new,
        has_runs_queue: false,
        catalogue: &[],
    }
}

/// The runner plays both modes of the host: a proxied app's answer streams to the caller
/// chunk by chunk; a forwarded app's answer reaches the caller whole, at its end.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn proxied_answers_stream_and_forwarded_answers_arrive_whole() {
    let platform = testkit::TestPlatform::start(
        &[
            chunks_registration("streamer", |_| Ok(chunks_app("streamer").proxying())),
            chunks_registration("buffered", |_| Ok(chunks_app("buffered"))),
        ],
        json!({}),
    )
    .await;
    // Proxied: the first chunk arrives while the handler still holds the rest back.
    let mut streamed = platform
        .client
        .get(platform.url("/streamer/api/chunks"))
        .send()
        .await
        .unwrap();
    let first = tokio::time::timeout(Duration::from_secs(10), streamed.chunk())
        .await
        .expect("the first chunk streams before the rest exists")
        .unwrap()
        .unwrap();
    assert_eq!(first.as_ref(), b"first\n");
    GATE.notify_one();
    let mut rest = Vec::new();
    while let Some(c) = streamed.chunk().await.unwrap() {
        rest.extend_from_slice(&c);
    }
    assert_eq!(rest, b"rest\n");

    // Forwarded: nothing reaches the caller while the answer is unfinished.
    let request = platform
        .client
        .get(platform.url("/buffered/api/chunks"))
        .send();
    tokio::pin!(request);
    assert!(
        tokio::time::timeout(Duration::from_millis(300), &mut request)
            .await
            .is_err(),
        "a forwarded answer is held until it is whole"
    );
    GATE.notify_one();
    let whole = request.await.unwrap();
    assert_eq!(whole.headers()["content-length"], "11");
    assert_eq!(whole.text().await.unwrap(), "first\nrest\n");
    platform.shutdown().await;
}
