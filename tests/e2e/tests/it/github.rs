//! The github app end to end through the runner: a connection tested against a fake
//! GitHub, a workflow started (the run waits), and its run completed by GitHub's signed
//! `workflow_run` webhook through the gateway's source of that connection; another tenant
//! sees none of it.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use integration_kit::testing::{FakeVendor, Reply};
use serde_json::{Value, json};
use testkit::TestPlatform;

const PAT: &str = "github_pat_11E2E0123456789_abcdefghijklmnopqrstuvwxyz";
const RUN_ID: u64 = 9_876_543_210;

/// GitHub for `octo/svc-a`: the rate-limit probe, the dispatch (with run details) and the run.
async fn fake_github() -> (FakeVendor, Arc<Mutex<u32>>) {
    let dispatches = Arc::new(Mutex::new(0));
    let counted = dispatches.clone();
    let fake = FakeVendor::start(move |r, _| {
        if r.header("authorization") != Some(format!("Bearer {PAT}").as_str()) {
            return Reply::json(401, json!({"message": "Bad credentials"}));
        }
        match (r.method.as_str(), r.path.as_str()) {
            ("GET", "/rate_limit") => Reply::json(200, json!({"resources": {}})),
            ("POST", "/repos/octo/svc-a/actions/workflows/deploy.yml/dispatches") => {
                *counted.lock().unwrap() += 1;
                Reply::json(
                    200,
                    json!({"workflow_run_id": RUN_ID,
                           "run_url": format!("https://api.github.com/repos/octo/svc-a/actions/runs/{RUN_ID}"),
                           "html_url": format!("https://github.com/octo/svc-a/actions/runs/{RUN_ID}")}),
                )
            }
            // Looked at before the webhook comes: still running.
            ("GET", path) if path.ends_with(&format!("/actions/runs/{RUN_ID}")) => Reply::json(
                200,
                json!({"id": RUN_ID, "status": "in_progress", "conclusion": null,
                       "html_url": format!("https://github.com/octo/svc-a/actions/runs/{RUN_ID}")}),
            ),
            _ => Reply::json(404, json!({"message": "Not Found"})),
        }
    })
    .await;
    (fake, dispatches)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_workflow_run_is_ended_by_githubs_webhook_through_the_gateway() {
    let (github, dispatches) = fake_github().await;
    let platform = TestPlatform::start(
        &[
            registry::registration(),
            webhook_gateway::registration(),
            github::registration(),
        ],
        json!({"OUTBOUND_ALLOWED_HOSTS": "localhost,127.0.0.1"}),
    )
    .await;
    let token = platform.token("tenant-a", &[]);
    let other = platform.token("tenant-b", &[]);

    let r = platform
        .post(
            "/github/api/integrations/connections",
            &token,
            json!({"providerKey": "github", "displayName": "octo",
                   "config": {"baseUrl": github.base},
                   "credential": {"kind": "apiKey", "apiKey": PAT}}),
        )
        .await;
    assert_eq!(r.status(), 201, "{}", r.text().await.unwrap());
    let connection = r.json::<Value>().await.unwrap()["id"]
        .as_str()
        .unwrap()
        .to_owned();

    // The connection's webhook source: GitHub deliveries of it reach the github app.
    let secret = "whsec-github-e2e-0123456789abcdef";
    let r = platform
        .post(
            "/webhook-gateway/api/webhooks/sources",
            &token,
            json!({"provider": "github", "secret": secret, "connectionId": connection}),
        )
        .await;
    assert_eq!(r.status(), 201, "{}", r.text().await.unwrap());
    let source: Value = r.json().await.unwrap();
    assert_eq!(source["app"], "github");
    let inbound = source["url"].as_str().unwrap().to_owned();

    let r = platform
        .post(
            "/github/api/integrations/runs",
            &token,
            json!({"connectionId": connection, "operation": "startWorkflow",
                   "input": {"owner": "octo", "repository": "svc-a", "workflow": "deploy.yml", "ref": "main"}}),
        )
        .await;
    assert_eq!(r.status(), 202, "{}", r.text().await.unwrap());
    let run = r.json::<Value>().await.unwrap()["runId"]
        .as_str()
        .unwrap()
        .to_owned();
    let waiting = platform
        .run_until("github", &token, &run, &["waiting"])
        .await;
    assert_eq!(waiting["output"]["runId"], RUN_ID, "{waiting}");
    // Another tenant does not see it.
    let r = platform
        .get(&format!("/github/api/integrations/runs/{run}"), &other)
        .await;
    testkit::assert_problem(r, 404, "not_found").await;

    // GitHub reports the workflow run completed, signed with the source's secret.
    let body = serde_json::to_vec(&json!({
        "action": "completed",
        "workflow_run": {"id": RUN_ID, "status": "completed", "conclusion": "success",
            "html_url": format!("https://github.com/octo/svc-a/actions/runs/{RUN_ID}"),
            "run_started_at": "2026-12-07T10:00:00Z", "updated_at": "2026-12-07T10:01:30Z"},
        "repository": {"full_name": "octo/svc-a"},
        "installation": {"id": 12345}
    }))
    .unwrap();
    let r = platform
        .client
        .post(&inbound)
        .header("content-type", "application/json")
        .header("x-github-event", "workflow_run")
        .header("x-github-delivery", "72d3162e-cc78-11e3-81ab-4c9367dc0958")
        .header(
            "x-hub-signature-256",
            testkit::github_signature(secret, &body),
        )
        .body(body)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 202, "{}", r.text().await.unwrap());

    let done = platform
        .run_until("github", &token, &run, &["succeeded"])
        .await;
    assert_eq!(done["output"]["conclusion"], "success", "{done}");
    assert_eq!(done["output"]["durationMs"], 90_000);
    assert_eq!(*dispatches.lock().unwrap(), 1, "one dispatch for the run");
    platform.shutdown().await;
}

