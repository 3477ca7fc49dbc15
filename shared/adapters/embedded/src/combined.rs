//! The document store and the broker in one SQLite database, with one writer.
//!
//! Why: every hop between functions goes through the transactional outbox. With the two in
//! separate databases, an event costs an outbox document written with the change, then the
//! publisher's query, the broker's send and the document's delete: profiled, that round trip
//! was about a quarter of a webhook delivery's cost. In one database, the document batch
//! writes the broker's message itself, in the same transaction as the change: committed
//! together or not at all, which is all the outbox promises. (Attaching two databases would
//! not do: in WAL mode a transaction is not atomic across attached files.)
//!
//! An outbox document the broker cannot take at that moment (its entity does not exist yet)
//! stays a document, and the outbox publisher sends it on its next pass. The publisher is not
//! woken per commit with this store (`routes_outbox`): its passes come on its own schedule
//! (every 0.5 s while it finds work, backing off to 8 s), instead of an empty query after
//! every commit of every app.

use std::path::Path;

use ports::{PortError, Result};

use crate::docstore::{OutboxMessage, OutboxRoute};
use crate::sqlite::{Db, Durability, GroupWriter, backend};
use crate::{SqliteBroker, SqliteDocumentStore};

/// Opens (creating it if needed) one database holding documents and broker entities, and
/// the two ports on it. `message` reads an outbox document (the outbox crate's format).
pub fn open_combined(
    path: &Path,
    durability: Durability,
    message: OutboxMessage,
) -> Result<(SqliteDocumentStore, SqliteBroker)> {
    let schema = format!("{}{}", crate::docstore::SCHEMA, crate::broker::SCHEMA);
    let db = Db::open(path, durability, &schema)?;
    let writer = GroupWriter::start(path, durability, Box::new(crate::docstore::housekeeping))?;
    let broker = SqliteBroker::from_parts(db.clone(), writer.clone());
    let documents = SqliteDocumentStore::with_route(
        db,
        writer,
        OutboxRoute {
            broker: broker.clone(),
            message,
        },
    );
    Ok((documents, broker))
}

/// Copies the entities, messages and duplicate-detection ids of a broker database written by
/// an earlier version (`old`, its own file) into the combined database at `combined`, in one
/// transaction. Messages keep their order and state (delivery counts, locks, dead letters);
/// they get new sequence numbers after the ones already there. Answers how many messages
/// were copied. Copying twice copies twice: rename `old` once this returns.
pub fn import_broker(combined: &Path, old: &Path) -> Result<usize> {
    let old = old
        .to_str()
        .ok_or_else(|| PortError::Invalid("the broker database path is not UTF-8".into()))?;
    let mut conn = rusqlite::Connection::open(combined).map_err(backend)?;
    conn.busy_timeout(std::time::Duration::from_secs(5))
        .map_err(backend)?;
    conn.execute("ATTACH DATABASE ?1 AS old", [old])
        .map_err(backend)?;
    let copied = (|| {
        let tx = conn
            .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)
            .map_err(backend)?;
        tx.execute(
            "INSERT OR IGNORE INTO main.entities (path, topic, spec, filter) \
             SELECT path, topic, spec, filter FROM old.entities",
            [],
        )
        .map_err(backend)?;
        let copied = tx
            .execute(
                "INSERT INTO main.messages (entity, message_id, session_id, body, props, \
                 enqueued_at, visible_at, expires_at, delivery_count, lock_token, locked_until, \
                 dead_letter, dl_reason, dl_source) \
                 SELECT entity, message_id, session_id, body, props, enqueued_at, visible_at, \
                 expires_at, delivery_count, lock_token, locked_until, dead_letter, dl_reason, \
                 dl_source FROM old.messages ORDER BY seq",
                [],
            )
            .map_err(backend)?;
        tx.execute(
            "INSERT OR REPLACE INTO main.dedup (entity, message_id, expires_at) \
             SELECT entity, message_id, expires_at FROM old.dedup",
            [],
        )
        .map_err(backend)?;
        tx.commit().map_err(backend)?;
        Ok::<usize, PortError>(copied)
    })();
    let _ = conn.execute("DETACH DATABASE old", []);
    copied
}
