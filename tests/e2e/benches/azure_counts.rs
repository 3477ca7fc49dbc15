//! What an accepted operation costs on the Azure adapters, counted in requests:
//! `cargo bench -p e2e --bench azure_counts`.
//!
//! The registry and the webhook gateway run in this process through the runner, with their
//! documents in the Cosmos DB stand-in and their blobs in Azurite (the bus stays embedded, as
//! in the local runner). The harness reads the adapters' own counters (Cosmos requests and
//! request units per operation kind, Blob Storage transactions per port operation) before and
//! after N operations of each kind and prints the means as the table of docs/BENCHMARKS.md.
//!
//! Two processes: the Cosmos SDK reads its transport knobs (and rustls its trust store) from
//! the environment when a client is built, and a running process cannot change its own
//! environment safely. So the first process starts the stand-ins and runs this same
//! executable again with their environment, and that child does the measuring.
//!
//! An operation counts as done when its event has been published: the outbox document is
//! deleted (the publisher's last step) and, for a webhook, the gateway's fan-out has consumed
//! the event (it finds no subscription: none is created, so no outbound delivery is counted).
//! Operations run one after another, so the publisher is woken once per operation and its
//! timer (500 ms after a pass that found events, doubling to 8 s while idle) never fires
//! inside the loops (the harness checks the gaps); its idle cost is measured on its own.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::{Command, ExitCode};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use app_context::EVENTS_TOPIC;
use azure_blob::{AzureBlobStore, TransactionCounts};
use azure_cosmos::{CosmosDocumentStore, Usage};
use integration_platform::{RunArgs, Runner};
use ports::{BrokerReceiver as _, Entity};
use serde_json::{Value, json};

/// Set in the child's environment: the settings file to run with.
const CHILD_SETTINGS: &str = "AZURE_COUNTS_SETTINGS";
/// Operations of each kind measured (after one warm-up each).
const N: usize = 100;
/// Operations measured with a cold source cache (each after waiting out its 5 s lifetime).
const COLD: usize = 3;
/// How long the counters must stay still for an operation's trailing requests (the
/// publisher's pass over the remaining containers) to be over.
const QUIET: Duration = Duration::from_millis(60);
/// The outbox publisher's timer (`app_host::OUTBOX_INTERVAL`): an operation that takes
/// longer than this lets a timer pass into the counts.
const PUBLISHER_INTERVAL: Duration = Duration::from_millis(500);
const GITHUB_SECRET: &str = "azure-counts-secret-0123456789";

fn main() -> ExitCode {
    let result = match std::env::var_os(CHILD_SETTINGS) {
        Some(settings) => measure(PathBuf::from(settings)),
        None => parent(),
    };
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("azure_counts: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn apps() -> Vec<app_context::AppRegistration> {
    vec![registry::registration(), webhook_gateway::registration()]
}

/// Starts the stand-ins, writes the settings and runs this executable again with the
/// stand-ins' environment; the stand-ins stop when it is done.
fn parent() -> anyhow::Result<ExitCode> {
    let containers: Vec<&str> = apps()
        .iter()
        .flat_map(|a| a.containers.iter().copied())
        .collect();
    let standins = standins::platform::PlatformStandIns::start(&containers)?;
    let dir = tempfile::tempdir()?;
    let settings = dir.path().join("local.settings.json");
    let values: serde_json::Map<String, Value> = standins
        .settings()
        .into_iter()
        .map(|(k, v)| (k, Value::String(v)))
        .collect();
    std::fs::write(
        &settings,
        json!({"IsEncrypted": false, "Values": values}).to_string(),
    )?;
    eprintln!(
        "azure_counts: Cosmos DB stand-in at {}, Azurite at {}",
        standins.cosmos_endpoint(),
        standins.blob_endpoint()
    );
    let status = Command::new(std::env::current_exe()?)
        .args(std::env::args_os().skip(1))
        .envs(standins.env())
        .env(CHILD_SETTINGS, &settings)
        .status()
        .context("cannot run the measuring child")?;
    if !status.success() {
        bail!(
            "the measuring child failed ({status}); stand-in logs:\n{}",
            standins.log_tail()
        );
    }
    Ok(ExitCode::SUCCESS)
}

fn measure(settings: PathBuf) -> anyhow::Result<ExitCode> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    runtime.block_on(async move {
        let data = tempfile::tempdir()?;
        let args = RunArgs {
            listen: Some("127.0.0.1:0".parse()?),
            data_dir: data.path().join("data"),
            settings: Some(settings),
            lock_seconds: 60,
            function_timeout: 600,
            max_concurrent_calls: None,
        };
        let runner = Runner::start(&apps(), args).await?;
        let bench = Bench::new(&runner)?;
        let rows = bench.run().await?;
        print_table(&rows);
        runner.shutdown().await;
        Ok(ExitCode::SUCCESS)
    })
}

