//! The `azure-devops` provider: Azure DevOps Services REST API, version `7.1` (pinned with
//! `api-version` on every call), at `https://dev.azure.com` or the connection's `baseUrl`.
//!
//! Credential: `apiKey` (`{apiKey}`), a personal access token, sent as HTTP Basic with an
//! empty user name, as Azure DevOps documents.
//!
//! Answers: Azure DevOps' error body (`typeKey`, `message`) goes into the failure, redacted;
//! a 429 (`TF400733`, usage exceeded) is a rate limit, and `Retry-After` or
//! `X-RateLimit-Delay` say how long to wait (the pipeline's hints); a 2xx that is not JSON
//! is Azure DevOps' sign-in page for a credential it did not take: an auth failure, never a
//! success. Azure DevOps has no idempotency keys: `openPullRequest` looks for the active pull
//! request of the same source and target before it creates one, and again when Azure DevOps
//! says one exists already (`TF401179`).

use async_trait::async_trait;
use base64::Engine as _;
use domain::{CredentialKind, FailureClassification};
use integration_kit::{
    Done, Provider, ProviderCall, Served, Serves, Step, call_failed, malformed, vendor_text,
};
use reqwest::header::{ACCEPT, HeaderMap};
use reqwest::{Method, StatusCode};
use resilience::{CallError, Classifier, Safety, Verdict, classify_status};
use serde_json::{Value, json};

use crate::{
    Check, CheckConclusion, CheckStatus, Comment, CommentOnPullRequest, GetRepository, NewCheck,
    NewComment, NewPullRequest, OpenPullRequest, PullRequest, ReportCheck, Repository,
    RepositoryRef,
};

pub const DEFAULT_BASE_URL: &str = "https://dev.azure.com";
/// The REST API version every call pins.
pub const API_VERSION: &str = "7.1";

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
        &[CredentialKind::ApiKey]
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

    fn serves(served: &mut Served<Self>) {
        served
            .operation::<GetRepository>()
            .operation::<OpenPullRequest>()
            .operation::<ReportCheck>()
            .operation::<CommentOnPullRequest>()
            .config::<AzureDevOpsConfig>();
    }
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

/// One REST call with the connection's token, `api-version` pinned.
async fn request(
    call: &ProviderCall<'_>,
    method: Method,
    path: &str,
    body: Option<&Value>,
    safety: Safety,
) -> Result<resilience::VendorResponse, CallError> {
    let pat = call.secret("apiKey")?;
    let basic = base64::engine::general_purpose::STANDARD.encode(format!(":{pat}"));
    let separator = if path.contains('?') { '&' } else { '?' };
    let url = format!(
        "{}{path}{separator}api-version={API_VERSION}",
        call.base_url(DEFAULT_BASE_URL)
    );
    let answers = Answers {
        secrets: vec![pat, basic.as_str()],
    };
    call.pipeline
        .send(call.call(safety, &answers), || {
            let mut builder = call
                .http
                .request(method.clone(), &url)
                .header(reqwest::header::AUTHORIZATION, format!("Basic {basic}"))
                .header(ACCEPT, "application/json");
            if let Some(body) = body {
                builder = builder.json(body);
            }
            builder
        })
        .await
}

/// Azure DevOps' answers: the status decides; `TF400733` is a rate limit whatever the
/// status; the error body's `typeKey` and `message` are kept, redacted.
struct Answers<'s> {
    secrets: Vec<&'s str>,
}

impl Classifier for Answers<'_> {
    fn classify(&self, status: StatusCode, headers: &HeaderMap, body: &[u8]) -> Verdict {
        let mut failure = match classify_status(status, headers) {
            Verdict::Success => return Verdict::Success,
            Verdict::Failure(f) => f,
        };
        let error: Value = serde_json::from_slice(body).unwrap_or(Value::Null);
        let message = error["message"].as_str().unwrap_or_default();
        if message.starts_with("TF400733") {
            failure.class = FailureClassification::RateLimited;
        }
        failure.vendor_code = error["typeKey"].as_str().map(str::to_owned);
        failure.message = if message.is_empty() {
            format!("azure devops answered {}", status.as_u16())
        } else {
            format!(
                "azure devops answered {}: {}",
                status.as_u16(),
                vendor_text(message, &self.secrets)
            )
        };
        Verdict::Failure(failure)
    }
}

#[cfg(test)]
mod tests;
