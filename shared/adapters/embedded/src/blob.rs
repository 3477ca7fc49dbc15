//! `FolderBlobStore`: the `BlobStore` port on a plain folder, one file per blob.
//!
//! Layout: `root/<container>/<segment>/.../<last segment>.blob`, one folder per `/`-separated
//! segment of the blob name, so the tree reads like the blob names. Segments are
//! percent-encoded (everything but `[A-Za-z0-9._-]`, a leading `.` and the `.` of a trailing
//! `.blob`), which gives three guarantees:
//! - no name can reach outside its container (names are also checked with
//!   `ports::blob::validate_names`, which refuses `.`, `..` and empty segments);
//! - a blob `a` (`a.blob`) and a blob `a/b` (folder `a`) can coexist, as they can in Azure;
//! - files starting with `.` are never blobs, so temporary files can't be listed.
//!
//! Each file holds a small header (metadata as JSON) followed by the content, and is written to
//! a temporary file, fsynced, then renamed (or hard-linked for `if_none_match`) into place, so
//! a reader sees either the old blob or the new one with its own metadata, never a mix.

use std::fmt::Write as _;
use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};

use async_trait::async_trait;
use bytes::Bytes;
use chrono::{DateTime, Utc};
use ports::blob::validate_names;
use ports::{BlobInfo, BlobStore, PortError, PutOptions, Result};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

const BACKEND: &str = "folder-blob";
/// First bytes of every blob file; the version lets the format change without guessing.
const MAGIC: &[u8; 8] = b"ipblob1\n";
const SUFFIX: &str = ".blob";
const TMP_PREFIX: &str = ".tmp-";
/// Most file systems limit one path segment to 255 bytes.
const MAX_SEGMENT: usize = 255;
/// A header larger than this is corruption, not metadata (it holds a few short strings).
const MAX_HEADER: u32 = 64 * 1024;

/// Blobs as files under a root folder. Cheap to clone; holds no open files.
#[derive(Clone, Debug)]
pub struct FolderBlobStore {
    root: PathBuf,
    /// Whether writes are fsynced (file and folder). Without it a write still survives the
    /// process being killed (rename is atomic and the data is in the page cache), like SQLite's
    /// `synchronous=NORMAL`; with it, it survives power loss too.
    fsync: bool,
}

/// The metadata stored at the head of every blob file.
#[derive(Serialize, Deserialize)]
struct Header {
    size: u64,
    content_type: Option<String>,
    sha256: String,
    etag: String,
    last_modified: DateTime<Utc>,
}

impl FolderBlobStore {
    /// Opens (creating it if needed) the folder that holds one sub-folder per container.
    pub fn open(root: impl Into<PathBuf>) -> Result<Self> {
        Self::open_with(root, crate::Durability::Full)
    }

    /// Like `open`, choosing how hard writes are pushed to disk (see [`crate::Durability`]).
    pub fn open_with(root: impl Into<PathBuf>, durability: crate::Durability) -> Result<Self> {
        let root = root.into();
        fs::create_dir_all(&root).map_err(io_err)?;
        Ok(FolderBlobStore {
            root,
            fsync: durability == crate::Durability::Full,
        })
    }

    /// The folder of one container.
    fn container_dir(&self, container: &str) -> PathBuf {
        self.root.join(container)
    }

    /// The file of one blob; the names must already be validated.
    fn blob_path(&self, container: &str, name: &str) -> Result<PathBuf> {
        let mut path = self.container_dir(container);
        let segments: Vec<&str> = name.split('/').collect();
        for (i, segment) in segments.iter().enumerate() {
            let mut encoded = encode_segment(segment);
            if i + 1 == segments.len() {
                encoded.push_str(SUFFIX);
            }
            if encoded.len() > MAX_SEGMENT {
                return Err(PortError::Invalid(format!(
                    "the folder blob store holds at most {MAX_SEGMENT} bytes per '/'-separated \
                     segment of a blob name (after encoding)"
                )));
            }
            path.push(encoded);
        }
        Ok(path)
    }
}

