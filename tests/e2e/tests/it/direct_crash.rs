//! A model call answered in its request is durable before its answer leaves: killed with
//! `kill -9` mid-stream, its run is found `running` after the restart and the
//! `SweepDirectRuns` timer fails it with one failure saying the outcome was lost; it is
//! never missing from the runs or the failures.

use std::path::Path;
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::support::{dev_token, spawn};

fn settings(dir: &Path, sweep: bool) {
    let mut values = json!({
        "PROBE_SCHEDULE": "0 0 0 1 1 *",
        // The sweep never comes during the first life.
        "DIRECT_RUNS_SWEEP_SCHEDULE": "0 0 0 1 1 *",
    });
    if sweep {
        values["DIRECT_RUNS_SWEEP_SCHEDULE"] = json!("* * * * * *");
        values["DIRECT_RUNS_STALE_AFTER_SECONDS"] = json!("1");
    }
    let settings = json!({"IsEncrypted": false, "Values": values});
    std::fs::write(dir.join("local.settings.json"), settings.to_string()).unwrap();
}

async fn get(client: &reqwest::Client, url: &str, token: &str) -> (u16, Value) {
    let r = client.get(url).bearer_auth(token).send().await.unwrap();
    let status = r.status().as_u16();
    (status, r.json().await.unwrap_or(Value::Null))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_model_call_killed_mid_stream_is_failed_by_the_sweep_never_lost() {
    let dir = tempfile::tempdir().unwrap();
    settings(dir.path(), false);
    let (mut child, addr) = spawn(dir.path());
    let base = format!("http://{addr}");
    let token = dev_token(dir.path(), "tenant-lost");
    let client = reqwest::Client::new();
    let r = client
        .post(format!("{base}/openai/api/integrations/connections"))
        .bearer_auth(&token)
        .json(&json!({"providerKey": "fake-model", "displayName": "slow",
                      "config": {"models": ["m"], "chunkDelayMs": 5000},
                      "credential": {"kind": "apiKey", "apiKey": "key-slow"}}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201, "{}", r.text().await.unwrap());

    let mut stream = client
        .post(format!("{base}/openai/api/v1/chat/completions"))
        .bearer_auth(&token)
        .json(&json!({"model": "m", "stream": true,
                      "messages": [{"role": "user", "content": "one two three"}]}))
        .send()
        .await
        .unwrap();
    assert_eq!(stream.status(), 200);
    let run = stream.headers()["x-request-id"]
        .to_str()
        .unwrap()
        .to_owned();
    let first = stream.chunk().await.unwrap().expect("a first chunk");
    assert!(String::from_utf8_lossy(&first).contains("chat.completion.chunk"));
    // The answer has begun: the run is already durable, `running`.
    let run_url = format!("{base}/openai/api/integrations/runs/{run}");
    let (status, seen) = get(&client, &run_url, &token).await;
    assert_eq!(status, 200, "{seen}");
    assert_eq!(seen["status"], "running", "{seen}");

    child.kill().unwrap();
    child.wait().unwrap();
    // The caller sees its stream end without `[DONE]`.
    let mut rest = String::new();
    while let Ok(Some(bytes)) = stream.chunk().await {
        rest.push_str(&String::from_utf8_lossy(&bytes));
    }
    assert!(!rest.contains("[DONE]"), "{rest}");

    settings(dir.path(), true);
    let (mut child, addr) = spawn(dir.path());
    let base = format!("http://{addr}");
    let run_url = format!("{base}/openai/api/integrations/runs/{run}");
    let deadline = Instant::now() + Duration::from_secs(60);
    let failed = loop {
        let (status, v) = get(&client, &run_url, &token).await;
        assert_eq!(status, 200, "{v}");
        if v["status"] != "running" {
            break v;
        }
        assert!(Instant::now() < deadline, "never swept: {v}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    assert_eq!(failed["status"], "failed", "{failed}");
    let attempts = failed["attempts"].as_array().unwrap();
    assert_eq!(attempts.len(), 1, "{failed}");
    assert!(
        attempts[0]["error"]
            .as_str()
            .unwrap()
            .contains("outcome was not recorded"),
        "{failed}"
    );
    // One failure, in the tenant's ledger, naming the run.
    let (status, failures) = get(
        &client,
        &format!("{base}/openai/api/integrations/failures"),
        &token,
    )
    .await;
    assert_eq!(status, 200, "{failures}");
    let items = failures["items"].as_array().unwrap();
    let ours: Vec<_> = items
        .iter()
        .filter(|f| f["subject"]["id"] == run.as_str())
        .collect();
    assert_eq!(ours.len(), 1, "{failures}");

    // A call made now completes and is not swept, though the sweep runs every second.
    let r = client
        .post(format!("{base}/openai/api/integrations/connections"))
        .bearer_auth(&token)
        .json(&json!({"providerKey": "fake-model", "displayName": "quick",
                      "config": {"models": ["q"]},
                      "credential": {"kind": "apiKey", "apiKey": "key-quick"}}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201, "{}", r.text().await.unwrap());
    let r = client
        .post(format!("{base}/openai/api/v1/chat/completions"))
        .bearer_auth(&token)
        .json(&json!({"model": "q", "messages": [{"role": "user", "content": "hi"}]}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let quick = r.headers()["x-request-id"].to_str().unwrap().to_owned();
    tokio::time::sleep(Duration::from_millis(2500)).await;
    let (_, v) = get(
        &client,
        &format!("{base}/openai/api/integrations/runs/{quick}"),
        &token,
    )
    .await;
    assert_eq!(v["status"], "succeeded", "{v}");

    // Another tenant does not see the lost run.
    let other = dev_token(dir.path(), "tenant-other");
    let (status, _) = get(&client, &run_url, &other).await;
    assert_eq!(status, 404);
    child.kill().unwrap();
    child.wait().unwrap();
}
