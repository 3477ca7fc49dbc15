//! Pipelines and Entra ID against a fake Azure DevOps (and a fake Entra ID token endpoint)
//! over real HTTP, in their documented shapes: the Runs API (`_apis/pipelines/{id}/runs`),
//! the client-credentials grant with Azure DevOps' scope, 401 for a bearer it no longer
//! takes, and the `run-state-changed` service hook.

use std::sync::{Arc, Mutex};

use base64::Engine as _;
use domain::{CredentialKind, FailureClassification};
use integration_kit::testing::{FakeVendor, Harness, Perform, Recorded, Reply, assert_no_secret};
use serde_json::{Value, json};

use super::*;

const PAT: &str = "adopat0123456789abcdefghijklmnopqrstuvwxyz0123456789ab";
const CLIENT_ID: &str = "6731de76-14a6-49ae-97bc-6eba6914391e";
const CLIENT_SECRET: &str = "Xq~8Q~entra-secret-0123456789abcdefghij";
const PIPELINE: u64 = 17;
const PROJECT_GUID: &str = "6ce954b1-ce1f-45d1-b94d-e6bf2464ba2c";

#[derive(Default)]
struct World {
    runs: Vec<Value>,
    /// Bearer tokens issued, and those Azure DevOps still takes.
    issued: Vec<String>,
    valid: Vec<String>,
}

fn error(status: u16, type_key: &str, message: &str) -> Reply {
    Reply::json(
        status,
        json!({"$id": "1", "innerException": null, "message": message,
               "typeName": format!("Microsoft.Azure.Pipelines.WebApi.{type_key}, Microsoft.Azure.Pipelines.WebApi"),
               "typeKey": type_key, "errorCode": 0, "eventId": 3000}),
    )
}

fn web(run: u64) -> String {
    format!("https://dev.azure.com/fabrikam/{PROJECT_GUID}/_build/results?buildId={run}")
}

/// Entra ID's token endpoint: the client-credentials grant, the secret in the form.
fn entra(world: &mut World, r: &Recorded) -> Reply {
    let form = |k: &str| r.form_field(k);
    if form("grant_type").as_deref() != Some("client_credentials")
        || form("scope").as_deref() != Some(ENTRA_SCOPE)
    {
        return Reply::json(
            400,
            json!({"error": "invalid_request", "error_description": "AADSTS900144: bad request."}),
        );
    }
    if form("client_id").as_deref() != Some(CLIENT_ID)
        || form("client_secret").as_deref() != Some(CLIENT_SECRET)
    {
        return Reply::json(
            401,
            json!({"error": "invalid_client",
                   "error_description": "AADSTS7000215: Invalid client secret provided."}),
        );
    }
    let token = format!(
        "eyJ0eXAiOiJKV1QiLCJhbGciOiJSUzI1NiJ9.ado-{}",
        world.issued.len()
    );
    world.issued.push(token.clone());
    world.valid.push(token.clone());
    Reply::json(
        200,
        json!({"token_type": "Bearer", "expires_in": 3599, "ext_expires_in": 3599,
               "access_token": token}),
    )
}

