//! Proof at scale: a fault-injected run through the runner process.
//!
//! Events posted by a tenant and inbound GitHub deliveries fan out to four subscriptions whose
//! receivers fail on a schedule: the first attempt of some deliveries answered 5xx, 429 with
//! `Retry-After`, held past the gateway's timeout, or cut without an answer, a one-second
//! outage every fifteen seconds; one subscription always answers 500 (its deliveries are
//! exhausted), one answers 410 Gone. Meanwhile the runner is killed with SIGKILL twice and
//! started again on the same data folder. Then, counted by `webhook-id`:
//! - every accepted event reached every live subscription (none lost);
//! - each event reached a subscription under one `webhook-id` (a duplicate is a repeat of the
//!   same id, and the duplicates are counted);
//! - the 410 subscription is disabled, and each of its deliveries ended dead-lettered;
//! - every exhausted delivery is dead-lettered with exactly one `IntegrationFailure`, and no
//!   delivery to a live subscription has one.
//!
//! `FAULT_EVENTS` sets the number of events (1,500 by default, so the test command runs it);
//! docs/BENCHMARKS.md has a 100,000-event run and its command.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{BodyExt as _, Full};
use hyper::body::Incoming;
use hyper::{Request, Response};
use serde_json::{Value, json};

use crate::support::{RunnerProcess as Runner, send_github};

const TENANT: &str = "tenant-faults";
const GITHUB_SECRET: &str = "fault-run-github-secret-0123456789";
/// The gateway's delivery timeout in this run: a held answer outlasts it.
const TIMEOUT_SECONDS: u64 = 2;
/// Concurrent senders.
const SENDERS: usize = 16;

/// The four subscriptions, by what their receivers do.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug, PartialOrd, Ord)]
enum Sub {
    /// Every event type; some first attempts fail (503, 429, held, cut).
    All,
    /// Orders and inbound webhooks; some first two attempts fail, and a one-second outage
    /// every fifteen seconds.
    Orders,
    /// `audit.*`: always 500, so every delivery is exhausted.
    Dead,
    /// `order.*`: 410 Gone, so the subscription is disabled.
    Gone,
}

impl Sub {
    const ALL: [Sub; 4] = [Sub::All, Sub::Orders, Sub::Dead, Sub::Gone];

    fn path(self) -> &'static str {
        match self {
            Sub::All => "/all",
            Sub::Orders => "/orders",
            Sub::Dead => "/dead",
            Sub::Gone => "/gone",
        }
    }

    fn event_types(self) -> Value {
        match self {
            Sub::All => json!([
                "order.*",
                "customer.*",
                "audit.*",
                "integration.webhook.received"
            ]),
            Sub::Orders => json!(["order.*", "integration.webhook.received"]),
            Sub::Dead => json!(["audit.*"]),
            Sub::Gone => json!(["order.*"]),
        }
    }

    fn live(self) -> bool {
        matches!(self, Sub::All | Sub::Orders)
    }
}

/// What a receiver does with one request.
enum Answer {
    Status(u16, Option<u64>),
    /// Answers 503 only after the gateway has stopped waiting.
    Hold,
    /// Closes the connection without an answer.
    Cut,
}

#[derive(Default)]
struct Seen {
    /// (subscription, webhook-id) → requests.
    attempts: HashMap<(Sub, String), u32>,
    /// (subscription, webhook-id) → 2xx answers.
    answered: HashMap<(Sub, String), u32>,
    /// (subscription, event mark) → the webhook-ids it came under.
    marks: HashMap<(Sub, String), HashSet<String>>,
    /// Faults injected, by kind.
    faults: BTreeMap<&'static str, u64>,
}

struct Receivers {
    seen: Mutex<Seen>,
    started: Instant,
}

