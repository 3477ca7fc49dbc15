//! The local runner: every Function App in one process, on the embedded default, with the
//! runner playing the Functions host's part (HTTP forwarding, Service Bus triggers with the
//! host's exact payloads, timers).

pub mod folder;
mod front;
pub mod settings;
mod triggers;

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use app_context::{AppContext, AppRegistration, platform_topology};
use clap::{Args, Parser, Subcommand};
use embedded::SqliteBroker;
use functions_runtime::ncrontab::Schedule;
use functions_runtime::{ServiceBusSource, Trigger};
use ports::{BrokerReceiver, EntitySpec};
use serde_json::json;
use tokio::net::TcpListener;
use tokio::sync::watch;

pub use front::HOST_VERSION;
pub use settings::Settings;

#[derive(Debug, Parser)]
#[command(
    name = "integration-platform",
    version,
    about = "Runs every Integration Platform app locally, in one process"
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Option<Command>,
    #[command(flatten)]
    pub run: RunArgs,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Print a bearer token (last line of stdout) that a runner on the same data folder accepts.
    DevToken {
        #[arg(long)]
        tenant: String,
        /// Role to grant; repeat for several (for example `--role operator`).
        #[arg(long = "role")]
        roles: Vec<String>,
        #[arg(long, default_value = "./.platform")]
        data_dir: PathBuf,
        /// Validity in hours.
        #[arg(long, default_value_t = 12)]
        hours: i64,
    },
}

#[derive(Clone, Debug, Args)]
pub struct RunArgs {
    /// Address to listen on [default: Host.LocalHttpAddress:LocalHttpPort of the settings, else 127.0.0.1:7071].
    #[arg(long)]
    pub listen: Option<SocketAddr>,
    /// Folder of the embedded store, broker, blobs and secrets.
    #[arg(long, default_value = "./.platform")]
    pub data_dir: PathBuf,
    /// Settings in the Core Tools format; the process environment overrides them
    /// [default: local.settings.json, if it exists].
    #[arg(long)]
    pub settings: Option<PathBuf>,
    /// Peek-lock duration of every queue and subscription, in seconds.
    #[arg(long, default_value_t = 60)]
    pub lock_seconds: u64,
    /// Function timeout, in seconds (the host's functionTimeout).
    #[arg(long, default_value_t = 600)]
    pub function_timeout: u64,
    /// Concurrent invocations per Service Bus function (the host's maxConcurrentCalls)
    /// [default: 16 × the processor count, the host's own default].
    #[arg(long)]
    pub max_concurrent_calls: Option<usize>,
}

/// The process environment (names and values that are not Unicode are not settings).
fn environment() -> impl Iterator<Item = (String, String)> {
    std::env::vars_os().filter_map(|(k, v)| Some((k.into_string().ok()?, v.into_string().ok()?)))
}

/// The Functions host's `maxConcurrentCalls` when host.json leaves it out: 16 per processor.
pub fn default_concurrent_calls() -> usize {
    16 * std::thread::available_parallelism().map_or(1, std::num::NonZero::get)
}

/// Entry point of a runner binary hosting `apps`.
pub fn main_with(apps: &[AppRegistration]) -> anyhow::Result<()> {
    let cli = Cli::parse();
    match cli.command {
        Some(Command::DevToken {
            tenant,
            roles,
            data_dir,
            hours,
        }) => {
            let tokens = auth::DevTokens::load_or_create(&data_dir)?;
            let token = tokens
                .issue(
                    &tenant,
                    &roles,
                    chrono::Duration::hours(hours),
                    chrono::Utc::now(),
                )
                .map_err(|e| anyhow::anyhow!("cannot issue a token: {e}"))?;
            eprintln!(
                "token for tenant {tenant:?} (roles: {roles:?}), valid {hours} h; use it as `Authorization: Bearer <token>`:"
            );
            #[allow(clippy::print_stdout)]
            {
                println!("{token}");
            }
            Ok(())
        }
        None => {
            // Logs to stderr, and Application Insights when `local.settings.json` (or the
            // environment) gives its connection string.
            let values = Settings::load(cli.run.settings.as_deref(), environment())?.values;
            let _telemetry = telemetry::init("integration-platform", &values)?;
            let rt = tokio::runtime::Builder::new_multi_thread()
                .enable_all()
                .build()?;
            rt.block_on(async move {
                let runner = Runner::start(apps, cli.run).await?;
                eprintln!("{}", runner.banner());
                functions_runtime::serve::shutdown_signal().await;
                eprintln!("shutting down…");
                runner.shutdown().await;
                Ok(())
            })
        }
    }
}

