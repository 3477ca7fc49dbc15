//! When to try a delivery again, and how to name what went wrong.

use std::time::Duration;

use chrono::{DateTime, Utc};
use domain::FailureClassification;

/// The retry schedule: the ceiling of the wait before each attempt of a cycle, the first
/// being the initial attempt (so its entry is 0: at once). The number of entries is the
/// number of attempts; after the last one fails the delivery is dead-lettered.
///
/// Default (`WEBHOOK_RETRY_SCHEDULE_SECONDS` unset):
///
/// | attempt | 1   | 2   | 3    | 4     | 5      | 6      | 7   | 8   | 9   | 10  | 11  |
/// |---------|-----|-----|------|-------|--------|--------|-----|-----|-----|-----|-----|
/// | wait ≤  | 0   | 5 s | 30 s | 2 min | 10 min | 30 min | 1 h | 2 h | 4 h | 8 h | 8 h |
///
/// Each wait is drawn uniformly from `[0, ceiling]` (full jitter: endpoints that recover
/// after an outage are not hit by every delivery at the same instant). The ceilings add up to
/// 23 h 43 min, so a delivery is given up after at most about a day (half that on average).
/// A `Retry-After` from the endpoint (seconds or HTTP-date, capped at a day) replaces the
/// drawn wait. The setting takes the ceilings in seconds, comma-separated (`0,1,1` in tests).
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Schedule(Vec<Duration>);

/// The default ceilings, in seconds.
pub(crate) const DEFAULT_SCHEDULE: &[u64] =
    &[0, 5, 30, 120, 600, 1800, 3600, 7200, 14400, 28800, 28800];

/// The longest `Retry-After` honoured.
const MAX_RETRY_AFTER: Duration = Duration::from_secs(24 * 3600);

impl Default for Schedule {
    fn default() -> Self {
        Schedule(
            DEFAULT_SCHEDULE
                .iter()
                .map(|s| Duration::from_secs(*s))
                .collect(),
        )
    }
}

impl Schedule {
    /// The schedule a setting gives: ceilings in seconds, comma-separated, at most 50 of
    /// them, none over a day.
    pub(crate) fn parse(value: &str) -> Result<Self, String> {
        let ceilings: Option<Vec<Duration>> = value
            .split(',')
            .map(|s| {
                s.trim()
                    .parse::<u64>()
                    .ok()
                    .filter(|s| *s <= 86_400)
                    .map(Duration::from_secs)
            })
            .collect();
        match ceilings {
            Some(v) if !v.is_empty() && v.len() <= 50 => Ok(Schedule(v)),
            _ => Err("1 to 50 comma-separated waits in seconds, each at most 86400".to_owned()),
        }
    }

    /// How many attempts a cycle has.
    #[cfg(test)]
    pub(crate) fn attempts(&self) -> u32 {
        u32::try_from(self.0.len()).unwrap_or(u32::MAX)
    }

    /// The wait before attempt `next` (1-based) of a cycle, or `None` when the cycle has no
    /// such attempt (exhausted). `unit` in `[0, 1)` is the jitter draw.
    pub(crate) fn wait_before(&self, next: u32, unit: f64) -> Option<Duration> {
        let index = usize::try_from(next.checked_sub(1)?).ok()?;
        let ceiling = *self.0.get(index)?;
        Some(ceiling.mul_f64(unit.clamp(0.0, 1.0)))
    }
}

/// A `Retry-After` value: delay-seconds or an HTTP-date (RFC 9110 §10.2.3), as a wait from
/// `now` (a date in the past is no wait), capped at a day. `None` when malformed.
pub(crate) fn retry_after(value: &str, now: DateTime<Utc>) -> Option<Duration> {
    resilience::hints::retry_after_value(value, now.into()).map(|wait| wait.min(MAX_RETRY_AFTER))
}

/// What one attempt came to.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Outcome {
    /// 2xx.
    Delivered(u16),
    /// 410: the endpoint is gone for good.
    Gone,
    /// Any other status, with the endpoint's `Retry-After` if it gave one.
    Status {
        code: u16,
        retry_after: Option<Duration>,
    },
    /// No answer within the timeout.
    Timeout,
    /// No connection (refused, reset, DNS, TLS).
    Connection,
    /// The SSRF guard refused the address: retrying cannot help.
    Refused,
}

impl Outcome {
    pub(crate) fn from_status(code: u16, retry_after: Option<Duration>) -> Self {
        match code {
            200..=299 => Outcome::Delivered(code),
            410 => Outcome::Gone,
            _ => Outcome::Status { code, retry_after },
        }
    }

