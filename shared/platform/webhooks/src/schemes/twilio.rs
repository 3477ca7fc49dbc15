//! Twilio: `X-Twilio-Signature` = base64 HMAC-SHA1 (or SHA-256 with a Webhook Rules key) over
//! the URL Twilio was configured with followed by the form parameters sorted by name, each as
//! `name` + `value`. JSON bodies are bound by the URL's `bodySHA256` parameter (hex SHA-256 of
//! the body) and the signature covers the URL only.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use hmac::{Hmac, Mac};
use sha1::Sha1;
use sha2::{Digest, Sha256};

use super::Outcome;
use crate::headers::{HmacSha256, ct_eq, meta, query_values, required, single, unhex};
use crate::{Secret, TwilioVariant, Unverified, VerifyError};

const SIGNATURE: &str = "X-Twilio-Signature";

pub(super) fn verify(
    req: &Unverified<'_>,
    secret: &Secret,
    variant: TwilioVariant,
) -> Result<Outcome, VerifyError> {
    let key = secret.symmetric()?;
    let header = required(req.headers(), SIGNATURE)?;
    let given = STANDARD
        .decode(header)
        .map_err(|_| VerifyError::Malformed("X-Twilio-Signature"))?;
    let body_hash = query_values(req.url(), "bodySHA256");
    if body_hash.len() > 1 {
        return Err(VerifyError::Malformed("bodySHA256 parameter"));
    }
    let mut params = Vec::new();
    let mut body_matches = true;
    if let Some(hash) = body_hash.first() {
        let hash = unhex(hash).ok_or(VerifyError::Malformed("bodySHA256 parameter"))?;
        body_matches = ct_eq(&hash, &Sha256::digest(req.body()));
    } else if is_form(req) {
        params = form_urlencoded::parse(req.body())
            .map(|(k, v)| (k.into_owned(), v.into_owned()))
            .collect::<Vec<_>>();
        params.sort();
    } else if !req.body().is_empty() {
        // A body that is neither form parameters nor bound by bodySHA256 would go unsigned.
        return Err(VerifyError::Malformed("body not covered by the signature"));
    }
    let signature_matches = match variant {
        TwilioVariant::Sha1 => {
            let mut mac = Hmac::<Sha1>::new_from_slice(key).map_err(|_| VerifyError::BadSecret)?;
            feed(&mut mac, req.url(), &params);
            mac.verify_slice(&given).is_ok()
        }
        TwilioVariant::Sha256 => {
            let mut mac = HmacSha256::new_from_slice(key).map_err(|_| VerifyError::BadSecret)?;
            feed(&mut mac, req.url(), &params);
            mac.verify_slice(&given).is_ok()
        }
    };
    if !(signature_matches & body_matches) {
        return Err(VerifyError::BadSignature);
    }
    let param = |name: &str| {
        params
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.clone())
            .filter(|v| !v.is_empty())
    };
    let status = param("MessageStatus");
    let delivery_id = meta(req.headers(), "I-Twilio-Idempotency-Token").or_else(|| {
        let sid = param("MessageSid")?;
        Some(match &status {
            Some(s) => format!("{sid}:{s}"),
            None => sid,
        })
    });
    Ok(Outcome {
        delivery_id,
        event_type: status,
        ..Outcome::default()
    })
}

fn feed(mac: &mut impl Mac, url: &str, params: &[(String, String)]) {
    mac.update(url.as_bytes());
    for (k, v) in params {
        mac.update(k.as_bytes());
        mac.update(v.as_bytes());
    }
}

fn is_form(req: &Unverified<'_>) -> bool {
    single(req.headers(), "Content-Type")
        .ok()
        .flatten()
        .is_some_and(|ct| {
            ct.get(..33)
                .is_some_and(|p| p.eq_ignore_ascii_case("application/x-www-form-urlencoded"))
        })
}
