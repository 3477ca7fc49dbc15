//! The store the settings choose (names shared with the host and the Bicep).
//!
//! - [`BLOB_SERVICE_URI`] (`BlobStorageConnection__blobServiceUri`, the Functions convention
//!   for identity-based connections) chooses Entra ID: managed identity in Azure (or when
//!   [`CREDENTIAL_SETTING`] is `managedidentity`, or [`CLIENT_ID_SETTING`] names a
//!   user-assigned identity), developer tools (`az login`, `azd auth login`) elsewhere.
//! - [`BLOB_CONNECTION`] (`BlobStorageConnection`) is a storage connection string, for local
//!   stand-ins: `UseDevelopmentStorage=true`, or `AccountName`/`AccountKey` with a
//!   `BlobEndpoint` (or `DefaultEndpointsProtocol` and `EndpointSuffix`), or a
//!   `SharedAccessSignature` with a `BlobEndpoint`.
//!
//! The identity form wins when both are set, as everywhere else in the platform.

use std::collections::BTreeMap;
use std::sync::Arc;

use azure_core::credentials::TokenCredential;
use azure_credential::value;

use crate::{AccountKey, AzureBlobStore, Credential, Error, Options, SasToken};

/// Setting: the Blob service endpoint of the data storage account, reached with Entra ID.
pub const BLOB_SERVICE_URI: &str = "BlobStorageConnection__blobServiceUri";
/// Setting: a storage connection string (local stand-ins only, such as Azurite).
pub const BLOB_CONNECTION: &str = "BlobStorageConnection";
/// Setting (optional, Functions convention): `managedidentity` forces managed identity.
pub const CREDENTIAL_SETTING: &str = "BlobStorageConnection__credential";
/// Setting (optional, Functions convention): the client id of a user-assigned identity.
pub const CLIENT_ID_SETTING: &str = "BlobStorageConnection__clientId";

/// Azurite's account, as `UseDevelopmentStorage=true` means.
pub const DEV_ACCOUNT: &str = "devstoreaccount1";
/// Azurite's well-known, published account key (the same in every installation).
pub const DEV_ACCOUNT_KEY: &str =
    "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw==";
/// Azurite's default Blob endpoint.
const DEV_BLOB_ENDPOINT: &str = "http://127.0.0.1:10000/devstoreaccount1";

impl AzureBlobStore {
    /// The store the settings choose, or `None` when they choose none (the embedded default).
    pub fn from_settings(
        settings: &BTreeMap<String, String>,
    ) -> Result<Option<AzureBlobStore>, Error> {
        Self::from_settings_with(settings, Options::default(), None)
    }

    /// [`AzureBlobStore::from_settings`] with options, and a credential to use instead of the
    /// one the identity form would create (for tests, or a host that shares one).
    pub fn from_settings_with(
        settings: &BTreeMap<String, String>,
        options: Options,
        credential: Option<Arc<dyn TokenCredential>>,
    ) -> Result<Option<AzureBlobStore>, Error> {
        if let Some(uri) = value(settings, BLOB_SERVICE_URI) {
            let credential = match credential {
                Some(c) => c,
                None => identity(settings)?,
            };
            let store = AzureBlobStore::new(uri, Credential::Token(credential), options)
                .map_err(|e| in_setting(BLOB_SERVICE_URI, e))?;
            tracing::info!(
                endpoint = store.endpoint(),
                "blobs: Blob Storage with Entra ID"
            );
            return Ok(Some(store));
        }
        if let Some(connection) = value(settings, BLOB_CONNECTION) {
            let (endpoint, credential) = parse_connection_string(connection)?;
            let kind = credential.kind();
            let store = AzureBlobStore::new(&endpoint, credential, options)
                .map_err(|e| in_setting(BLOB_CONNECTION, e))?;
            tracing::info!(
                endpoint = store.endpoint(),
                credential = kind,
                "blobs: a Blob Storage stand-in with a connection string"
            );
            return Ok(Some(store));
        }
        Ok(None)
    }
}

fn in_setting(setting: &'static str, e: Error) -> Error {
    match e {
        Error::Endpoint { endpoint, reason } => Error::Setting {
            setting,
            reason: format!("{endpoint}: {reason}"),
        },
        other => other,
    }
}

/// Managed identity when the app has one (or the settings ask for it), developer tools
/// otherwise. No "try everything" chain on purpose: in Azure a missing identity must fail
/// loudly rather than fall through to someone's developer credentials.
fn identity(settings: &BTreeMap<String, String>) -> Result<Arc<dyn TokenCredential>, Error> {
    azure_credential::Choice::from_settings(settings, CREDENTIAL_SETTING, CLIENT_ID_SETTING)
        .credential()
        .map_err(|e| Error::Credential {
            kind: e.kind,
            reason: e.reason,
        })
}

