//! Access tokens a provider mints from a connection's credential: a GitHub App's
//! installation token, an Entra ID token for Azure DevOps or Resource Manager, an OAuth 2
//! client-credentials token. Cached per (tenant, provider, connection, credential) until a
//! margin before they expire, fetched once for all concurrent callers (`moka`'s per-key
//! single flight; a fetch for one connection never waits for another's), and dropped when
//! the vendor refuses one (`ProviderCall::drop_access_token` after a 401), so the next call
//! fetches a fresh one. The credential is part of the key (a digest of its secret fields),
//! so a rotated secret mints its own token at once, without a restart.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use resilience::CallError;
use secrecy::{ExposeSecret as _, SecretString};
use sha2::{Digest as _, Sha256};

/// A token and when the vendor said it expires.
#[derive(Debug)]
pub struct AccessToken {
    pub token: SecretString,
    pub expires_at: DateTime<Utc>,
}

/// How long before its expiry a token is fetched again: five minutes, or half its lifetime
/// when it lives less than ten.
const REFRESH_MARGIN: Duration = Duration::from_secs(5 * 60);
/// Tokens kept at most (the least used go first).
const CAPACITY: u64 = 10_000;

#[derive(Clone, Debug, Hash, PartialEq, Eq)]
pub(crate) struct TokenKey {
    /// `tenant/provider/connection` (the call key's).
    call: String,
    /// A digest of the credential's secret fields.
    credential: [u8; 32],
}

impl TokenKey {
    pub(crate) fn new(call: &resilience::CallKey, credential: &custody::SecretMaterial) -> Self {
        // The fields in their (sorted) order, each ended, so two secrets never hash alike.
        let mut digest = Sha256::new();
        for value in credential.values() {
            digest.update(value.as_bytes());
            digest.update([0]);
        }
        TokenKey {
            call: format!("{}/{}", call.tenant, call.provider),
            credential: digest.finalize().into(),
        }
    }
}

/// Each token lives until its margin before expiry, measured when it was fetched.
struct UntilRefresh;

impl moka::Expiry<TokenKey, Arc<AccessToken>> for UntilRefresh {
    fn expire_after_create(
        &self,
        _key: &TokenKey,
        value: &Arc<AccessToken>,
        _created_at: Instant,
    ) -> Option<Duration> {
        let left = (value.expires_at - Utc::now()).to_std().unwrap_or_default();
        Some(left.saturating_sub(REFRESH_MARGIN.min(left / 2)))
    }
}

/// Hits and fetches so far, for tests and benchmarks.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct TokenStats {
    pub hits: u64,
    pub fetches: u64,
}

/// The kit's token cache (one per app process).
pub struct TokenCache {
    tokens: moka::future::Cache<TokenKey, Arc<AccessToken>>,
    hits: AtomicU64,
    fetches: AtomicU64,
    /// The platform's identity endpoint, when it has a managed identity.
    identity: Option<IdentityEndpoint>,
}

/// App Service's managed-identity endpoint (`IDENTITY_ENDPOINT`, `IDENTITY_HEADER`, set by
/// the platform in every Function App with an identity): the platform's own, never a
/// user's URL, so it is called without the SSRF guard (it is a link-local address).
#[derive(Clone)]
pub struct IdentityEndpoint {
    url: reqwest::Url,
    header: SecretString,
    http: reqwest::Client,
}

impl std::fmt::Debug for IdentityEndpoint {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("IdentityEndpoint")
            .field("url", &self.url.as_str())
            .finish_non_exhaustive()
    }
}

impl IdentityEndpoint {
    pub fn new(url: reqwest::Url, header: SecretString) -> Self {
        IdentityEndpoint {
            url,
            header,
            http: reqwest::Client::builder()
                .timeout(Duration::from_secs(10))
                .redirect(reqwest::redirect::Policy::none())
                .build()
                .unwrap_or_default(),
        }
    }
}

/// Setting: App Service's managed-identity endpoint (set by the platform).
pub const IDENTITY_ENDPOINT_SETTING: &str = "IDENTITY_ENDPOINT";
/// Setting: the header value that endpoint wants (set by the platform; a secret).
pub const IDENTITY_HEADER_SETTING: &str = "IDENTITY_HEADER";

impl Default for TokenCache {
    fn default() -> Self {
        TokenCache {
            tokens: moka::future::Cache::builder()
                .max_capacity(CAPACITY)
                .expire_after(UntilRefresh)
                .build(),
            hits: AtomicU64::new(0),
            identity: None,
            fetches: AtomicU64::new(0),
        }
    }
}