impl Receivers {
    fn answer(&self, sub: Sub, id: &str, body: &[u8]) -> Answer {
        let outage = self.started.elapsed().as_secs() % 15 == 7;
        let mut seen = self.seen.lock().unwrap();
        let attempt = {
            let n = seen.attempts.entry((sub, id.to_owned())).or_default();
            *n += 1;
            *n
        };
        if let Some(mark) = mark_in(body) {
            seen.marks
                .entry((sub, mark))
                .or_default()
                .insert(id.to_owned());
        }
        let bucket = fnv(id) % 1000;
        let (answer, fault) = match sub {
            Sub::Dead => (Answer::Status(500, None), None),
            Sub::Gone => (Answer::Status(410, None), None),
            Sub::All => match (bucket, attempt) {
                (0..40, 1) => (Answer::Status(503, None), Some("503")),
                (40..60, 1) => (Answer::Status(429, Some(1)), Some("429 Retry-After: 1")),
                (60..62, 1) => (Answer::Hold, Some("held past the timeout")),
                (62..72, 1) => (Answer::Cut, Some("connection cut")),
                _ => (Answer::Status(204, None), None),
            },
            Sub::Orders if outage => (Answer::Status(503, None), Some("outage 503")),
            Sub::Orders => match (bucket, attempt) {
                (500..530, 1 | 2) => (Answer::Status(500, None), Some("500")),
                (530..540, 1) => (Answer::Status(429, Some(1)), Some("429 Retry-After: 1")),
                (540..545, 1) => (Answer::Cut, Some("connection cut")),
                _ => (Answer::Status(200, None), None),
            },
        };
        if let Some(kind) = fault {
            *seen.faults.entry(kind).or_default() += 1;
        }
        if let Answer::Status(200..=299, _) = answer {
            *seen.answered.entry((sub, id.to_owned())).or_default() += 1;
        }
        answer
    }

    async fn handle(
        self: Arc<Self>,
        request: Request<Incoming>,
    ) -> Result<Response<Full<Bytes>>, std::io::Error> {
        let Some(sub) = Sub::ALL
            .into_iter()
            .find(|s| s.path() == request.uri().path())
        else {
            return Ok(status(404, None));
        };
        let id = request
            .headers()
            .get("webhook-id")
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_owned();
        let body = request
            .into_body()
            .collect()
            .await
            .map_err(std::io::Error::other)?
            .to_bytes();
        match self.answer(sub, &id, &body) {
            Answer::Status(code, retry_after) => Ok(status(code, retry_after)),
            Answer::Hold => {
                tokio::time::sleep(Duration::from_secs(TIMEOUT_SECONDS + 1)).await;
                Ok(status(503, None))
            }
            // An error from the service makes hyper drop the connection unanswered.
            Answer::Cut => Err(std::io::Error::other("cut")),
        }
    }
}

fn status(code: u16, retry_after: Option<u64>) -> Response<Full<Bytes>> {
    let mut r = Response::builder().status(code);
    if let Some(s) = retry_after {
        r = r.header("retry-after", s.to_string());
    }
    r.body(Full::new(Bytes::new())).unwrap()
}

/// FNV-1a: a stable spread of delivery ids over the fault buckets.
fn fnv(s: &str) -> u64 {
    s.bytes().fold(0xcbf2_9ce4_8422_2325, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    })
}

/// The event's mark (`fault-…`) in a delivered body: the posted payload's `mark`, or the
/// inbound delivery's GitHub id in a `WebhookReceived` event.
fn mark_in(body: &[u8]) -> Option<String> {
    let start = body.windows(6).position(|w| w == b"fault-")?;
    let len = body[start..].iter().position(|b| *b == b'"')?;
    String::from_utf8(body[start..start + len].to_vec()).ok()
}

async fn serve_receivers(receivers: Arc<Receivers>) -> std::net::SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                continue;
            };
            let _ = stream.set_nodelay(true);
            let receivers = receivers.clone();
            tokio::spawn(async move {
                let service = hyper::service::service_fn(move |r| receivers.clone().handle(r));
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(hyper_util::rt::TokioIo::new(stream), service)
                    .await;
            });
        }
    });
    addr
}

fn write_settings(dir: &Path) {
    let values = json!({
        "IsEncrypted": false,
        "Values": {
            "FUNCTIONS_WORKER_RUNTIME": "Custom",
            "PROBE_SCHEDULE": "0 0 0 1 1 *",
            "OUTBOUND_ALLOWED_HOSTS": "127.0.0.1",
            "WEBHOOK_TIMEOUT_SECONDS": TIMEOUT_SECONDS.to_string(),
            // Five attempts within about ten seconds (ceilings, full jitter).
            "WEBHOOK_RETRY_SCHEDULE_SECONDS": "0,1,2,3,3",
            // The always-failing endpoint's breaker would pace its attempts at one probe per
            // opening (a 100,000-event run spent 20 minutes on 300 doomed deliveries): it
            // opens only past every failure this run makes, so they are exhausted at once.
            "WEBHOOK_BREAKER_THRESHOLD": "1000",
            "WEBHOOK_BREAKER_OPEN_SECONDS": "1",
        }
    });
    std::fs::write(dir.join("local.settings.json"), values.to_string()).unwrap();
}

