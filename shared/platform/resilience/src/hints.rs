//! When a server says to come back: `Retry-After` and the vendors' rate-limit headers, read
//! in one place for every caller (the vendor pipeline, the OAuth token client, the Azure
//! adapters, the webhook gateway's deliveries).

use std::time::{Duration, SystemTime};

use http::HeaderMap;

/// Hints longer than this are capped: a confused vendor cannot park a tenant for days.
pub const MAX_HINT: Duration = Duration::from_secs(3600);

/// A `Retry-After` value (RFC 9110 §10.2.3): delay-seconds, or an HTTP-date (any RFC 2822
/// date too, with a numeric zone, as some stand-ins send), as a wait from `now`; a date in
/// the past is no wait. `None` when it is neither.
pub fn retry_after_value(value: &str, now: SystemTime) -> Option<Duration> {
    let value = value.trim();
    if !value.is_empty() && value.bytes().all(|b| b.is_ascii_digit()) {
        return value.parse().ok().map(Duration::from_secs);
    }
    let at = httpdate::parse_http_date(value).ok().or_else(|| {
        chrono::DateTime::parse_from_rfc2822(value)
            .ok()
            .map(SystemTime::from)
    })?;
    Some(at.duration_since(now).unwrap_or(Duration::ZERO))
}

/// The server's own wait: `retry-after-ms` or `x-ms-retry-after-ms` (milliseconds, Azure
/// services), else `Retry-After`, through `header` (a value by lower-case name), so any
/// header map will do. Uncapped: callers bound it by their own policy.
pub fn retry_after<'h>(
    header: impl Fn(&'static str) -> Option<&'h str>,
    now: SystemTime,
) -> Option<Duration> {
    for name in ["retry-after-ms", "x-ms-retry-after-ms"] {
        if let Some(ms) = header(name).and_then(|v| v.trim().parse::<f64>().ok()) {
            return positive_secs(ms / 1000.0);
        }
    }
    retry_after_value(header("retry-after")?, now)
}

/// The vendor's hint of when to come back, capped at [`MAX_HINT`]. In order:
///
/// 1. [`retry_after`] (`retry-after-ms`, `x-ms-retry-after-ms`, `Retry-After`);
/// 2. Azure DevOps' `X-RateLimit-Delay` (seconds, with a fraction);
/// 3. OpenAI's `x-ratelimit-reset-requests` / `-tokens` (Go durations: `12ms`, `6m0s`), the
///    longest of those whose `x-ratelimit-remaining-*` is 0 (all of them when no remaining
///    count is given);
/// 4. HubSpot: `X-HubSpot-RateLimit-Interval-Milliseconds` when the interval's remaining
///    count is 0, one second when the secondly one is, an hour ([`MAX_HINT`]) when the daily
///    one is (it resets at the account's midnight, which no header gives);
/// 5. `ratelimit-reset` (the IETF draft's delta-seconds; Zendesk);
/// 6. `x-ratelimit-reset`: seconds from now, or a Unix time when that large (GitHub,
///    Braze); GitHub's is read only when `x-ratelimit-remaining` is 0 or absent;
/// 7. Zendesk's per-minute account limit, `X-Rate-Limit-Remaining: 0`, which carries no
///    reset: until the next minute starts.
pub fn retry_hint(headers: &HeaderMap, now: SystemTime) -> Option<Duration> {
    let text = |name: &'static str| {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::trim)
    };
    let exhausted = |name: &'static str| text(name).is_some_and(|v| v == "0");
    let hint = retry_after(text, now)
        .or_else(|| {
            text("x-ratelimit-delay")
                .and_then(|v| v.parse::<f64>().ok())
                .and_then(positive_secs)
        })
        .or_else(|| openai_reset(&text))
        .or_else(|| {
            if exhausted("x-hubspot-ratelimit-remaining") {
                text("x-hubspot-ratelimit-interval-milliseconds")
                    .and_then(|v| v.parse::<f64>().ok())
                    .and_then(|ms| positive_secs(ms / 1000.0))
            } else if exhausted("x-hubspot-ratelimit-secondly-remaining") {
                Some(Duration::from_secs(1))
            } else if exhausted("x-hubspot-ratelimit-daily-remaining") {
                // The daily limit resets at the account's midnight, which no header gives.
                Some(MAX_HINT)
            } else {
                None
            }
        })
        .or_else(|| {
            text("ratelimit-reset")
                .and_then(|v| v.parse::<f64>().ok())
                .and_then(positive_secs)
        })
        .or_else(|| {
            let remaining = text("x-ratelimit-remaining");
            if remaining.is_some_and(|r| r != "0") {
                return None;
            }
            let reset = text("x-ratelimit-reset")?.parse::<f64>().ok()?;
            // Seconds until reset, or the reset's Unix time: anything after 2001 is a
            // timestamp.
            if reset > 1e9 {
                let now_secs = now
                    .duration_since(SystemTime::UNIX_EPOCH)
                    .unwrap_or_default()
                    .as_secs_f64();
                positive_secs(reset - now_secs)
            } else {
                positive_secs(reset)
            }
        })
        .or_else(|| {
            exhausted("x-rate-limit-remaining").then(|| {
                let into_minute = now
                    .duration_since(SystemTime::UNIX_EPOCH)
                    .unwrap_or_default()
                    .as_millis()
                    % 60_000;
                Duration::from_millis(60_000 - u64::try_from(into_minute).unwrap_or(0))
            })
        });
    hint.map(|d| d.min(MAX_HINT))
}