    pub(crate) fn status_code(&self) -> Option<u16> {
        match self {
            Outcome::Delivered(c) | Outcome::Status { code: c, .. } => Some(*c),
            Outcome::Gone => Some(410),
            _ => None,
        }
    }

    /// The class of failure this outcome is, as recorded when it ends a delivery.
    ///
    /// Standard Webhooks treats every non-2xx as a failure to retry, so all of these are
    /// retried until the schedule ends; the class says what kind of failure it was:
    /// 408 is a timeout, 429 rate limiting, 409/425 and 5xx transient, 401/403 auth, 400
    /// validation, 422 unprocessable, any other 4xx a vendor error.
    pub(crate) fn classification(&self) -> FailureClassification {
        match self {
            Outcome::Timeout => FailureClassification::Timeout,
            Outcome::Connection => FailureClassification::Transient,
            Outcome::Refused => FailureClassification::Validation,
            Outcome::Gone | Outcome::Delivered(_) => FailureClassification::VendorError,
            Outcome::Status { code, .. } => match code {
                408 => FailureClassification::Timeout,
                429 => FailureClassification::RateLimited,
                409 | 425 | 500..=599 => FailureClassification::Transient,
                401 | 403 => FailureClassification::Auth,
                400 => FailureClassification::Validation,
                422 => FailureClassification::Unprocessable,
                _ => FailureClassification::VendorError,
            },
        }
    }

    /// Whether another attempt may be made at all.
    pub(crate) fn retryable(&self) -> bool {
        !matches!(
            self,
            Outcome::Delivered(_) | Outcome::Gone | Outcome::Refused
        )
    }

    pub(crate) fn retry_after(&self) -> Option<Duration> {
        match self {
            Outcome::Status { retry_after, .. } => *retry_after,
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_default_schedule_spans_about_a_day() {
        let s = Schedule::default();
        assert_eq!(s.attempts(), 11);
        assert_eq!(s.wait_before(1, 0.99), Some(Duration::ZERO));
        let total: Duration = (1..=s.attempts())
            .map(|n| s.wait_before(n, 1.0).unwrap())
            .sum();
        assert_eq!(total.as_secs(), 85_355);
        assert!((20 * 3600..=25 * 3600).contains(&total.as_secs()));
        assert_eq!(s.wait_before(12, 0.5), None, "exhausted");
        assert_eq!(s.wait_before(0, 0.5), None);
    }

    #[test]
    fn full_jitter_stays_within_the_ceiling() {
        let s = Schedule::parse("0, 10, 20").unwrap();
        assert_eq!(s.attempts(), 3);
        assert_eq!(s.wait_before(2, 0.0), Some(Duration::ZERO));
        assert_eq!(s.wait_before(2, 0.5), Some(Duration::from_secs(5)));
        assert_eq!(s.wait_before(3, 1.0), Some(Duration::from_secs(20)));
        assert_eq!(s.wait_before(3, 7.0), Some(Duration::from_secs(20)));
        for bad in ["1,x", "", "1,,2", "90000"] {
            assert!(Schedule::parse(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn retry_after_takes_seconds_and_http_dates() {
        let now = DateTime::parse_from_rfc3339("2015-10-21T07:28:00Z")
            .unwrap()
            .to_utc();
        assert_eq!(retry_after("120", now), Some(Duration::from_secs(120)));
        assert_eq!(
            retry_after("Wed, 21 Oct 2015 07:28:30 GMT", now),
            Some(Duration::from_secs(30))
        );
        assert_eq!(
            retry_after("Wed, 21 Oct 2015 07:00:00 GMT", now),
            Some(Duration::ZERO),
            "a date in the past is no wait"
        );
        assert_eq!(retry_after("999999999", now), Some(MAX_RETRY_AFTER));
        assert_eq!(retry_after("soon", now), None);
        assert_eq!(retry_after("-5", now), None);
    }

    #[test]
    fn outcomes_are_classified() {
        assert_eq!(Outcome::from_status(204, None), Outcome::Delivered(204));
        assert_eq!(Outcome::from_status(410, None), Outcome::Gone);
        for (code, class) in [
            (429, FailureClassification::RateLimited),
            (408, FailureClassification::Timeout),
            (503, FailureClassification::Transient),
            (409, FailureClassification::Transient),
            (401, FailureClassification::Auth),
            (400, FailureClassification::Validation),
            (422, FailureClassification::Unprocessable),
            (404, FailureClassification::VendorError),
        ] {
            let o = Outcome::from_status(code, None);
            assert_eq!(o.classification(), class, "{code}");
            assert!(o.retryable(), "{code} is retried (Standard Webhooks)");
        }
        assert!(!Outcome::Refused.retryable());
        assert_eq!(
            Outcome::Timeout.classification(),
            FailureClassification::Timeout
        );
    }
}
