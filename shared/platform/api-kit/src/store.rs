//! How apps keep aggregates: documents tagged with `docType` in one container, each change
//! committed in one batch with the outbox records of the events it caused.

use app_context::AppContext;
use ports::{ETag, WriteOp};
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::{Value, json};

use crate::ApiError;

/// An app's aggregate storage: its container, and the `source` of its events.
#[derive(Clone, Copy, Debug)]
pub struct Aggregates {
    pub container: &'static str,
    pub source: &'static str,
}

impl Aggregates {
    pub const fn new(container: &'static str, source: &'static str) -> Self {
        Aggregates { container, source }
    }

    /// A document for the store: the aggregate's own JSON plus its `docType`.
    pub fn document<T: Serialize>(aggregate: &T, doc_type: &str) -> Result<Value, ApiError> {
        let mut v = serde_json::to_value(aggregate)
            .map_err(|e| ApiError::internal(format!("an aggregate did not serialise: {e}")))?;
        if let Value::Object(m) = &mut v {
            m.insert("docType".into(), json!(doc_type));
        }
        Ok(v)
    }

    /// Commits `ops` and the outbox records of `events` in one batch of `partition`.
    /// `conflict` is the detail of the 409 when a create or an etag check fails.
    pub async fn commit(
        &self,
        ctx: &AppContext,
        partition: &str,
        mut ops: Vec<WriteOp>,
        events: &[domain::DomainEvent],
        conflict: &str,
    ) -> Result<(), ApiError> {
        ops.extend(
            outbox::event_writes(events, self.source, None).map_err(|e| {
                ApiError::internal(format!("an event did not make an envelope: {e}"))
            })?,
        );
        ctx.documents
            .batch(self.container, partition, ops)
            .await
            .map_err(|e| ApiError::from_port(e, conflict))?;
        ctx.outbox_committed();
        Ok(())
    }

    /// Reads and parses a document with its etag; `None` when absent.
    pub async fn read<T: DeserializeOwned>(
        &self,
        ctx: &AppContext,
        partition: &str,
        id: &str,
    ) -> Result<Option<(T, ETag)>, ApiError> {
        let Some(doc) = ctx
            .documents
            .read(self.container, partition, id)
            .await
            .map_err(|e| ApiError::from_port(e, "conflict"))?
        else {
            return Ok(None);
        };
        let value = doc
            .parse()
            .map_err(|e| ApiError::from_port(e, "conflict"))?;
        Ok(Some((value, doc.etag)))
    }
}

/// `?limit&continuation` of a listing route.
#[derive(Debug, Default, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Paging {
    pub limit: Option<usize>,
    pub continuation: Option<String>,
}

impl Aggregates {
    /// One page of `query` in the app's container: `limit` 1-100 (default 50), the
    /// continuation of the previous page, documents parsed as `T`.
    pub async fn page<T: DeserializeOwned>(
        &self,
        ctx: &AppContext,
        query: ports::Query,
        paging: Paging,
    ) -> Result<(Vec<T>, Option<String>), ApiError> {
        let limit = paging.limit.unwrap_or(50);
        if !(1..=100).contains(&limit) {
            return Err(ApiError::bad_request("invalid_limit", "limit is 1-100"));
        }
        let page = ctx
            .documents
            .query(
                self.container,
                &query.limit(limit).after(paging.continuation),
            )
            .await
            .map_err(|e| ApiError::from_port(e, "conflict"))?;
        let items = page
            .documents
            .iter()
            .map(|d| d.parse::<T>())
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| ApiError::from_port(e, "conflict"))?;
        Ok((items, page.continuation))
    }
}
