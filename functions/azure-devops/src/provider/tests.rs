//! The provider against a fake Azure DevOps over real HTTP, answering in its documented
//! shapes: it checks the PAT's basic form and the `api-version`, answers
//! `TF401019`/`TF401179`/`TF400733` errors, and a sign-in page for a token it refuses.

use std::sync::{Arc, Mutex};

use base64::Engine as _;
use domain::{CredentialKind, FailureClassification};
use integration_kit::testing::{
    Case, FakeVendor, Harness, Perform, Recorded, Reply, THROTTLE_SECS, assert_no_secret,
    conformance,
};
use serde_json::{Value, json};

use super::*;

const PAT: &str = "adopat0123456789abcdefghijklmnopqrstuvwxyz0123456789ab";
const REPO_ID: &str = "5febef5a-833d-4e14-b9c0-14cb638f91e6";

fn error(status: u16, type_key: &str, message: &str) -> Reply {
    Reply::json(
        status,
        json!({"$id": "1", "innerException": null, "message": message,
               "typeName": format!("Microsoft.TeamFoundation.Git.Server.{type_key}, Microsoft.TeamFoundation.Git.Server"),
               "typeKey": type_key, "errorCode": 0, "eventId": 3000}),
    )
}

fn repo_url() -> String {
    "https://dev.azure.com/fabrikam/Fabrikam-Fiber/_git/svc-a".to_owned()
}

/// Azure DevOps for `fabrikam/Fabrikam-Fiber/svc-a`.
fn azure_devops(pulls: &Arc<Mutex<Vec<Value>>>, r: &Recorded) -> Reply {
    let expected = format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(format!(":{PAT}"))
    );
    if r.header("authorization") != Some(expected.as_str()) {
        // What a browser-less client gets for a token Azure DevOps does not take.
        return Reply::text(203, "<html><head><title>Sign In</title></head></html>")
            .header("content-type", "text/html");
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
    let repo = "/fabrikam/Fabrikam-Fiber/_apis/git/repositories/svc-a";
    let mut pulls = pulls.lock().unwrap();
    match (r.method.as_str(), r.path.as_str()) {
        ("GET", "/_apis/connectionData") => Reply::json(
            200,
            json!({"authenticatedUser": {"id": "u1", "providerDisplayName": "Build"}}),
        ),
        ("POST", p)
            if p == format!("{repo}/pullRequests/100/statuses")
                || p.starts_with(&format!("{repo}/commits/")) && p.ends_with("/statuses") =>
        {
            let body = r.json();
            let states = [
                "pending",
                "succeeded",
                "failed",
                "error",
                "notApplicable",
                "notSet",
            ];
            if !states.contains(&body["state"].as_str().unwrap_or_default())
                || body["context"]["name"].as_str().is_none()
            {
                return error(
                    400,
                    "InvalidArgumentValueException",
                    "TF400813: invalid status.",
                );
            }
            let id = 1 + pulls.len() as u64;
            let mut status = body.clone();
            status["id"] = json!(id);
            status["url"] = json!(format!(
                "https://dev.azure.com/fabrikam/_apis/git/repositories/{REPO_ID}/pullRequests/100/statuses/{id}"
            ));
            // Kept in the fake's list so the test can read what was posted.
            pulls.push(json!({"status": status.clone(), "path": p}));
            Reply::json(201, status)
        }
        ("GET", p) if p == format!("{repo}/pullRequests/100/threads") => {
            let threads: Vec<Value> = pulls
                .iter()
                .filter(|t| t.get("comments").is_some())
                .cloned()
                .collect();
            Reply::json(200, json!({"count": threads.len(), "value": threads}))
        }
        ("POST", p) if p == format!("{repo}/pullRequests/100/threads") => {
            let body = r.json();
            if body["comments"][0]["content"]
                .as_str()
                .is_none_or(str::is_empty)
            {
                return error(
                    400,
                    "InvalidArgumentValueException",
                    "TF400813: no content.",
                );
            }
            let id = 500 + pulls.len() as u64;
            let thread = json!({"id": id, "status": "active",
                "comments": [{"id": 1, "content": body["comments"][0]["content"], "commentType": "text"}]});
            pulls.push(thread.clone());
            // The first post of a test that asks for it: kept, but the answer is lost.
            if body["comments"][0]["content"]
                .as_str()
                .unwrap()
                .contains("lose-answer")
                && pulls.len() == 1
            {
                return error(503, "ServiceUnavailableException", "TF400898: unavailable.");
            }
            Reply::json(200, thread)
        }
        ("GET", p) if p == repo => Reply::json(
            200,
            json!({"id": REPO_ID, "name": "svc-a", "defaultBranch": "refs/heads/main",
                   "webUrl": repo_url(), "project": {"id": "p1", "name": "Fabrikam-Fiber", "visibility": "private"}}),
        ),
        ("GET", p) if p == format!("{repo}/pullrequests") => {
            let query = r.query.clone().unwrap_or_default();
            let found: Vec<Value> = pulls
                .iter()
                .filter(|p| {
                    let enc = |s: &str| s.replace('/', "%2F");
                    query.contains(&format!(
                        "searchCriteria.sourceRefName={}",
                        enc(p["sourceRefName"].as_str().unwrap())
                    )) && query.contains(&format!(
                        "searchCriteria.targetRefName={}",
                        enc(p["targetRefName"].as_str().unwrap())
                    ))
                })
                .cloned()
                .collect();
            Reply::json(200, json!({"count": found.len(), "value": found}))
        }
        ("POST", p) if p == format!("{repo}/pullrequests") => {
            let body = r.json();
            if pulls.iter().any(|p| {
                p["sourceRefName"] == body["sourceRefName"]
                    && p["targetRefName"] == body["targetRefName"]
            }) {
                return error(
                    409,
                    "GitPullRequestExistsException",
                    "TF401179: An active pull request for the source and target branch already exists.",
                );
            }
            let id = 100 + pulls.len() as u64;
            let pr = json!({"pullRequestId": id, "status": "active",
                "sourceRefName": body["sourceRefName"], "targetRefName": body["targetRefName"],
                "title": body["title"], "isDraft": body["isDraft"],
                "url": format!("https://dev.azure.com/fabrikam/_apis/git/repositories/{REPO_ID}/pullRequests/{id}"),
                "repository": {"id": REPO_ID, "webUrl": repo_url()}});
            pulls.push(pr.clone());
            Reply::json(201, pr)
        }
        _ => error(
            404,
            "GitRepositoryNotFoundException",
            "TF401019: The Git repository with name or identifier X does not exist or you do not have permissions for the operation you are attempting.",
        ),
    }
}

