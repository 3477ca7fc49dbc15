//! The crm app end to end through the runner: a HubSpot connection against a fake HubSpot
//! over real HTTP (contacts and deals upserted, a repeated `Idempotency-Key` answered with
//! the same run and no second vendor call), events through the Fake, and HubSpot's signed v3
//! webhook through the gateway's `hubspot` source, published as `crm.contact.changed` to a
//! subscription. Another tenant gets 404.

use std::sync::{Arc, Mutex};

use base64::Engine as _;
use hmac::Mac as _;
use integration_kit::testing::{FakeVendor, Reply};
use serde_json::{Value, json};
use testkit::TestPlatform;

use crate::support::{connect_app, delivered, run_waited};

const TOKEN: &str = "pat-na1-e2e00000-1111-2222-3333-444444444444";

/// HubSpot for one portal: the account probe and batch upserts keyed by `idProperty`.
async fn fake_hubspot() -> (FakeVendor, Arc<Mutex<u32>>) {
    let upserts = Arc::new(Mutex::new(0));
    let counted = upserts.clone();
    let objects = Arc::new(Mutex::new(
        std::collections::BTreeMap::<String, String>::new(),
    ));
    let fake = FakeVendor::start(move |r, _| {
        if r.header("authorization") != Some(format!("Bearer {TOKEN}").as_str()) {
            return Reply::json(
                401,
                json!({"status": "error", "message": "Authentication credentials not found.",
                       "category": "INVALID_AUTHENTICATION", "correlationId": "c"}),
            );
        }
        match (r.method.as_str(), r.path.as_str()) {
            ("GET", "/account-info/v3/details") => Reply::json(200, json!({"portalId": 62515})),
            ("POST", p) if p.ends_with("/batch/upsert") => {
                *counted.lock().unwrap() += 1;
                let input = &r.json()["inputs"][0];
                let key = format!("{p}/{}/{}", input["idProperty"], input["id"]);
                let mut objects = objects.lock().unwrap();
                let next = (501 + objects.len()).to_string();
                let new = !objects.contains_key(&key);
                let id = objects.entry(key).or_insert(next).clone();
                Reply::json(
                    200,
                    json!({"status": "COMPLETE", "results": [{"id": id, "new": new}]}),
                )
            }
            ("PUT", p) if p.starts_with("/crm/v4/objects/deals/") => {
                Reply::json(200, json!({"status": "COMPLETE", "results": []}))
            }
            _ => Reply::json(404, json!({"status": "error", "message": "Not found"})),
        }
    })
    .await;
    (fake, upserts)
}

fn hubspot_signature(secret: &str, url: &str, body: &[u8], millis: &str) -> String {
    let mut mac = hmac::Hmac::<sha2::Sha256>::new_from_slice(secret.as_bytes()).unwrap();
    mac.update(b"POST");
    mac.update(url.as_bytes());
    mac.update(body);
    mac.update(millis.as_bytes());
    base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes())
}

