//! Azure Communication Services Email (`acs-email`).
//!
//! - Credential `{"kind":"apiKey","apiKey":"<the resource's access key, base64>"}`; config
//!   `endpoint` (`https://<resource>.communication.azure.com`) and `senderAddress` (an
//!   address of a verified domain; `send`'s `from` overrides it).
//! - Send: `POST {endpoint}/emails:send?api-version=2025-09-01`, signed with HMAC-SHA256
//!   ([`sign`]), with an `operation-id` derived from the run ([`operation_id`]): a retried or
//!   redelivered send names the same operation, so it is `Safety::Idempotent`.
//! - ACS answers 202 and works asynchronously. The operation is then polled (`GET
//!   {endpoint}/emails/operations/{id}?api-version=…`, signed), waiting as long as the
//!   vendor's `retry-after` says (at least 100 ms, 1 s when it says nothing), at most
//!   [`MAX_POLLS`] times and only while the next poll fits in the pipeline's deadline
//!   counted from the send. `Succeeded` ends the run with status `Succeeded`; `Failed` or
//!   `Canceled` fail it as `unprocessable` with the vendor's `error.code` (`EmailDropped`…);
//!   an operation still `NotStarted`/`Running` when the polls run out, or a poll that fails,
//!   ends the run **successfully with the last status seen** (`Running`): the message was
//!   accepted, and its delivery report arrives later by Event Grid under the same id.
//! - The poll URL is built from the configured endpoint and the operation id: the
//!   `Operation-Location` header is not followed (it could name any host).
//! - Connection test: a signed `GET` of an operation that does not exist: 404 proves the
//!   signature was accepted; 401/403 is an auth failure.

use std::time::{Duration, Instant, SystemTime};

use async_trait::async_trait;
use bytes::Bytes;
use domain::{ConnectionConfig, CredentialKind, FailureClassification};
use integration_kit::{InputError, Provider, ProviderCall, acs, call_failed, malformed};
use reqwest::StatusCode;
use reqwest::Url;
use reqwest::header::HeaderMap;
use resilience::{
    CallError, Classifier, Safety, VendorFailure, VendorResponse, Verdict, classify_status,
    retry_hint,
};
use serde::Deserialize;
use serde_json::{Value, json};
use sha2::{Digest as _, Sha256};

use super::{Net, vendor_text};
use crate::is_email_address;

pub const API_VERSION: &str = "2025-09-01";
/// Polls of one send's operation, at most.
pub const MAX_POLLS: u32 = 5;
const DEFAULT_POLL_WAIT: Duration = Duration::from_secs(1);
const MIN_POLL_WAIT: Duration = Duration::from_millis(100);

/// The `operation-id` of a run's send: a UUID (version 8, "custom") made of the SHA-256 of
/// the idempotency key, so every attempt and redelivery of one run names the same
/// operation. Without a key, a random one: the attempts of this one call still share it.
pub fn operation_id(idempotency_key: Option<&str>) -> String {
    let Some(key) = idempotency_key else {
        return uuid::Uuid::new_v4().to_string();
    };
    let digest = Sha256::digest(format!("acs-email/{key}").as_bytes());
    let mut bytes = [0u8; 16];
    bytes.copy_from_slice(&digest[..16]);
    bytes[6] = (bytes[6] & 0x0f) | 0x80;
    bytes[8] = (bytes[8] & 0x3f) | 0x80;
    uuid::Uuid::from_bytes(bytes).to_string()
}

pub struct Acs {
    net: Net,
}

impl Acs {
    pub fn new(net: Net) -> Self {
        Acs { net }
    }

    fn endpoint(&self, config: &AcsEmailConfig) -> Result<Url, CallError> {
        self.net
            .origin(&config.endpoint, "endpoint")
            .map_err(|e| call_failed(FailureClassification::Validation, e))
    }
}

fn url(origin: &Url, segments: &[&str]) -> Url {
    let mut url = origin.clone();
    if let Ok(mut path) = url.path_segments_mut() {
        path.clear().extend(segments);
    }
    url.set_query(Some(&format!("api-version={API_VERSION}")));
    url
}

#[derive(Debug, Deserialize)]
struct ErrorBody {
    error: Option<ErrorDetail>,
}

#[derive(Debug, Default, Deserialize)]
struct ErrorDetail {
    #[serde(default)]
    code: Option<String>,
    #[serde(default)]
    message: Option<String>,
}

/// The operation, as the send and the polls answer it.
#[derive(Debug, Deserialize)]
struct OperationStatus {
    #[serde(default)]
    id: Option<String>,
    status: String,
    #[serde(default)]
    error: Option<ErrorDetail>,
}