async fn fake() -> (FakeVendor, Arc<Mutex<Vec<Value>>>) {
    let pulls = Arc::new(Mutex::new(Vec::new()));
    let p = pulls.clone();
    (
        FakeVendor::start(move |r, _| azure_devops(&p, r)).await,
        pulls,
    )
}

fn harness(base: &str, pat: &str) -> Harness {
    Harness::new(
        "azure-devops",
        CredentialKind::ApiKey,
        json!({"apiKey": pat}),
        json!({"baseUrl": base}),
    )
}

fn repo() -> Value {
    json!({"organization": "fabrikam", "project": "Fabrikam-Fiber", "repository": "svc-a"})
}

fn pr_input() -> Value {
    json!({"organization": "fabrikam", "project": "Fabrikam-Fiber", "repository": "svc-a",
           "sourceBranch": "feature/x", "targetBranch": "main", "title": "Add x"})
}

#[tokio::test]
async fn a_repository_is_read_with_the_pat_as_basic_auth() {
    let (fake, _) = fake().await;
    let h = harness(&fake.base, PAT);
    let ran = Perform::<GetRepository>::perform(&AzureDevOps, &h.call(), &repo())
        .await
        .unwrap();
    assert_eq!(
        ran.output,
        json!({"id": REPO_ID, "name": "svc-a", "defaultBranch": "main",
               "webUrl": repo_url(), "private": true})
    );
    AzureDevOps.test_connection(&h.call()).await.unwrap();
    // A token Azure DevOps does not take: its sign-in page is an auth failure.
    let refused = harness(&fake.base, "not-the-pat");
    let e = AzureDevOps
        .test_connection(&refused.call())
        .await
        .unwrap_err();
    assert_eq!(e.class(), FailureClassification::Auth);
    assert!(!e.retryable);
}

