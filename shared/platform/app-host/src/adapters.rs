//! Which adapter backs each port, chosen by settings alone, and the one place that opens the
//! embedded default (the local runner opens it through here too).
//!
//! A port is backed by an Azure service when its endpoint setting is present: the
//! identity-based form (`<Connection>__accountEndpoint`, `__fullyQualifiedNamespace`,
//! `__blobServiceUri`, `__vaultUri`: the Functions convention, so one name serves the host's
//! bindings and our adapters) or, for local stand-ins, a connection string. Otherwise it is
//! backed by the embedded default in a data folder. The Bicep writes exactly these names.

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use app_context::AppContext;
use embedded::{
    Durability, EncryptedSecretStore, SqliteBlobStore, SqliteBroker, SqliteDocumentStore,
};

/// The Service Bus connection of the triggers (`function.json` names it) and of the sender.
pub const SERVICE_BUS_CONNECTION: &str = functions_runtime::declare::SERVICE_BUS_CONNECTION;
/// Setting: the Service Bus namespace host name (`<ns>.servicebus.windows.net`), reached
/// with the app's managed identity.
pub const SERVICE_BUS_NAMESPACE: &str = "ServiceBusConnection__fullyQualifiedNamespace";
/// Setting: a Cosmos DB connection string (local stand-ins only; Azure uses the endpoint).
pub const COSMOS_CONNECTION: &str = "CosmosDbConnection";
/// Setting: the Cosmos DB account endpoint (`https://<account>.documents.azure.com:443/`).
pub const COSMOS_ENDPOINT: &str = "CosmosDbConnection__accountEndpoint";
/// Setting: the Cosmos DB database that holds every app's containers.
pub const COSMOS_DATABASE: &str = "COSMOS_DATABASE";
/// The database when `COSMOS_DATABASE` is not set (the Bicep creates this one).
pub const DEFAULT_COSMOS_DATABASE: &str = "integration";
/// Setting: a Blob Storage connection string (local stand-ins only, such as Azurite).
pub const BLOB_CONNECTION: &str = "BlobStorageConnection";
/// Setting: the Blob service endpoint of the data storage account.
pub const BLOB_SERVICE_URI: &str = "BlobStorageConnection__blobServiceUri";
/// Setting: the Key Vault URI (`https://<vault>.vault.azure.net/`).
pub const KEY_VAULT_URI: &str = "KeyVaultConnection__vaultUri";

/// Setting: a Service Bus connection string (`Endpoint=sb://…;SharedAccessKeyName=…;
/// SharedAccessKey=…`) for a stand-in speaking the REST API; Azure uses the namespace.
pub const SERVICE_BUS_REST_CONNECTION: &str = azure_servicebus::REST_CONNECTION_SETTING;

/// Every setting that can move a port off the embedded default.
pub const AZURE_SETTINGS: [&str; 7] = [
    SERVICE_BUS_NAMESPACE,
    SERVICE_BUS_REST_CONNECTION,
    COSMOS_CONNECTION,
    COSMOS_ENDPOINT,
    BLOB_CONNECTION,
    BLOB_SERVICE_URI,
    KEY_VAULT_URI,
];

/// What backs one port.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Backend {
    /// The embedded default, in the data folder.
    Embedded,
    /// An Azure service (or a local stand-in speaking its protocol).
    Azure {
        /// The setting that chose it.
        setting: &'static str,
        /// Where it is, for messages: an endpoint, never a connection string (those hold keys).
        target: String,
    },
}

impl Backend {
    pub fn is_embedded(&self) -> bool {
        matches!(self, Backend::Embedded)
    }
}

/// The backend of each port, as the settings choose them.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Selection {
    pub documents: Backend,
    pub bus: Backend,
    pub blobs: Backend,
    pub secrets: Backend,
}

