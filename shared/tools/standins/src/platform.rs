//! The platform's Azure stand-ins in one handle: Azurite's Blob service and the Cosmos DB
//! stand-in, provisioned the way the Bicep provisions Azure, with the settings and the
//! environment a platform process needs to use them.
//!
//! What runs where: documents go to the Cosmos DB stand-in (database [`DATABASE`], one
//! container per app, partitioned by `/tenantId`, TTL on), blobs to Azurite over plain HTTP
//! (the blob adapter's connection-string route, signed with Azurite's published account key).
//! The bus and the secrets stay with the process's embedded default: there is no Service
//! Bus or Key Vault stand-in to run.
//!
//! The settings go in `local.settings.json` (they hold the stand-ins' well-known keys, so
//! never print them); the environment goes to the child process that runs the platform. It
//! cannot be set in the calling process: changing the environment of a running process is
//! not safe (`std::env::set_var` is `unsafe` in edition 2024, and this workspace forbids
//! unsafe code), and the Cosmos SDK reads its transport knobs from the environment only
//! when a client is built. Callers that build a Cosmos client in their own process use
//! [`cosmos_client_builder`] instead, which sets the same knobs in code.
//!
//! ```no_run
//! let standins = standins::platform::PlatformStandIns::start(&["registry", "webhooks"])?;
//! let settings = standins.settings(); // CosmosDbConnection, COSMOS_DATABASE, BlobStorageConnection
//! let mut runner = std::process::Command::new("integration-platform");
//! runner.envs(standins.env()); // SSL_CERT_FILE and the Cosmos SDK's knobs
//! # let _ = settings;
//! # Ok::<(), anyhow::Error>(())
//! ```

use std::collections::BTreeMap;

use anyhow::{Context as _, Result, bail};
use azure_core::credentials::Secret;
use azure_data_cosmos::models::{ContainerProperties, PartitionKeyDefinition, TimeToLive};
use azure_data_cosmos::options::{
    BinaryEncodingOptions, ConnectionPoolOptions, ServerCertificateValidation,
};
use azure_data_cosmos::{AccountReference, CosmosClientBuilder, CosmosRuntime, RoutingStrategy};

use crate::azurite::Azurite;
use crate::cosmos::{CosmosServer, EMULATOR_KEY};
use crate::process;
use crate::tls::TestTls;

/// The database every app's containers live in: the platform's default
/// (`COSMOS_DATABASE` unset), the one the Bicep creates.
pub const DATABASE: &str = "integration";
/// The partition key path of every container (the Cosmos adapter refuses any other).
pub const PARTITION_KEY_PATH: &str = "/tenantId";

/// Setting names the adapters read (defined in `azure-cosmos` and `azure-blob`; repeated
/// here because those crates' tests depend on this one).
const COSMOS_CONNECTION_SETTING: &str = "CosmosDbConnection";
const COSMOS_DATABASE_SETTING: &str = "COSMOS_DATABASE";
const BLOB_CONNECTION_SETTING: &str = "BlobStorageConnection";

/// The trust store rustls-native-certs (hence reqwest and every Azure SDK client) reads.
pub const SSL_CERT_FILE: &str = "SSL_CERT_FILE";
/// The Cosmos SDK speaks HTTP/2 with prior knowledge unless told otherwise; the stand-in
/// speaks HTTP/1.1 only.
pub const COSMOS_HTTP2_KNOB: &str = "AZURE_COSMOS_CONNECTION_POOL_IS_HTTP2_ALLOWED";
/// The Cosmos SDK asks for binary-encoded responses unless told otherwise; the stand-in
/// speaks JSON only.
pub const COSMOS_BINARY_ENCODING_KNOB: &str = "AZURE_COSMOS_BINARY_ENCODING_ENABLED";

/// Azurite (Blob, plain HTTP) and the Cosmos DB stand-in (HTTPS with a test CA), both
/// running, with the database and containers created. Both stop when this is dropped, and
/// their temporary folders (data, certificates) are removed.
#[derive(Debug)]
pub struct PlatformStandIns {
    // Fields drop in declaration order: the servers go before the certificates they serve.
    cosmos: CosmosServer,
    azurite: Azurite,
    tls: TestTls,
    containers: Vec<String>,
}

