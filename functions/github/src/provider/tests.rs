//! The provider against a fake GitHub over real HTTP, answering in GitHub's documented
//! shapes: it checks the App JWT's signature and claims, the installation token, the API
//! version header, and answers 401, 403 (permission and rate limit), 422 "already exists"
//! and the rate-limit headers as GitHub does.

use std::sync::{Arc, Mutex};

use domain::{CredentialKind, FailureClassification};
use integration_kit::testing::{
    Case, FakeVendor, Harness, Perform, Recorded, Reply, THROTTLE_SECS, assert_no_secret,
    conformance,
};
use serde_json::{Value, json};

use super::*;

/// Test-only RSA keys (the auth crate's fixtures; they protect nothing).
const PRIVATE_KEY: &str = include_str!("../../../../shared/platform/auth/tests/fixtures/key1.pem");
const PUBLIC_KEY: &str =
    include_str!("../../../../shared/platform/auth/tests/fixtures/key1.pub.pem");
const OTHER_KEY: &str = include_str!("../../../../shared/platform/auth/tests/fixtures/key2.pem");
const APP_ID: &str = "424242";
const INSTALLATION: &str = "12345";
const PAT: &str = "github_pat_11ABCDEFG0123456789_abcdefghijklmnopqrstuvwxyz";
const SHA: &str = "6dcb09b5b57875f334f61aebed695e2e4193db5e";

/// What the fake holds: the pull requests opened, the installation tokens it issued.
#[derive(Default)]
struct World {
    pulls: Vec<Value>,
    comments: Vec<Value>,
    /// Answer the next comment post with a 502 after keeping it (GitHub took it, the answer
    /// was lost).
    lose_next_comment_answer: bool,
    checks: Vec<Value>,
    workflow_runs: Vec<Value>,
    /// An older server that refuses `return_run_details`.
    no_run_details: bool,
    tokens: Vec<String>,
    /// Tokens the fake no longer accepts (as after a revocation).
    revoked: Vec<String>,
}

fn error(status: u16, message: &str) -> Reply {
    Reply::json(
        status,
        json!({"message": message, "documentation_url": "https://docs.github.com/rest", "status": status.to_string()}),
    )
}

/// The App JWT's signature (the fixture's public key) and claims, as GitHub checks them.
fn jwt_ok(r: &Recorded) -> bool {
    let Some(jwt) = r
        .header("authorization")
        .and_then(|a| a.strip_prefix("Bearer "))
    else {
        return false;
    };
    let key = jsonwebtoken::DecodingKey::from_rsa_pem(PUBLIC_KEY.as_bytes()).unwrap();
    let mut validation = jsonwebtoken::Validation::new(jsonwebtoken::Algorithm::RS256);
    validation.set_required_spec_claims(&["exp", "iat", "iss"]);
    validation.set_issuer(&[APP_ID]);
    let Ok(token) = jsonwebtoken::decode::<Value>(jwt, &key, &validation) else {
        return false;
    };
    let (iat, exp) = (
        token.claims["iat"].as_i64().unwrap_or(0),
        token.claims["exp"].as_i64().unwrap_or(0),
    );
    let now = chrono::Utc::now().timestamp();
    iat <= now && exp > now && exp - iat <= 600 + 60
}

fn pull(number: u64, head: &str, base: &str) -> Value {
    json!({"id": 1000 + number, "number": number, "state": "open",
           "html_url": format!("https://github.com/octo/svc-a/pull/{number}"),
           "head": {"ref": head, "sha": "6dcb09b5b57875f334f61aebed695e2e4193db5e"},
           "base": {"ref": base}})
}

