//! The provider against a fake Stripe over real HTTP, answering as Stripe's API reference
//! says: form-encoded writes with `Idempotency-Key` (a repeat replays the first answer,
//! `Idempotent-Replayed: true`; the same key with other parameters is 400
//! `idempotency_error`), PaymentIntents created, captured and read (`expand[]=latest_charge`),
//! refunds, 402 card errors with decline codes, 401 for a bad key, and a 500 with
//! `Stripe-Should-Retry: false`.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use domain::{CredentialKind, FailureClassification};
use integration_kit::testing::{
    Case, FakeVendor, Harness, Perform, Recorded, Reply, assert_no_secret, conformance,
};
use serde_json::{Value, json};

use super::*;

const KEY: &str = "sk_test_51NfakeKey0123456789abcdefghijklmnopqrstuvwxyz";

#[derive(Default)]
struct Account {
    intents: BTreeMap<String, Value>,
    charges: BTreeMap<String, Value>,
    /// Idempotency key → (path and form, the saved answer's status and body).
    keys: BTreeMap<String, (String, (u16, Value))>,
    writes: u32,
}

fn error(status: u16, kind: &str, code: Option<&str>, message: &str) -> Reply {
    let (status, body) = err(status, kind, code, message);
    Reply::json(status, body)
}

/// Stripe's error body, as a status and JSON (what the fake saves under a key).
fn err(status: u16, kind: &str, code: Option<&str>, message: &str) -> (u16, Value) {
    let mut e = json!({"type": kind, "message": message});
    if let Some(code) = code {
        e["code"] = json!(code);
    }
    (status, json!({"error": e}))
}

fn stripe(account: Arc<Mutex<Account>>) -> impl Fn(&Recorded, usize) -> Reply + Send + Sync {
    move |r, _| {
        if r.header("authorization") != Some(format!("Bearer {KEY}").as_str()) {
            return error(
                401,
                "invalid_request_error",
                None,
                "Invalid API Key provided: sk_test_****wxyz",
            );
        }
        let mut account = account.lock().unwrap();
        let form: BTreeMap<String, String> = r.form().into_iter().collect();
        if r.method == reqwest::Method::POST {
            if r.header("content-type") != Some("application/x-www-form-urlencoded") {
                return error(
                    400,
                    "invalid_request_error",
                    None,
                    "Stripe takes form-encoded bodies",
                );
            }
            if let Some(key) = r.header("idempotency-key") {
                let request = format!("{} {:?}", r.path, form);
                if let Some((first, (status, saved))) = account.keys.get(key) {
                    if *first != request {
                        return error(
                            400,
                            "idempotency_error",
                            None,
                            "Keys for idempotent requests can only be used with the same parameters they were first used with.",
                        );
                    }
                    return Reply::json(*status, saved.clone())
                        .header("idempotent-replayed", "true");
                }
                let (status, answer) = write(&mut account, r, &form);
                account
                    .keys
                    .insert(key.to_owned(), (request, (status, answer.clone())));
                return Reply::json(status, answer);
            }
            let (status, answer) = write(&mut account, r, &form);
            return Reply::json(status, answer);
        }
        match r.path.as_str() {
            "/v1/balance" => Reply::json(
                200,
                json!({"object": "balance", "available": [{"amount": 0, "currency": "usd"}]}),
            ),
            p if p.starts_with("/v1/payment_intents/") => {
                let id = &p["/v1/payment_intents/".len()..];
                let Some(intent) = account.intents.get(id).cloned() else {
                    return error(
                        404,
                        "invalid_request_error",
                        Some("resource_missing"),
                        &format!("No such payment_intent: '{id}'"),
                    );
                };
                let expand = r
                    .query
                    .as_deref()
                    .is_some_and(|q| q.contains("latest_charge"));
                Reply::json(200, with_charge(&account, intent, expand))
            }
            _ => error(
                404,
                "invalid_request_error",
                None,
                "Unrecognized request URL",
            ),
        }
    }
}

fn with_charge(account: &Account, mut intent: Value, expand: bool) -> Value {
    if expand
        && let Some(charge) = intent["latest_charge"]
            .as_str()
            .and_then(|c| account.charges.get(c))
    {
        intent["latest_charge"] = charge.clone();
    }
    intent
}

