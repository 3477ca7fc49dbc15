//! Repository automation: `cargo xtask <task>`.
//!
//! - `test`: everything CI checks: formatting, clippy with warnings denied, and the whole
//!   test suite (nextest when installed, `cargo test` otherwise). Works on a fresh machine:
//!   it needs the Rust toolchain, Node 20 and npm; the tests that use the local stand-ins
//!   (Azurite, cosmosdb-server) install them into `.tools/npm` and start them themselves.
//! - `bench`: runs the benchmarks recorded in docs/BENCHMARKS.md.
//! - `package [<app>...]`: release handlers for Linux x64, laid out as deployable folders
//!   and zips under `target/package/` (see `package.rs`).
//!
//! - `local-azure [--standins-only]`: the platform on Azurite and the Cosmos DB stand-in
//!   instead of the embedded default, until Ctrl-C (see `local_azure.rs`).
//!
//! - `bicep`: what `test` ends with: a structural check of every Bicep file, then a parse by
//!   `pycep-parser` (the Bicep CLI is not available everywhere), installed once into
//!   `.tools/`; the parse is skipped, saying so, where python3 is missing.

mod bicep;
mod local_azure;
mod package;

use std::process::{Command, ExitCode};
use std::time::Instant;

use anyhow::{Context as _, bail};

fn run(step: &str, cmd: &mut Command) -> anyhow::Result<()> {
    eprintln!("==> {step}: {cmd:?}");
    let started = Instant::now();
    let status = cmd
        .status()
        .with_context(|| format!("cannot start {step}"))?;
    eprintln!("    {step} took {:.1} s", started.elapsed().as_secs_f64());
    if !status.success() {
        bail!("{step} failed ({status})");
    }
    Ok(())
}

fn cargo() -> Command {
    Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()))
}

/// The unused-dependency check, pinned (installed once from crates.io when missing: about a
/// minute of building).
const MACHETE_VERSION: &str = "0.9.2";

/// Where `cargo install` puts cargo-machete (`$CARGO_HOME/bin`, else `~/.cargo/bin`). It is
/// run as itself: run as `cargo machete` through a toolchain's own cargo binary (as the
/// `CARGO` of this process is), it takes the subcommand's name for the path to check.
fn machete() -> std::path::PathBuf {
    let home = std::env::var_os("CARGO_HOME")
        .map(std::path::PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| std::path::PathBuf::from(h).join(".cargo")))
        .unwrap_or_default();
    let installed = home.join("bin").join("cargo-machete");
    if installed.exists() {
        installed
    } else {
        "cargo-machete".into()
    }
}

/// No crate declares a dependency it does not use (`cargo-machete`; a dependency it cannot
/// see used, such as one that only turns a feature on, is listed under
/// `[package.metadata.cargo-machete] ignored` with the reason).
fn unused_dependencies() -> anyhow::Result<()> {
    let installed = Command::new(machete())
        .arg("--version")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if !installed {
        run(
            "install cargo-machete",
            cargo().args([
                "install",
                "cargo-machete",
                "--locked",
                "--version",
                MACHETE_VERSION,
            ]),
        )?;
    }
    run(
        "unused dependencies",
        Command::new(machete()).arg(package::workspace_root()),
    )
}

fn has_nextest() -> bool {
    cargo()
        .args(["nextest", "--version"])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

fn test() -> anyhow::Result<()> {
    run(
        "format check",
        cargo().args(["fmt", "--all", "--", "--check"]),
    )?;
    run(
        "clippy",
        cargo().args([
            "clippy",
            "--workspace",
            "--all-targets",
            "--",
            "-D",
            "warnings",
        ]),
    )?;
    unused_dependencies()?;
    if has_nextest() {
        // nextest does not run doctests; run them first so the suite's summary is the last
        // thing printed.
        run("doctests", cargo().args(["test", "--workspace", "--doc"]))?;
        run(
            "tests",
            cargo().args(["nextest", "run", "--workspace", "--no-fail-fast"]),
        )?;
    } else {
        run(
            "tests",
            cargo().args(["test", "--workspace", "--no-fail-fast"]),
        )?;
    }
    bicep::check(&package::workspace_root())
}

fn bench() -> anyhow::Result<()> {
    run(
        "benchmarks",
        // Every crate with benches (docs/BENCHMARKS.md names the command of each table); the
        // inbound wrk harness is a script: tests/load/inbound.sh.
        cargo().args([
            "bench",
            "-p",
            "functions-runtime",
            "-p",
            "envelope",
            "-p",
            "auth",
            "-p",
            "custody",
            "-p",
            "oauth2-client",
            "-p",
            "webhooks",
            "-p",
            "resilience",
            "-p",
            "e2e",
        ]),
    )
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let task = args.first().cloned().unwrap_or_default();
    let result = match task.as_str() {
        "test" => test(),
        "bench" => bench(),
        "package" => package::package(&args[1..]),
        "bicep" => bicep::check(&package::workspace_root()),
        "local-azure" => local_azure::local_azure(&args[1..]),
        _ => {
            eprintln!(
                "usage: cargo xtask <test|bench|package|local-azure|bicep>\n  test                format check, clippy -D warnings, unused dependencies, every test, Bicep parse\n  bench               the benchmarks of docs/BENCHMARKS.md\n  package [<app>...]  release handlers for Linux x64 as deployable folders and zips in target/package/\n  local-azure [--standins-only]\n                      the platform on Azurite and the Cosmos DB stand-in until Ctrl-C (--standins-only: only the stand-ins, to run the platform yourself)\n  bicep               the Bicep checks that end `test` (structure, then pycep-parser)"
            );
            return ExitCode::from(2);
        }
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("xtask {task}: {e:#}");
            ExitCode::FAILURE
        }
    }
}
