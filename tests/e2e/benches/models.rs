//! Load harness for the model gateway: `cargo bench -p e2e --bench models`.
//!
//! The registry and the openai app run in this process through the runner (release build,
//! embedded default), with one `openai` connection to the fake OpenAI of `model-fakes` over
//! loopback HTTP (no latency of its own). The same requests go to the fake directly and
//! through the gateway, in interleaved rounds so the machine's noise hits both alike; the
//! gateway's added latency is the difference of the medians (and of the 99th
//! percentiles). Measured: non-streaming chat completions at concurrency 1 and 50, the
//! time to the first chunk of a stream at concurrency 1, and completions per second
//! through the gateway at concurrency 50. Every gateway call also records its run (after
//! the answer), which is part of what is measured. Bounded counts, loopback only.

use std::time::{Duration, Instant};

use futures::StreamExt as _;
use integration_platform::{RunArgs, Runner};
use serde_json::{Value, json};

#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

const ROUNDS: usize = 5;
const PER_ROUND: usize = 400;

fn percentile(samples: &mut [Duration], p: f64) -> Duration {
    samples.sort();
    samples[((samples.len() as f64 - 1.0) * p).round() as usize]
}

fn ms(d: Duration) -> String {
    format!("{:.3} ms", d.as_secs_f64() * 1e3)
}

fn main() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    rt.block_on(run());
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

/// Medians of the per-round p50 and p99 of each target, and requests per second through
/// the gateway.
struct Compared {
    direct: (Duration, Duration),
    gateway: (Duration, Duration),
    gateway_per_sec: f64,
}

async fn compare(
    client: &reqwest::Client,
    direct: &Target,
    gateway: &Target,
    concurrency: usize,
    stream: bool,
) -> Compared {
    // Warm both (connections, caches, the token's first check).
    direct.load(client, 200, concurrency, stream).await;
    gateway.load(client, 200, concurrency, stream).await;
    let (mut d50, mut d99, mut g50, mut g99, mut rates) = (vec![], vec![], vec![], vec![], vec![]);
    for _ in 0..ROUNDS {
        let (mut d, _) = direct.load(client, PER_ROUND, concurrency, stream).await;
        let (mut g, wall) = gateway.load(client, PER_ROUND, concurrency, stream).await;
        d50.push(percentile(&mut d, 0.5));
        d99.push(percentile(&mut d, 0.99));
        g50.push(percentile(&mut g, 0.5));
        g99.push(percentile(&mut g, 0.99));
        rates.push(PER_ROUND as f64 / wall.as_secs_f64());
    }
    rates.sort_by(f64::total_cmp);
    Compared {
        direct: (percentile(&mut d50, 0.5), percentile(&mut d99, 0.5)),
        gateway: (percentile(&mut g50, 0.5), percentile(&mut g99, 0.5)),
        gateway_per_sec: rates[rates.len() / 2],
    }
}

async fn run() {
    let fake = model_fakes::FakeOpenAi::start(model_fakes::Options::default())
        .await
        .expect("the fake");
    let dir = tempfile::tempdir().expect("dir");
    std::fs::write(
        dir.path().join("local.settings.json"),
        json!({"Values": {"OUTBOUND_ALLOWED_HOSTS": "localhost"}}).to_string(),
    )
    .expect("settings");
    let args = RunArgs {
        listen: Some("127.0.0.1:0".parse().expect("addr")),
        data_dir: dir.path().join("data"),
        settings: Some(dir.path().join("local.settings.json")),
        lock_seconds: 60,
        function_timeout: 60,
        max_concurrent_calls: None,
    };
    let runner = Runner::start(&[registry::registration(), openai::registration()], args)
        .await
        .expect("runner");
    let base = format!("http://{}", runner.addr);
    let token = runner
        .dev_tokens
        .issue("bench", &[], chrono::Duration::hours(1), chrono::Utc::now())
        .expect("token");
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

    println!(
        "| measure | concurrency | fake directly p50 / p99 | through the gateway p50 / p99 | added p50 / p99 | gateway req/s |"
    );
    println!("|---|---|---|---|---|---|");
    for (label, concurrency, stream) in [
        ("chat completion, whole", 1, false),
        ("chat completion, whole", 50, false),
        ("stream, time to first chunk", 1, true),
    ] {
        let c = compare(&client, &direct, &gateway, concurrency, stream).await;
        println!(
            "| {label} | {concurrency} | {} / {} | {} / {} | {} / {} | {:.0} |",
            ms(c.direct.0),
            ms(c.direct.1),
            ms(c.gateway.0),
            ms(c.gateway.1),
            ms(c.gateway.0.saturating_sub(c.direct.0)),
            ms(c.gateway.1.saturating_sub(c.direct.1)),
            c.gateway_per_sec,
        );
    }
    runner.shutdown().await;
}