fn write(account: &mut Account, r: &Recorded, form: &BTreeMap<String, String>) -> (u16, Value) {
    account.writes += 1;
    let n = account.writes;
    match r.path.as_str() {
        "/v1/payment_intents" => {
            if form.get("customer").map(String::as_str) == Some("cus_declines") {
                return (
                    402,
                    json!({"error": {"type": "card_error", "code": "card_declined",
                    "decline_code": "insufficient_funds", "message": "Your card has insufficient funds."}}),
                );
            }
            let Some(amount) = form.get("amount").and_then(|a| a.parse::<u64>().ok()) else {
                return err(
                    400,
                    "invalid_request_error",
                    Some("parameter_missing"),
                    "Missing required param: amount.",
                );
            };
            let manual = form.get("capture_method").map(String::as_str) == Some("manual");
            let id = format!("pi_3N{n:08}");
            let charge = format!("ch_3N{n:08}");
            let metadata: BTreeMap<String, String> = form
                .iter()
                .filter_map(|(k, v)| {
                    Some((
                        k.strip_prefix("metadata[")?.strip_suffix(']')?.to_owned(),
                        v.clone(),
                    ))
                })
                .collect();
            let intent = json!({"id": id, "object": "payment_intent", "amount": amount,
                "amount_received": if manual { 0 } else { amount }, "currency": form["currency"],
                "status": if manual { "requires_capture" } else { "succeeded" },
                "capture_method": form["capture_method"], "client_secret": format!("{id}_secret_abc"),
                "metadata": metadata, "latest_charge": charge});
            account.charges.insert(
                charge.clone(),
                json!({"id": charge, "object": "charge", "amount": amount,
                "amount_refunded": 0, "refunded": false, "disputed": false}),
            );
            account.intents.insert(id, intent.clone());
            (200, intent)
        }
        "/v1/refunds" => {
            let id = form.get("payment_intent").cloned().unwrap_or_default();
            let Some(intent) = account.intents.get(&id).cloned() else {
                return err(
                    404,
                    "invalid_request_error",
                    Some("resource_missing"),
                    &format!("No such payment_intent: '{id}'"),
                );
            };
            let charge_id = intent["latest_charge"].as_str().unwrap().to_owned();
            let charge = account.charges.get_mut(&charge_id).unwrap();
            let left = intent["amount_received"].as_u64().unwrap()
                - charge["amount_refunded"].as_u64().unwrap();
            let amount = form
                .get("amount")
                .and_then(|a| a.parse().ok())
                .unwrap_or(left);
            if amount > left {
                return err(
                    400,
                    "invalid_request_error",
                    Some("amount_too_large"),
                    &format!(
                        "Refund amount ({amount}) is greater than unrefunded amount on charge ({left})"
                    ),
                );
            }
            let refunded = charge["amount_refunded"].as_u64().unwrap() + amount;
            charge["amount_refunded"] = json!(refunded);
            charge["refunded"] = json!(refunded == intent["amount_received"].as_u64().unwrap());
            (
                200,
                json!({"id": format!("re_3N{n:08}"), "object": "refund", "amount": amount,
                "payment_intent": id, "status": "succeeded", "currency": intent["currency"]}),
            )
        }
        p if p.ends_with("/capture") => {
            let id = p
                .trim_start_matches("/v1/payment_intents/")
                .trim_end_matches("/capture")
                .to_owned();
            let Some(intent) = account.intents.get_mut(&id) else {
                return err(
                    404,
                    "invalid_request_error",
                    Some("resource_missing"),
                    "No such payment_intent",
                );
            };
            if intent["status"] != "requires_capture" {
                return err(
                    400,
                    "invalid_request_error",
                    Some("payment_intent_unexpected_state"),
                    &format!(
                        "This PaymentIntent could not be captured because it has a status of {}.",
                        intent["status"].as_str().unwrap()
                    ),
                );
            }
            let amount = form
                .get("amount_to_capture")
                .and_then(|a| a.parse().ok())
                .unwrap_or(intent["amount"].as_u64().unwrap());
            intent["status"] = json!("succeeded");
            intent["amount_received"] = json!(amount);
            (200, intent.clone())
        }
        _ => err(
            404,
            "invalid_request_error",
            None,
            "Unrecognized request URL",
        ),
    }
}

