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
    /// The address (kept for the platform's own logs; never shown, so a refusal does not
    /// tell a caller what a name resolved to).
    #[error("the address is internal (loopback, private, link-local or otherwise special-purpose)")]
    Internal(IpAddr),
    #[error("the URL has no host")]
    NoHost,
    #[error("only http and https URLs may be called")]
    Scheme,
}

/// Addresses no user-supplied URL may reach: every block of IANA's IPv4 and IPv6
/// Special-Purpose Address Registries (RFC 6890 and its updates; even the few blocks marked
/// globally reachable, which are anycast infrastructure no vendor is reached at), multicast,
/// and every IPv6 form that embeds an internal IPv4 address (IPv4-mapped, IPv4-compatible,
/// IPv4-translated, NAT64, 6to4; Teredo lies in `2001::/23`, refused whole).
pub fn is_internal(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => internal_v4(v4),
        IpAddr::V6(v6) => internal_v6(v6),
    }
}

/// IANA IPv4 Special-Purpose Address Registry, plus multicast (`224.0.0.0/4`).
pub const INTERNAL_V4: &[(Ipv4Addr, u8)] = &[
    (Ipv4Addr::new(0, 0, 0, 0), 8),       // "this network"
    (Ipv4Addr::new(10, 0, 0, 0), 8),      // private
    (Ipv4Addr::new(100, 64, 0, 0), 10),   // shared address space (carrier-grade NAT)
    (Ipv4Addr::new(127, 0, 0, 0), 8),     // loopback
    (Ipv4Addr::new(169, 254, 0, 0), 16),  // link-local, cloud metadata included
    (Ipv4Addr::new(172, 16, 0, 0), 12),   // private
    (Ipv4Addr::new(192, 0, 0, 0), 24),    // IETF protocol assignments
    (Ipv4Addr::new(192, 0, 2, 0), 24),    // documentation (TEST-NET-1)
    (Ipv4Addr::new(192, 31, 196, 0), 24), // AS112-v4
    (Ipv4Addr::new(192, 52, 193, 0), 24), // AMT
    (Ipv4Addr::new(192, 88, 99, 0), 24),  // deprecated 6to4 relay anycast
    (Ipv4Addr::new(192, 168, 0, 0), 16),  // private
    (Ipv4Addr::new(192, 175, 48, 0), 24), // direct delegation AS112 service
    (Ipv4Addr::new(198, 18, 0, 0), 15),   // benchmarking
    (Ipv4Addr::new(198, 51, 100, 0), 24), // documentation (TEST-NET-2)
    (Ipv4Addr::new(203, 0, 113, 0), 24),  // documentation (TEST-NET-3)
    (Ipv4Addr::new(224, 0, 0, 0), 4),     // multicast
    (Ipv4Addr::new(240, 0, 0, 0), 4),     // reserved, limited broadcast included
];

/// IANA IPv6 Special-Purpose Address Registry, plus multicast, site-local and the
/// deprecated IPv4-compatible block; the blocks that embed an IPv4 address are judged by
/// it instead ([`embedded_v4`]).
pub const INTERNAL_V6: &[(Ipv6Addr, u8)] = &[
    (Ipv6Addr::new(0, 0, 0, 0, 0, 0, 0, 0), 128), // unspecified
    (Ipv6Addr::new(0, 0, 0, 0, 0, 0, 0, 1), 128), // loopback
    (Ipv6Addr::new(0x64, 0xff9b, 1, 0, 0, 0, 0, 0), 48), // local-use IPv4/IPv6 translation
    (Ipv6Addr::new(0x100, 0, 0, 0, 0, 0, 0, 0), 64), // discard-only
    (Ipv6Addr::new(0x100, 0, 0, 1, 0, 0, 0, 0), 64), // dummy IPv6 prefix
    (Ipv6Addr::new(0x2001, 0, 0, 0, 0, 0, 0, 0), 23), // IETF protocol assignments, Teredo
    (Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 0), 32), // documentation
    (Ipv6Addr::new(0x2620, 0x4f, 0x8000, 0, 0, 0, 0, 0), 48), // direct delegation AS112
    (Ipv6Addr::new(0x3fff, 0, 0, 0, 0, 0, 0, 0), 20), // documentation
    (Ipv6Addr::new(0x5f00, 0, 0, 0, 0, 0, 0, 0), 16), // segment routing SIDs
    (Ipv6Addr::new(0xfc00, 0, 0, 0, 0, 0, 0, 0), 7), // unique local
    (Ipv6Addr::new(0xfe80, 0, 0, 0, 0, 0, 0, 0), 10), // link-local
    (Ipv6Addr::new(0xfec0, 0, 0, 0, 0, 0, 0, 0), 10), // site-local (deprecated)
    (Ipv6Addr::new(0xff00, 0, 0, 0, 0, 0, 0, 0), 8), // multicast
];

fn in_v4(ip: Ipv4Addr, (net, len): (Ipv4Addr, u8)) -> bool {
    let mask = u32::MAX.checked_shl(32 - u32::from(len)).unwrap_or(0);
    u32::from(ip) & mask == u32::from(net) & mask
}

fn in_v6(ip: Ipv6Addr, (net, len): (Ipv6Addr, u8)) -> bool {
    let mask = u128::MAX.checked_shl(128 - u32::from(len)).unwrap_or(0);
    u128::from(ip) & mask == u128::from(net) & mask
}