/// GitHub as the documentation describes it, for repository `octo/svc-a`.
fn github(world: &Arc<Mutex<World>>, r: &Recorded) -> Reply {
    if r.header("x-github-api-version") != Some(API_VERSION)
        || r.header("user-agent").is_none()
        || r.header("accept") != Some("application/vnd.github+json")
    {
        return error(400, "missing headers");
    }
    let mut w = world.lock().unwrap();
    if r.path == format!("/app/installations/{INSTALLATION}/access_tokens") {
        if r.method != reqwest::Method::POST || !jwt_ok(r) {
            return error(401, "A JSON web token could not be decoded");
        }
        let token = format!("ghs_{:036}", w.tokens.len() + 1);
        w.tokens.push(token.clone());
        let expires = chrono::Utc::now() + chrono::TimeDelta::hours(1);
        return Reply::json(
            201,
            json!({"token": token, "expires_at": expires.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
                   "permissions": {"contents": "write", "pull_requests": "write", "metadata": "read"},
                   "repository_selection": "all"}),
        );
    }
    let bearer = r
        .header("authorization")
        .and_then(|a| a.strip_prefix("Bearer "))
        .unwrap_or_default()
        .to_owned();
    let known = bearer == PAT || (w.tokens.contains(&bearer) && !w.revoked.contains(&bearer));
    if !known {
        return error(401, "Bad credentials");
    }
    match (r.method.as_str(), r.path.as_str()) {
        ("GET", "/rate_limit") => Reply::json(
            200,
            json!({"resources": {"core": {"limit": 5000, "remaining": 4999, "reset": 1_788_000_000, "used": 1}}}),
        ),
        ("GET", "/repos/octo/svc-a") => Reply::json(
            200,
            json!({"id": 1296269, "name": "svc-a", "full_name": "octo/svc-a", "private": true,
                   "default_branch": "main", "html_url": "https://github.com/octo/svc-a"}),
        )
        .header("x-ratelimit-remaining", "4998"),
        ("GET", "/repos/octo/svc-a/pulls") => {
            let query = r.query.clone().unwrap_or_default();
            let open: Vec<Value> = w
                .pulls
                .iter()
                .filter(|p| {
                    let head = p["head"]["ref"]
                        .as_str()
                        .unwrap_or_default()
                        .replace('/', "%2F");
                    let base = p["base"]["ref"].as_str().unwrap_or_default();
                    query.contains(&format!("head=octo:{head}"))
                        && query.contains(&format!("base={base}"))
                })
                .cloned()
                .collect();
            Reply::json(200, Value::Array(open))
        }
        ("POST", "/repos/octo/svc-a/pulls") => {
            let body = r.json();
            let (head, base) = (
                body["head"].as_str().unwrap_or_default(),
                body["base"].as_str().unwrap_or_default(),
            );
            if body["title"].as_str().is_none_or(str::is_empty) {
                return Reply::json(
                    422,
                    json!({"message": "Validation Failed", "errors": [{"resource": "PullRequest", "field": "title", "code": "missing_field"}]}),
                );
            }
            if w.pulls
                .iter()
                .any(|p| p["head"]["ref"] == head && p["base"]["ref"] == base)
            {
                return Reply::json(
                    422,
                    json!({"message": "Validation Failed", "errors": [{"resource": "PullRequest", "code": "custom",
                           "message": format!("A pull request already exists for octo:{head}.")}]}),
                );
            }
            let pr = pull(w.pulls.len() as u64 + 1, head, base);
            w.pulls.push(pr.clone());
            Reply::json(201, pr)
        }
        ("GET", "/repos/octo/svc-a/pulls/1") => Reply::json(200, pull(1, "feature/x", "main")),
        ("GET", path) if path == format!("/repos/octo/svc-a/commits/{SHA}/check-runs") => {
            let query = r.query.clone().unwrap_or_default();
            let runs: Vec<Value> = w
                .checks
                .iter()
                .filter(|c| {
                    query.contains(&format!(
                        "check_name={}",
                        c["name"].as_str().unwrap().replace(' ', "%20")
                    ))
                })
                .cloned()
                .collect();
            Reply::json(200, json!({"total_count": runs.len(), "check_runs": runs}))
        }
        ("POST", "/repos/octo/svc-a/check-runs") => {
            if bearer == PAT {
                return error(403, "You must authenticate via a GitHub App.");
            }
            let body = r.json();
            if body["name"].as_str().is_none() || body["head_sha"].as_str().is_none() {
                return Reply::json(422, json!({"message": "Invalid request.", "errors": []}));
            }
            let id = 5000 + w.checks.len() as u64;
            let mut run = body.clone();
            run["id"] = json!(id);
            run["html_url"] = json!(format!("https://github.com/octo/svc-a/runs/{id}"));
            w.checks.push(run.clone());
            Reply::json(201, run)
        }
        ("PATCH", path) if path.starts_with("/repos/octo/svc-a/check-runs/") => {
            let id: u64 = path.rsplit('/').next().unwrap().parse().unwrap();
            let Some(run) = w.checks.iter_mut().find(|c| c["id"] == id) else {
                return error(404, "Not Found");
            };
            for (k, v) in r.json().as_object().unwrap() {
                run[k] = v.clone();
            }
            Reply::json(200, run.clone())
        }
        ("POST", "/repos/octo/svc-a/actions/workflows/deploy.yml/dispatches") => {
            let body = r.json();
            if body["ref"].as_str().is_none() {
                return Reply::json(
                    422,
                    json!({"message": "Invalid request.\n\n\"ref\" wasn't supplied."}),
                );
            }
            let details = body["return_run_details"] == true;
            if details && w.no_run_details {
                return Reply::json(
                    422,
                    json!({"message": "Invalid request.\n\nNo subschema in \"anyOf\" matched.\n\"return_run_details\" is not a permitted key."}),
                );
            }
            let id = 9_876_543_210 + w.workflow_runs.len() as u64;
            let now = chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
            let url = format!("https://github.com/octo/svc-a/actions/runs/{id}");
            w.workflow_runs
                .push(json!({"id": id, "status": "queued", "conclusion": null,
                "html_url": url, "event": "workflow_dispatch", "head_branch": body["ref"],
                "created_at": now, "run_started_at": now, "updated_at": now}));
            if details {
                Reply::json(
                    200,
                    json!({"workflow_run_id": id,
                           "run_url": format!("https://api.github.com/repos/octo/svc-a/actions/runs/{id}"),
                           "html_url": url}),
                )
            } else {
                Reply::text(204, "")
            }
        }
        ("GET", "/repos/octo/svc-a/actions/workflows/deploy.yml/runs") => {
            let query = r.query.clone().unwrap_or_default();
            assert!(
                query.contains("event=workflow_dispatch") && query.contains("created=%3E%3D"),
                "{query}"
            );
            Reply::json(
                200,
                json!({"total_count": w.workflow_runs.len(), "workflow_runs": w.workflow_runs}),
            )
        }
        ("GET", path) if path.starts_with("/repos/octo/svc-a/actions/runs/") => {
            let id: u64 = path.rsplit('/').next().unwrap().parse().unwrap_or(0);
            match w.workflow_runs.iter().find(|run| run["id"] == id) {
                Some(run) => Reply::json(200, run.clone()),
                None => error(404, "Not Found"),
            }
        }
        ("GET", "/repos/octo/svc-a/issues/1/comments") => {
            // `since` is an ISO 8601 time: only comments updated at or after it.
            let query = r.query.clone().unwrap_or_default();
            let since = query
                .split('&')
                .find_map(|p| p.strip_prefix("since="))
                .map(|s| s.replace("%3A", ":"))
                .and_then(|s| chrono::DateTime::parse_from_rfc3339(&s).ok());
            let list: Vec<Value> = w
                .comments
                .iter()
                .filter(|c| {
                    since.is_none_or(|since| {
                        chrono::DateTime::parse_from_rfc3339(c["updated_at"].as_str().unwrap())
                            .unwrap()
                            >= since
                    })
                })
                .cloned()
                .collect();
            Reply::json(200, Value::Array(list))
        }
        ("POST", "/repos/octo/svc-a/issues/1/comments") => {
            let id = 9000 + w.comments.len() as u64;
            let now = chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
            let comment = json!({"id": id, "body": r.json()["body"],
                "html_url": format!("https://github.com/octo/svc-a/pull/1#issuecomment-{id}"),
                "created_at": now, "updated_at": now});
            w.comments.push(comment.clone());
            if std::mem::take(&mut w.lose_next_comment_answer) {
                return error(502, "Server Error");
            }
            Reply::json(201, comment)
        }
        _ => error(404, "Not Found"),
    }
}

