//! The `stripe` provider: Stripe's PaymentIntents API (`https://api.stripe.com/v1`), form
//! encoded, with the API version the account defaults to unless the connection pins one
//! (`apiVersion`, sent as `Stripe-Version`).
//!
//! What each call relies on, from Stripe's reference:
//! - Writes carry `Idempotency-Key` = the run's id: Stripe saves the first answer of a key
//!   (errors included) and answers a repeat with it, so a retried run never creates, captures
//!   or refunds twice; the same key with other parameters is refused (`idempotency_error`).
//! - `createPayment`: `POST /v1/payment_intents` with `amount`, `currency`,
//!   `automatic_payment_methods[enabled]=true`, `capture_method`, `customer`,
//!   `description`, `metadata[…]` and `metadata[run_id]`; the answer's `id` (`pi_…`),
//!   `status` and `client_secret`.
//! - `capturePayment`: `POST /v1/payment_intents/{id}/capture` (`amount_to_capture`).
//! - `refundPayment`: `POST /v1/refunds` (`payment_intent`, `amount`, `metadata[run_id]`).
//! - `getPayment`: `GET /v1/payment_intents/{id}?expand[]=latest_charge`: the charge says
//!   what was refunded (`amount_refunded`, `refunded`) and whether it is `disputed`.
//! - Statuses: `requires_payment_method` / `requires_confirmation` / `requires_action` →
//!   `requires_action`; `processing`; `requires_capture`; `canceled`; `succeeded`, refined
//!   by the charge into `partially_refunded`, `refunded` or `disputed`.
//! - Errors are `{"error": {type, code, decline_code, message, param}}`: 402 (a card
//!   declined) is `unprocessable`, 400/404/409 refusals, 401/403 `auth`, 429 (`rate_limit`,
//!   `lock_timeout`) a rate limit; a 5xx is retried unless `Stripe-Should-Retry: false` (Stripe
//!   saved that answer under the key, so a repeat would only replay it). The code (or the
//!   decline code) is the vendor code; the message and parameter go into the failure.
//!
//! - Webhooks (the gateway's `stripe` scheme, routed here): an event about a PaymentIntent,
//!   or a charge, refund or dispute naming one in `payment_intent`, asks for a look at
//!   that payment (fetched again; see [`crate::payments`]).
//!
//! Credential: `apiKey` or `bearerToken`, a secret or restricted key (`sk_…`, `rk_…`), sent as
//! `Authorization: Bearer`. The connection test is `GET /v1/balance`.

use std::time::Duration;

use async_trait::async_trait;
use domain::{CredentialKind, FailureClassification};
use integration_kit::{
    Answer, Done, InputError, Provider, ProviderCall, Served, Serves, Step, VendorAnswers,
    VendorWebhook, WebhookEffect, malformed,
};
use reqwest::Method;
use reqwest::header::ACCEPT;
use resilience::{CallError, Safety, VendorFailure};
use serde_json::Value;

use crate::{
    Capture, CapturePayment, CreatePayment, GetPayment, NewPayment, Payment, PaymentAmount,
    PaymentCreated, PaymentRef, PaymentStatus, Refund, RefundPayment,
};

pub const DEFAULT_BASE_URL: &str = "https://api.stripe.com";

pub struct Stripe;

#[derive(Debug, serde::Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct StripeConfig {
    #[serde(default, rename = "baseUrl")]
    _base_url: Option<String>,
    /// A pinned API version (`2024-06-20`), else the account's default.
    #[serde(default)]
    api_version: Option<String>,
}

impl integration_kit::ProviderConfig for StripeConfig {
    fn check(&self) -> Result<(), InputError> {
        if let Some(v) = &self.api_version {
            let date = v.split('.').next().unwrap_or_default();
            if chrono::NaiveDate::parse_from_str(date, "%Y-%m-%d").is_err() {
                return Err(InputError::at(
                    "apiVersion",
                    "must be a Stripe API version (2024-06-20)",
                ));
            }
        }
        Ok(())
    }
}

