//! The support app end to end through the runner against a fake Zendesk over real HTTP: a
//! connection (its secret never echoed), a ticket created, updated and read (inline with
//! `Prefer: wait`), a repeated `Idempotency-Key` answered with the same run and no second
//! vendor call, and Zendesk's signed `ticket.status_changed` webhook through the gateway's
//! `zendesk` source: the last run's output takes the new status and a subscription receives
//! `support.ticket.changed`. Another tenant gets 404 everywhere.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use base64::Engine as _;
use hmac::Mac as _;
use integration_kit::testing::{FakeVendor, Reply};
use serde_json::{Value, json};
use testkit::TestPlatform;

use crate::support::{connect_app, delivered};

const EMAIL: &str = "agent@acme.example";
const TOKEN: &str = "zd-e2e-api-token-Q2hlY2tlZCBieSB0aGUgZmFrZQ";

/// Zendesk for one account: the identity probe, ticket creation (counted, de-duplicated by
/// `Idempotency-Key`), updates and reads.
async fn fake_zendesk() -> (FakeVendor, Arc<Mutex<Vec<Value>>>) {
    let creates = Arc::new(Mutex::new(Vec::new()));
    let tickets = Arc::new(Mutex::new(std::collections::BTreeMap::<u64, Value>::new()));
    let counted = creates.clone();
    let basic = format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(format!("{EMAIL}/token:{TOKEN}"))
    );
    let fake = FakeVendor::start(move |r, _| {
        if r.header("authorization") != Some(basic.as_str()) {
            return Reply::json(401, json!({"error": "Couldn't authenticate you"}));
        }
        let mut tickets = tickets.lock().unwrap();
        match (r.method.as_str(), r.path.as_str()) {
            ("GET", "/api/v2/users/me") => {
                Reply::json(200, json!({"user": {"id": 7, "role": "agent"}}))
            }
            ("POST", "/api/v2/tickets") => {
                counted.lock().unwrap().push(r.json());
                let id = 35_436 + tickets.len() as u64;
                let t = r.json()["ticket"].clone();
                let ticket = json!({"id": id, "status": "new", "subject": t["subject"],
                                    "priority": t["priority"], "tags": t["tags"],
                                    "external_id": t["external_id"]});
                tickets.insert(id, ticket.clone());
                Reply::json(201, json!({"ticket": ticket}))
            }
            (method, path) if path.starts_with("/api/v2/tickets/") => {
                let id: u64 = path["/api/v2/tickets/".len()..].parse().unwrap_or(0);
                let Some(ticket) = tickets.get_mut(&id) else {
                    return Reply::json(
                        404,
                        json!({"error": "RecordNotFound", "description": "Not found"}),
                    );
                };
                if method == "PUT" {
                    let change = r.json()["ticket"].clone();
                    if let Some(s) = change["status"].as_str() {
                        ticket["status"] = json!(s);
                    }
                }
                Reply::json(200, json!({"ticket": ticket}))
            }
            _ => Reply::json(404, json!({"error": "InvalidEndpoint"})),
        }
    })
    .await;
    (fake, creates)
}

