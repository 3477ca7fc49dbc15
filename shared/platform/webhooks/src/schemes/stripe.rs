//! Stripe: `Stripe-Signature: t=<unix>,v1=<hex>[,v1=<hex>…]`, HMAC-SHA256 keyed with the whole
//! `whsec_…` string over `"{t}.{body}"`; any `v1` matching passes (secret rotation).

use chrono::{DateTime, Utc};

use super::{Outcome, json_body};
use crate::headers::{check_timestamp, ct_eq, hmac_sha256, json_str, required, unhex};
use crate::{Secret, Unverified, VerifyError};

const SIGNATURE: &str = "Stripe-Signature";

pub(super) fn verify(
    req: &Unverified<'_>,
    secret: &Secret,
    now: DateTime<Utc>,
    tolerance_secs: u64,
) -> Result<Outcome, VerifyError> {
    let key = secret.symmetric()?;
    let header = required(req.headers(), SIGNATURE)?;
    let mut timestamp = None;
    let mut candidates = Vec::new();
    for item in header.split(',') {
        let Some((k, v)) = item.trim().split_once('=') else {
            continue;
        };
        match k {
            "t" if timestamp.is_some() => {
                return Err(VerifyError::Malformed("Stripe-Signature timestamp"));
            }
            "t" => timestamp = Some(v),
            // Entries that are not hex cannot match; they are skipped, not fatal.
            "v1" => candidates.extend(unhex(v)),
            _ => {}
        }
    }
    let t = timestamp.ok_or(VerifyError::Malformed("Stripe-Signature timestamp"))?;
    let ts = check_timestamp(t, now, tolerance_secs)?;
    let expected = hmac_sha256(key, &[t.as_bytes(), b".", req.body()]);
    // Check every candidate, no early exit.
    let matched = candidates
        .iter()
        .fold(false, |ok, c| ok | ct_eq(c, &expected));
    if !matched {
        return Err(VerifyError::BadSignature);
    }
    let body = json_body(req.body());
    Ok(Outcome {
        delivery_id: body.as_ref().and_then(|b| json_str(b, &["id"])),
        event_type: body.as_ref().and_then(|b| json_str(b, &["type"])),
        signed_at: Some(ts),
        ..Outcome::default()
    })
}
