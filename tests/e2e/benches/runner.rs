//! Load harness for the numbers in docs/BENCHMARKS.md that are not micro-benchmarks:
//! the runner's added latency on a forwarded HTTP request, broker throughput
//! (enqueue → delivered → completed, durable commits), and document store point latency.
//!
//! `cargo bench -p e2e --bench runner` (prints a Markdown table). Loops are bounded and only
//! talk to 127.0.0.1.

use std::sync::Arc;
use std::time::{Duration, Instant};

use embedded::{Durability, SqliteBroker, SqliteDocumentStore};
use integration_platform::{RunArgs, Runner};
use ports::{
    BrokerReceiver, BusSender, DocumentStore, DocumentStoreExt, Entity, EntitySpec,
    OutgoingMessage, Topology,
};
use serde_json::json;

mod support;

use support::percentile;

fn us(d: Duration) -> String {
    format!("{:.1} µs", d.as_secs_f64() * 1e6)
}

async fn time_gets(client: &reqwest::Client, url: &str, n: usize) -> Vec<Duration> {
    let mut out = Vec::with_capacity(n);
    for _ in 0..n {
        let t = Instant::now();
        let r = client.get(url).send().await.unwrap();
        let _ = r.bytes().await.unwrap();
        out.push(t.elapsed());
    }
    out
}

async fn runner_latency(rows: &mut Vec<String>) {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("local.settings.json"),
        json!({"Values": {"PROBE_SCHEDULE": "0 0 0 1 1 *"}}).to_string(),
    )
    .unwrap();
    let args = RunArgs {
        listen: Some("127.0.0.1:0".parse().unwrap()),
        data_dir: dir.path().join("data"),
        settings: Some(dir.path().join("local.settings.json")),
        lock_seconds: 60,
        function_timeout: 60,
        max_concurrent_calls: None,
    };
    let runner = Runner::start(&[e2e::registration()], args).await.unwrap();
    // The same app served directly as its own custom handler, for the baseline.
    let registration = e2e::registration();
    let app = (registration.build)(&registration.context_for(&runner.context))
        .expect("the probe's settings");
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let direct = listener.local_addr().unwrap();
    tokio::spawn(functions_runtime::serve_on(
        listener,
        app,
        std::future::pending(),
    ));
    let client = reqwest::Client::new();
    let via_runner = format!("http://{}/probe/api/ticks", runner.addr);
    let via_handler = format!("http://{direct}/api/ticks");
    time_gets(&client, &via_runner, 300).await;
    time_gets(&client, &via_handler, 300).await;
    let n = 3000;
    let mut med_r = Vec::new();
    let mut med_d = Vec::new();
    // Interleave rounds so machine noise hits both alike.
    for _ in 0..5 {
        let mut r = time_gets(&client, &via_runner, n / 5).await;
        let mut d = time_gets(&client, &via_handler, n / 5).await;
        med_r.push((percentile(&mut r, 0.5), percentile(&mut r, 0.9)));
        med_d.push((percentile(&mut d, 0.5), percentile(&mut d, 0.9)));
    }
    let mut r50: Vec<_> = med_r.iter().map(|x| x.0).collect();
    let mut d50: Vec<_> = med_d.iter().map(|x| x.0).collect();
    let mut r90: Vec<_> = med_r.iter().map(|x| x.1).collect();
    let mut d90: Vec<_> = med_d.iter().map(|x| x.1).collect();
    let (r50, d50, r90, d90) = (
        percentile(&mut r50, 0.5),
        percentile(&mut d50, 0.5),
        percentile(&mut r90, 0.5),
        percentile(&mut d90, 0.5),
    );
    rows.push(format!("| forwarded GET through the runner, p50 / p90 | {} / {} | keep-alive client, {n} requests |", us(r50), us(r90)));
    rows.push(format!(
        "| same GET straight to the app's handler, p50 / p90 | {} / {} | baseline |",
        us(d50),
        us(d90)
    ));
    rows.push(format!(
        "| **runner's added latency**, p50 / p90 | {} / {} | difference of medians |",
        us(r50.saturating_sub(d50)),
        us(r90.saturating_sub(d90))
    ));
    runner.shutdown().await;
}

