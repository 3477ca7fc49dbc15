//! `local.settings.json` in the Core Tools format, overlaid by the environment.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::{Context as _, bail};
use serde::Deserialize;
use serde_json::Value;

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "PascalCase")]
struct File {
    #[serde(default)]
    is_encrypted: bool,
    #[serde(default)]
    values: BTreeMap<String, Value>,
    #[serde(default)]
    host: HostSection,
    #[serde(default)]
    connection_strings: BTreeMap<String, Value>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "PascalCase")]
struct HostSection {
    local_http_port: Option<u16>,
    local_http_address: Option<String>,
}

/// The setting naming the host environment.
pub const ENVIRONMENT: &str = "AZURE_FUNCTIONS_ENVIRONMENT";

/// The settings file read when none is named, if it exists.
pub const DEFAULT_FILE: &str = "local.settings.json";

/// The settings every app sees, and the host section the runner uses.
#[derive(Clone, Debug, Default)]
pub struct Settings {
    pub values: BTreeMap<String, String>,
    pub local_http_port: Option<u16>,
    pub local_http_address: Option<String>,
    /// The file the values came from (`None`: no file, the environment only).
    pub file: Option<PathBuf>,
}

impl Settings {
    /// Reads the settings as Core Tools does: the file (`path`, which must exist when given;
    /// else [`DEFAULT_FILE`] if it exists), then the process environment (`env`), which wins
    /// for every name it has, whether the file has it or not. `ConnectionStrings` become
    /// `ConnectionStrings:<name>` keys.
    pub fn load(
        path: Option<&Path>,
        env: impl IntoIterator<Item = (String, String)>,
    ) -> anyhow::Result<Settings> {
        let (path, named) = match path {
            Some(p) => (p, true),
            None => (Path::new(DEFAULT_FILE), false),
        };
        let (file, read): (File, bool) = match std::fs::read(path) {
            Ok(bytes) => (
                serde_json::from_slice(&bytes).with_context(|| {
                    format!("{} is not a valid local.settings.json", path.display())
                })?,
                true,
            ),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound && !named => {
                (File::default(), false)
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                bail!("the settings file {} does not exist", path.display())
            }
            Err(e) => return Err(e).with_context(|| format!("cannot read {}", path.display())),
        };
        if file.is_encrypted {
            bail!(
                "{} is encrypted (IsEncrypted: true); decrypt it with `func settings decrypt` first",
                path.display()
            );
        }
        let mut values = BTreeMap::new();
        for (k, v) in file.values {
            let text = match v {
                Value::String(s) => s,
                Value::Null => continue,
                other => other.to_string(),
            };
            values.insert(k, text);
        }
        for (name, v) in file.connection_strings {
            let text = match v {
                Value::String(s) => s,
                Value::Object(o) => o
                    .get("ConnectionString")
                    .and_then(Value::as_str)
                    .unwrap_or_default()
                    .to_owned(),
                _ => continue,
            };
            values.insert(format!("ConnectionStrings:{name}"), text);
        }
        values.extend(env);
        // Core Tools runs the host as Development; apps relax production-only rules on it
        // (https-only vendor URLs, for fakes on loopback).
        values
            .entry(ENVIRONMENT.to_owned())
            .or_insert_with(|| "Development".to_owned());
        Ok(Settings {
            values,
            local_http_port: file.host.local_http_port,
            local_http_address: file.host.local_http_address,
            file: read.then(|| path.to_owned()),
        })
    }

    /// Resolves `%Name%` (the host's app-setting syntax) against the settings.
    pub fn resolve(&self, text: &str) -> anyhow::Result<String> {
        match text.strip_prefix('%').and_then(|t| t.strip_suffix('%')) {
            Some(name) if !name.is_empty() => self.values.get(name).cloned().with_context(|| {
                format!("setting {name:?} (referenced as {text:?}) is not defined")
            }),
            _ => Ok(text.to_owned()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn core_tools_format_with_env_overlay() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("local.settings.json");
        std::fs::write(
            &path,
            r#"{"IsEncrypted":false,"Values":{"FUNCTIONS_WORKER_RUNTIME":"Custom","Schedule":"0 */5 * * * *","N":3},
               "Host":{"LocalHttpPort":7072},"ConnectionStrings":{"Db":{"ConnectionString":"x=1","ProviderName":"p"}}}"#,
        )
        .unwrap();
        let env = [("N", "4"), ("ONLY_IN_ENV", "yes")].map(|(k, v)| (k.to_owned(), v.to_owned()));
        let s = Settings::load(Some(&path), env).unwrap();
        assert_eq!(s.values["FUNCTIONS_WORKER_RUNTIME"], "Custom");
        assert_eq!(s.values["N"], "4", "the environment wins");
        assert_eq!(
            s.values["ONLY_IN_ENV"], "yes",
            "whether or not the file has the name"
        );
        assert_eq!(s.file.as_deref(), Some(path.as_path()));
        assert_eq!(s.values["ConnectionStrings:Db"], "x=1");
        assert_eq!(s.local_http_port, Some(7072));
        assert_eq!(s.resolve("%Schedule%").unwrap(), "0 */5 * * * *");
        assert_eq!(s.resolve("0 0 * * * *").unwrap(), "0 0 * * * *");
        assert!(
            s.resolve("%Missing%")
                .unwrap_err()
                .to_string()
                .contains("Missing")
        );
    }

    #[test]
    fn a_named_file_must_exist_and_bad_files_are_errors() {
        let dir = tempfile::tempdir().unwrap();
        let missing = dir.path().join("nope.json");
        let e = Settings::load(Some(&missing), []).unwrap_err().to_string();
        assert!(
            e.contains("does not exist") && e.contains("nope.json"),
            "{e}"
        );
        let bad = dir.path().join("bad.json");
        std::fs::write(&bad, "{not json").unwrap();
        assert!(Settings::load(Some(&bad), []).is_err());
        std::fs::write(&bad, r#"{"IsEncrypted":true,"Values":{}}"#).unwrap();
        assert!(
            Settings::load(Some(&bad), [])
                .unwrap_err()
                .to_string()
                .contains("encrypted")
        );
    }

    #[test]
    fn without_a_file_the_environment_is_the_settings() {
        // The default file is looked for in the working directory; the crate's has none.
        assert!(!Path::new(DEFAULT_FILE).exists());
        let s = Settings::load(None, [("A".to_owned(), "1".to_owned())]).unwrap();
        assert_eq!(s.file, None);
        let keys: Vec<&str> = s.values.keys().map(String::as_str).collect();
        assert_eq!(keys, vec!["A", ENVIRONMENT]);
        assert_eq!(s.values[ENVIRONMENT], "Development");
    }
}
