//! `azure-devops`: Git repositories and pull requests on Azure DevOps Services, on the
//! integration kit, with the same operation names as the github app: `getRepository`,
//! `openPullRequest` (Azure DevOps has no idempotency keys: the active pull request of the
//! same source and target is looked up first, and again after "already exists", so a
//! repeated or retried run never opens a second one), `reportCheck` (a pull request's or a
//! commit's status), `commentOnPullRequest` (a thread, once per run), `startPipeline` (the
//! run waits until the pipeline run finishes: ended by the `run-state-changed` service hook
//! routed to this app, else by looking again on a schedule) and `getPipelineRun`. Provider:
//! `azure-devops` ([`provider`]), with a personal access token or an Entra ID service
//! principal (client credentials).

pub mod provider;

use app_context::{AppContext, AppRegistration, CatalogueEntry, InvalidSetting};
use domain::AuthScheme;
use functions_runtime::FunctionApp;
use integration_kit::{InputError, Operation, VendorApp};
use serde::{Deserialize, Serialize};
pub use source_control::{
    Branch, Check, CheckConclusion, CheckStatus, Comment, CommentBody, PullRequest, Sha,
};

pub const SLUG: &str = "azure-devops";
pub const SOURCE: &str = "/integration/azure-devops";

/// The providers this app has adapters for, as the registry's catalogue lists them.
pub const CATALOGUE: &[CatalogueEntry] = &[CatalogueEntry::retested(
    "azure-devops",
    "Azure DevOps Services REST API",
    domain::ProviderCategory::SourceControl,
    AuthScheme::Basic,
    "https://dev.azure.com",
)
.with_clients(&[app_context::ApiClientEntry {
    name: "rest",
    version: "7.1.0",
    base_url: "https://dev.azure.com",
}])];

pub fn registration() -> AppRegistration {
    integration_kit::registration(SLUG, build, CATALOGUE)
}

pub fn build(ctx: &AppContext) -> Result<FunctionApp, InvalidSetting> {
    VendorApp::new(SLUG, SOURCE)
        // A repository lives in one organisation: another connection is not a failover.
        .failover(false)
        .provider(provider::AzureDevOps)
        .build(ctx)
}

integration_kit::checked_string!(
    /// An organisation, project or repository name as it appears in a URL path segment:
    /// 1 to 256 characters, none of `/ \ ? # %` or control characters.
    Name,
    |s| {
        let n = s.chars().count();
        if (1..=256).contains(&n)
            && !s.chars().any(|c| c.is_control() || "/\\?#%".contains(c))
            && s != "."
            && s != ".."
        {
            Ok(())
        } else {
            Err("must be a name of 1 to 256 characters without / \\ ? # %".into())
        }
    }
);

/// A repository of an organisation's project.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RepositoryRef {
    pub organization: Name,
    pub project: Name,
    pub repository: Name,
}

/// `getRepository`: a repository's id, name, default branch, web URL and visibility.
pub struct GetRepository;

impl Operation for GetRepository {
    const NAME: &'static str = "getRepository";
    type Input = RepositoryRef;
    type Output = Repository;
}

/// The same shape as the github app's.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Repository {
    /// The repository's GUID.
    pub id: String,
    pub name: String,
    /// Without `refs/heads/`.
    pub default_branch: String,
    pub web_url: String,
    /// Whether the project is private.
    pub private: bool,
}

/// `openPullRequest`: a pull request from `sourceBranch` into `targetBranch`, or the active
/// one that already exists for them.
pub struct OpenPullRequest;

impl Operation for OpenPullRequest {
    const NAME: &'static str = "openPullRequest";
    type Input = NewPullRequest;
    type Output = PullRequest;

