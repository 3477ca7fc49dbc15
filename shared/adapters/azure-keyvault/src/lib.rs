//! `KeyVaultSecretStore`: the `ports::SecretStore` port on Azure Key Vault secrets, through
//! `azure_security_keyvault_secrets`, with a short in-memory cache in front of reads.
//!
//! - **Names and versions** are Key Vault's own: a `set` is `PUT /secrets/{name}` (a new
//!   version), `get` is `GET /secrets/{name}/{version?}`, `versions` lists
//!   `/secrets/{name}/versions` (every page), `disable` is `PATCH /secrets/{name}/{version}`
//!   with `attributes.enabled = false`.
//! - **"Latest" means the latest enabled version**, as the port says. Key Vault's own latest
//!   is the newest version even when it is disabled (it answers 403 `SecretDisabled`); the
//!   store then lists the versions and reads the newest enabled one. A disabled version
//!   reads as `NotFound`.
//! - **Order of versions**: Key Vault lists versions in no useful order and keeps creation
//!   times to the second, so two versions made within one second could not be ordered. Every
//!   `set` therefore tags its version with `createdAt` (RFC 3339, microseconds, from this
//!   process's clock); `versions` sorts by it (by the vault's `created` for versions made by
//!   others), and `SecretVersion::created_at` reports it.
//! - **Cache**: reads are cached in memory, a version for 5 minutes (versions are immutable;
//!   only a disable elsewhere goes unseen that long), the latest for 30 seconds (a rotation
//!   elsewhere is seen within that). Concurrent misses for one key make one vault call. This
//!   instance's own `set` and `disable` invalidate what they change at once. Failures and
//!   `NotFound` are not cached.
//! - **Throttling**: the SDK's retry policy is off; 429 (any call), 503 and broken
//!   connections (reads and disables, which are idempotent) are retried here with bounded
//!   backoff honouring `Retry-After`, then reported as `Throttled { retry_after }`. A `set`
//!   is not retried after an answer that may have committed (it would add a version).
//! - **Auth**: Entra ID through `azure_identity` (managed identity in Azure, developer tools
//!   elsewhere). The SDK sends the first request without a token, learns the scope from the
//!   vault's 401 challenge, then authorizes; it refuses a challenge naming another domain
//!   unless `verify_challenge_resource` is off, which the store does only for hosts outside
//!   Azure's vault domains (stand-ins).
//! - Secret values are `SecretString`s from the moment they leave the SDK; errors and logs
//!   carry secret names, versions and the vault's error codes, never values or tokens.
//!
//! # Where the tests' fake differs from the real service
//!
//! The tests run against an HTTPS fake Key Vault in `tests/it` that implements what the SDK
//! calls with the documented shapes (`SecretBundle`, `SecretListResult` with `nextLink`
//! paging, `KeyVaultError` with `innererror`). What it glosses over:
//!
//! - Authorization is one static bearer token; the real vault validates the JWT, its
//!   audience, and the identity's RBAC role (403 `ForbiddenByRbac`, which maps to a
//!   `Backend` error).
//! - Listing the versions of a secret that never existed answers `200` with an empty list;
//!   the real vault may answer 404 (both are fine for the port).
//! - It lists versions in version-id order, as the real vault appears to; the real order is
//!   undocumented, which is why the store sorts.
//! - Throttling happens only when a test scripts it; the real limits are per vault and per
//!   region (about 4,000 GETs per 10 s).
//! - No soft delete, recovery, purge, expiry (`exp`/`nbf`), content types or certificates
//!   backing secrets: the port uses none of them.
//! - The SDK's `api-version` (`2025-07-01`) is checked to be present, not interpreted.

mod cache;
mod error;
mod settings;

use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use async_trait::async_trait;
use azure_core::credentials::TokenCredential;
use azure_core::error::ErrorKind;
use azure_core::http::policies::{Policy, PolicyResult};
use azure_core::http::{ClientOptions, Context, Request, RetryOptions, Transport};
use azure_security_keyvault_secrets::models::{
    Secret, SecretAttributes, SecretClientGetSecretOptions,
    SecretClientUpdateSecretPropertiesOptions, SetSecretParameters,
    UpdateSecretPropertiesParameters,
};
use azure_security_keyvault_secrets::{ResourceExt, SecretClient, SecretClientOptions};
use chrono::{DateTime, SecondsFormat, Utc};
use futures::StreamExt as _;
use ports::secrets::validate_name;
use ports::{PortError, SecretStore, SecretVersion};
use secrecy::{ExposeSecret, SecretString};