fn harness(base: &str) -> Harness {
    Harness::new(
        "stripe",
        CredentialKind::ApiKey,
        json!({"apiKey": KEY}),
        json!({"baseUrl": base}),
    )
}

#[tokio::test]
async fn a_payment_is_created_captured_refunded_and_read_once_per_run() {
    let account = Arc::new(Mutex::new(Account::default()));
    let fake = FakeVendor::start(stripe(account.clone())).await;
    let h = harness(&fake.base);
    Stripe.test_connection(&h.call()).await.expect("the key");

    let input = json!({"amount": 1099, "currency": "ILS", "description": "Order 42",
                       "metadata": {"order_id": "o-42"}, "capture": "manual"});
    let created = Perform::<CreatePayment>::perform(&Stripe, &h.call(), &input)
        .await
        .expect("created");
    let id = created.output["paymentId"].as_str().unwrap().to_owned();
    assert_eq!(created.output["status"], "requires_capture");
    assert_eq!(created.output["clientSecret"], format!("{id}_secret_abc"));
    assert!(
        created.summary.get("clientSecret").is_none(),
        "no secret in the summary"
    );
    assert_eq!(created.vendor_message_id.as_deref(), Some(id.as_str()));
    let sent = fake.requests().last().unwrap().clone();
    assert_eq!(sent.header("idempotency-key"), h.idempotency_key.as_deref());
    let body = String::from_utf8(sent.body.to_vec()).unwrap();
    assert!(body.contains("metadata%5Brun_id%5D="), "{body}");
    assert!(body.contains("currency=ils"), "{body}");
    let form: BTreeMap<String, String> = sent.form().into_iter().collect();
    assert_eq!(form["metadata[order_id]"], "o-42");
    assert_eq!(form["automatic_payment_methods[enabled]"], "true");
    assert_eq!(form["capture_method"], "manual");

    // The same run again: Stripe replays its first answer; one payment.
    let again = Perform::<CreatePayment>::perform(&Stripe, &h.call(), &input)
        .await
        .expect("replayed");
    assert_eq!(again.output["paymentId"], id.as_str());
    assert_eq!(account.lock().unwrap().intents.len(), 1);
    // The same key with other parameters is refused, and not retried.
    let mut other = input.clone();
    other["amount"] = json!(2000);
    let e = Perform::<CreatePayment>::perform(&Stripe, &h.call(), &other)
        .await
        .unwrap_err();
    assert_eq!(e.class(), FailureClassification::Validation);
    assert_eq!(e.failure.vendor_code.as_deref(), Some("idempotency_error"));

    let mut run = harness(&fake.base);
    let captured = Perform::<CapturePayment>::perform(
        &Stripe,
        &run.call(),
        &json!({"paymentId": id, "amount": 1000}),
    )
    .await
    .expect("captured");
    assert_eq!(captured.output["status"], "succeeded");
    assert_eq!(captured.output["amountReceived"], 1000);
    let e = Perform::<CapturePayment>::perform(
        &Stripe,
        &harness(&fake.base).call(),
        &json!({"paymentId": id}),
    )
    .await
    .unwrap_err();
    assert_eq!(
        e.failure.vendor_code.as_deref(),
        Some("payment_intent_unexpected_state")
    );
    assert!(e.failure.message.contains("status of succeeded"), "{e:?}");

    run.idempotency_key = Some(integration_kit::testing::run_id());
    let refund = Perform::<RefundPayment>::perform(
        &Stripe,
        &run.call(),
        &json!({"paymentId": id, "amount": 400}),
    )
    .await
    .expect("refunded");
    assert_eq!(refund.output["amount"], 400);
    assert_eq!(refund.output["status"], "succeeded");
    // The same refund run again refunds nothing more.
    Perform::<RefundPayment>::perform(
        &Stripe,
        &run.call(),
        &json!({"paymentId": id, "amount": 400}),
    )
    .await
    .expect("replayed");
    let read = Perform::<GetPayment>::perform(&Stripe, &h.call(), &json!({"paymentId": id}))
        .await
        .expect("read");
    assert_eq!(read.output["status"], "partially_refunded");
    assert_eq!(read.output["amountRefunded"], 400);
    assert_eq!(read.output["currency"], "ils");
    let e = Perform::<RefundPayment>::perform(
        &Stripe,
        &harness(&fake.base).call(),
        &json!({"paymentId": id, "amount": 700}),
    )
    .await
    .unwrap_err();
    assert_eq!(e.failure.vendor_code.as_deref(), Some("amount_too_large"));
    Perform::<RefundPayment>::perform(
        &Stripe,
        &harness(&fake.base).call(),
        &json!({"paymentId": id}),
    )
    .await
    .expect("the rest");
    let read = Perform::<GetPayment>::perform(&Stripe, &h.call(), &json!({"paymentId": id}))
        .await
        .expect("read");
    assert_eq!(read.output["status"], "refunded");
}