#[tokio::test]
async fn a_pull_request_is_opened_once_for_a_source_and_target() {
    let (fake, pulls) = fake().await;
    let h = harness(&fake.base, PAT);
    let first = Perform::<OpenPullRequest>::perform(&AzureDevOps, &h.call(), &pr_input())
        .await
        .unwrap();
    assert_eq!(
        first.output,
        json!({"number": 100, "url": format!("{}/pullrequest/100", repo_url()),
               "state": "active", "created": true})
    );
    let again = Perform::<OpenPullRequest>::perform(&AzureDevOps, &h.call(), &pr_input())
        .await
        .unwrap();
    assert_eq!(again.output["number"], 100);
    assert_eq!(again.output["created"], false);
    assert_eq!(pulls.lock().unwrap().len(), 1);
    assert_eq!(
        pulls.lock().unwrap()[0]["sourceRefName"],
        "refs/heads/feature/x"
    );
}

#[tokio::test]
async fn a_pull_request_opened_meanwhile_is_found_after_tf401179() {
    let pulls = Arc::new(Mutex::new(Vec::new()));
    let p = pulls.clone();
    let fake = FakeVendor::start(move |r, n| {
        if n == 1 && r.method == reqwest::Method::GET {
            // A concurrent duplicate opens it right after this lookup.
            p.lock()
                .unwrap()
                .push(json!({"pullRequestId": 7, "status": "active",
                "sourceRefName": "refs/heads/feature/x", "targetRefName": "refs/heads/main",
                "repository": {"webUrl": repo_url()}}));
            return Reply::json(200, json!({"count": 0, "value": []}));
        }
        azure_devops(&p, r)
    })
    .await;
    let ran = Perform::<OpenPullRequest>::perform(
        &AzureDevOps,
        &harness(&fake.base, PAT).call(),
        &pr_input(),
    )
    .await
    .unwrap();
    assert_eq!(ran.output["number"], 7);
    assert_eq!(ran.output["created"], false);
    assert_eq!(pulls.lock().unwrap().len(), 1);
}

#[tokio::test]
async fn usage_limits_are_rate_limits_with_their_delay() {
    let fake = FakeVendor::start(|_, _| {
        error(
            429,
            "RequestBlockedException",
            "TF400733: The request has been canceled: Request was blocked due to exceeding usage of resource 'Core' in namespace 'User'.",
        )
        .header("x-ratelimit-delay", "4.5")
        .header("retry-after", "5")
    })
    .await;
    let e =
        Perform::<GetRepository>::perform(&AzureDevOps, &harness(&fake.base, PAT).call(), &repo())
            .await
            .unwrap_err();
    assert_eq!(e.class(), FailureClassification::RateLimited);
    assert!(e.retryable);
    assert_eq!(
        e.failure.retry_after,
        Some(std::time::Duration::from_secs(5))
    );
    assert!(
        e.failure.message.contains("TF400733"),
        "{}",
        e.failure.message
    );
    assert_no_secret(&e, &[PAT]);
}

