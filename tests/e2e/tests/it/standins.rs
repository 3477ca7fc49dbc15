//! The whole platform on the Azure stand-ins: the `test-platform` runner process with its
//! documents in the Cosmos DB stand-in and its blobs in Azurite (the bus and the secrets stay
//! embedded), driven through the API, then the data looked for in the stand-ins themselves.

use std::path::Path;
use std::process::Child;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use bytes::Bytes;
use ports::{BlobStore as _, DocumentStore as _, Query};
use serde_json::{Value, json};
use standins::platform::PlatformStandIns;

use crate::support::spawn_with_env;

/// Kills the runner however the test ends, so no process outlives a failed assertion.
struct Runner(Child);

impl Drop for Runner {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Outbound deliveries that reached the receiver: (`webhook-id`, body).
#[derive(Clone, Default)]
struct Received(Arc<Mutex<Vec<(String, Value)>>>);

async fn receive(State(r): State<Received>, headers: HeaderMap, body: Bytes) -> StatusCode {
    let id = headers
        .get("webhook-id")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    let body = serde_json::from_slice(&body).unwrap_or(Value::Null);
    r.0.lock().unwrap().push((id, body));
    StatusCode::NO_CONTENT
}

/// The containers of every app the `test-platform` binary hosts.
fn containers() -> Vec<&'static str> {
    [
        e2e::registration(),
        registry::registration(),
        webhook_gateway::registration(),
        sms::registration(),
        email::registration(),
    ]
    .iter()
    .flat_map(|r| r.containers.iter().copied())
    .collect()
}

fn write_settings(dir: &Path, standins: &PlatformStandIns) {
    let mut values = serde_json::Map::new();
    for (name, value) in standins.settings() {
        values.insert(name, Value::String(value));
    }
    values.insert("PROBE_SCHEDULE".into(), json!("0 0 0 1 1 *"));
    // The outbound receiver is on loopback, which the SSRF guard refuses by default.
    values.insert("OUTBOUND_ALLOWED_HOSTS".into(), json!("127.0.0.1"));
    let file = json!({"IsEncrypted": false, "Values": values});
    std::fs::write(dir.join("local.settings.json"), file.to_string()).unwrap();
}

