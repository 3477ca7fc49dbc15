//! The one pipeline every vendor call goes through (design §8):
//! timeout → retry → circuit breaker → rate limiter, keyed by (tenant, provider).
//!
//! ```text
//! send(call, build) ──► breaker admits? ──no──► CircuitOpen (no call made)
//!                          │ yes
//!                          ▼
//!                     vendor's Retry-After still running / rate limiter has no permit
//!                     within the wait budget? ──► RateLimited (no call made)
//!                          │
//!                          ▼
//!                     request (+ traceparent, child span) under the attempt timeout
//!                          │
//!                     classifier ──► success: breaker closes, budget refills
//!                          │ failure
//!                          ▼
//!                     retry if the class is retryable, the request is safe to repeat
//!                     (or was certainly not processed), attempts and the retry budget
//!                     allow it, and the delay (full jitter, at least the vendor's hint)
//!                     fits the deadline; otherwise one `CallError`
//! ```
//!
//! Crates: `governor` for the rate limiter (GCRA, lock-free), tower's `TpsBudget` for the
//! retry budget (retries are a fraction of recent calls, so a vendor outage cannot turn into
//! a retry storm). The retry loop and breaker are written here: the loop needs the vendor's
//! hints and the request's safety at every step, and the breaker must answer "open for how
//! long" (see `breaker`).

mod breaker;
mod classify;
pub mod hints;
mod stream;

pub use breaker::{Breaker, BreakerPolicy, Open};
pub use classify::{Classifier, HttpStatus, VendorFailure, Verdict, classify_status, retry_hint};
pub use stream::{StreamTimeouts, VendorStream};

use std::collections::HashMap;
use std::num::NonZeroU32;
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

use bytes::Bytes;
use domain::FailureClassification;
use envelope::TraceParent;
use governor::clock::{Clock as _, DefaultClock};
use governor::{DefaultDirectRateLimiter, Quota, RateLimiter};
use http::{HeaderMap, StatusCode};
use tower::retry::budget::{Budget as _, TpsBudget};

/// Retries: how many, and how far apart.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Attempts in all, the first included (1 = no retry).
    pub max_attempts: u32,
    /// The ceiling of the first retry's delay; it doubles per retry.
    pub base_delay: Duration,
    /// The largest ceiling.
    pub max_delay: Duration,
}

impl RetryPolicy {
    /// The delay before retry `retry` (1 for the first): uniformly random up to
    /// `min(max_delay, base_delay · 2^(retry-1))` ("full jitter"), so clients that failed
    /// together do not come back together.
    pub fn backoff(&self, retry: u32, rng: &mut impl rand::Rng) -> Duration {
        let ceiling = self
            .base_delay
            .saturating_mul(
                1u32.checked_shl(retry.saturating_sub(1))
                    .unwrap_or(u32::MAX),
            )
            .min(self.max_delay);
        if ceiling.is_zero() {
            return Duration::ZERO;
        }
        Duration::from_nanos(rng.gen_range(0..=ceiling.as_nanos().min(u64::MAX as u128) as u64))
    }
}

/// Everything the pipeline does, as values with documented defaults.
#[derive(Debug, Clone, PartialEq)]
pub struct Policy {
    /// One attempt, request and body (default 10 s).
    pub attempt_timeout: Duration,
    /// The whole call, retries and waits included (default 30 s).
    pub deadline: Duration,
    /// Default: 3 attempts, 200 ms base, 5 s ceiling.
    pub retry: RetryPolicy,
    /// Default: 5 consecutive failures open the circuit for 30 s.
    pub breaker: BreakerPolicy,
    /// How long a call may wait for a rate-limit permit (or the vendor's `Retry-After`)
    /// before it fails as `rate_limited` without calling (default 2 s).
    pub max_rate_wait: Duration,
    /// Retries allowed on top of calls: this fraction of the calls of the last 10 s, plus
    /// `retry_floor_per_sec` (defaults 0.2 and 10).
    pub retry_ratio: f32,
    pub retry_floor_per_sec: u32,
}

