//! Repository automation: `cargo xtask <task>`.
//!
//! - `test`: everything CI checks: formatting, clippy with warnings denied, and the whole
//!   test suite (nextest when installed, `cargo test` otherwise). Works on a fresh machine:
//!   it needs nothing but the Rust toolchain today; later it also installs and starts the
//!   local stand-ins (Azurite, cosmosdb-server) the Azure adapters' tests need.
//! - `bench`: runs the benchmarks recorded in docs/BENCHMARKS.md.

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
    Ok(())
}

fn bench() -> anyhow::Result<()> {
    run(
        "benchmarks",
        cargo().args([
            "bench",
            "-p",
            "functions-runtime",
            "-p",
            "envelope",
            "-p",
            "e2e",
        ]),
    )
}

fn main() -> ExitCode {
    let task = std::env::args().nth(1).unwrap_or_default();
    let result = match task.as_str() {
        "test" => test(),
        "bench" => bench(),
        _ => {
            eprintln!(
                "usage: cargo xtask <test|bench>\n  test   format check, clippy -D warnings, every test\n  bench  the benchmarks of docs/BENCHMARKS.md"
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
