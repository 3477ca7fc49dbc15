//! `local.settings.json` in the Core Tools format, overlaid by the environment.

use std::collections::BTreeMap;
use std::path::Path;

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

/// The settings every app sees, and the host section the runner uses.
#[derive(Clone, Debug, Default)]
pub struct Settings {
    pub values: BTreeMap<String, String>,
    pub local_http_port: Option<u16>,
    pub local_http_address: Option<String>,
}

impl Settings {
    /// Reads `path` if it exists (a missing file is an empty one), then lets `env` win for
    /// every key it has, as Core Tools does. `ConnectionStrings` become
    /// `ConnectionStrings:<name>` keys.
    pub fn load(path: &Path, env: impl Fn(&str) -> Option<String>) -> anyhow::Result<Settings> {
        let file: File = match std::fs::read(path) {
            Ok(bytes) => serde_json::from_slice(&bytes).with_context(|| {
                format!("{} is not a valid local.settings.json", path.display())
            })?,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => File::default(),
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
        for (k, v) in values.iter_mut() {
            if let Some(from_env) = env(k) {
                *v = from_env;
            }
        }
        // Core Tools runs the host as Development; apps relax production-only rules on it
        // (https-only vendor URLs, for fakes on loopback).
        if !values.contains_key(ENVIRONMENT) {
            values.insert(
                ENVIRONMENT.to_owned(),
                env(ENVIRONMENT).unwrap_or_else(|| "Development".to_owned()),
            );
        }
        Ok(Settings {
            values,
            local_http_port: file.host.local_http_port,
            local_http_address: file.host.local_http_address,
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
        let s = Settings::load(&path, |k| (k == "N").then(|| "4".to_owned())).unwrap();
        assert_eq!(s.values["FUNCTIONS_WORKER_RUNTIME"], "Custom");
        assert_eq!(s.values["N"], "4", "the environment wins");
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
    fn missing_file_is_empty_and_bad_files_are_errors() {
        let dir = tempfile::tempdir().unwrap();
        let empty = Settings::load(&dir.path().join("nope.json"), |_| None).unwrap();
        let keys: Vec<&str> = empty.values.keys().map(String::as_str).collect();
        assert_eq!(
            keys,
            vec![ENVIRONMENT],
            "only the environment, as Core Tools sets it"
        );
        assert_eq!(empty.values[ENVIRONMENT], "Development");
        let bad = dir.path().join("bad.json");
        std::fs::write(&bad, "{not json").unwrap();
        assert!(Settings::load(&bad, |_| None).is_err());
        std::fs::write(&bad, r#"{"IsEncrypted":true,"Values":{}}"#).unwrap();
        assert!(
            Settings::load(&bad, |_| None)
                .unwrap_err()
                .to_string()
                .contains("encrypted")
        );
    }
}
