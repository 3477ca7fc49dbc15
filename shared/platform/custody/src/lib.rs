//! Credential custody. Secret material lives only in the secret store; everything else
//! (documents, events, responses, logs) holds a `SecretRef` (name + version).
//!
//! - [`SecretMaterial`]: the secret fields of one credential kind, validated, with a
//!   redacting `Debug`.
//! - [`Custody`]: the writer (the registry is the only one): stores material as a new
//!   version and discards versions.
//! - [`Resolver`]: the readers' side: credential → current reference → material, through
//!   two in-memory caches with short lifetimes, so a rotation takes effect without a restart
//!   and the secret store is not called per request.

mod material;
pub mod oauth;
mod resolver;

pub use material::{MaterialError, SecretMaterial};
pub use resolver::{ResolveError, Resolved, Resolver, ResolverStats};

use std::sync::Arc;

use domain::{CredentialId, SecretRef};
use ports::{PortError, SecretStore};

/// The writer side of custody.
#[derive(Clone)]
pub struct Custody {
    secrets: Arc<dyn SecretStore>,
}

impl std::fmt::Debug for Custody {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Custody")
    }
}

impl Custody {
    pub fn new(secrets: Arc<dyn SecretStore>) -> Self {
        Custody { secrets }
    }

    /// The secret's name for a credential: Key Vault names allow only letters, digits and
    /// '-', and credential ids are unique platform-wide.
    pub fn secret_name(id: &CredentialId) -> String {
        format!("cred-{}", id.to_string().replace('_', "-"))
    }

    /// Stores `material` as a new version of the credential's secret.
    pub async fn store(
        &self,
        id: &CredentialId,
        material: &SecretMaterial,
    ) -> Result<SecretRef, PortError> {
        let name = Self::secret_name(id);
        let version = self.secrets.set(&name, material.to_secret_json()).await?;
        SecretRef::new(&version.name, &version.version).map_err(|e| {
            PortError::Invalid(format!(
                "the secret store returned an unusable reference: {e}"
            ))
        })
    }

    /// Disables a version (a failed rotation's pending secret, or a superseded one).
    pub async fn discard(&self, reference: &SecretRef) -> Result<(), PortError> {
        match self
            .secrets
            .disable(reference.name(), reference.version())
            .await
        {
            Ok(()) | Err(PortError::NotFound) => Ok(()),
            Err(e) => Err(e),
        }
    }
}
