use std::time::{Duration, Instant};

use ports::{BrokerReceiver as _, Entity, EntitySpec, Filter, SubscriptionSpec, Topology};
use serde_json::{Value, json};
use testkit::{TestPlatform, assert_problem};

const SECRET: &str = "It's a Secret to Everybody";
const SOURCES: &str = "/webhook-gateway/api/webhooks/sources";

async fn platform() -> TestPlatform {
    let p = TestPlatform::start(
        &[registry::registration(), webhook_gateway::registration()],
        json!({}),
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

fn github_signature(body: &[u8]) -> String {
    testkit::github_signature(SECRET, body)
}

async fn deliver(
    p: &TestPlatform,
    url: &str,
    body: &[u8],
    delivery: &str,
    signature: Option<String>,
) -> reqwest::Response {
    let mut rb = p
        .client
        .post(url)
        .header("content-type", "application/json")
        .header("x-github-event", "push")
        .header("x-github-delivery", delivery)
        .body(body.to_vec());
    if let Some(sig) = signature {
        rb = rb.header("x-hub-signature-256", sig);
    }
    rb.send().await.unwrap()
}

/// The webhook events published, after waiting for `expected` of them and a moment more.
async fn received(p: &TestPlatform, expected: usize) -> Vec<envelope::Envelope> {
    let sub = Entity::subscription(app_context::EVENTS_TOPIC, "observer");
    let mut out = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        for m in p.runner.broker.receive(&sub, 100).await.unwrap() {
            let env = envelope::Envelope::parse(&m.message.body).unwrap();
            if env.event_type().contains("webhook.received") {
                out.push(env);
            }
            p.runner.broker.complete(&sub, &m.lock_token).await.unwrap();
        }
        if out.len() >= expected || Instant::now() > deadline {
            tokio::time::sleep(Duration::from_millis(700)).await;
            for m in p.runner.broker.receive(&sub, 100).await.unwrap() {
                let env = envelope::Envelope::parse(&m.message.body).unwrap();
                if env.event_type().contains("webhook.received") {
                    out.push(env);
                }
            }
            return out;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_signed_github_delivery_is_stored_and_published_once() {
    let p = platform().await;
    let t = p.token("tenant-w", &[]);
    let r = p
        .post(
            SOURCES,
            &t,
            json!({"provider": "github", "secret": SECRET, "description": "repo hooks"}),
        )
        .await;
    assert_eq!(r.status(), 201);
    let text = r.text().await.unwrap();
    assert!(!text.contains(SECRET), "the secret is never echoed");
    let source: Value = serde_json::from_str(&text).unwrap();
    let url = source["url"].as_str().unwrap().to_owned();
    assert!(
        url.starts_with(&p.url("/webhook-gateway/api/webhooks/inbound/src_")),
        "{url}"
    );

    // GitHub's published test vector, end to end.
    let body = b"Hello, World!";
    assert_eq!(
        github_signature(body),
        "sha256=757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17"
    );
    let r = deliver(
        &p,
        &url,
        body,
        "72d3162e-cc78-11e3-81ab-4c9367dc0958",
        Some(github_signature(body)),
    )
    .await;
    assert_eq!(r.status(), 202);
    // The vendor redelivers: acknowledged, not published again.
    let again = deliver(
        &p,
        &url,
        body,
        "72d3162e-cc78-11e3-81ab-4c9367dc0958",
        Some(github_signature(body)),
    )
    .await;
    assert_eq!(again.status(), 202);
    assert_eq!(again.json::<Value>().await.unwrap()["duplicate"], true);

    let events = received(&p, 1).await;
    assert_eq!(events.len(), 1, "one WebhookReceived for one delivery");
    let data: Value = events[0].data_json().unwrap();
    assert_eq!(
        data["vendorDeliveryId"],
        "72d3162e-cc78-11e3-81ab-4c9367dc0958"
    );
    assert_eq!(data["vendorEventType"], "push");
    assert_eq!(data["scheme"], "github");
    assert_eq!(events[0].tenant_id(), "tenant-w");
    // The raw body is in blob storage, byte for byte.
    let payload = data["payloadRef"].as_str().unwrap();
    let (container, name) = payload.split_once('/').unwrap();
    let (bytes, _) = p.runner.context.blobs.get(container, name).await.unwrap();
    assert_eq!(bytes.as_ref(), body);
    // Its subscribers read it through the payload route: `<tenant>/<source>/<key>`.
    let (_, source_and_key) = name.split_once('/').unwrap();
    let route = format!("/webhook-gateway/api/webhooks/payloads/{source_and_key}");
    let r = p.get(&route, &t).await;
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["content-type"], "application/json");
    assert_eq!(r.headers()["content-disposition"], "attachment");
    assert_eq!(r.headers()["x-content-type-options"], "nosniff");
    assert_eq!(r.bytes().await.unwrap().as_ref(), body);
    // Another tenant, an unknown key, a malformed one: 404 alike.
    let stranger = p.token("tenant-x", &[]);
    assert_problem(p.get(&route, &stranger).await, 404, "not_found").await;
    let unknown = format!("{}{}", &route[..route.len() - 64], "0".repeat(64));
    assert_problem(p.get(&unknown, &t).await, 404, "not_found").await;
    assert_problem(
        p.get(&format!("{}..%2F..", &route[..route.len() - 64]), &t)
            .await,
        404,
        "not_found",
    )
    .await;

    // The source is its tenant's.
    let id = source["id"].as_str().unwrap();
    assert_eq!(p.get(&format!("{SOURCES}/{id}"), &t).await.status(), 200);
    let other = p.token("tenant-x", &[]);
    assert_problem(
        p.get(&format!("{SOURCES}/{id}"), &other).await,
        404,
        "not_found",
    )
    .await;
    p.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refused_deliveries_leave_nothing_behind() {
    let p = platform().await;
    let t = p.token("tenant-r", &[]);
    let source: Value = p
        .post(SOURCES, &t, json!({"provider": "github", "secret": SECRET}))
        .await
        .json()
        .await
        .unwrap();
    let url = source["url"].as_str().unwrap().to_owned();
    let body = br#"{"action":"opened"}"#;
    let tampered = br#"{"action":"closed"}"#;
    assert_problem(
        deliver(&p, &url, tampered, "d-1", Some(github_signature(body))).await,
        401,
        "webhook_bad_signature",
    )
    .await;
    assert_problem(
        deliver(&p, &url, body, "d-2", None).await,
        401,
        "webhook_missing_header",
    )
    .await;
    let wrong = testkit::github_signature("another secret", body);
    assert_problem(
        deliver(&p, &url, body, "d-3", Some(wrong)).await,
        401,
        "webhook_bad_signature",
    )
    .await;
    let big = vec![b'x'; 1024 * 1024 + 1];
    assert_problem(
        deliver(&p, &url, &big, "d-4", Some(github_signature(&big))).await,
        413,
        "payload_too_large",
    )
    .await;
    let unknown =
        url.rsplit_once('/').unwrap().0.to_owned() + "/src_00000000000000000000000000000000";
    assert_problem(
        deliver(&p, &unknown, body, "d-5", Some(github_signature(body))).await,
        404,
        "not_found",
    )
    .await;
    assert!(received(&p, 0).await.is_empty(), "nothing was published");
    let blobs = p
        .runner
        .context
        .blobs
        .list(webhook_gateway::RAW_CONTAINER, "")
        .await
        .unwrap();
    assert!(blobs.is_empty(), "and nothing stored");
    p.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sources_validate_their_provider_options_and_secret() {
    let p = platform().await;
    let t = p.token("tenant-v", &[]);
    for (body, code) in [
        (
            json!({"provider": "myspace", "secret": "s"}),
            "unknown_provider",
        ),
        (
            json!({"provider": "standard-webhooks", "secret": "not-base64!"}),
            "invalid_secret",
        ),
        (
            json!({"provider": "stripe", "secret": "whsec_x", "options": {"toleranceSecs": "soon"}}),
            "invalid_options",
        ),
        (
            json!({"provider": "github", "secret": "s", "extra": 1}),
            "invalid_body",
        ),
        // Too short to sign anything.
        (json!({"provider": "github", "secret": "s"}), "weak_secret"),
        (
            json!({"provider": "generic-hmac", "secret": "fifteen-chars!!"}),
            "weak_secret",
        ),
        (
            json!({"provider": "standard-webhooks", "secret": "whsec_MDEyMzQ1Njc4OWFiY2RlZg=="}),
            "weak_secret",
        ),
        // Options the scheme does not have, misspelt or not.
        (
            json!({"provider": "stripe", "secret": "whsec_0123456789abcdef", "options": {"toleranceSec": 60}}),
            "invalid_options",
        ),
        (
            json!({"provider": "github", "secret": SECRET, "options": {"toleranceSecs": 60}}),
            "invalid_options",
        ),
        (
            json!({"provider": "github", "secret": SECRET, "options": {"kind": "stripe"}}),
            "invalid_options",
        ),
    ] {
        assert_problem(p.post(SOURCES, &t, body).await, 400, code).await;
    }
    assert_problem(
        p.send(
            "POST",
            SOURCES,
            None,
            Some(json!({"provider": "github", "secret": "s"})),
        )
        .await,
        401,
        "unauthenticated",
    )
    .await;
    // A Standard Webhooks source verifies that scheme's published vector.
    let secret = "whsec_C2FVsBQIhrscChlQIMV+b5sSYspob7oD";
    let source: Value = p
        .post(SOURCES, &t, json!({"provider": "standard-webhooks", "secret": secret, "options": {"toleranceSecs": 999999999}}))
        .await
        .json()
        .await
        .unwrap();
    let r = p
        .client
        .post(source["url"].as_str().unwrap())
        .header("webhook-id", "msg_27UH4WbU6Z5A5EzD8u03UvzRbpk")
        .header("webhook-timestamp", "1649367553")
        .header(
            "webhook-signature",
            "v1,tZ1I4/hDygAJgO5TYxiSd6Sd0kDW6hPenDe+bTa3Kkw=",
        )
        .body(r#"{"email":"test@example.com","username":"test_user"}"#)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 202);
    let data: Value = received(&p, 1).await[0].data_json().unwrap();
    assert_eq!(data["vendorDeliveryId"], "msg_27UH4WbU6Z5A5EzD8u03UvzRbpk");
    p.shutdown().await;
}

/// The CloudEvents abuse-protection handshake on the inbound route (declared `options`).
#[tokio::test]
async fn options_answers_the_cloudevents_handshake() {
    let p = platform().await;
    let r = p
        .client
        .request(
            reqwest::Method::OPTIONS,
            p.url("/webhook-gateway/api/webhooks/inbound/src_0123"),
        )
        .header("WebHook-Request-Origin", "eventgrid.azure.net")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["webhook-allowed-origin"], "eventgrid.azure.net");
    assert_eq!(r.headers()["webhook-allowed-rate"], "*");
    assert_eq!(r.headers()["allow"], "POST, OPTIONS");
}

/// Receipts (and the raw bodies they name) and deliveries are kept for the payload
/// retention and no longer: their documents carry it as their expiry; a retention that is not
/// a number of days from 1 to 3650 stops the app at start.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn records_expire_with_the_payload_retention() {
    let p = TestPlatform::start(
        &[registry::registration(), webhook_gateway::registration()],
        json!({"PAYLOAD_RETENTION_DAYS": "2", "OUTBOUND_ALLOWED_HOSTS": "127.0.0.1"}),
    )
    .await;
    let t = p.token("tenant-r", &[]);
    let source: Value = p
        .post(SOURCES, &t, json!({"provider": "github", "secret": SECRET}))
        .await
        .json()
        .await
        .unwrap();
    let body = b"{\"zen\":\"Keep it logically awesome.\"}";
    let r = deliver(
        &p,
        source["url"].as_str().unwrap(),
        body,
        "d-retention-1",
        Some(github_signature(body)),
    )
    .await;
    assert_eq!(r.status(), 202);
    let r = p
        .post(
            "/webhook-gateway/api/webhooks/subscriptions",
            &t,
            json!({"url": "http://127.0.0.1:9/none", "eventTypes": ["order.created"]}),
        )
        .await;
    assert_eq!(r.status(), 201);
    let r = p
        .post(
            "/webhook-gateway/api/webhooks/deliveries",
            &t,
            json!({"eventType": "order.created", "payload": {"n": 1}}),
        )
        .await;
    assert_eq!(r.status(), 202, "{}", r.text().await.unwrap());

    let db = rusqlite::Connection::open(p.dir().join("data").join("documents.db")).unwrap();
    let expiries = |pattern: &str| -> Vec<Option<i64>> {
        let mut stmt = db
            .prepare("SELECT expires_at FROM documents WHERE container = 'webhooks' AND id LIKE ?1")
            .unwrap();
        stmt.query_map([pattern], |row| row.get(0))
            .unwrap()
            .map(Result::unwrap)
            .collect()
    };
    let two_days = 2 * 24 * 3600 * 1000;
    let now = chrono::Utc::now().timestamp_millis();
    for pattern in ["received-%", "delivery-%"] {
        let found = expiries(pattern);
        assert!(!found.is_empty(), "no {pattern} document");
        for at in found {
            let at = at.unwrap_or_else(|| panic!("a {pattern} document never expires"));
            assert!(
                (at - now - two_days).abs() < 120_000,
                "{pattern} expires {} s from now",
                (at - now) / 1000
            );
        }
    }
    p.shutdown().await;

    for bad in ["0", "3651", "thirty"] {
        let refused = TestPlatform::try_start(
            &[registry::registration(), webhook_gateway::registration()],
            json!({"PAYLOAD_RETENTION_DAYS": bad}),
        )
        .await;
        let e = refused.err().unwrap_or_else(|| panic!("{bad} was taken"));
        assert!(
            format!("{e:#}").contains("PAYLOAD_RETENTION_DAYS"),
            "{bad}: {e:#}"
        );
    }
}

/// Adyen's notifications: signed per item with the hex key (the published example), answered
/// 200 `[accepted]` as Adyen requires, published once per `pspReference:eventCode:success`;
/// a changed item is 401, a key that is not hex is 400.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn adyen_notifications_are_verified_per_item_and_accepted() {
    let p = platform().await;
    let t = p.token("tenant-adyen", &[]);
    let key = "44782DEF547AAA06C910C43932B1EB0C71FC68D9D0C057550C48EC2ACF6BA056";
    let r = p
        .post(
            SOURCES,
            &t,
            json!({"provider": "adyen", "secret": "not-hex-but-long-enough"}),
        )
        .await;
    assert_problem(r, 400, "invalid_secret").await;
    let r = p
        .post(SOURCES, &t, json!({"provider": "adyen", "secret": key}))
        .await;
    assert_eq!(r.status(), 201, "{}", r.text().await.unwrap());
    let url = r.json::<Value>().await.unwrap()["url"]
        .as_str()
        .unwrap()
        .to_owned();
    let notification = |value: u64| {
        json!({"live": "false", "notificationItems": [{"NotificationRequestItem": {
            "eventCode": "AUTHORISATION", "success": "true", "pspReference": "7914073381342284",
            "originalReference": "", "merchantAccountCode": "TestMerchant",
            "merchantReference": "TestPayment-1407325143704",
            "amount": {"value": value, "currency": "EUR"},
            "additionalData": {"hmacSignature": "coqCmt/IZ4E3CzPvMY8zTjQVL5hYJUiBRg8UU+iCWo0="}}}]})
        .to_string()
    };
    let send = |body: String| {
        p.client
            .post(&url)
            .header("content-type", "application/json")
            .body(body)
            .send()
    };
    for _ in 0..2 {
        let r = send(notification(1130)).await.unwrap();
        assert_eq!(r.status(), 200);
        assert_eq!(r.text().await.unwrap(), "[accepted]");
    }
    let r = send(notification(1131)).await.unwrap();
    assert_eq!(r.status(), 401);
    let events = received(&p, 1).await;
    assert_eq!(
        events.len(),
        1,
        "one WebhookReceived for a redelivered notification"
    );
    let data: Value = events[0].data_json().unwrap();
    assert_eq!(
        data["vendorDeliveryId"],
        "7914073381342284:AUTHORISATION:true"
    );
    assert_eq!(data["vendorEventType"], "AUTHORISATION");
    assert_eq!(data["scheme"], "adyen");
    p.shutdown().await;
}