/// The Blob endpoint and credential of a storage connection string. Errors name the setting
/// and the missing or bad part, never a value.
pub(crate) fn parse_connection_string(text: &str) -> Result<(String, Credential), Error> {
    let bad = |reason: &str| Error::Setting {
        setting: BLOB_CONNECTION,
        reason: reason.to_owned(),
    };
    let mut parts: BTreeMap<String, &str> = BTreeMap::new();
    for part in text.split(';').map(str::trim).filter(|p| !p.is_empty()) {
        let Some((key, value)) = part.split_once('=') else {
            return Err(bad(
                "every part of the connection string must be Name=Value",
            ));
        };
        parts.insert(key.trim().to_ascii_lowercase(), value.trim());
    }
    let get = |k: &str| parts.get(k).copied().filter(|v| !v.is_empty());

    if get("usedevelopmentstorage").is_some_and(|v| v.eq_ignore_ascii_case("true")) {
        let endpoint = get("developmentstorageproxyuri")
            .map(|proxy| format!("{}/{DEV_ACCOUNT}", proxy.trim_end_matches('/')))
            .unwrap_or_else(|| DEV_BLOB_ENDPOINT.to_owned());
        let key = AccountKey::from_base64(DEV_ACCOUNT_KEY).map_err(bad)?;
        return Ok((
            endpoint,
            Credential::AccountKey {
                account: DEV_ACCOUNT.to_owned(),
                key,
            },
        ));
    }

    let account = get("accountname");
    let endpoint = match (get("blobendpoint"), account) {
        (Some(endpoint), _) => endpoint.trim_end_matches('/').to_owned(),
        (None, Some(account)) => {
            let protocol = get("defaultendpointsprotocol").unwrap_or("https");
            let suffix = get("endpointsuffix").unwrap_or("core.windows.net");
            format!("{protocol}://{account}.blob.{suffix}")
        }
        (None, None) => return Err(bad("it names neither a BlobEndpoint nor an AccountName")),
    };
    if let Some(sas) = get("sharedaccesssignature") {
        return Ok((endpoint, Credential::Sas(SasToken::new(sas))));
    }
    match (account, get("accountkey")) {
        (Some(account), Some(key)) => Ok((
            endpoint,
            Credential::AccountKey {
                account: account.to_owned(),
                key: AccountKey::from_base64(key).map_err(bad)?,
            },
        )),
        (None, Some(_)) => Err(bad("an AccountKey needs its AccountName")),
        _ => Err(bad(
            "it has no credential: give AccountName and AccountKey, or SharedAccessSignature",
        )),
    }
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
    fn nothing_set_chooses_nothing() {
        let s = settings(&[
            (BLOB_SERVICE_URI, "  "),
            ("AzureWebJobsStorage", "UseDevelopmentStorage=true"),
        ]);
        assert!(AzureBlobStore::from_settings(&s).unwrap().is_none());
    }

    #[test]
    fn the_identity_form_wins_and_uses_entra() {
        let s = settings(&[
            (BLOB_SERVICE_URI, "https://acct.blob.core.windows.net/"),
            (CREDENTIAL_SETTING, "managedidentity"),
            (BLOB_CONNECTION, "UseDevelopmentStorage=true"),
        ]);
        let store = AzureBlobStore::from_settings(&s).unwrap().unwrap();
        assert_eq!(store.endpoint(), "https://acct.blob.core.windows.net/");
        assert!(format!("{store:?}").contains("entra-id"));
        let err = AzureBlobStore::from_settings(&settings(&[
            (BLOB_SERVICE_URI, "http://acct.blob.core.windows.net"),
            (CREDENTIAL_SETTING, "managedidentity"),
        ]))
        .unwrap_err()
        .to_string();
        assert!(
            err.contains(BLOB_SERVICE_URI) && err.contains("https"),
            "{err}"
        );
    }

    #[test]
    fn connection_strings_choose_an_endpoint_and_a_key_or_sas() {
        let (endpoint, credential) = parse_connection_string("UseDevelopmentStorage=true").unwrap();
        assert_eq!(endpoint, "http://127.0.0.1:10000/devstoreaccount1");
        assert!(
            matches!(credential, Credential::AccountKey { account, .. } if account == DEV_ACCOUNT)
        );

        let (endpoint, credential) = parse_connection_string(
            "DefaultEndpointsProtocol=https;AccountName=acct;AccountKey=a2V5;EndpointSuffix=core.windows.net",
        )
        .unwrap();
        assert_eq!(endpoint, "https://acct.blob.core.windows.net");
        assert!(matches!(credential, Credential::AccountKey { .. }));

        let (endpoint, credential) = parse_connection_string(
            "BlobEndpoint=https://127.0.0.1:10000/devstoreaccount1/;SharedAccessSignature=sv=1&sig=S",
        )
        .unwrap();
        assert_eq!(endpoint, "https://127.0.0.1:10000/devstoreaccount1");
        assert!(matches!(credential, Credential::Sas(_)));
    }

    #[test]
    fn bad_connection_strings_are_named_and_never_echo_keys() {
        for text in [
            "AccountName=acct;AccountKey=not*base64*SECRET",
            "BlobEndpoint=https://x;AccountKey=U0VDUkVU",
            "BlobEndpoint=https://x",
            "just SECRET text",
            "AccountKey=U0VDUkVU",
        ] {
            let err = parse_connection_string(text).unwrap_err().to_string();
            assert!(err.contains(BLOB_CONNECTION), "{err}");
            assert!(
                !err.contains("SECRET") && !err.contains("U0VDUkVU"),
                "{err}"
            );
        }
        let err = AzureBlobStore::from_settings(&settings(&[(
            BLOB_CONNECTION,
            "BlobEndpoint=ftp://x/;AccountName=a;AccountKey=U0VDUkVU",
        )]))
        .unwrap_err()
        .to_string();
        assert!(
            err.contains(BLOB_CONNECTION) && !err.contains("U0VDUkVU"),
            "{err}"
        );
    }
}