#[tokio::test]
async fn checks_are_pull_request_or_commit_statuses_named_by_genre_and_name() {
    let (fake, posted) = fake().await;
    let h = harness(&fake.base, PAT);
    let report = |extra: Value| {
        let mut input = json!({"organization": "fabrikam", "project": "Fabrikam-Fiber",
                               "repository": "svc-a", "name": "deploy staging"});
        for (k, v) in extra.as_object().unwrap() {
            input[k] = v.clone();
        }
        input
    };
    let ran = Perform::<ReportCheck>::perform(
        &AzureDevOps,
        &h.call(),
        &report(
            json!({"pullRequest": 100, "status": "completed", "conclusion": "timed_out",
                       "summary": "Deploy took too long", "detailsUrl": "https://ci.example/42"}),
        ),
    )
    .await
    .unwrap();
    assert_eq!(ran.output["checkId"], 1);
    Perform::<ReportCheck>::perform(
        &AzureDevOps,
        &h.call(),
        &report(
            json!({"sha": "6dcb09b5b57875f334f61aebed695e2e4193db5e", "status": "in_progress"}),
        ),
    )
    .await
    .unwrap();
    let posted = posted.lock().unwrap().clone();
    assert_eq!(
        posted[0]["status"],
        json!({"id": 1, "url": posted[0]["status"]["url"], "state": "failed",
               "context": {"genre": "integration-platform", "name": "deploy staging"},
               "description": "Deploy took too long", "targetUrl": "https://ci.example/42"})
    );
    assert!(
        posted[1]["path"]
            .as_str()
            .unwrap()
            .contains("/commits/6dcb09b5")
    );
    assert_eq!(posted[1]["status"]["state"], "pending");
    // The outcome rules are the shared ones.
    let e = integration_kit::parse_input::<ReportCheck>(&report(
        json!({"pullRequest": 1, "status": "completed"}),
    ))
    .unwrap_err();
    assert_eq!(e.path, "conclusion");
}

#[tokio::test]
async fn a_run_comments_once_even_when_the_answer_was_lost() {
    let (fake, threads) = fake().await;
    let h = harness(&fake.base, PAT);
    let input = json!({"organization": "fabrikam", "project": "Fabrikam-Fiber", "repository": "svc-a",
                       "number": 100, "body": "Deployed; lose-answer"});
    let e = Perform::<CommentOnPullRequest>::perform(&AzureDevOps, &h.call(), &input)
        .await
        .unwrap_err();
    assert_eq!(e.class(), FailureClassification::Transient);
    let found = Perform::<CommentOnPullRequest>::perform(&AzureDevOps, &h.call(), &input)
        .await
        .unwrap();
    assert_eq!(found.output["created"], false);
    assert_eq!(found.output["commentId"], 500);
    assert_eq!(
        found.output["url"],
        format!(
            "{}/fabrikam/Fabrikam-Fiber/_git/svc-a/pullrequest/100?discussionId=500",
            fake.base
        )
    );
    assert_eq!(threads.lock().unwrap().len(), 1, "one thread");
    let content = threads.lock().unwrap()[0]["comments"][0]["content"]
        .as_str()
        .unwrap()
        .to_owned();
    assert!(content.contains(&source_control::comment_marker(
        h.idempotency_key.as_deref().unwrap()
    )));
}

/// Azure DevOps' documented answers for the kit's conformance suite.
struct AdoScript;

impl integration_kit::testing::VendorScript for AdoScript {
    fn reply(&self, case: Case, _request: &Recorded) -> Result<Reply, &'static str> {
        Ok(match case {
            Case::Success => Reply::json(
                200,
                json!({"id": REPO_ID, "name": "svc-a", "defaultBranch": "refs/heads/main",
                       "webUrl": repo_url(), "project": {"visibility": "private"}}),
            ),
            Case::Invalid => error(
                400,
                "ArgumentException",
                "TF400813: The request is invalid.",
            ),
            Case::Unauthorized => Reply::text(401, ""),
            Case::Throttled => error(429, "RequestBlockedException", "TF400733: blocked.")
                .header("retry-after", &THROTTLE_SECS.to_string()),
            Case::ServerError => {
                error(503, "ServiceUnavailableException", "TF400898: unavailable.")
            }
            Case::Malformed => Reply::json(200, json!({"value": "not a repository"})),
        })
    }
}

#[tokio::test]
async fn the_provider_passes_the_kits_conformance_suite() {
    let skipped = conformance::<GetRepository, _, _>(
        &AzureDevOps,
        AdoScript,
        |base| harness(base, PAT),
        repo(),
        &[PAT],
        true,
    )
    .await;
    assert!(skipped.is_empty(), "{skipped:?}");
}
