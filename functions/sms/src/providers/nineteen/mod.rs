//! 019 (019sms, Israel), catalogue key `019`. The public spec is thin; this follows the
//! JSON form of the documented XML tree that public clients use.
//!
//! - Credential `bearerToken`: `token` = the API token, sent as `Authorization: Bearer`.
//! - Config: `username` (the 019 account, also sent in the body), `source` (the sender id:
//!   at most 11 ASCII letters or digits), optional `baseUrl` (default `https://019sms.co.il`).
//! - `send`: `POST {base}/api` with
//!   `{"sms":{"user":{"username"},"source","destinations":{"phone":[{"_":"05…","id"}]},"message"}}`.
//!   019 takes local numbers, so `+9725XXXXXXXX` goes as `05XXXXXXXX`; any other number is
//!   refused as `validation` before calling. `id` is ours (the run id): 019 reports delivery
//!   by it. The input's `from` replaces `source` (same rules). Messages are at most 1005
//!   characters.
//! - The answer is `{"status","message","shipment_id"?}` (also accepted inside `"sms"`), and
//!   usually HTTP 200 even for errors: `status` 0 is accepted, anything else is an error
//!   classified by [`status_class`]. The vendor message id is our `id`, which 019's delivery
//!   reports are keyed by; a `shipment_id` is kept in the run's summary.
//! - Delivery receipts ([`dlr`]): asked for on the kit's `PollReceipts` timer with the `dlr`
//!   operation, and taken when 019 pushes them to the connection's receipt URL (which then
//!   carries a `code` derived from the token).
//! - No idempotency key: a send is `Unsafe`.
//! - Connection test: 019 documents no cheap authenticated read, so the test is a send to the
//!   sandbox path `POST {base}/api/test` (it checks the token, user and source and sends
//!   nothing) for the placeholder number `0500000000`. It passes when the sandbox accepts, or
//!   refuses only the placeholder destination (statuses 8, 9, 715): those prove the token,
//!   user and source were accepted. Any other status fails the test with its class.

pub mod dlr;

use async_trait::async_trait;
use custody::SecretMaterial;
use domain::{ConnectionConfig, CredentialKind, FailureClassification};
use integration_kit::{
    InputError, PendingReceipt, Provider, ProviderCall, Receipt, ReceiptError, ReceiptRequest,
    call_failed, malformed,
};
use reqwest::StatusCode;
use reqwest::header::{ACCEPT, CONTENT_TYPE, HeaderMap};
use resilience::{CallError, Classifier, Safety, VendorFailure, Verdict, classify_status};
use serde_json::{Value, json};

use super::{segments, vendor_text};

/// 019's public origin.
pub const DEFAULT_BASE_URL: &str = "https://019sms.co.il";

/// The longest message 019 takes.
pub const MAX_MESSAGE_CHARS: usize = 1005;

/// The destination of the connection test (on the sandbox, which sends nothing).
const PROBE_PHONE: &str = "0500000000";

/// Statuses that refuse only the destination: on the sandbox probe they prove the rest.
const DESTINATION_ONLY: [i64; 3] = [8, 9, 715];

pub struct Nineteen;

/// The class of a non-zero 019 `status`. From 019's published errors-and-status table as
/// quoted by public clients (secondary, UNVERIFIED against a live account):
///
/// | status | meaning | class |
/// |---|---|---|
/// | 3, 10, 11, 503 (no such user), 504 (bad token), 511 (no permission) | authentication | `auth` |
/// | 1 (unreadable request), 2 (missing field), 7 (bad format), 9 (bad number), 515 (unverified source), 714, 989 (message length), 992 (source length), 997 | our request | `validation` |
/// | 4 (no credit), 5 (not allowed at this hour), 8 / 715 (numbers blocked) | business rule | `unprocessable` |
/// | 6 (process failed), 502 (server error) | passing | `transient` |
/// | anything else | | `vendor_error` |
pub fn status_class(status: i64) -> FailureClassification {
    match status {
        3 | 10 | 11 | 503 | 504 | 511 => FailureClassification::Auth,
        1 | 2 | 7 | 9 | 515 | 714 | 989 | 992 | 997 => FailureClassification::Validation,
        4 | 5 | 8 | 715 => FailureClassification::Unprocessable,
        6 | 502 => FailureClassification::Transient,
        _ => FailureClassification::VendorError,
    }
}

/// 019's answer.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Answer {
    status: i64,
    message: Option<String>,
    shipment_id: Option<String>,
}

/// A number or a numeric string.
fn number(v: &Value) -> Option<i64> {
    v.as_i64()
        .or_else(|| v.as_str().and_then(|s| s.trim().parse().ok()))
}