impl Default for Policy {
    fn default() -> Self {
        Policy {
            attempt_timeout: Duration::from_secs(10),
            deadline: Duration::from_secs(30),
            retry: RetryPolicy {
                max_attempts: 3,
                base_delay: Duration::from_millis(200),
                max_delay: Duration::from_secs(5),
            },
            breaker: BreakerPolicy::default(),
            max_rate_wait: Duration::from_secs(2),
            retry_ratio: 0.2,
            retry_floor_per_sec: 10,
        }
    }
}

pub use ::settings::InvalidSetting;

/// Setting names read by [`Policy::from_settings`].
pub mod settings {
    pub const TIMEOUT_MS: &str = "VENDOR_TIMEOUT_MS";
    pub const DEADLINE_MS: &str = "VENDOR_DEADLINE_MS";
    pub const MAX_ATTEMPTS: &str = "VENDOR_MAX_ATTEMPTS";
    pub const RETRY_BASE_MS: &str = "VENDOR_RETRY_BASE_MS";
    pub const BREAKER_THRESHOLD: &str = "VENDOR_BREAKER_THRESHOLD";
    pub const BREAKER_OPEN_MS: &str = "VENDOR_BREAKER_OPEN_MS";
    pub const MAX_RATE_WAIT_MS: &str = "VENDOR_MAX_RATE_WAIT_MS";
}

impl Policy {
    /// The defaults, overridden by the settings that are present; a present setting out of
    /// its range is refused (start-up stops naming it).
    pub fn from_settings(source: &impl ::settings::Source) -> Result<Policy, InvalidSetting> {
        use ::settings::{integer, millis};
        const HOUR_MS: u64 = 3_600_000;
        let mut p = Policy::default();
        if let Some(d) = millis(source, settings::TIMEOUT_MS, 1..=HOUR_MS)? {
            p.attempt_timeout = d;
        }
        if let Some(d) = millis(source, settings::DEADLINE_MS, 1..=HOUR_MS)? {
            p.deadline = d;
        }
        if let Some(n) = integer(source, settings::MAX_ATTEMPTS, 1u32..=20)? {
            p.retry.max_attempts = n;
        }
        if let Some(d) = millis(source, settings::RETRY_BASE_MS, 0..=HOUR_MS)? {
            p.retry.base_delay = d;
        }
        if let Some(n) = integer(source, settings::BREAKER_THRESHOLD, 1u32..=10_000)? {
            p.breaker.failure_threshold = n;
        }
        if let Some(d) = millis(source, settings::BREAKER_OPEN_MS, 0..=HOUR_MS)? {
            p.breaker.open_for = d;
        }
        if let Some(d) = millis(source, settings::MAX_RATE_WAIT_MS, 0..=HOUR_MS)? {
            p.max_rate_wait = d;
        }
        Ok(p)
    }
}

/// Whom a call is for: breakers, limiters and budgets are per (tenant, provider), so one
/// tenant's dead connection or greedy workload never slows another's.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct CallKey {
    pub tenant: Arc<str>,
    pub provider: Arc<str>,
}

impl CallKey {
    pub fn new(tenant: &str, provider: &str) -> Self {
        CallKey {
            tenant: tenant.into(),
            provider: provider.into(),
        }
    }
}

/// A rate the vendor allows (the registry's hints): a steady rate and a burst.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RateLimit {
    pub per_second: NonZeroU32,
    pub burst: NonZeroU32,
}

/// A rate limiter of one [`RateLimit`] (GCRA, `governor`): what the pipeline uses per call
/// key, for other callers that pace their own calls (the webhook gateway's deliveries).
#[derive(Debug)]
pub struct Limiter {
    limit: RateLimit,
    inner: DefaultDirectRateLimiter,
}

impl Limiter {
    pub fn new(limit: RateLimit) -> Self {
        Limiter {
            limit,
            inner: RateLimiter::direct(
                Quota::per_second(limit.per_second).allow_burst(limit.burst),
            ),
        }
    }

