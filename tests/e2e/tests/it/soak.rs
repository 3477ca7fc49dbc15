//! A soak of mixed load through the runner process: inbound GitHub deliveries and posted
//! events fanned out to a subscription, and sms and email runs with the Fake providers, at a
//! steady rate, while the runner's resident memory and the data folder's size are sampled.
//!
//! It asserts what must hold however long it runs (every event delivered, every run ended
//! `succeeded`) and prints the samples; it asserts nothing about memory or time, which are
//! measurements (docs/BENCHMARKS.md has the one-hour run). `SOAK_SECONDS` (20 by default, so
//! the test command runs it), `SOAK_SAMPLE_SECONDS` (5; 60 for the hour) and `SOAK_RATE`
//! (events per second of each kind; 20) set it.

use std::collections::HashSet;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::extract::State;
use bytes::Bytes;
use serde_json::{Value, json};

use crate::support::{RunnerProcess, send_github};

const TENANT: &str = "tenant-soak";
const GITHUB_SECRET: &str = "soak-github-secret-0123456789abcdef";

fn setting(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// The marks (`soak-…`) of the events the receiver got.
#[derive(Clone, Default)]
struct Received(Arc<Mutex<HashSet<String>>>);

async fn receive(State(r): State<Received>, body: Bytes) -> axum::http::StatusCode {
    if let Some(start) = body.windows(5).position(|w| w == b"soak-")
        && let Some(len) = body[start..].iter().position(|b| *b == b'"')
    {
        let mark = String::from_utf8_lossy(&body[start..start + len]).into_owned();
        r.0.lock().unwrap().insert(mark);
    }
    axum::http::StatusCode::NO_CONTENT
}

/// The size of every file under `dir`, in bytes.
fn folder_bytes(dir: &Path) -> u64 {
    std::fs::read_dir(dir)
        .into_iter()
        .flatten()
        .flatten()
        .map(|e| match e.metadata() {
            Ok(m) if m.is_dir() => folder_bytes(&e.path()),
            Ok(m) => m.len(),
            Err(_) => 0,
        })
        .sum()
}

/// One minute (or sample period) of the soak.
struct Sample {
    at: Duration,
    rss_kib: u64,
    data_bytes: u64,
    sent: usize,
}

impl Sample {
    /// The sample as a row of the table the soak prints.
    fn row(&self) -> String {
        format!(
            "| {} | {:.1} | {:.1} | {} |",
            self.at.as_secs(),
            self.rss_kib as f64 / 1024.0,
            self.data_bytes as f64 / 1_048_576.0,
            self.sent
        )
    }
}

/// A least-squares slope of `y` over `x`.
fn slope(points: &[(f64, f64)]) -> f64 {
    let n = points.len() as f64;
    let (sx, sy) = points
        .iter()
        .fold((0.0, 0.0), |(a, b), (x, y)| (a + x, b + y));
    let (mx, my) = (sx / n, sy / n);
    let (num, den) = points.iter().fold((0.0, 0.0), |(a, b), (x, y)| {
        (a + (x - mx) * (y - my), b + (x - mx) * (x - mx))
    });
    if den == 0.0 { 0.0 } else { num / den }
}

async fn created(r: reqwest::Response) -> String {
    assert_eq!(r.status(), 201);
    r.json::<Value>().await.unwrap()["id"]
        .as_str()
        .unwrap()
        .to_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_soak_of_mixed_load_delivers_everything() {
    let seconds = setting("SOAK_SECONDS", 20);
    let every = Duration::from_secs(setting("SOAK_SAMPLE_SECONDS", 5).max(1));
    let rate = setting("SOAK_RATE", 20).max(1);
    let dir = tempfile::tempdir().unwrap();
    let values = json!({"IsEncrypted": false, "Values": {
        "FUNCTIONS_WORKER_RUNTIME": "Custom",
        "PROBE_SCHEDULE": "0 0 0 1 1 *",
        "OUTBOUND_ALLOWED_HOSTS": "127.0.0.1",
    }});
    std::fs::write(dir.path().join("local.settings.json"), values.to_string()).unwrap();
    let received = Received::default();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let rx = listener.local_addr().unwrap();
    let app = axum::Router::new()
        .fallback(receive)
        .with_state(received.clone());
    tokio::spawn(async move { axum::serve(listener, app).await });

    let mut runner = RunnerProcess::start(dir.path());
    let base = runner.base();
    let token = auth::DevTokens::load_or_create(&dir.path().join("data"))
        .unwrap()
        .issue(TENANT, &[], chrono::Duration::hours(4), chrono::Utc::now())
        .unwrap();
    let client = reqwest::Client::new();
    let post = |path: &str, body: Value| {
        client
            .post(format!("{base}{path}"))
            .bearer_auth(&token)
            .json(&body)
            .send()
    };
    let r = post(
        "/webhook-gateway/api/webhooks/subscriptions",
        json!({"url": format!("http://{rx}/hook"), "eventTypes": ["order.*", "integration.webhook.received"]}),
    )
    .await
    .unwrap();
    assert_eq!(r.status(), 201);
    let source = created(
        post(
            "/webhook-gateway/api/webhooks/sources",
            json!({"provider": "github", "secret": GITHUB_SECRET}),
        )
        .await
        .unwrap(),
    )
    .await;
    let sms = created(
        post(
            "/sms/api/integrations/connections",
            json!({"providerKey": "fake", "displayName": "soak", "config": {},
                   "credential": {"kind": "apiKey", "apiKey": "sk-soak-sms"}}),
        )
        .await
        .unwrap(),
    )
    .await;
    let email = created(
        post(
            "/email/api/integrations/connections",
            json!({"providerKey": "fake-email", "displayName": "soak", "config": {},
                   "credential": {"kind": "apiKey", "apiKey": "sk-soak-email"}}),
        )
        .await
        .unwrap(),
    )
    .await;

    let started = Instant::now();
    let end = started + Duration::from_secs(seconds);
    let mut next_sample = started;
    let mut samples = Vec::new();
    let mut marks = Vec::new();
    let mut runs = Vec::new();
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    // A slow second delays the next rather than bunching the ones after it.
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut n = 0usize;
    while Instant::now() < end {
        tick.tick().await;
        if Instant::now() >= next_sample {
            let sample = Sample {
                at: started.elapsed(),
                rss_kib: runner.memory_kib("VmRSS"),
                data_bytes: folder_bytes(&dir.path().join("data")),
                sent: marks.len() + runs.len(),
            };
            // Printed as it is taken: a long soak shows its trend while it runs.
            eprintln!("soak sample: {}", sample.row());
            samples.push(sample);
            next_sample += every;
        }
        // One second's load: `rate` events of each kind, sent concurrently.
        let mut posts = Vec::new();
        for _ in 0..rate {
            n += 1;
            let (posted, inbound) = (format!("soak-p-{n}"), format!("soak-i-{n}"));
            let event = post(
                "/webhook-gateway/api/webhooks/deliveries",
                json!({"eventType": "order.created", "payload": {"mark": posted}}),
            );
            let run = |path: &'static str, input: Value, connection: &str| {
                post(
                    path,
                    json!({"connectionId": connection, "operation": "send", "input": input}),
                )
            };
            let texted = run(
                "/sms/api/integrations/runs",
                json!({"to": "+15555550100", "body": "soak"}),
                &sms,
            );
            let mailed = run(
                "/email/api/integrations/runs",
                json!({"to": ["soak@example.com"], "subject": "soak", "text": "soak"}),
                &email,
            );
            let (client, base, source) = (&client, &base, &source);
            posts.push(async move {
                let body = json!({"zen": "soak", "hook_id": n}).to_string();
                let webhook = send_github(client, base, source, GITHUB_SECRET, &inbound, &body);
                let (a, b, c, d) = tokio::join!(event, webhook, texted, mailed);
                (posted, inbound, a, b, c, d)
            });
        }
        for (posted, inbound, a, b, c, d) in futures::future::join_all(posts).await {
            assert_eq!(a.unwrap().status(), 202, "posting {posted}");
            assert_eq!(b.unwrap().status(), 202, "sending {inbound}");
            marks.extend([posted, inbound]);
            for (app, r) in [("sms", c.unwrap()), ("email", d.unwrap())] {
                assert_eq!(r.status(), 202, "a {app} run");
                let run: Value = r.json().await.unwrap();
                runs.push((app, run["runId"].as_str().unwrap().to_owned()));
            }
        }
    }
    let sent_in = started.elapsed();

    // Everything accepted is delivered, and every run ends.
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let missing = {
            let got = received.0.lock().unwrap();
            marks.iter().filter(|m| !got.contains(*m)).count()
        };
        if missing == 0 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "{missing} events never delivered"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    for (app, run) in &runs {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let v: Value = client
                .get(format!("{base}/{app}/api/integrations/runs/{run}"))
                .bearer_auth(&token)
                .send()
                .await
                .unwrap()
                .json()
                .await
                .unwrap();
            if v["status"] == "succeeded" {
                break;
            }
            assert!(
                !matches!(v["status"].as_str(), Some("failed")) && Instant::now() < deadline,
                "{app} run {run}: {v}"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
    runner.sample_peak();
    let peak = runner.peak_kib;
    runner.kill();

    eprintln!(
        "soak: {seconds} s at {rate}/s of each kind; {} events and {} runs sent in {:.0} s, all delivered and ended",
        marks.len(),
        runs.len(),
        sent_in.as_secs_f64()
    );
    eprintln!("| elapsed (s) | runner RSS (MiB) | data folder (MiB) | requests sent |");
    eprintln!("|---|---|---|---|");
    for s in &samples {
        eprintln!("{}", s.row());
    }
    // Growth after warm-up (the first third), per hour.
    let warm: Vec<&Sample> = samples.iter().skip(samples.len() / 3).collect();
    if warm.len() >= 2 {
        let per_hour = |f: &dyn Fn(&Sample) -> f64| {
            let points: Vec<(f64, f64)> = warm
                .iter()
                .map(|s| (s.at.as_secs_f64() / 3600.0, f(s)))
                .collect();
            slope(&points)
        };
        eprintln!(
            "soak: after warm-up, RSS grows {:.2} MiB/hour, the data folder {:.0} MiB/hour; peak RSS {:.1} MiB",
            per_hour(&|s| s.rss_kib as f64 / 1024.0),
            per_hour(&|s| s.data_bytes as f64 / 1_048_576.0),
            peak as f64 / 1024.0
        );
    }
}
