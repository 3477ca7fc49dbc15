//! The provider against a fake Deputy over real HTTP, answering as Deputy's Resource API
//! does: Bearer tokens (401 otherwise), tasks created, queried (`lk` on `Comment`), read and
//! updated with PascalCase fields, `{"error": {"code", "message"}}` bodies.

use std::sync::{Arc, Mutex};

use domain::{CredentialKind, FailureClassification};
use integration_kit::testing::{
    Case, FakeVendor, Harness, Perform, Recorded, Reply, THROTTLE_SECS, assert_no_secret,
    conformance,
};
use serde_json::{Value, json};

use super::*;

const TOKEN: &str = "deputy-permanent-token-8f14e45fceea167a5a36dedd4bea2543";

fn error(status: u16, message: &str) -> Reply {
    Reply::json(
        status,
        json!({"error": {"code": status, "message": message}}),
    )
}

/// A Deputy install: its tasks, and how many creates reached it.
#[derive(Default)]
struct Install {
    tasks: Vec<Value>,
    creates: u32,
    /// Answer the next create with a 502 after keeping it (Deputy took it, the answer was
    /// lost).
    lose_next_create: bool,
}

fn deputy(install: Arc<Mutex<Install>>) -> impl Fn(&Recorded, usize) -> Reply + Send + Sync {
    move |r, _| {
        if r.header("authorization") != Some(format!("Bearer {TOKEN}").as_str()) {
            return error(401, "Invalid token");
        }
        let mut install = install.lock().unwrap();
        match (r.method.as_str(), r.path.as_str()) {
            ("GET", "/api/v1/me") => Reply::json(
                200,
                json!({"Login": "ops", "Name": "Ops Lead", "UserId": 12, "EmployeeId": 3, "Company": 1}),
            ),
            ("POST", "/api/v1/resource/Task/QUERY") => {
                let q = r.json();
                let pattern = q["search"]["s1"]["data"].as_str().unwrap_or_default();
                let needle = pattern.trim_matches('%');
                let found: Vec<Value> = install
                    .tasks
                    .iter()
                    .filter(|t| t["Comment"].as_str().unwrap_or_default().contains(needle))
                    .cloned()
                    .collect();
                Reply::json(200, json!(found))
            }
            ("POST", "/api/v1/resource/Task") => {
                install.creates += 1;
                let t = r.json();
                if t["Question"].as_str().unwrap_or_default().is_empty() || t["OpUnitId"].is_null()
                {
                    return error(400, "Question and OpUnitId are required");
                }
                let id = 900 + install.tasks.len() as u64;
                let mut task = t.clone();
                task["Id"] = json!(id);
                task["TsCompleted"] = json!(0);
                task["Created"] = json!("2026-12-08T10:00:00+11:00");
                task["Modified"] = json!("2026-12-08T10:00:00+11:00");
                install.tasks.push(task.clone());
                if install.lose_next_create {
                    install.lose_next_create = false;
                    return Reply::text(502, "Bad Gateway");
                }
                Reply::json(200, task)
            }
            (method, path) if path.starts_with("/api/v1/resource/Task/") => {
                let id: u64 = path["/api/v1/resource/Task/".len()..].parse().unwrap_or(0);
                let Some(task) = install.tasks.iter_mut().find(|t| t["Id"] == id) else {
                    return error(404, "Not Found");
                };
                if method == "POST" {
                    let change = r.json();
                    for (k, v) in change.as_object().unwrap() {
                        task[k] = v.clone();
                    }
                    task["Modified"] = json!("2026-12-08T11:00:00+11:00");
                }
                Reply::json(200, task.clone())
            }
            _ => error(404, "Not Found"),
        }
    }
}

fn harness(base: &str) -> Harness {
    Harness::new(
        "deputy",
        CredentialKind::BearerToken,
        json!({"token": TOKEN}),
        json!({"baseUrl": base, "areaId": 3, "responsibleUserId": 12}),
    )
}

fn new_ticket() -> Value {
    json!({"subject": "Fix the fridge in store 4", "description": "It is warm.",
           "requester": {"email": "pablo@example.org", "name": "Pablo"}, "priority": "urgent",
           "tags": ["facilities"]})
}

