//! The Fake provider (`fake-payment`): an in-process processor for tests and demos, on the
//! kit's shared Fake ([`integration_kit::fake`]: credential `{"apiKey": …}`, the key
//! `rejected` refused; config `mode`, `latencyMs`, `retryAfterMs`). Payments live in this
//! process, their ids derived from the run (a repeated run finds the payment it created, as
//! a processor's idempotency keys do): an automatic capture succeeds at once, a manual one
//! waits for `capturePayment`; refunds add up to the amount and no further (more is
//! refused as a processor would).

use std::collections::BTreeMap;
use std::sync::Mutex;

use async_trait::async_trait;
use domain::{CredentialKind, FailureClassification};
use integration_kit::fake::{self, CallCounter};
use integration_kit::{Done, Provider, ProviderCall, Served, Serves, Step, call_failed};
use resilience::{CallError, HttpStatus, Outcome, Safety};
use sha2::{Digest as _, Sha256};

use crate::{
    Capture, CapturePayment, CreatePayment, GetPayment, NewPayment, Payment, PaymentAmount,
    PaymentCreated, PaymentRef, PaymentStatus, Refund, RefundPayment,
};

/// Payments by (tenant, id).
static PAYMENTS: Mutex<BTreeMap<(String, String), Payment>> = Mutex::new(BTreeMap::new());
static CALLS: CallCounter = CallCounter::new();

/// Calls that reached the Fake for one run (its idempotency key).
pub fn calls(idempotency_key: &str) -> u32 {
    CALLS.calls(idempotency_key)
}

pub struct Fake;

async fn go(call: &ProviderCall<'_>, operation: bool) -> Result<(), CallError> {
    let steer: fake::Steer = call.config_as()?;
    call.pipeline
        .execute(call.call(Safety::Idempotent, &HttpStatus), |_| async {
            fake::answer(&CALLS, call, &steer, operation)
                .await
                .unwrap_or(Outcome::Done(()))
        })
        .await
        .map(|_| ())
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

#[async_trait]
impl Provider for Fake {
    fn key(&self) -> &'static str {
        "fake-payment"
    }

    fn credential_kinds(&self) -> &'static [CredentialKind] {
        &[CredentialKind::ApiKey]
    }

    async fn test_connection(&self, call: &ProviderCall<'_>) -> Result<(), CallError> {
        go(call, false).await
    }

    fn serves(served: &mut Served<Self>) {
        served
            .operation::<CreatePayment>()
            .operation::<CapturePayment>()
            .operation::<RefundPayment>()
            .operation::<GetPayment>()
            .config::<fake::Steer>();
    }
}

#[async_trait]
impl Serves<CreatePayment> for Fake {
    async fn execute(
        &self,
        call: &ProviderCall<'_>,
        input: &NewPayment,
    ) -> Result<Step<PaymentCreated>, CallError> {
        go(call, true).await?;
        let seed = call.idempotency_key.unwrap_or("outside-a-run");
        let id = id_of("pay", seed);
        let payment = PAYMENTS
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .entry(key(call, &id))
            .or_insert_with(|| {
                let captured = input.capture == Capture::Automatic;
                Payment {
                    payment_id: id.clone(),
                    status: if captured {
                        PaymentStatus::Succeeded
                    } else {
                        PaymentStatus::RequiresCapture
                    },
                    processor_status: if captured {
                        "succeeded"
                    } else {
                        "requires_capture"
                    }
                    .into(),
                    amount: input.amount,
                    amount_received: if captured { input.amount } else { 0 },
                    amount_refunded: 0,
                    currency: input.currency.to_ascii_lowercase(),
                }
            })
            .clone();
        Ok(Done::new(PaymentCreated {
            payment_id: id.clone(),
            status: payment.status,
            client_secret: None,
        })
        .vendor_message_id(id)
        .into())
    }
}

#[async_trait]
impl Serves<CapturePayment> for Fake {
    async fn execute(
        &self,
        call: &ProviderCall<'_>,
        input: &PaymentAmount,
    ) -> Result<Step<Payment>, CallError> {
        go(call, true).await?;
        let mut payments = PAYMENTS.lock().unwrap_or_else(|p| p.into_inner());
        let payment = payments
            .get_mut(&key(call, &input.payment_id))
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
            }
            // Captured already (a repeated run): the same answer.
            PaymentStatus::Succeeded => {}
            _ => return Err(refused("the payment cannot be captured now")),
        }
        let id = payment.payment_id.clone();
        Ok(Done::new(payment.clone()).vendor_message_id(id).into())
    }
}

#[async_trait]
impl Serves<RefundPayment> for Fake {
    async fn execute(
        &self,
        call: &ProviderCall<'_>,
        input: &PaymentAmount,
    ) -> Result<Step<Refund>, CallError> {
        go(call, true).await?;
        let refund_id = id_of("re", call.idempotency_key.unwrap_or("outside-a-run"));
        let mut payments = PAYMENTS.lock().unwrap_or_else(|p| p.into_inner());
        let payment = payments
            .get_mut(&key(call, &input.payment_id))
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
        Ok(Done::new(Refund {
            payment_id: payment.payment_id.clone(),
            refund_id,
            status: "succeeded".into(),
            amount,
        })
        .vendor_message_id(payment.payment_id.clone())
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
            .get(&key(call, &input.payment_id))
            .cloned()
            .ok_or_else(|| refused("no such payment"))?;
        let id = payment.payment_id.clone();
        Ok(Done::new(payment).vendor_message_id(id).into())
    }
}
