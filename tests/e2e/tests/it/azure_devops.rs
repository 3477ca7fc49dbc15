//! The azure-devops app end to end through the runner, with an Entra ID service principal
//! against a fake Entra ID and a fake Azure DevOps: one pipeline run ended by the
//! `run-state-changed` service hook through the gateway (basic auth, no signature exists),
//! another ended by polling when no hook comes; one token for every call; the pinned API
//! version in the registry; another tenant sees none of it.

use std::sync::{Arc, Mutex};

use base64::Engine as _;
use integration_kit::testing::{FakeVendor, Reply};
use serde_json::{Value, json};
use testkit::TestPlatform;

const CLIENT_ID: &str = "6731de76-14a6-49ae-97bc-6eba6914391e";
const CLIENT_SECRET: &str = "Xq~8Q~e2e-entra-secret-0123456789abcdef";
const ENTRA_SCOPE: &str = "499b84ac-1321-427f-aa17-267ca6975798/.default";

#[derive(Default)]
struct World {
    tokens: u32,
    runs: Vec<Value>,
}

/// Entra ID's token endpoint and Azure DevOps' Runs API for pipeline 17 of
/// `fabrikam/Fabrikam-Fiber`: a run completes once it has been looked at twice.
async fn fake_azure_devops() -> (FakeVendor, Arc<Mutex<World>>) {
    let world = Arc::new(Mutex::new(World::default()));
    let w = world.clone();
    let fake = FakeVendor::start(move |r, _| {
        let mut w = w.lock().unwrap();
        if r.path == "/entra/oauth2/v2.0/token" {
            if r.form_field("client_secret").as_deref() != Some(CLIENT_SECRET)
                || r.form_field("scope").as_deref() != Some(ENTRA_SCOPE)
            {
                return Reply::json(401, json!({"error": "invalid_client"}));
            }
            w.tokens += 1;
            return Reply::json(
                200,
                json!({"token_type": "Bearer", "expires_in": 3599,
                       "access_token": format!("eyJ.ado.{}", w.tokens)}),
            );
        }
        if !r
            .header("authorization")
            .is_some_and(|a| a.starts_with("Bearer eyJ.ado."))
        {
            return Reply::text(401, "");
        }
        if !r.query.as_deref().unwrap_or_default().contains("api-version=7.1") {
            return Reply::json(400, json!({"message": "The api-version is missing."}));
        }
        let runs = "/fabrikam/Fabrikam-Fiber/_apis/pipelines/17/runs";
        match (r.method.as_str(), r.path.as_str()) {
            ("GET", "/_apis/connectionData") => {
                Reply::json(200, json!({"authenticatedUser": {"id": "sp"}}))
            }
            ("POST", p) if p == runs => {
                let id = 301 + w.runs.len() as u64;
                let run = json!({"id": id, "state": "inProgress", "looks": 0,
                    "createdDate": "2026-12-07T10:00:00Z",
                    "pipeline": {"id": 17, "name": "deploy"},
                    "_links": {"web": {"href": format!("https://dev.azure.com/fabrikam/Fabrikam-Fiber/_build/results?buildId={id}")}}});
                w.runs.push(run.clone());
                Reply::json(200, run)
            }
            ("GET", p) if p.starts_with(runs) => {
                let id: u64 = p.rsplit('/').next().unwrap().parse().unwrap_or(0);
                let Some(run) = w.runs.iter_mut().find(|run| run["id"] == id) else {
                    return Reply::json(404, json!({"message": "Run not found.",
                        "typeKey": "PipelineRunNotFoundException"}));
                };
                let looks = run["looks"].as_u64().unwrap() + 1;
                run["looks"] = json!(looks);
                if looks >= 2 {
                    run["state"] = json!("completed");
                    run["result"] = json!("succeeded");
                    run["finishedDate"] = json!("2026-12-07T10:03:00Z");
                }
                Reply::json(200, run.clone())
            }
            _ => Reply::json(404, json!({"message": "Not found."})),
        }
    })
    .await;
    (fake, world)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pipelines_end_by_service_hook_or_by_polling() {
    let (ado, world) = fake_azure_devops().await;
    let platform = TestPlatform::start(
        &[
            registry::registration(),
            webhook_gateway::registration(),
            azure_devops::registration(),
        ],
        // Looks at waiting runs at least every second, so polling ends a run quickly here.
        json!({"OUTBOUND_ALLOWED_HOSTS": "localhost,127.0.0.1",
               "RUN_MAX_CHECK_INTERVAL_SECONDS": "1"}),
    )
    .await;
    let token = platform.token("tenant-a", &[]);
    let other = platform.token("tenant-b", &[]);

    let r = platform
        .post(
            "/azure-devops/api/integrations/connections",
            &token,
            json!({"providerKey": "azure-devops", "displayName": "fabrikam",
                   "config": {"baseUrl": ado.base},
                   "credential": {"kind": "oauth2ClientCredentials", "clientId": CLIENT_ID,
                                  "clientSecret": CLIENT_SECRET,
                                  "tokenUrl": format!("{}/entra/oauth2/v2.0/token", ado.base)}}),
        )
        .await;
    assert_eq!(r.status(), 201, "{}", r.text().await.unwrap());
    let connection = r.json::<Value>().await.unwrap()["id"]
        .as_str()
        .unwrap()
        .to_owned();

    // The connection's service hook source, authenticated with basic auth.
    let password = "ado-hook-password-0123456789abcdef";
    let r = platform
        .post(
            "/webhook-gateway/api/webhooks/sources",
            &token,
            json!({"provider": "azure-devops", "secret": password, "connectionId": connection,
                   "options": {"mode": {"type": "basic", "username": "ado-hooks"}}}),
        )
        .await;
    assert_eq!(r.status(), 201, "{}", r.text().await.unwrap());
    let source: Value = r.json().await.unwrap();
    assert_eq!(source["app"], "azure-devops");
    let inbound = source["url"].as_str().unwrap().to_owned();

    let start = || {
        let (platform, token, connection) = (&platform, &token, &connection);
        async move {
            let r = platform
                .post(
                    "/azure-devops/api/integrations/runs",
                    token,
                    json!({"connectionId": connection, "operation": "startPipeline",
                           "input": {"organization": "fabrikam", "project": "Fabrikam-Fiber",
                                     "pipelineId": 17, "ref": "main"}}),
                )
                .await;
            assert_eq!(r.status(), 202, "{}", r.text().await.unwrap());
            r.json::<Value>().await.unwrap()["runId"]
                .as_str()
                .unwrap()
                .to_owned()
        }
    };

    // 1. Ended by the service hook, before any look.
    let hooked = start().await;
    let waiting = platform
        .run_until("azure-devops", &token, &hooked, &["waiting"])
        .await;
    assert_eq!(waiting["output"]["runId"], 301, "{waiting}");
    let r = platform
        .get(
            &format!("/azure-devops/api/integrations/runs/{hooked}"),
            &other,
        )
        .await;
    testkit::assert_problem(r, 404, "not_found").await;
    let event = json!({"subscriptionId": "8d91ad83-1db5-4d43-8c5a-9bb2239644b1", "notificationId": 1,
        "id": "fcad4962-f3a6-4fbf-9653-2058c304503f",
        "eventType": "ms.vss-pipelines.run-state-changed-event", "publisherId": "pipelines",
        "message": {"text": "Run 20261207.1 succeeded."},
        "resource": {"run": {"id": 301, "state": "completed", "result": "succeeded",
                             "createdDate": "2026-12-07T10:00:00Z", "finishedDate": "2026-12-07T10:01:00Z",
                             "_links": {"web": {"href": "https://dev.azure.com/fabrikam/Fabrikam-Fiber/_build/results?buildId=301"}}},
                     "pipeline": {"id": 17, "name": "deploy"}},
        "resourceVersion": "5.1-preview.1", "createdDate": "2026-12-07T10:01:01Z"});
    let deliver = |user: &str, password: &str| {
        let basic = base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"));
        platform
            .client
            .post(&inbound)
            .header("content-type", "application/json")
            .header("authorization", format!("Basic {basic}"))
            .json(&event)
            .send()
    };
    // A wrong password is refused, and ends nothing.
    let r = deliver("ado-hooks", "not-the-password").await.unwrap();
    assert_eq!(r.status(), 401, "{}", r.text().await.unwrap());
    let r = deliver("ado-hooks", password).await.unwrap();
    assert_eq!(r.status(), 202, "{}", r.text().await.unwrap());
    let done = platform
        .run_until("azure-devops", &token, &hooked, &["succeeded"])
        .await;
    assert_eq!(done["output"]["result"], "succeeded", "{done}");
    assert_eq!(done["output"]["durationMs"], 60_000);

    // 2. No hook comes: the looks end it (the second look finds it completed).
    let polled = start().await;
    let done = platform
        .run_until("azure-devops", &token, &polled, &["succeeded"])
        .await;
    assert_eq!(done["output"]["runId"], 302, "{done}");
    assert_eq!(done["output"]["durationMs"], 180_000);
    let r = platform
        .get(
            &format!("/azure-devops/api/integrations/runs/{polled}"),
            &other,
        )
        .await;
    testkit::assert_problem(r, 404, "not_found").await;

    // One Entra ID token served the test, both starts and every look.
    assert_eq!(world.lock().unwrap().tokens, 1);
    assert_eq!(world.lock().unwrap().runs.len(), 2);

    // The pinned API version is the provider's client in the registry.
    let clients: Value = platform
        .get(
            "/registry/api/integrations/providers/azure-devops/clients",
            &token,
        )
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(clients["items"][0]["name"], "rest", "{clients}");
    assert_eq!(clients["items"][0]["version"], "7.1.0", "{clients}");
    // The other tenant cannot use or see the connection.
    let r = platform
        .post(
            "/azure-devops/api/integrations/runs",
            &other,
            json!({"connectionId": connection, "operation": "getPipelineRun",
                   "input": {"organization": "fabrikam", "project": "Fabrikam-Fiber",
                             "pipelineId": 17, "runId": 301}}),
        )
        .await;
    testkit::assert_problem(r, 404, "not_found").await;
    platform.shutdown().await;
}
