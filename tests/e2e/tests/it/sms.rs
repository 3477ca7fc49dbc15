//! The sms app end to end through the runner, on the integration kit with the Fake
//! provider: connections (secret to custody, live test), runs (idempotency, execution from
//! `runs-sms`, events on the bus), failover across a tenant's connections.

use std::time::Duration;

use app_context::EVENTS_TOPIC;
use ports::{BrokerReceiver as _, Entity, EntitySpec, Filter, SubscriptionSpec, Topology};
use serde_json::{Value, json};
use testkit::TestPlatform;

const WATCHER: &str = "test-watcher";

async fn start() -> TestPlatform {
    let platform = TestPlatform::start(
        &[registry::registration(), sms::registration()],
        json!({
            // Short timeouts and a quick breaker, so the failover scenarios run in seconds.
            "VENDOR_TIMEOUT_MS": "300",
            "VENDOR_DEADLINE_MS": "2000",
            "VENDOR_BREAKER_THRESHOLD": "2",
            "VENDOR_BREAKER_OPEN_MS": "60000",
            "RUN_MAX_ATTEMPTS": "2",
        }),
    )
    .await;
    // A subscription that sees every platform event from now on.
    platform
        .runner
        .broker
        .ensure_topology(&Topology::default().subscription(
            EVENTS_TOPIC,
            SubscriptionSpec {
                name: WATCHER.into(),
                filter: Filter::All,
                spec: EntitySpec::default(),
            },
        ))
        .await
        .expect("watcher subscription");
    platform
}

/// Events seen by the watcher so far: (type, subject).
async fn events(platform: &TestPlatform, seen: &mut Vec<(String, String)>) {
    let entity = Entity::subscription(EVENTS_TOPIC, WATCHER);
    loop {
        let batch = platform
            .runner
            .broker
            .receive(&entity, 100)
            .await
            .expect("receive");
        if batch.is_empty() {
            return;
        }
        for m in batch {
            let env = envelope::Envelope::parse(&m.message.body).expect("an envelope");
            seen.push((
                env.event_type().to_owned(),
                env.subject().unwrap_or_default().to_owned(),
            ));
            platform
                .runner
                .broker
                .complete(&entity, &m.lock_token)
                .await
                .expect("complete");
        }
    }
}

