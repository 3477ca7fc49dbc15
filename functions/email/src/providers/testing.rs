//! What the providers' tests share: a short pipeline, a guarded client allowed to reach
//! loopback, and a `ProviderCall` built from them.

use std::time::Duration;

use domain::CredentialKind;
pub(crate) use integration_kit::testing::{Harness, Perform};
use resilience::{BreakerPolicy, Policy, RetryPolicy};
use serde_json::{Value, json};

use super::Net;

/// The run id the tests send as the idempotency key.
pub(crate) const RUN: &str = "run_0123456789abcdef";

/// Short timeouts and retries so failures are quick; a breaker that does not open.
pub(crate) fn policy() -> Policy {
    Policy {
        attempt_timeout: Duration::from_millis(400),
        deadline: Duration::from_secs(4),
        retry: RetryPolicy {
            max_attempts: 3,
            base_delay: Duration::from_millis(5),
            max_delay: Duration::from_millis(20),
        },
        breaker: BreakerPolicy {
            failure_threshold: 1000,
            ..BreakerPolicy::default()
        },
        max_rate_wait: Duration::from_secs(2),
        retry_ratio: 1.0,
        retry_floor_per_sec: 100,
    }
}

/// Loopback allowed, http allowed: what development and the tests use.
pub(crate) fn net() -> Net {
    Net::new(Some("127.0.0.1,localhost"), false)
}

/// The kit's harness with this app's policy ([`policy`]: three attempts, a breaker that does
/// not open).
/// The run id is [`RUN`].
pub(crate) fn harness(
    provider: &str,
    kind: CredentialKind,
    secret: Value,
    config: Value,
) -> Harness {
    let mut h = Harness::with_policy(provider, kind, secret, config, policy());
    h.idempotency_key = Some(RUN.to_owned());
    h
}

/// A small valid `send` input.
pub(crate) fn email() -> Value {
    json!({
        "to": ["ada@example.com"],
        "cc": ["grace@example.com"],
        "bcc": ["alan@example.com"],
        "subject": "Hello",
        "text": "Plain body",
        "html": "<p>HTML body</p>",
        "attachments": [{"name": "note.txt", "contentType": "text/plain", "contentBase64": "aGVsbG8="}],
    })
}

pub(crate) use integration_kit::testing::assert_no_secret;
