use std::sync::Mutex;
use std::sync::atomic::{AtomicU32, Ordering};

use axum::extract::State;
use axum::http::HeaderMap as AxumHeaders;
use axum::response::IntoResponse;

use super::*;

/// One scripted answer of the vendor.
#[derive(Clone)]
struct Step {
    status: u16,
    headers: Vec<(&'static str, String)>,
    delay: Duration,
}

fn step(status: u16) -> Step {
    Step {
        status,
        headers: Vec::new(),
        delay: Duration::ZERO,
    }
}

#[derive(Default)]
struct Vendor {
    script: Mutex<Vec<Step>>,
    calls: AtomicU32,
    traceparents: Mutex<Vec<String>>,
}

/// A real HTTP vendor that answers from a script (the last step repeats).
async fn vendor(script: Vec<Step>) -> (String, Arc<Vendor>) {
    let state = Arc::new(Vendor {
        script: Mutex::new(script),
        ..Vendor::default()
    });
    async fn answer(State(v): State<Arc<Vendor>>, headers: AxumHeaders) -> impl IntoResponse {
        v.calls.fetch_add(1, Ordering::SeqCst);
        if let Some(tp) = headers.get("traceparent").and_then(|t| t.to_str().ok()) {
            v.traceparents.lock().unwrap().push(tp.to_owned());
        }
        let step = {
            let mut script = v.script.lock().unwrap();
            if script.len() > 1 {
                script.remove(0)
            } else {
                script[0].clone()
            }
        };
        tokio::time::sleep(step.delay).await;
        let mut response = (StatusCode::from_u16(step.status).unwrap(), "{}").into_response();
        for (k, val) in step.headers {
            response.headers_mut().insert(k, val.parse().unwrap());
        }
        response
    }
    let app = axum::Router::new()
        .route("/call", axum::routing::any(answer))
        .with_state(state.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/call", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (url, state)
}

fn fast_policy() -> Policy {
    Policy {
        attempt_timeout: Duration::from_millis(500),
        deadline: Duration::from_secs(5),
        retry: RetryPolicy {
            max_attempts: 3,
            base_delay: Duration::from_millis(10),
            max_delay: Duration::from_millis(50),
        },
        breaker: BreakerPolicy {
            failure_threshold: 3,
            open_for: Duration::from_secs(60),
        },
        max_rate_wait: Duration::from_millis(200),
        ..Policy::default()
    }
}

fn client() -> reqwest::Client {
    reqwest::Client::new()
}

#[tokio::test]
async fn transient_failures_are_retried_with_a_child_span_per_attempt() {
    let (url, v) = vendor(vec![step(503), step(502), step(200)]).await;
    let p = Pipeline::new(fast_policy());
    let key = CallKey::new("t1", "acme");
    let tp = TraceParent::new_root();
    let http = client();
    let ok = p
        .send(
            Call::new(&key, Safety::Safe, &HttpStatus).traceparent(Some(&tp)),
            || http.get(&url),
        )
        .await
        .expect("third attempt succeeds");
    assert_eq!(ok.attempts, 3);
    assert_eq!(v.calls.load(Ordering::SeqCst), 3);
    let tps = v.traceparents.lock().unwrap().clone();
    assert_eq!(tps.len(), 3);
    for t in &tps {
        let parsed = TraceParent::parse(t).unwrap();
        assert_eq!(parsed.trace_id(), tp.trace_id(), "same trace");
        assert_ne!(parsed.parent_id(), tp.parent_id(), "a child span");
    }
    assert_ne!(tps[0], tps[1], "each attempt is its own span");
}

#[tokio::test]
async fn an_unsafe_post_is_not_repeated_after_a_5xx_but_is_after_a_429() {
    let (url, v) = vendor(vec![step(503), step(200)]).await;
    let p = Pipeline::new(fast_policy());
    let key = CallKey::new("t1", "acme");
    let http = client();
    let err = p
        .send(Call::new(&key, Safety::Unsafe, &HttpStatus), || {
            http.post(&url)
        })
        .await
        .unwrap_err();
    assert_eq!(err.class(), FailureClassification::Transient);
    assert_eq!(err.attempts, 1);
    assert!(!err.retryable, "the vendor may have done it");
    assert_eq!(v.calls.load(Ordering::SeqCst), 1);

    let mut limited = step(429);
    limited.headers.push(("retry-after-ms", "50".into()));
    let (url, v) = vendor(vec![limited, step(201)]).await;
    let key = CallKey::new("t1", "other");
    let ok = p
        .send(Call::new(&key, Safety::Unsafe, &HttpStatus), || {
            http.post(&url)
        })
        .await
        .expect("a 429 means not done: retried");
    assert_eq!(ok.status, StatusCode::CREATED);
    assert_eq!(v.calls.load(Ordering::SeqCst), 2);
}

#[tokio::test]
async fn retry_after_is_honoured_between_attempts() {
    let mut limited = step(429);
    limited.headers.push(("retry-after-ms", "300".into()));
    let (url, _v) = vendor(vec![limited, step(200)]).await;
    let p = Pipeline::new(Policy {
        max_rate_wait: Duration::from_secs(1),
        ..fast_policy()
    });
    let key = CallKey::new("t1", "acme");
    let http = client();
    let started = Instant::now();
    p.send(Call::new(&key, Safety::Safe, &HttpStatus), || {
        http.get(&url)
    })
    .await
    .expect("succeeds after waiting");
    // A lower bound only: the pipeline must not come back before the vendor said.
    assert!(started.elapsed() >= Duration::from_millis(300));
}

#[tokio::test]
async fn a_long_retry_after_blocks_the_key_without_calling_the_vendor() {
    let mut limited = step(429);
    limited.headers.push(("retry-after", "30".into()));
    let (url, v) = vendor(vec![limited]).await;
    let p = Pipeline::new(fast_policy());
    let key = CallKey::new("t1", "acme");
    let http = client();
    let err = p
        .send(Call::new(&key, Safety::Safe, &HttpStatus), || {
            http.get(&url)
        })
        .await
        .unwrap_err();
    assert_eq!(err.class(), FailureClassification::RateLimited);
    assert_eq!(err.failure.vendor_status, Some(429));
    assert!(err.failure.retry_after.unwrap() > Duration::from_secs(25));
    // The next call for the key does not reach the vendor at all.
    let err = p
        .send(Call::new(&key, Safety::Safe, &HttpStatus), || {
            http.get(&url)
        })
        .await
        .unwrap_err();
    assert_eq!(err.class(), FailureClassification::RateLimited);
    assert_eq!(err.attempts, 0);
    assert!(err.retryable);
    assert_eq!(v.calls.load(Ordering::SeqCst), 1);
    // Another tenant is not held back.
    let other = CallKey::new("t2", "acme");
    p.send(
        Call::new(&other, Safety::Safe, &HttpStatus).max_attempts(1),
        || http.get(&url),
    )
    .await
    .unwrap_err();
    assert_eq!(v.calls.load(Ordering::SeqCst), 2);
}

#[tokio::test]
async fn a_success_that_spends_the_quota_blocks_the_key_until_its_reset() {
    let mut spent = step(200);
    spent
        .headers
        .push(("x-ratelimit-remaining-requests", "0".into()));
    spent
        .headers
        .push(("x-ratelimit-reset-requests", "6m0s".into()));
    let mut plenty = step(200);
    plenty
        .headers
        .push(("x-ratelimit-remaining-requests", "4999".into()));
    plenty
        .headers
        .push(("x-ratelimit-reset-requests", "12ms".into()));
    let (url, v) = vendor(vec![plenty, spent, step(200)]).await;
    let p = Pipeline::new(fast_policy());
    let key = CallKey::new("t1", "openai");
    let http = client();
    let send = || {
        p.send(Call::new(&key, Safety::Safe, &HttpStatus), || {
            http.get(&url)
        })
    };
    send().await.expect("quota left");
    send().await.expect("the last request of the quota");
    // The vendor said none remain for six minutes: no call reaches it meanwhile.
    let err = send().await.unwrap_err();
    assert_eq!(err.class(), FailureClassification::RateLimited);
    assert_eq!(err.attempts, 0);
    assert!(err.failure.retry_after.unwrap() > Duration::from_secs(350));
    assert_eq!(v.calls.load(Ordering::SeqCst), 2);
}

#[test]
fn only_a_spent_count_makes_a_success_a_hint() {
    let now = std::time::SystemTime::now();
    let headers = |pairs: &[(&'static str, &str)]| {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.insert(*k, v.parse().unwrap());
        }
        h
    };
    assert_eq!(
        hints::exhausted_hint(&headers(&[("x-ratelimit-reset-requests", "1s")]), now),
        None,
        "a reset alone says nothing"
    );
    assert_eq!(
        hints::exhausted_hint(
            &headers(&[
                ("retry-after", "30"),
                ("x-ratelimit-remaining-tokens", "10")
            ]),
            now
        ),
        None
    );
    assert_eq!(
        hints::exhausted_hint(
            &headers(&[
                ("x-ratelimit-remaining-tokens", "0"),
                ("x-ratelimit-reset-tokens", "1.5s"),
                ("retry-after", "600"),
            ]),
            now
        ),
        Some(Duration::from_millis(1500)),
        "the reset, not a retry-after on a success"
    );
}

#[tokio::test]
async fn auth_and_validation_failures_are_not_retried() {
    let (url, v) = vendor(vec![step(401)]).await;
    let p = Pipeline::new(fast_policy());
    let key = CallKey::new("t1", "acme");
    let http = client();
    let err = p
        .send(Call::new(&key, Safety::Safe, &HttpStatus), || {
            http.get(&url)
        })
        .await
        .unwrap_err();
    assert_eq!(err.class(), FailureClassification::Auth);
    assert!(!err.retryable);
    assert_eq!(v.calls.load(Ordering::SeqCst), 1);
}

#[tokio::test]
async fn the_breaker_opens_per_tenant_and_provider() {
    let (url, v) = vendor(vec![step(500)]).await;
    let p = Pipeline::new(fast_policy());
    let key = CallKey::new("t1", "acme");
    let http = client();
    // Three failed attempts (one call) open the circuit.
    let err = p
        .send(Call::new(&key, Safety::Safe, &HttpStatus), || {
            http.get(&url)
        })
        .await
        .unwrap_err();
    assert_eq!(err.attempts, 3);
    assert!(p.is_open(&key));
    let err = p
        .send(Call::new(&key, Safety::Safe, &HttpStatus), || {
            http.get(&url)
        })
        .await
        .unwrap_err();
    assert_eq!(err.class(), FailureClassification::CircuitOpen);
    assert_eq!(err.attempts, 0);
    assert!(err.failure.retry_after.unwrap() > Duration::from_secs(50));
    assert_eq!(v.calls.load(Ordering::SeqCst), 3, "no call while open");
    assert!(!p.is_open(&CallKey::new("t2", "acme")));
    assert!(!p.is_open(&CallKey::new("t1", "other")));
}

#[tokio::test]
async fn client_errors_do_not_open_the_breaker() {
    let (url, _v) = vendor(vec![step(400)]).await;
    let p = Pipeline::new(fast_policy());
    let key = CallKey::new("t1", "acme");
    let http = client();
    for _ in 0..5 {
        let err = p
            .send(Call::new(&key, Safety::Safe, &HttpStatus), || {
                http.get(&url)
            })
            .await
            .unwrap_err();
        assert_eq!(err.class(), FailureClassification::Validation);
    }
    assert!(!p.is_open(&key));
}

#[tokio::test]
async fn the_rate_limiter_throttles_before_the_vendor_does() {
    let (url, v) = vendor(vec![step(200)]).await;
    let p = Pipeline::new(Policy {
        max_rate_wait: Duration::from_millis(50),
        ..fast_policy()
    });
    let key = CallKey::new("t1", "acme");
    let limit = RateLimit {
        per_second: NonZeroU32::new(1).unwrap(),
        burst: NonZeroU32::new(2).unwrap(),
    };
    let http = client();
    for _ in 0..2 {
        p.send(
            Call::new(&key, Safety::Safe, &HttpStatus).rate_limit(Some(limit)),
            || http.get(&url),
        )
        .await
        .expect("within the burst");
    }
    let err = p
        .send(
            Call::new(&key, Safety::Safe, &HttpStatus).rate_limit(Some(limit)),
            || http.get(&url),
        )
        .await
        .unwrap_err();
    assert_eq!(err.class(), FailureClassification::RateLimited);
    assert_eq!(err.attempts, 0);
    assert_eq!(
        err.failure.vendor_status, None,
        "we throttled, not the vendor"
    );
    assert_eq!(v.calls.load(Ordering::SeqCst), 2);
}

#[tokio::test]
async fn a_slow_vendor_times_out() {
    let mut slow = step(200);
    slow.delay = Duration::from_secs(3);
    let (url, _v) = vendor(vec![slow]).await;
    let p = Pipeline::new(Policy {
        attempt_timeout: Duration::from_millis(100),
        ..fast_policy()
    });
    let key = CallKey::new("t1", "acme");
    let http = client();
    let err = p
        .send(Call::new(&key, Safety::Unsafe, &HttpStatus), || {
            http.post(&url)
        })
        .await
        .unwrap_err();
    assert_eq!(err.class(), FailureClassification::Timeout);
    assert_eq!(
        err.attempts, 1,
        "an unsafe request that may have been processed"
    );
}

#[tokio::test]
async fn an_unreachable_vendor_is_retried_even_for_unsafe_requests() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}/call", listener.local_addr().unwrap());
    drop(listener);
    let p = Pipeline::new(fast_policy());
    let key = CallKey::new("t1", "acme");
    let http = client();
    let err = p
        .send(Call::new(&key, Safety::Unsafe, &HttpStatus), || {
            http.post(&url)
        })
        .await
        .unwrap_err();
    assert_eq!(err.class(), FailureClassification::Transient);
    assert_eq!(err.attempts, 3, "never connected: safe to repeat");
    assert!(err.retryable);
}

