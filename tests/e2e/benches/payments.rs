//! Load harness for reconciled payment callbacks: `cargo bench -p e2e --bench payments`.
//!
//! The registry, the webhook gateway and the payment app run in this process through the
//! runner (release build, embedded default). N payments are created through the
//! `fake-payment` provider (each `processing` for a millisecond, so the record the run writes
//! says `processing`); then N signed Stripe-shaped `payment_intent.succeeded` callbacks are
//! posted to the connection's `stripe` source, 16 in flight. Each is verified and stored by
//! the gateway, routed to the payment app, and reconciled: the payment fetched from the
//! processor, the record moved to `succeeded`, `payment.succeeded` published. Measured: the
//! callbacks' accept latency (→ 202) and rate, and callbacks reconciled per second (first
//! callback sent → last record `succeeded`). `BENCH_PAYMENTS` sets N (2,000).

use std::time::{Duration, Instant};

use futures::StreamExt as _;
use serde_json::{Value, json};

mod support;

use support::percentile;

const IN_FLIGHT: usize = 16;
const API_KEY: &str = "fake-payment-bench-key-0123456789";

/// The runner binary's allocator, so the harness measures what ships.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() {
    support::block_on(run());
}

/// Runs `count` requests made by `make`, `IN_FLIGHT` at a time; their latencies.
async fn in_flight<F, Fut>(count: usize, make: F) -> Vec<Duration>
where
    F: Fn(usize) -> Fut,
    Fut: std::future::Future<Output = Duration>,
{
    let mut pending = futures::stream::FuturesUnordered::new();
    let mut latencies = Vec::with_capacity(count);
    let mut next = 0;
    while next < count.min(IN_FLIGHT) {
        pending.push(make(next));
        next += 1;
    }
    while let Some(latency) = pending.next().await {
        latencies.push(latency);
        if next < count {
            pending.push(make(next));
            next += 1;
        }
    }
    latencies
}

async fn succeeded(bench: &support::Bench) -> usize {
    let mut count = 0;
    let mut continuation = None;
    loop {
        let page = bench
            .runner
            .context
            .documents
            .query(
                payment::SLUG,
                &ports::Query::partition("bench")
                    .filter("docType", "payment")
                    .filter("status", "succeeded")
                    .limit(1000)
                    .after(continuation),
            )
            .await
            .expect("query");
        count += page.documents.len();
        continuation = page.continuation;
        if continuation.is_none() {
            return count;
        }
    }
}

async fn run() {
    let n: usize = std::env::var("BENCH_PAYMENTS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(2000);
    let bench = support::start(
        &[
            registry::registration(),
            webhook_gateway::registration(),
            payment::registration(),
        ],
        // No sweep within the run: every change comes from a callback.
        json!({"OUTBOUND_ALLOWED_HOSTS": "127.0.0.1", "PAYMENT_SWEEP_AFTER_SECONDS": "86400"}),
    )
    .await;
    let (base, token) = (bench.base.clone(), bench.token.clone());
    let client = reqwest::Client::new();
    let post = |path: &str, body: Value| {
        client
            .post(format!("{base}{path}"))
            .bearer_auth(&token)
            .json(&body)
            .send()
    };
    let connection: Value = post(
        "/payment/api/integrations/connections",
        json!({"providerKey": "fake-payment", "displayName": "bench",
               "config": {"settleAfterMs": 1},
               "credential": {"kind": "apiKey", "apiKey": API_KEY}}),
    )
    .await
    .expect("connection")
    .json()
    .await
    .expect("json");
    let connection = connection["id"].as_str().expect("id").to_owned();
    let source: Value = post(
        "/webhook-gateway/api/webhooks/sources",
        json!({"provider": "stripe", "secret": API_KEY, "connectionId": connection}),
    )
    .await
    .expect("source")
    .json()
    .await
    .expect("json");
    let source_url = source["url"].as_str().expect("url").to_owned();

    // The payments, each `processing` in its record.
    let payments = std::sync::Mutex::new(Vec::with_capacity(n));
    let started = Instant::now();
    in_flight(n, |i| {
        let (client, base, token, connection) = (&client, &base, &token, &connection);
        let payments = &payments;
        async move {
            let t = Instant::now();
            let run: Value = client
                .post(format!("{base}/payment/api/integrations/runs"))
                .bearer_auth(token)
                .header("prefer", "wait=30")
                .header("idempotency-key", format!("pay-{i}"))
                .json(
                    &json!({"connectionId": connection, "operation": "createPayment",
                              "input": {"amount": 1000 + i as u64, "currency": "usd"}}),
                )
                .send()
                .await
                .expect("answered")
                .json()
                .await
                .expect("json");
            assert_eq!(run["output"]["status"], "processing", "{run}");
            payments
                .lock()
                .unwrap()
                .push(run["output"]["paymentId"].as_str().expect("id").to_owned());
            t.elapsed()
        }
    })
    .await;
    let created_in = started.elapsed();
    let payments = payments.into_inner().unwrap();
    tokio::time::sleep(Duration::from_millis(50)).await;

    // The callbacks.
    let started = Instant::now();
    let mut latencies = in_flight(n, |i| {
        let (client, url, payment) = (&client, &source_url, &payments[i]);
        async move {
            let body = json!({"id": format!("evt_bench_{i}"), "object": "event",
                              "type": "payment_intent.succeeded",
                              "data": {"object": {"id": payment, "object": "payment_intent"}}})
            .to_string();
            let t = chrono::Utc::now().timestamp();
            let signature = payment::providers::fake::stripe_signature(API_KEY, t, body.as_bytes());
            let sent = Instant::now();
            let r = client
                .post(url)
                .header("stripe-signature", signature)
                .header("content-type", "application/json")
                .body(body)
                .send()
                .await
                .expect("answered");
            assert_eq!(r.status(), 202);
            sent.elapsed()
        }
    })
    .await;
    let accepted_in = started.elapsed();
    let deadline = Instant::now() + Duration::from_secs(600);
    let mut done = succeeded(&bench).await;
    while done < n {
        assert!(
            Instant::now() < deadline,
            "{done} of {n} reconciled in 10 minutes"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
        done = succeeded(&bench).await;
    }
    let reconciled_in = started.elapsed();
    println!(
        "payments created (Prefer: wait, 16 in flight): {n} in {created_in:.2?} ({:.0}/s)",
        n as f64 / created_in.as_secs_f64()
    );
    println!(
        "callbacks accepted (→ 202): {:.0}/s; latency p50 {:.2?}, p99 {:.2?}",
        n as f64 / accepted_in.as_secs_f64(),
        percentile(&mut latencies, 0.5),
        percentile(&mut latencies, 0.99)
    );
    println!(
        "callbacks reconciled (first sent → last record succeeded): {n} in {reconciled_in:.2?}: {:.0}/s",
        n as f64 / reconciled_in.as_secs_f64()
    );
    bench.runner.shutdown().await;
}
