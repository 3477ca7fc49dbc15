//! `payment`: payments at a processor, on the integration kit. Operations, typed:
//! `createPayment` (one payment per run: the run id is the processor's idempotency key and
//! is kept in the payment's metadata), `capturePayment` and `refundPayment` (once per run
//! likewise), `getPayment` (where the payment stands, answered inline with `Prefer: wait`).
//! Providers ([`providers`]): `stripe` (PaymentIntents) and `fake-payment` (in process).
//! The processor's id of the payment is the run's vendor id, kept with the run's success
//! before the run answers, with the platform's record of the payment ([`payments`]),
//! reconciled from the processor whenever its callbacks, a run or the payment's scheduled
//! look say it may have changed. Failover is off: a payment lives at one processor.

pub mod payments;
pub mod providers;

use std::collections::BTreeMap;

use app_context::{AppContext, AppRegistration, CatalogueEntry, InvalidSetting};
use domain::AuthScheme;
use functions_runtime::FunctionApp;
use integration_kit::{InputError, Operation, VendorApp};
use serde::{Deserialize, Serialize};

pub const SLUG: &str = "payment";
pub const SOURCE: &str = "/integration/payment";

/// The providers this app has adapters for, as the registry's catalogue lists them.
pub const CATALOGUE: &[CatalogueEntry] = &[
    CatalogueEntry::retested(
        "fake-payment",
        "Fake payment processor (tests and demos)",
        domain::ProviderCategory::Payment,
        AuthScheme::ApiKey,
        "https://fake-payment.invalid",
    ),
    CatalogueEntry::retested(
        "bill",
        "BILL accounts payable (vendor bill payments)",
        domain::ProviderCategory::Payment,
        AuthScheme::Basic,
        providers::bill::DEFAULT_BASE_URL,
    ),
    CatalogueEntry::retested(
        "stripe",
        "Stripe PaymentIntents",
        domain::ProviderCategory::Payment,
        AuthScheme::Bearer,
        providers::stripe::DEFAULT_BASE_URL,
    ),
];

pub fn registration() -> AppRegistration {
    integration_kit::registration(SLUG, build, CATALOGUE)
}

pub fn build(ctx: &AppContext) -> Result<FunctionApp, InvalidSetting> {
    VendorApp::new(SLUG, SOURCE)
        // A payment lives at one processor: another connection is not a failover.
        .failover(false)
        .reconciler(payments::PaymentReconciler::from_settings(ctx)?)
        .routes(payments::routes)
        .provider(providers::fake::Fake)
        .provider(providers::stripe::Stripe)
        .provider(providers::bill::Bill)
        .build(ctx)
}

integration_kit::checked_string!(
    /// A three-letter ISO 4217 currency code, either case (`usd`, `EUR`).
    Currency,
    |s| {
        if s.len() == 3 && s.bytes().all(|b| b.is_ascii_alphabetic()) {
            Ok(())
        } else {
            Err("must be an ISO 4217 code (three letters, usd)".into())
        }
    }
);

integration_kit::checked_string!(
    /// A processor's id of a payment or customer: 1 to 255 letters, digits, `_` or `-`.
    ProcessorId,
    |s| {
        if (1..=255).contains(&s.len())
            && s.bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-'))
        {
            Ok(())
        } else {
            Err("must be a processor's id (letters, digits, _ or -)".into())
        }
    }
);

/// How a payment is captured.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Capture {
    /// Captured when authorised.
    #[default]
    Automatic,
    /// Authorised now, captured by `capturePayment`.
    Manual,
}

/// Metadata a caller keeps on a payment: at most 40 keys (the platform keeps `run_id` as
/// well, within the processor's 50), keys of 1 to 40 letters, digits, `_` or `-`, values of
/// at most 500 characters.
pub type Metadata = BTreeMap<String, String>;

fn check_metadata(metadata: &Metadata) -> Result<(), InputError> {
    if metadata.len() > 40 {
        return Err(InputError::at(
            "metadata",
            format!("at most 40 entries (got {})", metadata.len()),
        ));
    }
    for (k, v) in metadata {
        if !(1..=40).contains(&k.len())
            || !k
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-'))
        {
            return Err(InputError::at(
                "metadata",
                "keys are 1 to 40 letters, digits, _ or -",
            ));
        }
        if k == "run_id" {
            return Err(InputError::at(
                "metadata/run_id",
                "is the platform's (the run's id)",
            ));
        }
        if v.chars().count() > 500 {
            return Err(InputError::at(
                format!("metadata/{k}"),
                "must be at most 500 characters",
            ));
        }
    }
    Ok(())
}

/// `createPayment`: a payment of `amount` minor units, once per run.
pub struct CreatePayment;

impl Operation for CreatePayment {
    const NAME: &'static str = "createPayment";
    type Input = NewPayment;
    type Output = PaymentCreated;

