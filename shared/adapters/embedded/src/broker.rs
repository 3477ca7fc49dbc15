//! `SqliteBroker`: an embedded message broker with the Service Bus semantics the platform
//! relies on, stored in SQLite so that an accepted message survives a crash.
//!
//! - queues, and topics whose subscriptions each get a copy of every matching message;
//! - peek-lock: a received message is invisible until completed, abandoned, dead-lettered or
//!   its lock expires; each delivery increments `delivery_count` (first delivery = 1);
//! - a message already delivered `max_delivery_count` times is dead-lettered
//!   (`MaxDeliveryCountExceeded`) instead of being delivered again;
//! - expired messages (time-to-live) are dead-lettered (`TTLExpiredException`);
//! - scheduled messages become visible at their enqueue time;
//! - duplicate detection by `MessageId` within the entity's window;
//! - session entities deliver one message per session at a time, in sequence order.

use std::collections::HashMap;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;
use chrono::{DateTime, TimeZone, Utc};
use ports::{
    BrokerReceiver, BusSender, Entity, EntitySpec, Filter, OutgoingMessage, PortError,
    PropertyValue, ReceivedMessage, Result, Topology,
};
use rusqlite::{OptionalExtension, params};
use serde::{Deserialize, Serialize};
use tokio::sync::Notify;

use crate::sqlite::{Db, Durability, GroupWriter, backend, exec, query_row};

pub(crate) const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS entities (
    path   TEXT PRIMARY KEY,
    topic  TEXT,
    spec   TEXT NOT NULL,
    filter TEXT
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS messages (
    seq            INTEGER PRIMARY KEY AUTOINCREMENT,
    entity         TEXT NOT NULL,
    message_id     TEXT NOT NULL,
    session_id     TEXT,
    body           BLOB NOT NULL,
    props          TEXT NOT NULL,
    enqueued_at    INTEGER NOT NULL,
    visible_at     INTEGER NOT NULL,
    expires_at     INTEGER,
    delivery_count INTEGER NOT NULL DEFAULT 0,
    lock_token     TEXT,
    locked_until   INTEGER,
    dead_letter    INTEGER NOT NULL DEFAULT 0,
    dl_reason      TEXT,
    dl_source      TEXT
);
CREATE INDEX IF NOT EXISTS messages_ready ON messages(entity, dead_letter, visible_at, seq);
CREATE INDEX IF NOT EXISTS messages_session ON messages(entity, session_id, seq) WHERE session_id IS NOT NULL;
-- A lock token names its message's `seq` (see `lock_token`): settling finds the row by its
-- key, and no index on tokens has to be written at every receive and settlement.
DROP INDEX IF EXISTS messages_lock;
CREATE TABLE IF NOT EXISTS dedup (
    entity     TEXT NOT NULL,
    message_id TEXT NOT NULL,
    expires_at INTEGER NOT NULL,
    PRIMARY KEY (entity, message_id)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS dedup_expiry ON dedup(expires_at);
";

/// Marks a topic row in the entities table.
const TOPIC_MARKER: &str = "\"topic\"";

/// Largest message body accepted (Service Bus Standard's limit).
pub const MAX_MESSAGE_BYTES: usize = 256 * 1024;

/// Everything about a message except its body, stored as one JSON column.
#[derive(Serialize, Deserialize)]
struct Props {
    #[serde(skip_serializing_if = "Option::is_none")]
    content_type: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    subject: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    correlation_id: Option<String>,
    #[serde(default)]
    app: std::collections::BTreeMap<String, PropertyValue>,
    #[serde(skip_serializing_if = "Option::is_none")]
    scheduled: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    ttl_ms: Option<u64>,
}

#[derive(Clone, Debug)]
struct EntityInfo {
    spec: EntitySpec,
    /// For a topic: its subscriptions' paths and filters.
    subscriptions: Vec<(String, Filter)>,
    is_topic: bool,
}

#[derive(Clone)]
pub struct SqliteBroker {
    /// Reads, through its read-only connections.
    db: Db,
    writer: GroupWriter,
    entities: Arc<Mutex<HashMap<String, EntityInfo>>>,
    notify: Arc<Mutex<HashMap<String, Arc<Notify>>>>,
}

impl std::fmt::Debug for SqliteBroker {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SqliteBroker").finish_non_exhaustive()
    }
}

fn now_ms() -> i64 {
    Utc::now().timestamp_millis()
}

fn ms(d: Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX)
}