/// Reads an answer: `{"status",…}`, or inside `"sms"` or `"dlr"`; `None` without a status.
fn read(body: &[u8]) -> Option<Answer> {
    let v: Value = serde_json::from_slice(body).ok()?;
    let fields = ["sms", "dlr"]
        .iter()
        .find_map(|k| v.get(k).filter(|s| s.is_object()))
        .unwrap_or(&v);
    Some(Answer {
        status: number(&fields["status"])?,
        message: fields["message"].as_str().map(str::to_owned),
        shipment_id: match &fields["shipment_id"] {
            Value::String(s) if !s.is_empty() => Some(s.clone()),
            Value::Number(n) => Some(n.to_string()),
            _ => None,
        },
    })
}

/// Reads 019's answers: the HTTP status first, then the `status` of the body, which fails
/// even an HTTP 200.
struct Answers<'s> {
    secrets: Vec<&'s str>,
    /// The sandbox probe: statuses in [`DESTINATION_ONLY`] pass.
    probe: bool,
}

impl<'s> Answers<'s> {
    fn new(call: &'s ProviderCall<'_>, probe: bool) -> Self {
        Answers {
            secrets: call.credential.values().collect(),
            probe,
        }
    }

    fn words(&self, answer: &Answer) -> String {
        answer
            .message
            .as_deref()
            .map(|m| format!(": {}", vendor_text(m, &self.secrets)))
            .unwrap_or_default()
    }
}

impl Classifier for Answers<'_> {
    fn classify(&self, status: StatusCode, headers: &HeaderMap, body: &[u8]) -> Verdict {
        let answer = read(body);
        match classify_status(status, headers) {
            Verdict::Failure(mut failure) => {
                if let Some(answer) = answer.filter(|a| a.status != 0) {
                    if status_class(answer.status) == FailureClassification::Auth {
                        failure.class = FailureClassification::Auth;
                    }
                    failure.message = format!(
                        "019 answered {} (status {}){}",
                        status.as_u16(),
                        answer.status,
                        self.words(&answer)
                    );
                    failure.vendor_code = Some(answer.status.to_string());
                } else {
                    failure.message = format!("019 answered {}", status.as_u16());
                }
                Verdict::Failure(failure)
            }
            // A 2xx without a status is the caller's to call malformed.
            Verdict::Success => match answer {
                None => Verdict::Success,
                Some(a) if a.status == 0 => Verdict::Success,
                Some(a) if self.probe && DESTINATION_ONLY.contains(&a.status) => Verdict::Success,
                Some(a) => Verdict::Failure(
                    VendorFailure::new(
                        status_class(a.status),
                        format!(
                            "019 refused the message (status {}){}",
                            a.status,
                            self.words(&a)
                        ),
                    )
                    .status(status.as_u16())
                    .code(a.status.to_string()),
                ),
            },
        }
    }
}

/// `+9725XXXXXXXX` as 019 wants it (`05XXXXXXXX`); `None` for any other number.
pub fn local_number(e164: &str) -> Option<String> {
    let rest = e164.strip_prefix("+972")?;
    (rest.len() == 9 && rest.starts_with('5') && rest.bytes().all(|b| b.is_ascii_digit()))
        .then(|| format!("0{rest}"))
}

/// Whether `s` can be a 019 sender id: 1 to 11 ASCII letters or digits.
pub fn is_source(s: &str) -> bool {
    (1..=11).contains(&s.len()) && s.bytes().all(|b| b.is_ascii_alphanumeric())
}

/// The request body.
fn envelope(username: &str, source: &str, phone: &str, id: &str, message: &str) -> Value {
    json!({
        "sms": {
            "user": {"username": username},
            "source": source,
            "destinations": {"phone": [{"_": phone, "id": id}]},
            "message": message,
        }
    })
}

/// Sends `body` to `path` of the connection's base through the pipeline.
async fn post(
    call: &ProviderCall<'_>,
    path: &str,
    body: &Value,
    safety: Safety,
    answers: &Answers<'_>,
) -> Result<resilience::VendorResponse, CallError> {
    let token = call.secret("token")?;
    let url = format!("{}{path}", call.base_url(DEFAULT_BASE_URL));
    let bytes = serde_json::to_vec(body).map_err(|_| {
        call_failed(
            FailureClassification::Validation,
            "the message could not be encoded",
        )
    })?;
    call.pipeline
        .send(call.call(safety, answers), || {
            call.http
                .post(&url)
                .bearer_auth(token)
                .header(CONTENT_TYPE, "application/json")
                .header(ACCEPT, "application/json")
                .body(bytes.clone())
        })
        .await
}

