//! The kit on its own, with a scripted provider through the local runner: typed inputs
//! refused at their field, outputs kept (inline and in blob storage), `Prefer: wait`, runs
//! that wait for their vendor and are resumed, time out, or fail over, and one vendor call
//! per run and per idempotency key.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use app_context::{AppContext, AppRegistration};
use async_trait::async_trait;
use domain::{CredentialKind, FailureClassification};
use functions_runtime::FunctionApp;
use integration_kit::{
    Done, InputError, Operation, Provider, ProviderCall, Served, Serves, Step, VendorApp, Wait,
    call_failed,
};
use resilience::CallError;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use testkit::TestPlatform;

/// Named after a vendor app not built yet, so the webhook gateway (which routes only to the
/// platform's vendor apps) routes to it; its routes are under `/support`.
const SLUG: &str = "support";

/// Vendor calls per run (the idempotency key the kit gives the provider).
static CALLS: Mutex<Option<HashMap<String, u32>>> = Mutex::new(None);

fn count_call(call: &ProviderCall<'_>) -> u32 {
    let key = call.idempotency_key.unwrap_or_default().to_owned();
    let mut calls = CALLS.lock().unwrap();
    let n = calls
        .get_or_insert_with(HashMap::new)
        .entry(key)
        .or_insert(0);
    *n += 1;
    *n
}

fn calls(run: &str) -> u32 {
    CALLS
        .lock()
        .unwrap()
        .as_ref()
        .and_then(|c| c.get(run).copied())
        .unwrap_or(0)
}

/// A vendor steered by the connection's config `mode`: `ok`, or `down` (every call fails as
/// a transient outage).
struct Script;

#[async_trait]
impl Provider for Script {
    fn key(&self) -> &'static str {
        "script"
    }

    fn credential_kinds(&self) -> &'static [CredentialKind] {
        &[CredentialKind::ApiKey]
    }

    async fn test_connection(&self, _call: &ProviderCall<'_>) -> Result<(), CallError> {
        Ok(())
    }

    /// `{"job", "status": "completed" | "failed", "checks"}` ends the job's wait.
    fn webhook(
        &self,
        webhook: &integration_kit::VendorWebhook<'_>,
    ) -> Result<Vec<integration_kit::WebhookEffect>, String> {
        if webhook.event_type != Some("job") {
            return Ok(Vec::new());
        }
        let body: Value = serde_json::from_slice(webhook.body).map_err(|e| e.to_string())?;
        let job = body["job"].as_str().ok_or("no job")?.to_owned();
        Ok(vec![match body["status"].as_str() {
            Some("completed") => integration_kit::WebhookEffect::completed::<Job>(
                job.clone(),
                Done::new(JobOut {
                    job_id: job,
                    checks: body["checks"].as_u64().unwrap_or(0) as u32,
                }),
            ),
            _ => integration_kit::WebhookEffect::failed(
                job,
                call_failed(FailureClassification::Unprocessable, "the job failed"),
            ),
        }])
    }

    fn serves(served: &mut Served<Self>) {
        served
            .operation::<Echo>()
            .operation::<Job>()
            .operation::<Stuck>()
            .config::<ScriptConfig>();
    }
}

/// The scripted vendor's connection config.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ScriptConfig {
    #[serde(default)]
    mode: Option<String>,
}

/// What serde cannot say: `mode` is `ok` or `down`.
impl integration_kit::ProviderConfig for ScriptConfig {
    fn check(&self) -> Result<(), integration_kit::InputError> {
        match self.mode.as_deref() {
            None | Some("ok" | "down") => Ok(()),
            Some(_) => Err(integration_kit::InputError::at(
                "mode",
                "must be ok or down",
            )),
        }
    }
}

fn down(call: &ProviderCall<'_>) -> Result<(), CallError> {
    let config: ScriptConfig = call.config_as()?;
    if config.mode.as_deref() == Some("down") {
        return Err(call_failed(
            FailureClassification::Transient,
            "the scripted vendor is down",
        ));
    }
    Ok(())
}

