//! The registry's data as a contract. The registry app is the only writer of its container;
//! every other crate that reads it (custody's resolver for credential references, the
//! integration kit for catalogue entries and rate-limit hints) goes through this crate, so
//! the container's name, its document ids and the shapes read from it live in one place.
//! Bicep's least-privilege roles follow the same split: the registry writes this container,
//! every other app may only read it.
//!
//! Layout: container [`CONTAINER`], partition = the tenant (`platform` for the catalogue);
//! documents `provider-<key>`, `client-<key>-<name>-<version>` (catalogue, platform
//! partition), `credential-<id>` and `rotation-<id>` (a tenant's custody). The document
//! shapes are the domain's aggregates ([`domain::IntegrationProvider`],
//! [`domain::ExternalApiClient`], [`domain::IntegrationCredential`]); secret material is
//! never here, only a [`domain::SecretRef`] to it.

use domain::{
    CredentialId, IntegrationCredential, IntegrationProvider, ProviderKey, RateLimitHints,
    RotationId, TenantId,
};
use ports::{DocumentStore, PortError};

/// The registry's document container.
pub const CONTAINER: &str = "registry";

/// The `type` each document of the container carries.
pub mod doc_type {
    pub const PROVIDER: &str = "provider";
    pub const CLIENT: &str = "client";
    pub const CREDENTIAL: &str = "credential";
    pub const ROTATION: &str = "rotation";
}

/// The partition of the catalogue (providers and their API clients).
pub fn catalogue_partition() -> &'static str {
    TenantId::PLATFORM
}

pub fn provider_doc_id(key: &ProviderKey) -> String {
    format!("provider-{key}")
}

pub fn client_doc_id(key: &ProviderKey, name: &str, version: &impl std::fmt::Display) -> String {
    format!("client-{key}-{name}-{version}")
}

pub fn credential_doc_id(id: &CredentialId) -> String {
    format!("credential-{id}")
}

pub fn rotation_doc_id(id: &RotationId) -> String {
    format!("rotation-{id}")
}

/// A tenant's credential document (its current and pending secret references), or `None`
/// when the tenant has no such credential (another tenant's id included).
pub async fn read_credential(
    documents: &dyn DocumentStore,
    tenant: &str,
    id: &CredentialId,
) -> Result<Option<IntegrationCredential>, PortError> {
    read(documents, tenant, &credential_doc_id(id)).await
}

/// A document of the container, as `T`; a document of another shape is an error.
async fn read<T: serde::de::DeserializeOwned>(
    documents: &dyn DocumentStore,
    partition: &str,
    id: &str,
) -> Result<Option<T>, PortError> {
    match documents.read(CONTAINER, partition, id).await? {
        Some(doc) => Ok(Some(doc.parse()?)),
        None => Ok(None),
    }
}

/// A provider of the catalogue, as the registry registered it. `None` for a key that is
/// not registered yet (built-in providers join the catalogue on first use) or not a key.
pub async fn read_provider(
    documents: &dyn DocumentStore,
    key: &str,
) -> Result<Option<IntegrationProvider>, PortError> {
    let Ok(key) = ProviderKey::parse(key) else {
        return Ok(None);
    };
    read(documents, catalogue_partition(), &provider_doc_id(&key)).await
}

/// A provider's rate-limit hints, when the catalogue has the provider and it has hints.
pub async fn rate_limit_hints(
    documents: &dyn DocumentStore,
    key: &str,
) -> Result<Option<RateLimitHints>, PortError> {
    Ok(read_provider(documents, key)
        .await?
        .and_then(|p| p.rate_limit_hints().cloned()))
}

#[cfg(test)]
mod tests;
