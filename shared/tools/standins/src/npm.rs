//! The pinned npm packages of the stand-ins (and the OpenAI SDK the model apps' tests drive),
//! installed once into `<repo>/.tools/npm`.
//!
//! The folder is ignored by git and shared by every test process of the checkout. nextest runs
//! each test in its own process, so several may ask for the packages at once: the install runs
//! under an exclusive lock on `<repo>/.tools/npm.lock`, and a stamp file written after a
//! complete install (and its patches) tells later callers there is nothing to do.

use std::fs::{self, File};
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Instant;

use anyhow::{Context as _, Result, bail};

/// Azurite 3.36 and later need Node 21 or newer; the machines have Node 20.
pub const AZURITE: &str = "azurite@3.35.0";
/// The in-memory Cosmos DB REST server (see [`crate::cosmos`]).
pub const COSMOSDB_SERVER: &str = "@vercel/cosmosdb-server@1.0.1";
/// The official OpenAI SDK for Node, which the model apps' end-to-end tests drive (6.x: the
/// newest line that runs on Node 20).
pub const OPENAI_SDK: &str = "openai@6.30.1";
/// Everything installed, in one `npm install`: with `--no-save` npm removes packages that a
/// later install does not name, so the set is always installed together.
pub const PACKAGES: [&str; 3] = [AZURITE, COSMOSDB_SERVER, OPENAI_SDK];

/// Bumped whenever the patches below change, so an old install is patched again.
const PATCH_LEVEL: u32 = 1;

/// The installed packages.
#[derive(Clone, Debug)]
pub struct Tools {
    prefix: PathBuf,
}

impl Tools {
    /// `<prefix>/node_modules`.
    pub fn node_modules(&self) -> PathBuf {
        self.prefix.join("node_modules")
    }

    /// The folder of one installed package, such as `@vercel/cosmosdb-server`.
    pub fn package_dir(&self, package: &str) -> PathBuf {
        self.node_modules().join(package)
    }

    /// The npm prefix (`<repo>/.tools/npm`).
    pub fn prefix(&self) -> &Path {
        &self.prefix
    }
}

/// The root of the repository: the nearest folder above this crate whose `Cargo.toml` declares
/// the workspace.
pub fn repo_root() -> Result<PathBuf> {
    let manifest_dir = Path::new(env!("CARGO_MANIFEST_DIR"));
    for dir in manifest_dir.ancestors() {
        let manifest = dir.join("Cargo.toml");
        if let Ok(text) = fs::read_to_string(&manifest)
            && text.lines().any(|l| l.trim() == "[workspace]")
        {
            return Ok(dir.to_path_buf());
        }
    }
    bail!(
        "no workspace Cargo.toml above {}: cannot find the repository root",
        manifest_dir.display()
    )
}

/// Makes sure the pinned packages are installed (and patched) in `<repo>/.tools/npm`,
/// installing them on first use. Blocks while another process installs.
pub fn ensure_installed() -> Result<Tools> {
    let tools_dir = repo_root()?.join(".tools");
    ensure_installed_in(&tools_dir)
}

/// [`ensure_installed`] with another tools folder (`<tools_dir>/npm`, `<tools_dir>/npm.lock`).
pub fn ensure_installed_in(tools_dir: &Path) -> Result<Tools> {
    let tools = Tools {
        prefix: tools_dir.join("npm"),
    };
    install_once(tools_dir, "npm", &stamp_text(), |prefix| {
        check_node_and_npm()?;
        eprintln!(
            "standins: installing {} into {} (first run only)",
            PACKAGES.join(" "),
            prefix.display()
        );
        let output = Command::new("npm")
            .arg("install")
            .arg("--prefix")
            .arg(prefix)
            .args(["--no-save", "--no-audit", "--no-fund", "--no-package-lock"])
            .args(PACKAGES)
            .stdin(Stdio::null())
            .output()
            .context("cannot run npm")?;
        if !output.status.success() {
            bail!(
                "npm install {} failed ({}):\n{}{}",
                PACKAGES.join(" "),
                output.status,
                tail(&String::from_utf8_lossy(&output.stdout)),
                tail(&String::from_utf8_lossy(&output.stderr)),
            );
        }
        apply_patches(&tools)
    })?;
    Ok(tools)
}

