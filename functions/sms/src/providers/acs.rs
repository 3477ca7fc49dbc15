//! Azure Communication Services SMS (`acs-sms`).
//!
//! - Credential `apiKey`: `apiKey` = the resource's access key (base64, the `accesskey=` of
//!   its connection string). It never travels: each request is signed with it
//!   ([`integration_kit::acs`]: HMAC-SHA256 over the verb, path and query, `x-ms-date`,
//!   host and `x-ms-content-sha256`).
//! - Config: `endpoint` (the resource's origin, `https://<resource>.communication.azure.com`;
//!   see [`parse_endpoint`]) and `from` (the sending number or sender id; the input's `from`
//!   replaces it).
//! - `send`: `POST {endpoint}/sms?api-version=2026-01-23` with one recipient
//!   `{to, repeatabilityRequestId, repeatabilityFirstSent}`, `message`, and
//!   `smsSendOptions {enableDeliveryReport: true, tag: <run id>}`. ACS answers 202 with a
//!   result per recipient; ours failing (`successful: false`) fails the call with the class
//!   of its `httpStatusCode` (which is then the failure's `vendor_status`). The vendor
//!   message id is the recipient's `messageId`.
//! - Repeatability makes a send `Idempotent`, so the pipeline may repeat it: the request id
//!   and the first-sent time are the same on every attempt and every retry of the run (see
//!   [`repeatability`]).
//! - Connection test: `GET {endpoint}/deliveryReports/{id}?api-version=…` for an id that
//!   does not exist (the cheapest signed call the API has). The signature is checked before
//!   the id is looked up (401 `Denied` otherwise), so 404, or 400 for an id ACS will not
//!   read, means the key works; 401/403 fail as `auth`, anything else as classified.

use std::time::{Duration, SystemTime};

use async_trait::async_trait;
use domain::{ConnectionConfig, CredentialKind, FailureClassification};
use integration_kit::{InputError, Provider, ProviderCall, acs, call_failed, malformed};
use reqwest::header::HeaderMap;
use reqwest::{Method, StatusCode, Url};
use resilience::{CallError, Classifier, Safety, VendorFailure, Verdict, classify_status};
use serde_json::{Value, json};
use sha2::{Digest as _, Sha256};

use super::{segments, vendor_text};

/// The SMS API version called.
pub const API_VERSION: &str = "2026-01-23";

/// The delivery report the connection test asks for (no message has this id).
const PROBE_MESSAGE_ID: &str = "00000000-0000-0000-0000-000000000000";

pub struct AcsSms;

/// The resource's origin from config `endpoint`: `https`, a host name (not an IP address:
/// names are resolved through the SSRF guard, which refuses internal addresses; IP literals
/// are not resolved), no path, query or user-info. `http` is allowed for `localhost` only
/// (local fakes; the guard still refuses it unless the host is explicitly allowed).
pub fn parse_endpoint(raw: &str) -> Result<Url, String> {
    const SHAPE: &str = "endpoint must be the resource's origin, such as \
                         https://<resource>.communication.azure.com";
    let url = Url::parse(raw.trim()).map_err(|_| SHAPE.to_owned())?;
    let host = url.host_str().ok_or(SHAPE)?;
    if host
        .trim_start_matches('[')
        .trim_end_matches(']')
        .parse::<std::net::IpAddr>()
        .is_ok()
    {
        return Err("endpoint must name a host, not an IP address".into());
    }
    if !url.username().is_empty()
        || url.password().is_some()
        || url.path() != "/"
        || url.query().is_some()
        || url.fragment().is_some()
    {
        return Err(SHAPE.into());
    }
    match url.scheme() {
        "https" => Ok(url),
        "http" if host.eq_ignore_ascii_case("localhost") => Ok(url),
        _ => Err("endpoint must be an https URL".into()),
    }
}

fn endpoint(config: &AcsSmsConfig) -> Result<Url, CallError> {
    parse_endpoint(&config.endpoint).map_err(|e| call_failed(FailureClassification::Validation, e))
}

/// `endpoint` + `path` + `?api-version=…`.
fn api_url(endpoint: &Url, path: &str) -> Result<Url, CallError> {
    let mut url = endpoint.join(path).map_err(|_| {
        call_failed(
            FailureClassification::Validation,
            "the endpoint cannot take a path",
        )
    })?;
    url.set_query(Some(&format!("api-version={API_VERSION}")));
    Ok(url)
}