/// Counters of both adapters at one instant.
#[derive(Clone)]
struct Snapshot {
    cosmos: Usage,
    blobs: TransactionCounts,
}

/// Requests between two snapshots (or several such windows added up).
#[derive(Clone, Default)]
struct Costs {
    /// Cosmos requests and request units, per operation kind of the adapter's meter.
    cosmos: BTreeMap<&'static str, (u64, f64)>,
    /// Blob Storage transactions: puts, and everything else (gets, heads, lists, deletes).
    blob_puts: u64,
    blob_other: u64,
}

impl Costs {
    fn between(before: &Snapshot, after: &Snapshot) -> Costs {
        let cosmos = after
            .cosmos
            .since(&before.cosmos)
            .iter()
            .map(|(op, u)| (op, (u.requests, u.request_charge)))
            .collect();
        let b = after.blobs.since(&before.blobs);
        Costs {
            cosmos,
            blob_puts: b.put.transactions,
            blob_other: b.get.transactions
                + b.head.transactions
                + b.list.transactions
                + b.delete.transactions,
        }
    }

    fn add(&mut self, other: &Costs) {
        for (op, (requests, charge)) in &other.cosmos {
            let entry = self.cosmos.entry(op).or_default();
            entry.0 += requests;
            entry.1 += charge;
        }
        self.blob_puts += other.blob_puts;
        self.blob_other += other.blob_other;
    }

    fn requests(&self, op: &str) -> u64 {
        self.cosmos.get(op).map_or(0, |c| c.0)
    }

    fn total_requests(&self) -> u64 {
        self.cosmos.values().map(|c| c.0).sum()
    }

    fn total_charge(&self) -> f64 {
        self.cosmos.values().map(|c| c.1).sum()
    }
}

/// What a set of operations cost, and how many there were.
struct Row {
    name: String,
    operations: usize,
    costs: Costs,
    note: String,
}

struct Bench<'a> {
    runner: &'a Runner,
    cosmos: Arc<CosmosDocumentStore>,
    blobs: Arc<AzureBlobStore>,
    client: reqwest::Client,
    base: String,
    operator: String,
    tenant: String,
}

impl<'a> Bench<'a> {
    fn new(runner: &'a Runner) -> anyhow::Result<Self> {
        let cosmos = runner
            .ports
            .cosmos
            .clone()
            .context("the documents are not on Cosmos DB: check the settings")?;
        let blobs = runner
            .ports
            .azure_blobs
            .clone()
            .context("the blobs are not on Blob Storage: check the settings")?;
        let issue = |tenant: &str, roles: &[String]| {
            runner
                .dev_tokens
                .issue(
                    tenant,
                    roles,
                    chrono::Duration::hours(1),
                    chrono::Utc::now(),
                )
                .map_err(|e| anyhow::anyhow!("cannot issue a token: {e}"))
        };
        Ok(Bench {
            runner,
            cosmos,
            blobs,
            client: reqwest::Client::new(),
            base: format!("http://{}", runner.addr),
            operator: issue("platform-ops", &["operator".to_owned()])?,
            tenant: issue("bench-tenant", &[])?,
        })
    }

    fn snapshot(&self) -> Snapshot {
        Snapshot {
            cosmos: self.cosmos.usage(),
            blobs: self.blobs.transactions(),
        }
    }

    fn since(&self, name: &str, operations: usize, before: &Snapshot, note: String) -> Row {
        Row {
            name: name.to_owned(),
            operations,
            costs: Costs::between(before, &self.snapshot()),
            note,
        }
    }

