//! Microsoft Entra ID access tokens: RS256 JWTs verified against the issuer's published
//! signing keys (JWKS), the `Authenticator` used in Azure.
//!
//! The token never chooses how it is checked: the algorithm is fixed to RS256 (no `none`,
//! no HMAC with the public key as secret), the key comes only from the configured JWKS
//! by `kid`, and the issuer must match exactly. The platform tenant comes from a configured
//! claim (`tid` by default) and must be a valid tenant id.

mod jwks;

use std::sync::Arc;
use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::Algorithm;
use jsonwebtoken::crypto::aws_lc::DEFAULT_PROVIDER;
use serde::Deserialize;
use serde_json::{Map, Value};

pub use jwks::JwksPolicy;

use crate::{AuthError, Authenticator, Principal, TokenError, valid_tenant};

/// Setting: the exact `iss` of accepted tokens.
pub const SETTING_ISSUER: &str = "AUTH_ISSUER";
/// Setting: accepted `aud` values, comma-separated.
pub const SETTING_AUDIENCE: &str = "AUTH_AUDIENCE";
/// Setting: where the issuer publishes its signing keys.
pub const SETTING_JWKS_URI: &str = "AUTH_JWKS_URI";
/// Setting (optional): the claim holding the platform tenant, default `tid`.
pub const SETTING_TENANT_CLAIM: &str = "AUTH_TENANT_CLAIM";
/// Setting (optional): the claim holding the roles, default `roles`.
pub const SETTING_ROLES_CLAIM: &str = "AUTH_ROLES_CLAIM";

pub const DEFAULT_TENANT_CLAIM: &str = "tid";
pub const DEFAULT_ROLES_CLAIM: &str = "roles";
pub const DEFAULT_LEEWAY: Duration = Duration::from_secs(60);

/// Longer bearer tokens are refused before any work (Entra tokens are a few KiB).
const MAX_TOKEN_BYTES: usize = 32 * 1024;

/// What makes a token acceptable.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EntraConfig {
    /// Compared exactly with `iss`, e.g. `https://login.microsoftonline.com/<tid>/v2.0`
    /// (v2 tokens) or `https://sts.windows.net/<tid>/` (v1 tokens).
    pub issuer: String,
    /// The token's `aud` (a string or an array) must contain one of these.
    pub audiences: Vec<String>,
    /// e.g. `https://login.microsoftonline.com/<tid>/discovery/v2.0/keys`.
    pub jwks_uri: String,
    pub tenant_claim: String,
    pub roles_claim: String,
    /// Tolerated clock difference for `exp` and `nbf`.
    pub leeway: Duration,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ConfigError {
    #[error("the setting {0} is required for Entra ID authentication")]
    Missing(&'static str),
    #[error("the setting {setting} is not valid: {reason}")]
    Invalid {
        setting: &'static str,
        reason: String,
    },
    #[error("cannot build the HTTP client for the signing keys: {0}")]
    HttpClient(String),
}

impl EntraConfig {
    /// A configuration with the default claims and leeway.
    pub fn new(
        issuer: impl Into<String>,
        audiences: Vec<String>,
        jwks_uri: impl Into<String>,
    ) -> Self {
        EntraConfig {
            issuer: issuer.into(),
            audiences,
            jwks_uri: jwks_uri.into(),
            tenant_claim: DEFAULT_TENANT_CLAIM.into(),
            roles_claim: DEFAULT_ROLES_CLAIM.into(),
            leeway: DEFAULT_LEEWAY,
        }
    }

    /// Reads `AUTH_ISSUER`, `AUTH_AUDIENCE` (comma-separated), `AUTH_JWKS_URI` (required)
    /// and `AUTH_TENANT_CLAIM`, `AUTH_ROLES_CLAIM` (optional) through `get`, so callers
    /// choose the source (environment, app settings, a map in tests). Blank counts as unset.
    pub fn from_settings(get: impl Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        let read = |name: &'static str| {
            get(name)
                .map(|v| v.trim().to_owned())
                .filter(|v| !v.is_empty())
        };
        let required = |name: &'static str| read(name).ok_or(ConfigError::Missing(name));
        let issuer = required(SETTING_ISSUER)?;
        let audiences: Vec<String> = required(SETTING_AUDIENCE)?
            .split(',')
            .map(str::trim)
            .filter(|a| !a.is_empty())
            .map(str::to_owned)
            .collect();
        let jwks_uri = required(SETTING_JWKS_URI)?;
        let mut config = EntraConfig::new(issuer, audiences, jwks_uri);
        if let Some(claim) = read(SETTING_TENANT_CLAIM) {
            config.tenant_claim = claim;
        }
        if let Some(claim) = read(SETTING_ROLES_CLAIM) {
            config.roles_claim = claim;
        }
        config.validate()?;
        Ok(config)
    }

    /// Checks what `from_settings` checks, for configurations built in code.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let invalid = |setting, reason: &str| ConfigError::Invalid {
            setting,
            reason: reason.to_owned(),
        };
        if self.issuer.trim().is_empty() {
            return Err(ConfigError::Missing(SETTING_ISSUER));
        }
        if self.audiences.iter().all(|a| a.trim().is_empty()) {
            return Err(ConfigError::Missing(SETTING_AUDIENCE));
        }
        if self.tenant_claim.is_empty() {
            return Err(invalid(SETTING_TENANT_CLAIM, "the claim name is empty"));
        }
        if self.roles_claim.is_empty() {
            return Err(invalid(SETTING_ROLES_CLAIM, "the claim name is empty"));
        }
        let uri = reqwest::Url::parse(&self.jwks_uri)
            .map_err(|e| invalid(SETTING_JWKS_URI, &format!("not a URL ({e})")))?;
        // Keys fetched over plain HTTP could be swapped in transit: only https, except on
        // the loopback interface (local fakes and tests).
        let loopback = uri.host_str().is_some_and(|host| {
            host.eq_ignore_ascii_case("localhost")
                || host
                    .trim_start_matches('[')
                    .trim_end_matches(']')
                    .parse::<std::net::IpAddr>()
                    .is_ok_and(|ip| ip.is_loopback())
        });
        match uri.scheme() {
            "https" => Ok(()),
            "http" if loopback => Ok(()),
            _ => Err(invalid(
                SETTING_JWKS_URI,
                "must be an https URL (http only on the loopback interface)",
            )),
        }
    }
}

