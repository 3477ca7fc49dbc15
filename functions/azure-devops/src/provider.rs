//! The `azure-devops` provider: Azure DevOps Services REST API, version `7.1` (pinned with
//! `api-version` on every call), at `https://dev.azure.com` or the connection's `baseUrl`.
//!
//! Credentials:
//! - `apiKey` (`{apiKey}`): a personal access token, sent as HTTP Basic with an empty user
//!   name, as Azure DevOps documents.
//! - `oauth2ClientCredentials` (`{clientId, clientSecret, tokenUrl, scope?}`): an Entra ID
//!   service principal added to the organisation; its token (scope
//!   `499b84ac-1321-427f-aa17-267ca6975798/.default`, Azure DevOps' resource, unless the
//!   credential names another) comes from the kit's token cache, one fetch for all
//!   concurrent callers, and is dropped and fetched again once when Azure DevOps answers
//!   401 with it.
//!
//! Answers: Azure DevOps' error body (`typeKey`, `message`) goes into the failure, redacted;
//! a 429 (`TF400733`, usage exceeded) is a rate limit, and `Retry-After` or
//! `X-RateLimit-Delay` say how long to wait (the pipeline's hints); a 2xx that is not JSON
//! is Azure DevOps' sign-in page for a credential it did not take: an auth failure, never a
//! success. Azure DevOps has no idempotency keys: `openPullRequest` looks for the active pull
//! request of the same source and target before it creates one, and again when Azure DevOps
//! says one exists already (`TF401179`).
//!
//! Pipelines (`_apis/pipelines`, the Runs API): `startPipeline` runs one on a branch (its
//! `self` repository's `refName`, the inputs as template parameters) and waits; the
//! pipeline run is looked at again on a schedule that backs off
//! ([`source_control::next_look`]) unless the `ms.vss-pipelines.run-state-changed-event`
//! service hook (publisher `pipelines`) says it completed first ([`Provider::webhook`]; the
//! wait is correlated by `{pipelineId}/{runId}`). A run's duration is from its
//! `createdDate` to its `finishedDate`.

use async_trait::async_trait;
use base64::Engine as _;
use domain::{CredentialKind, FailureClassification};
use integration_kit::{
    Done, Provider, ProviderCall, Served, Serves, Step, answered, call_failed, malformed,
};
use reqwest::header::{ACCEPT, HeaderMap};
use reqwest::{Method, StatusCode};
use resilience::{CallError, Classifier, Safety, Verdict};
use serde_json::{Value, json};

use crate::{
    Check, CheckConclusion, CheckStatus, Comment, CommentOnPullRequest, GetPipelineRun,
    GetRepository, NewCheck, NewComment, NewPipelineRun, NewPullRequest, OpenPullRequest,
    PipelineRun, PipelineRunRef, PullRequest, ReportCheck, Repository, RepositoryRef,
    StartPipeline,
};
use integration_kit::{VendorWebhook, Wait, WebhookEffect};
use secrecy::{ExposeSecret as _, SecretString};

pub const DEFAULT_BASE_URL: &str = "https://dev.azure.com";
/// The REST API version every call pins.
pub const API_VERSION: &str = "7.1";
/// The scope of an Entra ID token for Azure DevOps (its resource id's `.default`).
pub const ENTRA_SCOPE: &str = "499b84ac-1321-427f-aa17-267ca6975798/.default";
/// The service hook event of a pipeline run's state changes.
pub const RUN_STATE_CHANGED: &str = "ms.vss-pipelines.run-state-changed-event";

pub struct AzureDevOps;

/// The connection's config: only the kit's `baseUrl` (a proxy or a fake).
#[derive(Debug, serde::Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct AzureDevOpsConfig {
    #[serde(rename = "baseUrl")]
    _base_url: Option<String>,
}

impl integration_kit::ProviderConfig for AzureDevOpsConfig {}

