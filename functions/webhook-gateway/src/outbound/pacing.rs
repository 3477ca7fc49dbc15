//! Per-subscription pacing, so one endpoint never slows the others: a rate limit (when the
//! subscription sets one) and a circuit breaker (after `threshold` failures in a row the
//! endpoint is left alone for `open_for`, then one probe is let through). A held-back attempt
//! is not made and not counted: its message comes back later (see `deliver::defer`).
//!
//! Both are the vendor pipeline's own (`resilience::Breaker`, `resilience::Limiter` on
//! `governor`), one of each per subscription. The state lives in the process (each Function
//! App instance paces on its own), which is what a breaker needs: it protects this worker's
//! time, not the endpoint's global quota.

use std::collections::HashMap;
use std::num::NonZeroU32;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use domain::SubscriptionId;
use resilience::{Breaker, BreakerPolicy, Limiter, RateLimit};

/// Failures in a row that open the breaker (setting `WEBHOOK_BREAKER_THRESHOLD`).
pub(crate) const DEFAULT_THRESHOLD: u32 = 5;
/// How long an open breaker keeps the endpoint alone (setting `WEBHOOK_BREAKER_OPEN_SECONDS`).
pub(crate) const DEFAULT_OPEN_FOR: Duration = Duration::from_secs(30);

#[derive(Debug)]
struct Pace {
    breaker: Breaker,
    /// The subscription's rate, when it sets one (rebuilt when the rate changes).
    limiter: Mutex<Option<Limiter>>,
}

#[derive(Debug)]
pub(crate) struct Pacing {
    policy: BreakerPolicy,
    paces: Mutex<HashMap<SubscriptionId, Arc<Pace>>>,
}

impl Pacing {
    pub(crate) fn new(threshold: u32, open_for: Duration) -> Self {
        Pacing {
            policy: BreakerPolicy {
                failure_threshold: threshold.max(1),
                open_for,
            },
            paces: Mutex::default(),
        }
    }

    fn pace(&self, id: SubscriptionId) -> Arc<Pace> {
        self.paces
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .entry(id)
            .or_insert_with(|| {
                Arc::new(Pace {
                    breaker: Breaker::new(self.policy),
                    limiter: Mutex::new(None),
                })
            })
            .clone()
    }

    /// `None` to call the endpoint now (taking a slot of the rate limit); otherwise how long
    /// to hold the attempt back.
    pub(crate) fn admit(
        &self,
        id: SubscriptionId,
        per_second: Option<u32>,
        now: Instant,
    ) -> Option<Duration> {
        let pace = self.pace(id);
        if let Err(open) = pace.breaker.admit(now) {
            return Some(open.remaining);
        }
        let rate = per_second.and_then(NonZeroU32::new)?;
        let mut limiter = pace.limiter.lock().unwrap_or_else(|p| p.into_inner());
        // One call at a time at the rate: spaced, not bursts.
        let limit = RateLimit {
            per_second: rate,
            burst: NonZeroU32::MIN,
        };
        if limiter.as_ref().is_none_or(|l| l.limit() != limit) {
            *limiter = Some(Limiter::new(limit));
        }
        let wait = limiter.as_ref()?.try_acquire();
        if wait.is_some() {
            // Held back by the rate, not answered: a probe's turn goes to the next caller.
            pace.breaker.neutral();
        }
        wait
    }

    /// An admitted call that said nothing about the endpoint (it failed on our side first):
    /// if it was the probe, the next caller probes.
    pub(crate) fn release(&self, id: SubscriptionId) {
        self.pace(id).breaker.neutral();
    }

    /// Records a call's result: success closes the breaker, a failure counts towards opening it.
    pub(crate) fn observe(&self, id: SubscriptionId, success: bool, now: Instant) {
        let pace = self.pace(id);
        if success {
            pace.breaker.success();
        } else {
            pace.breaker.failure(now);
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
            .expect("the second call at once waits");
        assert!(
            wait > Duration::from_millis(300) && wait <= Duration::from_millis(500),
            "{wait:?}"
        );
        std::thread::sleep(wait);
        assert_eq!(p.admit(id, Some(2), Instant::now()), None, "its turn came");
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
        assert!(
            p.admit(id, None, later).is_some(),
            "the others wait for the probe's verdict"
        );
        p.observe(id, false, later);
        assert!(
            p.admit(id, None, later).is_some(),
            "a failed probe re-opens"
        );
        let after = later + Duration::from_secs(10);
        assert_eq!(p.admit(id, None, after), None, "the next probe");
        p.release(id);
        assert_eq!(
            p.admit(id, None, after),
            None,
            "a probe that said nothing gives the turn to the next caller"
        );
        p.observe(id, true, after);
        assert_eq!(p.admit(id, None, after), None, "success closes");
    }
}