async fn waited(platform: &TestPlatform, token: &str, key: Option<&str>, body: Value) -> Value {
    run_waited(platform, "crm", token, key, body).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn contacts_deals_events_and_hubspots_webhook() {
    let (hubspot, upserts) = fake_hubspot().await;
    let subscriber = FakeVendor::start(|_, _| Reply::text(204, "")).await;
    let platform = TestPlatform::start(
        &[
            registry::registration(),
            webhook_gateway::registration(),
            crm::registration(),
        ],
        json!({"OUTBOUND_ALLOWED_HOSTS": "localhost,127.0.0.1"}),
    )
    .await;
    let token = platform.token("tenant-a", &[]);
    let other = platform.token("tenant-b", &[]);

    let connection = connect_app(
        &platform,
        "crm",
        &token,
        json!({"providerKey": "hubspot", "displayName": "portal",
               "config": {"baseUrl": hubspot.base},
               "credential": {"kind": "bearerToken", "token": TOKEN}}),
        TOKEN,
    )
    .await;

    let contact = waited(
        &platform,
        &token,
        None,
        json!({"connectionId": connection, "operation": "upsertContact",
               "input": {"email": "ada@example.org", "firstName": "Ada"}}),
    )
    .await;
    assert_eq!(contact["status"], "succeeded", "{contact}");
    assert_eq!(contact["output"]["created"], true);
    let contact_id = contact["output"]["contactId"].as_str().unwrap().to_owned();

    let deal = json!({"connectionId": connection, "operation": "upsertDeal",
                      "input": {"name": "Order 42", "amount": 99.5, "currency": "USD",
                                "contactId": contact_id}});
    let first = waited(&platform, &token, Some("deal-order-42"), deal.clone()).await;
    assert_eq!(first["status"], "succeeded", "{first}");
    assert_eq!(first["output"]["created"], true);
    let before = *upserts.lock().unwrap();
    let again = waited(&platform, &token, Some("deal-order-42"), deal).await;
    assert_eq!(again["runId"], first["runId"]);
    assert_eq!(*upserts.lock().unwrap(), before, "no second vendor call");

    // HubSpot performs no events: the operation is refused for this connection.
    let r = platform
        .post(
            "/crm/api/integrations/runs",
            &token,
            json!({"connectionId": connection, "operation": "trackEvent",
                   "input": {"name": "signup", "email": "ada@example.org"}}),
        )
        .await;
    testkit::assert_problem(r, 400, "unsupported_operation").await;

    // Events go through a Fake connection.
    let r = platform
        .post(
            "/crm/api/integrations/connections",
            &token,
            json!({"providerKey": "fake-crm", "displayName": "sink",
                   "credential": {"kind": "apiKey", "apiKey": "demo"}}),
        )
        .await;
    assert_eq!(r.status(), 201);
    let sink = r.json::<Value>().await.unwrap()["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let event = waited(
        &platform,
        &token,
        None,
        json!({"connectionId": sink, "operation": "trackEvent",
               "input": {"name": "order_placed", "userId": "user-1", "value": 99.5, "currency": "USD"}}),
    )
    .await;
    assert_eq!(event["output"], json!({"accepted": true}), "{event}");
    assert_eq!(
        crm::providers::fake::book("tenant-a").events,
        vec!["order_placed"]
    );

    // HubSpot's webhook: a subscription to contact changes and the connection's source.
    let r = platform
        .post(
            "/webhook-gateway/api/webhooks/subscriptions",
            &token,
            json!({"url": format!("{}/hooks", subscriber.base), "eventTypes": ["crm.*"]}),
        )
        .await;
    assert_eq!(r.status(), 201, "{}", r.text().await.unwrap());
    let secret = "hubspot-app-client-secret-e2e-0123";
    let r = platform
        .post(
            "/webhook-gateway/api/webhooks/sources",
            &token,
            json!({"provider": "hubspot", "secret": secret, "connectionId": connection}),
        )
        .await;
    assert_eq!(r.status(), 201, "{}", r.text().await.unwrap());
    let source: Value = r.json().await.unwrap();
    assert_eq!(source["app"], "crm");
    let inbound = source["url"].as_str().unwrap().to_owned();
    let body = serde_json::to_vec(&json!([{
        "eventId": 4242, "subscriptionId": 12345, "portalId": 62515, "appId": 54321,
        "occurredAt": chrono::Utc::now().timestamp_millis(), "subscriptionType": "contact.propertyChange",
        "attemptNumber": 0, "objectId": contact_id.parse::<u64>().unwrap(),
        "propertyName": "lifecyclestage", "propertyValue": "customer", "changeSource": "CRM"}]))
    .unwrap();
    let millis = chrono::Utc::now().timestamp_millis().to_string();
    let r = platform
        .client
        .post(&inbound)
        .header("content-type", "application/json")
        .header("x-hubspot-request-timestamp", &millis)
        .header(
            "x-hubspot-signature-v3",
            hubspot_signature(secret, &inbound, &body, &millis),
        )
        .body(body)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 202, "{}", r.text().await.unwrap());
    let event = delivered(&subscriber, "crm.contact.changed").await;
    assert_eq!(event["data"]["recordId"], contact_id.as_str(), "{event}");
    assert_eq!(event["data"]["property"], "lifecyclestage");
    assert_eq!(event["data"]["value"], "customer");
    assert_eq!(event["data"]["vendorEventId"], "4242");
    // The contact's last run is named; nothing of it changed.
    assert_eq!(event["data"]["runId"], contact["runId"]);

    for path in [
        format!(
            "/crm/api/integrations/runs/{}",
            first["runId"].as_str().unwrap()
        ),
        format!("/crm/api/integrations/connections/{connection}"),
    ] {
        let r = platform.get(&path, &other).await;
        testkit::assert_problem(r, 404, "not_found").await;
    }
    platform.shutdown().await;
}

/// crm has no failover, but a connection may name its fallback: a run it cannot serve goes
/// to that one connection, and only to it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_connection_may_name_its_fallback() {
    let platform = TestPlatform::start(
        &[registry::registration(), crm::registration()],
        json!({"RUN_MAX_ATTEMPTS": "1"}),
    )
    .await;
    let token = platform.token("tenant-f", &[]);
    let connect = |name: &'static str, config: Value| {
        let platform = &platform;
        let token = &token;
        async move {
            let r = platform
                .post(
                    "/crm/api/integrations/connections",
                    token,
                    json!({"providerKey": "fake-crm", "displayName": name, "config": config,
                           "credential": {"kind": "apiKey", "apiKey": "k"}}),
                )
                .await;
            assert_eq!(r.status(), 201, "{}", r.text().await.unwrap());
            r.json::<Value>().await.unwrap()["id"]
                .as_str()
                .unwrap()
                .to_owned()
        }
    };
    let spare = connect("spare", json!({})).await;
    let other = connect("other", json!({})).await;
    let down = connect("down", json!({"mode": "fail", "fallback": spare})).await;
    let alone = connect("alone", json!({"mode": "fail"})).await;
    let track = |connection: String| {
        json!({"connectionId": connection, "operation": "trackEvent",
               "input": {"name": "signup", "userId": "u-1"}})
    };
    let served = waited(&platform, &token, None, track(down.clone())).await;
    assert_eq!(served["status"], "succeeded", "{served}");
    assert_eq!(served["servedBy"], spare.as_str());
    assert_eq!(served["failovers"][0]["connectionId"], down.as_str());
    // Without a named fallback nothing else is tried, though `other` would serve.
    let failed = waited(&platform, &token, None, track(alone)).await;
    assert_eq!(failed["status"], "failed", "{failed}");
    assert!(failed["servedBy"] != other.as_str(), "{failed}");
    // A fallback is a connection id.
    let r = platform
        .post(
            "/crm/api/integrations/connections",
            &token,
            json!({"providerKey": "fake-crm", "displayName": "bad", "config": {"fallback": "spare"},
                   "credential": {"kind": "apiKey", "apiKey": "k"}}),
        )
        .await;
    testkit::assert_problem(r, 400, "invalid_config").await;
    platform.shutdown().await;
}