fn to_time(ms: i64) -> DateTime<Utc> {
    Utc.timestamp_millis_opt(ms).single().unwrap_or_default()
}

fn json_err(e: serde_json::Error) -> PortError {
    PortError::backend("sqlite", e)
}

impl SqliteBroker {
    pub fn open(path: &Path, durability: Durability) -> Result<Self> {
        let db = Db::open(path, durability, SCHEMA)?;
        // Writes (sends, locks, completions) are committed in groups by one writer thread;
        // see `GroupWriter`.
        let writer = GroupWriter::start(path, durability, Box::new(|_| Ok(())))?;
        Ok(Self::from_parts(db, writer))
    }

    /// A broker on a database and writer it may share (see [`crate::open_combined`]).
    pub(crate) fn from_parts(db: Db, writer: GroupWriter) -> Self {
        SqliteBroker {
            db,
            writer,
            entities: Arc::default(),
            notify: Arc::default(),
        }
    }

    fn notifier(&self, path: &str) -> Arc<Notify> {
        let mut map = self.notify.lock().unwrap_or_else(|p| p.into_inner());
        map.entry(path.to_owned()).or_default().clone()
    }

    /// Wakes the receivers waiting on `paths` (after a commit that gave them messages).
    pub(crate) fn wake(&self, paths: &[String]) {
        for p in paths {
            self.notifier(p).notify_waiters();
        }
    }

    /// Loads entity definitions from the database (they persist across restarts).
    async fn load_entities(&self) -> Result<()> {
        let rows: Vec<(String, Option<String>, String, Option<String>)> = self
            .db
            .read(|conn| {
                let mut stmt = conn
                    .prepare("SELECT path, topic, spec, filter FROM entities")
                    .map_err(backend)?;
                let rows = stmt
                    .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)))
                    .map_err(backend)?
                    .collect::<rusqlite::Result<Vec<_>>>()
                    .map_err(backend)?;
                Ok(rows)
            })
            .await?;
        let mut map: HashMap<String, EntityInfo> = HashMap::new();
        let mut subs: Vec<(String, String, Filter)> = Vec::new();
        for (path, topic, spec, filter) in rows {
            let spec: EntitySpec = serde_json::from_str(&spec).map_err(json_err)?;
            // Rows: queue (no topic, no filter), topic (no topic, marker filter),
            // subscription (its topic and its filter).
            let is_topic = topic.is_none() && filter.as_deref() == Some(TOPIC_MARKER);
            if let (Some(topic), Some(filter)) = (topic, filter) {
                subs.push((
                    topic,
                    path.clone(),
                    serde_json::from_str(&filter).map_err(json_err)?,
                ));
            }
            map.insert(
                path,
                EntityInfo {
                    spec,
                    subscriptions: vec![],
                    is_topic,
                },
            );
        }
        for (topic, path, filter) in subs {
            if let Some(t) = map.get_mut(&topic) {
                t.subscriptions.push((path, filter));
            }
        }
        *self.entities.lock().unwrap_or_else(|p| p.into_inner()) = map;
        Ok(())
    }

    fn entity(&self, path: &str) -> Result<EntityInfo> {
        self.entities
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(path)
            .cloned()
            .ok_or(PortError::NotFound)
    }

    /// Counts every message of an entity, dead-lettered ones included (for tests and tools).
    pub async fn total_count(&self, entity: &Entity) -> Result<u64> {
        let path = entity.path();
        self.db
            .read(move |conn| {
                query_row(
                    conn,
                    "SELECT COUNT(*) FROM messages WHERE entity=?1",
                    params![path],
                    |r| r.get::<_, i64>(0),
                )
                .map(|n| n.max(0) as u64)
                .map_err(backend)
            })
            .await
    }
}