/// `echo`: `{text, repeat?}` → `{text}` repeated (a large output when asked).
struct Echo;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct EchoIn {
    text: String,
    #[serde(default)]
    repeat: Option<usize>,
}

#[derive(Serialize)]
struct EchoOut {
    text: String,
    calls: u32,
}

impl Operation for Echo {
    const NAME: &'static str = "echo";
    type Input = EchoIn;
    type Output = EchoOut;

    fn check(input: &EchoIn) -> Result<(), InputError> {
        if input.text.is_empty() {
            return Err(InputError::at("text", "must not be empty"));
        }
        if input.repeat.is_some_and(|r| r > 100_000) {
            return Err(InputError::at("repeat", "at most 100000"));
        }
        Ok(())
    }
}

#[async_trait]
impl Serves<Echo> for Script {
    async fn execute(
        &self,
        call: &ProviderCall<'_>,
        input: &EchoIn,
    ) -> Result<Step<EchoOut>, CallError> {
        down(call)?;
        let calls = count_call(call);
        Ok(Done::new(EchoOut {
            text: input.text.repeat(input.repeat.unwrap_or(1)),
            calls,
        })
        .into())
    }
}

/// `job`: `{checks, flaky?}`: the vendor finishes after being asked `checks` times; a flaky
/// vendor fails the first look with a transient error.
struct Job;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct JobIn {
    checks: u32,
    #[serde(default)]
    flaky: bool,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct JobOut {
    job_id: String,
    checks: u32,
}

impl Operation for Job {
    const NAME: &'static str = "job";
    type Input = JobIn;
    type Output = JobOut;
}

#[async_trait]
impl Serves<Job> for Script {
    async fn execute(
        &self,
        call: &ProviderCall<'_>,
        _input: &JobIn,
    ) -> Result<Step<JobOut>, CallError> {
        down(call)?;
        count_call(call);
        let job = format!("job-{}", call.idempotency_key.unwrap_or_default());
        Ok(
            Wait::after(Duration::from_millis(100), json!({"job": job, "seen": 0}))
                .progress(json!({"jobId": job}))
                .correlate(job)
                .into(),
        )
    }

    async fn resume(
        &self,
        _call: &ProviderCall<'_>,
        input: &JobIn,
        state: &Value,
    ) -> Result<Step<JobOut>, CallError> {
        let job = state["job"].as_str().unwrap_or_default().to_owned();
        if input.flaky {
            // A failed look leaves the kit's state as it was, so the job remembers here
            // that it has failed once.
            let mut flaked = FLAKED.lock().unwrap();
            if !flaked.contains(&job) {
                flaked.push(job);
                return Err(call_failed(
                    FailureClassification::Transient,
                    "the vendor's status page is down",
                ));
            }
        }
        let seen = state["seen"].as_u64().unwrap_or(0) as u32 + 1;
        if seen >= input.checks {
            return Ok(Done::new(JobOut {
                job_id: job,
                checks: seen,
            })
            .into());
        }
        Ok(Wait::after(
            Duration::from_millis(100),
            json!({"job": job, "seen": seen}),
        )
        .into())
    }
}

static FLAKED: Mutex<Vec<String>> = Mutex::new(Vec::new());

/// `stuck`: the vendor never finishes; the operation waits at most two seconds.
struct Stuck;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct StuckIn {}

impl Operation for Stuck {
    const NAME: &'static str = "stuck";
    const MAX_WAIT: Duration = Duration::from_secs(2);
    type Input = StuckIn;
    type Output = ();
}

#[async_trait]
impl Serves<Stuck> for Script {
    async fn execute(
        &self,
        _call: &ProviderCall<'_>,
        _input: &StuckIn,
    ) -> Result<Step<()>, CallError> {
        Ok(Wait::after(Duration::from_millis(200), json!({})).into())
    }

