//! The `Authorization` header of a send: an Entra ID token or a SAS token.

use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use azure_core::credentials::TokenCredential;
use azure_core::time::OffsetDateTime;
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use hmac::{Hmac, Mac};
use http::HeaderValue;
use ports::PortError;
use secrecy::{ExposeSecret, SecretString};
use sha2::Sha256;

use crate::connection::ConnectionString;
use crate::error::BACKEND;

/// A token is renewed when less than this is left of its life, so a send never starts with
/// a token that expires on the way.
const RENEW_BEFORE_SECS: i64 = 5 * 60;
/// Life of a SAS token. Signing is one HMAC, so a token is made per request; the hour only
/// bounds the damage of a token that leaks.
const SAS_LIFETIME_SECS: u64 = 60 * 60;

pub(crate) enum Auth {
    Entra(Entra),
    Sas(ConnectionString),
}

pub(crate) struct Entra {
    credential: Arc<dyn TokenCredential>,
    /// Held across the token request, so concurrent sends that find the token stale make
    /// one request between them.
    cached: tokio::sync::Mutex<Option<CachedToken>>,
}

struct CachedToken {
    token: SecretString,
    expires_on: OffsetDateTime,
}

/// The header to send, and the secrets in it (to scrub from whatever comes back).
pub(crate) struct Authorization {
    pub(crate) header: HeaderValue,
    token: SecretString,
}

impl Authorization {
    fn new(value: String, token: SecretString) -> Result<Self, PortError> {
        let mut header = HeaderValue::from_str(&value).map_err(|_| {
            PortError::backend(BACKEND, "the token is not a valid HTTP header value")
        })?;
        // Keeps the value out of `Debug` output of the request (and HTTP/2 header tables).
        header.set_sensitive(true);
        Ok(Authorization { header, token })
    }

    pub(crate) fn secrets(&self) -> [&str; 1] {
        [self.token.expose_secret()]
    }
}

impl Auth {
    pub(crate) fn entra(credential: Arc<dyn TokenCredential>) -> Self {
        Auth::Entra(Entra {
            credential,
            cached: tokio::sync::Mutex::new(None),
        })
    }

    pub(crate) fn sas(connection: ConnectionString) -> Self {
        Auth::Sas(connection)
    }

    pub(crate) fn kind(&self) -> &'static str {
        match self {
            Auth::Entra(_) => "entra-id",
            Auth::Sas(_) => "shared-access-signature",
        }
    }

    pub(crate) async fn authorization(
        &self,
        endpoint: &str,
        entity: &str,
    ) -> Result<Authorization, PortError> {
        match self {
            Auth::Entra(entra) => {
                let token = entra.token().await?;
                let value = format!("Bearer {}", token.expose_secret());
                Authorization::new(value, token)
            }
            Auth::Sas(connection) => {
                let now = SystemTime::now()
                    .duration_since(UNIX_EPOCH)
                    .map(|d| d.as_secs())
                    .unwrap_or_default();
                let resource = format!("{endpoint}/{entity}");
                let token = sas_token(
                    &resource,
                    &connection.key_name,
                    connection.key.expose_secret(),
                    now + SAS_LIFETIME_SECS,
                );
                let signature = token
                    .split("sig=")
                    .nth(1)
                    .and_then(|s| s.split('&').next())
                    .unwrap_or_default()
                    .to_owned();
                Authorization::new(token, SecretString::from(signature))
            }
        }
    }

    /// Forgets a cached token the service refused.
    pub(crate) async fn invalidate(&self) {
        if let Auth::Entra(entra) = self {
            *entra.cached.lock().await = None;
        }
    }
}

impl Entra {
    async fn token(&self) -> Result<SecretString, PortError> {
        let mut cached = self.cached.lock().await;
        if let Some(c) = cached.as_ref()
            && (c.expires_on - OffsetDateTime::now_utc()).whole_seconds() > RENEW_BEFORE_SECS
        {
            return Ok(c.token.clone());
        }
        let access = self
            .credential
            .get_token(&[crate::SCOPE], None)
            .await
            .map_err(|e| {
                // The credential's error says why (no identity, no `az login`); it holds no
                // token since it failed to get one.
                PortError::backend(BACKEND, format!("cannot get an Entra ID token: {e}"))
            })?;
        let token = SecretString::from(access.token.secret().to_owned());
        *cached = Some(CachedToken {
            token: token.clone(),
            expires_on: access.expires_on,
        });
        Ok(token)
    }
}

/// A Service Bus SAS token: `SharedAccessSignature sr=<url-encoded resource URI>&sig=<url-encoded
/// base64 HMAC-SHA256 of "<url-encoded resource URI>\n<expiry>">&se=<expiry>&skn=<key name>`.
///
/// The HMAC key is the key string's UTF-8 bytes as given (not base64-decoded): that is how
/// Service Bus defines it.
pub(crate) fn sas_token(
    resource_uri: &str,
    key_name: &str,
    key: &str,
    expiry_unix_secs: u64,
) -> String {
    let encoded_resource = url_encode(resource_uri);
    let string_to_sign = format!("{encoded_resource}\n{expiry_unix_secs}");
    // HMAC takes keys of any length, so this cannot fail.
    let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(key.as_bytes())
        .unwrap_or_else(|_| unreachable!("HMAC accepts keys of any length"));
    mac.update(string_to_sign.as_bytes());
    let signature = STANDARD.encode(mac.finalize().into_bytes());
    format!(
        "SharedAccessSignature sr={encoded_resource}&sig={}&se={expiry_unix_secs}&skn={}",
        url_encode(&signature),
        url_encode(key_name)
    )
}

/// `application/x-www-form-urlencoded` encoding (what the service's own samples use).
fn url_encode(s: &str) -> String {
    form_urlencoded::byte_serialize(s.as_bytes()).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sas_token_shape_and_known_signature() {
        let token = sas_token(
            "https://ns.servicebus.windows.net/q",
            "send",
            "key",
            1_700_000_000,
        );
        let expected_sig = {
            let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(b"key").unwrap();
            mac.update(b"https%3A%2F%2Fns.servicebus.windows.net%2Fq\n1700000000");
            url_encode(&STANDARD.encode(mac.finalize().into_bytes()))
        };
        assert_eq!(
            token,
            format!(
                "SharedAccessSignature sr=https%3A%2F%2Fns.servicebus.windows.net%2Fq\
                 &sig={expected_sig}&se=1700000000&skn=send"
            )
        );
    }
}
