//! `cargo xtask local-azure [--standins-only]`: the whole platform on this machine with its
//! documents in the Cosmos DB stand-in and its blobs in Azurite, instead of the embedded
//! default. The bus and the secrets stay embedded: the runner consumes its own broker as the
//! Functions host consumes Service Bus, and there is no Key Vault stand-in.
//!
//! Steps: build the release runner; start the stand-ins (installed from npm into `.tools/`
//! on first use) and create database `integration` with every app's containers; write
//! `.standins/local.settings.json` (the sample's values plus the stand-ins' connection
//! settings) and `.standins/env` (the environment the runner needs); run
//! `target/release/integration-platform` on them until Ctrl-C; stop everything.
//!
//! `--standins-only` stops before the runner: the stand-ins run and the files are written
//! until Ctrl-C, for running the platform by hand (`cargo run --release -- --settings
//! .standins/local.settings.json --data-dir .standins/data` with `.standins/env` loaded).
//!
//! The stand-ins keep their data in memory and temporary folders, gone when they stop; the
//! data folder is emptied at start so that the embedded broker holds no messages about
//! documents that no longer exist. Nothing printed holds a key: the settings file does (the
//! stand-ins' published development keys), so only its path and setting names are shown.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context as _, bail};
use serde_json::{Map, Value, json};
use standins::platform::PlatformStandIns;

use crate::package::{apps, workspace_root};

/// Where the task keeps what it writes (ignored by git).
const DIR: &str = ".standins";
/// How long the runner gets to finish in-flight work after Ctrl-C before it is killed.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(20);
/// How often the stand-ins are checked while the runner runs.
const HEALTH_EVERY: Duration = Duration::from_secs(5);

pub(crate) fn local_azure(args: &[String]) -> anyhow::Result<()> {
    let mut standins_only = false;
    for arg in args {
        match arg.as_str() {
            "--standins-only" => standins_only = true,
            other => bail!("unknown argument {other:?} (expected: [--standins-only])"),
        }
    }
    let root = workspace_root();
    // Where `cargo build` puts the runner: `CARGO_TARGET_DIR` when set (the repository's
    // cargo config names no other target directory).
    let target =
        std::env::var_os("CARGO_TARGET_DIR").map_or_else(|| root.join("target"), PathBuf::from);
    let binary = std::path::absolute(target.join("release/integration-platform"))?;
    if !standins_only {
        crate::run(
            "build the runner",
            crate::cargo().current_dir(&root).args([
                "build",
                "--release",
                "-p",
                "integration-platform",
                "--bin",
                "integration-platform",
            ]),
        )?;
    }

    let dir = root.join(DIR);
    let data = dir.join("data");
    if data.exists() {
        std::fs::remove_dir_all(&data)
            .with_context(|| format!("cannot empty {}", data.display()))?;
    }
    std::fs::create_dir_all(&data).with_context(|| format!("cannot create {}", data.display()))?;

    let registrations = apps();
    let containers: Vec<&str> = registrations
        .iter()
        .flat_map(|a| a.containers.iter().copied())
        .collect();
    eprintln!("==> start Azurite and the Cosmos DB stand-in");
    let mut standins = PlatformStandIns::start(&containers)?;

    let settings_path = dir.join("local.settings.json");
    let settings = settings_file(&root, standins.settings())?;
    write_private(&settings_path, &serde_json::to_string_pretty(&settings)?)?;
    let env = standins.env();
    let env_path = dir.join("env");
    write_private(&env_path, &env_file(&env))?;

    let relative = |p: &Path| p.strip_prefix(&root).unwrap_or(p).display().to_string();
    eprintln!(
        "\nstand-ins (stopped with this task; their data go with them):\n  \
         Cosmos DB stand-in  {}  database {}, containers {}\n  \
         Azurite (Blob)      {}\n  \
         bus and secrets     embedded, in {}\n\
         settings: {} (the sample's values, plus {})\n\
         environment ({}):",
        standins.cosmos_endpoint(),
        standins::platform::DATABASE,
        standins.containers().join(", "),
        standins.blob_endpoint(),
        relative(&data),
        relative(&settings_path),
        standins
            .settings()
            .keys()
            .cloned()
            .collect::<Vec<_>>()
            .join(", "),
        relative(&env_path),
    );
    for (name, value) in &env {
        eprintln!("  {name}={value}");
    }

    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    if standins_only {
        eprintln!(
            "\nrun the platform on them from another shell:\n  \
             set -a; . {}; set +a\n  \
             cargo run --release -- --settings {} --data-dir {}\n\
             Ctrl-C here stops the stand-ins.",
            relative(&env_path),
            relative(&settings_path),
            relative(&data),
        );
        return runtime.block_on(wait_for_stop(&mut standins));
    }
    eprintln!(
        "\n==> {} --settings {} --data-dir {} (Ctrl-C stops it and the stand-ins)\n",
        relative(&binary),
        relative(&settings_path),
        relative(&data)
    );
    let mut command = tokio::process::Command::new(&binary);
    command
        .current_dir(&root)
        .arg("--settings")
        .arg(&settings_path)
        .arg("--data-dir")
        .arg(&data)
        .envs(env)
        .kill_on_drop(true);
    runtime.block_on(run_runner(command, &mut standins))
}

