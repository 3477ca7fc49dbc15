//! The OpenTelemetry tracer provider: sampling, `service.name`, and the Application Insights
//! exporter when a connection string is configured.

use std::time::Duration;

use opentelemetry_application_insights::Exporter;
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::trace::{Sampler, SdkTracerProvider};

use crate::Error;
use crate::settings::ConnectionString;

/// How long the exporter may take to connect to the ingestion endpoint.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// How long one upload may take. The exporter retries failed uploads for up to 35 s; the
/// guard's bounded shutdown is what keeps a process from hanging on exit, not this.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);

type AppInsightsExporter = Exporter<reqwest::blocking::Client>;

/// The provider every span goes through. Without an exporter it still samples and assigns
/// ids, so trace context propagates between apps even when nothing is exported.
pub(crate) fn provider(
    service_name: &str,
    sampling_ratio: f64,
    connection: Option<&ConnectionString>,
) -> Result<SdkTracerProvider, Error> {
    // Parent-based: a trace that arrives with a decision keeps it, so one trace is never
    // half-recorded across apps; only new traces are sampled by ratio.
    let sampler = Sampler::ParentBased(Box::new(Sampler::TraceIdRatioBased(sampling_ratio)));
    // `builder_empty`: the default detectors would read `OTEL_SERVICE_NAME` and friends from
    // the process environment behind the settings' back.
    let resource = Resource::builder_empty()
        .with_service_name(service_name.to_owned())
        .build();
    let mut builder = SdkTracerProvider::builder()
        .with_sampler(sampler)
        .with_resource(resource);
    if let Some(connection) = connection {
        // The thread-based batch processor: exports on its own thread, so it needs no async
        // runtime and works before the app builds one.
        builder = builder.with_batch_exporter(exporter(connection, sampling_ratio)?);
    }
    Ok(builder.build())
}

/// The Application Insights exporter with a blocking reqwest client.
///
/// Built on a thread of its own: a blocking client runs its own runtime, and building or
/// dropping one on a tokio worker panics. `init` may be called from inside a runtime (the
/// runner's tests do), so neither may happen on the caller's thread. On success the exporter
/// moves into the batch processor's thread, where it is eventually dropped.
fn exporter(
    connection: &ConnectionString,
    sampling_ratio: f64,
) -> Result<AppInsightsExporter, Error> {
    let connection_string = connection.to_exporter_string();
    std::thread::Builder::new()
        .name("telemetry-setup".to_owned())
        .spawn(move || {
            let client = reqwest::blocking::Client::builder()
                .connect_timeout(CONNECT_TIMEOUT)
                .timeout(REQUEST_TIMEOUT)
                // The ingestion endpoint answers directly; a redirect is not followed with
                // the payload.
                .redirect(reqwest::redirect::Policy::none())
                .build()
                .map_err(|e| Error::HttpClient(e.to_string()))?;
            Exporter::new_from_connection_string(connection_string, client)
                // Tells Application Insights each item stands for 1/ratio of the traffic, so
                // its counts are extrapolated correctly.
                .map(|exporter| exporter.with_sample_rate(sampling_ratio))
                // The exporter's parse errors name no value; it has already accepted what our
                // own parser accepted, so this is a belt-and-braces path.
                .map_err(|e| Error::ConnectionString {
                    reason: e.to_string(),
                })
        })
        .map_err(|e| Error::HttpClient(format!("cannot start a thread: {e}")))?
        .join()
        .map_err(|_| Error::HttpClient("building the client panicked".to_owned()))?
}