impl std::fmt::Debug for TokenCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TokenCache")
            .field("stats", &self.stats())
            .finish_non_exhaustive()
    }
}

impl TokenCache {
    pub fn stats(&self) -> TokenStats {
        TokenStats {
            hits: self.hits.load(Ordering::Relaxed),
            fetches: self.fetches.load(Ordering::Relaxed),
        }
    }

    /// The cached token for `key`, or `fetch`'s (kept until its refresh margin; a failed
    /// fetch is not kept, and every caller that waited on it gets its error).
    pub(crate) async fn get_or_fetch<F, Fut>(
        &self,
        key: &TokenKey,
        fetch: F,
    ) -> Result<Arc<AccessToken>, CallError>
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<AccessToken, CallError>>,
    {
        let mut fetched = false;
        let token = self
            .tokens
            .try_get_with_by_ref(key, async {
                fetched = true;
                self.fetches.fetch_add(1, Ordering::Relaxed);
                fetch().await.map(Arc::new)
            })
            .await
            .map_err(|e| (*e).clone())?;
        if !fetched {
            self.hits.fetch_add(1, Ordering::Relaxed);
        }
        Ok(token)
    }

    /// Forgets the token of `key` (the vendor refused it).
    pub(crate) async fn drop_token(&self, key: &TokenKey) {
        self.tokens.invalidate(key).await;
    }
}

/// How long a token is taken to live when its endpoint did not say (`expires_in` is only
/// recommended by RFC 6749): short enough that a revoked one is not used for long.
const UNSTATED_LIFETIME: chrono::TimeDelta = chrono::TimeDelta::minutes(10);

impl crate::ProviderCall<'_> {
    /// An OAuth 2 client-credentials token for this call's `oauth2ClientCredentials`
    /// credential (`clientId`, `clientSecret`, `tokenUrl`, optional `scope`; `default_scope`
    /// when it names none, as Entra ID's `<resource>/.default`), through the token cache.
    /// The client authenticates in the form body (`client_secret_post`), which every
    /// endpoint the platform meets accepts (Entra ID documents it); the token endpoint is a
    /// URL from the credential, so it is checked against the SSRF guard first.
    pub async fn client_credentials_token(
        &self,
        default_scope: &str,
    ) -> Result<Arc<AccessToken>, CallError> {
        self.access_token(|| async {
            let scope = self
                .credential
                .get("scope")
                .map_or(default_scope.to_owned(), |s| s.expose_secret().to_owned());
            self.oauth_token(oauth2_client::Grant::ClientCredentials, Some(scope))
                .await
        })
        .await
    }

    /// An access token from this call's `oauth2RefreshToken` credential (`clientId`,
    /// `refreshToken`, `tokenUrl`, optional `clientSecret` and `scope`): the refresh grant
    /// (RFC 6749 §6, `client_secret_post`), through the token cache, the token URL checked
    /// against the SSRF guard first. For vendors whose refresh tokens stay valid when used
    /// (HubSpot's); a new refresh token in the answer is not written back to custody.
    pub async fn refreshed_access_token(&self) -> Result<Arc<AccessToken>, CallError> {
        self.access_token(|| async {
            let grant = oauth2_client::Grant::RefreshToken(SecretString::from(
                self.secret("refreshToken")?.to_owned(),
            ));
            let scope = self
                .credential
                .get("scope")
                .map(|s| s.expose_secret().to_owned());
            self.oauth_token(grant, scope).await
        })
        .await
    }

    /// One token from the credential's `tokenUrl` with `grant`.
    async fn oauth_token(
        &self,
        grant: oauth2_client::Grant,
        scope: Option<String>,
    ) -> Result<AccessToken, CallError> {
        let url = reqwest::Url::parse(self.secret("tokenUrl")?).map_err(|_| {
            crate::provider::fail(
                domain::FailureClassification::Validation,
                "the credential's tokenUrl is not a URL",
            )
        })?;
        self.guard.check_url(&url).map_err(|e| {
            crate::provider::fail(
                domain::FailureClassification::Validation,
                format!("the credential's tokenUrl may not be called: {e}"),
            )
        })?;
        let mut config = oauth2_client::ClientConfig::new(url, self.secret("clientId")?, grant)
            .with_auth_method(oauth2_client::AuthMethod::ClientSecretPost);
        if let Some(secret) = self.credential.get("clientSecret") {
            config = config.with_secret(secret.clone());
        }
        if let Some(scope) = scope {
            config = config.with_scope(scope);
        }
        let token = oauth2_client::TokenClient::new(self.http.clone(), config)
            .access_token()
            .await
            .map_err(token_failure)?;
        Ok(AccessToken {
            token: token.secret,
            expires_at: token
                .expires_at
                .unwrap_or_else(|| Utc::now() + UNSTATED_LIFETIME),
        })
    }
}

