//! The provider against a fake Zendesk over real HTTP, answering in Zendesk's documented
//! shapes: Basic `{email}/token:{token}` or Bearer authentication (401 `Couldn't
//! authenticate you` otherwise), `Idempotency-Key` on ticket creation (a repeat answers the
//! first ticket with `x-idempotency-lookup: hit`; the same key with another body is 400
//! `IdempotentRequestError`), 422 `RecordInvalid` with field details, 429 with
//! `Retry-After` and a plain-text body, and `X-Rate-Limit-Remaining` on every answer.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use base64::Engine as _;
use domain::{CredentialKind, FailureClassification};
use integration_kit::testing::{
    Case, FakeVendor, Harness, Perform, Recorded, Reply, THROTTLE_SECS, assert_no_secret,
    conformance,
};
use serde_json::{Value, json};

use super::*;

const EMAIL: &str = "agent@acme.example";
const TOKEN: &str = "zd-api-token-6wiIBWbGkBMo1mRDMuVwkw1EPsNkeUj95PIz2akv";
const OAUTH: &str = "zd-oauth-access-token-0123456789abcdef";

#[derive(Default)]
struct Desk {
    tickets: BTreeMap<u64, Value>,
    /// Idempotency key → (the request body, the ticket id it created).
    keys: BTreeMap<String, (Value, u64)>,
    next: u64,
}

fn error(status: u16, body: Value) -> Reply {
    Reply::json(status, body).header("x-rate-limit", "700")
}

fn authorised(r: &Recorded) -> bool {
    let basic = format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(format!("{EMAIL}/token:{TOKEN}"))
    );
    let given = r.header("authorization").unwrap_or_default();
    given == basic || given == format!("Bearer {OAUTH}")
}

fn ok(status: u16, body: Value, remaining: u32) -> Reply {
    Reply::json(status, body)
        .header("x-rate-limit", "700")
        .header("x-rate-limit-remaining", &remaining.to_string())
}

/// A Zendesk account: tickets created, updated and read, as its API reference says.
fn zendesk(desk: Arc<Mutex<Desk>>) -> impl Fn(&Recorded, usize) -> Reply + Send + Sync {
    move |r, _| {
        if !authorised(r) {
            return error(401, json!({"error": "Couldn't authenticate you"}));
        }
        let mut desk = desk.lock().unwrap();
        let path = r.path.trim_end_matches(".json");
        match (r.method.as_str(), path) {
            ("GET", "/api/v2/users/me") => ok(
                200,
                json!({"user": {"id": 35436, "name": "Agent", "email": EMAIL, "role": "agent"}}),
                699,
            ),
            ("POST", "/api/v2/tickets") => {
                let body = r.json();
                let t = &body["ticket"];
                if let Some(key) = r.header("idempotency-key")
                    && let Some((first, id)) = desk.keys.get(key).cloned()
                {
                    if first != body {
                        return error(
                            400,
                            json!({"error": "IdempotentRequestError",
                                   "description": "Request parameters don't match the given idempotency key"}),
                        );
                    }
                    return ok(201, json!({"ticket": desk.tickets[&id]}), 698)
                        .header("x-idempotency-lookup", "hit");
                }
                let email = t["requester"]["email"].as_str().unwrap_or_default();
                if !email.contains('@') || email.ends_with(".invalid") {
                    return error(
                        422,
                        json!({"error": "RecordInvalid", "description": "Record validation errors",
                               "details": {"requester": [{"description": format!("Requester: Email:  {email} is not properly formatted"), "error": "InvalidValue"}]}}),
                    );
                }
                desk.next += 1;
                let id = 5000 + desk.next;
                let ticket = json!({
                    "id": id,
                    "url": format!("https://acme.zendesk.com/api/v2/tickets/{id}.json"),
                    "subject": t["subject"], "raw_subject": t["subject"],
                    "description": t["comment"]["body"],
                    "status": "new", "priority": t["priority"], "type": null,
                    "requester_id": 20978392, "submitter_id": 20978392,
                    "tags": t["tags"].as_array().cloned().unwrap_or_default(),
                    "external_id": t["external_id"],
                    "created_at": "2026-12-08T10:38:52Z", "updated_at": "2026-12-08T10:38:52Z",
                    "via": {"channel": "api"},
                });
                desk.tickets.insert(id, ticket.clone());
                if let Some(key) = r.header("idempotency-key") {
                    desk.keys.insert(key.to_owned(), (body.clone(), id));
                }
                ok(201, json!({"ticket": ticket}), 698)
                    .header(
                        "location",
                        &format!("https://acme.zendesk.com/api/v2/tickets/{id}.json"),
                    )
                    .header("x-idempotency-lookup", "miss")
            }
            (method, p) if p.starts_with("/api/v2/tickets/") => {
                let Ok(id) = p["/api/v2/tickets/".len()..].parse::<u64>() else {
                    return error(
                        404,
                        json!({"error": "InvalidEndpoint", "description": "Not found"}),
                    );
                };
                let Some(ticket) = desk.tickets.get_mut(&id) else {
                    return error(
                        404,
                        json!({"error": "RecordNotFound", "description": "Not found"}),
                    );
                };
                match method {
                    "GET" => ok(200, json!({"ticket": ticket}), 697),
                    "PUT" => {
                        let change = r.json()["ticket"].clone();
                        if ticket["status"] == "closed" {
                            return error(
                                422,
                                json!({"error": "RecordInvalid", "description": "Record validation errors",
                                       "details": {"status": [{"description": "Status: closed prevents ticket update"}]}}),
                            );
                        }
                        for field in ["status", "priority", "tags"] {
                            if !change[field].is_null() {
                                ticket[field] = change[field].clone();
                            }
                        }
                        if ticket["status"] == "new" {
                            ticket["status"] = json!("open");
                        }
                        ok(
                            200,
                            json!({"ticket": ticket, "audit": {"id": 1, "events": []}}),
                            696,
                        )
                    }
                    _ => error(405, json!({"error": "MethodNotAllowed"})),
                }
            }
            _ => error(
                404,
                json!({"error": "InvalidEndpoint", "description": "Not found"}),
            ),
        }
    }
}

