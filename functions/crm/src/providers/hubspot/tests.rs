//! The provider against a fake HubSpot over real HTTP, answering in HubSpot's documented
//! shapes: batch upserts keyed by `idProperty` (`results[].id`, `new`), a 207 with `errors`,
//! the v4 default association, the account details probe, the OAuth refresh grant, the
//! error body (`status, message, correlationId, category`) and the rate-limit headers.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use domain::{CredentialKind, FailureClassification};
use integration_kit::testing::{
    Case, FakeVendor, Harness, Perform, Recorded, Reply, THROTTLE_SECS, assert_no_secret,
    conformance,
};
use serde_json::{Value, json};

use super::*;

const TOKEN: &str = "pat-na1-11111111-2222-3333-4444-555555555555";
const REFRESH: &str = "hubspot-refresh-token-6f1ed002ab5595859014ebf0951522d9";
const CLIENT_SECRET: &str = "hubspot-client-secret-0123456789";

#[derive(Default)]
struct Portal {
    /// (object type, id property, id value) → object id.
    objects: BTreeMap<(String, String, String), String>,
    properties: BTreeMap<String, Value>,
    associations: Vec<(String, String)>,
    /// Access tokens issued by the refresh grant.
    issued: Vec<String>,
    upserts: u32,
}

fn error(status: u16, category: &str, message: &str) -> Reply {
    Reply::json(
        status,
        json!({"status": "error", "message": message,
               "correlationId": "a43683b0-5717-4ceb-80b4-104d02915d8c", "category": category}),
    )
}

fn limits(reply: Reply, remaining: u32) -> Reply {
    reply
        .header("x-hubspot-ratelimit-interval-milliseconds", "10000")
        .header("x-hubspot-ratelimit-max", "190")
        .header("x-hubspot-ratelimit-remaining", &remaining.to_string())
}

fn hubspot(portal: Arc<Mutex<Portal>>) -> impl Fn(&Recorded, usize) -> Reply + Send + Sync {
    move |r, _| {
        let mut portal = portal.lock().unwrap();
        if r.path == "/oauth/v1/token" {
            let ok = r.form_field("grant_type").as_deref() == Some("refresh_token")
                && r.form_field("refresh_token").as_deref() == Some(REFRESH)
                && r.form_field("client_secret").as_deref() == Some(CLIENT_SECRET);
            if !ok {
                return Reply::json(
                    400,
                    json!({"status": "BAD_REFRESH_TOKEN", "message": "missing or invalid refresh token"}),
                );
            }
            let token = format!("oauth-access-{}", portal.issued.len() + 1);
            portal.issued.push(token.clone());
            return Reply::json(
                200,
                json!({"access_token": token, "refresh_token": REFRESH, "expires_in": 1800, "token_type": "bearer"}),
            );
        }
        let bearer = r.header("authorization").unwrap_or_default();
        let known = bearer == format!("Bearer {TOKEN}")
            || portal
                .issued
                .iter()
                .any(|t| bearer == format!("Bearer {t}"));
        if !known {
            return error(
                401,
                "INVALID_AUTHENTICATION",
                "Authentication credentials not found.",
            );
        }
        let path = r.path.clone();
        match (r.method.as_str(), path.as_str()) {
            ("GET", "/account-info/v3/details") => limits(
                Reply::json(
                    200,
                    json!({"portalId": 62515, "accountType": "STANDARD", "timeZone": "US/Eastern"}),
                ),
                189,
            ),
            ("POST", p) if p.ends_with("/batch/upsert") => {
                portal.upserts += 1;
                let kind = p.split('/').nth(4).unwrap_or_default().to_owned();
                let input = &r.json()["inputs"][0];
                let id_property = input["idProperty"].as_str().unwrap_or_default().to_owned();
                if kind == "deals"
                    && id_property != "integration_deal_key"
                    && id_property != "order_ref"
                {
                    return Reply::json(
                        207,
                        json!({"status": "COMPLETE", "results": [], "numErrors": 1,
                        "errors": [{"status": "error", "category": "VALIDATION_ERROR",
                                    "message": format!("Property {id_property} is not a unique property"),
                                    "context": {"ids": [input["id"]]}}]}),
                    );
                }
                let email = input["properties"]["email"].as_str().unwrap_or("x@y.z");
                if email.ends_with(".invalid") {
                    return Reply::json(
                        400,
                        json!({"status": "error", "category": "VALIDATION_ERROR",
                        "message": "Property values were not valid", "correlationId": "c-1",
                        "errors": [{"message": format!("Email address {email} is invalid"), "in": "email"}]}),
                    );
                }
                let key = (
                    kind.clone(),
                    id_property,
                    input["id"].as_str().unwrap_or_default().to_owned(),
                );
                let next = 100 + portal.objects.len();
                let (id, new) = match portal.objects.get(&key) {
                    Some(id) => (id.clone(), false),
                    None => {
                        let id = next.to_string();
                        portal.objects.insert(key, id.clone());
                        (id, true)
                    }
                };
                portal
                    .properties
                    .insert(id.clone(), input["properties"].clone());
                limits(
                    Reply::json(
                        200,
                        json!({"status": "COMPLETE", "results": [{"id": id, "new": new,
                        "properties": input["properties"], "createdAt": "2026-12-08T10:00:00Z",
                        "updatedAt": "2026-12-08T10:00:00Z", "archived": false}],
                        "startedAt": "2026-12-08T10:00:00Z", "completedAt": "2026-12-08T10:00:01Z"}),
                    ),
                    150,
                )
            }
            ("PUT", p) if p.starts_with("/crm/v4/objects/deals/") => {
                let parts: Vec<&str> = p.split('/').collect();
                portal
                    .associations
                    .push((parts[5].to_owned(), parts[9].to_owned()));
                Reply::json(
                    200,
                    json!({"status": "COMPLETE", "results": [{"from": {"id": parts[5]}, "to": {"id": parts[9]},
                    "associationSpec": {"associationCategory": "HUBSPOT_DEFINED", "associationTypeId": 3}}]}),
                )
            }
            _ => error(404, "OBJECT_NOT_FOUND", "Not found"),
        }
    }
}