#[async_trait]
impl BlobStore for FolderBlobStore {
    async fn put(
        &self,
        container: &str,
        name: &str,
        data: Bytes,
        options: PutOptions,
    ) -> Result<BlobInfo> {
        validate_names(container, name)?;
        let path = self.blob_path(container, name)?;
        let (root, fsync) = (self.root.clone(), self.fsync);
        let header = Header {
            size: data.len() as u64,
            content_type: options.content_type,
            sha256: String::new(),
            etag: uuid::Uuid::new_v4().simple().to_string(),
            last_modified: Utc::now(),
        };
        let (container, name) = (container.to_owned(), name.to_owned());
        blocking(move || {
            let mut header = header;
            header.sha256 = sha256_hex(&data);
            write_blob(&root, &path, &header, &data, options.if_none_match, fsync)?;
            Ok(info(container, name, header))
        })
        .await
    }

    async fn get(&self, container: &str, name: &str) -> Result<(Bytes, BlobInfo)> {
        validate_names(container, name)?;
        let path = self.blob_path(container, name)?;
        let (container, name) = (container.to_owned(), name.to_owned());
        blocking(move || {
            let mut file = File::open(&path).map_err(io_err)?;
            let header = read_header(&mut file)?;
            // Sized by the file, not by the header, which may be corrupt.
            let mut data = Vec::new();
            file.read_to_end(&mut data).map_err(io_err)?;
            if data.len() as u64 != header.size {
                return Err(corrupt(
                    &path,
                    "the content length does not match the header",
                ));
            }
            if sha256_hex(&data) != header.sha256 {
                return Err(corrupt(&path, "the content does not match its sha256"));
            }
            Ok((Bytes::from(data), info(container, name, header)))
        })
        .await
    }

    async fn head(&self, container: &str, name: &str) -> Result<BlobInfo> {
        validate_names(container, name)?;
        let path = self.blob_path(container, name)?;
        let (container, name) = (container.to_owned(), name.to_owned());
        blocking(move || {
            let mut file = File::open(&path).map_err(io_err)?;
            let header = read_header(&mut file)?;
            Ok(info(container, name, header))
        })
        .await
    }

    async fn delete(&self, container: &str, name: &str) -> Result<()> {
        validate_names(container, name)?;
        let path = self.blob_path(container, name)?;
        // Empty folders are left behind on purpose: removing them would race with a `put`
        // that has just created the folder and is about to write into it.
        let fsync = self.fsync;
        blocking(move || {
            fs::remove_file(&path).map_err(io_err)?;
            sync_dir(parent(&path)?, fsync)
        })
        .await
    }

    async fn list(&self, container: &str, prefix: &str) -> Result<Vec<BlobInfo>> {
        // A syntactically valid placeholder name, so only the container is checked here; the
        // prefix is only compared with names, never turned into a path.
        validate_names(container, "x")?;
        let dir = self.container_dir(container);
        let (container, prefix) = (container.to_owned(), prefix.to_owned());
        blocking(move || {
            let mut found = Vec::new();
            match walk(&dir, "", &prefix, &mut found) {
                // A container exists once something was put into it; before that it is empty.
                Err(e) if e.kind() == io::ErrorKind::NotFound && !dir.exists() => {
                    return Ok(Vec::new());
                }
                other => other.map_err(io_err)?,
            }
            let mut infos = Vec::with_capacity(found.len());
            for (name, path) in found {
                let mut file = match File::open(&path) {
                    Ok(f) => f,
                    // Deleted between the directory walk and now: no longer part of the list.
                    Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
                    Err(e) => return Err(io_err(e)),
                };
                let header = read_header(&mut file)?;
                infos.push(info(container.clone(), name, header));
            }
            infos.sort_by(|a, b| a.name.cmp(&b.name));
            Ok(infos)
        })
        .await
    }
}

/// Runs blocking file I/O off the async runtime.
async fn blocking<T, F>(f: F) -> Result<T>
where
    T: Send + 'static,
    F: FnOnce() -> Result<T> + Send + 'static,
{
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| PortError::backend(BACKEND, e))?
}

