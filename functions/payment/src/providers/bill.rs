//! The `bill` provider: BILL's v3 AP API (production `https://gateway.prod.bill.com/connect`,
//! the sandbox `https://gateway.stage.bill.com/connect`; config `baseUrl`), paying a
//! vendor's bill and reading the payment.
//!
//! What each call relies on, from BILL's developer documentation:
//! - **Sign-in.** `POST /v3/login` with `username`, `password`, `organizationId` and
//!   `devKey` (and `rememberMeId` + `device` for an MFA-trusted session, which creating a
//!   payment requires) answers `sessionId`. Sessions end after 35 idle minutes. The session is
//!   kept per connection and credential in the kit's token cache for 30 minutes (signed in
//!   again before that runs out, one sign-in for concurrent callers); when BILL answers
//!   `BDC_1109` ("Session is invalid") the session is dropped and the call made once more
//!   with a fresh one. Every later call sends `devKey` and `sessionId` headers.
//! - **`payBill`.** `POST /v3/payments` with `billId`, `vendorId`, `amount` (dollars, two
//!   decimals), `processDate`, `description` (at most 70 characters; the run's id when the
//!   caller gives none) and `fundingAccount {type, id}` from the connection's config; the
//!   answer's `id` (`stp…`). BILL documents no idempotency key for payments, so the write is
//!   never repeated once BILL may have taken it (an unanswered attempt fails the run for a
//!   person to look, rather than risking a second payment).
//! - **`getPayment`.** `GET /v3/payments/{id}`. Its `singleStatus` (else `status`) reads as:
//!   `SCHEDULED`, `FUNDING_STARTED`, `PROCESSED`, `SENT` → `processing`; `DELIVERED`,
//!   `CLEARED` (or `PAID`) → `succeeded`; `CANCELED`, `VOIDED`, `FUNDING_FAILED_VOIDED`,
//!   `FUNDS_ESCHEATED` (or `VOID`, `CANCELLED`, `FAILED`) → `canceled`; the `…_FAILED_…` and
//!   `…_ON_HOLD` states that need someone → `requires_action`.
//! - **Errors** are a list `[{timestamp, code, severity, category, message}]` with a 4xx or
//!   5xx status; the first code (`BDC_…`) is the vendor code. `BDC_1109` (session),
//!   `BDC_1101` (user name or password) and `BDC_1102` (developer key) are `auth`;
//!   `BDC_1144` (20,000 requests an hour) and `BDC_1322` (three concurrent requests per
//!   organization) are `rate_limited`; BILL says no wait, so the pipeline's backoff decides.
//! - **Webhooks** (the gateway's `bill` scheme): `payment.updated` and `payment.failed`
//!   name the payment in `payment.id`; each asks the app to look at it again.
//!
//! Credential: `basic` with `username`, `password`, `apiKey` (the developer key) and, for
//! payments, `rememberMeId`. The connection test signs in.

use std::time::Duration;

use async_trait::async_trait;
use chrono::Utc;
use domain::{CredentialKind, FailureClassification};
use integration_kit::{
    AccessToken, Done, InputError, JsonCall, Provider, ProviderCall, Served, Serves, Step,
    VendorAnswers, VendorWebhook, WebhookEffect, malformed,
};
use reqwest::Method;
use resilience::{CallError, Safety};
use secrecy::{ExposeSecret as _, SecretString};
use serde_json::{Value, json};

use crate::{GetPayment, PayBill, Payment, PaymentCreated, PaymentRef, PaymentStatus};

pub const DEFAULT_BASE_URL: &str = "https://gateway.prod.bill.com/connect";
/// How long a session is used: BILL ends it after 35 idle minutes.
const SESSION_FOR: Duration = Duration::from_secs(30 * 60);
const SESSION_INVALID: &str = "BDC_1109";

pub struct Bill;

/// Where payments are funded from.
#[derive(Debug, Clone, serde::Deserialize, serde::Serialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct FundingAccount {
    /// `BANK_ACCOUNT`, `CARD_ACCOUNT`, `WALLET` or `AP_CARD`.
    #[serde(rename = "type")]
    kind: String,
    /// Its BILL id (none for `WALLET`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    id: Option<String>,
}

#[derive(Debug, serde::Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct BillConfig {
    #[serde(default, rename = "baseUrl")]
    _base_url: Option<String>,
    /// The organization (`008…`).
    organization_id: String,
    funding_account: FundingAccount,
    /// The device name of an MFA-trusted session (with the credential's `rememberMeId`).
    #[serde(default)]
    device: Option<String>,
}

