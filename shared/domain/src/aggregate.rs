//! What every aggregate shares: tenant partition, id, version and timestamps.

use chrono::{DateTime, Utc};

use crate::values::TenantId;

/// Common surface of the aggregates, so a repository can store any of them as a document.
///
/// `version` counts applied changes: 1 at creation, plus one per successful transition or bookkeeping
/// call. The store's own concurrency token (Cosmos `_etag`) lives outside the domain; a store without
/// one can compare the stored version with the version it loaded.
pub trait Aggregate {
    /// The document kind (`"integrationRun"`), for stores that keep several kinds in one container.
    const KIND: &'static str;

    /// The partition.
    fn tenant_id(&self) -> &TenantId;
    /// The document id (the typed id as text; the key for providers).
    fn document_id(&self) -> String;
    /// The change counter.
    fn version(&self) -> u64;
    /// When the aggregate was created.
    fn created_at(&self) -> DateTime<Utc>;
    /// When the aggregate last changed.
    fn updated_at(&self) -> DateTime<Utc>;
}

/// Implements [`Aggregate`] for a struct with the usual field names.
macro_rules! impl_aggregate {
    ($ty:ty, $kind:literal) => {
        impl $crate::aggregate::Aggregate for $ty {
            const KIND: &'static str = $kind;
            fn tenant_id(&self) -> &$crate::values::TenantId {
                &self.tenant_id
            }
            fn document_id(&self) -> String {
                self.id.to_string()
            }
            fn version(&self) -> u64 {
                self.version
            }
            fn created_at(&self) -> chrono::DateTime<chrono::Utc> {
                self.created_at
            }
            fn updated_at(&self) -> chrono::DateTime<chrono::Utc> {
                self.updated_at
            }
        }
    };
}
pub(crate) use impl_aggregate;

/// Records one change: bumps the version (saturating, so a hostile document cannot make it panic) and
/// the update time.
pub(crate) fn touch(version: &mut u64, updated_at: &mut DateTime<Utc>, now: DateTime<Utc>) {
    *version = version.saturating_add(1);
    *updated_at = now;
}