fn write_blob(
    root: &Path,
    path: &Path,
    header: &Header,
    data: &[u8],
    if_none_match: bool,
    fsync: bool,
) -> Result<()> {
    let dir = parent(path)?;
    create_dirs(root, dir, fsync)?;
    let tmp = dir.join(format!("{TMP_PREFIX}{}", uuid::Uuid::new_v4().simple()));
    let result = write_tmp(&tmp, header, data, fsync).and_then(|()| {
        if if_none_match {
            // link(2) fails with EEXIST if the name is taken, atomically: of two racing
            // writers exactly one wins, and the loser's file is never visible.
            fs::hard_link(&tmp, path).map_err(|e| match e.kind() {
                io::ErrorKind::AlreadyExists => PortError::AlreadyExists,
                _ => io_err(e),
            })
        } else {
            fs::rename(&tmp, path).map_err(io_err)
        }
    });
    // After a rename the temporary name is gone already; after a link (or a failure) it is
    // still there. Either way it must not outlive this call.
    if let Err(e) = fs::remove_file(&tmp)
        && e.kind() != io::ErrorKind::NotFound
    {
        tracing::warn!(path = %tmp.display(), error = %e, "could not remove a temporary blob file");
    }
    result?;
    sync_dir(dir, fsync)
}

fn write_tmp(tmp: &Path, header: &Header, data: &[u8], fsync: bool) -> Result<()> {
    let json = serde_json::to_vec(header).map_err(|e| PortError::backend(BACKEND, e))?;
    let len = u32::try_from(json.len()).map_err(|e| PortError::backend(BACKEND, e))?;
    let mut file = OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(tmp)
        .map_err(io_err)?;
    let mut out = io::BufWriter::new(&mut file);
    out.write_all(MAGIC).map_err(io_err)?;
    out.write_all(&len.to_le_bytes()).map_err(io_err)?;
    out.write_all(&json).map_err(io_err)?;
    out.write_all(data).map_err(io_err)?;
    out.flush().map_err(io_err)?;
    drop(out);
    // The content must be on disk before the name points at it, or a power cut could leave
    // a renamed but empty file.
    if fsync {
        file.sync_all().map_err(io_err)?;
    }
    Ok(())
}

/// Creates the folders of `dir` below `root`, fsyncing each new folder's parent so the folder
/// itself survives a power cut.
fn create_dirs(root: &Path, dir: &Path, fsync: bool) -> Result<()> {
    if dir.is_dir() {
        return Ok(());
    }
    let mut missing = Vec::new();
    let mut cur = dir;
    while !cur.is_dir() && cur != root {
        missing.push(cur);
        cur = match cur.parent() {
            Some(p) => p,
            None => break,
        };
    }
    for d in missing.into_iter().rev() {
        match fs::create_dir(d) {
            Ok(()) => sync_dir(parent(d)?, fsync)?,
            // A concurrent put made it first.
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists && d.is_dir() => {}
            Err(e) => return Err(io_err(e)),
        }
    }
    Ok(())
}

fn sync_dir(dir: &Path, fsync: bool) -> Result<()> {
    if !fsync {
        return Ok(());
    }
    File::open(dir).and_then(|d| d.sync_all()).map_err(io_err)
}

fn parent(path: &Path) -> Result<&Path> {
    path.parent()
        .ok_or_else(|| PortError::backend(BACKEND, "a blob path has no parent folder"))
}

fn read_header(file: &mut File) -> Result<Header> {
    let mut fixed = [0u8; 12];
    file.read_exact(&mut fixed)
        .map_err(|_| corrupt_file("the file is too short"))?;
    if &fixed[..8] != MAGIC {
        return Err(corrupt_file("the file does not start with the blob header"));
    }
    let len = u32::from_le_bytes([fixed[8], fixed[9], fixed[10], fixed[11]]);
    if len > MAX_HEADER {
        return Err(corrupt_file("the header is implausibly large"));
    }
    let mut json = vec![0u8; len as usize];
    file.read_exact(&mut json)
        .map_err(|_| corrupt_file("the header is truncated"))?;
    serde_json::from_slice(&json).map_err(|_| corrupt_file("the header is not valid metadata"))
}