fn internal_v4(ip: Ipv4Addr) -> bool {
    INTERNAL_V4.iter().any(|block| in_v4(ip, *block))
}

/// The IPv4 address an IPv6 address stands for, when it embeds one: IPv4-mapped
/// (`::ffff:a.b.c.d`), IPv4-compatible (`::a.b.c.d`, deprecated), IPv4-translated
/// (`::ffff:0:a.b.c.d`), NAT64's well-known prefix (`64:ff9b::a.b.c.d`) and 6to4
/// (`2002:AABB:CCDD::/48`).
pub fn embedded_v4(ip: Ipv6Addr) -> Option<Ipv4Addr> {
    let bits = u128::from(ip);
    let low = Ipv4Addr::from((bits & 0xffff_ffff) as u32);
    match bits >> 32 {
        // `::` and `::1` are judged as themselves.
        0 if bits > 1 => Some(low),
        0xffff | 0xffff_0000 | 0x0064_ff9b_0000_0000_0000_0000 => Some(low),
        _ if ip.segments()[0] == 0x2002 => Some(Ipv4Addr::from((bits >> 80) as u32)),
        _ => None,
    }
}

fn internal_v6(ip: Ipv6Addr) -> bool {
    if let Some(v4) = embedded_v4(ip) {
        return internal_v4(v4);
    }
    INTERNAL_V6.iter().any(|block| in_v6(ip, *block))
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

    /// This guard with `hosts` (names or IPs) allowed besides its own: the guard of the
    /// calls to an endpoint an operator approved for a tenant on a private network.
    pub fn also_allowing<'h>(&self, hosts: impl IntoIterator<Item = &'h str>) -> Guard {
        let mut allowed: Vec<String> = self.allowed.as_ref().clone();
        allowed.extend(hosts.into_iter().map(|h| {
            h.trim()
                .trim_start_matches('[')
                .trim_end_matches(']')
                .to_ascii_lowercase()
        }));
        Guard {
            allowed: Arc::new(allowed),
        }
    }

    /// Whether `host` is allowed despite being internal.
    pub fn allows_host(&self, host: &str) -> bool {
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

    /// The first and the last address of a block.
    fn ends_v4((net, len): (Ipv4Addr, u8)) -> [Ipv4Addr; 2] {
        let first = u32::from(net);
        [net, Ipv4Addr::from(first | (u32::MAX >> len))]
    }

    fn ends_v6((net, len): (Ipv6Addr, u8)) -> [Ipv6Addr; 2] {
        let first = u128::from(net);
        [
            net,
            Ipv6Addr::from(first | u128::MAX.checked_shr(u32::from(len)).unwrap_or(0)),
        ]
    }

    #[test]
    fn a_guard_that_also_allows_a_host_leaves_the_original_as_it_was() {
        let guard = Guard::from_setting(Some("localhost"));
        let wider = guard.also_allowing(["GPU-Box.internal", "[fd00::7]"]);
        assert!(wider.allows_host("gpu-box.internal"));
        assert!(wider.allows_host("fd00::7"));
        assert!(wider.allows_host("localhost"));
        assert!(!guard.allows_host("gpu-box.internal"));
        let literal = Url::parse("http://[fd00::7]:11434/").unwrap();
        assert!(guard.check_url(&literal).is_err());
        assert!(wider.check_url(&literal).is_ok());
    }

    #[test]
    fn every_special_purpose_block_is_internal_from_end_to_end() {
        for block in INTERNAL_V4 {
            for ip in ends_v4(*block) {
                assert!(is_internal(ip.into()), "{ip} of {block:?}");
                // The same address inside every IPv6 form that embeds an IPv4 one.
                let [a, b, c, d] = ip.octets();
                for form in [
                    format!("::ffff:{ip}"),
                    format!("::{ip}"),
                    format!("::ffff:0:{ip}"),
                    format!("64:ff9b::{ip}"),
                    format!("2002:{a:02x}{b:02x}:{c:02x}{d:02x}::1"),
                ] {
                    let v6: IpAddr = form.parse().unwrap();
                    assert!(is_internal(v6), "{form} embeds {ip}");
                }
            }
        }
        for block in INTERNAL_V6 {
            for ip in ends_v6(*block) {
                assert!(is_internal(ip.into()), "{ip} of {block:?}");
            }
        }
        // Just outside some blocks, and public addresses in every embedding form.
        for ip in [
            "9.255.255.255",
            "11.0.0.0",
            "100.63.255.255",
            "100.128.0.0",
            "172.15.255.255",
            "172.32.0.0",
            "198.17.255.255",
            "198.20.0.0",
            "223.255.255.255",
            "8.8.8.8",
            "2001:200::1",
            "2606:4700:4700::1111",
            "2a00:1450:4001::200e",
            "3fff:1000::1",
            "::ffff:8.8.8.8",
            "64:ff9b::808:808",
            "2002:808:808::1",
        ] {
            assert!(!is_internal(ip.parse().unwrap()), "{ip} is public");
        }
        // Teredo (2001::/32) is inside the IETF block, refused whole.
        assert!(is_internal(
            "2001:0:4136:e378:8000:63bf:3fff:fdd2".parse().unwrap()
        ));
    }

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
