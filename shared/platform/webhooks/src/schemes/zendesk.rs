//! Zendesk: `X-Zendesk-Webhook-Signature` = base64 HMAC-SHA256(the webhook's signing secret,
//! timestamp + body, no separator), with `X-Zendesk-Webhook-Signature-Timestamp` an ISO 8601
//! UTC instant (`2024-04-17T17:18:10Z`). Zendesk documents no replay window: the source's
//! tolerance (five minutes by default) is the platform's. The delivery id is the event's
//! `id` (stable across Zendesk's retries), the event type its `type`
//! (`zen:event-type:ticket.status_changed`).

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use chrono::{DateTime, Utc};
use hmac::Mac;

use super::{Outcome, json_body};
use crate::headers::{HmacSha256, check_instant, json_str, required};
use crate::{Secret, Unverified, VerifyError};

const SIGNATURE: &str = "X-Zendesk-Webhook-Signature";
const TIMESTAMP: &str = "X-Zendesk-Webhook-Signature-Timestamp";

pub(super) fn verify(
    req: &Unverified<'_>,
    secret: &Secret,
    now: DateTime<Utc>,
    tolerance_secs: u64,
) -> Result<Outcome, VerifyError> {
    let key = secret.symmetric()?;
    let t = required(req.headers(), TIMESTAMP)?;
    let header = required(req.headers(), SIGNATURE)?;
    let instant = DateTime::parse_from_rfc3339(t)
        .map_err(|_| VerifyError::Malformed("X-Zendesk-Webhook-Signature-Timestamp"))?;
    let ts = check_instant(instant.timestamp(), now, tolerance_secs)?;
    let given = STANDARD
        .decode(header)
        .map_err(|_| VerifyError::Malformed("X-Zendesk-Webhook-Signature"))?;
    let mut mac = HmacSha256::new_from_slice(key).map_err(|_| VerifyError::BadSecret)?;
    mac.update(t.as_bytes());
    mac.update(req.body());
    mac.verify_slice(&given)
        .map_err(|_| VerifyError::BadSignature)?;
    let body = json_body(req.body());
    Ok(Outcome {
        delivery_id: body.as_ref().and_then(|b| json_str(b, &["id"])),
        event_type: body.as_ref().and_then(|b| json_str(b, &["type"])),
        signed_at: Some(ts),
        ..Outcome::default()
    })
}
