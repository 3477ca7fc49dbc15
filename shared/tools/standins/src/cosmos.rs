//! `@vercel/cosmosdb-server`: an open-source, in-memory Cosmos DB REST server, served over
//! HTTPS with the test certificate.
//!
//! Its own CLI serves a bundled certificate that expired long ago and has no option for
//! another, so a small Node launcher (written into the server's temporary folder) calls the
//! package's `createHttpsServer({cert, key})` instead. [`crate::npm`] also patches the package
//! once: it reports partition-key-range ids as the number `0` where the Rust SDK, like real
//! Cosmos DB, expects the string `"0"`.
//!
//! # Using it with `azure_data_cosmos` 1.0
//!
//! ```no_run
//! let tls = standins::tls::TestTls::generate()?;
//! let cosmos = standins::cosmos::CosmosServer::start(&tls)?;
//! let endpoint = cosmos.endpoint(); // "https://127.0.0.1:<port>/"
//! let key = standins::cosmos::EMULATOR_KEY; // any key works: the server checks no signature
//! # let _ = (endpoint, key);
//! # Ok::<(), anyhow::Error>(())
//! ```
//!
//! What an `azure_data_cosmos` 1.0 client needs against this server:
//! - trust in the test CA: either a transport whose reqwest client has
//!   `add_root_certificate(reqwest::Certificate::from_pem(tls.ca_pem().as_bytes())?)`, or, for a
//!   child process, `SSL_CERT_FILE=tls.bundle_path()`. For a test that wants the SDK's
//!   emulator switch instead (`AZURE_COSMOS_EMULATOR_SERVER_CERT_VALIDATION_DISABLED=true`, which
//!   only applies to `localhost`), start with [`CosmosServer::start_on_localhost`];
//! - HTTP/1.1: `AZURE_COSMOS_CONNECTION_POOL_IS_HTTP2_ALLOWED=false` (the SDK otherwise speaks
//!   HTTP/2 with prior knowledge) and `AZURE_COSMOS_BINARY_ENCODING_ENABLED=false`;
//! - key auth (feature `key_auth`) with [`EMULATOR_KEY`], and `control_plane` to create the
//!   database and containers (in Azure the Bicep provisions them);
//! - cross-partition queries: the per-request header
//!   `x-ms-documentdb-query-enablecrosspartition: true`.
//!
//! Known differences from Cosmos DB: a point read with the wrong partition key answers 500
//! (Cosmos: 404); `If-None-Match` is ignored (Cosmos: 304). Data live in memory and go with the
//! process.

use std::fs;

use anyhow::{Context as _, Result};

use crate::npm;
use crate::process::{ChildProcess, DEFAULT_STARTUP_TIMEOUT, Node};
use crate::tls::TestTls;

/// The Cosmos DB emulator's well-known, published account key. The stand-in accepts any key;
/// this one keeps connection strings looking like the emulator's.
pub const EMULATOR_KEY: &str =
    "C2y6yDjf5/R+ob0N8A7Cgv30VRDJIWEHLM+4QDU5DE2nQ9nDuVTqobD4b8mGGyPMbIZnqyMsEcaGQy67XIw/Jw==";

/// Node launcher: `node launcher.js <package dir> <cert> <key> <port> <advertised host>`.
///
/// The server advertises the address it listens on as the account's endpoint (the SDK
/// follows that endpoint for every later request), so the launcher reports the host the
/// client should use while still listening on 127.0.0.1 only.
/// The launcher: serves `@vercel/cosmosdb-server` over HTTPS with the given certificate (its
/// CLI has no certificate option) and replaces two of its handlers so they answer as Cosmos
/// DB does (see the script's comments): a point read of a missing item is 404, and a
/// transactional batch is all or nothing.
pub const LAUNCHER_JS: &str = include_str!("cosmosdb-server.js");

/// A running `cosmosdb-server`, stopped on drop.
#[derive(Debug)]
pub struct CosmosServer {
    // Declared first: dropped (killed) before its folder is removed.
    process: ChildProcess,
    endpoint: String,
    _dir: tempfile::TempDir,
}

impl CosmosServer {
    /// Installs the package if needed and starts it on a free port over HTTPS with `tls`'s
    /// server certificate; its endpoint is `https://127.0.0.1:<port>/`.
    pub fn start(tls: &TestTls) -> Result<CosmosServer> {
        Self::start_advertising(tls, "127.0.0.1")
    }

    /// Like [`CosmosServer::start`], with the endpoint `https://localhost:<port>/` (the host
    /// the SDK's emulator switches recognise). Still listens on 127.0.0.1 only.
    pub fn start_on_localhost(tls: &TestTls) -> Result<CosmosServer> {
        Self::start_advertising(tls, "localhost")
    }

    fn start_advertising(tls: &TestTls, host: &str) -> Result<CosmosServer> {
        let tools = npm::ensure_installed()?;
        let package = tools.package_dir("@vercel/cosmosdb-server");
        let dir = tempfile::Builder::new()
            .prefix("standins-cosmos-")
            .tempdir()
            .context("cannot create a temporary folder for cosmosdb-server")?;
        let launcher = dir.path().join("launcher.js");
        fs::write(&launcher, LAUNCHER_JS)
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
                    .arg(port.to_string())
                    .arg(host);
                command
            },
        )?;
        let endpoint = format!("https://{host}:{}/", process.port());
        Ok(CosmosServer {
            process,
            endpoint,
            _dir: dir,
        })
    }

    /// `https://127.0.0.1:<port>/` (or `localhost`), with the trailing slash.
    pub fn endpoint(&self) -> &str {
        &self.endpoint
    }

    pub fn port(&self) -> u16 {
        self.process.port()
    }

    /// `AccountEndpoint=<endpoint>;AccountKey=<emulator key>;`, the form of the emulator's
    /// connection string.
    pub fn connection_string(&self) -> String {
        format!(
            "AccountEndpoint={};AccountKey={EMULATOR_KEY};",
            self.endpoint
        )
    }

    /// The server's stderr so far (errors it logged), for failure messages.
    pub fn log_tail(&self) -> String {
        self.process.log_tail()
    }

    /// The process, to check it is still running or read its log path.
    pub fn process(&mut self) -> &mut ChildProcess {
        &mut self.process
    }
}
