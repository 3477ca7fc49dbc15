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

/// Implements [`Aggregate`] for a struct with the usual field names (`tenant_id`, `id`, `version`,
/// `created_at`, `updated_at`), plus the matching inherent getters, so callers need not import the
/// trait:
///
/// ```text
/// impl_aggregate!(IntegrationRun, "integrationRun", id: RunId);
/// impl_aggregate!(IntegrationProvider, "integrationProvider", key: &ProviderKey, ...);
/// ```
///
/// The id getter is named by the caller; `id: RunId` returns a copy of the `id` field, while
/// `key: &ProviderKey` (an id that is not `Copy`) returns a reference to it. The default doc lines of
/// the id, `tenant_id` and `version` getters can be replaced, in that order, with
/// `id_doc = "..."`, `tenant_doc = "..."` and `version_doc = "..."`.
macro_rules! impl_aggregate {
    // An id that is not `Copy`: the getter returns a reference.
    (
        $ty:ty, $kind:literal, $id_fn:ident: & $id_ty:ty
        $(, id_doc = $id_doc:literal)?
        $(, tenant_doc = $tenant_doc:literal)?
        $(, version_doc = $version_doc:literal)?
        $(,)?
    ) => {
        $crate::aggregate::impl_aggregate!(@impl $ty, $kind,
            [$($id_doc)?] [$($tenant_doc)?] [$($version_doc)?]
            [&] $id_fn: $id_ty);
    };
    // A `Copy` id: the getter returns it by value.
    (
        $ty:ty, $kind:literal, $id_fn:ident: $id_ty:ty
        $(, id_doc = $id_doc:literal)?
        $(, tenant_doc = $tenant_doc:literal)?
        $(, version_doc = $version_doc:literal)?
        $(,)?
    ) => {
        $crate::aggregate::impl_aggregate!(@impl $ty, $kind,
            [$($id_doc)?] [$($tenant_doc)?] [$($version_doc)?]
            [] $id_fn: $id_ty);
    };
    (
        @impl $ty:ty, $kind:literal,
        [$($id_doc:literal)?] [$($tenant_doc:literal)?] [$($version_doc:literal)?]
        [$($amp:tt)?] $id_fn:ident: $id_ty:ty
    ) => {
        impl $ty {
            $crate::aggregate::impl_aggregate!(@doc [$($tenant_doc)?] "The owning tenant."
                pub fn tenant_id(&self) -> &$crate::values::TenantId {
                    &self.tenant_id
                }
            );
            $crate::aggregate::impl_aggregate!(@doc [$($id_doc)?] "The id."
                pub fn $id_fn(&self) -> $($amp)? $id_ty {
                    $($amp)? self.id
                }
            );
            $crate::aggregate::impl_aggregate!(@doc [$($version_doc)?] "The change counter."
                pub fn version(&self) -> u64 {
                    self.version
                }
            );
            /// Creation time.
            pub fn created_at(&self) -> chrono::DateTime<chrono::Utc> {
                self.created_at
            }
            /// Last change time.
            pub fn updated_at(&self) -> chrono::DateTime<chrono::Utc> {
                self.updated_at
            }
        }

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
    // One getter with its doc line: the override if given, else the default.
    (@doc [$doc:literal] $default:literal $($item:tt)*) => {
        #[doc = $doc]
        $($item)*
    };
    (@doc [] $default:literal $($item:tt)*) => {
        #[doc = $default]
        $($item)*
    };
}
pub(crate) use impl_aggregate;

/// Records one change: bumps the version (saturating, so a hostile document cannot make it panic) and
/// the update time.
pub(crate) fn touch(version: &mut u64, updated_at: &mut DateTime<Utc>, now: DateTime<Utc>) {
    *version = version.saturating_add(1);
    *updated_at = now;
}
