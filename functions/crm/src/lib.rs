//! `crm`: contacts, deals and the events the platform's users owe their CRM and analytics,
//! on the integration kit. Operations, typed: `upsertContact` (one contact per email, or per
//! the caller's own id), `upsertDeal` (one deal per caller key: a retried run never creates
//! a second), `trackEvent` (an event of a user, with a value). Providers ([`providers`]):
//! `hubspot` (contacts and deals, CRM v3), `braze` (contacts and events, `/users/track`),
//! `ga4` (events, Measurement Protocol), `meta-capi` (events, Conversions API) and
//! `fake-crm` (all three, in process). Failover is off: a contact in two CRMs is not a
//! failover. HubSpot's webhooks, routed here by a `hubspot` source of the connection,
//! change nothing here and are published as `crm.contact.changed` / `crm.deal.changed`.

pub mod providers;

use std::collections::BTreeMap;

use app_context::{AppContext, AppRegistration, CatalogueEntry, InvalidSetting};
use domain::AuthScheme;
use functions_runtime::FunctionApp;
use integration_kit::{InputError, Operation, VendorApp};
use serde::{Deserialize, Serialize};
use serde_json::Value;

pub const SLUG: &str = "crm";
pub const SOURCE: &str = "/integration/crm";

const fn entry(
    key: &'static str,
    name: &'static str,
    auth: AuthScheme,
    base_url: &'static str,
) -> CatalogueEntry {
    CatalogueEntry::retested(key, name, domain::ProviderCategory::Crm, auth, base_url)
}

/// The providers this app has adapters for, as the registry's catalogue lists them.
pub const CATALOGUE: &[CatalogueEntry] = &[
    entry(
        "fake-crm",
        "Fake CRM (tests and demos)",
        AuthScheme::ApiKey,
        "https://fake-crm.invalid",
    ),
    entry(
        "hubspot",
        "HubSpot CRM v3",
        AuthScheme::Bearer,
        providers::hubspot::DEFAULT_BASE_URL,
    ),
    // Each workspace is on a cluster of its own: the connection names its REST endpoint.
    entry(
        "braze",
        "Braze REST API",
        AuthScheme::Bearer,
        "https://rest.iad-01.braze.com",
    ),
    entry(
        "ga4",
        "Google Analytics 4 Measurement Protocol",
        AuthScheme::ApiKey,
        providers::ga4::DEFAULT_BASE_URL,
    ),
    entry(
        "meta-capi",
        "Meta Conversions API",
        AuthScheme::Bearer,
        providers::meta::DEFAULT_BASE_URL,
    ),
];

pub fn registration() -> AppRegistration {
    integration_kit::registration(SLUG, build, CATALOGUE)
}

pub fn build(ctx: &AppContext) -> Result<FunctionApp, InvalidSetting> {
    VendorApp::new(SLUG, SOURCE)
        // A contact in two CRMs is not a failover.
        .failover(false)
        .provider(providers::fake::Fake)
        .provider(providers::hubspot::HubSpot)
        .provider(providers::braze::Braze)
        .provider(providers::ga4::Ga4)
        .provider(providers::meta::Meta)
        .build(ctx)
}

pub use integration_kit::EmailAddress;

integration_kit::checked_string!(
    /// A name or label: 1 to 255 characters on one line.
    Name,
    |s| {
        let n = s.chars().count();
        if (1..=255).contains(&n) && !s.chars().any(char::is_control) && !s.trim().is_empty() {
            Ok(())
        } else {
            Err("must be 1 to 255 characters on one line".into())
        }
    }
);

integration_kit::checked_string!(
    /// An id of the caller's or the vendor's: 1 to 128 printable ASCII characters without
    /// spaces.
    Id,
    |s| {
        if (1..=128).contains(&s.len()) && s.bytes().all(|b| b.is_ascii_graphic()) {
            Ok(())
        } else {
            Err("must be 1 to 128 printable ASCII characters without spaces".into())
        }
    }
);

integration_kit::checked_string!(
    /// A phone number in E.164 (`+` and 8 to 15 digits).
    Phone,
    |s| {
        let digits = s.strip_prefix('+').unwrap_or_default();
        if (8..=15).contains(&digits.len()) && digits.bytes().all(|b| b.is_ascii_digit()) {
            Ok(())
        } else {
            Err("must be an E.164 number (+ and 8 to 15 digits)".into())
        }
    }
);

integration_kit::checked_string!(
    /// An ISO 4217 currency code (three capital letters).
    Currency,
    |s| {
        if s.len() == 3 && s.bytes().all(|b| b.is_ascii_uppercase()) {
            Ok(())
        } else {
            Err("must be an ISO 4217 code (three capital letters, USD)".into())
        }
    }
);

integration_kit::checked_string!(
    /// An event's name: 1 to 64 letters, digits, `_`, `-` or `.`, starting with a letter.
    EventName,
    |s| {
        if (1..=64).contains(&s.len())
            && s.starts_with(|c: char| c.is_ascii_alphabetic())
            && s.bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.'))
        {
            Ok(())
        } else {
            Err("must be 1 to 64 letters, digits, _, - or ., starting with a letter".into())
        }
    }
);