/// Collects `(name, file)` of the blobs under `dir` whose names start with `prefix`; `at` is
/// the decoded name prefix of `dir` (empty or ending with '/').
fn walk(dir: &Path, at: &str, prefix: &str, found: &mut Vec<(String, PathBuf)>) -> io::Result<()> {
    for entry in fs::read_dir(dir)? {
        let entry = entry?;
        let file_name = entry.file_name();
        let Some(file_name) = file_name.to_str() else {
            continue;
        };
        // Temporary files and anything else not written by the store.
        if file_name.starts_with('.') {
            continue;
        }
        let file_type = entry.file_type()?;
        if file_type.is_dir() {
            let Some(segment) = decode_segment(file_name) else {
                continue;
            };
            let sub = format!("{at}{segment}/");
            // Descend only where a name under `sub` could still start with `prefix`.
            if sub.starts_with(prefix) || prefix.starts_with(&sub) {
                walk(&entry.path(), &sub, prefix, found)?;
            }
        } else if file_type.is_file() {
            let Some(encoded) = file_name.strip_suffix(SUFFIX) else {
                continue;
            };
            let Some(segment) = decode_segment(encoded) else {
                continue;
            };
            let name = format!("{at}{segment}");
            if name.starts_with(prefix) {
                found.push((name, entry.path()));
            }
        }
    }
    Ok(())
}

fn is_plain(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-')
}

fn encode_segment(segment: &str) -> String {
    let mut out = String::with_capacity(segment.len());
    for b in segment.bytes() {
        if is_plain(b) {
            out.push(b as char);
        } else {
            let _ = write!(out, "%{b:02X}");
        }
    }
    // A leading '.' would hide the file (and could look like a temporary file); a trailing
    // ".blob" would make a folder look like a blob file.
    if out.starts_with('.') {
        out.replace_range(..1, "%2E");
    }
    if out.ends_with(SUFFIX) {
        let at = out.len() - SUFFIX.len();
        out.replace_range(at..at + 1, "%2E");
    }
    out
}

/// The inverse of `encode_segment`; `None` for anything the store did not write.
fn decode_segment(encoded: &str) -> Option<String> {
    let bytes = encoded.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = encoded.get(i + 1..i + 3)?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

pub(crate) fn sha256_hex(data: &[u8]) -> String {
    let mut hex = String::with_capacity(64);
    for b in Sha256::digest(data) {
        let _ = write!(hex, "{b:02x}");
    }
    hex
}

fn info(container: String, name: String, header: Header) -> BlobInfo {
    BlobInfo {
        container,
        name,
        size: header.size,
        content_type: header.content_type,
        sha256: header.sha256,
        etag: header.etag,
        last_modified: header.last_modified,
    }
}

fn io_err(e: io::Error) -> PortError {
    match e.kind() {
        io::ErrorKind::NotFound => PortError::NotFound,
        _ => PortError::backend(BACKEND, e),
    }
}

fn corrupt(path: &Path, why: &str) -> PortError {
    PortError::backend(
        BACKEND,
        format!("corrupt blob file {}: {why}", path.display()),
    )
}

fn corrupt_file(why: &str) -> PortError {
    PortError::backend(BACKEND, format!("corrupt blob file: {why}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn segments_round_trip_and_never_look_like_our_own_files() {
        for s in [
            "plain.json",
            ".hidden",
            "x.blob",
            "a b%c",
            "ünï",
            "..x",
            "-_.",
        ] {
            let e = encode_segment(s);
            assert!(!e.starts_with('.'), "{e}");
            assert!(!e.ends_with(SUFFIX), "{e}");
            assert!(e.bytes().all(|b| is_plain(b) || b == b'%'), "{e}");
            assert_eq!(decode_segment(&e).as_deref(), Some(s));
        }
    }
}