impl integration_kit::ProviderConfig for BillConfig {
    fn check(&self) -> Result<(), InputError> {
        let id = &self.organization_id;
        if !id.starts_with("008") || id.len() > 40 || !id.bytes().all(|b| b.is_ascii_alphanumeric())
        {
            return Err(InputError::at(
                "organizationId",
                "must be a BILL organization id (letters and digits, beginning 008)",
            ));
        }
        let account = &self.funding_account;
        if !["BANK_ACCOUNT", "CARD_ACCOUNT", "WALLET", "AP_CARD"].contains(&account.kind.as_str()) {
            return Err(InputError::at(
                "fundingAccount/type",
                "must be BANK_ACCOUNT, CARD_ACCOUNT, WALLET or AP_CARD",
            ));
        }
        if account.kind != "WALLET" && account.id.as_deref().is_none_or(str::is_empty) {
            return Err(InputError::at(
                "fundingAccount/id",
                "is required unless the type is WALLET",
            ));
        }
        Ok(())
    }
}

/// BILL's answers: the status decides, then the first error's code refines it.
fn answers<'s>(
    call: &'s ProviderCall<'_>,
) -> VendorAnswers<
    's,
    impl Fn(&mut resilience::VendorFailure, &integration_kit::Answer<'_>) -> String + Send + Sync,
> {
    VendorAnswers::new(
        "bill",
        call.credential.values().collect(),
        |failure, answer| {
            let first = &answer.error[0];
            let code = first["code"].as_str();
            match code {
                Some("BDC_1109" | "BDC_1101" | "BDC_1102") => {
                    failure.class = FailureClassification::Auth
                }
                Some("BDC_1144" | "BDC_1322") => failure.class = FailureClassification::RateLimited,
                _ => {}
            }
            failure.vendor_code = code.map(str::to_owned);
            first["message"].as_str().unwrap_or_default().to_owned()
        },
    )
}

/// Signs in: a new session.
async fn sign_in(call: &ProviderCall<'_>) -> Result<AccessToken, CallError> {
    let config: BillConfig = call.config_as()?;
    let mut body = json!({
        "username": call.secret("username")?,
        "password": call.secret("password")?,
        "organizationId": config.organization_id,
        "devKey": call.secret("apiKey")?,
    });
    if let (Ok(remember), Some(device)) = (call.secret("rememberMeId"), &config.device) {
        body["rememberMeId"] = json!(remember);
        body["device"] = json!(device);
    }
    let url = format!("{}/v3/login", call.base_url(DEFAULT_BASE_URL));
    let answer = call
        .json(
            JsonCall {
                method: Method::POST,
                url: &url,
                authorization: None,
                headers: &[],
                body: Some(&body),
                // Signing in twice is harmless.
                safety: Safety::Idempotent,
            },
            &answers(call),
        )
        .await?;
    let session = answer["sessionId"]
        .as_str()
        .filter(|s| !s.is_empty())
        .ok_or_else(|| malformed("the sign-in answer has no sessionId"))?;
    Ok(AccessToken {
        token: SecretString::from(session.to_owned()),
        expires_at: Utc::now() + chrono::TimeDelta::from_std(SESSION_FOR).unwrap_or_default(),
    })
}

/// One call with the connection's session; signed in again once when BILL says the session
/// is no longer valid.
async fn request(
    call: &ProviderCall<'_>,
    method: Method,
    path: &str,
    body: Option<&Value>,
    safety: Safety,
) -> Result<Value, CallError> {
    let url = format!("{}{path}", call.base_url(DEFAULT_BASE_URL));
    let dev_key = call.secret("apiKey")?;
    let mut fresh = false;
    loop {
        let session = call.access_token(|| sign_in(call)).await?;
        let sent = call
            .json(
                JsonCall {
                    method: method.clone(),
                    url: &url,
                    authorization: None,
                    headers: &[
                        ("devKey", dev_key),
                        ("sessionId", session.token.expose_secret()),
                    ],
                    body,
                    safety,
                },
                &answers(call),
            )
            .await;
        match sent {
            Err(e) if !fresh && e.failure.vendor_code.as_deref() == Some(SESSION_INVALID) => {
                call.drop_access_token().await;
                fresh = true;
            }
            other => return other,
        }
    }
}

/// Dollars with two decimals, from minor units.
fn dollars(cents: u64) -> Value {
    serde_json::Number::from_f64(cents as f64 / 100.0)
        .map(Value::Number)
        .unwrap_or(Value::Null)
}

/// Minor units, from BILL's dollars.
fn cents(amount: &Value) -> Option<u64> {
    let dollars = amount.as_f64()?;
    (dollars >= 0.0).then(|| (dollars * 100.0).round() as u64)
}

/// A BILL payment, normalised.
pub(crate) fn read_payment(p: &Value) -> Result<Payment, CallError> {
    let id = p["id"]
        .as_str()
        .ok_or_else(|| malformed("the payment has no id"))?;
    let word = p["singleStatus"]
        .as_str()
        .or_else(|| p["status"].as_str())
        .ok_or_else(|| malformed("the payment has no status"))?;
    let status = match word {
        "SCHEDULED" | "FUNDING_STARTED" | "PROCESSED" | "SENT" | "PENDING" | "APPROVING"
        | "IN_PROCESS" => PaymentStatus::Processing,
        "DELIVERED" | "CLEARED" | "PAID" => PaymentStatus::Succeeded,
        "CANCELED"
        | "CANCELLED"
        | "VOIDED"
        | "VOID"
        | "FAILED"
        | "FUNDING_FAILED_VOIDED"
        | "FUNDS_ESCHEATED" => PaymentStatus::Canceled,
        "DISBURSEMENT_ON_HOLD"
        | "DISBURSEMENT_FAILED_ACTION_NEEDED"
        | "DISBURSEMENT_FAILED_VENDOR_BANK_REJECTED"
        | "FUNDING_FAILED_ACTION_NEEDED" => PaymentStatus::RequiresAction,
        other => return Err(malformed(&format!("an unknown payment status {other:?}"))),
    };
    let amount = cents(&p["amount"]).ok_or_else(|| malformed("the payment has no amount"))?;
    Ok(Payment {
        payment_id: id.to_owned(),
        status,
        processor_status: word.to_owned(),
        amount,
        amount_received: if status == PaymentStatus::Succeeded {
            amount
        } else {
            0
        },
        amount_refunded: 0,
        // BILL pays vendors in US dollars.
        currency: "usd".into(),
    })
}

#[async_trait]
impl Provider for Bill {
    fn key(&self) -> &'static str {
        "bill"
    }

    fn credential_kinds(&self) -> &'static [CredentialKind] {
        &[CredentialKind::Basic]
    }

    /// Signs in (and keeps the session for the calls that follow).
    async fn test_connection(&self, call: &ProviderCall<'_>) -> Result<(), CallError> {
        call.secret("apiKey").map_err(|_| {
            integration_kit::call_failed(
                FailureClassification::Validation,
                "a bill credential needs apiKey (the developer key)",
            )
        })?;
        call.drop_access_token().await;
        call.access_token(|| sign_in(call)).await.map(|_| ())
    }

    fn serves(served: &mut Served<Self>) {
        served
            .operation::<PayBill>()
            .operation::<GetPayment>()
            .config::<BillConfig>();
    }

    fn webhook(&self, webhook: &VendorWebhook<'_>) -> Result<Vec<WebhookEffect>, String> {
        let event: Value =
            serde_json::from_slice(webhook.body).map_err(|e| format!("not JSON: {e}"))?;
        let kind = event["metadata"]["eventType"].as_str().unwrap_or_default();
        if !kind.starts_with("payment.") {
            return Ok(Vec::new());
        }
        Ok(event["payment"]["id"]
            .as_str()
            .filter(|id| crate::ProcessorId::try_from((*id).to_owned()).is_ok())
            .map(|id| WebhookEffect::Reconcile {
                record_id: id.to_owned(),
            })
            .into_iter()
            .collect())
    }
}