fn harness(base: &str) -> Harness {
    Harness::new(
        "hubspot",
        CredentialKind::BearerToken,
        json!({"token": TOKEN}),
        json!({"baseUrl": base}),
    )
}

#[tokio::test]
async fn contacts_and_deals_are_upserted_once() {
    let portal = Arc::new(Mutex::new(Portal::default()));
    let fake = FakeVendor::start(hubspot(portal.clone())).await;
    let h = harness(&fake.base);
    HubSpot.test_connection(&h.call()).await.expect("the test");

    let contact = json!({"email": "ada@example.org", "firstName": "Ada", "lastName": "Lovelace",
                         "phone": "+447700900123", "properties": {"lifecyclestage": "lead", "score": 7}});
    let first = Perform::<UpsertContact>::perform(&HubSpot, &h.call(), &contact)
        .await
        .expect("upserted");
    assert_eq!(first.output["created"], true);
    let sent = fake.requests().last().unwrap().json();
    assert_eq!(
        sent["inputs"][0],
        json!({"idProperty": "email", "id": "ada@example.org", "properties": {
            "email": "ada@example.org", "firstname": "Ada", "lastname": "Lovelace",
            "phone": "+447700900123", "lifecyclestage": "lead", "score": "7"}})
    );
    let again = Perform::<UpsertContact>::perform(&HubSpot, &h.call(), &contact)
        .await
        .expect("again");
    assert_eq!(again.output["contactId"], first.output["contactId"]);
    assert_eq!(again.output["created"], false);
    let contact_id = first.output["contactId"].as_str().unwrap().to_owned();

    let deal = json!({"name": "Order 42", "amount": 1500.5, "currency": "EUR", "stage": "appointmentscheduled",
                      "contactId": contact_id});
    let created = Perform::<UpsertDeal>::perform(&HubSpot, &h.call(), &deal)
        .await
        .expect("deal");
    assert_eq!(created.output["created"], true);
    let upsert = fake.requests().iter().rev().nth(1).unwrap().json();
    assert_eq!(upsert["inputs"][0]["idProperty"], "integration_deal_key");
    assert_eq!(
        upsert["inputs"][0]["id"],
        h.idempotency_key.as_deref().unwrap()
    );
    assert_eq!(upsert["inputs"][0]["properties"]["amount"], "1500.5");
    assert_eq!(
        upsert["inputs"][0]["properties"]["deal_currency_code"],
        "EUR"
    );
    // The same run again: the same deal, updated; associated with the contact each time.
    let again = Perform::<UpsertDeal>::perform(&HubSpot, &h.call(), &deal)
        .await
        .expect("again");
    assert_eq!(again.output["dealId"], created.output["dealId"]);
    assert_eq!(again.output["created"], false);
    let deal_id = created.output["dealId"].as_str().unwrap().to_owned();
    assert_eq!(
        portal.lock().unwrap().associations,
        vec![(deal_id.clone(), contact_id.clone()); 2]
    );
    // A caller's key names the deal instead of the run.
    let keyed = json!({"name": "Order 43", "key": "order-43"});
    let mut other_run = harness(&fake.base);
    other_run.idempotency_key = Some(integration_kit::testing::run_id());
    let a = Perform::<UpsertDeal>::perform(&HubSpot, &h.call(), &keyed)
        .await
        .unwrap();
    let b = Perform::<UpsertDeal>::perform(&HubSpot, &other_run.call(), &keyed)
        .await
        .unwrap();
    assert_eq!(a.output["dealId"], b.output["dealId"]);
}

