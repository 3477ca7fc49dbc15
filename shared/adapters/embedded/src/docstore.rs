//! `SqliteDocumentStore`: the embedded document store.
//!
//! One table keyed by (container, partition, id). A batch is one SQLite transaction, so an
//! aggregate and its outbox events are committed together or not at all. TTL is an
//! `expires_at` column: expired rows are invisible at once and reclaimed a few at a time on
//! later writes through an index (no scanning cleaner).

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use ports::{Document, DocumentStore, ETag, Page, PortError, Query, Result, WriteOp};
use rusqlite::{OptionalExtension, ToSql, params};
use serde_json::Value;

use crate::sqlite::{Db, Durability, GroupWriter, backend};

pub(crate) const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS documents (
    container  TEXT NOT NULL,
    partition  TEXT NOT NULL,
    id         TEXT NOT NULL,
    etag       TEXT NOT NULL,
    body       TEXT NOT NULL,
    expires_at INTEGER,
    PRIMARY KEY (container, partition, id)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS documents_expiry ON documents(expires_at) WHERE expires_at IS NOT NULL;
-- `docType` is the filter every app and the outbox publisher use: index it, so finding the
-- few pending outbox documents among millions of others is a lookup, not a scan. (The
-- expression must match the one `query` generates, letter for letter.)
CREATE INDEX IF NOT EXISTS documents_doctype ON documents(container, json_extract(body, '$.docType'), partition, id);
";

/// Largest batch accepted, as in Cosmos DB's transactional batch.
pub const MAX_BATCH: usize = 100;
/// Largest document body accepted (Cosmos DB's item limit is 2 MiB).
pub const MAX_DOCUMENT_BYTES: usize = 2 * 1024 * 1024;
const DEFAULT_PAGE: usize = 100;
const MAX_PAGE: usize = 1000;

#[derive(Clone)]
pub struct SqliteDocumentStore {
    /// Reads (through its read-only connections).
    db: Db,
    /// Batches, committed in groups by one writer thread.
    writer: GroupWriter,
    /// With the broker in the same database: outbox documents become its messages in the
    /// batch's own transaction (see [`crate::open_combined`]).
    route: Option<Arc<OutboxRoute>>,
}

/// Reads an outbox document: the entity and the message it stands for, or `None` when the
/// body is not an outbox document.
pub type OutboxMessage =
    Arc<dyn Fn(&Value) -> Option<(String, ports::OutgoingMessage)> + Send + Sync>;

pub(crate) struct OutboxRoute {
    pub(crate) broker: crate::SqliteBroker,
    pub(crate) message: OutboxMessage,
}

impl std::fmt::Debug for SqliteDocumentStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SqliteDocumentStore")
            .finish_non_exhaustive()
    }
}

impl SqliteDocumentStore {
    pub fn open(path: &Path, durability: Durability) -> Result<Self> {
        let db = Db::open(path, durability, SCHEMA)?;
        let writer = GroupWriter::start(path, durability, Box::new(housekeeping))?;
        Ok(SqliteDocumentStore {
            db,
            writer,
            route: None,
        })
    }

    /// A store on a database and writer it shares with the broker, routing outbox documents
    /// to it (see [`crate::open_combined`]).
    pub(crate) fn with_route(db: Db, writer: GroupWriter, route: OutboxRoute) -> Self {
        SqliteDocumentStore {
            db,
            writer,
            route: Some(Arc::new(route)),
        }
    }
}

/// Reclaims a few expired rows per group; readers never see them anyway.
pub(crate) fn housekeeping(tx: &rusqlite::Transaction<'_>) -> Result<()> {
    tx.prepare_cached(
        "DELETE FROM documents WHERE (container, partition, id) IN \
         (SELECT container, partition, id FROM documents \
          WHERE expires_at IS NOT NULL AND expires_at <= ?1 LIMIT 32)",
    )
    .and_then(|mut stmt| stmt.execute(params![now_ms()]))
    .map(|_| ())
    .map_err(backend)
}

fn now_ms() -> i64 {
    chrono::Utc::now().timestamp_millis()
}

