//! `sms`: the SMS app. One operation, `send` (`{to, body, from?}`; `to` in E.164), through
//! the tenant's connections with automatic failover in priority order, on the integration
//! kit. Providers, one module each under `providers`: the Fake (`fake`, in-process), Twilio
//! (`twilio`), 019 (`019`, Israeli numbers only) and Azure Communication Services SMS
//! (`acs-sms`).

pub mod providers;

use std::sync::Arc;

use app_context::{AppContext, AppRegistration};
use functions_runtime::FunctionApp;
use integration_kit::{Operation, VendorApp};
use serde_json::Value;

pub const SLUG: &str = "sms";
pub const SOURCE: &str = "/integration/sms";

/// The longest message accepted (ten concatenated segments of 160 GSM characters).
pub const MAX_BODY_CHARS: usize = 1600;

pub fn registration() -> AppRegistration {
    integration_kit::registration(SLUG, build)
}

pub fn build(ctx: &AppContext) -> FunctionApp {
    VendorApp {
        slug: SLUG,
        source: SOURCE,
        providers: vec![
            Arc::new(providers::fake::Fake),
            Arc::new(providers::twilio::Twilio),
            Arc::new(providers::nineteen::Nineteen),
            Arc::new(providers::acs::AcsSms),
        ],
        operations: vec![Operation {
            name: "send",
            validate: validate_send,
        }],
        failover: true,
    }
    .build(ctx)
}

/// Whether `s` is an E.164 number: `+`, then 8 to 15 digits, the first not 0.
pub fn is_e164(s: &str) -> bool {
    let Some(digits) = s.strip_prefix('+') else {
        return false;
    };
    (8..=15).contains(&digits.len())
        && digits.bytes().all(|b| b.is_ascii_digit())
        && !digits.starts_with('0')
}

/// `send`'s input: `to` (E.164), `body` (1 to 1600 characters), optional `from`.
pub fn validate_send(input: &Value) -> Result<(), String> {
    let obj = input
        .as_object()
        .ok_or("input must be an object {to, body, from?}")?;
    if let Some(unknown) = obj
        .keys()
        .find(|k| !["to", "body", "from"].contains(&k.as_str()))
    {
        return Err(format!("{unknown:?} is not a field of send"));
    }
    let to = obj
        .get("to")
        .and_then(Value::as_str)
        .ok_or("to is required")?;
    if !is_e164(to) {
        return Err("to must be an E.164 number such as +972501234567".into());
    }
    let body = obj
        .get("body")
        .and_then(Value::as_str)
        .ok_or("body is required")?;
    let chars = body.chars().count();
    if chars == 0 || chars > MAX_BODY_CHARS {
        return Err(format!("body must be 1 to {MAX_BODY_CHARS} characters"));
    }
    if let Some(from) = obj.get("from")
        && !from
            .as_str()
            .is_some_and(|f| !f.is_empty() && f.len() <= 32)
    {
        return Err("from must be a sender id or number of at most 32 characters".into());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn send_input_is_checked() {
        assert!(validate_send(&json!({"to": "+972501234567", "body": "hi"})).is_ok());
        assert!(validate_send(&json!({"to": "0501234567", "body": "hi"})).is_err());
        assert!(validate_send(&json!({"to": "+972501234567", "body": ""})).is_err());
        assert!(validate_send(&json!({"to": "+972501234567", "body": "x".repeat(1601)})).is_err());
        assert!(validate_send(&json!({"to": "+972501234567", "body": "hi", "cc": 1})).is_err());
        assert!(validate_send(&json!({"to": "+972501234567", "body": "hi", "from": 5})).is_err());
        assert!(validate_send(&json!("hi")).is_err());
        assert!(is_e164("+15005550006"));
        assert!(!is_e164("+0123456789"));
        assert!(!is_e164("+1234"));
    }
}
