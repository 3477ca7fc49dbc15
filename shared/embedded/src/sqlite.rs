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

/// One connection behind a mutex. SQLite serialises writers anyway; one connection keeps
/// transactions simple and avoids `SQLITE_BUSY` between our own threads.
#[derive(Clone)]
pub(crate) struct Db {
    conn: Arc<Mutex<Connection>>,
}

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
        Ok(Db {
            conn: Arc::new(Mutex::new(conn)),
        })
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
