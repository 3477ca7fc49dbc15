//! The provider against a fake Measurement Protocol over real HTTP: `/mp/collect` answers
//! 204 whatever it is sent (as Google's does), `/debug/mp/collect` answers its
//! `validationMessages`; the secret and measurement id travel as query parameters.

use std::sync::{Arc, Mutex};

use domain::{CredentialKind, FailureClassification};
use integration_kit::testing::{
    Case, FakeVendor, Harness, Perform, Recorded, Reply, THROTTLE_SECS, conformance,
};
use serde_json::{Value, json};

use super::*;

const SECRET: &str = "ga4-api-secret-XYZ0123456789";

fn query(r: &Recorded, name: &str) -> Option<String> {
    r.query.as_deref().and_then(|q| {
        q.split('&').find_map(|p| {
            let (k, v) = p.split_once('=')?;
            (k == name).then(|| v.to_owned())
        })
    })
}

fn ga4(seen: Arc<Mutex<Vec<Value>>>) -> impl Fn(&Recorded, usize) -> Reply + Send + Sync {
    move |r, _| match r.path.as_str() {
        "/mp/collect" => {
            seen.lock()
                .unwrap()
                .push(json!({"query": r.query, "body": r.json()}));
            Reply::text(204, "")
        }
        "/debug/mp/collect" => {
            let body = r.json();
            let mut messages = Vec::new();
            if query(r, "measurement_id").as_deref() != Some("G-ABC123XYZ") {
                messages.push(json!({"fieldPath": "measurement_id", "description": "Unable to find a web stream with measurement id", "validationCode": "VALUE_INVALID"}));
            }
            if body["client_id"].is_null() {
                messages.push(json!({"fieldPath": "client_id", "description": "client_id is required", "validationCode": "VALUE_REQUIRED"}));
            }
            Reply::json(200, json!({"validationMessages": messages}))
        }
        _ => Reply::text(404, "Not Found"),
    }
}

fn harness(base: &str) -> Harness {
    Harness::new(
        "ga4",
        CredentialKind::ApiKey,
        json!({"apiKey": SECRET}),
        json!({"baseUrl": base, "measurementId": "G-ABC123XYZ"}),
    )
}

#[tokio::test]
async fn events_are_collected_with_a_pseudonymous_client_id() {
    let seen = Arc::new(Mutex::new(Vec::new()));
    let fake = FakeVendor::start(ga4(seen.clone())).await;
    let h = harness(&fake.base);
    Ga4.test_connection(&h.call()).await.expect("valid");
    let out = Perform::<TrackEvent>::perform(
        &Ga4,
        &h.call(),
        &json!({"name": "purchase", "email": "Ada@Example.org", "value": 12.5, "currency": "USD",
                "properties": {"transaction_id": "o-9"}}),
    )
    .await
    .expect("collected");
    assert_eq!(out.output["accepted"], true);
    let sent = seen.lock().unwrap().last().unwrap().clone();
    let query = sent["query"].as_str().unwrap();
    assert!(
        query.contains("measurement_id=G-ABC123XYZ")
            && query.contains(&format!("api_secret={SECRET}")),
        "{query}"
    );
    let body = &sent["body"];
    let client = body["client_id"].as_str().unwrap();
    assert_eq!(client.len(), 32);
    assert!(
        !body.to_string().contains("example.org"),
        "no address reaches Google: {body}"
    );
    assert!(body["user_id"].is_null());
    assert_eq!(
        body["events"][0],
        json!({"name": "purchase", "params": {"transaction_id": "o-9", "value": 12.5, "currency": "USD"}})
    );
    assert!(body["timestamp_micros"].as_i64().unwrap() > 1_700_000_000_000_000);
    // The same email, the same client id; a user id is both.
    Perform::<TrackEvent>::perform(
        &Ga4,
        &h.call(),
        &json!({"name": "login", "email": "ada@example.org"}),
    )
    .await
    .unwrap();
    assert_eq!(
        seen.lock().unwrap().last().unwrap()["body"]["client_id"],
        client
    );
    Perform::<TrackEvent>::perform(
        &Ga4,
        &h.call(),
        &json!({"name": "login", "userId": "user-1"}),
    )
    .await
    .unwrap();
    let last = seen.lock().unwrap().last().unwrap()["body"].clone();
    assert_eq!(
        (last["client_id"].clone(), last["user_id"].clone()),
        (json!("user-1"), json!("user-1"))
    );
}