    async fn run(&self) -> anyhow::Result<Vec<Row>> {
        let source = self.create_source().await?;
        // Warm-up: the first use of each container reads its properties, the first blob put
        // creates the blob container; neither recurs.
        self.create_provider("warm-up").await?;
        self.inbound(&source, "warm-up").await?;
        self.settle().await;

        let mut rows = Vec::new();
        let before = self.snapshot();
        let mut slowest = Duration::ZERO;
        for i in 0..N {
            slowest = slowest.max(self.create_provider(&format!("bench-{i}")).await?);
        }
        rows.push(self.since(
            "registry: create provider",
            N,
            &before,
            format!("slowest {slowest:.0?}"),
        ));
        check_gap(slowest);

        let before = self.snapshot();
        let mut slowest = Duration::ZERO;
        let started = Instant::now();
        for i in 0..N {
            slowest = slowest.max(self.inbound(&source, &format!("gh-{i}")).await?);
        }
        rows.push(self.since(
            "webhook-gateway: inbound webhook",
            N,
            &before,
            format!(
                "slowest {slowest:.0?}; {N} in {:.1} s, source cached 5 s",
                started.elapsed().as_secs_f64()
            ),
        ));
        check_gap(slowest);

        // The same with the source's cache expired: each waits out the cache's lifetime,
        // then starts right after a publisher timer pass, so no other pass falls inside.
        let mut cold = Costs::default();
        for i in 0..COLD {
            tokio::time::sleep(Duration::from_millis(5_200)).await;
            self.after_timer_pass().await;
            let before = self.snapshot();
            self.inbound(&source, &format!("cold-{i}")).await?;
            cold.add(&Costs::between(&before, &self.snapshot()));
        }
        rows.push(Row {
            name: "webhook-gateway: inbound webhook, source cache cold".to_owned(),
            operations: COLD,
            costs: cold,
            note: "the first after 5 s: the source document is read again (its secret stays \
                   cached for 60 s)"
                .to_owned(),
        });

        // The publisher's idle cost: timer passes with nothing to publish. Its wait doubles
        // after each idle pass up to `OUTBOX_IDLE_INTERVAL`: first the ramp, then the steady
        // state.
        self.after_timer_pass().await;
        let before = self.snapshot();
        let ramp = Duration::from_secs(15);
        tokio::time::sleep(ramp).await;
        rows.push(self.since(
            "outbox publisher, idle, first 15 s (per second)",
            ramp.as_secs() as usize,
            &before,
            "passes 0.5, 1, 2, 4 and 8 s apart: one query per container each".to_owned(),
        ));
        let before = self.snapshot();
        let steady = app_host::OUTBOX_IDLE_INTERVAL * 3;
        tokio::time::sleep(steady).await;
        rows.push(self.since(
            "outbox publisher, idle, steady (per second)",
            steady.as_secs() as usize,
            &before,
            format!(
                "a pass every {} s: one query per container",
                app_host::OUTBOX_IDLE_INTERVAL.as_secs()
            ),
        ));
        Ok(rows)
    }

    async fn create_source(&self) -> anyhow::Result<String> {
        let r = self
            .client
            .post(format!(
                "{}/webhook-gateway/api/webhooks/sources",
                self.base
            ))
            .bearer_auth(&self.tenant)
            .json(&json!({"provider": "github", "secret": GITHUB_SECRET}))
            .send()
            .await?;
        if r.status() != 201 {
            bail!("create source: {} {}", r.status(), r.text().await?);
        }
        let source: Value = r.json().await?;
        source["url"]
            .as_str()
            .map(str::to_owned)
            .context("the source has no url")
    }

    /// One provider registration, until its event is published; returns how long it took.
    async fn create_provider(&self, key: &str) -> anyhow::Result<Duration> {
        let started = Instant::now();
        let deletes = self.deletes();
        let r = self
            .client
            .post(format!("{}/registry/api/integrations/providers", self.base))
            .bearer_auth(&self.operator)
            .json(
                &json!({"key": key, "displayName": format!("Provider {key}"), "category": "crm",
                          "authScheme": "apiKey", "baseUrl": "https://api.example.com"}),
            )
            .send()
            .await?;
        if r.status() != 201 {
            bail!("create provider: {} {}", r.status(), r.text().await?);
        }
        self.published(deletes).await?;
        let took = started.elapsed();
        self.settle().await;
        Ok(took)
    }