#[async_trait]
impl Provider for AzureDevOps {
    fn key(&self) -> &'static str {
        "azure-devops"
    }

    fn credential_kinds(&self) -> &'static [CredentialKind] {
        &[
            CredentialKind::ApiKey,
            CredentialKind::Oauth2ClientCredentials,
        ]
    }

    /// The connection's identity (`_apis/connectionData`), which any valid token may read
    /// without naming an organisation's resource.
    async fn test_connection(&self, call: &ProviderCall<'_>) -> Result<(), CallError> {
        let answer = request(
            call,
            Method::GET,
            "/_apis/connectionData",
            None,
            Safety::Safe,
        )
        .await?;
        json_body(&answer.body).map(drop)
    }

    /// `ms.vss-pipelines.run-state-changed-event` deliveries whose run is `completed` end
    /// the run waiting on that pipeline run at once; other events mean nothing here.
    fn webhook(&self, webhook: &VendorWebhook<'_>) -> Result<Vec<WebhookEffect>, String> {
        if webhook.event_type != Some(RUN_STATE_CHANGED) {
            return Ok(Vec::new());
        }
        let body: Value =
            serde_json::from_slice(webhook.body).map_err(|e| format!("not JSON: {e}"))?;
        let resource = &body["resource"];
        if resource["run"]["state"].as_str() != Some("completed") {
            return Ok(Vec::new());
        }
        let pipeline = resource["pipeline"]["id"]
            .as_u64()
            .or_else(|| resource["run"]["pipeline"]["id"].as_u64())
            .ok_or("the event names no pipeline")?;
        let run = pipeline_run(&resource["run"], pipeline)
            .map_err(|e| format!("an unreadable run: {}", e.failure.message))?;
        Ok(vec![WebhookEffect::completed::<StartPipeline>(
            correlation(pipeline, run.run_id),
            Done::new(run),
        )])
    }

    fn serves(served: &mut Served<Self>) {
        served
            .operation::<GetRepository>()
            .operation::<OpenPullRequest>()
            .operation::<ReportCheck>()
            .operation::<CommentOnPullRequest>()
            .operation::<StartPipeline>()
            .operation::<GetPipelineRun>()
            .config::<AzureDevOpsConfig>();
    }
}

/// What a waiting `startPipeline` run is found by: pipeline and run ids (run ids are
/// numbered per organisation; the pipeline's id makes two organisations' alike unlikely).
fn correlation(pipeline: u64, run: u64) -> String {
    format!("{pipeline}/{run}")
}

fn runs_path(organization: &str, project: &str, pipeline: u64) -> String {
    format!("/{organization}/{project}/_apis/pipelines/{pipeline}/runs")
}

#[async_trait]
impl Serves<StartPipeline> for AzureDevOps {
    async fn execute(
        &self,
        call: &ProviderCall<'_>,
        input: &NewPipelineRun,
    ) -> Result<Step<PipelineRun>, CallError> {
        let pipeline = input.pipeline_id.get();
        let ref_name = if input.git_ref.starts_with("refs/") {
            input.git_ref.to_string()
        } else {
            format!("refs/heads/{}", input.git_ref)
        };
        let mut body = json!({"resources": {"repositories": {"self": {"refName": ref_name}}}});
        if !input.inputs.is_empty() {
            body["templateParameters"] = json!(input.inputs);
        }
        let path = runs_path(&input.organization, &input.project, pipeline);
        let answer = request(call, Method::POST, &path, Some(&body), Safety::Unsafe).await?;
        let run = pipeline_run(&json_body(&answer.body)?, pipeline)?;
        if run.state == "completed" {
            return Ok(Done::new(run).into());
        }
        Ok(Wait::after(
            source_control::FIRST_LOOK,
            json!({"runId": run.run_id, "looks": 0}),
        )
        .progress(json!({"runId": run.run_id, "pipelineId": pipeline, "url": run.url}))
        .correlate(correlation(pipeline, run.run_id))
        .into())
    }

    /// Looks at the pipeline run; not finished, it looks again later
    /// ([`source_control::next_look`]).
    async fn resume(
        &self,
        call: &ProviderCall<'_>,
        input: &NewPipelineRun,
        state: &Value,
    ) -> Result<Step<PipelineRun>, CallError> {
        let run_id = state["runId"]
            .as_u64()
            .ok_or_else(|| malformed("the waiting state has no runId"))?;
        let pipeline = input.pipeline_id.get();
        let run = get_run(call, &input.organization, &input.project, pipeline, run_id).await?;
        if run.state == "completed" {
            return Ok(Done::new(run).into());
        }
        let looks = state["looks"].as_u64().unwrap_or(0) + 1;
        Ok(Wait::after(
            source_control::next_look(looks),
            json!({"runId": run_id, "looks": looks}),
        )
        .progress(
            json!({"runId": run_id, "pipelineId": pipeline, "url": run.url, "state": run.state}),
        )
        .into())
    }
}

