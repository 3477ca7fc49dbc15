//! The Fake provider (`fake`): an in-process SMS vendor for tests and demos. It runs through
//! the same resilience pipeline as the real ones (so timeouts, breakers and failover behave
//! the same) and is deterministic:
//!
//! - credential `{"kind":"apiKey","apiKey":"…"}`; the key `rejected` fails the connection
//!   test (and sends) as an auth error;
//! - connection config `mode` says how sends go (the connection test only checks the key,
//!   so a connection can be established and then see its vendor go down): `ok` (default),
//!   `fail` (the vendor answers 503), `timeout` (it never answers), `throttle` (429 with
//!   `retryAfterMs`, default 1000), `reject` (400); `latencyMs` (0–10000) delays every
//!   answer;
//! - the number `+15005550001` is refused as invalid (400), like Twilio's magic test number;
//! - config `deliveryReport`: `delivered` or `undelivered` makes the Fake send a signed
//!   receipt (`sent`, then that state) to the connection's receipt URL shortly after each
//!   accepted message; the signature is `X-Fake-Signature: hex(HMAC-SHA256(apiKey, body))`
//!   over the JSON body `{"messageId","status"}`;
//! - message ids are derived from the run (`FK` + 32 hex digits), so a repeated call for
//!   one run gets the same id; [`sent`] lists what was accepted and [`calls`] counts the
//!   calls per run, for tests.

use std::time::Duration;

use async_trait::async_trait;
use domain::{ConnectionConfig, CredentialKind, FailureClassification};
use hmac::Mac as _;
use integration_kit::fake::{self, CallCounter};
use integration_kit::{
    DeliveryState, Provider, ProviderCall, Receipt, ReceiptError, ReceiptRequest,
};
use resilience::{CallError, HttpStatus, Outcome, Safety};
use serde_json::{Value, json};
use sha2::{Digest as _, Sha256};

/// The number the Fake refuses.
pub const INVALID_NUMBER: &str = "+15005550001";

/// A message the Fake accepted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FakeMessage {
    pub tenant: String,
    pub message_id: String,
    pub to: String,
    pub body: String,
}

static SENT: fake::Recent<FakeMessage> = fake::Recent::new();
static CALLS: CallCounter = CallCounter::new();

/// Messages accepted so far in this process (the last [`fake::FAKE_MEMORY`]).
pub fn sent() -> Vec<FakeMessage> {
    SENT.all()
}

/// Calls that reached the Fake for one run (its idempotency key), accepted or not.
pub fn calls(idempotency_key: &str) -> u32 {
    CALLS.calls(idempotency_key)
}

pub struct Fake;

impl Fake {
    /// One call to the "vendor", as the pipeline sees it.
    async fn answer(call: &ProviderCall<'_>, steer: &fake::Steer, to: Option<&str>) -> Outcome<()> {
        if let Some(out) = fake::answer(&CALLS, call, steer, to.is_some()).await {
            return out;
        }
        if to == Some(INVALID_NUMBER) {
            return fake::failure(
                400,
                FailureClassification::Validation,
                "the 'To' number is not a valid phone number",
            );
        }
        Outcome::Done(())
    }
}

/// The connection's config: the kit's steering of a Fake plus the receipts it sends,
/// checked when a connection is made (a misspelt or mistyped setting is a 400 naming it).
#[derive(Debug, serde::Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct FakeConfig {
    #[serde(default)]
    mode: fake::Mode,
    latency_ms: Option<u64>,
    retry_after_ms: Option<u64>,
    /// The receipt the Fake sends to the app's receipt URL after a send.
    #[serde(default)]
    delivery_report: Report,
}

impl integration_kit::ProviderConfig for FakeConfig {}

impl FakeConfig {
    fn steer(&self) -> fake::Steer {
        fake::Steer {
            mode: self.mode,
            latency_ms: self.latency_ms,
            retry_after_ms: self.retry_after_ms,
        }
    }
}

/// The receipt state a connection asks the Fake to report.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
enum Report {
    #[default]
    None,
    Delivered,
    Undelivered,
}