    pub fn limit(&self) -> RateLimit {
        self.limit
    }

    /// `None`: a call may go now (it took its slot); else how long until one may.
    pub fn try_acquire(&self) -> Option<Duration> {
        self.inner
            .check()
            .err()
            .map(|not_until| not_until.wait_time_from(DefaultClock::default().now()))
    }
}

/// Whether a request may be sent twice.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Safety {
    /// Reads and PUTs: always.
    Safe,
    /// A POST carrying a vendor idempotency key: the vendor de-duplicates.
    Idempotent,
    /// A POST without one: only when the vendor certainly did not process the first (the
    /// connection was never made, or it answered 429).
    Unsafe,
}

/// One call's parameters.
#[derive(Clone, Copy)]
pub struct Call<'a> {
    pub key: &'a CallKey,
    pub safety: Safety,
    pub classifier: &'a dyn Classifier,
    /// The caller's trace; each attempt goes out as a child span of it.
    pub traceparent: Option<&'a TraceParent>,
    pub rate_limit: Option<RateLimit>,
    /// Attempts for this call when not the policy's (failover sets 1: the next provider is
    /// a better retry than the same one).
    pub max_attempts: Option<u32>,
    /// One attempt's timeout when not the policy's (a streamed answer's first byte may
    /// take a model's load time); the call's deadline stretches to fit one such attempt.
    pub attempt_timeout: Option<Duration>,
}

impl<'a> Call<'a> {
    pub fn new(key: &'a CallKey, safety: Safety, classifier: &'a dyn Classifier) -> Self {
        Call {
            key,
            safety,
            classifier,
            traceparent: None,
            rate_limit: None,
            max_attempts: None,
            attempt_timeout: None,
        }
    }

    pub fn traceparent(mut self, tp: Option<&'a TraceParent>) -> Self {
        self.traceparent = tp;
        self
    }

    pub fn rate_limit(mut self, limit: Option<RateLimit>) -> Self {
        self.rate_limit = limit;
        self
    }

    pub fn max_attempts(mut self, n: u32) -> Self {
        self.max_attempts = Some(n.max(1));
        self
    }

    pub fn attempt_timeout(mut self, timeout: Duration) -> Self {
        self.attempt_timeout = Some(timeout);
        self
    }
}

/// A successful answer.
#[derive(Debug, Clone)]
pub struct VendorResponse {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: Bytes,
    /// Attempts it took.
    pub attempts: u32,
}

/// An exhausted call: exactly one per call that did not succeed, so the caller records
/// exactly one `IntegrationFailure`.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{} (after {attempts} attempt(s))", failure.message)]
pub struct CallError {
    pub failure: VendorFailure,
    /// Attempts made (0 when the breaker or the limiter refused before any call).
    pub attempts: u32,
    /// Whether trying again later may help (and is safe).
    pub retryable: bool,
}

impl CallError {
    pub fn class(&self) -> FailureClassification {
        self.failure.class
    }
}

/// The most of a vendor's answer read into memory.
const MAX_BODY: usize = 16 * 1024 * 1024;

struct KeyState {
    breaker: Breaker,
    limiter: Mutex<Option<(RateLimit, Arc<DefaultDirectRateLimiter>)>>,
    /// The vendor said 429 with a hint: nobody calls it for this key before then.
    blocked_until: Mutex<Option<Instant>>,
    budget: TpsBudget,
}

impl KeyState {
    /// Nobody calls the vendor for this key for `wait` (the longest wait asked wins).
    fn block_for(&self, wait: Duration) {
        let until = Instant::now() + wait;
        let mut blocked = self.blocked_until.lock().unwrap_or_else(|p| p.into_inner());
        if blocked.is_none_or(|b| b < until) {
            *blocked = Some(until);
        }
    }
}

/// The pipeline. One per app, shared by every call.
pub struct Pipeline {
    policy: Policy,
    keys: RwLock<HashMap<CallKey, Arc<KeyState>>>,
}