#[async_trait]
impl Serves<GetPipelineRun> for AzureDevOps {
    async fn execute(
        &self,
        call: &ProviderCall<'_>,
        input: &PipelineRunRef,
    ) -> Result<Step<PipelineRun>, CallError> {
        let run = get_run(
            call,
            &input.organization,
            &input.project,
            input.pipeline_id.get(),
            input.run_id.get(),
        )
        .await?;
        Ok(Done::new(run).into())
    }
}

async fn get_run(
    call: &ProviderCall<'_>,
    organization: &str,
    project: &str,
    pipeline: u64,
    run: u64,
) -> Result<PipelineRun, CallError> {
    let path = format!("{}/{run}", runs_path(organization, project, pipeline));
    let answer = request(call, Method::GET, &path, None, Safety::Safe).await?;
    pipeline_run(&json_body(&answer.body)?, pipeline)
}

/// A pipeline run in Azure DevOps' shape (the Runs API's `Run`, a service hook's
/// `resource.run`).
fn pipeline_run(run: &Value, pipeline: u64) -> Result<PipelineRun, CallError> {
    let time = |field: &str| {
        run[field]
            .as_str()
            .and_then(|t| chrono::DateTime::parse_from_rfc3339(t).ok())
    };
    let read = || {
        let state = run["state"].as_str()?.to_owned();
        let duration_ms = match (state.as_str(), time("createdDate"), time("finishedDate")) {
            ("completed", Some(start), Some(end)) => {
                u64::try_from((end - start).num_milliseconds()).ok()
            }
            _ => None,
        };
        let url = run["_links"]["web"]["href"]
            .as_str()
            .or_else(|| run["url"].as_str())?
            .to_owned();
        Some(PipelineRun {
            run_id: run["id"].as_u64()?,
            pipeline_id: run["pipeline"]["id"].as_u64().unwrap_or(pipeline),
            url,
            result: run["result"].as_str().map(str::to_owned),
            created_date: run["createdDate"].as_str().map(str::to_owned),
            finished_date: run["finishedDate"].as_str().map(str::to_owned),
            state,
            duration_ms,
        })
    };
    read().ok_or_else(|| malformed("the pipeline run lacks a field"))
}

fn repo_path(organization: &str, project: &str, repository: &str) -> String {
    format!("/{organization}/{project}/_apis/git/repositories/{repository}")
}

#[async_trait]
impl Serves<GetRepository> for AzureDevOps {
    async fn execute(
        &self,
        call: &ProviderCall<'_>,
        input: &RepositoryRef,
    ) -> Result<Step<Repository>, CallError> {
        let path = repo_path(&input.organization, &input.project, &input.repository);
        let answer = request(call, Method::GET, &path, None, Safety::Safe).await?;
        let repo = json_body(&answer.body)?;
        let read = || {
            Some(Repository {
                id: repo["id"].as_str()?.to_owned(),
                name: repo["name"].as_str()?.to_owned(),
                default_branch: repo["defaultBranch"]
                    .as_str()
                    .map(|b| b.trim_start_matches("refs/heads/").to_owned())
                    .unwrap_or_default(),
                web_url: repo["webUrl"].as_str()?.to_owned(),
                private: repo["project"]["visibility"].as_str() != Some("public"),
            })
        };
        let repository = read().ok_or_else(|| malformed("the repository lacks a field"))?;
        Ok(Done::new(repository).into())
    }
}

#[async_trait]
impl Serves<OpenPullRequest> for AzureDevOps {
    async fn execute(
        &self,
        call: &ProviderCall<'_>,
        input: &NewPullRequest,
    ) -> Result<Step<PullRequest>, CallError> {
        let path = format!(
            "{}/pullrequests",
            repo_path(&input.organization, &input.project, &input.repository)
        );
        let mut body = json!({
            "sourceRefName": format!("refs/heads/{}", input.source_branch),
            "targetRefName": format!("refs/heads/{}", input.target_branch),
            "title": input.title.as_str(),
            "isDraft": input.draft,
        });
        if let Some(text) = &input.body {
            body["description"] = json!(text);
        }
        let opened = source_control::open_once(
            || find_active(call, input),
            || async {
                let answer =
                    request(call, Method::POST, &path, Some(&body), Safety::Unsafe).await?;
                pull_request(&json_body(&answer.body)?, true)
            },
            // TF401179: an active pull request for the source and target exists.
            |e| e.failure.vendor_code.as_deref() == Some("GitPullRequestExistsException"),
        )
        .await?;
        Ok(Done::new(opened).into())
    }
}