impl PlatformStandIns {
    /// Installs the pinned npm packages if needed, starts Azurite and the Cosmos DB stand-in
    /// (on `localhost`, the host the test certificate and the SDK's emulator rules both
    /// know), and creates database [`DATABASE`] with `containers`.
    ///
    /// Blocking (it waits for both servers to listen). Callable from async code as well: the
    /// provisioning runs on a thread of its own with its own runtime.
    pub fn start(containers: &[&str]) -> Result<PlatformStandIns> {
        let tls = TestTls::generate()?;
        let azurite = Azurite::start_http()?;
        let cosmos = CosmosServer::start_on_localhost(&tls)?;
        let containers: Vec<String> = containers.iter().map(|c| (*c).to_owned()).collect();
        let mut unique = containers.clone();
        unique.sort();
        unique.dedup();
        let endpoint = cosmos.endpoint().to_owned();
        let names = unique.clone();
        std::thread::scope(|scope| {
            scope
                .spawn(move || provision(&endpoint, &names))
                .join()
                .unwrap_or_else(|_| bail!("provisioning the Cosmos DB stand-in panicked"))
        })
        .with_context(|| {
            format!(
                "cannot provision the Cosmos DB stand-in; its log:\n{}",
                cosmos.log_tail()
            )
        })?;
        Ok(PlatformStandIns {
            cosmos,
            azurite,
            tls,
            containers: unique,
        })
    }

    /// What the adapters read to use the stand-ins instead of the embedded default:
    /// `CosmosDbConnection` (`AccountEndpoint=…;AccountKey=…;`), `COSMOS_DATABASE` and
    /// `BlobStorageConnection` (Azurite's account-key form with its `BlobEndpoint`). They hold
    /// the stand-ins' published keys: write them to a settings file, never to a log.
    pub fn settings(&self) -> BTreeMap<String, String> {
        BTreeMap::from([
            (
                COSMOS_CONNECTION_SETTING.to_owned(),
                self.cosmos.connection_string(),
            ),
            (COSMOS_DATABASE_SETTING.to_owned(), DATABASE.to_owned()),
            (
                BLOB_CONNECTION_SETTING.to_owned(),
                self.azurite.connection_string(),
            ),
        ])
    }

    /// The environment of a process that uses the settings: [`SSL_CERT_FILE`] = the system
    /// CAs plus the test CA (so the Cosmos stand-in's certificate is verified, not waved
    /// through), and the Cosmos SDK's transport knobs for this stand-in. No secrets.
    pub fn env(&self) -> Vec<(String, String)> {
        vec![
            (
                SSL_CERT_FILE.to_owned(),
                self.tls.bundle_path().to_string_lossy().into_owned(),
            ),
            (COSMOS_HTTP2_KNOB.to_owned(), "false".to_owned()),
            (COSMOS_BINARY_ENCODING_KNOB.to_owned(), "false".to_owned()),
        ]
    }

    /// `https://localhost:<port>/`.
    pub fn cosmos_endpoint(&self) -> &str {
        self.cosmos.endpoint()
    }

    /// `http://127.0.0.1:<port>/devstoreaccount1`.
    pub fn blob_endpoint(&self) -> &str {
        self.azurite.blob_endpoint()
    }

    /// The containers created, sorted, each once.
    pub fn containers(&self) -> &[String] {
        &self.containers
    }

    /// The test CA alone (PEM), for a client that trusts it in code.
    pub fn ca_pem(&self) -> &str {
        self.tls.ca_pem()
    }

    /// Fails, with the stand-in's log, when either server has stopped.
    pub fn ensure_running(&mut self) -> Result<()> {
        process::ensure_running(self.cosmos.process())?;
        process::ensure_running(self.azurite.process())
    }

    /// Both servers' stderr so far, for failure messages.
    pub fn log_tail(&self) -> String {
        format!(
            "cosmosdb-server:\n{}\nazurite:\n{}",
            self.cosmos.log_tail(),
            self.azurite.log_tail()
        )
    }
}

/// A Cosmos client builder with this stand-in's knobs set in code, for a client built in the
/// calling process (whose environment cannot be changed): HTTP/1.1, JSON responses, and the
/// SDK's certificate relaxation for emulator hosts (`localhost`, `127.0.0.1`), since the
/// SDK's transport takes no extra root certificate. Child processes get
/// [`PlatformStandIns::env`] instead, which verifies the certificate.
pub async fn cosmos_client_builder() -> Result<CosmosClientBuilder> {
    let pool = ConnectionPoolOptions::builder()
        .with_is_http2_allowed(false)
        .with_server_certificate_validation(ServerCertificateValidation::RequiredUnlessEmulator)
        .build()
        .context("Cosmos connection pool options")?;
    let runtime = CosmosRuntime::builder()
        .with_connection_pool(pool)
        .build()
        .await
        .context("Cosmos runtime")?;
    Ok(CosmosClientBuilder::new()
        .with_runtime(runtime)
        .with_binary_encoding_options(BinaryEncodingOptions::new().with_enabled(false)))
}

