//! The cloud app end to end through the runner process: a resource group ensured, then a
//! template deployment that takes seconds of the Fake's time: its run waits (no invocation
//! held), is looked at by scheduled resumes, survives a `kill -9` of the runner mid-way and
//! ends `succeeded` with the same deployment (named after the run). Another tenant gets 404.

use std::path::Path;
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::support::{RunnerProcess, dev_token};

fn settings(dir: &Path) {
    let values = json!({"IsEncrypted": false, "Values": {
        "FUNCTIONS_WORKER_RUNTIME": "Custom",
        "PROBE_SCHEDULE": "0 0 0 1 1 *",
        // Looks at a waiting run at most a second apart.
        "RUN_MAX_CHECK_INTERVAL_SECONDS": "1",
    }});
    std::fs::write(dir.join("local.settings.json"), values.to_string()).unwrap();
}

async fn run_of(client: &reqwest::Client, base: &str, token: &str, run: &str) -> (u16, Value) {
    let r = client
        .get(format!("{base}/cloud/api/integrations/runs/{run}"))
        .bearer_auth(token)
        .send()
        .await
        .unwrap();
    let status = r.status().as_u16();
    (status, r.json().await.unwrap_or(Value::Null))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_deployment_ends_through_scheduled_looks_across_a_kill_9() {
    let dir = tempfile::tempdir().unwrap();
    settings(dir.path());
    let mut runner = RunnerProcess::start(dir.path());
    let token = dev_token(dir.path(), "tenant-cloud");
    let client = reqwest::Client::new();
    let base = runner.base();
    let post = |path: &str, body: Value, wait: bool| {
        let mut r = client
            .post(format!("{base}{path}"))
            .bearer_auth(&token)
            .json(&body);
        if wait {
            r = r.header("prefer", "wait=30");
        }
        r.send()
    };
    let r = post(
        "/cloud/api/integrations/connections",
        json!({"providerKey": "fake-cloud", "displayName": "demo", "config": {"deploymentMs": 4000},
               "credential": {"kind": "apiKey", "apiKey": "key-cloud"}}),
        false,
    )
    .await
    .unwrap();
    assert_eq!(r.status(), 201, "{}", r.text().await.unwrap());
    let connection = r.json::<Value>().await.unwrap()["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let group: Value = post(
        "/cloud/api/integrations/runs",
        json!({"connectionId": connection, "operation": "ensureResourceGroup",
               "input": {"name": "rg-e2e", "location": "westeurope"}}),
        true,
    )
    .await
    .unwrap()
    .json()
    .await
    .unwrap();
    assert_eq!(group["status"], "succeeded", "{group}");
    assert_eq!(group["output"]["location"], "westeurope");

    let r = post(
        "/cloud/api/integrations/runs",
        json!({"connectionId": connection, "operation": "deployTemplate",
               "input": {"resourceGroup": "rg-e2e", "template": {"resources": []}}}),
        false,
    )
    .await
    .unwrap();
    assert_eq!(r.status(), 202);
    let run = r.json::<Value>().await.unwrap()["runId"]
        .as_str()
        .unwrap()
        .to_owned();
    // It waits: the deployment runs at the control plane, no invocation holds it.
    let deadline = Instant::now() + Duration::from_secs(15);
    let waiting = loop {
        let (_, v) = run_of(&client, &base, &token, &run).await;
        if v["status"] == "waiting" {
            break v;
        }
        assert!(Instant::now() < deadline, "never waiting: {v}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert_eq!(waiting["output"]["state"], "running", "{waiting}");
    assert_eq!(waiting["output"]["name"], run.as_str());

    // The runner dies mid-deployment and comes back on the same data folder.
    runner.restart(dir.path());
    let base = runner.base();
    let deadline = Instant::now() + Duration::from_secs(30);
    let done = loop {
        let (_, v) = run_of(&client, &base, &token, &run).await;
        if v["status"] == "succeeded" || v["status"] == "failed" {
            break v;
        }
        assert!(Instant::now() < deadline, "not finished: {v}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert_eq!(done["status"], "succeeded", "{done}");
    assert_eq!(done["output"]["state"], "succeeded");
    assert_eq!(done["output"]["name"], run.as_str(), "the same deployment");
    assert_eq!(done["output"]["durationMs"], 4000);
    assert_eq!(
        done["output"]["outputs"]["deploymentName"]["value"],
        run.as_str()
    );

    let other = dev_token(dir.path(), "tenant-stranger");
    let (status, _) = run_of(&client, &base, &other, &run).await;
    assert_eq!(status, 404);
    runner.kill();
}