/// Azure DevOps' Runs API for pipeline 17 of `fabrikam/Fabrikam-Fiber`.
fn azure_devops(world: &Arc<Mutex<World>>, r: &Recorded) -> Reply {
    let mut world = world.lock().unwrap();
    if r.path == "/entra-tenant/oauth2/v2.0/token" {
        return entra(&mut world, r);
    }
    let basic = format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(format!(":{PAT}"))
    );
    let authorization = r.header("authorization").unwrap_or_default();
    let bearer = authorization
        .strip_prefix("Bearer ")
        .is_some_and(|t| world.valid.iter().any(|v| v == t));
    if authorization != basic && !bearer {
        return Reply::text(401, "").header("www-authenticate", "Bearer");
    }
    if !r
        .query
        .as_deref()
        .unwrap_or_default()
        .contains("api-version=7.1")
    {
        return error(
            400,
            "VssVersionOutOfRangeException",
            "The api-version is missing.",
        );
    }
    let runs = format!("/fabrikam/Fabrikam-Fiber/_apis/pipelines/{PIPELINE}/runs");
    match (r.method.as_str(), r.path.as_str()) {
        ("POST", p) if p == runs => {
            let body = r.json();
            let Some(ref_name) = body["resources"]["repositories"]["self"]["refName"].as_str()
            else {
                return error(400, "ArgumentException", "A refName is required.");
            };
            if !ref_name.starts_with("refs/") {
                return error(400, "ArgumentException", "Unexpected refName.");
            }
            let id = 301 + world.runs.len() as u64;
            let run = json!({
                "_links": {"self": {"href": format!("https://dev.azure.com/fabrikam/{PROJECT_GUID}/_apis/pipelines/{PIPELINE}/runs/{id}")},
                           "web": {"href": web(id)}},
                "pipeline": {"id": PIPELINE, "revision": 3, "name": "deploy", "folder": "\\"},
                "state": "inProgress", "createdDate": "2026-12-07T10:00:00.1234567Z",
                "url": format!("https://dev.azure.com/fabrikam/{PROJECT_GUID}/_apis/pipelines/{PIPELINE}/runs/{id}"),
                "id": id, "name": "20261207.1",
                "resources": {"repositories": {"self": {"refName": ref_name}}},
                "templateParameters": body["templateParameters"],
            });
            world.runs.push(run.clone());
            Reply::json(200, run)
        }
        ("GET", p) if p.starts_with(&format!("{runs}/")) => {
            let id: u64 = p.rsplit('/').next().unwrap().parse().unwrap_or(0);
            match world.runs.iter().find(|run| run["id"] == id) {
                Some(run) => Reply::json(200, run.clone()),
                None => error(
                    404,
                    "PipelineRunNotFoundException",
                    &format!("Run with id {id} for pipeline {PIPELINE} not found."),
                ),
            }
        }
        _ => error(404, "PipelineNotFoundException", "Pipeline not found."),
    }
}

async fn fake() -> (FakeVendor, Arc<Mutex<World>>) {
    let world = Arc::new(Mutex::new(World::default()));
    let w = world.clone();
    (
        FakeVendor::start(move |r, _| azure_devops(&w, r)).await,
        world,
    )
}

fn pat(base: &str) -> Harness {
    Harness::new(
        "azure-devops",
        CredentialKind::ApiKey,
        json!({"apiKey": PAT}),
        json!({"baseUrl": base}),
    )
}

fn principal(base: &str, secret: &str) -> Harness {
    Harness::new(
        "azure-devops",
        CredentialKind::Oauth2ClientCredentials,
        json!({"clientId": CLIENT_ID, "clientSecret": secret,
               "tokenUrl": format!("{base}/entra-tenant/oauth2/v2.0/token")}),
        json!({"baseUrl": base}),
    )
}

fn start_input() -> Value {
    json!({"organization": "fabrikam", "project": "Fabrikam-Fiber", "pipelineId": PIPELINE,
           "ref": "main", "inputs": {"environment": "staging"}})
}

async fn start(h: &Harness) -> integration_kit::Wait {
    match integration_kit::testing::step::<StartPipeline, _>(
        &AzureDevOps,
        &h.call(),
        &start_input(),
    )
    .await
    .unwrap()
    {
        Step::Wait(wait) => wait,
        Step::Done(_) => panic!("a started pipeline waits"),
    }
}

async fn look(h: &Harness, state: &Value) -> Step<PipelineRun> {
    let input = integration_kit::parse_input::<StartPipeline>(&start_input()).unwrap();
    Serves::<StartPipeline>::resume(&AzureDevOps, &h.call(), &input, state)
        .await
        .unwrap()
}