/// The repeatability of one send: a request id and the time it was first sent, the same on
/// every attempt and every retry of the run, so ACS sends it at most once.
///
/// - The id is a UUID-shaped digest (version 8, RFC 4122 variant) of the run id
///   (`call.idempotency_key`) and the recipient.
/// - The first-sent time is the run's creation: run ids are UUIDv7, whose first 48 bits are
///   their Unix time in milliseconds (sent to the second, as RFC 1123 has it). It is a
///   little before the first attempt, and the same on any later attempt, which is what ACS
///   compares. A run retried after ACS's repeatability window is refused rather than sent
///   twice: the run's retries are minutes apart, so that takes a failure that outlives them.
/// - Without a run id (or with one that is not a UUIDv7), the id is random and the time is
///   now, taken once before the pipeline: still stable across the pipeline's own attempts.
pub fn repeatability(idempotency_key: Option<&str>, to: &str) -> (String, SystemTime) {
    let Some(key) = idempotency_key else {
        return (
            uuid::Uuid::new_v4().hyphenated().to_string(),
            SystemTime::now(),
        );
    };
    let digest = Sha256::digest(format!("acs-sms/{key}/{to}").as_bytes());
    let mut bytes = [0u8; 16];
    bytes.copy_from_slice(&digest[..16]);
    bytes[6] = (bytes[6] & 0x0f) | 0x80; // version 8: custom
    bytes[8] = (bytes[8] & 0x3f) | 0x80; // RFC 4122 variant
    let id = uuid::Uuid::from_bytes(bytes).hyphenated().to_string();
    let first_sent = integration_kit::run_created_at(key)
        .and_then(|t| u64::try_from(t.timestamp()).ok())
        .map(|secs| SystemTime::UNIX_EPOCH + Duration::from_secs(secs))
        .unwrap_or_else(SystemTime::now);
    (id, first_sent)
}

/// Reads ACS answers: HTTP failures with ACS's `{"error":{"code","message"}}`, and a 2xx
/// whose (single) recipient failed as that recipient's status.
struct Answers<'s> {
    secrets: Vec<&'s str>,
    /// The connection test: 400 and 404 mean authenticated.
    probe: bool,
}

impl<'s> Answers<'s> {
    fn new(call: &'s ProviderCall<'_>, probe: bool) -> Self {
        Answers {
            secrets: call.credential.values().collect(),
            probe,
        }
    }
}

impl Classifier for Answers<'_> {
    fn classify(&self, status: StatusCode, headers: &HeaderMap, body: &[u8]) -> Verdict {
        let parsed: Value = serde_json::from_slice(body).unwrap_or(Value::Null);
        match classify_status(status, headers) {
            Verdict::Failure(_) if self.probe && matches!(status.as_u16(), 400 | 404) => {
                Verdict::Success
            }
            Verdict::Failure(mut failure) => {
                let error = &parsed["error"];
                let words = error["message"]
                    .as_str()
                    .or(parsed["title"].as_str())
                    .map(|m| format!(": {}", vendor_text(m, &self.secrets)))
                    .unwrap_or_default();
                failure.message = format!("acs answered {}{words}", status.as_u16());
                failure.vendor_code = error["code"].as_str().map(str::to_owned);
                Verdict::Failure(failure)
            }
            Verdict::Success => {
                let recipient = &parsed["value"][0];
                if recipient["successful"] != Value::Bool(false) {
                    // Unreadable answers are the caller's to call malformed.
                    return Verdict::Success;
                }
                let code = recipient["httpStatusCode"]
                    .as_u64()
                    .and_then(|c| u16::try_from(c).ok())
                    .and_then(|c| StatusCode::from_u16(c).ok())
                    // A failed recipient without a status: we cannot tell more.
                    .unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
                let mut failure = match classify_status(code, headers) {
                    Verdict::Failure(f) => f,
                    // "Failed" with a 2xx status: the vendor contradicts itself.
                    Verdict::Success => VendorFailure::new(FailureClassification::VendorError, "")
                        .status(code.as_u16()),
                };
                let words = recipient["errorMessage"]
                    .as_str()
                    .map(|m| format!(": {}", vendor_text(m, &self.secrets)))
                    .unwrap_or_default();
                failure.message = format!("acs refused the recipient ({}){words}", code.as_u16());
                Verdict::Failure(failure)
            }
        }
    }
}