async fn fake() -> (FakeVendor, Arc<Mutex<World>>) {
    let world = Arc::new(Mutex::new(World::default()));
    let w = world.clone();
    (FakeVendor::start(move |r, _| github(&w, r)).await, world)
}

fn app_harness(base: &str, private_key: &str) -> Harness {
    Harness::new(
        "github",
        CredentialKind::GithubApp,
        json!({"appId": APP_ID, "privateKey": private_key, "installationId": INSTALLATION}),
        json!({"baseUrl": base}),
    )
}

fn pat_harness(base: &str) -> Harness {
    Harness::new(
        "github",
        CredentialKind::ApiKey,
        json!({"apiKey": PAT}),
        json!({"baseUrl": base}),
    )
}

fn repo() -> Value {
    json!({"owner": "octo", "repository": "svc-a"})
}

fn pr_input(head: &str) -> Value {
    json!({"owner": "octo", "repository": "svc-a", "head": head, "base": "main", "title": "Add the thing"})
}

async fn get_repository(h: &Harness) -> Result<Value, CallError> {
    Perform::<GetRepository>::perform(&GitHub, &h.call(), &repo())
        .await
        .map(|r| r.output)
}

async fn open_pull_request(h: &Harness, head: &str) -> Result<Value, CallError> {
    Perform::<OpenPullRequest>::perform(&GitHub, &h.call(), &pr_input(head))
        .await
        .map(|r| r.output)
}