#[async_trait]
impl Provider for Stripe {
    fn key(&self) -> &'static str {
        "stripe"
    }

    fn credential_kinds(&self) -> &'static [CredentialKind] {
        &[CredentialKind::ApiKey, CredentialKind::BearerToken]
    }

    /// `GET /v1/balance`: the key is live and may read the account.
    async fn test_connection(&self, call: &ProviderCall<'_>) -> Result<(), CallError> {
        let balance = request(call, Method::GET, "/v1/balance", &[], Safety::Safe).await?;
        if balance["object"] != "balance" {
            return Err(malformed("the balance is not a balance"));
        }
        Ok(())
    }

    fn serves(served: &mut Served<Self>) {
        served
            .operation::<CreatePayment>()
            .operation::<CapturePayment>()
            .operation::<RefundPayment>()
            .operation::<GetPayment>()
            .config::<StripeConfig>();
    }

    fn webhook(&self, webhook: &VendorWebhook<'_>) -> Result<Vec<WebhookEffect>, String> {
        callback_effects(webhook.body)
    }
}

/// What a Stripe event (`{id, type, data: {object}}`) asks of the payment app: a look at
/// the PaymentIntent it is about (a payment intent's own event, or a charge's, refund's or
/// dispute's, which name theirs in `payment_intent`). The event's content is not applied:
/// the payment is fetched and its state trusted, whatever order the events come in.
pub(crate) fn callback_effects(body: &[u8]) -> Result<Vec<WebhookEffect>, String> {
    let event: Value = serde_json::from_slice(body).map_err(|e| format!("not JSON: {e}"))?;
    let object = &event["data"]["object"];
    let intent = match object["object"].as_str() {
        Some("payment_intent") => object["id"].as_str(),
        Some("charge" | "refund" | "dispute") => object["payment_intent"].as_str(),
        _ => None,
    };
    Ok(intent
        .filter(|id| crate::ProcessorId::try_from((*id).to_owned()).is_ok())
        .map(|id| WebhookEffect::Reconcile {
            record_id: id.to_owned(),
        })
        .into_iter()
        .collect())
}

/// The run's id in the payment's metadata, and the form field pairs of `metadata`.
fn metadata_fields(call: &ProviderCall<'_>, metadata: &crate::Metadata) -> Vec<(String, String)> {
    let mut fields: Vec<(String, String)> = metadata
        .iter()
        .map(|(k, v)| (format!("metadata[{k}]"), v.clone()))
        .collect();
    if let Some(run) = call.idempotency_key {
        fields.push(("metadata[run_id]".into(), run.to_owned()));
    }
    fields
}

/// A write with the run's key: Stripe replays its first answer to a repeat.
fn write_safety(call: &ProviderCall<'_>) -> Safety {
    if call.idempotency_key.is_some() {
        Safety::Idempotent
    } else {
        Safety::Unsafe
    }
}

#[async_trait]
impl Serves<CreatePayment> for Stripe {
    async fn execute(
        &self,
        call: &ProviderCall<'_>,
        input: &NewPayment,
    ) -> Result<Step<PaymentCreated>, CallError> {
        let mut form = vec![
            ("amount".to_owned(), input.amount.to_string()),
            ("currency".to_owned(), input.currency.to_ascii_lowercase()),
            (
                "automatic_payment_methods[enabled]".to_owned(),
                "true".to_owned(),
            ),
            (
                "capture_method".to_owned(),
                match input.capture {
                    Capture::Automatic => "automatic",
                    Capture::Manual => "manual",
                }
                .to_owned(),
            ),
        ];
        if let Some(customer) = &input.customer {
            form.push(("customer".into(), customer.to_string()));
        }
        if let Some(description) = &input.description {
            form.push(("description".into(), description.clone()));
        }
        form.extend(metadata_fields(call, &input.metadata));
        let intent = request(
            call,
            Method::POST,
            "/v1/payment_intents",
            &form,
            write_safety(call),
        )
        .await?;
        let payment = read_intent(&intent)?;
        let created = PaymentCreated {
            payment_id: payment.payment_id.clone(),
            status: payment.status,
            client_secret: intent["client_secret"].as_str().map(str::to_owned),
        };
        // The summary (events, listings) never carries the client secret.
        let mut done = Done::new(created).vendor_message_id(payment.payment_id.clone());
        if let Some((id, record)) = crate::payments::created_record(
            "stripe",
            call.idempotency_key,
            &payment,
            input.amount,
            &input.currency,
        ) {
            done = done.create(id, record).reconcile_after(Duration::ZERO);
        }
        done.summary =
            Some(serde_json::json!({"paymentId": payment.payment_id, "status": payment.status}));
        Ok(done.into())
    }
}

