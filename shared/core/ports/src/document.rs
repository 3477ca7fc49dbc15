//! The document store port: JSON documents in containers, partitioned by tenant.
//!
//! Modelled on what Cosmos DB guarantees, so the embedded store cannot promise more than
//! production: optimistic concurrency by ETag, queries scoped to one partition unless asked
//! otherwise, per-document TTL, and atomic batches inside one (container, partition).

use std::fmt;
use std::time::Duration;

use async_trait::async_trait;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::Result;

/// An opaque version tag; any change to a document changes it.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct ETag(pub String);

impl fmt::Display for ETag {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A stored document as read back.
#[derive(Clone, Debug, PartialEq)]
pub struct Document {
    pub id: String,
    pub partition: String,
    pub etag: ETag,
    /// The document body. Stores add no fields of their own to it.
    pub body: Value,
}

impl Document {
    /// Deserializes the body into a typed value.
    pub fn parse<T: serde::de::DeserializeOwned>(&self) -> Result<T> {
        // Straight from the borrowed tree: `from_value` would need a deep copy of it first.
        T::deserialize(&self.body).map_err(|e| {
            crate::PortError::Invalid(format!("document {} has an unexpected shape: {e}", self.id))
        })
    }
}

/// One write inside a batch. Every variant may carry a time-to-live after which the
/// document is gone for readers (and reclaimed by the store).
#[derive(Clone, Debug)]
pub enum WriteOp {
    /// Fails with `AlreadyExists` when the id is taken.
    Create {
        id: String,
        body: Value,
        ttl: Option<Duration>,
    },
    /// Creates or replaces; with `if_match` it only replaces that exact version.
    Upsert {
        id: String,
        body: Value,
        if_match: Option<ETag>,
        ttl: Option<Duration>,
    },
    /// Fails with `NotFound` when missing, `PreconditionFailed` when `if_match` differs.
    Replace {
        id: String,
        body: Value,
        if_match: Option<ETag>,
        ttl: Option<Duration>,
    },
    /// Fails with `NotFound` when missing, `PreconditionFailed` when `if_match` differs.
    Delete { id: String, if_match: Option<ETag> },
}

impl WriteOp {
    pub fn id(&self) -> &str {
        match self {
            WriteOp::Create { id, .. }
            | WriteOp::Upsert { id, .. }
            | WriteOp::Replace { id, .. }
            | WriteOp::Delete { id, .. } => id,
        }
    }

    pub fn create(id: impl Into<String>, body: Value) -> Self {
        WriteOp::Create {
            id: id.into(),
            body,
            ttl: None,
        }
    }

    pub fn replace(id: impl Into<String>, body: Value, if_match: Option<ETag>) -> Self {
        WriteOp::Replace {
            id: id.into(),
            body,
            if_match,
            ttl: None,
        }
    }

    pub fn upsert(id: impl Into<String>, body: Value) -> Self {
        WriteOp::Upsert {
            id: id.into(),
            body,
            if_match: None,
            ttl: None,
        }
    }

    pub fn delete(id: impl Into<String>, if_match: Option<ETag>) -> Self {
        WriteOp::Delete {
            id: id.into(),
            if_match,
        }
    }

    /// Sets the time-to-live of a create, upsert or replace (ignored on delete).
    pub fn with_ttl(mut self, value: Duration) -> Self {
        match &mut self {
            WriteOp::Create { ttl, .. }
            | WriteOp::Upsert { ttl, .. }
            | WriteOp::Replace { ttl, .. } => *ttl = Some(value),
            WriteOp::Delete { .. } => {}
        }
        self
    }
}

/// A query: equality filters on top-level fields, ordered by id, paged by continuation.
///
/// Deliberately small: everything here maps to one parameterized Cosmos SQL query
/// (`SELECT * FROM c WHERE c.f = @p ... ORDER BY c.id`), so no app can come to depend on
/// something only SQLite can do.
#[derive(Clone, Debug, Default)]
pub struct Query {
    /// `None` asks every partition (the outbox publisher and operators need it; apps don't).
    pub partition: Option<String>,
    pub filters: Vec<(String, Value)>,
    /// Page size; 0 means the store's default (100).
    pub limit: usize,
    pub continuation: Option<String>,
}

impl Query {
    pub fn partition(partition: impl Into<String>) -> Self {
        Query {
            partition: Some(partition.into()),
            ..Query::default()
        }
    }

