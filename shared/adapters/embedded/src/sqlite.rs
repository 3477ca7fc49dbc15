//! SQLite plumbing shared by the SQLite-backed adapters: opening a database in WAL mode and
//! running statements off the async runtime.

use std::path::Path;
use std::sync::{Arc, Mutex};

use ports::PortError;
use rusqlite::Connection;

/// How hard a commit is pushed to disk.
///
/// `Normal` (the default) is WAL with `synchronous=NORMAL`: a commit survives the process
/// being killed at any instant (the WAL is in the OS page cache), but the last commits may be
/// lost if the machine itself loses power. `Full` also survives power loss, at one fsync per
/// commit.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Durability {
    #[default]
    Normal,
    Full,
}

/// One writing connection behind a mutex (SQLite serialises writers anyway; one writer keeps
/// transactions simple and avoids `SQLITE_BUSY` between our own threads), and a few
/// read-only connections: in WAL mode readers see the last committed state without waiting
/// for the writer, so a point read is never queued behind someone's batch.
#[derive(Clone)]
pub(crate) struct Db {
    conn: Arc<Mutex<Connection>>,
    readers: Arc<[Mutex<Connection>]>,
    next_reader: Arc<std::sync::atomic::AtomicUsize>,
}

/// Read-only connections per database.
const READERS: usize = 2;

impl Db {
    /// Opens the database, retrying for a while when another process is opening (or
    /// migrating) the same file at this moment: switching to WAL and creating the schema can
    /// report "busy" at once instead of waiting for the busy timeout.
    pub(crate) fn open(path: &Path, durability: Durability, schema: &str) -> Result<Db, PortError> {
        retry_busy(|| Self::open_once(path, durability, schema))
    }

    fn open_once(path: &Path, durability: Durability, schema: &str) -> Result<Db, PortError> {
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent).map_err(|e| PortError::backend("sqlite", e))?;
        }
        let conn = Connection::open(path).map_err(backend)?;
        // Before anything else: switching to WAL and creating the schema take locks that a
        // second process opening the same file at the same moment must wait for, not fail on.
        conn.busy_timeout(std::time::Duration::from_secs(5))
            .map_err(backend)?;
        let sync = match durability {
            Durability::Normal => "NORMAL",
            Durability::Full => "FULL",
        };
        conn.execute_batch(&format!(
            "PRAGMA journal_mode=WAL; PRAGMA synchronous={sync}; PRAGMA busy_timeout=5000; \
             PRAGMA foreign_keys=ON;"
        ))
        .map_err(backend)?;
        conn.execute_batch(schema).map_err(backend)?;
        let readers = (0..READERS)
            .map(|_| {
                let r = Connection::open_with_flags(
                    path,
                    rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY
                        | rusqlite::OpenFlags::SQLITE_OPEN_NO_MUTEX
                        | rusqlite::OpenFlags::SQLITE_OPEN_URI,
                )
                .map_err(backend)?;
                r.busy_timeout(std::time::Duration::from_secs(5))
                    .map_err(backend)?;
                r.set_prepared_statement_cache_capacity(STATEMENT_CACHE);
                Ok(Mutex::new(r))
            })
            .collect::<Result<Vec<_>, PortError>>()?;
        Ok(Db {
            conn: Arc::new(Mutex::new(conn)),
            readers: readers.into(),
            next_reader: Arc::new(std::sync::atomic::AtomicUsize::new(0)),
        })
    }

    /// Runs a read-only `f` on one of the read connections, on a blocking thread. A reader
    /// that is busy is skipped for a free one; if all are busy, the turn's one is waited for.
    pub(crate) async fn read<T, F>(&self, f: F) -> Result<T, PortError>
    where
        T: Send + 'static,
        F: FnOnce(&mut Connection) -> Result<T, PortError> + Send + 'static,
    {
        let readers = self.readers.clone();
        let start = self
            .next_reader
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        tokio::task::spawn_blocking(move || {
            let n = readers.len();
            let mut guard = (0..n)
                .find_map(|k| readers[(start + k) % n].try_lock().ok())
                .unwrap_or_else(|| readers[start % n].lock().unwrap_or_else(|p| p.into_inner()));
            f(&mut guard)
        })
        .await
        .map_err(|e| PortError::backend("sqlite", e))?
    }

    /// A point read (a key lookup: a few pages, microseconds), or a short walk of an index (at
    /// most one page of documents): run on the calling task when a read connection is free at
    /// once. Handing it to a blocking thread and back costs more
    /// than the read itself (two thread wake-ups and their context switches), and the
    /// delivery path makes several per message. When every reader is busy, as [`Db::read`].
    pub(crate) async fn read_point<T, F>(&self, f: F) -> Result<T, PortError>
    where
        T: Send + 'static,
        F: FnOnce(&mut Connection) -> Result<T, PortError> + Send + 'static,
    {
        let start = self
            .next_reader
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let n = self.readers.len();
        if let Some(mut guard) = (0..n).find_map(|k| self.readers[(start + k) % n].try_lock().ok())
        {
            return f(&mut guard);
        }
        self.read(f).await
    }

    /// Runs `f` with the connection on a blocking thread.
    pub(crate) async fn call<T, F>(&self, f: F) -> Result<T, PortError>
    where
        T: Send + 'static,
        F: FnOnce(&mut Connection) -> Result<T, PortError> + Send + 'static,
    {
        let conn = self.conn.clone();
        tokio::task::spawn_blocking(move || {
            // A panic while holding the lock poisons it; the connection itself is still
            // consistent (SQLite rolls back the open transaction), so keep using it.
            let mut guard = conn.lock().unwrap_or_else(|p| p.into_inner());
            f(&mut guard)
        })
        .await
        .map_err(|e| PortError::backend("sqlite", e))?
    }
}