impl Selection {
    pub fn from_settings(settings: &BTreeMap<String, String>) -> Selection {
        let value = |name: &str| {
            settings
                .get(name)
                .map(|v| v.trim())
                .filter(|v| !v.is_empty())
        };
        let pick = |identity: &'static str, connection: Option<&'static str>| {
            if let Some(endpoint) = value(identity) {
                return Backend::Azure {
                    setting: identity,
                    target: endpoint.to_owned(),
                };
            }
            match connection {
                Some(name) if value(name).is_some() => Backend::Azure {
                    setting: name,
                    target: "a connection string".to_owned(),
                },
                _ => Backend::Embedded,
            }
        };
        let documents = match pick(COSMOS_ENDPOINT, Some(COSMOS_CONNECTION)) {
            Backend::Azure { setting, target } => Backend::Azure {
                setting,
                target: format!(
                    "{target}, database {}",
                    value(COSMOS_DATABASE).unwrap_or(DEFAULT_COSMOS_DATABASE)
                ),
            },
            embedded => embedded,
        };
        Selection {
            documents,
            // Only the namespace setting chooses Service Bus for sending. A plain
            // `ServiceBusConnection` is what Core Tools gives the host's triggers, often a
            // connection string to the Docker-only emulator, which speaks AMQP only; the
            // sender speaks the REST API, so that string does not choose it.
            bus: pick(SERVICE_BUS_NAMESPACE, Some(SERVICE_BUS_REST_CONNECTION)),
            blobs: pick(BLOB_SERVICE_URI, Some(BLOB_CONNECTION)),
            secrets: pick(KEY_VAULT_URI, None),
        }
    }

    fn ports(&self) -> [(&'static str, &'static str, &Backend); 4] {
        [
            ("documents", "Cosmos DB", &self.documents),
            ("bus", "Service Bus", &self.bus),
            ("blobs", "Blob Storage", &self.blobs),
            ("secrets", "Key Vault", &self.secrets),
        ]
    }

    /// Whether any port uses the embedded default (so the data folder is needed).
    pub fn any_embedded(&self) -> bool {
        self.ports().iter().any(|(_, _, b)| b.is_embedded())
    }
}

impl fmt::Display for Selection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut first = true;
        for (port, service, backend) in self.ports() {
            if !first {
                f.write_str(", ")?;
            }
            first = false;
            match backend {
                Backend::Embedded => write!(f, "{port}: embedded")?,
                Backend::Azure { target, .. } => write!(f, "{port}: {service} at {target}")?,
            }
        }
        Ok(())
    }
}

/// The embedded default, opened in one data folder.
pub use app_context::{DEFAULT_PAYLOAD_RETENTION_DAYS, PAYLOAD_RETENTION_SETTING};

/// The payload retention the settings give, in days.
pub fn payload_retention_days(values: &BTreeMap<String, String>) -> anyhow::Result<u32> {
    match values.get(PAYLOAD_RETENTION_SETTING).map(|v| v.trim()) {
        None | Some("") => Ok(DEFAULT_PAYLOAD_RETENTION_DAYS),
        Some(v) => v
            .parse::<u32>()
            .ok()
            .filter(|d| (1..=3650).contains(d))
            .ok_or_else(|| {
                anyhow::anyhow!(
                    "{PAYLOAD_RETENTION_SETTING} must be a whole number of days from 1 to 3650"
                )
            }),
    }
}

impl Embedded {
    /// Deletes the embedded payload blobs once they are older than the retention, hourly, as
    /// the lifecycle rule does in Azure.
    pub fn keep_payloads(&self, days: u32) -> tokio::task::JoinHandle<()> {
        self.blobs.keep_for(
            app_context::PAYLOAD_CONTAINERS
                .iter()
                .map(|c| (*c).to_owned())
                .collect(),
            Duration::from_secs(u64::from(days) * 24 * 3600),
            Duration::from_secs(3600),
        )
    }
}

pub struct Embedded {
    pub documents: Arc<SqliteDocumentStore>,
    /// Both the bus sender of the apps and, in the local runner, the receiver its triggers
    /// consume from.
    pub broker: Arc<SqliteBroker>,
    pub blobs: Arc<SqliteBlobStore>,
    pub secrets: Arc<EncryptedSecretStore>,
}

impl fmt::Debug for Embedded {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Embedded").finish_non_exhaustive()
    }
}