#[tokio::test]
async fn declines_bad_keys_and_unretryable_outages() {
    let fake = FakeVendor::start(stripe(Arc::default())).await;
    let e = Perform::<CreatePayment>::perform(
        &Stripe,
        &harness(&fake.base).call(),
        &json!({"amount": 500, "currency": "usd", "customer": "cus_declines"}),
    )
    .await
    .unwrap_err();
    assert_eq!(e.class(), FailureClassification::Unprocessable);
    assert!(!e.retryable);
    assert_eq!(e.failure.vendor_code.as_deref(), Some("insufficient_funds"));
    assert!(e.failure.message.contains("insufficient funds"), "{e:?}");
    let wrong = Harness::new(
        "stripe",
        CredentialKind::ApiKey,
        json!({"apiKey": "sk_test_wrong000"}),
        json!({"baseUrl": fake.base}),
    );
    let e = Stripe.test_connection(&wrong.call()).await.unwrap_err();
    assert_eq!(e.class(), FailureClassification::Auth);
    assert_no_secret(&e, &["sk_test_wrong000"]);

    let saved = FakeVendor::start(|_, _| {
        Reply::json(
            500,
            json!({"error": {"type": "api_error", "message": "An unknown error occurred"}}),
        )
        .header("stripe-should-retry", "false")
    })
    .await;
    let e = Perform::<CreatePayment>::perform(
        &Stripe,
        &harness(&saved.base).attempts(3).call(),
        &json!({"amount": 500, "currency": "usd"}),
    )
    .await
    .unwrap_err();
    assert!(
        !e.retryable,
        "Stripe saved the 500 under the key: a repeat only replays it"
    );
    assert_eq!(saved.requests().len(), 1);
}

#[test]
fn statuses_are_normalised() {
    let intent = |status: &str, charge: Value| {
        json!({"id": "pi_1", "status": status, "amount": 100,
        "amount_received": 100, "currency": "usd", "latest_charge": charge})
    };
    let status = |v: Value| read_intent(&v).unwrap().status;
    assert_eq!(
        status(intent("requires_payment_method", Value::Null)),
        PaymentStatus::RequiresAction
    );
    assert_eq!(
        status(intent("requires_confirmation", Value::Null)),
        PaymentStatus::RequiresAction
    );
    assert_eq!(
        status(intent("processing", Value::Null)),
        PaymentStatus::Processing
    );
    assert_eq!(
        status(intent("canceled", Value::Null)),
        PaymentStatus::Canceled
    );
    assert_eq!(
        status(intent("succeeded", json!("ch_1"))),
        PaymentStatus::Succeeded
    );
    assert_eq!(
        status(intent(
            "succeeded",
            json!({"amount_refunded": 10, "refunded": false})
        )),
        PaymentStatus::PartiallyRefunded
    );
    assert_eq!(
        status(intent(
            "succeeded",
            json!({"amount_refunded": 100, "refunded": true})
        )),
        PaymentStatus::Refunded
    );
    assert_eq!(
        status(intent("succeeded", json!({"disputed": true}))),
        PaymentStatus::Disputed
    );
    assert!(read_intent(&intent("exploded", Value::Null)).is_err());
}

