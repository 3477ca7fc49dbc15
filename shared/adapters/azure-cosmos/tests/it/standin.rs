//! The Cosmos DB stand-in for these tests: `@vercel/cosmosdb-server` installed and run
//! through the `standins` crate, started by its launcher (`standins::cosmos::LAUNCHER_JS`) which
//! makes point reads of missing items and failed transactional batches answer as Cosmos DB
//! does (see the crate docs for every difference).

use std::path::Path;
use std::sync::Arc;

use anyhow::Context as _;
use azure_core::credentials::Secret;
use azure_cosmos::{CosmosConfig, CosmosDocumentStore};
use azure_data_cosmos::fault_injection::FaultInjectionRule;
use azure_data_cosmos::models::{ContainerProperties, PartitionKeyDefinition, TimeToLive};
use azure_data_cosmos::options::{
    BinaryEncodingOptions, ConnectionPoolOptions, OperationOptionsBuilder,
    ServerCertificateValidation, ThrottlingRetryOptionsBuilder,
};
use azure_data_cosmos::{
    AccountReference, CosmosClient, CosmosClientBuilder, CosmosRuntime, RoutingStrategy,
};
use base64::Engine as _;
use standins::process::{ChildProcess, DEFAULT_STARTUP_TIMEOUT, Node};
use standins::tls::TestTls;

use standins::cosmos::LAUNCHER_JS;

/// The database the tests use (the platform's default name, as the Bicep creates it).
pub(crate) const DATABASE: &str = "integration";

/// A running stand-in, stopped on drop.
pub(crate) struct StandIn {
    // Declared first: killed before its folder and certificates go.
    process: ChildProcess,
    endpoint: String,
    key: String,
    tls: TestTls,
    _dir: tempfile::TempDir,
}

impl StandIn {
    pub(crate) fn start() -> anyhow::Result<StandIn> {
        let tls = TestTls::generate()?;
        let tools = standins::npm::ensure_installed()?;
        let package = tools.package_dir("@vercel/cosmosdb-server");
        let dir = tempfile::Builder::new()
            .prefix("azure-cosmos-standin-")
            .tempdir()
            .context("cannot create a temporary folder for the stand-in")?;
        let launcher = dir.path().join("cosmosdb-server.js");
        std::fs::write(&launcher, LAUNCHER_JS)
            .with_context(|| format!("cannot write {}", launcher.display()))?;
        let node = Node::prepare(dir.path())?;
        let process = ChildProcess::spawn(
            "cosmosdb-server",
            dir.path(),
            DEFAULT_STARTUP_TIMEOUT,
            |port| {
                let mut command = node.command();
                command
                    .arg(&launcher)
                    .arg(&package)
                    .arg(tls.leaf_cert_path())
                    .arg(tls.leaf_key_path())
                    .arg(port.to_string());
                command
            },
        )?;
        let endpoint = format!("https://127.0.0.1:{}/", process.port());
        // The stand-in checks no signature; a random key keeps anything key-like out of the
        // repository.
        let key = base64::engine::general_purpose::STANDARD.encode(uuid::Uuid::new_v4().as_bytes());
        Ok(StandIn {
            process,
            endpoint,
            key,
            tls,
            _dir: dir,
        })
    }

    /// `AccountEndpoint=…;AccountKey=…;`, the `CosmosDbConnection` setting for this server.
    pub(crate) fn connection_string(&self) -> String {
        format!("AccountEndpoint={};AccountKey={};", self.endpoint, self.key)
    }

    /// System CAs + the test CA, for `SSL_CERT_FILE` in a child process.
    pub(crate) fn ca_bundle(&self) -> &Path {
        self.tls.bundle_path()
    }

    pub(crate) fn log_tail(&self) -> String {
        self.process.log_tail()
    }

