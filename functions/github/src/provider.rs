//! The `github` provider: GitHub's REST API (version `2022-11-28`, pinned with
//! `X-GitHub-Api-Version`), on github.com or GitHub Enterprise Server (the connection's
//! `baseUrl`, `https://<host>/api/v3`).
//!
//! Credentials:
//! - `githubApp` (`{appId, privateKey, installationId}`): an RS256 App JWT (`iat` 60 s in the
//!   past, `exp` 9 minutes ahead, `iss` the App id) is exchanged for an installation token
//!   (`POST /app/installations/{id}/access_tokens`, one hour), cached by the kit until five
//!   minutes before it expires, one exchange for all concurrent callers, dropped and
//!   exchanged again once when GitHub answers 401 with it. A rotated private key mints its
//!   own token at once.
//! - `apiKey` (`{apiKey}`): a fine-grained personal access token, sent as is.
//!
//! Answers: GitHub's error body (`message`, `errors[]`) goes into the failure, redacted; a
//! 403 or 429 with `x-ratelimit-remaining: 0` or a `retry-after` is a rate limit (the
//! pipeline waits for `retry-after`, else for `x-ratelimit-reset`); any other 403 is a
//! permission failure, never retried. GitHub has no idempotency keys: `openPullRequest`
//! looks for the open pull request of the same head and base before it creates one, and
//! again when GitHub says one exists already.

use std::sync::Arc;

use async_trait::async_trait;
use domain::{CredentialKind, FailureClassification};
use integration_kit::{
    AccessToken, Done, Provider, ProviderCall, Served, Serves, Step, answered, call_failed,
    malformed,
};
use reqwest::header::{ACCEPT, HeaderMap, USER_AGENT};
use reqwest::{Method, StatusCode};
use resilience::{CallError, Classifier, Safety, Verdict};
use secrecy::{ExposeSecret as _, SecretString};
use serde_json::{Value, json};

use crate::{
    Check, CheckStatus, Comment, CommentOnPullRequest, GetRepository, GetWorkflowRun, NewCheck,
    NewComment, NewPullRequest, NewWorkflowRun, OpenPullRequest, PullRequest, ReportCheck,
    Repository, RepositoryRef, StartWorkflow, WorkflowRun, WorkflowRunRef,
};
use integration_kit::{VendorWebhook, Wait, WebhookEffect};

pub const DEFAULT_BASE_URL: &str = "https://api.github.com";
/// The REST API version every call pins.
pub const API_VERSION: &str = "2022-11-28";
/// What GitHub asks every client to send.
const AGENT: &str = "integration-platform";
/// The App JWT's clock allowance and lifetime (GitHub allows at most ten minutes).
const JWT_BACKDATE_SECS: i64 = 60;
const JWT_LIFETIME_SECS: i64 = 9 * 60;

pub struct GitHub;

/// The connection's config: only the kit's `baseUrl` (GitHub Enterprise Server's API root).
#[derive(Debug, serde::Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct GitHubConfig {
    #[serde(rename = "baseUrl")]
    _base_url: Option<String>,
}

impl integration_kit::ProviderConfig for GitHubConfig {}

#[async_trait]
impl Provider for GitHub {
    fn key(&self) -> &'static str {
        "github"
    }

    fn credential_kinds(&self) -> &'static [CredentialKind] {
        &[CredentialKind::GithubApp, CredentialKind::ApiKey]
    }

    /// `GET /rate_limit`: authenticated, free (it counts against no limit).
    async fn test_connection(&self, call: &ProviderCall<'_>) -> Result<(), CallError> {
        let answer = request(call, Method::GET, "/rate_limit", None, Safety::Safe).await?;
        json_body(&answer.body, "the rate limit status").map(drop)
    }

    /// `workflow_run` deliveries (`X-GitHub-Event: workflow_run`) with `action: completed`
    /// end the run waiting on that workflow run at once; other events mean nothing here.
    fn webhook(&self, webhook: &VendorWebhook<'_>) -> Result<Vec<WebhookEffect>, String> {
        if webhook.event_type != Some("workflow_run") {
            return Ok(Vec::new());
        }
        let body: Value =
            serde_json::from_slice(webhook.body).map_err(|e| format!("not JSON: {e}"))?;
        if body["action"].as_str() != Some("completed") {
            return Ok(Vec::new());
        }
        let run = workflow_run(&body["workflow_run"])
            .map_err(|e| format!("an unreadable workflow_run: {}", e.failure.message))?;
        Ok(vec![WebhookEffect::completed::<StartWorkflow>(
            run.run_id.to_string(),
            Done::new(run),
        )])
    }

    fn serves(served: &mut Served<Self>) {
        served
            .operation::<GetRepository>()
            .operation::<OpenPullRequest>()
            .operation::<CommentOnPullRequest>()
            .operation::<ReportCheck>()
            .operation::<StartWorkflow>()
            .operation::<GetWorkflowRun>()
            .config::<GitHubConfig>();
    }
}

