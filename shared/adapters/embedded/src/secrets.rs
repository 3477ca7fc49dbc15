//! `EncryptedSecretStore`: the `SecretStore` port on SQLite, every version encrypted with
//! AES-256-GCM so the database file never holds a plaintext secret.
//!
//! Each version has its own random 96-bit nonce, and its associated data binds the ciphertext
//! to its secret name and version: a row copied onto another secret fails to decrypt instead
//! of silently returning the wrong secret. A key-check value stored at first open makes a
//! wrong key fail at `open`, before anything is written with it.
//!
//! Names are compared case-insensitively, as in Key Vault, so a pair of names that would be one
//! secret in the cloud is one secret locally too.

use std::fmt;
use std::fs::{self, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use aes_gcm::aead::{Aead, KeyInit, Payload};
use aes_gcm::{Aes256Gcm, Nonce};
use async_trait::async_trait;
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use chrono::{DateTime, Utc};
use ports::secrets::validate_name;
use ports::{PortError, Result, SecretStore, SecretVersion};
use rand::RngCore;
use rand::rngs::OsRng;
use rusqlite::{OptionalExtension, params};
use secrecy::{ExposeSecret, SecretString};

use crate::sqlite::{Db, Durability, backend};

const BACKEND: &str = "encrypted-secrets";
const KEY_FILE: &str = "secrets.key";
const DB_FILE: &str = "secrets.db";
/// Associated data of the key-check value; no secret name can collide with it (names hold no
/// ':').
const KEY_CHECK_AAD: &[u8] = b"key-check:v1";

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS meta (
    key TEXT PRIMARY KEY,
    value BLOB NOT NULL
);
CREATE TABLE IF NOT EXISTS secret_versions (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    name TEXT NOT NULL COLLATE NOCASE,
    version TEXT NOT NULL,
    created_at INTEGER NOT NULL,
    enabled INTEGER NOT NULL,
    nonce BLOB NOT NULL,
    ciphertext BLOB NOT NULL,
    UNIQUE (name, version)
);
CREATE INDEX IF NOT EXISTS secret_versions_by_name ON secret_versions (name, seq);
";

/// Secrets in an encrypted SQLite database. Cheap to clone.
#[derive(Clone)]
pub struct EncryptedSecretStore {
    db: Db,
    cipher: Aes256Gcm,
    path: PathBuf,
}

/// Hand-written so the key (inside the cipher) can never reach a log.
impl fmt::Debug for EncryptedSecretStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("EncryptedSecretStore")
            .field("path", &self.path)
            .field("key", &"[redacted]")
            .finish()
    }
}

impl EncryptedSecretStore {
    /// Opens (creating it if needed) the database at `db_path`, encrypted with `key`.
    ///
    /// Fails with a backend error if the database was created with another key.
    pub fn open(db_path: &Path, key: [u8; 32]) -> Result<Self> {
        // Secrets are written rarely and losing a rotated credential is costly, so every
        // commit is pushed to disk.
        let db = Db::open(db_path, Durability::Full, SCHEMA)?;
        let cipher = Aes256Gcm::new(&key.into());
        let store = EncryptedSecretStore {
            db,
            cipher,
            path: db_path.to_path_buf(),
        };
        crate::sqlite::retry_busy(|| store.check_key())?;
        Ok(store)
    }

    /// Opens `data_dir/secrets.db` with the key in `data_dir/secrets.key`, creating a random
    /// key (mode 0600) on first use.
    pub fn open_in(data_dir: &Path) -> Result<Self> {
        fs::create_dir_all(data_dir).map_err(io_err)?;
        let key = load_or_create_key(&data_dir.join(KEY_FILE))?;
        Self::open(&data_dir.join(DB_FILE), key)
    }