/// ACS's answers: the status classes, with the vendor's `error.code` and message.
struct Answers {
    /// The connection test: an unknown operation (404) means the signature was accepted.
    not_found_is_success: bool,
}

impl Classifier for Answers {
    fn classify(&self, status: StatusCode, headers: &HeaderMap, body: &[u8]) -> Verdict {
        if self.not_found_is_success && status == StatusCode::NOT_FOUND {
            return Verdict::Success;
        }
        match classify_status(status, headers) {
            Verdict::Success => Verdict::Success,
            Verdict::Failure(mut f) => {
                if let Ok(ErrorBody {
                    error: Some(detail),
                }) = serde_json::from_slice::<ErrorBody>(body)
                {
                    if let Some(code) = detail.code.as_deref().filter(|c| !c.is_empty()) {
                        f.message = format!("{}: {}", f.message, vendor_text(code, &[]));
                        f = f.code(vendor_text(code, &[]));
                    }
                    if let Some(m) = detail.message.as_deref().filter(|m| !m.is_empty()) {
                        f.message = format!("{}: {}", f.message, vendor_text(m, &[]));
                    }
                }
                Verdict::Failure(f)
            }
        }
    }
}

fn status_of(response: &VendorResponse, what: &str) -> Result<OperationStatus, CallError> {
    serde_json::from_slice::<OperationStatus>(&response.body).map_err(|_| malformed(what))
}

/// When to poll next: the vendor's hint, or a second; never sooner than 100 ms.
fn poll_wait(headers: &HeaderMap) -> Duration {
    retry_hint(headers, SystemTime::now())
        .unwrap_or(DEFAULT_POLL_WAIT)
        .max(MIN_POLL_WAIT)
}

/// The operation ended badly: the vendor decided not to send.
fn failed(op: &OperationStatus, attempts: u32) -> CallError {
    let detail = op.error.as_ref();
    let code = detail
        .and_then(|d| d.code.as_deref())
        .filter(|c| !c.is_empty())
        .map(|t| vendor_text(t, &[]));
    let mut message = format!("the vendor did not send the message ({})", op.status);
    if let Some(code) = &code {
        message = format!("{message}: {code}");
    }
    if let Some(m) = detail
        .and_then(|d| d.message.as_deref())
        .filter(|m| !m.is_empty())
    {
        message = format!("{message}: {}", vendor_text(m, &[]));
    }
    let mut failure = VendorFailure::new(FailureClassification::Unprocessable, message);
    failure.vendor_code = code;
    CallError {
        failure,
        attempts,
        retryable: false,
    }
}

fn is_terminal(status: &str) -> bool {
    matches!(status, "Succeeded" | "Failed" | "Canceled")
}

/// The connection's config, checked when a connection is made (a misspelt, mistyped or
/// malformed setting is a 400 naming it).
#[derive(Debug, serde::Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct AcsEmailConfig {
    /// `https://<resource>.communication.azure.com`
    endpoint: String,
    /// An address of a domain verified in the resource.
    sender_address: String,
}

impl integration_kit::ProviderConfig for AcsEmailConfig {
    fn check(&self) -> Result<(), InputError> {
        super::origin_shape(&self.endpoint).map_err(|e| InputError::at("endpoint", e))?;
        if !is_email_address(&self.sender_address) {
            return Err(InputError::at(
                "senderAddress",
                "must be an address of a domain verified in the resource",
            ));
        }
        Ok(())
    }
}

#[async_trait]
impl Provider for Acs {
    fn key(&self) -> &'static str {
        "acs-email"
    }

    /// Delivery reports come through an Event Grid subscription the tenant points at the
    /// connection's `receiptUrl` (which carries the `code` derived from the access key);
    /// their `messageId` is the send's operation id.
    fn receipt_query(&self, credential: &custody::SecretMaterial) -> Option<String> {
        integration_kit::receipt_code_query(credential, "apiKey")
    }

    fn parse_receipts(
        &self,
        credential: &custody::SecretMaterial,
        _config: &ConnectionConfig,
        request: &integration_kit::ReceiptRequest<'_>,
    ) -> Result<Vec<integration_kit::Receipt>, integration_kit::ReceiptError> {
        integration_kit::event_grid_receipts(
            request,
            credential,
            "apiKey",
            "Microsoft.Communication.EmailDeliveryReportReceived",
            "status",
            |status| match status {
                "Delivered" => integration_kit::DeliveryState::Delivered,
                "Failed" => integration_kit::DeliveryState::Failed,
                // Bounced, Suppressed, FilteredSpam, Quarantined: it will not arrive.
                _ => integration_kit::DeliveryState::Undelivered,
            },
        )
    }

    fn credential_kinds(&self) -> &'static [CredentialKind] {
        &[CredentialKind::ApiKey]
    }

    async fn test_connection(&self, call: &ProviderCall<'_>) -> Result<(), CallError> {
        let origin = self.endpoint(&call.config_as()?)?;
        let key = acs::access_key(call)?;
        let probe = uuid::Uuid::new_v4().to_string();
        let url = url(&origin, &["emails", "operations", &probe]);
        let classifier = Answers {
            not_found_is_success: true,
        };
        let empty = Bytes::new();
        call.pipeline
            .send(call.call(Safety::Safe, &classifier), || {
                acs::signed(call, &key, reqwest::Method::GET, &url, &empty)
            })
            .await
            .map(|_| ())
    }

    fn serves(served: &mut integration_kit::Served<Self>) {
        served.operation::<crate::Send>().config::<AcsEmailConfig>();
    }
}