fn row_to_message(r: &rusqlite::Row<'_>) -> rusqlite::Result<RawRow> {
    Ok(RawRow {
        seq: r.get(0)?,
        message_id: r.get(1)?,
        session_id: r.get(2)?,
        body: r.get(3)?,
        props: r.get(4)?,
        enqueued_at: r.get(5)?,
        expires_at: r.get(6)?,
        delivery_count: r.get(7)?,
        lock_token: r.get(8)?,
        locked_until: r.get(9)?,
        dl_reason: r.get(10)?,
        dl_source: r.get(11)?,
    })
}

const COLUMNS: &str = "seq, message_id, session_id, body, props, enqueued_at, expires_at, \
    delivery_count, lock_token, locked_until, dl_reason, dl_source";

struct RawRow {
    seq: i64,
    message_id: String,
    session_id: Option<String>,
    body: Vec<u8>,
    props: String,
    enqueued_at: i64,
    expires_at: Option<i64>,
    delivery_count: i64,
    lock_token: Option<String>,
    locked_until: Option<i64>,
    dl_reason: Option<String>,
    dl_source: Option<String>,
}

impl RawRow {
    fn into_received(self) -> Result<ReceivedMessage> {
        let props: Props = serde_json::from_str(&self.props).map_err(json_err)?;
        Ok(ReceivedMessage {
            message: OutgoingMessage {
                message_id: self.message_id,
                body: Bytes::from(self.body),
                content_type: props.content_type,
                subject: props.subject,
                correlation_id: props.correlation_id,
                session_id: self.session_id,
                application_properties: props.app,
                scheduled_enqueue_time: props.scheduled.map(to_time),
                time_to_live: props.ttl_ms.map(Duration::from_millis),
            },
            lock_token: self.lock_token.unwrap_or_default(),
            locked_until: to_time(self.locked_until.unwrap_or(0)),
            delivery_count: u32::try_from(self.delivery_count).unwrap_or(u32::MAX),
            sequence_number: self.seq,
            enqueued_time: to_time(self.enqueued_at),
            expires_at: self.expires_at.map(to_time),
            dead_letter_reason: self.dl_reason,
            dead_letter_source: self.dl_source,
        })
    }
}

fn dead_letter_row(tx: &rusqlite::Connection, seq: i64, reason: &str, source: &str) -> Result<()> {
    exec(
        tx,
        "UPDATE messages SET dead_letter=1, dl_reason=?2, dl_source=?3, lock_token=NULL, \
         locked_until=NULL WHERE seq=?1",
        params![seq, reason, source],
    )
    .map_err(backend)?;
    Ok(())
}

/// A send checked against the topology, ready to be written in a transaction: by the
/// broker's own writer, or (see [`crate::open_combined`]) in a document batch's.
pub(crate) struct PreparedSend {
    entity: String,
    /// Duplicate detection window of the entity, in ms (0: none).
    window: i64,
    /// Fan-out targets with their specs, decided per message by the filters.
    targets: Vec<(String, Option<Filter>, EntitySpec)>,
    messages: Vec<OutgoingMessage>,
}

impl PreparedSend {
    /// The entities whose receivers should be woken once the send is committed.
    pub(crate) fn woken(&self) -> Vec<String> {
        self.targets.iter().map(|t| t.0.clone()).collect()
    }
}