#[test]
fn policy_from_settings_overrides_what_is_set_and_refuses_what_is_unusable() {
    let values = [
        (settings::TIMEOUT_MS, "250"),
        (settings::BREAKER_THRESHOLD, "7"),
        (settings::MAX_RATE_WAIT_MS, " "),
    ];
    let p = Policy::from_settings(&values).unwrap();
    assert_eq!(p.attempt_timeout, Duration::from_millis(250));
    assert_eq!(p.retry.max_attempts, 3, "unset: the default");
    assert_eq!(p.breaker.failure_threshold, 7);
    assert_eq!(p.breaker.open_for, Duration::from_secs(30));
    assert_eq!(
        p.max_rate_wait,
        Duration::from_secs(2),
        "blank: the default"
    );

    for (name, value) in [
        (settings::MAX_ATTEMPTS, "0"),
        (settings::BREAKER_OPEN_MS, "oops"),
        (settings::TIMEOUT_MS, "0"),
    ] {
        let err = Policy::from_settings(&[(name, value)]).unwrap_err();
        assert_eq!(err.name, name);
        assert!(err.to_string().contains(value), "{err}");
    }
}

proptest::proptest! {
    #[test]
    fn backoff_stays_under_its_ceiling(retry in 1u32..64, base_ms in 0u64..2000, max_ms in 0u64..60_000, seed: u64) {
        use rand::SeedableRng as _;
        let policy = RetryPolicy {
            max_attempts: 10,
            base_delay: Duration::from_millis(base_ms),
            max_delay: Duration::from_millis(max_ms),
        };
        let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
        let d = policy.backoff(retry, &mut rng);
        let ceiling = Duration::from_millis(base_ms)
            .saturating_mul(1u32.checked_shl(retry - 1).unwrap_or(u32::MAX))
            .min(Duration::from_millis(max_ms));
        proptest::prop_assert!(d <= ceiling);
    }
}