    fn check(input: &NewPayment) -> Result<(), InputError> {
        if input.amount == 0 {
            return Err(InputError::at("amount", "must be 1 or more (minor units)"));
        }
        if input
            .description
            .as_ref()
            .is_some_and(|d| d.chars().count() > 1000)
        {
            return Err(InputError::at(
                "description",
                "must be at most 1000 characters",
            ));
        }
        check_metadata(&input.metadata)
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct NewPayment {
    /// In the currency's minor units (cents): 1099 is 10.99 USD.
    pub amount: u64,
    pub currency: Currency,
    /// The processor's customer id.
    #[serde(default)]
    pub customer: Option<ProcessorId>,
    #[serde(default)]
    pub description: Option<String>,
    #[serde(default, deserialize_with = "integration_kit::null_as_default")]
    pub metadata: Metadata,
    #[serde(default)]
    pub capture: Capture,
}

/// Where a payment stands, the same for every processor.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PaymentStatus {
    /// The payer has something to do (a payment method, a confirmation, 3-D Secure).
    RequiresAction,
    Processing,
    /// Authorised, waiting for `capturePayment`.
    RequiresCapture,
    Succeeded,
    Canceled,
    PartiallyRefunded,
    Refunded,
    Disputed,
}

/// What `createPayment` answers.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PaymentCreated {
    pub payment_id: String,
    pub status: PaymentStatus,
    /// What the payer's browser or app confirms the payment with (Stripe.js), when the
    /// processor has one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_secret: Option<String>,
}

/// `capturePayment`: an authorised payment captured (all of it, or `amount`), once per run.
pub struct CapturePayment;

impl Operation for CapturePayment {
    const NAME: &'static str = "capturePayment";
    type Input = PaymentAmount;
    type Output = Payment;

    fn check(input: &PaymentAmount) -> Result<(), InputError> {
        check_amount(input)
    }
}

/// `refundPayment`: a payment refunded (all of it, or `amount`), once per run.
pub struct RefundPayment;

impl Operation for RefundPayment {
    const NAME: &'static str = "refundPayment";
    type Input = PaymentAmount;
    type Output = Refund;

    fn check(input: &PaymentAmount) -> Result<(), InputError> {
        check_amount(input)
    }
}

fn check_amount(input: &PaymentAmount) -> Result<(), InputError> {
    if input.amount == Some(0) {
        return Err(InputError::at(
            "amount",
            "must be 1 or more (minor units), or absent for all of it",
        ));
    }
    Ok(())
}

#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct PaymentAmount {
    pub payment_id: ProcessorId,
    /// Minor units; absent: all of it.
    #[serde(default)]
    pub amount: Option<u64>,
}

/// What `refundPayment` answers.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Refund {
    pub payment_id: String,
    pub refund_id: String,
    /// The processor's word for the refund (`succeeded`, `pending`, `failed`).
    pub status: String,
    pub amount: u64,
}

/// `payBill`: a vendor's bill paid (BILL), once per run.
pub struct PayBill;

impl Operation for PayBill {
    const NAME: &'static str = "payBill";
    type Input = BillPayment;
    type Output = PaymentCreated;

    fn check(input: &BillPayment) -> Result<(), InputError> {
        if input.amount == 0 {
            return Err(InputError::at("amount", "must be 1 or more (minor units)"));
        }
        if !input.currency.eq_ignore_ascii_case("usd") {
            return Err(InputError::at(
                "currency",
                "must be usd (BILL pays vendors in US dollars)",
            ));
        }
        if input
            .description
            .as_ref()
            .is_some_and(|d| d.chars().count() > 70)
        {
            return Err(InputError::at(
                "description",
                "must be at most 70 characters",
            ));
        }
        Ok(())
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct BillPayment {
    /// BILL's id of the bill (`00n…`).
    pub bill_id: ProcessorId,
    /// BILL's id of the vendor (`009…`); the bill's own when absent.
    #[serde(default)]
    pub vendor_id: Option<ProcessorId>,
    /// In cents.
    pub amount: u64,
    pub currency: Currency,
    /// When BILL starts the payment; the next business day when absent.
    #[serde(default)]
    pub process_date: Option<chrono::NaiveDate>,
    /// The check memo or bank descriptor (at most 70 characters); the run's id when absent.
    #[serde(default)]
    pub description: Option<String>,
}

/// `getPayment`: where a payment stands.
pub struct GetPayment;

impl Operation for GetPayment {
    const NAME: &'static str = "getPayment";
    type Input = PaymentRef;
    type Output = Payment;
}

#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct PaymentRef {
    pub payment_id: ProcessorId,
}

/// A payment as every processor answers it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Payment {
    pub payment_id: String,
    pub status: PaymentStatus,
    /// The processor's own word for it.
    pub processor_status: String,
    pub amount: u64,
    pub amount_received: u64,
    pub amount_refunded: u64,
    /// Lowercase, as processors answer it.
    pub currency: String,
}
