//! Test-only: what a test needs to run the local stand-ins of the Azure services on a fresh
//! machine that has only Rust, Node 20 and npm.
//!
//! - [`npm`]: installs the pinned npm packages once into the repository's ignored `.tools/npm`
//!   folder (a file lock keeps parallel test processes from installing at the same time).
//! - [`process`]: runs a stand-in on a free port, waits until it accepts connections, and kills
//!   it (with everything it started) when dropped.
//! - [`tls`]: a test CA and a `localhost`/`127.0.0.1` server certificate it signed, as PEM
//!   files, plus a CA bundle (system CAs + the test CA) for `SSL_CERT_FILE`.
//! - [`azurite`]: Azurite's Blob service, over plain HTTP or over HTTPS with OAuth.
//! - [`cosmos`]: `@vercel/cosmosdb-server` (a Cosmos DB REST server, in memory) over HTTPS.
//! - [`python`]: the official OpenAI SDK for Python in a virtual environment, installed once.
//! - [`logs`]: everything logged while a test runs, to check no key or token is written.
//! - [`platform`]: both at once, provisioned for the platform's apps, with the settings and
//!   environment a platform process needs (`cargo xtask local-azure`, the end-to-end tests).
//!
//! Every stand-in is started by the test that uses it and stopped when its handle drops, so
//! `cargo nextest` (one process per test) and `cargo test` both work without a setup step.
//!
//! ```no_run
//! let tls = standins::tls::TestTls::generate()?;
//! let azurite = standins::azurite::Azurite::start_oauth(&tls)?;
//! let client = reqwest::Client::builder()
//!     .add_root_certificate(reqwest::Certificate::from_pem(tls.ca_pem().as_bytes())?)
//!     .build()?;
//! # let _ = (azurite.blob_endpoint(), client);
//! # Ok::<(), anyhow::Error>(())
//! ```

pub mod azurite;
pub mod cosmos;
pub mod logs;
pub mod npm;
pub mod platform;
pub mod process;
pub mod python;
pub mod tls;