/// Verifies Entra ID access tokens. Cheap to share (`Arc` it or keep one per app); keys are
/// fetched on first use and cached (see [`JwksPolicy`]).
pub struct EntraAuthenticator {
    config: EntraConfig,
    keys: Arc<jwks::JwksCache>,
}

impl std::fmt::Debug for EntraAuthenticator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EntraAuthenticator")
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

#[derive(Deserialize)]
struct Header {
    alg: Option<String>,
    kid: Option<String>,
    crit: Option<Value>,
}

impl EntraAuthenticator {
    pub fn new(config: EntraConfig) -> Result<Self, ConfigError> {
        Self::with_policy(config, JwksPolicy::default())
    }

    pub fn with_policy(config: EntraConfig, policy: JwksPolicy) -> Result<Self, ConfigError> {
        config.validate()?;
        let client = reqwest::Client::builder()
            .timeout(policy.fetch_timeout)
            .connect_timeout(policy.fetch_timeout)
            .redirect(reqwest::redirect::Policy::limited(3))
            .build()
            .map_err(|e| ConfigError::HttpClient(e.to_string()))?;
        let keys = jwks::JwksCache::new(config.jwks_uri.clone(), client, policy);
        Ok(EntraAuthenticator {
            config,
            keys: Arc::new(keys),
        })
    }

    pub fn config(&self) -> &EntraConfig {
        &self.config
    }

    /// Verifies `token` as of `now`: header (RS256, `kid`), signature with the issuer's key,
    /// then issuer, audience, times, tenant and roles.
    pub async fn validate(
        &self,
        token: &str,
        now: chrono::DateTime<chrono::Utc>,
    ) -> Result<Principal, AuthError> {
        let token = token.trim();
        if token.len() > MAX_TOKEN_BYTES {
            return Err(TokenError::Malformed.into());
        }
        let mut parts = token.split('.');
        let (Some(h), Some(p), Some(s), None) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return Err(TokenError::Malformed.into());
        };
        let header: Header = decode_json(h)?;
        match header.alg.as_deref() {
            Some("RS256") => {}
            None => return Err(TokenError::Malformed.into()),
            // `none`, HS256 (the public key used as an HMAC secret), and the rest.
            Some(_) => return Err(TokenError::BadSignature.into()),
        }
        // Extensions we would have to understand (RFC 7515 §4.1.11): we understand none.
        if header.crit.is_some() {
            return Err(TokenError::Malformed.into());
        }
        let kid = header
            .kid
            .filter(|k| !k.is_empty())
            .ok_or(TokenError::Malformed)?;
        let signature = URL_SAFE_NO_PAD
            .decode(s)
            .map_err(|_| TokenError::Malformed)?;
        // Parsed before the key lookup so garbage never reaches the JWKS endpoint; judged
        // only after the signature.
        let claims: Map<String, Value> = decode_json(p)?;