/// `execute` through the connection's statement cache. The writers run the same few
/// statements thousands of times a second; parsing them each time was about a seventh of the
/// writer thread's time under load.
pub(crate) fn exec(
    conn: &Connection,
    sql: &str,
    params: impl rusqlite::Params,
) -> rusqlite::Result<usize> {
    conn.prepare_cached(sql)?.execute(params)
}

/// `query_row` through the connection's statement cache (see [`exec`]).
pub(crate) fn query_row<T>(
    conn: &Connection,
    sql: &str,
    params: impl rusqlite::Params,
    f: impl FnOnce(&rusqlite::Row<'_>) -> rusqlite::Result<T>,
) -> rusqlite::Result<T> {
    conn.prepare_cached(sql)?.query_row(params, f)
}

/// Statements kept prepared per connection (rusqlite's default is 16; the broker alone uses
/// about that many).
pub(crate) const STATEMENT_CACHE: usize = 64;

pub(crate) fn backend(e: rusqlite::Error) -> PortError {
    if let rusqlite::Error::SqliteFailure(err, _) = &e
        && matches!(
            err.code,
            rusqlite::ErrorCode::DatabaseBusy | rusqlite::ErrorCode::DatabaseLocked
        )
    {
        return PortError::Throttled { retry_after: None };
    }
    PortError::backend("sqlite", e)
}

/// Runs `f` again (up to about two seconds) while it fails with a busy or locked database.
pub(crate) fn retry_busy<T>(mut f: impl FnMut() -> Result<T, PortError>) -> Result<T, PortError> {
    let mut attempt = 0;
    loop {
        match f() {
            Err(PortError::Throttled { .. }) if attempt < 100 => {
                attempt += 1;
                std::thread::sleep(std::time::Duration::from_millis(20));
            }
            other => return other,
        }
    }
}

/// One unit of work for the [`GroupWriter`]: runs inside a savepoint of the group's
/// transaction, says whether it succeeded (a failed one is rolled back to its savepoint), and
/// hands back what to tell its caller once the group's fate is known.
type Job = Box<dyn FnOnce(&rusqlite::Savepoint<'_>) -> (bool, Finish) + Send>;
/// Tells a job's caller how it ended, given the group's commit outcome (`Err` carries the
/// commit's error text).
type Finish = Box<dyn FnOnce(Result<(), String>) + Send>;
/// Work done once per group, after the jobs and before the commit (reclaiming expired rows).
pub(crate) type Housekeeping =
    Box<dyn Fn(&rusqlite::Transaction<'_>) -> Result<(), PortError> + Send>;

/// Group commit: one thread owns a writing connection and commits the batches that arrive
/// while it is busy in one transaction, each in its own savepoint. A batch that fails rolls
/// back to its savepoint alone; the others commit together. Under load that turns N commits
/// (and N thread hand-offs through the blocking pool) into one; alone, a batch commits at
/// once as before.
#[derive(Clone)]
pub(crate) struct GroupWriter {
    jobs: std::sync::mpsc::Sender<Job>,
}

/// The most batches committed together.
const MAX_GROUP: usize = 64;

impl GroupWriter {
    /// Opens a writing connection to `path` (the schema must exist) and starts its thread,
    /// which ends when the last sender (every clone of this writer) is dropped.
    pub(crate) fn start(
        path: &Path,
        durability: Durability,
        housekeeping: Housekeeping,
    ) -> Result<GroupWriter, PortError> {
        let conn = Connection::open(path).map_err(backend)?;
        conn.busy_timeout(std::time::Duration::from_secs(5))
            .map_err(backend)?;
        let sync = match durability {
            Durability::Normal => "NORMAL",
            Durability::Full => "FULL",
        };
        // temp_store=MEMORY: each batch runs in a savepoint, whose undo pages (the
        // sub-journal) otherwise spill to a temporary file past 64 KiB: a file created,
        // written and deleted per large batch, a tenth of this thread's time under load.
        // journal_size_limit: a WAL that restarts is cut back to this size, instead of
        // keeping the file at its high-water mark.
        conn.execute_batch(&format!(
            "PRAGMA synchronous={sync}; PRAGMA temp_store=MEMORY; \
             PRAGMA journal_size_limit={WAL_LIMIT};"
        ))
        .map_err(backend)?;
        // With `Normal`, checkpoints run on their own thread (see [`Checkpointer`]), so a
        // commit never waits for pages to be copied back into the database and synced. With
        // `Full` every commit syncs anyway, and a checkpoint's syncs beside them made each
        // commit wait longer (measured: about a third fewer messages a second): SQLite's own
        // checkpoint, inside the commit that crosses 1,000 WAL pages, stays.
        let checkpointer = match durability {
            Durability::Normal => {
                conn.execute_batch("PRAGMA wal_autocheckpoint=0;")
                    .map_err(backend)?;
                Some(Checkpointer::start(path, sync)?)
            }
            Durability::Full => None,
        };
        conn.set_prepared_statement_cache_capacity(STATEMENT_CACHE);
        let (tx, rx) = std::sync::mpsc::channel::<Job>();
        std::thread::Builder::new()
            .name("sqlite-writer".into())
            .spawn(move || writer_loop(conn, rx, housekeeping, checkpointer))
            .map_err(|e| PortError::backend("sqlite", e))?;
        Ok(GroupWriter { jobs: tx })
    }

    /// Runs `f` in the next group; answers its result once the group has committed (or its
    /// own error at once: the group goes on without it).
    pub(crate) async fn write<T, F>(&self, f: F) -> Result<T, PortError>
    where
        T: Send + 'static,
        F: FnOnce(&rusqlite::Savepoint<'_>) -> Result<T, PortError> + Send + 'static,
    {
        let (result_tx, result_rx) = tokio::sync::oneshot::channel::<Result<T, PortError>>();
        let job: Job = Box::new(move |sp| match f(sp) {
            Ok(value) => (
                true,
                Box::new(move |committed: Result<(), String>| {
                    let _ = result_tx.send(
                        committed
                            .map(|()| value)
                            .map_err(|e| PortError::backend("sqlite", e)),
                    );
                }),
            ),
            Err(e) => (
                false,
                Box::new(move |_| {
                    let _ = result_tx.send(Err(e));
                }),
            ),
        });
        self.jobs
            .send(job)
            .map_err(|_| PortError::backend("sqlite", "the writer thread has stopped"))?;
        result_rx
            .await
            .map_err(|_| PortError::backend("sqlite", "the writer thread dropped a batch"))?
    }
}

fn writer_loop(
    mut conn: Connection,
    rx: std::sync::mpsc::Receiver<Job>,
    housekeeping: Housekeeping,
    checkpointer: Option<Checkpointer>,
) {
    while let Ok(first) = rx.recv() {
        let mut group = vec![first];
        while group.len() < MAX_GROUP {
            match rx.try_recv() {
                Ok(job) => group.push(job),
                Err(_) => break,
            }
        }
        let mut finishers: Vec<Finish> = Vec::with_capacity(group.len());
        let outcome = run_group(&mut conn, group, &mut finishers, &housekeeping);
        for finish in finishers {
            finish(outcome.clone());
        }
        if let Some(c) = &checkpointer {
            c.nudge();
        }
    }
}

/// Copies committed WAL frames back into the database on its own thread and connection
/// (`PRAGMA wal_checkpoint(PASSIVE)`: it never blocks the writer or the readers), instead of
/// SQLite's automatic checkpoint, which runs inside the commit that crosses 1,000 WAL pages
/// and made that commit (and every batch of its group) wait for the copy and an fsync.
///
/// The writer nudges it after each commit; nudges that arrive while it works or pauses
/// collapse into one, so under load it checkpoints about every [`CHECKPOINT_PAUSE`] and when
/// idle once after the last commit. The WAL restarts from its beginning (SQLite does that
/// on the next write) once a checkpoint has copied all of it and no reader still uses it.
struct Checkpointer {
    nudges: std::sync::mpsc::SyncSender<()>,
}

/// The size past which the write-ahead log is checkpointed with `TRUNCATE` (and the most a
/// restarted log keeps). Readers that are always at work never let a passive checkpoint
/// restart the log, which then only grows (it reached 257 MB after 16k webhooks); a
/// truncating checkpoint waits for them (up to the busy timeout) and empties it.
pub(crate) const WAL_LIMIT: u64 = 64 * 1024 * 1024;

/// The least time between two checkpoints: each copies the pages changed since the last
/// (a page changed many times meanwhile is copied once) and syncs the database file.
const CHECKPOINT_PAUSE: std::time::Duration = std::time::Duration::from_millis(100);

impl Checkpointer {
    fn start(path: &Path, sync: &str) -> Result<Checkpointer, PortError> {
        let conn = Connection::open(path).map_err(backend)?;
        conn.busy_timeout(std::time::Duration::from_secs(5))
            .map_err(backend)?;
        conn.execute_batch(&format!(
            "PRAGMA synchronous={sync}; PRAGMA wal_autocheckpoint=0; \
             PRAGMA journal_size_limit={WAL_LIMIT};"
        ))
        .map_err(backend)?;
        let mut wal = path.as_os_str().to_owned();
        wal.push("-wal");
        let wal = std::path::PathBuf::from(wal);
        let (nudges, rx) = std::sync::mpsc::sync_channel::<()>(1);
        std::thread::Builder::new()
            .name("sqlite-checkpoint".into())
            .spawn(move || {
                while rx.recv().is_ok() {
                    let over = std::fs::metadata(&wal).is_ok_and(|m| m.len() > WAL_LIMIT);
                    let mode = if over { "TRUNCATE" } else { "PASSIVE" };
                    if let Err(e) =
                        conn.query_row(&format!("PRAGMA wal_checkpoint({mode})"), [], |_| Ok(()))
                    {
                        tracing::warn!(error = %e, "a WAL checkpoint failed; the next one retries");
                    }
                    std::thread::sleep(CHECKPOINT_PAUSE);
                }
            })
            .map_err(|e| PortError::backend("sqlite", e))?;
        Ok(Checkpointer { nudges })
    }

    /// Asks for a checkpoint soon (never waits: one pending nudge is enough).
    fn nudge(&self) {
        let _ = self.nudges.try_send(());
    }
}

/// One group: BEGIN IMMEDIATE, each job in a savepoint, housekeeping, COMMIT. Jobs that could
/// not run (the transaction did not start) are dropped, and their callers see "dropped".
fn run_group(
    conn: &mut Connection,
    group: Vec<Job>,
    finishers: &mut Vec<Finish>,
    housekeeping: &Housekeeping,
) -> Result<(), String> {
    let mut tx = conn
        .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)
        .map_err(|e| e.to_string())?;
    for job in group {
        let sp = tx.savepoint().map_err(|e| e.to_string())?;
        let (ok, finish) = job(&sp);
        if ok {
            sp.commit().map_err(|e| e.to_string())?;
        }
        // Dropping an uncommitted savepoint rolls back to it.
        finishers.push(finish);
    }
    housekeeping(&tx).map_err(|e| e.to_string())?;
    tx.commit().map_err(|e| e.to_string())
}
