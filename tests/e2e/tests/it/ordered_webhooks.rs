//! Ordered outbound webhooks through the runner: an ordered subscription gets the events of
//! one ordering key in the order they were accepted, even while one of them is being retried;
//! an unordered subscription to the same events is not held back; one key held back by its
//! failures does not hold another; a dead-lettered delivery lets the next one of its key go.

use std::collections::{HashMap, HashSet};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};
use testkit::{TestPlatform, assert_problem};

const SUBSCRIPTIONS: &str = "/webhook-gateway/api/webhooks/subscriptions";
const DELIVERIES: &str = "/webhook-gateway/api/webhooks/deliveries";

/// One request the receiver got.
#[derive(Clone, Debug)]
struct Hit {
    path: String,
    webhook_id: String,
    key: String,
    n: u64,
    status: u16,
}

/// A request's (path, ordering key, event number).
type Which = (String, String, u64);

/// A local endpoint that answers `429 Retry-After: 1` (an exact one-second wait, so timings
/// do not depend on the retry schedule's jitter) to the requests it is told to refuse.
#[derive(Clone, Default)]
struct Receiver {
    hits: Arc<Mutex<Vec<Hit>>>,
    /// (path, key, n) → how many more requests to refuse.
    refuse: Arc<Mutex<HashMap<Which, u32>>>,
    /// Keys refused for as long as they are here.
    stuck: Arc<Mutex<HashSet<String>>>,
}

async fn answer(State(r): State<Receiver>, uri: Uri, headers: HeaderMap, body: String) -> Response {
    let payload: Value = serde_json::from_str(&body).unwrap_or_default();
    let key = payload["data"]["key"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    let n = payload["data"]["n"].as_u64().unwrap_or_default();
    let path = uri.path().to_owned();
    let refused = r.stuck.lock().unwrap().contains(&key)
        || r.refuse
            .lock()
            .unwrap()
            .get_mut(&(path.clone(), key.clone(), n))
            .is_some_and(|left| {
                let refuse = *left > 0;
                *left = left.saturating_sub(1);
                refuse
            });
    let status = if refused { 429 } else { 204 };
    r.hits.lock().unwrap().push(Hit {
        path,
        webhook_id: headers
            .get("webhook-id")
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_owned(),
        key,
        n,
        status,
    });
    if refused {
        (
            StatusCode::TOO_MANY_REQUESTS,
            [("retry-after", "1")],
            "later",
        )
            .into_response()
    } else {
        StatusCode::NO_CONTENT.into_response()
    }
}

impl Receiver {
    async fn start() -> (Receiver, SocketAddr) {
        let r = Receiver::default();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let app = axum::Router::new().fallback(answer).with_state(r.clone());
        tokio::spawn(async move { axum::serve(listener, app).await });
        (r, addr)
    }

    fn refuse(&self, path: &str, key: &str, n: u64, times: u32) {
        self.refuse
            .lock()
            .unwrap()
            .insert((path.to_owned(), key.to_owned(), n), times);
    }

    fn stick(&self, key: &str, stuck: bool) {
        let mut keys = self.stuck.lock().unwrap();
        if stuck {
            keys.insert(key.to_owned());
        } else {
            keys.remove(key);
        }
    }

    fn hits(&self, path: &str, key: &str) -> Vec<Hit> {
        self.hits
            .lock()
            .unwrap()
            .iter()
            .filter(|h| h.path == path && h.key == key)
            .cloned()
            .collect()
    }
}

async fn platform(schedule: &str) -> TestPlatform {
    TestPlatform::start(
        &[registry::registration(), webhook_gateway::registration()],
        json!({
            "OUTBOUND_ALLOWED_HOSTS": "127.0.0.1",
            "WEBHOOK_TIMEOUT_SECONDS": "5",
            "WEBHOOK_RETRY_SCHEDULE_SECONDS": schedule,
            // The breaker would hold the whole endpoint back after a few failures of one key:
            // these tests are about the lanes, not the breaker.
            "WEBHOOK_BREAKER_THRESHOLD": "1000",
        }),
    )
    .await
}

async fn subscribe(p: &TestPlatform, t: &str, url: String, ordered: bool) -> Value {
    let r = p
        .post(
            SUBSCRIPTIONS,
            t,
            json!({"url": url, "eventTypes": ["order.*"], "ordered": ordered}),
        )
        .await;
    assert_eq!(r.status(), 201, "{:?}", r.text().await);
    r.json().await.unwrap()
}

/// Posts event `n` of `key`; returns subscription id → delivery id.
async fn send(p: &TestPlatform, t: &str, key: &str, n: u64) -> HashMap<String, String> {
    let r = p
        .post(
            DELIVERIES,
            t,
            json!({"eventType": "order.updated", "orderingKey": key, "payload": {"key": key, "n": n}}),
        )
        .await;
    assert_eq!(r.status(), 202, "{:?}", r.text().await);
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["orderingKey"], key);
    body["deliveries"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| {
            (
                d["subscriptionId"].as_str().unwrap().to_owned(),
                d["id"].as_str().unwrap().to_owned(),
            )
        })
        .collect()
}