#[tokio::test]
async fn what_google_would_drop_silently_is_refused_here() {
    let seen = Arc::new(Mutex::new(Vec::new()));
    let fake = FakeVendor::start(ga4(seen.clone())).await;
    let h = harness(&fake.base);
    for (event, why) in [
        (
            json!({"name": "order.placed", "userId": "u"}),
            "event names",
        ),
        (json!({"name": "firebase_x", "userId": "u"}), "event names"),
        (
            json!({"name": "ok", "userId": "u", "properties": {"ga_session": 1}}),
            "parameter names",
        ),
        (
            json!({"name": "ok", "userId": "u", "properties": {"note": "x".repeat(101)}}),
            "100 characters",
        ),
        (
            json!({"name": "ok", "userId": "u", "time": "2020-01-01T00:00:00Z"}),
            "72 hours",
        ),
    ] {
        let e = Perform::<TrackEvent>::perform(&Ga4, &h.call(), &event)
            .await
            .unwrap_err();
        assert_eq!(e.class(), FailureClassification::Validation, "{event}");
        assert!(
            e.failure.message.contains(why),
            "{event}: {}",
            e.failure.message
        );
    }
    assert!(seen.lock().unwrap().is_empty(), "nothing was sent");
    // The validation server's messages fail the connection test.
    let wrong = Harness::new(
        "ga4",
        CredentialKind::ApiKey,
        json!({"apiKey": SECRET}),
        json!({"baseUrl": fake.base, "measurementId": "G-OTHER1234"}),
    );
    let e = Ga4.test_connection(&wrong.call()).await.unwrap_err();
    assert!(
        e.failure.message.contains("Unable to find a web stream"),
        "{e:?}"
    );
    assert!(!e.failure.message.contains(SECRET));
}

#[test]
fn measurement_ids_are_checked() {
    use integration_kit::ProviderConfig as _;
    let parse = |v: Value| serde_json::from_value::<Ga4Config>(v).unwrap().check();
    assert!(parse(json!({"measurementId": "G-ABC123XYZ"})).is_ok());
    for bad in ["UA-1234-1", "G-", "ABC123", "G-ABC 123"] {
        assert_eq!(
            parse(json!({"measurementId": bad})).unwrap_err().path,
            "measurementId",
            "{bad}"
        );
    }
}

struct Script;

impl integration_kit::testing::VendorScript for Script {
    fn reply(&self, case: Case, _request: &Recorded) -> Result<Reply, &'static str> {
        Ok(match case {
            Case::Success => Reply::text(204, ""),
            // Google answers 2xx to anything it can read; a request it cannot is a 400.
            Case::Invalid => Reply::text(400, "Bad Request"),
            Case::Unauthorized => Reply::text(403, "Forbidden"),
            Case::Throttled => Reply::text(429, "Too Many Requests")
                .header("retry-after", &THROTTLE_SECS.to_string()),
            Case::ServerError => Reply::text(500, "Internal Server Error"),
            Case::Malformed => return Err("a collect answer has no body to be malformed"),
        })
    }
}

#[tokio::test]
async fn conformance_of_events() {
    let skipped = conformance::<TrackEvent, _, _>(
        &Ga4,
        Script,
        harness,
        json!({"name": "signup", "userId": "u-1"}),
        &[SECRET],
        false,
    )
    .await;
    assert_eq!(
        skipped.iter().map(|s| s.0).collect::<Vec<_>>(),
        vec![Case::Malformed]
    );
}
