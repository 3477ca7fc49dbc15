//! SSRF protection for every outbound call to a URL a user gave (OAuth2 token endpoints,
//! webhook endpoints, vendor base URLs).
//!
//! Addresses are checked where they are used: a resolver that drops forbidden addresses
//! from every DNS answer (so a name that re-resolves to `169.254.169.254` between a check and
//! the connection — DNS rebinding — still cannot be reached), plus a check of IP-literal
//! hosts, which no resolver sees. Redirects are not followed. Development and tests name the
//! hosts they may reach on private networks explicitly (`OUTBOUND_ALLOWED_HOSTS`).

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use reqwest::Url;
use reqwest::dns::{Addrs, Name, Resolve, Resolving};

/// The setting listing hosts (names or IPs, comma-separated) allowed despite being private.
pub const ALLOWED_HOSTS_SETTING: &str = "OUTBOUND_ALLOWED_HOSTS";

#[derive(Debug, thiserror::Error, PartialEq)]
pub enum Refused {
    #[error("{0} is a loopback, private, link-local or otherwise internal address")]
    Internal(IpAddr),
    #[error("the URL has no host")]
    NoHost,
    #[error("only http and https URLs may be called")]
    Scheme,
}

/// Addresses no user-supplied URL may reach.
pub fn is_internal(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => internal_v4(v4),
        IpAddr::V6(v6) => {
            if let Some(v4) = v6.to_ipv4_mapped() {
                return internal_v4(v4);
            }
            let s = v6.segments();
            v6.is_loopback()
                || v6.is_unspecified()
                || v6.is_multicast()
                || (s[0] & 0xfe00) == 0xfc00 // unique local fc00::/7
                || (s[0] & 0xffc0) == 0xfe80 // link-local fe80::/10
                || (s[0] == 0x64 && s[1] == 0xff9b) // NAT64 (embeds IPv4)
                || (s[0] == 0x2001 && s[1] == 0x0db8) // documentation
        }
    }
}

fn internal_v4(ip: Ipv4Addr) -> bool {
    let o = ip.octets();
    ip.is_loopback()
        || ip.is_private()
        || ip.is_link_local() // 169.254.0.0/16, cloud metadata included
        || ip.is_unspecified()
        || ip.is_broadcast()
        || ip.is_multicast()
        || ip.is_documentation()
        || o[0] == 0 // "this network"
        || (o[0] == 100 && (o[1] & 0xc0) == 64) // carrier-grade NAT 100.64.0.0/10
        || (o[0] == 192 && o[1] == 0 && o[2] == 0) // IETF protocol assignments
        || (o[0] == 198 && (o[1] & 0xfe) == 18) // benchmarking 198.18.0.0/15
        || o[0] >= 240 // reserved
}

/// Which internal hosts may be reached anyway (development and tests only).
#[derive(Clone, Debug, Default)]
pub struct Guard {
    allowed: Arc<Vec<String>>,
}

impl Guard {
    /// No exceptions: production.
    pub fn strict() -> Self {
        Guard::default()
    }

    /// Exceptions from the app's settings ([`ALLOWED_HOSTS_SETTING`]), read at start-up: a
    /// list of bare host names or IP addresses; anything else (a URL, a port, a path) is
    /// refused rather than silently never matching.
    pub fn from_settings(source: &impl settings::Source) -> Result<Self, settings::InvalidSetting> {
        settings::parsed(source, ALLOWED_HOSTS_SETTING, |v| {
            let bare = |h: &str| {
                let h = h.trim();
                let ip = h
                    .trim_start_matches('[')
                    .trim_end_matches(']')
                    .parse::<IpAddr>()
                    .is_ok();
                ip || (!h.is_empty()
                    && h.chars()
                        .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '.'))
            };
            if v.split(',').all(|h| h.trim().is_empty() || bare(h)) {
                Ok(Guard::from_setting(Some(v)))
            } else {
                Err("a comma-separated list of host names or IP addresses".to_owned())
            }
        })
        .map(Option::unwrap_or_default)
    }

    /// Exceptions from the `OUTBOUND_ALLOWED_HOSTS` setting (`127.0.0.1,localhost`).
    pub fn from_setting(value: Option<&str>) -> Self {
        let allowed = value
            .unwrap_or_default()
            .split(',')
            .map(|h| {
                h.trim()
                    .trim_start_matches('[')
                    .trim_end_matches(']')
                    .to_ascii_lowercase()
            })
            .filter(|h| !h.is_empty())
            .collect();
        Guard {
            allowed: Arc::new(allowed),
        }
    }

    fn allows_host(&self, host: &str) -> bool {
        let host = host
            .trim_start_matches('[')
            .trim_end_matches(']')
            .to_ascii_lowercase();
        self.allowed.contains(&host)
    }

    /// Checks a URL before calling it: scheme, and IP-literal hosts (names are checked by
    /// the resolver at connection time).
    pub fn check_url(&self, url: &Url) -> Result<(), Refused> {
        if !matches!(url.scheme(), "http" | "https") {
            return Err(Refused::Scheme);
        }
        let host = url.host_str().ok_or(Refused::NoHost)?;
        if self.allows_host(host) {
            return Ok(());
        }
        if let Ok(ip) = host
            .trim_start_matches('[')
            .trim_end_matches(']')
            .parse::<IpAddr>()
            && is_internal(ip)
        {
            return Err(Refused::Internal(ip));
        }
        Ok(())
    }

    /// An HTTP client that can only connect to addresses this guard allows, follows no
    /// redirects, and gives up after `timeout`.
    pub fn client(&self, timeout: Duration) -> reqwest::Client {
        reqwest::Client::builder()
            .dns_resolver(Arc::new(GuardedResolver {
                guard: self.clone(),
            }))
            .redirect(reqwest::redirect::Policy::none())
            .timeout(timeout)
            .build()
            // Building fails only for TLS back-end set-up errors; a default client is no
            // less safe here (the guard still applies through `check_url` at call sites).
            .unwrap_or_default()
    }
}

