//! The provider against a fake Braze over real HTTP: `/users/track` with the REST key as a
//! bearer, success as 201 `{"message":"success", *_processed}`, a 2xx with per-object
//! `errors` for an object without an identifier or with a bad email, a fatal 400 when
//! nothing valid remains, 401 for an unknown key, and the `X-RateLimit-*` headers.

use std::sync::{Arc, Mutex};

use domain::{CredentialKind, FailureClassification};
use integration_kit::testing::{
    Case, FakeVendor, Harness, Perform, Recorded, Reply, THROTTLE_SECS, assert_no_secret,
    conformance,
};
use serde_json::{Value, json};

use super::*;

const KEY: &str = "braze-rest-key-4f1c0a9e-7f3b-4c6e-9f0e-2b1d3c4e5f60";

fn braze(seen: Arc<Mutex<Vec<Value>>>) -> impl Fn(&Recorded, usize) -> Reply + Send + Sync {
    move |r, _| {
        if r.header("authorization") != Some(format!("Bearer {KEY}").as_str()) {
            return Reply::json(401, json!({"message": "Invalid API Key"}));
        }
        let body = r.json();
        seen.lock().unwrap().push(body.clone());
        let mut errors = Vec::new();
        let mut processed = serde_json::Map::new();
        for array in ["attributes", "events", "purchases"] {
            let Some(items) = body[array].as_array() else {
                continue;
            };
            let mut ok = 0;
            for (i, item) in items.iter().enumerate() {
                let identified = ["external_id", "email", "braze_id", "user_alias", "phone"]
                    .iter()
                    .any(|k| !item[*k].is_null());
                if !identified {
                    errors.push(json!({"type": "'external_id', 'braze_id', 'user_alias', 'email' or 'phone' is required",
                                       "input_array": array, "index": i}));
                } else if item["email"]
                    .as_str()
                    .is_some_and(|e| e.ends_with(".invalid"))
                {
                    errors.push(json!({"type": "The value provided for the 'email' field is not a valid email.",
                                       "input_array": array, "index": i}));
                } else {
                    ok += 1;
                }
            }
            processed.insert(format!("{array}_processed"), json!(ok));
        }
        let any = processed.values().any(|v| v.as_u64() > Some(0));
        let reply = if !any {
            Reply::json(
                400,
                json!({"message": "Valid data must be provided in the 'attributes', 'events', or 'purchases' fields.", "errors": errors}),
            )
        } else {
            let mut answer = json!({"message": "success"});
            for (k, v) in processed {
                answer[k] = v;
            }
            if !errors.is_empty() {
                answer["errors"] = json!(errors);
            }
            Reply::json(201, answer)
        };
        reply
            .header("x-ratelimit-limit", "3000")
            .header("x-ratelimit-remaining", "2999")
            .header("x-ratelimit-reset", "1764000003")
    }
}

fn harness(base: &str) -> Harness {
    Harness::new(
        "braze",
        CredentialKind::ApiKey,
        json!({"apiKey": KEY}),
        json!({"baseUrl": base}),
    )
}

#[tokio::test]
async fn contacts_are_attributes_and_events_are_events() {
    let seen = Arc::new(Mutex::new(Vec::new()));
    let fake = FakeVendor::start(braze(seen.clone())).await;
    let h = harness(&fake.base);
    Braze
        .test_connection(&h.call())
        .await
        .expect("the key is accepted");

    let out = Perform::<UpsertContact>::perform(
        &Braze,
        &h.call(),
        &json!({"email": "ada@example.org", "externalId": "user-1", "firstName": "Ada",
                "properties": {"plan": "pro"}}),
    )
    .await
    .expect("tracked");
    assert_eq!(out.output, json!({"contactId": "user-1", "created": null}));
    assert_eq!(
        seen.lock().unwrap().last().unwrap()["attributes"][0],
        json!({"external_id": "user-1", "email": "ada@example.org", "first_name": "Ada", "plan": "pro"})
    );
    // Without the caller's id the email identifies the profile.
    let out =
        Perform::<UpsertContact>::perform(&Braze, &h.call(), &json!({"email": "bob@example.org"}))
            .await
            .expect("by email");
    assert_eq!(out.output["contactId"], "bob@example.org");

    let out = Perform::<TrackEvent>::perform(
        &Braze,
        &h.call(),
        &json!({"name": "order_placed", "userId": "user-1", "time": "2026-12-08T10:00:00Z",
                "value": 12.5, "currency": "USD", "properties": {"order_id": "o-9"}}),
    )
    .await
    .expect("tracked");
    assert_eq!(out.output, json!({"accepted": true}));
    assert_eq!(
        seen.lock().unwrap().last().unwrap()["events"][0],
        json!({"external_id": "user-1", "name": "order_placed", "time": "2026-12-08T10:00:00+00:00",
               "properties": {"order_id": "o-9", "value": 12.5, "currency": "USD"}})
    );
}