#[tokio::test]
async fn custom_calls_share_the_loop_timeout_and_breaker() {
    let p = Pipeline::new(Policy {
        attempt_timeout: Duration::from_millis(50),
        ..fast_policy()
    });
    let key = CallKey::new("t1", "smtp");
    let tries = AtomicU32::new(0);
    // Refused before processing, then accepted: an unsafe call may be repeated.
    let (value, attempts) = p
        .execute(Call::new(&key, Safety::Unsafe, &HttpStatus), |n| {
            tries.fetch_add(1, Ordering::SeqCst);
            async move {
                if n == 1 {
                    Outcome::Failed {
                        failure: VendorFailure::new(FailureClassification::Transient, "421"),
                        maybe_processed: false,
                    }
                } else {
                    Outcome::Done("250 ok")
                }
            }
        })
        .await
        .expect("second attempt");
    assert_eq!((value, attempts), ("250 ok", 2));
    // A hanging vendor times out, and three timeouts open the circuit.
    let err = p
        .execute(Call::new(&key, Safety::Safe, &HttpStatus), |_| async {
            tokio::time::sleep(Duration::from_secs(5)).await;
            Outcome::Done(())
        })
        .await
        .unwrap_err();
    assert_eq!(err.class(), FailureClassification::Timeout);
    assert_eq!(err.attempts, 3);
    assert!(p.is_open(&key));
}

#[tokio::test]
async fn a_name_the_guard_refuses_at_connect_time_is_url_refused_once() {
    let (url, v) = vendor(vec![step(200)]).await;
    // The vendor is on loopback, reached by a name that resolves there.
    let url = url.replace("127.0.0.1", "localhost");
    let p = Pipeline::new(fast_policy());
    let key = CallKey::new("t1", "acme");
    let http = netguard::Guard::strict().client(Duration::from_secs(5));
    let err = p
        .send(Call::new(&key, Safety::Safe, &HttpStatus), || {
            http.get(&url)
        })
        .await
        .unwrap_err();
    assert_eq!(err.failure.vendor_code.as_deref(), Some(URL_REFUSED));
    assert_eq!(err.class(), FailureClassification::Validation);
    assert!(!err.retryable, "the address stays internal");
    assert_eq!(err.attempts, 1);
    assert!(
        !err.failure.message.contains("127.0.0.1") && !err.failure.message.contains("::1"),
        "what the name resolved to is not shown: {}",
        err.failure.message
    );
    assert_eq!(v.calls.load(Ordering::SeqCst), 0);
}
