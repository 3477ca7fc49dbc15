//! `github`: repositories, pull requests and checks on GitHub (github.com or GitHub
//! Enterprise Server), on the integration kit. Operations, typed: `getRepository`,
//! `openPullRequest` (which never opens a second pull request for the same head and base:
//! GitHub has no idempotency keys, so a retried or duplicated run finds the open one and
//! answers it with `created: false`), `commentOnPullRequest` (once per run, by a hidden
//! marker), `reportCheck` (a check run, updated when reported again on the commit),
//! `startWorkflow` (a dispatch, then a waiting run ended by GitHub's `workflow_run` webhook or
//! by looking again) and `getWorkflowRun`.
//! Provider: `github` ([`provider`]), authenticated as a GitHub App (an RS256 App JWT
//! exchanged for an installation token, cached by the kit) or with a fine-grained personal
//! access token.

pub mod provider;

use app_context::{AppContext, AppRegistration, CatalogueEntry, InvalidSetting};
use domain::AuthScheme;
use functions_runtime::FunctionApp;
use integration_kit::{InputError, Operation, VendorApp};
use serde::{Deserialize, Serialize};
pub use source_control::{
    Branch, Check, CheckConclusion, CheckStatus, Comment, CommentBody, PullRequest, Sha,
};

pub const SLUG: &str = "github";
pub const SOURCE: &str = "/integration/github";

/// The providers this app has adapters for, as the registry's catalogue lists them.
pub const CATALOGUE: &[CatalogueEntry] = &[CatalogueEntry::retested(
    "github",
    "GitHub REST API",
    domain::ProviderCategory::SourceControl,
    AuthScheme::GithubApp,
    "https://api.github.com",
)
// The REST API version every call pins (`X-GitHub-Api-Version: 2022-11-28`).
.with_clients(&[app_context::ApiClientEntry {
    name: "rest",
    version: "2022.11.28",
    base_url: "https://api.github.com",
}])];

pub fn registration() -> AppRegistration {
    integration_kit::registration(SLUG, build, CATALOGUE)
}

pub fn build(ctx: &AppContext) -> Result<FunctionApp, InvalidSetting> {
    VendorApp::new(SLUG, SOURCE)
        // A repository lives on one GitHub: another connection is not a failover.
        .failover(false)
        .provider(provider::GitHub)
        .build(ctx)
}

integration_kit::checked_string!(
    /// An account or organisation login: 1 to 39 letters, digits or `-`.
    Owner,
    |s| {
        if (1..=39).contains(&s.len()) && s.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
        {
            Ok(())
        } else {
            Err("must be an account or organisation login (1 to 39 letters, digits or -)".into())
        }
    }
);

integration_kit::checked_string!(
    /// A repository name: 1 to 100 letters, digits, `.`, `-` or `_`, not `.` or `..`.
    RepositoryName,
    |s| {
        if (1..=100).contains(&s.len())
            && s.bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-' | b'_'))
            && s != "."
            && s != ".."
        {
            Ok(())
        } else {
            Err("must be a repository name (1 to 100 letters, digits, ., - or _)".into())
        }
    }
);

/// A repository of the connection's GitHub.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RepositoryRef {
    pub owner: Owner,
    pub repository: RepositoryName,
}

/// `getRepository`: a repository's id, name, default branch, web URL and visibility.
pub struct GetRepository;

impl Operation for GetRepository {
    const NAME: &'static str = "getRepository";
    type Input = RepositoryRef;
    type Output = Repository;
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Repository {
    pub id: u64,
    /// `owner/name`.
    pub name: String,
    pub default_branch: String,
    pub web_url: String,
    pub private: bool,
}

/// `openPullRequest`: a pull request from `head` into `base`, or the open one that already
/// exists for them.
pub struct OpenPullRequest;

impl Operation for OpenPullRequest {
    const NAME: &'static str = "openPullRequest";
    type Input = NewPullRequest;
    type Output = PullRequest;