/// The connection's config, checked when a connection is made (a misspelt, mistyped or
/// malformed setting is a 400 naming it).
#[derive(Debug, serde::Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct AcsSmsConfig {
    /// `https://<resource>.communication.azure.com`
    endpoint: String,
    /// The sending number or sender id.
    from: String,
}

impl integration_kit::ProviderConfig for AcsSmsConfig {
    fn check(&self) -> Result<(), InputError> {
        parse_endpoint(&self.endpoint).map_err(|e| InputError::at("endpoint", e))?;
        if self.from.trim().is_empty() || self.from.len() > 32 {
            return Err(InputError::at(
                "from",
                "must be the sending number or sender id (1 to 32 characters)",
            ));
        }
        Ok(())
    }
}

#[async_trait]
impl Provider for AcsSms {
    fn key(&self) -> &'static str {
        "acs-sms"
    }

    /// Delivery reports come through an Event Grid subscription the tenant points at the
    /// connection's `receiptUrl` (which carries the `code` derived from the access key).
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
            "Microsoft.Communication.SMSDeliveryReportReceived",
            "deliveryStatus",
            |status| match status {
                "Delivered" => integration_kit::DeliveryState::Delivered,
                "Failed" => integration_kit::DeliveryState::Failed,
                _ => integration_kit::DeliveryState::Sent,
            },
        )
    }

    fn credential_kinds(&self) -> &'static [CredentialKind] {
        &[CredentialKind::ApiKey]
    }

    async fn test_connection(&self, call: &ProviderCall<'_>) -> Result<(), CallError> {
        let endpoint = endpoint(&call.config_as()?)?;
        let key = acs::access_key(call)?;
        let url = api_url(&endpoint, &format!("deliveryReports/{PROBE_MESSAGE_ID}"))?;
        let answers = Answers::new(call, true);
        call.pipeline
            .send(call.call(Safety::Safe, &answers), || {
                acs::signed(call, &key, Method::GET, &url, &[])
            })
            .await
            .map(|_| ())
    }

    fn serves(served: &mut integration_kit::Served<Self>) {
        served.operation::<crate::Send>().config::<AcsSmsConfig>();
    }
}

#[async_trait]
impl integration_kit::Serves<crate::Send> for AcsSms {
    async fn execute(
        &self,
        call: &ProviderCall<'_>,
        input: &crate::SendSms,
    ) -> Result<integration_kit::Step<crate::SmsSent>, CallError> {
        let to = input.to.as_str();
        let message = input.body.as_str();
        let config: AcsSmsConfig = call.config_as()?;
        let from = input.from.as_deref().unwrap_or(&config.from);
        let endpoint = endpoint(&config)?;
        let key = acs::access_key(call)?;
        let url = api_url(&endpoint, "sms")?;
        let (request_id, first_sent) = repeatability(call.idempotency_key, to);
        let mut options = json!({"enableDeliveryReport": true});
        if let Some(run) = call.idempotency_key {
            options["tag"] = json!(run);
        }
        let body = serde_json::to_vec(&json!({
            "from": from,
            "smsRecipients": [{
                "to": to,
                "repeatabilityRequestId": request_id,
                "repeatabilityFirstSent": httpdate::fmt_http_date(first_sent),
            }],
            "message": message,
            "smsSendOptions": options,
        }))
        .map_err(|_| {
            call_failed(
                FailureClassification::Validation,
                "the message could not be encoded",
            )
        })?;
        let answers = Answers::new(call, false);
        let response = call
            .pipeline
            .send(call.call(Safety::Idempotent, &answers), || {
                acs::signed(call, &key, Method::POST, &url, &body)
            })
            .await?;
        let answer: Value = serde_json::from_slice(&response.body)
            .map_err(|_| malformed("acs's answer is not JSON"))?;
        let recipient = &answer["value"][0];
        let message_id = recipient["messageId"]
            .as_str()
            .filter(|id| !id.is_empty() && recipient["successful"] == Value::Bool(true))
            .ok_or_else(|| malformed("acs's answer has no accepted recipient"))?
            .to_owned();
        let parts = segments(message);
        Ok(super::sent(
            message_id,
            "accepted",
            parts,
            response.attempts,
            &[(
                "repeatabilityResult",
                recipient["repeatabilityResult"].clone(),
            )],
        )
        .into())
    }
}

