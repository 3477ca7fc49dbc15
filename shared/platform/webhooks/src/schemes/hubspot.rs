//! HubSpot signature v3: `X-HubSpot-Signature-v3` = base64 HMAC-SHA256(the app's client
//! secret, method + URI + body + timestamp), no separators, with `X-HubSpot-Request-Timestamp`
//! in Unix **milliseconds**; HubSpot says to refuse a timestamp older than five minutes. The
//! URI is the full URL the request was sent to; HubSpot's docs ask verifiers to decode
//! percent-encoded characters in it, which its own client library does not do, so both
//! spellings are tried (the gateway's inbound URLs have none anyway). Bodies are arrays of
//! events: the delivery id is the `eventId` of a single event (a batch has none: the body's
//! hash is used), the event type the `subscriptionType` they share.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use chrono::{DateTime, Utc};
use hmac::Mac;

use super::{Outcome, batch_meta, events};
use crate::headers::{HmacSha256, check_instant, required};
use crate::{Secret, Unverified, VerifyError};

const SIGNATURE: &str = "X-HubSpot-Signature-v3";
const TIMESTAMP: &str = "X-HubSpot-Request-Timestamp";

pub(super) fn verify(
    req: &Unverified<'_>,
    secret: &Secret,
    now: DateTime<Utc>,
    tolerance_secs: u64,
) -> Result<Outcome, VerifyError> {
    let key = secret.symmetric()?;
    let t = required(req.headers(), TIMESTAMP)?;
    let header = required(req.headers(), SIGNATURE)?;
    let millis: i64 = t
        .parse()
        .map_err(|_| VerifyError::Malformed("X-HubSpot-Request-Timestamp"))?;
    let ts = check_instant(millis.div_euclid(1000), now, tolerance_secs)?;
    let given = STANDARD
        .decode(header)
        .map_err(|_| VerifyError::Malformed("X-HubSpot-Signature-v3"))?;
    let decoded = decode_uri(req.url());
    let signed_with = |uri: &str| {
        let Ok(mut mac) = HmacSha256::new_from_slice(key) else {
            return false;
        };
        mac.update(req.method().as_str().as_bytes());
        mac.update(uri.as_bytes());
        mac.update(req.body());
        mac.update(t.as_bytes());
        mac.verify_slice(&given).is_ok()
    };
    // Both spellings are always computed, so the time taken says nothing about which.
    let (as_sent, as_decoded) = (signed_with(req.url()), signed_with(&decoded));
    if !(as_sent | as_decoded) {
        return Err(VerifyError::BadSignature);
    }
    let events = events(req.body());
    let (_, event_type) = batch_meta(&events, "eventId", "subscriptionType");
    // HubSpot's event ids are numbers.
    let delivery_id = match events.as_slice() {
        [one] => match &one["eventId"] {
            serde_json::Value::Number(n) => Some(n.to_string()),
            serde_json::Value::String(s) if !s.is_empty() => Some(s.clone()),
            _ => None,
        },
        _ => None,
    };
    Ok(Outcome {
        delivery_id,
        event_type,
        signed_at: Some(ts),
        ..Outcome::default()
    })
}

/// The URI with the characters HubSpot's validation guide lists decoded.
fn decode_uri(uri: &str) -> String {
    const DECODED: [(&str, &str); 12] = [
        ("%3A", ":"),
        ("%2F", "/"),
        ("%3F", "?"),
        ("%40", "@"),
        ("%21", "!"),
        ("%24", "$"),
        ("%27", "'"),
        ("%28", "("),
        ("%29", ")"),
        ("%2A", "*"),
        ("%2C", ","),
        ("%3B", ";"),
    ];
    let mut out = uri.to_owned();
    for (from, to) in DECODED {
        out = out
            .replace(from, to)
            .replace(&from.to_ascii_lowercase(), to);
    }
    out
}
