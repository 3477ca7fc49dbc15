//! The Fake provider (`fake-payment`): an in-process processor for tests and demos, on the
//! kit's shared Fake ([`integration_kit::fake`]: credential `{"apiKey": …}`, the key
//! `rejected` refused; config `mode`, `latencyMs`, `retryAfterMs`). Payments live in this
//! process, their ids derived from the run (a repeated run finds the payment it created, as
//! a processor's idempotency keys do): an automatic capture succeeds (at once, or after
//! `settleAfterMs` of `processing`), a manual one waits for `capturePayment`; refunds add up
//! to the amount and no further (more is refused as a processor would).
//!
//! Like a processor it calls back, when the connection's config says where
//! (`callbacks: {url, send?, delayMs?}`, `url` being a `stripe` source of the webhook
//! gateway whose secret is the connection's API key): Stripe-shaped events
//! (`payment_intent.succeeded` when a payment settles or is captured, `charge.refunded`
//! after a refund), signed as Stripe signs (`Stripe-Signature: t=…,v1=…`), sent `delayMs`
//! late (default 50) and `send` = `once` (default), `twice` (the same event id twice),
//! `reversed` (a stale `payment_intent.processing` event after the real one) or `never`.
//! `amountOffsetMinor` makes the processor keep a different amount than was asked (a
//! processor's error that reconciliation must catch).

use std::collections::BTreeMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use domain::{CredentialKind, FailureClassification};
use hmac::Mac as _;
use integration_kit::fake::{self, CallCounter};
use integration_kit::{
    Done, Provider, ProviderCall, Served, Serves, Step, VendorWebhook, WebhookEffect, call_failed,
};
use resilience::{CallError, Safety};
use serde_json::json;
use sha2::{Digest as _, Sha256};

use crate::{
    Capture, CapturePayment, CreatePayment, GetPayment, NewPayment, Payment, PaymentAmount,
    PaymentCreated, PaymentRef, PaymentStatus, Refund, RefundPayment,
};

/// A payment as the Fake holds it: `processing` until `settles_at`, then succeeded.
#[derive(Clone)]
struct Held {
    payment: Payment,
    settles_at: Option<Instant>,
}

impl Held {
    /// The payment as of now.
    fn now(&mut self) -> &mut Payment {
        if self.settles_at.is_some_and(|t| t <= Instant::now()) {
            self.settles_at = None;
            self.payment.status = PaymentStatus::Succeeded;
            self.payment.processor_status = "succeeded".into();
            self.payment.amount_received = self.payment.amount;
        }
        &mut self.payment
    }
}

/// Payments by (tenant, id).
static PAYMENTS: Mutex<BTreeMap<(String, String), Held>> = Mutex::new(BTreeMap::new());
static CALLS: CallCounter = CallCounter::new();

/// Calls that reached the Fake for one run (its idempotency key).
pub fn calls(idempotency_key: &str) -> u32 {
    CALLS.calls(idempotency_key)
}

pub struct Fake;

/// The connection's config: the kit's steering of a Fake, how payments settle, and the
/// callbacks it sends.
#[derive(Debug, Clone, serde::Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct FakeConfig {
    #[serde(default)]
    mode: fake::Mode,
    latency_ms: Option<u64>,
    retry_after_ms: Option<u64>,
    /// How long an automatic capture stays `processing` (0 to ten minutes).
    settle_after_ms: Option<u64>,
    /// The processor keeps this many minor units more than was asked.
    #[serde(default)]
    amount_offset_minor: u64,
    callbacks: Option<Callbacks>,
}

#[derive(Debug, Clone, serde::Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct Callbacks {
    url: String,
    #[serde(default)]
    send: Sending,
    /// How late each callback is (0 to one minute; 50).
    delay_ms: Option<u64>,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
enum Sending {
    #[default]
    Once,
    Twice,
    Reversed,
    Never,
}

impl integration_kit::ProviderConfig for FakeConfig {
    fn check(&self) -> Result<(), integration_kit::InputError> {
        if self.settle_after_ms.is_some_and(|ms| ms > 600_000) {
            return Err(integration_kit::InputError::at(
                "settleAfterMs",
                "must be at most 600000 (ten minutes)",
            ));
        }
        if let Some(c) = &self.callbacks {
            if reqwest::Url::parse(&c.url).is_err() {
                return Err(integration_kit::InputError::at(
                    "callbacks/url",
                    "must be an http(s) URL",
                ));
            }
            if c.delay_ms.is_some_and(|ms| ms > 60_000) {
                return Err(integration_kit::InputError::at(
                    "callbacks/delayMs",
                    "must be at most 60000 (one minute)",
                ));
            }
        }
        Ok(())
    }
}

impl FakeConfig {
    fn steer(&self) -> fake::Steer {
        fake::Steer {
            mode: self.mode,
            latency_ms: self.latency_ms,
            retry_after_ms: self.retry_after_ms,
        }
    }
}

async fn go(call: &ProviderCall<'_>, operation: bool) -> Result<FakeConfig, CallError> {
    let config: FakeConfig = call.config_as()?;
    fake::call_through(&CALLS, call, &config.steer(), Safety::Idempotent, operation).await?;
    Ok(config)
}