    fn check(input: &NewPullRequest) -> Result<(), InputError> {
        if input.head == input.base {
            return Err(InputError::at("head", "must differ from base"));
        }
        Ok(())
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct NewPullRequest {
    pub owner: Owner,
    pub repository: RepositoryName,
    /// The branch with the changes (a branch of the same repository).
    pub head: Branch,
    /// The branch to merge into.
    pub base: Branch,
    pub title: Title,
    #[serde(default)]
    pub body: Option<String>,
    #[serde(default)]
    pub draft: bool,
}

integration_kit::checked_string!(
    /// A pull request title: 1 to 256 characters, one line.
    Title,
    |s| {
        let n = s.chars().count();
        if (1..=256).contains(&n) && !s.chars().any(char::is_control) {
            Ok(())
        } else {
            Err("must be 1 to 256 characters on one line".into())
        }
    }
);

/// `commentOnPullRequest`: a comment on a pull request, posted once per run (the comment
/// carries a hidden marker with the run id; a retried run finds it instead of posting again).
pub struct CommentOnPullRequest;

impl Operation for CommentOnPullRequest {
    const NAME: &'static str = "commentOnPullRequest";
    type Input = NewComment;
    type Output = Comment;
}

#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct NewComment {
    pub owner: Owner,
    pub repository: RepositoryName,
    /// The pull request's number.
    pub number: std::num::NonZeroU64,
    pub body: CommentBody,
}

/// `reportCheck`: a check run on a commit (or a pull request's head), created, or updated when
/// the platform reported the same check on that commit before (its `external_id`).
pub struct ReportCheck;

impl Operation for ReportCheck {
    const NAME: &'static str = "reportCheck";
    type Input = NewCheck;
    type Output = Check;

    fn check(input: &NewCheck) -> Result<(), InputError> {
        match (&input.sha, input.pull_request) {
            (Some(_), Some(_)) => {
                return Err(InputError::at(
                    "pullRequest",
                    "give sha or pullRequest, not both",
                ));
            }
            (None, None) => return Err(InputError::at("", "sha or pullRequest is required")),
            _ => {}
        }
        source_control::check_outcome(input.status, input.conclusion)
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct NewCheck {
    pub owner: Owner,
    pub repository: RepositoryName,
    /// The commit: its full SHA, or the pull request whose head it is.
    #[serde(default)]
    pub sha: Option<Sha>,
    #[serde(default)]
    pub pull_request: Option<std::num::NonZeroU64>,
    /// The check's name: what it is known by on the commit.
    pub name: Title,
    pub status: CheckStatus,
    #[serde(default)]
    pub conclusion: Option<CheckConclusion>,
    #[serde(default)]
    pub summary: Option<String>,
    #[serde(default)]
    pub details_url: Option<domain::HttpUrl>,
}

/// `startWorkflow`: dispatches a workflow, then the run **waits** for GitHub's workflow run
/// to finish: ended at once by its `workflow_run` webhook (routed to this app by a source of
/// the connection), else by looking again on a schedule; past [`StartWorkflow::MAX_WAIT`]
/// the run fails with `timeout`.
pub struct StartWorkflow;

impl Operation for StartWorkflow {
    const NAME: &'static str = "startWorkflow";
    type Input = NewWorkflowRun;
    type Output = WorkflowRun;
    const MAX_WAIT: std::time::Duration = std::time::Duration::from_secs(6 * 3600);

    fn check(input: &NewWorkflowRun) -> Result<(), InputError> {
        if input.inputs.len() > 25 {
            return Err(InputError::at(
                "inputs",
                "at most 25 inputs (GitHub's limit)",
            ));
        }
        Ok(())
    }
}

/// `getWorkflowRun`: where a workflow run stands.
pub struct GetWorkflowRun;

impl Operation for GetWorkflowRun {
    const NAME: &'static str = "getWorkflowRun";
    type Input = WorkflowRunRef;
    type Output = WorkflowRun;
}

#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct NewWorkflowRun {
    pub owner: Owner,
    pub repository: RepositoryName,
    /// The workflow's file name (`deploy.yml`) or id.
    pub workflow: WorkflowName,
    /// The branch or tag it runs on.
    #[serde(rename = "ref")]
    pub git_ref: Branch,
    #[serde(default)]
    pub inputs: std::collections::BTreeMap<String, String>,
}

integration_kit::checked_string!(
    /// A workflow file name (`deploy.yml`) or its numeric id.
    WorkflowName,
    |s| {
        let file = (s.ends_with(".yml") || s.ends_with(".yaml"))
            && s.len() <= 255
            && s.bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-' | b'_'));
        let id = !s.is_empty() && s.len() <= 20 && s.bytes().all(|b| b.is_ascii_digit());
        if file || id {
            Ok(())
        } else {
            Err("must be a workflow file name (deploy.yml) or id".into())
        }
    }
);

#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct WorkflowRunRef {
    pub owner: Owner,
    pub repository: RepositoryName,
    pub run_id: std::num::NonZeroU64,
}

/// A workflow run as a run keeps it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct WorkflowRun {
    pub run_id: u64,
    pub url: String,
    /// `queued`, `in_progress`, `completed`, …
    pub status: String,
    /// Once completed: `success`, `failure`, `cancelled`, `timed_out`, …
    pub conclusion: Option<String>,
    /// From its start to its last update, once completed.
    pub duration_ms: Option<u64>,
}