#[tokio::test]
async fn a_ticket_is_a_task_created_once_per_run() {
    let install = Arc::new(Mutex::new(Install::default()));
    let fake = FakeVendor::start(deputy(install.clone())).await;
    let h = harness(&fake.base);
    Deputy.test_connection(&h.call()).await.expect("the test");

    let created = Perform::<CreateTicket>::perform(&Deputy, &h.call(), &new_ticket())
        .await
        .expect("created");
    let id = created.output["ticketId"].as_str().unwrap().to_owned();
    assert_eq!(created.output["status"], "open");
    let task = install.lock().unwrap().tasks[0].clone();
    assert_eq!(task["Question"], "Fix the fridge in store 4");
    assert_eq!(task["OpUnitId"], 3);
    assert_eq!(task["UserResponsible"], 12);
    let comment = task["Comment"].as_str().unwrap();
    for part in [
        "It is warm.",
        "Requested by Pablo <pablo@example.org>",
        "Priority: urgent",
        "Tags: facilities",
        &format!("[ref:{}]", h.idempotency_key.as_deref().unwrap()),
    ] {
        assert!(comment.contains(part), "{part} not in {comment}");
    }
    // The same run again finds its task; Deputy saw one create.
    let again = Perform::<CreateTicket>::perform(&Deputy, &h.call(), &new_ticket())
        .await
        .expect("found");
    assert_eq!(again.output["ticketId"], id.as_str());
    assert_eq!(install.lock().unwrap().creates, 1);

    let solved = Perform::<UpdateTicket>::perform(
        &Deputy,
        &h.call(),
        &json!({"ticketId": id, "status": "solved", "comment": {"body": "Repaired."}}),
    )
    .await
    .expect("updated");
    assert_eq!(solved.output, json!({"ticketId": id, "status": "solved"}));
    let task = install.lock().unwrap().tasks[0].clone();
    assert!(task["TsCompleted"].as_i64().unwrap() > 0);
    assert!(task["Comment"].as_str().unwrap().ends_with("\n\nRepaired."));

    let read = Perform::<GetTicket>::perform(&Deputy, &h.call(), &json!({"ticketId": id}))
        .await
        .expect("read");
    assert_eq!(read.output["status"], "solved");
    assert_eq!(read.output["subject"], "Fix the fridge in store 4");
    assert_eq!(
        read.output["url"],
        format!("{}/api/v1/resource/Task/{id}", fake.base)
    );
    let reopened = Perform::<UpdateTicket>::perform(
        &Deputy,
        &h.call(),
        &json!({"ticketId": id, "status": "open"}),
    )
    .await
    .expect("reopened");
    assert_eq!(reopened.output["status"], "open");

    // Tasks have no priority or tags.
    let e = Perform::<UpdateTicket>::perform(
        &Deputy,
        &h.call(),
        &json!({"ticketId": id, "priority": "low"}),
    )
    .await
    .unwrap_err();
    assert_eq!(e.class(), FailureClassification::Validation);
}

/// Deputy kept the task but its answer was lost: the run's next attempt finds the task by
/// its reference instead of creating a second one.
#[tokio::test]
async fn a_lost_answer_does_not_make_a_second_task() {
    let install = Arc::new(Mutex::new(Install {
        lose_next_create: true,
        ..Install::default()
    }));
    let fake = FakeVendor::start(deputy(install.clone())).await;
    let h = harness(&fake.base);
    let e = Perform::<CreateTicket>::perform(&Deputy, &h.call(), &new_ticket())
        .await
        .unwrap_err();
    assert_eq!(e.class(), FailureClassification::Transient);
    assert!(
        !e.retryable,
        "a create without a key is not repeated blindly"
    );
    let found = Perform::<CreateTicket>::perform(&Deputy, &h.call(), &new_ticket())
        .await
        .expect("the next attempt");
    assert_eq!(found.output["ticketId"], "900");
    assert_eq!(install.lock().unwrap().creates, 1);
    assert_eq!(install.lock().unwrap().tasks.len(), 1);
}

#[tokio::test]
async fn a_wrong_token_is_auth_and_never_shown() {
    let fake = FakeVendor::start(deputy(Arc::default())).await;
    let wrong = Harness::new(
        "deputy",
        CredentialKind::BearerToken,
        json!({"token": "deputy-wrong-token-000000000000"}),
        json!({"baseUrl": fake.base, "areaId": 3}),
    );
    let e = Deputy.test_connection(&wrong.call()).await.unwrap_err();
    assert_eq!(e.class(), FailureClassification::Auth);
    assert!(e.failure.message.contains("Invalid token"), "{e:?}");
    assert_no_secret(&e, &["deputy-wrong-token-000000000000"]);
    let e = Perform::<GetTicket>::perform(
        &Deputy,
        &harness(&fake.base).call(),
        &json!({"ticketId": "77"}),
    )
    .await
    .unwrap_err();
    assert_eq!(e.failure.vendor_status, Some(404));
}