    /// Stores a key-check value on first open and verifies it afterwards.
    ///
    /// `open` is synchronous (and may run inside a runtime, where blocking on `Db::call` is
    /// not allowed), so the check uses a short-lived connection of its own.
    fn check_key(&self) -> Result<()> {
        let conn = rusqlite::Connection::open(&self.path).map_err(backend)?;
        conn.busy_timeout(std::time::Duration::from_secs(5))
            .map_err(backend)?;
        let stored: Option<Vec<u8>> = conn
            .query_row("SELECT value FROM meta WHERE key = 'key_check'", [], |r| {
                r.get(0)
            })
            .optional()
            .map_err(backend)?;
        match stored {
            Some(blob) if blob.len() > 12 => {
                let (nonce, ct) = blob.split_at(12);
                self.cipher
                    .decrypt(
                        Nonce::from_slice(nonce),
                        Payload {
                            msg: ct,
                            aad: KEY_CHECK_AAD,
                        },
                    )
                    .map(drop)
                    .map_err(|_| {
                        decryption_failed(
                            "the key does not match this secrets database \
                             (was the key file replaced?)",
                        )
                    })
            }
            Some(_) => Err(PortError::backend(
                BACKEND,
                "the stored key check is malformed",
            )),
            None => {
                let nonce = random_nonce();
                let ct = self
                    .cipher
                    .encrypt(
                        Nonce::from_slice(&nonce),
                        Payload {
                            msg: b"ok",
                            aad: KEY_CHECK_AAD,
                        },
                    )
                    .map_err(|_| PortError::backend(BACKEND, "encryption failed"))?;
                let mut blob = nonce.to_vec();
                blob.extend_from_slice(&ct);
                // OR IGNORE: another process may have stored its check first; it is read
                // back below so both processes verify against the same one.
                conn.execute(
                    "INSERT OR IGNORE INTO meta (key, value) VALUES ('key_check', ?1)",
                    params![blob],
                )
                .map_err(backend)?;
                drop(conn);
                self.check_key()
            }
        }
    }
}

#[async_trait]
impl SecretStore for EncryptedSecretStore {
    async fn set(&self, name: &str, value: SecretString) -> Result<SecretVersion> {
        validate_name(name)?;
        let version = random_version();
        let nonce = random_nonce();
        let ciphertext = self
            .cipher
            .encrypt(
                Nonce::from_slice(&nonce),
                Payload {
                    msg: value.expose_secret().as_bytes(),
                    aad: &aad(name, &version),
                },
            )
            .map_err(|_| PortError::backend(BACKEND, "encryption failed"))?;
        let created_at = Utc::now();
        let micros = created_at.timestamp_micros();
        let record = SecretVersion {
            name: name.to_owned(),
            version,
            // What is read back later, so `set` and `versions` agree to the microsecond.
            created_at: DateTime::from_timestamp_micros(micros).unwrap_or(created_at),
            enabled: true,
        };
        let row = record.clone();
        self.db
            .call(move |conn| {
                conn.execute(
                    "INSERT INTO secret_versions \
                     (name, version, created_at, enabled, nonce, ciphertext) \
                     VALUES (?1, ?2, ?3, 1, ?4, ?5)",
                    params![row.name, row.version, micros, nonce.to_vec(), ciphertext],
                )
                .map_err(backend)?;
                Ok(())
            })
            .await?;
        Ok(record)
    }

    async fn get(
        &self,
        name: &str,
        version: Option<&str>,
    ) -> Result<(SecretString, SecretVersion)> {
        validate_name(name)?;
        let (name, version) = (name.to_owned(), version.map(str::to_owned));
        let row = self
            .db
            .call(move |conn| {
                let columns = "SELECT name, version, created_at, enabled, nonce, ciphertext \
                               FROM secret_versions";
                let row = match version {
                    Some(v) => conn.query_row(
                        &format!("{columns} WHERE name = ?1 AND version = ?2 AND enabled = 1"),
                        params![name, v],
                        Row::read,
                    ),
                    None => conn.query_row(
                        &format!(
                            "{columns} WHERE name = ?1 AND enabled = 1 ORDER BY seq DESC LIMIT 1"
                        ),
                        params![name],
                        Row::read,
                    ),
                };
                row.optional().map_err(backend)?.ok_or(PortError::NotFound)
            })
            .await?;
        let plaintext = self
            .cipher
            .decrypt(
                Nonce::from_slice(&row.nonce),
                Payload {
                    msg: &row.ciphertext,
                    aad: &aad(&row.meta.name, &row.meta.version),
                },
            )
            .map_err(|_| {
                decryption_failed(&format!(
                    "secret {} version {}: wrong key or tampered data",
                    row.meta.name, row.meta.version
                ))
            })?;
        // The error must not carry the bytes (FromUtf8Error would), so it is replaced.
        let value = String::from_utf8(plaintext)
            .map_err(|_| PortError::backend(BACKEND, "a decrypted secret is not UTF-8"))?;
        Ok((SecretString::from(value), row.meta))
    }

    async fn versions(&self, name: &str) -> Result<Vec<SecretVersion>> {
        validate_name(name)?;
        let name = name.to_owned();
        self.db
            .call(move |conn| {
                let mut stmt = conn
                    .prepare(
                        "SELECT name, version, created_at, enabled FROM secret_versions \
                         WHERE name = ?1 ORDER BY seq",
                    )
                    .map_err(backend)?;
                let rows = stmt
                    .query_map(params![name], read_version)
                    .map_err(backend)?
                    .collect::<rusqlite::Result<Vec<_>>>()
                    .map_err(backend)?;
                Ok(rows)
            })
            .await
    }