impl std::fmt::Debug for Pipeline {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Pipeline")
            .field("policy", &self.policy)
            .finish_non_exhaustive()
    }
}

/// How one attempt of a custom (non-HTTP) call ended, for [`Pipeline::execute`].
#[derive(Debug)]
pub enum Outcome<T> {
    Done(T),
    Failed {
        failure: VendorFailure,
        /// Whether the vendor may have processed the request (decides whether an unsafe
        /// request may be repeated).
        maybe_processed: bool,
    },
}

/// Whether a failure says the vendor is unhealthy (and so counts against its breaker).
fn counts_against_breaker(class: FailureClassification) -> bool {
    matches!(
        class,
        FailureClassification::Transient
            | FailureClassification::Timeout
            | FailureClassification::VendorError
    )
}

impl Pipeline {
    pub fn new(policy: Policy) -> Self {
        Pipeline {
            policy,
            keys: RwLock::new(HashMap::new()),
        }
    }

    pub fn policy(&self) -> &Policy {
        &self.policy
    }

    fn state(&self, key: &CallKey) -> Arc<KeyState> {
        if let Some(s) = self.keys.read().unwrap_or_else(|p| p.into_inner()).get(key) {
            return s.clone();
        }
        let mut keys = self.keys.write().unwrap_or_else(|p| p.into_inner());
        keys.entry(key.clone())
            .or_insert_with(|| {
                Arc::new(KeyState {
                    breaker: Breaker::new(self.policy.breaker),
                    limiter: Mutex::new(None),
                    blocked_until: Mutex::new(None),
                    budget: TpsBudget::new(
                        Duration::from_secs(10),
                        self.policy.retry_floor_per_sec,
                        self.policy.retry_ratio,
                    ),
                })
            })
            .clone()
    }

    /// Whether the key's circuit is open now (failover skips such providers first).
    pub fn is_open(&self, key: &CallKey) -> bool {
        self.state(key).breaker.is_open(Instant::now())
    }

