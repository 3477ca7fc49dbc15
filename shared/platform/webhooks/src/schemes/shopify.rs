//! Shopify: `X-Shopify-Hmac-SHA256` (or the unprefixed `Shopify-Hmac-Sha256` of the Events
//! product) = base64 HMAC-SHA256(client secret, body). No timestamp: dedupe on the webhook id.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use hmac::Mac;

use super::Outcome;
use crate::headers::{HmacSha256, one_of};
use crate::{Secret, Unverified, VerifyError};

const SIGNATURES: [&str; 2] = ["X-Shopify-Hmac-SHA256", "Shopify-Hmac-Sha256"];

pub(super) fn verify(req: &Unverified<'_>, secret: &Secret) -> Result<Outcome, VerifyError> {
    let key = secret.symmetric()?;
    let header = one_of(req.headers(), &SIGNATURES)?
        .ok_or_else(|| VerifyError::MissingHeader(SIGNATURES[0].to_owned()))?;
    let given = STANDARD
        .decode(header)
        .map_err(|_| VerifyError::Malformed("X-Shopify-Hmac-SHA256"))?;
    let mut mac = HmacSha256::new_from_slice(key).map_err(|_| VerifyError::BadSecret)?;
    mac.update(req.body());
    mac.verify_slice(&given)
        .map_err(|_| VerifyError::BadSignature)?;
    let meta = |names: &[&str]| {
        one_of(req.headers(), names)
            .ok()
            .flatten()
            .filter(|v| !v.is_empty())
            .map(str::to_owned)
    };
    Ok(Outcome {
        delivery_id: meta(&["X-Shopify-Webhook-Id", "Shopify-Webhook-Id"]),
        event_type: meta(&["X-Shopify-Topic", "Shopify-Topic"]),
        ..Outcome::default()
    })
}