#[tokio::test]
async fn a_started_pipeline_waits_until_its_run_completes() {
    let (fake, world) = fake().await;
    let h = pat(&fake.base);
    let wait = start(&h).await;
    assert_eq!(wait.correlation.as_deref(), Some("17/301"));
    assert_eq!(
        wait.progress,
        Some(json!({"runId": 301, "pipelineId": PIPELINE, "url": web(301)}))
    );
    assert_eq!(wait.after, source_control::FIRST_LOOK);
    let started = fake
        .requests()
        .into_iter()
        .find(|r| r.method == "POST")
        .unwrap();
    assert_eq!(
        started.json(),
        json!({"resources": {"repositories": {"self": {"refName": "refs/heads/main"}}},
               "templateParameters": {"environment": "staging"}})
    );
    // Still in progress: look again later, and later still.
    let Step::Wait(again) = look(&h, &wait.state).await else {
        panic!("still waiting")
    };
    assert!(again.after > wait.after, "{:?}", again.after);
    assert_eq!(again.progress.as_ref().unwrap()["state"], "inProgress");
    // Azure DevOps finishes it, 95 seconds after it was created.
    {
        let mut w = world.lock().unwrap();
        let run = &mut w.runs[0];
        run["state"] = json!("completed");
        run["result"] = json!("failed");
        run["finishedDate"] = json!("2026-12-07T10:01:35.1234567Z");
    }
    let Step::Done(done) = look(&h, &again.state).await else {
        panic!("completed")
    };
    assert_eq!(done.output.result.as_deref(), Some("failed"));
    assert_eq!(done.output.duration_ms, Some(95_000));
    assert_eq!(done.output.url, web(301));
    // The same run read on its own; an unknown one is the vendor's 404.
    let read = Perform::<GetPipelineRun>::perform(
        &AzureDevOps,
        &h.call(),
        &json!({"organization": "fabrikam", "project": "Fabrikam-Fiber", "pipelineId": PIPELINE, "runId": 301}),
    )
    .await
    .unwrap();
    assert_eq!(read.output["state"], "completed");
    assert_eq!(read.output["finishedDate"], "2026-12-07T10:01:35.1234567Z");
    let e = Perform::<GetPipelineRun>::perform(
        &AzureDevOps,
        &h.call(),
        &json!({"organization": "fabrikam", "project": "Fabrikam-Fiber", "pipelineId": PIPELINE, "runId": 999}),
    )
    .await
    .unwrap_err();
    assert_eq!(e.failure.class, FailureClassification::Validation);
    assert_eq!(
        e.failure.vendor_code.as_deref(),
        Some("PipelineRunNotFoundException")
    );
}

#[tokio::test]
async fn a_service_principal_fetches_one_token_for_many_calls_and_again_after_a_401() {
    let (fake, world) = fake().await;
    let h = principal(&fake.base, CLIENT_SECRET);
    // Twenty pipelines started at once: one token for all.
    let calls: Vec<_> = (0..20).map(|_| h.call()).collect();
    let input = start_input();
    let starts = calls
        .iter()
        .map(|call| integration_kit::testing::step::<StartPipeline, _>(&AzureDevOps, call, &input));
    for r in futures::future::join_all(starts).await {
        assert!(matches!(r.unwrap(), Step::Wait(_)));
    }
    let read = json!({"organization": "fabrikam", "project": "Fabrikam-Fiber",
                      "pipelineId": PIPELINE, "runId": 301});
    Perform::<GetPipelineRun>::perform(&AzureDevOps, &h.call(), &read)
        .await
        .unwrap();
    assert_eq!(
        world.lock().unwrap().issued.len(),
        1,
        "one token for 21 calls"
    );
    let token_request = fake
        .requests()
        .into_iter()
        .find(|r| r.path.ends_with("/token"))
        .unwrap();
    assert_eq!(
        token_request.form_field("scope").as_deref(),
        Some(ENTRA_SCOPE)
    );
    assert!(
        token_request.header("authorization").is_none(),
        "the secret goes in the form"
    );
    assert_eq!(h.tokens.stats().fetches, 1);

    // Azure DevOps stops taking it (revoked early): dropped, fetched again, once.
    world.lock().unwrap().valid.clear();
    let again = Perform::<GetPipelineRun>::perform(&AzureDevOps, &h.call(), &read)
        .await
        .unwrap();
    assert_eq!(again.output["runId"], 301);
    assert_eq!(world.lock().unwrap().issued.len(), 2);
}