#[async_trait]
impl integration_kit::Serves<crate::Send> for Acs {
    async fn execute(
        &self,
        call: &ProviderCall<'_>,
        email: &crate::Email,
    ) -> Result<integration_kit::Step<crate::EmailSent>, CallError> {
        let config: AcsEmailConfig = call.config_as()?;
        let origin = self.endpoint(&config)?;
        let sender = email.from.as_deref().unwrap_or(&config.sender_address);
        let key = acs::access_key(call)?;
        let addresses = |list: &[crate::Address]| -> Vec<Value> {
            list.iter().map(|a| json!({"address": a})).collect()
        };
        let mut recipients = json!({"to": addresses(&email.to)});
        if !email.cc.is_empty() {
            recipients["cc"] = addresses(&email.cc).into();
        }
        if !email.bcc.is_empty() {
            recipients["bcc"] = addresses(&email.bcc).into();
        }
        let mut content = json!({"subject": email.subject});
        if let Some(text) = &email.text {
            content["plainText"] = text.as_str().into();
        }
        if let Some(html) = &email.html {
            content["html"] = html.as_str().into();
        }
        let mut body = json!({
            "senderAddress": sender,
            "recipients": recipients,
            "content": content,
            "userEngagementTrackingDisabled": true,
        });
        if !email.attachments.is_empty() {
            body["attachments"] = email
                .attachments
                .iter()
                .map(|a| {
                    json!({"name": a.name, "contentType": a.content_type, "contentInBase64": a.content.text})
                })
                .collect::<Vec<_>>()
                .into();
        }
        let body = Bytes::from(body.to_string());
        let op_id = operation_id(call.idempotency_key);
        let send_url = url(&origin, &["emails:send"]);
        let classifier = Answers {
            not_found_is_success: false,
        };
        let started = Instant::now();
        let answer = call
            .pipeline
            .send(call.call(Safety::Idempotent, &classifier), || {
                acs::signed(call, &key, reqwest::Method::POST, &send_url, &body)
                    .header("operation-id", op_id.as_str())
            })
            .await?;
        let attempts = answer.attempts;
        let mut op = status_of(&answer, "the send answer has no operation status")?;
        let id = op
            .id
            .clone()
            .filter(|i| !i.is_empty())
            .unwrap_or_else(|| op_id.clone());
        let poll_url = url(&origin, &["emails", "operations", &id]);
        let poll_until = started + call.pipeline.policy().deadline;
        let mut wait = poll_wait(&answer.headers);
        let mut polls = 0u32;
        let empty = Bytes::new();
        while !is_terminal(&op.status) && polls < MAX_POLLS {
            if Instant::now() + wait >= poll_until {
                break;
            }
            tokio::time::sleep(wait).await;
            polls += 1;
            let next = call
                .pipeline
                .send(call.call(Safety::Safe, &classifier), || {
                    acs::signed(call, &key, reqwest::Method::GET, &poll_url, &empty)
                })
                .await
                .and_then(|r| {
                    status_of(&r, "the operation's status").map(|s| (s, poll_wait(&r.headers)))
                });
            match next {
                Ok((status, hint)) => {
                    op = status;
                    wait = hint;
                }
                Err(e) => {
                    // Accepted is accepted: the delivery report comes later.
                    tracing::info!(
                        tenant = %call.key.tenant, operation = %id, class = ?e.class(),
                        "polling an accepted email failed; leaving it running"
                    );
                    break;
                }
            }
        }
        match op.status.as_str() {
            "Failed" | "Canceled" => Err(failed(&op, attempts)),
            status => {
                let mut out = super::sent(email, Some(id), status, attempts);
                out.output.polls = Some(polls);
                Ok(out.into())
            }
        }
    }
}

#[cfg(test)]
mod tests;