#[async_trait]
impl Serves<CapturePayment> for Stripe {
    async fn execute(
        &self,
        call: &ProviderCall<'_>,
        input: &PaymentAmount,
    ) -> Result<Step<Payment>, CallError> {
        let mut form = Vec::new();
        if let Some(amount) = input.amount {
            form.push(("amount_to_capture".to_owned(), amount.to_string()));
        }
        let path = format!("/v1/payment_intents/{}/capture", input.payment_id);
        let intent = request(call, Method::POST, &path, &form, write_safety(call)).await?;
        let payment = read_intent(&intent)?;
        let id = payment.payment_id.clone();
        Ok(Done::new(payment)
            .vendor_message_id(id)
            .reconcile_after(Duration::ZERO)
            .into())
    }
}

#[async_trait]
impl Serves<RefundPayment> for Stripe {
    async fn execute(
        &self,
        call: &ProviderCall<'_>,
        input: &PaymentAmount,
    ) -> Result<Step<Refund>, CallError> {
        let mut form = vec![("payment_intent".to_owned(), input.payment_id.to_string())];
        if let Some(amount) = input.amount {
            form.push(("amount".to_owned(), amount.to_string()));
        }
        form.extend(metadata_fields(call, &Default::default()));
        let refund = request(call, Method::POST, "/v1/refunds", &form, write_safety(call)).await?;
        let read = || {
            Some(Refund {
                payment_id: input.payment_id.to_string(),
                refund_id: refund["id"].as_str()?.to_owned(),
                status: refund["status"].as_str()?.to_owned(),
                amount: refund["amount"].as_u64()?,
            })
        };
        let refunded = read().ok_or_else(|| malformed("the refund lacks a field"))?;
        Ok(Done::new(refunded)
            .vendor_message_id(input.payment_id.to_string())
            .reconcile_after(Duration::ZERO)
            .into())
    }
}

#[async_trait]
impl Serves<GetPayment> for Stripe {
    async fn execute(
        &self,
        call: &ProviderCall<'_>,
        input: &PaymentRef,
    ) -> Result<Step<Payment>, CallError> {
        let path = format!(
            "/v1/payment_intents/{}?expand[]=latest_charge",
            input.payment_id
        );
        let intent = request(call, Method::GET, &path, &[], Safety::Safe).await?;
        let payment = read_intent(&intent)?;
        let id = payment.payment_id.clone();
        Ok(Done::new(payment).vendor_message_id(id).into())
    }
}