/// A running platform.
pub struct Runner {
    pub addr: SocketAddr,
    pub data_dir: PathBuf,
    pub context: AppContext,
    pub broker: Arc<SqliteBroker>,
    /// The ports as opened (typed handles on Azure adapters, for their request counters).
    pub ports: app_host::adapters::Ports,
    /// The signer of this data folder's local tokens (what `dev-token` uses).
    pub dev_tokens: auth::DevTokens,
    /// One runner per data folder: held until the runner is dropped.
    _folder: folder::FolderLock,
    summary: Vec<String>,
    /// Where the settings came from, for the banner.
    settings_file: Option<PathBuf>,
    stop: watch::Sender<bool>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

impl Runner {
    /// Opens the data folder, builds every app, creates the topology, binds the listener and
    /// starts the trigger loops and the outbox publisher.
    pub async fn start(apps: &[AppRegistration], args: RunArgs) -> anyhow::Result<Runner> {
        let mut settings = Settings::load(args.settings.as_deref(), environment())?;
        // Before anything opens the folder's databases: a second runner stops here.
        let folder = folder::lock(&args.data_dir)?;
        let (listener, addr) = bind(apps, &args, &mut settings).await?;
        let opened = Opened::open(apps, &args, &settings).await?;
        folder::restrict_files(&args.data_dir)?;
        let (stop, stop_rx) = watch::channel(false);
        let mounter = Mounter {
            settings: &settings,
            context: &opened.context,
            broker: &opened.broker,
            stop: &stop_rx,
            timeout: Duration::from_secs(args.function_timeout.max(1)),
            concurrent_calls: args
                .max_concurrent_calls
                .unwrap_or_else(default_concurrent_calls)
                .max(1),
            lock_duration: opened.lock_duration,
        };
        let mut mounted = Mounted::default();
        for reg in apps {
            mounter.mount(reg, &mut mounted)?;
        }
        let Mounted {
            apps: mounted_apps,
            index,
            summary,
            mut tasks,
        } = mounted;
        tasks.push(spawn_outbox(apps, &opened.context, stop_rx.clone()));
        let front = Arc::new(front::Front {
            apps: mounted_apps,
            index: json!({"platform": "integration-platform", "hostVersion": HOST_VERSION, "apps": index}),
        });
        tasks.push(spawn_front(listener, front, stop_rx));
        let Opened {
            context,
            broker,
            ports,
            dev_tokens,
            ..
        } = opened;
        Ok(Runner {
            addr,
            data_dir: args.data_dir,
            context,
            broker,
            ports,
            dev_tokens,
            _folder: folder,
            summary,
            settings_file: settings.file.clone(),
            stop,
            tasks,
        })
    }

    /// What the runner prints at start-up: where everything is.
    pub fn banner(&self) -> String {
        let mut out = format!(
            "integration-platform listening on http://{}\n  data folder: {} (documents.db: documents and the broker; blobs.db, secrets.db)\n  index: GET http://{}/\n  tokens: integration-platform dev-token --tenant <id> --data-dir {}\n",
            self.addr,
            self.data_dir.display(),
            self.addr,
            self.data_dir.display()
        );
        match &self.settings_file {
            Some(file) => out.push_str(&format!(
                "  settings: {} (the environment overrides it)\n",
                file.display()
            )),
            None => out.push_str(&format!(
                "  settings: the environment only (no {} here)\n",
                settings::DEFAULT_FILE
            )),
        }
        if self.summary.is_empty() {
            out.push_str("  no apps are registered in this build yet\n");
        } else {
            out.push_str("  functions:\n");
            for line in &self.summary {
                out.push_str(line);
                out.push('\n');
            }
        }
        out
    }