fn expiry(ttl: Option<Duration>, now: i64) -> Option<i64> {
    ttl.map(|t| now.saturating_add(i64::try_from(t.as_millis()).unwrap_or(i64::MAX)))
}

fn validate_key(what: &str, value: &str) -> Result<()> {
    // Cosmos forbids '/', '\\', '?', '#' in ids; we hold partitions and containers to the same.
    if value.is_empty() || value.len() > 255 || value.contains(['/', '\\', '?', '#']) {
        return Err(PortError::Invalid(format!(
            "{what} must be 1-255 characters without '/', '\\\\', '?' or '#'"
        )));
    }
    Ok(())
}

fn new_etag() -> String {
    uuid::Uuid::new_v4().simple().to_string()
}

/// The current etag of a live (not expired) row.
fn live_etag(
    tx: &rusqlite::Connection,
    container: &str,
    partition: &str,
    id: &str,
    now: i64,
) -> Result<Option<String>> {
    tx.prepare_cached(
        "SELECT etag FROM documents WHERE container=?1 AND partition=?2 AND id=?3 \
         AND (expires_at IS NULL OR expires_at > ?4)",
    )
    .and_then(|mut stmt| {
        stmt.query_row(params![container, partition, id, now], |r| r.get(0))
            .optional()
    })
    .map_err(backend)
}

fn check_match(current: &Option<String>, if_match: &Option<ETag>) -> Result<()> {
    match (current, if_match) {
        (None, _) => Err(PortError::NotFound),
        (Some(cur), Some(want)) if *cur != want.0 => Err(PortError::PreconditionFailed),
        _ => Ok(()),
    }
}

fn encode_body(body: &Value) -> Result<String> {
    if !body.is_object() {
        return Err(PortError::Invalid(
            "a document body must be a JSON object".into(),
        ));
    }
    let text = serde_json::to_string(body).map_err(|e| PortError::Invalid(e.to_string()))?;
    if text.len() > MAX_DOCUMENT_BYTES {
        return Err(PortError::Invalid(format!(
            "document is {} bytes; the limit is {MAX_DOCUMENT_BYTES}",
            text.len()
        )));
    }
    Ok(text)
}

fn apply(
    tx: &rusqlite::Connection,
    container: &str,
    partition: &str,
    op: WriteOp,
    now: i64,
) -> Result<Option<ETag>> {
    validate_key("a document id", op.id())?;
    let id = op.id().to_owned();
    let current = live_etag(tx, container, partition, &id, now)?;
    let write = |body: &Value, ttl: Option<Duration>| -> Result<Option<ETag>> {
        let etag = new_etag();
        let text = encode_body(body)?;
        // Cached statements: the hot path parses each SQL text once per connection.
        tx.prepare_cached(
            "INSERT INTO documents (container, partition, id, etag, body, expires_at) \
             VALUES (?1, ?2, ?3, ?4, ?5, ?6) \
             ON CONFLICT (container, partition, id) DO UPDATE SET \
             etag=excluded.etag, body=excluded.body, expires_at=excluded.expires_at",
        )
        .and_then(|mut stmt| {
            stmt.execute(params![
                container,
                partition,
                id,
                etag,
                text,
                expiry(ttl, now)
            ])
        })
        .map_err(backend)?;
        Ok(Some(ETag(etag)))
    };
    match op {
        WriteOp::Create { body, ttl, .. } => {
            if current.is_some() {
                return Err(PortError::AlreadyExists);
            }
            write(&body, ttl)
        }
        WriteOp::Upsert {
            body,
            if_match,
            ttl,
            ..
        } => {
            if if_match.is_some() {
                check_match(&current, &if_match)?;
            }
            write(&body, ttl)
        }
        WriteOp::Replace {
            body,
            if_match,
            ttl,
            ..
        } => {
            check_match(&current, &if_match)?;
            write(&body, ttl)
        }
        WriteOp::Delete { if_match, .. } => {
            check_match(&current, &if_match)?;
            tx.prepare_cached(
                "DELETE FROM documents WHERE container=?1 AND partition=?2 AND id=?3",
            )
            .and_then(|mut stmt| stmt.execute(params![container, partition, id]))
            .map_err(backend)?;
            Ok(None)
        }
    }
}

