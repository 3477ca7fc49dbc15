//! Azurite's Blob service (`azurite@3.35.0`, the last release that runs on Node 20).
//!
//! Three ways to start it:
//! - [`Azurite::start_oauth`]: HTTPS with `--oauth basic`. Azurite then accepts bearer tokens
//!   whose claims look like Entra ID's (audience `https://storage.azure.com`, an
//!   `https://sts.windows.net/<tenant>/` issuer, valid `nbf`/`exp`) without checking their
//!   signature, so a client can take the same token-credential path as in Azure. The Rust SDK
//!   refuses to send a token over `http://`, hence HTTPS.
//! - [`Azurite::start_https`]: HTTPS, shared key or SAS only.
//! - [`Azurite::start_http`]: plain HTTP, shared key or SAS only.
//!
//! Always started with `--skipApiVersionCheck` (the Rust SDK sends a newer `x-ms-version`
//! than 3.35 knows), `--loose` (ignore headers it does not implement), `--disableTelemetry`
//! (tests reach no outside address) and `--silent` (no access log).

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::{Context as _, Result};
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;

use crate::npm;
use crate::process::{ChildProcess, DEFAULT_STARTUP_TIMEOUT, Node};
use crate::tls::TestTls;

/// Azurite's one account.
pub const ACCOUNT: &str = "devstoreaccount1";
/// Azurite's well-known, published account key (the same in every installation).
pub const ACCOUNT_KEY: &str =
    "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw==";

/// A running Azurite Blob service, stopped on drop; its data are in a temporary folder
/// removed with it.
#[derive(Debug)]
pub struct Azurite {
    // Declared first: dropped (killed) before its folder is removed.
    process: ChildProcess,
    blob_endpoint: String,
    _dir: tempfile::TempDir,
}

impl Azurite {
    /// HTTPS with `tls`'s server certificate, accepting unsigned Entra-like bearer tokens
    /// (and shared key / SAS).
    pub fn start_oauth(tls: &TestTls) -> Result<Azurite> {
        Self::start(Some(tls), true)
    }

    /// HTTPS with `tls`'s server certificate; shared key and SAS only.
    pub fn start_https(tls: &TestTls) -> Result<Azurite> {
        Self::start(Some(tls), false)
    }

    /// Plain HTTP; shared key and SAS only.
    pub fn start_http() -> Result<Azurite> {
        Self::start(None, false)
    }

    fn start(tls: Option<&TestTls>, oauth: bool) -> Result<Azurite> {
        let tools = npm::ensure_installed()?;
        let main_js = tools.package_dir("azurite").join("dist/src/blob/main.js");
        let dir = tempfile::Builder::new()
            .prefix("standins-azurite-")
            .tempdir()
            .context("cannot create a temporary folder for Azurite")?;
        let location = dir.path().join("data");
        std::fs::create_dir_all(&location)
            .with_context(|| format!("cannot create {}", location.display()))?;
        let node = Node::prepare(dir.path())?;
        let process = ChildProcess::spawn(
            "azurite-blob",
            dir.path(),
            DEFAULT_STARTUP_TIMEOUT,
            |port| {
                let mut command = node.command();
                command
                    .arg(&main_js)
                    .args(["--blobHost", "127.0.0.1", "--blobPort"])
                    .arg(port.to_string())
                    .arg("--location")
                    .arg(&location)
                    .args([
                        "--silent",
                        "--skipApiVersionCheck",
                        "--loose",
                        "--disableTelemetry",
                    ]);
                if let Some(tls) = tls {
                    command
                        .arg("--cert")
                        .arg(tls.leaf_cert_path())
                        .arg("--key")
                        .arg(tls.leaf_key_path());
                }
                if oauth {
                    command.args(["--oauth", "basic"]);
                }
                command
            },
        )?;
        let scheme = if tls.is_some() { "https" } else { "http" };
        let blob_endpoint = format!("{scheme}://127.0.0.1:{}/{ACCOUNT}", process.port());
        Ok(Azurite {
            process,
            blob_endpoint,
            _dir: dir,
        })
    }

    /// `http(s)://127.0.0.1:<port>/devstoreaccount1`, without a trailing slash.
    pub fn blob_endpoint(&self) -> &str {
        &self.blob_endpoint
    }

    pub fn port(&self) -> u16 {
        self.process.port()
    }

    /// A storage connection string for this instance (account key form), as the Azure tools
    /// write for Azurite.
    pub fn connection_string(&self) -> String {
        let protocol = if self.blob_endpoint.starts_with("https:") {
            "https"
        } else {
            "http"
        };
        format!(
            "DefaultEndpointsProtocol={protocol};AccountName={ACCOUNT};AccountKey={ACCOUNT_KEY};\
             BlobEndpoint={};",
            self.blob_endpoint
        )
    }

    /// Azurite's stderr so far, for failure messages.
    pub fn log_tail(&self) -> String {
        self.process.log_tail()
    }

    /// The process, to check it is still running or read its log path.
    pub fn process(&mut self) -> &mut ChildProcess {
        &mut self.process
    }
}

/// A bearer token that Azurite's `--oauth basic` accepts: an unsigned JWT (`alg: none`) with
/// the claims it checks (`aud` = `https://storage.azure.com`, an Entra `iss`, `iat`, `nbf`,
/// `exp`), valid from a minute ago for `lifetime`. Returns the token and its expiry in Unix
/// seconds. Real Azure Storage checks the signature and would refuse it.
pub fn unsigned_storage_token(lifetime: Duration) -> (String, u64) {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let not_before = now.saturating_sub(60);
    let expires = now + lifetime.as_secs();
    let header = r#"{"alg":"none","typ":"JWT"}"#;
    // A fixed, made-up tenant: Azurite checks only the issuer's prefix.
    let claims = format!(
        r#"{{"aud":"https://storage.azure.com","iss":"https://sts.windows.net/00000000-0000-0000-0000-0000000000aa/","iat":{not_before},"nbf":{not_before},"exp":{expires},"oid":"00000000-0000-0000-0000-0000000000bb","tid":"00000000-0000-0000-0000-0000000000aa"}}"#
    );
    let token = format!(
        "{}.{}.",
        URL_SAFE_NO_PAD.encode(header),
        URL_SAFE_NO_PAD.encode(claims)
    );
    (token, expires)
}
