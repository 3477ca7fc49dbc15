//! Load harness for outbound webhooks: `cargo bench -p e2e --bench webhooks`.
//!
//! The registry and the gateway run in this process through the runner (release build), a
//! local receiver answers 204 and notes when each delivery arrives. Two runs:
//! 1. `POST /api/webhooks/deliveries` for N events to one subscription: deliveries per second
//!    at the receiver, and the delay from the 202 of each event to its first attempt arriving;
//! 2. signed GitHub deliveries into an inbound source whose `WebhookReceived` fans out to one
//!    subscription: accepted-and-delivered per second end to end;
//! 3. the deliveries worker alone: N events accepted while the receiver holds its answers,
//!    then the rate at which the backlog drains once it answers.
//!
//! Loopback only, bounded counts: `BENCH_EVENTS` events per run (default 5000).
//! `BENCH_CLIENTS` sets the concurrent clients (default 16). `BENCH_PHASES` picks phases by name (`posted,paced,inbound,drain`; default all), for
//! example to profile one alone.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use bytes::Bytes;
use serde_json::{Value, json};

#[derive(Clone)]
struct Receiver {
    arrivals: Arc<Mutex<HashMap<String, Instant>>>,
    /// While false, requests wait before being answered (a backlog builds up behind them).
    open: Arc<tokio::sync::watch::Sender<bool>>,
}

impl Default for Receiver {
    fn default() -> Self {
        Receiver {
            arrivals: Arc::default(),
            open: Arc::new(tokio::sync::watch::channel(true).0),
        }
    }
}

async fn receive(State(r): State<Receiver>, headers: HeaderMap, body: Bytes) -> StatusCode {
    let _ = r.open.subscribe().wait_for(|open| *open).await;
    let now = Instant::now();
    let v: Value = serde_json::from_slice(&body).unwrap_or_default();
    // The event's marker: `n` for posted events, the vendor delivery id for inbound ones.
    let key = v["data"]["n"]
        .as_u64()
        .map(|n| n.to_string())
        .or_else(|| v["data"]["vendorDeliveryId"].as_str().map(str::to_owned))
        .unwrap_or_else(|| {
            headers
                .get("webhook-id")
                .and_then(|h| h.to_str().ok())
                .unwrap_or_default()
                .to_owned()
        });
    r.arrivals.lock().unwrap().entry(key).or_insert(now);
    StatusCode::NO_CONTENT
}

fn pct(v: &mut [Duration], p: f64) -> Duration {
    v.sort();
    v[((v.len() as f64 - 1.0) * p) as usize]
}

async fn wait_for(r: &Receiver, n: usize, limit: Duration) -> Instant {
    let deadline = Instant::now() + limit;
    loop {
        if r.arrivals.lock().unwrap().len() >= n || Instant::now() > deadline {
            return r
                .arrivals
                .lock()
                .unwrap()
                .values()
                .copied()
                .max()
                .unwrap_or_else(Instant::now);
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

/// The runner binary's allocator, so the harness measures what ships.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let receiver = Receiver::default();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let rx = listener.local_addr().unwrap();
        let app = axum::Router::new().fallback(receive).with_state(receiver.clone());
        tokio::spawn(async move { axum::serve(listener, app).await });

        let values = json!({ "OUTBOUND_ALLOWED_HOSTS": "127.0.0.1", "PROBE_SCHEDULE": "0 0 0 1 1 *" });
        // The runner's own defaults (the host's 16 concurrent invocations per function and
        // processor, one-minute locks), not the test platform's four;
        // `BENCH_CONCURRENT_CALLS` overrides the concurrency.
        let calls = std::env::var("BENCH_CONCURRENT_CALLS")
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or_else(integration_platform::default_concurrent_calls);
        let p = testkit::TestPlatform::start_with(
            &[registry::registration(), webhook_gateway::registration()],
            values,
            calls,
        )
        .await;
        let t = p.token("bench", &[]);
        let r = p
            .post("/webhook-gateway/api/webhooks/subscriptions", &t, json!({"url": format!("http://{rx}/hook"), "eventTypes": ["order.*", "integration.webhook.received"]}))
            .await;
        assert_eq!(r.status(), 201);

        let n: usize = std::env::var("BENCH_EVENTS").ok().and_then(|v| v.parse().ok()).unwrap_or(5000);
        let phases = std::env::var("BENCH_PHASES").unwrap_or_default();
        let runs = |phase: &str| phases.is_empty() || phases.split(',').any(|p| p.trim() == phase);
        let clients = std::env::var("BENCH_CLIENTS").ok().and_then(|v| v.parse().ok()).filter(|c| *c > 0).unwrap_or(16);
        let b = Bench { p: &p, receiver: &receiver, token: &t, n, clients };
        if runs("posted") {
            b.posted().await;
        }
        if runs("paced") {
            b.paced().await;
        }
        if runs("inbound") {
            b.inbound().await;
        }
        if runs("drain") {
            b.drain().await;
        }
        p.shutdown().await;
    });
}