/// A successful answer that says the quota is spent (a `…remaining…` count of 0: OpenAI's
/// requests or tokens, GitHub's, HubSpot's): how long until it resets ([`retry_hint`]'s
/// reading of the reset headers). `None` while anything remains, or when nothing says.
pub fn exhausted_hint(headers: &HeaderMap, now: SystemTime) -> Option<Duration> {
    let spent = headers.iter().any(|(name, value)| {
        let name = name.as_str();
        // `…ratelimit-remaining…` (OpenAI's, GitHub's), HubSpot's daily and secondly ones,
        // Zendesk's `x-rate-limit-remaining`.
        ((name.contains("ratelimit") && name.contains("remaining"))
            || name == "x-rate-limit-remaining")
            && value.to_str().is_ok_and(|v| v.trim() == "0")
    });
    if !spent {
        return None;
    }
    // Only the reset headers speak here: a `Retry-After` on a success means nothing.
    let mut resets = headers.clone();
    for name in ["retry-after", "retry-after-ms", "x-ms-retry-after-ms"] {
        resets.remove(name);
    }
    retry_hint(&resets, now).or_else(|| {
        // Azure Resource Manager's `x-ms-ratelimit-remaining-subscription-writes` (and
        // reads, deletes, resource requests) name no reset: its buckets refill every
        // second, so an emptied one holds the key's calls for a second rather than
        // earning a 429.
        headers
            .iter()
            .any(|(name, value)| {
                name.as_str().starts_with("x-ms-ratelimit-remaining-")
                    && value.to_str().is_ok_and(|v| v.trim() == "0")
            })
            .then_some(ARM_REFILL)
    })
}

/// How long an emptied Azure Resource Manager bucket holds calls back.
const ARM_REFILL: Duration = Duration::from_secs(1);

/// OpenAI's reset hints: the longest reset among the exhausted limits.
fn openai_reset<'h>(text: &impl Fn(&'static str) -> Option<&'h str>) -> Option<Duration> {
    let limits = [
        (
            "x-ratelimit-reset-requests",
            "x-ratelimit-remaining-requests",
        ),
        ("x-ratelimit-reset-tokens", "x-ratelimit-remaining-tokens"),
    ];
    let any_remaining = limits.iter().any(|(_, r)| text(r).is_some());
    limits
        .iter()
        .filter(|(_, remaining)| !any_remaining || text(remaining) == Some("0"))
        .filter_map(|(reset, _)| text(reset).and_then(go_duration))
        .max()
}

