//! SendGrid signed Event Webhook: ECDSA P-256/SHA-256 over `timestamp + body` (no separator),
//! signature base64 DER in `X-Twilio-Email-Event-Webhook-Signature`.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use chrono::{DateTime, Utc};
use p256::ecdsa::Signature;
use p256::ecdsa::signature::DigestVerifier as _;
use sha2::{Digest, Sha256};

use super::{Outcome, batch_meta, events};
use crate::headers::{check_timestamp, required};
use crate::secret::Key;
use crate::{Secret, Unverified, VerifyError};

const SIGNATURE: &str = "X-Twilio-Email-Event-Webhook-Signature";
const TIMESTAMP: &str = "X-Twilio-Email-Event-Webhook-Timestamp";

pub(super) fn verify(
    req: &Unverified<'_>,
    secret: &Secret,
    now: DateTime<Utc>,
    tolerance_secs: u64,
) -> Result<Outcome, VerifyError> {
    let Key::P256(key) = secret.key() else {
        return Err(VerifyError::BadSecret);
    };
    let header = required(req.headers(), SIGNATURE)?;
    let t = required(req.headers(), TIMESTAMP)?;
    let ts = check_timestamp(t, now, tolerance_secs)?;
    let der = STANDARD
        .decode(header)
        .map_err(|_| VerifyError::Malformed(SIGNATURE))?;
    let signature = Signature::from_der(&der).map_err(|_| VerifyError::Malformed(SIGNATURE))?;
    // Signers other than ours may emit high-S signatures; both forms are the same signature.
    let signature = signature.normalize_s().unwrap_or(signature);
    let digest = Sha256::new()
        .chain_update(t.as_bytes())
        .chain_update(req.body());
    key.verify_digest(digest, &signature)
        .map_err(|_| VerifyError::BadSignature)?;
    let (delivery_id, event_type) = batch_meta(&events(req.body()), "sg_event_id", "event");
    Ok(Outcome {
        delivery_id,
        event_type,
        signed_at: Some(ts),
        ..Outcome::default()
    })
}
