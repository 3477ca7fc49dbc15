//! The cloud app end to end through the runner process: a resource group ensured, then a
//! template deployment that takes seconds of the Fake's time: its run waits (no invocation
//! held), is looked at by scheduled resumes, survives a `kill -9` of the runner mid-way and
//! ends `succeeded` with the same deployment (named after the run). Another tenant gets 404.
//! And Azure Resource Manager against a fake ARM: a deployment followed by scheduled looks.

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

/// Azure Resource Manager through the runner: a service principal's connection (its secret
/// in custody, its token from a fake Entra endpoint), a group ensured, and a deployment
/// started once, followed through `Azure-AsyncOperation` by the run's scheduled looks after
/// ARM's `Retry-After`, ending with the template's outputs.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_arm_deployment_is_followed_by_scheduled_looks() {
    use integration_kit::testing::{FakeVendor, Reply};
    use std::sync::{Arc, Mutex};
    const SUB: &str = "8f3c2a1e-0b4d-4c6e-9a7f-123456789abc";
    const SECRET: &str = "entra-client-secret-e2e-0123456789";
    let looks = Arc::new(Mutex::new(0u32));
    let puts = Arc::new(Mutex::new(0u32));
    let (seen_looks, seen_puts) = (looks.clone(), puts.clone());
    let arm = FakeVendor::start(move |r, _| {
        if r.path == "/tenant-1/oauth2/v2.0/token" {
            return Reply::json(200, json!({"token_type": "Bearer", "expires_in": 3599, "access_token": "arm-e2e-token"}));
        }
        if r.header("authorization") != Some("Bearer arm-e2e-token") {
            return Reply::json(401, json!({"error": {"code": "AuthenticationFailed", "message": "Authentication failed."}}));
        }
        let origin = format!("http://{}", r.header("host").unwrap_or_default());
        let deployment = format!("/subscriptions/{SUB}/resourcegroups/rg-arm/providers/Microsoft.Resources/deployments/");
        match (r.method.as_str(), r.path.as_str()) {
            ("GET", p) if p == format!("/subscriptions/{SUB}") => {
                Reply::json(200, json!({"subscriptionId": SUB, "state": "Enabled"}))
            }
            ("PUT", p) if p == format!("/subscriptions/{SUB}/resourcegroups/rg-arm") => Reply::json(
                201,
                json!({"id": format!("/subscriptions/{SUB}/resourceGroups/rg-arm"), "name": "rg-arm",
                       "location": "westeurope", "properties": {"provisioningState": "Succeeded"}}),
            ),
            ("GET", p) if p.starts_with(&deployment) && p.contains("/operationStatuses/") => {
                let mut looks = seen_looks.lock().unwrap();
                *looks += 1;
                let status = if *looks < 2 { "Running" } else { "Succeeded" };
                Reply::json(200, json!({"status": status})).header("retry-after", "1")
            }
            ("GET", p) if p.starts_with(&deployment) => {
                if *seen_looks.lock().unwrap() < 2 {
                    return Reply::json(404, json!({"error": {"code": "DeploymentNotFound", "message": "not found"}}));
                }
                let name = &p[deployment.len()..];
                Reply::json(200, json!({"name": name, "properties": {"provisioningState": "Succeeded",
                    "duration": "PT1M30S", "outputs": {"siteUrl": {"type": "String", "value": "https://web.example"}}}}))
            }
            ("PUT", p) if p.starts_with(&deployment) => {
                *seen_puts.lock().unwrap() += 1;
                Reply::json(201, json!({"name": &p[deployment.len()..], "properties": {"provisioningState": "Accepted"}}))
                    .header("azure-asyncoperation", &format!("{origin}{p}/operationStatuses/0858?api-version=2025-04-01"))
                    .header("retry-after", "1")
            }
            _ => Reply::json(404, json!({"error": {"code": "InvalidResourceType", "message": "no"}})),
        }
    })
    .await;
    let platform = testkit::TestPlatform::start(
        &[registry::registration(), cloud::registration()],
        json!({"OUTBOUND_ALLOWED_HOSTS": "localhost,127.0.0.1", "RUN_MAX_CHECK_INTERVAL_SECONDS": "1"}),
    )
    .await;
    let token = platform.token("tenant-arm", &[]);
    let connection = crate::support::connect_app(
        &platform,
        "cloud",
        &token,
        json!({"providerKey": "azure-resource-manager", "displayName": "prod",
               "config": {"baseUrl": arm.base, "subscriptionId": SUB},
               "credential": {"kind": "oauth2ClientCredentials", "clientId": "app-1", "clientSecret": SECRET,
                              "tokenUrl": format!("{}/tenant-1/oauth2/v2.0/token", arm.base)}}),
        SECRET,
    )
    .await;
    let group = crate::support::run_waited(
        &platform,
        "cloud",
        &token,
        None,
        json!({"connectionId": connection, "operation": "ensureResourceGroup",
               "input": {"name": "rg-arm", "location": "westeurope"}}),
    )
    .await;
    assert_eq!(group["status"], "succeeded", "{group}");
    let r = platform
        .post(
            "/cloud/api/integrations/runs",
            &token,
            json!({"connectionId": connection, "operation": "deployTemplate",
                   "input": {"resourceGroup": "rg-arm", "template": {"resources": []}}}),
        )
        .await;
    assert_eq!(r.status(), 202);
    let run = r.json::<Value>().await.unwrap()["runId"]
        .as_str()
        .unwrap()
        .to_owned();
    let deadline = Instant::now() + Duration::from_secs(30);
    let done = loop {
        let v = platform
            .get(&format!("/cloud/api/integrations/runs/{run}"), &token)
            .await
            .json::<Value>()
            .await
            .unwrap();
        if v["status"] == "succeeded" || v["status"] == "failed" {
            break v;
        }
        assert!(Instant::now() < deadline, "not finished: {v}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert_eq!(done["status"], "succeeded", "{done}");
    assert_eq!(done["output"]["name"], run.as_str());
    assert_eq!(done["output"]["durationMs"], 90_000);
    assert_eq!(
        done["output"]["outputs"]["siteUrl"]["value"],
        "https://web.example"
    );
    assert_eq!(*puts.lock().unwrap(), 1, "started once");
    assert!(*looks.lock().unwrap() >= 2, "followed by looks");
    platform.shutdown().await;
}
