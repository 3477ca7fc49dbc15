//! How a port document is stored as a Cosmos DB item, and read back.
//!
//! ```json
//! { "id": "<id>", "tenantId": "<partition>", "sortKey": "<partition>/<id>",
//!   "body": { …the document, untouched… },
//!   "expiresAt": 1764230400123, "ttl": 3 }
//! ```
//!
//! - `tenantId` is the container's partition key path (`/tenantId`, as the Bicep creates
//!   every container) and holds the partition value the port passes. It is a field of the
//!   item, not of the body: bodies have their own `tenantId` (and `id`) fields, which may
//!   differ from the partition (the webhook gateway keeps every tenant's sources in partition
//!   `sources`), and the port promises bodies back unchanged.
//! - `body` is the document exactly as written; filters address `c.body.<field>`.
//! - `sortKey` orders queries and pages them (keyset): unique within a container because ids
//!   and partitions never hold `/`, and one property, so Cosmos serves `ORDER BY` from the
//!   default range index without a composite index.
//! - `expiresAt` (milliseconds since the epoch) and `ttl` (whole seconds) exist only when the
//!   write carried a time-to-live. `expiresAt` is what readers obey: the adapter hides
//!   expired items at millisecond precision in reads and queries, as the embedded store does.
//!   `ttl` lets Cosmos reclaim the item later (it needs TTL on in the container, which the
//!   Bicep sets with `defaultTtl: -1`); it is rounded up and padded by a second so Cosmos
//!   (whose clock ticks in seconds from the write's `_ts`) never reclaims an item before
//!   `expiresAt` has passed.

use std::time::Duration;

use ports::{Document, ETag, PortError, Result};
use serde::Deserialize;
use serde_json::{Map, Value};

/// The container partition key path every container must have.
pub(crate) const PARTITION_KEY_PATH: &str = "/tenantId";
pub(crate) const PARTITION_FIELD: &str = "tenantId";
pub(crate) const SORT_KEY_FIELD: &str = "sortKey";
pub(crate) const BODY_FIELD: &str = "body";
pub(crate) const EXPIRES_AT_FIELD: &str = "expiresAt";
pub(crate) const TTL_FIELD: &str = "ttl";

/// Largest item accepted, wrapper included: Cosmos DB's item limit is 2 MiB.
pub const MAX_ITEM_BYTES: usize = 2 * 1024 * 1024;

/// Cosmos item `ttl` is a 32-bit count of seconds.
const MAX_TTL_SECONDS: u64 = i32::MAX as u64;

pub(crate) fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}

/// Ids, partitions and container names: what Cosmos allows in a resource id, held to the
/// same rules as the embedded store so an app cannot come to depend on either's leniency.
pub(crate) fn validate_key(what: &str, value: &str) -> Result<()> {
    if value.is_empty() || value.len() > 255 || value.contains(['/', '\\', '?', '#']) {
        return Err(PortError::Invalid(format!(
            "{what} must be 1-255 characters without '/', '\\\\', '?' or '#'"
        )));
    }
    Ok(())
}

/// The key queries are ordered and paged by. `/` cannot occur in either part, so the pair is
/// recoverable and unique.
pub(crate) fn sort_key(partition: &str, id: &str) -> String {
    format!("{partition}/{id}")
}

/// `(expiresAt, ttl)` for a write made at `now_ms` that must be gone after `ttl`.
pub(crate) fn expiry(ttl: Duration, now_ms: i64) -> (i64, u64) {
    let ms = i64::try_from(ttl.as_millis()).unwrap_or(i64::MAX);
    let expires_at = now_ms.saturating_add(ms);
    // Whole seconds, rounded up, plus one: Cosmos counts from `_ts` (the write's second,
    // rounded down), so this is never earlier than `expires_at`.
    let seconds = ttl
        .as_secs()
        .saturating_add(u64::from(ttl.subsec_nanos() > 0))
        .saturating_add(1)
        .min(MAX_TTL_SECONDS);
    (expires_at, seconds)
}

/// The item to write for `body` under (`partition`, `id`).
pub(crate) fn to_item(
    partition: &str,
    id: &str,
    body: Value,
    ttl: Option<Duration>,
    now_ms: i64,
) -> Result<Value> {
    if !body.is_object() {
        return Err(PortError::Invalid(
            "a document body must be a JSON object".into(),
        ));
    }
    let mut item = Map::with_capacity(6);
    item.insert("id".into(), Value::String(id.to_owned()));
    item.insert(PARTITION_FIELD.into(), Value::String(partition.to_owned()));
    item.insert(
        SORT_KEY_FIELD.into(),
        Value::String(sort_key(partition, id)),
    );
    item.insert(BODY_FIELD.into(), body);
    if let Some(ttl) = ttl {
        let (expires_at, seconds) = expiry(ttl, now_ms);
        item.insert(EXPIRES_AT_FIELD.into(), Value::from(expires_at));
        item.insert(TTL_FIELD.into(), Value::from(seconds));
    }
    let item = Value::Object(item);
    let size = serde_json::to_vec(&item)
        .map_err(|e| PortError::Invalid(format!("the document does not serialise: {e}")))?
        .len();
    if size > MAX_ITEM_BYTES {
        return Err(PortError::Invalid(format!(
            "the document is {size} bytes stored; the limit is {MAX_ITEM_BYTES}"
        )));
    }
    Ok(item)
}

/// An item as read back. System properties other than `_etag` are ignored.
#[derive(Deserialize)]
pub(crate) struct StoredItem {
    id: String,
    #[serde(rename = "tenantId")]
    partition: String,
    body: Value,
    #[serde(rename = "expiresAt", default)]
    expires_at: Option<i64>,
    #[serde(rename = "_etag", default)]
    etag: Option<String>,
}

impl StoredItem {
    /// Parses an item; a malformed one (not written by this adapter) is a backend error
    /// that names the id but never repeats the content.
    pub(crate) fn parse(value: Value) -> Result<StoredItem> {
        let id = value
            .get("id")
            .and_then(Value::as_str)
            .unwrap_or("<no id>")
            .to_owned();
        serde_json::from_value(value).map_err(|_| {
            PortError::backend(
                "cosmos",
                format!(
                    "item {id:?} is not a document this adapter wrote (it needs tenantId, body and \
                     id)"
                ),
            )
        })
    }

    pub(crate) fn is_expired(&self, now_ms: i64) -> bool {
        self.expires_at.is_some_and(|at| at <= now_ms)
    }

    /// The port's document; `etag` overrides the item's `_etag` (point reads take the
    /// response header).
    pub(crate) fn into_document(self, etag: Option<String>) -> Result<Document> {
        let etag = etag.or(self.etag).ok_or_else(|| {
            PortError::backend(
                "cosmos",
                format!("item {:?} came back without an etag", self.id),
            )
        })?;
        Ok(Document {
            id: self.id,
            partition: self.partition,
            etag: ETag(etag),
            body: self.body,
        })
    }
}

#[cfg(test)]
mod tests;
