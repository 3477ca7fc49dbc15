//! The provider against a fake Graph API over real HTTP: the pixel read, `/{version}/{pixel}/
//! events` with the token as a bearer, `{events_received, messages, fbtrace_id}`, and Graph's
//! `{"error": {message, type, code, error_subcode, fbtrace_id}}` with 400 for refusals,
//! tokens and throttling alike (the code decides).

use std::sync::{Arc, Mutex};

use domain::{CredentialKind, FailureClassification};
use integration_kit::testing::{
    Case, FakeVendor, Harness, Perform, Recorded, Reply, THROTTLE_SECS, assert_no_secret,
    conformance,
};
use serde_json::{Value, json};

use super::*;

const TOKEN: &str = "EAAGm0PX4ZCpsBAFakeSystemUserToken0123456789";
const PIXEL: &str = "1234567890123";
/// SHA-256 of "ada@example.org" and of "user-1", computed with `sha256sum`.
const EMAIL_SHA256: &str = "cfe00dde46ef942601ffafb9e2825e802858b460e586b8305b344c1eb826357d";
const USER_SHA256: &str = "c6c289e49e9c05b2145860387b73bcb18df43fb09a1e4a4a9713c76c88bb541b";

fn graph_error(code: i64, message: &str) -> Reply {
    Reply::json(
        400,
        json!({"error": {"message": message, "type": "OAuthException", "code": code,
                                      "error_subcode": 2_804_030, "fbtrace_id": "AbCdEfGh123"}}),
    )
}

fn meta(seen: Arc<Mutex<Vec<Value>>>) -> impl Fn(&Recorded, usize) -> Reply + Send + Sync {
    move |r, _| {
        if r.header("authorization") != Some(format!("Bearer {TOKEN}").as_str()) {
            return graph_error(
                190,
                "Invalid OAuth access token - Cannot parse access token",
            );
        }
        let events_path = format!("/v25.0/{PIXEL}/events");
        match (r.method.as_str(), r.path.as_str()) {
            ("GET", p) if p == format!("/v25.0/{PIXEL}") => Reply::json(200, json!({"id": PIXEL})),
            ("POST", p) if p == events_path => {
                let body = r.json();
                let event = &body["data"][0];
                if event["user_data"]["em"].as_array().is_some_and(|em| {
                    em.iter()
                        .any(|e| e.as_str().is_some_and(|e| e.contains('@')))
                }) {
                    return graph_error(100, "Invalid parameter: unhashed email");
                }
                seen.lock().unwrap().push(body.clone());
                Reply::json(
                    200,
                    json!({"events_received": body["data"].as_array().map_or(0, Vec::len),
                                        "messages": [], "fbtrace_id": "AbCdEfGh123"}),
                )
            }
            _ => graph_error(803, "Some of the aliases you requested do not exist"),
        }
    }
}

fn harness(base: &str) -> Harness {
    Harness::new(
        "meta-capi",
        CredentialKind::BearerToken,
        json!({"token": TOKEN}),
        json!({"baseUrl": base, "pixelId": PIXEL, "testEventCode": "TEST12345"}),
    )
}

#[tokio::test]
async fn events_carry_the_run_id_and_hashed_identities() {
    let seen = Arc::new(Mutex::new(Vec::new()));
    let fake = FakeVendor::start(meta(seen.clone())).await;
    let h = harness(&fake.base);
    Meta.test_connection(&h.call()).await.expect("the pixel");
    let out = Perform::<TrackEvent>::perform(
        &Meta,
        &h.call(),
        &json!({"name": "Purchase", "email": "Ada@Example.org", "userId": "user-1", "value": 142.52,
                "currency": "USD", "time": chrono::Utc::now().to_rfc3339(), "properties": {"order_id": "o-9"}}),
    )
    .await
    .expect("sent");
    assert_eq!(out.output["accepted"], true);
    let body = seen.lock().unwrap().last().unwrap().clone();
    assert_eq!(body["test_event_code"], "TEST12345");
    let event = &body["data"][0];
    assert_eq!(event["event_name"], "Purchase");
    assert_eq!(event["event_id"], h.idempotency_key.as_deref().unwrap());
    assert_eq!(event["action_source"], "system_generated");
    // SHA-256 of "ada@example.org" (trimmed, lowercased), computed outside this crate.
    assert_eq!(event["user_data"]["em"][0], EMAIL_SHA256);
    assert_eq!(event["user_data"]["external_id"][0], USER_SHA256);
    assert_eq!(
        event["custom_data"],
        json!({"order_id": "o-9", "value": 142.52, "currency": "USD"})
    );
}

