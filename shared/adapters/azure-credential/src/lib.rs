//! The token credential of an Azure adapter, chosen from its connection's settings (the
//! Functions convention `<Connection>__credential` / `<Connection>__clientId`): managed
//! identity when the app has one (`IDENTITY_ENDPOINT`, set by App Service and Functions) or
//! the settings ask for it, developer tools (`az login`, `azd auth login`) otherwise.
//!
//! There is no "try everything" chain on purpose: in Azure a missing identity must fail
//! loudly rather than fall through to someone's developer credentials.
//!
//! [`retry`] is the other thing the adapters share: when to try a call again, and the
//! service's own wait hint.

pub mod retry;

use std::collections::BTreeMap;
use std::sync::Arc;

use azure_core::credentials::TokenCredential;
use azure_identity::{
    DeveloperToolsCredential, ManagedIdentityCredential, ManagedIdentityCredentialOptions,
    UserAssignedId,
};

/// Set by App Service and Functions when the app has a managed identity.
pub const IDENTITY_ENDPOINT: &str = "IDENTITY_ENDPOINT";

/// A setting's value, trimmed; blank counts as absent.
pub fn value<'a>(settings: &'a BTreeMap<String, String>, name: &str) -> Option<&'a str> {
    settings
        .get(name)
        .map(|v| v.trim())
        .filter(|v| !v.is_empty())
}

/// Which credential a connection uses.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Choice {
    /// Managed identity; a user-assigned one when its client id is given.
    Managed { client_id: Option<String> },
    /// The developer's own login.
    DeveloperTools,
}

impl Choice {
    /// The choice for the connection whose settings are `credential_setting`
    /// (`managedidentity` forces managed identity) and `client_id_setting`.
    pub fn from_settings(
        settings: &BTreeMap<String, String>,
        credential_setting: &str,
        client_id_setting: &str,
    ) -> Choice {
        let client_id = value(settings, client_id_setting).map(str::to_owned);
        let managed = value(settings, credential_setting)
            .is_some_and(|v| v.eq_ignore_ascii_case("managedidentity"))
            || client_id.is_some()
            || value(settings, IDENTITY_ENDPOINT).is_some();
        if managed {
            Choice::Managed { client_id }
        } else {
            Choice::DeveloperTools
        }
    }

    /// The credential. Fails with the kind of credential and why.
    pub fn credential(&self) -> Result<Arc<dyn TokenCredential>, CredentialError> {
        match self {
            Choice::Managed { client_id } => {
                let options = ManagedIdentityCredentialOptions {
                    user_assigned_id: client_id
                        .as_ref()
                        .map(|id| UserAssignedId::ClientId(id.clone())),
                    ..Default::default()
                };
                let credential: Arc<dyn TokenCredential> =
                    ManagedIdentityCredential::new(Some(options)).map_err(|e| CredentialError {
                        kind: "managed identity",
                        reason: e.to_string(),
                    })?;
                Ok(credential)
            }
            Choice::DeveloperTools => {
                let credential: Arc<dyn TokenCredential> = DeveloperToolsCredential::new(None)
                    .map_err(|e| CredentialError {
                        kind: "developer tools",
                        reason: e.to_string(),
                    })?;
                Ok(credential)
            }
        }
    }
}

/// A credential that could not be made.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CredentialError {
    pub kind: &'static str,
    pub reason: String,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    #[test]
    fn the_settings_choose_the_credential() {
        let choose = |pairs: &[(&str, &str)]| {
            Choice::from_settings(&settings(pairs), "C__credential", "C__clientId")
        };
        assert_eq!(choose(&[]), Choice::DeveloperTools);
        assert_eq!(choose(&[("C__credential", " ")]), Choice::DeveloperTools);
        assert_eq!(
            choose(&[("C__credential", "ManagedIdentity")]),
            Choice::Managed { client_id: None }
        );
        assert_eq!(
            choose(&[("C__clientId", "id-1")]),
            Choice::Managed {
                client_id: Some("id-1".into())
            }
        );
        assert_eq!(
            choose(&[(IDENTITY_ENDPOINT, "http://169.254.129.1:8081/msi/token")]),
            Choice::Managed { client_id: None }
        );
        // Another connection's settings do not count.
        assert_eq!(choose(&[("D__clientId", "id-2")]), Choice::DeveloperTools);
    }

    #[test]
    fn both_credentials_can_be_made() {
        assert!(Choice::DeveloperTools.credential().is_ok());
        assert!(
            Choice::Managed {
                client_id: Some("00000000-0000-0000-0000-000000000001".into())
            }
            .credential()
            .is_ok()
        );
    }
}
