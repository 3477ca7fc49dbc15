//! Which models a connection serves: its config's `models`, each a name callers use (the
//! upstream's own name) or an alias `{"name": "fast", "upstream": "gpt-4o-mini"}`. Every
//! model provider's config type has this member ([`Models`]), so a connection is refused
//! at creation when it is missing or malformed.

use domain::ConnectionConfig;
use integration_kit::InputError;
use serde::{Deserialize, Serialize};
use serde_json::Value;

/// One model of a connection.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum ModelEntry {
    /// Callers and the upstream use the same name.
    Name(String),
    /// Callers say `name`; the upstream is asked for `upstream` (a deployment, a tag).
    Alias { name: String, upstream: String },
}

impl ModelEntry {
    /// The name callers use.
    pub fn name(&self) -> &str {
        match self {
            ModelEntry::Name(n) | ModelEntry::Alias { name: n, .. } => n,
        }
    }

    /// The name the upstream knows it by.
    pub fn upstream(&self) -> &str {
        match self {
            ModelEntry::Name(n) | ModelEntry::Alias { upstream: n, .. } => n,
        }
    }
}

/// A provider config's `models`: at least one, names of 1 to 256 characters without
/// control characters, no name twice.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Models(pub Vec<ModelEntry>);

impl Models {
    /// The rules serde does not say, naming the offending entry.
    pub fn check(&self) -> Result<(), InputError> {
        if self.0.is_empty() {
            return Err(InputError::at("models", "name at least one model"));
        }
        let mut seen = std::collections::HashSet::new();
        for (i, m) in self.0.iter().enumerate() {
            for (field, value) in [("name", m.name()), ("upstream", m.upstream())] {
                let n = value.chars().count();
                if !(1..=256).contains(&n) || value.chars().any(char::is_control) {
                    return Err(InputError::at(
                        format!("models[{i}].{field}"),
                        "must be 1 to 256 characters on one line",
                    ));
                }
            }
            if !seen.insert(m.name()) {
                return Err(InputError::at(
                    format!("models[{i}]"),
                    "names a model another entry names already",
                ));
            }
        }
        Ok(())
    }
}

/// The models a stored connection's config lists (what routing reads; the config was
/// checked when the connection was made, so unreadable entries are simply skipped).
pub fn models_of(config: &ConnectionConfig) -> Vec<ModelEntry> {
    config
        .get("models")
        .and_then(Value::as_array)
        .map(|list| {
            list.iter()
                .filter_map(|m| serde_json::from_value(m.clone()).ok())
                .collect()
        })
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn names_and_aliases_are_read_and_checked() {
        let models: Models = serde_json::from_value(
            json!(["gpt-4o-mini", {"name": "fast", "upstream": "gpt-4o-mini"}]),
        )
        .unwrap();
        models.check().unwrap();
        assert_eq!(models.0[1].name(), "fast");
        assert_eq!(models.0[1].upstream(), "gpt-4o-mini");
        for (bad, path) in [
            (json!([]), "models"),
            (json!([""]), "models[0].name"),
            (json!(["a", "a"]), "models[1]"),
            (
                json!([{"name": "x", "upstream": "a\nb"}]),
                "models[0].upstream",
            ),
        ] {
            let models: Models = serde_json::from_value(bad).unwrap();
            assert_eq!(models.check().unwrap_err().path, path);
        }
        let Value::Object(config) = json!({"models": ["a", 7, {"name": "b", "upstream": "c"}]})
        else {
            unreachable!()
        };
        let read: Vec<String> = models_of(&config)
            .iter()
            .map(|m| m.name().to_owned())
            .collect();
        assert_eq!(read, ["a", "b"]);
    }
}
