//! Twilio Programmable Messaging (`twilio`).
//!
//! - Credential `basic`: `username` = the Account SID (`AC…`), or an API key SID (`SK…`)
//!   with the account in config `accountSid`; `password` = the auth token (or key secret).
//! - Config: `from` (a number or sender id) and/or `messagingServiceSid` (`MG…`); optional
//!   `statusCallback` (where Twilio posts delivery statuses), `accountSid`, `baseUrl`
//!   (default `https://api.twilio.com`).
//! - `send`: `POST {base}/2010-04-01/Accounts/{AccountSid}/Messages.json`, form-encoded
//!   `To`, `From` or `MessagingServiceSid`, `Body`, `StatusCallback`, HTTP Basic. The sender
//!   is the input's `from` if given, else the messaging service, else config `from`. The
//!   answer (201) carries `sid` (the vendor message id delivery receipts are matched on),
//!   `status` and `num_segments`.
//! - Errors are `{"code","message","more_info","status"}`: the class comes from the HTTP
//!   status (`20429` is read as throttling too), `vendor_code` is `code`, and `Retry-After`
//!   is honoured.
//! - Twilio takes no idempotency key, so a send is `Unsafe`: it is repeated only when Twilio
//!   certainly did not take it (no connection, or a 429).
//! - Delivery statuses: unless config `statusCallback` names another place, each send asks
//!   Twilio to post them to the connection's receipt URL, where they are verified
//!   (`X-Twilio-Signature`, HMAC-SHA1 keyed with the auth token over the URL and the sorted
//!   form parameters) and normalised (`queued`/`accepted`/`scheduled` → queued,
//!   `sending`/`sent` → sent, `delivered`/`read` → delivered, `undelivered` → undelivered,
//!   `failed`/`canceled` → failed; `ErrorCode` kept as detail). Twilio signs with the
//!   account's auth token, so a connection made with an API key cannot verify them.
//! - Connection test: `GET {base}/2010-04-01/Accounts/{AccountSid}.json`; a suspended or
//!   closed account fails it as `auth`.

use async_trait::async_trait;
use domain::{ConnectionConfig, CredentialKind, FailureClassification};
use integration_kit::{InputError, Provider, ProviderCall, call_failed, malformed};
use reqwest::header::{ACCEPT, CONTENT_TYPE};
use resilience::{CallError, Classifier, Safety, VendorFailure, Verdict};
use serde_json::Value;

use super::{segments, vendor_text};

/// Twilio's public origin.
pub const DEFAULT_BASE_URL: &str = "https://api.twilio.com";

/// Twilio's error code for "too many requests".
const TOO_MANY_REQUESTS: i64 = 20429;

pub struct Twilio;

/// Whether `s` is a Twilio SID with `prefix`: two letters and 32 hex digits.
fn is_sid(s: &str, prefix: &str) -> bool {
    s.len() == 34 && s.starts_with(prefix) && s[2..].bytes().all(|b| b.is_ascii_hexdigit())
}

/// The account the calls are for: config `accountSid` (checked when the connection was
/// made), else the credential's user name (which must then be the Account SID itself, not an
/// API key SID).
fn account_sid(call: &ProviderCall<'_>, config: &TwilioConfig) -> Result<String, CallError> {
    if let Some(sid) = &config.account_sid {
        return Ok(sid.clone());
    }
    let user = call.secret("username")?;
    if is_sid(user, "AC") {
        Ok(user.to_owned())
    } else if user.starts_with("SK") {
        Err(call_failed(
            FailureClassification::Validation,
            "an API key credential needs the account in the connection's config (accountSid)",
        ))
    } else {
        // Not echoed: it is credential material.
        Err(call_failed(
            FailureClassification::Auth,
            "the credential's username is neither an Account SID nor an API key SID",
        ))
    }
}

/// Reads Twilio's answers: the HTTP status decides the class; the error body adds Twilio's
/// code and words (masked against the call's secrets).
struct Answers<'s> {
    secrets: Vec<&'s str>,
}

impl<'s> Answers<'s> {
    fn new(call: &'s ProviderCall<'_>) -> Self {
        Answers {
            secrets: call.credential.values().collect(),
        }
    }
}

/// A number Twilio may spell as a JSON number or a string.
fn number(v: &Value) -> Option<i64> {
    v.as_i64()
        .or_else(|| v.as_str().and_then(|s| s.trim().parse().ok()))
}