pub use crate::cache::CacheOptions;
use crate::cache::{Cache, Key, Read};
pub use crate::error::Error;
use crate::error::{BACKEND, VaultFailure, port_error, port_error_scrubbed};
pub use crate::settings::{CLIENT_ID_SETTING, CREDENTIAL_SETTING, VAULT_URI_SETTING};
pub use azure_credential::retry::RetryPolicy;

/// The tag each `set` puts on its version: when it was made, to the microsecond.
pub const CREATED_TAG: &str = "createdAt";

/// Host suffixes of Azure's Key Vault and Managed HSM endpoints, where the SDK's check of the
/// challenge's resource stays on.
const VAULT_DOMAINS: [&str; 5] = [
    ".vault.azure.net",
    ".vault.azure.cn",
    ".vault.usgovcloudapi.net",
    ".vault.microsoftazure.de",
    ".managedhsm.azure.net",
];

/// How a store is built; `Default` is what production uses.
#[derive(Clone)]
pub struct StoreOptions {
    pub cache: CacheOptions,
    pub retry: RetryPolicy,
    /// The whole of one HTTP request. Default 30 s.
    pub request_timeout: Duration,
    /// The HTTP client to use (tests pass one that trusts their CA). By default a client
    /// with the platform's trusted roots and `request_timeout`.
    pub http_client: Option<reqwest::Client>,
    /// The credential to use (tests pass a static one). By default `from_settings` picks
    /// managed identity in Azure and developer tools elsewhere.
    pub credential: Option<Arc<dyn TokenCredential>>,
    /// Whether the vault's auth challenge must name a resource of the vault's own domain
    /// (the SDK's check). `None`: on for Azure's vault domains, off for any other host.
    pub verify_challenge_resource: Option<bool>,
}

impl Default for StoreOptions {
    fn default() -> Self {
        StoreOptions {
            cache: CacheOptions::default(),
            retry: RetryPolicy::default(),
            request_timeout: Duration::from_secs(30),
            http_client: None,
            credential: None,
            verify_challenge_resource: None,
        }
    }
}

impl fmt::Debug for StoreOptions {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("StoreOptions")
            .field("cache", &self.cache)
            .field("retry", &self.retry)
            .field("request_timeout", &self.request_timeout)
            .field("http_client", &self.http_client.is_some())
            .field("credential", &self.credential.is_some())
            .field("verify_challenge_resource", &self.verify_challenge_resource)
            .finish()
    }
}

/// Secrets in Key Vault. Cheap to share (`Arc`), safe to use from many tasks.
pub struct KeyVaultSecretStore {
    client: SecretClient,
    vault_url: String,
    cache: Cache,
    retry: RetryPolicy,
    requests: Arc<AtomicU64>,
}

/// Hand-written: the client holds the credential.
impl fmt::Debug for KeyVaultSecretStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("KeyVaultSecretStore")
            .field("vault_url", &self.vault_url)
            .finish_non_exhaustive()
    }
}

/// Counts every HTTP request that reaches the transport (challenges and retries included):
/// what Key Vault's throttling counts.
#[derive(Debug)]
struct CountRequests(Arc<AtomicU64>);

#[async_trait]
impl Policy for CountRequests {
    // The trait declares `&Context` with an elided lifetime; spelling it `'_` here would make
    // the lifetime early-bound and the signature no longer match under `async_trait`.
    #[allow(elided_lifetimes_in_paths)]
    async fn send(
        &self,
        ctx: &Context,
        request: &mut Request,
        next: &[Arc<dyn Policy>],
    ) -> PolicyResult {
        self.0.fetch_add(1, Ordering::Relaxed);
        match next.split_first() {
            Some((first, rest)) => first.send(ctx, request, rest).await,
            None => Err(azure_core::Error::with_message(
                ErrorKind::Other,
                "no transport after the request counter",
            )),
        }
    }
}