fn harness(base: &str) -> Harness {
    Harness::new(
        "zendesk",
        CredentialKind::Basic,
        json!({"username": EMAIL, "password": TOKEN}),
        json!({"baseUrl": base}),
    )
}

fn new_ticket(email: &str) -> Value {
    json!({"subject": "Printer offline", "description": "My printer is offline.",
           "requester": {"email": email, "name": "Pablo"}, "priority": "high",
           "tags": ["printer", "floor-3"], "externalId": "order-1234"})
}

#[tokio::test]
async fn tickets_are_created_once_per_run_updated_and_read() {
    let desk = Arc::new(Mutex::new(Desk::default()));
    let fake = FakeVendor::start(zendesk(desk.clone())).await;
    let h = harness(&fake.base);
    Zendesk.test_connection(&h.call()).await.expect("the test");

    let created =
        Perform::<CreateTicket>::perform(&Zendesk, &h.call(), &new_ticket("pablo@example.org"))
            .await
            .expect("created");
    let id = created.output["ticketId"].as_str().unwrap().to_owned();
    assert_eq!(created.output["status"], "new");
    assert_eq!(
        created.output["url"],
        format!("{}/agent/tickets/{id}", fake.base)
    );
    assert_eq!(created.vendor_message_id.as_deref(), Some(id.as_str()));
    let sent = fake.requests().last().unwrap().clone();
    assert_eq!(sent.header("idempotency-key"), h.idempotency_key.as_deref());
    assert_eq!(
        sent.json(),
        json!({"ticket": {"subject": "Printer offline",
                          "comment": {"body": "My printer is offline."},
                          "requester": {"email": "pablo@example.org", "name": "Pablo"},
                          "priority": "high", "tags": ["printer", "floor-3"],
                          "external_id": "order-1234"}})
    );
    // The same run again: Zendesk answers the first ticket; there is still one.
    let again =
        Perform::<CreateTicket>::perform(&Zendesk, &h.call(), &new_ticket("pablo@example.org"))
            .await
            .expect("created again");
    assert_eq!(again.output["ticketId"], id.as_str());
    assert_eq!(desk.lock().unwrap().tickets.len(), 1);

    let updated = Perform::<UpdateTicket>::perform(
        &Zendesk,
        &h.call(),
        &json!({"ticketId": id, "status": "pending", "comment": {"body": "Looking", "public": false},
                "tags": ["printer"]}),
    )
    .await
    .expect("updated");
    assert_eq!(updated.output, json!({"ticketId": id, "status": "pending"}));
    let put = fake.requests().last().unwrap().clone();
    assert_eq!(put.method, reqwest::Method::PUT);
    assert_eq!(
        put.json()["ticket"]["comment"],
        json!({"body": "Looking", "public": false})
    );
    assert!(
        put.header("idempotency-key").is_none(),
        "only creates take a key"
    );

    let read = Perform::<GetTicket>::perform(&Zendesk, &h.call(), &json!({"ticketId": id}))
        .await
        .expect("read");
    assert_eq!(read.output["status"], "pending");
    assert_eq!(read.output["tags"], json!(["printer"]));
    assert_eq!(read.output["subject"], "Printer offline");
    assert_eq!(read.output["externalId"], "order-1234");
}