impl Classifier for Answers<'_> {
    fn classify(
        &self,
        status: reqwest::StatusCode,
        headers: &reqwest::header::HeaderMap,
        body: &[u8],
    ) -> Verdict {
        let Some((mut failure, error)) = integration_kit::failed_answer(status, headers, body)
        else {
            return Verdict::Success;
        };
        let code = number(&error["code"]);
        if code == Some(TOO_MANY_REQUESTS) {
            failure.class = FailureClassification::RateLimited;
        }
        let words = error["message"]
            .as_str()
            .map(|m| format!(": {}", vendor_text(m, &self.secrets)))
            .unwrap_or_default();
        failure.message = match code {
            Some(code) => {
                failure.vendor_code = Some(code.to_string());
                format!("twilio answered {} (error {code}){words}", status.as_u16())
            }
            None => format!("twilio answered {}{words}", status.as_u16()),
        };
        Verdict::Failure(failure)
    }
}

/// Twilio message statuses that mean it will not be sent.
fn refused(status: &str) -> bool {
    matches!(status, "failed" | "undelivered" | "canceled")
}

/// A Twilio message status, normalised.
fn delivery_state(status: &str) -> Option<integration_kit::DeliveryState> {
    use integration_kit::DeliveryState as S;
    Some(match status {
        "queued" | "accepted" | "scheduled" => S::Queued,
        "sending" | "sent" => S::Sent,
        "delivered" | "read" => S::Delivered,
        "undelivered" => S::Undelivered,
        "failed" | "canceled" => S::Failed,
        _ => return None,
    })
}

/// The connection's config, checked when a connection is made (a misspelt, mistyped or
/// malformed setting is a 400 naming it).
#[derive(Debug, serde::Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct TwilioConfig {
    /// The default sender (a number or an alphanumeric sender id).
    from: Option<String>,
    /// The default sender pool, when `from` is not given.
    messaging_service_sid: Option<String>,
    /// Where Twilio posts delivery statuses; else the app's own receipt URL.
    status_callback: Option<String>,
    /// The account, when the credential is an API key.
    account_sid: Option<String>,
    /// The kit's `baseUrl` (checked by the kit; read through `ProviderCall::base_url`).
    #[serde(rename = "baseUrl")]
    _base_url: Option<String>,
}

impl integration_kit::ProviderConfig for TwilioConfig {
    fn check(&self) -> Result<(), InputError> {
        if let Some(sid) = &self.account_sid
            && !is_sid(sid, "AC")
        {
            return Err(InputError::at(
                "accountSid",
                "must be AC followed by 32 hex digits",
            ));
        }
        if let Some(sid) = &self.messaging_service_sid
            && !is_sid(sid, "MG")
        {
            return Err(InputError::at(
                "messagingServiceSid",
                "must be MG followed by 32 hex digits",
            ));
        }
        if let Some(from) = &self.from
            && (from.is_empty() || from.len() > 32)
        {
            return Err(InputError::at(
                "from",
                "must be a number or sender id of 1 to 32 characters",
            ));
        }
        if let Some(url) = &self.status_callback
            && domain::HttpUrl::parse(url).is_err()
        {
            return Err(InputError::at("statusCallback", "must be an http(s) URL"));
        }
        Ok(())
    }
}