#[tokio::test]
async fn a_repository_is_read_with_a_personal_token() {
    let (fake, _) = fake().await;
    let h = pat_harness(&fake.base);
    assert_eq!(
        get_repository(&h).await.unwrap(),
        json!({"id": 1296269, "name": "octo/svc-a", "defaultBranch": "main",
               "webUrl": "https://github.com/octo/svc-a", "private": true})
    );
    let r = &fake.requests()[0];
    assert_eq!(
        r.header("authorization"),
        Some(format!("Bearer {PAT}").as_str())
    );
    GitHub.test_connection(&h.call()).await.unwrap();
}

#[tokio::test]
async fn an_app_exchanges_its_jwt_once_for_many_concurrent_calls() {
    let (fake, world) = fake().await;
    let h = Arc::new(app_harness(&fake.base, PRIVATE_KEY));
    let calls: Vec<_> = (0..20)
        .map(|_| {
            let h = h.clone();
            tokio::spawn(async move { get_repository(&h).await.map(|r| r["id"].clone()) })
        })
        .collect();
    for c in calls {
        assert_eq!(c.await.unwrap().unwrap(), json!(1296269));
    }
    assert_eq!(
        world.lock().unwrap().tokens.len(),
        1,
        "one installation token"
    );
    assert_eq!(h.tokens.stats().fetches, 1);
    assert_eq!(h.tokens.stats().hits, 19);
    // The repository calls carry the installation token, never the JWT.
    let tokens = world.lock().unwrap().tokens.clone();
    for r in fake
        .requests()
        .iter()
        .filter(|r| r.path == "/repos/octo/svc-a")
    {
        assert_eq!(
            r.header("authorization"),
            Some(format!("Bearer {}", tokens[0]).as_str())
        );
    }
}

#[tokio::test]
async fn a_refused_installation_token_is_exchanged_again_once() {
    let (fake, world) = fake().await;
    let h = app_harness(&fake.base, PRIVATE_KEY);
    get_repository(&h).await.unwrap();
    // GitHub revokes it (the App reinstalled, say).
    {
        let mut w = world.lock().unwrap();
        let first = w.tokens[0].clone();
        w.revoked.push(first);
    }
    get_repository(&h).await.unwrap();
    assert_eq!(world.lock().unwrap().tokens.len(), 2);
    // A key GitHub does not know: the JWT is refused, as an auth failure, not retried.
    let wrong = app_harness(&fake.base, OTHER_KEY);
    let e = get_repository(&wrong).await.unwrap_err();
    assert_eq!(e.class(), FailureClassification::Auth);
    assert!(!e.retryable);
    assert_no_secret(&e, &[OTHER_KEY]);
}

