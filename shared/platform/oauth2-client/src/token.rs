//! The access token handed to callers.

use std::fmt;

use chrono::{DateTime, Utc};
use secrecy::SecretString;

/// An access token from the token endpoint. `Debug` shows everything but the secret.
#[derive(Clone)]
pub struct AccessToken {
    /// The token itself, to send as `Authorization: Bearer <secret>`.
    pub secret: SecretString,
    /// When the token expires by the server's `expires_in` (measured from when the request
    /// was sent, so slightly early); `None` when the server did not say.
    pub expires_at: Option<DateTime<Utc>>,
    /// The `token_type` as the server spelled it (always Bearer, case-insensitively; the
    /// RFC makes it required, a response without one is taken as Bearer).
    pub token_type: String,
    /// The granted scope: the response's `scope`, or the requested scope when the response
    /// has none (RFC 6749 §5.1: omitted means "as requested").
    pub scope: Option<String>,
}

impl fmt::Debug for AccessToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AccessToken")
            .field("secret", &"[redacted]")
            .field("expires_at", &self.expires_at)
            .field("token_type", &self.token_type)
            .field("scope", &self.scope)
            .finish()
    }
}
