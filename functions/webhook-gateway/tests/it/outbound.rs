//! Outbound webhooks end to end: subscriptions, fan-out, signed deliveries to a real local
//! receiver, retries, `Retry-After`, 410, dead-lettering, SSRF refusal, tenant isolation,
//! replay.

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use ports::{BrokerReceiver as _, Entity, EntitySpec, Filter, SubscriptionSpec, Topology};
use serde_json::{Value, json};
use testkit::{TestPlatform, assert_problem};

const SUBSCRIPTIONS: &str = "/webhook-gateway/api/webhooks/subscriptions";
const DELIVERIES: &str = "/webhook-gateway/api/webhooks/deliveries";

/// What the receiver answers to one request.
#[derive(Clone, Debug)]
enum Answer {
    Status(u16),
    /// 429 with `Retry-After: <secs>`.
    TooMany(u64),
    /// Sleeps this long, then 200.
    Sleep(Duration),
}

#[derive(Clone, Debug)]
struct Seen {
    path: String,
    headers: HeaderMap,
    body: Bytes,
    at: Instant,
}

#[derive(Clone, Default)]
struct Receiver {
    seen: Arc<Mutex<Vec<Seen>>>,
    script: Arc<Mutex<VecDeque<Answer>>>,
    /// What to answer once the script is used up (200 by default).
    then: Arc<Mutex<Option<Answer>>>,
}

async fn answer(
    State(r): State<Receiver>,
    uri: axum::http::Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    r.seen.lock().unwrap().push(Seen {
        path: uri.path().to_owned(),
        headers,
        body,
        at: Instant::now(),
    });
    let next = r.script.lock().unwrap().pop_front();
    let next = next.or_else(|| r.then.lock().unwrap().clone());
    match next {
        None => StatusCode::NO_CONTENT.into_response(),
        Some(Answer::Status(code)) => (
            StatusCode::from_u16(code).unwrap(),
            "upstream says no; token=abc123",
        )
            .into_response(),
        Some(Answer::TooMany(secs)) => (
            StatusCode::TOO_MANY_REQUESTS,
            [("retry-after", secs.to_string())],
            "slow down",
        )
            .into_response(),
        Some(Answer::Sleep(d)) => {
            tokio::time::sleep(d).await;
            StatusCode::NO_CONTENT.into_response()
        }
    }
}

impl Receiver {
    fn script(&self, answers: impl IntoIterator<Item = Answer>) {
        self.script.lock().unwrap().extend(answers);
    }

    fn then(&self, a: Option<Answer>) {
        *self.then.lock().unwrap() = a;
    }

    fn seen(&self) -> Vec<Seen> {
        self.seen.lock().unwrap().clone()
    }

    /// Serves on `addr` (port 0 for any).
    async fn serve_on(&self, addr: SocketAddr) -> SocketAddr {
        let listener = tokio::net::TcpListener::bind(addr).await.unwrap();
        let local = listener.local_addr().unwrap();
        let app = axum::Router::new()
            .fallback(answer)
            .with_state(self.clone());
        tokio::spawn(async move { axum::serve(listener, app).await });
        local
    }

    async fn start() -> (Receiver, SocketAddr) {
        let r = Receiver::default();
        let addr = r.serve_on("127.0.0.1:0".parse().unwrap()).await;
        (r, addr)
    }
}

async fn platform(extra: Value) -> TestPlatform {
    let mut values = json!({
        "OUTBOUND_ALLOWED_HOSTS": "127.0.0.1",
        "WEBHOOK_TIMEOUT_SECONDS": "1",
        "WEBHOOK_RETRY_SCHEDULE_SECONDS": "0,1,1,1,1,1,1,1,1,1",
    });
    for (k, v) in extra.as_object().unwrap() {
        if v.is_null() {
            values.as_object_mut().unwrap().remove(k);
        } else {
            values[k] = v.clone();
        }
    }
    let p = TestPlatform::start(
        &[registry::registration(), webhook_gateway::registration()],
        values,
    )
    .await;
    let observer = SubscriptionSpec {
        name: "observer".into(),
        filter: Filter::All,
        spec: EntitySpec::default(),
    };
    p.runner
        .broker
        .ensure_topology(&Topology::default().subscription(app_context::EVENTS_TOPIC, observer))
        .await
        .unwrap();
    p
}

async fn subscribe(p: &TestPlatform, t: &str, url: &str, types: &[&str]) -> Value {
    let r = p
        .post(
            SUBSCRIPTIONS,
            t,
            json!({"url": url, "eventTypes": types, "description": "test endpoint"}),
        )
        .await;
    assert_eq!(r.status(), 201, "{:?}", r.text().await);
    r.json().await.unwrap()
}

async fn send(p: &TestPlatform, t: &str, event_type: &str, payload: Value) -> Value {
    let r = p
        .post(
            DELIVERIES,
            t,
            json!({"eventType": event_type, "payload": payload}),
        )
        .await;
    assert_eq!(r.status(), 202);
    r.json().await.unwrap()
}