/// The settings the runner reads: the sample's `Values` (safe local defaults), then the
/// stand-ins' connection settings, which move documents and blobs off the embedded default.
fn settings_file(root: &Path, standins: BTreeMap<String, String>) -> anyhow::Result<Value> {
    let sample_path = root.join("local.settings.sample.json");
    let mut file: Value = serde_json::from_str(
        &std::fs::read_to_string(&sample_path)
            .with_context(|| format!("cannot read {}", sample_path.display()))?,
    )
    .with_context(|| format!("{} is not JSON", sample_path.display()))?;
    let object = file
        .as_object_mut()
        .context("the sample settings are not a JSON object")?;
    let values = object
        .entry("Values")
        .or_insert_with(|| Value::Object(Map::new()))
        .as_object_mut()
        .context("the sample's Values are not an object")?;
    for (name, value) in standins {
        values.insert(name, json!(value));
    }
    object.insert("IsEncrypted".to_owned(), json!(false));
    Ok(file)
}

/// `export NAME='value'` lines, for `set -a; . .standins/env; set +a` (or `source`).
fn env_file(env: &[(String, String)]) -> String {
    let mut out = String::from(
        "# Written by `cargo xtask local-azure`: the environment a platform process needs to\n\
         # use the stand-ins it started (valid while that task runs).\n",
    );
    for (name, value) in env {
        out.push_str(&format!(
            "export {name}='{}'\n",
            value.replace('\'', r"'\''")
        ));
    }
    out
}

/// Writes `text` to `path`, readable by the owner only: the settings hold the stand-ins' keys.
fn write_private(path: &Path, text: &str) -> anyhow::Result<()> {
    use std::io::Write as _;
    use std::os::unix::fs::OpenOptionsExt as _;
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)
        .with_context(|| format!("cannot write {}", path.display()))?;
    file.write_all(text.as_bytes())
        .with_context(|| format!("cannot write {}", path.display()))
}

/// Runs the runner, its output going straight to this terminal, until it exits, a stand-in
/// dies, or Ctrl-C (or SIGTERM) asks everything to stop.
async fn run_runner(
    mut command: tokio::process::Command,
    standins: &mut PlatformStandIns,
) -> anyhow::Result<()> {
    use tokio::signal::unix::{SignalKind, signal};
    // Listening replaces the default action (exit at once), so the stand-ins are stopped
    // and their temporary folders removed on the way out.
    let mut interrupt = signal(SignalKind::interrupt())?;
    let mut terminate = signal(SignalKind::terminate())?;
    let mut child = command.spawn().context("cannot start the release runner")?;
    let mut health = tokio::time::interval(HEALTH_EVERY);
    loop {
        tokio::select! {
            status = child.wait() => {
                let status = status?;
                if status.success() {
                    eprintln!("the runner stopped; stopping the stand-ins");
                    return Ok(());
                }
                bail!("the runner exited ({status}); the stand-ins are stopped");
            }
            _ = interrupt.recv() => break,
            _ = terminate.recv() => break,
            _ = health.tick() => {
                if let Err(e) = standins.ensure_running() {
                    let _ = child.kill().await;
                    return Err(e.context("a stand-in stopped; the runner is stopped too"));
                }
            }
        }
    }
    // A terminal's Ctrl-C reaches the runner too (same process group); a signal sent to
    // this task alone does not, so pass it on. The runner then finishes in-flight work.
    if let Some(pid) = child
        .id()
        .and_then(|id| i32::try_from(id).ok())
        .and_then(rustix::process::Pid::from_raw)
    {
        let _ = rustix::process::kill_process(pid, rustix::process::Signal::INT);
    }
    eprintln!("stopping the runner, then the stand-ins…");
    match tokio::time::timeout(SHUTDOWN_GRACE, child.wait()).await {
        Ok(status) => {
            status?;
        }
        Err(_) => {
            eprintln!(
                "the runner did not stop within {SHUTDOWN_GRACE:?}; killing it (committed work is safe: the store is durable)"
            );
            child.kill().await?;
        }
    }
    Ok(())
}

