//! The settings telemetry reads, parsed once at start-up into values that cannot be wrong.
//!
//! Errors name the setting and say what is wrong, but never repeat a value: the connection
//! string carries the instrumentation key, and whatever was pasted into the wrong field may be
//! a secret too.

use std::collections::BTreeMap;
use std::fmt;

use crate::Error;

/// Setting: the Application Insights connection string. Unset or blank: nothing is exported.
pub const CONNECTION_STRING_SETTING: &str = "APPLICATIONINSIGHTS_CONNECTION_STRING";
/// Setting: the fraction of new traces to record, from 0 to 1 (default 1). Traces that
/// arrive with a `traceparent` follow the caller's decision instead.
pub const SAMPLING_RATIO_SETTING: &str = "TELEMETRY_SAMPLING_RATIO";
/// Setting: the log filter of the fmt output (`tracing_subscriber::EnvFilter` syntax).
pub const LOG_FILTER_SETTING: &str = "RUST_LOG";
/// The log filter when `RUST_LOG` is unset or invalid: what the runner and app-host used
/// before this crate (hyper is chatty at info).
pub const DEFAULT_LOG_FILTER: &str = "info,hyper=warn";
/// Setting the Functions host gives every custom handler it starts (and nobody else): its
/// presence chooses [`LogOutput::FunctionsHost`](crate::LogOutput::FunctionsHost).
pub const HANDLER_PORT_SETTING: &str = "FUNCTIONS_CUSTOMHANDLER_PORT";

/// The sampling ratio from [`SAMPLING_RATIO_SETTING`]: 1.0 when unset or blank, otherwise a
/// number from 0 to 1.
pub fn sampling_ratio(settings: &BTreeMap<String, String>) -> Result<f64, Error> {
    let Some(raw) = non_blank(settings, SAMPLING_RATIO_SETTING) else {
        return Ok(1.0);
    };
    match raw.parse::<f64>() {
        // `parse` accepts "NaN" and "inf"; neither is a ratio.
        Ok(ratio) if ratio.is_finite() && (0.0..=1.0).contains(&ratio) => Ok(ratio),
        _ => Err(Error::SamplingRatio {
            value: raw.to_owned(),
        }),
    }
}

/// The fmt output's filter directives: the setting, else the process environment (the
/// runner's settings carry only `local.settings.json`'s keys, and `RUST_LOG=debug cargo run`
/// must keep working), else [`DEFAULT_LOG_FILTER`].
pub(crate) fn log_filter(settings: &BTreeMap<String, String>) -> String {
    non_blank(settings, LOG_FILTER_SETTING)
        .map(str::to_owned)
        .or_else(|| {
            std::env::var(LOG_FILTER_SETTING)
                .ok()
                .filter(|v| !v.trim().is_empty())
        })
        .unwrap_or_else(|| DEFAULT_LOG_FILTER.to_owned())
}

fn non_blank<'a>(settings: &'a BTreeMap<String, String>, name: &str) -> Option<&'a str> {
    settings
        .get(name)
        .map(|v| v.trim())
        .filter(|v| !v.is_empty())
}

/// A checked Application Insights connection string, rebuilt from the fields that were
/// validated so the exporter never sees input it would panic or misbehave on.
///
/// `Debug` leaves the instrumentation key out.
#[derive(Clone, PartialEq, Eq)]
pub(crate) struct ConnectionString {
    instrumentation_key: String,
    /// `None`: the exporter's default (the global ingestion endpoint).
    ingestion_endpoint: Option<String>,
}

impl fmt::Debug for ConnectionString {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ConnectionString")
            .field("instrumentation_key", &"<redacted>")
            .field("ingestion_endpoint", &self.ingestion_endpoint)
            .finish()
    }
}

impl ConnectionString {
    /// [`CONNECTION_STRING_SETTING`] parsed; `Ok(None)` when it is unset or blank.
    pub(crate) fn from_settings(
        settings: &BTreeMap<String, String>,
    ) -> Result<Option<ConnectionString>, Error> {
        non_blank(settings, CONNECTION_STRING_SETTING)
            .map(ConnectionString::parse)
            .transpose()
    }