#[test]
fn configs_name_an_area() {
    use integration_kit::ProviderConfig as _;
    let parse = |v: Value| serde_json::from_value::<DeputyConfig>(v).map_err(|e| e.to_string());
    assert!(
        parse(json!({"baseUrl": "https://acme.au.deputy.com", "areaId": 3}))
            .unwrap()
            .check()
            .is_ok()
    );
    assert_eq!(
        parse(json!({"baseUrl": "https://acme.au.deputy.com", "areaId": 0}))
            .unwrap()
            .check()
            .unwrap_err()
            .path,
        "areaId"
    );
    assert!(
        parse(json!({"areaId": 3})).is_err(),
        "the install is required"
    );
    assert!(
        parse(json!({"baseUrl": "https://acme.au.deputy.com"})).is_err(),
        "the area is required"
    );
}

/// Deputy's answers for each conformance case.
struct Script;

impl integration_kit::testing::VendorScript for Script {
    fn reply(&self, case: Case, request: &Recorded) -> Result<Reply, &'static str> {
        // The read before an update and the search before a create succeed; the case
        // decides the write.
        let lookup = request.path.ends_with("/QUERY");
        Ok(match case {
            _ if lookup => Reply::json(200, json!([])),
            Case::Success => {
                Reply::json(200, json!({"Id": 901, "Question": "q", "TsCompleted": 0}))
            }
            Case::Invalid => error(400, "Question and OpUnitId are required"),
            Case::Unauthorized => error(401, "Invalid token"),
            Case::Throttled => {
                error(429, "Too Many Requests").header("retry-after", &THROTTLE_SECS.to_string())
            }
            Case::ServerError => Reply::text(503, "Service Unavailable"),
            Case::Malformed => Reply::text(200, "<html>login</html>"),
        })
    }
}

#[tokio::test]
async fn conformance_of_create_update_and_get() {
    let secrets = [TOKEN];
    // No idempotency key: an outage after sending is not repeated.
    let skipped =
        conformance::<CreateTicket, _, _>(&Deputy, Script, harness, new_ticket(), &secrets, false)
            .await;
    assert!(skipped.is_empty(), "{skipped:?}");
    let skipped = conformance::<UpdateTicket, _, _>(
        &Deputy,
        Script,
        harness,
        json!({"ticketId": "901", "status": "solved"}),
        &secrets,
        true,
    )
    .await;
    assert!(skipped.is_empty(), "{skipped:?}");
    let skipped = conformance::<GetTicket, _, _>(
        &Deputy,
        Script,
        harness,
        json!({"ticketId": "901"}),
        &secrets,
        true,
    )
    .await;
    assert!(skipped.is_empty(), "{skipped:?}");
}

/// Deputy's OAuth: calls carry the access token the registry's rotation kept; none, or an
/// expired one, is an `auth` failure that says what to do, and no refresh is attempted
/// (it would spend the stored refresh token).
#[tokio::test]
async fn oauth_credentials_use_the_access_token_the_rotation_kept() {
    let fake = FakeVendor::start(deputy(Arc::default())).await;
    let oauth = |extra: Value| {
        let mut secret = json!({"clientId": "client-1", "clientSecret": "cs-1",
                                "refreshToken": "deputy-refresh-1",
                                "tokenUrl": format!("{}/oauth/access_token", fake.base)});
        for (k, v) in extra.as_object().unwrap() {
            secret[k] = v.clone();
        }
        Harness::new(
            "deputy",
            CredentialKind::Oauth2RefreshToken,
            secret,
            json!({"baseUrl": fake.base, "areaId": 3}),
        )
    };
    let live = oauth(json!({"accessToken": TOKEN,
        "accessTokenExpiresAt": (chrono::Utc::now() + chrono::TimeDelta::hours(20)).to_rfc3339()}));
    Deputy
        .test_connection(&live.call())
        .await
        .expect("the kept access token");
    for stale in [
        json!({}),
        json!({"accessToken": TOKEN,
               "accessTokenExpiresAt": (chrono::Utc::now() - chrono::TimeDelta::minutes(1)).to_rfc3339()}),
    ] {
        let e = Deputy
            .test_connection(&oauth(stale).call())
            .await
            .unwrap_err();
        assert_eq!(e.class(), FailureClassification::Auth);
        assert!(
            e.failure.message.contains("registry's rotation renews it"),
            "{e:?}"
        );
    }
    assert!(
        fake.requests()
            .iter()
            .all(|r| r.path != "/oauth/access_token"),
        "no refresh from the app"
    );
}