/// The connection's config, checked when a connection is made (a misspelt, mistyped or
/// malformed setting is a 400 naming it).
#[derive(Debug, serde::Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct NineteenConfig {
    /// The 019 account.
    username: String,
    /// The default sender id.
    source: String,
    /// The kit's `baseUrl` (checked by the kit; read through `ProviderCall::base_url`).
    #[serde(rename = "baseUrl")]
    _base_url: Option<String>,
}

impl integration_kit::ProviderConfig for NineteenConfig {
    fn check(&self) -> Result<(), InputError> {
        if self.username.trim().is_empty() || self.username.len() > 64 {
            return Err(InputError::at(
                "username",
                "must be the 019 account (1 to 64 characters)",
            ));
        }
        if !is_source(&self.source) {
            return Err(InputError::at(
                "source",
                "must be the sender id: 1 to 11 letters or digits",
            ));
        }
        Ok(())
    }
}

#[async_trait]
impl Provider for Nineteen {
    fn key(&self) -> &'static str {
        "019"
    }

    fn credential_kinds(&self) -> &'static [CredentialKind] {
        &[CredentialKind::BearerToken]
    }

    async fn test_connection(&self, call: &ProviderCall<'_>) -> Result<(), CallError> {
        let config: NineteenConfig = call.config_as()?;
        let body = envelope(
            &config.username,
            &config.source,
            PROBE_PHONE,
            "connection-test",
            "connection test",
        );
        // The sandbox sends nothing, so repeating the probe is harmless.
        let answers = Answers::new(call, true);
        let response = post(call, "/api/test", &body, Safety::Safe, &answers).await?;
        read(&response.body)
            .map(|_| ())
            .ok_or_else(|| malformed("019's answer has no status"))
    }

    fn serves(served: &mut integration_kit::Served<Self>) {
        served.operation::<crate::Send>().config::<NineteenConfig>();
    }

    fn polls_receipts(&self) -> bool {
        true
    }

    async fn poll_receipts(
        &self,
        call: &ProviderCall<'_>,
        pending: &[PendingReceipt],
    ) -> Result<Vec<Receipt>, CallError> {
        let config: NineteenConfig = call.config_as()?;
        let username = config.username.as_str();
        let mut receipts = Vec::new();
        for chunk in pending.chunks(dlr::MAX_IDS) {
            let body = dlr::request(username, chunk, chrono::Utc::now());
            let answers = Answers::new(call, false);
            // A report is a read: asking again is harmless.
            let response = post(call, "/api", &body, Safety::Safe, &answers).await?;
            receipts.extend(
                dlr::read(&response.body)
                    .ok_or_else(|| malformed("019's delivery report could not be read"))?,
            );
        }
        Ok(receipts)
    }

    fn receipt_query(&self, credential: &SecretMaterial) -> Option<String> {
        integration_kit::receipt_code_query(credential, "token")
    }

    fn parse_receipts(
        &self,
        credential: &SecretMaterial,
        _config: &ConnectionConfig,
        request: &ReceiptRequest<'_>,
    ) -> Result<Vec<Receipt>, ReceiptError> {
        integration_kit::verify_receipt_code(request, credential, "token")?;
        dlr::read_push(request.body).ok_or_else(|| {
            ReceiptError::Malformed("a 019 delivery report has external_id and status".into())
        })
    }
}