/// Keyset pagination token: the (partition, id) of the last row of the previous page.
fn encode_continuation(partition: &str, id: &str) -> String {
    URL_SAFE_NO_PAD.encode(serde_json::to_vec(&(partition, id)).unwrap_or_default())
}

fn decode_continuation(token: &str) -> Result<(String, String)> {
    URL_SAFE_NO_PAD
        .decode(token)
        .ok()
        .and_then(|b| serde_json::from_slice(&b).ok())
        .ok_or_else(|| PortError::Invalid("the continuation token is malformed".into()))
}

fn filter_param(value: &Value) -> Result<Option<Box<dyn ToSql + Send>>> {
    Ok(match value {
        Value::Null => None,
        Value::Bool(b) => Some(Box::new(i64::from(*b))),
        Value::Number(n) => match (n.as_i64(), n.as_f64()) {
            (Some(i), _) => Some(Box::new(i)),
            (None, Some(f)) => Some(Box::new(f)),
            _ => return Err(PortError::Invalid("unsupported number in a filter".into())),
        },
        Value::String(s) => Some(Box::new(s.clone())),
        Value::Array(_) | Value::Object(_) => {
            return Err(PortError::Invalid(
                "filters compare scalar fields only".into(),
            ));
        }
    })
}

#[async_trait]
impl DocumentStore for SqliteDocumentStore {
    async fn read(&self, container: &str, partition: &str, id: &str) -> Result<Option<Document>> {
        validate_key("a container name", container)?;
        validate_key("a partition key", partition)?;
        validate_key("a document id", id)?;
        let (c, p, i) = (container.to_owned(), partition.to_owned(), id.to_owned());
        self.db
            .read_point(move |conn| {
                let row: Option<(String, String)> = conn
                    .prepare_cached(
                        "SELECT etag, body FROM documents WHERE container=?1 AND partition=?2 \
                         AND id=?3 AND (expires_at IS NULL OR expires_at > ?4)",
                    )
                    .and_then(|mut stmt| {
                        stmt.query_row(params![c, p, i, now_ms()], |r| Ok((r.get(0)?, r.get(1)?)))
                            .optional()
                    })
                    .map_err(backend)?;
                row.map(|(etag, body)| {
                    Ok(Document {
                        id: i.clone(),
                        partition: p.clone(),
                        etag: ETag(etag),
                        body: serde_json::from_str(&body)
                            .map_err(|e| PortError::backend("sqlite", e))?,
                    })
                })
                .transpose()
            })
            .await
    }

    fn routes_outbox(&self) -> bool {
        self.route.is_some()
    }

    async fn batch(
        &self,
        container: &str,
        partition: &str,
        ops: Vec<WriteOp>,
    ) -> Result<Vec<Option<ETag>>> {
        validate_key("a container name", container)?;
        validate_key("a partition key", partition)?;
        if ops.is_empty() || ops.len() > MAX_BATCH {
            return Err(PortError::Invalid(format!(
                "a batch holds 1-{MAX_BATCH} operations"
            )));
        }
        let (c, p) = (container.to_owned(), partition.to_owned());
        // With the broker beside the documents, an outbox document is its message, written
        // in this batch's transaction: committed together or not at all, as the document
        // would have been, without the publisher's write-query-send-delete round trip.
        // Anything the broker cannot take now (an entity not created yet) stays a document
        // for the publisher.
        let mut writes = Vec::with_capacity(ops.len());
        let mut sends = Vec::new();
        if let Some(route) = &self.route {
            for op in ops {
                if let WriteOp::Create { body, .. } = &op
                    && let Some((entity, message)) = (route.message)(body)
                {
                    match route.broker.prepare_send(&entity, vec![message]).await {
                        Ok(send) => {
                            writes.push(None);
                            sends.push(send);
                            continue;
                        }
                        Err(e) => {
                            tracing::debug!(entity, error = %e, "an outbox message left for the publisher");
                        }
                    }
                }
                writes.push(Some(op));
            }
        } else {
            writes.extend(ops.into_iter().map(Some));
        }
        let woken: Vec<String> = sends.iter().flat_map(|s| s.woken()).collect();
        let etags = self
            .writer
            .write(move |sp| {
                let now = now_ms();
                let mut etags = Vec::with_capacity(writes.len());
                for op in writes {
                    etags.push(match op {
                        Some(op) => apply(sp, &c, &p, op, now)?,
                        // Routed to the broker: no document, so no etag.
                        None => None,
                    });
                }
                for send in &sends {
                    crate::broker::enqueue(sp, send, now)?;
                }
                Ok(etags)
            })
            .await?;
        if let Some(route) = &self.route
            && !woken.is_empty()
        {
            route.broker.wake(&woken);
        }
        Ok(etags)
    }

