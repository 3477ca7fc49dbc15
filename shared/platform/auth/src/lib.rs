//! Bearer tokens of the local mode: HS256 JWTs signed with a key kept in the data folder,
//! issued by `integration-platform dev-token` and accepted by a runner on the same folder.
//!
//! In Azure the same `Principal` comes from an Entra ID token instead; apps only see the
//! `Principal` (tenant and roles), never how it was proven.

use std::io::Write as _;
use std::path::Path;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use rand::RngCore as _;
use serde::{Deserialize, Serialize};

/// The issuer and audience of local tokens.
pub const DEV_ISSUER: &str = "integration-platform-local";
pub const DEV_AUDIENCE: &str = "integration-platform";
/// Name of the key file inside the data folder.
pub const KEY_FILE: &str = "dev-signing.key";
/// Tolerated clock difference for `exp` and `nbf`.
const SKEW_SECS: i64 = 60;

/// Who is calling: the tenant (never taken from anything but a verified token) and roles.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Principal {
    pub subject: String,
    pub tenant_id: String,
    pub roles: Vec<String>,
}

impl Principal {
    pub fn has_role(&self, role: &str) -> bool {
        self.roles.iter().any(|r| r == role)
    }
}

#[derive(Debug, thiserror::Error, PartialEq)]
pub enum TokenError {
    #[error("the token is malformed")]
    Malformed,
    #[error("the token's signature is not valid")]
    BadSignature,
    #[error("the token has expired")]
    Expired,
    #[error("the token is not valid yet")]
    NotYetValid,
    #[error("the token was issued for another issuer or audience")]
    WrongAudience,
    #[error("the token has no tenant")]
    NoTenant,
    #[error(
        "tenant ids are 1-64 characters of letters, digits, '.', '_' and '-', not '.', '..' or the platform's own"
    )]
    BadTenant,
}

#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    #[error("cannot read or create the signing key {path}: {source}")]
    Io {
        path: String,
        source: std::io::Error,
    },
    #[error("the signing key in {0} is not 32+ bytes of base64")]
    Invalid(String),
}

#[derive(Serialize, Deserialize)]
struct Claims {
    iss: String,
    aud: String,
    sub: String,
    tid: String,
    #[serde(default)]
    roles: Vec<String>,
    iat: i64,
    nbf: i64,
    exp: i64,
}

/// Signs and verifies local tokens. `Debug` never shows the key.
#[derive(Clone)]
pub struct DevTokens {
    key: Vec<u8>,
}

impl std::fmt::Debug for DevTokens {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("DevTokens { key: [redacted] }")
    }
}

/// Whether a token's tenant follows the one grammar of customer tenant ids
/// ([`domain::TenantId::parse_tenant`]: 1 to 64 of `[A-Za-z0-9._-]`, never `.` or `..`,
/// never the platform's own partition). A token naming anything else is refused (401).
pub fn valid_tenant(t: &str) -> bool {
    domain::TenantId::parse_tenant(t).is_ok()
}

impl DevTokens {
    pub fn from_key(key: Vec<u8>) -> Result<Self, KeyError> {
        if key.len() < 32 {
            return Err(KeyError::Invalid("the given key".into()));
        }
        Ok(DevTokens { key })
    }

    /// Loads `<data_dir>/dev-signing.key`, creating it (0600, random) on first use. Two
    /// processes racing to create it end up with the same key: the file is created
    /// exclusively and the loser reads the winner's.
    pub fn load_or_create(data_dir: &Path) -> Result<Self, KeyError> {
        let path = data_dir.join(KEY_FILE);
        let io = |source| KeyError::Io {
            path: path.display().to_string(),
            source,
        };
        std::fs::create_dir_all(data_dir).map_err(io)?;
        let mut key = vec![0u8; 32];
        rand::rngs::OsRng.fill_bytes(&mut key);
        let mut opts = std::fs::OpenOptions::new();
        opts.write(true).create_new(true);
        #[cfg(unix)]
        std::os::unix::fs::OpenOptionsExt::mode(&mut opts, 0o600);
        match opts.open(&path) {
            Ok(mut f) => {
                f.write_all(STANDARD.encode(&key).as_bytes()).map_err(io)?;
                f.sync_all().map_err(io)?;
            }
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
            Err(e) => return Err(io(e)),
        }
        // Read back (also when we just wrote it: a half-written file from a racing
        // process shows up as Invalid rather than as a second key).
        let text = std::fs::read_to_string(&path).map_err(io)?;
        let key = STANDARD
            .decode(text.trim())
            .map_err(|_| KeyError::Invalid(path.display().to_string()))?;
        DevTokens::from_key(key).map_err(|_| KeyError::Invalid(path.display().to_string()))
    }