impl SqliteBroker {
    /// Checks a send against the topology (loading it on first use) and the message limits.
    pub(crate) async fn prepare_send(
        &self,
        entity: &str,
        messages: Vec<OutgoingMessage>,
    ) -> Result<PreparedSend> {
        if self
            .entities
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .is_empty()
        {
            self.load_entities().await?;
        }
        let info = self.entity(entity)?;
        for m in &messages {
            if m.message_id.is_empty() || m.message_id.len() > 128 {
                return Err(PortError::Invalid("a MessageId is 1-128 characters".into()));
            }
            if m.body.len() > MAX_MESSAGE_BYTES {
                return Err(PortError::Invalid(format!(
                    "message {} is {} bytes; the limit is {MAX_MESSAGE_BYTES}",
                    m.message_id,
                    m.body.len()
                )));
            }
        }
        let targets: Vec<(String, Option<Filter>, EntitySpec)> = if info.is_topic {
            info.subscriptions
                .iter()
                .map(|(path, filter)| {
                    let spec = self.entity(path).map(|e| e.spec).unwrap_or_default();
                    (path.clone(), Some(filter.clone()), spec)
                })
                .collect()
        } else {
            vec![(entity.to_owned(), None, info.spec.clone())]
        };
        for (path, _, spec) in &targets {
            if spec.requires_session && messages.iter().any(|m| m.session_id.is_none()) {
                return Err(PortError::Invalid(format!(
                    "{path} requires sessions: every message needs a SessionId"
                )));
            }
        }
        Ok(PreparedSend {
            entity: entity.to_owned(),
            window: ms(info.spec.duplicate_detection_window),
            targets,
            messages,
        })
    }
}

/// A new lock token for the message `seq`: `<seq>.<random UUID>`. Opaque to receivers; the
/// broker reads the `seq` back to find the message by its key when it is settled.
fn lock_token(seq: i64) -> String {
    format!("{seq}.{}", uuid::Uuid::new_v4())
}

/// The `seq` a lock token names; -1 (no message) for a token this broker did not make.
fn locked_seq(token: &str) -> i64 {
    token
        .split_once('.')
        .and_then(|(seq, _)| seq.parse().ok())
        .unwrap_or(-1)
}

/// Writes a prepared send in the caller's transaction: duplicate detection, then one row per
/// target whose filter takes the message.
pub(crate) fn enqueue(tx: &rusqlite::Connection, send: &PreparedSend, now: i64) -> Result<()> {
    let window = send.window;
    // Forget a few expired ids (bounded work per send, through the expiry index).
    exec(
        tx,
        "DELETE FROM dedup WHERE (entity, message_id) IN \
         (SELECT entity, message_id FROM dedup WHERE expires_at <= ?1 LIMIT 64)",
        params![now],
    )
    .map_err(backend)?;
    for m in &send.messages {
        if window > 0 {
            let seen: Option<i64> = query_row(
                tx,
                "SELECT expires_at FROM dedup WHERE entity=?1 AND message_id=?2 AND expires_at > ?3",
                params![send.entity, m.message_id, now],
                |r| r.get(0),
            )
            .optional()
            .map_err(backend)?;
            if seen.is_some() {
                continue;
            }
            exec(
                tx,
                "INSERT OR REPLACE INTO dedup (entity, message_id, expires_at) VALUES (?1, ?2, ?3)",
                params![send.entity, m.message_id, now.saturating_add(window)],
            )
            .map_err(backend)?;
        }
        let scheduled = m.scheduled_enqueue_time.map(|t| t.timestamp_millis());
        let props = Props {
            content_type: m.content_type.clone(),
            subject: m.subject.clone(),
            correlation_id: m.correlation_id.clone(),
            app: m.application_properties.clone(),
            scheduled,
            ttl_ms: m.time_to_live.map(|d| d.as_millis() as u64),
        };
        let props = serde_json::to_string(&props).map_err(json_err)?;
        for (path, filter, spec) in &send.targets {
            if filter.as_ref().is_some_and(|f| !f.matches(m)) {
                continue;
            }
            let ttl = m.time_to_live.or(spec.default_time_to_live);
            let enqueued = scheduled.unwrap_or(now).max(now);
            exec(
                tx,
                "INSERT INTO messages (entity, message_id, session_id, body, props, \
                 enqueued_at, visible_at, expires_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?6, ?7)",
                params![
                    path,
                    m.message_id,
                    m.session_id,
                    m.body.as_ref(),
                    props,
                    enqueued,
                    ttl.map(|t| enqueued.saturating_add(ms(t)))
                ],
            )
            .map_err(backend)?;
        }
    }
    Ok(())
}