/// Free properties: at most [`MAX_PROPERTIES`], names of 1 to 100 letters, digits or `_`,
/// values strings (at most 1,000 characters), numbers or booleans.
pub type Properties = BTreeMap<String, Value>;

/// At most this many free properties on one call.
pub const MAX_PROPERTIES: usize = 100;

fn check_properties(properties: &Properties) -> Result<(), InputError> {
    if properties.len() > MAX_PROPERTIES {
        return Err(InputError::at(
            "properties",
            format!(
                "at most {MAX_PROPERTIES} properties (got {})",
                properties.len()
            ),
        ));
    }
    for (name, value) in properties {
        if !(1..=100).contains(&name.len())
            || !name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_')
        {
            return Err(InputError::at(
                "properties",
                "names are 1 to 100 letters, digits or _",
            ));
        }
        let fits = match value {
            Value::String(s) => s.chars().count() <= 1_000,
            Value::Number(_) | Value::Bool(_) => true,
            _ => false,
        };
        if !fits {
            return Err(InputError::at(
                format!("properties/{name}"),
                "must be a string of at most 1000 characters, a number or a boolean",
            ));
        }
    }
    Ok(())
}

/// A property's value as the CRMs that take only text want it.
pub(crate) fn property_text(value: &Value) -> String {
    match value {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// `upsertContact`: one contact per email (or per the caller's id), created or updated.
pub struct UpsertContact;

impl Operation for UpsertContact {
    const NAME: &'static str = "upsertContact";
    type Input = Contact;
    type Output = ContactUpserted;

    fn check(input: &Contact) -> Result<(), InputError> {
        check_properties(&input.properties)
    }
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Contact {
    pub email: EmailAddress,
    /// The caller's own id of the person (Braze's `external_id`; HubSpot's unique id
    /// property when the connection names one).
    #[serde(default)]
    pub external_id: Option<Id>,
    #[serde(default)]
    pub first_name: Option<Name>,
    #[serde(default)]
    pub last_name: Option<Name>,
    #[serde(default)]
    pub phone: Option<Phone>,
    #[serde(default, deserialize_with = "integration_kit::null_as_default")]
    pub properties: Properties,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ContactUpserted {
    pub contact_id: String,
    /// Whether the contact is new; `null` when the vendor does not say (Braze).
    pub created: Option<bool>,
}

/// `upsertDeal`: one deal per caller key (the run's id unless `key` is given), created or
/// updated.
pub struct UpsertDeal;

impl Operation for UpsertDeal {
    const NAME: &'static str = "upsertDeal";
    type Input = Deal;
    type Output = DealUpserted;

    fn check(input: &Deal) -> Result<(), InputError> {
        if input.amount.is_some_and(|a| !a.is_finite() || a < 0.0) {
            return Err(InputError::at("amount", "must be a number of 0 or more"));
        }
        if input.currency.is_some() && input.amount.is_none() {
            return Err(InputError::at("currency", "is given with an amount"));
        }
        check_properties(&input.properties)
    }
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Deal {
    pub name: Name,
    /// In the currency's major units (12.5 is twelve and a half dollars).
    #[serde(default)]
    pub amount: Option<f64>,
    #[serde(default)]
    pub currency: Option<Currency>,
    /// The vendor's id of the deal stage (HubSpot's `dealstage`).
    #[serde(default)]
    pub stage: Option<Id>,
    /// A contact the deal belongs to (the vendor's id, as `upsertContact` answered it).
    #[serde(default)]
    pub contact_id: Option<Id>,
    /// The caller's key of the deal: the same key updates the same deal. Default: the run's
    /// id (a retried run updates the deal it created).
    #[serde(default)]
    pub key: Option<Id>,
    #[serde(default, deserialize_with = "integration_kit::null_as_default")]
    pub properties: Properties,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DealUpserted {
    pub deal_id: String,
    pub created: Option<bool>,
}

/// `trackEvent`: an event of a user (by the caller's id or by email), with an optional
/// value.
pub struct TrackEvent;

impl Operation for TrackEvent {
    const NAME: &'static str = "trackEvent";
    type Input = Event;
    type Output = EventTracked;

    fn check(input: &Event) -> Result<(), InputError> {
        if input.user_id.is_none() && input.email.is_none() {
            return Err(InputError::at("userId", "userId or email is required"));
        }
        if input.value.is_some_and(|v| !v.is_finite()) {
            return Err(InputError::at("value", "must be a number"));
        }
        if input.currency.is_some() && input.value.is_none() {
            return Err(InputError::at("currency", "is given with a value"));
        }
        check_properties(&input.properties)
    }
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Event {
    pub name: EventName,
    #[serde(default)]
    pub user_id: Option<Id>,
    #[serde(default)]
    pub email: Option<EmailAddress>,
    /// When it happened (default: when the run executes).
    #[serde(default)]
    pub time: Option<chrono::DateTime<chrono::Utc>>,
    #[serde(default, deserialize_with = "integration_kit::null_as_default")]
    pub properties: Properties,
    #[serde(default)]
    pub value: Option<f64>,
    #[serde(default)]
    pub currency: Option<Currency>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct EventTracked {
    pub accepted: bool,
}