    fn check(input: &NewPullRequest) -> Result<(), InputError> {
        if input.source_branch == input.target_branch {
            return Err(InputError::at(
                "sourceBranch",
                "must differ from targetBranch",
            ));
        }
        Ok(())
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct NewPullRequest {
    pub organization: Name,
    pub project: Name,
    pub repository: Name,
    pub source_branch: Branch,
    pub target_branch: Branch,
    pub title: Title,
    #[serde(default)]
    pub body: Option<String>,
    #[serde(default)]
    pub draft: bool,
}

/// `commentOnPullRequest`: a comment (a new thread) on a pull request, posted once per run
/// (the comment carries a hidden marker with the run id; a retried run finds it).
pub struct CommentOnPullRequest;

impl Operation for CommentOnPullRequest {
    const NAME: &'static str = "commentOnPullRequest";
    type Input = NewComment;
    type Output = Comment;
}

#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct NewComment {
    pub organization: Name,
    pub project: Name,
    pub repository: Name,
    /// The pull request's id.
    pub number: std::num::NonZeroU64,
    pub body: CommentBody,
}

/// `reportCheck`: a status on a pull request (or on a commit), named `genre/name` as Azure
/// DevOps names statuses: the latest of a name is the one its pages and policies show.
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
    pub organization: Name,
    pub project: Name,
    pub repository: Name,
    /// A commit's full SHA, or the pull request the status is on.
    #[serde(default)]
    pub sha: Option<Sha>,
    #[serde(default)]
    pub pull_request: Option<std::num::NonZeroU64>,
    /// The status' name (its `context.name`; the genre is the platform's).
    pub name: Title,
    pub status: CheckStatus,
    #[serde(default)]
    pub conclusion: Option<CheckConclusion>,
    /// Its description.
    #[serde(default)]
    pub summary: Option<String>,
    /// Its `targetUrl`.
    #[serde(default)]
    pub details_url: Option<domain::HttpUrl>,
}

integration_kit::checked_string!(
    /// A pull request title: 1 to 400 characters, one line (Azure DevOps' limit).
    Title,
    |s| {
        let n = s.chars().count();
        if (1..=400).contains(&n) && !s.chars().any(char::is_control) {
            Ok(())
        } else {
            Err("must be 1 to 400 characters on one line".into())
        }
    }
);

/// `startPipeline`: runs a pipeline on a branch, then the run **waits** for the pipeline
/// run to finish: ended at once by the `ms.vss-pipelines.run-state-changed-event` service
/// hook (routed to this app by a source of the connection), else by looking again on a
/// schedule; past the maximum wait (six hours, or the app's `RUN_MAX_WAIT_SECONDS`) the run
/// fails with `timeout`.
pub struct StartPipeline;

impl Operation for StartPipeline {
    const NAME: &'static str = "startPipeline";
    type Input = NewPipelineRun;
    type Output = PipelineRun;

    fn check(input: &NewPipelineRun) -> Result<(), InputError> {
        if input.inputs.len() > 100 {
            return Err(InputError::at("inputs", "at most 100 template parameters"));
        }
        Ok(())
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct NewPipelineRun {
    pub organization: Name,
    pub project: Name,
    pub pipeline_id: std::num::NonZeroU64,
    /// The branch the pipeline runs on (its `self` repository's `refName`).
    #[serde(rename = "ref")]
    pub git_ref: Branch,
    /// The pipeline's template parameters.
    #[serde(default)]
    pub inputs: std::collections::BTreeMap<String, String>,
}

/// `getPipelineRun`: where a pipeline run stands.
pub struct GetPipelineRun;

impl Operation for GetPipelineRun {
    const NAME: &'static str = "getPipelineRun";
    type Input = PipelineRunRef;
    type Output = PipelineRun;
}

#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct PipelineRunRef {
    pub organization: Name,
    pub project: Name,
    pub pipeline_id: std::num::NonZeroU64,
    pub run_id: std::num::NonZeroU64,
}

/// A pipeline run as a run keeps it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PipelineRun {
    pub run_id: u64,
    pub pipeline_id: u64,
    /// Its page (`_links.web.href`).
    pub url: String,
    /// `unknown`, `inProgress`, `canceling`, `completed`.
    pub state: String,
    /// Once completed: `succeeded`, `failed`, `canceled`, `unknown`.
    pub result: Option<String>,
    pub created_date: Option<String>,
    pub finished_date: Option<String>,
    /// From its creation to its end, once completed.
    pub duration_ms: Option<u64>,
}