        let key = match self.keys.key(&kid).await {
            jwks::Lookup::Found(key) => key,
            jwks::Lookup::Unknown => return Err(TokenError::BadSignature.into()),
            jwks::Lookup::Unavailable => return Err(AuthError::KeysUnavailable),
        };
        // The provider is named rather than taken from jsonwebtoken's process-wide default,
        // which panics if feature unification ever enables both backends.
        let verifier = (DEFAULT_PROVIDER.verifier_factory)(&Algorithm::RS256, &key)
            .map_err(|_| TokenError::BadSignature)?;
        let signing_input = &token[..h.len() + 1 + p.len()];
        verifier
            .verify(signing_input.as_bytes(), &signature)
            .map_err(|_| TokenError::BadSignature)?;

        Ok(self.check_claims(&claims, now.timestamp())?)
    }

    fn check_claims(&self, claims: &Map<String, Value>, now: i64) -> Result<Principal, TokenError> {
        let c = &self.config;
        if claims.get("iss").and_then(Value::as_str) != Some(c.issuer.as_str()) {
            return Err(TokenError::WrongAudience);
        }
        let accepted = |a: &Value| {
            a.as_str()
                .is_some_and(|a| c.audiences.iter().any(|x| x == a))
        };
        let audience_ok = match claims.get("aud") {
            Some(Value::Array(auds)) => auds.iter().any(accepted),
            Some(aud) => accepted(aud),
            None => false,
        };
        if !audience_ok {
            return Err(TokenError::WrongAudience);
        }
        let leeway = i64::try_from(c.leeway.as_secs()).unwrap_or(i64::MAX);
        let exp = claims
            .get("exp")
            .and_then(numeric_date)
            .ok_or(TokenError::Malformed)?;
        if exp.saturating_add(leeway) < now {
            return Err(TokenError::Expired);
        }
        match claims.get("nbf") {
            None | Some(Value::Null) => {}
            Some(nbf) => {
                let nbf = numeric_date(nbf).ok_or(TokenError::Malformed)?;
                if nbf.saturating_sub(leeway) > now {
                    return Err(TokenError::NotYetValid);
                }
            }
        }
        let tenant = match claims.get(&c.tenant_claim) {
            None | Some(Value::Null) => return Err(TokenError::NoTenant),
            Some(Value::String(t)) if t.is_empty() => return Err(TokenError::NoTenant),
            Some(Value::String(t)) if valid_tenant(t) => t.clone(),
            Some(_) => return Err(TokenError::BadTenant),
        };
        let roles = match claims.get(&c.roles_claim) {
            None | Some(Value::Null) => Vec::new(),
            Some(Value::Array(roles)) => roles
                .iter()
                .map(|r| r.as_str().map(str::to_owned))
                .collect::<Option<Vec<_>>>()
                .ok_or(TokenError::Malformed)?,
            Some(_) => return Err(TokenError::Malformed),
        };
        let subject = claims
            .get("sub")
            .and_then(Value::as_str)
            .filter(|s| !s.is_empty())
            .ok_or(TokenError::Malformed)?
            .to_owned();
        Ok(Principal {
            subject,
            tenant_id: tenant,
            roles,
        })
    }
}

#[async_trait::async_trait]
impl Authenticator for EntraAuthenticator {
    async fn authenticate(&self, bearer: &str) -> Result<Principal, AuthError> {
        self.validate(bearer, chrono::Utc::now()).await
    }
}

fn decode_json<T: serde::de::DeserializeOwned>(part: &str) -> Result<T, TokenError> {
    URL_SAFE_NO_PAD
        .decode(part)
        .ok()
        .and_then(|b| serde_json::from_slice(&b).ok())
        .ok_or(TokenError::Malformed)
}

/// A JWT NumericDate: seconds since the epoch, integer or not.
fn numeric_date(v: &Value) -> Option<i64> {
    v.as_i64().or_else(|| {
        v.as_f64()
            .filter(|f| f.is_finite())
            // Saturating conversion; fractions of a second do not matter with a leeway.
            .map(|f| f as i64)
    })
}

#[cfg(test)]
mod tests;