/// Opens (creating what is missing) `documents.db` (the documents and the broker, whose
/// outbox messages are committed with the documents: `embedded::open_combined`), `blobs.db`
/// and the secret store in `data_dir`. A `broker.db` left by an earlier version has its
/// messages imported once and is renamed `broker.db.imported`. A `blobs/` folder left by an earlier version (one file per blob) is
/// imported into `blobs.db` once and renamed `blobs.imported/`.
pub async fn open_embedded(data_dir: &Path) -> anyhow::Result<Embedded> {
    std::fs::create_dir_all(data_dir)
        .with_context(|| format!("cannot create {}", data_dir.display()))?;
    let combined = data_dir.join("documents.db");
    let (documents, broker) = embedded::open_combined(
        &combined,
        Durability::Normal,
        Arc::new(outbox::outbox_message),
    )
    .with_context(|| format!("cannot open the documents in {}", data_dir.display()))?;
    import_broker_file(&combined, &data_dir.join("broker.db"))?;
    let blobs = SqliteBlobStore::open(&data_dir.join("blobs.db"), Durability::Normal)
        .with_context(|| format!("cannot open the blobs in {}", data_dir.display()))?;
    import_blob_folder(&blobs, &data_dir.join("blobs")).await?;
    let secrets = EncryptedSecretStore::open_in(data_dir)
        .with_context(|| format!("cannot open the secrets in {}", data_dir.display()))?;
    Ok(Embedded {
        documents: Arc::new(documents),
        broker: Arc::new(broker),
        blobs: Arc::new(blobs),
        secrets: Arc::new(secrets),
    })
}

/// Moves the messages of an earlier version's `broker.db` into the combined database, then
/// renames the file (and its WAL files, if any) so it is imported once. Cut short between
/// the copy and the rename, the next start copies again: messages are delivered at least
/// once, and consumers key on their ids.
fn import_broker_file(combined: &Path, old: &Path) -> anyhow::Result<()> {
    if !old.is_file() {
        return Ok(());
    }
    let copied = embedded::import_broker(combined, old)
        .with_context(|| format!("cannot import the messages of {}", old.display()))?;
    let done = next_free(old, "broker.db.imported");
    for suffix in ["", "-wal", "-shm"] {
        let from = PathBuf::from(format!("{}{suffix}", old.display()));
        if from.exists() {
            let to = PathBuf::from(format!("{}{suffix}", done.display()));
            std::fs::rename(&from, &to)
                .with_context(|| format!("cannot rename {} after importing it", from.display()))?;
        }
    }
    tracing::info!(copied, file = %done.display(), "imported the messages of an earlier broker database");
    Ok(())
}

/// `name` beside `path`, or the first free `name.N`.
fn next_free(path: &Path, name: &str) -> PathBuf {
    (0..)
        .map(|n| match n {
            0 => path.with_file_name(name),
            n => path.with_file_name(format!("{name}.{n}")),
        })
        .find(|p| !p.exists())
        .unwrap_or_else(|| path.with_file_name(name))
}

/// Moves the blobs of an earlier version's blob folder into the database, then renames the
/// folder so it is imported once. An import cut short is simply done again next time: it
/// never overwrites what is already in the database.
async fn import_blob_folder(blobs: &SqliteBlobStore, folder: &Path) -> anyhow::Result<()> {
    if !folder.is_dir() {
        return Ok(());
    }
    let copied = blobs
        .import_folder(folder)
        .await
        .with_context(|| format!("cannot import the blobs of {}", folder.display()))?;
    // A folder imported before keeps its name: the next free `blobs.imported[.N]`.
    let done = next_free(folder, "blobs.imported");
    std::fs::rename(folder, &done)
        .with_context(|| format!("cannot rename {} after importing it", folder.display()))?;
    tracing::info!(copied, folder = %done.display(), "imported the blobs of an earlier blob folder");
    Ok(())
}

impl Embedded {
    /// The context apps are built with: these ports, `settings`, `authenticator`, and a fresh
    /// outbox waker (give the same context to the outbox publisher).
    pub fn context(
        &self,
        settings: BTreeMap<String, String>,
        authenticator: Arc<dyn auth::Authenticator>,
    ) -> AppContext {
        AppContext {
            documents: self.documents.clone(),
            bus: self.broker.clone(),
            blobs: self.blobs.clone(),
            secrets: self.secrets.clone(),
            authenticator,
            settings: Arc::new(settings),
            outbox_waker: Arc::new(tokio::sync::Notify::new()),
            catalogue: Arc::default(),
        }
    }
}

/// The four ports as the selection chose them, with typed handles on the Azure adapters
/// (their request counters are read by the load harnesses).
#[derive(Clone)]
pub struct Ports {
    pub documents: Arc<dyn ports::DocumentStore>,
    pub bus: Arc<dyn ports::BusSender>,
    pub blobs: Arc<dyn ports::BlobStore>,
    pub secrets: Arc<dyn ports::SecretStore>,
    pub cosmos: Option<Arc<azure_cosmos::CosmosDocumentStore>>,
    pub azure_blobs: Option<Arc<azure_blob::AzureBlobStore>>,
}