/// A processor-looking id derived from `seed`.
fn id_of(prefix: &str, seed: &str) -> String {
    let digest = Sha256::digest(format!("fake-payment/{seed}").as_bytes());
    let hex: String = digest[..12].iter().map(|b| format!("{b:02x}")).collect();
    format!("{prefix}_{hex}")
}

fn key(call: &ProviderCall<'_>, id: &str) -> (String, String) {
    (call.key.tenant.to_string(), id.to_owned())
}

fn refused(why: &str) -> CallError {
    call_failed(
        FailureClassification::Validation,
        format!("fake-payment: {why}"),
    )
}

/// The `Stripe-Signature` of `body` at `t`, with `secret`.
pub fn stripe_signature(secret: &str, t: i64, body: &[u8]) -> String {
    let mut mac = hmac::Hmac::<Sha256>::new_from_slice(secret.as_bytes()).expect("any key length");
    mac.update(format!("{t}.").as_bytes());
    mac.update(body);
    let hex: String = mac
        .finalize()
        .into_bytes()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    format!("t={t},v1={hex}")
}

/// Calls back about `payment` (`kind` = the event type) as the config says, after `wait`
/// more: best effort, as processors' callbacks are (a lost one is what the sweep is for).
fn call_back(
    call: &ProviderCall<'_>,
    config: &FakeConfig,
    kind: &'static str,
    payment: &Payment,
    wait: Duration,
) -> Result<(), CallError> {
    let Some(callbacks) = config.callbacks.clone() else {
        return Ok(());
    };
    if callbacks.send == Sending::Never {
        return Ok(());
    }
    let secret = call.secret("apiKey")?.to_owned();
    let http = call.http.clone();
    let payment = payment.clone();
    let seed = format!("{kind}/{}", payment.payment_id);
    tokio::spawn(async move {
        let delay = Duration::from_millis(callbacks.delay_ms.unwrap_or(50));
        tokio::time::sleep(wait + delay).await;
        let object = if kind.starts_with("charge.") {
            json!({"id": id_of("ch", &payment.payment_id), "object": "charge",
                   "payment_intent": payment.payment_id, "amount_refunded": payment.amount_refunded})
        } else {
            json!({"id": payment.payment_id, "object": "payment_intent",
                   "amount": payment.amount, "currency": payment.currency, "status": payment.processor_status})
        };
        let event = |id: String, kind: &str, object: serde_json::Value| {
            json!({"id": id, "object": "event", "type": kind,
                   "created": chrono::Utc::now().timestamp(), "data": {"object": object}})
        };
        let mut events = vec![event(id_of("evt", &seed), kind, object.clone())];
        match callbacks.send {
            Sending::Twice => events.push(events[0].clone()),
            Sending::Reversed => {
                let mut stale = object;
                stale["status"] = json!("processing");
                events.push(event(
                    id_of("evt", &format!("{seed}/stale")),
                    "payment_intent.processing",
                    stale,
                ));
            }
            Sending::Once | Sending::Never => {}
        }
        for e in events {
            let body = e.to_string();
            let t = chrono::Utc::now().timestamp();
            let sent = http
                .post(&callbacks.url)
                .header(
                    "stripe-signature",
                    stripe_signature(&secret, t, body.as_bytes()),
                )
                .header("content-type", "application/json")
                .body(body)
                .timeout(Duration::from_secs(5))
                .send()
                .await;
            if let Err(e) = sent {
                tracing::warn!(error = %e, "the fake processor could not call back");
            }
        }
    });
    Ok(())
}

#[async_trait]
impl Provider for Fake {
    fn key(&self) -> &'static str {
        "fake-payment"
    }

    fn credential_kinds(&self) -> &'static [CredentialKind] {
        &[CredentialKind::ApiKey]
    }

    async fn test_connection(&self, call: &ProviderCall<'_>) -> Result<(), CallError> {
        go(call, false).await.map(|_| ())
    }

    fn serves(served: &mut Served<Self>) {
        served
            .operation::<CreatePayment>()
            .operation::<CapturePayment>()
            .operation::<RefundPayment>()
            .operation::<GetPayment>()
            .config::<FakeConfig>();
    }

    /// Its callbacks are Stripe's events.
    fn webhook(&self, webhook: &VendorWebhook<'_>) -> Result<Vec<WebhookEffect>, String> {
        super::stripe::callback_effects(webhook.body)
    }
}