#[async_trait]
impl Provider for Twilio {
    fn key(&self) -> &'static str {
        "twilio"
    }

    fn credential_kinds(&self) -> &'static [CredentialKind] {
        &[CredentialKind::Basic]
    }

    fn parse_receipts(
        &self,
        credential: &custody::SecretMaterial,
        _config: &ConnectionConfig,
        request: &integration_kit::ReceiptRequest<'_>,
    ) -> Result<Vec<integration_kit::Receipt>, integration_kit::ReceiptError> {
        use integration_kit::ReceiptError;
        use secrecy::ExposeSecret as _;
        let user = credential
            .get("username")
            .ok_or(ReceiptError::Unauthorized)?;
        if !is_sid(user.expose_secret(), "AC") {
            // Signed with the account's auth token, which an API-key connection lacks.
            return Err(ReceiptError::NotSupported);
        }
        let token = credential
            .get("password")
            .ok_or(ReceiptError::Unauthorized)?;
        let secret = webhooks::Secret::from_bytes(token.expose_secret().as_bytes())
            .map_err(|_| ReceiptError::Unauthorized)?;
        request.verify(
            &webhooks::Scheme::Twilio {
                variant: webhooks::TwilioVariant::Sha1,
            },
            &secret,
        )?;
        let form: Vec<(String, String)> = serde_urlencoded::from_bytes(request.body)
            .map_err(|_| ReceiptError::Malformed("not a form".into()))?;
        let field = |name: &str| {
            form.iter()
                .find(|(k, _)| k == name)
                .map(|(_, v)| v.as_str())
        };
        let sid = field("MessageSid")
            .or(field("SmsSid"))
            .ok_or_else(|| ReceiptError::Malformed("MessageSid is missing".into()))?;
        let status = field("MessageStatus")
            .or(field("SmsStatus"))
            .ok_or_else(|| ReceiptError::Malformed("MessageStatus is missing".into()))?;
        let Some(state) = delivery_state(status) else {
            // A status we do not model (receiving, received): nothing to record.
            return Ok(Vec::new());
        };
        let detail = match field("ErrorCode") {
            Some(code) if !code.is_empty() => format!("{status}/{code}"),
            _ => status.to_owned(),
        };
        Ok(vec![integration_kit::Receipt {
            message_id: sid.to_owned(),
            state,
            detail: Some(detail),
        }])
    }

    async fn test_connection(&self, call: &ProviderCall<'_>) -> Result<(), CallError> {
        let account = account_sid(call, &call.config_as()?)?;
        let (user, password) = (call.secret("username")?, call.secret("password")?);
        let url = format!(
            "{}/2010-04-01/Accounts/{account}.json",
            call.base_url(DEFAULT_BASE_URL)
        );
        let answers = Answers::new(call);
        let response = call
            .pipeline
            .send(call.call(Safety::Safe, &answers), || {
                call.http
                    .get(&url)
                    .basic_auth(user, Some(password))
                    .header(ACCEPT, "application/json")
            })
            .await?;
        let body: Value = serde_json::from_slice(&response.body)
            .map_err(|_| malformed("the account is not JSON"))?;
        match body["status"].as_str() {
            Some("active") | None => Ok(()),
            Some(other) => Err(CallError {
                failure: VendorFailure::new(
                    FailureClassification::Auth,
                    format!("the twilio account is {}", vendor_text(other, &[])),
                )
                .status(response.status.as_u16()),
                attempts: response.attempts,
                retryable: false,
            }),
        }
    }

    fn serves(served: &mut integration_kit::Served<Self>) {
        served.operation::<crate::Send>().config::<TwilioConfig>();
    }
}