async fn delivery(p: &TestPlatform, t: &str, id: &str) -> Value {
    p.eventually(&format!("{DELIVERIES}/{id}"), t).await
}

/// Waits until every delivery in `ids` has `status` (within `secs`).
async fn until_all(p: &TestPlatform, t: &str, ids: &[String], status: &str, secs: u64) {
    let deadline = Instant::now() + Duration::from_secs(secs);
    for id in ids {
        loop {
            let d = delivery(p, t, id).await;
            if d["status"] == status {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "delivery {id} did not become {status}: {d:#}"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

fn ns(hits: &[Hit]) -> Vec<u64> {
    hits.iter().map(|h| h.n).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_ordered_subscription_gets_a_keys_events_in_order_through_retries() {
    let p = platform("0,1,1,1,1,1,1,1,1,1").await;
    let (rx, addr) = Receiver::start().await;
    let t = p.token("tenant-ordered", &[]);
    let ordered = subscribe(&p, &t, format!("http://{addr}/ordered"), true).await;
    let plain = subscribe(&p, &t, format!("http://{addr}/plain"), false).await;
    assert_eq!(ordered["ordered"], true);
    assert_eq!(plain["ordered"], false);
    let shown = p
        .eventually(
            &format!("{SUBSCRIPTIONS}/{}", ordered["id"].as_str().unwrap()),
            &t,
        )
        .await;
    assert_eq!(shown["ordered"], true, "GET shows it");
    let (ordered_id, plain_id) = (
        ordered["id"].as_str().unwrap().to_owned(),
        plain["id"].as_str().unwrap().to_owned(),
    );

    // Event 3 is refused twice by both endpoints (each refusal: one second until the retry).
    rx.refuse("/ordered", "customer-1", 3, 2);
    rx.refuse("/plain", "customer-1", 3, 2);
    let mut to_ordered = Vec::new();
    let mut to_plain = Vec::new();
    for n in 1..=6 {
        let ids = send(&p, &t, "customer-1", n).await;
        to_ordered.push(ids[&ordered_id].clone());
        to_plain.push(ids[&plain_id].clone());
    }
    until_all(&p, &t, &to_ordered, "delivered", 30).await;
    until_all(&p, &t, &to_plain, "delivered", 30).await;

    let hits = rx.hits("/ordered", "customer-1");
    assert_eq!(
        ns(&hits),
        vec![1, 2, 3, 3, 3, 4, 5, 6],
        "in order, and nothing after 3 before 3 was delivered: {hits:#?}"
    );
    assert!(hits.iter().all(|h| h.status == 204 || h.n == 3));
    let threes: HashSet<&str> = hits
        .iter()
        .filter(|h| h.n == 3)
        .map(|h| h.webhook_id.as_str())
        .collect();
    assert_eq!(
        threes,
        HashSet::from([to_ordered[2].as_str()]),
        "the same webhook-id on every attempt"
    );
    let third = delivery(&p, &t, &to_ordered[2]).await;
    assert_eq!(third["attempts"].as_array().unwrap().len(), 3);
    assert_eq!(third["ordering"]["key"], "customer-1");

    // The unordered subscription got 4, 5 and 6 while 3 was still being retried.
    let hits = rx.hits("/plain", "customer-1");
    let delivered_3 = hits
        .iter()
        .position(|h| h.n == 3 && h.status == 204)
        .unwrap();
    for n in 4..=6 {
        let at = hits.iter().position(|h| h.n == n).unwrap();
        assert!(
            at < delivered_3,
            "the unordered subscription waited for 3 before {n}: {hits:#?}"
        );
    }
    assert!(
        delivery(&p, &t, &to_plain[2]).await["ordering"].is_null(),
        "unordered deliveries have no lane"
    );
    p.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_key_held_back_by_failures_does_not_hold_another() {
    let p = platform("0,1,1,1,1,1,1,1,1,1").await;
    let (rx, addr) = Receiver::start().await;
    let t = p.token("tenant-lanes", &[]);
    let sub = subscribe(&p, &t, format!("http://{addr}/ordered"), true).await;
    let sub = sub["id"].as_str().unwrap().to_owned();

    rx.stick("stuck", true);
    let stuck_1 = send(&p, &t, "stuck", 1).await[&sub].clone();
    let mut free = Vec::new();
    free.push(send(&p, &t, "free", 1).await[&sub].clone());
    let stuck_2 = send(&p, &t, "stuck", 2).await[&sub].clone();
    for n in 2..=4 {
        free.push(send(&p, &t, "free", n).await[&sub].clone());
    }
    // The free key goes through while the stuck key's first event keeps failing.
    until_all(&p, &t, &free, "delivered", 20).await;
    assert_eq!(ns(&rx.hits("/ordered", "free")), vec![1, 2, 3, 4]);
    let first = delivery(&p, &t, &stuck_1).await;
    assert_eq!(first["status"], "failed", "{first:#}");
    let second = delivery(&p, &t, &stuck_2).await;
    assert_eq!(second["status"], "pending");
    assert_eq!(
        second["attempts"],
        json!([]),
        "never attempted while 1 fails"
    );
    assert_eq!(second["ordering"]["after"], stuck_1.as_str());
    assert!(rx.hits("/ordered", "stuck").iter().all(|h| h.n == 1));

    // The endpoint recovers for that key: 1, then 2.
    rx.stick("stuck", false);
    until_all(&p, &t, &[stuck_1.clone(), stuck_2.clone()], "delivered", 20).await;
    let hits = rx.hits("/ordered", "stuck");
    let last_1 = hits.iter().rposition(|h| h.n == 1).unwrap();
    let first_2 = hits.iter().position(|h| h.n == 2).unwrap();
    assert!(last_1 < first_2, "{hits:#?}");
    assert_eq!(hits[last_1].status, 204);
    assert!(
        hits.iter().filter(|h| h.n == 1).count() >= 2,
        "1 was retried"
    );
    p.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dead_lettered_delivery_lets_the_next_of_its_key_go() {
    // Two attempts per delivery: the first event of the key is given up after the second.
    let p = platform("0,1").await;
    let (rx, addr) = Receiver::start().await;
    let t = p.token("tenant-dead", &[]);
    let sub = subscribe(&p, &t, format!("http://{addr}/ordered"), true).await;
    let sub = sub["id"].as_str().unwrap().to_owned();
    rx.refuse("/ordered", "k", 1, 100);
    let one = send(&p, &t, "k", 1).await[&sub].clone();
    let two = send(&p, &t, "k", 2).await[&sub].clone();
    until_all(&p, &t, std::slice::from_ref(&one), "dead_lettered", 20).await;
    until_all(&p, &t, std::slice::from_ref(&two), "delivered", 20).await;
    assert_eq!(ns(&rx.hits("/ordered", "k")), vec![1, 1, 2]);
    p.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_ordering_input_is_a_problem() {
    let p = platform("0").await;
    let t = p.token("tenant-bad", &[]);
    for key in [json!(""), json!("k".repeat(129)), json!("a\nb")] {
        let r = p
            .post(
                DELIVERIES,
                &t,
                json!({"eventType": "order.updated", "orderingKey": key, "payload": {}}),
            )
            .await;
        assert_problem(r, 400, "invalid_ordering_key").await;
    }
    let r = p
        .post(
            DELIVERIES,
            &t,
            json!({"eventType": "order.updated", "orderingKey": 7, "payload": {}}),
        )
        .await;
    assert_problem(r, 400, "invalid_body").await;
    let r = p
        .post(
            SUBSCRIPTIONS,
            &t,
            json!({"url": "http://127.0.0.1:9/x", "eventTypes": ["order.*"], "ordered": "yes"}),
        )
        .await;
    assert_problem(r, 400, "invalid_body").await;
    // 128 characters is a key.
    let r = p
        .post(
            DELIVERIES,
            &t,
            json!({"eventType": "order.updated", "orderingKey": "é".repeat(128), "payload": {}}),
        )
        .await;
    assert_eq!(r.status(), 202);
    p.shutdown().await;
}
