//! What every app's Fake provider shares: in-process vendors for tests and demos that go
//! through the resilience pipeline like real ones and are steered by their connection:
//!
//! - credential `{"kind":"apiKey","apiKey":"…"}`; the key `rejected` fails as `auth`;
//! - config `mode` says how operations go (the connection test checks the key only, so a
//!   connection can be established and then see its vendor go down): `ok` (default), `fail`
//!   (the vendor answers 503), `timeout` (it never answers), `throttle` (429 with
//!   `retryAfterMs`, default 1000), `reject` (400); `latencyMs` (0–10000) delays every
//!   answer;
//! - a [`CallCounter`] counts the calls per run (its idempotency key), for tests.

use std::collections::{HashMap, VecDeque};
use std::sync::Mutex;
use std::time::Duration;

use domain::FailureClassification;
use resilience::{Outcome, VendorFailure};
use serde::Deserialize;

use crate::ProviderCall;

/// How a Fake's operations go.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Mode {
    #[default]
    Ok,
    Fail,
    Timeout,
    Throttle,
    Reject,
}

/// How a connection steers its Fake: the whole config of a Fake that takes nothing else
/// (an app whose Fake takes more declares those fields beside these and answers a `Steer`).
#[derive(Debug, Clone, Copy, Default, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Steer {
    #[serde(default)]
    pub mode: Mode,
    /// Delays every answer (capped at ten seconds).
    pub latency_ms: Option<u64>,
    /// The `Retry-After` of `throttle` (default one second, capped at ten).
    pub retry_after_ms: Option<u64>,
}

impl crate::ProviderConfig for Steer {}

impl Steer {
    fn latency(&self) -> Duration {
        Duration::from_millis(self.latency_ms.unwrap_or(0).min(MAX_MILLIS))
    }

    fn retry_after(&self) -> Duration {
        Duration::from_millis(self.retry_after_ms.unwrap_or(1000).min(MAX_MILLIS))
    }
}

/// The longest delay a Fake is steered to.
const MAX_MILLIS: u64 = 10_000;

/// A failed answer with the vendor's status.
pub fn failure(status: u16, class: FailureClassification, message: &str) -> Outcome<()> {
    Outcome::Failed {
        failure: VendorFailure::new(class, message).status(status),
        // A 429 means not done; anything else may have been.
        maybe_processed: status != 429,
    }
}

/// The most a Fake remembers: of what it was sent ([`Recent`]) and of its calls per run
/// ([`CallCounter`]). The oldest go first, so a Fake serving a long demo or soak keeps a
/// flat footprint (a soak's unbounded lists grew the runner by about 50 MiB an hour).
pub const FAKE_MEMORY: usize = 10_000;

/// What a Fake was sent, the last [`FAKE_MEMORY`] of it, for tests to read.
pub struct Recent<T>(Mutex<VecDeque<T>>);

impl<T: Clone> Recent<T> {
    pub const fn new() -> Self {
        Recent(Mutex::new(VecDeque::new()))
    }

    /// Keeps `item` unless one of the last kept is `same` (a repeated run's send).
    pub fn keep(&self, item: T, same: impl Fn(&T) -> bool) {
        let mut items = self.0.lock().unwrap_or_else(|p| p.into_inner());
        if items.iter().any(same) {
            return;
        }
        if items.len() >= FAKE_MEMORY {
            items.pop_front();
        }
        items.push_back(item);
    }

    /// Everything kept, oldest first.
    pub fn all(&self) -> Vec<T> {
        let items = self.0.lock().unwrap_or_else(|p| p.into_inner());
        items.iter().cloned().collect()
    }
}

impl<T: Clone> Default for Recent<T> {
    fn default() -> Self {
        Self::new()
    }
}

/// Calls per key, and the keys in the order first seen (the oldest forgotten first).
type Counts = (HashMap<String, u32>, VecDeque<String>);

/// Calls per idempotency key, process-wide, for the last [`FAKE_MEMORY`] keys.
pub struct CallCounter(Mutex<Option<Counts>>);