impl KeyVaultSecretStore {
    /// A store on the vault at `vault_url` (`https://<vault>.vault.azure.net/`) reached with
    /// `credential`.
    pub fn new(
        vault_url: &str,
        credential: Arc<dyn TokenCredential>,
        options: StoreOptions,
    ) -> Result<Self, Error> {
        let url = reqwest::Url::parse(vault_url.trim()).map_err(|e| Error::VaultUrl {
            reason: format!("not a URL: {e}"),
        })?;
        // The SDK's bearer-token policy refuses to send a token over plain HTTP.
        if url.scheme() != "https" {
            return Err(Error::VaultUrl {
                reason: "the vault is reached over https only".to_owned(),
            });
        }
        let host = url
            .host_str()
            .filter(|h| !h.is_empty())
            .ok_or_else(|| Error::VaultUrl {
                reason: "the URL has no host".to_owned(),
            })?
            .to_ascii_lowercase();
        if url.query().is_some() || url.fragment().is_some() || !url.username().is_empty() {
            return Err(Error::VaultUrl {
                reason: "the URL must not carry a query, a fragment or credentials".to_owned(),
            });
        }
        let verify = options
            .verify_challenge_resource
            .unwrap_or_else(|| VAULT_DOMAINS.iter().any(|d| host.ends_with(d)));
        if !verify {
            tracing::warn!(
                vault = %url,
                "the vault's auth challenge is not checked against Azure's vault domains \
                 (a stand-in, not an Azure vault)"
            );
        }
        let http = match options.http_client {
            Some(client) => client,
            None => reqwest::Client::builder()
                .timeout(options.request_timeout)
                .connect_timeout(Duration::from_secs(10))
                // A vault never redirects; following one could hand the token elsewhere.
                .redirect(reqwest::redirect::Policy::none())
                .https_only(true)
                .build()
                .map_err(|e| Error::Http(e.to_string()))?,
        };
        let requests = Arc::new(AtomicU64::new(0));
        let client_options = SecretClientOptions {
            client_options: ClientOptions {
                transport: Some(Transport::new(Arc::new(http))),
                retry: RetryOptions::none(),
                per_try_policies: vec![Arc::new(CountRequests(requests.clone()))],
                ..ClientOptions::default()
            },
            verify_challenge_resource: Some(verify),
            ..SecretClientOptions::default()
        };
        let client = SecretClient::new(url.as_str(), credential, Some(client_options))
            .map_err(|e| Error::Client(e.to_string()))?;
        Ok(KeyVaultSecretStore {
            client,
            vault_url: url.to_string(),
            cache: Cache::new(options.cache),
            retry: options.retry,
            requests,
        })
    }

    /// The store the settings choose, or `None` when they choose none (the embedded store
    /// is used then). See [`VAULT_URI_SETTING`].
    pub fn from_settings(settings: &BTreeMap<String, String>) -> Result<Option<Self>, Error> {
        Self::from_settings_with(settings, StoreOptions::default())
    }

    /// [`from_settings`](Self::from_settings) with options (a client, a credential, the
    /// cache's lifetimes).
    pub fn from_settings_with(
        settings: &BTreeMap<String, String>,
        options: StoreOptions,
    ) -> Result<Option<Self>, Error> {
        settings::from_settings(settings, options)
    }

    pub fn vault_url(&self) -> &str {
        &self.vault_url
    }

    /// HTTP requests sent to the vault so far: auth challenges and retries included, cache
    /// hits excluded.
    pub fn vault_requests(&self) -> u64 {
        self.requests.load(Ordering::Relaxed)
    }

    /// Runs `call` until it succeeds, fails for good, or the retry policy gives up.
    /// `idempotent` calls are also retried after answers that may have committed.
    async fn with_retries<T, F, Fut>(&self, idempotent: bool, mut call: F) -> azure_core::Result<T>
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = azure_core::Result<T>>,
    {
        let mut attempt = 1;
        loop {
            let e = match call().await {
                Ok(value) => return Ok(value),
                Err(e) => e,
            };
            let (retry, hint) = match (e.kind(), VaultFailure::of(&e)) {
                (_, Some(f)) if f.status == 429 => (true, f.retry_after),
                (_, Some(f)) if f.status == 503 => (idempotent, f.retry_after),
                (ErrorKind::Connection, _) => (true, None),
                (ErrorKind::Io, _) => (idempotent, None),
                _ => (false, None),
            };
            let wait = if retry {
                self.retry.wait_before(attempt, hint)
            } else {
                None
            };
            let Some(wait) = wait else {
                return Err(e);
            };
            tracing::debug!(
                attempt,
                wait_ms = wait.as_millis() as u64,
                "key vault: retrying after {}",
                e.http_status()
                    .map(|s| u16::from(s).to_string())
                    .unwrap_or_else(|| "a connection failure".to_owned())
            );
            tokio::time::sleep(wait).await;
            attempt += 1;
        }
    }