#[tokio::test]
async fn a_pull_request_is_opened_once_for_a_head_and_base() {
    let (fake, world) = fake().await;
    let h = app_harness(&fake.base, PRIVATE_KEY);
    assert_eq!(
        open_pull_request(&h, "feature/x").await.unwrap(),
        json!({"number": 1, "url": "https://github.com/octo/svc-a/pull/1", "state": "open", "created": true})
    );
    // The same run again (a retry, another idempotency key): the open one is the answer.
    let again = open_pull_request(&h, "feature/x").await.unwrap();
    assert_eq!(again["number"], 1);
    assert_eq!(again["created"], false);
    assert_eq!(world.lock().unwrap().pulls.len(), 1);
    // The branch name is a query value: encoded.
    let lookups: Vec<String> = fake
        .requests()
        .iter()
        .filter(|r| r.method == reqwest::Method::GET && r.path.ends_with("/pulls"))
        .map(|r| r.query.clone().unwrap_or_default())
        .collect();
    assert!(lookups[0].contains("head=octo:feature%2Fx"), "{lookups:?}");
}

#[tokio::test]
async fn a_pull_request_opened_meanwhile_is_found_after_githubs_422() {
    // The lookup misses it (opened by a concurrent duplicate in between); GitHub refuses
    // the second one as existing; the provider looks again and answers that one.
    let world = Arc::new(Mutex::new(World::default()));
    let w = world.clone();
    let fake = FakeVendor::start(move |r, n| {
        if n == 1 && r.method == reqwest::Method::GET && r.path.ends_with("/pulls") {
            w.lock().unwrap().pulls.push(pull(7, "feature-y", "main"));
            return Reply::json(200, json!([]));
        }
        github(&w, r)
    })
    .await;
    let ran = open_pull_request(&pat_harness(&fake.base), "feature-y")
        .await
        .unwrap();
    assert_eq!(ran["number"], 7);
    assert_eq!(ran["created"], false);
    assert_eq!(world.lock().unwrap().pulls.len(), 1);
}

fn comment_input() -> Value {
    json!({"owner": "octo", "repository": "svc-a", "number": 1, "body": "Deployed to staging."})
}

async fn comment(h: &Harness) -> Result<Value, CallError> {
    Perform::<CommentOnPullRequest>::perform(&GitHub, &h.call(), &comment_input())
        .await
        .map(|r| r.output)
}

#[tokio::test]
async fn a_run_comments_once_even_when_githubs_answer_was_lost() {
    let (fake, world) = fake().await;
    let h = pat_harness(&fake.base);
    // GitHub keeps the comment but the answer is lost: the attempt fails, unsafe to repeat.
    world.lock().unwrap().lose_next_comment_answer = true;
    let e = comment(&h).await.unwrap_err();
    assert_eq!(e.class(), FailureClassification::Transient);
    // The run's next attempt (same run id) finds it by its marker instead of posting again.
    let found = comment(&h).await.unwrap();
    assert_eq!(found["created"], false);
    assert_eq!(found["commentId"], 9000);
    assert_eq!(world.lock().unwrap().comments.len(), 1);
    let body = world.lock().unwrap().comments[0]["body"]
        .as_str()
        .unwrap()
        .to_owned();
    let run = h.idempotency_key.clone().unwrap();
    assert!(body.starts_with("Deployed to staging."), "{body}");
    assert!(
        body.contains(&format!("<!-- integration-platform run {run} -->")),
        "{body}"
    );
    // Only comments updated since the run began (less five minutes) are looked through.
    let lookup = fake
        .requests()
        .iter()
        .find(|r| r.method == reqwest::Method::GET && r.path.ends_with("/comments"))
        .and_then(|r| r.query.clone())
        .unwrap();
    assert!(lookup.contains("since="), "{lookup}");

    // Another run comments again: it is another comment.
    let other = pat_harness(&fake.base);
    assert_ne!(other.idempotency_key, h.idempotency_key);
    let posted = comment(&other).await.unwrap();
    assert_eq!(posted["created"], true);
    assert_eq!(world.lock().unwrap().comments.len(), 2);
}

async fn report(h: &Harness, input: Value) -> Result<Value, CallError> {
    Perform::<ReportCheck>::perform(&GitHub, &h.call(), &input)
        .await
        .map(|r| r.output)
}