struct GuardedResolver {
    guard: Guard,
}

impl Resolve for GuardedResolver {
    fn resolve(&self, name: Name) -> Resolving {
        let guard = self.guard.clone();
        Box::pin(async move {
            let host = name.as_str().to_owned();
            let allowed = guard.allows_host(&host);
            let found: Vec<SocketAddr> =
                tokio::net::lookup_host((host.as_str(), 0)).await?.collect();
            let usable: Vec<SocketAddr> = found
                .iter()
                .copied()
                .filter(|a| allowed || !is_internal(a.ip()))
                .collect();
            if usable.is_empty() {
                let ip = found
                    .first()
                    .map(|a| a.ip())
                    .unwrap_or(IpAddr::V6(Ipv6Addr::UNSPECIFIED));
                return Err(
                    Box::new(Refused::Internal(ip)) as Box<dyn std::error::Error + Send + Sync>
                );
            }
            Ok(Box::new(usable.into_iter()) as Addrs)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn internal_addresses_are_recognised() {
        for ip in [
            "127.0.0.1",
            "10.1.2.3",
            "172.16.0.1",
            "192.168.1.1",
            "169.254.169.254",
            "0.0.0.0",
            "100.64.0.1",
            "255.255.255.255",
            "224.0.0.1",
            "::1",
            "::",
            "fc00::1",
            "fd12::1",
            "fe80::1",
            "::ffff:127.0.0.1",
            "::ffff:169.254.169.254",
            "64:ff9b::a9fe:a9fe",
        ] {
            assert!(is_internal(ip.parse().unwrap()), "{ip} is internal");
        }
        for ip in [
            "8.8.8.8",
            "20.190.128.1",
            "2606:4700:4700::1111",
            "::ffff:8.8.8.8",
        ] {
            assert!(!is_internal(ip.parse().unwrap()), "{ip} is public");
        }
    }

    #[test]
    fn the_allowed_hosts_setting_takes_bare_hosts_only() {
        let ok = [(ALLOWED_HOSTS_SETTING, "127.0.0.1, localhost,[::1]")];
        let guard = Guard::from_settings(&ok).unwrap();
        assert!(guard.allows_host("localhost") && guard.allows_host("::1"));
        let unset: [(&str, &str); 0] = [];
        assert!(
            !Guard::from_settings(&unset)
                .unwrap()
                .allows_host("localhost")
        );
        for bad in ["http://localhost", "localhost:8080", "127.0.0.1/8", "a b"] {
            let err = Guard::from_settings(&[(ALLOWED_HOSTS_SETTING, bad)]).unwrap_err();
            assert_eq!(err.name, ALLOWED_HOSTS_SETTING, "{bad}");
        }
    }

    #[test]
    fn literal_hosts_and_schemes_are_checked_and_exceptions_are_explicit() {
        let strict = Guard::strict();
        let url = |s: &str| Url::parse(s).unwrap();
        assert!(matches!(
            strict.check_url(&url("http://169.254.169.254/latest")),
            Err(Refused::Internal(_))
        ));
        assert!(matches!(
            strict.check_url(&url("https://[::1]:8443/")),
            Err(Refused::Internal(_))
        ));
        assert!(
            matches!(
                strict.check_url(&url("http://0x7f.1/")),
                Err(Refused::Internal(_))
            ),
            "hex IPv4 is normalised by the URL parser"
        );
        assert_eq!(
            strict.check_url(&url("ftp://example.com/")),
            Err(Refused::Scheme)
        );
        assert!(
            strict
                .check_url(&url("https://login.example.com/token"))
                .is_ok(),
            "names are checked at connect time"
        );
        let dev = Guard::from_setting(Some("127.0.0.1, localhost"));
        assert!(dev.check_url(&url("http://127.0.0.1:9/")).is_ok());
        assert!(
            dev.check_url(&url("http://10.0.0.1/")).is_err(),
            "only the hosts named"
        );
    }

    #[tokio::test]
    async fn names_resolving_to_internal_addresses_are_refused_at_connect_time() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        tokio::spawn(async move {
            axum::serve(
                listener,
                axum::Router::new().route("/", axum::routing::get(|| async { "ok" })),
            )
            .await
        });
        // `localhost` resolves to loopback: refused unless allowed by name.
        let strict = Guard::strict().client(Duration::from_secs(5));
        let err = strict
            .get(format!("http://localhost:{port}/"))
            .send()
            .await
            .unwrap_err();
        assert!(
            err.is_connect()
                || err.to_string().contains("dns")
                || format!("{err:?}").contains("Internal"),
            "{err:?}"
        );
        let dev = Guard::from_setting(Some("localhost")).client(Duration::from_secs(5));
        assert_eq!(
            dev.get(format!("http://localhost:{port}/"))
                .send()
                .await
                .unwrap()
                .text()
                .await
                .unwrap(),
            "ok"
        );
    }
}