#[async_trait]
impl Serves<GetRepository> for GitHub {
    async fn execute(
        &self,
        call: &ProviderCall<'_>,
        input: &RepositoryRef,
    ) -> Result<Step<Repository>, CallError> {
        let path = format!("/repos/{}/{}", input.owner, input.repository);
        let answer = request(call, Method::GET, &path, None, Safety::Safe).await?;
        let repo = json_body(&answer.body, "the repository")?;
        let read = || {
            Some(Repository {
                id: repo["id"].as_u64()?,
                name: repo["full_name"].as_str()?.to_owned(),
                default_branch: repo["default_branch"].as_str()?.to_owned(),
                web_url: repo["html_url"].as_str()?.to_owned(),
                private: repo["private"].as_bool()?,
            })
        };
        let repository = read().ok_or_else(|| malformed("the repository lacks a field"))?;
        Ok(Done::new(repository).into())
    }
}

#[async_trait]
impl Serves<OpenPullRequest> for GitHub {
    async fn execute(
        &self,
        call: &ProviderCall<'_>,
        input: &NewPullRequest,
    ) -> Result<Step<PullRequest>, CallError> {
        let path = format!("/repos/{}/{}/pulls", input.owner, input.repository);
        let mut body = json!({
            "title": input.title.as_str(),
            "head": input.head.as_str(),
            "base": input.base.as_str(),
            "draft": input.draft,
        });
        if let Some(text) = &input.body {
            body["body"] = json!(text);
        }
        let opened = source_control::open_once(
            || find_open(call, input),
            || async {
                let answer =
                    request(call, Method::POST, &path, Some(&body), Safety::Unsafe).await?;
                pull_request(&json_body(&answer.body, "the pull request")?, true)
            },
            |e| e.failure.vendor_status == Some(422) && already_exists(e),
        )
        .await?;
        Ok(Done::new(opened).into())
    }
}

#[async_trait]
impl Serves<CommentOnPullRequest> for GitHub {
    async fn execute(
        &self,
        call: &ProviderCall<'_>,
        input: &NewComment,
    ) -> Result<Step<Comment>, CallError> {
        let path = format!(
            "/repos/{}/{}/issues/{}/comments",
            input.owner, input.repository, input.number
        );
        let path = &path;
        let posted = source_control::comment_once(
            call.idempotency_key,
            &input.body,
            |marker| async move { find_comment(call, path, &marker).await },
            |body| async move {
                let answer = request(
                    call,
                    Method::POST,
                    path,
                    Some(&json!({"body": body})),
                    Safety::Unsafe,
                )
                .await?;
                comment(&json_body(&answer.body, "the comment")?, true)
            },
        )
        .await?;
        Ok(Done::new(posted).into())
    }
}

