//! The secret store port: named secrets with immutable versions (the Key Vault model).

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use secrecy::SecretString;

use crate::Result;

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SecretVersion {
    pub name: String,
    pub version: String,
    pub created_at: DateTime<Utc>,
    pub enabled: bool,
}

#[async_trait]
pub trait SecretStore: Send + Sync {
    /// Stores a new version and returns it; earlier versions stay readable.
    async fn set(&self, name: &str, value: SecretString) -> Result<SecretVersion>;

    /// Reads a version (the latest enabled one when `version` is `None`). Disabled versions
    /// read as `NotFound`, as in Key Vault's "forbidden by policy" for disabled secrets.
    async fn get(&self, name: &str, version: Option<&str>)
    -> Result<(SecretString, SecretVersion)>;

    /// Every version, oldest first.
    async fn versions(&self, name: &str) -> Result<Vec<SecretVersion>>;

    /// Disables one version (after a rotation has promoted its successor).
    async fn disable(&self, name: &str, version: &str) -> Result<()>;
}

/// Secret names follow Key Vault: 1-127 characters of `[0-9a-zA-Z-]`.
pub fn validate_name(name: &str) -> Result<()> {
    if (1..=127).contains(&name.len())
        && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
    {
        Ok(())
    } else {
        Err(crate::PortError::Invalid(
            "secret names are 1-127 characters of 0-9, a-z, A-Z and '-'".to_owned(),
        ))
    }
}