struct Script;

impl integration_kit::testing::VendorScript for Script {
    fn reply(&self, case: Case, request: &Recorded) -> Result<Reply, &'static str> {
        Ok(match case {
            Case::Success if request.path == "/v1/refunds" => Reply::json(
                200,
                json!({"id": "re_1", "object": "refund", "amount": 100, "payment_intent": "pi_1",
                       "status": "succeeded", "currency": "usd"}),
            ),
            Case::Success => Reply::json(200, json!({"id": "pi_1", "object": "payment_intent", "status": "succeeded",
                "amount": 100, "amount_received": 100, "currency": "usd", "client_secret": "pi_1_secret",
                "latest_charge": {"id": "ch_1", "amount_refunded": 0, "refunded": false},
                "object_refund": "refund", "payment_intent": "pi_1"}))
                .header("request-id", "req_1"),
            Case::Invalid => error(400, "invalid_request_error", Some("parameter_invalid_integer"), "Invalid integer: abc"),
            Case::Unauthorized => error(401, "invalid_request_error", None, "Invalid API Key provided"),
            // Stripe's 429 (`rate_limit`, `lock_timeout`) carries no wait.
            Case::Throttled => return Err("Stripe's 429 says no wait"),
            Case::ServerError => Reply::json(500, json!({"error": {"type": "api_error", "message": "An unknown error occurred"}}))
                .header("stripe-should-retry", "true"),
            Case::Malformed => Reply::text(200, "<html>"),
        })
    }
}

#[tokio::test]
async fn conformance_of_every_operation() {
    let throttled_only = |skipped: Vec<(Case, &'static str)>| {
        assert_eq!(
            skipped.iter().map(|s| s.0).collect::<Vec<_>>(),
            vec![Case::Throttled]
        );
    };
    throttled_only(
        conformance::<CreatePayment, _, _>(
            &Stripe,
            Script,
            harness,
            json!({"amount": 100, "currency": "usd"}),
            &[KEY],
            true,
        )
        .await,
    );
    throttled_only(
        conformance::<CapturePayment, _, _>(
            &Stripe,
            Script,
            harness,
            json!({"paymentId": "pi_1"}),
            &[KEY],
            true,
        )
        .await,
    );
    throttled_only(
        conformance::<RefundPayment, _, _>(
            &Stripe,
            Script,
            harness,
            json!({"paymentId": "pi_1", "amount": 100}),
            &[KEY],
            true,
        )
        .await,
    );
    throttled_only(
        conformance::<GetPayment, _, _>(
            &Stripe,
            Script,
            harness,
            json!({"paymentId": "pi_1"}),
            &[KEY],
            true,
        )
        .await,
    );
}

#[test]
fn stripe_events_ask_for_a_look_at_their_payment_intent() {
    let effects = |body: serde_json::Value| -> Vec<String> {
        super::callback_effects(body.to_string().as_bytes())
            .unwrap()
            .into_iter()
            .map(|e| match e {
                WebhookEffect::Reconcile { record_id } => record_id,
                other => panic!("{other:?}"),
            })
            .collect()
    };
    let event =
        |object: serde_json::Value| json!({"id": "evt_1", "type": "x", "data": {"object": object}});
    assert_eq!(
        effects(event(
            json!({"id": "pi_1", "object": "payment_intent", "status": "succeeded"})
        )),
        ["pi_1"]
    );
    for kind in ["charge", "refund", "dispute"] {
        assert_eq!(
            effects(event(
                json!({"id": "x_1", "object": kind, "payment_intent": "pi_2"})
            )),
            ["pi_2"],
            "{kind}"
        );
    }
    // Events about nothing this app keeps, or naming no usable id, ask for nothing.
    assert!(effects(event(json!({"id": "cus_1", "object": "customer"}))).is_empty());
    assert!(
        effects(event(
            json!({"id": "ch_1", "object": "charge", "payment_intent": null})
        ))
        .is_empty()
    );
    assert!(effects(event(json!({"id": "pi/../x", "object": "payment_intent"}))).is_empty());
    assert!(effects(json!([1, 2])).is_empty());
    assert!(super::callback_effects(b"not json").is_err());
}
