//! A run survives `kill -9` in the middle of its vendor call: after a restart the run is
//! executed again (the interrupted attempt recorded as such) and ends `succeeded` only
//! because the vendor answered; it is never left `running`.

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::IntoResponse;
use serde_json::{Value, json};

use crate::support::{dev_token, spawn};

const ACCOUNT: &str = "AC0123456789abcdef0123456789abcdef";

#[derive(Clone, Default)]
struct Twilio {
    /// While set, sends are held open and never answered.
    hold: Arc<AtomicBool>,
    sends: Arc<AtomicUsize>,
}

async fn account() -> impl IntoResponse {
    axum::Json(json!({"sid": ACCOUNT, "status": "active"}))
}

async fn send(State(t): State<Twilio>) -> impl IntoResponse {
    t.sends.fetch_add(1, Ordering::SeqCst);
    while t.hold.load(Ordering::SeqCst) {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    (
        StatusCode::CREATED,
        axum::Json(
            json!({"sid": "SM0123456789abcdef0123456789abcdef", "status": "queued", "num_segments": "1"}),
        ),
    )
}

fn settings(dir: &Path) {
    let values = json!({
        "IsEncrypted": false,
        "Values": {
            "PROBE_SCHEDULE": "0 0 0 1 1 *",
            "OUTBOUND_ALLOWED_HOSTS": "127.0.0.1",
            // A short deadline, so an interrupted attempt is known to be over soon.
            "VENDOR_DEADLINE_MS": "1000",
        }
    });
    std::fs::write(dir.join("local.settings.json"), values.to_string()).unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_run_interrupted_by_kill_9_completes_after_restart() {
    interrupted_by_kill_9(false).await;
}

/// The same with `Prefer: wait`: the run is executed in its request, and the request's
/// process dies mid-call; the run's backup command on the bus recovers it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_waited_run_interrupted_by_kill_9_completes_after_restart() {
    interrupted_by_kill_9(true).await;
}

async fn interrupted_by_kill_9(wait: bool) {
    let dir = tempfile::tempdir().unwrap();
    settings(dir.path());
    let twilio = Twilio::default();
    twilio.hold.store(true, Ordering::SeqCst);
    let app = axum::Router::new()
        .route(
            &format!("/2010-04-01/Accounts/{ACCOUNT}.json"),
            axum::routing::get(account),
        )
        .route(
            &format!("/2010-04-01/Accounts/{ACCOUNT}/Messages.json"),
            axum::routing::post(send),
        )
        .with_state(twilio.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let vendor = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await });

    let (mut child, addr) = spawn(dir.path());
    let base = format!("http://{addr}");
    let token = dev_token(dir.path(), "tenant-crash");
    let client = reqwest::Client::new();
    let r = client
        .post(format!("{base}/sms/api/integrations/connections"))
        .bearer_auth(&token)
        .json(&json!({"providerKey": "twilio", "displayName": "twilio",
                      "config": {"baseUrl": vendor, "from": "+15005550006"},
                      "credential": {"kind": "basic", "username": ACCOUNT, "password": "tw-token"}}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201, "{}", r.text().await.unwrap());
    let connection = r.json::<Value>().await.unwrap()["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let start = |base: String| {
        let mut rb = client
            .post(format!("{base}/sms/api/integrations/runs"))
            .bearer_auth(&token)
            .header("Idempotency-Key", "crash-1")
            .json(&json!({"connectionId": connection, "operation": "send", "input": {"to": "+972501234567", "body": "hi"}}));
        if wait {
            rb = rb.header("Prefer", "wait=60");
        }
        rb.send()
    };
    // A waited request is answered only when the run is over: it never is here.
    let request = tokio::spawn(start(base.clone()));
    // The send is in flight at the vendor: kill the runner there.
    let deadline = Instant::now() + Duration::from_secs(20);
    while twilio.sends.load(Ordering::SeqCst) == 0 {
        assert!(
            Instant::now() < deadline,
            "the send never reached the vendor"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    child.kill().unwrap();
    child.wait().unwrap();
    twilio.hold.store(false, Ordering::SeqCst);
    let answered = request.await.unwrap();
    assert_eq!(
        answered.is_err(),
        wait,
        "a waited request dies with its process; a plain one was answered at once"
    );

    let (mut child, addr) = spawn(dir.path());
    let base = format!("http://{addr}");
    // The key names the run the first request started.
    let run: Value = start(base.clone()).await.unwrap().json().await.unwrap();
    let run = run["runId"].as_str().unwrap().to_owned();
    let deadline = Instant::now() + Duration::from_secs(60);
    let done = loop {
        let v: Value = client
            .get(format!("{base}/sms/api/integrations/runs/{run}"))
            .bearer_auth(&token)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        if v["status"] == "succeeded" || v["status"] == "failed" {
            break v;
        }
        assert!(
            Instant::now() < deadline,
            "the run never finished after the restart: {v}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    child.kill().unwrap();
    child.wait().unwrap();
    assert_eq!(done["status"], "succeeded", "{done}");
    let attempts = done["attempts"].as_array().unwrap();
    assert_eq!(
        attempts.len(),
        2,
        "the interrupted attempt and the one that finished: {done}"
    );
    assert_eq!(attempts[0]["error"], "the attempt was interrupted");
    // Twilio takes no idempotency key: the interrupted send may have gone out, and the run
    // is sent again (at least once), which the vendor saw as a second request.
    assert_eq!(twilio.sends.load(Ordering::SeqCst), 2);
    assert_eq!(
        done["outputSummary"]["messageId"],
        "SM0123456789abcdef0123456789abcdef"
    );
}
