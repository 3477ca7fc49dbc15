//! The payment app end to end through the runner: payments created, captured, refunded and
//! read through the Fake, once per run (a repeated `Idempotency-Key` is the same run and no
//! second processor call), a Stripe connection against a fake Stripe over real HTTP (the run
//! id as Stripe's `Idempotency-Key` and `metadata[run_id]`, the client secret in the output
//! but not in the run's summary), and another tenant's 404s.

use std::sync::{Arc, Mutex};

use integration_kit::testing::{FakeVendor, Reply};
use serde_json::{Value, json};
use testkit::TestPlatform;

use crate::support::{connect_app, run_waited};

const STRIPE_KEY: &str = "sk_test_e2e0123456789abcdefghijklmnop";

async fn waited(platform: &TestPlatform, token: &str, key: Option<&str>, body: Value) -> Value {
    run_waited(platform, "payment", token, key, body).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn payments_once_per_run_through_the_fake_and_stripe() {
    let creates = Arc::new(Mutex::new(Vec::<String>::new()));
    let seen = creates.clone();
    let stripe = FakeVendor::start(move |r, _| {
        if r.header("authorization") != Some(format!("Bearer {STRIPE_KEY}").as_str()) {
            return Reply::json(
                401,
                json!({"error": {"type": "invalid_request_error", "message": "Invalid API Key provided"}}),
            );
        }
        match (r.method.as_str(), r.path.as_str()) {
            ("GET", "/v1/balance") => Reply::json(200, json!({"object": "balance"})),
            ("POST", "/v1/payment_intents") => {
                seen.lock()
                    .unwrap()
                    .push(r.header("idempotency-key").unwrap_or_default().to_owned());
                Reply::json(
                    200,
                    json!({"id": "pi_3E2E", "object": "payment_intent", "amount": 1099,
                           "currency": "usd", "status": "requires_payment_method",
                           "client_secret": "pi_3E2E_secret_xyz",
                           "metadata": {"run_id": r.form_field("metadata[run_id]")}}),
                )
            }
            _ => Reply::json(
                404,
                json!({"error": {"type": "invalid_request_error", "message": "Unrecognized request URL"}}),
            ),
        }
    })
    .await;
    let platform = TestPlatform::start(
        &[registry::registration(), payment::registration()],
        json!({"OUTBOUND_ALLOWED_HOSTS": "localhost,127.0.0.1"}),
    )
    .await;
    let token = platform.token("tenant-pay", &[]);
    let other = platform.token("tenant-other", &[]);

    let fake = connect_app(
        &platform,
        "payment",
        &token,
        json!({"providerKey": "fake-payment", "displayName": "demo",
               "credential": {"kind": "apiKey", "apiKey": "demo-key"}}),
        "demo-key",
    )
    .await;
    let create = json!({"connectionId": fake, "operation": "createPayment",
                        "input": {"amount": 5000, "currency": "EUR", "capture": "manual"}});
    let created = waited(&platform, &token, Some("order-77"), create.clone()).await;
    assert_eq!(created["status"], "succeeded", "{created}");
    assert_eq!(created["output"]["status"], "requires_capture");
    let payment = created["output"]["paymentId"].as_str().unwrap().to_owned();
    let again = waited(&platform, &token, Some("order-77"), create).await;
    assert_eq!(again["runId"], created["runId"]);
    let run = created["runId"].as_str().unwrap();
    assert_eq!(
        payment::providers::fake::calls(run),
        1,
        "one processor call"
    );

    let captured = waited(
        &platform,
        &token,
        None,
        json!({"connectionId": fake, "operation": "capturePayment",
               "input": {"paymentId": payment}}),
    )
    .await;
    assert_eq!(captured["output"]["status"], "succeeded", "{captured}");
    assert_eq!(captured["output"]["amountReceived"], 5000);
    let refunded = waited(
        &platform,
        &token,
        None,
        json!({"connectionId": fake, "operation": "refundPayment",
               "input": {"paymentId": payment, "amount": 1500}}),
    )
    .await;
    assert_eq!(refunded["output"]["amount"], 1500, "{refunded}");
    let read = waited(
        &platform,
        &token,
        None,
        json!({"connectionId": fake, "operation": "getPayment",
               "input": {"paymentId": payment}}),
    )
    .await;
    assert_eq!(read["output"]["status"], "partially_refunded", "{read}");
    assert_eq!(read["output"]["amountRefunded"], 1500);
    // A refund of more than is left fails the run, with one failure.
    let over = waited(
        &platform,
        &token,
        None,
        json!({"connectionId": fake, "operation": "refundPayment",
               "input": {"paymentId": payment, "amount": 9000}}),
    )
    .await;
    assert_eq!(over["status"], "failed", "{over}");
    // Zero is refused before any run.
    let r = platform
        .post(
            "/payment/api/integrations/runs",
            &token,
            json!({"connectionId": fake, "operation": "createPayment",
                   "input": {"amount": 0, "currency": "usd"}}),
        )
        .await;
    let problem = testkit::assert_problem(r, 400, "invalid_input").await;
    assert_eq!(problem["pointer"], "/input/amount");

    // Stripe: the run's id is the idempotency key and in the metadata.
    let stripe_connection = connect_app(
        &platform,
        "payment",
        &token,
        json!({"providerKey": "stripe", "displayName": "stripe",
               "config": {"baseUrl": stripe.base},
               "credential": {"kind": "apiKey", "apiKey": STRIPE_KEY}}),
        STRIPE_KEY,
    )
    .await;
    let created = waited(
        &platform,
        &token,
        None,
        json!({"connectionId": stripe_connection, "operation": "createPayment",
               "input": {"amount": 1099, "currency": "usd"}}),
    )
    .await;
    assert_eq!(created["status"], "succeeded", "{created}");
    assert_eq!(created["output"]["paymentId"], "pi_3E2E");
    assert_eq!(created["output"]["status"], "requires_action");
    assert_eq!(created["output"]["clientSecret"], "pi_3E2E_secret_xyz");
    assert!(
        created["outputSummary"]["clientSecret"].is_null(),
        "the summary, which events carry, has no client secret: {created}"
    );
    assert_eq!(
        creates.lock().unwrap().as_slice(),
        [created["runId"].as_str().unwrap().to_owned()]
    );

    for path in [
        format!("/payment/api/integrations/runs/{run}"),
        format!("/payment/api/integrations/connections/{fake}"),
    ] {
        let r = platform.get(&path, &other).await;
        testkit::assert_problem(r, 404, "not_found").await;
    }
    platform.shutdown().await;
}