/// What every phase uses.
struct Bench<'a> {
    p: &'a testkit::TestPlatform,
    receiver: &'a Receiver,
    token: &'a str,
    n: usize,
    /// Concurrent clients posting (`BENCH_CLIENTS`, default 16).
    clients: usize,
}

impl Bench<'_> {
    /// Sends requests `0..n` (request `i` built by `request`) from `clients` concurrent
    /// clients, each expecting 202; answers when each request was answered.
    async fn send_all(
        &self,
        request: impl Fn(&reqwest::Client, usize) -> reqwest::RequestBuilder + Send + Sync + 'static,
    ) -> HashMap<usize, Instant> {
        let (n, clients) = (self.n, self.clients);
        let request = Arc::new(request);
        let mut tasks = Vec::new();
        for worker in 0..clients {
            let (client, request) = (self.p.client.clone(), request.clone());
            tasks.push(tokio::spawn(async move {
                let mut answered = Vec::new();
                for i in (worker..n).step_by(clients) {
                    let r = request(&client, i).send().await.unwrap();
                    assert_eq!(r.status(), 202);
                    answered.push((i, Instant::now()));
                }
                answered
            }));
        }
        let mut answered = HashMap::new();
        for task in tasks {
            answered.extend(task.await.unwrap());
        }
        answered
    }

    /// `POST /api/webhooks/deliveries` of an `order.created` event marked `base + i`.
    fn event_poster(
        &self,
        base: usize,
    ) -> impl Fn(&reqwest::Client, usize) -> reqwest::RequestBuilder + Send + Sync + 'static {
        let (url, token) = (
            self.p.url("/webhook-gateway/api/webhooks/deliveries"),
            self.token.to_owned(),
        );
        move |client, i| {
            client
                .post(&url)
                .bearer_auth(&token)
                .json(&json!({"eventType": "order.created", "payload": {"n": base + i}}))
        }
    }

    /// 1. Posted events → deliveries.
    async fn posted(&self) {
        let (receiver, n, clients) = (self.receiver, self.n, self.clients);
        let start = Instant::now();
        let sent = self.send_all(self.event_poster(0)).await;
        let accepted = start.elapsed();
        let last = wait_for(receiver, n, Duration::from_secs(120)).await;
        let arrivals = receiver.arrivals.lock().unwrap().clone();
        let mut delays: Vec<Duration> = sent
            .iter()
            .filter_map(|(i, s)| {
                arrivals
                    .get(&i.to_string())
                    .map(|a| a.saturating_duration_since(*s))
            })
            .collect();
        let delivered = delays.len();
        let total = last.duration_since(start);
        #[allow(clippy::print_stdout)]
        {
            println!(
                "| posted events accepted (202) | {:.0}/s | {n} events, {clients} concurrent clients |",
                n as f64 / accepted.as_secs_f64()
            );
            println!(
                "| outbound deliveries to a local receiver | {:.0}/s | {delivered} of {n} delivered, first post to last arrival {total:?} |",
                delivered as f64 / total.as_secs_f64()
            );
            println!(
                "| delay from 202 to first attempt, p50 / p99 | {:?} / {:?} | |",
                pct(&mut delays, 0.5),
                pct(&mut delays, 0.99)
            );
        }
    }

    /// 2. The same path at a steady, moderate rate (50 events/s): the delay from an
    ///    event's 202 to its first attempt when nothing queues behind a burst.
    async fn paced(&self) {
        let (p, receiver, n) = (self.p, self.receiver, self.n);
        receiver.arrivals.lock().unwrap().clear();
        let paced = 300usize;
        let mut paced_sent = HashMap::new();
        let post = self.event_poster(n);
        let mut tick = tokio::time::interval(Duration::from_millis(20));
        for i in 0..paced {
            tick.tick().await;
            let r = post(&p.client, i).send().await.unwrap();
            assert_eq!(r.status(), 202);
            paced_sent.insert((n + i).to_string(), Instant::now());
        }
        wait_for(receiver, paced, Duration::from_secs(60)).await;
        let arrivals = receiver.arrivals.lock().unwrap().clone();
        let mut idle: Vec<Duration> = paced_sent
            .iter()
            .filter_map(|(k, s)| arrivals.get(k).map(|a| a.saturating_duration_since(*s)))
            .collect();
        #[allow(clippy::print_stdout)]
        {
            println!(
                "| delay from 202 to first attempt at 50 events/s, p50 / p99 | {:?} / {:?} | {} of {paced} delivered |",
                pct(&mut idle, 0.5),
                pct(&mut idle, 0.99),
                idle.len()
            );
        }
    }

    /// 3. Inbound GitHub deliveries → `WebhookReceived` → one subscriber.
    async fn inbound(&self) {
        let (p, receiver, t, n) = (self.p, self.receiver, self.token, self.n);
        receiver.arrivals.lock().unwrap().clear();
        let source: Value = p
            .post(
                "/webhook-gateway/api/webhooks/sources",
                t,
                json!({"provider": "github", "secret": "bench-secret-0123456789"}),
            )
            .await
            .json()
            .await
            .unwrap();
        let url = source["url"].as_str().unwrap().to_owned();
        let body = br#"{"action":"opened","number":1}"#.to_vec();
        let sig = testkit::github_signature("bench-secret-0123456789", &body);
        let m = n;
        let start = Instant::now();
        self.send_all(move |client, i| {
            client
                .post(&url)
                .header("content-type", "application/json")
                .header("x-github-event", "pull_request")
                .header("x-github-delivery", format!("gh-{i}"))
                .header("x-hub-signature-256", &sig)
                .body(body.clone())
        })
        .await;
        let last = wait_for(receiver, m, Duration::from_secs(120)).await;
        let delivered = receiver.arrivals.lock().unwrap().len();
        #[allow(clippy::print_stdout)]
        {
            println!(
                "| inbound accepted and delivered end to end | {:.0}/s | {delivered} of {m} delivered, first post to last arrival {:?} |",
                delivered as f64 / last.duration_since(start).as_secs_f64(),
                last.duration_since(start)
            );
        }
    }

    /// 4. The worker alone: a backlog of `n` deliveries (the receiver holds its answers
    ///    while they are accepted), then drained.
    async fn drain(&self) {
        let (receiver, n) = (self.receiver, self.n);
        receiver.arrivals.lock().unwrap().clear();
        receiver.open.send_replace(false);
        self.send_all(self.event_poster(10 * n)).await;
        let opened = Instant::now();
        receiver.open.send_replace(true);
        let last = wait_for(receiver, n, Duration::from_secs(120)).await;
        let drained = receiver.arrivals.lock().unwrap().len();
        #[allow(clippy::print_stdout)]
        {
            println!(
                "| outbound deliveries drained from a backlog (worker alone) | {:.0}/s | {drained} of {n} delivered in {:?} |",
                drained as f64 / last.duration_since(opened).as_secs_f64(),
                last.duration_since(opened)
            );
        }
    }
}
