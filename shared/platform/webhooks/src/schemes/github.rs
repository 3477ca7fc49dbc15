//! GitHub: `X-Hub-Signature-256: sha256=<hex HMAC-SHA256(secret, body)>`. No timestamp: replay
//! protection is deduplication on `X-GitHub-Delivery`, so a delivery without a usable one
//! (missing, empty, not visible ASCII, over 128 characters), or without `X-GitHub-Event`, is
//! malformed: never deduplicated by a body hash.

use hmac::Mac;

use super::Outcome;
use crate::headers::{HmacSha256, identifier, required, unhex};
use crate::{Secret, Unverified, VerifyError};

const SIGNATURE: &str = "X-Hub-Signature-256";

pub(super) fn verify(req: &Unverified<'_>, secret: &Secret) -> Result<Outcome, VerifyError> {
    let key = secret.symmetric()?;
    let header = required(req.headers(), SIGNATURE)?;
    let given = header
        .strip_prefix("sha256=")
        .and_then(unhex)
        .ok_or(VerifyError::Malformed("X-Hub-Signature-256"))?;
    let mut mac = HmacSha256::new_from_slice(key).map_err(|_| VerifyError::BadSecret)?;
    mac.update(req.body());
    mac.verify_slice(&given)
        .map_err(|_| VerifyError::BadSignature)?;
    Ok(Outcome {
        delivery_id: Some(identifier(req.headers(), "X-GitHub-Delivery", 128)?),
        event_type: Some(identifier(req.headers(), "X-GitHub-Event", 128)?),
        ..Outcome::default()
    })
}
