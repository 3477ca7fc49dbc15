//! The secret fields of a credential, by kind.

use std::collections::BTreeMap;

use domain::CredentialKind;
use secrecy::{ExposeSecret, SecretString};
use serde_json::{Map, Value};

#[derive(Debug, Clone, thiserror::Error, PartialEq)]
pub enum MaterialError {
    #[error("a {kind} credential needs {field:?}")]
    Missing {
        kind: &'static str,
        field: &'static str,
    },
    #[error("{field:?} is not a field of a {kind} credential")]
    Unknown { kind: &'static str, field: String },
    #[error("{field:?} must be a non-empty string")]
    NotAString { field: String },
    #[error("the stored secret is not readable as a {kind} credential")]
    Corrupt { kind: &'static str },
}

/// Required and optional fields per kind.
fn schema(
    kind: CredentialKind,
) -> (
    &'static str,
    &'static [&'static str],
    &'static [&'static str],
) {
    match kind {
        CredentialKind::ApiKey => ("apiKey", &["apiKey"], &[]),
        // Some vendors sign in with a user and also a developer key and a remembered
        // MFA device (BILL: `apiKey` is its `devKey`).
        CredentialKind::Basic => (
            "basic",
            &["username", "password"],
            &["apiKey", "rememberMeId"],
        ),
        CredentialKind::Oauth2ClientCredentials => (
            "oauth2ClientCredentials",
            &["clientId", "clientSecret", "tokenUrl"],
            &["scope", "audience"],
        ),
        CredentialKind::Oauth2RefreshToken => (
            "oauth2RefreshToken",
            &["clientId", "refreshToken", "tokenUrl"],
            // The access token the registry's last refresh grant returned, for vendors whose
            // refresh tokens rotate on use (apps read it instead of refreshing themselves).
            &[
                "clientSecret",
                "scope",
                "accessToken",
                "accessTokenExpiresAt",
            ],
        ),
        CredentialKind::GithubApp => ("githubApp", &["appId", "privateKey"], &["installationId"]),
        CredentialKind::HmacSecret => ("hmacSecret", &["secret"], &[]),
        CredentialKind::BearerToken => ("bearerToken", &["token"], &[]),
        // Nothing secret: the identity is the platform's own.
        CredentialKind::ManagedIdentity => ("managedIdentity", &[], &["clientId"]),
    }
}

/// The secret fields of one credential. `Debug` shows the field names, never the values.
#[derive(Clone)]
pub struct SecretMaterial {
    kind: CredentialKind,
    fields: BTreeMap<String, SecretString>,
}

impl std::fmt::Debug for SecretMaterial {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SecretMaterial")
            .field("kind", &self.kind)
            .field("fields", &self.fields.keys().collect::<Vec<_>>())
            .finish()
    }
}

impl SecretMaterial {
    /// Validates the fields a caller gave for `kind`: every required one, nothing unknown,
    /// non-empty strings only.
    pub fn new(kind: CredentialKind, fields: Map<String, Value>) -> Result<Self, MaterialError> {
        let (name, required, optional) = schema(kind);
        let mut out = BTreeMap::new();
        for (k, v) in fields {
            if !required.contains(&k.as_str()) && !optional.contains(&k.as_str()) {
                return Err(MaterialError::Unknown {
                    kind: name,
                    field: k,
                });
            }
            match v {
                Value::String(s) if !s.is_empty() => {
                    out.insert(k, SecretString::from(s));
                }
                _ => return Err(MaterialError::NotAString { field: k }),
            }
        }
        if let Some(missing) = required.iter().find(|r| !out.contains_key(**r)) {
            return Err(MaterialError::Missing {
                kind: name,
                field: missing,
            });
        }
        Ok(SecretMaterial { kind, fields: out })
    }

    pub fn kind(&self) -> CredentialKind {
        self.kind
    }

    pub fn get(&self, field: &str) -> Option<&SecretString> {
        self.fields.get(field)
    }

    /// A copy with one field replaced (a rotated refresh token, say).
    pub fn with(&self, field: &str, value: SecretString) -> Self {
        let mut copy = self.clone();
        copy.fields.insert(field.to_owned(), value);
        copy
    }

    /// The stored form: a JSON object of the fields.
    pub(crate) fn to_secret_json(&self) -> SecretString {
        let map: Map<String, Value> = self
            .fields
            .iter()
            .map(|(k, v)| (k.clone(), Value::String(v.expose_secret().to_owned())))
            .collect();
        SecretString::from(Value::Object(map).to_string())
    }

    pub(crate) fn from_secret_json(
        kind: CredentialKind,
        text: &SecretString,
    ) -> Result<Self, MaterialError> {
        let corrupt = || MaterialError::Corrupt {
            kind: schema(kind).0,
        };
        match serde_json::from_str::<Value>(text.expose_secret()) {
            Ok(Value::Object(m)) => SecretMaterial::new(kind, m).map_err(|_| corrupt()),
            _ => Err(corrupt()),
        }
    }

    /// Every secret value, for scrubbing text that might contain one.
    pub fn values(&self) -> impl Iterator<Item = &str> {
        self.fields.values().map(|v| v.expose_secret())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn fields(v: Value) -> Map<String, Value> {
        v.as_object().cloned().unwrap()
    }

    #[test]
    fn kinds_require_their_fields_and_refuse_others() {
        let ok = SecretMaterial::new(
            CredentialKind::Basic,
            fields(json!({"username": "u", "password": "p"})),
        )
        .unwrap();
        assert_eq!(ok.get("password").unwrap().expose_secret(), "p");
        assert_eq!(
            SecretMaterial::new(CredentialKind::Basic, fields(json!({"username": "u"})))
                .unwrap_err(),
            MaterialError::Missing {
                kind: "basic",
                field: "password"
            }
        );
        assert!(matches!(
            SecretMaterial::new(
                CredentialKind::ApiKey,
                fields(json!({"apiKey": "k", "extra": "x"}))
            ),
            Err(MaterialError::Unknown { .. })
        ));
        assert!(matches!(
            SecretMaterial::new(CredentialKind::ApiKey, fields(json!({"apiKey": 5}))),
            Err(MaterialError::NotAString { .. })
        ));
        assert!(matches!(
            SecretMaterial::new(CredentialKind::ApiKey, fields(json!({"apiKey": ""}))),
            Err(MaterialError::NotAString { .. })
        ));
        SecretMaterial::new(
            CredentialKind::Oauth2RefreshToken,
            fields(json!({"clientId": "c", "refreshToken": "r", "tokenUrl": "https://x/token", "scope": "s"})),
        )
        .unwrap();
    }

    #[test]
    fn debug_never_shows_values_and_the_stored_form_round_trips() {
        let m = SecretMaterial::new(
            CredentialKind::ApiKey,
            fields(json!({"apiKey": "sk-very-secret"})),
        )
        .unwrap();
        assert!(!format!("{m:?}").contains("sk-very-secret"));
        let back =
            SecretMaterial::from_secret_json(CredentialKind::ApiKey, &m.to_secret_json()).unwrap();
        assert_eq!(
            back.get("apiKey").unwrap().expose_secret(),
            "sk-very-secret"
        );
        assert!(
            SecretMaterial::from_secret_json(CredentialKind::Basic, &m.to_secret_json()).is_err()
        );
        let e = SecretMaterial::from_secret_json(
            CredentialKind::ApiKey,
            &SecretString::from("not json sk-x".to_owned()),
        )
        .unwrap_err();
        assert!(
            !e.to_string().contains("sk-x"),
            "errors never quote the stored text"
        );
    }
}
