//! What the source-control apps share, so that their operations have the same names and
//! shapes whatever the vendor (the github and azure-devops apps): branch names as git
//! allows them in a ref, and what an opened pull request's run keeps.

use std::future::Future;

use integration_kit::InputError;
use resilience::CallError;
use serde::{Deserialize, Serialize};

/// Opens a pull request once (neither vendor has idempotency keys): the open one `find`
/// answers, else `create`'s; when the vendor says one exists already (`exists`: a concurrent
/// duplicate of the run opened it in between), `find` again.
pub async fn open_once<F, FFut, C, CFut>(
    find: F,
    create: C,
    exists: impl Fn(&CallError) -> bool,
) -> Result<PullRequest, CallError>
where
    F: Fn() -> FFut,
    FFut: Future<Output = Result<Option<PullRequest>, CallError>>,
    C: FnOnce() -> CFut,
    CFut: Future<Output = Result<PullRequest, CallError>>,
{
    if let Some(open) = find().await? {
        return Ok(open);
    }
    match create().await {
        Ok(created) => Ok(created),
        Err(e) if exists(&e) => find().await?.ok_or(e),
        Err(e) => Err(e),
    }
}

/// Comments once per run: `body` carries the run's [`comment_marker`], and an attempt of
/// the run first looks (`find`, given the marker) for the comment an earlier attempt posted
/// before it failed (a timeout after the vendor took it); else `post` sends the marked text.
/// Outside a run (`run` is `None`) the comment is simply posted.
pub async fn comment_once<F, FFut, P, PFut>(
    run: Option<&str>,
    body: &str,
    find: F,
    post: P,
) -> Result<Comment, CallError>
where
    F: FnOnce(String) -> FFut,
    FFut: Future<Output = Result<Option<Comment>, CallError>>,
    P: FnOnce(String) -> PFut,
    PFut: Future<Output = Result<Comment, CallError>>,
{
    let Some(marker) = run.map(comment_marker) else {
        return post(body.to_owned()).await;
    };
    if let Some(found) = find(marker.clone()).await? {
        return Ok(found);
    }
    post(format!("{body}\n\n{marker}")).await
}

integration_kit::checked_string!(
    /// A branch name (without `refs/heads/`) as git allows it in a ref: no spaces, `..`,
    /// `@{`, `~^:?*[\` or control characters, no leading `-` or `/`, no trailing `/`, `.` or
    /// `.lock`, at most 255 bytes.
    Branch,
    |s| {
        let bad = s.is_empty()
            || s.len() > 255
            || s.starts_with(['-', '/'])
            || s.ends_with(['/', '.'])
            || s.ends_with(".lock")
            || s.starts_with("refs/")
            || s.contains("..")
            || s.contains("@{")
            || s.chars()
                .any(|c| c.is_control() || c.is_whitespace() || "~^:?*[\\".contains(c));
        if bad {
            Err("must be a branch name without refs/heads/ (git's rules for a ref)".into())
        } else {
            Ok(())
        }
    }
);

/// What an opened (or found) pull request's run keeps.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PullRequest {
    /// GitHub's number, Azure DevOps' pull request id.
    pub number: u64,
    /// Its web page.
    pub url: String,
    /// The vendor's word: `open` (GitHub), `active` (Azure DevOps).
    pub state: String,
    /// `false` when the pull request existed already (a retried or repeated run).
    pub created: bool,
}

integration_kit::checked_string!(
    /// A comment of 1 to 60,000 characters (GitHub takes 65,536 and Azure DevOps more; room
    /// is left for the run's marker).
    CommentBody,
    |s| {
        let n = s.chars().count();
        if (1..=60_000).contains(&n) {
            Ok(())
        } else {
            Err("must be 1 to 60000 characters".into())
        }
    }
);

/// The hidden marker a comment of run `run` carries, so that an attempt of the run finds a
/// comment an earlier attempt posted (neither vendor has idempotency keys). Invisible in
/// both vendors' Markdown.
pub fn comment_marker(run: &str) -> String {
    format!("<!-- integration-platform run {run} -->")
}