#[tokio::test]
async fn a_check_is_reported_once_per_commit_and_updated_after() {
    let (fake, world) = fake().await;
    let h = app_harness(&fake.base, PRIVATE_KEY);
    let started = report(
        &h,
        json!({"owner": "octo", "repository": "svc-a", "sha": SHA, "name": "deploy staging",
               "status": "in_progress", "detailsUrl": "https://ci.example/runs/42"}),
    )
    .await
    .unwrap();
    assert_eq!(started["created"], true);
    // Reported again on the pull request whose head is that commit: the same check run.
    let done = report(
        &h,
        json!({"owner": "octo", "repository": "svc-a", "pullRequest": 1, "name": "deploy staging",
               "status": "completed", "conclusion": "success", "summary": "Deployed in 42 s."}),
    )
    .await
    .unwrap();
    assert_eq!(done["created"], false);
    assert_eq!(done["checkId"], started["checkId"]);
    let checks = world.lock().unwrap().checks.clone();
    assert_eq!(checks.len(), 1);
    assert_eq!(checks[0]["status"], "completed");
    assert_eq!(checks[0]["conclusion"], "success");
    assert_eq!(
        checks[0]["external_id"],
        "integration-platform:deploy staging"
    );
    assert_eq!(checks[0]["output"]["summary"], "Deployed in 42 s.");
    assert_eq!(checks[0]["details_url"], "https://ci.example/runs/42");

    // Check runs are GitHub Apps' only: a personal token is refused, as auth, not retried.
    let e = report(
        &pat_harness(&fake.base),
        json!({"owner": "octo", "repository": "svc-a", "sha": SHA, "name": "lint",
               "status": "queued"}),
    )
    .await
    .unwrap_err();
    assert_eq!(e.class(), FailureClassification::Auth);
    assert!(!e.retryable);
}

#[test]
fn a_check_names_its_commit_once_and_concludes_only_when_completed() {
    let base = || json!({"owner": "octo", "repository": "svc-a", "sha": SHA, "name": "n"});
    let with = |pairs: &[(&str, Value)]| {
        let mut v = base();
        for (k, x) in pairs {
            v[*k] = x.clone();
        }
        v
    };
    for (input, path) in [
        (with(&[("status", json!("completed"))]), "conclusion"),
        (
            with(&[
                ("status", json!("queued")),
                ("conclusion", json!("success")),
            ]),
            "conclusion",
        ),
        (
            with(&[("status", json!("queued")), ("pullRequest", json!(1))]),
            "pullRequest",
        ),
        (with(&[("status", json!("requested"))]), "status"),
        (
            with(&[("status", json!("queued")), ("sha", json!("abc"))]),
            "sha",
        ),
    ] {
        let e = integration_kit::parse_input::<ReportCheck>(&input).unwrap_err();
        assert_eq!(e.path, path, "{input}");
    }
}

fn workflow_input() -> Value {
    json!({"owner": "octo", "repository": "svc-a", "workflow": "deploy.yml", "ref": "main",
           "inputs": {"environment": "staging"}})
}

async fn start(h: &Harness) -> integration_kit::Wait {
    match integration_kit::testing::step::<StartWorkflow, _>(&GitHub, &h.call(), &workflow_input())
        .await
        .unwrap()
    {
        Step::Wait(wait) => wait,
        Step::Done(_) => panic!("a started workflow waits"),
    }
}

async fn look(h: &Harness, state: &Value) -> Step<WorkflowRun> {
    let input = integration_kit::parse_input::<StartWorkflow>(&workflow_input()).unwrap();
    Serves::<StartWorkflow>::resume(&GitHub, &h.call(), &input, state)
        .await
        .unwrap()
}