/// `--standins-only`: keeps the stand-ins up until Ctrl-C (or SIGTERM), watching them.
async fn wait_for_stop(standins: &mut PlatformStandIns) -> anyhow::Result<()> {
    use tokio::signal::unix::{SignalKind, signal};
    let mut interrupt = signal(SignalKind::interrupt())?;
    let mut terminate = signal(SignalKind::terminate())?;
    let mut health = tokio::time::interval(HEALTH_EVERY);
    loop {
        tokio::select! {
            _ = interrupt.recv() => break,
            _ = terminate.recv() => break,
            _ = health.tick() => standins.ensure_running()?,
        }
    }
    eprintln!("stopping the stand-ins");
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_env_file_quotes_values_for_the_shell() {
        let text = env_file(&[
            ("SSL_CERT_FILE".to_owned(), "/tmp/a b/it's.pem".to_owned()),
            ("KNOB".to_owned(), "false".to_owned()),
        ]);
        assert!(
            text.contains("export SSL_CERT_FILE='/tmp/a b/it'\\''s.pem'\n"),
            "{text}"
        );
        assert!(text.contains("export KNOB='false'\n"));
    }

    #[test]
    fn the_settings_file_moves_documents_and_blobs_but_not_the_bus() {
        let standins = BTreeMap::from([
            (
                "CosmosDbConnection".to_owned(),
                "AccountEndpoint=https://localhost:1/;AccountKey=a2V5;".to_owned(),
            ),
            ("COSMOS_DATABASE".to_owned(), "integration".to_owned()),
            (
                "BlobStorageConnection".to_owned(),
                "UseDevelopmentStorage=true".to_owned(),
            ),
        ]);
        let file = settings_file(&workspace_root(), standins).unwrap();
        let values: BTreeMap<String, String> = file["Values"]
            .as_object()
            .unwrap()
            .iter()
            .map(|(k, v)| (k.clone(), v.as_str().unwrap_or_default().to_owned()))
            .collect();
        assert_eq!(
            values["FUNCTIONS_WORKER_RUNTIME"], "Custom",
            "the sample's values stay"
        );
        let selection = app_host::adapters::Selection::from_settings(&values);
        assert!(!selection.documents.is_embedded());
        assert!(!selection.blobs.is_embedded());
        // The runner refuses a bus other than its own broker; the sample must not choose one.
        assert!(selection.bus.is_embedded());
        assert!(selection.secrets.is_embedded());
        assert_eq!(file["IsEncrypted"], false);
    }

    #[test]
    fn the_sample_settings_keep_the_embedded_default_and_name_only_real_settings() {
        let sample: Value = serde_json::from_str(
            &std::fs::read_to_string(workspace_root().join("local.settings.sample.json")).unwrap(),
        )
        .unwrap();
        let values: BTreeMap<String, String> = sample["Values"]
            .as_object()
            .unwrap()
            .iter()
            .map(|(k, v)| (k.clone(), v.as_str().expect("string values").to_owned()))
            .collect();
        let selection = app_host::adapters::Selection::from_settings(&values);
        // Blank connection settings are no settings: every port stays embedded.
        assert!(
            selection.documents.is_embedded()
                && selection.bus.is_embedded()
                && selection.blobs.is_embedded()
                && selection.secrets.is_embedded(),
            "{selection}"
        );
        // Present at all (even blank), the issuer would choose Entra ID tokens.
        let dir = tempfile::tempdir().unwrap();
        app_host::adapters::authenticator(&values, || {
            Ok(auth::DevTokens::load_or_create(dir.path())?)
        })
        .expect("local tokens");
        assert!(!values.contains_key(auth::entra::SETTING_ISSUER));
        // The runner fills in each app's address only where the settings leave it out.
        for app in apps() {
            let url = app_host::url_setting(app.slug);
            assert!(
                !values.contains_key(&url),
                "{url} would stop the runner's default"
            );
        }
        // A misspelt name would be silently ignored: every name is one the code (or the
        // Functions host) reads.
        let code = rust_sources(&workspace_root());
        let host = [
            "FUNCTIONS_WORKER_RUNTIME",
            "AzureWebJobsStorage",
            "ServiceBusConnection",
        ];
        for name in values.keys() {
            assert!(
                host.contains(&name.as_str()) || code.contains(&format!("\"{name}\"")),
                "{name} is read by nothing"
            );
        }
    }

    /// The sources of every crate's `src` under `shared/` and `functions/`, concatenated.
    fn rust_sources(root: &Path) -> String {
        fn walk(dir: &Path, out: &mut String) {
            let Ok(entries) = std::fs::read_dir(dir) else {
                return;
            };
            for path in entries.map(|e| e.unwrap().path()) {
                if path.is_dir() {
                    walk(&path, out);
                } else if path.extension().is_some_and(|e| e == "rs")
                    && path.components().any(|c| c.as_os_str() == "src")
                {
                    out.push_str(&std::fs::read_to_string(&path).unwrap());
                }
            }
        }
        let mut out = String::new();
        for group in ["shared", "functions"] {
            walk(&root.join(group), &mut out);
        }
        out
    }
}
