//! The readers' side of custody: credential id → current secret reference → material.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use domain::{CredentialId, CredentialKind, CredentialStatus, IntegrationCredential, SecretRef};
use ports::{DocumentStore, PortError, SecretStore};

use crate::material::{MaterialError, SecretMaterial};

/// Where credential documents live, and under which id.
pub const CREDENTIALS_CONTAINER: &str = "registry";

pub fn credential_doc_id(id: &CredentialId) -> String {
    format!("credential-{id}")
}

#[derive(Debug, thiserror::Error)]
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

/// Resolves credentials through two caches: the credential's current reference (short
/// lifetime: a rotation is seen within it) and the material of each reference (versions are
/// immutable, so it may live longer; still bounded, so a disabled version stops working).
pub struct Resolver {
    documents: Arc<dyn DocumentStore>,
    secrets: Arc<dyn SecretStore>,
    reference_ttl: Duration,
    material_ttl: Duration,
    hot: RwLock<HashMap<Key, (Instant, Arc<Resolved>)>>,
    materials: RwLock<HashMap<SecretRef, (Instant, Arc<SecretMaterial>)>>,
    /// Misses are filled one at a time: a burst of callers for a cold credential makes one
    /// secret-store read, not one each.
    fill: tokio::sync::Mutex<()>,
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
            reference_ttl,
            material_ttl,
            hot: RwLock::default(),
            materials: RwLock::default(),
            fill: tokio::sync::Mutex::new(()),
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

    /// The cached resolution, if fresh: the synchronous hot path of `resolve`.
    pub fn cached(&self, tenant: &str, id: &CredentialId) -> Option<Arc<Resolved>> {
        let hot = self.hot.read().unwrap_or_else(|p| p.into_inner());
        // Borrowed lookup would need a custom key type; ids are small, so build the key.
        let (at, resolved) = hot.get(&(tenant.to_owned(), *id))?;
        (at.elapsed() < self.reference_ttl).then(|| resolved.clone())
    }

    /// The current material of a tenant's credential.
    pub async fn resolve(
        &self,
        tenant: &str,
        id: &CredentialId,
    ) -> Result<Arc<Resolved>, ResolveError> {
        if let Some(hit) = self.cached(tenant, id) {
            self.hits.fetch_add(1, Ordering::Relaxed);
            return Ok(hit);
        }
        let _filling = self.fill.lock().await;
        if let Some(hit) = self.cached(tenant, id) {
            // Filled by the caller we waited for.
            self.hits.fetch_add(1, Ordering::Relaxed);
            return Ok(hit);
        }
        self.misses.fetch_add(1, Ordering::Relaxed);
        let doc = self
            .documents
            .read(CREDENTIALS_CONTAINER, tenant, &credential_doc_id(id))
            .await?
            .ok_or(ResolveError::NotFound)?;
        let credential: IntegrationCredential = doc.parse()?;
        if credential.status() == CredentialStatus::Revoked {
            return Err(ResolveError::Revoked);
        }
        let reference = credential.current().clone();
        let material = self.material(credential.kind(), &reference).await?;
        let resolved = Arc::new(Resolved {
            kind: credential.kind(),
            reference,
            material,
        });
        self.hot
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .insert((tenant.to_owned(), *id), (Instant::now(), resolved.clone()));
        Ok(resolved)
    }

    /// The material of one exact version (a rotation's pending secret, say), cached too.
    pub async fn material(
        &self,
        kind: CredentialKind,
        reference: &SecretRef,
    ) -> Result<Arc<SecretMaterial>, ResolveError> {
        {
            let materials = self.materials.read().unwrap_or_else(|p| p.into_inner());
            if let Some((at, m)) = materials.get(reference)
                && at.elapsed() < self.material_ttl
            {
                return Ok(m.clone());
            }
        }
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
        let material = Arc::new(SecretMaterial::from_secret_json(kind, &secret)?);
        self.materials
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .insert(reference.clone(), (Instant::now(), material.clone()));
        Ok(material)
    }

    /// Forgets what is cached for a credential (the writer calls it after a rotation in the
    /// same process; other processes see the change within the reference lifetime).
    pub fn invalidate(&self, tenant: &str, id: &CredentialId) {
        self.hot
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .remove(&(tenant.to_owned(), *id));
    }
}
