#![doc = include_str!("../README.md")]

mod context;
mod exporter;
mod settings;
mod spans;

#[cfg(test)]
mod tests;

use std::collections::BTreeMap;
use std::fmt;
use std::time::Duration;

use opentelemetry::trace::TracerProvider as _;
use opentelemetry_sdk::trace::SdkTracerProvider;
use tracing::level_filters::LevelFilter;
use tracing::{Dispatch, Level};
use tracing_subscriber::filter::{EnvFilter, Targets};
use tracing_subscriber::fmt::writer::MakeWriterExt as _;
use tracing_subscriber::layer::SubscriberExt as _;
use tracing_subscriber::util::SubscriberInitExt as _;
use tracing_subscriber::{Layer as _, Registry};

pub use context::{
    TRACEPARENT, TRACESTATE, current_traceparent, inject_trace_headers, set_remote_parent,
    span_from_traceparent,
};
pub use settings::{
    CONNECTION_STRING_SETTING, DEFAULT_LOG_FILTER, HANDLER_PORT_SETTING, LOG_FILTER_SETTING,
    SAMPLING_RATIO_SETTING, sampling_ratio,
};
pub use spans::{
    HttpServer, HttpServerLayer, http_client_span, http_server_span, record_dependency_status,
    record_failure, record_response_status,
};

/// How long dropping the guard may wait for the last spans to be exported. Bounded so a
/// process whose ingestion endpoint is unreachable still exits promptly (the host kills slow
/// handlers anyway).
pub const SHUTDOWN_TIMEOUT: Duration = Duration::from_secs(5);

/// Targets never sent to Application Insights: the exporter's own stack. Its uploads run
/// through reqwest, hyper, h2 and rustls; tracing them would export spans about exporting,
/// each upload causing another. They still reach the fmt output under `RUST_LOG`.
const EXPORTER_TARGETS: [&str; 5] = ["opentelemetry", "reqwest", "hyper", "h2", "rustls"];

/// What can go wrong setting telemetry up. Messages name the setting at fault and never carry
/// the connection string or its instrumentation key.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The service name is empty.
    #[error("the service name must not be empty (it becomes the Application Insights role)")]
    ServiceName,
    /// `APPLICATIONINSIGHTS_CONNECTION_STRING` is set but unusable.
    #[error("APPLICATIONINSIGHTS_CONNECTION_STRING is not valid: {reason}")]
    ConnectionString {
        /// What is wrong, without any value from the string.
        reason: String,
    },
    /// `TELEMETRY_SAMPLING_RATIO` is not a number from 0 to 1.
    #[error("TELEMETRY_SAMPLING_RATIO must be a number from 0 to 1 (got {value:?})")]
    SamplingRatio {
        /// The setting's value.
        value: String,
    },
    /// The exporter's HTTP client could not be built.
    #[error("cannot build the Application Insights client: {0}")]
    HttpClient(String),
    /// A global subscriber (this crate's or another) is already installed.
    #[error("tracing is already initialised in this process")]
    AlreadyInitialized,
}

/// Where the human-readable log lines go.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogOutput {
    /// Every line to stderr, coloured when the terminal allows (`NO_COLOR` is honoured): the
    /// local runner, a person reading.
    Terminal,
    /// As the Functions host reads a handler's output: stdout lines become Information and
    /// stderr lines Errors (or Warnings when they say "warn"), so only warnings and errors go
    /// to stderr. No colours: the host stores the text.
    FunctionsHost,
}

impl LogOutput {
    /// [`LogOutput::FunctionsHost`] when `FUNCTIONS_CUSTOMHANDLER_PORT` is set (the host
    /// starts every custom handler with it), else [`LogOutput::Terminal`].
    pub fn from_settings(settings: &BTreeMap<String, String>) -> LogOutput {
        if settings.contains_key(HANDLER_PORT_SETTING) {
            LogOutput::FunctionsHost
        } else {
            LogOutput::Terminal
        }
    }
}

/// Keeps the tracer provider alive; dropping it exports what is still queued and shuts the
/// provider down, waiting at most [`SHUTDOWN_TIMEOUT`]. Keep it in `main` until the process
/// ends, and drop it outside the async runtime when you can (the wait blocks the thread).
#[must_use = "dropping the guard stops exporting"]
pub struct TelemetryGuard {
    provider: SdkTracerProvider,
    exporting: bool,
}

impl TelemetryGuard {
    /// Whether spans are exported to Application Insights (a connection string is set).
    pub fn is_exporting(&self) -> bool {
        self.exporting
    }

    /// Exports what is queued now, e.g. before a pause in which the process may be frozen.
    pub fn flush(&self) {
        if let Err(e) = self.provider.force_flush() {
            tracing::warn!(error = %e, "cannot flush the Application Insights exporter");
        }
    }
}

impl fmt::Debug for TelemetryGuard {
    // The provider's own `Debug` reaches the exporter, which prints the instrumentation key.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TelemetryGuard")
            .field("exporting", &self.exporting)
            .finish_non_exhaustive()
    }
}