#[async_trait]
impl Serves<ReportCheck> for GitHub {
    async fn execute(
        &self,
        call: &ProviderCall<'_>,
        input: &NewCheck,
    ) -> Result<Step<Check>, CallError> {
        let repo = format!("/repos/{}/{}", input.owner, input.repository);
        let sha = match (&input.sha, input.pull_request) {
            (Some(sha), _) => sha.to_string(),
            (None, Some(number)) => {
                let answer = request(
                    call,
                    Method::GET,
                    &format!("{repo}/pulls/{number}"),
                    None,
                    Safety::Safe,
                )
                .await?;
                let pr = json_body(&answer.body, "the pull request")?;
                pr["head"]["sha"]
                    .as_str()
                    .ok_or_else(|| malformed("the pull request has no head sha"))?
                    .to_owned()
            }
            (None, None) => {
                return Err(call_failed(
                    FailureClassification::Validation,
                    "sha or pullRequest is required",
                ));
            }
        };
        // The platform's name for the check: the same check reported again on the commit
        // updates its run instead of adding one.
        let external_id = format!("integration-platform:{}", input.name);
        let mut body = json!({"status": input.status});
        if let Some(conclusion) = input.conclusion {
            body["conclusion"] = json!(conclusion);
        }
        if let Some(url) = &input.details_url {
            body["details_url"] = json!(url.as_str());
        }
        if let Some(summary) = &input.summary {
            body["output"] = json!({"title": input.name.as_str(), "summary": summary});
        }
        let listed = request(
            call,
            Method::GET,
            &format!(
                "{repo}/commits/{sha}/check-runs?check_name={}&filter=all&per_page=100",
                integration_kit::query_value(&input.name)
            ),
            None,
            Safety::Safe,
        )
        .await?;
        let listed = json_body(&listed.body, "the check runs")?;
        let existing = listed["check_runs"]
            .as_array()
            .ok_or_else(|| malformed("the check runs are not a list"))?
            .iter()
            .find(|c| c["external_id"].as_str() == Some(external_id.as_str()))
            .and_then(|c| c["id"].as_u64());
        let (answer, created) = match existing {
            Some(id) => (
                request(
                    call,
                    Method::PATCH,
                    &format!("{repo}/check-runs/{id}"),
                    Some(&body),
                    // The same fields again: repeating it is harmless.
                    Safety::Idempotent,
                )
                .await?,
                false,
            ),
            None => {
                body["name"] = json!(input.name.as_str());
                body["head_sha"] = json!(sha);
                body["external_id"] = json!(external_id);
                if input.status == CheckStatus::InProgress {
                    body["started_at"] = json!(
                        chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
                    );
                }
                (
                    request(
                        call,
                        Method::POST,
                        &format!("{repo}/check-runs"),
                        Some(&body),
                        Safety::Unsafe,
                    )
                    .await?,
                    true,
                )
            }
        };
        let run = json_body(&answer.body, "the check run")?;
        let read = || {
            Some(Check {
                check_id: run["id"].as_u64()?,
                url: run["html_url"].as_str()?.to_owned(),
                created,
            })
        };
        Ok(Done::new(read().ok_or_else(|| malformed("the check run lacks a field"))?).into())
    }
}

#[async_trait]
impl Serves<StartWorkflow> for GitHub {
    async fn execute(
        &self,
        call: &ProviderCall<'_>,
        input: &NewWorkflowRun,
    ) -> Result<Step<WorkflowRun>, CallError> {
        let workflow = format!(
            "/repos/{}/{}/actions/workflows/{}",
            input.owner, input.repository, input.workflow
        );
        let mut body = json!({"ref": input.git_ref.as_str(), "return_run_details": true});
        if !input.inputs.is_empty() {
            body["inputs"] = json!(input.inputs);
        }
        let dispatched = match request(
            call,
            Method::POST,
            &format!("{workflow}/dispatches"),
            Some(&body),
            Safety::Unsafe,
        )
        .await
        {
            // A server that does not know `return_run_details` (older GitHub Enterprise
            // Server) refuses it: dispatch without it, then find the run.
            Err(e)
                if matches!(e.failure.vendor_status, Some(400 | 422))
                    && e.failure.message.contains("return_run_details") =>
            {
                body.as_object_mut().map(|b| b.remove("return_run_details"));
                request(
                    call,
                    Method::POST,
                    &format!("{workflow}/dispatches"),
                    Some(&body),
                    Safety::Unsafe,
                )
                .await?
            }
            other => other?,
        };
        let details: Value = serde_json::from_slice(&dispatched.body).unwrap_or(Value::Null);
        let (run_id, url) = match (
            details["workflow_run_id"].as_u64(),
            details["html_url"].as_str(),
        ) {
            (Some(id), Some(url)) => (id, url.to_owned()),
            _ => dispatched_run(call, &workflow, input).await?,
        };
        Ok(Wait::after(
            source_control::FIRST_LOOK,
            json!({"runId": run_id, "looks": 0}),
        )
        .progress(json!({"runId": run_id, "url": url}))
        .correlate(run_id.to_string())
        .into())
    }

    /// Looks at the workflow run; not finished, it looks again later
    /// ([`source_control::next_look`]).
    async fn resume(
        &self,
        call: &ProviderCall<'_>,
        input: &NewWorkflowRun,
        state: &Value,
    ) -> Result<Step<WorkflowRun>, CallError> {
        let run_id = state["runId"]
            .as_u64()
            .ok_or_else(|| malformed("the waiting state has no runId"))?;
        let run = get_run(call, &input.owner, &input.repository, run_id).await?;
        if run.status == "completed" {
            return Ok(Done::new(run).into());
        }
        let looks = state["looks"].as_u64().unwrap_or(0) + 1;
        Ok(Wait::after(
            source_control::next_look(looks),
            json!({"runId": run_id, "looks": looks}),
        )
        .progress(json!({"runId": run_id, "url": run.url, "status": run.status}))
        .into())
    }
}