#[tokio::test]
async fn graph_codes_decide_the_class() {
    let fake = FakeVendor::start(meta(Arc::default())).await;
    let wrong = Harness::new(
        "meta-capi",
        CredentialKind::BearerToken,
        json!({"token": "EAAwrong000"}),
        json!({"baseUrl": fake.base, "pixelId": PIXEL}),
    );
    let e = Meta.test_connection(&wrong.call()).await.unwrap_err();
    assert_eq!(
        e.class(),
        FailureClassification::Auth,
        "code 190 with a 400"
    );
    assert_eq!(e.failure.vendor_code.as_deref(), Some("190/2804030"));
    assert!(
        e.failure.message.contains("fbtrace_id AbCdEfGh123"),
        "{e:?}"
    );
    assert_no_secret(&e, &["EAAwrong000"]);
    let old = Perform::<TrackEvent>::perform(
        &Meta,
        &harness(&fake.base).call(),
        &json!({"name": "Lead", "userId": "u", "time": "2020-01-01T00:00:00Z"}),
    )
    .await
    .unwrap_err();
    assert_eq!(old.class(), FailureClassification::Validation);
    assert!(old.failure.message.contains("7 days"));

    // Throttling arrives as a 400 too; its wait is in the business use case header.
    let throttled = FakeVendor::start(|_, _| {
        graph_error(80_004, "There have been too many calls to this ad-account.")
            .header("x-business-use-case-usage",
                    r#"{"1234":[{"type":"ads_management","call_count":100,"total_cputime":25,"total_time":25,"estimated_time_to_regain_access":2}]}"#)
    })
    .await;
    let e = Perform::<TrackEvent>::perform(
        &Meta,
        &harness(&throttled.base).call(),
        &json!({"name": "Lead", "userId": "u"}),
    )
    .await
    .unwrap_err();
    assert_eq!(e.class(), FailureClassification::RateLimited);
    assert!(e.retryable);
    assert_eq!(
        e.failure.retry_after,
        Some(std::time::Duration::from_secs(120))
    );
}

#[test]
fn configs_are_checked() {
    use integration_kit::ProviderConfig as _;
    let parse = |v: Value| serde_json::from_value::<MetaConfig>(v).unwrap().check();
    assert!(
        parse(json!({"pixelId": PIXEL, "apiVersion": "v26.0", "actionSource": "website"})).is_ok()
    );
    assert_eq!(
        parse(json!({"pixelId": "px-1"})).unwrap_err().path,
        "pixelId"
    );
    assert_eq!(
        parse(json!({"pixelId": PIXEL, "apiVersion": "25"}))
            .unwrap_err()
            .path,
        "apiVersion"
    );
    assert_eq!(
        parse(json!({"pixelId": PIXEL, "actionSource": "fax"}))
            .unwrap_err()
            .path,
        "actionSource"
    );
}

struct Script;

impl integration_kit::testing::VendorScript for Script {
    fn reply(&self, case: Case, _request: &Recorded) -> Result<Reply, &'static str> {
        Ok(match case {
            Case::Success => Reply::json(
                200,
                json!({"events_received": 1, "messages": [], "fbtrace_id": "x"}),
            ),
            Case::Invalid => graph_error(100, "Invalid parameter"),
            Case::Unauthorized => graph_error(190, "Error validating access token"),
            Case::Throttled => graph_error(4, "Application request limit reached")
                .header("retry-after", &THROTTLE_SECS.to_string()),
            Case::ServerError => Reply::text(500, "Internal Server Error"),
            Case::Malformed => Reply::text(200, "<html>"),
        })
    }
}

#[tokio::test]
async fn conformance_of_events() {
    // Meta de-duplicates on the event id (the run's): a 5xx may be tried again.
    let skipped = conformance::<TrackEvent, _, _>(
        &Meta,
        Script,
        harness,
        json!({"name": "Lead", "userId": "u-1"}),
        &[TOKEN],
        true,
    )
    .await;
    assert!(skipped.is_empty(), "{skipped:?}");
}