#[async_trait]
impl Serves<CommentOnPullRequest> for AzureDevOps {
    async fn execute(
        &self,
        call: &ProviderCall<'_>,
        input: &NewComment,
    ) -> Result<Step<Comment>, CallError> {
        let threads = format!(
            "{}/pullRequests/{}/threads",
            repo_path(&input.organization, &input.project, &input.repository),
            input.number
        );
        let web = format!(
            "{}/{}/{}/_git/{}/pullrequest/{}",
            call.base_url(DEFAULT_BASE_URL),
            input.organization,
            input.project,
            input.repository,
            input.number
        );
        let url = |thread: u64| format!("{web}?discussionId={thread}");
        let comment = |id: u64, created| Comment {
            comment_id: id,
            url: url(id),
            created,
        };
        let (threads, comment) = (&threads, &comment);
        let posted = source_control::comment_once(
            call.idempotency_key,
            &input.body,
            |marker| async move {
                let listed = request(call, Method::GET, threads, None, Safety::Safe).await?;
                let listed = json_body(&listed.body)?;
                let found = listed["value"].as_array().and_then(|threads| {
                    threads.iter().find(|t| {
                        t["comments"].as_array().is_some_and(|cs| {
                            cs.iter()
                                .any(|c| c["content"].as_str().is_some_and(|b| b.contains(&marker)))
                        })
                    })
                });
                Ok(found
                    .and_then(|t| t["id"].as_u64())
                    .map(|id| comment(id, false)))
            },
            |content| async move {
                // `commentType` 1 is text; `status` 1 an active thread.
                let body = json!({
                    "comments": [{"parentCommentId": 0, "content": content, "commentType": 1}],
                    "status": 1,
                });
                let answer =
                    request(call, Method::POST, threads, Some(&body), Safety::Unsafe).await?;
                let id = json_body(&answer.body)?["id"]
                    .as_u64()
                    .ok_or_else(|| malformed("the thread has no id"))?;
                Ok(comment(id, true))
            },
        )
        .await?;
        Ok(Done::new(posted).into())
    }
}

/// The genre of every status the platform posts (`context.genre`).
pub const STATUS_GENRE: &str = "integration-platform";

#[async_trait]
impl Serves<ReportCheck> for AzureDevOps {
    async fn execute(
        &self,
        call: &ProviderCall<'_>,
        input: &NewCheck,
    ) -> Result<Step<Check>, CallError> {
        let repo = repo_path(&input.organization, &input.project, &input.repository);
        let path = match (&input.sha, input.pull_request) {
            (Some(sha), _) => format!("{repo}/commits/{sha}/statuses"),
            (None, Some(number)) => format!("{repo}/pullRequests/{number}/statuses"),
            (None, None) => {
                return Err(call_failed(
                    FailureClassification::Validation,
                    "sha or pullRequest is required",
                ));
            }
        };
        let state = match (input.status, input.conclusion) {
            (CheckStatus::Queued | CheckStatus::InProgress, _) | (_, None) => "pending",
            (_, Some(CheckConclusion::Success)) => "succeeded",
            (_, Some(CheckConclusion::Neutral | CheckConclusion::Skipped)) => "notApplicable",
            (_, Some(_)) => "failed",
        };
        let mut body = json!({
            "state": state,
            "context": {"genre": STATUS_GENRE, "name": input.name.as_str()},
        });
        if let Some(summary) = &input.summary {
            body["description"] = json!(summary);
        }
        if let Some(url) = &input.details_url {
            body["targetUrl"] = json!(url.as_str());
        }
        // A status is a report, not a resource: posting the same one again only repeats it.
        let answer = request(call, Method::POST, &path, Some(&body), Safety::Idempotent).await?;
        let status = json_body(&answer.body)?;
        let read = || {
            Some(Check {
                check_id: status["id"].as_u64()?,
                url: status["url"].as_str()?.to_owned(),
                created: true,
            })
        };
        Ok(Done::new(read().ok_or_else(|| malformed("the status lacks a field"))?).into())
    }
}

/// The active pull request from the source into the target branch, if there is one.
async fn find_active(
    call: &ProviderCall<'_>,
    input: &NewPullRequest,
) -> Result<Option<PullRequest>, CallError> {
    let path = format!(
        "{}/pullrequests?searchCriteria.status=active&searchCriteria.sourceRefName={}&searchCriteria.targetRefName={}&$top=1",
        repo_path(&input.organization, &input.project, &input.repository),
        integration_kit::query_value(&format!("refs/heads/{}", input.source_branch)),
        integration_kit::query_value(&format!("refs/heads/{}", input.target_branch)),
    );
    let answer = request(call, Method::GET, &path, None, Safety::Safe).await?;
    let list = json_body(&answer.body)?;
    let list = list["value"]
        .as_array()
        .ok_or_else(|| malformed("the pull requests are not a list"))?;
    list.first().map(|pr| pull_request(pr, false)).transpose()
}