async fn broker_throughput(rows: &mut Vec<String>, durability: Durability) {
    let dir = tempfile::tempdir().unwrap();
    let broker = Arc::new(SqliteBroker::open(&dir.path().join("broker.db"), durability).unwrap());
    broker
        .ensure_topology(&Topology::default().queue("bench", EntitySpec::default()))
        .await
        .unwrap();
    let q = Entity::queue("bench");
    let total = 20_000usize;
    let body = vec![b'x'; 1024];
    let start = Instant::now();
    let sender = {
        let broker = broker.clone();
        tokio::spawn(async move {
            for chunk in 0..total / 100 {
                let batch = (0..100)
                    .map(|i| OutgoingMessage::new(format!("m-{chunk}-{i}"), body.clone()))
                    .collect();
                broker.send("bench", batch).await.unwrap();
            }
        })
    };
    let mut consumers = Vec::new();
    for _ in 0..2 {
        let (broker, q) = (broker.clone(), q.clone());
        consumers.push(tokio::spawn(async move {
            let mut done = 0usize;
            let idle_deadline = Duration::from_secs(5);
            let mut idle = Instant::now();
            loop {
                let got = broker.receive(&q, 100).await.unwrap();
                if got.is_empty() {
                    if idle.elapsed() > idle_deadline {
                        break;
                    }
                    broker
                        .wait_for_messages(&q, Duration::from_millis(50))
                        .await;
                    continue;
                }
                idle = Instant::now();
                for m in got {
                    broker.complete(&q, &m.lock_token).await.unwrap();
                    done += 1;
                }
            }
            done
        }));
    }
    sender.await.unwrap();
    // Wait until everything is completed, then stop measuring.
    while broker.active_count(&q).await.unwrap() > 0 {
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    let elapsed = start.elapsed();
    let rate = total as f64 / elapsed.as_secs_f64();
    rows.push(format!(
        "| broker enqueue → delivered → completed, synchronous={durability:?} | {rate:.0} msg/s | {total} × 1 KiB, batches of 100 sent, 2 receivers, one complete per message |",
    ));
    for c in consumers {
        c.abort();
    }
}

async fn document_latency(rows: &mut Vec<String>, durability: Durability) {
    let dir = tempfile::tempdir().unwrap();
    let store = SqliteDocumentStore::open(&dir.path().join("documents.db"), durability).unwrap();
    let n = 5000;
    let mut writes = Vec::with_capacity(n);
    let mut reads = Vec::with_capacity(n);
    for i in 0..n {
        let body = json!({"id": i, "name": "connection", "status": "established", "config": {"region": "westeurope", "retries": 3}});
        let t = Instant::now();
        store
            .upsert("bench", "tenant-1", &format!("doc-{i}"), body)
            .await
            .unwrap();
        writes.push(t.elapsed());
        let t = Instant::now();
        store
            .read("bench", "tenant-1", &format!("doc-{i}"))
            .await
            .unwrap()
            .unwrap();
        reads.push(t.elapsed());
    }
    rows.push(format!(
        "| document point write (upsert), synchronous={durability:?}, p50 / p99 | {} / {} | {n} writes of a ~120-byte document |",
        us(percentile(&mut writes, 0.5)),
        us(percentile(&mut writes, 0.99))
    ));
    rows.push(format!(
        "| document point read, synchronous={durability:?}, p50 / p99 | {} / {} | {n} reads |",
        us(percentile(&mut reads, 0.5)),
        us(percentile(&mut reads, 0.99))
    ));
}

fn main() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let mut rows = vec![
            "| measurement | result | notes |".to_owned(),
            "|---|---|---|".to_owned(),
        ];
        runner_latency(&mut rows).await;
        broker_throughput(&mut rows, Durability::Normal).await;
        broker_throughput(&mut rows, Durability::Full).await;
        document_latency(&mut rows, Durability::Normal).await;
        document_latency(&mut rows, Durability::Full).await;
        for r in rows {
            #[allow(clippy::print_stdout)]
            {
                println!("{r}");
            }
        }
    });
}