#[async_trait]
impl BusSender for SqliteBroker {
    async fn send(&self, entity: &str, messages: Vec<OutgoingMessage>) -> Result<()> {
        let send = self.prepare_send(entity, messages).await?;
        let woken = send.woken();
        self.writer
            .write(move |conn| enqueue(conn, &send, now_ms()))
            .await?;
        self.wake(&woken);
        Ok(())
    }
}

#[async_trait]
impl BrokerReceiver for SqliteBroker {
    async fn ensure_topology(&self, topology: &Topology) -> Result<()> {
        let mut rows: Vec<(String, Option<String>, String, Option<String>)> = Vec::new();
        for (name, spec) in &topology.queues {
            rows.push((
                name.clone(),
                None,
                serde_json::to_string(spec).map_err(json_err)?,
                None,
            ));
        }
        for (topic, subs) in &topology.topics {
            // A topic row: its own spec (duplicate detection) and the marker filter "topic".
            rows.push((
                topic.clone(),
                None,
                serde_json::to_string(&EntitySpec::default()).map_err(json_err)?,
                Some(TOPIC_MARKER.to_owned()),
            ));
            for sub in subs {
                rows.push((
                    Entity::subscription(topic, &sub.name).path(),
                    Some(topic.clone()),
                    serde_json::to_string(&sub.spec).map_err(json_err)?,
                    Some(serde_json::to_string(&sub.filter).map_err(json_err)?),
                ));
            }
        }
        for (path, ..) in &rows {
            if path.is_empty() || path.len() > 260 {
                return Err(PortError::Invalid(format!(
                    "entity name {path:?} is not valid"
                )));
            }
        }
        self.writer
            .write(move |conn| {
                // The group writer gives a savepoint of its transaction: the batch is atomic.
                let tx = conn;
                for (path, topic, spec, filter) in rows {
                    exec(tx,
                        "INSERT INTO entities (path, topic, spec, filter) VALUES (?1, ?2, ?3, ?4) \
                         ON CONFLICT(path) DO UPDATE SET topic=excluded.topic, spec=excluded.spec, filter=excluded.filter",
                        params![path, topic, spec, filter],
                    )
                    .map_err(backend)?;
                }
                Ok(())
            })
            .await?;
        self.load_entities().await
    }