/// A PaymentIntent, normalised; an expanded `latest_charge` refines a success.
pub(crate) fn read_intent(intent: &Value) -> Result<Payment, CallError> {
    let field = |name: &str| {
        intent[name]
            .as_str()
            .ok_or_else(|| malformed(&format!("the payment intent lacks {name}")))
    };
    let processor_status = field("status")?;
    let charge = &intent["latest_charge"];
    let refunded = charge["amount_refunded"].as_u64().unwrap_or(0);
    let status = match processor_status {
        "requires_payment_method" | "requires_confirmation" | "requires_action" => {
            PaymentStatus::RequiresAction
        }
        "processing" => PaymentStatus::Processing,
        "requires_capture" => PaymentStatus::RequiresCapture,
        "canceled" => PaymentStatus::Canceled,
        "succeeded" if charge["disputed"] == true => PaymentStatus::Disputed,
        "succeeded" if charge["refunded"] == true => PaymentStatus::Refunded,
        "succeeded" if refunded > 0 => PaymentStatus::PartiallyRefunded,
        "succeeded" => PaymentStatus::Succeeded,
        other => return Err(malformed(&format!("an unknown status {other:?}"))),
    };
    Ok(Payment {
        payment_id: field("id")?.to_owned(),
        status,
        processor_status: processor_status.to_owned(),
        amount: intent["amount"]
            .as_u64()
            .ok_or_else(|| malformed("the payment intent lacks amount"))?,
        amount_received: intent["amount_received"].as_u64().unwrap_or(0),
        amount_refunded: refunded,
        currency: field("currency")?.to_owned(),
    })
}

/// One call to Stripe (a form body for writes), its JSON answer.
async fn request(
    call: &ProviderCall<'_>,
    method: Method,
    path: &str,
    form: &[(String, String)],
    safety: Safety,
) -> Result<Value, CallError> {
    let config: StripeConfig = call.config_as()?;
    let key = match call.credential.kind() {
        CredentialKind::BearerToken => call.secret("token")?,
        _ => call.secret("apiKey")?,
    };
    let url = format!("{}{path}", call.base_url(DEFAULT_BASE_URL));
    // Stripe's form encoding: brackets in names percent-encoded, as its libraries send them.
    let body = form_urlencoded::Serializer::new(String::new())
        .extend_pairs(form)
        .finish();
    let answers = answers(call);
    let answer = call
        .pipeline
        .send(call.call(safety, &answers), || {
            let mut builder = call
                .http
                .request(method.clone(), &url)
                .header(ACCEPT, "application/json")
                .bearer_auth(key);
            if let Some(version) = &config.api_version {
                builder = builder.header("stripe-version", version);
            }
            if method == Method::POST {
                if let Some(run) = call.idempotency_key {
                    builder = builder.header("idempotency-key", run);
                }
                builder = builder
                    .header(
                        reqwest::header::CONTENT_TYPE,
                        "application/x-www-form-urlencoded",
                    )
                    .body(body.clone());
            }
            builder
        })
        .await?;
    serde_json::from_slice(&answer.body).map_err(|_| malformed("not JSON"))
}

/// Stripe's answers: the status decides, a declined card is `unprocessable`, a 5xx Stripe
/// says not to retry is not retried; the error's code is the vendor code.
fn answers<'s>(
    call: &'s ProviderCall<'_>,
) -> VendorAnswers<'s, impl Fn(&mut VendorFailure, &Answer<'_>) -> String + Send + Sync> {
    VendorAnswers::new(
        "stripe",
        call.credential.values().collect(),
        |failure, answer| {
            let error = &answer.error["error"];
            if failure.vendor_status == Some(402) || error["type"] == "card_error" {
                failure.class = FailureClassification::Unprocessable;
            }
            let should_retry = answer
                .headers
                .get("stripe-should-retry")
                .and_then(|v| v.to_str().ok());
            if failure.class == FailureClassification::Transient && should_retry == Some("false") {
                failure.class = FailureClassification::VendorError;
            }
            failure.vendor_code = error["decline_code"]
                .as_str()
                .or_else(|| error["code"].as_str())
                .or_else(|| error["type"].as_str())
                .map(str::to_owned);
            let mut words = error["message"].as_str().unwrap_or_default().to_owned();
            if let Some(param) = error["param"].as_str() {
                words.push_str(&format!(" (param {param})"));
            }
            words
        },
    )
}

#[cfg(test)]
mod tests;