async fn until<T>(what: &str, within: Duration, mut probe: impl AsyncFnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + within;
    loop {
        if let Some(found) = probe().await {
            return found;
        }
        assert!(Instant::now() < deadline, "{what} within {within:?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_platform_runs_on_azurite_and_the_cosmos_standin() {
    let standins = tokio::task::spawn_blocking(|| PlatformStandIns::start(&containers()))
        .await
        .unwrap()
        .expect("start the stand-ins");
    let dir = tempfile::tempdir().unwrap();
    write_settings(dir.path(), &standins);

    let received = Received::default();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let receiver_addr = listener.local_addr().unwrap();
    let app = axum::Router::new()
        .fallback(receive)
        .with_state(received.clone());
    tokio::spawn(async move { axum::serve(listener, app).await });

    let (child, addr) = spawn_with_env(dir.path(), &standins.env());
    let runner = Runner(child);
    let base = format!("http://{addr}");
    let signer = auth::DevTokens::load_or_create(&dir.path().join("data")).unwrap();
    let token = |tenant: &str, roles: &[String]| {
        signer
            .issue(
                tenant,
                roles,
                chrono::Duration::hours(1),
                chrono::Utc::now(),
            )
            .unwrap()
    };
    let operator = token("platform-ops", &["operator".to_owned()]);
    let tenant = "tenant-standins";
    let owner = token(tenant, &[]);
    let client = reqwest::Client::new();

    // 1. An operator registers a provider, and anyone reads it back.
    let provider = json!({"key": "acme-crm", "displayName": "Acme CRM", "category": "crm",
                          "authScheme": "apiKey", "baseUrl": "https://api.acme.example"});
    let r = client
        .post(format!("{base}/registry/api/integrations/providers"))
        .bearer_auth(&operator)
        .json(&provider)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201, "{}", r.text().await.unwrap());
    let created: Value = r.json().await.unwrap();
    let read: Value = client
        .get(format!(
            "{base}/registry/api/integrations/providers/acme-crm"
        ))
        .bearer_auth(&owner)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(read, created);

    // 2. A GitHub source, a subscription to what it receives, and a signed delivery.
    let r = client
        .post(format!("{base}/webhook-gateway/api/webhooks/subscriptions"))
        .bearer_auth(&owner)
        .json(&json!({"url": format!("http://{receiver_addr}/hook"),
                      "eventTypes": ["integration.webhook.received"]}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201, "{}", r.text().await.unwrap());
    let secret = "standins-github-secret";
    let r = client
        .post(format!("{base}/webhook-gateway/api/webhooks/sources"))
        .bearer_auth(&owner)
        .json(&json!({"provider": "github", "secret": secret}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201, "{}", r.text().await.unwrap());
    let source: Value = r.json().await.unwrap();
    let inbound_url = source["url"].as_str().unwrap().to_owned();
    let body = br#"{"action":"opened","pull_request":{"number":7}}"#.to_vec();
    let post = |signature: String| {
        client
            .post(&inbound_url)
            .header("content-type", "application/json")
            .header("x-github-event", "pull_request")
            .header("x-github-delivery", "gh-standins-1")
            .header("x-hub-signature-256", signature)
            .body(body.clone())
            .send()
    };
    // A wrong signature is refused (so the 202 below is the signature's doing).
    let r = post(testkit::github_signature("another-secret", &body))
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    let r = post(testkit::github_signature(secret, &body))
        .await
        .unwrap();
    assert_eq!(r.status(), 202, "{}", r.text().await.unwrap());
    let receipt_id = r.json::<Value>().await.unwrap()["id"]
        .as_str()
        .unwrap()
        .to_owned();

    // The WebhookReceived event went through the outbox (in Cosmos) to the embedded bus,
    // fanned out, and reached the subscriber.
    let delivered = until(
        "the WebhookReceived delivery",
        Duration::from_secs(60),
        async || received.0.lock().unwrap().first().cloned(),
    )
    .await;
    let (webhook_id, payload) = delivered;
    assert!(!webhook_id.is_empty(), "Standard Webhooks headers are set");
    assert_eq!(payload["type"], "integration.webhook.received");
    assert_eq!(payload["data"]["vendorDeliveryId"], "gh-standins-1");
    let payload_ref = payload["data"]["payloadRef"].as_str().unwrap().to_owned();

    // 3. An sms run with the Fake provider.
    let r = client
        .post(format!("{base}/sms/api/integrations/connections"))
        .bearer_auth(&owner)
        .json(
            &json!({"providerKey": "fake", "displayName": "fake", "config": {},
                      "credential": {"kind": "apiKey", "apiKey": "fake-key"}}),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201, "{}", r.text().await.unwrap());
    let connection = r.json::<Value>().await.unwrap()["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let r = client
        .post(format!("{base}/sms/api/integrations/runs"))
        .bearer_auth(&owner)
        .json(&json!({"connectionId": connection, "operation": "send",
                      "input": {"to": "+972501234567", "body": "hello from the stand-ins"}}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 202, "{}", r.text().await.unwrap());
    let run_id = r.json::<Value>().await.unwrap()["runId"]
        .as_str()
        .unwrap()
        .to_owned();
    let run = until("the run to finish", Duration::from_secs(60), async || {
        let run: Value = client
            .get(format!("{base}/sms/api/integrations/runs/{run_id}"))
            .bearer_auth(&owner)
            .send()
            .await
            .ok()?
            .json()
            .await
            .ok()?;
        ["succeeded", "failed", "dead_lettered"]
            .contains(&run["status"].as_str().unwrap_or_default())
            .then_some(run)
    })
    .await;
    assert_eq!(run["status"], "succeeded", "{run}");

    // 4. The data are in the stand-ins: documents in Cosmos DB, blobs in Azurite.
    let settings = standins.settings();
    let config = azure_cosmos::CosmosConfig::from_settings(&settings)
        .unwrap()
        .expect("Cosmos settings");
    let builder = standins::platform::cosmos_client_builder().await.unwrap();
    let cosmos = azure_cosmos::CosmosDocumentStore::connect(&config, builder)
        .await
        .unwrap_or_else(|e| {
            panic!(
                "connect to the Cosmos stand-in: {e}\n{}",
                standins.log_tail()
            )
        });
    // Every outbox document gets published and deleted. The run's last event is committed
    // with its state and published after it, so the runner may still be sending it when the
    // run reads as succeeded: wait for that before stopping the runner.
    until(
        "the outbox to be published",
        Duration::from_secs(30),
        async || {
            for container in containers() {
                let pending = cosmos
                    .query(
                        container,
                        &Query::cross_partition().filter("docType", "outbox"),
                    )
                    .await
                    .ok()?;
                if !pending.documents.is_empty() {
                    return None;
                }
            }
            Some(())
        },
    )
    .await;
    drop(runner);
    let providers = cosmos
        .query(
            "registry",
            &Query::partition("platform").filter("docType", "provider"),
        )
        .await
        .unwrap();
    assert!(
        providers
            .documents
            .iter()
            .any(|d| d.id == "provider-acme-crm" && d.body["displayName"] == "Acme CRM"),
        "the provider document is in Cosmos: {:?}",
        providers.documents
    );
    let receipt = cosmos
        .read("webhooks", tenant, &receipt_id)
        .await
        .unwrap()
        .expect("the inbound receipt is in Cosmos");
    assert_eq!(receipt.body["payloadRef"], payload_ref.as_str());
    assert!(
        cosmos
            .read("sms", tenant, &format!("run-{run_id}"))
            .await
            .unwrap()
            .is_some(),
        "the run is in Cosmos"
    );

    let blobs = azure_blob::AzureBlobStore::from_settings(&settings)
        .unwrap()
        .expect("Blob settings");
    let (blob_container, blob_name) = payload_ref.split_once('/').unwrap();
    let (raw, _) = blobs
        .get(blob_container, blob_name)
        .await
        .unwrap_or_else(|e| panic!("the raw body is in Azurite: {e}"));
    assert_eq!(raw.as_ref(), body.as_slice(), "byte for byte");
    blobs
        .head("runs-input", &format!("{tenant}/{run_id}"))
        .await
        .unwrap_or_else(|e| panic!("the run's input is in Azurite: {e}"));

    // ...and not in the embedded default, which the runner still opened in its data folder.
    let data = dir.path().join("data");
    let embedded = embedded::SqliteDocumentStore::open(
        &data.join("documents.db"),
        embedded::Durability::Normal,
    )
    .unwrap();
    assert!(
        embedded
            .read("registry", "platform", "provider-acme-crm")
            .await
            .unwrap()
            .is_none(),
        "documents went to the stand-in, not to SQLite"
    );
    let embedded_blobs =
        embedded::SqliteBlobStore::open(&data.join("blobs.db"), embedded::Durability::Normal)
            .unwrap();
    assert!(
        embedded_blobs
            .list(blob_container, "")
            .await
            .unwrap()
            .is_empty(),
        "blobs went to Azurite, not to the data folder"
    );
}
