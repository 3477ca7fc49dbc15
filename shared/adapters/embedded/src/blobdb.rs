//! `SqliteBlobStore`: the `BlobStore` port in one SQLite file, the local default.
//!
//! Why not one file per blob (`FolderBlobStore`)? Every accepted webhook stores its raw body,
//! so a busy gateway creates thousands of small blobs a second; as files, each costs an inode,
//! a directory entry under the folder's lock and a rename, and profiling showed that file
//! system work taking about a third of the CPU at full inbound load. In SQLite a blob is one
//! row, written by the same group-commit writer as the documents (many puts per commit), and
//! read by read-only connections that never wait for it. SQLite stores the content of a row
//! on overflow pages, so multi-megabyte blobs work too; they are just not what it is best at,
//! and the port holds whole blobs in memory anyway.
//!
//! Each row keeps the metadata beside the content; the SHA-256 is checked on every read, as
//! the Azure adapter does, so corruption is an error and never wrong data.

use std::path::Path;

use async_trait::async_trait;
use bytes::Bytes;
use chrono::{DateTime, Utc};
use ports::blob::validate_names;
use ports::{BlobInfo, BlobStore, PortError, PutOptions, Result};
use rusqlite::{OptionalExtension, params};

use crate::blob::sha256_hex;
use crate::sqlite::{Db, Durability, GroupWriter, backend};

const BACKEND: &str = "sqlite-blob";

/// A rowid table (not `WITHOUT ROWID`, which suits small rows only), with the names unique.
const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS blobs (
    id            INTEGER PRIMARY KEY,
    container     TEXT NOT NULL,
    name          TEXT NOT NULL,
    size          INTEGER NOT NULL,
    content_type  TEXT,
    sha256        TEXT NOT NULL,
    etag          TEXT NOT NULL,
    last_modified INTEGER NOT NULL,
    data          BLOB NOT NULL,
    UNIQUE (container, name)
);
-- Retention deletes by age within a container (`expire`).
CREATE INDEX IF NOT EXISTS blobs_by_age ON blobs (container, last_modified);
";

/// The largest blob this store takes. SQLite's own limit is about 1 GB per value; this keeps
/// well below it (and below what is sensible to hold in memory, as the port does).
pub const MAX_BLOB_BYTES: usize = 256 * 1024 * 1024;

/// Blobs hashed on the async task up to this size (a few microseconds); larger ones on a
/// blocking thread.
const HASH_INLINE: usize = 64 * 1024;

/// Blobs as rows of one SQLite database. Cheap to clone.
#[derive(Clone)]
pub struct SqliteBlobStore {
    db: Db,
    writer: GroupWriter,
}

impl std::fmt::Debug for SqliteBlobStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SqliteBlobStore").finish_non_exhaustive()
    }
}

/// What a put writes, computed before it reaches the writer thread.
struct Row {
    container: String,
    name: String,
    content_type: Option<String>,
    sha256: String,
    etag: String,
    last_modified: DateTime<Utc>,
    data: Bytes,
}

impl Row {
    fn info(&self) -> BlobInfo {
        BlobInfo {
            container: self.container.clone(),
            name: self.name.clone(),
            size: self.data.len() as u64,
            content_type: self.content_type.clone(),
            sha256: self.sha256.clone(),
            etag: self.etag.clone(),
            last_modified: self.last_modified,
        }
    }
}

impl SqliteBlobStore {
    /// Opens (creating it if needed) the database at `path`.
    pub fn open(path: &Path, durability: Durability) -> Result<Self> {
        let db = Db::open(path, durability, SCHEMA)?;
        let writer = GroupWriter::start(path, durability, Box::new(|_| Ok(())))?;
        Ok(SqliteBlobStore { db, writer })
    }

    /// Deletes the blobs of `container` last modified before `before`, at most `limit` of
    /// them (so one pass never holds the writer long); answers how many went. What Blob
    /// Storage's lifecycle rule does in Azure, for the local default.
    pub async fn expire(
        &self,
        container: &str,
        before: DateTime<Utc>,
        limit: usize,
    ) -> Result<usize> {
        validate_names(container, "x")?;
        let container = container.to_owned();
        let before = before
            .timestamp_nanos_opt()
            .ok_or_else(|| PortError::Invalid("a time after 2262".into()))?;
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        self.writer
            .write(move |tx| {
                tx.prepare_cached(
                    "DELETE FROM blobs WHERE id IN (SELECT id FROM blobs \
                     WHERE container = ?1 AND last_modified < ?2 LIMIT ?3)",
                )
                .and_then(|mut stmt| stmt.execute(params![container, before, limit]))
                .map_err(backend)
            })
            .await
    }

