//! The outbound side of Standard Webhooks: signing our deliveries and minting endpoint secrets.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use http::{HeaderMap, HeaderValue};
use rand::RngCore as _;

use crate::headers::hmac_sha256;
use crate::{Secret, VerifyError};

/// `v1,<base64 HMAC-SHA256(key, "{msg_id}.{timestamp}.{body}")>` for one symmetric secret.
///
/// Fails with [`VerifyError::BadSecret`] for a public key (it cannot sign).
pub fn sign(
    secret: &Secret,
    msg_id: &str,
    timestamp: i64,
    body: &[u8],
) -> Result<String, VerifyError> {
    let key = secret.symmetric()?;
    let ts = timestamp.to_string();
    let mac = hmac_sha256(key, &[msg_id.as_bytes(), b".", ts.as_bytes(), b".", body]);
    Ok(format!("v1,{}", STANDARD.encode(mac)))
}

/// The `webhook-signature` value for several secrets at once (rotation overlap): one `v1,…`
/// entry per secret, separated by spaces. A receiver holding any of them verifies.
pub fn sign_all<'s>(
    secrets: impl IntoIterator<Item = &'s Secret>,
    msg_id: &str,
    timestamp: i64,
    body: &[u8],
) -> Result<String, VerifyError> {
    let signatures = secrets
        .into_iter()
        .map(|s| sign(s, msg_id, timestamp, body))
        .collect::<Result<Vec<_>, _>>()?;
    if signatures.is_empty() {
        return Err(VerifyError::BadSecret);
    }
    Ok(signatures.join(" "))
}

/// The three Standard Webhooks headers for a delivery signed with `secrets`.
pub fn signed_headers<'s>(
    secrets: impl IntoIterator<Item = &'s Secret>,
    msg_id: &str,
    timestamp: i64,
    body: &[u8],
) -> Result<HeaderMap, VerifyError> {
    let signature = sign_all(secrets, msg_id, timestamp, body)?;
    let value = |s: &str| HeaderValue::from_str(s).map_err(|_| VerifyError::Malformed("msg id"));
    let mut headers = HeaderMap::new();
    headers.insert("webhook-id", value(msg_id)?);
    headers.insert("webhook-timestamp", HeaderValue::from(timestamp));
    headers.insert("webhook-signature", value(&signature)?);
    Ok(headers)
}

/// A new endpoint secret: `whsec_` + base64 of 32 random bytes from the OS generator.
pub fn generate_secret() -> String {
    let mut bytes = [0u8; 32];
    rand::rngs::OsRng.fill_bytes(&mut bytes);
    format!("whsec_{}", STANDARD.encode(bytes))
}

#[cfg(test)]
mod tests;