#[async_trait]
impl Serves<CreatePayment> for Fake {
    async fn execute(
        &self,
        call: &ProviderCall<'_>,
        input: &NewPayment,
    ) -> Result<Step<PaymentCreated>, CallError> {
        let config = go(call, true).await?;
        let seed = call.idempotency_key.unwrap_or("outside-a-run");
        let id = id_of("pay", seed);
        let settle = Duration::from_millis(config.settle_after_ms.unwrap_or(0));
        let mut created = false;
        let payment = PAYMENTS
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .entry(key(call, &id))
            .or_insert_with(|| {
                created = true;
                let amount = input.amount + config.amount_offset_minor;
                let (status, word, settles_at) = match input.capture {
                    Capture::Manual => (PaymentStatus::RequiresCapture, "requires_capture", None),
                    Capture::Automatic if settle.is_zero() => {
                        (PaymentStatus::Succeeded, "succeeded", None)
                    }
                    Capture::Automatic => (
                        PaymentStatus::Processing,
                        "processing",
                        Some(Instant::now() + settle),
                    ),
                };
                Held {
                    payment: Payment {
                        payment_id: id.clone(),
                        status,
                        processor_status: word.into(),
                        amount,
                        amount_received: if status == PaymentStatus::Succeeded {
                            amount
                        } else {
                            0
                        },
                        amount_refunded: 0,
                        currency: input.currency.to_ascii_lowercase(),
                    },
                    settles_at,
                }
            })
            .now()
            .clone();
        if created && input.capture == Capture::Automatic {
            let mut settled = payment.clone();
            settled.status = PaymentStatus::Succeeded;
            settled.processor_status = "succeeded".into();
            call_back(call, &config, "payment_intent.succeeded", &settled, settle)?;
        }
        let mut done = Done::new(PaymentCreated {
            payment_id: id.clone(),
            status: payment.status,
            client_secret: None,
        })
        .vendor_message_id(id);
        if let Some((doc, record)) = crate::payments::created_record(
            "fake-payment",
            call.idempotency_key,
            &payment,
            input.amount,
            &input.currency,
        ) {
            done = done.create(doc, record).reconcile_after(Duration::ZERO);
        }
        Ok(done.into())
    }
}

#[async_trait]
impl Serves<CapturePayment> for Fake {
    async fn execute(
        &self,
        call: &ProviderCall<'_>,
        input: &PaymentAmount,
    ) -> Result<Step<Payment>, CallError> {
        let config = go(call, true).await?;
        let mut payments = PAYMENTS.lock().unwrap_or_else(|p| p.into_inner());
        let payment = payments
            .get_mut(&key(call, &input.payment_id))
            .map(Held::now)
            .ok_or_else(|| refused("no such payment"))?;
        match payment.status {
            PaymentStatus::RequiresCapture => {
                let amount = input.amount.unwrap_or(payment.amount);
                if amount > payment.amount {
                    return Err(refused("the capture is more than was authorised"));
                }
                payment.status = PaymentStatus::Succeeded;
                payment.processor_status = "succeeded".into();
                payment.amount_received = amount;
                call_back(
                    call,
                    &config,
                    "payment_intent.succeeded",
                    payment,
                    Duration::ZERO,
                )?;
            }
            // Captured already (a repeated run): the same answer.
            PaymentStatus::Succeeded => {}
            _ => return Err(refused("the payment cannot be captured now")),
        }
        let id = payment.payment_id.clone();
        Ok(Done::new(payment.clone())
            .vendor_message_id(id)
            .reconcile_after(Duration::ZERO)
            .into())
    }
}

#[async_trait]
impl Serves<RefundPayment> for Fake {
    async fn execute(
        &self,
        call: &ProviderCall<'_>,
        input: &PaymentAmount,
    ) -> Result<Step<Refund>, CallError> {
        let config = go(call, true).await?;
        let refund_id = id_of("re", call.idempotency_key.unwrap_or("outside-a-run"));
        let mut payments = PAYMENTS.lock().unwrap_or_else(|p| p.into_inner());
        let payment = payments
            .get_mut(&key(call, &input.payment_id))
            .map(Held::now)
            .ok_or_else(|| refused("no such payment"))?;
        let left = payment.amount_received - payment.amount_refunded;
        let amount = input.amount.unwrap_or(left);
        if !matches!(
            payment.status,
            PaymentStatus::Succeeded | PaymentStatus::PartiallyRefunded
        ) || amount > left
        {
            return Err(refused("the refund is more than is left to refund"));
        }
        payment.amount_refunded += amount;
        payment.status = if payment.amount_refunded == payment.amount_received {
            PaymentStatus::Refunded
        } else {
            PaymentStatus::PartiallyRefunded
        };
        call_back(call, &config, "charge.refunded", payment, Duration::ZERO)?;
        Ok(Done::new(Refund {
            payment_id: payment.payment_id.clone(),
            refund_id,
            status: "succeeded".into(),
            amount,
        })
        .vendor_message_id(payment.payment_id.clone())
        .reconcile_after(Duration::ZERO)
        .into())
    }
}

#[async_trait]
impl Serves<GetPayment> for Fake {
    async fn execute(
        &self,
        call: &ProviderCall<'_>,
        input: &PaymentRef,
    ) -> Result<Step<Payment>, CallError> {
        go(call, true).await?;
        let payment = PAYMENTS
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get_mut(&key(call, &input.payment_id))
            .map(|held| held.now().clone())
            .ok_or_else(|| refused("no such payment"))?;
        let id = payment.payment_id.clone();
        Ok(Done::new(payment).vendor_message_id(id).into())
    }
}
