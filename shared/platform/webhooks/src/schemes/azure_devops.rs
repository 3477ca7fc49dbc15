//! Azure DevOps service hooks: no signature; the subscription's basic-auth password or a custom
//! header value is the shared secret, compared in constant time.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;

use super::{Outcome, json_body};
use crate::headers::{ct_eq_secret, json_str, required};
use crate::{AzureDevOpsAuth, Secret, Unverified, VerifyError};

pub(super) fn verify(
    req: &Unverified<'_>,
    secret: &Secret,
    mode: &AzureDevOpsAuth,
) -> Result<Outcome, VerifyError> {
    let expected = secret.symmetric()?;
    let ok = match mode {
        AzureDevOpsAuth::Basic { username } => {
            let header = required(req.headers(), "Authorization")?;
            let (scheme, creds) = header
                .split_once(' ')
                .ok_or(VerifyError::Malformed("Authorization"))?;
            if !scheme.eq_ignore_ascii_case("basic") {
                return Err(VerifyError::Malformed("Authorization"));
            }
            let decoded = STANDARD
                .decode(creds.trim())
                .map_err(|_| VerifyError::Malformed("Authorization"))?;
            let colon = decoded
                .iter()
                .position(|b| *b == b':')
                .ok_or(VerifyError::Malformed("Authorization"))?;
            let (user, password) = (&decoded[..colon], &decoded[colon + 1..]);
            // Both compared, no short circuit.
            ct_eq_secret(user, username.as_bytes()) & ct_eq_secret(password, expected)
        }
        AzureDevOpsAuth::Header { name } => {
            ct_eq_secret(required(req.headers(), name)?.as_bytes(), expected)
        }
    };
    if !ok {
        return Err(VerifyError::BadSignature);
    }
    let body = json_body(req.body());
    Ok(Outcome {
        delivery_id: body.as_ref().and_then(|b| json_str(b, &["id"])),
        event_type: body.as_ref().and_then(|b| json_str(b, &["eventType"])),
        ..Outcome::default()
    })
}