async fn wait_for_event(
    platform: &TestPlatform,
    seen: &mut Vec<(String, String)>,
    ty: &str,
    subject: &str,
) {
    for _ in 0..200 {
        events(platform, seen).await;
        // An empty subject matches any subject.
        if seen
            .iter()
            .any(|(t, s)| t == ty && (subject.is_empty() || s == subject))
        {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("no {ty} for {subject}; saw {seen:?}");
}

async fn connect(
    platform: &TestPlatform,
    token: &str,
    name: &str,
    config: Value,
    key: &str,
) -> reqwest::Response {
    platform
        .post(
            "/sms/api/integrations/connections",
            token,
            json!({
                "providerKey": "fake",
                "displayName": name,
                "config": config,
                "credential": {"kind": "apiKey", "apiKey": key},
            }),
        )
        .await
}

async fn start_run(
    platform: &TestPlatform,
    token: &str,
    connection: &str,
    to: &str,
    key: Option<&str>,
) -> reqwest::Response {
    let mut rb = platform
        .client
        .post(platform.url("/sms/api/integrations/runs"))
        .bearer_auth(token)
        .json(&json!({"connectionId": connection, "operation": "send", "input": {"to": to, "body": "hello"}}));
    if let Some(k) = key {
        rb = rb.header("Idempotency-Key", k);
    }
    rb.send().await.expect("answered")
}

/// The `runId` of a `POST /runs` answer.
async fn run_id(answer: reqwest::Response) -> String {
    answer.json::<Value>().await.unwrap()["runId"]
        .as_str()
        .expect("a runId")
        .to_owned()
}

/// Polls a run until it is over.
async fn finished(platform: &TestPlatform, token: &str, run: &str) -> Value {
    for _ in 0..400 {
        let v: Value = platform
            .get(&format!("/sms/api/integrations/runs/{run}"), token)
            .await
            .json()
            .await
            .expect("json");
        if ["succeeded", "failed", "dead_lettered"].contains(&v["status"].as_str().unwrap_or("")) {
            return v;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    panic!("run {run} did not finish");
}

/// Polls a run until its delivery state is `state` (for up to ten seconds); the run as read.
async fn delivery_reaches(platform: &TestPlatform, token: &str, run: &str, state: &str) -> Value {
    let mut seen = Value::Null;
    for _ in 0..200 {
        seen = platform
            .get(&format!("/sms/api/integrations/runs/{run}"), token)
            .await
            .json()
            .await
            .unwrap();
        if seen["delivery"]["state"] == state {
            return seen;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("the run's delivery never became {state}: {seen}");
}

#[tokio::test]
async fn connections_runs_idempotency_and_events() {
    // Every log line at every level, to check no secret is ever written.
    let logs = testkit::capture_logs();
    let platform = start().await;
    let token = platform.token("tenant-a", &[]);
    let mut seen = Vec::new();

    // A connection: the secret goes to custody and is never echoed.
    let r = connect(
        &platform,
        &token,
        "primary",
        json!({}),
        "sk-fake-top-secret-1",
    )
    .await;
    assert_eq!(r.status(), 201);
    let text = r.text().await.unwrap();
    assert!(
        !text.contains("sk-fake-top-secret-1"),
        "secret echoed: {text}"
    );
    let conn: Value = serde_json::from_str(&text).unwrap();
    assert_eq!(conn["status"], "established");
    let id = conn["id"].as_str().unwrap().to_owned();
    wait_for_event(
        &platform,
        &mut seen,
        "connectsoft.integration.connection.established.v1",
        &format!("connections/{id}"),
    )
    .await;
    // Another tenant cannot see it, nor run on it.
    let other = platform.token("tenant-b", &[]);
    assert_eq!(
        platform
            .get(&format!("/sms/api/integrations/connections/{id}"), &other)
            .await
            .status(),
        404
    );
    assert_eq!(
        start_run(&platform, &other, &id, "+972501234567", None)
            .await
            .status(),
        404
    );
    assert_eq!(
        platform
            .get(&format!("/sms/api/integrations/connections/{id}"), &token)
            .await
            .status(),
        200
    );

    // A vendor URL at an internal address is refused before anything is stored.
    let r = connect(
        &platform,
        &token,
        "metadata",
        json!({"baseUrl": "http://169.254.169.254"}),
        "sk-x",
    )
    .await;
    assert_eq!(r.status(), 400);
    let problem: Value = r.json().await.unwrap();
    assert_eq!(problem["code"], "url_refused");
    assert!(
        !problem["detail"].as_str().unwrap().contains("169.254"),
        "the address is not echoed: {problem}"
    );

    // A rejected key: the connection is saved as failed, a failure is recorded, 422.
    let r = connect(&platform, &token, "bad", json!({}), "rejected").await;
    assert_eq!(r.status(), 422);
    let problem: Value = r.json().await.unwrap();
    assert_eq!(problem["code"], "connection_test_failed");
    wait_for_event(
        &platform,
        &mut seen,
        "connectsoft.integration.failure.recorded.v1",
        "",
    )
    .await;

    // A run with an idempotency key: the same key answers the same run, once executed.
    let r = start_run(&platform, &token, &id, "+972501234567", Some("order-42")).await;
    assert_eq!(r.status(), 202);
    let run = r.json::<Value>().await.unwrap()["runId"]
        .as_str()
        .unwrap()
        .to_owned();
    let again = start_run(&platform, &token, &id, "+972501234567", Some("order-42")).await;
    assert_eq!(again.status(), 202);
    assert_eq!(again.json::<Value>().await.unwrap()["runId"], run.as_str());
    // The same key for a different request is refused.
    let reused = start_run(&platform, &token, &id, "+972509999999", Some("order-42")).await;
    assert_eq!(reused.status(), 422);
    let done = finished(&platform, &token, &run).await;
    assert_eq!(done["status"], "succeeded", "{done}");
    let message_id = done["outputSummary"]["messageId"].as_str().unwrap();
    assert!(message_id.starts_with("FK"));
    assert_eq!(
        sms::providers::fake::calls(&run),
        1,
        "one vendor call per key"
    );
    wait_for_event(
        &platform,
        &mut seen,
        "connectsoft.integration.run.completed.v1",
        &format!("runs/{run}"),
    )
    .await;

    // Many concurrent duplicates: one run, one vendor call.
    let requests =
        (0..8).map(|_| start_run(&platform, &token, &id, "+972501111111", Some("burst-1")));
    let answers = futures::future::join_all(requests).await;
    let mut runs = Vec::new();
    for a in answers {
        assert_eq!(a.status(), 202);
        runs.push(
            a.json::<Value>().await.unwrap()["runId"]
                .as_str()
                .unwrap()
                .to_owned(),
        );
    }
    runs.dedup();
    assert_eq!(runs.len(), 1, "one run for one key: {runs:?}");
    finished(&platform, &token, &runs[0]).await;
    assert_eq!(sms::providers::fake::calls(&runs[0]), 1);

    // A number the vendor refuses: the run fails with one classified failure.
    let r = start_run(
        &platform,
        &token,
        &id,
        sms::providers::fake::INVALID_NUMBER,
        None,
    )
    .await;
    let bad_run = r.json::<Value>().await.unwrap()["runId"]
        .as_str()
        .unwrap()
        .to_owned();
    let failed = finished(&platform, &token, &bad_run).await;
    assert_eq!(failed["status"], "failed");
    let failure_id = failed["failureId"].as_str().unwrap();
    let failure: Value = platform
        .get(
            &format!("/sms/api/integrations/failures/{failure_id}"),
            &token,
        )
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(failure["classification"], "validation");
    assert_eq!(failure["subject"]["id"], bad_run.as_str());
    assert_eq!(failure["vendorStatus"], 400);
    assert_eq!(
        platform
            .get(
                &format!("/sms/api/integrations/failures/{failure_id}"),
                &other
            )
            .await
            .status(),
        404,
        "another tenant's failure is not there"
    );
    let ledger: Value = platform
        .get("/sms/api/integrations/failures", &token)
        .await
        .json()
        .await
        .unwrap();
    // The rejected connection's test and the refused send.
    assert_eq!(ledger["items"].as_array().unwrap().len(), 2, "{ledger}");
    assert_eq!(
        sms::providers::fake::calls(&bad_run),
        1,
        "validation failures are not retried"
    );

    // Bad input never becomes a run.
    let r = platform
        .post("/sms/api/integrations/runs", &token, json!({"connectionId": id, "operation": "send", "input": {"to": "0501234567", "body": "x"}}))
        .await;
    assert_eq!(r.status(), 400);
    assert_eq!(r.json::<Value>().await.unwrap()["code"], "invalid_input");
    let r = platform
        .post(
            "/sms/api/integrations/runs",
            &token,
            json!({"connectionId": id, "operation": "fax", "input": {}}),
        )
        .await;
    assert_eq!(r.status(), 400);
    platform.shutdown().await;
    logs.assert_absent(&["sk-fake-top-secret-1"]);
}

#[tokio::test]
async fn sends_fail_over_when_the_primary_is_down_or_hangs() {
    let platform = start().await;
    let token = platform.token("tenant-f", &[]);
    let mut ids = Vec::new();
    for (name, mode, priority) in [
        ("down", "fail", 1),
        ("hangs", "timeout", 2),
        ("healthy", "ok", 3),
    ] {
        let r = connect(
            &platform,
            &token,
            name,
            json!({"mode": mode, "priority": priority}),
            &format!("sk-{name}"),
        )
        .await;
        assert_eq!(r.status(), 201);
        ids.push(
            r.json::<Value>().await.unwrap()["id"]
                .as_str()
                .unwrap()
                .to_owned(),
        );
    }
    let healthy = ids[2].clone();
    let mut runs = Vec::new();
    for i in 0..100 {
        // Half ask for the failing primary, half for the hanging one.
        let primary = &ids[i % 2];
        let r = start_run(&platform, &token, primary, "+972501234567", None).await;
        assert_eq!(r.status(), 202);
        runs.push(
            r.json::<Value>().await.unwrap()["runId"]
                .as_str()
                .unwrap()
                .to_owned(),
        );
    }
    let mut within_two_seconds = 0;
    let mut failed_over = 0;
    for run in &runs {
        let v = finished(&platform, &token, run).await;
        assert_eq!(v["status"], "succeeded", "{v}");
        assert_eq!(v["servedBy"], healthy.as_str());
        if !v["failovers"].as_array().unwrap().is_empty() {
            failed_over += 1;
        }
        let created =
            chrono::DateTime::parse_from_rfc3339(v["createdAt"].as_str().unwrap()).unwrap();
        let completed =
            chrono::DateTime::parse_from_rfc3339(v["completedAt"].as_str().unwrap()).unwrap();
        if completed - created <= chrono::Duration::seconds(2) {
            within_two_seconds += 1;
        }
    }
    assert!(failed_over >= 2, "the first sends met the broken providers");
    // The issue's goal: at least 99.9 % of sends accepted within 2 s while the primary is
    // down or hanging (the breakers open after two failures, then failover is immediate).
    assert!(
        within_two_seconds * 1000 >= runs.len() * 999,
        "{within_two_seconds} of {} within 2 s",
        runs.len()
    );
    platform.shutdown().await;
}

/// Credential rotation asks the sms app to re-test the connection with the new secret: the
/// Fake accepts any key but `rejected`, so one rotation is promoted and the next aborted.
#[tokio::test]
async fn rotation_retests_through_the_sms_app() {
    let platform = start().await;
    let token = platform.token("tenant-r", &[]);
    let r = connect(&platform, &token, "rotating", json!({}), "sk-first").await;
    assert_eq!(r.status(), 201);
    let credential = r.json::<Value>().await.unwrap()["credentialId"]
        .as_str()
        .unwrap()
        .to_owned();
    let rotate = |secret: &'static str| {
        let body = json!({"credentialId": credential, "secret": {"apiKey": secret}});
        let token = token.clone();
        let platform = &platform;
        async move {
            let r = platform
                .post(
                    "/registry/api/integrations/credentials/rotate",
                    &token,
                    body,
                )
                .await;
            assert_eq!(r.status(), 202);
            let id = r.json::<Value>().await.unwrap()["rotationId"]
                .as_str()
                .unwrap()
                .to_owned();
            platform.rotation_decided(&token, &id).await
        }
    };
    let promoted = rotate("sk-second").await;
    assert_eq!(
        (promoted["status"].as_str(), promoted["outcome"].as_str()),
        (Some("promoted"), Some("succeeded")),
        "{promoted}"
    );
    let aborted = rotate("rejected").await;
    assert_eq!(
        (aborted["status"].as_str(), aborted["outcome"].as_str()),
        (Some("aborted"), Some("failed")),
        "{aborted}"
    );
    assert!(
        !aborted.to_string().contains("rejected\""),
        "no secret in the rotation"
    );

    // A credential naming a connection this tenant does not have (another tenant's id, or
    // none at all) is refused as an unknown id.
    let other = platform.token("tenant-other", &[]);
    let r = connect(&platform, &other, "theirs", json!({}), "sk-theirs").await;
    assert_eq!(r.status(), 201);
    let theirs = r.json::<Value>().await.unwrap()["id"]
        .as_str()
        .unwrap()
        .to_owned();
    for named in [theirs.clone(), domain::ConnectionId::new().to_string()] {
        let r = platform
            .post(
                "/registry/api/integrations/credentials",
                &token,
                json!({"providerKey": "fake", "kind": "apiKey", "secret": {"apiKey": "sk-mine"},
                       "connectionId": named}),
            )
            .await;
        testkit::assert_problem(r, 404, "not_found").await;
    }
    // A connection whose creation never finished (its reservation, and no connection): the
    // credential was accepted, and its rotation fails the re-test instead of being
    // promoted untested.
    let unfinished = domain::ConnectionId::new();
    platform
        .runner
        .context
        .documents
        .batch(
            "sms",
            "tenant-r",
            vec![ports::WriteOp::create(
                app_context::commands::pending_connection_doc_id(&unfinished),
                json!({"docType": "pendingConnection"}),
            )],
        )
        .await
        .unwrap();
    let r = platform
        .post(
            "/registry/api/integrations/credentials",
            &token,
            json!({"providerKey": "fake", "kind": "apiKey", "secret": {"apiKey": "sk-mine"},
                   "connectionId": unfinished.to_string()}),
        )
        .await;
    assert_eq!(r.status(), 201);
    let stray = r.json::<Value>().await.unwrap()["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let r = platform
        .post(
            "/registry/api/integrations/credentials/rotate",
            &token,
            json!({"credentialId": stray, "secret": {"apiKey": "sk-mine-2"}}),
        )
        .await;
    assert_eq!(r.status(), 202);
    let id = r.json::<Value>().await.unwrap()["rotationId"]
        .as_str()
        .unwrap()
        .to_owned();
    let decided = platform.rotation_decided(&token, &id).await;
    assert_eq!(
        (decided["status"].as_str(), decided["outcome"].as_str()),
        (Some("aborted"), Some("failed")),
        "{decided}"
    );
    assert_eq!(
        decided["detail"],
        "the credential's connection does not exist"
    );
    platform.shutdown().await;
}

/// The Fake reports delivery like a carrier (`sent`, then `delivered`) to the app's
/// receipt URL; the run shows the normalised state. Forged receipts are refused.
#[tokio::test]
async fn delivery_receipts_reach_the_run() {
    let platform = start().await;
    let token = platform.token("tenant-d", &[]);
    let r = connect(
        &platform,
        &token,
        "reporting",
        json!({"deliveryReport": "delivered"}),
        "sk-receipts",
    )
    .await;
    assert_eq!(r.status(), 201);
    let connection = r.json::<Value>().await.unwrap()["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let run = run_id(start_run(&platform, &token, &connection, "+972501234567", None).await).await;
    let done = finished(&platform, &token, &run).await;
    let message_id = done["outputSummary"]["messageId"]
        .as_str()
        .unwrap()
        .to_owned();
    let delivered = delivery_reaches(&platform, &token, &run, "delivered").await;
    assert_eq!(
        delivered["delivery"]["receipts"].as_array().unwrap().len(),
        2
    );

    let path = format!("/sms/api/integrations/receipts/tenant-d/{connection}");
    // A late, repeated `sent` does not move the state back.
    let (body, signature) =
        sms::providers::fake::signed_receipt("sk-receipts", &message_id, "sent");
    let post = |body: Vec<u8>, signature: String, path: String| {
        platform
            .client
            .post(platform.url(&path))
            .header(sms::providers::fake::SIGNATURE_HEADER, signature)
            .body(body)
            .send()
    };
    assert_eq!(
        post(body, signature, path.clone()).await.unwrap().status(),
        204
    );
    let after: Value = platform
        .get(&format!("/sms/api/integrations/runs/{run}"), &token)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(after["delivery"]["state"], "delivered");
    // Signed with another key: refused, nothing changes.
    let (body, signature) =
        sms::providers::fake::signed_receipt("sk-forged", &message_id, "undelivered");
    assert_eq!(
        post(body, signature, path.clone()).await.unwrap().status(),
        401
    );
    // Another tenant's path: the connection is not there.
    let (body, signature) =
        sms::providers::fake::signed_receipt("sk-receipts", &message_id, "undelivered");
    assert_eq!(
        post(
            body,
            signature,
            format!("/sms/api/integrations/receipts/tenant-x/{connection}")
        )
        .await
        .unwrap()
        .status(),
        404
    );
    let after: Value = platform
        .get(&format!("/sms/api/integrations/runs/{run}"), &token)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(after["delivery"]["state"], "delivered");
    platform.shutdown().await;
}

/// The registry's rate-limit hints throttle calls before the vendor would: with one request
/// per second allowed, a burst of sends is spread out by run retries, and no call that the
/// limiter held back ever reached the vendor.
#[tokio::test]
async fn the_registry_rate_limit_hints_space_out_calls() {
    let platform = TestPlatform::start(
        &[registry::registration(), sms::registration()],
        json!({"VENDOR_MAX_RATE_WAIT_MS": "50", "RUN_MAX_ATTEMPTS": "10"}),
    )
    .await;
    // An operator registers the provider with its documented rate before anyone uses it.
    let operator = platform.token("ops", &["operator"]);
    let r = platform
        .post(
            "/registry/api/integrations/providers",
            &operator,
            json!({"key": "fake", "displayName": "Fake SMS", "category": "sms", "authScheme": "apiKey",
                   "baseUrl": "https://fake-sms.invalid", "rateLimitHints": {"requestsPerSecond": 1}}),
        )
        .await;
    assert_eq!(r.status(), 201);
    let token = platform.token("tenant-l", &[]);
    let r = connect(&platform, &token, "limited", json!({}), "sk-limited").await;
    let connection = r.json::<Value>().await.unwrap()["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let mut runs = Vec::new();
    for _ in 0..4 {
        let r = start_run(&platform, &token, &connection, "+972501234567", None).await;
        runs.push(
            r.json::<Value>().await.unwrap()["runId"]
                .as_str()
                .unwrap()
                .to_owned(),
        );
    }
    let mut held_back = 0;
    for run in &runs {
        let v = finished(&platform, &token, run).await;
        assert_eq!(v["status"], "succeeded", "{v}");
        let attempts = v["attempts"].as_array().unwrap();
        held_back += attempts
            .iter()
            .filter(|a| {
                a["error"]
                    .as_str()
                    .is_some_and(|e| e.contains("rate limit"))
            })
            .count();
        assert_eq!(
            sms::providers::fake::calls(run),
            1,
            "held-back attempts never call the vendor"
        );
    }
    assert!(
        held_back >= 1,
        "four sends in a burst at one per second: some waited"
    );
    platform.shutdown().await;
}

/// A faithful-enough 019 for the runner: `/api/test` (the connection test) and `/api` taking
/// sends (status 0) and `dlr` requests. A message's report is absent on the first `dlr`
/// request that asks about it, `-1` (sent, unconfirmed) on the second, `102` (delivered)
/// from the third on. Counts the `dlr` requests.
async fn fake_019() -> (String, std::sync::Arc<std::sync::Mutex<(Vec<String>, u32)>>) {
    use axum::Json;
    use axum::extract::State;
    type Shared = std::sync::Arc<std::sync::Mutex<(Vec<String>, u32)>>;
    async fn api(State(state): State<Shared>, Json(body): Json<Value>) -> Json<Value> {
        let mut state = state.lock().unwrap();
        if let Some(phone) = body["sms"]["destinations"]["phone"].get(0) {
            state
                .0
                .push(phone["id"].as_str().unwrap_or_default().to_owned());
            return Json(json!({"status": 0, "message": "SMS will be sent"}));
        }
        let Some(ids) = body["dlr"]["transactions"]["external_id"].as_array() else {
            return Json(json!({"status": 997, "message": "not a valid command"}));
        };
        state.1 += 1;
        let status = match state.1 {
            1 => None,
            2 => Some(-1),
            _ => Some(102),
        };
        let transactions: Vec<Value> = ids
            .iter()
            .filter(|id| state.0.iter().any(|s| Some(s.as_str()) == id.as_str()))
            .filter_map(|id| status.map(|s| json!({"external_id": id, "status": s})))
            .collect();
        Json(json!({"status": 0, "message": "", "transactions": transactions}))
    }
    async fn sandbox() -> Json<Value> {
        Json(json!({"status": 0, "message": "test ok"}))
    }
    let state: Shared = Default::default();
    let app = axum::Router::new()
        .route("/api", axum::routing::post(api))
        .route("/api/test", axum::routing::post(sandbox))
        .with_state(state.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://127.0.0.1:{}", listener.local_addr().unwrap().port());
    tokio::spawn(async move { axum::serve(listener, app).await });
    (base, state)
}

/// 019 pushes no signed receipts: the kit's `PollReceipts` timer asks 019 about every
/// message it sent, moves the run's delivery state as the reports come, and stops asking
/// once the state is final. A push to the receipt URL with the right code is taken too.
#[tokio::test]
async fn receipts_from_019_are_asked_for_until_final() {
    let (base, state) = fake_019().await;
    let platform = TestPlatform::start(
        &[registry::registration(), sms::registration()],
        json!({
            "OUTBOUND_ALLOWED_HOSTS": "127.0.0.1",
            "RECEIPTS_POLL_SCHEDULE": "*/1 * * * * *",
            "SMS_URL": "https://sms.example",
        }),
    )
    .await;
    let token = platform.token("tenant-n", &[]);
    let r = platform
        .post(
            "/sms/api/integrations/connections",
            &token,
            json!({
                "providerKey": "019",
                "displayName": "019 main",
                "config": {"baseUrl": base, "username": "myuser", "source": "MyBrand"},
                "credential": {"kind": "bearerToken", "token": "019-t0ken-e2e"},
            }),
        )
        .await;
    assert_eq!(r.status(), 201, "{}", r.text().await.unwrap());
    let connection = r.json::<Value>().await.unwrap()["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let run = run_id(start_run(&platform, &token, &connection, "+972501234567", None).await).await;
    let done = finished(&platform, &token, &run).await;
    assert_eq!(done["status"], "succeeded", "{done}");
    let seen = delivery_reaches(&platform, &token, &run, "delivered").await;
    let receipts: Vec<&str> = seen["delivery"]["receipts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["state"].as_str().unwrap())
        .collect();
    assert_eq!(receipts, ["sent", "delivered"], "{seen}");
    assert_eq!(seen["delivery"]["detail"], "102");
    // Final: 019 is not asked about it any more.
    let asked = state.lock().unwrap().1;
    tokio::time::sleep(Duration::from_millis(2500)).await;
    assert_eq!(
        state.lock().unwrap().1,
        asked,
        "no more dlr requests once delivered"
    );

    // A second message, reported by push before any poll could settle it.
    let run = run_id(start_run(&platform, &token, &connection, "+972501234568", None).await).await;
    finished(&platform, &token, &run).await;
    let id = state.lock().unwrap().0.last().cloned().unwrap();
    let code = integration_kit::receipt_code("019-t0ken-e2e");
    let push = |code: String, tenant: &str| {
        platform
            .client
            .post(platform.url(&format!(
                "/sms/api/integrations/receipts/{tenant}/{connection}?code={code}"
            )))
            .header("content-type", "application/x-www-form-urlencoded")
            .body(format!("external_id={id}&status=103&en_message=Expired"))
            .send()
    };
    assert_eq!(
        push("wrong".into(), "tenant-n").await.unwrap().status(),
        401
    );
    assert_eq!(push(code.clone(), "tenant-x").await.unwrap().status(), 404);
    assert_eq!(push(code, "tenant-n").await.unwrap().status(), 204);
    let after: Value = platform
        .get(&format!("/sms/api/integrations/runs/{run}"), &token)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(after["delivery"]["state"], "undelivered", "{after}");
    assert_eq!(after["delivery"]["detail"], "103: Expired");
    platform.shutdown().await;
}