fn delivery_ids(sent: &Value) -> Vec<String> {
    sent["deliveries"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["id"].as_str().unwrap().to_owned())
        .collect()
}

/// Polls the delivery until its status is `status` (within `secs`).
async fn until_status(p: &TestPlatform, t: &str, id: &str, status: &str, secs: u64) -> Value {
    let deadline = Instant::now() + Duration::from_secs(secs);
    loop {
        let d = p.eventually(&format!("{DELIVERIES}/{id}"), t).await;
        if d["status"] == status {
            return d;
        }
        assert!(
            Instant::now() < deadline,
            "the delivery did not become {status}: {d:#}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// The events published so far, waiting until `done` holds for them (within 15 s).
async fn events_until(
    p: &TestPlatform,
    seen: &mut Vec<envelope::Envelope>,
    done: impl Fn(&[envelope::Envelope]) -> bool,
) {
    let sub = Entity::subscription(app_context::EVENTS_TOPIC, "observer");
    let deadline = Instant::now() + Duration::from_secs(15);
    while !done(seen) {
        assert!(Instant::now() < deadline, "events never came: {seen:?}");
        for m in p.runner.broker.receive(&sub, 100).await.unwrap() {
            seen.push(envelope::Envelope::parse(&m.message.body).unwrap());
            p.runner.broker.complete(&sub, &m.lock_token).await.unwrap();
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// The `IntegrationFailed` of a delivery.
fn failure_of<'e>(
    events: &'e [envelope::Envelope],
    delivery: &str,
) -> Option<&'e envelope::Envelope> {
    events.iter().find(|e| {
        e.event_type().contains("failure.recorded")
            && e.data_json::<Value>().unwrap()["subject"]
                == json!({"kind": "delivery", "id": delivery})
    })
}

fn has(events: &[envelope::Envelope], kind: &str, subject: &str) -> bool {
    events
        .iter()
        .any(|e| e.event_type().contains(kind) && e.subject() == Some(subject))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_delivery_is_signed_with_the_secret_shown_once_and_stays_with_its_tenant() {
    let logs = testkit::capture_logs();
    let (rx, addr) = Receiver::start().await;
    let p = platform(json!({})).await;
    let t = p.token("tenant-o", &[]);
    let sub = subscribe(&p, &t, &format!("http://{addr}/hooks"), &["order.*"]).await;
    let secret = sub["secret"].as_str().unwrap().to_owned();
    assert!(secret.starts_with("whsec_"), "{secret}");
    assert_eq!(sub["status"], "active");
    let sub_id = sub["id"].as_str().unwrap().to_owned();
    let shown = p.eventually(&format!("{SUBSCRIPTIONS}/{sub_id}"), &t).await;
    assert!(
        !shown.to_string().contains(&secret) && shown.get("secret").is_none(),
        "the secret is shown once: {shown}"
    );
    assert_eq!(shown["eventTypes"], json!(["order.*"]));

    let sent = send(
        &p,
        &t,
        "order.completed",
        json!({"runId": "run_1", "ok": true}),
    )
    .await;
    let ids = delivery_ids(&sent);
    assert_eq!(ids.len(), 1);
    let delivery = until_status(&p, &t, &ids[0], "delivered", 15).await;
    assert_eq!(delivery["subscriptionId"], sub_id.as_str());
    assert_eq!(delivery["attempts"].as_array().unwrap().len(), 1);
    assert_eq!(delivery["attempts"][0]["statusCode"], 204);
    assert!(delivery["attempts"][0]["latencyMs"].is_u64());

    let seen = rx.seen();
    assert_eq!(seen.len(), 1);
    let req = &seen[0];
    assert_eq!(req.path, "/hooks");
    // An independent implementation of Standard Webhooks accepts it with the shown secret.
    standardwebhooks::Webhook::new(&secret)
        .unwrap()
        .verify(&req.body, &req.headers)
        .expect("the signature verifies");
    assert_eq!(req.headers["webhook-id"], ids[0].as_str());
    assert!(
        req.headers["webhook-signature"]
            .to_str()
            .unwrap()
            .starts_with("v1,")
    );
    assert_eq!(req.headers["content-type"], "application/json");
    let body: Value = serde_json::from_slice(&req.body).unwrap();
    assert_eq!(body["type"], "order.completed");
    assert_eq!(body["data"], json!({"runId": "run_1", "ok": true}));
    assert!(body["timestamp"].is_string());
    // A wrong secret does not verify.
    let other = webhooks::outbound::generate_secret();
    assert!(
        standardwebhooks::Webhook::new(&other)
            .unwrap()
            .verify(&req.body, &req.headers)
            .is_err()
    );

    let mut events = Vec::new();
    events_until(&p, &mut events, |e| {
        has(e, "webhook.subscribed", &format!("subscriptions/{sub_id}"))
            && has(e, "webhook.delivered", &format!("deliveries/{}", ids[0]))
    })
    .await;

    // Another tenant sees none of it.
    let x = p.token("tenant-x", &[]);
    for path in [
        format!("{SUBSCRIPTIONS}/{sub_id}"),
        format!("{DELIVERIES}/{}", ids[0]),
    ] {
        assert_problem(p.get(&path, &x).await, 404, "not_found").await;
    }
    assert_problem(
        p.send(
            "DELETE",
            &format!("{SUBSCRIPTIONS}/{sub_id}"),
            Some(&x),
            None,
        )
        .await,
        404,
        "not_found",
    )
    .await;
    assert_problem(
        p.post(&format!("{DELIVERIES}/{}/replay", ids[0]), &x, json!({}))
            .await,
        404,
        "not_found",
    )
    .await;
    assert!(
        delivery_ids(&send(&p, &x, "order.completed", json!({})).await).is_empty(),
        "another tenant's events do not reach this tenant's subscriptions"
    );
    assert_eq!(
        p.get(&format!("{SUBSCRIPTIONS}/{sub_id}"), &t)
            .await
            .status(),
        200
    );
    // No token, no subscription.
    assert_problem(
        p.send("GET", &format!("{SUBSCRIPTIONS}/{sub_id}"), None, None)
            .await,
        401,
        "unauthenticated",
    )
    .await;
    logs.assert_absent(&[&secret]);
    p.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn event_type_filters_select_the_subscriptions() {
    let (rx, addr) = Receiver::start().await;
    let p = platform(json!({})).await;
    let t = p.token("tenant-f", &[]);
    let exact = subscribe(&p, &t, &format!("http://{addr}/exact"), &["order.created"]).await;
    let wild = subscribe(&p, &t, &format!("http://{addr}/wild"), &["order.*"]).await;
    let all = subscribe(&p, &t, &format!("http://{addr}/all"), &["*"]).await;
    let gone = subscribe(&p, &t, &format!("http://{addr}/gone"), &["order.created"]).await;
    let r = p
        .send(
            "DELETE",
            &format!("{SUBSCRIPTIONS}/{}", gone["id"].as_str().unwrap()),
            Some(&t),
            None,
        )
        .await;
    assert_eq!(r.status(), 204);
    let disabled = p
        .eventually(
            &format!("{SUBSCRIPTIONS}/{}", gone["id"].as_str().unwrap()),
            &t,
        )
        .await;
    assert_eq!(disabled["status"], "disabled");
    assert_eq!(disabled["disabledReason"], "requested");

    let targets = |sent: &Value| -> Vec<String> {
        let mut v: Vec<String> = sent["deliveries"]
            .as_array()
            .unwrap()
            .iter()
            .map(|d| d["subscriptionId"].as_str().unwrap().to_owned())
            .collect();
        v.sort();
        v
    };
    let sorted = |ids: &[&Value]| -> Vec<String> {
        let mut v: Vec<String> = ids
            .iter()
            .map(|s| s["id"].as_str().unwrap().to_owned())
            .collect();
        v.sort();
        v
    };
    let created = send(&p, &t, "order.created", json!({"n": 1})).await;
    assert_eq!(targets(&created), sorted(&[&exact, &wild, &all]));
    let late = send(&p, &t, "order.shipped.late", json!({"n": 2})).await;
    assert_eq!(targets(&late), sorted(&[&wild, &all]));
    let other = send(&p, &t, "invoice.paid", json!({"n": 3})).await;
    assert_eq!(targets(&other), sorted(&[&all]));
    let bare = send(&p, &t, "order", json!({"n": 4})).await;
    assert_eq!(
        targets(&bare),
        sorted(&[&all]),
        "order.* does not match order"
    );
    assert_problem(
        p.post(
            DELIVERIES,
            &t,
            json!({"eventType": "bad..name", "payload": {}}),
        )
        .await,
        400,
        "invalid_event_type",
    )
    .await;
    // The platform's own event names cannot be posted: subscribers trust them.
    for reserved in [
        "integration.run.completed",
        "Integration.Webhook.Received",
        "IntegrationFailed",
    ] {
        assert_problem(
            p.post(
                DELIVERIES,
                &t,
                json!({"eventType": reserved, "payload": {}}),
            )
            .await,
            400,
            "reserved_event_type",
        )
        .await;
    }

    for sent in [&created, &late, &other, &bare] {
        for id in delivery_ids(sent) {
            until_status(&p, &t, &id, "delivered", 15).await;
        }
    }
    // Platform events reach subscribers too: `*` also gets the `integration.webhook.disabled`
    // of the deleted subscription, through the bus (so perhaps a moment later).
    let deadline = Instant::now() + Duration::from_secs(10);
    while rx.seen().len() < 8 && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let mut paths: Vec<String> = rx.seen().into_iter().map(|s| s.path).collect();
    paths.sort();
    assert_eq!(
        paths,
        [
            "/all", "/all", "/all", "/all", "/all", "/exact", "/wild", "/wild"
        ]
    );
    let types: Vec<Value> = rx
        .seen()
        .iter()
        .map(|s| serde_json::from_slice::<Value>(&s.body).unwrap()["type"].clone())
        .collect();
    assert!(
        types.contains(&json!("integration.webhook.disabled")),
        "{types:?}"
    );
    p.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_endpoint_gets_the_same_webhook_id_until_it_recovers() {
    // A port with nothing listening on it yet: the endpoint is down.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let addr: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
    let p = platform(json!({})).await;
    let t = p.token("tenant-r", &[]);
    let sub = subscribe(&p, &t, &format!("http://{addr}/flaky"), &["order.*"]).await;
    let secret = sub["secret"].as_str().unwrap().to_owned();
    let sent = send(&p, &t, "order.created", json!({"n": 1})).await;
    let id = delivery_ids(&sent).remove(0);
    // Down until the first failed attempt is recorded, then up: a 500, then slower than the
    // timeout (1 s), then fine.
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let d = p.eventually(&format!("{DELIVERIES}/{id}"), &t).await;
        if !d["attempts"].as_array().unwrap().is_empty() {
            assert_eq!(d["status"], "failed");
            assert!(d["nextAttemptAt"].is_string());
            break;
        }
        assert!(Instant::now() < deadline, "no attempt while down: {d:#}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let rx = Receiver::default();
    rx.script([
        Answer::Status(500),
        Answer::Sleep(Duration::from_millis(2500)),
    ]);
    rx.serve_on(addr).await;

    let d = until_status(&p, &t, &id, "delivered", 30).await;
    let attempts = d["attempts"].as_array().unwrap();
    let codes: Vec<Value> = attempts.iter().map(|a| a["statusCode"].clone()).collect();
    let seen = rx.seen();
    // Every request that reached the receiver is an attempt; the ones before it listened
    // are attempts without a status.
    assert_eq!(seen.len(), 3, "500, timeout, 200");
    assert!(attempts.len() > 3, "at least one attempt while down: {d:#}");
    let tail: Vec<Value> = codes[codes.len() - 3..].to_vec();
    assert_eq!(tail, vec![json!(500), Value::Null, json!(204)], "{d:#}");
    assert!(codes[..codes.len() - 3].iter().all(Value::is_null));
    let errors: Vec<String> = attempts
        .iter()
        .map(|a| a["error"].as_str().unwrap_or_default().to_owned())
        .collect();
    assert!(
        !errors[0].is_empty(),
        "a connection error is recorded: {errors:?}"
    );
    let n = errors.len();
    assert!(errors[n - 3].starts_with("HTTP 500"), "{errors:?}");
    assert!(
        !errors[n - 3].contains("abc123"),
        "error text is redacted: {errors:?}"
    );
    assert!(errors[n - 2].contains("no answer within"), "{errors:?}");
    assert!(errors[n - 1].is_empty());
    for (i, a) in attempts.iter().enumerate() {
        assert_eq!(a["number"], i + 1);
        assert_eq!(a["cycle"], 1);
        assert!(a["at"].is_string());
    }
    let wh = standardwebhooks::Webhook::new(&secret).unwrap();
    for s in &seen {
        assert_eq!(
            s.headers["webhook-id"],
            id.as_str(),
            "stable across retries"
        );
        wh.verify(&s.body, &s.headers).expect("every try is signed");
    }
    assert_eq!(seen[0].body, seen[2].body, "the same bytes on every try");
    p.shutdown().await;
}

/// A small payload travels on the delivery's document, a large one through blob storage;
/// either way every attempt sends (and signs) the same bytes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn small_payloads_stay_on_the_delivery_and_large_ones_go_to_blob_storage() {
    let (rx, addr) = Receiver::start().await;
    let p = platform(json!({})).await;
    let t = p.token("tenant-pl", &[]);
    let sub = subscribe(&p, &t, &format!("http://{addr}/p"), &["order.*"]).await;
    let wh = standardwebhooks::Webhook::new(sub["secret"].as_str().unwrap()).unwrap();
    let large_text = "x".repeat(webhook_gateway::outbound::INLINE_PAYLOAD_LIMIT + 1);
    // One after the other, each failing once before it succeeds.
    let mut ids = Vec::new();
    for (event_type, payload) in [
        ("order.small", json!({"n": 1})),
        ("order.large", json!({"text": large_text})),
    ] {
        rx.script([Answer::Status(500)]);
        let id = delivery_ids(&send(&p, &t, event_type, payload).await).remove(0);
        let d = until_status(&p, &t, &id, "delivered", 15).await;
        assert_eq!(d["attempts"].as_array().unwrap().len(), 2, "{d:#}");
        ids.push(id);
    }
    let (small, large) = (ids[0].clone(), ids[1].clone());
    let seen = rx.seen();
    for id in [&small, &large] {
        let tries: Vec<&Seen> = seen
            .iter()
            .filter(|s| s.headers["webhook-id"] == id.as_str())
            .collect();
        assert_eq!(tries.len(), 2);
        assert_eq!(tries[0].body, tries[1].body, "the same bytes on every try");
        for s in &tries {
            wh.verify(&s.body, &s.headers).expect("signed");
        }
    }
    let body = |id: &str| -> Value {
        let s = seen.iter().find(|s| s.headers["webhook-id"] == id).unwrap();
        serde_json::from_slice(&s.body).unwrap()
    };
    assert_eq!(body(&small)["data"], json!({"n": 1}));
    assert_eq!(body(&large)["data"]["text"], large_text.as_str());
    // Only the large payload has a blob.
    let blobs = p
        .runner
        .context
        .blobs
        .list(webhook_gateway::outbound::OUTBOUND_CONTAINER, "tenant-pl/")
        .await
        .unwrap();
    assert_eq!(blobs.len(), 1, "{blobs:?}");
    p.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retry_after_delays_the_retry() {
    let (rx, addr) = Receiver::start().await;
    // The schedule would retry at once; the endpoint asks for a second.
    let p = platform(json!({"WEBHOOK_RETRY_SCHEDULE_SECONDS": "0,0,0"})).await;
    let t = p.token("tenant-a", &[]);
    rx.script([Answer::TooMany(1)]);
    subscribe(&p, &t, &format!("http://{addr}/slow"), &["*"]).await;
    let id = delivery_ids(&send(&p, &t, "order.created", json!({})).await).remove(0);
    let d = until_status(&p, &t, &id, "delivered", 15).await;
    let codes: Vec<Value> = d["attempts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["statusCode"].clone())
        .collect();
    assert_eq!(codes, vec![json!(429), json!(204)]);
    let seen = rx.seen();
    let gap = seen[1].at - seen[0].at;
    assert!(gap >= Duration::from_millis(950), "retried after {gap:?}");
    p.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gone_disables_the_subscription() {
    let (rx, addr) = Receiver::start().await;
    let p = platform(json!({})).await;
    let t = p.token("tenant-g", &[]);
    rx.script([Answer::Status(410)]);
    let sub = subscribe(&p, &t, &format!("http://{addr}/gone"), &["*"]).await;
    let sub_id = sub["id"].as_str().unwrap();
    let id = delivery_ids(&send(&p, &t, "order.created", json!({})).await).remove(0);
    let d = until_status(&p, &t, &id, "dead_lettered", 15).await;
    assert_eq!(
        d["attempts"].as_array().unwrap().len(),
        1,
        "no retry after 410"
    );
    assert_eq!(d["attempts"][0]["statusCode"], 410);
    assert!(d["failureId"].is_string());
    let s = p.eventually(&format!("{SUBSCRIPTIONS}/{sub_id}"), &t).await;
    assert_eq!(s["status"], "disabled");
    assert_eq!(s["disabledReason"], "endpoint_gone");
    let mut events = Vec::new();
    events_until(&p, &mut events, |e| {
        has(e, "webhook.disabled", &format!("subscriptions/{sub_id}"))
            && failure_of(e, &id).is_some()
    })
    .await;
    // Nothing more goes to it, and its deliveries cannot be replayed.
    assert!(delivery_ids(&send(&p, &t, "order.created", json!({})).await).is_empty());
    assert_problem(
        p.post(&format!("{DELIVERIES}/{id}/replay"), &t, json!({}))
            .await,
        409,
        "conflict",
    )
    .await;
    assert_eq!(rx.seen().len(), 1);
    p.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn exhausted_retries_dead_letter_with_a_failure_and_replay_sends_again() {
    let (rx, addr) = Receiver::start().await;
    let p = platform(json!({"WEBHOOK_RETRY_SCHEDULE_SECONDS": "0,1,1"})).await;
    let t = p.token("tenant-e", &[]);
    rx.then(Some(Answer::Status(503)));
    let sub = subscribe(&p, &t, &format!("http://{addr}/down"), &["*"]).await;
    let secret = sub["secret"].as_str().unwrap().to_owned();
    let id = delivery_ids(&send(&p, &t, "order.created", json!({"n": 1})).await).remove(0);
    let d = until_status(&p, &t, &id, "dead_lettered", 20).await;
    let attempts = d["attempts"].as_array().unwrap();
    assert_eq!(attempts.len(), 3, "the schedule's three attempts: {d:#}");
    assert!(attempts.iter().all(|a| a["statusCode"] == 503));
    let failure_id = d["failureId"].as_str().unwrap().to_owned();
    let mut events = Vec::new();
    events_until(&p, &mut events, |e| failure_of(e, &id).is_some()).await;
    let failed = failure_of(&events, &id).unwrap();
    let data: Value = failed.data_json().unwrap();
    assert_eq!(data["failureId"], failure_id.as_str());
    assert_eq!(data["classification"], "transient");
    assert_eq!(data["vendorStatus"], 503);
    assert_eq!(data["deadLettered"], true);
    assert_eq!(failed.tenant_id(), "tenant-e");
    // The subscription's streak shows it.
    let s = p
        .eventually(
            &format!("{SUBSCRIPTIONS}/{}", sub["id"].as_str().unwrap()),
            &t,
        )
        .await;
    assert_eq!(s["failureStreak"], 3);
    assert_eq!(s["status"], "active");

    // The endpoint is fixed; replay: a new cycle, the same webhook-id.
    rx.then(None);
    let r = p
        .post(&format!("{DELIVERIES}/{id}/replay"), &t, json!({}))
        .await;
    assert_eq!(r.status(), 202);
    let d = until_status(&p, &t, &id, "delivered", 15).await;
    assert_eq!(d["cycle"], 2);
    let attempts = d["attempts"].as_array().unwrap();
    assert_eq!(attempts.len(), 4);
    assert_eq!(attempts[3]["cycle"], 2);
    assert_eq!(attempts[3]["statusCode"], 204);
    let seen = rx.seen();
    assert_eq!(seen.len(), 4);
    let wh = standardwebhooks::Webhook::new(&secret).unwrap();
    for s in &seen {
        assert_eq!(s.headers["webhook-id"], id.as_str());
        wh.verify(&s.body, &s.headers).unwrap();
    }
    // Delivered: a second replay is a new cycle again; an in-flight one is refused.
    let r = p
        .post(&format!("{DELIVERIES}/{id}/replay"), &t, json!({}))
        .await;
    assert_eq!(r.status(), 202);
    let again = p
        .post(&format!("{DELIVERIES}/{id}/replay"), &t, json!({}))
        .await;
    if again.status() != 202 {
        // Still in flight (the usual case): refused.
        assert_problem(again, 409, "conflict").await;
    }
    let s = p
        .eventually(
            &format!("{SUBSCRIPTIONS}/{}", sub["id"].as_str().unwrap()),
            &t,
        )
        .await;
    assert_eq!(s["failureStreak"], 0, "a success ends the streak");
    p.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_endpoint_failing_for_too_long_is_disabled() {
    let (rx, addr) = Receiver::start().await;
    let p = platform(json!({"WEBHOOK_DISABLE_AFTER_SECONDS": "1"})).await;
    let t = p.token("tenant-d", &[]);
    rx.then(Some(Answer::TooMany(2)));
    let sub = subscribe(&p, &t, &format!("http://{addr}/busy"), &["*"]).await;
    let sub_id = sub["id"].as_str().unwrap();
    let id = delivery_ids(&send(&p, &t, "order.created", json!({})).await).remove(0);
    let d = until_status(&p, &t, &id, "dead_lettered", 20).await;
    assert_eq!(
        d["attempts"].as_array().unwrap().len(),
        2,
        "the second failure, 2 s after the first, is past the 1 s allowed: {d:#}"
    );
    let s = p.eventually(&format!("{SUBSCRIPTIONS}/{sub_id}"), &t).await;
    assert_eq!(s["status"], "disabled");
    assert_eq!(s["disabledReason"], "failing_too_long");
    let mut events = Vec::new();
    events_until(&p, &mut events, |e| {
        has(e, "webhook.disabled", &format!("subscriptions/{sub_id}"))
            && failure_of(e, &id).is_some()
    })
    .await;
    let failed = failure_of(&events, &id).unwrap();
    assert_eq!(
        failed.data_json::<Value>().unwrap()["classification"],
        "rate_limited"
    );
    p.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn internal_addresses_are_refused() {
    let (rx, addr) = Receiver::start().await;
    // No exception for loopback this time.
    let p = platform(json!({"OUTBOUND_ALLOWED_HOSTS": null})).await;
    let t = p.token("tenant-s", &[]);
    for url in [
        format!("http://{addr}/hook"),
        "http://169.254.169.254/latest/meta-data".to_owned(),
        "http://10.0.0.7/hook".to_owned(),
        "http://[::1]:8080/hook".to_owned(),
    ] {
        assert_problem(
            p.post(SUBSCRIPTIONS, &t, json!({"url": url, "eventTypes": ["*"]}))
                .await,
            400,
            "url_refused",
        )
        .await;
    }
    for (url, code) in [
        ("ftp://example.com/x", "invalid_url"),
        ("http://user:pw@example.com/x", "invalid_url"),
    ] {
        assert_problem(
            p.post(SUBSCRIPTIONS, &t, json!({"url": url, "eventTypes": ["*"]}))
                .await,
            400,
            code,
        )
        .await;
    }
    assert_problem(
        p.post(
            SUBSCRIPTIONS,
            &t,
            json!({"url": "https://example.com/x", "eventTypes": []}),
        )
        .await,
        400,
        "invalid_event_types",
    )
    .await;
    // A name is checked where it is used: `localhost` resolves to loopback, so the
    // connection is refused and the delivery is dead-lettered without reaching anyone.
    let sub = subscribe(
        &p,
        &t,
        &format!("http://localhost:{}/hook", addr.port()),
        &["*"],
    )
    .await;
    assert_eq!(sub["status"], "active");
    let id = delivery_ids(&send(&p, &t, "order.created", json!({})).await).remove(0);
    let d = until_status(&p, &t, &id, "dead_lettered", 15).await;
    assert_eq!(d["attempts"].as_array().unwrap().len(), 1, "not retried");
    assert!(d["attempts"][0]["statusCode"].is_null());
    let mut events = Vec::new();
    events_until(&p, &mut events, |e| failure_of(e, &id).is_some()).await;
    assert!(rx.seen().is_empty(), "the receiver was never called");
    p.shutdown().await;

    // In production, endpoints must be https.
    let p = platform(json!({"AZURE_FUNCTIONS_ENVIRONMENT": "Production"})).await;
    let t = p.token("tenant-s", &[]);
    assert_problem(
        p.post(
            SUBSCRIPTIONS,
            &t,
            json!({"url": format!("http://{addr}/hook"), "eventTypes": ["*"]}),
        )
        .await,
        400,
        "https_required",
    )
    .await;
    p.shutdown().await;
}

/// The whole path: a signed GitHub delivery in → verified, stored, `WebhookReceived` on the
/// bus → fanned out to a tenant's subscription → delivered to a real receiver, whose
/// signature the independent `standardwebhooks` crate verifies. A vendor's redelivery makes
/// no second outbound delivery.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_verified_inbound_delivery_reaches_subscribers_signed() {
    let p = platform(json!({})).await;
    let t = p.token("tenant-e2e", &[]);
    let (rx, addr) = Receiver::start().await;
    let sub = subscribe(
        &p,
        &t,
        &format!("http://{addr}/hooks"),
        &["integration.webhook.received"],
    )
    .await;
    let secret = sub["secret"].as_str().unwrap().to_owned();
    let source: Value = p
        .post(
            "/webhook-gateway/api/webhooks/sources",
            &t,
            json!({"provider": "github", "secret": "gh-e2e-secret-0123456789"}),
        )
        .await
        .json()
        .await
        .unwrap();
    let body = br#"{"action":"opened","number":7}"#;
    let sig = testkit::github_signature("gh-e2e-secret-0123456789", body);
    for _ in 0..2 {
        let r = p
            .client
            .post(source["url"].as_str().unwrap())
            .header("content-type", "application/json")
            .header("x-github-event", "pull_request")
            .header("x-github-delivery", "gh-e2e-1")
            .header("x-hub-signature-256", &sig)
            .body(body.to_vec())
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 202);
    }
    let deadline = Instant::now() + Duration::from_secs(15);
    while rx.seen().is_empty() {
        assert!(Instant::now() < deadline, "the subscriber was not called");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let seen = rx.seen();
    let types: Vec<Value> = seen
        .iter()
        .map(|r| serde_json::from_slice::<Value>(&r.body).unwrap()["type"].clone())
        .collect();
    assert_eq!(
        seen.len(),
        1,
        "one delivery for one vendor delivery, redelivery included: {types:?}"
    );
    standardwebhooks::Webhook::new(&secret)
        .unwrap()
        .verify(&seen[0].body, &seen[0].headers)
        .expect("the subscriber verifies the signature independently");
    let sent: Value = serde_json::from_slice(&seen[0].body).unwrap();
    assert_eq!(sent["type"], "integration.webhook.received");
    assert_eq!(sent["data"]["vendorDeliveryId"], "gh-e2e-1");
    assert_eq!(sent["data"]["vendorEventType"], "pull_request");

    // The bus delivers the same event again (as after a settlement lost in a crash): the
    // fan-out finds its delivery made already, and the endpoint is not called a second time.
    let observer = Entity::subscription(app_context::EVENTS_TOPIC, "observer");
    let received = loop {
        let got = p.runner.broker.receive(&observer, 100).await.unwrap();
        let found = got.iter().find(|m| {
            envelope::Envelope::parse(&m.message.body)
                .unwrap()
                .event_type()
                .contains("webhook.received")
        });
        if let Some(m) = found {
            break m.message.clone();
        }
        assert!(Instant::now() < deadline, "no WebhookReceived on the bus");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    let mut again = received;
    again.message_id = format!("{}-again", again.message_id);
    p.runner
        .context
        .bus
        .send(app_context::EVENTS_TOPIC, vec![again])
        .await
        .unwrap();
    let fan_out = Entity::subscription(app_context::EVENTS_TOPIC, webhook_gateway::SLUG);
    let deadline = Instant::now() + Duration::from_secs(15);
    tokio::time::sleep(Duration::from_millis(200)).await;
    while p.runner.broker.active_count(&fan_out).await.unwrap() > 0 {
        assert!(Instant::now() < deadline, "the fan-out never took the copy");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    tokio::time::sleep(Duration::from_millis(1000)).await;
    assert_eq!(rx.seen().len(), 1, "the copy made no second delivery");
    p.shutdown().await;
}

/// One dead endpoint never slows the others: after `WEBHOOK_BREAKER_THRESHOLD` failures in a
/// row its breaker opens and its deliveries are held back (not attempted, not counted),
/// while a healthy endpoint of the same tenant gets everything at once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_open_breaker_holds_a_dead_endpoint_back_without_slowing_others() {
    let (dead, dead_addr) = Receiver::start().await;
    dead.then(Some(Answer::Status(500)));
    let (healthy, healthy_addr) = Receiver::start().await;
    let p = platform(json!({
        "WEBHOOK_BREAKER_THRESHOLD": "2",
        "WEBHOOK_BREAKER_OPEN_SECONDS": "60",
        "WEBHOOK_RETRY_SCHEDULE_SECONDS": "0,0,0,0,0,0",
    }))
    .await;
    let t = p.token("tenant-cb", &[]);
    subscribe(&p, &t, &format!("http://{dead_addr}/dead"), &["order.*"]).await;
    subscribe(&p, &t, &format!("http://{healthy_addr}/ok"), &["order.*"]).await;
    let start = Instant::now();
    for n in 0..5 {
        send(&p, &t, "order.created", json!({"n": n})).await;
    }
    while healthy.seen().len() < 5 {
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "the healthy endpoint was slowed"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let calls = dead.seen().len();
    // Without a breaker: 5 events × 6 attempts. With it: the threshold, plus whatever was
    // already in flight when it opened (at most the four concurrent invocations).
    assert!(
        (2..=6).contains(&calls),
        "the dead endpoint was called {calls} times"
    );
    p.shutdown().await;
}

/// A subscription's rate limit spaces its deliveries instead of dropping them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rate_limit_spaces_deliveries() {
    let (rx, addr) = Receiver::start().await;
    let p = platform(json!({})).await;
    let t = p.token("tenant-rl", &[]);
    let r = p
        .post(SUBSCRIPTIONS, &t, json!({"url": format!("http://{addr}/slow"), "eventTypes": ["order.*"], "rateLimitPerSecond": 2}))
        .await;
    assert_eq!(r.status(), 201);
    assert_eq!(r.json::<Value>().await.unwrap()["rateLimitPerSecond"], 2);
    let bad = p.post(SUBSCRIPTIONS, &t, json!({"url": format!("http://{addr}/x"), "eventTypes": ["*"], "rateLimitPerSecond": 0})).await;
    assert_problem(bad, 400, "invalid_rate_limit").await;
    for n in 0..6 {
        send(&p, &t, "order.created", json!({"n": n})).await;
    }
    let deadline = Instant::now() + Duration::from_secs(20);
    while rx.seen().len() < 6 {
        assert!(Instant::now() < deadline, "not everything was delivered");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let seen = rx.seen();
    let first = seen.iter().map(|s| s.at).min().unwrap();
    let last = seen.iter().map(|s| s.at).max().unwrap();
    // Six deliveries at two per second: at least 2.5 s from the first to the last.
    assert!(
        last - first >= Duration::from_millis(2300),
        "spread over {:?}",
        last - first
    );
    p.shutdown().await;
}

/// Refusals name the field the caller sent and count in the right unit.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refusals_name_the_field_and_the_unit() {
    let p = platform(json!({})).await;
    let t = p.token("tenant-words", &[]);
    let problem = assert_problem(
        p.post(
            SUBSCRIPTIONS,
            &t,
            json!({"url": "http://127.0.0.1:9/x", "eventTypes": ["a.b"], "description": "d".repeat(201)}),
        )
        .await,
        400,
        "invalid_description",
    )
    .await;
    assert_eq!(
        problem["detail"],
        "description must be at most 200 characters, got 201"
    );
    let many: Vec<String> = (0..65).map(|i| format!("e.{i}")).collect();
    let problem = assert_problem(
        p.post(
            SUBSCRIPTIONS,
            &t,
            json!({"url": "http://127.0.0.1:9/x", "eventTypes": many}),
        )
        .await,
        400,
        "invalid_event_types",
    )
    .await;
    assert!(
        problem["detail"]
            .as_str()
            .unwrap()
            .contains("at most 64 entries, got 65"),
        "{problem}"
    );
    // The platform's crm and support event names are reserved too.
    assert_problem(
        p.post(
            DELIVERIES,
            &t,
            json!({"eventType": "support.ticket.changed", "payload": {}}),
        )
        .await,
        400,
        "reserved_event_type",
    )
    .await;
    p.shutdown().await;
}
