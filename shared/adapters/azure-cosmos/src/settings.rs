//! Which Cosmos DB account and database the settings name, and how to authenticate to it.
//!
//! The names are the ones `app_host::adapters` chooses the backend by (and the Bicep writes):
//!
//! - [`ENDPOINT_SETTING`] (`CosmosDbConnection__accountEndpoint`, the Functions
//!   identity-based convention) chooses the account with Entra ID: managed identity in Azure
//!   (or when [`CREDENTIAL_SETTING`] / [`CLIENT_ID_SETTING`] ask for it), developer tools
//!   (`az login`, `azd auth login`) elsewhere.
//! - [`CONNECTION_SETTING`] (`CosmosDbConnection`) is a connection string
//!   `AccountEndpoint=https://…;AccountKey=…;` for local stand-ins. Azure accounts have key
//!   auth disabled (`disableLocalAuth` in the Bicep), so this form is for local use only, and
//!   it needs this crate's `key_auth` feature (on by default).
//! - [`DATABASE_SETTING`] (`COSMOS_DATABASE`) names the database; [`DEFAULT_DATABASE`]
//!   otherwise.
//!
//! The endpoint setting wins when both are set, as the identity-based form does everywhere
//! else in the platform. Neither set means "not configured" (`Ok(None)`), so the host keeps
//! the embedded default.

use std::collections::BTreeMap;
use std::fmt;
use std::sync::Arc;

use azure_core::credentials::{Secret, TokenCredential};
use azure_credential::value;
use base64::Engine as _;

use crate::Error;

/// Setting: a Cosmos DB connection string (local stand-ins only; Azure uses the endpoint).
pub const CONNECTION_SETTING: &str = "CosmosDbConnection";
/// Setting: the account endpoint (`https://<account>.documents.azure.com:443/`), reached
/// with Entra ID.
pub const ENDPOINT_SETTING: &str = "CosmosDbConnection__accountEndpoint";
/// Setting (optional, Functions convention): `managedidentity` forces managed identity.
pub const CREDENTIAL_SETTING: &str = "CosmosDbConnection__credential";
/// Setting (optional, Functions convention): the client id of a user-assigned identity.
pub const CLIENT_ID_SETTING: &str = "CosmosDbConnection__clientId";
/// Setting: the database that holds every app's containers.
pub const DATABASE_SETTING: &str = "COSMOS_DATABASE";
/// The database when [`DATABASE_SETTING`] is not set (the Bicep creates this one).
pub const DEFAULT_DATABASE: &str = "integration";

/// Where the documents are and how to get in, as the settings say.
#[derive(Clone)]
pub struct CosmosConfig {
    endpoint: String,
    database: String,
    auth: Auth,
}

#[derive(Clone)]
pub(crate) enum Auth {
    /// Entra ID through azure_identity: managed identity or developer tools.
    Identity {
        managed: bool,
        client_id: Option<String>,
    },
    /// A shared account key from a connection string. `Secret` redacts itself in `Debug`.
    Key(Secret),
}

impl fmt::Debug for CosmosConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Never the key: only which kind of credential is configured.
        let auth = match &self.auth {
            Auth::Identity { managed: true, .. } => "managed identity",
            Auth::Identity { managed: false, .. } => "developer tools",
            Auth::Key(_) => "account key",
        };
        f.debug_struct("CosmosConfig")
            .field("endpoint", &self.endpoint)
            .field("database", &self.database)
            .field("auth", &auth)
            .finish()
    }
}

impl CosmosConfig {
    /// Reads the settings; `Ok(None)` when neither the endpoint nor a connection string is
    /// set. Errors name the setting and never repeat a key.
    pub fn from_settings(settings: &BTreeMap<String, String>) -> Result<Option<Self>, Error> {
        let database = match value(settings, DATABASE_SETTING) {
            Some(name) => {
                validate_database(name).map_err(|reason| Error::Setting {
                    setting: DATABASE_SETTING,
                    reason,
                })?;
                name.to_owned()
            }
            None => DEFAULT_DATABASE.to_owned(),
        };
        if let Some(endpoint) = value(settings, ENDPOINT_SETTING) {
            let endpoint = parse_endpoint(endpoint).map_err(|reason| Error::Setting {
                setting: ENDPOINT_SETTING,
                reason,
            })?;
            let (managed, client_id) = match azure_credential::Choice::from_settings(
                settings,
                CREDENTIAL_SETTING,
                CLIENT_ID_SETTING,
            ) {
                azure_credential::Choice::Managed { client_id } => (true, client_id),
                azure_credential::Choice::DeveloperTools => (false, None),
            };
            return Ok(Some(CosmosConfig {
                endpoint,
                database,
                auth: Auth::Identity { managed, client_id },
            }));
        }
        if let Some(connection) = value(settings, CONNECTION_SETTING) {
            let (endpoint, key) =
                parse_connection_string(connection).map_err(|reason| Error::Setting {
                    setting: CONNECTION_SETTING,
                    reason,
                })?;
            return Ok(Some(CosmosConfig {
                endpoint,
                database,
                auth: Auth::Key(key),
            }));
        }
        Ok(None)
    }