#[tokio::test]
async fn oauth_bearer_tokens_work_and_a_wrong_credential_is_auth() {
    let fake = FakeVendor::start(zendesk(Arc::default())).await;
    let bearer = Harness::new(
        "zendesk",
        CredentialKind::BearerToken,
        json!({"token": OAUTH}),
        json!({"baseUrl": fake.base}),
    );
    Zendesk
        .test_connection(&bearer.call())
        .await
        .expect("bearer");
    // An email that already ends in /token is used as is.
    let suffixed = Harness::new(
        "zendesk",
        CredentialKind::Basic,
        json!({"username": format!("{EMAIL}/token"), "password": TOKEN}),
        json!({"baseUrl": fake.base}),
    );
    Zendesk
        .test_connection(&suffixed.call())
        .await
        .expect("suffixed");
    let wrong = Harness::new(
        "zendesk",
        CredentialKind::Basic,
        json!({"username": EMAIL, "password": "not-the-token"}),
        json!({"baseUrl": fake.base}),
    );
    let e = Zendesk.test_connection(&wrong.call()).await.unwrap_err();
    assert_eq!(e.class(), FailureClassification::Auth);
    assert!(
        e.failure.message.contains("Couldn't authenticate you"),
        "{e:?}"
    );
    assert_no_secret(&e, &["not-the-token", EMAIL]);
}

#[tokio::test]
async fn zendesks_refusals_say_why() {
    let desk = Arc::new(Mutex::new(Desk::default()));
    let fake = FakeVendor::start(zendesk(desk.clone())).await;
    let h = harness(&fake.base);
    let e = Perform::<CreateTicket>::perform(&Zendesk, &h.call(), &new_ticket("nobody@x.invalid"))
        .await
        .unwrap_err();
    assert_eq!(e.class(), FailureClassification::Unprocessable, "{e:?}");
    assert!(!e.retryable);
    assert!(
        e.failure
            .message
            .contains("requester: Requester: Email:  nobody@x.invalid is not properly formatted"),
        "{}",
        e.failure.message
    );
    assert_eq!(e.failure.vendor_code.as_deref(), Some("RecordInvalid"));
    // The same key with another body: Zendesk refuses it, and it is not retried.
    Perform::<CreateTicket>::perform(&Zendesk, &h.call(), &new_ticket("a@example.org"))
        .await
        .expect("created");
    let e = Perform::<CreateTicket>::perform(&Zendesk, &h.call(), &new_ticket("b@example.org"))
        .await
        .unwrap_err();
    assert_eq!(e.class(), FailureClassification::Validation, "{e:?}");
    assert_eq!(
        e.failure.vendor_code.as_deref(),
        Some("IdempotentRequestError")
    );
    // A ticket that is not there.
    let e = Perform::<GetTicket>::perform(&Zendesk, &h.call(), &json!({"ticketId": "999"}))
        .await
        .unwrap_err();
    assert_eq!(e.failure.vendor_status, Some(404));
    assert!(e.failure.message.contains("RecordNotFound"), "{e:?}");
}

#[test]
fn configs_name_the_account() {
    use integration_kit::ProviderConfig as _;
    let parse = |v: Value| serde_json::from_value::<ZendeskConfig>(v).unwrap().check();
    assert!(parse(json!({"subdomain": "acme"})).is_ok());
    assert!(parse(json!({"baseUrl": "https://help.acme.example"})).is_ok());
    assert_eq!(parse(json!({})).unwrap_err().path, "subdomain");
    assert_eq!(
        parse(json!({"subdomain": "acme", "baseUrl": "https://x.example"}))
            .unwrap_err()
            .path,
        "baseUrl"
    );
    for bad in ["Acme", "acme.zendesk.com", "-acme", ""] {
        assert!(parse(json!({"subdomain": bad})).is_err(), "{bad}");
    }
    assert!(serde_json::from_value::<ZendeskConfig>(json!({"subdomian": "acme"})).is_err());
}