impl TokenCache {
    /// This cache with the platform's identity endpoint (for `managedIdentity` credentials).
    pub fn with_identity(mut self, identity: Option<IdentityEndpoint>) -> Self {
        self.identity = identity;
        self
    }
}

impl crate::ProviderCall<'_> {
    /// A token for `resource` (`https://cognitiveservices.azure.com`) from the platform's
    /// managed identity, for this call's `managedIdentity` credential (a user-assigned
    /// identity's `clientId` when it names one), through the token cache: App Service's
    /// identity protocol (`GET {IDENTITY_ENDPOINT}?resource=…&api-version=2019-08-01` with
    /// `X-IDENTITY-HEADER`). Without an identity endpoint (no managed identity, or running
    /// locally) the call fails as `auth`.
    pub async fn managed_identity_token(
        &self,
        resource: &str,
    ) -> Result<Arc<AccessToken>, CallError> {
        use domain::FailureClassification as F;
        let Some(identity) = self.tokens.identity.clone() else {
            return Err(crate::provider::fail(
                F::Auth,
                "the platform has no managed identity here (IDENTITY_ENDPOINT is not set)",
            ));
        };
        self.access_token(|| async move {
            let mut url = identity.url.clone();
            url.query_pairs_mut()
                .append_pair("resource", resource)
                .append_pair("api-version", "2019-08-01");
            if let Some(client_id) = self.credential.get("clientId") {
                url.query_pairs_mut()
                    .append_pair("client_id", client_id.expose_secret());
            }
            let answer = identity
                .http
                .get(url)
                .header("X-IDENTITY-HEADER", identity.header.expose_secret())
                .send()
                .await
                .map_err(|_| {
                    crate::provider::fail(
                        F::Transient,
                        "the identity endpoint could not be reached",
                    )
                })?;
            let status = answer.status();
            let body: serde_json::Value = answer.json().await.unwrap_or_default();
            if !status.is_success() {
                let class = match status.as_u16() {
                    429 => F::RateLimited,
                    500..=599 => F::Transient,
                    _ => F::Auth,
                };
                return Err(crate::provider::fail(
                    class,
                    format!(
                        "the identity endpoint refused a token ({})",
                        status.as_u16()
                    ),
                ));
            }
            let token = body["access_token"].as_str().filter(|t| !t.is_empty());
            // `expires_on` is epoch seconds, as a string in this protocol version.
            let expires_on = body["expires_on"]
                .as_str()
                .and_then(|s| s.parse::<i64>().ok())
                .or_else(|| body["expires_on"].as_i64());
            match (
                token,
                expires_on.and_then(|s| DateTime::from_timestamp(s, 0)),
            ) {
                (Some(token), Some(expires_at)) => Ok(AccessToken {
                    token: SecretString::from(token.to_owned()),
                    expires_at,
                }),
                _ => Err(crate::provider::fail(
                    F::VendorError,
                    "the identity endpoint's answer has no token or expiry",
                )),
            }
        })
        .await
    }
}

/// A token endpoint's refusal as a call's failure: a refused client or grant is `auth`
/// (never retried), throttling a rate limit with its wait, the rest transient.
fn token_failure(e: oauth2_client::OAuthError) -> CallError {
    use domain::FailureClassification as F;
    use oauth2_client::OAuthError as E;
    let class = match &e {
        E::Throttled { .. } => F::RateLimited,
        E::Transient { .. } => F::Transient,
        E::Malformed { .. } => F::VendorError,
        _ => F::Auth,
    };
    let mut failure = crate::provider::fail(class, e.to_string());
    failure.failure.retry_after = e.retry_after();
    failure.retryable = e.is_retryable();
    failure
}

#[cfg(test)]
mod tests {
    use moka::Expiry as _;
    use secrecy::ExposeSecret as _;

    use super::*;

    fn key(connection: &str, secret: &str) -> TokenKey {
        let call = resilience::CallKey::new("t1", &format!("github/{connection}"));
        let material = custody::SecretMaterial::new(
            domain::CredentialKind::ApiKey,
            serde_json::json!({"apiKey": secret})
                .as_object()
                .cloned()
                .unwrap(),
        )
        .unwrap();
        TokenKey::new(&call, &material)
    }

