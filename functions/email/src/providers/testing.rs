//! What the providers' tests share: a short pipeline, a guarded client allowed to reach
//! loopback, and a `ProviderCall` built from them.

use std::time::Duration;

use custody::SecretMaterial;
use domain::{ConnectionConfig, CredentialKind};
use integration_kit::ProviderCall;
use resilience::{BreakerPolicy, CallError, CallKey, Pipeline, Policy, RetryPolicy};
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

pub(crate) struct Harness {
    pub(crate) pipeline: Pipeline,
    pub(crate) http: reqwest::Client,
    pub(crate) key: CallKey,
    pub(crate) config: ConnectionConfig,
    pub(crate) credential: SecretMaterial,
    pub(crate) idempotency_key: Option<String>,
}

impl Harness {
    pub(crate) fn new(provider: &str, kind: CredentialKind, secret: Value, config: Value) -> Self {
        Harness::with_policy(provider, kind, secret, config, policy())
    }

    pub(crate) fn with_policy(
        provider: &str,
        kind: CredentialKind,
        secret: Value,
        config: Value,
        policy: Policy,
    ) -> Self {
        let Value::Object(fields) = secret else {
            panic!("secret fields are an object");
        };
        let Value::Object(config) = config else {
            panic!("config is an object");
        };
        Harness {
            pipeline: Pipeline::new(policy),
            http: netguard::Guard::from_setting(Some("127.0.0.1,localhost"))
                .client(Duration::from_secs(5)),
            key: CallKey::new("tenant-a", provider),
            config,
            credential: SecretMaterial::new(kind, fields).expect("valid secret material"),
            idempotency_key: Some(RUN.to_owned()),
        }
    }

    pub(crate) fn call(&self) -> ProviderCall<'_> {
        ProviderCall {
            pipeline: &self.pipeline,
            http: &self.http,
            key: &self.key,
            config: &self.config,
            credential: &self.credential,
            traceparent: None,
            idempotency_key: self.idempotency_key.as_deref(),
            max_attempts: None,
            rate_limit: None,
            receipt_url: None,
        }
    }
}

/// `send` through a provider as a run performs it, from the JSON a caller sends.
pub(crate) trait SendThrough {
    async fn send(
        &self,
        call: &ProviderCall<'_>,
        input: &Value,
    ) -> Result<integration_kit::testing::Ran, CallError>;
}

impl<P: integration_kit::Serves<crate::Send>> SendThrough for P {
    async fn send(
        &self,
        call: &ProviderCall<'_>,
        input: &Value,
    ) -> Result<integration_kit::testing::Ran, CallError> {
        integration_kit::testing::execute::<crate::Send, P>(self, call, input).await
    }
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

/// Asserts that no secret text appears in what a failure says.
pub(crate) fn assert_no_secret(e: &CallError, secrets: &[&str]) {
    let text = format!(
        "{} {:?} {:?} {e}",
        e.failure.message, e.failure.vendor_code, e.failure
    );
    for s in secrets {
        assert!(!text.contains(s), "a secret leaked into {text:?}");
    }
}
