//! Load harness for vendor-app runs: `cargo bench -p e2e --bench runs`.
//!
//! The registry and the sms app run in this process through the runner (release build), on
//! the embedded default, with the Fake provider (in-process, through the resilience
//! pipeline). N runs are requested over loopback (16 requests in flight); the harness
//! measures the request latency (`POST /runs` → 202, durable) and the runs completed per
//! second (first 202 → last run `succeeded`). Then, one request at a time, the latency of a
//! waited run (`Prefer: wait`, answered 200 once the run has succeeded) beside a plain
//! `POST /runs` → 202, and with a Fake that takes 20 ms, against the vendor call itself.
//! Bounded counts, loopback only.

use std::time::{Duration, Instant};

use serde_json::{Value, json};

mod support;

use support::percentile;

const RUNS: usize = 2000;
const IN_FLIGHT: usize = 16;
/// Sequential requests per latency measure.
const SEQUENTIAL: usize = 300;

/// The runner binary's allocator, so the harness measures what ships.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() {
    support::block_on(run());
}

async fn run() {
    let bench = support::start(&[registry::registration(), sms::registration()], json!({})).await;
    let (base, token) = (bench.base.clone(), bench.token.clone());
    let client = reqwest::Client::new();
    let conn: Value = client
        .post(format!("{base}/sms/api/integrations/connections"))
        .bearer_auth(&token)
        .json(&json!({"providerKey": "fake", "displayName": "bench", "credential": {"kind": "apiKey", "apiKey": "sk-bench"}}))
        .send()
        .await
        .expect("connection")
        .json()
        .await
        .expect("json");
    let connection = conn["id"].as_str().expect("id").to_owned();
    let started = Instant::now();
    let mut latencies = Vec::with_capacity(RUNS);
    let mut ids = Vec::with_capacity(RUNS);
    let mut pending = futures::stream::FuturesUnordered::new();
    use futures::StreamExt as _;
    let request = |i: usize| {
        let client = client.clone();
        let url = format!("{base}/sms/api/integrations/runs");
        let token = token.clone();
        let connection = connection.clone();
        async move {
            let t = Instant::now();
            let r = client
                .post(url)
                .bearer_auth(token)
                .header("Idempotency-Key", format!("bench-{i}"))
                .json(&json!({"connectionId": connection, "operation": "send", "input": {"to": "+972501234567", "body": "bench"}}))
                .send()
                .await
                .expect("answered");
            assert_eq!(r.status(), 202);
            let v: Value = r.json().await.expect("json");
            (t.elapsed(), v["runId"].as_str().expect("run id").to_owned())
        }
    };
    let mut next = 0;
    while next < RUNS.min(IN_FLIGHT) {
        pending.push(request(next));
        next += 1;
    }
    while let Some((latency, id)) = pending.next().await {
        latencies.push(latency);
        ids.push(id);
        if next < RUNS {
            pending.push(request(next));
            next += 1;
        }
    }
    let accepted = started.elapsed();
    // Completion: poll the last runs until every one has succeeded.
    for id in ids.iter().rev() {
        loop {
            let v: Value = client
                .get(format!("{base}/sms/api/integrations/runs/{id}"))
                .bearer_auth(&token)
                .send()
                .await
                .expect("answered")
                .json()
                .await
                .expect("json");
            match v["status"].as_str() {
                Some("succeeded") => break,
                Some("failed") | Some("dead_lettered") => panic!("run {id} ended {v}"),
                _ => tokio::time::sleep(Duration::from_millis(5)).await,
            }
        }
    }
    let completed = started.elapsed();
    let waited = sequential(&client, &base, &token, &connection, true).await;
    let plain = sequential(&client, &base, &token, &connection, false).await;
    let slow: Value = client
        .post(format!("{base}/sms/api/integrations/connections"))
        .bearer_auth(&token)
        .json(
            &json!({"providerKey": "fake", "displayName": "bench-20ms", "config": {"latencyMs": 20},
                      "credential": {"kind": "apiKey", "apiKey": "sk-bench"}}),
        )
        .send()
        .await
        .expect("connection")
        .json()
        .await
        .expect("json");
    let slow_waited = sequential(
        &client,
        &base,
        &token,
        slow["id"].as_str().expect("id"),
        true,
    )
    .await;
    println!("| measure | value |\n|---|---|");
    println!("| runs | {RUNS} ({IN_FLIGHT} requests in flight) |");
    println!(
        "| `POST /runs` → 202 p50 / p99 | {:.2} ms / {:.2} ms |",
        percentile(&mut latencies, 0.5).as_secs_f64() * 1e3,
        percentile(&mut latencies, 0.99).as_secs_f64() * 1e3
    );
    println!(
        "| accepted per second | {:.0} |",
        RUNS as f64 / accepted.as_secs_f64()
    );
    println!(
        "| completed runs per second (first request → last `succeeded`) | {:.0} |",
        RUNS as f64 / completed.as_secs_f64()
    );
    let (w50, w99) = waited;
    let (p50, p99) = plain;
    let (s50, s99) = slow_waited;
    println!(
        "| waited run (`Prefer: wait`, 200 when succeeded), one at a time, p50 / p99 | {:.2} ms / {:.2} ms |",
        w50 * 1e3,
        w99 * 1e3
    );
    println!(
        "| plain `POST /runs` → 202, one at a time, p50 / p99 | {:.2} ms / {:.2} ms |",
        p50 * 1e3,
        p99 * 1e3
    );
    println!(
        "| waited run with a 20 ms vendor call, p50 / p99 (added: p50 − 20 ms) | {:.2} ms / {:.2} ms ({:.2} ms) |",
        s50 * 1e3,
        s99 * 1e3,
        (s50 - 0.020) * 1e3
    );
    bench.runner.shutdown().await;
}

/// `SEQUENTIAL` runs one after another; the p50 and p99 of their request latency in seconds.
async fn sequential(
    client: &reqwest::Client,
    base: &str,
    token: &str,
    connection: &str,
    wait: bool,
) -> (f64, f64) {
    let mut samples = Vec::with_capacity(SEQUENTIAL);
    for _ in 0..SEQUENTIAL {
        let mut rb = client
            .post(format!("{base}/sms/api/integrations/runs"))
            .bearer_auth(token)
            .json(&json!({"connectionId": connection, "operation": "send", "input": {"to": "+972501234567", "body": "bench"}}));
        if wait {
            rb = rb.header("Prefer", "wait=10");
        }
        let t = Instant::now();
        let r = rb.send().await.expect("answered");
        let status = r.status().as_u16();
        let body: Value = r.json().await.expect("json");
        samples.push(t.elapsed());
        if wait {
            assert_eq!(status, 200, "{body}");
            assert_eq!(body["status"], "succeeded");
        } else {
            assert_eq!(status, 202);
        }
    }
    (
        percentile(&mut samples, 0.5).as_secs_f64(),
        percentile(&mut samples, 0.99).as_secs_f64(),
    )
}