impl Drop for TelemetryGuard {
    fn drop(&mut self) {
        if let Err(e) = self.provider.shutdown_with_timeout(SHUTDOWN_TIMEOUT) {
            // The fmt layer is still installed: the line reaches the log.
            tracing::warn!(error = %e, "the Application Insights exporter did not shut down cleanly");
        }
    }
}

/// Installs the process's tracing: logs (`RUST_LOG`, default [`DEFAULT_LOG_FILTER`]) in the
/// format [`LogOutput::from_settings`] chooses, W3C trace context on every span, and export
/// to Application Insights when `APPLICATIONINSIGHTS_CONNECTION_STRING` is set.
///
/// `service_name` becomes `service.name` (the Application Insights role); use the app's slug,
/// or `integration-platform` for the runner. Call it once, first thing in `main`; a second
/// call (or any other global subscriber) gives [`Error::AlreadyInitialized`].
pub fn init(
    service_name: &str,
    settings: &BTreeMap<String, String>,
) -> Result<TelemetryGuard, Error> {
    init_with(service_name, settings, LogOutput::from_settings(settings))
}

/// [`init`] with the log output chosen by the caller.
pub fn init_with(
    service_name: &str,
    settings: &BTreeMap<String, String>,
    output: LogOutput,
) -> Result<TelemetryGuard, Error> {
    // Checked first so a second call builds no exporter; `try_init` below still catches a
    // subscriber installed in between.
    if tracing::dispatcher::has_been_set() {
        return Err(Error::AlreadyInitialized);
    }
    let (dispatch, guard) = subscriber(service_name, settings, output)?;
    // Also bridges the `log` crate into tracing, as the subscribers this replaces did. On
    // failure the guard is dropped here and shuts its provider down.
    dispatch.try_init().map_err(|_| Error::AlreadyInitialized)?;
    Ok(guard)
}

/// Builds the subscriber [`init`] installs, without installing it: for tests, which scope it
/// with `tracing::dispatcher::with_default` (or `set_default`) instead of taking the
/// process-wide slot.
pub fn subscriber(
    service_name: &str,
    settings: &BTreeMap<String, String>,
    output: LogOutput,
) -> Result<(Dispatch, TelemetryGuard), Error> {
    let service_name = service_name.trim();
    if service_name.is_empty() {
        return Err(Error::ServiceName);
    }
    let ratio = sampling_ratio(settings)?;
    let connection = settings::ConnectionString::from_settings(settings)?;
    let provider = exporter::provider(service_name, ratio, connection.as_ref())?;

    let directives = settings::log_filter(settings);
    let (log_filter, bad_filter) = match EnvFilter::try_new(&directives) {
        Ok(filter) => (filter, None),
        // A typo in a log filter must not stop an app: fall back, as the code this replaces
        // did, but say so.
        Err(e) => (EnvFilter::new(DEFAULT_LOG_FILTER), Some(e.to_string())),
    };
    let fmt_layer = match output {
        LogOutput::Terminal => tracing_subscriber::fmt::layer()
            .with_writer(std::io::stderr)
            .boxed(),
        LogOutput::FunctionsHost => tracing_subscriber::fmt::layer()
            .with_ansi(false)
            .with_writer(
                std::io::stderr
                    .with_max_level(Level::WARN)
                    .or_else(std::io::stdout),
            )
            .boxed(),
    };
    let otel_layer = tracing_opentelemetry::layer()
        .with_tracer(provider.tracer("telemetry"))
        // Every attribute is a property on every exported item, and ingestion is billed by
        // volume: thread names and busy/idle nanoseconds say little that the duration and
        // the code location do not.
        .with_threads(false)
        .with_tracked_inactivity(false)
        .with_filter(otel_filter());
    let dispatch = Dispatch::new(
        Registry::default()
            .with(fmt_layer.with_filter(log_filter))
            .with(otel_layer),
    );

    tracing::dispatcher::with_default(&dispatch, || {
        if let Some(error) = &bad_filter {
            tracing::warn!(
                filter = %directives,
                %error,
                default = DEFAULT_LOG_FILTER,
                "RUST_LOG is not a valid filter; using the default"
            );
        }
        match &connection {
            // The endpoint is not secret; the key is never logged.
            Some(c) => tracing::info!(
                service = service_name,
                sampling_ratio = ratio,
                endpoint = c.ingestion_endpoint(),
                "exporting traces to Application Insights"
            ),
            None => tracing::debug!(
                service = service_name,
                "APPLICATIONINSIGHTS_CONNECTION_STRING is not set; not exporting traces"
            ),
        }
    });
    let guard = TelemetryGuard {
        provider,
        exporting: connection.is_some(),
    };
    Ok((dispatch, guard))
}

/// What the OpenTelemetry layer sees: info and above (debug spans would multiply the volume
/// and cost of what is exported), never the exporter's own stack.
fn otel_filter() -> Targets {
    EXPORTER_TARGETS
        .iter()
        .fold(Targets::new().with_default(Level::INFO), |t, target| {
            t.with_target(*target, LevelFilter::OFF)
        })
}
