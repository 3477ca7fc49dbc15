//! `cargo xtask package [<app>...]`: one deployable folder and zip per app, laid out as the
//! Functions host reads a script root:
//!
//! ```text
//! target/package/<slug>/host.json            the root host.json, with the app's slug as
//!                                            the handler's first argument
//! target/package/<slug>/handler              the release handler (host.json's
//!                                            defaultExecutablePath), mode 0755: one
//!                                            binary for every app, which serves the app
//!                                            its argument names
//! target/package/<slug>/<Function>/function.json   generated from the app's declarations
//! target/package/<slug>.zip                  the same files; Unix modes kept
//! ```
//!
//! Building (a release build for Linux x64) and laying out are separate steps, so tests lay
//! out a package around any executable without a release build.

use std::collections::BTreeMap;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;

use anyhow::{Context as _, bail};
use app_context::AppRegistration;
use functions_runtime::FunctionDecl;
use serde_json::Value;

/// Where Azure runs the handlers (Linux x64 plans).
pub(crate) const LINUX_X64: &str = "x86_64-unknown-linux-gnu";
/// The mode of the handler executable in the folder and in the zip.
pub(crate) const EXECUTABLE_MODE: u32 = 0o755;
/// The mode of every other file in the zip.
pub(crate) const FILE_MODE: u32 = 0o644;

/// Every app this repository packages: the one app list (a test checks that every crate
/// under `functions/` is in it).
pub(crate) fn apps() -> Vec<AppRegistration> {
    platform_apps::all()
}

/// The package holding the handler binary.
pub(crate) const HANDLERS_PACKAGE: &str = "platform-apps";

/// The handler binary target (`[[bin]]` of [`HANDLERS_PACKAGE`]), the same for every app.
pub(crate) const HANDLER_BIN: &str = "handler";

pub(crate) fn workspace_root() -> PathBuf {
    // xtask lives one level below the workspace root.
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .map_or_else(|| PathBuf::from("."), Path::to_path_buf)
}

/// The task: `args` are app slugs (none: every app).
pub(crate) fn package(args: &[String]) -> anyhow::Result<()> {
    let root = workspace_root();
    let all = apps();
    let selected = select(&all, args)?;
    let host_json = root.join("host.json");
    // Fail on a bad host.json before spending minutes on a release build.
    let executable = executable_name(
        &std::fs::read_to_string(&host_json)
            .with_context(|| format!("cannot read {}", host_json.display()))?,
    )?;
    let host = host_triple()?;
    let target = (host != LINUX_X64).then_some(LINUX_X64);
    build(target)?;
    let target_dir = target_dir(&root)?;
    let release = match target {
        Some(t) => target_dir.join(t).join("release"),
        None => target_dir.join("release"),
    };
    let out = target_dir.join("package");
    eprintln!(
        "==> function.json files are generated from the apps' declarations, built with this \
         process's environment as their settings (a timer schedule such as ROTATION_SCHEDULE \
         is fixed here)"
    );
    let settings = app_host::settings_from_env();
    for reg in selected {
        let (decls, proxying) = declarations(reg, &settings)?;
        let handler = release.join(HANDLER_BIN);
        let dir = layout(&out, reg.slug, &decls, proxying, &host_json, &handler)?;
        let zip = out.join(format!("{}.zip", reg.slug));
        zip_dir(&dir, &zip)?;
        let size = std::fs::metadata(&zip).map(|m| m.len()).unwrap_or(0);
        eprintln!(
            "    {}: {} functions, {} ({executable}) → {} ({:.1} MB)",
            reg.slug,
            decls.len(),
            dir.display(),
            zip.display(),
            size as f64 / 1_048_576.0
        );
    }
    Ok(())
}

/// The registrations named by `args`, in the order given (all of them when `args` is empty).
pub(crate) fn select<'a>(
    all: &'a [AppRegistration],
    args: &[String],
) -> anyhow::Result<Vec<&'a AppRegistration>> {
    if args.is_empty() {
        return Ok(all.iter().collect());
    }
    args.iter()
        .map(|slug| {
            all.iter().find(|r| r.slug == slug).with_context(|| {
                let known: Vec<&str> = all.iter().map(|r| r.slug).collect();
                format!("no app named {slug:?}; the apps are {}", known.join(", "))
            })
        })
        .collect()
}

/// The triple of the toolchain that runs xtask (`rustc -vV`'s `host:` line).
fn host_triple() -> anyhow::Result<String> {
    let rustc = std::env::var("RUSTC").unwrap_or_else(|_| "rustc".into());
    let out = Command::new(&rustc)
        .arg("-vV")
        .output()
        .with_context(|| format!("cannot run {rustc} -vV"))?;
    let text = String::from_utf8_lossy(&out.stdout);
    text.lines()
        .find_map(|l| l.strip_prefix("host: "))
        .map(|h| h.trim().to_owned())
        .with_context(|| format!("{rustc} -vV printed no host triple"))
}