    async fn fetch(&self, name: &str, version: Option<&str>) -> azure_core::Result<Secret> {
        self.with_retries(true, || async {
            let options = SecretClientGetSecretOptions {
                secret_version: version.map(str::to_owned),
                ..Default::default()
            };
            self.client
                .get_secret(name, Some(options))
                .await?
                .into_model()
        })
        .await
    }

    async fn read_version(&self, name: &str, version: &str) -> ports::Result<Read> {
        let secret = self
            .fetch(name, Some(version))
            .await
            .map_err(|e| port_error(e, "read a secret version"))?;
        read_of(name, secret)
    }

    async fn read_latest(&self, name: &str, generation: u64) -> ports::Result<Read> {
        match self.fetch(name, None).await {
            Ok(secret) => {
                let read = read_of(name, secret)?;
                // The same read answers a later request for this very version.
                self.cache
                    .put(Key::new(name, Some(&read.1.version)), &read, generation)
                    .await;
                Ok(read)
            }
            Err(e) if VaultFailure::of(&e).is_some_and(|f| f.is_disabled()) => {
                // The vault's latest is disabled; the port's latest is the newest enabled.
                let versions = self.list_versions(name).await?;
                let newest = versions
                    .iter()
                    .rev()
                    .find(|v| v.enabled)
                    .ok_or(PortError::NotFound)?;
                tracing::debug!(
                    secret = name,
                    version = %newest.version,
                    "key vault: the latest version is disabled, reading the newest enabled one"
                );
                self.read_version(name, &newest.version).await
            }
            Err(e) => Err(port_error(e, "read the latest secret version")),
        }
    }

    async fn list_versions(&self, name: &str) -> ports::Result<Vec<SecretVersion>> {
        let items = self
            .with_retries(true, || async {
                let mut pages = self.client.list_secret_properties_versions(name, None)?;
                let mut items = Vec::new();
                while let Some(item) = pages.next().await {
                    items.push(item?);
                }
                Ok(items)
            })
            .await
            .map_err(|e| port_error(e, "list secret versions"))?;
        let mut versions = items
            .iter()
            .map(|p| {
                let id = p.resource_id().map_err(|e| bad_answer(&e.to_string()))?;
                version_of(name, &id, p.attributes.as_ref(), p.tags.as_ref())
            })
            .collect::<ports::Result<Vec<_>>>()?;
        versions.sort_by(|a, b| (a.created_at, &a.version).cmp(&(b.created_at, &b.version)));
        Ok(versions)
    }
}

fn bad_answer(why: &str) -> PortError {
    PortError::backend(
        BACKEND,
        format!("the vault's answer is not understood: {why}"),
    )
}

/// The value and version of a `Secret` the vault returned.
fn read_of(name: &str, secret: Secret) -> ports::Result<Read> {
    let id = secret
        .resource_id()
        .map_err(|e| bad_answer(&e.to_string()))?;
    let meta = version_of(name, &id, secret.attributes.as_ref(), secret.tags.as_ref())?;
    let value = secret
        .value
        .map(SecretString::from)
        .ok_or_else(|| bad_answer("a secret without a value"))?;
    Ok((value, meta))
}