    /// The account endpoint, for messages (it holds no secret).
    pub fn endpoint(&self) -> &str {
        &self.endpoint
    }

    pub fn database(&self) -> &str {
        &self.database
    }

    /// Whether the account is reached with an account key (the stand-in form).
    pub fn uses_account_key(&self) -> bool {
        matches!(self.auth, Auth::Key(_))
    }

    pub(crate) fn auth(&self) -> &Auth {
        &self.auth
    }
}

/// Managed identity when the app has one (or the settings ask for it), developer tools
/// otherwise. There is no "try everything" chain on purpose: in Azure a missing identity
/// must fail loudly rather than fall through to a developer's credentials.
pub(crate) fn token_credential(
    managed: bool,
    client_id: Option<&str>,
) -> Result<Arc<dyn TokenCredential>, Error> {
    let choice = if managed {
        azure_credential::Choice::Managed {
            client_id: client_id.map(str::to_owned),
        }
    } else {
        azure_credential::Choice::DeveloperTools
    };
    choice.credential().map_err(|e| Error::Credential {
        kind: e.kind,
        reason: e.reason,
    })
}

/// An https URL with a host, normalised to end with `/` (the SDK resolves paths against it).
fn parse_endpoint(text: &str) -> Result<String, String> {
    let url = azure_core::http::Url::parse(text)
        .map_err(|e| format!("the endpoint is not a URL ({e})"))?;
    if url.scheme() != "https" {
        // The SDK refuses plain http for anything but an emulator host, and the stand-in
        // advertises https anyway: say so here rather than at the first request.
        return Err("the endpoint must be an https URL".to_owned());
    }
    if url.host_str().is_none_or(str::is_empty) {
        return Err("the endpoint has no host".to_owned());
    }
    if url.query().is_some() || url.fragment().is_some() {
        return Err("the endpoint must not carry a query or a fragment".to_owned());
    }
    let mut text = url.to_string();
    if !text.ends_with('/') {
        text.push('/');
    }
    Ok(text)
}

/// `AccountEndpoint=…;AccountKey=…;` (names case-insensitive, any order, other parts such
/// as `Database=` ignored). Messages never contain the key.
fn parse_connection_string(text: &str) -> Result<(String, Secret), String> {
    let mut endpoint = None;
    let mut key = None;
    for part in text.split(';').map(str::trim).filter(|p| !p.is_empty()) {
        // Split at the first '=' only: a base64 key ends in '=' padding.
        let Some((name, value)) = part.split_once('=') else {
            return Err("a part of the connection string is not `Name=value`".to_owned());
        };
        match name.trim().to_ascii_lowercase().as_str() {
            "accountendpoint" => endpoint = Some(value.trim()),
            "accountkey" => key = Some(value.trim()),
            _ => {}
        }
    }
    let endpoint = endpoint
        .filter(|e| !e.is_empty())
        .ok_or("the connection string has no AccountEndpoint")?;
    let endpoint = parse_endpoint(endpoint)?;
    let key = key
        .filter(|k| !k.is_empty())
        .ok_or("the connection string has no AccountKey")?;
    // Requests are signed with the base64-decoded key; a key that does not decode would only
    // fail at the first request, far from the setting that holds it.
    if base64::engine::general_purpose::STANDARD
        .decode(key)
        .is_err()
    {
        return Err("the AccountKey is not base64".to_owned());
    }
    Ok((endpoint, Secret::new(key.to_owned())))
}

/// Cosmos database ids: 1-255 characters, none of `/ \ ? #`, no trailing space.
fn validate_database(name: &str) -> Result<(), String> {
    if name.len() > 255 || name.contains(['/', '\\', '?', '#']) || name.ends_with(' ') {
        return Err("a database name is 1-255 characters without '/', '\\', '?' or '#'".to_owned());
    }
    Ok(())
}

#[cfg(test)]
mod tests;
