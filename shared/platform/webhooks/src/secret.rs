//! Key material for a scheme, with a `Debug` that never shows it.

use std::fmt;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use p256::pkcs8::DecodePublicKey as _;

use crate::{Scheme, VerifyError};

/// The key material a scheme verifies with: the shared HMAC key or value, or a vendor's public
/// key. `Debug` is redacted; there is no `Display` and no way to read the bytes back out.
#[derive(Clone)]
pub struct Secret {
    key: Key,
}

#[derive(Clone)]
pub(crate) enum Key {
    /// HMAC keys and shared values (basic-auth password, header or query value).
    Symmetric(Vec<u8>),
    /// Standard Webhooks `v1a` public key (`whpk_…`).
    Ed25519(ed25519_dalek::VerifyingKey),
    /// SendGrid's Event Webhook verification key.
    P256(p256::ecdsa::VerifyingKey),
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let kind = match self.key {
            Key::Symmetric(_) => "symmetric",
            Key::Ed25519(_) => "ed25519 public key",
            Key::P256(_) => "p256 public key",
        };
        write!(f, "Secret({kind}, redacted)")
    }
}

const WHSEC: &str = "whsec_";
const WHPK: &str = "whpk_";

impl Secret {
    /// A symmetric secret used as given: the HMAC key of GitHub, Stripe (the whole `whsec_…`
    /// string, not decoded), Twilio (auth token), Slack, Shopify and generic HMAC, or the shared
    /// value of Azure DevOps and Event Grid. Empty secrets are refused.
    pub fn from_bytes(bytes: impl Into<Vec<u8>>) -> Result<Self, VerifyError> {
        let bytes = bytes.into();
        if bytes.is_empty() {
            return Err(VerifyError::BadSecret);
        }
        Ok(Self {
            key: Key::Symmetric(bytes),
        })
    }

    /// A Standard Webhooks secret: `whsec_<base64>` (symmetric, `v1`), `whpk_<base64>`
    /// (ed25519 public key, `v1a`), or bare base64 (symmetric, as the reference libraries accept).
    pub fn standard_webhooks(s: &str) -> Result<Self, VerifyError> {
        let s = s.trim();
        if let Some(b64) = s.strip_prefix(WHPK) {
            let bytes = STANDARD.decode(b64).map_err(|_| VerifyError::BadSecret)?;
            return Self::ed25519_public_key(&bytes);
        }
        let b64 = s.strip_prefix(WHSEC).unwrap_or(s);
        let bytes = STANDARD.decode(b64).map_err(|_| VerifyError::BadSecret)?;
        Self::from_bytes(bytes)
    }

    /// An ed25519 public key (32 bytes) for Standard Webhooks `v1a`.
    pub fn ed25519_public_key(bytes: &[u8]) -> Result<Self, VerifyError> {
        let bytes: [u8; 32] = bytes.try_into().map_err(|_| VerifyError::BadSecret)?;
        let key =
            ed25519_dalek::VerifyingKey::from_bytes(&bytes).map_err(|_| VerifyError::BadSecret)?;
        Ok(Self {
            key: Key::Ed25519(key),
        })
    }

    /// SendGrid's verification key as shown in Mail Settings: base64 of the DER
    /// SubjectPublicKeyInfo (a PEM frame around it is tolerated).
    pub fn sendgrid_public_key(b64_der: &str) -> Result<Self, VerifyError> {
        let b64: String = b64_der
            .lines()
            .filter(|l| !l.starts_with("-----"))
            .flat_map(|l| l.trim().chars())
            .collect();
        let der = STANDARD.decode(b64).map_err(|_| VerifyError::BadSecret)?;
        let key = p256::ecdsa::VerifyingKey::from_public_key_der(&der)
            .map_err(|_| VerifyError::BadSecret)?;
        Ok(Self {
            key: Key::P256(key),
        })
    }

    /// The secret for `scheme` from the string the tenant gave: Standard Webhooks, SendGrid
    /// and Adyen (hex) strings are decoded, every other scheme takes the string's bytes as
    /// they are.
    pub fn for_scheme(scheme: &Scheme, s: &str) -> Result<Self, VerifyError> {
        match scheme {
            Scheme::StandardWebhooks { .. } => Self::standard_webhooks(s),
            Scheme::SendGrid { .. } => Self::sendgrid_public_key(s),
            // Adyen shows its HMAC key as hex; its libraries sign with the decoded bytes.
            Scheme::Adyen => crate::headers::unhex(s.trim())
                .ok_or(VerifyError::BadSecret)
                .and_then(Self::from_bytes),
            _ => Self::from_bytes(s.as_bytes()),
        }
    }

    pub(crate) fn key(&self) -> &Key {
        &self.key
    }

    /// Whether a shared secret is long enough to sign `scheme`'s deliveries: at least 16
    /// bytes of key material (24 for Standard Webhooks, the least its specification allows).
    /// Public keys (SendGrid) are checked by their parsing.
    pub fn check_strength(&self, scheme: &Scheme) -> Result<(), String> {
        let Key::Symmetric(bytes) = &self.key else {
            return Ok(());
        };
        let least = match scheme {
            Scheme::StandardWebhooks { .. } => 24,
            _ => 16,
        };
        if bytes.len() < least {
            return Err(format!(
                "a {} source's secret is at least {least} bytes of key material",
                scheme.name()
            ));
        }
        Ok(())
    }

    /// The symmetric bytes, or `BadSecret` for a public key.
    pub(crate) fn symmetric(&self) -> Result<&[u8], VerifyError> {
        match &self.key {
            Key::Symmetric(b) => Ok(b),
            _ => Err(VerifyError::BadSecret),
        }
    }
}

#[cfg(test)]
mod tests;
