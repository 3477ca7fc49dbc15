//! When to try an Azure call again, and how long to wait first: the bounded retry policy of
//! the adapters that make their own calls (Key Vault, Service Bus), and the service's wait
//! hint, which Blob Storage reads too. The SDKs' own retry policies are switched off where
//! this is used: they would sleep for whatever `Retry-After` the service sends, unbounded,
//! and retry writes on answers that may have committed.

use std::time::{Duration, SystemTime};

/// Retries of throttled (429), busy (503) and unreachable answers. Every value is bounded so
/// a call never waits longer than `max_attempts × max_wait` in all.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Attempts in all, the first included. Default 4.
    pub max_attempts: u32,
    /// The wait before the first retry when the server gives no `Retry-After`; it doubles
    /// per retry, with jitter (between half and all of it). Default 200 ms.
    pub initial_backoff: Duration,
    /// The longest single wait. A server asking for longer is not waited for here: the
    /// caller gets `Throttled { retry_after }` at once and can schedule better than a
    /// sleeping request can. Default 10 s.
    pub max_wait: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy {
            max_attempts: 4,
            initial_backoff: Duration::from_millis(200),
            max_wait: Duration::from_secs(10),
        }
    }
}

impl RetryPolicy {
    /// No retries at all.
    pub fn none() -> Self {
        RetryPolicy {
            max_attempts: 1,
            ..RetryPolicy::default()
        }
    }

    /// How long to wait before attempt `attempt + 1`, or `None` when the send should give up:
    /// no attempt left, or the server's hint is longer than `max_wait`.
    pub fn wait_before(&self, attempt: u32, hint: Option<Duration>) -> Option<Duration> {
        if attempt >= self.max_attempts {
            return None;
        }
        match hint {
            Some(hint) if hint > self.max_wait => None,
            Some(hint) => Some(hint),
            None => {
                let exp = self
                    .initial_backoff
                    .saturating_mul(2u32.saturating_pow(attempt.saturating_sub(1)));
                let capped = exp.min(self.max_wait);
                // Jitter spreads the retries of many senders throttled at the same instant.
                let factor = 0.5 + rand::random::<f64>() * 0.5;
                Some(capped.mul_f64(factor))
            }
        }
    }
}

/// The server's hint: `retry-after-ms` / `x-ms-retry-after-ms` (milliseconds) or
/// `Retry-After` (seconds or a date), read through `header` (a header's value by its
/// lower-case name), so any header map will do.
pub fn retry_after<'h>(header: impl Fn(&'static str) -> Option<&'h str>) -> Option<Duration> {
    resilience::hints::retry_after(header, SystemTime::now())
}

/// [`retry_after`] over the headers of an Azure SDK response.
pub fn sdk_retry_after(headers: &azure_core::http::headers::Headers) -> Option<Duration> {
    retry_after(|name| {
        headers.get_optional_str(&azure_core::http::headers::HeaderName::from_static(name))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hints_are_honoured_up_to_the_cap() {
        let p = RetryPolicy::default();
        assert_eq!(
            p.wait_before(1, Some(Duration::from_secs(2))),
            Some(Duration::from_secs(2))
        );
        assert_eq!(p.wait_before(1, Some(Duration::from_secs(11))), None);
        assert_eq!(p.wait_before(4, Some(Duration::from_secs(1))), None);
        assert_eq!(RetryPolicy::none().wait_before(1, None), None);
    }

    #[test]
    fn backoff_doubles_with_jitter_and_is_capped() {
        let p = RetryPolicy {
            max_attempts: 10,
            initial_backoff: Duration::from_millis(100),
            max_wait: Duration::from_millis(350),
        };
        for (attempt, full) in [(1, 100), (2, 200), (3, 350), (8, 350)] {
            let w = p.wait_before(attempt, None).unwrap();
            assert!(
                w >= Duration::from_millis(full / 2) && w <= Duration::from_millis(full),
                "attempt {attempt}: {w:?}"
            );
        }
    }

    /// `retry_after` over a plain map of header names to values.
    fn hint(h: &std::collections::BTreeMap<&'static str, String>) -> Option<Duration> {
        retry_after(|name| h.get(name).map(String::as_str))
    }

    #[test]
    fn retry_after_forms() {
        let mut h = std::collections::BTreeMap::new();
        assert_eq!(hint(&h), None);
        h.insert("retry-after", "3".to_owned());
        assert_eq!(hint(&h), Some(Duration::from_secs(3)));
        h.insert("x-ms-retry-after-ms", "1500".to_owned());
        assert_eq!(hint(&h), Some(Duration::from_millis(1500)));
        let mut h = std::collections::BTreeMap::new();
        let later = SystemTime::now() + Duration::from_secs(120);
        h.insert("retry-after", httpdate::fmt_http_date(later));
        let got = hint(&h).unwrap();
        assert!(got > Duration::from_secs(100) && got <= Duration::from_secs(120));
        h.insert("retry-after", "soon".to_owned());
        assert_eq!(hint(&h), None);
    }
}