    /// Parses `Key=Value;Key=Value`. Keys are case-insensitive; blank segments (a trailing
    /// `;`) are ignored; unknown keys (`LiveEndpoint`, `ApplicationId`) are accepted and
    /// unused.
    pub(crate) fn parse(raw: &str) -> Result<ConnectionString, Error> {
        let invalid = |reason: String| Error::ConnectionString { reason };
        let mut key = None;
        let mut endpoint = None;
        let mut suffix = None;
        let mut location = None;
        for segment in raw.split(';').map(str::trim).filter(|s| !s.is_empty()) {
            let Some((name, value)) = segment.split_once('=') else {
                return Err(invalid("every field must be `Name=Value`".to_owned()));
            };
            let name = name.trim();
            if name.is_empty() {
                return Err(invalid("a field has no name".to_owned()));
            }
            // The exporter splits fields on every `=`; a value holding one would be refused
            // there with a less helpful message.
            if value.contains('=') {
                return Err(invalid(format!("the value of `{name}` contains `=`")));
            }
            let value = value.trim().to_owned();
            match name.to_ascii_lowercase().as_str() {
                "instrumentationkey" => key = Some(value),
                "ingestionendpoint" => endpoint = Some(value),
                "endpointsuffix" => suffix = Some(value),
                "location" => location = Some(value),
                "authorization" if !value.eq_ignore_ascii_case("ikey") => {
                    return Err(invalid(
                        "only instrumentation-key connection strings are supported \
                         (`Authorization` must be `ikey` or absent)"
                            .to_owned(),
                    ));
                }
                _ => {}
            }
        }
        let instrumentation_key = key
            .filter(|k| !k.is_empty())
            .ok_or_else(|| invalid("`InstrumentationKey` is missing or empty".to_owned()))?;
        if instrumentation_key.contains(|c: char| c.is_whitespace() || c.is_control()) {
            return Err(invalid(
                "`InstrumentationKey` contains whitespace or control characters".to_owned(),
            ));
        }
        // The same precedence as the exporter and the other Azure SDKs: an explicit endpoint,
        // then one made from `EndpointSuffix` (and `Location`), then the global default.
        let ingestion_endpoint = match (endpoint.filter(|e| !e.is_empty()), suffix) {
            (Some(endpoint), _) => Some(checked_endpoint("IngestionEndpoint", &endpoint)?),
            (None, Some(suffix)) if !suffix.is_empty() => {
                let prefix = location
                    .filter(|l| !l.is_empty())
                    .map(|l| format!("{l}."))
                    .unwrap_or_default();
                Some(checked_endpoint(
                    "EndpointSuffix",
                    &format!("https://{prefix}dc.{suffix}"),
                )?)
            }
            _ => None,
        };
        Ok(ConnectionString {
            instrumentation_key,
            ingestion_endpoint,
        })
    }

    /// The connection string handed to the exporter: only the validated fields.
    pub(crate) fn to_exporter_string(&self) -> String {
        match &self.ingestion_endpoint {
            Some(endpoint) => format!(
                "InstrumentationKey={};IngestionEndpoint={endpoint}",
                self.instrumentation_key
            ),
            None => format!("InstrumentationKey={}", self.instrumentation_key),
        }
    }

    /// Where telemetry goes (scheme and authority, maybe a path); not secret.
    pub(crate) fn ingestion_endpoint(&self) -> &str {
        self.ingestion_endpoint
            .as_deref()
            .unwrap_or("the default ingestion endpoint")
    }
}

/// An endpoint the exporter can append `/v2/track` to: `http(s)://host[:port][/path]`, no
/// query, fragment, user info or whitespace (the exporter panics on an endpoint without a
/// scheme). `http://` becomes `https://`, as the exporter would do anyway: the value logged at
/// start-up is then the one used.
fn checked_endpoint(field: &str, value: &str) -> Result<String, Error> {
    let invalid = |what: &str| Error::ConnectionString {
        reason: format!("`{field}` {what}"),
    };
    if value.contains(|c: char| c.is_whitespace() || c.is_control()) {
        return Err(invalid("contains whitespace"));
    }
    if value.contains(['?', '#']) {
        return Err(invalid("must not have a query or fragment"));
    }
    let uri: http::Uri = value.parse().map_err(|_| invalid("is not a valid URL"))?;
    match uri.scheme_str() {
        Some(s) if s.eq_ignore_ascii_case("https") || s.eq_ignore_ascii_case("http") => {}
        _ => return Err(invalid("must start with `https://`")),
    }
    let Some(authority) = uri.authority() else {
        return Err(invalid("has no host"));
    };
    if authority.as_str().contains('@') {
        return Err(invalid("must not carry user info"));
    }
    if authority.host().is_empty() {
        return Err(invalid("has no host"));
    }
    let rest = value.split_once("://").map_or(value, |(_, rest)| rest);
    Ok(format!("https://{}", rest.trim_end_matches('/')))
}