/// What a comment's run keeps.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Comment {
    /// GitHub's comment id, Azure DevOps' thread id.
    pub comment_id: u64,
    pub url: String,
    /// `false` when an earlier attempt of the run had posted it.
    pub created: bool,
}

/// Where a reported check stands (GitHub's check-run statuses an App may set; Azure DevOps
/// maps them to `pending`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum CheckStatus {
    Queued,
    InProgress,
    Completed,
}

/// How a completed check ended (GitHub's conclusions an App may set; Azure DevOps maps them
/// to `succeeded`, `failed` or `notApplicable`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum CheckConclusion {
    ActionRequired,
    Cancelled,
    Failure,
    Neutral,
    Success,
    Skipped,
    TimedOut,
}

/// A conclusion is given exactly when the check is completed.
pub fn check_outcome(
    status: CheckStatus,
    conclusion: Option<CheckConclusion>,
) -> Result<(), InputError> {
    match (status, conclusion) {
        (CheckStatus::Completed, None) => Err(InputError::at(
            "conclusion",
            "is required when status is completed",
        )),
        (CheckStatus::Queued | CheckStatus::InProgress, Some(_)) => Err(InputError::at(
            "conclusion",
            "is given only when status is completed",
        )),
        _ => Ok(()),
    }
}

/// What a reported check's run keeps.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Check {
    /// GitHub's check run id, Azure DevOps' status id.
    pub check_id: u64,
    pub url: String,
    /// `false` when an earlier report of the same check was updated (GitHub); Azure DevOps
    /// keeps every report, the latest of a name winning.
    pub created: bool,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn branch_names_follow_gits_rules() {
        for good in ["main", "feature/x", "release-1.2", "user/fix_42"] {
            assert!(
                serde_json::from_value::<Branch>(serde_json::json!(good)).is_ok(),
                "{good}"
            );
        }
        for bad in [
            "",
            "a b",
            "a..b",
            "-x",
            "/x",
            "x/",
            "x.",
            "x.lock",
            "a@{1}",
            "a~1",
            "a^",
            "a:b",
            "a?",
            "a*",
            "a[",
            "a\\b",
            "refs/heads/main",
        ] {
            assert!(
                serde_json::from_value::<Branch>(serde_json::json!(bad)).is_err(),
                "{bad:?}"
            );
        }
    }
}

integration_kit::checked_string!(
    /// A full commit SHA: 40 hex digits (what both vendors name a commit by).
    Sha,
    |s| {
        if s.len() == 40 && s.bytes().all(|b| b.is_ascii_hexdigit()) {
            Ok(())
        } else {
            Err("must be a full commit SHA (40 hex digits)".into())
        }
    }
);

/// How long a started workflow or pipeline is first given before it is looked at, and the
/// longest pause between looks: the vendor's webhook usually ends the wait long before, so
/// the looks are a backstop that backs off (the kit's `RUN_MAX_CHECK_INTERVAL_SECONDS` may
/// cap it lower).
pub const FIRST_LOOK: std::time::Duration = std::time::Duration::from_secs(30);
pub const SLOWEST_LOOK: std::time::Duration = std::time::Duration::from_secs(10 * 60);

/// The pause before look number `looks + 1` at a vendor's run: [`FIRST_LOOK`], each pause
/// twice the last, at most [`SLOWEST_LOOK`].
pub fn next_look(looks: u64) -> std::time::Duration {
    let doubled = u32::try_from(looks.min(16)).map_or(u32::MAX, |n| 1u32 << n);
    FIRST_LOOK.saturating_mul(doubled).min(SLOWEST_LOOK)
}

#[cfg(test)]
mod look_tests {
    use super::*;

    #[test]
    fn looks_back_off_to_ten_minutes() {
        let pauses: Vec<u64> = (0..7).map(|n| next_look(n).as_secs()).collect();
        assert_eq!(pauses, [30, 60, 120, 240, 480, 600, 600]);
        assert_eq!(next_look(u64::MAX), SLOWEST_LOOK);
    }
}
