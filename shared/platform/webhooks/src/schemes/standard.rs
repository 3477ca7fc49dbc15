//! Standard Webhooks: `webhook-id`, `webhook-timestamp`, `webhook-signature` (space-separated
//! `v1,<base64 HMAC-SHA256>` and/or `v1a,<base64 ed25519>`) over `"{id}.{ts}.{body}"`. Any
//! entry of the secret's kind matching passes (rotation).

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use chrono::{DateTime, Utc};

use super::{Outcome, json_body};
use crate::headers::{check_timestamp, ct_eq, hmac_sha256, json_str, required};
use crate::secret::Key;
use crate::{Secret, Unverified, VerifyError};

pub(super) fn verify(
    req: &Unverified<'_>,
    secret: &Secret,
    now: DateTime<Utc>,
    tolerance_secs: u64,
) -> Result<Outcome, VerifyError> {
    let h = req.headers();
    let id = required(h, "webhook-id")?;
    let t = required(h, "webhook-timestamp")?;
    let header = required(h, "webhook-signature")?;
    let ts = check_timestamp(t, now, tolerance_secs)?;
    let entries = header
        .split_ascii_whitespace()
        .filter_map(|e| e.split_once(','))
        .filter_map(|(version, sig)| Some((version, STANDARD.decode(sig).ok()?)));
    let matched = match secret.key() {
        Key::Symmetric(key) => {
            let expected = hmac_sha256(key, &[id.as_bytes(), b".", t.as_bytes(), b".", req.body()]);
            entries
                .filter(|(v, _)| *v == "v1")
                .fold(false, |ok, (_, sig)| ok | ct_eq(&sig, &expected))
        }
        Key::Ed25519(key) => {
            let mut msg = Vec::with_capacity(id.len() + t.len() + 2 + req.body().len());
            msg.extend_from_slice(id.as_bytes());
            msg.push(b'.');
            msg.extend_from_slice(t.as_bytes());
            msg.push(b'.');
            msg.extend_from_slice(req.body());
            entries
                .filter(|(v, _)| *v == "v1a")
                .fold(false, |ok, (_, sig)| {
                    let valid = ed25519_dalek::Signature::from_slice(&sig)
                        .is_ok_and(|sig| key.verify_strict(&msg, &sig).is_ok());
                    ok | valid
                })
        }
        Key::P256(_) => return Err(VerifyError::BadSecret),
    };
    if !matched {
        return Err(VerifyError::BadSignature);
    }
    Ok(Outcome {
        delivery_id: Some(id.to_owned()),
        event_type: json_body(req.body()).and_then(|b| json_str(&b, &["type"])),
        signed_at: Some(ts),
        ..Outcome::default()
    })
}
