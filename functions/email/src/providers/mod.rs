//! One module per email provider, and what they share: the network policy ([`Net`]), the
//! reading of `send`'s input, the run summary and vendor error text.

pub mod acs;
pub mod fake;
pub mod sendgrid;
pub mod smtp;

#[cfg(test)]
pub(crate) mod testing;

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

use domain::RunUsage;
use integration_kit::Done;
use reqwest::Url;

use crate::Email;

/// The network policy the adapters apply to addresses users gave (ACS endpoints, SMTP
/// hosts), built once from the app's settings.
///
/// HTTP calls go through the kit's SSRF-guarded client, which checks names at connect time;
/// this adds the check of IP-literal hosts (no resolver sees them) and, in production, the
/// https rule. SMTP does not use that client: [`Net::resolve`] resolves the host itself and
/// keeps only public addresses, except for hosts named in the same allow-list the guard
/// uses (`OUTBOUND_ALLOWED_HOSTS`: development and tests, `127.0.0.1` say), and the
/// connection is made to the addresses checked, so a name cannot re-resolve elsewhere in
/// between.
#[derive(Clone, Debug, Default)]
pub struct Net {
    guard: netguard::Guard,
    allowed: Arc<Vec<String>>,
    requires_https: bool,
}

/// A URL that is an origin (`http(s)://host[:port]`, nothing after it): what a connection's
/// `baseUrl` or `endpoint` must be. The error completes "<field> …".
pub(crate) fn origin_shape(raw: &str) -> Result<Url, String> {
    let bad = || "must be an https origin such as https://name.example.com".to_owned();
    let url = Url::parse(raw.trim()).map_err(|_| bad())?;
    if !matches!(url.scheme(), "http" | "https")
        || url.host_str().is_none()
        || !url.username().is_empty()
        || url.password().is_some()
        || !matches!(url.path(), "" | "/")
        || url.query().is_some()
        || url.fragment().is_some()
    {
        return Err(bad());
    }
    Ok(url)
}

impl Net {
    /// `allowed_hosts`: the `OUTBOUND_ALLOWED_HOSTS` setting (comma-separated names or IPs).
    pub fn new(allowed_hosts: Option<&str>, requires_https: bool) -> Self {
        let allowed = allowed_hosts
            .unwrap_or_default()
            .split(',')
            .map(normalise_host)
            .filter(|h| !h.is_empty())
            .collect();
        Net {
            guard: netguard::Guard::from_setting(allowed_hosts),
            allowed: Arc::new(allowed),
            requires_https,
        }
    }

    /// From the app's settings (the allowed hosts checked as the kit checks them).
    pub fn from_context(
        ctx: &app_context::AppContext,
    ) -> Result<Self, app_context::InvalidSetting> {
        netguard::Guard::from_settings(ctx)?;
        Ok(Net::new(
            ctx.setting(netguard::ALLOWED_HOSTS_SETTING),
            ctx.requires_https(),
        ))
    }

    /// Production: no exceptions, https only.
    pub fn strict() -> Self {
        Net::new(None, true)
    }

    fn allows_host(&self, host: &str) -> bool {
        self.allowed.contains(&normalise_host(host))
    }

    /// A user-supplied origin (`https://host[:port]`, nothing after it): parsed, https unless
    /// in development, and not an internal IP literal unless allowed.
    pub(crate) fn origin(&self, raw: &str, field: &str) -> Result<Url, String> {
        let url = origin_shape(raw).map_err(|e| format!("{field} {e}"))?;
        if self.requires_https && url.scheme() != "https" {
            return Err(format!("{field} must be an https URL"));
        }
        self.guard
            .check_url(&url)
            .map_err(|e| format!("{field} is refused: {e}"))?;
        Ok(url)
    }

