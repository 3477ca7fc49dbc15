//! BILL (bill.com) webhook notifications: `x-bill-sha-signature` = base64 HMAC-SHA256 of the
//! raw body, keyed with the subscription's `securityKey` (shown once when BILL creates the
//! subscription). BILL signs no timestamp; its events carry a unique id
//! (`metadata.eventId`), the delivery id here, and come in no guaranteed order. The event
//! type is `metadata.eventType` (`payment.updated`).

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use hmac::Mac;

use super::{Outcome, json_body};
use crate::headers::{HmacSha256, json_str, required};
use crate::{Secret, Unverified, VerifyError};

const SIGNATURE: &str = "x-bill-sha-signature";

pub(super) fn verify(req: &Unverified<'_>, secret: &Secret) -> Result<Outcome, VerifyError> {
    let key = secret.symmetric()?;
    let header = required(req.headers(), SIGNATURE)?;
    let given = STANDARD
        .decode(header.trim())
        .map_err(|_| VerifyError::Malformed("x-bill-sha-signature"))?;
    let mut mac = HmacSha256::new_from_slice(key).map_err(|_| VerifyError::BadSecret)?;
    mac.update(req.body());
    mac.verify_slice(&given)
        .map_err(|_| VerifyError::BadSignature)?;
    let body = json_body(req.body());
    Ok(Outcome {
        delivery_id: body
            .as_ref()
            .and_then(|b| json_str(b, &["metadata", "eventId"])),
        event_type: body
            .as_ref()
            .and_then(|b| json_str(b, &["metadata", "eventType"])),
        ..Outcome::default()
    })
}
