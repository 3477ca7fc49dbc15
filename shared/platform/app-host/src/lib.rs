//! The custom-handler process of one Function App: what each app's `handler` binary runs.
//!
//! The Functions host starts the handler with the app settings as environment variables and
//! `FUNCTIONS_CUSTOMHANDLER_PORT`; [`main`] reads those, chooses an adapter for each port by
//! settings ([`adapters::Selection`]), builds the app, publishes its outbox in the
//! background and serves the app on `127.0.0.1:$FUNCTIONS_CUSTOMHANDLER_PORT`.
//!
//! It never consumes a queue: in Azure (and under Core Tools) the host owns the Service Bus
//! triggers and the timers and calls the handler for each message or tick. Consuming here
//! as well would steal the host's messages.
//!
//! ```no_run
//! # fn registration() -> app_context::AppRegistration { unimplemented!() }
//! # fn catalogue() -> Vec<app_context::AppCatalogue> { unimplemented!() }
//! fn main() -> std::process::ExitCode {
//!     app_host::main(registration(), catalogue())
//! }
//! ```

pub mod adapters;

use std::collections::BTreeMap;
use std::future::Future;
use std::net::{Ipv4Addr, SocketAddr};
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context as _;
use app_context::{AppContext, AppRegistration, platform_topology};
use ports::{BrokerReceiver, EntitySpec};
use tokio::net::TcpListener;
use tokio::sync::watch;

/// Setting: the data folder of the embedded default (documents, broker, blobs, secrets and
/// the local token key). Relative paths are under the working directory, which the host
/// sets to the app's folder.
pub const DATA_DIR_SETTING: &str = "PLATFORM_DATA_DIR";
/// The data folder when `PLATFORM_DATA_DIR` is not set.
pub const DEFAULT_DATA_DIR: &str = ".platform";
/// How often the outbox publisher looks for events that no writer announced (a crash
/// between commit and publish leaves such events).
pub const OUTBOX_INTERVAL: Duration = Duration::from_millis(500);
/// The longest wait between the outbox publisher's unprompted passes when they keep finding
/// nothing (see `outbox::next_wait`).
pub const OUTBOX_IDLE_INTERVAL: Duration = Duration::from_secs(8);

pub use app_context::url_setting;

/// The process environment as settings (the host passes app settings as environment
/// variables). Variables that are not UTF-8 cannot be settings and are skipped.
pub fn settings_from_env() -> BTreeMap<String, String> {
    std::env::vars_os()
        .filter_map(|(k, v)| Some((k.into_string().ok()?, v.into_string().ok()?)))
        .collect()
}

/// Entry point of an app's `handler` binary. Errors go to stderr (the host logs them) and
/// end the process with a failure code, which the host counts as a worker error and
/// restarts.
/// `catalogue`: the providers every app of the platform has adapters for (the registry
/// registers them on first use); the one app list gives it.
/// The handler of a platform of `apps`: the app is the one its first argument names (the
/// package's host.json gives each Function App its slug as `customHandler.description
/// .arguments`), then as [`main`].
pub fn main_of(apps: Vec<AppRegistration>, catalogue: Vec<app_context::AppCatalogue>) -> ExitCode {
    match pick(apps, std::env::args().nth(1).as_deref()) {
        Ok(registration) => main(registration, catalogue),
        Err(e) => {
            eprintln!("{e}");
            ExitCode::FAILURE
        }
    }
}

/// The app `slug` names among `apps`.
pub fn pick(apps: Vec<AppRegistration>, slug: Option<&str>) -> Result<AppRegistration, String> {
    let known = || apps.iter().map(|a| a.slug).collect::<Vec<_>>().join(", ");
    let Some(slug) = slug else {
        return Err(format!(
            "name the app to serve as the first argument (host.json's customHandler.description.arguments): one of {}",
            known()
        ));
    };
    let unknown = format!("no app named {slug:?}; the apps are {}", known());
    apps.into_iter().find(|a| a.slug == slug).ok_or(unknown)
}

pub fn main(registration: AppRegistration, catalogue: Vec<app_context::AppCatalogue>) -> ExitCode {
    let settings = settings_from_env();
    // Logs as the host reads them, and Application Insights when its connection string is
    // set; the guard flushes what is queued when `main` returns.
    let _telemetry = match telemetry::init(registration.slug, &settings) {
        Ok(guard) => guard,
        Err(e) => {
            eprintln!("{}: {e}", registration.slug);
            return ExitCode::FAILURE;
        }
    };
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("{}: cannot start the async runtime: {e}", registration.slug);
            return ExitCode::FAILURE;
        }
    };
    let slug = registration.slug;
    let result = runtime.block_on(async move {
        let port = functions_runtime::serve::port_from_env(|k| settings.get(k).cloned())?;
        // The host connects to the literal 127.0.0.1: an IPv6-only listener would never be
        // seen as ready.
        let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, port));
        let listener = TcpListener::bind(addr)
            .await
            .with_context(|| format!("cannot listen on {addr}"))?;
        run(
            &registration,
            settings,
            std::sync::Arc::new(catalogue),
            listener,
            functions_runtime::serve::shutdown_signal(),
        )
        .await
    });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("{slug}: {e:#}");
            ExitCode::FAILURE
        }
    }
}

