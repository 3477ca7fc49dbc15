//! Per-subscription pacing, so one endpoint never slows the others: a rate limit (when the
//! subscription sets one) and a circuit breaker (after `threshold` failures in a row the
//! endpoint is left alone for `open_for`, then tried again). A held-back attempt is not made
//! and not counted: its message comes back later (see `deliver::defer`).
//!
//! The state lives in the process (each Function App instance paces on its own), which is
//! what a breaker needs: it protects this worker's time, not the endpoint's global quota.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use domain::SubscriptionId;

/// Failures in a row that open the breaker (setting `WEBHOOK_BREAKER_THRESHOLD`).
pub(crate) const DEFAULT_THRESHOLD: u32 = 5;
/// How long an open breaker keeps the endpoint alone (setting `WEBHOOK_BREAKER_OPEN_SECONDS`).
pub(crate) const DEFAULT_OPEN_FOR: Duration = Duration::from_secs(30);

#[derive(Debug, Default)]
struct Pace {
    /// Earliest time the rate limit lets the next call start.
    next_free: Option<Instant>,
    failures: u32,
    open_until: Option<Instant>,
}

#[derive(Debug)]
pub(crate) struct Pacing {
    threshold: u32,
    open_for: Duration,
    paces: Mutex<HashMap<SubscriptionId, Pace>>,
}

impl Pacing {
    pub(crate) fn new(threshold: u32, open_for: Duration) -> Self {
        Pacing {
            threshold: threshold.max(1),
            open_for,
            paces: Mutex::default(),
        }
    }

    /// `None` to call the endpoint now (taking a slot of the rate limit); otherwise how long
    /// to hold the attempt back.
    pub(crate) fn admit(
        &self,
        id: SubscriptionId,
        per_second: Option<u32>,
        now: Instant,
    ) -> Option<Duration> {
        let mut paces = self.paces.lock().unwrap_or_else(|p| p.into_inner());
        let pace = paces.entry(id).or_default();
        // Past `open_until` the breaker is half-open: this call is the probe, and a failure
        // re-opens it at once (the failure count is still over the threshold).
        if let Some(until) = pace.open_until
            && now < until
        {
            return Some(until - now);
        }
        if let Some(rate) = per_second.filter(|r| *r > 0) {
            let spacing = Duration::from_secs(1) / rate;
            let free = pace.next_free.unwrap_or(now);
            if free > now {
                return Some(free - now);
            }
            pace.next_free = Some(free.max(now) + spacing);
        }
        None
    }

    /// Records a call's result: success closes the breaker, a failure counts towards opening it.
    pub(crate) fn observe(&self, id: SubscriptionId, success: bool, now: Instant) {
        let mut paces = self.paces.lock().unwrap_or_else(|p| p.into_inner());
        let pace = paces.entry(id).or_default();
        if success {
            pace.failures = 0;
            pace.open_until = None;
        } else {
            pace.failures = pace.failures.saturating_add(1);
            if pace.failures >= self.threshold {
                pace.open_until = Some(now + self.open_for);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_rate_limit_spaces_calls() {
        let p = Pacing::new(5, DEFAULT_OPEN_FOR);
        let id = SubscriptionId::new();
        let t = Instant::now();
        assert_eq!(p.admit(id, Some(2), t), None);
        let wait = p
            .admit(id, Some(2), t)
            .expect("the second call in the same instant waits");
        assert_eq!(wait, Duration::from_millis(500));
        assert_eq!(p.admit(id, Some(2), t + Duration::from_millis(500)), None);
        assert_eq!(p.admit(id, None, t), None, "no limit, no wait");
        assert_eq!(
            p.admit(SubscriptionId::new(), Some(2), t),
            None,
            "limits are per subscription"
        );
    }

    #[test]
    fn the_breaker_opens_after_the_threshold_and_closes_on_success() {
        let p = Pacing::new(3, Duration::from_secs(10));
        let id = SubscriptionId::new();
        let t = Instant::now();
        for _ in 0..2 {
            p.observe(id, false, t);
        }
        assert_eq!(p.admit(id, None, t), None, "below the threshold");
        p.observe(id, false, t);
        assert_eq!(
            p.admit(id, None, t + Duration::from_secs(4)),
            Some(Duration::from_secs(6)),
            "open"
        );
        assert_eq!(
            p.admit(SubscriptionId::new(), None, t),
            None,
            "other endpoints are not affected"
        );
        let later = t + Duration::from_secs(10);
        assert_eq!(p.admit(id, None, later), None, "half-open: one probe");
        p.observe(id, false, later);
        assert!(
            p.admit(id, None, later).is_some(),
            "a failed probe re-opens"
        );
        p.observe(id, true, later + Duration::from_secs(10));
        assert_eq!(
            p.admit(id, None, later + Duration::from_secs(10)),
            None,
            "success closes"
        );
    }
}