/// Creates the database and the containers as the Bicep does: partition key `/tenantId`,
/// TTL on with no default (`defaultTtl: -1`: only documents written with a TTL expire).
fn provision(endpoint: &str, containers: &[String]) -> Result<()> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("cannot build a runtime to provision the Cosmos DB stand-in")?;
    runtime.block_on(async {
        let account = AccountReference::with_authentication_key(
            endpoint
                .parse()
                .with_context(|| format!("{endpoint} is not an account endpoint"))?,
            Secret::new(EMULATOR_KEY.to_owned()),
        );
        let client = cosmos_client_builder()
            .await?
            .build(account, RoutingStrategy::PreferredRegions(Vec::new()))
            .await
            .with_context(|| format!("cannot reach the Cosmos DB stand-in at {endpoint}"))?;
        if let Err(e) = client.create_database(DATABASE, None).await
            && u16::from(e.status().status_code()) != 409
        {
            return Err(e).with_context(|| format!("cannot create database {DATABASE}"));
        }
        let database = client.database_client(DATABASE);
        for name in containers {
            let properties = ContainerProperties::new(
                name.clone(),
                PartitionKeyDefinition::from(PARTITION_KEY_PATH),
            )
            .with_default_ttl(TimeToLive::NoDefault);
            if let Err(e) = database.create_container(properties, None).await
                && u16::from(e.status().status_code()) != 409
            {
                return Err(e).with_context(|| format!("cannot create container {name}"));
            }
        }
        Ok(())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn starts_provisions_and_describes_itself_without_keys_in_the_environment() {
        let standins = PlatformStandIns::start(&["webhooks", "registry", "webhooks"])
            .expect("start the stand-ins");
        assert_eq!(standins.containers(), ["registry", "webhooks"]);
        assert!(
            standins.cosmos_endpoint().starts_with("https://localhost:"),
            "{}",
            standins.cosmos_endpoint()
        );
        assert!(standins.blob_endpoint().starts_with("http://127.0.0.1:"));

        let settings = standins.settings();
        assert!(settings[COSMOS_CONNECTION_SETTING].contains(standins.cosmos_endpoint()));
        assert_eq!(settings[COSMOS_DATABASE_SETTING], DATABASE);
        assert!(settings[BLOB_CONNECTION_SETTING].contains(standins.blob_endpoint()));

        // The environment is safe to print: paths and switches, never a key.
        let env = standins.env();
        for (name, value) in &env {
            assert!(
                !value.contains(EMULATOR_KEY) && !value.contains(crate::azurite::ACCOUNT_KEY),
                "{name} carries a key"
            );
        }
        let bundle = &env
            .iter()
            .find(|(n, _)| n == SSL_CERT_FILE)
            .expect("SSL_CERT_FILE")
            .1;
        let pem = std::fs::read_to_string(bundle).expect("the CA bundle exists");
        assert!(
            pem.contains(standins.ca_pem().trim()),
            "the bundle holds the test CA"
        );

        // The containers exist as the Cosmos adapter wants them: `/tenantId`, TTL on.
        let endpoint = standins.cosmos_endpoint().to_owned();
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        runtime.block_on(async {
            let account = AccountReference::with_authentication_key(
                endpoint.parse().unwrap(),
                Secret::new(EMULATOR_KEY.to_owned()),
            );
            let client = cosmos_client_builder()
                .await
                .unwrap()
                .build(account, RoutingStrategy::PreferredRegions(Vec::new()))
                .await
                .unwrap();
            for name in ["registry", "webhooks"] {
                let container = client
                    .database_client(DATABASE)
                    .container_client(name.to_owned(), None)
                    .await
                    .unwrap_or_else(|e| panic!("container {name}: {e}"));
                let properties = container
                    .read(None)
                    .await
                    .unwrap_or_else(|e| panic!("container {name}: {e}"))
                    .into_model()
                    .unwrap();
                assert_eq!(properties.partition_key.paths(), [PARTITION_KEY_PATH]);
                assert_eq!(properties.default_ttl, TimeToLive::NoDefault, "{name}");
            }
        });
    }
}