/// Runs `install` into `<tools_dir>/<name>` once per `stamp` for every process of the
/// checkout: under an exclusive lock on `<tools_dir>/<name>.lock`, skipped when the stamp
/// file already holds `stamp` (written atomically after a complete install, so a reader
/// that sees it knows the install is whole).
pub(crate) fn install_once(
    tools_dir: &Path,
    name: &str,
    stamp: &str,
    install: impl FnOnce(&Path) -> Result<()>,
) -> Result<PathBuf> {
    let prefix = tools_dir.join(name);
    let stamp_file = prefix.join(".standins-stamp");
    // Fast path, without the lock.
    if fs::read_to_string(&stamp_file).is_ok_and(|s| s == stamp) {
        return Ok(prefix);
    }
    fs::create_dir_all(&prefix).with_context(|| format!("cannot create {}", prefix.display()))?;
    let lock_path = tools_dir.join(format!("{name}.lock"));
    let lock = File::options()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&lock_path)
        .with_context(|| format!("cannot open the install lock {}", lock_path.display()))?;
    if lock.try_lock().is_err() {
        eprintln!(
            "standins: waiting for another process to install into {}",
            prefix.display()
        );
        lock.lock()
            .with_context(|| format!("cannot lock {}", lock_path.display()))?;
    }
    // Someone may have finished while we waited.
    if fs::read_to_string(&stamp_file).is_ok_and(|s| s == stamp) {
        return Ok(prefix);
    }
    let started = Instant::now();
    install(&prefix)?;
    write_atomically(&stamp_file, stamp.as_bytes())?;
    eprintln!(
        "standins: installed into {} in {:.1}s",
        prefix.display(),
        started.elapsed().as_secs_f64()
    );
    drop(lock);
    Ok(prefix)
}

fn stamp_text() -> String {
    format!("{}\npatch level {PATCH_LEVEL}\n", PACKAGES.join("\n"))
}

/// Fails with a message a person can act on when `node` or `npm` is missing.
pub fn check_node_and_npm() -> Result<()> {
    for tool in ["node", "npm"] {
        match Command::new(tool)
            .arg("--version")
            .stdin(Stdio::null())
            .output()
        {
            Ok(out) if out.status.success() => {}
            Ok(out) => bail!(
                "`{tool} --version` failed ({}): the stand-ins need Node 20 and npm on PATH",
                out.status
            ),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => bail!(
                "`{tool}` is not on PATH: the stand-ins (Azurite, cosmosdb-server) need Node 20 \
                 and npm; install them with your system's package manager"
            ),
            Err(e) => return Err(e).with_context(|| format!("cannot run `{tool} --version`")),
        }
    }
    Ok(())
}

/// The server answers partition-key-range ids as the number 0, but the Rust SDK (like real
/// Cosmos DB) expects the string "0". Idempotent: an already patched file is left alone.
fn apply_patches(tools: &Tools) -> Result<()> {
    let file = tools
        .package_dir("@vercel/cosmosdb-server")
        .join("lib/account/collection.js");
    let text = fs::read_to_string(&file)
        .with_context(|| format!("cannot read {} to patch it", file.display()))?;
    if text.contains("id: \"0\",") {
        return Ok(());
    }
    if !text.contains("id: 0,") {
        bail!(
            "{} no longer holds `id: 0,`: the pinned {COSMOSDB_SERVER} changed; re-check the \
             partition-key-range patch",
            file.display()
        );
    }
    let patched = text.replacen("id: 0,", "id: \"0\",", 1);
    write_atomically(&file, patched.as_bytes())
}

/// Writes to a temporary file beside `path`, then renames it over `path`: a reader sees the
/// old content or the new, never a part.
fn write_atomically(path: &Path, bytes: &[u8]) -> Result<()> {
    let dir = path
        .parent()
        .with_context(|| format!("{} has no parent folder", path.display()))?;
    let mut tmp = tempfile::NamedTempFile::new_in(dir)
        .with_context(|| format!("cannot create a temporary file in {}", dir.display()))?;
    tmp.write_all(bytes)
        .with_context(|| format!("cannot write {}", tmp.path().display()))?;
    tmp.persist(path)
        .with_context(|| format!("cannot replace {}", path.display()))?;
    Ok(())
}

/// The last lines of a long output, for error messages.
pub(crate) fn tail(text: &str) -> String {
    const KEEP: usize = 4000;
    if text.len() <= KEEP {
        return text.to_owned();
    }
    let mut start = text.len() - KEEP;
    while !text.is_char_boundary(start) {
        start += 1;
    }
    format!("…{}", &text[start..])
}