#[tokio::test]
async fn a_started_workflow_waits_until_its_run_completes() {
    let (fake, world) = fake().await;
    let h = app_harness(&fake.base, PRIVATE_KEY);
    let wait = start(&h).await;
    let id = 9_876_543_210u64;
    assert_eq!(wait.correlation.as_deref(), Some(id.to_string().as_str()));
    assert_eq!(
        wait.progress,
        Some(
            json!({"runId": id, "url": format!("https://github.com/octo/svc-a/actions/runs/{id}")})
        )
    );
    let dispatch = fake
        .requests()
        .into_iter()
        .find(|r| r.path.ends_with("/dispatches"))
        .unwrap();
    assert_eq!(
        dispatch.json(),
        json!({"ref": "main", "return_run_details": true, "inputs": {"environment": "staging"}})
    );
    // Still queued: look again later, and later still.
    let Step::Wait(again) = look(&h, &wait.state).await else {
        panic!("still waiting")
    };
    assert!(again.after > wait.after, "{:?}", again.after);
    // GitHub finishes it.
    {
        let mut w = world.lock().unwrap();
        let run = &mut w.workflow_runs[0];
        run["status"] = json!("completed");
        run["conclusion"] = json!("success");
        let start =
            chrono::DateTime::parse_from_rfc3339(run["run_started_at"].as_str().unwrap()).unwrap();
        run["updated_at"] = json!((start + chrono::TimeDelta::seconds(95)).to_rfc3339());
    }
    let Step::Done(done) = look(&h, &again.state).await else {
        panic!("completed")
    };
    assert_eq!(done.output.conclusion.as_deref(), Some("success"));
    assert_eq!(done.output.duration_ms, Some(95_000));
    // The same run read on its own.
    let read = Perform::<GetWorkflowRun>::perform(
        &GitHub,
        &h.call(),
        &json!({"owner": "octo", "repository": "svc-a", "runId": id}),
    )
    .await
    .unwrap();
    assert_eq!(read.output["status"], "completed");
}

#[tokio::test]
async fn an_older_server_without_run_details_gets_its_run_found() {
    let (fake, world) = fake().await;
    world.lock().unwrap().no_run_details = true;
    let h = pat_harness(&fake.base);
    let wait = start(&h).await;
    assert_eq!(wait.correlation.as_deref(), Some("9876543210"));
    let dispatches: Vec<Value> = fake
        .requests()
        .iter()
        .filter(|r| r.path.ends_with("/dispatches"))
        .map(|r| r.json())
        .collect();
    assert_eq!(
        dispatches.len(),
        2,
        "refused with the flag, then sent without"
    );
    assert!(dispatches[1].get("return_run_details").is_none());
    assert_eq!(
        world.lock().unwrap().workflow_runs.len(),
        1,
        "one run started"
    );
}

#[test]
fn a_completed_workflow_run_webhook_ends_the_wait_it_names() {
    let config = domain::ConnectionConfig::default();
    let hook = |event: &str, body: Value| {
        let bytes = serde_json::to_vec(&body).unwrap();
        let webhook = integration_kit::VendorWebhook {
            event_type: Some(event),
            delivery_id: Some("72d3162e-cc78-11e3-81ab-4c9367dc0958"),
            content_type: Some("application/json"),
            body: &bytes,
            config: &config,
        };
        GitHub.webhook(&webhook)
    };
    let run = json!({"id": 9876543210u64, "status": "completed", "conclusion": "failure",
        "html_url": "https://github.com/octo/svc-a/actions/runs/9876543210",
        "run_started_at": "2026-12-07T10:00:00Z", "updated_at": "2026-12-07T10:02:00Z"});
    let effects = hook(
        "workflow_run",
        json!({"action": "completed", "workflow_run": run, "repository": {"full_name": "octo/svc-a"}}),
    )
    .unwrap();
    match effects.as_slice() {
        [WebhookEffect::Completed { correlation, done }] => {
            assert_eq!(correlation, "9876543210");
            assert_eq!(done.output["conclusion"], "failure");
            assert_eq!(done.output["durationMs"], 120_000);
        }
        other => panic!("{other:?}"),
    }
    assert!(
        hook(
            "workflow_run",
            json!({"action": "requested", "workflow_run": run})
        )
        .unwrap()
        .is_empty()
    );
    assert!(
        hook("push", json!({"ref": "refs/heads/main"}))
            .unwrap()
            .is_empty()
    );
    assert!(
        hook(
            "workflow_run",
            json!({"action": "completed", "workflow_run": {}})
        )
        .is_err()
    );
}