    /// Keeps the blobs of `containers` for `max_age` after their last change: a task that
    /// expires older ones now and then every `every` (in passes of a thousand), for as long
    /// as the runtime runs. Blob Storage's lifecycle rule does this in Azure.
    pub fn keep_for(
        &self,
        containers: Vec<String>,
        max_age: std::time::Duration,
        every: std::time::Duration,
    ) -> tokio::task::JoinHandle<()> {
        let store = self.clone();
        tokio::spawn(async move {
            let age = chrono::TimeDelta::from_std(max_age).unwrap_or(chrono::TimeDelta::MAX);
            loop {
                for container in &containers {
                    loop {
                        match store.expire(container, Utc::now() - age, 1_000).await {
                            Ok(1_000) => continue,
                            Ok(n) => {
                                if n > 0 {
                                    tracing::info!(
                                        container,
                                        expired = n,
                                        "blobs past their retention deleted"
                                    );
                                }
                                break;
                            }
                            Err(e) => {
                                tracing::warn!(container, error = %e, "blobs could not be expired");
                                break;
                            }
                        }
                    }
                }
                tokio::time::sleep(every).await;
            }
        })
    }

    /// Copies every blob of a `FolderBlobStore` rooted at `folder` into this store, keeping
    /// their metadata; blobs already here are left as they are. Answers how many were copied.
    /// This is how a data folder written by an earlier version keeps its blobs.
    pub async fn import_folder(&self, folder: &Path) -> Result<usize> {
        let source = crate::FolderBlobStore::open(folder)?;
        let containers = tokio::task::spawn_blocking({
            let folder = folder.to_owned();
            move || -> std::io::Result<Vec<String>> {
                let mut names = Vec::new();
                for entry in std::fs::read_dir(folder)? {
                    let entry = entry?;
                    if entry.file_type()?.is_dir()
                        && let Some(name) = entry.file_name().to_str()
                        && validate_names(name, "x").is_ok()
                    {
                        names.push(name.to_owned());
                    }
                }
                Ok(names)
            }
        })
        .await
        .map_err(|e| PortError::backend(BACKEND, e))?
        .map_err(|e| PortError::backend(BACKEND, e))?;
        let mut copied = 0;
        for container in containers {
            for info in source.list(&container, "").await? {
                let (data, info) = match source.get(&container, &info.name).await {
                    Ok(found) => found,
                    Err(PortError::NotFound) => continue,
                    Err(e) => return Err(e),
                };
                let row = Row {
                    container: info.container,
                    name: info.name,
                    content_type: info.content_type,
                    sha256: info.sha256,
                    etag: info.etag,
                    last_modified: info.last_modified,
                    data,
                };
                match self.write_row(row, true).await {
                    Ok(_) => copied += 1,
                    Err(PortError::AlreadyExists) => {}
                    Err(e) => return Err(e),
                }
            }
        }
        Ok(copied)
    }

    async fn write_row(&self, row: Row, if_none_match: bool) -> Result<BlobInfo> {
        self.writer
            .write(move |tx| {
                let size =
                    i64::try_from(row.data.len()).map_err(|e| PortError::backend(BACKEND, e))?;
                let values = params![
                    row.container,
                    row.name,
                    size,
                    row.content_type,
                    row.sha256,
                    row.etag,
                    row.last_modified
                        .timestamp_nanos_opt()
                        .ok_or_else(|| PortError::Invalid("a blob time after 2262".into()))?,
                    &row.data[..],
                ];
                let sql = if if_none_match {
                    "INSERT INTO blobs (container, name, size, content_type, sha256, etag, \
                     last_modified, data) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8) \
                     ON CONFLICT (container, name) DO NOTHING"
                } else {
                    "INSERT INTO blobs (container, name, size, content_type, sha256, etag, \
                     last_modified, data) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8) \
                     ON CONFLICT (container, name) DO UPDATE SET size = excluded.size, \
                     content_type = excluded.content_type, sha256 = excluded.sha256, \
                     etag = excluded.etag, last_modified = excluded.last_modified, \
                     data = excluded.data"
                };
                let changed = tx
                    .prepare_cached(sql)
                    .and_then(|mut stmt| stmt.execute(values))
                    .map_err(backend)?;
                if changed == 0 {
                    // Only `DO NOTHING` changes nothing: the name is taken (first writer wins).
                    return Err(PortError::AlreadyExists);
                }
                Ok(row.info())
            })
            .await
    }
}

#[async_trait]
impl BlobStore for SqliteBlobStore {
    async fn put(
        &self,
        container: &str,
        name: &str,
        data: Bytes,
        options: PutOptions,
    ) -> Result<BlobInfo> {
        validate_names(container, name)?;
        if data.len() > MAX_BLOB_BYTES {
            return Err(PortError::Invalid(format!(
                "the embedded blob store holds blobs of at most {} MiB",
                MAX_BLOB_BYTES / (1024 * 1024)
            )));
        }
        let (sha256, data) = if data.len() <= HASH_INLINE {
            (sha256_hex(&data), data)
        } else {
            tokio::task::spawn_blocking(move || (sha256_hex(&data), data))
                .await
                .map_err(|e| PortError::backend(BACKEND, e))?
        };
        let row = Row {
            container: container.to_owned(),
            name: name.to_owned(),
            content_type: options.content_type,
            sha256,
            etag: uuid::Uuid::new_v4().simple().to_string(),
            last_modified: Utc::now(),
            data,
        };
        self.write_row(row, options.if_none_match).await
    }

