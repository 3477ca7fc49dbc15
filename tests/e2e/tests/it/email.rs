//! The email app end to end through the runner with the `fake-email` provider: a connection,
//! an idempotent send, failover from a failing provider, and a bad input refused.

use std::time::Duration;

use serde_json::{Value, json};
use testkit::TestPlatform;

async fn connect(p: &TestPlatform, token: &str, name: &str, config: Value) -> String {
    let r = p
        .post(
            "/email/api/integrations/connections",
            token,
            json!({"providerKey": "fake-email", "displayName": name, "config": config,
                   "credential": {"kind": "apiKey", "apiKey": "sk-email-secret"}}),
        )
        .await;
    assert_eq!(r.status(), 201);
    let text = r.text().await.unwrap();
    assert!(!text.contains("sk-email-secret"));
    serde_json::from_str::<Value>(&text).unwrap()["id"]
        .as_str()
        .unwrap()
        .to_owned()
}

#[tokio::test]
async fn sends_once_per_key_and_fails_over() {
    let p = TestPlatform::start(
        &[registry::registration(), email::registration()],
        json!({"VENDOR_BREAKER_THRESHOLD": "2", "VENDOR_TIMEOUT_MS": "300"}),
    )
    .await;
    let token = p.token("tenant-e", &[]);
    let down = connect(&p, &token, "down", json!({"mode": "fail", "priority": 1})).await;
    let healthy = connect(&p, &token, "healthy", json!({"priority": 2})).await;
    let send = json!({"connectionId": down, "operation": "send",
                      "input": {"to": ["a@example.com"], "subject": "hi", "text": "hello"}});
    let post = || {
        p.client
            .post(p.url("/email/api/integrations/runs"))
            .bearer_auth(&token)
            .header("Idempotency-Key", "mail-1")
            .json(&send)
            .send()
    };
    let first: Value = post().await.unwrap().json().await.unwrap();
    let second: Value = post().await.unwrap().json().await.unwrap();
    assert_eq!(first["runId"], second["runId"]);
    let run = first["runId"].as_str().unwrap().to_owned();
    let mut v = Value::Null;
    for _ in 0..400 {
        v = p
            .get(&format!("/email/api/integrations/runs/{run}"), &token)
            .await
            .json()
            .await
            .unwrap();
        if v["status"] == "succeeded" || v["status"] == "failed" {
            break;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    assert_eq!(v["status"], "succeeded", "{v}");
    assert_eq!(v["servedBy"], healthy.as_str(), "failed over: {v}");
    assert_eq!(v["failovers"].as_array().unwrap().len(), 1);
    assert_eq!(
        email::providers::fake::calls(&run),
        2,
        "one call to each provider"
    );
    // Bad input never becomes a run.
    let r = p
        .post(
            "/email/api/integrations/runs",
            &token,
            json!({"connectionId": healthy, "operation": "send", "input": {"to": ["not-an-address"], "subject": "x", "text": "y"}}),
        )
        .await;
    assert_eq!(r.status(), 400);
    p.shutdown().await;
}

/// The documented limit is reachable: 7 MiB of attachments (about 9.4 MiB of base64) is a
/// run; past the send operation's 10 MiB input it is a 400 naming the limit.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn seven_mib_of_attachments_are_sent() {
    use base64::Engine as _;
    let p = TestPlatform::start(
        &[registry::registration(), email::registration()],
        json!({}),
    )
    .await;
    let token = p.token("tenant-big", &[]);
    let connection = connect(&p, &token, "fake", json!({})).await;
    let attachment = |bytes: usize| {
        json!({"name": "part.bin", "contentType": "application/octet-stream",
               "contentBase64": base64::engine::general_purpose::STANDARD.encode(vec![7u8; bytes])})
    };
    let send = |attachments: Vec<Value>| {
        p.client
            .post(p.url("/email/api/integrations/runs"))
            .bearer_auth(&token)
            .json(&json!({"connectionId": connection, "operation": "send",
                          "input": {"to": ["a@example.com"], "subject": "files", "text": "attached",
                                    "attachments": attachments}}))
            .send()
    };
    // Seven attachments of 1 MiB: 7 MiB decoded.
    let r = send((0..7).map(|_| attachment(1024 * 1024)).collect())
        .await
        .unwrap();
    assert_eq!(r.status(), 202, "{}", r.text().await.unwrap());
    // Over 7 MiB decoded: the operation's own rule names the field.
    let r = send(vec![attachment(7 * 1024 * 1024 + 1)]).await.unwrap();
    let problem = testkit::assert_problem(r, 400, "invalid_input").await;
    assert!(problem.to_string().contains("attachments"), "{problem}");
    // Over the 10 MiB input (7 MiB of attachments and a 1 MiB text): refused before
    // anything is stored, naming the limit.
    let r = p
        .client
        .post(p.url("/email/api/integrations/runs"))
        .bearer_auth(&token)
        .json(&json!({"connectionId": connection, "operation": "send",
                      "input": {"to": ["a@example.com"], "subject": "files",
                                "text": "x".repeat(1024 * 1024),
                                "attachments": (0..7).map(|_| attachment(1024 * 1024)).collect::<Vec<_>>()}}))
        .send()
        .await
        .unwrap();
    let problem = testkit::assert_problem(r, 400, "input_too_large").await;
    assert!(problem.to_string().contains("10485760"), "{problem}");
    p.shutdown().await;
}
