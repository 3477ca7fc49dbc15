//! Python packages in virtual environments under `<repo>/.tools/` (ignored by git), each
//! installed once with the `python3` on PATH (3.9 or newer) from PyPI: the official OpenAI
//! SDK the model apps' end-to-end tests drive, and LiteLLM's proxy, which only the model
//! gateway's benchmark installs (to measure it beside the gateway).

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use anyhow::{Context as _, Result, bail};

use crate::npm::{install_once, repo_root, tail};

/// The pinned SDK.
pub const OPENAI_SDK: &str = "openai==3.63.0";
/// The pinned LiteLLM proxy (the benchmark's point of comparison). Later releases' `proxy`
/// extra depends on a `litellm-proxy` distribution that pip could not find for them.
pub const LITELLM_PROXY: &str = "litellm[proxy]==1.105.3";

/// Makes sure the virtual environment with [`OPENAI_SDK`] exists, creating it on first use;
/// answers its Python interpreter.
pub fn ensure_openai_sdk() -> Result<PathBuf> {
    Ok(interpreter(&ensure_venv("python", &[OPENAI_SDK])?))
}

/// Makes sure `<repo>/.tools/<name>` is a virtual environment with `packages`, creating it
/// on first use (under a lock, once per checkout); answers its folder (`bin/` holds the
/// packages' commands).
pub fn ensure_venv(name: &str, packages: &[&str]) -> Result<PathBuf> {
    let tools_dir = repo_root()?.join(".tools");
    let stamp = format!("{}\n", packages.join("\n"));
    install_once(&tools_dir, name, &stamp, |venv| {
        eprintln!(
            "standins: installing {} into {} (first run only)",
            packages.join(" "),
            venv.display()
        );
        run(
            Command::new("python3")
                .args(["-m", "venv", "--clear"])
                .arg(venv),
            "python3 -m venv (the tests of the model apps need Python 3.9 or newer on PATH)",
        )?;
        run(
            Command::new(interpreter(venv))
                .args([
                    "-m",
                    "pip",
                    "install",
                    "--quiet",
                    "--disable-pip-version-check",
                ])
                .args(packages),
            "pip install",
        )
    })
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