    /// Stops accepting work, lets in-flight invocations finish, publishes what is committed.
    pub async fn shutdown(self) {
        let _ = self.stop.send(true);
        for t in self.tasks {
            let _ = t.await;
        }
    }
}

/// Binds the front door (the address given, or `Host.LocalHttpPort`/`LocalHttpAddress` of the
/// settings, or 127.0.0.1:7071) and gives every app its public address (`<SLUG>_URL`) under
/// it, as in Azure where each app has its own host name.
async fn bind(
    apps: &[AppRegistration],
    args: &RunArgs,
    settings: &mut Settings,
) -> anyhow::Result<(TcpListener, SocketAddr)> {
    let listen = match args.listen {
        Some(a) => a,
        None => {
            let host = settings
                .local_http_address
                .clone()
                .unwrap_or_else(|| "127.0.0.1".into());
            let port = settings.local_http_port.unwrap_or(7071);
            format!("{host}:{port}")
                .parse()
                .with_context(|| format!("{host}:{port} is not a listen address"))?
        }
    };
    let listener = TcpListener::bind(listen)
        .await
        .with_context(|| format!("cannot listen on {listen}"))?;
    let addr = listener.local_addr()?;
    for slug in apps.iter().map(|a| a.slug) {
        settings
            .values
            .entry(app_host::url_setting(slug))
            .or_insert_with(|| format!("http://{addr}/{slug}"));
    }
    Ok((listener, addr))
}

/// The ports, the authenticator and the context the apps are built with, and the broker's
/// topology.
struct Opened {
    context: AppContext,
    broker: Arc<SqliteBroker>,
    ports: app_host::adapters::Ports,
    dev_tokens: auth::DevTokens,
    lock_duration: Duration,
}

impl Opened {
    /// The same embedded adapters and authenticator an app's own handler opens; the runner
    /// keeps the broker to consume from it, as the host consumes Service Bus. Documents,
    /// blobs and secrets may live in Azure (or its stand-ins: Azurite, the Cosmos DB
    /// stand-in) when the settings say so; the bus is always the embedded broker, because
    /// the runner consumes it as the Functions host consumes Service Bus.
    async fn open(
        apps: &[AppRegistration],
        args: &RunArgs,
        settings: &Settings,
    ) -> anyhow::Result<Opened> {
        let selection = app_host::adapters::Selection::from_settings(&settings.values);
        if !selection.bus.is_embedded() {
            anyhow::bail!(
                "the local runner delivers messages from its own broker; remove {} and {} from \
                 its settings (deployed apps send to Service Bus, whose triggers the Functions host runs)",
                app_host::adapters::SERVICE_BUS_NAMESPACE,
                app_host::adapters::SERVICE_BUS_REST_CONNECTION
            );
        }
        let embedded = app_host::adapters::open_embedded(&args.data_dir).await?;
        embedded.keep_payloads(app_host::adapters::payload_retention_days(
            &settings.values,
        )?);
        let ports =
            app_host::adapters::open_ports(&selection, &settings.values, Some(&embedded)).await?;
        tracing::info!(adapters = %selection, "adapters opened");
        let dev_tokens = auth::DevTokens::load_or_create(&args.data_dir)?;
        let authenticator =
            app_host::adapters::authenticator(&settings.values, || Ok(dev_tokens.clone()))?;
        let mut context = ports.context(settings.values.clone(), authenticator);
        context.catalogue = app_context::AppContext::catalogue_of(apps);
        let spec = EntitySpec {
            lock_duration: Duration::from_secs(args.lock_seconds.max(1)),
            ..EntitySpec::default()
        };
        embedded
            .broker
            .ensure_topology(&platform_topology(apps, &spec))
            .await?;
        Ok(Opened {
            context,
            broker: embedded.broker.clone(),
            ports,
            dev_tokens,
            lock_duration: spec.lock_duration,
        })
    }
}

/// What mounting the apps produced: their routers, the index, the banner's lines and the
/// trigger loops.
#[derive(Default)]
struct Mounted {
    apps: BTreeMap<String, front::MountedApp>,
    index: Vec<serde_json::Value>,
    summary: Vec<String>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

/// Builds each app and starts what plays its triggers.
struct Mounter<'a> {
    settings: &'a Settings,
    context: &'a AppContext,
    broker: &'a Arc<SqliteBroker>,
    stop: &'a watch::Receiver<bool>,
    timeout: Duration,
    concurrent_calls: usize,
    lock_duration: Duration,
}

impl Mounter<'_> {
    /// Builds the app (its settings checked), checks its declarations and mounts it: HTTP
    /// functions behind the front door, a consumer per Service Bus function, a loop per timer.
    fn mount(&self, reg: &AppRegistration, out: &mut Mounted) -> anyhow::Result<()> {
        let app = (reg.build)(&reg.context_for(self.context))
            .with_context(|| format!("app {}", reg.slug))?
            // Service Bus invocations join the trace of the message that triggered them.
            .with_invocation_spans(telemetry::span_from_traceparent);
        app.validate()
            .with_context(|| format!("app {}", reg.slug))?;
        // Output bindings can set only a message body (no MessageId, session or
        // properties), so the platform sends through the bus port instead and the runner
        // does not play them.
        if let Some(f) = app.declarations().iter().find(|f| !f.outputs.is_empty()) {
            anyhow::bail!(
                "{}/{}: output bindings are not supported by the local runner; send through the bus port",
                reg.slug,
                f.name
            );
        }
        let mounted_app = front::MountedApp::new(&app)?;
        let mut functions = Vec::new();
        for f in app.declarations() {
            let (line, entry) = self.trigger(reg.slug, f, &mounted_app.router, &mut out.tasks)?;
            out.summary.push(line);
            functions.push(entry);
        }
        out.index.push(json!({
            "slug": reg.slug,
            "openapi": format!("/{}/api/{}", reg.slug, functions_runtime::openapi::ROUTE),
            "functions": functions,
        }));
        out.apps.insert(reg.slug.to_owned(), mounted_app);
        Ok(())
    }