#[cfg(test)]
mod tests {
    use axum::http::Method as HttpMethod;
    use base64::Engine as _;
    use base64::engine::general_purpose::STANDARD;

    use super::*;
    use crate::providers::test_support::{
        ATTEMPT_TIMEOUT, FakeVendor, Harness, Perform as _, Recorded, Reply, assert_no_secret,
    };

    /// The resource's access key: base64 of 32 bytes.
    const KEY: &str = "c2VjcmV0LWFjY2Vzcy1rZXktZm9yLWFjcy10ZXN0cyE=";

    fn harness(base: &str) -> Harness {
        Harness::new(
            "acs-sms",
            CredentialKind::ApiKey,
            json!({"apiKey": KEY}),
            json!({"endpoint": base, "from": "+18001110000"}),
        )
    }

    fn input() -> Value {
        json!({"to": "+972501234567", "body": "Hello"})
    }

    /// ACS's error body.
    fn error(status: u16, code: &str, message: &str) -> Reply {
        Reply::json(status, json!({"error": {"code": code, "message": message}}))
    }

    /// ACS's check of a request's signature, written from §7.3 independently of the
    /// module's functions: the body's hash, a fresh `x-ms-date`, and the HMAC over the
    /// received verb, path and query, date, `Host` and hash.
    fn verify(request: &Recorded) -> Result<(), &'static str> {
        use base64::Engine as _;
        use hmac::Mac as _;
        let (Some(date), Some(hash), Some(host), Some(auth)) = (
            request.header("x-ms-date"),
            request.header("x-ms-content-sha256"),
            request.header("host"),
            request.header("authorization"),
        ) else {
            return Err("missing signing headers");
        };
        let engine = base64::engine::general_purpose::STANDARD;
        if hash != engine.encode(sha2::Sha256::digest(&request.body)) {
            return Err("content hash mismatch");
        }
        let sent = httpdate::parse_http_date(date).map_err(|_| "bad date")?;
        let skew = SystemTime::now()
            .duration_since(sent)
            .unwrap_or_else(|e| e.duration());
        if skew > Duration::from_secs(15 * 60) {
            return Err("stale date");
        }
        let target = match &request.query {
            Some(q) => format!("{}?{q}", request.path),
            None => request.path.clone(),
        };
        let mut mac =
            hmac::Hmac::<sha2::Sha256>::new_from_slice(&engine.decode(KEY).unwrap()).unwrap();
        mac.update(format!("{}\n{target}\n{date};{host};{hash}", request.method).as_bytes());
        let expected = format!(
            "HMAC-SHA256 SignedHeaders=x-ms-date;host;x-ms-content-sha256&Signature={}",
            engine.encode(mac.finalize().into_bytes())
        );
        if auth == expected {
            Ok(())
        } else {
            Err("signature mismatch")
        }
    }

    /// ACS's send: the signature (401 `Denied`), the path and version (404), the body's
    /// shape (400), then the per-recipient result (A.9): a number ending in 0000 is refused
    /// inside the 202.
    fn acs(request: &Recorded) -> Reply {
        if verify(request).is_err() {
            return error(401, "Denied", "Denied by the resource provider.");
        }
        if request.method != HttpMethod::POST
            || request.path != "/sms"
            || request.query.as_deref() != Some("api-version=2026-01-23")
        {
            return error(404, "NotFound", "Resource not found.");
        }
        let body = request.json();
        let recipient = &body["smsRecipients"][0];
        let (Some(to), Some(_), Some(_), Some(_)) = (
            recipient["to"].as_str(),
            recipient["repeatabilityRequestId"].as_str(),
            recipient["repeatabilityFirstSent"].as_str(),
            body["message"].as_str(),
        ) else {
            return error(400, "BadRequest", "Invalid request.");
        };
        if body["from"] != "+18001110000" {
            return error(400, "BadRequest", "Invalid From phone number format.");
        }
        if to.ends_with("0000") {
            return Reply::json(
                202,
                json!({"value": [{"to": to, "httpStatusCode": 400, "errorMessage": "Invalid To phone number format.", "successful": false}]}),
            );
        }
        Reply::json(
            202,
            json!({"value": [{
                "to": to,
                "messageId": "Outgoing_20260901100000abcd",
                "httpStatusCode": 202,
                "repeatabilityResult": "accepted",
                "successful": true,
            }]}),
        )
    }

    #[test]
    fn repeatability_is_stable_per_run_and_recipient() {
        let run = crate::providers::test_support::run_id();
        let (id, first) = repeatability(Some(&run), "+972501234567");
        let (again, first_again) = repeatability(Some(&run), "+972501234567");
        assert_eq!((id.as_str(), first), (again.as_str(), first_again));
        let parsed = uuid::Uuid::parse_str(&id).expect("uuid-shaped");
        assert_eq!(parsed.get_version_num(), 8);
        assert_eq!(parsed.get_variant(), uuid::Variant::RFC4122);
        assert_ne!(repeatability(Some(&run), "+972501234568").0, id);
        assert_eq!(
            httpdate::fmt_http_date(first),
            "Tue, 01 Sep 2026 10:00:00 GMT"
        );
        // Not a run id: a fixed request id still, the time now.
        let (a, _) = repeatability(Some("not-a-run"), "+1");
        assert_eq!(a, repeatability(Some("not-a-run"), "+1").0);
    }

    #[tokio::test]
    async fn sends_a_signed_message_with_repeatability_and_a_delivery_report() {
        let fake = FakeVendor::start(|r, _| acs(r)).await;
        let h = harness(&fake.base);
        let out = AcsSms.perform(&h.call(), &input()).await.expect("sent");
        assert_eq!(
            out.vendor_message_id.as_deref(),
            Some("Outgoing_20260901100000abcd")
        );
        assert_eq!(out.summary["repeatabilityResult"], "accepted");
        assert_eq!(out.usage.units, 1);
        let requests = fake.requests();
        assert_eq!(requests.len(), 1);
        let request = &requests[0];
        assert_eq!(verify(request), Ok(()));
        assert_eq!(request.header("content-type"), Some("application/json"));
        let (id, _) = repeatability(h.idempotency_key.as_deref(), "+972501234567");
        assert_eq!(
            request.json(),
            json!({
                "from": "+18001110000",
                "smsRecipients": [{
                    "to": "+972501234567",
                    "repeatabilityRequestId": id,
                    "repeatabilityFirstSent": "Tue, 01 Sep 2026 10:00:00 GMT",
                }],
                "message": "Hello",
                "smsSendOptions": {"enableDeliveryReport": true, "tag": h.idempotency_key.as_deref().unwrap()},
            })
        );
    }

    #[tokio::test]
    async fn a_refused_recipient_inside_a_202_is_a_failure_of_its_status() {
        let fake = FakeVendor::start(|r, _| acs(r)).await;
        let h = harness(&fake.base).attempts(3);
        let e = AcsSms
            .perform(&h.call(), &json!({"to": "+972500000000", "body": "Hello"}))
            .await
            .expect_err("refused");
        assert_eq!(e.class(), FailureClassification::Validation);
        assert_eq!(e.failure.vendor_status, Some(400));
        assert_eq!(e.failure.vendor_code, None);
        assert!(
            e.failure.message.contains("Invalid To phone number format"),
            "{}",
            e.failure.message
        );
        assert!(!e.retryable);
        assert_eq!(fake.requests().len(), 1);
        assert_no_secret(&e, &[KEY]);
    }

    #[tokio::test]
    async fn a_wrong_key_is_an_auth_failure() {
        let fake = FakeVendor::start(|r, _| acs(r)).await;
        let mut h = harness(&fake.base);
        let wrong = STANDARD.encode("another-access-key-entirely-wrong");
        h.credential = custody::SecretMaterial::new(
            CredentialKind::ApiKey,
            json!({"apiKey": wrong})
                .as_object()
                .cloned()
                .unwrap_or_default(),
        )
        .expect("credential");
        let e = AcsSms
            .perform(&h.call(), &input())
            .await
            .expect_err("refused");
        assert_eq!(e.class(), FailureClassification::Auth);
        assert_eq!(e.failure.vendor_status, Some(401));
        assert_eq!(e.failure.vendor_code.as_deref(), Some("Denied"));
        assert!(!e.retryable);
        assert_no_secret(&e, &[&wrong, KEY]);

        // A key that is not base64 never leaves.
        h.credential = custody::SecretMaterial::new(
            CredentialKind::ApiKey,
            json!({"apiKey": "not base64!"})
                .as_object()
                .cloned()
                .unwrap_or_default(),
        )
        .expect("credential");
        let e = AcsSms
            .perform(&h.call(), &input())
            .await
            .expect_err("refused");
        assert_eq!(e.class(), FailureClassification::Auth);
        assert_eq!(e.attempts, 0);
        assert_no_secret(&e, &["not base64!"]);
        assert_eq!(fake.requests().len(), 1);
    }

    #[tokio::test]
    async fn throttling_is_rate_limited_with_the_retry_after_hint() {
        let fake = FakeVendor::start(|_, _| {
            error(429, "TooManyRequests", "Rate limit exceeded.").header("retry-after", "4")
        })
        .await;
        let h = harness(&fake.base);
        let e = AcsSms
            .perform(&h.call(), &input())
            .await
            .expect_err("throttled");
        assert_eq!(e.class(), FailureClassification::RateLimited);
        assert_eq!(e.failure.vendor_status, Some(429));
        assert_eq!(e.failure.vendor_code.as_deref(), Some("TooManyRequests"));
        assert_eq!(e.failure.retry_after, Some(Duration::from_secs(4)));
        assert!(e.retryable);
        assert_no_secret(&e, &[KEY]);
    }

    #[tokio::test]
    async fn a_server_error_is_transient() {
        let fake = FakeVendor::start(|_, _| {
            error(503, "ServiceUnavailable", "The service is unavailable.")
        })
        .await;
        let h = harness(&fake.base);
        let e = AcsSms.perform(&h.call(), &input()).await.expect_err("down");
        assert_eq!(e.class(), FailureClassification::Transient);
        assert_eq!(e.failure.vendor_status, Some(503));
        assert_eq!(e.failure.vendor_code.as_deref(), Some("ServiceUnavailable"));
        // Repeatable: safe to try again later.
        assert!(e.retryable);
        assert_no_secret(&e, &[KEY]);
    }

    #[tokio::test]
    async fn retries_repeat_the_same_repeatable_request() {
        let fake = FakeVendor::start(|r, n| {
            if n == 1 {
                error(503, "ServiceUnavailable", "The service is unavailable.")
            } else {
                acs(r)
            }
        })
        .await;
        let h = harness(&fake.base).attempts(3);
        let out = AcsSms
            .perform(&h.call(), &input())
            .await
            .expect("sent on the second attempt");
        assert_eq!(out.summary["attempts"], 2);
        let requests = fake.requests();
        assert_eq!(requests.len(), 2);
        let recipient = |r: &Recorded| r.json()["smsRecipients"][0].clone();
        assert_eq!(recipient(&requests[0]), recipient(&requests[1]));
        assert_eq!(verify(&requests[1]), Ok(()));
    }

    #[tokio::test]
    async fn a_slow_answer_times_out() {
        let fake = FakeVendor::start(|r, _| acs(r).after(ATTEMPT_TIMEOUT * 6)).await;
        let h = harness(&fake.base);
        let e = AcsSms
            .perform(&h.call(), &input())
            .await
            .expect_err("timed out");
        assert_eq!(e.class(), FailureClassification::Timeout);
        assert_eq!(e.failure.vendor_status, None);
        // Repeatable: unlike an unsafe send, a timed-out one may be tried again.
        assert!(e.retryable);
    }

    #[tokio::test]
    async fn a_garbled_success_is_malformed() {
        let fake = FakeVendor::start(|_, _| Reply::text(202, "accepted, probably")).await;
        let h = harness(&fake.base);
        let e = AcsSms
            .perform(&h.call(), &input())
            .await
            .expect_err("malformed");
        assert_eq!(e.class(), FailureClassification::VendorError);
        assert!(
            e.failure.message.contains("malformed"),
            "{}",
            e.failure.message
        );
        assert!(!e.retryable);
    }

    #[tokio::test]
    async fn the_connection_test_reads_a_missing_delivery_report() {
        let fake = FakeVendor::start(|r, _| {
            if verify(r).is_err() {
                return error(401, "Denied", "Denied by the resource provider.");
            }
            if r.method == HttpMethod::GET
                && r.path == format!("/deliveryReports/{PROBE_MESSAGE_ID}")
                && r.query.as_deref() == Some("api-version=2026-01-23")
            {
                Reply::json(
                    404,
                    json!({"type": "https://tools.ietf.org/html/rfc9110#section-15.5.5", "title": "Not Found", "status": 404, "traceId": "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"}),
                )
            } else {
                error(400, "BadRequest", "unexpected")
            }
        })
        .await;
        let mut h = harness(&fake.base);
        AcsSms
            .test_connection(&h.call())
            .await
            .expect("authenticated");
        let probe = &fake.requests()[0];
        assert_eq!(verify(probe), Ok(()));
        assert_eq!(
            probe.header("x-ms-content-sha256"),
            Some(STANDARD.encode(Sha256::digest(b"")).as_str())
        );

        h.credential = custody::SecretMaterial::new(
            CredentialKind::ApiKey,
            json!({"apiKey": STANDARD.encode("wrong")})
                .as_object()
                .cloned()
                .unwrap_or_default(),
        )
        .expect("credential");
        let e = AcsSms
            .test_connection(&h.call())
            .await
            .expect_err("refused");
        assert_eq!(e.class(), FailureClassification::Auth);
        assert_eq!(e.failure.vendor_status, Some(401));
        assert_no_secret(&e, &[KEY]);
    }

    #[tokio::test]
    async fn calls_go_through_the_guarded_client() {
        let fake = FakeVendor::start(|r, _| acs(r)).await;
        let h = harness(&fake.base).strict_guard();
        let e = AcsSms
            .perform(&h.call(), &input())
            .await
            .expect_err("localhost is internal");
        assert_eq!(e.class(), FailureClassification::Validation);
        assert_eq!(e.failure.vendor_code.as_deref(), Some("url_refused"));
        assert!(fake.requests().is_empty());
    }

    #[test]
    fn endpoints_are_origins_with_names() {
        assert!(parse_endpoint("https://myacs.communication.azure.com").is_ok());
        assert!(parse_endpoint("https://myacs.communication.azure.com/").is_ok());
        assert!(parse_endpoint("http://localhost:8080").is_ok());
        assert!(parse_endpoint("http://myacs.communication.azure.com").is_err());
        assert!(parse_endpoint("https://169.254.169.254").is_err());
        assert!(parse_endpoint("https://[::1]:443").is_err());
        assert!(parse_endpoint("https://myacs.communication.azure.com/sms").is_err());
        assert!(parse_endpoint("https://u:p@myacs.communication.azure.com").is_err());
        assert!(parse_endpoint("endpoint=https://x;accesskey=y").is_err());
        let check = |v: Value| {
            integration_kit::config_of::<AcsSmsConfig>(v.as_object().expect("object"))
                .map(drop)
                .map_err(|e| e.path)
        };
        assert!(
            check(json!({"endpoint": "https://a.communication.azure.com", "from": "+18001110000"}))
                .is_ok()
        );
        assert!(check(json!({"endpoint": "https://a.communication.azure.com"})).is_err());
        assert!(check(json!({"from": "+18001110000"})).is_err());
        assert_eq!(
            check(json!({"endpoint": "https://a.communication.azure.com/sms", "from": "+1800"}))
                .unwrap_err(),
            "endpoint"
        );
        assert_eq!(
            check(json!({"endpoint": "https://a.communication.azure.com", "from": " "}))
                .unwrap_err(),
            "from"
        );
    }

    /// ACS SMS in its documented shapes, for the kit's conformance suite.
    struct AcsScript;

    impl integration_kit::testing::VendorScript for AcsScript {
        fn reply(
            &self,
            case: integration_kit::testing::Case,
            request: &Recorded,
        ) -> Result<Reply, &'static str> {
            use integration_kit::testing::{Case, THROTTLE_SECS};
            Ok(match case {
                Case::Success => acs(request),
                Case::Invalid => error(400, "BadRequest", "Invalid To phone number format."),
                Case::Unauthorized => error(401, "Denied", "Denied by the resource provider."),
                Case::Throttled => error(429, "TooManyRequests", "Rate limit exceeded.")
                    .header("retry-after", &THROTTLE_SECS.to_string()),
                Case::ServerError => error(503, "ServiceUnavailable", "Try again later."),
                Case::Malformed => Reply::text(202, "{\"value\": [unterminated"),
            })
        }
    }

    #[tokio::test]
    async fn conforms_to_the_provider_suite() {
        let skipped = integration_kit::testing::conformance::<crate::Send, _, _>(
            &AcsSms,
            AcsScript,
            harness,
            input(),
            &[KEY],
            true,
        )
        .await;
        assert!(skipped.is_empty(), "{skipped:?}");
    }
}