    async fn receive(&self, entity: &Entity, max: usize) -> Result<Vec<ReceivedMessage>> {
        let path = entity.path();
        let info = self.entity(&path)?;
        if info.is_topic {
            return Err(PortError::Invalid(
                "receive from a subscription, not a topic".into(),
            ));
        }
        let max = max.clamp(1, 1000);
        let spec = info.spec;
        self.writer
            .write(move |conn| {
                let now = now_ms();
                // The group writer gives a savepoint of its transaction: the batch is atomic.
                let tx = conn;
                // Oldest-visible first, in the order of `messages_ready`: the scan stops after
                // `LIMIT` rows. (Ordering by `seq` alone made SQLite read and sort every ready
                // message of the entity on each receive, O(backlog).) Visibility follows
                // enqueue order, and an abandoned message gets its enqueue time back as its
                // visibility, so it keeps its place at the front.
                let sql = if spec.requires_session {
                    format!(
                        "SELECT {COLUMNS} FROM messages m WHERE entity=?1 AND dead_letter=0 AND visible_at<=?2 \
                         AND NOT EXISTS (SELECT 1 FROM messages p WHERE p.entity=m.entity AND p.dead_letter=0 \
                         AND p.session_id=m.session_id AND p.seq<m.seq) ORDER BY visible_at, seq LIMIT ?3"
                    )
                } else {
                    format!(
                        "SELECT {COLUMNS} FROM messages WHERE entity=?1 AND dead_letter=0 AND visible_at<=?2 \
                         ORDER BY visible_at, seq LIMIT ?3"
                    )
                };
                let candidates: Vec<RawRow> = {
                    let mut stmt = tx.prepare_cached(&sql).map_err(backend)?;
                    stmt.query_map(params![path, now, (max * 2) as i64], row_to_message)
                        .map_err(backend)?
                        .collect::<rusqlite::Result<Vec<_>>>()
                        .map_err(backend)?
                };
                let mut out = Vec::new();
                let lock_until = now.saturating_add(ms(spec.lock_duration));
                for mut row in candidates {
                    if out.len() >= max {
                        break;
                    }
                    if row.expires_at.is_some_and(|e| e <= now) {
                        dead_letter_row(tx, row.seq, "TTLExpiredException", &path)?;
                        continue;
                    }
                    if row.delivery_count >= i64::from(spec.max_delivery_count) {
                        // The previous lock expired on the last allowed delivery.
                        dead_letter_row(tx, row.seq, "MaxDeliveryCountExceeded", &path)?;
                        continue;
                    }
                    let token = lock_token(row.seq);
                    exec(tx,
                        "UPDATE messages SET delivery_count=delivery_count+1, lock_token=?2, \
                         locked_until=?3, visible_at=?3 WHERE seq=?1",
                        params![row.seq, token, lock_until],
                    )
                    .map_err(backend)?;
                    row.delivery_count += 1;
                    row.lock_token = Some(token);
                    row.locked_until = Some(lock_until);
                    out.push(row.into_received()?);
                }
                Ok(out)
            })
            .await
    }

    async fn wait_for_messages(&self, entity: &Entity, timeout: Duration) {
        let path = entity.path();
        let notify = self.notifier(&path);
        let notified = notify.notified();
        tokio::pin!(notified);
        notified.as_mut().enable();
        let p = path.clone();
        let next: Option<i64> = self
            .db
            .read(move |conn| {
                query_row(
                    conn,
                    "SELECT MIN(visible_at) FROM messages WHERE entity=?1 AND dead_letter=0",
                    params![p],
                    |r| r.get(0),
                )
                .map_err(backend)
            })
            .await
            .unwrap_or(None);
        let wait = match next {
            Some(at) => {
                let delta = at - now_ms();
                if delta <= 0 {
                    return;
                }
                timeout.min(Duration::from_millis(delta as u64))
            }
            None => timeout,
        };
        tokio::select! {
            _ = &mut notified => {}
            _ = tokio::time::sleep(wait) => {}
        }
    }

    async fn complete(&self, entity: &Entity, lock_token: &str) -> Result<()> {
        let (path, token) = (entity.path(), lock_token.to_owned());
        let removed = self
            .writer
            .write(move |conn| {
                exec(conn,
                    "DELETE FROM messages WHERE seq=?4 AND lock_token=?1 AND entity=?2 AND locked_until>?3 \
                     AND dead_letter=0",
                    params![token, path, now_ms(), locked_seq(&token)],
                )
                .map_err(backend)
            })
            .await?;
        if removed == 0 {
            return Err(PortError::NotFound);
        }
        // A session's next message may now be deliverable.
        self.wake(&[entity.path()]);
        Ok(())
    }