fn version_of(
    requested_name: &str,
    id: &azure_security_keyvault_secrets::ResourceId,
    attributes: Option<&SecretAttributes>,
    tags: Option<&HashMap<String, String>>,
) -> ports::Result<SecretVersion> {
    let version = id
        .version
        .clone()
        .filter(|v| !v.is_empty())
        .ok_or_else(|| bad_answer("a secret id without a version"))?;
    let tagged = tags
        .and_then(|t| t.get(CREATED_TAG))
        .and_then(|t| DateTime::parse_from_rfc3339(t).ok())
        .map(|t| t.with_timezone(&Utc));
    let created_at = tagged
        .or_else(|| {
            let created = attributes?.created?;
            DateTime::from_timestamp(created.unix_timestamp(), created.nanosecond())
        })
        .ok_or_else(|| bad_answer("a secret version without a creation time"))?;
    Ok(SecretVersion {
        // Key Vault's spelling of the name; names are case-insensitive.
        name: if id.name.eq_ignore_ascii_case(requested_name) {
            id.name.clone()
        } else {
            requested_name.to_owned()
        },
        version,
        created_at,
        enabled: attributes.and_then(|a| a.enabled).unwrap_or(true),
    })
}

/// Key Vault versions are 32 hex characters; anything outside `[0-9a-zA-Z]` could reshape the
/// request path, so it is refused before the SDK builds one.
fn validate_version(version: &str) -> ports::Result<()> {
    if (1..=64).contains(&version.len()) && version.chars().all(|c| c.is_ascii_alphanumeric()) {
        Ok(())
    } else {
        Err(PortError::Invalid(
            "secret versions are 1-64 letters and digits".to_owned(),
        ))
    }
}

#[async_trait]
impl SecretStore for KeyVaultSecretStore {
    async fn set(&self, name: &str, value: SecretString) -> ports::Result<SecretVersion> {
        validate_name(name)?;
        let created_at =
            DateTime::from_timestamp_micros(Utc::now().timestamp_micros()).unwrap_or_else(Utc::now);
        let parameters = SetSecretParameters {
            value: Some(value.expose_secret().to_owned()),
            tags: Some(HashMap::from([(
                CREATED_TAG.to_owned(),
                created_at.to_rfc3339_opts(SecondsFormat::Micros, true),
            )])),
            ..Default::default()
        };
        // Retried only when the vault certainly stored nothing (429, no connection): a
        // repeated PUT would add a second version.
        let secret = self
            .with_retries(false, || async {
                self.client
                    .set_secret(name, parameters.clone().try_into()?, None)
                    .await?
                    .into_model()
            })
            .await
            .map_err(|e| {
                port_error_scrubbed(e, "store a secret version", &[value.expose_secret()])
            })?;
        let id = secret
            .resource_id()
            .map_err(|e| bad_answer(&e.to_string()))?;
        let meta = version_of(name, &id, secret.attributes.as_ref(), secret.tags.as_ref())?;
        // The latest has changed; the new version's value is known without a read.
        self.cache.invalidate(name, None).await;
        self.cache
            .put(
                Key::new(name, Some(&meta.version)),
                &(value, meta.clone()),
                self.cache.generation(),
            )
            .await;
        Ok(meta)
    }

    async fn get(
        &self,
        name: &str,
        version: Option<&str>,
    ) -> ports::Result<(SecretString, SecretVersion)> {
        validate_name(name)?;
        match version {
            Some(version) => {
                validate_version(version)?;
                self.cache
                    .get_or_load(Key::new(name, Some(version)), |_| {
                        self.read_version(name, version)
                    })
                    .await
            }
            None => {
                self.cache
                    .get_or_load(Key::new(name, None), |generation| {
                        self.read_latest(name, generation)
                    })
                    .await
            }
        }
    }

    async fn versions(&self, name: &str) -> ports::Result<Vec<SecretVersion>> {
        validate_name(name)?;
        self.list_versions(name).await
    }

    async fn disable(&self, name: &str, version: &str) -> ports::Result<()> {
        validate_name(name)?;
        validate_version(version)?;
        let parameters = UpdateSecretPropertiesParameters {
            secret_attributes: Some(SecretAttributes {
                enabled: Some(false),
                ..Default::default()
            }),
            ..Default::default()
        };
        let result = self
            .with_retries(true, || async {
                let options = SecretClientUpdateSecretPropertiesOptions {
                    secret_version: Some(version.to_owned()),
                    ..Default::default()
                };
                self.client
                    .update_secret_properties(name, parameters.clone().try_into()?, Some(options))
                    .await
                    .map(drop)
            })
            .await;
        // Whatever the answer, this instance must not keep serving the version from memory.
        self.cache.invalidate(name, Some(version)).await;
        result.map_err(|e| port_error(e, "disable a secret version"))
    }
}