    /// A client with the stand-in's knobs, set in code rather than in the environment (the
    /// environment of a running test process cannot be changed safely).
    pub(crate) async fn client(&self, builder: CosmosClientBuilder) -> CosmosClient {
        let account = AccountReference::with_authentication_key(
            self.endpoint.parse().expect("endpoint"),
            Secret::new(self.key.clone()),
        );
        builder
            .build(account, RoutingStrategy::PreferredRegions(Vec::new()))
            .await
            .unwrap_or_else(|e| panic!("cannot build a client: {e}\n{}", self.log_tail()))
    }

    /// Creates the database and `containers` the way the Bicep does: partitioned by
    /// `/tenantId`, TTL on with no default (`defaultTtl: -1`).
    pub(crate) async fn provision(&self, containers: &[&str]) {
        let client = self.client(test_builder(None).await).await;
        let _ = client.create_database(DATABASE, None).await;
        let database = client.database_client(DATABASE);
        for name in containers {
            let properties = ContainerProperties::new(
                name.to_string(),
                PartitionKeyDefinition::from("/tenantId"),
            )
            .with_default_ttl(TimeToLive::NoDefault);
            database
                .create_container(properties, None)
                .await
                .unwrap_or_else(|e| panic!("cannot create container {name}: {e}"));
        }
    }

    /// A container as someone else made it: partitioned by `path`, TTL off.
    pub(crate) async fn provision_other(&self, name: &str, path: &str) {
        let client = self.client(test_builder(None).await).await;
        let _ = client.create_database(DATABASE, None).await;
        let properties =
            ContainerProperties::new(name.to_owned(), PartitionKeyDefinition::from(path));
        client
            .database_client(DATABASE)
            .create_container(properties, None)
            .await
            .unwrap_or_else(|e| panic!("cannot create container {name}: {e}"));
    }

    /// The store under test, built through the production constructor from the stand-in's
    /// connection string, with the test knobs on the client.
    pub(crate) async fn store(&self, containers: &[&str]) -> CosmosDocumentStore {
        self.provision(containers).await;
        self.store_with(test_builder(None).await).await
    }

    pub(crate) async fn store_with(&self, builder: CosmosClientBuilder) -> CosmosDocumentStore {
        let settings = [
            ("CosmosDbConnection".to_owned(), self.connection_string()),
            ("COSMOS_DATABASE".to_owned(), DATABASE.to_owned()),
        ]
        .into_iter()
        .collect();
        let config = CosmosConfig::from_settings(&settings)
            .expect("settings")
            .expect("configured");
        CosmosDocumentStore::connect(&config, builder)
            .await
            .unwrap_or_else(|e| panic!("cannot connect: {e}\n{}", self.log_tail()))
    }
}

/// What the stand-in needs from the SDK, as code: HTTP/1.1 (the SDK assumes HTTP/2), JSON on
/// the wire (binary encoding off), and the emulator's certificate relaxation, which applies
/// to `127.0.0.1` only. With `throttling`, a test's own 429 retry budget.
pub(crate) async fn test_builder(
    faults: Option<(Vec<Arc<FaultInjectionRule>>, u32)>,
) -> CosmosClientBuilder {
    let pool = ConnectionPoolOptions::builder()
        .with_is_http2_allowed(false)
        .with_server_certificate_validation(ServerCertificateValidation::RequiredUnlessEmulator)
        .build()
        .expect("connection pool options");
    let runtime = CosmosRuntime::builder()
        .with_connection_pool(pool)
        .build()
        .await
        .expect("runtime");
    let mut builder = CosmosClientBuilder::new()
        .with_runtime(runtime)
        .with_binary_encoding_options(BinaryEncodingOptions::new().with_enabled(false));
    if let Some((rules, max_retries)) = faults {
        let throttling = ThrottlingRetryOptionsBuilder::new()
            .with_max_retry_count(max_retries)
            .build();
        let operation = OperationOptionsBuilder::new()
            .with_throttling_retry_options(throttling)
            .build();
        builder = builder
            .with_default_operation_options(operation)
            .with_fault_injection_rules(rules)
            .expect("fault injection rules");
    }
    builder
}
