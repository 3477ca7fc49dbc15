//! The official OpenAI SDK for Python, which the model apps' end-to-end tests drive,
//! installed once into a virtual environment at `<repo>/.tools/python` (ignored by git),
//! with the `python3` on PATH (3.9 or newer) and packages from PyPI.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use anyhow::{Context as _, Result, bail};

use crate::npm::{install_once, repo_root, tail};

/// The pinned SDK.
pub const OPENAI_SDK: &str = "openai==3.63.0";

/// Makes sure the virtual environment with [`OPENAI_SDK`] exists, creating it on first use;
/// answers its Python interpreter.
pub fn ensure_openai_sdk() -> Result<PathBuf> {
    let tools_dir = repo_root()?.join(".tools");
    let venv = install_once(&tools_dir, "python", &format!("{OPENAI_SDK}\n"), |venv| {
        eprintln!(
            "standins: installing {OPENAI_SDK} into {} (first run only)",
            venv.display()
        );
        run(
            Command::new("python3")
                .args(["-m", "venv", "--clear"])
                .arg(venv),
            "python3 -m venv (the tests of the model apps need Python 3.9 or newer on PATH)",
        )?;
        run(
            Command::new(interpreter(venv)).args([
                "-m",
                "pip",
                "install",
                "--quiet",
                "--disable-pip-version-check",
                OPENAI_SDK,
            ]),
            "pip install",
        )
    })?;
    Ok(interpreter(&venv))
}

fn interpreter(venv: &Path) -> PathBuf {
    venv.join("bin").join("python")
}

fn run(command: &mut Command, what: &str) -> Result<()> {
    let output = command
        .stdin(Stdio::null())
        .output()
        .with_context(|| format!("cannot run {what}"))?;
    if !output.status.success() {
        bail!(
            "{what} failed ({}):\n{}{}",
            output.status,
            tail(&String::from_utf8_lossy(&output.stdout)),
            tail(&String::from_utf8_lossy(&output.stderr)),
        );
    }
    Ok(())
}