#[async_trait]
impl Serves<PayBill> for Bill {
    async fn execute(
        &self,
        call: &ProviderCall<'_>,
        input: &crate::BillPayment,
    ) -> Result<Step<PaymentCreated>, CallError> {
        let config: BillConfig = call.config_as()?;
        let description = input
            .description
            .clone()
            .or_else(|| call.idempotency_key.map(|run| format!("run {run}")))
            .map(|d| d.chars().take(70).collect::<String>());
        let mut body = json!({
            "billId": input.bill_id.as_str(),
            "amount": dollars(input.amount),
            "fundingAccount": config.funding_account,
        });
        if let Some(vendor) = &input.vendor_id {
            body["vendorId"] = json!(vendor.as_str());
        }
        if let Some(date) = input.process_date {
            body["processDate"] = json!(date.format("%Y-%m-%d").to_string());
        }
        if let Some(d) = description {
            body["description"] = json!(d);
        }
        let answer = request(
            call,
            Method::POST,
            "/v3/payments",
            Some(&body),
            Safety::Unsafe,
        )
        .await?;
        let payment = read_payment(&answer)?;
        let mut done = Done::new(PaymentCreated {
            payment_id: payment.payment_id.clone(),
            status: payment.status,
            client_secret: None,
        })
        .vendor_message_id(payment.payment_id.clone());
        if let Some((id, record)) = crate::payments::created_record(
            "bill",
            call.idempotency_key,
            &payment,
            input.amount,
            &input.currency,
        ) {
            done = done.create(id, record).reconcile_after(Duration::ZERO);
        }
        Ok(done.into())
    }
}

#[async_trait]
impl Serves<GetPayment> for Bill {
    async fn execute(
        &self,
        call: &ProviderCall<'_>,
        input: &PaymentRef,
    ) -> Result<Step<Payment>, CallError> {
        let path = format!("/v3/payments/{}", input.payment_id);
        let answer = request(call, Method::GET, &path, None, Safety::Safe).await?;
        let payment = read_payment(&answer)?;
        let id = payment.payment_id.clone();
        Ok(Done::new(payment).vendor_message_id(id).into())
    }
}

#[cfg(test)]
mod tests;
