//! What a vendor app writes: its provider adapters and its operations. Everything else
//! (connections, runs, idempotency, the executor, failover, failures, re-tests) is the kit's.

use async_trait::async_trait;
use custody::SecretMaterial;
use domain::{ConnectionConfig, CredentialKind, FailureClassification, RunUsage};
use envelope::TraceParent;
use resilience::{
    Call, CallError, CallKey, Classifier, Pipeline, RateLimit, Safety, VendorFailure,
};
use secrecy::ExposeSecret as _;
use serde_json::Value;

/// What one provider call has to work with. Credentials are resolved per call (through
/// custody's short-lived cache), so a rotation takes effect without a restart.
pub struct ProviderCall<'a> {
    pub pipeline: &'a Pipeline,
    /// The SSRF-guarded client: base URLs come from connection config, i.e. from users.
    pub http: &'a reqwest::Client,
    pub key: &'a CallKey,
    pub config: &'a ConnectionConfig,
    pub credential: &'a SecretMaterial,
    pub traceparent: Option<&'a TraceParent>,
    /// Stable for one logical call across retries and redeliveries (derived from the run
    /// id): what vendors with idempotency keys are given.
    pub idempotency_key: Option<&'a str>,
    /// Attempts the pipeline may make (failover sets 1 when another provider is next).
    pub max_attempts: Option<u32>,
    pub rate_limit: Option<RateLimit>,
    /// Where the vendor should send delivery receipts for this connection (the app's
    /// public receipt URL), when the app's URL is known.
    pub receipt_url: Option<&'a str>,
}

impl<'a> ProviderCall<'a> {
    /// The pipeline parameters of this call.
    pub fn call(&self, safety: Safety, classifier: &'a dyn Classifier) -> Call<'a> {
        let mut call = Call::new(self.key, safety, classifier)
            .traceparent(self.traceparent)
            .rate_limit(self.rate_limit);
        if let Some(n) = self.max_attempts {
            call = call.max_attempts(n);
        }
        call
    }

    /// A secret field of the credential, for building the request. A missing field is an
    /// `auth` failure (the credential does not fit the provider).
    pub fn secret(&self, field: &str) -> Result<&str, CallError> {
        self.credential
            .get(field)
            .map(|s| s.expose_secret())
            .ok_or_else(|| {
                fail(
                    FailureClassification::Auth,
                    format!("the credential has no {field:?}"),
                )
            })
    }

    /// A string setting of the connection's config.
    pub fn config_str(&self, field: &str) -> Option<&str> {
        self.config.get(field).and_then(Value::as_str)
    }

    /// A required string setting; its absence is a `validation` failure.
    pub fn require_config(&self, field: &str) -> Result<&str, CallError> {
        self.config_str(field).ok_or_else(|| {
            fail(
                FailureClassification::Validation,
                format!("the connection's config needs {field:?}"),
            )
        })
    }

    /// The vendor's origin: the connection's `baseUrl` (checked when the connection was
    /// created) or the vendor's public one, without a trailing slash.
    pub fn base_url(&self, default: &str) -> String {
        self.config_str("baseUrl")
            .unwrap_or(default)
            .trim_end_matches('/')
            .to_owned()
    }
}

/// A call that failed before or without the pipeline (bad input found by the adapter, a
/// malformed answer).
pub fn fail(class: FailureClassification, message: impl Into<String>) -> CallError {
    CallError {
        retryable: class.is_retryable_by_default(),
        failure: VendorFailure::new(class, message),
        attempts: 0,
    }
}

/// The vendor answered 2xx with a body we cannot read: it may have done the work, so this is
/// never retried blindly.
pub fn malformed(what: &str) -> CallError {
    CallError {
        retryable: false,
        failure: VendorFailure::new(
            FailureClassification::VendorError,
            format!("the vendor's answer was malformed: {what}"),
        ),
        attempts: 1,
    }
}

/// What an operation produced.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct OperationOutput {
    /// A short summary kept on the run (ids, statuses; never payloads or secrets).
    pub summary: Value,
    pub usage: RunUsage,
    /// The vendor's id of what was created (a message sid): delivery receipts find the run by
    /// it.
    pub vendor_message_id: Option<String>,
}

/// One vendor, as an app serves it.
#[async_trait]
pub trait Provider: Send + Sync {
    /// The catalogue key (`twilio`, `fake`).
    fn key(&self) -> &'static str;

    /// The credential kinds it accepts.
    fn credential_kinds(&self) -> &'static [CredentialKind];

    /// Checks non-secret config when a connection is created (required fields, formats).
    fn validate_config(&self, _config: &ConnectionConfig) -> Result<(), String> {
        Ok(())
    }

    /// A cheap authenticated call proving the credential works.
    async fn test_connection(&self, call: &ProviderCall<'_>) -> Result<(), CallError>;

    /// Verifies and reads a delivery-receipt request sent to the connection's receipt URL.
    fn parse_receipts(
        &self,
        _credential: &SecretMaterial,
        _config: &ConnectionConfig,
        _request: &ReceiptRequest<'_>,
    ) -> Result<Vec<Receipt>, ReceiptError> {
        Err(ReceiptError::NotSupported)
    }

    /// Performs `operation` with `input` (already validated by the operation's check).
    async fn execute(
        &self,
        call: &ProviderCall<'_>,
        operation: &str,
        input: &Value,
    ) -> Result<OperationOutput, CallError>;
}

/// Where a delivery stands, vendor-neutral. Receipts arrive in any order and repeat; a run
/// keeps the furthest state ([`DeliveryState::rank`]) and the first terminal one.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DeliveryState {
    /// Accepted by the vendor, not yet handed on.
    Queued,
    /// Handed to the carrier / the recipient's server.
    Sent,
    /// Delivered to the recipient.
    Delivered,
    /// The carrier gave up (unknown number, unsubscribed, bounced).
    Undelivered,
    /// The vendor could not send it.
    Failed,
}

impl DeliveryState {
    pub fn rank(self) -> u8 {
        match self {
            DeliveryState::Queued => 0,
            DeliveryState::Sent => 1,
            DeliveryState::Delivered | DeliveryState::Undelivered | DeliveryState::Failed => 2,
        }
    }
}

/// One delivery receipt, normalised.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Receipt {
    /// The vendor's message id (what `OperationOutput::vendor_message_id` was).
    pub message_id: String,
    pub state: DeliveryState,
    /// The vendor's own status and error code, for people (`undelivered/30003`).
    pub detail: Option<String>,
}

/// A receipt request as it arrived: the URL the vendor signed (the public one, not what
/// a proxy made of it), the headers and the exact body.
pub struct ReceiptRequest<'a> {
    pub url: &'a str,
    pub headers: &'a http::HeaderMap,
    pub body: &'a [u8],
}

/// Why a receipt request was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ReceiptError {
    /// The provider sends no receipts here.
    NotSupported,
    /// The signature did not verify.
    Unauthorized,
    /// Verified, but not a receipt we can read.
    Malformed(String),
}

/// An operation an app offers, with the check its input must pass when the run is
/// requested (so a bad input is a 400, not a failed run).
#[derive(Clone, Copy)]
pub struct Operation {
    pub name: &'static str,
    pub validate: fn(&Value) -> Result<(), String>,
}

impl std::fmt::Debug for Operation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Operation")
            .field("name", &self.name)
            .finish()
    }
}