    async fn disable(&self, name: &str, version: &str) -> Result<()> {
        validate_name(name)?;
        let (name, version) = (name.to_owned(), version.to_owned());
        self.db
            .call(move |conn| {
                let n = conn
                    .execute(
                        "UPDATE secret_versions SET enabled = 0 WHERE name = ?1 AND version = ?2",
                        params![name, version],
                    )
                    .map_err(backend)?;
                if n == 0 {
                    Err(PortError::NotFound)
                } else {
                    Ok(())
                }
            })
            .await
    }
}

/// One stored version with its ciphertext.
struct Row {
    meta: SecretVersion,
    nonce: Vec<u8>,
    ciphertext: Vec<u8>,
}

impl Row {
    fn read(r: &rusqlite::Row<'_>) -> rusqlite::Result<Row> {
        let nonce: Vec<u8> = r.get(4)?;
        if nonce.len() != 12 {
            return Err(rusqlite::Error::InvalidColumnType(
                4,
                "nonce".to_owned(),
                rusqlite::types::Type::Blob,
            ));
        }
        Ok(Row {
            meta: read_version(r)?,
            nonce,
            ciphertext: r.get(5)?,
        })
    }
}

fn read_version(r: &rusqlite::Row<'_>) -> rusqlite::Result<SecretVersion> {
    let micros: i64 = r.get(2)?;
    Ok(SecretVersion {
        name: r.get(0)?,
        version: r.get(1)?,
        created_at: DateTime::from_timestamp_micros(micros).unwrap_or_default(),
        enabled: r.get(3)?,
    })
}

/// Binds a ciphertext to its secret. Lower-cased because names are case-insensitive.
fn aad(name: &str, version: &str) -> Vec<u8> {
    format!("secret:v1:{}/{version}", name.to_ascii_lowercase()).into_bytes()
}

fn random_nonce() -> [u8; 12] {
    let mut nonce = [0u8; 12];
    OsRng.fill_bytes(&mut nonce);
    nonce
}

/// 32 lowercase hex characters, the shape of a Key Vault version.
fn random_version() -> String {
    let mut bytes = [0u8; 16];
    OsRng.fill_bytes(&mut bytes);
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Reads the key file, or creates it if there is none. The new key is written to a temporary
/// file first and hard-linked into place, so a reader never sees a half-written key and two
/// processes starting together agree on one key (the loser of the link reads the winner's).
fn load_or_create_key(path: &Path) -> Result<[u8; 32]> {
    match fs::read_to_string(path) {
        Ok(text) => return parse_key(path, &text),
        Err(e) if e.kind() == io::ErrorKind::NotFound => {}
        Err(e) => return Err(io_err(e)),
    }
    let mut key = [0u8; 32];
    OsRng.fill_bytes(&mut key);
    let dir = path.parent().unwrap_or(Path::new("."));
    let tmp = dir.join(format!(".{KEY_FILE}.{}", uuid::Uuid::new_v4().simple()));
    let written = (|| -> io::Result<()> {
        let mut file = OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&tmp)?;
        file.write_all(format!("{}\n", STANDARD.encode(key)).as_bytes())?;
        file.sync_all()?;
        fs::hard_link(&tmp, path)
    })();
    let _ = fs::remove_file(&tmp);
    match written {
        Ok(()) => {
            fs::File::open(dir)
                .and_then(|d| d.sync_all())
                .map_err(io_err)?;
            Ok(key)
        }
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {
            let text = fs::read_to_string(path).map_err(io_err)?;
            parse_key(path, &text)
        }
        Err(e) => Err(io_err(e)),
    }
}

fn parse_key(path: &Path, text: &str) -> Result<[u8; 32]> {
    if let Ok(meta) = fs::metadata(path)
        && meta.permissions().mode() & 0o077 != 0
    {
        tracing::warn!(path = %path.display(), "the secrets key file is readable by other users; chmod 600 it");
    }
    // The decoded bytes never reach the error: it only says what is wrong.
    STANDARD
        .decode(text.trim())
        .ok()
        .and_then(|bytes| <[u8; 32]>::try_from(bytes).ok())
        .ok_or_else(|| {
            PortError::backend(
                BACKEND,
                format!(
                    "{} does not hold a base64-encoded 32-byte key",
                    path.display()
                ),
            )
        })
}

fn decryption_failed(why: &str) -> PortError {
    PortError::backend(BACKEND, format!("decryption failed: {why}"))
}

fn io_err(e: io::Error) -> PortError {
    PortError::backend(BACKEND, e)
}
