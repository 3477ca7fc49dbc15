//! A test CA and a server certificate for the stand-ins, as PEM files in a temporary folder.
//!
//! The leaf is what rustls (hence reqwest and the Azure SDK) accepts from a server: SAN
//! `DNS:localhost` and `IP:127.0.0.1`, `CA:FALSE`, EKU serverAuth, signed by a separate CA.
//! rustls refuses a self-signed CA certificate used as the server's own certificate, which is
//! why there are two.
//!
//! Clients trust it either per client (`reqwest::ClientBuilder::add_root_certificate` with
//! [`TestTls::ca_pem`]) or per process through `SSL_CERT_FILE` = [`TestTls::bundle_path`] (the
//! system CAs plus ours), which rustls-native-certs reads; give that one to child processes,
//! since changing the environment of a running test process is not safe.

use std::fs;
use std::path::{Path, PathBuf};

use anyhow::{Context as _, Result};
use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose,
};

/// The test CA, the server certificate it signed, and the CA bundle, in one temporary folder
/// (removed on drop).
#[derive(Debug)]
pub struct TestTls {
    ca_pem: String,
    ca_cert: PathBuf,
    leaf_cert: PathBuf,
    leaf_key: PathBuf,
    bundle: PathBuf,
    dir: tempfile::TempDir,
}

impl TestTls {
    /// Generates a fresh CA and leaf (P-256 keys) and writes `ca.pem`, `leaf.pem`,
    /// `leaf-key.pem` and `ca-bundle.pem` into a new temporary folder.
    pub fn generate() -> Result<TestTls> {
        let dir = tempfile::Builder::new()
            .prefix("standins-tls-")
            .tempdir()
            .context("cannot create a temporary folder for the test certificates")?;

        let mut ca_params = CertificateParams::new(Vec::<String>::new())?;
        ca_params
            .distinguished_name
            .push(DnType::CommonName, "standins test CA");
        ca_params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
        ca_params.key_usages = vec![
            KeyUsagePurpose::KeyCertSign,
            KeyUsagePurpose::CrlSign,
            KeyUsagePurpose::DigitalSignature,
        ];
        let ca_key = KeyPair::generate().context("cannot generate the CA key")?;
        let ca_cert = ca_params
            .self_signed(&ca_key)
            .context("cannot sign the CA certificate")?;
        let issuer = Issuer::new(ca_params, ca_key);

        let mut leaf_params =
            CertificateParams::new(vec!["localhost".to_owned(), "127.0.0.1".to_owned()])?;
        leaf_params
            .distinguished_name
            .push(DnType::CommonName, "localhost");
        leaf_params.is_ca = IsCa::ExplicitNoCa;
        leaf_params.key_usages = vec![
            KeyUsagePurpose::DigitalSignature,
            KeyUsagePurpose::KeyEncipherment,
        ];
        leaf_params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
        let leaf_key = KeyPair::generate().context("cannot generate the server key")?;
        let leaf_cert = leaf_params
            .signed_by(&leaf_key, &issuer)
            .context("cannot sign the server certificate")?;

        let ca_pem = ca_cert.pem();
        let mut bundle_pem = system_ca_pem();
        bundle_pem.push_str(&ca_pem);

        let path = |name: &str| dir.path().join(name);
        let tls = TestTls {
            ca_cert: path("ca.pem"),
            leaf_cert: path("leaf.pem"),
            leaf_key: path("leaf-key.pem"),
            bundle: path("ca-bundle.pem"),
            ca_pem,
            dir,
        };
        write(&tls.ca_cert, &tls.ca_pem)?;
        write(&tls.leaf_cert, &leaf_cert.pem())?;
        write(&tls.leaf_key, &leaf_key.serialize_pem())?;
        write(&tls.bundle, &bundle_pem)?;
        Ok(tls)
    }

    /// The CA certificate, PEM: for `reqwest::Certificate::from_pem`.
    pub fn ca_pem(&self) -> &str {
        &self.ca_pem
    }

    /// `ca.pem`: the CA certificate alone.
    pub fn ca_cert_path(&self) -> &Path {
        &self.ca_cert
    }

    /// `leaf.pem`: the server certificate (for `localhost` and `127.0.0.1`).
    pub fn leaf_cert_path(&self) -> &Path {
        &self.leaf_cert
    }

    /// `leaf-key.pem`: the server's private key (PKCS#8).
    pub fn leaf_key_path(&self) -> &Path {
        &self.leaf_key
    }

    /// `ca-bundle.pem`: the system CAs (when found) followed by the test CA, for
    /// `SSL_CERT_FILE` in a child process.
    pub fn bundle_path(&self) -> &Path {
        &self.bundle
    }

    /// The temporary folder holding the files.
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// The server's chain, PEM: the leaf followed by the CA, as a server sends it (for an
    /// in-process HTTPS fake).
    pub fn chain_pem(&self) -> Result<String> {
        let leaf = fs::read_to_string(&self.leaf_cert)
            .with_context(|| format!("cannot read {}", self.leaf_cert.display()))?;
        Ok(format!("{leaf}{}", self.ca_pem))
    }

    /// The server's private key, PEM.
    pub fn key_pem(&self) -> Result<String> {
        fs::read_to_string(&self.leaf_key)
            .with_context(|| format!("cannot read {}", self.leaf_key.display()))
    }

    /// A client builder that trusts this CA (besides the platform's roots) and follows no
    /// redirects.
    pub fn client_builder(&self) -> reqwest::ClientBuilder {
        let mut builder = reqwest::Client::builder().redirect(reqwest::redirect::Policy::none());
        if let Ok(ca) = reqwest::Certificate::from_pem(self.ca_pem.as_bytes()) {
            builder = builder.add_root_certificate(ca);
        }
        builder
    }

    /// A client that trusts this CA.
    pub fn client(&self) -> reqwest::Client {
        self.client_builder().build().unwrap_or_default()
    }
}

/// The system's CA certificates as PEM, as rustls-native-certs finds them (it honours
/// `SSL_CERT_FILE`/`SSL_CERT_DIR`, then the platform's store). Empty when none are found: the
/// bundle still trusts the stand-ins, only not the internet, which tests do not reach.
fn system_ca_pem() -> String {
    let found = rustls_native_certs::load_native_certs();
    let mut out = String::new();
    for cert in found.certs {
        out.push_str(&pem::encode(&pem::Pem::new("CERTIFICATE", cert.to_vec())));
    }
    out
}

fn write(path: &Path, text: &str) -> Result<()> {
    fs::write(path, text).with_context(|| format!("cannot write {}", path.display()))
}