#[async_trait]
impl Serves<GetWorkflowRun> for GitHub {
    async fn execute(
        &self,
        call: &ProviderCall<'_>,
        input: &WorkflowRunRef,
    ) -> Result<Step<WorkflowRun>, CallError> {
        let run = get_run(call, &input.owner, &input.repository, input.run_id.get()).await?;
        Ok(Done::new(run).into())
    }
}

async fn get_run(
    call: &ProviderCall<'_>,
    owner: &str,
    repository: &str,
    run_id: u64,
) -> Result<WorkflowRun, CallError> {
    let path = format!("/repos/{owner}/{repository}/actions/runs/{run_id}");
    let answer = request(call, Method::GET, &path, None, Safety::Safe).await?;
    workflow_run(&json_body(&answer.body, "the workflow run")?)
}

/// The run a dispatch without run details started: the newest `workflow_dispatch` run of
/// the workflow on that ref created since the run began (a minute's allowance for clocks).
async fn dispatched_run(
    call: &ProviderCall<'_>,
    workflow: &str,
    input: &NewWorkflowRun,
) -> Result<(u64, String), CallError> {
    let since =
        call.run_created_at().unwrap_or_else(chrono::Utc::now) - chrono::TimeDelta::minutes(1);
    let path = format!(
        "{workflow}/runs?event=workflow_dispatch&branch={}&created=%3E%3D{}&per_page=20",
        integration_kit::query_value(&input.git_ref),
        integration_kit::query_value(&since.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)),
    );
    let answer = request(call, Method::GET, &path, None, Safety::Safe).await?;
    let list = json_body(&answer.body, "the workflow runs")?;
    let newest = list["workflow_runs"]
        .as_array()
        .and_then(|runs| {
            runs.iter()
                .max_by_key(|r| r["created_at"].as_str().unwrap_or_default().to_owned())
        })
        .ok_or_else(|| {
            // Dispatched, but not listed yet: the run is retried, and finds it then.
            call_failed(
                FailureClassification::Transient,
                "the dispatched workflow run is not listed yet",
            )
        })?;
    let run = workflow_run(newest)?;
    Ok((run.run_id, run.url))
}

/// A workflow run in GitHub's shape (`GET …/actions/runs/{id}`, a webhook's `workflow_run`).
fn workflow_run(run: &Value) -> Result<WorkflowRun, CallError> {
    let time = |field: &str| {
        run[field]
            .as_str()
            .and_then(|t| chrono::DateTime::parse_from_rfc3339(t).ok())
    };
    let read = || {
        let status = run["status"].as_str()?.to_owned();
        let duration_ms = match (status.as_str(), time("run_started_at"), time("updated_at")) {
            ("completed", Some(start), Some(end)) => {
                u64::try_from((end - start).num_milliseconds()).ok()
            }
            _ => None,
        };
        Some(WorkflowRun {
            run_id: run["id"].as_u64()?,
            url: run["html_url"].as_str()?.to_owned(),
            conclusion: run["conclusion"].as_str().map(str::to_owned),
            status,
            duration_ms,
        })
    };
    read().ok_or_else(|| malformed("the workflow run lacks a field"))
}

/// The comment of `path` (an issue's comments) that carries `marker`, among those updated
/// since the run began (five minutes' allowance for clocks), a hundred per page.
async fn find_comment(
    call: &ProviderCall<'_>,
    path: &str,
    marker: &str,
) -> Result<Option<Comment>, CallError> {
    let since = call.run_created_at().map(|t| {
        (t - chrono::TimeDelta::minutes(5)).to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
    });
    for page in 1..=MAX_COMMENT_PAGES {
        let mut query = format!("{path}?per_page=100&page={page}");
        if let Some(since) = &since {
            query.push_str(&format!("&since={}", integration_kit::query_value(since)));
        }
        let answer = request(call, Method::GET, &query, None, Safety::Safe).await?;
        let list = json_body(&answer.body, "the comments")?;
        let list = list
            .as_array()
            .ok_or_else(|| malformed("the comments are not a list"))?;
        if let Some(c) = list
            .iter()
            .find(|c| c["body"].as_str().is_some_and(|b| b.contains(marker)))
        {
            return comment(c, false).map(Some);
        }
        if list.len() < 100 {
            break;
        }
    }
    Ok(None)
}