    /// Issues a token for `tenant` with `roles`, valid for `ttl`.
    pub fn issue(
        &self,
        tenant: &str,
        roles: &[String],
        ttl: chrono::Duration,
        now: chrono::DateTime<chrono::Utc>,
    ) -> Result<String, TokenError> {
        if !valid_tenant(tenant) {
            return Err(TokenError::BadTenant);
        }
        let claims = Claims {
            iss: DEV_ISSUER.into(),
            aud: DEV_AUDIENCE.into(),
            sub: format!("dev:{tenant}"),
            tid: tenant.into(),
            roles: roles.to_vec(),
            iat: now.timestamp(),
            nbf: now.timestamp(),
            exp: (now + ttl).timestamp(),
        };
        jsonwebtoken::encode(
            &jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256),
            &claims,
            &jsonwebtoken::EncodingKey::from_secret(&self.key),
        )
        .map_err(|_| TokenError::Malformed)
    }

    /// Verifies a token: the signature (HS256 only, in constant time, by `jsonwebtoken`),
    /// then issuer and audience, then the times against `now` and the tenant.
    pub fn verify(
        &self,
        token: &str,
        now: chrono::DateTime<chrono::Utc>,
    ) -> Result<Principal, TokenError> {
        use jsonwebtoken::errors::ErrorKind;
        // Only HS256: the token cannot choose `none` or another algorithm. The times are
        // checked below against the given `now`, not the system clock.
        let mut validation = jsonwebtoken::Validation::new(jsonwebtoken::Algorithm::HS256);
        validation.set_issuer(&[DEV_ISSUER]);
        validation.set_audience(&[DEV_AUDIENCE]);
        validation.validate_exp = false;
        validation.validate_nbf = false;
        validation.set_required_spec_claims(&["iss", "aud", "exp", "nbf"]);
        let claims = jsonwebtoken::decode::<Claims>(
            token.trim(),
            &jsonwebtoken::DecodingKey::from_secret(&self.key),
            &validation,
        )
        .map_err(|e| match e.kind() {
            ErrorKind::InvalidSignature | ErrorKind::InvalidAlgorithm => TokenError::BadSignature,
            ErrorKind::InvalidIssuer | ErrorKind::InvalidAudience => TokenError::WrongAudience,
            // A token naming an algorithm `jsonwebtoken` does not know (`none`) is a
            // signature that is not ours, not a malformed token. Looked at only when refused,
            // so a good token's header is decoded once.
            _ if names_another_algorithm(token) => TokenError::BadSignature,
            _ => TokenError::Malformed,
        })?
        .claims;
        let t = now.timestamp();
        if claims.exp + SKEW_SECS < t {
            return Err(TokenError::Expired);
        }
        if claims.nbf - SKEW_SECS > t {
            return Err(TokenError::NotYetValid);
        }
        if claims.tid.is_empty() {
            return Err(TokenError::NoTenant);
        }
        if !valid_tenant(&claims.tid) {
            return Err(TokenError::BadTenant);
        }
        Ok(Principal {
            subject: claims.sub,
            tenant_id: claims.tid,
            roles: claims.roles,
        })
    }
}

/// Whether a token's header names an algorithm other than HS256.
fn names_another_algorithm(token: &str) -> bool {
    token
        .trim()
        .split('.')
        .next()
        .and_then(|h| {
            base64::engine::general_purpose::URL_SAFE_NO_PAD
                .decode(h)
                .ok()
        })
        .and_then(|h| serde_json::from_slice::<serde_json::Value>(&h).ok())
        .and_then(|h| h.get("alg").and_then(|a| a.as_str()).map(|a| a != "HS256"))
        .unwrap_or(false)
}

#[cfg(test)]
mod tests;

pub mod entra;

/// Why a caller was not authenticated. The message is safe to return to the caller.
#[derive(Debug, thiserror::Error, PartialEq)]
pub enum AuthError {
    #[error("a bearer token is required")]
    Missing,
    #[error(transparent)]
    Invalid(#[from] TokenError),
    #[error("the token issuer's signing keys are unavailable")]
    KeysUnavailable,
}

/// Turns a bearer token into a `Principal`. Hosts choose the implementation (local HS256
/// tokens here; Entra ID JWTs in Azure); apps only ask.
#[async_trait::async_trait]
pub trait Authenticator: Send + Sync {
    async fn authenticate(&self, bearer: &str) -> Result<Principal, AuthError>;
}

#[async_trait::async_trait]
impl Authenticator for DevTokens {
    async fn authenticate(&self, bearer: &str) -> Result<Principal, AuthError> {
        Ok(self.verify(bearer, chrono::Utc::now())?)
    }
}