/// Test-only RSA keys (the auth crate's fixtures; they protect nothing).
const APP_KEY: &str = include_str!("../../../../shared/platform/auth/tests/fixtures/key1.pem");
const APP_PUBLIC_KEY: &str =
    include_str!("../../../../shared/platform/auth/tests/fixtures/key1.pub.pem");
const NEXT_APP_KEY: &str = include_str!("../../../../shared/platform/auth/tests/fixtures/key2.pem");
const NEXT_APP_PUBLIC_KEY: &str =
    include_str!("../../../../shared/platform/auth/tests/fixtures/key2.pub.pem");

/// What the App fake counted: installation tokens issued (and the App key that signed the
/// JWT each was exchanged for), pull requests opened; the App's keys GitHub takes.
struct AppWorld {
    tokens: u32,
    minted_by: Vec<&'static str>,
    /// Installation tokens GitHub still takes.
    live: Vec<String>,
    pulls: Vec<(String, String)>,
    keys: Vec<&'static str>,
}

impl Default for AppWorld {
    fn default() -> Self {
        AppWorld {
            tokens: 0,
            minted_by: Vec::new(),
            live: Vec::new(),
            pulls: Vec::new(),
            keys: vec![APP_PUBLIC_KEY],
        }
    }
}

/// GitHub for a GitHub App: the JWT checked against the App's public key, one installation
/// token per exchange, the repository, pull requests by head and base.
async fn fake_github_app() -> (FakeVendor, Arc<Mutex<AppWorld>>) {
    let world = Arc::new(Mutex::new(AppWorld::default()));
    let w = world.clone();
    let fake = FakeVendor::start(move |r, _| {
        let bearer = r
            .header("authorization")
            .and_then(|a| a.strip_prefix("Bearer "))
            .unwrap_or_default()
            .to_owned();
        let mut w = w.lock().unwrap();
        if r.path == "/app/installations/77/access_tokens" {
            let mut validation = jsonwebtoken::Validation::new(jsonwebtoken::Algorithm::RS256);
            validation.set_issuer(&["4242"]);
            let signer = w.keys.iter().copied().find(|public| {
                let key = jsonwebtoken::DecodingKey::from_rsa_pem(public.as_bytes()).unwrap();
                jsonwebtoken::decode::<Value>(&bearer, &key, &validation).is_ok()
            });
            let Some(signer) = signer else {
                return Reply::json(
                    401,
                    json!({"message": "A JSON web token could not be decoded"}),
                );
            };
            w.tokens += 1;
            w.minted_by.push(signer);
            let token = format!("ghs_{}", w.tokens);
            w.live.push(token.clone());
            let expires = chrono::Utc::now() + chrono::TimeDelta::hours(1);
            return Reply::json(
                201,
                json!({"token": token, "expires_at": expires.to_rfc3339()}),
            );
        }
        if !w.live.contains(&bearer) {
            return Reply::json(401, json!({"message": "Bad credentials"}));
        }
        match (r.method.as_str(), r.path.as_str()) {
            ("GET", "/rate_limit") => Reply::json(200, json!({"resources": {}})),
            ("GET", "/repos/octo/svc-a") => Reply::json(
                200,
                json!({"id": 1296269, "full_name": "octo/svc-a", "private": true,
                       "default_branch": "main", "html_url": "https://github.com/octo/svc-a"}),
            ),
            ("GET", "/repos/octo/svc-a/pulls") => {
                let query = r.query.clone().unwrap_or_default();
                let open: Vec<Value> = w
                    .pulls
                    .iter()
                    .enumerate()
                    .filter(|(_, (h, b))| {
                        query.contains(&format!("head=octo:{h}"))
                            && query.contains(&format!("base={b}"))
                    })
                    .map(|(i, _)| {
                        json!({"number": i + 1, "state": "open",
                        "html_url": format!("https://github.com/octo/svc-a/pull/{}", i + 1)})
                    })
                    .collect();
                Reply::json(200, Value::Array(open))
            }
            ("POST", "/repos/octo/svc-a/pulls") => {
                let body = r.json();
                let pair = (
                    body["head"].as_str().unwrap_or_default().to_owned(),
                    body["base"].as_str().unwrap_or_default().to_owned(),
                );
                if w.pulls.contains(&pair) {
                    return Reply::json(
                        422,
                        json!({"message": "Validation Failed",
                        "errors": [{"message": "A pull request already exists for octo:x."}]}),
                    );
                }
                w.pulls.push(pair);
                let n = w.pulls.len();
                Reply::json(
                    201,
                    json!({"number": n, "state": "open",
                    "html_url": format!("https://github.com/octo/svc-a/pull/{n}")}),
                )
            }
            _ => Reply::json(404, json!({"message": "Not Found"})),
        }
    })
    .await;
    (fake, world)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_app_token_serves_a_hundred_runs_and_a_pull_request_is_opened_once() {
    let (github, world) = fake_github_app().await;
    let platform = TestPlatform::start(
        &[registry::registration(), github::registration()],
        json!({"OUTBOUND_ALLOWED_HOSTS": "localhost,127.0.0.1"}),
    )
    .await;
    let token = platform.token("tenant-a", &[]);
    let r = platform
        .post(
            "/github/api/integrations/connections",
            &token,
            json!({"providerKey": "github", "displayName": "octo app",
                   "config": {"baseUrl": github.base},
                   "credential": {"kind": "githubApp", "appId": "4242", "privateKey": APP_KEY,
                                  "installationId": "77"}}),
        )
        .await;
    assert_eq!(r.status(), 201, "{}", r.text().await.unwrap());
    let connection = r.json::<Value>().await.unwrap()["id"]
        .as_str()
        .unwrap()
        .to_owned();

    // A hundred concurrent runs, waited for: one installation token for all of them (the
    // connection test fetched it).
    let runs = (0..100).map(|_| {
        let (platform, token, connection) = (&platform, &token, &connection);
        async move {
            platform
                .client
                .post(platform.url("/github/api/integrations/runs"))
                .bearer_auth(token)
                .header("Prefer", "wait=30")
                .json(
                    &json!({"connectionId": connection, "operation": "getRepository",
                              "input": {"owner": "octo", "repository": "svc-a"}}),
                )
                .send()
                .await
                .unwrap()
                .json::<Value>()
                .await
                .unwrap()
        }
    });
    for done in futures::future::join_all(runs).await {
        assert_eq!(done["status"], "succeeded", "{done}");
        assert_eq!(done["output"]["defaultBranch"], "main");
    }
    assert_eq!(world.lock().unwrap().tokens, 1, "one installation token");

    // The same pull request asked for under two idempotency keys: one pull request.
    let mut numbers = Vec::new();
    for key in ["pr-a", "pr-b"] {
        let done: Value = platform
            .client
            .post(platform.url("/github/api/integrations/runs"))
            .bearer_auth(&token)
            .header("Prefer", "wait=30")
            .header("Idempotency-Key", key)
            .json(
                &json!({"connectionId": connection, "operation": "openPullRequest",
                          "input": {"owner": "octo", "repository": "svc-a", "head": "feature-x",
                                    "base": "main", "title": "Add x"}}),
            )
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        assert_eq!(done["status"], "succeeded", "{done}");
        numbers.push((
            done["output"]["number"].clone(),
            done["output"]["created"].clone(),
        ));
    }
    assert_eq!(numbers, [(json!(1), json!(true)), (json!(1), json!(false))]);
    assert_eq!(world.lock().unwrap().pulls.len(), 1);
    platform.shutdown().await;
}

/// A GitHub App's private key rotated through the registry: the re-test mints a token with
/// the new key, and once GitHub has deleted the old key (and every token it minted) the
/// next run still works, with no restart.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rotated_app_key_is_used_by_the_next_run_without_a_restart() {
    let (github, world) = fake_github_app().await;
    let platform = TestPlatform::start(
        &[registry::registration(), github::registration()],
        json!({"OUTBOUND_ALLOWED_HOSTS": "localhost,127.0.0.1"}),
    )
    .await;
    let token = platform.token("tenant-a", &[]);
    let credential =
        |key: &str| json!({"appId": "4242", "privateKey": key, "installationId": "77"});
    let mut body = json!({"providerKey": "github", "displayName": "octo app",
                          "config": {"baseUrl": github.base},
                          "credential": credential(APP_KEY)});
    body["credential"]["kind"] = json!("githubApp");
    let r = platform
        .post("/github/api/integrations/connections", &token, body)
        .await;
    assert_eq!(r.status(), 201, "{}", r.text().await.unwrap());
    let created: Value = r.json().await.unwrap();
    let connection = created["id"].as_str().unwrap().to_owned();
    let credential_id = created["credentialId"].as_str().unwrap().to_owned();
    let read_repository = || {
        let (platform, token, connection) = (&platform, &token, &connection);
        async move {
            platform
                .client
                .post(platform.url("/github/api/integrations/runs"))
                .bearer_auth(token)
                .header("Prefer", "wait=30")
                .json(
                    &json!({"connectionId": connection, "operation": "getRepository",
                              "input": {"owner": "octo", "repository": "svc-a"}}),
                )
                .send()
                .await
                .unwrap()
                .json::<Value>()
                .await
                .unwrap()
        }
    };
    assert_eq!(read_repository().await["status"], "succeeded");

    // The App gets a second key; the credential rotates to it (re-tested with it).
    world.lock().unwrap().keys.push(NEXT_APP_PUBLIC_KEY);
    let r = platform
        .post(
            "/registry/api/integrations/credentials/rotate",
            &token,
            json!({"credentialId": credential_id, "secret": credential(NEXT_APP_KEY)}),
        )
        .await;
    assert_eq!(r.status(), 202, "{}", r.text().await.unwrap());
    let rotation = r.json::<Value>().await.unwrap()["rotationId"]
        .as_str()
        .unwrap()
        .to_owned();
    let decided = platform.rotation_decided(&token, &rotation).await;
    assert_eq!(
        (decided["status"].as_str(), decided["outcome"].as_str()),
        (Some("promoted"), Some("succeeded")),
        "{decided}"
    );

    assert_eq!(
        world.lock().unwrap().minted_by,
        [APP_PUBLIC_KEY, NEXT_APP_PUBLIC_KEY],
        "the re-test exchanged a JWT of the new key"
    );

    // GitHub deletes the old key, and with it every token the old key's JWTs got.
    {
        let mut w = world.lock().unwrap();
        w.keys.retain(|k| *k != APP_PUBLIC_KEY);
        let old: Vec<String> = w
            .minted_by
            .iter()
            .enumerate()
            .filter(|(_, k)| **k == APP_PUBLIC_KEY)
            .map(|(i, _)| format!("ghs_{}", i + 1))
            .collect();
        w.live.retain(|t| !old.contains(t));
    }
    // Apps see a promoted version once their credential reference expires (custody's
    // resolver keeps references five seconds); no restart is involved.
    tokio::time::sleep(Duration::from_millis(5_500)).await;
    let done = read_repository().await;
    assert_eq!(done["status"], "succeeded", "{done}");
    assert_eq!(
        world.lock().unwrap().minted_by,
        [APP_PUBLIC_KEY, NEXT_APP_PUBLIC_KEY],
        "the run used the new key's token, fetched for the re-test"
    );
    // The API version the adapter pins is the provider's client in the registry.
    let clients: Value = platform
        .get(
            "/registry/api/integrations/providers/github/clients",
            &token,
        )
        .await
        .json()
        .await
        .unwrap();
    let pinned: Vec<(&str, &str)> = clients["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| (c["name"].as_str().unwrap(), c["version"].as_str().unwrap()))
        .collect();
    assert_eq!(pinned, [("rest", "2022.11.28")], "{clients}");
    platform.shutdown().await;
}
