//! One module per SMS provider: `fake` (in-process), `twilio` (Twilio Programmable
//! Messaging), `nineteen` (019, catalogue key `019`) and `acs` (Azure Communication
//! Services SMS, `acs-sms`). What they share lives here: how many segments a message takes,
//! what an accepted send produces, and how a vendor's own text may enter an error message.

pub mod acs;
pub mod fake;
pub mod nineteen;
pub mod twilio;

/// What an accepted send produced: the vendor's message id (delivery receipts find the run by
/// it), its status, the segments (also the run's usage) and the attempts; `extra` adds the
/// vendor's own fields. Never the number or the text.
pub(crate) fn sent(
    message_id: String,
    status: &str,
    parts: u64,
    attempts: u32,
    extra: &[(&str, serde_json::Value)],
) -> integration_kit::Done<crate::SmsSent> {
    let vendor = extra
        .iter()
        .map(|(k, v)| ((*k).to_owned(), v.clone()))
        .collect();
    integration_kit::Done::new(crate::SmsSent {
        message_id: message_id.clone(),
        status: status.to_owned(),
        segments: parts,
        attempts,
        vendor,
    })
    .usage(domain::RunUsage {
        units: parts,
        ..domain::RunUsage::default()
    })
    .vendor_message_id(message_id)
}

/// The GSM 03.38 default alphabet: one septet each.
const GSM7_BASIC: &str = "@£$¥èéùìòÇ\nØø\rÅåΔ_ΦΓΛΩΠΨΣΘΞÆæßÉ !\"#¤%&'()*+,-./0123456789:;<=>?\
¡ABCDEFGHIJKLMNOPQRSTUVWXYZÄÖÑÜ§¿abcdefghijklmnopqrstuvwxyzäöñüà";
/// The extension table: an escape and the character, two septets each.
const GSM7_EXTENSION: &str = "\u{c}^{}\\[~]|€";

/// SMS segments a body takes when the vendor does not say: GSM-7 bodies fit 160 septets
/// alone and 153 per part when concatenated; anything else (Hebrew, emoji) goes as UCS-2,
/// 70 UTF-16 units alone and 67 per part.
pub fn segments(body: &str) -> u64 {
    let mut septets = 0u64;
    let mut gsm = true;
    for c in body.chars() {
        if GSM7_BASIC.contains(c) {
            septets += 1;
        } else if GSM7_EXTENSION.contains(c) {
            septets += 2;
        } else {
            gsm = false;
            break;
        }
    }
    let (units, alone, per_part) = if gsm {
        (septets, 160, 153)
    } else {
        (body.encode_utf16().count() as u64, 70, 67)
    };
    if units <= alone {
        1
    } else {
        units.div_ceil(per_part)
    }
}

pub(crate) use integration_kit::vendor_text;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn segments_follow_the_encoding() {
        assert_eq!(segments("hi"), 1);
        assert_eq!(segments(&"a".repeat(160)), 1);
        assert_eq!(segments(&"a".repeat(161)), 2);
        assert_eq!(segments(&"a".repeat(306)), 2);
        assert_eq!(segments(&"a".repeat(307)), 3);
        // Extension characters take two septets.
        assert_eq!(segments(&"€".repeat(80)), 1);
        assert_eq!(segments(&"€".repeat(81)), 2);
        // Hebrew goes as UCS-2.
        assert_eq!(segments(&"ש".repeat(70)), 1);
        assert_eq!(segments(&"ש".repeat(71)), 2);
        assert_eq!(segments(&"ש".repeat(135)), 3);
    }
}

/// What the providers' tests share: a fake vendor over real HTTP on the loopback, and a
/// [`ProviderCall`](integration_kit::ProviderCall) with a short pipeline policy and the
/// SSRF-guarded client.
#[cfg(test)]
pub(crate) mod test_support {
    pub(crate) use integration_kit::testing::{
        ATTEMPT_TIMEOUT, FakeVendor, Harness, Perform, Recorded, Reply, assert_no_secret, run_id,
    };
}
