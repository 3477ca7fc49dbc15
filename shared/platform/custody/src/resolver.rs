//! The readers' side of custody: credential id → current secret reference → material.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use moka::future::Cache;

use domain::{CredentialId, CredentialKind, CredentialStatus, SecretRef};
use ports::{DocumentStore, PortError, SecretStore};

use crate::material::{MaterialError, SecretMaterial};

#[derive(Clone, Debug, thiserror::Error)]
pub enum ResolveError {
    /// Unknown here, including another tenant's credential.
    #[error("the credential was not found")]
    NotFound,
    #[error("the credential has been revoked")]
    Revoked,
    #[error(transparent)]
    Material(#[from] MaterialError),
    #[error(transparent)]
    Port(#[from] PortError),
}

/// What a caller gets: the material and the reference it came from.
#[derive(Debug)]
pub struct Resolved {
    pub kind: CredentialKind,
    pub reference: SecretRef,
    pub material: Arc<SecretMaterial>,
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ResolverStats {
    pub hits: u64,
    pub misses: u64,
    pub secret_store_reads: u64,
}

type Key = (String, CredentialId);

/// Entries each cache holds at most (least recently used go first).
const CAPACITY: u64 = 10_000;

/// Resolves credentials through two caches (`moka`): the credential's current reference
/// (short lifetime: a rotation is seen within it) and the material of each reference
/// (versions are immutable, so it may live longer; still bounded, so a disabled version
/// stops working). A miss is filled once per key however many callers ask at once (one
/// document read and one secret-store read for a burst on a cold credential), and a miss of
/// one credential never waits for another's.
pub struct Resolver {
    documents: Arc<dyn DocumentStore>,
    secrets: Arc<dyn SecretStore>,
    hot: Cache<Key, Arc<Resolved>>,
    materials: Cache<SecretRef, Arc<SecretMaterial>>,
    hits: AtomicU64,
    misses: AtomicU64,
    reads: AtomicU64,
}

impl std::fmt::Debug for Resolver {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Resolver")
            .field("stats", &self.stats())
            .finish_non_exhaustive()
    }
}

impl Resolver {
    /// Defaults: references live 5 s, material 60 s.
    pub fn new(documents: Arc<dyn DocumentStore>, secrets: Arc<dyn SecretStore>) -> Self {
        Self::with_ttls(
            documents,
            secrets,
            Duration::from_secs(5),
            Duration::from_secs(60),
        )
    }

    pub fn with_ttls(
        documents: Arc<dyn DocumentStore>,
        secrets: Arc<dyn SecretStore>,
        reference_ttl: Duration,
        material_ttl: Duration,
    ) -> Self {
        Resolver {
            documents,
            secrets,
            hot: Cache::builder()
                .max_capacity(CAPACITY)
                .time_to_live(reference_ttl)
                .build(),
            materials: Cache::builder()
                .max_capacity(CAPACITY)
                .time_to_live(material_ttl)
                .build(),
            hits: AtomicU64::new(0),
            misses: AtomicU64::new(0),
            reads: AtomicU64::new(0),
        }
    }

    pub fn stats(&self) -> ResolverStats {
        ResolverStats {
            hits: self.hits.load(Ordering::Relaxed),
            misses: self.misses.load(Ordering::Relaxed),
            secret_store_reads: self.reads.load(Ordering::Relaxed),
        }
    }

    /// The cached resolution, if fresh: the hot path of `resolve`.
    pub async fn cached(&self, tenant: &str, id: &CredentialId) -> Option<Arc<Resolved>> {
        // Borrowed lookup would need a custom key type; ids are small, so build the key.
        self.hot.get(&(tenant.to_owned(), *id)).await
    }

    /// The current material of a tenant's credential.
    pub async fn resolve(
        &self,
        tenant: &str,
        id: &CredentialId,
    ) -> Result<Arc<Resolved>, ResolveError> {
        if let Some(hit) = self.cached(tenant, id).await {
            self.hits.fetch_add(1, Ordering::Relaxed);
            return Ok(hit);
        }
        let key = (tenant.to_owned(), *id);
        let mut filled = false;
        let resolved = self
            .hot
            .try_get_with(key, async {
                filled = true;
                self.misses.fetch_add(1, Ordering::Relaxed);
                self.load(tenant, id).await
            })
            .await
            .map_err(unshare)?;
        if !filled {
            // Filled by the caller we waited for.
            self.hits.fetch_add(1, Ordering::Relaxed);
        }
        Ok(resolved)
    }

    async fn load(&self, tenant: &str, id: &CredentialId) -> Result<Arc<Resolved>, ResolveError> {
        let credential = registry_data::read_credential(self.documents.as_ref(), tenant, id)
            .await?
            .ok_or(ResolveError::NotFound)?;
        if credential.status() == CredentialStatus::Revoked {
            return Err(ResolveError::Revoked);
        }
        let reference = credential.current().clone();
        let material = self.material(credential.kind(), &reference).await?;
        Ok(Arc::new(Resolved {
            kind: credential.kind(),
            reference,
            material,
        }))
    }

    /// The material of one exact version (a rotation's pending secret, say), cached too.
    pub async fn material(
        &self,
        kind: CredentialKind,
        reference: &SecretRef,
    ) -> Result<Arc<SecretMaterial>, ResolveError> {
        self.materials
            .try_get_with_by_ref(reference, async {
                self.reads.fetch_add(1, Ordering::Relaxed);
                let (secret, _) = match self
                    .secrets
                    .get(reference.name(), Some(reference.version()))
                    .await
                {
                    Ok(s) => s,
                    Err(PortError::NotFound) => return Err(ResolveError::NotFound),
                    Err(e) => return Err(e.into()),
                };
                Ok(Arc::new(SecretMaterial::from_secret_json(kind, &secret)?))
            })
            .await
            .map_err(unshare)
    }

    /// Forgets what is cached for a credential (the writer calls it after a rotation in the
    /// same process; other processes see the change within the reference lifetime).
    pub async fn invalidate(&self, tenant: &str, id: &CredentialId) {
        self.hot.invalidate(&(tenant.to_owned(), *id)).await;
    }
}

/// A fill's error as each of its waiters gets it.
fn unshare(e: Arc<ResolveError>) -> ResolveError {
    Arc::unwrap_or_clone(e)
}
