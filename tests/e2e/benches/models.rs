//! Load harness for the model gateway: `cargo bench -p e2e --bench models`.
//!
//! The registry and the openai app run in this process through the runner (release build,
//! embedded default), with one `openai` connection to the fake OpenAI of `model-fakes` over
//! loopback HTTP (no latency of its own). The same requests go to the fake directly and
//! through the gateway, in interleaved rounds so the machine's noise hits both alike; the
//! gateway's added latency is the difference of the medians (and of the 99th
//! percentiles). Measured: non-streaming chat completions at concurrency 1 and 50, the
//! time to the first chunk of a stream at concurrency 1, and requests per second. Every
//! gateway call also records its run (after the answer), which is part of what is
//! measured. The same harness runs against LiteLLM's proxy in front of the same fake (PyPI
//! `litellm[proxy]`, installed by this harness into `.tools/litellm` on first use; never by
//! the tests), for a side-by-side ratio; `BENCH_SKIP_LITELLM=1` leaves it out. Bounded
//! counts, loopback only.

use std::time::{Duration, Instant};

use futures::StreamExt as _;
use serde_json::{Value, json};

#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

mod support;

use support::percentile;

const ROUNDS: usize = 5;
const PER_ROUND: usize = 400;

fn ms(d: Duration) -> String {
    format!("{:.3} ms", d.as_secs_f64() * 1e3)
}

fn main() {
    support::block_on(run());
}

/// One target: where a chat completion is posted, with which key.
#[derive(Clone)]
struct Target {
    url: String,
    key: String,
}

impl Target {
    /// One request to its end (whole answer) or to its first chunk (`stream`).
    async fn once(&self, client: &reqwest::Client, stream: bool) -> Duration {
        let mut body = json!({"model": "gpt-4o-mini", "max_tokens": 16,
                              "messages": [{"role": "user", "content": "one two three four five"}]});
        if stream {
            body["stream"] = json!(true);
        }
        let t = Instant::now();
        let mut r = client
            .post(&self.url)
            .bearer_auth(&self.key)
            .json(&body)
            .send()
            .await
            .expect("the request is answered");
        assert_eq!(r.status(), 200, "{}", self.url);
        if stream {
            let first = r.chunk().await.expect("a chunk").expect("not empty");
            let took = t.elapsed();
            assert!(first.starts_with(b"data: "), "{first:?}");
            while r.chunk().await.expect("the stream").is_some() {}
            took
        } else {
            let _ = r.bytes().await.expect("the body");
            t.elapsed()
        }
    }

    /// `n` requests, `concurrency` at a time: each one's latency, and the wall time.
    async fn load(
        &self,
        client: &reqwest::Client,
        n: usize,
        concurrency: usize,
        stream: bool,
    ) -> (Vec<Duration>, Duration) {
        let t = Instant::now();
        let samples = futures::stream::iter(0..n)
            .map(|_| self.once(client, stream))
            .buffer_unordered(concurrency)
            .collect::<Vec<_>>()
            .await;
        (samples, t.elapsed())
    }
}

/// A target's medians of the per-round p50 and p99, and of its requests per second.
#[derive(Debug, Clone, Copy)]
struct Measured {
    p50: Duration,
    p99: Duration,
    per_sec: f64,
}

/// Every target under the same load, in interleaved rounds (so the machine's noise hits
/// all alike), after a warm-up of each.
async fn compare(
    client: &reqwest::Client,
    targets: &[&Target],
    concurrency: usize,
    stream: bool,
) -> Vec<Measured> {
    for t in targets {
        t.load(client, 200, concurrency, stream).await;
    }
    let mut rounds: Vec<(Vec<Duration>, Vec<Duration>, Vec<f64>)> =
        vec![(vec![], vec![], vec![]); targets.len()];
    for _ in 0..ROUNDS {
        for (t, r) in targets.iter().zip(rounds.iter_mut()) {
            let (mut samples, wall) = t.load(client, PER_ROUND, concurrency, stream).await;
            r.0.push(percentile(&mut samples, 0.5));
            r.1.push(percentile(&mut samples, 0.99));
            r.2.push(PER_ROUND as f64 / wall.as_secs_f64());
        }
    }
    rounds
        .into_iter()
        .map(|(mut p50, mut p99, mut rates)| {
            rates.sort_by(f64::total_cmp);
            Measured {
                p50: percentile(&mut p50, 0.5),
                p99: percentile(&mut p99, 0.5),
                per_sec: rates[rates.len() / 2],
            }
        })
        .collect()
}