/// A Go duration (`1h2m3.5s`, `6m0s`, `12ms`, `500us`, `20ns`): a sequence of decimal
/// numbers, each with a unit. `None` when malformed.
pub fn go_duration(text: &str) -> Option<Duration> {
    let mut rest = text.trim();
    if rest.is_empty() {
        return None;
    }
    if rest == "0" {
        return Some(Duration::ZERO);
    }
    let mut total = 0.0f64;
    while !rest.is_empty() {
        let number_len = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .filter(|n| *n > 0)?;
        let number: f64 = rest[..number_len].parse().ok()?;
        rest = &rest[number_len..];
        let unit_len = rest
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(rest.len());
        let scale = match &rest[..unit_len] {
            "h" => 3600.0,
            "m" => 60.0,
            "s" => 1.0,
            "ms" => 1e-3,
            "us" | "µs" => 1e-6,
            "ns" => 1e-9,
            _ => return None,
        };
        total += number * scale;
        rest = &rest[unit_len..];
    }
    positive_secs(total)
}

fn positive_secs(secs: f64) -> Option<Duration> {
    secs.is_finite()
        .then(|| Duration::from_secs_f64(secs.clamp(0.0, 1e6)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::HeaderValue;

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.insert(*k, HeaderValue::from_str(v).expect("header value"));
        }
        h
    }

    fn now() -> SystemTime {
        SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000)
    }

    #[test]
    fn retry_after_values() {
        assert_eq!(retry_after_value("7", now()), Some(Duration::from_secs(7)));
        let at = httpdate::fmt_http_date(now() + Duration::from_secs(30));
        assert_eq!(retry_after_value(&at, now()), Some(Duration::from_secs(30)));
        // A date in the past means "now"; an RFC 2822 date with a numeric zone is read.
        let past = httpdate::fmt_http_date(now() - Duration::from_secs(30));
        assert_eq!(retry_after_value(&past, now()), Some(Duration::ZERO));
        assert_eq!(
            retry_after_value("Tue, 14 Nov 2023 22:14:00 +0000", now()),
            Some(Duration::from_secs(1_700_000_040 - 1_700_000_000))
        );
        for bad in ["", "soon", "-5", "1.5"] {
            assert_eq!(retry_after_value(bad, now()), None, "{bad:?}");
        }
    }

    #[test]
    fn hubspots_spent_day_waits_an_hour_at_a_time() {
        let spent = headers(&[
            ("x-hubspot-ratelimit-daily", "250000"),
            ("x-hubspot-ratelimit-daily-remaining", "0"),
            ("x-hubspot-ratelimit-remaining", "99"),
        ]);
        assert_eq!(exhausted_hint(&spent, now()), Some(MAX_HINT));
        let left = headers(&[("x-hubspot-ratelimit-daily-remaining", "10")]);
        assert_eq!(exhausted_hint(&left, now()), None);
    }

    #[test]
    fn zendesks_spent_minute_waits_for_the_next_minute() {
        // 1_700_000_000 is 20 s into its minute.
        let spent = headers(&[("x-rate-limit", "700"), ("x-rate-limit-remaining", "0")]);
        assert_eq!(retry_hint(&spent, now()), Some(Duration::from_secs(40)));
        assert_eq!(exhausted_hint(&spent, now()), Some(Duration::from_secs(40)));
        let left = headers(&[("x-rate-limit", "700"), ("x-rate-limit-remaining", "12")]);
        assert_eq!(exhausted_hint(&left, now()), None);
        // A 429's Retry-After wins.
        let throttled = headers(&[("retry-after", "3"), ("x-rate-limit-remaining", "0")]);
        assert_eq!(retry_hint(&throttled, now()), Some(Duration::from_secs(3)));
    }

    #[test]
    fn go_durations() {
        assert_eq!(go_duration("12ms"), Some(Duration::from_millis(12)));
        assert_eq!(go_duration("6m0s"), Some(Duration::from_secs(360)));
        assert_eq!(
            go_duration("1h2m3.5s"),
            Some(Duration::from_millis(3_723_500))
        );
        assert_eq!(go_duration("500us"), Some(Duration::from_micros(500)));
        assert_eq!(go_duration("0"), Some(Duration::ZERO));
        for bad in ["", "6", "m", "6x", "1.2.3s", "s5"] {
            assert_eq!(go_duration(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn an_emptied_arm_bucket_holds_calls_for_a_second() {
        assert_eq!(
            exhausted_hint(
                &headers(&[("x-ms-ratelimit-remaining-subscription-writes", "0")]),
                now()
            ),
            Some(Duration::from_secs(1))
        );
        assert_eq!(
            exhausted_hint(
                &headers(&[("x-ms-ratelimit-remaining-subscription-reads", "11999")]),
                now()
            ),
            None
        );
    }

    #[test]
    fn each_vendor_hint_is_read() {
        // Azure OpenAI: milliseconds win over seconds.
        assert_eq!(
            retry_hint(
                &headers(&[("retry-after-ms", "1500"), ("retry-after", "2")]),
                now()
            ),
            Some(Duration::from_millis(1500))
        );
        // Azure DevOps.
        assert_eq!(
            retry_hint(&headers(&[("x-ratelimit-delay", "2.5")]), now()),
            Some(Duration::from_millis(2500))
        );
        // OpenAI: the exhausted limit's reset, as a Go duration.
        assert_eq!(
            retry_hint(
                &headers(&[
                    ("x-ratelimit-remaining-requests", "4999"),
                    ("x-ratelimit-reset-requests", "12ms"),
                    ("x-ratelimit-remaining-tokens", "0"),
                    ("x-ratelimit-reset-tokens", "6m0s"),
                ]),
                now()
            ),
            Some(Duration::from_secs(360))
        );
        assert_eq!(
            retry_hint(
                &headers(&[
                    ("x-ratelimit-remaining-requests", "0"),
                    ("x-ratelimit-reset-requests", "12ms"),
                    ("x-ratelimit-remaining-tokens", "100"),
                    ("x-ratelimit-reset-tokens", "6m0s"),
                ]),
                now()
            ),
            Some(Duration::from_millis(12))
        );
        // HubSpot.
        assert_eq!(
            retry_hint(
                &headers(&[
                    ("x-hubspot-ratelimit-remaining", "0"),
                    ("x-hubspot-ratelimit-interval-milliseconds", "10000"),
                ]),
                now()
            ),
            Some(Duration::from_secs(10))
        );
        assert_eq!(
            retry_hint(
                &headers(&[
                    ("x-hubspot-ratelimit-remaining", "40"),
                    ("x-hubspot-ratelimit-secondly-remaining", "0"),
                ]),
                now()
            ),
            Some(Duration::from_secs(1))
        );
        // Zendesk.
        assert_eq!(
            retry_hint(&headers(&[("ratelimit-reset", "30")]), now()),
            Some(Duration::from_secs(30))
        );
        // GitHub: the reset's Unix time, only when nothing remains.
        assert_eq!(
            retry_hint(
                &headers(&[
                    ("x-ratelimit-remaining", "0"),
                    ("x-ratelimit-reset", "1700000040")
                ]),
                now()
            ),
            Some(Duration::from_secs(40))
        );
        assert_eq!(
            retry_hint(
                &headers(&[
                    ("x-ratelimit-remaining", "4211"),
                    ("x-ratelimit-reset", "1700000040")
                ]),
                now()
            ),
            None
        );
        // GitHub's secondary limit: retry-after wins.
        assert_eq!(
            retry_hint(
                &headers(&[
                    ("x-ratelimit-remaining", "4211"),
                    ("x-ratelimit-reset", "1788000000"),
                    ("retry-after", "60")
                ]),
                now()
            ),
            Some(Duration::from_secs(60))
        );
    }
}