#[tokio::test]
async fn refusals_multi_status_and_the_refresh_grant() {
    let portal = Arc::new(Mutex::new(Portal::default()));
    let fake = FakeVendor::start(hubspot(portal.clone())).await;
    let h = harness(&fake.base);
    let e =
        Perform::<UpsertContact>::perform(&HubSpot, &h.call(), &json!({"email": "bad@x.invalid"}))
            .await
            .unwrap_err();
    assert_eq!(e.class(), FailureClassification::Validation);
    assert_eq!(e.failure.vendor_code.as_deref(), Some("VALIDATION_ERROR"));
    assert!(
        e.failure
            .message
            .contains("Email address bad@x.invalid is invalid"),
        "{e:?}"
    );
    assert!(e.failure.message.contains("correlationId c-1"), "{e:?}");
    // A deal key property that is not unique: HubSpot's 207 is a failure.
    let custom = Harness::new(
        "hubspot",
        CredentialKind::BearerToken,
        json!({"token": TOKEN}),
        json!({"baseUrl": fake.base, "dealKeyProperty": "not_unique"}),
    );
    let e = Perform::<UpsertDeal>::perform(&HubSpot, &custom.call(), &json!({"name": "x"}))
        .await
        .unwrap_err();
    assert_eq!(e.class(), FailureClassification::Unprocessable);
    assert!(
        e.failure
            .message
            .contains("not_unique is not a unique property"),
        "{e:?}"
    );

    let oauth = Harness::new(
        "hubspot",
        CredentialKind::Oauth2RefreshToken,
        json!({"clientId": "client-1", "clientSecret": CLIENT_SECRET, "refreshToken": REFRESH,
               "tokenUrl": format!("{}/oauth/v1/token", fake.base)}),
        json!({"baseUrl": fake.base}),
    );
    HubSpot
        .test_connection(&oauth.call())
        .await
        .expect("with a refreshed token");
    HubSpot
        .test_connection(&oauth.call())
        .await
        .expect("the cached token");
    assert_eq!(
        portal.lock().unwrap().issued.len(),
        1,
        "one refresh for both calls"
    );
    // A revoked access token: dropped, refreshed once, the call made again.
    portal.lock().unwrap().issued.clear();
    HubSpot
        .test_connection(&oauth.call())
        .await
        .expect("after a 401");
    assert_eq!(
        portal.lock().unwrap().issued,
        vec!["oauth-access-1".to_owned()]
    );

    let wrong = Harness::new(
        "hubspot",
        CredentialKind::BearerToken,
        json!({"token": "pat-wrong-000"}),
        json!({"baseUrl": fake.base}),
    );
    let e = HubSpot.test_connection(&wrong.call()).await.unwrap_err();
    assert_eq!(e.class(), FailureClassification::Auth);
    assert_no_secret(&e, &["pat-wrong-000"]);
}