/// `cargo build --release` of the handler (one binary for every app).
fn build(target: Option<&str>) -> anyhow::Result<()> {
    let mut cmd = crate::cargo();
    cmd.args([
        "build",
        "--release",
        "-p",
        HANDLERS_PACKAGE,
        "--bin",
        HANDLER_BIN,
    ]);
    if let Some(t) = target {
        cmd.args(["--target", t]);
    }
    crate::run("release build of the handlers", &mut cmd).with_context(|| match target {
        Some(t) => format!(
            "cross-building for {t} needs the target (`rustup target add {t}`) and a linker for it"
        ),
        None => "the release build failed".to_owned(),
    })
}

/// Cargo's target directory (it honours `CARGO_TARGET_DIR` and `build.target-dir`).
fn target_dir(root: &Path) -> anyhow::Result<PathBuf> {
    let out = crate::cargo()
        .args(["metadata", "--format-version", "1", "--no-deps"])
        .current_dir(root)
        .output()
        .context("cannot run cargo metadata")?;
    if !out.status.success() {
        bail!(
            "cargo metadata failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let meta: Value = serde_json::from_slice(&out.stdout).context("cargo metadata output")?;
    meta["target_directory"]
        .as_str()
        .map(PathBuf::from)
        .context("cargo metadata gave no target_directory")
}

/// The app's function declarations, as the app builds them from `settings`, and whether the
/// host proxies its HTTP requests ([`FunctionApp::is_proxying`]). Building an app needs a
/// context; this one is thrown away: embedded ports in a temporary folder and a fixed token
/// key. Nothing is served with it.
pub(crate) fn declarations(
    reg: &AppRegistration,
    settings: &BTreeMap<String, String>,
) -> anyhow::Result<(Vec<FunctionDecl>, bool)> {
    let scratch = tempfile::tempdir().context("cannot create a temporary folder")?;
    // Some app builders may expect to run inside a runtime (to spawn background work).
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("cannot start an async runtime")?;
    let ports = runtime.block_on(app_host::adapters::open_embedded(scratch.path()))?;
    let tokens = auth::DevTokens::from_key(vec![0u8; 32])
        .map_err(|e| anyhow::anyhow!("cannot make a throwaway token key: {e}"))?;
    let ctx = ports.context(settings.clone(), Arc::new(tokens));
    let _entered = runtime.enter();
    let app = (reg.build)(&ctx).with_context(|| format!("app {}", reg.slug))?;
    app.validate()
        .with_context(|| format!("app {} declares functions the host would refuse", reg.slug))?;
    Ok((app.host_declarations(), app.is_proxying()))
}

/// The host.json of one app's package: `host_text` with `slug` first in
/// `customHandler.description.arguments` (the handler serves the app its first argument
/// names; the host passes the arguments as given), and, for an app whose answers stream,
/// `enableProxyingHttpRequest` in place of `enableForwardingHttpRequest`.
pub(crate) fn app_host_json(host_text: &str, slug: &str, proxying: bool) -> anyhow::Result<String> {
    let mut v: Value = serde_json::from_str(host_text).context("host.json is not JSON")?;
    if proxying {
        let handler = v
            .pointer_mut("/customHandler")
            .and_then(Value::as_object_mut)
            .context("host.json has no customHandler")?;
        handler.remove("enableForwardingHttpRequest");
        handler.insert("enableProxyingHttpRequest".into(), Value::Bool(true));
    }
    let description = v
        .pointer_mut("/customHandler/description")
        .and_then(Value::as_object_mut)
        .context("host.json has no customHandler.description")?;
    let mut arguments = vec![Value::from(slug)];
    if let Some(given) = description.get("arguments").and_then(Value::as_array) {
        arguments.extend(given.iter().cloned());
    }
    description.insert("arguments".into(), Value::Array(arguments));
    Ok(serde_json::to_string_pretty(&v)? + "\n")
}

/// `customHandler.description.defaultExecutablePath` of a host.json: the file the host
/// starts. It must be a plain file name, since the package puts the handler at its root.
pub(crate) fn executable_name(host_json: &str) -> anyhow::Result<String> {
    let v: Value = serde_json::from_str(host_json).context("host.json is not JSON")?;
    let path = v
        .pointer("/customHandler/description/defaultExecutablePath")
        .and_then(Value::as_str)
        .context("host.json has no customHandler.description.defaultExecutablePath")?;
    let plain = !path.is_empty()
        && path != "."
        && path != ".."
        && !path.contains(['/', '\\'])
        && !path.contains('%');
    if !plain {
        bail!(
            "host.json's defaultExecutablePath {path:?} must be a plain file name: the package puts the handler at its root"
        );
    }
    Ok(path.to_owned())
}

/// Lays out `<out>/<slug>/`: host.json from `host_json` with the app's slug as the handler's
/// first argument ([`app_host_json`]), `handler` copied under the name host.json gives it
/// (mode 0755), and `<Function>/function.json` for each declaration.
/// Anything left from an earlier run is removed first. Returns the folder.
pub(crate) fn layout(
    out: &Path,
    slug: &str,
    decls: &[FunctionDecl],
    proxying: bool,
    host_json: &Path,
    handler: &Path,
) -> anyhow::Result<PathBuf> {
    functions_runtime::declare::validate(decls)
        .with_context(|| format!("app {slug} declares functions the host would refuse"))?;
    let host_text = std::fs::read_to_string(host_json)
        .with_context(|| format!("cannot read {}", host_json.display()))?;
    let executable = executable_name(&host_text)?;
    if let Some(f) = decls.iter().find(|d| {
        d.name.eq_ignore_ascii_case(&executable) || d.name.eq_ignore_ascii_case("host.json")
    }) {
        bail!(
            "function {:?} of {slug} would collide with the package's own {:?}",
            f.name,
            executable
        );
    }
    if !handler.is_file() {
        bail!("no handler executable at {}", handler.display());
    }
    let dir = out.join(slug);
    if dir.exists() {
        std::fs::remove_dir_all(&dir).with_context(|| format!("cannot clear {}", dir.display()))?;
    }
    std::fs::create_dir_all(&dir).with_context(|| format!("cannot create {}", dir.display()))?;
    std::fs::write(
        dir.join("host.json"),
        app_host_json(&host_text, slug, proxying)?,
    )
    .with_context(|| format!("cannot write {}", dir.join("host.json").display()))?;
    let exe = dir.join(&executable);
    std::fs::copy(handler, &exe)
        .with_context(|| format!("cannot copy {} to {}", handler.display(), exe.display()))?;
    set_mode(&exe, EXECUTABLE_MODE)?;
    for d in decls {
        let folder = dir.join(&d.name);
        std::fs::create_dir_all(&folder)
            .with_context(|| format!("cannot create {}", folder.display()))?;
        let text = serde_json::to_string_pretty(&d.function_json())?;
        std::fs::write(folder.join("function.json"), text + "\n")
            .with_context(|| format!("cannot write {}/function.json", folder.display()))?;
    }
    Ok(dir)
}

#[cfg(unix)]
fn set_mode(path: &Path, mode: u32) -> anyhow::Result<()> {
    use std::os::unix::fs::PermissionsExt as _;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode))
        .with_context(|| format!("cannot make {} executable", path.display()))
}