    fn token(value: &str, lives: chrono::TimeDelta) -> AccessToken {
        AccessToken {
            token: SecretString::from(value.to_owned()),
            expires_at: Utc::now() + lives,
        }
    }

    #[tokio::test]
    async fn concurrent_callers_share_one_fetch_and_later_ones_hit() {
        let cache = Arc::new(TokenCache::default());
        let k = key("c1", "s1");
        let calls: Vec<_> = (0..50)
            .map(|_| {
                let (cache, k) = (cache.clone(), k.clone());
                tokio::spawn(async move {
                    cache
                        .get_or_fetch(&k, || async {
                            tokio::time::sleep(Duration::from_millis(30)).await;
                            Ok(token("ghs_1", chrono::TimeDelta::hours(1)))
                        })
                        .await
                        .unwrap()
                        .token
                        .expose_secret()
                        .to_owned()
                })
            })
            .collect();
        for c in calls {
            assert_eq!(c.await.unwrap(), "ghs_1");
        }
        assert_eq!(
            cache.stats(),
            TokenStats {
                hits: 49,
                fetches: 1
            }
        );
    }

    #[tokio::test]
    async fn another_connection_or_a_rotated_secret_fetches_its_own() {
        let cache = TokenCache::default();
        let fetch =
            |v: &'static str| move || async move { Ok(token(v, chrono::TimeDelta::hours(1))) };
        let a = cache
            .get_or_fetch(&key("c1", "s1"), fetch("a"))
            .await
            .unwrap();
        let b = cache
            .get_or_fetch(&key("c2", "s1"), fetch("b"))
            .await
            .unwrap();
        let rotated = cache
            .get_or_fetch(&key("c1", "s2"), fetch("c"))
            .await
            .unwrap();
        let again = cache
            .get_or_fetch(&key("c1", "s1"), fetch("d"))
            .await
            .unwrap();
        let seen: Vec<_> = [a, b, rotated, again]
            .iter()
            .map(|t| t.token.expose_secret().to_owned())
            .collect();
        assert_eq!(seen, ["a", "b", "c", "a"]);
    }

    #[tokio::test]
    async fn failures_are_not_kept_and_a_dropped_token_is_fetched_again() {
        let cache = TokenCache::default();
        let k = key("c1", "s1");
        let refused = cache
            .get_or_fetch(&k, || async {
                Err(crate::provider::fail(
                    domain::FailureClassification::Auth,
                    "bad key",
                ))
            })
            .await
            .unwrap_err();
        assert_eq!(refused.class(), domain::FailureClassification::Auth);
        let first = cache
            .get_or_fetch(&k, || async {
                Ok(token("one", chrono::TimeDelta::hours(1)))
            })
            .await
            .unwrap();
        assert_eq!(first.token.expose_secret(), "one");
        cache.drop_token(&k).await;
        let second = cache
            .get_or_fetch(&k, || async {
                Ok(token("two", chrono::TimeDelta::hours(1)))
            })
            .await
            .unwrap();
        assert_eq!(second.token.expose_secret(), "two");
    }

    #[tokio::test]
    async fn a_token_is_fetched_again_within_its_margin_before_expiry() {
        let cache = TokenCache::default();
        let k = key("c1", "s1");
        // Lives 2 s: kept for half of it.
        cache
            .get_or_fetch(&k, || async {
                Ok(token("short", chrono::TimeDelta::seconds(2)))
            })
            .await
            .unwrap();
        let hit = cache
            .get_or_fetch(&k, || async {
                Ok(token("new", chrono::TimeDelta::hours(1)))
            })
            .await
            .unwrap();
        assert_eq!(hit.token.expose_secret(), "short");
        tokio::time::sleep(Duration::from_millis(1500)).await;
        let next = cache
            .get_or_fetch(&k, || async {
                Ok(token("new", chrono::TimeDelta::hours(1)))
            })
            .await
            .unwrap();
        assert_eq!(next.token.expose_secret(), "new");
        // An hour-long token is kept until five minutes before it expires.
        let margin = UntilRefresh
            .expire_after_create(&k, &next, Instant::now())
            .unwrap();
        assert!(
            margin > Duration::from_secs(54 * 60) && margin <= Duration::from_secs(55 * 60),
            "{margin:?}"
        );
    }
}