impl CallCounter {
    pub const fn new() -> Self {
        CallCounter(Mutex::new(None))
    }

    pub fn count(&self, key: Option<&str>) {
        if let Some(k) = key {
            let mut guard = self.0.lock().unwrap_or_else(|p| p.into_inner());
            let (counts, order) = guard.get_or_insert_with(Default::default);
            if !counts.contains_key(k) {
                if order.len() >= FAKE_MEMORY
                    && let Some(oldest) = order.pop_front()
                {
                    counts.remove(&oldest);
                }
                order.push_back(k.to_owned());
            }
            *counts.entry(k.to_owned()).or_default() += 1;
        }
    }

    pub fn calls(&self, key: &str) -> u32 {
        self.0
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .as_ref()
            .and_then(|(counts, _)| counts.get(key).copied())
            .unwrap_or(0)
    }
}

impl Default for CallCounter {
    fn default() -> Self {
        Self::new()
    }
}

/// One call to a Fake through the call's pipeline (retries, breaker, limiter, as a real
/// vendor's): [`answer`], and a success where it has nothing to say. What every app's Fake
/// does before its own work.
pub async fn call_through(
    counter: &CallCounter,
    call: &ProviderCall<'_>,
    steer: &Steer,
    safety: resilience::Safety,
    operation: bool,
) -> Result<(), resilience::CallError> {
    call.pipeline
        .execute(call.call(safety, &resilience::HttpStatus), |_| async {
            answer(counter, call, steer, operation)
                .await
                .unwrap_or(Outcome::Done(()))
        })
        .await
        .map(|_| ())
}

/// The shared part of one call to a Fake: counted, delayed, the key checked, then — for an
/// operation (`operation` true), not for the connection test — the connection's mode.
/// `None` means the call goes ahead (the app's Fake adds its own refusals, then succeeds).
pub async fn answer(
    counter: &CallCounter,
    call: &ProviderCall<'_>,
    steer: &Steer,
    operation: bool,
) -> Option<Outcome<()>> {
    counter.count(call.idempotency_key);
    tokio::time::sleep(steer.latency()).await;
    if call.secret("apiKey").is_ok_and(|k| k == "rejected") {
        return Some(failure(
            401,
            FailureClassification::Auth,
            "the api key was rejected",
        ));
    }
    if !operation {
        return Some(Outcome::Done(()));
    }
    match steer.mode {
        Mode::Ok => None,
        Mode::Fail => Some(failure(
            503,
            FailureClassification::Transient,
            "the fake is down",
        )),
        Mode::Timeout => {
            // Never answers: the pipeline's timeout ends the attempt.
            std::future::pending::<()>().await;
            None
        }
        Mode::Throttle => Some(Outcome::Failed {
            failure: VendorFailure::new(
                FailureClassification::RateLimited,
                "the fake is throttling",
            )
            .status(429)
            .retry_after(Some(steer.retry_after())),
            maybe_processed: false,
        }),
        Mode::Reject => Some(failure(
            400,
            FailureClassification::Validation,
            "the fake refused the request",
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_fake_remembers_a_bounded_past() {
        let recent = Recent::new();
        for n in 0..FAKE_MEMORY + 5 {
            recent.keep(n, |m| *m == n);
        }
        recent.keep(FAKE_MEMORY + 4, |m| *m == FAKE_MEMORY + 4);
        let all = recent.all();
        assert_eq!(all.len(), FAKE_MEMORY, "the oldest went first");
        assert_eq!(all[0], 5);
        assert_eq!(
            *all.last().unwrap(),
            FAKE_MEMORY + 4,
            "a repeat is kept once"
        );

        let calls = CallCounter::new();
        for n in 0..FAKE_MEMORY + 1 {
            calls.count(Some(&format!("run-{n}")));
        }
        calls.count(Some("run-10000"));
        assert_eq!(calls.calls("run-0"), 0, "forgotten");
        assert_eq!(calls.calls("run-1"), 1);
        assert_eq!(calls.calls("run-10000"), 2);
    }
}
