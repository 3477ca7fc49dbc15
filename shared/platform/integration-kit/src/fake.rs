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

use std::collections::HashMap;
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

/// Calls per idempotency key, process-wide.
pub struct CallCounter(Mutex<Option<HashMap<String, u32>>>);

impl CallCounter {
    pub const fn new() -> Self {
        CallCounter(Mutex::new(None))
    }

    pub fn count(&self, key: Option<&str>) {
        if let Some(k) = key {
            *self
                .0
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .get_or_insert_with(HashMap::new)
                .entry(k.to_owned())
                .or_default() += 1;
        }
    }

    pub fn calls(&self, key: &str) -> u32 {
        self.0
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .as_ref()
            .and_then(|m| m.get(key).copied())
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