#[tokio::test]
async fn a_refused_client_secret_is_an_auth_failure_without_the_secret() {
    let (fake, world) = fake().await;
    let wrong = "Xq~8Q~not-the-secret-0123456789abcdefghij";
    let h = principal(&fake.base, wrong);
    let e =
        integration_kit::testing::step::<StartPipeline, _>(&AzureDevOps, &h.call(), &start_input())
            .await
            .err()
            .unwrap();
    assert_eq!(e.failure.class, FailureClassification::Auth);
    assert!(!e.retryable);
    assert!(
        e.failure.message.contains("AADSTS7000215"),
        "{}",
        e.failure.message
    );
    assert_no_secret(&e, &[wrong, CLIENT_SECRET]);
    assert!(world.lock().unwrap().runs.is_empty(), "nothing started");

    // A token endpoint at an internal address (an IP literal never meets the guard's
    // resolver) is refused before any request.
    let mut h = principal(&fake.base, CLIENT_SECRET);
    h.credential = custody::SecretMaterial::new(
        CredentialKind::Oauth2ClientCredentials,
        json!({"clientId": CLIENT_ID, "clientSecret": CLIENT_SECRET,
               "tokenUrl": "http://169.254.169.254/metadata/identity/oauth2/token"})
        .as_object()
        .cloned()
        .unwrap(),
    )
    .unwrap();
    let e =
        integration_kit::testing::step::<StartPipeline, _>(&AzureDevOps, &h.call(), &start_input())
            .await
            .err()
            .unwrap();
    assert_eq!(e.failure.class, FailureClassification::Validation);
    assert!(
        e.failure.message.contains("tokenUrl"),
        "{}",
        e.failure.message
    );
}

#[test]
fn a_completed_run_state_changed_event_ends_the_wait_it_names() {
    let config = domain::ConnectionConfig::default();
    let hook = |event: &str, body: Value| {
        let bytes = serde_json::to_vec(&body).unwrap();
        let webhook = integration_kit::VendorWebhook {
            event_type: Some(event),
            delivery_id: Some("fcad4962-f3a6-4fbf-9653-2058c304503f"),
            content_type: Some("application/json"),
            body: &bytes,
            config: &config,
        };
        AzureDevOps.webhook(&webhook)
    };
    let event = |state: &str| {
        json!({"subscriptionId": "8d91ad83-1db5-4d43-8c5a-9bb2239644b1", "notificationId": 3,
            "id": "fcad4962-f3a6-4fbf-9653-2058c304503f", "eventType": RUN_STATE_CHANGED,
            "publisherId": "pipelines",
            "message": {"text": "Run 20261207.1 succeeded."},
            "resource": {
                "run": {"id": 301, "name": "20261207.1", "state": state, "result": "succeeded",
                        "createdDate": "2026-12-07T10:00:00Z", "finishedDate": "2026-12-07T10:02:00Z",
                        "url": format!("https://dev.azure.com/fabrikam/{PROJECT_GUID}/_apis/pipelines/17/runs/301"),
                        "_links": {"web": {"href": web(301)}}},
                "pipeline": {"id": PIPELINE, "name": "deploy"},
                "runId": 301},
            "resourceVersion": "5.1-preview.1",
            "createdDate": "2026-12-07T10:02:01Z"})
    };
    let effects = hook(RUN_STATE_CHANGED, event("completed")).unwrap();
    match effects.as_slice() {
        [WebhookEffect::Completed { correlation, done }] => {
            assert_eq!(correlation, "17/301");
            assert_eq!(done.output["result"], "succeeded");
            assert_eq!(done.output["durationMs"], 120_000);
            assert_eq!(done.output["url"], web(301));
        }
        other => panic!("{other:?}"),
    }
    assert!(
        hook(RUN_STATE_CHANGED, event("inProgress"))
            .unwrap()
            .is_empty()
    );
    assert!(
        hook("git.pullrequest.created", json!({"resource": {}}))
            .unwrap()
            .is_empty()
    );
    assert!(
        hook(
            RUN_STATE_CHANGED,
            json!({"resource": {"run": {"state": "completed"}, "pipeline": {"id": 17}}})
        )
        .is_err()
    );
}