#[tokio::test]
async fn a_success_with_errors_is_a_failure() {
    let fake = FakeVendor::start(braze(Arc::default())).await;
    let h = harness(&fake.base);
    let e = Perform::<TrackEvent>::perform(
        &Braze,
        &h.call(),
        &json!({"name": "signup", "email": "x@y.invalid"}),
    )
    .await
    .unwrap_err();
    // Nothing valid remained: Braze's fatal 400.
    assert_eq!(e.class(), FailureClassification::Validation);
    assert!(e.failure.message.contains("not a valid email"), "{e:?}");
    assert!(e.failure.message.contains("events[0]"), "{e:?}");
    let wrong = Harness::new(
        "braze",
        CredentialKind::ApiKey,
        json!({"apiKey": "braze-wrong-key-123"}),
        json!({"baseUrl": fake.base}),
    );
    let e = Braze.test_connection(&wrong.call()).await.unwrap_err();
    assert_eq!(e.class(), FailureClassification::Auth);
    assert!(e.failure.message.contains("Invalid API Key"));
    assert_no_secret(&e, &["braze-wrong-key-123"]);
}

/// A 201 that lists the object among its errors is not a success.
#[tokio::test]
async fn a_2xx_listing_the_object_is_refused() {
    let fake = FakeVendor::start(|_, _| {
        Reply::json(
            201,
            json!({"message": "success", "events_processed": 0,
            "errors": [{"type": "'name' is required", "input_array": "events", "index": 0}]}),
        )
    })
    .await;
    let e = Perform::<TrackEvent>::perform(
        &Braze,
        &harness(&fake.base).call(),
        &json!({"name": "x", "userId": "u"}),
    )
    .await
    .unwrap_err();
    assert_eq!(e.class(), FailureClassification::Unprocessable);
    assert!(!e.retryable);
    assert!(
        e.failure.message.contains("'name' is required (events[0])"),
        "{e:?}"
    );
}

struct Script;

impl integration_kit::testing::VendorScript for Script {
    fn reply(&self, case: Case, _request: &Recorded) -> Result<Reply, &'static str> {
        Ok(match case {
            Case::Success => Reply::json(
                201,
                json!({"message": "success", "attributes_processed": 1, "events_processed": 1}),
            ),
            Case::Invalid => Reply::json(
                400,
                json!({"message": "Valid data must be provided in the 'attributes', 'events', or 'purchases' fields.", "errors": []}),
            ),
            Case::Unauthorized => Reply::json(401, json!({"message": "Invalid API Key"})),
            // Braze's hint is a Unix time, whole seconds: `throttling_waits_for_the_reset`
            // checks it to the second.
            Case::Throttled => return Err("Braze's reset is a Unix time, not an exact wait"),
            Case::ServerError => Reply::text(503, "Service Unavailable"),
            Case::Malformed => Reply::text(201, "<html>"),
        })
    }
}

#[tokio::test]
async fn conformance_of_contacts_and_events() {
    let skipped = conformance::<UpsertContact, _, _>(
        &Braze,
        Script,
        harness,
        json!({"email": "ada@example.org"}),
        &[KEY],
        true,
    )
    .await;
    assert_eq!(skipped.len(), 1, "{skipped:?}");
    assert_eq!(skipped[0].0, Case::Throttled);
    // Events are not de-duplicated: an outage after sending is not repeated.
    let skipped = conformance::<TrackEvent, _, _>(
        &Braze,
        Script,
        harness,
        json!({"name": "signup", "userId": "u-1"}),
        &[KEY],
        false,
    )
    .await;
    assert_eq!(skipped.len(), 1, "{skipped:?}");
}

/// Braze's 429 says when its window resets (Unix seconds): the wait runs until then.
#[tokio::test]
async fn throttling_waits_for_the_reset() {
    let fake = FakeVendor::start(|_, _| {
        let reset = chrono::Utc::now().timestamp() + THROTTLE_SECS as i64;
        Reply::json(429, json!({"message": "Rate limit exceeded"}))
            .header("x-ratelimit-limit", "3000")
            .header("x-ratelimit-remaining", "0")
            .header("x-ratelimit-reset", &reset.to_string())
    })
    .await;
    let e = Perform::<UpsertContact>::perform(
        &Braze,
        &harness(&fake.base).call(),
        &json!({"email": "a@b.org"}),
    )
    .await
    .unwrap_err();
    assert_eq!(e.class(), FailureClassification::RateLimited);
    assert!(e.retryable);
    let wait = e.failure.retry_after.expect("a wait").as_secs_f64();
    assert!(
        (THROTTLE_SECS as f64 - 1.5..=THROTTLE_SECS as f64 + 0.5).contains(&wait),
        "{wait}"
    );
}