#[test]
fn ticket_events_become_changes() {
    let status = json!({"type": "zen:event-type:ticket.status_changed", "account_id": 22129848,
        "id": "a8b9c1d2-3e4f-5a6b-7c8d-9e0f1a2b3c4d", "time": "2025-01-08T16:45:20.987654321Z",
        "zendesk_event_version": "2022-11-06", "subject": "zen:ticket:5158",
        "detail": {"id": "5158", "status": "SOLVED"}, "event": {"current": "SOLVED", "previous": "OPEN"}});
    let change = ticket_event(&status).unwrap().unwrap();
    assert_eq!(change.kind, RecordKind::SupportTicket);
    assert_eq!(change.record_id, "5158");
    assert_eq!(change.value.as_deref(), Some("solved"));
    assert_eq!(change.patch.unwrap()["status"], "solved");
    assert_eq!(
        change.vendor_event_id.as_deref(),
        Some("a8b9c1d2-3e4f-5a6b-7c8d-9e0f1a2b3c4d")
    );
    assert!(change.occurred_at.is_some());
    // Another ticket event is published without touching any run.
    let comment = json!({"type": "zen:event-type:ticket.comment_added", "detail": {"id": 5158}});
    let change = ticket_event(&comment).unwrap().unwrap();
    assert!(change.patch.is_none());
    assert_eq!(change.record_id, "5158");
    // Not a ticket: nothing; no type: unreadable.
    assert!(
        ticket_event(&json!({"type": "zen:event-type:user.created", "detail": {"id": "1"}}))
            .unwrap()
            .is_none()
    );
    assert!(ticket_event(&json!({"detail": {}})).is_err());
}

/// Zendesk's documented answers for each conformance case.
struct Script;

impl integration_kit::testing::VendorScript for Script {
    fn reply(&self, case: Case, _request: &Recorded) -> Result<Reply, &'static str> {
        Ok(match case {
            Case::Success => ok(
                201,
                json!({"ticket": {"id": 5001, "status": "new", "subject": "s", "tags": []}}),
                10,
            ),
            Case::Invalid => error(
                422,
                json!({"error": "RecordInvalid", "description": "Record validation errors",
                       "details": {"subject": [{"description": "Subject: is too long"}]}}),
            ),
            Case::Unauthorized => error(401, json!({"error": "Couldn't authenticate you"})),
            Case::Throttled => {
                Reply::text(429, "Number of allowed API requests per minute exceeded")
                    .header("retry-after", &THROTTLE_SECS.to_string())
                    .header("x-rate-limit", "700")
                    .header("x-rate-limit-remaining", "0")
            }
            Case::ServerError => Reply::text(503, "Service Unavailable"),
            Case::Malformed => Reply::text(201, "<html>maintenance</html>"),
        })
    }
}

#[tokio::test]
async fn conformance_of_create_update_and_get() {
    let secrets = [TOKEN];
    let skipped = conformance::<CreateTicket, _, _>(
        &Zendesk,
        Script,
        harness,
        new_ticket("pablo@example.org"),
        &secrets,
        true,
    )
    .await;
    assert!(skipped.is_empty(), "{skipped:?}");
    // A status change carries no comment: it may be repeated.
    let skipped = conformance::<UpdateTicket, _, _>(
        &Zendesk,
        Script,
        harness,
        json!({"ticketId": "5001", "status": "solved"}),
        &secrets,
        true,
    )
    .await;
    assert!(skipped.is_empty(), "{skipped:?}");
    // A comment would be added twice: an outage after sending is not repeated.
    let skipped = conformance::<UpdateTicket, _, _>(
        &Zendesk,
        Script,
        harness,
        json!({"ticketId": "5001", "comment": {"body": "hello"}}),
        &secrets,
        false,
    )
    .await;
    assert!(skipped.is_empty(), "{skipped:?}");
    let skipped = conformance::<GetTicket, _, _>(
        &Zendesk,
        Script,
        harness,
        json!({"ticketId": "5001"}),
        &secrets,
        true,
    )
    .await;
    assert!(skipped.is_empty(), "{skipped:?}");
}