/// How many pages of comments (updated since the run began) are looked through.
const MAX_COMMENT_PAGES: u32 = 10;

fn comment(c: &Value, created: bool) -> Result<Comment, CallError> {
    let read = || {
        Some(Comment {
            comment_id: c["id"].as_u64()?,
            url: c["html_url"].as_str()?.to_owned(),
            created,
        })
    };
    read().ok_or_else(|| malformed("the comment lacks a field"))
}

/// The open pull request from `head` into `base`, if there is one.
async fn find_open(
    call: &ProviderCall<'_>,
    input: &NewPullRequest,
) -> Result<Option<PullRequest>, CallError> {
    let path = format!(
        "/repos/{}/{}/pulls?state=open&head={}:{}&base={}&per_page=1",
        input.owner,
        input.repository,
        input.owner,
        integration_kit::query_value(&input.head),
        integration_kit::query_value(&input.base),
    );
    let answer = request(call, Method::GET, &path, None, Safety::Safe).await?;
    let list = json_body(&answer.body, "the pull requests")?;
    let list = list
        .as_array()
        .ok_or_else(|| malformed("the pull requests are not a list"))?;
    list.first().map(|pr| pull_request(pr, false)).transpose()
}

fn pull_request(pr: &Value, created: bool) -> Result<PullRequest, CallError> {
    let read = || {
        Some(PullRequest {
            number: pr["number"].as_u64()?,
            url: pr["html_url"].as_str()?.to_owned(),
            state: pr["state"].as_str()?.to_owned(),
            created,
        })
    };
    read().ok_or_else(|| malformed("the pull request lacks a field"))
}

/// Whether GitHub's 422 says the pull request exists already.
fn already_exists(e: &CallError) -> bool {
    e.failure.message.contains("already exists")
}

fn json_body(body: &[u8], what: &str) -> Result<Value, CallError> {
    serde_json::from_slice(body).map_err(|_| malformed(&format!("{what} is not JSON")))
}

/// One REST call with the connection's credential. An installation token GitHub refuses
/// (401: revoked, or the App's key rotated) is dropped and exchanged again, once.
async fn request(
    call: &ProviderCall<'_>,
    method: Method,
    path: &str,
    body: Option<&Value>,
    safety: Safety,
) -> Result<resilience::VendorResponse, CallError> {
    let app = call.credential.kind() == CredentialKind::GithubApp;
    call.with_fresh_token_on_401(app, || send(call, &method, path, body, safety))
        .await
}

async fn send(
    call: &ProviderCall<'_>,
    method: &Method,
    path: &str,
    body: Option<&Value>,
    safety: Safety,
) -> Result<resilience::VendorResponse, CallError> {
    let bearer = bearer(call).await?;
    let url = format!("{}{path}", call.base_url(DEFAULT_BASE_URL));
    let answers = Answers::new(call, &bearer);
    call.pipeline
        .send(call.call(safety, &answers), || {
            let mut builder = github_request(call, method.clone(), &url, &bearer);
            if let Some(body) = body {
                builder = builder.json(body);
            }
            builder
        })
        .await
}

/// A request as GitHub asks every client to send it: the bearer, its media type, the pinned
/// API version and a user agent.
fn github_request(
    call: &ProviderCall<'_>,
    method: Method,
    url: &str,
    bearer: &SecretString,
) -> reqwest::RequestBuilder {
    call.http
        .request(method, url)
        .bearer_auth(bearer.expose_secret())
        .header(ACCEPT, "application/vnd.github+json")
        .header("x-github-api-version", API_VERSION)
        .header(USER_AGENT, AGENT)
}

/// The token a call is authenticated with: the installation token of a GitHub App
/// credential (through the kit's cache), or the personal access token.
async fn bearer(call: &ProviderCall<'_>) -> Result<SecretString, CallError> {
    match call.credential.kind() {
        CredentialKind::GithubApp => {
            let token: Arc<AccessToken> = call.access_token(|| installation_token(call)).await?;
            Ok(token.token.clone())
        }
        _ => Ok(SecretString::from(call.secret("apiKey")?.to_owned())),
    }
}

