//! The runner's data folder: one runner at a time, private to its user.
//!
//! Two runners on one folder would both fire every timer and both consume the broker's
//! queues; the second refuses to start instead, naming the first one's PID. The lock is an
//! advisory lock on `runner.lock` held for the runner's life (the operating system drops it
//! when the process ends, `kill -9` included), so a crashed runner never blocks the next.
//!
//! The folder holds raw inbound bodies and encrypted secrets: it is made `0700` and its files
//! `0600` (SQLite gives the write-ahead files it creates later the database's mode).

use std::fs::{File, OpenOptions};
use std::io::{Read as _, Seek as _, Write as _};
use std::path::Path;

use anyhow::Context as _;

/// The lock file's name in the data folder.
pub const LOCK_FILE: &str = "runner.lock";

/// The runner's hold on its data folder, released when dropped.
#[derive(Debug)]
pub struct FolderLock {
    _file: File,
}

/// Creates the folder if needed, makes it private and takes its lock; fails naming the PID
/// of the runner that holds it.
pub fn lock(dir: &Path) -> anyhow::Result<FolderLock> {
    std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    restrict(dir, 0o700)?;
    let path = dir.join(LOCK_FILE);
    let mut options = OpenOptions::new();
    options.read(true).write(true).create(true).truncate(false);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let mut file = options
        .open(&path)
        .with_context(|| format!("cannot open {}", path.display()))?;
    match file.try_lock() {
        Ok(()) => {}
        Err(std::fs::TryLockError::WouldBlock) => {
            let mut holder = String::new();
            let _ = file.read_to_string(&mut holder);
            let holder = holder.trim();
            anyhow::bail!(
                "another runner (PID {}) is using the data folder {}: stop it, or give this one another --data-dir",
                if holder.is_empty() { "unknown" } else { holder },
                dir.display()
            );
        }
        Err(std::fs::TryLockError::Error(e)) => {
            return Err(e).with_context(|| format!("cannot lock {}", path.display()));
        }
    }
    file.set_len(0)?;
    file.rewind()?;
    write!(file, "{}", std::process::id())?;
    file.flush()?;
    Ok(FolderLock { _file: file })
}

/// Makes every file directly in the folder readable by its owner only.
pub fn restrict_files(dir: &Path) -> anyhow::Result<()> {
    for entry in std::fs::read_dir(dir).with_context(|| format!("cannot read {}", dir.display()))? {
        let entry = entry?;
        if entry.file_type()?.is_file() {
            restrict(&entry.path(), 0o600)?;
        }
    }
    Ok(())
}

#[cfg(unix)]
fn restrict(path: &Path, mode: u32) -> anyhow::Result<()> {
    use std::os::unix::fs::PermissionsExt as _;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode))
        .with_context(|| format!("cannot make {} private", path.display()))
}

#[cfg(not(unix))]
fn restrict(_path: &Path, _mode: u32) -> anyhow::Result<()> {
    // Elsewhere the folder keeps the access rules of where it was created.
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_second_lock_on_a_folder_names_the_first_holder() {
        let dir = tempfile::tempdir().unwrap();
        let data = dir.path().join("data");
        let first = lock(&data).unwrap();
        let e = lock(&data).unwrap_err().to_string();
        assert!(
            e.contains(&format!("PID {}", std::process::id())) && e.contains("data folder"),
            "{e}"
        );
        drop(first);
        // Released with its holder: the next runner takes it.
        let _again = lock(&data).unwrap();
    }

    #[cfg(unix)]
    #[test]
    fn the_folder_and_its_files_are_private() {
        use std::os::unix::fs::PermissionsExt as _;
        let dir = tempfile::tempdir().unwrap();
        let data = dir.path().join("data");
        let _lock = lock(&data).unwrap();
        std::fs::write(data.join("documents.db"), b"").unwrap();
        restrict_files(&data).unwrap();
        let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode(&data), 0o700);
        assert_eq!(mode(&data.join("documents.db")), 0o600);
        assert_eq!(mode(&data.join(LOCK_FILE)), 0o600);
    }
}