    /// The addresses of `host` this app may connect to (see the type's documentation).
    pub(crate) async fn resolve(&self, host: &str, port: u16) -> Result<Vec<SocketAddr>, Resolve> {
        let bare = host.trim_start_matches('[').trim_end_matches(']');
        let found: Vec<SocketAddr> = match bare.parse::<IpAddr>() {
            Ok(ip) => vec![SocketAddr::new(ip, port)],
            Err(_) => tokio::net::lookup_host((bare, port))
                .await
                .map_err(|_| Resolve::NotFound)?
                .collect(),
        };
        if found.is_empty() {
            return Err(Resolve::NotFound);
        }
        if self.allows_host(host) {
            return Ok(found);
        }
        let public: Vec<SocketAddr> = found
            .into_iter()
            .filter(|a| !netguard::is_internal(a.ip()))
            .collect();
        if public.is_empty() {
            return Err(Resolve::Internal);
        }
        Ok(public)
    }
}

/// Why a host could not be used.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Resolve {
    /// The name did not resolve (may pass).
    NotFound,
    /// Only to internal addresses, and the host is not allowed.
    Internal,
}

fn normalise_host(h: &str) -> String {
    h.trim()
        .trim_start_matches('[')
        .trim_end_matches(']')
        .to_ascii_lowercase()
}

/// What a send produced: ids and counts, never addresses, content or secrets.
pub(crate) fn sent(
    email: &Email,
    message_id: Option<String>,
    status: &str,
    attempts: u32,
) -> Done<crate::EmailSent> {
    let done = Done::new(crate::EmailSent {
        message_id: message_id.clone(),
        status: status.to_owned(),
        attempts,
        recipients: email.recipients(),
        attachments: email.attachments.len(),
        polls: None,
    })
    .usage(RunUsage {
        units: email.recipients() as u64,
        ..RunUsage::default()
    });
    match message_id {
        Some(id) => done.vendor_message_id(id),
        None => done,
    }
}

/// A vendor's own error text, fit for a failure message (the kit's: one short line, the
/// call's secrets masked).
pub(crate) use integration_kit::vendor_text;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn origins_are_checked() {
        let strict = Net::strict();
        assert!(
            strict
                .origin("https://contoso.communication.azure.com", "endpoint")
                .is_ok()
        );
        assert!(
            strict
                .origin("https://contoso.communication.azure.com/", "endpoint")
                .is_ok()
        );
        for bad in [
            "contoso.communication.azure.com",
            "https://contoso.communication.azure.com/path",
            "https://contoso.communication.azure.com/?q=1",
            "https://user:pw@contoso.communication.azure.com",
            "ftp://contoso.communication.azure.com",
        ] {
            assert!(strict.origin(bad, "endpoint").is_err(), "{bad}");
        }
        assert!(
            strict
                .origin("http://contoso.communication.azure.com", "endpoint")
                .unwrap_err()
                .contains("https")
        );
        assert!(
            strict
                .origin("https://169.254.169.254", "endpoint")
                .unwrap_err()
                .contains("refused")
        );
        let dev = Net::new(Some("127.0.0.1"), false);
        assert!(dev.origin("http://127.0.0.1:8080", "endpoint").is_ok());
        assert!(dev.origin("http://10.0.0.1", "endpoint").is_err());
    }

    #[tokio::test]
    async fn internal_addresses_are_refused_unless_the_host_is_allowed() {
        let strict = Net::strict();
        assert_eq!(
            strict.resolve("127.0.0.1", 25).await,
            Err(Resolve::Internal)
        );
        assert_eq!(strict.resolve("[::1]", 25).await, Err(Resolve::Internal));
        assert_eq!(
            strict.resolve("localhost", 25).await,
            Err(Resolve::Internal)
        );
        assert_eq!(
            strict.resolve("169.254.169.254", 25).await,
            Err(Resolve::Internal)
        );
        assert_eq!(
            strict.resolve("8.8.8.8", 25).await,
            Ok(vec!["8.8.8.8:25".parse().unwrap()])
        );
        let dev = Net::new(Some(" 127.0.0.1 ,Localhost"), false);
        assert_eq!(
            dev.resolve("127.0.0.1", 2525).await,
            Ok(vec!["127.0.0.1:2525".parse().unwrap()])
        );
        assert!(dev.resolve("LOCALHOST", 2525).await.is_ok());
        assert_eq!(dev.resolve("10.0.0.1", 25).await, Err(Resolve::Internal));
    }
}