#[test]
fn webhook_events_are_changes_of_contacts_and_deals() {
    let body = json!([
        {"eventId": 1, "subscriptionId": 12345, "portalId": 62515, "appId": 54321, "occurredAt": 1764000000000i64,
         "subscriptionType": "contact.propertyChange", "attemptNumber": 0, "objectId": 123,
         "propertyName": "lifecyclestage", "propertyValue": "customer", "changeSource": "CRM"},
        {"eventId": 2, "occurredAt": 1764000000000i64, "subscriptionType": "deal.creation", "objectId": 456},
        {"eventId": 3, "subscriptionType": "company.creation", "objectId": 789}
    ]);
    let changes = changes(&body);
    assert_eq!(changes.len(), 2, "companies are not the crm app's");
    assert_eq!(changes[0].kind, RecordKind::CrmContact);
    assert_eq!(changes[0].record_id, "123");
    assert_eq!(changes[0].property.as_deref(), Some("lifecyclestage"));
    assert_eq!(changes[0].value.as_deref(), Some("customer"));
    assert_eq!(changes[0].vendor_event_id.as_deref(), Some("1"));
    assert_eq!(changes[0].occurred_at.unwrap().timestamp(), 1_764_000_000);
    assert!(changes[0].patch.is_none(), "nothing here changes");
    assert_eq!(changes[1].kind, RecordKind::CrmDeal);
    assert_eq!(changes[1].change, "deal.creation");
}

#[test]
fn configs_name_real_properties() {
    use integration_kit::ProviderConfig as _;
    let parse = |v: Value| serde_json::from_value::<HubSpotConfig>(v).unwrap().check();
    assert!(parse(json!({})).is_ok());
    assert!(
        parse(json!({"dealKeyProperty": "order_ref", "contactIdProperty": "customer_id"})).is_ok()
    );
    assert_eq!(
        parse(json!({"dealKeyProperty": "Order Ref"}))
            .unwrap_err()
            .path,
        "dealKeyProperty"
    );
    assert!(serde_json::from_value::<HubSpotConfig>(json!({"portal": 1})).is_err());
}

struct Script;

impl integration_kit::testing::VendorScript for Script {
    fn reply(&self, case: Case, _request: &Recorded) -> Result<Reply, &'static str> {
        Ok(match case {
            Case::Success => Reply::json(200, json!({"status": "COMPLETE", "results": [{"id": "101", "new": true}]})),
            Case::Invalid => error(400, "VALIDATION_ERROR", "Property values were not valid"),
            Case::Unauthorized => error(401, "INVALID_AUTHENTICATION", "Authentication credentials not found."),
            Case::Throttled => Reply::json(429, json!({"status": "error", "message": "You have reached your ten_secondly_rolling limit.",
                                                      "errorType": "RATE_LIMIT", "policyName": "TEN_SECONDLY_ROLLING"}))
                .header("x-hubspot-ratelimit-remaining", "0")
                .header("x-hubspot-ratelimit-interval-milliseconds", &(THROTTLE_SECS * 1000).to_string()),
            Case::ServerError => Reply::text(502, "Bad Gateway"),
            Case::Malformed => Reply::text(200, "<html>"),
        })
    }
}

#[tokio::test]
async fn conformance_of_contact_and_deal_upserts() {
    let skipped = conformance::<UpsertContact, _, _>(
        &HubSpot,
        Script,
        harness,
        json!({"email": "ada@example.org"}),
        &[TOKEN],
        true,
    )
    .await;
    assert!(skipped.is_empty(), "{skipped:?}");
    let skipped = conformance::<UpsertDeal, _, _>(
        &HubSpot,
        Script,
        harness,
        json!({"name": "Order 42"}),
        &[TOKEN],
        true,
    )
    .await;
    assert!(skipped.is_empty(), "{skipped:?}");
}
