//! `sms`: the SMS app. One operation, `send` (`{to, body, from?}`; `to` in E.164), through
//! the tenant's connections with automatic failover in priority order, on the integration
//! kit. Providers, one module each under `providers`: the Fake (`fake`, in-process), Twilio
//! (`twilio`), 019 (`019`, Israeli numbers only) and Azure Communication Services SMS
//! (`acs-sms`).

pub mod providers;

use app_context::{AppContext, AppRegistration, CatalogueEntry, InvalidSetting};
use domain::AuthScheme;
use functions_runtime::FunctionApp;
use integration_kit::{Operation, VendorApp};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

pub const SLUG: &str = "sms";
pub const SOURCE: &str = "/integration/sms";

/// The longest message accepted (ten concatenated segments of 160 GSM characters).
pub const MAX_BODY_CHARS: usize = 1600;

/// The providers this app has adapters for, as the registry's catalogue lists them.
pub const CATALOGUE: &[CatalogueEntry] = &[
    entry(
        "fake",
        "Fake SMS (tests and demos)",
        AuthScheme::ApiKey,
        "https://fake-sms.invalid",
    ),
    entry(
        "twilio",
        "Twilio Programmable Messaging",
        AuthScheme::Basic,
        "https://api.twilio.com",
    ),
    entry("019", "019 SMS", AuthScheme::Bearer, "https://019sms.co.il"),
    entry(
        "acs-sms",
        "Azure Communication Services SMS",
        AuthScheme::Hmac,
        "https://communication.azure.com",
    ),
];

const fn entry(
    key: &'static str,
    name: &'static str,
    auth: AuthScheme,
    base_url: &'static str,
) -> CatalogueEntry {
    CatalogueEntry::retested(key, name, domain::ProviderCategory::Sms, auth, base_url)
}

pub fn registration() -> AppRegistration {
    integration_kit::registration(SLUG, build, CATALOGUE)
}

pub fn build(ctx: &AppContext) -> Result<FunctionApp, InvalidSetting> {
    VendorApp::new(SLUG, SOURCE)
        .failover(true)
        .provider(providers::fake::Fake)
        .provider(providers::twilio::Twilio)
        .provider(providers::nineteen::Nineteen)
        .provider(providers::acs::AcsSms)
        .build(ctx)
}

/// `send`: one text message to one number.
pub struct Send;

impl Operation for Send {
    const NAME: &'static str = "send";
    type Input = SendSms;
    type Output = SmsSent;
}

/// `send`'s input: `to` (E.164), `body` (1 to 1600 characters), optional `from`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SendSms {
    pub to: E164,
    pub body: SmsBody,
    /// The sender, when not the connection's: a sender id or number of at most 32
    /// characters.
    #[serde(default)]
    pub from: Option<SenderId>,
}

/// What a sent message's run keeps: the vendor's message id (delivery receipts find the run
/// by it), its status, the segments and the attempts, and the vendor's own ids. Never the
/// number or the text.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SmsSent {
    pub message_id: String,
    pub status: String,
    pub segments: u64,
    pub attempts: u32,
    /// The vendor's own fields (019's `shipmentId`, ACS's `repeatabilityResult`).
    #[serde(flatten)]
    pub vendor: Map<String, Value>,
}

integration_kit::checked_string!(
    /// An E.164 number.
    E164,
    |s| {
        if is_e164(s) {
            Ok(())
        } else {
            Err("must be an E.164 number such as +972501234567".into())
        }
    }
);

integration_kit::checked_string!(
    /// A message body of 1 to [`MAX_BODY_CHARS`] characters.
    SmsBody,
    |s| {
        let chars = s.chars().count();
        if chars == 0 || chars > MAX_BODY_CHARS {
            Err(format!("must be 1 to {MAX_BODY_CHARS} characters, not {chars}"))
        } else {
            Ok(())
        }
    }
);

integration_kit::checked_string!(
    /// A sender id or number of 1 to 32 characters.
    SenderId,
    |s| {
        if !s.is_empty() && s.chars().count() <= 32 {
            Ok(())
        } else {
            Err("must be a sender id or number of 1 to 32 characters".into())
        }
    }
);

/// Whether `s` is an E.164 number: `+`, then 8 to 15 digits, the first not 0.
pub fn is_e164(s: &str) -> bool {
    let Some(digits) = s.strip_prefix('+') else {
        return false;
    };
    (8..=15).contains(&digits.len())
        && digits.bytes().all(|b| b.is_ascii_digit())
        && !digits.starts_with('0')
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn path_of(input: Value) -> String {
        integration_kit::parse_input::<Send>(&input)
            .expect_err("refused")
            .path
    }

    #[test]
    fn send_input_is_checked() {
        let ok =
            integration_kit::parse_input::<Send>(&json!({"to": "+972501234567", "body": "hi"}))
                .expect("valid");
        assert_eq!(ok.to.as_str(), "+972501234567");
        assert_eq!(ok.from, None);
        assert_eq!(path_of(json!({"to": "0501234567", "body": "hi"})), "to");
        assert_eq!(path_of(json!({"to": "+972501234567", "body": ""})), "body");
        assert_eq!(
            path_of(json!({"to": "+972501234567", "body": "x".repeat(1601)})),
            "body"
        );
        let e = integration_kit::parse_input::<Send>(
            &json!({"to": "+972501234567", "body": "hi", "cc": 1}),
        )
        .expect_err("unknown field");
        assert!(e.message.contains("unknown field `cc`"), "{e}");
        assert_eq!(
            path_of(json!({"to": "+972501234567", "body": "hi", "from": 5})),
            "from"
        );
        assert_eq!(path_of(json!("hi")), "");
        assert!(is_e164("+15005550006"));
        assert!(!is_e164("+0123456789"));
        assert!(!is_e164("+1234"));
    }
}