    async fn get(&self, container: &str, name: &str) -> Result<(Bytes, BlobInfo)> {
        validate_names(container, name)?;
        let (container, name) = (container.to_owned(), name.to_owned());
        self.db
            .read(move |conn| {
                let found = conn
                    .prepare_cached(
                        "SELECT size, content_type, sha256, etag, last_modified, data \
                         FROM blobs WHERE container = ?1 AND name = ?2",
                    )
                    .and_then(|mut stmt| {
                        stmt.query_row(params![container, name], |r| {
                            Ok((meta(r)?, r.get::<_, Vec<u8>>(5)?))
                        })
                        .optional()
                    })
                    .map_err(backend)?;
                let ((size, content_type, sha256, etag, modified), data) =
                    found.ok_or(PortError::NotFound)?;
                if data.len() as u64 != size {
                    return Err(corrupt(&container, &name, "its length does not match"));
                }
                if sha256_hex(&data) != sha256 {
                    return Err(corrupt(
                        &container,
                        &name,
                        "its content does not match its sha256",
                    ));
                }
                let info = to_info(
                    container,
                    name,
                    (size, content_type, sha256, etag, modified),
                )?;
                Ok((Bytes::from(data), info))
            })
            .await
    }

    async fn head(&self, container: &str, name: &str) -> Result<BlobInfo> {
        validate_names(container, name)?;
        let (container, name) = (container.to_owned(), name.to_owned());
        self.db
            .read(move |conn| {
                let found = conn
                    .prepare_cached(
                        "SELECT size, content_type, sha256, etag, last_modified \
                         FROM blobs WHERE container = ?1 AND name = ?2",
                    )
                    .and_then(|mut stmt| stmt.query_row(params![container, name], meta).optional())
                    .map_err(backend)?;
                to_info(container, name, found.ok_or(PortError::NotFound)?)
            })
            .await
    }

    async fn delete(&self, container: &str, name: &str) -> Result<()> {
        validate_names(container, name)?;
        let (container, name) = (container.to_owned(), name.to_owned());
        self.writer
            .write(move |tx| {
                let deleted = tx
                    .prepare_cached("DELETE FROM blobs WHERE container = ?1 AND name = ?2")
                    .and_then(|mut stmt| stmt.execute(params![container, name]))
                    .map_err(backend)?;
                if deleted == 0 {
                    return Err(PortError::NotFound);
                }
                Ok(())
            })
            .await
    }

    async fn list(&self, container: &str, prefix: &str) -> Result<Vec<BlobInfo>> {
        // A placeholder name: only the container is checked; the prefix is only compared.
        validate_names(container, "x")?;
        let (container, prefix) = (container.to_owned(), prefix.to_owned());
        self.db
            .read(move |conn| {
                // `name >= prefix` lets the unique index find the start; `substr` ends it.
                let mut stmt = conn
                    .prepare_cached(
                        "SELECT name, size, content_type, sha256, etag, last_modified FROM blobs \
                         WHERE container = ?1 AND name >= ?2 \
                         AND substr(name, 1, length(?2)) = ?2 ORDER BY name",
                    )
                    .map_err(backend)?;
                let rows = stmt
                    .query_map(params![container, prefix], |r| {
                        Ok((
                            r.get::<_, String>(0)?,
                            (
                                r.get::<_, i64>(1)?,
                                r.get::<_, Option<String>>(2)?,
                                r.get::<_, String>(3)?,
                                r.get::<_, String>(4)?,
                                r.get::<_, i64>(5)?,
                            ),
                        ))
                    })
                    .map_err(backend)?;
                let mut infos = Vec::new();
                for row in rows {
                    let (name, (size, content_type, sha256, etag, modified)) =
                        row.map_err(backend)?;
                    let size = u64::try_from(size)
                        .map_err(|_| corrupt(&container, &name, "its size is negative"))?;
                    infos.push(to_info(
                        container.clone(),
                        name,
                        (size, content_type, sha256, etag, modified),
                    )?);
                }
                Ok(infos)
            })
            .await
    }
}

/// size, content type, sha256, etag, last modified (ns since the epoch).
type Meta = (u64, Option<String>, String, String, i64);

fn meta(r: &rusqlite::Row<'_>) -> rusqlite::Result<Meta> {
    let size: i64 = r.get(0)?;
    Ok((
        // A negative size can only be corruption; it then fails the length check.
        u64::try_from(size).unwrap_or(u64::MAX),
        r.get(1)?,
        r.get(2)?,
        r.get(3)?,
        r.get(4)?,
    ))
}

fn to_info(container: String, name: String, meta: Meta) -> Result<BlobInfo> {
    let (size, content_type, sha256, etag, modified) = meta;
    let last_modified = DateTime::from_timestamp_nanos(modified);
    Ok(BlobInfo {
        container,
        name,
        size,
        content_type,
        sha256,
        etag,
        last_modified,
    })
}

fn corrupt(container: &str, name: &str, why: &str) -> PortError {
    PortError::backend(BACKEND, format!("corrupt blob {container}/{name}: {why}"))
}