impl fmt::Debug for Ports {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Ports").finish_non_exhaustive()
    }
}

impl Ports {
    /// The context apps are built with: these ports, `settings`, `authenticator`, and a fresh
    /// outbox waker (give the same context to the outbox publisher).
    pub fn context(
        &self,
        settings: BTreeMap<String, String>,
        authenticator: Arc<dyn auth::Authenticator>,
    ) -> AppContext {
        AppContext {
            documents: self.documents.clone(),
            bus: self.bus.clone(),
            blobs: self.blobs.clone(),
            secrets: self.secrets.clone(),
            authenticator,
            settings: Arc::new(settings),
            outbox_waker: Arc::new(tokio::sync::Notify::new()),
            catalogue: Arc::default(),
        }
    }
}

/// Opens every port as `selection` says: the Azure adapter from its settings, or the
/// `embedded` default (which must then be given).
pub async fn open_ports(
    selection: &Selection,
    settings: &BTreeMap<String, String>,
    embedded: Option<&Embedded>,
) -> anyhow::Result<Ports> {
    let need = |port: &str| {
        embedded.ok_or_else(|| anyhow::anyhow!("the {port} port needs the embedded default"))
    };
    let (documents, cosmos): (Arc<dyn ports::DocumentStore>, _) =
        if selection.documents.is_embedded() {
            (need("documents")?.documents.clone(), None)
        } else {
            let store = azure_cosmos::CosmosDocumentStore::from_settings(settings)
                .await
                .context("cannot open the Cosmos DB document store")?
                .context("the Cosmos DB settings are incomplete")?;
            let store = Arc::new(store);
            (store.clone(), Some(store))
        };
    let (blobs, azure_blobs): (Arc<dyn ports::BlobStore>, _) = if selection.blobs.is_embedded() {
        (need("blobs")?.blobs.clone(), None)
    } else {
        let store = azure_blob::AzureBlobStore::from_settings(settings)
            .context("cannot open the Blob Storage store")?
            .context("the Blob Storage settings are incomplete")?;
        let store = Arc::new(store);
        (store.clone(), Some(store))
    };
    let bus: Arc<dyn ports::BusSender> = if selection.bus.is_embedded() {
        need("bus")?.broker.clone()
    } else {
        Arc::new(
            azure_servicebus::ServiceBusSender::from_settings(settings)
                .context("cannot open the Service Bus sender")?
                .context("the Service Bus settings are incomplete")?,
        )
    };
    let secrets: Arc<dyn ports::SecretStore> = if selection.secrets.is_embedded() {
        need("secrets")?.secrets.clone()
    } else {
        Arc::new(
            azure_keyvault::KeyVaultSecretStore::from_settings(settings)
                .context("cannot open the Key Vault secret store")?
                .context("the Key Vault settings are incomplete")?,
        )
    };
    Ok(Ports {
        documents,
        bus,
        blobs,
        secrets,
        cosmos,
        azure_blobs,
    })
}

