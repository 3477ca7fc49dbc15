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

/// Forwards each callback the Fake sends to `/relay/<name>` on to that name's source URL
/// (known only once the source, which names the connection, exists): the processor's
/// dashboard, where a webhook endpoint is registered after the account is connected.
#[derive(Clone, Default)]
struct Relay {
    targets: Arc<Mutex<std::collections::HashMap<String, String>>>,
    client: reqwest::Client,
}

async fn relay(
    axum::extract::State(relay): axum::extract::State<Relay>,
    axum::extract::Path(name): axum::extract::Path<String>,
    headers: axum::http::HeaderMap,
    body: bytes::Bytes,
) -> axum::http::StatusCode {
    let target = relay.targets.lock().unwrap().get(&name).cloned();
    let Some(target) = target else {
        return axum::http::StatusCode::NOT_FOUND;
    };
    let mut forward = relay.client.post(target).body(body);
    for name in ["stripe-signature", "content-type"] {
        if let Some(v) = headers.get(name) {
            forward = forward.header(name, v);
        }
    }
    match forward.send().await {
        Ok(r) => axum::http::StatusCode::from_u16(r.status().as_u16()).unwrap(),
        Err(_) => axum::http::StatusCode::BAD_GATEWAY,
    }
}

/// Payments whose processor calls back twice, out of order, never, or about a payment of
/// another amount end in the processor's true state, with exactly one `payment.succeeded`
/// each (none for the wrong amount, which is one failure instead); a refund publishes one
/// `payment.refunded`; the record keeps the history; another tenant gets 404.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn callbacks_are_reconciled_to_the_processors_truth() {
    let subscriber = FakeVendor::start(|_, _| Reply::text(204, "")).await;
    let relayed = Relay::default();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let relay_base = format!("http://{}", listener.local_addr().unwrap());
    let app = axum::Router::new()
        .route("/relay/{name}", axum::routing::post(relay))
        .with_state(relayed.clone());
    tokio::spawn(async move { axum::serve(listener, app).await });
    let platform = TestPlatform::start(
        &[
            registry::registration(),
            webhook_gateway::registration(),
            payment::registration(),
        ],
        json!({"OUTBOUND_ALLOWED_HOSTS": "localhost,127.0.0.1", "PAYMENT_SWEEP_AFTER_SECONDS": "1"}),
    )
    .await;
    let token = platform.token("tenant-rec", &[]);
    let other = platform.token("tenant-other", &[]);
    let r = platform
        .post(
            "/webhook-gateway/api/webhooks/subscriptions",
            &token,
            json!({"url": format!("{}/hooks", subscriber.base),
                   "eventTypes": ["payment.*", "integration.failure.recorded"]}),
        )
        .await;
    assert_eq!(r.status(), 201);

    // One connection per way of calling back; each its own stripe source.
    let mut payments = Vec::new();
    for (name, send, offset) in [
        ("twice", "twice", 0),
        ("reversed", "reversed", 0),
        ("never", "never", 0),
        ("wrong-amount", "once", 7),
    ] {
        let key = format!("fake-payment-key-{name}-0123456789");
        let connection = connect_app(
            &platform,
            "payment",
            &token,
            json!({"providerKey": "fake-payment", "displayName": name,
                   "config": {"settleAfterMs": 300, "amountOffsetMinor": offset,
                              "callbacks": {"url": format!("{relay_base}/relay/{name}"), "send": send}},
                   "credential": {"kind": "apiKey", "apiKey": key}}),
            &key,
        )
        .await;
        let r = platform
            .post(
                "/webhook-gateway/api/webhooks/sources",
                &token,
                json!({"provider": "stripe", "secret": key, "connectionId": connection}),
            )
            .await;
        assert_eq!(r.status(), 201, "{}", r.text().await.unwrap());
        let url = r.json::<Value>().await.unwrap()["url"]
            .as_str()
            .unwrap()
            .to_owned();
        relayed.targets.lock().unwrap().insert(name.to_owned(), url);
        let created = waited(
            &platform,
            &token,
            None,
            json!({"connectionId": connection, "operation": "createPayment",
                   "input": {"amount": 5000, "currency": "EUR"}}),
        )
        .await;
        assert_eq!(created["status"], "succeeded", "{created}");
        assert_eq!(created["output"]["status"], "processing", "{created}");
        payments.push((
            name,
            connection,
            created["output"]["paymentId"].as_str().unwrap().to_owned(),
            created["runId"].as_str().unwrap().to_owned(),
        ));
    }

    let events = || -> Vec<Value> { subscriber.requests().iter().map(|r| r.json()).collect() };
    let count = |events: &[Value], kind: &str, payment: &str| {
        events
            .iter()
            .filter(|e| e["type"] == kind && e["data"]["paymentId"] == payment)
            .count()
    };
    let record = |payment: String| {
        let platform = &platform;
        let token = &token;
        async move {
            platform
                .eventually(&format!("/payment/api/payments/{payment}"), token)
                .await
        }
    };
    // Every payment that succeeded is published; the wrong amount is a failure of its run.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    loop {
        let seen = events();
        let succeeded = payments[..3]
            .iter()
            .all(|(_, _, p, _)| count(&seen, "payment.succeeded", p) >= 1);
        let (_, _, _, wrong_run) = &payments[3];
        let failed = seen.iter().any(|e| {
            e["type"] == "integration.failure.recorded"
                && e["data"]["subject"]["id"] == wrong_run.as_str()
        });
        if succeeded && failed {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "not all reconciled: {seen:#?}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }

    // A refund: its run's look and the processor's callbacks (twice) publish one event.
    let (_, twice, twice_payment, _) = &payments[0];
    let refunded = waited(
        &platform,
        &token,
        None,
        json!({"connectionId": twice, "operation": "refundPayment",
               "input": {"paymentId": twice_payment, "amount": 1000}}),
    )
    .await;
    assert_eq!(refunded["status"], "succeeded", "{refunded}");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    while count(&events(), "payment.refunded", twice_payment) == 0 {
        assert!(std::time::Instant::now() < deadline, "no payment.refunded");
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    // Late duplicates would have come by now (callbacks are 50 ms late; sweeps 1 s apart).
    tokio::time::sleep(std::time::Duration::from_secs(3)).await;
    let seen = events();
    for (name, _, payment, _) in &payments[..3] {
        assert_eq!(
            count(&seen, "payment.succeeded", payment),
            1,
            "{name}: {seen:#?}"
        );
        let r = record(payment.clone()).await;
        assert_eq!(
            r["runId"],
            payments
                .iter()
                .find(|p| &p.2 == payment)
                .unwrap()
                .3
                .as_str()
        );
        assert!(
            r["history"]
                .as_array()
                .unwrap()
                .iter()
                .all(|c| c["applied"] == true),
            "{r}"
        );
        if *name != "twice" {
            assert_eq!(r["status"], "succeeded", "{name}: {r}");
        }
        if *name != "never" {
            // The processor's callback, not the sweep, told the platform to look.
            assert_eq!(r["history"][0]["reason"], "callback", "{name}: {r}");
            assert!(r["history"][0]["vendorEventId"].is_string(), "{r}");
        }
    }
    assert_eq!(
        count(&seen, "payment.refunded", twice_payment),
        1,
        "{seen:#?}"
    );
    let r = record(twice_payment.clone()).await;
    assert_eq!(r["status"], "partially_refunded", "{r}");
    assert_eq!(r["amountRefunded"], 1000);
    // Nobody called back about the third: the sweep found it.
    let never = record(payments[2].2.clone()).await;
    assert_eq!(never["history"][0]["reason"], "sweep", "{never}");

    // The wrong amount: never applied, one failure, no success.
    let (_, _, wrong, wrong_run) = &payments[3];
    assert_eq!(count(&seen, "payment.succeeded", wrong), 0);
    let failures: Vec<&Value> = seen
        .iter()
        .filter(|e| {
            e["type"] == "integration.failure.recorded"
                && e["data"]["subject"]["id"] == wrong_run.as_str()
        })
        .collect();
    assert_eq!(failures.len(), 1, "{failures:#?}");
    let r = record(wrong.clone()).await;
    assert_eq!(r["status"], "processing", "{r}");
    assert_eq!(r["mismatch"], true);
    assert_eq!(r["amount"], 5000);

    let r = platform
        .get(&format!("/payment/api/payments/{twice_payment}"), &other)
        .await;
    testkit::assert_problem(r, 404, "not_found").await;
    let r = platform
        .get("/payment/api/payments/pay_unknown", &token)
        .await;
    testkit::assert_problem(r, 404, "not_found").await;
    platform.shutdown().await;
}

/// The second processor end to end: a BILL connection (signed in once, the session reused)
/// against a fake BILL over HTTP; a bill paid (`payBill`) is recorded `processing`; BILL's
/// signed `payment.updated` notification to a `bill` source makes the app fetch the payment
/// (now `CLEARED`) and publish one `payment.succeeded`; a notification with a bad
/// signature is refused.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bill_payments_are_reconciled_from_bills_notifications() {
    const ORG: &str = "00801E2EORG";
    const DEV_KEY: &str = "01E2EDEVKEY0123456789";
    let status = Arc::new(Mutex::new("SCHEDULED"));
    let logins = Arc::new(Mutex::new(0u32));
    let (seen_status, seen_logins) = (status.clone(), logins.clone());
    let bill = FakeVendor::start(move |r, _| {
        let body = r.json();
        match (r.method.as_str(), r.path.as_str()) {
            ("POST", "/v3/login") if body["devKey"] == DEV_KEY && body["organizationId"] == ORG => {
                *seen_logins.lock().unwrap() += 1;
                Reply::json(
                    200,
                    json!({"sessionId": "sess-e2e", "organizationId": ORG, "userId": "006"}),
                )
            }
            ("POST", "/v3/login") => Reply::json(
                401,
                json!([{"code": "BDC_1101", "severity": "ERROR", "category": "DOWNSTREAM",
                        "message": "Incorrect userName or password"}]),
            ),
            _ if r.header("sessionid") != Some("sess-e2e")
                || r.header("devkey") != Some(DEV_KEY) =>
            {
                Reply::json(
                    401,
                    json!([{"code": "BDC_1109", "severity": "ERROR", "category": "DOWNSTREAM",
                            "message": "Session is invalid. Please log in."}]),
                )
            }
            ("POST", "/v3/payments") => Reply::json(
                200,
                json!({"id": "stp01E2E", "billId": body["billId"], "amount": body["amount"],
                       "status": "SCHEDULED", "singleStatus": "SCHEDULED"}),
            ),
            ("GET", "/v3/payments/stp01E2E") => Reply::json(
                200,
                json!({"id": "stp01E2E", "amount": 42.0, "status": "SCHEDULED",
                       "singleStatus": *seen_status.lock().unwrap()}),
            ),
            _ => Reply::json(404, json!([{"code": "BDC_1000", "message": "Not found"}])),
        }
    })
    .await;
    let subscriber = FakeVendor::start(|_, _| Reply::text(204, "")).await;
    let platform = TestPlatform::start(
        &[
            registry::registration(),
            webhook_gateway::registration(),
            payment::registration(),
        ],
        json!({"OUTBOUND_ALLOWED_HOSTS": "localhost,127.0.0.1", "PAYMENT_SWEEP_AFTER_SECONDS": "86400"}),
    )
    .await;
    let token = platform.token("tenant-bill", &[]);
    let r = platform
        .post(
            "/webhook-gateway/api/webhooks/subscriptions",
            &token,
            json!({"url": format!("{}/hooks", subscriber.base), "eventTypes": ["payment.*"]}),
        )
        .await;
    assert_eq!(r.status(), 201);
    let password = "bill-e2e-password-0123";
    let connection = connect_app(
        &platform,
        "payment",
        &token,
        json!({"providerKey": "bill", "displayName": "ap",
               "config": {"baseUrl": bill.base, "organizationId": ORG,
                          "fundingAccount": {"type": "BANK_ACCOUNT", "id": "bac01E2E"}},
               "credential": {"kind": "basic", "username": "ap@example.com",
                              "password": password, "apiKey": DEV_KEY}}),
        password,
    )
    .await;
    let security_key = "bill-subscription-security-key-e2e";
    let r = platform
        .post(
            "/webhook-gateway/api/webhooks/sources",
            &token,
            json!({"provider": "bill", "secret": security_key, "connectionId": connection}),
        )
        .await;
    assert_eq!(r.status(), 201, "{}", r.text().await.unwrap());
    let source_url = r.json::<Value>().await.unwrap()["url"]
        .as_str()
        .unwrap()
        .to_owned();
    let paid = waited(
        &platform,
        &token,
        None,
        json!({"connectionId": connection, "operation": "payBill",
               "input": {"billId": "00n01E2E", "amount": 4200, "currency": "usd"}}),
    )
    .await;
    assert_eq!(paid["status"], "succeeded", "{paid}");
    assert_eq!(paid["output"]["paymentId"], "stp01E2E");
    let record = platform
        .eventually("/payment/api/payments/stp01E2E", &token)
        .await;
    assert_eq!(record["status"], "processing", "{record}");
    assert_eq!(record["processor"], "bill");
    assert_eq!(record["amount"], 4200);

    // BILL clears the payment and says so.
    *status.lock().unwrap() = "CLEARED";
    let notify = |signature: String| {
        let body = json!({"metadata": {"eventId": "evt-e2e-1", "subscriptionId": "sub1",
                                       "organizationId": ORG, "eventType": "payment.updated", "version": "1"},
                          "payment": {"id": "stp01E2E", "status": "CLEARED"}})
        .to_string();
        let signature = if signature.is_empty() {
            use base64::Engine as _;
            use hmac::Mac as _;
            let mut mac =
                hmac::Hmac::<sha2::Sha256>::new_from_slice(security_key.as_bytes()).unwrap();
            mac.update(body.as_bytes());
            base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes())
        } else {
            signature
        };
        platform
            .client
            .post(&source_url)
            .header("x-bill-sha-signature", signature)
            .header("content-type", "application/json")
            .body(body)
            .send()
    };
    assert_eq!(
        notify("bm90IHRoZSBzaWduYXR1cmU=".into())
            .await
            .unwrap()
            .status(),
        401
    );
    for _ in 0..2 {
        assert_eq!(notify(String::new()).await.unwrap().status(), 202);
    }
    let event = crate::support::delivered(&subscriber, "payment.succeeded").await;
    assert_eq!(event["data"]["paymentId"], "stp01E2E", "{event}");
    assert_eq!(event["data"]["reason"], "callback");
    assert_eq!(event["data"]["vendorEventId"], "evt-e2e-1");
    tokio::time::sleep(std::time::Duration::from_secs(1)).await;
    let succeeded = subscriber
        .requests()
        .iter()
        .filter(|r| r.json()["type"] == "payment.succeeded")
        .count();
    assert_eq!(succeeded, 1, "one event for a notification sent twice");
    let record = platform
        .eventually("/payment/api/payments/stp01E2E", &token)
        .await;
    assert_eq!(record["status"], "succeeded", "{record}");
    // One sign-in served the connection test, the payment and the reconciliation.
    assert_eq!(*logins.lock().unwrap(), 1);
    platform.shutdown().await;
}