/// LiteLLM's proxy (`litellm[proxy]` from PyPI, installed once into `.tools/litellm`) in
/// front of the same fake, one worker, with a master key (it refuses to start without one)
/// and no database. `BENCH_SKIP_LITELLM=1` leaves it out.
async fn litellm(
    fake: &model_fakes::FakeOpenAi,
    dir: &std::path::Path,
) -> anyhow::Result<(standins::process::ChildProcess, Target)> {
    const MASTER_KEY: &str = "sk-litellm-bench-0123456789abcdef0123456789abcdef";
    let venv = tokio::task::spawn_blocking(|| {
        standins::python::ensure_venv("litellm", &[standins::python::LITELLM_PROXY])
    })
    .await??;
    let config = dir.join("litellm.yaml");
    std::fs::write(
        &config,
        format!(
            "model_list:\n  - model_name: gpt-4o-mini\n    litellm_params:\n      model: openai/gpt-4o-mini\n      api_base: {}\n      api_key: {}\nlitellm_settings:\n  drop_params: true\ngeneral_settings:\n  master_key: {MASTER_KEY}\n  disable_spend_logs: true\n",
            fake.base_url,
            fake.api_key()
        ),
    )?;
    let process =
        standins::process::ChildProcess::spawn("litellm", dir, Duration::from_secs(180), |port| {
            let mut c = std::process::Command::new(venv.join("bin").join("litellm"));
            c.arg("--config")
                .arg(&config)
                .args(["--host", "127.0.0.1", "--port", &port.to_string()])
                .args(["--num_workers", "1"])
                .env("LITELLM_LOCAL_MODEL_COST_MAP", "True")
                .env("LITELLM_LOG", "ERROR");
            c
        })?;
    let base = format!("http://127.0.0.1:{}", process.port());
    // Accepting connections comes before being ready to serve.
    let client = reqwest::Client::new();
    for _ in 0..600 {
        if client
            .get(format!("{base}/health/liveliness"))
            .send()
            .await
            .is_ok_and(|r| r.status().is_success())
        {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    Ok((
        process,
        Target {
            url: format!("{base}/v1/chat/completions"),
            key: MASTER_KEY.to_owned(),
        },
    ))
}

async fn run() {
    let fake = model_fakes::FakeOpenAi::start(model_fakes::Options::default())
        .await
        .expect("the fake");
    let bench = support::start(
        &[registry::registration(), openai::registration()],
        json!({"OUTBOUND_ALLOWED_HOSTS": "localhost"}),
    )
    .await;
    let (base, token, dir) = (bench.base.clone(), bench.token.clone(), &bench.dir);
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(64)
        .build()
        .expect("client");
    let created: Value = client
        .post(format!("{base}/openai/api/integrations/connections"))
        .bearer_auth(&token)
        .json(&json!({"providerKey": "openai", "displayName": "bench",
                      "config": {"baseUrl": fake.base_url, "models": ["gpt-4o-mini"]},
                      "credential": {"kind": "apiKey", "apiKey": fake.api_key()}}))
        .send()
        .await
        .expect("connection")
        .json()
        .await
        .expect("json");
    assert!(created["id"].is_string(), "{created}");
    let direct = Target {
        url: format!("{}/chat/completions", fake.base_url),
        key: fake.api_key().to_owned(),
    };
    let gateway = Target {
        url: format!("{base}/openai/api/v1/chat/completions"),
        key: token,
    };

    let side = if std::env::var("BENCH_SKIP_LITELLM").is_ok_and(|v| v == "1") {
        None
    } else {
        match litellm(&fake, dir.path()).await {
            Ok(side) => Some(side),
            Err(e) => {
                eprintln!("LiteLLM left out: {e:#}");
                None
            }
        }
    };
    println!(
        "| measure | concurrency | fake directly p50 / p99 | gateway p50 / p99 (added p50 / p99) | gateway req/s | LiteLLM p50 / p99 (added p50 / p99) | LiteLLM req/s | added p50, LiteLLM ÷ gateway |"
    );
    println!("|---|---|---|---|---|---|---|---|");
    for (label, concurrency, stream) in [
        ("chat completion, whole", 1, false),
        ("chat completion, whole", 50, false),
        ("stream, time to first chunk", 1, true),
    ] {
        let mut targets = vec![&direct, &gateway];
        if let Some((_, t)) = &side {
            targets.push(t);
        }
        let m = compare(&client, &targets, concurrency, stream).await;
        let added = |t: &Measured| {
            (
                t.p50.saturating_sub(m[0].p50),
                t.p99.saturating_sub(m[0].p99),
            )
        };
        let cell = |t: &Measured| {
            let (a50, a99) = added(t);
            format!("{} / {} ({} / {})", ms(t.p50), ms(t.p99), ms(a50), ms(a99))
        };
        let (lite, lite_rate, ratio) = match m.get(2) {
            Some(l) => (
                cell(l),
                format!("{:.0}", l.per_sec),
                format!(
                    "{:.1}×",
                    added(l).0.as_secs_f64() / added(&m[1]).0.as_secs_f64().max(1e-9)
                ),
            ),
            None => ("—".into(), "—".into(), "—".into()),
        };
        println!(
            "| {label} | {concurrency} | {} / {} | {} | {:.0} | {lite} | {lite_rate} | {ratio} |",
            ms(m[0].p50),
            ms(m[0].p99),
            cell(&m[1]),
            m[1].per_sec,
        );
    }
    bench.runner.shutdown().await;
}