    async fn query(&self, container: &str, query: &Query) -> Result<Page> {
        validate_key("a container name", container)?;
        // A `docType` filter is served by its index. Named explicitly: without statistics
        // (a young database) SQLite would walk the primary key to get the order for free.
        let by_type = query
            .filters
            .iter()
            .any(|(f, v)| f == "docType" && !v.is_null());
        let mut sql = format!(
            "SELECT partition, id, etag, body FROM documents{} WHERE container=?1 \
             AND (expires_at IS NULL OR expires_at > ?2)",
            if by_type {
                " INDEXED BY documents_doctype"
            } else {
                ""
            }
        );
        let mut args: Vec<Box<dyn ToSql + Send>> =
            vec![Box::new(container.to_owned()), Box::new(now_ms())];
        if let Some(p) = &query.partition {
            validate_key("a partition key", p)?;
            args.push(Box::new(p.clone()));
            sql.push_str(&format!(" AND partition=?{}", args.len()));
        }
        for (field, value) in &query.filters {
            if !Query::valid_field(field) {
                return Err(PortError::Invalid(format!(
                    "{field:?} is not a valid filter field"
                )));
            }
            match filter_param(value)? {
                None => sql.push_str(&format!(" AND json_extract(body, '$.{field}') IS NULL")),
                Some(v) => {
                    args.push(v);
                    sql.push_str(&format!(
                        " AND json_extract(body, '$.{field}') = ?{}",
                        args.len()
                    ));
                }
            }
        }
        if let Some(token) = &query.continuation {
            let (p, i) = decode_continuation(token)?;
            args.push(Box::new(p));
            args.push(Box::new(i));
            sql.push_str(&format!(
                " AND (partition, id) > (?{}, ?{})",
                args.len() - 1,
                args.len()
            ));
        }
        let limit = match query.limit {
            0 => DEFAULT_PAGE,
            n => n.min(MAX_PAGE),
        };
        sql.push_str(&format!(" ORDER BY partition, id LIMIT {}", limit + 1));
        // One type of document in one partition (a tenant's subscriptions, say) is a short
        // walk of the type index: run it on the calling task, as a point read, rather than
        // pay two thread hand-offs. Anything wider may scan at length and goes to a blocking
        // thread.
        let short = by_type && query.partition.is_some();
        let run = move |conn: &mut rusqlite::Connection| {
            let mut stmt = conn.prepare_cached(&sql).map_err(backend)?;
            let refs: Vec<&dyn ToSql> = args.iter().map(|a| a.as_ref() as &dyn ToSql).collect();
            let rows = stmt
                .query_map(refs.as_slice(), |r| {
                    Ok((
                        r.get::<_, String>(0)?,
                        r.get::<_, String>(1)?,
                        r.get::<_, String>(2)?,
                        r.get::<_, String>(3)?,
                    ))
                })
                .map_err(backend)?;
            let mut documents = Vec::new();
            for row in rows {
                let (partition, id, etag, body) = row.map_err(backend)?;
                documents.push(Document {
                    id,
                    partition,
                    etag: ETag(etag),
                    body: serde_json::from_str(&body)
                        .map_err(|e| PortError::backend("sqlite", e))?,
                });
            }
            let continuation = if documents.len() > limit {
                documents.truncate(limit);
                documents
                    .last()
                    .map(|d| encode_continuation(&d.partition, &d.id))
            } else {
                None
            };
            Ok(Page {
                documents,
                continuation,
            })
        };
        if short {
            self.db.read_point(run).await
        } else {
            self.db.read(run).await
        }
    }
}