#[cfg(not(unix))]
fn set_mode(_: &Path, _: u32) -> anyhow::Result<()> {
    // No mode bits to set here; the zip carries them.
    Ok(())
}

/// Zips the folder `dir` into `zip_path`: entries relative to `dir`, sorted, with a fixed
/// timestamp (the same inputs give the same zip) and Unix modes: the executable that
/// host.json names 0755, everything else 0644. The zip is marked as made on Unix, whatever
/// builds it, so the host extracts or mounts it with those modes.
pub(crate) fn zip_dir(dir: &Path, zip_path: &Path) -> anyhow::Result<()> {
    let executable = executable_name(
        &std::fs::read_to_string(dir.join("host.json"))
            .with_context(|| format!("{} has no host.json", dir.display()))?,
    )?;
    let mut files = Vec::new();
    collect_files(dir, dir, &mut files)?;
    files.sort();
    let partial = zip_path.with_extension("zip.partial");
    let file = std::fs::File::create(&partial)
        .with_context(|| format!("cannot create {}", partial.display()))?;
    let mut zip = zip::ZipWriter::new(file);
    for name in &files {
        let mode = if *name == executable {
            EXECUTABLE_MODE
        } else {
            FILE_MODE
        };
        let options = zip::write::SimpleFileOptions::default()
            .compression_method(zip::CompressionMethod::Deflated)
            .system(zip::System::Unix)
            .unix_permissions(mode)
            .last_modified_time(zip::DateTime::default());
        let bytes = std::fs::read(dir.join(name)).with_context(|| format!("cannot read {name}"))?;
        zip.start_file(name.as_str(), options)
            .with_context(|| format!("cannot add {name} to the zip"))?;
        zip.write_all(&bytes)
            .with_context(|| format!("cannot add {name} to the zip"))?;
    }
    zip.finish().context("cannot finish the zip")?;
    std::fs::rename(&partial, zip_path)
        .with_context(|| format!("cannot move the zip to {}", zip_path.display()))
}

/// Every file under `dir`, as `/`-separated paths relative to `root`.
fn collect_files(root: &Path, dir: &Path, out: &mut Vec<String>) -> anyhow::Result<()> {
    for entry in std::fs::read_dir(dir).with_context(|| format!("cannot list {}", dir.display()))? {
        let path = entry?.path();
        if path.is_dir() {
            collect_files(root, &path, out)?;
        } else {
            let rel = path
                .strip_prefix(root)
                .with_context(|| format!("{} is outside {}", path.display(), root.display()))?;
            let parts: Vec<String> = rel
                .components()
                .map(|c| c.as_os_str().to_string_lossy().into_owned())
                .collect();
            out.push(parts.join("/"));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests;