    async fn abandon(&self, entity: &Entity, lock_token: &str) -> Result<()> {
        let path = entity.path();
        let spec = self.entity(&path)?.spec;
        let token = lock_token.to_owned();
        let p = path.clone();
        self.writer
            .write(move |conn| {
                let now = now_ms();
                // The group writer gives a savepoint of its transaction: the batch is atomic.
                let tx = conn;
                let row: Option<(i64, i64)> = query_row(
                    tx,
                    "SELECT seq, delivery_count FROM messages WHERE seq=?4 AND lock_token=?1 \
                         AND entity=?2 AND locked_until>?3 AND dead_letter=0",
                    params![token, p, now, locked_seq(&token)],
                    |r| Ok((r.get(0)?, r.get(1)?)),
                )
                .optional()
                .map_err(backend)?;
                let Some((seq, count)) = row else {
                    return Err(PortError::NotFound);
                };
                if count >= i64::from(spec.max_delivery_count) {
                    dead_letter_row(tx, seq, "MaxDeliveryCountExceeded", &p)?;
                } else {
                    exec(
                        tx,
                        "UPDATE messages SET lock_token=NULL, locked_until=NULL, \
                         visible_at=MIN(enqueued_at, ?2) WHERE seq=?1",
                        params![seq, now],
                    )
                    .map_err(backend)?;
                }
                Ok(())
            })
            .await?;
        self.wake(&[path]);
        Ok(())
    }

    async fn dead_letter(&self, entity: &Entity, lock_token: &str, reason: &str) -> Result<()> {
        let (path, token, reason) = (entity.path(), lock_token.to_owned(), reason.to_owned());
        let p = path.clone();
        self.writer
            .write(move |conn| {
                // The group writer gives a savepoint of its transaction: the batch is atomic.
                let tx = conn;
                let seq: Option<i64> = query_row(
                    tx,
                    "SELECT seq FROM messages WHERE seq=?4 AND lock_token=?1 AND entity=?2 \
                         AND locked_until>?3 AND dead_letter=0",
                    params![token, p, now_ms(), locked_seq(&token)],
                    |r| r.get(0),
                )
                .optional()
                .map_err(backend)?;
                let Some(seq) = seq else {
                    return Err(PortError::NotFound);
                };
                dead_letter_row(tx, seq, &reason, &p)?;
                Ok(())
            })
            .await?;
        self.wake(&[path]);
        Ok(())
    }

    async fn renew_lock(&self, entity: &Entity, lock_token: &str) -> Result<DateTime<Utc>> {
        let path = entity.path();
        let spec = self.entity(&path)?.spec;
        let token = lock_token.to_owned();
        self.writer
            .write(move |conn| {
                let now = now_ms();
                let until = now.saturating_add(ms(spec.lock_duration));
                let n = exec(
                    conn,
                    "UPDATE messages SET locked_until=?3, visible_at=?3 WHERE seq=?5 \
                         AND lock_token=?1 AND entity=?2 AND locked_until>?4 AND dead_letter=0",
                    params![token, path, until, now, locked_seq(&token)],
                )
                .map_err(backend)?;
                if n == 0 {
                    return Err(PortError::NotFound);
                }
                Ok(to_time(until))
            })
            .await
    }

    async fn peek_dead_letters(&self, entity: &Entity, max: usize) -> Result<Vec<ReceivedMessage>> {
        let path = entity.path();
        self.db
            .read(move |conn| {
                let mut stmt = conn
                    .prepare_cached(&format!(
                        "SELECT {COLUMNS} FROM messages WHERE entity=?1 AND dead_letter=1 ORDER BY seq LIMIT ?2"
                    ))
                    .map_err(backend)?;
                let rows = stmt
                    .query_map(params![path, max.min(10_000) as i64], row_to_message)
                    .map_err(backend)?
                    .collect::<rusqlite::Result<Vec<_>>>()
                    .map_err(backend)?;
                rows.into_iter().map(RawRow::into_received).collect()
            })
            .await
    }

    async fn active_count(&self, entity: &Entity) -> Result<u64> {
        let path = entity.path();
        self.db
            .read(move |conn| {
                query_row(
                    conn,
                    "SELECT COUNT(*) FROM messages WHERE entity=?1 AND dead_letter=0",
                    params![path],
                    |r| r.get::<_, i64>(0),
                )
                .map(|n| n.max(0) as u64)
                .map_err(backend)
            })
            .await
    }
}