#[async_trait]
impl Provider for Fake {
    fn key(&self) -> &'static str {
        "fake"
    }

    fn credential_kinds(&self) -> &'static [CredentialKind] {
        &[CredentialKind::ApiKey]
    }

    fn parse_receipts(
        &self,
        credential: &custody::SecretMaterial,
        _config: &ConnectionConfig,
        request: &ReceiptRequest<'_>,
    ) -> Result<Vec<Receipt>, ReceiptError> {
        let key = credential.get("apiKey").ok_or(ReceiptError::Unauthorized)?;
        let signature = request
            .headers
            .get(SIGNATURE_HEADER)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| decode_hex(v.trim()))
            .ok_or(ReceiptError::Unauthorized)?;
        let mut mac =
            HmacSha256::new_from_slice(secrecy::ExposeSecret::expose_secret(key).as_bytes())
                .map_err(|_| ReceiptError::Unauthorized)?;
        mac.update(request.body);
        // Constant time, over the exact bytes received.
        mac.verify_slice(&signature)
            .map_err(|_| ReceiptError::Unauthorized)?;
        let v: Value = serde_json::from_slice(request.body)
            .map_err(|e| ReceiptError::Malformed(format!("not JSON: {e}")))?;
        let message_id = v["messageId"]
            .as_str()
            .ok_or_else(|| ReceiptError::Malformed("messageId is missing".into()))?;
        let state = match v["status"].as_str() {
            Some("queued") => DeliveryState::Queued,
            Some("sent") => DeliveryState::Sent,
            Some("delivered") => DeliveryState::Delivered,
            Some("undelivered") => DeliveryState::Undelivered,
            Some("failed") => DeliveryState::Failed,
            _ => return Err(ReceiptError::Malformed("unknown status".into())),
        };
        Ok(vec![Receipt {
            message_id: message_id.to_owned(),
            state,
            detail: v["status"].as_str().map(str::to_owned),
        }])
    }

    async fn test_connection(&self, call: &ProviderCall<'_>) -> Result<(), CallError> {
        let steer = call.config_as::<FakeConfig>()?.steer();
        call.pipeline
            .execute(call.call(Safety::Safe, &HttpStatus), |_| {
                Self::answer(call, &steer, None)
            })
            .await
            .map(|_| ())
    }

    fn serves(served: &mut integration_kit::Served<Self>) {
        served.operation::<crate::Send>().config::<FakeConfig>();
    }
}

#[async_trait]
impl integration_kit::Serves<crate::Send> for Fake {
    async fn execute(
        &self,
        call: &ProviderCall<'_>,
        input: &crate::SendSms,
    ) -> Result<integration_kit::Step<crate::SmsSent>, CallError> {
        let to = input.to.as_str();
        let body = input.body.as_str();
        let config: FakeConfig = call.config_as()?;
        let steer = config.steer();
        // The Fake de-duplicates on the run like a vendor with idempotency keys would.
        let (_, attempts) = call
            .pipeline
            .execute(call.call(Safety::Idempotent, &HttpStatus), |_| {
                Self::answer(call, &steer, Some(to))
            })
            .await?;
        let seed = call.idempotency_key.unwrap_or(to);
        let digest = Sha256::digest(format!("{seed}/{to}").as_bytes());
        let message_id = format!(
            "FK{}",
            digest[..16]
                .iter()
                .map(|b| format!("{b:02x}"))
                .collect::<String>()
        );
        SENT.keep(
            FakeMessage {
                tenant: call.key.tenant.to_string(),
                message_id: message_id.clone(),
                to: to.to_owned(),
                body: body.to_owned(),
            },
            |m| m.message_id == message_id,
        );
        let state = match config.delivery_report {
            Report::None => None,
            Report::Delivered => Some("delivered"),
            Report::Undelivered => Some("undelivered"),
        };
        if let (Some(state), Some(url)) = (state, call.receipt_url) {
            let key = call.secret("apiKey")?.to_owned();
            tokio::spawn(send_receipts(
                url.to_owned(),
                key,
                message_id.clone(),
                state,
            ));
        }
        Ok(super::sent(message_id, "queued", super::segments(body), attempts, &[]).into())
    }
}

type HmacSha256 = hmac::Hmac<Sha256>;

/// The header carrying the Fake's receipt signature.
pub const SIGNATURE_HEADER: &str = "x-fake-signature";

/// The body and signature of a Fake receipt.
pub fn signed_receipt(api_key: &str, message_id: &str, status: &str) -> (Vec<u8>, String) {
    let body = json!({"messageId": message_id, "status": status})
        .to_string()
        .into_bytes();
    let mut mac = HmacSha256::new_from_slice(api_key.as_bytes()).expect("any key length");
    mac.update(&body);
    let signature = mac
        .finalize()
        .into_bytes()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    (body, signature)
}

fn decode_hex(s: &str) -> Option<Vec<u8>> {
    if !s.len().is_multiple_of(2) {
        return None;
    }
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(s.get(i..i + 2)?, 16).ok())
        .collect()
}

/// Like a carrier: `sent` first, the final state a moment later. Best effort, as vendors'
/// callbacks are; a lost receipt leaves the run's delivery state where it was.
async fn send_receipts(url: String, api_key: String, message_id: String, last: &'static str) {
    let client = reqwest::Client::new();
    for status in ["sent", last] {
        tokio::time::sleep(Duration::from_millis(20)).await;
        let (body, signature) = signed_receipt(&api_key, &message_id, status);
        if let Err(e) = client
            .post(&url)
            .header(SIGNATURE_HEADER, signature)
            .header("content-type", "application/json")
            .body(body)
            .timeout(Duration::from_secs(5))
            .send()
            .await
        {
            tracing::warn!(error = %e, "the fake could not deliver a receipt");
        }
    }
}
