//! The blob port: raw payloads (webhook bodies, run inputs and outputs) by container and name.

use async_trait::async_trait;
use bytes::Bytes;
use chrono::{DateTime, Utc};

use crate::Result;

#[derive(Clone, Debug, Default)]
pub struct PutOptions {
    pub content_type: Option<String>,
    /// Fail with `AlreadyExists` instead of overwriting (first writer wins).
    pub if_none_match: bool,
}

#[derive(Clone, Debug, PartialEq)]
pub struct BlobInfo {
    pub container: String,
    pub name: String,
    pub size: u64,
    pub content_type: Option<String>,
    /// Hex SHA-256 of the content, checked on read.
    pub sha256: String,
    pub etag: String,
    pub last_modified: DateTime<Utc>,
}

#[async_trait]
pub trait BlobStore: Send + Sync {
    /// Writes atomically: a reader sees the old content or the new, never a part.
    async fn put(
        &self,
        container: &str,
        name: &str,
        data: Bytes,
        options: PutOptions,
    ) -> Result<BlobInfo>;

    async fn get(&self, container: &str, name: &str) -> Result<(Bytes, BlobInfo)>;

    async fn head(&self, container: &str, name: &str) -> Result<BlobInfo>;

    /// `NotFound` when absent.
    async fn delete(&self, container: &str, name: &str) -> Result<()>;

    /// Names under a prefix, sorted.
    async fn list(&self, container: &str, prefix: &str) -> Result<Vec<BlobInfo>>;
}

/// Container and blob name rules shared by every adapter (the Azure rules, which are the
/// strictest): container 3-63 of `[a-z0-9-]`, no leading, trailing or doubled '-'; blob names
/// 1-1024 characters, no backslash, no `.`/`..` segments, no leading '/'.
pub fn validate_names(container: &str, name: &str) -> Result<()> {
    let bad = |why: &str| Err(crate::PortError::Invalid(why.to_owned()));
    let c_ok = (3..=63).contains(&container.len())
        && container
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
        && !container.starts_with('-')
        && !container.ends_with('-')
        && !container.contains("--");
    if !c_ok {
        return bad("container names are 3-63 characters of a-z, 0-9 and single '-'");
    }
    if name.is_empty() || name.len() > 1024 {
        return bad("blob names are 1-1024 characters");
    }
    if name.starts_with('/')
        || name.contains('\\')
        || name.contains('\0')
        || name
            .split('/')
            .any(|s| s.is_empty() || s == "." || s == "..")
    {
        return bad(
            "blob names may not start with '/', hold empty, '.' or '..' segments, '\\' or NUL",
        );
    }
    Ok(())
}