/// Zendesk's signature: base64 HMAC-SHA256 over the timestamp then the body.
fn zendesk_signature(secret: &str, timestamp: &str, body: &[u8]) -> String {
    let mut mac = hmac::Hmac::<sha2::Sha256>::new_from_slice(secret.as_bytes()).unwrap();
    mac.update(timestamp.as_bytes());
    mac.update(body);
    base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tickets_end_to_end_with_zendesks_webhook_through_the_gateway() {
    let (zendesk, creates) = fake_zendesk().await;
    let subscriber = FakeVendor::start(|_, _| Reply::text(204, "")).await;
    let platform = TestPlatform::start(
        &[
            registry::registration(),
            webhook_gateway::registration(),
            support::registration(),
        ],
        json!({"OUTBOUND_ALLOWED_HOSTS": "localhost,127.0.0.1"}),
    )
    .await;
    let token = platform.token("tenant-a", &[]);
    let other = platform.token("tenant-b", &[]);

    let connection = connect_app(
        &platform,
        "support",
        &token,
        json!({"providerKey": "zendesk", "displayName": "acme desk",
               "config": {"baseUrl": zendesk.base},
               "credential": {"kind": "basic", "username": EMAIL, "password": TOKEN}}),
        TOKEN,
    )
    .await;

    // A subscription to the ticket changes, and the connection's Zendesk source.
    let r = platform
        .post(
            "/webhook-gateway/api/webhooks/subscriptions",
            &token,
            json!({"url": format!("{}/hooks", subscriber.base),
                   "eventTypes": ["support.ticket.changed"]}),
        )
        .await;
    assert_eq!(r.status(), 201, "{}", r.text().await.unwrap());
    let secret = "zendesk-signing-secret-e2e-0123456789";
    let r = platform
        .post(
            "/webhook-gateway/api/webhooks/sources",
            &token,
            json!({"provider": "zendesk", "secret": secret, "connectionId": connection}),
        )
        .await;
    assert_eq!(r.status(), 201, "{}", r.text().await.unwrap());
    let source: Value = r.json().await.unwrap();
    assert_eq!(source["app"], "support");
    let inbound = source["url"].as_str().unwrap().to_owned();

    // createTicket, twice under one key: one run, one ticket at Zendesk.
    let create = json!({"connectionId": connection, "operation": "createTicket",
        "input": {"subject": "Printer offline", "description": "It is offline again.",
                  "requester": {"email": "pablo@example.org"}, "priority": "high",
                  "tags": ["printer"]}});
    let start = || {
        platform
            .client
            .post(platform.url("/support/api/integrations/runs"))
            .bearer_auth(&token)
            .header("idempotency-key", "ticket-for-order-1234")
            .header("prefer", "wait=30")
            .json(&create)
            .send()
    };
    let first: Value = start().await.unwrap().json().await.unwrap();
    assert_eq!(first["status"], "succeeded", "{first}");
    let run = first["runId"].as_str().unwrap().to_owned();
    let ticket = first["output"]["ticketId"].as_str().unwrap().to_owned();
    assert_eq!(
        first["output"]["url"],
        format!("{}/agent/tickets/{ticket}", zendesk.base)
    );
    let again: Value = start().await.unwrap().json().await.unwrap();
    assert_eq!(again["runId"], run.as_str());
    assert_eq!(creates.lock().unwrap().len(), 1, "no second vendor call");

    // updateTicket and a waited getTicket.
    let r = platform
        .client
        .post(platform.url("/support/api/integrations/runs"))
        .bearer_auth(&token)
        .header("prefer", "wait=30")
        .json(
            &json!({"connectionId": connection, "operation": "updateTicket",
                      "input": {"ticketId": ticket, "status": "pending",
                                "comment": {"body": "On it", "public": false}}}),
        )
        .send()
        .await
        .unwrap();
    let updated: Value = r.json().await.unwrap();
    assert_eq!(updated["status"], "succeeded", "{updated}");
    assert_eq!(updated["output"]["status"], "pending");
    let r = platform
        .client
        .post(platform.url("/support/api/integrations/runs"))
        .bearer_auth(&token)
        .header("prefer", "wait=30")
        .json(
            &json!({"connectionId": connection, "operation": "getTicket",
                      "input": {"ticketId": ticket}}),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["preference-applied"], "wait");
    let read: Value = r.json().await.unwrap();
    assert_eq!(read["output"]["status"], "pending", "{read}");
    let last_run = read["runId"].as_str().unwrap().to_owned();

    // A bad input is refused before any run.
    let r = platform
        .post(
            "/support/api/integrations/runs",
            &token,
            json!({"connectionId": connection, "operation": "updateTicket",
                   "input": {"ticketId": ticket}}),
        )
        .await;
    testkit::assert_problem(r, 400, "invalid_input").await;

    // Zendesk says the ticket was solved, signed with the source's secret.
    let body = serde_json::to_vec(&json!({
        "type": "zen:event-type:ticket.status_changed", "account_id": 22129848,
        "id": "8d3a4c58-1f0e-4b4e-9d6e-0c1a2b3c4d5e", "time": "2026-12-08T10:45:20Z",
        "zendesk_event_version": "2022-11-06", "subject": format!("zen:ticket:{ticket}"),
        "detail": {"id": ticket, "status": "SOLVED"},
        "event": {"current": "SOLVED", "previous": "PENDING"}}))
    .unwrap();
    let timestamp = chrono::Utc::now().format("%Y-%m-%dT%H:%M:%SZ").to_string();
    let deliver = |signature: String| {
        platform
            .client
            .post(&inbound)
            .header("content-type", "application/json")
            .header("x-zendesk-webhook-signature-timestamp", &timestamp)
            .header("x-zendesk-webhook-signature", signature)
            .body(body.clone())
            .send()
    };
    let forged = deliver(zendesk_signature(
        "not-the-secret-at-all-0123",
        &timestamp,
        &body,
    ))
    .await
    .unwrap();
    assert_eq!(forged.status(), 401);
    let r = deliver(zendesk_signature(secret, &timestamp, &body))
        .await
        .unwrap();
    assert_eq!(r.status(), 202, "{}", r.text().await.unwrap());

    // The last run that touched the ticket now says solved.
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let v: Value = platform
            .get(
                &format!("/support/api/integrations/runs/{last_run}"),
                &token,
            )
            .await
            .json()
            .await
            .unwrap();
        if v["output"]["status"] == "solved" {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the status never reached the run: {v}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // The subscription receives support.ticket.changed.
    let event = delivered(&subscriber, "support.ticket.changed").await;
    assert_eq!(event["data"]["recordId"], ticket.as_str(), "{event}");
    assert_eq!(event["data"]["value"], "solved");
    assert_eq!(event["data"]["runId"], last_run.as_str());
    assert_eq!(event["data"]["connectionId"], connection.as_str());

    // Another tenant sees none of it.
    for path in [
        format!("/support/api/integrations/runs/{run}"),
        format!("/support/api/integrations/connections/{connection}"),
    ] {
        let r = platform.get(&path, &other).await;
        testkit::assert_problem(r, 404, "not_found").await;
    }
    let r = platform
        .post(
            "/support/api/integrations/runs",
            &other,
            json!({"connectionId": connection, "operation": "getTicket",
                   "input": {"ticketId": ticket}}),
        )
        .await;
    assert_eq!(r.status(), 404);
    platform.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_fake_help_desk_serves_demos() {
    let platform = TestPlatform::start(
        &[registry::registration(), support::registration()],
        json!({}),
    )
    .await;
    let token = platform.token("tenant-demo", &[]);
    let r = platform
        .post(
            "/support/api/integrations/connections",
            &token,
            json!({"providerKey": "fake-support", "displayName": "demo",
                   "credential": {"kind": "apiKey", "apiKey": "demo-key"}}),
        )
        .await;
    assert_eq!(r.status(), 201, "{}", r.text().await.unwrap());
    let connection = r.json::<Value>().await.unwrap()["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let waited = |body: Value| {
        platform
            .client
            .post(platform.url("/support/api/integrations/runs"))
            .bearer_auth(&token)
            .header("prefer", "wait=30")
            .json(&body)
            .send()
    };
    let created: Value = waited(
        json!({"connectionId": connection, "operation": "createTicket",
        "input": {"subject": "Hello", "description": "Demo ticket",
                  "requester": {"email": "demo@example.org", "name": "Demo"}}}),
    )
    .await
    .unwrap()
    .json()
    .await
    .unwrap();
    assert_eq!(created["status"], "succeeded", "{created}");
    let id = created["output"]["ticketId"].as_str().unwrap().to_owned();
    let solved: Value = waited(
        json!({"connectionId": connection, "operation": "updateTicket",
        "input": {"ticketId": id, "status": "solved"}}),
    )
    .await
    .unwrap()
    .json()
    .await
    .unwrap();
    assert_eq!(solved["output"]["status"], "solved", "{solved}");
    let missing: Value = waited(json!({"connectionId": connection, "operation": "getTicket",
        "input": {"ticketId": "404404"}}))
    .await
    .unwrap()
    .json()
    .await
    .unwrap();
    assert_eq!(missing["status"], "failed", "{missing}");
    platform.shutdown().await;
}