/// Builds the context for `registration` from `settings`: adapters chosen by settings, the
/// embedded broker given this app's entities (so its sends have somewhere to go), the
/// authenticator.
pub async fn open(
    registration: &AppRegistration,
    settings: BTreeMap<String, String>,
) -> anyhow::Result<AppContext> {
    let selection = adapters::Selection::from_settings(&settings);
    let data_dir = settings
        .get(DATA_DIR_SETTING)
        .map(|d| d.trim())
        .filter(|d| !d.is_empty())
        .map_or_else(|| PathBuf::from(DEFAULT_DATA_DIR), PathBuf::from);
    // The data folder only when some port lives there: in Azure every port is a service and
    // an instance's disk holds nothing.
    let embedded = if selection.any_embedded() {
        let embedded = adapters::open_embedded(&data_dir).await?;
        embedded.keep_payloads(adapters::payload_retention_days(&settings)?);
        if selection.bus.is_embedded() {
            embedded
                .broker
                .ensure_topology(&platform_topology(
                    std::slice::from_ref(registration),
                    &EntitySpec::default(),
                ))
                .await
                .context("cannot create the app's entities in the embedded broker")?;
        }
        Some(embedded)
    } else {
        None
    };
    let ports = adapters::open_ports(&selection, &settings, embedded.as_ref()).await?;
    let authenticator = adapters::authenticator(&settings, || {
        auth::DevTokens::load_or_create(&data_dir)
            .with_context(|| format!("cannot load the local token key in {}", data_dir.display()))
    })?;
    tracing::info!(
        app = registration.slug,
        data_dir = %data_dir.display(),
        adapters = %selection,
        "adapters opened"
    );
    Ok(ports.context(settings, authenticator))
}

/// The outbox publisher for `containers`, sending through the context's bus and woken by
/// the context's outbox waker (what apps poke after a commit).
pub fn outbox_publisher(ctx: &AppContext, containers: Vec<String>) -> outbox::OutboxPublisher {
    outbox::OutboxPublisher::with_waker(
        ctx.documents.clone(),
        ctx.bus.clone(),
        containers,
        ctx.outbox_waker.clone(),
    )
}

/// Runs the app on `listener` until `shutdown` completes: builds it, checks its
/// declarations, publishes its outbox in the background and serves the custom-handler
/// protocol. After the server stops, the publisher makes one last pass, so events committed
/// just before shutdown still go out.
pub async fn run(
    registration: &AppRegistration,
    settings: BTreeMap<String, String>,
    catalogue: std::sync::Arc<Vec<app_context::AppCatalogue>>,
    listener: TcpListener,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    let mut context = open(registration, settings).await?;
    context.catalogue = catalogue;
    let app = (registration.build)(&registration.context_for(&context))
        .with_context(|| format!("app {}", registration.slug))?
        // Service Bus invocations join the trace of the message that triggered them.
        .with_invocation_spans(telemetry::span_from_traceparent);
    app.validate()
        .with_context(|| format!("app {}", registration.slug))?;
    let containers = registration
        .containers
        .iter()
        .map(|c| (*c).to_owned())
        .collect();
    let publisher = outbox_publisher(&context, containers);
    let (stop, mut stop_rx) = watch::channel(false);
    let publishing = tokio::spawn(async move {
        publisher
            .run(OUTBOX_INTERVAL, OUTBOX_IDLE_INTERVAL, async move {
                let _ = stop_rx.changed().await;
            })
            .await;
    });
    let addr = listener.local_addr()?;
    tracing::info!(app = registration.slug, %addr, "custom handler listening");
    // Every invocation reaches the handler as an HTTP request from the host: one request
    // span each, continuing the `traceparent` it carries (exported when Application
    // Insights is configured).
    let router = app.router().layer(telemetry::HttpServerLayer);
    let served = axum::serve(functions_runtime::serve::no_delay(listener), router)
        .with_graceful_shutdown(shutdown)
        .await
        .map_err(functions_runtime::serve::ServeError::from);
    let _ = stop.send(true);
    if let Err(e) = publishing.await {
        tracing::error!(error = %e, "the outbox publisher stopped abnormally");
    }
    served.with_context(|| format!("serving {}", registration.slug))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn url_settings_are_named_after_the_slug() {
        assert_eq!(url_setting("registry"), "REGISTRY_URL");
        assert_eq!(url_setting("webhook-gateway"), "WEBHOOK_GATEWAY_URL");
        // (Spelled in pieces: the Bicep checks read every quoted setting name in the code
        // as one the code reads.)
        assert_eq!(
            url_setting("azure-openai"),
            ["AZURE", "OPENAI", "URL"].join("_")
        );
    }
}