fn pull_request(pr: &Value, created: bool) -> Result<PullRequest, CallError> {
    let read = || {
        let number = pr["pullRequestId"].as_u64()?;
        // The web address: the repository's, plus the pull request's id.
        let url = match pr["repository"]["webUrl"].as_str() {
            Some(repo) => format!("{repo}/pullrequest/{number}"),
            None => pr["url"].as_str()?.to_owned(),
        };
        Some(PullRequest {
            number,
            url,
            state: pr["status"].as_str()?.to_owned(),
            created,
        })
    };
    read().ok_or_else(|| malformed("the pull request lacks a field"))
}

fn json_body(body: &[u8]) -> Result<Value, CallError> {
    serde_json::from_slice(body).map_err(|_| {
        // A success that is not JSON is the sign-in page a refused token gets.
        call_failed(
            FailureClassification::Auth,
            "azure devops answered with a page, not JSON: the token was not accepted",
        )
    })
}

/// One REST call with the connection's credential, `api-version` pinned. An Entra ID token
/// Azure DevOps refuses (401: expired early, or the principal's access changed) is dropped
/// and fetched again, once.
async fn request(
    call: &ProviderCall<'_>,
    method: Method,
    path: &str,
    body: Option<&Value>,
    safety: Safety,
) -> Result<resilience::VendorResponse, CallError> {
    let entra = call.credential.kind() == CredentialKind::Oauth2ClientCredentials;
    call.with_fresh_token_on_401(entra, || send(call, &method, path, body, safety))
        .await
}

async fn send(
    call: &ProviderCall<'_>,
    method: &Method,
    path: &str,
    body: Option<&Value>,
    safety: Safety,
) -> Result<resilience::VendorResponse, CallError> {
    let authorization = authorization(call).await?;
    let separator = if path.contains('?') { '&' } else { '?' };
    let url = format!(
        "{}{path}{separator}api-version={API_VERSION}",
        call.base_url(DEFAULT_BASE_URL)
    );
    // The credential's fields and the token as sent, should the answer echo one.
    let mut secrets: Vec<&str> = call.credential.values().collect();
    secrets.extend(
        authorization
            .expose_secret()
            .split_once(' ')
            .map(|(_, t)| t),
    );
    let answers = Answers { secrets };
    call.pipeline
        .send(call.call(safety, &answers), || {
            let mut builder = call
                .http
                .request(method.clone(), &url)
                .header(
                    reqwest::header::AUTHORIZATION,
                    authorization.expose_secret(),
                )
                .header(ACCEPT, "application/json");
            if let Some(body) = body {
                builder = builder.json(body);
            }
            builder
        })
        .await
}

/// The `Authorization` value: the PAT as basic with an empty user, or an Entra ID bearer.
async fn authorization(call: &ProviderCall<'_>) -> Result<SecretString, CallError> {
    Ok(SecretString::from(match call.credential.kind() {
        CredentialKind::Oauth2ClientCredentials => {
            let token = call.client_credentials_token(ENTRA_SCOPE).await?;
            format!("Bearer {}", token.token.expose_secret())
        }
        _ => format!(
            "Basic {}",
            base64::engine::general_purpose::STANDARD
                .encode(format!(":{}", call.secret("apiKey")?))
        ),
    }))
}

/// Azure DevOps' answers: the status decides; `TF400733` is a rate limit whatever the
/// status; the error body's `typeKey` and `message` are kept, redacted.
struct Answers<'s> {
    secrets: Vec<&'s str>,
}

impl Classifier for Answers<'_> {
    fn classify(&self, status: StatusCode, headers: &HeaderMap, body: &[u8]) -> Verdict {
        let Some((mut failure, error)) = integration_kit::failed_answer(status, headers, body)
        else {
            return Verdict::Success;
        };
        let message = error["message"].as_str().unwrap_or_default();
        if message.starts_with("TF400733") {
            failure.class = FailureClassification::RateLimited;
        }
        failure.vendor_code = error["typeKey"].as_str().map(str::to_owned);
        failure.message = answered("azure devops", status.as_u16(), message, &self.secrets);
        Verdict::Failure(failure)
    }
}

#[cfg(test)]
mod tests;

#[cfg(test)]
mod pipeline_tests;
