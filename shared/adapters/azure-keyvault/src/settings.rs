//! The store the settings choose: [`VAULT_URI_SETTING`] (`KeyVaultConnection__vaultUri`, the
//! Functions convention the Bicep writes) chooses Key Vault, reached with managed identity in
//! Azure and developer tools (`az login`, `azd auth login`) elsewhere. Key Vault has no key
//! auth, so there is no connection-string form.

use std::collections::BTreeMap;
use std::sync::Arc;

use azure_core::credentials::TokenCredential;
use azure_credential::value;

use crate::{Error, KeyVaultSecretStore, StoreOptions};

/// Setting: the vault URI (`https://<vault>.vault.azure.net/`).
pub const VAULT_URI_SETTING: &str = "KeyVaultConnection__vaultUri";
/// Setting (optional, Functions convention): `managedidentity` forces managed identity.
pub const CREDENTIAL_SETTING: &str = "KeyVaultConnection__credential";
/// Setting (optional, Functions convention): the client id of a user-assigned identity.
pub const CLIENT_ID_SETTING: &str = "KeyVaultConnection__clientId";

pub(crate) fn from_settings(
    settings: &BTreeMap<String, String>,
    mut options: StoreOptions,
) -> Result<Option<KeyVaultSecretStore>, Error> {
    let Some(vault_uri) = value(settings, VAULT_URI_SETTING) else {
        return Ok(None);
    };
    let credential = match options.credential.take() {
        Some(credential) => credential,
        None => credential(settings)?,
    };
    let store = KeyVaultSecretStore::new(vault_uri, credential, options).map_err(|e| match e {
        Error::VaultUrl { reason } => Error::Setting {
            setting: VAULT_URI_SETTING,
            reason,
        },
        other => other,
    })?;
    tracing::info!(
        vault = store.vault_url(),
        "secrets: Key Vault with Entra ID"
    );
    Ok(Some(store))
}

/// Managed identity when the app has one (or the settings ask for it), developer tools
/// otherwise. No "try everything" chain: in Azure a missing identity must fail loudly
/// rather than fall through to other credentials.
fn credential(settings: &BTreeMap<String, String>) -> Result<Arc<dyn TokenCredential>, Error> {
    azure_credential::Choice::from_settings(settings, CREDENTIAL_SETTING, CLIENT_ID_SETTING)
        .credential()
        .map_err(|e| Error::Credential {
            kind: e.kind,
            reason: e.reason,
        })
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
    fn no_vault_uri_chooses_nothing() {
        assert!(
            KeyVaultSecretStore::from_settings(&settings(&[(VAULT_URI_SETTING, " ")]))
                .unwrap()
                .is_none()
        );
    }

    #[test]
    fn a_vault_uri_chooses_key_vault_with_either_credential() {
        for extra in [
            (CREDENTIAL_SETTING, "managedidentity"),
            (CLIENT_ID_SETTING, "00000000-0000-0000-0000-000000000001"),
            ("UNRELATED", "x"),
        ] {
            let store = KeyVaultSecretStore::from_settings(&settings(&[
                (VAULT_URI_SETTING, "https://kv-dev.vault.azure.net/"),
                extra,
            ]))
            .unwrap()
            .unwrap();
            assert_eq!(store.vault_url(), "https://kv-dev.vault.azure.net/");
        }
    }

    #[test]
    fn a_bad_vault_uri_is_named() {
        for bad in [
            "http://kv.vault.azure.net/",
            "kv.vault.azure.net",
            "https://",
        ] {
            let err = KeyVaultSecretStore::from_settings(&settings(&[(VAULT_URI_SETTING, bad)]))
                .unwrap_err()
                .to_string();
            assert!(err.contains(VAULT_URI_SETTING), "{bad}: {err}");
        }
    }
}