    /// Plays one function's trigger; answers its banner line and index entry.
    fn trigger(
        &self,
        slug: &str,
        f: &functions_runtime::FunctionDecl,
        router: &axum::Router,
        tasks: &mut Vec<tokio::task::JoinHandle<()>>,
    ) -> anyhow::Result<(String, serde_json::Value)> {
        Ok(match &f.trigger {
            Trigger::Http { route, methods, .. } => (
                format!(
                    "  {:<16} {:<28} {} /{slug}/api/{route}",
                    slug,
                    f.name,
                    methods.join(",").to_uppercase(),
                ),
                json!({"name": f.name, "trigger": "http", "route": format!("/{slug}/api/{route}"), "methods": methods}),
            ),
            Trigger::ServiceBus { source, .. } => {
                let entity = match source {
                    ServiceBusSource::Queue(q) => ports::Entity::queue(self.settings.resolve(q)?),
                    ServiceBusSource::Subscription {
                        topic,
                        subscription,
                    } => ports::Entity::subscription(
                        self.settings.resolve(topic)?,
                        self.settings.resolve(subscription)?,
                    ),
                };
                let line = format!(
                    "  {:<16} {:<28} service bus {} ({} at a time)",
                    slug,
                    f.name,
                    entity.path(),
                    self.concurrent_calls
                );
                let entry =
                    json!({"name": f.name, "trigger": "serviceBus", "entity": entity.path()});
                let cfg = triggers::ConsumerConfig {
                    function: f.name.clone(),
                    binding: f.trigger_binding.clone(),
                    entity,
                    max_concurrent: self.concurrent_calls,
                    timeout: self.timeout,
                    lock_renew_every: self.lock_duration / 2,
                };
                tasks.push(tokio::spawn(triggers::consume(
                    router.clone(),
                    self.broker.clone(),
                    cfg,
                    self.stop.clone(),
                )));
                (line, entry)
            }
            Trigger::Timer {
                schedule,
                run_on_startup,
                ..
            } => {
                let expr = self.settings.resolve(schedule)?;
                let parsed = Schedule::parse(&expr)
                    .with_context(|| format!("{slug}/{}: schedule {expr:?}", f.name))?;
                let line = format!("  {:<16} {:<28} timer {expr}", slug, f.name);
                let entry = json!({"name": f.name, "trigger": "timer", "schedule": expr});
                let cfg = triggers::TimerConfig {
                    app: slug.to_owned(),
                    function: f.name.clone(),
                    binding: f.trigger_binding.clone(),
                    schedule: parsed,
                    run_on_startup: *run_on_startup,
                    timeout: self.timeout,
                };
                tasks.push(tokio::spawn(triggers::run_timer(
                    router.clone(),
                    self.context.documents.clone(),
                    cfg,
                    self.stop.clone(),
                )));
                (line, entry)
            }
        })
    }
}

/// Events committed by any app reach the bus, even after a crash between commit and publish.
fn spawn_outbox(
    apps: &[AppRegistration],
    context: &AppContext,
    mut stop: watch::Receiver<bool>,
) -> tokio::task::JoinHandle<()> {
    let containers: Vec<String> = apps
        .iter()
        .flat_map(|a| a.containers.iter().map(|c| (*c).to_owned()))
        .collect();
    let publisher = app_host::outbox_publisher(context, containers);
    tokio::spawn(async move {
        publisher
            .run(
                app_host::OUTBOX_INTERVAL,
                app_host::OUTBOX_IDLE_INTERVAL,
                async move {
                    let _ = stop.changed().await;
                },
            )
            .await;
    })
}

/// The HTTP front door, until the runner stops.
fn spawn_front(
    listener: TcpListener,
    front: Arc<front::Front>,
    mut stop: watch::Receiver<bool>,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let shutdown = async move {
            let _ = stop.changed().await;
        };
        if let Err(e) = axum::serve(
            functions_runtime::serve::no_delay(listener),
            front::router(front),
        )
        .with_graceful_shutdown(shutdown)
        .await
        {
            tracing::error!(error = %e, "the HTTP front door stopped");
        }
    })
}