    pub fn cross_partition() -> Self {
        Query::default()
    }

    pub fn filter(mut self, field: impl Into<String>, value: impl Into<Value>) -> Self {
        self.filters.push((field.into(), value.into()));
        self
    }

    pub fn limit(mut self, limit: usize) -> Self {
        self.limit = limit;
        self
    }

    pub fn after(mut self, continuation: Option<String>) -> Self {
        self.continuation = continuation;
        self
    }

    /// Whether a field name is allowed in a filter: plain identifiers only, so that a
    /// filter can never become query syntax in any adapter.
    pub fn valid_field(field: &str) -> bool {
        !field.is_empty()
            && field.len() <= 64
            && field.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
            && !field.starts_with(|c: char| c.is_ascii_digit())
    }
}

/// One page of results, with the token for the next page.
#[derive(Clone, Debug, Default)]
pub struct Page {
    pub documents: Vec<Document>,
    pub continuation: Option<String>,
}

#[async_trait]
pub trait DocumentStore: Send + Sync {
    /// Reads one document; `None` when it does not exist or has expired.
    async fn read(&self, container: &str, partition: &str, id: &str) -> Result<Option<Document>>;

    /// Applies the writes atomically: all or none. Every op is in the same container and
    /// partition (the Cosmos transactional-batch rule). Returns the new etag of each op
    /// (`None` for deletes), in order.
    async fn batch(
        &self,
        container: &str,
        partition: &str,
        ops: Vec<WriteOp>,
    ) -> Result<Vec<Option<ETag>>>;

    async fn query(&self, container: &str, query: &Query) -> Result<Page>;

    /// Whether a committed batch's outbox documents are already messages on the bus: the
    /// store hands them to its broker in the batch's own transaction (the embedded store
    /// sharing a database with the embedded broker). The outbox publisher then only sweeps
    /// what the broker could not take, on its own schedule, and is not woken per commit.
    fn routes_outbox(&self) -> bool {
        false
    }
}

/// Conveniences over the core trait, for every store.
#[async_trait]
pub trait DocumentStoreExt: DocumentStore {
    async fn create(
        &self,
        container: &str,
        partition: &str,
        id: &str,
        body: Value,
    ) -> Result<ETag> {
        self.single(container, partition, WriteOp::create(id, body))
            .await
    }

    async fn upsert(
        &self,
        container: &str,
        partition: &str,
        id: &str,
        body: Value,
    ) -> Result<ETag> {
        self.single(container, partition, WriteOp::upsert(id, body))
            .await
    }

    async fn replace(
        &self,
        container: &str,
        partition: &str,
        id: &str,
        body: Value,
        if_match: Option<ETag>,
    ) -> Result<ETag> {
        self.single(container, partition, WriteOp::replace(id, body, if_match))
            .await
    }

    async fn delete(
        &self,
        container: &str,
        partition: &str,
        id: &str,
        if_match: Option<ETag>,
    ) -> Result<()> {
        self.batch(container, partition, vec![WriteOp::delete(id, if_match)])
            .await?;
        Ok(())
    }

    async fn single(&self, container: &str, partition: &str, op: WriteOp) -> Result<ETag> {
        let mut etags = self.batch(container, partition, vec![op]).await?;
        etags.pop().flatten().ok_or_else(|| {
            crate::PortError::Invalid("the store returned no etag for a write".into())
        })
    }
}

impl<T: DocumentStore + ?Sized> DocumentStoreExt for T {}
