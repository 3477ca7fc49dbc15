//! A consecutive-failure circuit breaker with a single half-open probe.
//!
//! Hand-written (about sixty lines) because the call site needs three things the breaker
//! crates we looked at do not give together: a breaker created per key at run time with the
//! policy of that key, a "how long until it closes" answer (it becomes the failure's
//! retry-after), and failures that do not count (a 400 is the caller's fault, not the
//! vendor's).

use std::sync::Mutex;
use std::time::{Duration, Instant};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BreakerPolicy {
    /// Consecutive failures that open the circuit.
    pub failure_threshold: u32,
    /// How long it stays open before one probe is let through.
    pub open_for: Duration,
}

impl Default for BreakerPolicy {
    fn default() -> Self {
        BreakerPolicy {
            failure_threshold: 5,
            open_for: Duration::from_secs(30),
        }
    }
}

#[derive(Debug)]
enum State {
    Closed {
        failures: u32,
    },
    Open {
        until: Instant,
    },
    /// One probe is out; everyone else waits for its verdict.
    HalfOpen,
}

#[derive(Debug)]
pub struct Breaker {
    policy: BreakerPolicy,
    state: Mutex<State>,
}

/// The breaker refused a call: it will let one through in `remaining`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Open {
    pub remaining: Duration,
}

impl Breaker {
    pub fn new(policy: BreakerPolicy) -> Self {
        Breaker {
            policy,
            state: Mutex::new(State::Closed { failures: 0 }),
        }
    }

    /// Whether a call may go now. When the open period is over the first caller becomes the
    /// probe.
    pub fn admit(&self, now: Instant) -> Result<(), Open> {
        let mut state = self.state.lock().unwrap_or_else(|p| p.into_inner());
        match *state {
            State::Closed { .. } => Ok(()),
            State::Open { until } if now >= until => {
                *state = State::HalfOpen;
                Ok(())
            }
            State::Open { until } => Err(Open {
                remaining: until - now,
            }),
            // The probe's answer is awaited; come back after a short while.
            State::HalfOpen => Err(Open {
                remaining: Duration::from_millis(100).min(self.policy.open_for),
            }),
        }
    }

    pub fn success(&self) {
        *self.state.lock().unwrap_or_else(|p| p.into_inner()) = State::Closed { failures: 0 };
    }

    pub fn failure(&self, now: Instant) {
        let mut state = self.state.lock().unwrap_or_else(|p| p.into_inner());
        let failures = match *state {
            State::Closed { failures } => failures.saturating_add(1),
            // A failed probe, or a straggler of the period before opening: open (again).
            State::HalfOpen | State::Open { .. } => self.policy.failure_threshold,
        };
        *state = if failures >= self.policy.failure_threshold {
            State::Open {
                until: now + self.policy.open_for,
            }
        } else {
            State::Closed { failures }
        };
    }

    /// A call that ended without saying anything about the vendor's health (a 400, say):
    /// a probe that ends so lets the next caller probe.
    pub fn neutral(&self) {
        let mut state = self.state.lock().unwrap_or_else(|p| p.into_inner());
        if matches!(*state, State::HalfOpen) {
            *state = State::Open {
                until: Instant::now(),
            };
        }
    }

    /// Whether calls are being refused now (without becoming the probe).
    pub fn is_open(&self, now: Instant) -> bool {
        match *self.state.lock().unwrap_or_else(|p| p.into_inner()) {
            State::Closed { .. } => false,
            State::Open { until } => now < until,
            State::HalfOpen => true,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn breaker() -> Breaker {
        Breaker::new(BreakerPolicy {
            failure_threshold: 3,
            open_for: Duration::from_secs(10),
        })
    }

    #[test]
    fn opens_after_consecutive_failures_only() {
        let b = breaker();
        let t = Instant::now();
        b.failure(t);
        b.failure(t);
        b.success();
        b.failure(t);
        b.failure(t);
        assert!(b.admit(t).is_ok(), "a success in between resets the count");
        b.failure(t);
        let open = b.admit(t + Duration::from_secs(4)).unwrap_err();
        assert_eq!(open.remaining, Duration::from_secs(6));
    }

    #[test]
    fn one_probe_after_the_open_period_and_its_verdict_decides() {
        let b = breaker();
        let t = Instant::now();
        for _ in 0..3 {
            b.failure(t);
        }
        let later = t + Duration::from_secs(10);
        assert!(b.admit(later).is_ok(), "the probe goes");
        assert!(b.admit(later).is_err(), "others wait for the probe");
        b.failure(later);
        assert!(b.admit(later + Duration::from_secs(9)).is_err(), "reopened");
        let again = later + Duration::from_secs(10);
        assert!(b.admit(again).is_ok());
        b.success();
        assert!(b.admit(again).is_ok());
        assert!(b.admit(again).is_ok(), "closed: everyone goes");
        assert!(!b.is_open(again));
    }

    #[test]
    fn a_neutral_probe_lets_the_next_caller_probe() {
        let b = breaker();
        let t = Instant::now();
        for _ in 0..3 {
            b.failure(t);
        }
        let later = t + Duration::from_secs(11);
        assert!(b.admit(later).is_ok());
        b.neutral();
        assert!(b.admit(Instant::now() + Duration::from_secs(11)).is_ok());
    }
}
