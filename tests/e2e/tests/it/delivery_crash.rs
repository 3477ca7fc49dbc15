//! Outbound deliveries survive `kill -9`: every accepted event is delivered at least once
//! after a restart, and no delivery is marked delivered that the receiver did not answer.

use std::collections::{HashMap, HashSet};
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use serde_json::{Value, json};

use crate::support::spawn;

#[derive(Clone, Default)]
struct Receiver {
    /// While set, requests are held open (deliveries in flight) and never answered.
    hold: Arc<AtomicBool>,
    /// webhook-id → how many requests were answered 204 while the runner could hear it.
    answered: Arc<Mutex<HashMap<String, usize>>>,
    seen: Arc<Mutex<HashSet<String>>>,
}

async fn receive(State(r): State<Receiver>, headers: HeaderMap) -> StatusCode {
    let id = headers
        .get("webhook-id")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    r.seen.lock().unwrap().insert(id.clone());
    if r.hold.load(Ordering::SeqCst) {
        // Held until the runner is killed; the answer goes nowhere and is not counted.
        while r.hold.load(Ordering::SeqCst) {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        return StatusCode::SERVICE_UNAVAILABLE;
    }
    *r.answered.lock().unwrap().entry(id).or_default() += 1;
    StatusCode::NO_CONTENT
}

fn settings(dir: &Path) {
    let values = json!({
        "IsEncrypted": false,
        "Values": {
            "PROBE_SCHEDULE": "0 0 0 1 1 *",
            "OUTBOUND_ALLOWED_HOSTS": "127.0.0.1",
            "WEBHOOK_TIMEOUT_SECONDS": "30",
            "WEBHOOK_RETRY_SCHEDULE_SECONDS": "0,1,1,1,1,1,1,1,1,1",
        }
    });
    std::fs::write(dir.join("local.settings.json"), values.to_string()).unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deliveries_in_flight_survive_kill_9() {
    let dir = tempfile::tempdir().unwrap();
    settings(dir.path());
    let receiver = Receiver::default();
    receiver.hold.store(true, Ordering::SeqCst);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let rx_addr = listener.local_addr().unwrap();
    let app = axum::Router::new()
        .fallback(receive)
        .with_state(receiver.clone());
    tokio::spawn(async move { axum::serve(listener, app).await });

    let (mut first, addr) = spawn(dir.path());
    let token = auth::DevTokens::load_or_create(&dir.path().join("data"))
        .unwrap()
        .issue(
            "tenant-k",
            &[],
            chrono::Duration::hours(1),
            chrono::Utc::now(),
        )
        .unwrap();
    let client = reqwest::Client::new();
    let base = format!("http://{addr}/webhook-gateway/api/webhooks");
    let r = client
        .post(format!("{base}/subscriptions"))
        .bearer_auth(&token)
        .json(&json!({"url": format!("http://{rx_addr}/hook"), "eventTypes": ["order.*"]}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201);
    let mut ids = Vec::new();
    for n in 0..20 {
        let r = client
            .post(format!("{base}/deliveries"))
            .bearer_auth(&token)
            .json(&json!({"eventType": "order.created", "payload": {"n": n}}))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 202);
        let body: Value = r.json().await.unwrap();
        ids.push(body["deliveries"][0]["id"].as_str().unwrap().to_owned());
    }
    // Deliveries are in flight (held by the receiver): kill the runner now.
    let deadline = Instant::now() + Duration::from_secs(15);
    while receiver.seen.lock().unwrap().is_empty() {
        assert!(Instant::now() < deadline, "no delivery started");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    first.kill().expect("SIGKILL");
    first.wait().unwrap();
    receiver.hold.store(false, Ordering::SeqCst);

    let (mut second, addr) = spawn(dir.path());
    let base = format!("http://{addr}/webhook-gateway/api/webhooks");
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut statuses: HashMap<String, String> = HashMap::new();
    loop {
        for id in &ids {
            let d: Value = client
                .get(format!("{base}/deliveries/{id}"))
                .bearer_auth(&token)
                .send()
                .await
                .unwrap()
                .json()
                .await
                .unwrap();
            statuses.insert(
                id.clone(),
                d["status"].as_str().unwrap_or_default().to_owned(),
            );
        }
        if statuses.values().all(|s| s == "delivered") || Instant::now() > deadline {
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    second.kill().unwrap();
    second.wait().unwrap();
    let answered = receiver.answered.lock().unwrap().clone();
    for id in &ids {
        assert_eq!(
            statuses[id], "delivered",
            "delivery {id} ended {}",
            statuses[id]
        );
        assert!(
            answered.get(id).copied().unwrap_or(0) >= 1,
            "{id} is marked delivered but the receiver never answered it"
        );
    }
}