    async fn resume(
        &self,
        _call: &ProviderCall<'_>,
        _input: &StuckIn,
        _state: &Value,
    ) -> Result<Step<()>, CallError> {
        Ok(Wait::after(Duration::from_millis(200), json!({})).into())
    }
}

fn build(ctx: &AppContext) -> Result<FunctionApp, app_context::InvalidSetting> {
    VendorApp::new(SLUG, "/integration/script")
        .failover(true)
        .provider(Script)
        .build(ctx)
}

/// The scripted vendor joins the registry's catalogue on first use, as every app's
/// providers do.
const CATALOGUE: &[app_context::CatalogueEntry] = &[app_context::CatalogueEntry {
    key: "script",
    name: "Scripted vendor",
    category: domain::ProviderCategory::Other,
    auth: domain::AuthScheme::ApiKey,
    base_url: "https://script.invalid",
    retests: true,
    clients: &[],
}];

fn registration() -> AppRegistration {
    integration_kit::registration(SLUG, build, CATALOGUE)
}

/// The platform with the registry, the webhook gateway and the scripted app.
async fn start() -> TestPlatform {
    start_with(json!({})).await
}

/// [`start`] with more settings.
async fn start_with(settings: Value) -> TestPlatform {
    let mut all = json!({"RUN_MAX_ATTEMPTS": "2"});
    all.as_object_mut()
        .unwrap()
        .extend(settings.as_object().unwrap().clone());
    TestPlatform::start(
        &[
            registry::registration(),
            webhook_gateway::registration(),
            registration(),
        ],
        all,
    )
    .await
}

async fn connect(platform: &TestPlatform, token: &str, config: Value) -> String {
    let r = platform
        .post(
            "/support/api/integrations/connections",
            token,
            json!({
                "providerKey": "script",
                "displayName": "scripted",
                "config": config,
                "credential": {"kind": "apiKey", "apiKey": "sk-script-secret"},
            }),
        )
        .await;
    let status = r.status();
    let body: Value = r.json().await.unwrap();
    assert_eq!(status, 201, "{body}");
    body["id"].as_str().unwrap().to_owned()
}

async fn run(
    platform: &TestPlatform,
    token: &str,
    body: Value,
    headers: &[(&str, &str)],
) -> reqwest::Response {
    let mut rb = platform
        .client
        .post(platform.url("/support/api/integrations/runs"))
        .bearer_auth(token)
        .json(&body);
    for (k, v) in headers {
        rb = rb.header(*k, *v);
    }
    rb.send().await.unwrap()
}

/// The run once its status is one of `statuses` (within 15 s).
async fn run_when(platform: &TestPlatform, token: &str, run: &str, statuses: &[&str]) -> Value {
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let v: Value = platform
            .get(&format!("/support/api/integrations/runs/{run}"), token)
            .await
            .json()
            .await
            .unwrap();
        if statuses.contains(&v["status"].as_str().unwrap_or("")) {
            return v;
        }
        assert!(
            Instant::now() < deadline,
            "run {run} never got to {statuses:?}: {v}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

async fn finished(platform: &TestPlatform, token: &str, run: &str) -> Value {
    run_when(
        platform,
        token,
        run,
        &["succeeded", "failed", "dead_lettered"],
    )
    .await
}

/// The `runId` a `POST /runs` answered.
async fn run_id(answer: reqwest::Response) -> String {
    answer.json::<Value>().await.unwrap()["runId"]
        .as_str()
        .unwrap()
        .to_owned()
}

#[tokio::test]
async fn inputs_are_typed_and_refused_at_their_field() {
    let platform = start().await;
    let token = platform.token("tenant-a", &[]);
    let conn = connect(&platform, &token, json!({})).await;
    for (input, pointer, words) in [
        (json!({"text": 5}), "/input/text", "expected a string"),
        (json!({"text": ""}), "/input/text", "must not be empty"),
        (
            json!({"text": "a", "repeat": -1}),
            "/input/repeat",
            "invalid value",
        ),
        (
            json!({"text": "a", "colour": "red"}),
            "/input/colour",
            "unknown field `colour`",
        ),
        (json!(null), "/input", "expected struct EchoIn"),
    ] {
        let r = run(
            &platform,
            &token,
            json!({"connectionId": conn, "operation": "echo", "input": input}),
            &[],
        )
        .await;
        assert_eq!(r.status(), 400, "{input}");
        assert_eq!(
            r.headers()["content-type"],
            "application/problem+json",
            "{input}"
        );
        let problem: Value = r.json().await.unwrap();
        assert_eq!(problem["code"], "invalid_input", "{problem}");
        assert_eq!(problem["pointer"], pointer, "{problem}");
        assert!(
            problem["detail"].as_str().unwrap().contains(words),
            "{problem}"
        );
    }
    let r = run(
        &platform,
        &token,
        json!({"connectionId": conn, "operation": "fax", "input": {}}),
        &[],
    )
    .await;
    let problem = testkit::assert_problem(r, 400, "unknown_operation").await;
    assert!(
        problem["detail"]
            .as_str()
            .unwrap()
            .contains("echo, job, stuck")
    );
    let refused = |config: Value, code: &'static str| {
        let (platform, token) = (&platform, &token);
        async move {
            let r = platform
                .post(
                    "/support/api/integrations/connections",
                    token,
                    json!({"providerKey": "script", "displayName": "x", "config": config,
                           "credential": {"kind": "apiKey", "apiKey": "k"}}),
                )
                .await;
            testkit::assert_problem(r, 400, code).await
        }
    };
    // Addresses the kit knows (`baseUrl`, `endpoint`, `host`) are checked against the SSRF
    // guard for every provider, before its own config is read.
    for config in [
        json!({"baseUrl": "https://169.254.169.254"}),
        json!({"endpoint": "https://[fd00::1]"}),
        json!({"host": "169.254.169.254"}),
        json!({"host": "[::1]"}),
    ] {
        refused(config, "url_refused").await;
    }
    // The provider's typed config, refused when the connection is made: a misspelt,
    // mistyped or (by its check) malformed setting is named.
    for (config, pointer) in [
        (json!({"mod": "ok"}), "/config/mod"),
        (json!({"mode": 5}), "/config/mode"),
        (json!({"mode": "sideways"}), "/config/mode"),
    ] {
        let problem = refused(config, "invalid_config").await;
        assert_eq!(problem["pointer"], pointer, "{problem}");
    }
    // The kit's own settings are not the provider's business.
    connect(&platform, &token, json!({"mode": "ok", "priority": 3})).await;
    platform.shutdown().await;
}

#[tokio::test]
async fn prefer_wait_answers_the_finished_run_once_per_key() {
    let platform = start().await;
    let token = platform.token("tenant-a", &[]);
    let conn = connect(&platform, &token, json!({})).await;
    let body = json!({"connectionId": conn, "operation": "echo", "input": {"text": "hi"}});

    // Without the preference: 202 at once.
    let r = run(&platform, &token, body.clone(), &[]).await;
    assert_eq!(r.status(), 202);
    assert!(r.headers().get("preference-applied").is_none());

    // With it: 200 and the finished run with its output.
    let r = run(
        &platform,
        &token,
        body.clone(),
        &[
            ("Prefer", "respond-async, wait=10"),
            ("Idempotency-Key", "k-1"),
        ],
    )
    .await;
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["preference-applied"], "wait");
    let done: Value = r.json().await.unwrap();
    assert_eq!(done["status"], "succeeded", "{done}");
    assert_eq!(done["output"]["text"], "hi");
    assert_eq!(done["output"]["calls"], 1);
    assert_eq!(done["outputSummary"]["text"], "hi");
    let id = done["runId"].as_str().unwrap().to_owned();

    // The same key again: the same run, answered at once, and still one vendor call.
    let again: Value = run(
        &platform,
        &token,
        body.clone(),
        &[("Prefer", "wait=10"), ("Idempotency-Key", "k-1")],
    )
    .await
    .json()
    .await
    .unwrap();
    assert_eq!(again["runId"], id.as_str());
    assert_eq!(again["status"], "succeeded");
    // The waited run was executed in its request, once; its command on the bus is the crash
    // backup, due only once that attempt cannot be in flight (a crash mid-call is the
    // end-to-end run_crash test's).
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(calls(&id), 1);

    // The output alone, and nothing for another tenant.
    let out: Value = platform
        .get(
            &format!("/support/api/integrations/runs/{id}/output"),
            &token,
        )
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(out, json!({"text": "hi", "calls": 1}));
    let other = platform.token("tenant-b", &[]);
    let r = platform
        .get(
            &format!("/support/api/integrations/runs/{id}/output"),
            &other,
        )
        .await;
    testkit::assert_problem(r, 404, "not_found").await;

    // A preference that is not a number is ignored, as RFC 7240 asks.
    let r = run(&platform, &token, body.clone(), &[("Prefer", "wait=soon")]).await;
    assert_eq!(r.status(), 202);
    platform.shutdown().await;
}

#[tokio::test]
async fn large_outputs_are_kept_in_blob_storage() {
    let platform = start().await;
    let token = platform.token("tenant-a", &[]);
    let conn = connect(&platform, &token, json!({})).await;
    let r = run(
        &platform,
        &token,
        json!({"connectionId": conn, "operation": "echo",
               "input": {"text": "0123456789abcdef", "repeat": 4096}}),
        &[("Prefer", "wait=10")],
    )
    .await;
    assert_eq!(r.status(), 200);
    let done: Value = r.json().await.unwrap();
    let id = done["runId"].as_str().unwrap();
    assert_eq!(done["output"], Value::Null, "too large to show inline");
    assert_eq!(
        done["outputUrl"],
        format!("/api/integrations/runs/{id}/output")
    );
    // The summary stays small: no 64 KiB text on the run's event.
    assert!(done["outputSummary"].to_string().len() < 1024);
    let out: Value = platform
        .get(
            &format!("/support/api/integrations/runs/{id}/output"),
            &token,
        )
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(out["text"].as_str().unwrap().len(), 16 * 4096);
    platform.shutdown().await;
}

#[tokio::test]
async fn waiting_runs_are_resumed_until_the_vendor_is_done() {
    let platform = start().await;
    let token = platform.token("tenant-a", &[]);
    let conn = connect(&platform, &token, json!({})).await;

    // Three looks, about 100 ms apart: a waited request sees the end.
    let r = run(
        &platform,
        &token,
        json!({"connectionId": conn, "operation": "job", "input": {"checks": 3}}),
        &[("Prefer", "wait=20")],
    )
    .await;
    assert_eq!(r.status(), 200);
    let done: Value = r.json().await.unwrap();
    assert_eq!(done["status"], "succeeded", "{done}");
    let id = done["runId"].as_str().unwrap().to_owned();
    assert_eq!(
        done["output"],
        json!({"jobId": format!("job-{id}"), "checks": 3})
    );
    assert_eq!(done["attempts"].as_array().unwrap().len(), 1);
    assert_eq!(done["attempts"][0]["outcome"], "waiting");
    assert!(done.get("waiting").is_none(), "{done}");
    assert_eq!(calls(&id), 1, "the vendor's job was started once");

    // While it waits, the run says so and shows what is known already.
    let r = run(
        &platform,
        &token,
        json!({"connectionId": conn, "operation": "job", "input": {"checks": 30}}),
        &[],
    )
    .await;
    let id = run_id(r).await;
    let waiting = run_when(&platform, &token, &id, &["waiting"]).await;
    assert_eq!(waiting["output"]["jobId"], format!("job-{id}"));
    assert!(waiting["waiting"]["deadline"].is_string(), "{waiting}");
    let r = platform
        .get(
            &format!("/support/api/integrations/runs/{id}/output"),
            &token,
        )
        .await;
    assert_eq!(r.status(), 200, "the progress is the output so far");

    // A look that fails for a moment is tried again; the run still ends well.
    let r = run(
        &platform,
        &token,
        json!({"connectionId": conn, "operation": "job", "input": {"checks": 2, "flaky": true}}),
        &[],
    )
    .await;
    let id = run_id(r).await;
    let done = finished(&platform, &token, &id).await;
    assert_eq!(done["status"], "succeeded", "{done}");
    assert_eq!(done["output"]["checks"], 2);
    platform.shutdown().await;
}

#[tokio::test]
async fn a_run_waiting_past_its_maximum_fails_once_with_timeout() {
    let platform = start().await;
    let token = platform.token("tenant-a", &[]);
    let conn = connect(&platform, &token, json!({})).await;
    let started = Instant::now();
    let r = run(
        &platform,
        &token,
        json!({"connectionId": conn, "operation": "stuck", "input": {}}),
        &[("Prefer", "wait=1")],
    )
    .await;
    // Not finished within the wait (a second, where the run may wait two): the usual 202.
    assert_eq!(r.status(), 202);
    assert!(started.elapsed() >= Duration::from_millis(900));
    let id = run_id(r).await;
    let done = finished(&platform, &token, &id).await;
    assert_eq!(done["status"], "failed", "{done}");
    let failures: Value = platform
        .get("/support/api/integrations/failures", &token)
        .await
        .json()
        .await
        .unwrap();
    let mine: Vec<&Value> = failures["items"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|f| f["subject"]["id"] == id.as_str())
        .collect();
    assert_eq!(mine.len(), 1, "{failures}");
    assert_eq!(mine[0]["classification"], "timeout");
    platform.shutdown().await;
}

#[tokio::test]
async fn the_apps_maximum_wait_overrides_the_operations() {
    let platform = start_with(json!({"RUN_MAX_WAIT_SECONDS": "90"})).await;
    let token = platform.token("tenant-a", &[]);
    let conn = connect(&platform, &token, json!({})).await;
    // `job` may wait six hours by its own rule; the app allows a minute and a half.
    let r = run(
        &platform,
        &token,
        json!({"connectionId": conn, "operation": "job", "input": {"checks": 1000}}),
        &[],
    )
    .await;
    let id = run_id(r).await;
    let waiting = run_when(&platform, &token, &id, &["waiting"]).await;
    let time = |field: &str| {
        chrono::DateTime::parse_from_rfc3339(waiting["waiting"][field].as_str().unwrap()).unwrap()
    };
    assert_eq!(
        (time("deadline") - time("since")).num_seconds(),
        90,
        "{waiting}"
    );
    platform.shutdown().await;
}

#[tokio::test]
async fn a_run_fails_over_to_the_next_connection() {
    let platform = start().await;
    let token = platform.token("tenant-a", &[]);
    let down = connect(&platform, &token, json!({"mode": "down", "priority": 0})).await;
    let up = connect(&platform, &token, json!({"priority": 1})).await;
    let r = run(
        &platform,
        &token,
        json!({"connectionId": down, "operation": "echo", "input": {"text": "x"}}),
        &[("Prefer", "wait=10")],
    )
    .await;
    assert_eq!(r.status(), 200);
    let done: Value = r.json().await.unwrap();
    assert_eq!(done["status"], "succeeded", "{done}");
    assert_eq!(done["servedBy"], up.as_str());
    assert_eq!(done["failovers"][0]["connectionId"], down.as_str());
    assert_eq!(done["output"]["text"], "x");
    platform.shutdown().await;
}

/// A signed GitHub-style delivery to a gateway source.
async fn deliver(
    platform: &TestPlatform,
    url: &str,
    secret: &str,
    delivery: &str,
    body: &Value,
) -> reqwest::Response {
    let bytes = serde_json::to_vec(body).unwrap();
    platform
        .client
        .post(url)
        .header("content-type", "application/json")
        .header("x-github-event", "job")
        .header("x-github-delivery", delivery)
        .header(
            "x-hub-signature-256",
            testkit::github_signature(secret, &bytes),
        )
        .body(bytes)
        .send()
        .await
        .unwrap()
}

#[tokio::test]
async fn a_vendor_webhook_ends_a_waiting_run_once() {
    let platform = start().await;
    let token = platform.token("tenant-a", &[]);
    let conn = connect(&platform, &token, json!({})).await;
    let secret = "whsec-scripted-0123456789abcdef";

    // A source of the connection: the connection must be the caller's, in the app named.
    let other = platform.token("tenant-b", &[]);
    let source = |token: &str, body: Value| {
        let token = token.to_owned();
        let platform = &platform;
        async move {
            platform
                .post("/webhook-gateway/api/webhooks/sources", &token, body)
                .await
        }
    };
    let r = source(
        &other,
        json!({"provider": "github", "secret": secret, "connectionId": conn, "app": SLUG}),
    )
    .await;
    testkit::assert_problem(r, 404, "not_found").await;
    let r = source(
        &token,
        json!({"provider": "generic-hmac", "secret": secret, "connectionId": conn}),
    )
    .await;
    testkit::assert_problem(r, 400, "app_required").await;
    let r = source(
        &token,
        json!({"provider": "github", "secret": secret, "connectionId": conn, "app": "fax"}),
    )
    .await;
    testkit::assert_problem(r, 400, "unknown_app").await;
    let r = source(
        &token,
        json!({"provider": "github", "secret": secret, "connectionId": conn, "app": SLUG}),
    )
    .await;
    assert_eq!(r.status(), 201);
    let created: Value = r.json().await.unwrap();
    assert_eq!(created["app"], SLUG);
    let url = created["url"].as_str().unwrap().to_owned();

    // A job that would take 100 checks: the vendor's webhook ends it at once.
    let r = run(
        &platform,
        &token,
        json!({"connectionId": conn, "operation": "job", "input": {"checks": 100}}),
        &[],
    )
    .await;
    let id = run_id(r).await;
    run_when(&platform, &token, &id, &["waiting"]).await;
    let job = format!("job-{id}");
    let body = json!({"job": job, "status": "completed", "checks": 7});
    let r = deliver(&platform, &url, secret, "delivery-1", &body).await;
    assert_eq!(r.status(), 202);
    let done = finished(&platform, &token, &id).await;
    assert_eq!(done["status"], "succeeded", "{done}");
    assert_eq!(done["output"], json!({"jobId": job, "checks": 7}));
    assert!(
        done["waiting"].is_null(),
        "a finished run waits no more: {done}"
    );
    let completed_at = done["completedAt"].clone();

    // The same delivery again, and a later failure report: the run stays as it ended.
    let r = deliver(&platform, &url, secret, "delivery-1", &body).await;
    assert_eq!(r.status(), 202);
    let failed = json!({"job": job, "status": "failed"});
    assert_eq!(
        deliver(&platform, &url, secret, "delivery-2", &failed)
            .await
            .status(),
        202
    );
    tokio::time::sleep(Duration::from_millis(500)).await;
    let after: Value = platform
        .get(&format!("/support/api/integrations/runs/{id}"), &token)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(after["status"], "succeeded");
    assert_eq!(after["completedAt"], completed_at);

    // A failure report ends another waiting run with one failure.
    let r = run(
        &platform,
        &token,
        json!({"connectionId": conn, "operation": "job", "input": {"checks": 100}}),
        &[("Prefer", "wait=1")],
    )
    .await;
    assert_eq!(r.status(), 202);
    let id = run_id(r).await;
    let failed = json!({"job": format!("job-{id}"), "status": "failed"});
    assert_eq!(
        deliver(&platform, &url, secret, "delivery-3", &failed)
            .await
            .status(),
        202
    );
    let done = finished(&platform, &token, &id).await;
    assert_eq!(done["status"], "failed", "{done}");
    let failure: Value = platform
        .get(
            &format!(
                "/support/api/integrations/failures/{}",
                done["failureId"].as_str().unwrap()
            ),
            &token,
        )
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(failure["classification"], "unprocessable", "{failure}");
    platform.shutdown().await;
}