#[async_trait]
impl integration_kit::Serves<crate::Send> for Twilio {
    async fn execute(
        &self,
        call: &ProviderCall<'_>,
        input: &crate::SendSms,
    ) -> Result<integration_kit::Step<crate::SmsSent>, CallError> {
        let to = input.to.as_str();
        let body = input.body.as_str();
        let config: TwilioConfig = call.config_as()?;
        let account = account_sid(call, &config)?;
        let (user, password) = (call.secret("username")?, call.secret("password")?);
        let mut form = vec![("To", to)];
        match (
            input.from.as_deref(),
            config.messaging_service_sid.as_deref(),
            config.from.as_deref(),
        ) {
            (Some(from), _, _) | (None, None, Some(from)) => form.push(("From", from)),
            (None, Some(service), _) => form.push(("MessagingServiceSid", service)),
            (None, None, None) => {
                return Err(call_failed(
                    FailureClassification::Validation,
                    "twilio needs a sender: from in the input, or messagingServiceSid or from \
                     in the connection's config",
                ));
            }
        }
        form.push(("Body", body));
        // Delivery statuses go where the connection says, else to the app's own receipt
        // URL for the connection (verified with the auth token when they arrive).
        if let Some(callback) = config.status_callback.as_deref().or(call.receipt_url) {
            form.push(("StatusCallback", callback));
        }
        let encoded = serde_urlencoded::to_string(&form).map_err(|_| {
            call_failed(
                FailureClassification::Validation,
                "the message could not be form-encoded",
            )
        })?;
        let url = format!(
            "{}/2010-04-01/Accounts/{account}/Messages.json",
            call.base_url(DEFAULT_BASE_URL)
        );
        let answers = Answers::new(call);
        let response = call
            .pipeline
            .send(call.call(Safety::Unsafe, &answers), || {
                call.http
                    .post(&url)
                    .basic_auth(user, Some(password))
                    .header(CONTENT_TYPE, "application/x-www-form-urlencoded")
                    .header(ACCEPT, "application/json")
                    .body(encoded.clone())
            })
            .await?;
        let message: Value = serde_json::from_slice(&response.body)
            .map_err(|_| malformed("twilio's message is not JSON"))?;
        let sid = message["sid"]
            .as_str()
            .filter(|s| !s.is_empty())
            .ok_or_else(|| malformed("twilio's message has no sid"))?
            .to_owned();
        let status = message["status"].as_str().unwrap_or("queued").to_owned();
        if refused(&status) {
            let mut failure = VendorFailure::new(
                FailureClassification::Unprocessable,
                format!("twilio created the message as {status}"),
            )
            .status(response.status.as_u16());
            failure.vendor_code = number(&message["error_code"]).map(|c| c.to_string());
            return Err(CallError {
                failure,
                attempts: response.attempts,
                retryable: false,
            });
        }
        let parts = number(&message["num_segments"])
            .and_then(|n| u64::try_from(n).ok())
            .filter(|n| *n > 0)
            .unwrap_or_else(|| segments(body));
        Ok(super::sent(sid, &status, parts, response.attempts, &[]).into())
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use serde_json::json;

    use axum::http::Method;
    use base64::Engine as _;
    use base64::engine::general_purpose::STANDARD;

    use super::*;
    use crate::providers::test_support::{
        ATTEMPT_TIMEOUT, FakeVendor, Harness, Perform as _, Recorded, Reply, assert_no_secret,
    };

    const ACCOUNT: &str = "AC0123456789abcdef0123456789abcdef";
    const API_KEY: &str = "SK0123456789abcdef0123456789abcdef";
    const SERVICE: &str = "MG0123456789abcdef0123456789abcdef";
    const TOKEN: &str = "tw-auth-token-s3cret";

    fn harness(base: &str, config: Value) -> Harness {
        let mut config = config;
        config["baseUrl"] = json!(base);
        Harness::new(
            "twilio",
            CredentialKind::Basic,
            json!({"username": ACCOUNT, "password": TOKEN}),
            config,
        )
    }

    fn input() -> Value {
        json!({"to": "+972501234567", "body": "Hello"})
    }

    /// Twilio's error body.
    fn error(status: u16, code: i64, message: &str) -> Reply {
        Reply::json(
            status,
            json!({
                "code": code,
                "message": message,
                "more_info": format!("https://www.twilio.com/docs/errors/{code}"),
                "status": status,
            }),
        )
    }

    /// Twilio's checks of a send: the path, Basic auth for `user` and the token, and a
    /// form body with `To` and `Body`; a 401 (20003) or 400 (21604) otherwise, and the
    /// message (A.7) when all is well.
    fn twilio(request: &Recorded, user: &str) -> Reply {
        let expected = format!("Basic {}", STANDARD.encode(format!("{user}:{TOKEN}")));
        if request.header("authorization") != Some(expected.as_str()) {
            return error(401, 20003, "Authenticate");
        }
        if request.method != Method::POST
            || request.path != format!("/2010-04-01/Accounts/{ACCOUNT}/Messages.json")
        {
            return error(404, 20404, "The requested resource was not found");
        }
        if request.header("content-type") != Some("application/x-www-form-urlencoded") {
            return error(400, 21604, "A 'To' phone number is required.");
        }
        let (Some(to), Some(body)) = (request.form_field("To"), request.form_field("Body")) else {
            return error(400, 21604, "A 'To' phone number is required.");
        };
        if to == "+15005550001" {
            return error(
                400,
                21211,
                &format!("The 'To' number {to} is not a valid phone number."),
            );
        }
        Reply::json(
            201,
            json!({
                "sid": "SM0123456789abcdef0123456789abcdef",
                "account_sid": ACCOUNT,
                "messaging_service_sid": request.form_field("MessagingServiceSid"),
                "to": to,
                "from": request.form_field("From"),
                "body": body,
                "status": if request.form_field("MessagingServiceSid").is_some() { "accepted" } else { "queued" },
                "num_segments": "1",
                "error_code": null,
                "error_message": null,
                "date_created": "Mon, 01 Sep 2026 10:00:00 +0000",
                "uri": format!("/2010-04-01/Accounts/{ACCOUNT}/Messages/SM0123456789abcdef0123456789abcdef.json"),
            }),
        )
    }

    #[tokio::test]
    async fn sends_a_form_encoded_message_with_basic_auth() {
        let fake = FakeVendor::start(|r, _| twilio(r, ACCOUNT)).await;
        let h = harness(
            &fake.base,
            json!({
                "messagingServiceSid": SERVICE,
                "from": "+15550001111",
                "statusCallback": "https://hooks.example.com/twilio/status?run=r-42",
            }),
        );
        let out = Twilio.perform(&h.call(), &input()).await.expect("sent");
        assert_eq!(
            out.vendor_message_id.as_deref(),
            Some("SM0123456789abcdef0123456789abcdef")
        );
        assert_eq!(out.summary["status"], "accepted");
        assert_eq!(out.summary["segments"], 1);
        assert_eq!(out.usage.units, 1);
        let requests = fake.requests();
        assert_eq!(requests.len(), 1);
        let form = requests[0].form();
        // The messaging service wins over config `from`; no From is sent with it.
        assert_eq!(
            form,
            vec![
                ("To".to_owned(), "+972501234567".to_owned()),
                ("MessagingServiceSid".to_owned(), SERVICE.to_owned()),
                ("Body".to_owned(), "Hello".to_owned()),
                (
                    "StatusCallback".to_owned(),
                    "https://hooks.example.com/twilio/status?run=r-42".to_owned()
                ),
            ]
        );
    }

    #[tokio::test]
    async fn the_input_sender_wins_and_api_keys_name_the_account_in_config() {
        let fake = FakeVendor::start(|r, _| twilio(r, API_KEY)).await;
        let mut h = Harness::new(
            "twilio",
            CredentialKind::Basic,
            json!({"username": API_KEY, "password": TOKEN}),
            json!({"baseUrl": fake.base, "accountSid": ACCOUNT, "messagingServiceSid": SERVICE}),
        );
        let mut send = input();
        send["from"] = json!("MyBrand");
        let out = Twilio.perform(&h.call(), &send).await.expect("sent");
        assert_eq!(out.summary["status"], "queued");
        let request = &fake.requests()[0];
        assert_eq!(request.form_field("From").as_deref(), Some("MyBrand"));
        assert_eq!(request.form_field("MessagingServiceSid"), None);

        // Without accountSid an API key cannot name the account: refused before any call.
        h.config.remove("accountSid");
        let e = Twilio
            .perform(&h.call(), &input())
            .await
            .expect_err("no account");
        assert_eq!(e.class(), FailureClassification::Validation);
        assert_eq!(fake.requests().len(), 1);
        assert_no_secret(&e, &[TOKEN, API_KEY]);
    }

    #[tokio::test]
    async fn an_invalid_number_is_a_validation_failure_with_twilio_s_code() {
        let fake = FakeVendor::start(|r, _| twilio(r, ACCOUNT)).await;
        let h = harness(&fake.base, json!({"from": "+15550001111"})).attempts(3);
        let e = Twilio
            .perform(&h.call(), &json!({"to": "+15005550001", "body": "Hello"}))
            .await
            .expect_err("refused");
        assert_eq!(e.class(), FailureClassification::Validation);
        assert_eq!(e.failure.vendor_status, Some(400));
        assert_eq!(e.failure.vendor_code.as_deref(), Some("21211"));
        assert_eq!(e.failure.retry_after, None);
        assert!(!e.retryable);
        assert!(e.failure.message.contains("21211"), "{}", e.failure.message);
        assert_eq!(fake.requests().len(), 1, "a refusal is not repeated");
        assert_no_secret(&e, &[TOKEN]);
    }

    #[tokio::test]
    async fn a_wrong_token_is_an_auth_failure() {
        let fake = FakeVendor::start(|r, _| twilio(r, ACCOUNT)).await;
        let mut h = harness(&fake.base, json!({"from": "+15550001111"}));
        h.credential = custody::SecretMaterial::new(
            CredentialKind::Basic,
            json!({"username": ACCOUNT, "password": "wrong-s3cret"})
                .as_object()
                .cloned()
                .unwrap_or_default(),
        )
        .expect("credential");
        let e = Twilio
            .perform(&h.call(), &input())
            .await
            .expect_err("refused");
        assert_eq!(e.class(), FailureClassification::Auth);
        assert_eq!(e.failure.vendor_status, Some(401));
        assert_eq!(e.failure.vendor_code.as_deref(), Some("20003"));
        assert!(!e.retryable);
        assert_no_secret(&e, &["wrong-s3cret", TOKEN]);
    }

    #[tokio::test]
    async fn throttling_is_rate_limited_with_twilio_s_retry_after() {
        let fake = FakeVendor::start(|_, _| {
            error(429, 20429, "Too Many Requests").header("retry-after", "7")
        })
        .await;
        let h = harness(&fake.base, json!({"from": "+15550001111"}));
        let e = Twilio
            .perform(&h.call(), &input())
            .await
            .expect_err("throttled");
        assert_eq!(e.class(), FailureClassification::RateLimited);
        assert_eq!(e.failure.vendor_status, Some(429));
        assert_eq!(e.failure.vendor_code.as_deref(), Some("20429"));
        assert_eq!(e.failure.retry_after, Some(Duration::from_secs(7)));
        // Twilio did not take it: trying later is safe even without an idempotency key.
        assert!(e.retryable);
        assert_no_secret(&e, &[TOKEN]);
    }

    #[tokio::test]
    async fn a_server_error_is_transient_and_never_repeated() {
        let fake = FakeVendor::start(|_, _| error(503, 20500, "Service Unavailable")).await;
        let h = harness(&fake.base, json!({"from": "+15550001111"})).attempts(3);
        let e = Twilio.perform(&h.call(), &input()).await.expect_err("down");
        assert_eq!(e.class(), FailureClassification::Transient);
        assert_eq!(e.failure.vendor_status, Some(503));
        assert_eq!(e.failure.vendor_code.as_deref(), Some("20500"));
        // It may have been sent: without an idempotency key it is not sent again.
        assert_eq!(fake.requests().len(), 1);
        assert!(!e.retryable);
        assert_no_secret(&e, &[TOKEN]);
    }

    #[tokio::test]
    async fn a_slow_answer_times_out() {
        let fake = FakeVendor::start(|r, _| twilio(r, ACCOUNT).after(ATTEMPT_TIMEOUT * 6)).await;
        let h = harness(&fake.base, json!({"from": "+15550001111"}));
        let e = Twilio
            .perform(&h.call(), &input())
            .await
            .expect_err("timed out");
        assert_eq!(e.class(), FailureClassification::Timeout);
        assert_eq!(e.failure.vendor_status, None);
        assert_eq!(e.failure.vendor_code, None);
        assert!(!e.retryable, "a timed-out send may have gone out");
        assert_no_secret(&e, &[TOKEN]);
    }

    #[tokio::test]
    async fn a_garbled_success_is_malformed() {
        let fake = FakeVendor::start(|_, _| Reply::text(201, "<html>welcome</html>")).await;
        let h = harness(&fake.base, json!({"from": "+15550001111"}));
        let e = Twilio
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
        assert_no_secret(&e, &[TOKEN]);
    }

    #[tokio::test]
    async fn a_message_created_as_failed_is_unprocessable() {
        let fake = FakeVendor::start(|_, _| {
            Reply::json(
                201,
                json!({"sid": "SM0123456789abcdef0123456789abcdef", "status": "failed", "error_code": 30007}),
            )
        })
        .await;
        let h = harness(&fake.base, json!({"from": "+15550001111"}));
        let e = Twilio
            .perform(&h.call(), &input())
            .await
            .expect_err("failed");
        assert_eq!(e.class(), FailureClassification::Unprocessable);
        assert_eq!(e.failure.vendor_code.as_deref(), Some("30007"));
    }

    #[tokio::test]
    async fn the_connection_test_fetches_the_account() {
        let fake = FakeVendor::start(|r, _| {
            let expected = format!("Basic {}", STANDARD.encode(format!("{ACCOUNT}:{TOKEN}")));
            if r.header("authorization") != Some(expected.as_str()) {
                return error(401, 20003, "Authenticate");
            }
            if r.method != Method::GET || r.path != format!("/2010-04-01/Accounts/{ACCOUNT}.json") {
                return error(404, 20404, "The requested resource was not found");
            }
            Reply::json(
                200,
                json!({"sid": ACCOUNT, "status": "active", "friendly_name": "test"}),
            )
        })
        .await;
        let mut h = harness(&fake.base, json!({}));
        Twilio
            .test_connection(&h.call())
            .await
            .expect("the account answers");

        h.credential = custody::SecretMaterial::new(
            CredentialKind::Basic,
            json!({"username": ACCOUNT, "password": "wrong-s3cret"})
                .as_object()
                .cloned()
                .unwrap_or_default(),
        )
        .expect("credential");
        let e = Twilio
            .test_connection(&h.call())
            .await
            .expect_err("refused");
        assert_eq!(e.class(), FailureClassification::Auth);
        assert_eq!(e.failure.vendor_status, Some(401));
        assert_no_secret(&e, &["wrong-s3cret"]);
    }

    #[tokio::test]
    async fn calls_go_through_the_guarded_client() {
        let fake = FakeVendor::start(|r, _| twilio(r, ACCOUNT)).await;
        let h = harness(&fake.base, json!({"from": "+15550001111"})).strict_guard();
        let e = Twilio
            .perform(&h.call(), &input())
            .await
            .expect_err("localhost is internal");
        assert_eq!(e.class(), FailureClassification::Validation);
        assert_eq!(e.failure.vendor_code.as_deref(), Some("url_refused"));
        assert!(fake.requests().is_empty(), "the guard stopped the call");
    }

    #[test]
    fn config_is_checked() {
        let check = |v: Value| {
            integration_kit::config_of::<TwilioConfig>(v.as_object().expect("object"))
                .map(drop)
                .map_err(|e| e.path)
        };
        assert!(check(json!({"from": "+15550001111"})).is_ok());
        assert!(check(json!({"messagingServiceSid": SERVICE, "accountSid": ACCOUNT})).is_ok());
        assert_eq!(
            check(json!({"messagingServiceSid": "MG123"})).unwrap_err(),
            "messagingServiceSid"
        );
        assert_eq!(
            check(json!({"accountSid": API_KEY})).unwrap_err(),
            "accountSid"
        );
        assert_eq!(check(json!({"from": 5})).unwrap_err(), "from");
        assert_eq!(check(json!({"from": ""})).unwrap_err(), "from");
        assert_eq!(
            check(json!({"statusCallback": "not a url"})).unwrap_err(),
            "statusCallback"
        );
    }

    fn twilio_signature(token: &str, url: &str, params: &[(&str, &str)]) -> String {
        use hmac::Mac as _;
        let mut sorted = params.to_vec();
        sorted.sort();
        let mut data = url.to_owned();
        for (k, v) in sorted {
            data.push_str(k);
            data.push_str(v);
        }
        let mut mac = hmac::Hmac::<sha1::Sha1>::new_from_slice(token.as_bytes()).unwrap();
        mac.update(data.as_bytes());
        STANDARD.encode(mac.finalize().into_bytes())
    }

    fn receipt(
        credential: Value,
        url: &str,
        params: &[(&str, &str)],
        signature: &str,
    ) -> Result<Vec<integration_kit::Receipt>, integration_kit::ReceiptError> {
        let material = custody::SecretMaterial::new(
            CredentialKind::Basic,
            credential.as_object().unwrap().clone(),
        )
        .unwrap();
        let body = serde_urlencoded::to_string(params).unwrap();
        let mut headers = axum::http::HeaderMap::new();
        headers.insert("x-twilio-signature", signature.parse().unwrap());
        headers.insert(
            "content-type",
            "application/x-www-form-urlencoded".parse().unwrap(),
        );
        let request = integration_kit::ReceiptRequest {
            url,
            headers: &headers,
            body: body.as_bytes(),
        };
        Twilio.parse_receipts(&material, &Default::default(), &request)
    }

    proptest::proptest! {
        /// Signed status callbacks with any fields and values are read or refused as
        /// malformed, never with a panic; a receipt read names the message it was about.
        #[test]
        fn signed_callbacks_of_any_fields_are_read_without_panic(
            fields in proptest::collection::vec(("\\PC{0,20}", "\\PC{0,40}"), 0..8),
            sid in proptest::option::of("\\PC{0,40}"),
            status in proptest::option::of("\\PC{0,20}"),
        ) {
            let url = "https://platform.example/sms/api/integrations/receipts/t1/conn_1";
            let mut params: Vec<(&str, &str)> =
                fields.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
            if let Some(sid) = &sid {
                params.push(("MessageSid", sid));
            }
            if let Some(status) = &status {
                params.push(("MessageStatus", status));
            }
            let signature = twilio_signature(TOKEN, url, &params);
            let credential = json!({"username": ACCOUNT, "password": TOKEN});
            match receipt(credential, url, &params, &signature) {
                Ok(receipts) => {
                    for r in receipts {
                        proptest::prop_assert!(!r.message_id.is_empty());
                    }
                }
                Err(e) => proptest::prop_assert!(
                    matches!(e, integration_kit::ReceiptError::Malformed(_)),
                    "{e:?}"
                ),
            }
        }
    }

    #[test]
    fn status_callbacks_are_verified_and_normalised() {
        let url = "https://platform.example/sms/api/integrations/receipts/t1/conn_1";
        let params = [
            ("MessageSid", "SM0123456789abcdef0123456789abcdef"),
            ("MessageStatus", "undelivered"),
            ("ErrorCode", "30003"),
            ("AccountSid", ACCOUNT),
        ];
        let signature = twilio_signature(TOKEN, url, &params);
        let credential = json!({"username": ACCOUNT, "password": TOKEN});
        let receipts = receipt(credential.clone(), url, &params, &signature).expect("verified");
        assert_eq!(
            receipts,
            vec![integration_kit::Receipt {
                message_id: "SM0123456789abcdef0123456789abcdef".into(),
                state: integration_kit::DeliveryState::Undelivered,
                detail: Some("undelivered/30003".into()),
            }]
        );
        // Signed with another token, or for another URL: refused.
        let forged = twilio_signature("another-token", url, &params);
        assert_eq!(
            receipt(credential.clone(), url, &params, &forged),
            Err(integration_kit::ReceiptError::Unauthorized)
        );
        assert_eq!(
            receipt(credential, &format!("{url}x"), &params, &signature),
            Err(integration_kit::ReceiptError::Unauthorized)
        );
        // An API-key connection cannot verify Twilio's signature.
        let api_key = json!({"username": API_KEY, "password": TOKEN});
        assert_eq!(
            receipt(api_key, url, &params, &signature),
            Err(integration_kit::ReceiptError::NotSupported)
        );
    }

    #[test]
    fn statuses_map_onto_the_delivery_model() {
        use integration_kit::DeliveryState as S;
        for (status, state) in [
            ("queued", Some(S::Queued)),
            ("sent", Some(S::Sent)),
            ("delivered", Some(S::Delivered)),
            ("read", Some(S::Delivered)),
            ("undelivered", Some(S::Undelivered)),
            ("failed", Some(S::Failed)),
            ("canceled", Some(S::Failed)),
            ("received", None),
        ] {
            assert_eq!(delivery_state(status), state, "{status}");
        }
    }

    /// Twilio in its documented shapes, for the kit's conformance suite.
    struct TwilioScript;

    impl integration_kit::testing::VendorScript for TwilioScript {
        fn reply(
            &self,
            case: integration_kit::testing::Case,
            request: &Recorded,
        ) -> Result<Reply, &'static str> {
            use integration_kit::testing::{Case, THROTTLE_SECS};
            Ok(match case {
                Case::Success => twilio(request, ACCOUNT),
                Case::Invalid => error(400, 21211, "The 'To' number is not a valid phone number."),
                Case::Unauthorized => error(401, 20003, "Authenticate"),
                Case::Throttled => error(429, 20429, "Too Many Requests")
                    .header("retry-after", &THROTTLE_SECS.to_string()),
                Case::ServerError => error(503, 20500, "Service Unavailable"),
                Case::Malformed => Reply::text(201, "<html>not the message</html>"),
            })
        }
    }

    #[tokio::test]
    async fn conforms_to_the_provider_suite() {
        let skipped = integration_kit::testing::conformance::<crate::Send, _, _>(
            &Twilio,
            TwilioScript,
            |base| harness(base, json!({"from": "+15550001111"})),
            input(),
            &[TOKEN],
            false,
        )
        .await;
        assert!(skipped.is_empty(), "{skipped:?}");
    }
}