/// What the senders learnt: the marks accepted per subscription, and the deliveries of the
/// failing subscriptions (known from the 202 answers).
#[derive(Default)]
struct Accepted {
    marks: HashMap<Sub, HashSet<String>>,
    failing: Vec<(Sub, String)>,
    /// Posts whose outcome is unknown (the connection broke after the request was sent).
    unknown: usize,
    posted: usize,
    inbound: usize,
}

struct Senders {
    client: reqwest::Client,
    base: Arc<RwLock<String>>,
    token: String,
    source: String,
    subscriptions: HashMap<String, Sub>,
    accepted: Mutex<Accepted>,
    next: AtomicUsize,
    done: AtomicUsize,
    events: usize,
}

impl Senders {
    fn base(&self) -> String {
        self.base.read().unwrap().clone()
    }

    async fn run(self: Arc<Self>) {
        loop {
            let n = self.next.fetch_add(1, Ordering::SeqCst);
            if n >= self.events {
                return;
            }
            if n % 4 == 3 {
                self.inbound(n).await;
            } else {
                self.post(n).await;
            }
            self.done.fetch_add(1, Ordering::SeqCst);
        }
    }

    /// A GitHub delivery, sent again (same `X-GitHub-Delivery`) until accepted, as GitHub
    /// redelivers: the gateway must publish it once.
    async fn inbound(&self, n: usize) {
        let mark = format!("fault-i-{n}");
        let body = json!({"zen": "Keep it logically awesome.", "hook_id": n}).to_string();
        loop {
            let sent = send_github(
                &self.client,
                &self.base(),
                &self.source,
                GITHUB_SECRET,
                &mark,
                &body,
            )
            .await;
            match sent {
                Ok(r) if r.status() == 202 => break,
                Ok(r) => panic!("inbound delivery {mark}: {}", r.status()),
                Err(_) => tokio::time::sleep(Duration::from_millis(50)).await,
            }
        }
        let mut accepted = self.accepted.lock().unwrap();
        accepted.inbound += 1;
        for sub in [Sub::All, Sub::Orders] {
            accepted.marks.entry(sub).or_default().insert(mark.clone());
        }
    }

    async fn post(&self, n: usize) {
        let mark = format!("fault-p-{n}");
        // One event in 997 is an audit event (the always-failing endpoint's).
        let event_type = if n.is_multiple_of(997) {
            "audit.logged"
        } else if n.is_multiple_of(2) {
            "order.created"
        } else {
            "customer.updated"
        };
        let answer = loop {
            let url = format!("{}/webhook-gateway/api/webhooks/deliveries", self.base());
            let sent = self
                .client
                .post(url)
                .bearer_auth(&self.token)
                .json(&json!({"eventType": event_type, "payload": {"mark": mark, "n": n}}))
                .send()
                .await;
            match sent {
                Ok(r) if r.status() == 202 => break r.json::<Value>().await.ok(),
                Ok(r) => panic!("posting event {n}: {}", r.status()),
                // Nothing was sent: try again (the runner is being restarted).
                Err(e) if e.is_connect() => tokio::time::sleep(Duration::from_millis(50)).await,
                // Sent, and the runner died before answering: it may or may not have it.
                Err(_) => break None,
            }
        };
        let mut accepted = self.accepted.lock().unwrap();
        let Some(answer) = answer else {
            accepted.unknown += 1;
            return;
        };
        accepted.posted += 1;
        for d in answer["deliveries"].as_array().into_iter().flatten() {
            let sub = self.subscriptions[d["subscriptionId"].as_str().unwrap()];
            if sub.live() {
                accepted.marks.entry(sub).or_default().insert(mark.clone());
            } else {
                accepted
                    .failing
                    .push((sub, d["id"].as_str().unwrap().to_owned()));
            }
        }
    }
}