    /// One signed GitHub delivery, until its event is published and fanned out.
    async fn inbound(&self, url: &str, delivery: &str) -> anyhow::Result<Duration> {
        let started = Instant::now();
        let deletes = self.deletes();
        let body = format!(r#"{{"action":"opened","delivery":"{delivery}"}}"#);
        let signature = testkit::github_signature(GITHUB_SECRET, body.as_bytes());
        let r = self
            .client
            .post(url)
            .header("content-type", "application/json")
            .header("x-github-event", "pull_request")
            .header("x-github-delivery", delivery)
            .header("x-hub-signature-256", signature)
            .body(body)
            .send()
            .await?;
        if r.status() != 202 {
            bail!("inbound webhook: {} {}", r.status(), r.text().await?);
        }
        self.published(deletes).await?;
        // The gateway's FanOutEvent has consumed the event (completed, so no longer active).
        let fan_out = Entity::subscription(EVENTS_TOPIC, webhook_gateway::SLUG);
        let deadline = Instant::now() + Duration::from_secs(30);
        while self.runner.broker.active_count(&fan_out).await? > 0 {
            if Instant::now() > deadline {
                bail!("the fan-out did not consume the event");
            }
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
        let took = started.elapsed();
        self.settle().await;
        Ok(took)
    }

    fn deletes(&self) -> u64 {
        self.cosmos.usage().get("delete").calls
    }

    /// Waits until the publisher has deleted one more outbox document than `before`.
    async fn published(&self, before: u64) -> anyhow::Result<()> {
        let deadline = Instant::now() + Duration::from_secs(30);
        while self.deletes() <= before {
            if Instant::now() > deadline {
                bail!("the outbox document was not published within 30 s");
            }
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
        Ok(())
    }

    /// Waits until neither adapter has sent a request for [`QUIET`].
    async fn settle(&self) {
        let count = |s: &Snapshot| (s.cosmos.total().requests, s.blobs.total_transactions());
        let mut last = count(&self.snapshot());
        let mut still_since = Instant::now();
        while still_since.elapsed() < QUIET {
            tokio::time::sleep(Duration::from_millis(5)).await;
            let now = count(&self.snapshot());
            if now != last {
                last = now;
                still_since = Instant::now();
            }
        }
    }

    /// Returns right after a publisher timer pass has ended, so the next one is about
    /// [`PUBLISHER_INTERVAL`] away.
    async fn after_timer_pass(&self) {
        let queries = || self.cosmos.usage().get("query").calls;
        let start = queries();
        while queries() == start {
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
        self.settle_briefly().await;
    }

    /// A shorter [`Bench::settle`], for the end of one publisher pass (its queries follow
    /// each other within milliseconds).
    async fn settle_briefly(&self) {
        let mut last = self.cosmos.usage().total().requests;
        let mut still_since = Instant::now();
        while still_since.elapsed() < Duration::from_millis(20) {
            tokio::time::sleep(Duration::from_millis(1)).await;
            let now = self.cosmos.usage().total().requests;
            if now != last {
                last = now;
                still_since = Instant::now();
            }
        }
    }
}

/// The loops rely on each operation (and its settling) ending before the publisher's timer:
/// say so when one did not, since a timer pass then adds its queries to the counts.
fn check_gap(slowest: Duration) {
    if slowest + QUIET >= PUBLISHER_INTERVAL {
        eprintln!(
            "azure_counts: an operation took {slowest:?}; a publisher timer pass may be in the \
             counts (queries slightly high)"
        );
    }
}

fn print_table(rows: &[Row]) {
    #[allow(clippy::print_stdout)]
    {
        println!(
            "| operation | n | Cosmos requests | reads | writes (deletes) | queries | batches | RU reported | blob transactions | puts | other | note |"
        );
        println!("|---|---|---|---|---|---|---|---|---|---|---|---|");
        for row in rows {
            let n = row.operations as f64;
            let c = &row.costs;
            let per = |v: u64| v as f64 / n;
            let writes = c.requests("create")
                + c.requests("replace")
                + c.requests("upsert")
                + c.requests("delete");
            let mut note = row.note.clone();
            if c.requests("container") > 0 {
                note.push_str(&format!(
                    "; {} container property reads",
                    c.requests("container")
                ));
            }
            println!(
                "| {} | {} | {:.2} | {:.2} | {:.2} ({:.2}) | {:.2} | {:.2} | {:.2} | {:.2} | {:.2} | {:.2} | {note} |",
                row.name,
                row.operations,
                per(c.total_requests()),
                per(c.requests("read")),
                per(writes),
                per(c.requests("delete")),
                per(c.requests("query")),
                per(c.requests("batch")),
                c.total_charge() / n,
                per(c.blob_puts + c.blob_other),
                per(c.blob_puts),
                per(c.blob_other),
            );
        }
    }
}