/// `POST /app/installations/{id}/access_tokens` with a fresh App JWT.
async fn installation_token(call: &ProviderCall<'_>) -> Result<AccessToken, CallError> {
    let installation = call.secret("installationId").map_err(|_| {
        call_failed(
            FailureClassification::Validation,
            "the GitHub App credential names no installationId",
        )
    })?;
    if installation.is_empty() || !installation.bytes().all(|b| b.is_ascii_digit()) {
        return Err(call_failed(
            FailureClassification::Validation,
            "the GitHub App credential's installationId is not a number",
        ));
    }
    let jwt = SecretString::from(app_jwt(call)?);
    let url = format!(
        "{}/app/installations/{installation}/access_tokens",
        call.base_url(DEFAULT_BASE_URL)
    );
    let answers = Answers::new(call, &jwt);
    let answer = call
        .pipeline
        .send(call.call(Safety::Safe, &answers), || {
            github_request(call, Method::POST, &url, &jwt)
        })
        .await?;
    let token: Value = json_body(&answer.body, "the installation token")?;
    let (Some(value), Some(expires_at)) = (
        token["token"].as_str(),
        token["expires_at"]
            .as_str()
            .and_then(|t| chrono::DateTime::parse_from_rfc3339(t).ok()),
    ) else {
        return Err(malformed(
            "the installation token lacks token or expires_at",
        ));
    };
    Ok(AccessToken {
        token: SecretString::from(value.to_owned()),
        expires_at: expires_at.to_utc(),
    })
}

/// The App's JWT: RS256 over `{iat, exp, iss}`, signed with the credential's private key.
fn app_jwt(call: &ProviderCall<'_>) -> Result<String, CallError> {
    let app_id = call.secret("appId")?;
    let key = jsonwebtoken::EncodingKey::from_rsa_pem(call.secret("privateKey")?.as_bytes())
        .map_err(|_| {
            call_failed(
                FailureClassification::Auth,
                "the GitHub App's privateKey is not an RSA private key in PEM",
            )
        })?;
    let now = chrono::Utc::now().timestamp();
    let claims = json!({
        "iat": now - JWT_BACKDATE_SECS,
        "exp": now + JWT_LIFETIME_SECS,
        "iss": app_id,
    });
    jsonwebtoken::encode(
        &jsonwebtoken::Header::new(jsonwebtoken::Algorithm::RS256),
        &claims,
        &key,
    )
    .map_err(|_| {
        call_failed(
            FailureClassification::Auth,
            "the GitHub App's JWT could not be signed",
        )
    })
}

/// GitHub's answers: the status decides, refined by the rate-limit headers (a 403 is a
/// limit only when they say so) and the error body's words, redacted.
struct Answers<'s> {
    secrets: Vec<&'s str>,
}

impl<'s> Answers<'s> {
    fn new(call: &'s ProviderCall<'_>, bearer: &'s SecretString) -> Self {
        let mut secrets: Vec<&str> = call.credential.values().collect();
        secrets.push(bearer.expose_secret());
        Answers { secrets }
    }
}

/// Whether a 403 or 429 is GitHub's primary or secondary rate limit.
fn rate_limited(status: StatusCode, headers: &HeaderMap) -> bool {
    let header = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
    matches!(status.as_u16(), 403 | 429)
        && (header("retry-after").is_some() || header("x-ratelimit-remaining") == Some("0"))
}

impl Classifier for Answers<'_> {
    fn classify(&self, status: StatusCode, headers: &HeaderMap, body: &[u8]) -> Verdict {
        let Some((mut failure, error)) = integration_kit::failed_answer(status, headers, body)
        else {
            return Verdict::Success;
        };
        if rate_limited(status, headers) {
            failure.class = FailureClassification::RateLimited;
        }
        let mut words = error["message"].as_str().unwrap_or_default().to_owned();
        if let Some(errors) = error["errors"].as_array() {
            for e in errors.iter().take(3) {
                let detail = e["message"].as_str().map(str::to_owned).or_else(|| {
                    Some(format!(
                        "{} {} {}",
                        e["resource"].as_str()?,
                        e["field"].as_str()?,
                        e["code"].as_str()?
                    ))
                });
                if let Some(d) = detail {
                    words.push_str("; ");
                    words.push_str(&d);
                }
            }
        }
        failure.message = answered("github", status.as_u16(), &words, &self.secrets);
        Verdict::Failure(failure)
    }
}

#[cfg(test)]
mod tests;