fn events_to_send() -> usize {
    std::env::var("FAULT_EVENTS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1_500)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_fault_injected_run_loses_nothing_across_two_kill_9s() {
    let events = events_to_send();
    let started = Instant::now();
    let dir = tempfile::tempdir().unwrap();
    write_settings(dir.path());
    let receivers = Arc::new(Receivers {
        seen: Mutex::default(),
        started,
    });
    let rx = serve_receivers(receivers.clone()).await;
    let mut runner = Runner::start(dir.path());
    let token = auth::DevTokens::load_or_create(&dir.path().join("data"))
        .unwrap()
        .issue(TENANT, &[], chrono::Duration::hours(4), chrono::Utc::now())
        .unwrap();
    let client = reqwest::Client::new();
    let api = format!("{}/webhook-gateway/api/webhooks", runner.base());
    let mut subscriptions = HashMap::new();
    let mut ids = HashMap::new();
    for sub in Sub::ALL {
        let r = client
            .post(format!("{api}/subscriptions"))
            .bearer_auth(&token)
            .json(&json!({"url": format!("http://{rx}{}", sub.path()), "eventTypes": sub.event_types()}))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 201);
        let id = r.json::<Value>().await.unwrap()["id"]
            .as_str()
            .unwrap()
            .to_owned();
        subscriptions.insert(id.clone(), sub);
        ids.insert(sub, id);
    }
    let r = client
        .post(format!("{api}/sources"))
        .bearer_auth(&token)
        .json(&json!({"provider": "github", "secret": GITHUB_SECRET}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201);
    let source = r.json::<Value>().await.unwrap()["id"]
        .as_str()
        .unwrap()
        .to_owned();

    let senders = Arc::new(Senders {
        client: client.clone(),
        base: runner.base.clone(),
        token: token.clone(),
        source,
        subscriptions,
        accepted: Mutex::default(),
        next: AtomicUsize::new(0),
        done: AtomicUsize::new(0),
        events,
    });
    let tasks: Vec<_> = (0..SENDERS)
        .map(|_| tokio::spawn(senders.clone().run()))
        .collect();
    // Two kills, a third and two thirds of the way through the sending.
    for share in [35, 70] {
        while senders.done.load(Ordering::SeqCst) < events * share / 100 {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        runner.restart(dir.path());
        eprintln!(
            "fault run: runner killed (SIGKILL) and restarted after {} of {events} events ({:.1} s)",
            senders.done.load(Ordering::SeqCst),
            started.elapsed().as_secs_f64()
        );
    }
    for t in tasks {
        t.await.unwrap();
    }
    let sent_in = started.elapsed();
    let accepted = std::mem::take(&mut *senders.accepted.lock().unwrap());
    eprintln!(
        "fault run: {} events posted and {} inbound accepted, {} posts of unknown outcome, in {:.1} s",
        accepted.posted,
        accepted.inbound,
        accepted.unknown,
        sent_in.as_secs_f64()
    );

    // Every accepted event reaches every live subscription; the failing subscriptions'
    // deliveries end dead-lettered.
    let deadline = Instant::now() + Duration::from_secs(180 + events as u64 / 100);
    let mut unfinished: Vec<(Sub, String)> = accepted.failing.clone();
    let mut last_report = Instant::now();
    loop {
        let missing = missing_deliveries(&receivers, &accepted);
        let base = runner.base();
        let mut still = Vec::new();
        for (sub, id) in unfinished {
            let d: Value = client
                .get(format!(
                    "{base}/webhook-gateway/api/webhooks/deliveries/{id}"
                ))
                .bearer_auth(&token)
                .send()
                .await
                .unwrap()
                .json()
                .await
                .unwrap();
            if d["status"] != "dead_lettered" {
                still.push((sub, id));
            }
        }
        unfinished = still;
        if missing.is_empty() && unfinished.is_empty() {
            break;
        }
        if last_report.elapsed() > Duration::from_secs(5) {
            eprintln!(
                "fault run: waiting for {} live deliveries and {} to be exhausted ({:.0} s)",
                missing.len(),
                unfinished.len(),
                started.elapsed().as_secs_f64()
            );
            last_report = Instant::now();
        }
        assert!(
            Instant::now() < deadline,
            "not delivered to a live subscription: {:?} (of {}); not dead-lettered: {:?}",
            &missing[..missing.len().min(10)],
            missing.len(),
            &unfinished[..unfinished.len().min(10)]
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    let drained_in = started.elapsed();

    let gone: Value = client
        .get(format!(
            "{}/webhook-gateway/api/webhooks/subscriptions/{}",
            runner.base(),
            ids[&Sub::Gone]
        ))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(gone["status"], "disabled", "{gone}");
    runner.kill();

    // One webhook-id per event and subscription; repeats of it are the duplicates.
    let seen = std::mem::take(&mut *receivers.seen.lock().unwrap());
    for ((sub, mark), webhook_ids) in &seen.marks {
        assert_eq!(
            webhook_ids.len(),
            1,
            "{mark} reached {sub:?} under several webhook-ids: {webhook_ids:?}"
        );
    }
    let duplicates: u32 = seen.answered.values().map(|n| n - 1).sum();

    // The store, read after the runner's last life: failures and deliveries.
    let store = embedded::SqliteDocumentStore::open(
        &dir.path().join("data").join("documents.db"),
        embedded::Durability::Normal,
    )
    .unwrap();
    let failures = documents(&store, "failure").await;
    let deliveries = documents(&store, "delivery").await;
    let by_subscription: HashMap<&str, Sub> =
        ids.iter().map(|(sub, id)| (id.as_str(), *sub)).collect();
    let mut failures_of: HashMap<String, usize> = HashMap::new();
    for f in &failures {
        assert_eq!(f["subject"]["kind"], "delivery", "{f}");
        *failures_of
            .entry(f["subject"]["id"].as_str().unwrap().to_owned())
            .or_default() += 1;
    }
    let mut statuses: BTreeMap<(Sub, String), usize> = BTreeMap::new();
    for d in &deliveries {
        let sub = by_subscription[d["subscriptionId"].as_str().unwrap()];
        let id = d["id"].as_str().unwrap();
        let status = d["status"].as_str().unwrap().to_owned();
        let failures = failures_of.get(id).copied().unwrap_or(0);
        if sub.live() {
            assert_eq!(status, "delivered", "{d}");
            assert_eq!(failures, 0, "a delivered delivery has a failure: {d}");
        } else {
            assert_eq!(status, "dead_lettered", "{d}");
            assert_eq!(
                failures, 1,
                "a dead-lettered delivery has {failures} failures: {d}"
            );
        }
        *statuses.entry((sub, status)).or_default() += 1;
    }
    assert_eq!(failures.len(), failures_of.values().sum::<usize>());
    let dead_lettered: usize = statuses
        .iter()
        .filter(|((_, s), _)| s == "dead_lettered")
        .map(|(_, n)| n)
        .sum();
    assert_eq!(
        failures.len(),
        dead_lettered,
        "one failure per dead-lettered delivery"
    );
    assert!(
        statuses.contains_key(&(Sub::Dead, "dead_lettered".into())),
        "the run exhausted no delivery"
    );

    let attempts: u32 = seen.attempts.values().sum();
    eprintln!(
        "fault run: {events} events ({} posted, {} inbound, {} unknown) in {:.1} s, all delivered \
         {:.1} s after the start; {} deliveries ({statuses:?}), {attempts} attempts, {duplicates} \
         duplicates (same webhook-id), faults injected {:?}, {} failures, runner peak RSS {} MiB",
        accepted.posted,
        accepted.inbound,
        accepted.unknown,
        sent_in.as_secs_f64(),
        drained_in.as_secs_f64(),
        deliveries.len(),
        seen.faults,
        failures.len(),
        runner.peak_kib / 1024,
    );
}

/// The accepted (subscription, mark) pairs no 2xx answer has reached yet.
fn missing_deliveries(receivers: &Receivers, accepted: &Accepted) -> Vec<(Sub, String)> {
    let seen = receivers.seen.lock().unwrap();
    let mut missing = Vec::new();
    for (sub, marks) in &accepted.marks {
        for mark in marks {
            let delivered = seen.marks.get(&(*sub, mark.clone())).is_some_and(|ids| {
                ids.iter()
                    .any(|id| seen.answered.contains_key(&(*sub, id.clone())))
            });
            if !delivered {
                missing.push((*sub, mark.clone()));
            }
        }
    }
    missing
}

/// Every document of `doc_type` in the tenant's partition of the gateway's container.
async fn documents(store: &embedded::SqliteDocumentStore, doc_type: &str) -> Vec<Value> {
    use ports::DocumentStore as _;
    let mut out = Vec::new();
    let mut continuation = None;
    loop {
        let page = store
            .query(
                webhook_gateway::CONTAINER,
                &ports::Query::partition(TENANT)
                    .filter("docType", doc_type)
                    .limit(1000)
                    .after(continuation),
            )
            .await
            .unwrap();
        out.extend(page.documents.into_iter().map(|d| d.body));
        continuation = page.continuation;
        if continuation.is_none() {
            return out;
        }
    }
}