/// Entra ID access tokens when the settings name an issuer (`AUTH_ISSUER`, `AUTH_AUDIENCE`,
/// `AUTH_JWKS_URI`), as in Azure; otherwise local HS256 tokens, whose key `dev_tokens`
/// loads only then (in Azure there is no data folder to keep it in).
pub fn authenticator(
    settings: &BTreeMap<String, String>,
    dev_tokens: impl FnOnce() -> anyhow::Result<auth::DevTokens>,
) -> anyhow::Result<Arc<dyn auth::Authenticator>> {
    if settings.contains_key(auth::entra::SETTING_ISSUER) {
        let config = auth::entra::EntraConfig::from_settings(|k| settings.get(k).cloned())
            .context("the Entra ID settings are incomplete or invalid")?;
        tracing::info!(issuer = %config.issuer, "bearer tokens are Entra ID tokens");
        return Ok(Arc::new(auth::entra::EntraAuthenticator::new(config)?));
    }
    Ok(Arc::new(dev_tokens()?))
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
    fn nothing_set_is_all_embedded() {
        let s = Selection::from_settings(&settings(&[("FUNCTIONS_WORKER_RUNTIME", "Custom")]));
        assert!(s.documents.is_embedded() && s.bus.is_embedded());
        assert!(s.blobs.is_embedded() && s.secrets.is_embedded());
        assert!(s.any_embedded());
    }

    #[test]
    fn the_sample_settings_stay_embedded() {
        // What local.settings.sample.json gives Core Tools: storage for the host and an
        // emulator connection string for the triggers. Neither is one of our ports.
        let s = Selection::from_settings(&settings(&[
            ("AzureWebJobsStorage", "UseDevelopmentStorage=true"),
            (
                SERVICE_BUS_CONNECTION,
                "Endpoint=sb://localhost;SharedAccessKeyName=k;SharedAccessKey=v;UseDevelopmentEmulator=true;",
            ),
        ]));
        assert!(s.documents.is_embedded() && s.bus.is_embedded());
        assert!(s.blobs.is_embedded() && s.secrets.is_embedded());
    }

    #[test]
    fn endpoint_settings_choose_azure_and_are_described_without_keys() {
        let s = Selection::from_settings(&settings(&[
            (COSMOS_ENDPOINT, "https://acct.documents.azure.com:443/"),
            (SERVICE_BUS_NAMESPACE, "ns.servicebus.windows.net"),
            (
                BLOB_CONNECTION,
                "DefaultEndpointsProtocol=http;AccountKey=secret-key",
            ),
            (KEY_VAULT_URI, "   "),
        ]));
        assert_eq!(
            s.documents,
            Backend::Azure {
                setting: COSMOS_ENDPOINT,
                target: "https://acct.documents.azure.com:443/, database integration".into()
            }
        );
        assert!(matches!(
            s.bus,
            Backend::Azure {
                setting: SERVICE_BUS_NAMESPACE,
                ..
            }
        ));
        assert!(matches!(
            s.blobs,
            Backend::Azure {
                setting: BLOB_CONNECTION,
                ..
            }
        ));
        assert!(s.secrets.is_embedded(), "a blank value is no value");
        let described = s.to_string();
        assert!(
            described.contains("ns.servicebus.windows.net"),
            "{described}"
        );
        assert!(described.contains("a connection string"), "{described}");
        assert!(
            !described.contains("secret-key"),
            "connection strings are never echoed: {described}"
        );
        // The REST stand-in's connection string chooses the sender too.
        let rest = Selection::from_settings(&settings(&[(
            SERVICE_BUS_REST_CONNECTION,
            "Endpoint=sb://localhost:5300/;SharedAccessKeyName=k;SharedAccessKey=v",
        )]));
        assert!(!rest.bus.is_embedded());
    }

    #[test]
    fn the_identity_form_wins_and_names_the_database() {
        let s = Selection::from_settings(&settings(&[
            (
                COSMOS_CONNECTION,
                "AccountEndpoint=https://localhost:8081/;AccountKey=k",
            ),
            (COSMOS_ENDPOINT, "https://acct.documents.azure.com:443/"),
            (COSMOS_DATABASE, "platform-dev"),
        ]));
        assert_eq!(
            s.documents,
            Backend::Azure {
                setting: COSMOS_ENDPOINT,
                target: "https://acct.documents.azure.com:443/, database platform-dev".into()
            }
        );
        assert!(
            s.to_string()
                .contains("documents: Cosmos DB at https://acct")
        );
    }

    #[test]
    fn identity_settings_follow_the_functions_convention() {
        // `<connection>__<property>`: the host reads the Service Bus one for the triggers,
        // so the sender must use the very same name.
        assert_eq!(
            SERVICE_BUS_NAMESPACE,
            format!("{SERVICE_BUS_CONNECTION}__fullyQualifiedNamespace")
        );
        assert_eq!(
            COSMOS_ENDPOINT,
            format!("{COSMOS_CONNECTION}__accountEndpoint")
        );
        assert_eq!(
            BLOB_SERVICE_URI,
            format!("{BLOB_CONNECTION}__blobServiceUri")
        );
    }

    #[test]
    fn local_tokens_unless_an_issuer_is_set() {
        let dir = tempfile::tempdir().unwrap();
        let mut loaded = false;
        authenticator(&settings(&[]), || {
            loaded = true;
            Ok(auth::DevTokens::load_or_create(dir.path())?)
        })
        .unwrap();
        assert!(loaded);
        // An issuer without the rest is a configuration error, not a silent fallback.
        let err = authenticator(
            &settings(&[(auth::entra::SETTING_ISSUER, "https://i")]),
            || unreachable!("local tokens are not loaded when an issuer is set"),
        );
        assert!(err.is_err());
    }
}
