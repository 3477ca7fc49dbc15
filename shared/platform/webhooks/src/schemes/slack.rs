//! Slack v0: `X-Slack-Signature: v0=<hex HMAC-SHA256(secret, "v0:{ts}:{body}")>` with
//! `X-Slack-Request-Timestamp`.

use chrono::{DateTime, Utc};
use hmac::Mac;

use super::{Outcome, json_body};
use crate::headers::{HmacSha256, check_timestamp, json_str, required, sha256_hex, unhex};
use crate::{Secret, Unverified, VerifyError};

const SIGNATURE: &str = "X-Slack-Signature";
const TIMESTAMP: &str = "X-Slack-Request-Timestamp";

pub(super) fn verify(
    req: &Unverified<'_>,
    secret: &Secret,
    now: DateTime<Utc>,
    tolerance_secs: u64,
) -> Result<Outcome, VerifyError> {
    let key = secret.symmetric()?;
    let t = required(req.headers(), TIMESTAMP)?;
    let header = required(req.headers(), SIGNATURE)?;
    let ts = check_timestamp(t, now, tolerance_secs)?;
    let given = header
        .strip_prefix("v0=")
        .and_then(unhex)
        .ok_or(VerifyError::Malformed("X-Slack-Signature"))?;
    let mut mac = HmacSha256::new_from_slice(key).map_err(|_| VerifyError::BadSecret)?;
    mac.update(b"v0:");
    mac.update(t.as_bytes());
    mac.update(b":");
    mac.update(req.body());
    mac.verify_slice(&given)
        .map_err(|_| VerifyError::BadSignature)?;
    // Events API bodies are JSON with `event_id` (stable across Slack's retries); other
    // payloads (slash commands, interactivity forms) have no id: the signature is unique per
    // delivery, so its hash is the dedupe key.
    let body = json_body(req.body());
    let delivery_id = body
        .as_ref()
        .and_then(|b| json_str(b, &["event_id"]))
        .or_else(|| Some(sha256_hex(header.as_bytes())));
    let event_type = body
        .as_ref()
        .and_then(|b| json_str(b, &["event", "type"]).or_else(|| json_str(b, &["type"])));
    Ok(Outcome {
        delivery_id,
        event_type,
        signed_at: Some(ts),
        ..Outcome::default()
    })
}