#[tokio::test]
async fn a_403_is_a_rate_limit_only_when_githubs_headers_say_so() {
    let permission = FakeVendor::start(|_, _| {
        error(403, "Resource not accessible by integration").header("x-ratelimit-remaining", "4000")
    })
    .await;
    let e = get_repository(&pat_harness(&permission.base))
        .await
        .unwrap_err();
    assert_eq!(e.class(), FailureClassification::Auth);
    assert!(!e.retryable);
    assert!(
        e.failure.message.contains("Resource not accessible"),
        "{}",
        e.failure.message
    );
    assert_eq!(permission.requests().len(), 1, "not retried");

    let reset = chrono::Utc::now().timestamp() + 3;
    let limited = FakeVendor::start(move |_, _| {
        error(403, "API rate limit exceeded for installation ID 12345.")
            .header("x-ratelimit-remaining", "0")
            .header("x-ratelimit-reset", &reset.to_string())
    })
    .await;
    let e = get_repository(&pat_harness(&limited.base))
        .await
        .unwrap_err();
    assert_eq!(e.class(), FailureClassification::RateLimited);
    assert!(e.retryable);
    let wait = e.failure.retry_after.expect("until the reset");
    assert!(wait.as_secs() <= 4, "{wait:?}");

    let secondary = FakeVendor::start(|_, _| {
        error(403, "You have exceeded a secondary rate limit.").header("retry-after", "60")
    })
    .await;
    let e = get_repository(&pat_harness(&secondary.base))
        .await
        .unwrap_err();
    assert_eq!(e.class(), FailureClassification::RateLimited);
    assert_eq!(
        e.failure.retry_after,
        Some(std::time::Duration::from_secs(60))
    );
}

#[test]
fn inputs_are_checked_at_their_field() {
    for (input, path) in [
        (json!({"owner": "octo/x", "repository": "svc-a"}), "owner"),
        (json!({"owner": "octo", "repository": ".."}), "repository"),
        (
            json!({"owner": "octo", "repository": "a", "extra": 1}),
            "extra",
        ),
    ] {
        let e = integration_kit::parse_input::<GetRepository>(&input).unwrap_err();
        assert_eq!(e.path, path, "{input}");
    }
    for (input, path) in [
        (pr_input("bad..branch"), "head"),
        (pr_input("main"), "head"),
        (
            json!({"owner": "octo", "repository": "svc-a", "head": "x", "base": "main", "title": ""}),
            "title",
        ),
        (
            json!({"owner": "octo", "repository": "svc-a", "head": "x", "base": "ma in", "title": "t"}),
            "base",
        ),
    ] {
        let e = integration_kit::parse_input::<OpenPullRequest>(&input).unwrap_err();
        assert_eq!(e.path, path, "{input}");
    }
}

/// GitHub's documented answers for the kit's conformance suite.
struct GitHubScript;

impl integration_kit::testing::VendorScript for GitHubScript {
    fn reply(&self, case: Case, _request: &Recorded) -> Result<Reply, &'static str> {
        Ok(match case {
            Case::Success => Reply::json(
                200,
                json!({"id": 1296269, "full_name": "octo/svc-a", "private": false,
                       "default_branch": "main", "html_url": "https://github.com/octo/svc-a"}),
            ),
            Case::Invalid => Reply::json(
                422,
                json!({"message": "Validation Failed", "errors": [{"resource": "Repository", "field": "name", "code": "invalid"}]}),
            ),
            Case::Unauthorized => error(401, "Bad credentials"),
            Case::Throttled => error(429, "API rate limit exceeded")
                .header("retry-after", &THROTTLE_SECS.to_string())
                .header("x-ratelimit-remaining", "0"),
            Case::ServerError => error(502, "Server Error"),
            Case::Malformed => Reply::text(200, "<html>unicorn</html>"),
        })
    }
}

#[tokio::test]
async fn the_provider_passes_the_kits_conformance_suite() {
    let skipped = conformance::<GetRepository, _, _>(
        &GitHub,
        GitHubScript,
        pat_harness,
        repo(),
        &[PAT],
        true,
    )
    .await;
    assert!(skipped.is_empty(), "{skipped:?}");
}