    /// Sends the request `build` makes (called once per attempt) through the pipeline.
    pub async fn send<F>(&self, call: Call<'_>, build: F) -> Result<VendorResponse, CallError>
    where
        F: Fn() -> reqwest::RequestBuilder,
    {
        let (response, attempts) = self.execute(call, |_| http_attempt(&call, &build)).await?;
        // A success that spent the vendor's quota (OpenAI's `x-ratelimit-remaining-*: 0`
        // with its `6m0s` reset): nobody calls it for this key before the reset, as after
        // a 429, so the next call fails fast (or falls over) instead of being refused.
        if let Some(wait) = hints::exhausted_hint(&response.headers, std::time::SystemTime::now()) {
            self.state(call.key).block_for(wait);
        }
        Ok(VendorResponse {
            attempts,
            ..response
        })
    }

    /// Runs a custom call (SMTP, an in-process vendor) through the same pipeline: `attempt`
    /// is called once per attempt (with its number, from 1) under the attempt timeout, and
    /// says how it went. Answers the value and the attempts it took.
    pub async fn execute<T, F, Fut>(
        &self,
        call: Call<'_>,
        attempt: F,
    ) -> Result<(T, u32), CallError>
    where
        F: Fn(u32) -> Fut,
        Fut: std::future::Future<Output = Outcome<T>>,
    {
        let state = self.state(call.key);
        let started = Instant::now();
        let attempt_timeout = call.attempt_timeout.unwrap_or(self.policy.attempt_timeout);
        let deadline = started + self.policy.deadline.max(attempt_timeout);
        let max_attempts = call
            .max_attempts
            .unwrap_or(self.policy.retry.max_attempts)
            .max(1);
        state.budget.deposit();
        let mut attempts = 0u32;
        loop {
            if let Err(open) = state.breaker.admit(Instant::now()) {
                return Err(refused(
                    VendorFailure::new(
                        FailureClassification::CircuitOpen,
                        "the provider's circuit is open after repeated failures",
                    )
                    .retry_after(Some(open.remaining)),
                    attempts,
                ));
            }
            if let Err(failure) = self.wait_for_permit(&state, &call, deadline).await {
                // The probe (if this call was it) never went: let the next caller probe.
                state.breaker.neutral();
                return Err(refused(failure, attempts));
            }
            attempts += 1;
            let attempt_deadline = deadline.min(Instant::now() + attempt_timeout);
            let outcome =
                match tokio::time::timeout_at(attempt_deadline.into(), attempt(attempts)).await {
                    Ok(outcome) => outcome,
                    Err(_) => Outcome::Failed {
                        failure: VendorFailure::new(
                            FailureClassification::Timeout,
                            "the vendor did not answer in time",
                        ),
                        maybe_processed: true,
                    },
                };
            let (failure, maybe_processed) = match outcome {
                Outcome::Done(value) => {
                    state.breaker.success();
                    return Ok((value, attempts));
                }
                Outcome::Failed {
                    failure,
                    maybe_processed,
                } => {
                    if counts_against_breaker(failure.class) {
                        state.breaker.failure(Instant::now());
                    } else {
                        state.breaker.neutral();
                    }
                    if failure.class == FailureClassification::RateLimited
                        && let Some(after) = failure.retry_after
                    {
                        state.block_for(after);
                    }
                    (failure, maybe_processed)
                }
            };
            let safe_to_repeat = match call.safety {
                Safety::Safe | Safety::Idempotent => true,
                Safety::Unsafe => !maybe_processed,
            };
            let retryable = failure.class.is_retryable_by_default() && safe_to_repeat;
            tracing::debug!(
                tenant = %call.key.tenant, provider = %call.key.provider, attempt = attempts,
                class = ?failure.class, status = ?failure.vendor_status, retryable,
                "vendor call failed"
            );
            if !retryable || attempts >= max_attempts {
                return Err(CallError {
                    failure,
                    attempts,
                    retryable,
                });
            }
            let delay = self
                .policy
                .retry
                .backoff(attempts, &mut rand::thread_rng())
                .max(failure.retry_after.unwrap_or_default());
            if Instant::now() + delay >= deadline || !state.budget.withdraw() {
                return Err(CallError {
                    failure,
                    attempts,
                    retryable,
                });
            }
            tokio::time::sleep(delay).await;
        }
    }

    /// Waits out the vendor's last `Retry-After` and takes a rate-limit permit, within
    /// `max_rate_wait` and the deadline; otherwise the call fails as `rate_limited`
    /// without reaching the vendor.
    async fn wait_for_permit(
        &self,
        state: &KeyState,
        call: &Call<'_>,
        deadline: Instant,
    ) -> Result<(), VendorFailure> {
        let give_up = deadline.min(Instant::now() + self.policy.max_rate_wait);
        let blocked = *state
            .blocked_until
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        if let Some(until) = blocked {
            let now = Instant::now();
            if until > now {
                if until > give_up {
                    return Err(VendorFailure::new(
                        FailureClassification::RateLimited,
                        "the vendor asked us to slow down; waiting for its retry-after",
                    )
                    .retry_after(Some(until - now)));
                }
                tokio::time::sleep_until(until.into()).await;
            }
        }
        let Some(limit) = call.rate_limit else {
            return Ok(());
        };
        let limiter = {
            let mut slot = state.limiter.lock().unwrap_or_else(|p| p.into_inner());
            match &*slot {
                Some((current, limiter)) if *current == limit => limiter.clone(),
                // New hints (or none before): a fresh limiter with the new quota.
                _ => {
                    let limiter = Arc::new(RateLimiter::direct(
                        Quota::per_second(limit.per_second).allow_burst(limit.burst),
                    ));
                    *slot = Some((limit, limiter.clone()));
                    limiter
                }
            }
        };
        loop {
            match limiter.check() {
                Ok(()) => return Ok(()),
                Err(not_until) => {
                    let wait = not_until.wait_time_from(DefaultClock::default().now());
                    let now = Instant::now();
                    if now + wait > give_up {
                        return Err(VendorFailure::new(
                            FailureClassification::RateLimited,
                            "the provider's rate limit for this tenant is used up",
                        )
                        .retry_after(Some(wait)));
                    }
                    tokio::time::sleep(wait).await;
                }
            }
        }
    }
}

/// One HTTP attempt: the request (with a child span of the caller's trace), its answer read
/// whole, and the classifier's verdict. The pipeline's timeout surrounds it.
async fn http_attempt<F>(call: &Call<'_>, build: &F) -> Outcome<VendorResponse>
where
    F: Fn() -> reqwest::RequestBuilder,
{
    let mut request = build();
    if let Some(tp) = call.traceparent {
        request = request.header("traceparent", tp.child().to_string());
    }
    let exchange = async {
        let response = request.send().await?;
        let status = response.status();
        let headers = response.headers().clone();
        let body = read_body(response).await?;
        Ok::<_, reqwest::Error>((status, headers, body))
    };
    match exchange.await {
        Err(e) => transport_failure(&e),
        Ok((status, headers, body)) => match call.classifier.classify(status, &headers, &body) {
            Verdict::Success => Outcome::Done(VendorResponse {
                status,
                headers,
                body,
                attempts: 1,
            }),
            Verdict::Failure(failure) => classified_failure(failure),
        },
    }
}

/// A classified failure as an attempt's outcome.
fn classified_failure<T>(failure: VendorFailure) -> Outcome<T> {
    Outcome::Failed {
        // A 429 (however spelled) means the vendor did not do it.
        maybe_processed: failure.class != FailureClassification::RateLimited,
        failure,
    }
}

/// An attempt that got no (whole) answer: refused by the SSRF guard, not connected, timed
/// out or cut short.
fn transport_failure<T>(e: &reqwest::Error) -> Outcome<T> {
    match e {
        e if refused_by_guard(e) => Outcome::Failed {
            // Calling it later changes nothing: the address stays internal.
            failure: VendorFailure {
                vendor_code: Some(URL_REFUSED.to_owned()),
                ..VendorFailure::new(
                    FailureClassification::Validation,
                    "the vendor's address is internal (loopback, private, link-local or otherwise special-purpose) and may not be called",
                )
            },
            maybe_processed: false,
        },
        e => {
            let connect = e.is_connect();
            let (class, message) = if e.is_timeout() {
                (
                    FailureClassification::Timeout,
                    "the vendor did not answer in time",
                )
            } else if connect {
                (
                    FailureClassification::Transient,
                    "the vendor could not be reached",
                )
            } else if e.is_decode() || e.is_body() {
                (
                    FailureClassification::Transient,
                    "the vendor's answer was cut short",
                )
            } else {
                (
                    FailureClassification::Transient,
                    "the call to the vendor failed",
                )
            };
            Outcome::Failed {
                failure: VendorFailure::new(class, message),
                maybe_processed: !connect,
            }
        }
    }
}

/// The `vendor_code` of a call the SSRF guard stopped at connect time (a name that resolved
/// only to internal addresses): the code the routes give such a URL when they see it first.
pub const URL_REFUSED: &str = "url_refused";

/// Whether the SSRF guard's resolver refused the connection.
fn refused_by_guard(e: &reqwest::Error) -> bool {
    std::iter::successors(Some(e as &dyn std::error::Error), |e| e.source())
        .any(|e| e.downcast_ref::<netguard::Refused>().is_some())
}

fn refused(failure: VendorFailure, attempts: u32) -> CallError {
    CallError {
        failure,
        attempts,
        // Nothing reached the vendor: trying later is always safe.
        retryable: true,
    }
}

async fn read_body(mut response: reqwest::Response) -> Result<Bytes, reqwest::Error> {
    let mut body = bytes::BytesMut::new();
    while let Some(chunk) = response.chunk().await? {
        if body.len() + chunk.len() > MAX_BODY {
            // Enough to classify; the rest of an oversized answer is not ours to hold.
            break;
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body.freeze())
}

#[cfg(test)]
mod tests;