#[async_trait]
impl integration_kit::Serves<crate::Send> for Nineteen {
    async fn execute(
        &self,
        call: &ProviderCall<'_>,
        input: &crate::SendSms,
    ) -> Result<integration_kit::Step<crate::SmsSent>, CallError> {
        let to = input.to.as_str();
        let message = input.body.as_str();
        let phone = local_number(to).ok_or_else(|| {
            call_failed(
                FailureClassification::Validation,
                "019 sends only to Israeli mobile numbers (+9725 and 8 digits)",
            )
        })?;
        if message.chars().count() > MAX_MESSAGE_CHARS {
            return Err(call_failed(
                FailureClassification::Validation,
                format!("019 takes messages of at most {MAX_MESSAGE_CHARS} characters"),
            ));
        }
        let config: NineteenConfig = call.config_as()?;
        let username = config.username.as_str();
        let source = input.from.as_deref().unwrap_or(&config.source);
        if !is_source(source) {
            return Err(call_failed(
                FailureClassification::Validation,
                "019's sender id must be 1 to 11 letters or digits",
            ));
        }
        // Ours, for delivery reports: the run, stable across retries of the run.
        let id = match call.idempotency_key {
            Some(key) => key.to_owned(),
            None => uuid::Uuid::new_v4().simple().to_string(),
        };
        let body = envelope(username, source, &phone, &id, message);
        let answers = Answers::new(call, false);
        let response = post(call, "/api", &body, Safety::Unsafe, &answers).await?;
        let answer = read(&response.body).ok_or_else(|| malformed("019's answer has no status"))?;
        let parts = segments(message);
        let mut extra = vec![("id", json!(id))];
        if let Some(shipment) = answer.shipment_id {
            extra.push(("shipmentId", json!(shipment)));
        }
        // 019 reports delivery by our id, so that is the message id receipts find the run by.
        Ok(super::sent(id.clone(), "accepted", parts, response.attempts, &extra).into())
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use axum::http::Method;

    use super::*;
    use crate::providers::test_support::{
        ATTEMPT_TIMEOUT, FakeVendor, Harness, Perform as _, Recorded, Reply, assert_no_secret,
    };

    const TOKEN: &str = "019-api-t0ken-s3cret";

    fn harness(base: &str) -> Harness {
        Harness::new(
            "019",
            CredentialKind::BearerToken,
            json!({"token": TOKEN}),
            json!({"baseUrl": base, "username": "myuser", "source": "MyBrand"}),
        )
    }

    fn input() -> Value {
        json!({"to": "+972501234567", "body": "Hello"})
    }

    fn status(code: i64, message: &str) -> Reply {
        Reply::json(200, json!({"status": code, "message": message}))
    }

    /// 019's checks: the bearer token (HTTP 200 with status 504 otherwise, as 019 answers
    /// logical errors), the user (503), the body's shape (1, 2), the number (9).
    fn nineteen(request: &Recorded, path: &str) -> Reply {
        if request.method != Method::POST || request.path != path {
            return Reply::text(404, "not found");
        }
        if request.header("authorization") != Some(format!("Bearer {TOKEN}").as_str()) {
            return status(504, "token is not valid");
        }
        if request.header("content-type") != Some("application/json") {
            return status(1, "request could not be parsed");
        }
        let body = request.json();
        let sms = &body["sms"];
        if sms["user"]["username"] != "myuser" {
            return status(503, "username does not exist");
        }
        let (Some(source), Some(_message), Some(phone)) = (
            sms["source"].as_str(),
            sms["message"].as_str(),
            sms["destinations"]["phone"][0]["_"].as_str(),
        ) else {
            return status(2, "a required field is missing");
        };
        if !is_source(source) {
            return status(992, "source is too long or too short");
        }
        if phone.len() != 10 || !phone.starts_with("05") {
            return status(9, "phone number is too short or too long");
        }
        Reply::json(
            200,
            json!({"status": 0, "message": "SMS will be sent", "shipment_id": 123456}),
        )
    }

    /// 019's `dlr` operation over `reports` (our id → DLR status): the token (504), the user
    /// (503), the fields (2), at most 1,000 ids and a week's window (2: which status 019
    /// gives for these is not documented), then one transaction per id it has a report for.
    fn nineteen_dlr(request: &Recorded, reports: &[(&str, i64)]) -> Reply {
        if request.method != Method::POST || request.path != "/api" {
            return Reply::text(404, "not found");
        }
        if request.header("authorization") != Some(format!("Bearer {TOKEN}").as_str()) {
            return status(504, "token is not valid");
        }
        let body = request.json();
        let dlr = &body["dlr"];
        if dlr["user"]["username"] != "myuser" {
            return status(503, "username does not exist");
        }
        let date = |v: &Value| {
            v.as_str()
                .and_then(|s| chrono::NaiveDateTime::parse_from_str(s, "%d/%m/%y %H:%M").ok())
        };
        let (Some(ids), Some(from), Some(to)) = (
            dlr["transactions"]["external_id"].as_array(),
            date(&dlr["from"]),
            date(&dlr["to"]),
        ) else {
            return status(2, "a required field is missing");
        };
        if ids.len() > dlr::MAX_IDS || to - from > chrono::TimeDelta::days(7) || to < from {
            return status(2, "at most 1000 ids and one week");
        }
        let transactions: Vec<Value> = ids
            .iter()
            .filter_map(|id| {
                let id = id.as_str()?;
                let (_, code) = reports.iter().find(|(r, _)| *r == id)?;
                Some(json!({
                    "external_id": id, "status": code, "phone": "0501234567",
                    "date": "27/11/26 12:00", "he_message": "הגיע ליעד", "en_message": "Delivered",
                }))
            })
            .collect();
        Reply::json(
            200,
            json!({"status": 0, "message": "", "transactions": transactions}),
        )
    }

    fn pending(ids: &[&str]) -> Vec<PendingReceipt> {
        ids.iter()
            .map(|id| PendingReceipt {
                message_id: (*id).to_owned(),
                sent_at: chrono::Utc::now() - chrono::TimeDelta::minutes(5),
            })
            .collect()
    }

    #[tokio::test]
    async fn delivery_reports_are_asked_for_by_our_ids() {
        let fake =
            FakeVendor::start(|r, _| nineteen_dlr(r, &[("run-a", 102), ("run-b", 103)])).await;
        let h = harness(&fake.base);
        let got = Nineteen
            .poll_receipts(&h.call(), &pending(&["run-a", "run-b", "run-c"]))
            .await
            .expect("asked");
        assert_eq!(got.len(), 2, "run-c has no report yet: {got:?}");
        assert_eq!(got[0].message_id, "run-a");
        assert_eq!(got[0].state, integration_kit::DeliveryState::Delivered);
        assert_eq!(got[1].message_id, "run-b");
        assert_eq!(got[1].state, integration_kit::DeliveryState::Undelivered);
        let requests = fake.requests();
        assert_eq!(requests.len(), 1);
        assert_eq!(
            requests[0].json()["dlr"]["transactions"]["external_id"],
            json!(["run-a", "run-b", "run-c"])
        );
        assert!(Nineteen.polls_receipts());
    }

    #[tokio::test]
    async fn more_than_a_thousand_pending_messages_take_several_requests() {
        let fake = FakeVendor::start(|r, _| nineteen_dlr(r, &[("m-1500", 0)])).await;
        let h = harness(&fake.base);
        let ids: Vec<String> = (0..1500).map(|i| format!("m-{i}")).collect();
        let ids: Vec<&str> = ids.iter().map(String::as_str).collect();
        let got = Nineteen
            .poll_receipts(&h.call(), &pending(&ids))
            .await
            .expect("asked");
        // m-1500 was never pending; nothing else has a report.
        assert!(got.is_empty(), "{got:?}");
        let sizes: Vec<usize> = fake
            .requests()
            .iter()
            .map(|r| {
                r.json()["dlr"]["transactions"]["external_id"]
                    .as_array()
                    .unwrap()
                    .len()
            })
            .collect();
        assert_eq!(sizes, [1000, 500]);
    }

    #[tokio::test]
    async fn a_refused_report_request_is_classified_and_a_garbled_one_is_malformed() {
        let h = |base: &str| harness(base).attempts(2);
        // A bad token: HTTP 200 with status 504.
        let fake = FakeVendor::start(|_, _| status(504, "token is not valid")).await;
        let e = Nineteen
            .poll_receipts(&h(&fake.base).call(), &pending(&["a"]))
            .await
            .unwrap_err();
        assert_eq!(e.class(), FailureClassification::Auth);
        // Throttled: retried after the hint, then answered.
        let fake = FakeVendor::start(|_, n| {
            if n == 1 {
                Reply::json(429, json!({"status": 429})).header("retry-after", "0")
            } else {
                Reply::json(
                    200,
                    json!({"status": 0, "transactions": [{"external_id": "a", "status": 0}]}),
                )
            }
        })
        .await;
        let got = Nineteen
            .poll_receipts(&h(&fake.base).call(), &pending(&["a"]))
            .await
            .expect("answered after the 429");
        assert_eq!(got.len(), 1);
        assert_eq!(fake.requests().len(), 2);
        // A 200 that is not a report.
        let fake = FakeVendor::start(|_, _| Reply::text(200, "<html>maintenance</html>")).await;
        let e = Nineteen
            .poll_receipts(&h(&fake.base).call(), &pending(&["a"]))
            .await
            .unwrap_err();
        assert_eq!(e.class(), FailureClassification::VendorError);
        assert!(
            e.failure.message.contains("malformed"),
            "{}",
            e.failure.message
        );
    }

    #[test]
    fn pushed_reports_need_the_code_derived_from_the_token() {
        let credential = harness("http://unused").credential;
        let query = Nineteen.receipt_query(&credential).expect("a code");
        let headers = HeaderMap::new();
        let body = b"external_id=run-1&status=102&en_message=Delivered";
        let url = format!("https://sms.example/api/integrations/receipts/t/c?{query}");
        let request = ReceiptRequest {
            url: &url,
            headers: &headers,
            body,
        };
        let config = ConnectionConfig::default();
        let got = Nineteen
            .parse_receipts(&credential, &config, &request)
            .expect("a verified push");
        assert_eq!(got[0].message_id, "run-1");
        assert_eq!(got[0].state, integration_kit::DeliveryState::Delivered);
        for url in [
            "https://sms.example/api/integrations/receipts/t/c".to_owned(),
            "https://sms.example/api/integrations/receipts/t/c?code=guess".to_owned(),
            format!("https://sms.example/api/integrations/receipts/t/c?{query}x"),
        ] {
            let request = ReceiptRequest {
                url: &url,
                headers: &headers,
                body,
            };
            assert_eq!(
                Nineteen.parse_receipts(&credential, &config, &request),
                Err(ReceiptError::Unauthorized),
                "{url}"
            );
        }
        let request = ReceiptRequest {
            url: &url,
            headers: &headers,
            body: b"status=102",
        };
        assert!(matches!(
            Nineteen.parse_receipts(&credential, &config, &request),
            Err(ReceiptError::Malformed(_))
        ));
    }

    #[tokio::test]
    async fn sends_json_with_the_local_number_and_our_id() {
        let fake = FakeVendor::start(|r, _| nineteen(r, "/api")).await;
        let h = harness(&fake.base);
        let out = Nineteen.perform(&h.call(), &input()).await.expect("sent");
        // 019's delivery reports are keyed by our id, not by its shipment id.
        assert_eq!(
            out.vendor_message_id.as_deref(),
            Some(h.idempotency_key.as_deref().unwrap())
        );
        assert_eq!(out.summary["shipmentId"], "123456");
        assert_eq!(out.summary["status"], "accepted");
        assert_eq!(out.summary["id"], h.idempotency_key.as_deref().unwrap());
        assert_eq!(out.usage.units, 1);
        let requests = fake.requests();
        assert_eq!(requests.len(), 1);
        assert_eq!(
            requests[0].json(),
            json!({"sms": {
                "user": {"username": "myuser"},
                "source": "MyBrand",
                "destinations": {"phone": [{"_": "0501234567", "id": h.idempotency_key.as_deref().unwrap()}]},
                "message": "Hello",
            }})
        );
    }

    #[tokio::test]
    async fn without_a_shipment_id_the_message_id_is_ours_and_from_replaces_source() {
        let fake = FakeVendor::start(|r, _| {
            if r.json()["sms"]["source"] == "Other1" {
                // Accepted, in the `sms` wrapper and with a string status, as some answers
                // are, and without a shipment id.
                Reply::json(200, json!({"sms": {"status": "0", "message": "ok"}}))
            } else {
                nineteen(r, "/api")
            }
        })
        .await;
        let h = harness(&fake.base);
        let mut send = input();
        send["from"] = json!("Other1");
        let out = Nineteen.perform(&h.call(), &send).await.expect("sent");
        assert_eq!(
            out.vendor_message_id.as_deref(),
            Some(h.idempotency_key.as_deref().unwrap())
        );
        // A Hebrew body counts UCS-2 segments.
        let mut long = input();
        long["body"] = json!("ש".repeat(71));
        let out = Nineteen.perform(&h.call(), &long).await.expect("sent");
        assert_eq!(out.usage.units, 2);
    }

    #[tokio::test]
    async fn a_200_with_a_non_zero_status_is_a_failure() {
        let fake =
            FakeVendor::start(|_, _| status(9, "phone number is too short or too long")).await;
        let h = harness(&fake.base).attempts(3);
        let e = Nineteen
            .perform(&h.call(), &input())
            .await
            .expect_err("refused");
        assert_eq!(e.class(), FailureClassification::Validation);
        assert_eq!(e.failure.vendor_status, Some(200));
        assert_eq!(e.failure.vendor_code.as_deref(), Some("9"));
        assert_eq!(e.failure.retry_after, None);
        assert!(
            e.failure.message.contains("too short"),
            "{}",
            e.failure.message
        );
        assert!(!e.retryable);
        assert_eq!(fake.requests().len(), 1);
        assert_no_secret(&e, &[TOKEN]);
    }

    #[tokio::test]
    async fn a_rejected_token_is_an_auth_failure_even_on_200() {
        let fake = FakeVendor::start(|r, _| nineteen(r, "/api")).await;
        let mut h = harness(&fake.base);
        h.credential = custody::SecretMaterial::new(
            CredentialKind::BearerToken,
            json!({"token": "wrong-t0ken"})
                .as_object()
                .cloned()
                .unwrap_or_default(),
        )
        .expect("credential");
        let e = Nineteen
            .perform(&h.call(), &input())
            .await
            .expect_err("refused");
        assert_eq!(e.class(), FailureClassification::Auth);
        assert_eq!(e.failure.vendor_status, Some(200));
        assert_eq!(e.failure.vendor_code.as_deref(), Some("504"));
        assert!(!e.retryable);
        assert_no_secret(&e, &["wrong-t0ken", TOKEN]);
    }

    #[tokio::test]
    async fn an_http_401_that_echoes_the_token_is_auth_and_masked() {
        let fake = FakeVendor::start(|r, _| {
            let sent = r.header("authorization").unwrap_or_default().to_owned();
            Reply::json(
                401,
                json!({"status": 504, "message": format!("token {} is not valid", sent.trim_start_matches("Bearer "))}),
            )
        })
        .await;
        let h = harness(&fake.base);
        let e = Nineteen
            .perform(&h.call(), &input())
            .await
            .expect_err("refused");
        assert_eq!(e.class(), FailureClassification::Auth);
        assert_eq!(e.failure.vendor_status, Some(401));
        assert_eq!(e.failure.vendor_code.as_deref(), Some("504"));
        assert!(
            e.failure.message.contains("is not valid"),
            "{}",
            e.failure.message
        );
        assert_no_secret(&e, &[TOKEN]);
    }

    #[tokio::test]
    async fn a_non_israeli_number_is_refused_before_calling() {
        let fake = FakeVendor::start(|r, _| nineteen(r, "/api")).await;
        let h = harness(&fake.base);
        for to in ["+15005550006", "+97221234567", "+9725012345678"] {
            let e = Nineteen
                .perform(&h.call(), &json!({"to": to, "body": "Hello"}))
                .await
                .expect_err("refused");
            assert_eq!(e.class(), FailureClassification::Validation, "{to}");
            assert_eq!(e.attempts, 0);
        }
        let e = Nineteen
            .perform(
                &h.call(),
                &json!({"to": "+972501234567", "body": "x".repeat(1006)}),
            )
            .await
            .expect_err("too long");
        assert_eq!(e.class(), FailureClassification::Validation);
        assert!(fake.requests().is_empty());
    }

    #[tokio::test]
    async fn throttling_is_rate_limited_with_the_retry_after_hint() {
        let fake =
            FakeVendor::start(|_, _| Reply::text(429, "slow down").header("retry-after", "3"))
                .await;
        let h = harness(&fake.base);
        let e = Nineteen
            .perform(&h.call(), &input())
            .await
            .expect_err("throttled");
        assert_eq!(e.class(), FailureClassification::RateLimited);
        assert_eq!(e.failure.vendor_status, Some(429));
        assert_eq!(e.failure.vendor_code, None);
        assert_eq!(e.failure.retry_after, Some(Duration::from_secs(3)));
        assert!(e.retryable);
        assert_no_secret(&e, &[TOKEN]);
    }

    #[tokio::test]
    async fn a_server_error_is_transient_and_never_repeated() {
        let fake = FakeVendor::start(|_, _| Reply::text(502, "bad gateway")).await;
        let h = harness(&fake.base).attempts(3);
        let e = Nineteen
            .perform(&h.call(), &input())
            .await
            .expect_err("down");
        assert_eq!(e.class(), FailureClassification::Transient);
        assert_eq!(e.failure.vendor_status, Some(502));
        assert!(!e.retryable);
        assert_eq!(fake.requests().len(), 1);
        assert_no_secret(&e, &[TOKEN]);
    }

    #[tokio::test]
    async fn a_slow_answer_times_out() {
        let fake = FakeVendor::start(|r, _| nineteen(r, "/api").after(ATTEMPT_TIMEOUT * 6)).await;
        let h = harness(&fake.base);
        let e = Nineteen
            .perform(&h.call(), &input())
            .await
            .expect_err("timed out");
        assert_eq!(e.class(), FailureClassification::Timeout);
        assert_eq!(e.failure.vendor_status, None);
        assert!(!e.retryable);
    }

    #[tokio::test]
    async fn a_garbled_success_is_malformed() {
        let fake = FakeVendor::start(|_, _| Reply::text(200, "<html>maintenance</html>")).await;
        let h = harness(&fake.base);
        let e = Nineteen
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
    async fn the_connection_test_sends_to_the_sandbox() {
        let fake = FakeVendor::start(|r, _| nineteen(r, "/api/test")).await;
        let mut h = harness(&fake.base);
        Nineteen
            .test_connection(&h.call())
            .await
            .expect("the sandbox accepts");
        let probe = &fake.requests()[0];
        assert_eq!(probe.path, "/api/test");
        assert_eq!(
            probe.json()["sms"]["destinations"]["phone"][0]["_"],
            PROBE_PHONE
        );

        h.credential = custody::SecretMaterial::new(
            CredentialKind::BearerToken,
            json!({"token": "wrong-t0ken"})
                .as_object()
                .cloned()
                .unwrap_or_default(),
        )
        .expect("credential");
        let e = Nineteen
            .test_connection(&h.call())
            .await
            .expect_err("refused");
        assert_eq!(e.class(), FailureClassification::Auth);
        assert_eq!(e.failure.vendor_code.as_deref(), Some("504"));
        assert_no_secret(&e, &["wrong-t0ken"]);
    }

    #[tokio::test]
    async fn the_sandbox_refusing_only_the_placeholder_passes_the_test() {
        let fake = FakeVendor::start(|_, _| status(9, "phone number is not valid")).await;
        let h = harness(&fake.base);
        Nineteen
            .test_connection(&h.call())
            .await
            .expect("the token was accepted");
        let fake = FakeVendor::start(|_, _| status(515, "source is not verified")).await;
        let h = harness(&fake.base);
        let e = Nineteen
            .test_connection(&h.call())
            .await
            .expect_err("the source is refused");
        assert_eq!(e.class(), FailureClassification::Validation);
    }

    #[tokio::test]
    async fn calls_go_through_the_guarded_client() {
        let fake = FakeVendor::start(|r, _| nineteen(r, "/api")).await;
        let h = harness(&fake.base).strict_guard();
        let e = Nineteen
            .perform(&h.call(), &input())
            .await
            .expect_err("localhost is internal");
        assert_eq!(e.class(), FailureClassification::Validation);
        assert_eq!(e.failure.vendor_code.as_deref(), Some("url_refused"));
        assert!(fake.requests().is_empty());
    }

    #[test]
    fn numbers_sources_and_config() {
        assert_eq!(local_number("+972501234567").as_deref(), Some("0501234567"));
        assert_eq!(local_number("+972541234567").as_deref(), Some("0541234567"));
        assert_eq!(local_number("+97221234567"), None);
        assert_eq!(local_number("+14155550100"), None);
        assert!(is_source("MyBrand"));
        assert!(is_source("0501234567"));
        assert!(!is_source("TwelveChars1"));
        assert!(!is_source("My Brand"));
        assert!(!is_source("+972501234"));
        let check = |v: Value| {
            integration_kit::config_of::<NineteenConfig>(v.as_object().expect("object"))
                .map(drop)
                .map_err(|e| e.path)
        };
        assert!(check(json!({"username": "u", "source": "MyBrand"})).is_ok());
        assert_eq!(check(json!({"source": "MyBrand"})).unwrap_err(), "");
        assert_eq!(check(json!({"username": "u"})).unwrap_err(), "");
        assert_eq!(
            check(json!({"username": "u", "source": "My-Brand"})).unwrap_err(),
            "source"
        );
        assert_eq!(
            check(json!({"username": " ", "source": "MyBrand"})).unwrap_err(),
            "username"
        );
        assert_eq!(status_class(504), FailureClassification::Auth);
        assert_eq!(status_class(4), FailureClassification::Unprocessable);
        assert_eq!(status_class(6), FailureClassification::Transient);
        assert_eq!(status_class(12345), FailureClassification::VendorError);
    }

    /// 019 in its documented shapes (logical errors as HTTP 200 with a status), for the
    /// kit's conformance suite.
    struct NineteenScript;

    impl integration_kit::testing::VendorScript for NineteenScript {
        fn reply(
            &self,
            case: integration_kit::testing::Case,
            request: &Recorded,
        ) -> Result<Reply, &'static str> {
            use integration_kit::testing::{Case, THROTTLE_SECS};
            Ok(match case {
                Case::Success => nineteen(request, "/api"),
                Case::Invalid => status(9, "phone number is too short or too long"),
                Case::Unauthorized => status(504, "token is not valid"),
                Case::Throttled => {
                    Reply::text(429, "slow down").header("retry-after", &THROTTLE_SECS.to_string())
                }
                Case::ServerError => Reply::text(502, "bad gateway"),
                Case::Malformed => Reply::text(200, "<html>maintenance</html>"),
            })
        }
    }

    #[tokio::test]
    async fn conforms_to_the_provider_suite() {
        let skipped = integration_kit::testing::conformance::<crate::Send, _, _>(
            &Nineteen,
            NineteenScript,
            harness,
            input(),
            &[TOKEN],
            false,
        )
        .await;
        assert!(skipped.is_empty(), "{skipped:?}");
    }
}
