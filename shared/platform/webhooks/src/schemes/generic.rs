//! Our generic HMAC-SHA256 contract (see [`GenericHmac`]).

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use chrono::{DateTime, Utc};

use super::Outcome;
use crate::headers::{check_timestamp, ct_eq, hmac_sha256, meta, required, unhex};
use crate::{GenericHmac, Secret, SignatureEncoding, Unverified, VerifyError};

pub(super) fn verify(
    req: &Unverified<'_>,
    secret: &Secret,
    now: DateTime<Utc>,
    cfg: &GenericHmac,
) -> Result<Outcome, VerifyError> {
    let key = secret.symmetric()?;
    let header = required(req.headers(), &cfg.header)?;
    let (expected, signed_at) = match &cfg.timestamp_header {
        Some(name) => {
            let t = required(req.headers(), name)?;
            let ts = check_timestamp(t, now, cfg.tolerance_secs)?;
            (
                hmac_sha256(key, &[t.as_bytes(), b".", req.body()]),
                Some(ts),
            )
        }
        None => (hmac_sha256(key, &[req.body()]), None),
    };
    let candidates: Vec<Vec<u8>> = header
        .split([' ', ','])
        .filter_map(|s| s.strip_prefix(cfg.prefix.as_str()))
        .filter_map(|s| match cfg.encoding {
            SignatureEncoding::Hex => unhex(s),
            SignatureEncoding::Base64 => STANDARD.decode(s).ok(),
        })
        .collect();
    if candidates.is_empty() {
        return Err(VerifyError::Malformed("signature header"));
    }
    let matched = candidates
        .iter()
        .fold(false, |ok, c| ok | ct_eq(c, &expected));
    if !matched {
        return Err(VerifyError::BadSignature);
    }
    Ok(Outcome {
        delivery_id: meta(req.headers(), "X-Event-Id"),
        event_type: meta(req.headers(), "X-Event-Type"),
        signed_at,
        ..Outcome::default()
    })
}
