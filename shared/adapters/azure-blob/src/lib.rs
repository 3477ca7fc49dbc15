//! The blob port on Azure Blob Storage (`azure_storage_blob` 1.x), with a token credential
//! in Azure (managed identity) and, for local stand-ins, an account key or SAS.
//!
//! # How the port maps onto Blob Storage
//!
//! - **put**: a block blob. Payloads up to [`Options::single_request_limit`] (32 MiB by
//!   default) go in one Put Blob request; larger ones as blocks of that size, 4 in flight,
//!   committed by one Put Block List, which is atomic: readers see the old or the new
//!   content. The service's own limits (5,000 MiB for one Put Blob, 4,000 MiB per block,
//!   50,000 blocks) are far above what the platform stores (webhook bodies, run inputs), so
//!   put holds the whole payload in memory, as the port's `Bytes` already does.
//!   `if_none_match` sends `If-None-Match: *` (on the commit for block uploads). A put into a
//!   missing container creates it and puts again (two more transactions, once per
//!   container).
//! - **content hash**: put stores the SHA-256 of the content as metadata `sha256`; get
//!   recomputes it over the bytes received and fails on a mismatch, so a corrupted or
//!   truncated read is an error, never data. head and list report the stored hash. Blobs
//!   written by other tools (no `sha256` metadata) are refused with an error that says so.
//! - **get**: one request up to the single-request limit; larger blobs are read as ranges of
//!   that size, 4 in flight, each pinned to the first answer's ETag (`If-Match`), so a
//!   concurrent overwrite fails the read (a transient error) instead of mixing versions.
//! - **content type**: a put without one stores `application/octet-stream`, which the port
//!   allows, so put, get, head and list all report the same value.
//! - **retries**: none here. The SDK's retry policy is off; every failure is returned
//!   classified (`Throttled` with the service's `Retry-After`, `Timeout`, transient
//!   `Backend`), and the caller decides, as for every other port and vendor call.
//! - **timeouts**: each port operation, all its requests included, is bounded by
//!   [`Options::timeout`] (60 s by default) and fails with `PortError::Timeout`.
//! - **cost**: [`AzureBlobStore::transactions`] counts the storage transactions (answered
//!   HTTP requests) of each port operation.
//!
//! # Differences from real Azure that the tests work around (Azurite 3.35)
//!
//! - API version: the SDK sends `x-ms-version: 2026-04-06`, newer than Azurite 3.35 knows;
//!   the tests start Azurite with `--skipApiVersionCheck` (the adapter keeps the SDK's
//!   version for Azure).
//! - Tokens: Azurite's `--oauth basic` accepts any unexpired JWT with a storage audience and
//!   an Entra issuer *without checking its signature*; the tests' credential hands it an
//!   unsigned one. The adapter's code path (bearer policy, HTTPS only) is production's; only
//!   the token is fake. Role assignments (403 `AuthorizationPermissionMismatch`) cannot be
//!   exercised locally.
//! - TLS: Azurite serves a certificate of a test CA, given to the adapter through
//!   [`Options::root_certificates_pem`]; in Azure the system roots are used.
//! - Account keys: the SDK has no shared-key signing; the connection-string form (Azurite's
//!   well-known key) is served by an account SAS this crate signs. Azure accounts deployed
//!   by the Bicep have shared-key access disabled and use the identity form.
//! - URLs: Azurite puts the account in the path (`https://127.0.0.1:<port>/devstoreaccount1`),
//!   Azure in the host name; the adapter takes the service endpoint as given, so both work.
//! - Throttling (429/503 with `Retry-After`) and request timeouts cannot be provoked on
//!   Azurite; the tests use a small fake HTTP server for them.

mod counters;
mod errors;
mod sas;
mod settings;

use std::collections::HashMap;
use std::fmt;
use std::future::Future;
use std::num::NonZero;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use azure_core::credentials::TokenCredential;
use azure_core::http::pager::PagerOptions;
use azure_core::http::{ClientMethodOptions, ClientOptions, Etag, RetryOptions, Transport, Url};
use azure_core::time::OffsetDateTime;
use azure_storage_blob::models::{
    BlobClientDeleteOptions, BlobClientDownloadOptions, BlobClientGetPropertiesOptions,
    BlobClientGetPropertiesResultHeaders as _, BlobClientUploadOptions,
    BlobContainerClientCreateOptions, BlobContainerClientListBlobsOptions, ListBlobsIncludeItem,
};
use azure_storage_blob::{BlobServiceClient, BlobServiceClientOptions};
use bytes::Bytes;
use chrono::{DateTime, Utc};
use futures::TryStreamExt as _;
use ports::blob::validate_names;
use ports::{BlobInfo, BlobStore, PortError, PutOptions};
use sha2::{Digest as _, Sha256};

pub use counters::{OperationCount, TransactionCounts};
pub use errors::StorageError;
pub use sas::{AccountKey, SasToken};
pub use settings::{
    BLOB_CONNECTION, BLOB_SERVICE_URI, CLIENT_ID_SETTING, CREDENTIAL_SETTING, DEV_ACCOUNT,
    DEV_ACCOUNT_KEY,
};

use counters::{Counters, CountingPolicy, Operation};
use errors::{error_code, to_port_error};
use sas::SasPolicy;

/// The metadata entry that holds the hex SHA-256 of the content.
const SHA256_METADATA: &str = "sha256";
/// What Azure stores when a put names no content type.
const DEFAULT_CONTENT_TYPE: &str = "application/octet-stream";

/// How the adapter authenticates.
#[derive(Clone, Debug)]
pub enum Credential {
    /// Entra ID (managed identity in Azure): the production path. HTTPS only.
    Token(Arc<dyn TokenCredential>),
    /// A storage account key, used to sign short-lived account SAS tokens (local stand-ins).
    AccountKey { account: String, key: AccountKey },
    /// A fixed SAS query (local stand-ins, or a delegated SAS).
    Sas(SasToken),
}

impl Credential {
    fn kind(&self) -> &'static str {
        match self {
            Credential::Token(_) => "entra-id",
            Credential::AccountKey { .. } => "account-key",
            Credential::Sas(_) => "shared-access-signature",
        }
    }
}

/// Tuning and trust, with defaults for Azure.
#[derive(Clone, Debug)]
pub struct Options {
    /// Bound on one port operation, all its requests included.
    pub timeout: Duration,
    /// Payloads up to this size are put and read in one request; larger ones in parts of
    /// this size.
    pub single_request_limit: NonZero<usize>,
    /// Parts in flight for payloads above the single-request limit.
    pub parallel_parts: NonZero<usize>,
    /// Extra CA certificates to trust (PEM, one or more each), besides the system's: for a
    /// stand-in serving a test CA's certificate.
    pub root_certificates_pem: Vec<Vec<u8>>,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            timeout: Duration::from_secs(60),
            single_request_limit: NonZero::new(32 * 1024 * 1024).unwrap_or(NonZero::<usize>::MIN),
            parallel_parts: NonZero::new(4).unwrap_or(NonZero::<usize>::MIN),
            root_certificates_pem: Vec::new(),
        }
    }
}

/// Why a store could not be opened. Never holds a key, SAS or token.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("setting {setting}: {reason}")]
    Setting {
        setting: &'static str,
        reason: String,
    },
    #[error("blob endpoint {endpoint}: {reason}")]
    Endpoint { endpoint: String, reason: String },
    #[error("cannot create the {kind} credential: {reason}")]
    Credential { kind: &'static str, reason: String },
    #[error("cannot build the HTTP client: {reason}")]
    Client { reason: String },
}

/// [`BlobStore`] on an Azure Blob Storage account (or Azurite).
pub struct AzureBlobStore {
    service: BlobServiceClient,
    endpoint: String,
    credential_kind: &'static str,
    counters: Arc<Counters>,
    options: Options,
}

impl fmt::Debug for AzureBlobStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AzureBlobStore")
            .field("endpoint", &self.endpoint)
            .field("credential", &self.credential_kind)
            .finish_non_exhaustive()
    }
}

impl AzureBlobStore {
    /// A store on the Blob service at `endpoint` (`https://<account>.blob.core.windows.net`, or
    /// `http(s)://127.0.0.1:<port>/devstoreaccount1` for Azurite).
    pub fn new(
        endpoint: &str,
        credential: Credential,
        options: Options,
    ) -> Result<AzureBlobStore, Error> {
        let mut url = Url::parse(endpoint.trim()).map_err(|e| Error::Endpoint {
            endpoint: without_query(endpoint),
            reason: format!("not a URL: {e}"),
        })?;
        let shown = without_query(url.as_str());
        let bad = |reason: &str| Error::Endpoint {
            endpoint: shown.clone(),
            reason: reason.to_owned(),
        };
        if !matches!(url.scheme(), "https" | "http") {
            return Err(bad(
                "the scheme must be https (or http for a local stand-in)",
            ));
        }
        if url.query().is_some() || url.fragment().is_some() {
            return Err(bad(
                "the endpoint must not carry a query: a SAS goes in the connection string's \
                 SharedAccessSignature",
            ));
        }
        if url.cannot_be_a_base() || url.host_str().is_none() {
            return Err(bad("not a service URL"));
        }
        if matches!(credential, Credential::Token(_)) && url.scheme() != "https" {
            return Err(bad("a token credential is sent over https only"));
        }
        // `https://acct.blob.core.windows.net/` would otherwise become `…net//container`.
        if let Ok(mut segments) = url.path_segments_mut() {
            segments.pop_if_empty();
        }

        let counters = Arc::new(Counters::default());
        let mut per_try: Vec<Arc<dyn azure_core::http::policies::Policy>> =
            vec![Arc::new(CountingPolicy(counters.clone()))];
        let token = match &credential {
            Credential::Token(token) => Some(token.clone()),
            Credential::AccountKey { account, key } => {
                per_try.push(Arc::new(SasPolicy::account(account, key.clone())));
                None
            }
            Credential::Sas(sas) => {
                per_try.push(Arc::new(SasPolicy::Static(sas.clone())));
                None
            }
        };
        let client_options = ClientOptions {
            per_try_policies: per_try,
            retry: RetryOptions::none(),
            transport: Some(Transport::new(Arc::new(http_client(&options)?))),
            ..Default::default()
        };
        let service = BlobServiceClient::new(
            url.clone(),
            token,
            Some(BlobServiceClientOptions {
                client_options,
                ..Default::default()
            }),
        )
        .map_err(|e| bad(&errors::redact(&e.to_string())))?;
        Ok(AzureBlobStore {
            service,
            endpoint: without_query(url.as_str()),
            credential_kind: credential.kind(),
            counters,
            options,
        })
    }

    /// The Blob service endpoint, for messages.
    pub fn endpoint(&self) -> &str {
        &self.endpoint
    }

    /// Calls and storage transactions per operation since the store was opened. Take two
    /// snapshots and use [`TransactionCounts::since`] to measure a piece of work.
    pub fn transactions(&self) -> TransactionCounts {
        self.counters.snapshot()
    }

    /// Requests sent without an operation tag (always 0 unless this crate has a bug).
    #[doc(hidden)]
    pub fn untagged_requests(&self) -> u64 {
        self.counters.untagged()
    }

    async fn bounded<T>(
        &self,
        fut: impl Future<Output = Result<T, PortError>>,
    ) -> Result<T, PortError> {
        tokio::time::timeout(self.options.timeout, fut)
            .await
            .unwrap_or(Err(PortError::Timeout))
    }

    async fn upload(
        &self,
        container: &str,
        name: &str,
        data: Bytes,
        content_type: &str,
        sha256: &str,
        first_writer: bool,
    ) -> azure_core::Result<(Option<Etag>, Option<OffsetDateTime>)> {
        let options = BlobClientUploadOptions {
            blob_content_type: Some(content_type.to_owned()),
            metadata: Some(HashMap::from([(
                SHA256_METADATA.to_owned(),
                sha256.to_owned(),
            )])),
            if_none_match: first_writer.then(|| Etag::from("*")),
            partition_size: NonZero::new(self.options.single_request_limit.get() as u64),
            parallel: Some(self.options.parallel_parts),
            method_options: method(Operation::Put),
            ..Default::default()
        };
        let result = self
            .service
            .blob_client(container, name)
            .upload(data.into(), Some(options))
            .await?;
        Ok((result.etag, result.last_modified))
    }

    /// Creates `container`; one that already exists (another writer was first) is fine.
    async fn create_container(&self, container: &str) -> Result<(), PortError> {
        let options = BlobContainerClientCreateOptions {
            method_options: method(Operation::Put),
            ..Default::default()
        };
        match self
            .service
            .blob_container_client(container)
            .create(Some(options))
            .await
        {
            Ok(_) => Ok(()),
            Err(e) if error_code(&e) == Some("ContainerAlreadyExists") => Ok(()),
            Err(e) => Err(to_port_error(Operation::Put, false, e)),
        }
    }

    async fn put_inner(
        &self,
        container: &str,
        name: &str,
        data: Bytes,
        options: PutOptions,
    ) -> Result<BlobInfo, PortError> {
        let op = Operation::Put;
        let sha256 = sha256_hex(&data);
        let size = data.len() as u64;
        let content_type = options
            .content_type
            .unwrap_or_else(|| DEFAULT_CONTENT_TYPE.to_owned());
        let first_writer = options.if_none_match;
        let attempt = self
            .upload(
                container,
                name,
                data.clone(),
                &content_type,
                &sha256,
                first_writer,
            )
            .await;
        let (etag, last_modified) = match attempt {
            Err(e) if error_code(&e) == Some("ContainerNotFound") => {
                // Containers are created on first use, as the embedded store's folders are.
                self.create_container(container).await?;
                self.upload(container, name, data, &content_type, &sha256, first_writer)
                    .await
            }
            other => other,
        }
        .map_err(|e| to_port_error(op, first_writer, e))?;
        let (etag, last_modified) = required(op, etag, last_modified)?;
        Ok(BlobInfo {
            container: container.to_owned(),
            name: name.to_owned(),
            size,
            content_type: Some(content_type),
            sha256,
            etag,
            last_modified,
        })
    }

    async fn get_inner(&self, container: &str, name: &str) -> Result<(Bytes, BlobInfo), PortError> {
        let op = Operation::Get;
        let options = BlobClientDownloadOptions {
            partition_size: Some(self.options.single_request_limit),
            parallel: Some(self.options.parallel_parts),
            method_options: method(op),
            ..Default::default()
        };
        let map = |e: azure_core::Error| {
            if e.http_status().map(u16::from) == Some(412) {
                // The ranges after the first are pinned to its ETag: the blob was replaced
                // while it was read. Reading again gets the new content.
                return PortError::backend(
                    "azure-blob",
                    StorageError::new(op, "the blob changed while it was read; read it again"),
                );
            }
            to_port_error(op, false, e)
        };
        let download = self
            .service
            .blob_client(container, name)
            .download(Some(options))
            .await
            .map_err(map)?;
        let properties = download.properties;
        let body = download.body.collect().await.map_err(map)?;
        let (etag, last_modified) = required(op, properties.etag, properties.last_modified)?;
        let info = BlobInfo {
            container: container.to_owned(),
            name: name.to_owned(),
            size: body.len() as u64,
            content_type: properties.content_type,
            sha256: stored_sha256(op, &format!("{container}/{name}"), &properties.metadata)?,
            etag,
            last_modified,
        };
        let actual = sha256_hex(&body);
        if actual != info.sha256 {
            return Err(PortError::backend(
                "azure-blob",
                StorageError::new(
                    op,
                    format!(
                        "content hash mismatch for {container}/{name}: stored sha256 {}, read \
                         {actual} over {} bytes",
                        info.sha256,
                        body.len()
                    ),
                ),
            ));
        }
        Ok((body, info))
    }

    async fn head_inner(&self, container: &str, name: &str) -> Result<BlobInfo, PortError> {
        let op = Operation::Head;
        let options = BlobClientGetPropertiesOptions {
            method_options: method(op),
            ..Default::default()
        };
        let response = self
            .service
            .blob_client(container, name)
            .get_properties(Some(options))
            .await
            .map_err(|e| to_port_error(op, false, e))?;
        let header = |e: azure_core::Error| {
            PortError::backend(
                "azure-blob",
                StorageError::new(op, format!("bad header: {e}")),
            )
        };
        let (etag, last_modified) = required(
            op,
            response.etag().map_err(header)?,
            response.last_modified().map_err(header)?,
        )?;
        Ok(BlobInfo {
            container: container.to_owned(),
            name: name.to_owned(),
            size: response.content_length().map_err(header)?.unwrap_or(0),
            content_type: response.content_type().map_err(header)?,
            sha256: stored_sha256(
                op,
                &format!("{container}/{name}"),
                &response.metadata().map_err(header)?,
            )?,
            etag,
            last_modified,
        })
    }

    async fn delete_inner(&self, container: &str, name: &str) -> Result<(), PortError> {
        let op = Operation::Delete;
        let options = BlobClientDeleteOptions {
            method_options: method(op),
            ..Default::default()
        };
        self.service
            .blob_client(container, name)
            .delete(Some(options))
            .await
            .map_err(|e| to_port_error(op, false, e))?;
        Ok(())
    }

    async fn list_inner(&self, container: &str, prefix: &str) -> Result<Vec<BlobInfo>, PortError> {
        let op = Operation::List;
        let options = BlobContainerClientListBlobsOptions {
            include: Some(vec![ListBlobsIncludeItem::Metadata]),
            prefix: (!prefix.is_empty()).then(|| prefix.to_owned()),
            method_options: PagerOptions {
                context: op.context(),
                ..Default::default()
            },
            ..Default::default()
        };
        let mut items = self
            .service
            .blob_container_client(container)
            .list_blobs(Some(options))
            .map_err(|e| to_port_error(op, false, e))?;
        let mut infos = Vec::new();
        loop {
            let item = match items.try_next().await {
                Ok(Some(item)) => item,
                Ok(None) => break,
                // A container nobody wrote to yet holds nothing.
                Err(e) if error_code(&e) == Some("ContainerNotFound") => return Ok(Vec::new()),
                Err(e) => return Err(to_port_error(op, false, e)),
            };
            let name = item.name.ok_or_else(|| {
                PortError::backend(
                    "azure-blob",
                    StorageError::new(op, "a listed blob has no name"),
                )
            })?;
            let properties = item.properties.unwrap_or_default();
            let metadata = item.metadata.and_then(|m| m.values).unwrap_or_default();
            let (etag, last_modified) = required(op, properties.etag, properties.last_modified)?;
            infos.push(BlobInfo {
                container: container.to_owned(),
                sha256: stored_sha256(op, &format!("{container}/{name}"), &metadata)?,
                name,
                size: properties.content_length.unwrap_or(0),
                content_type: properties.content_type,
                etag,
                last_modified,
            });
        }
        // The service lists in name order already; sorting keeps the port's promise (byte
        // order of names) whatever the backend does.
        infos.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(infos)
    }
}

#[async_trait]
impl BlobStore for AzureBlobStore {
    async fn put(
        &self,
        container: &str,
        name: &str,
        data: Bytes,
        options: PutOptions,
    ) -> Result<BlobInfo, PortError> {
        validate_names(container, name)?;
        self.counters.call(Operation::Put);
        self.bounded(self.put_inner(container, name, data, options))
            .await
    }

    async fn get(&self, container: &str, name: &str) -> Result<(Bytes, BlobInfo), PortError> {
        validate_names(container, name)?;
        self.counters.call(Operation::Get);
        self.bounded(self.get_inner(container, name)).await
    }

    async fn head(&self, container: &str, name: &str) -> Result<BlobInfo, PortError> {
        validate_names(container, name)?;
        self.counters.call(Operation::Head);
        self.bounded(self.head_inner(container, name)).await
    }

    async fn delete(&self, container: &str, name: &str) -> Result<(), PortError> {
        validate_names(container, name)?;
        self.counters.call(Operation::Delete);
        self.bounded(self.delete_inner(container, name)).await
    }

    async fn list(&self, container: &str, prefix: &str) -> Result<Vec<BlobInfo>, PortError> {
        // The port's name rules for the container; any valid blob name stands in for the
        // (unchecked) prefix.
        validate_names(container, "x")?;
        self.counters.call(Operation::List);
        self.bounded(self.list_inner(container, prefix)).await
    }
}

/// The transport: the SDK's defaults (no redirects, raw bodies for its partitioned
/// downloads) plus the extra roots a stand-in needs.
fn http_client(options: &Options) -> Result<reqwest::Client, Error> {
    let mut roots = Vec::new();
    for pem in &options.root_certificates_pem {
        let certs = reqwest::Certificate::from_pem_bundle(pem).map_err(|e| Error::Client {
            reason: format!("a root certificate is not valid PEM: {e}"),
        })?;
        roots.extend(certs);
    }
    let mut builder = reqwest::Client::builder()
        .connect_timeout(Duration::from_secs(20))
        .read_timeout(Duration::from_secs(60))
        .redirect(reqwest::redirect::Policy::none())
        .no_gzip()
        .no_deflate();
    if !roots.is_empty() {
        builder = builder.tls_certs_merge(roots);
    }
    builder.build().map_err(|e| Error::Client {
        reason: e.to_string(),
    })
}

fn method(op: Operation) -> ClientMethodOptions<'static> {
    ClientMethodOptions {
        context: op.context(),
    }
}

/// The ETag (quoted, as in HTTP headers; listings give it bare) and last-modified time every
/// answer must carry.
fn required(
    op: Operation,
    etag: Option<Etag>,
    last_modified: Option<OffsetDateTime>,
) -> Result<(String, DateTime<Utc>), PortError> {
    let missing = |what: &str| {
        PortError::backend(
            "azure-blob",
            StorageError::new(op, format!("the answer has no {what}")),
        )
    };
    let etag = etag.ok_or_else(|| missing("ETag"))?;
    let etag = format!("\"{}\"", etag.to_string().trim_matches('"'));
    let at = last_modified.ok_or_else(|| missing("Last-Modified"))?;
    let last_modified = DateTime::<Utc>::from_timestamp(at.unix_timestamp(), at.nanosecond())
        .ok_or_else(|| missing("valid Last-Modified"))?;
    Ok((etag, last_modified))
}

/// The content hash put stored, checked to be 64 lowercase hex digits; `blob` names the blob
/// in the error.
fn stored_sha256(
    op: Operation,
    blob: &str,
    metadata: &HashMap<String, String>,
) -> Result<String, PortError> {
    let value = metadata
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case(SHA256_METADATA))
        .map(|(_, v)| v.as_str());
    let reason = match value {
        Some(v) if v.len() == 64 && v.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')) => {
            return Ok(v.to_owned());
        }
        Some(_) => "its sha256 metadata is not a hex SHA-256",
        None => "it has no sha256 metadata: it was not written through this adapter",
    };
    Err(PortError::backend(
        "azure-blob",
        StorageError::new(op, format!("blob {blob}: {reason}")),
    ))
}

fn sha256_hex(data: &[u8]) -> String {
    let digest = Sha256::digest(data);
    let mut hex = String::with_capacity(64);
    for b in digest {
        hex.push(char::from(b"0123456789abcdef"[usize::from(b >> 4)]));
        hex.push(char::from(b"0123456789abcdef"[usize::from(b & 0xf)]));
    }
    hex
}

/// A URL without its query and fragment: what may be shown in messages (a query may hold a
/// SAS).
fn without_query(url: &str) -> String {
    let end = url.find(['?', '#']).unwrap_or(url.len());
    url[..end].to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sha256_is_lowercase_hex() {
        assert_eq!(
            sha256_hex(b"abc"),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }

    #[test]
    fn endpoints_are_checked_and_never_echo_a_query() {
        let sas = Credential::Sas(SasToken::new("sv=1&sig=x"));
        let err = AzureBlobStore::new(
            "https://a.blob.core.windows.net/?sig=SECRET",
            sas.clone(),
            Options::default(),
        )
        .unwrap_err()
        .to_string();
        assert!(
            err.contains("must not carry a query") && !err.contains("SECRET"),
            "{err}"
        );
        let err = AzureBlobStore::new("ftp://a", sas.clone(), Options::default()).unwrap_err();
        assert!(err.to_string().contains("scheme"), "{err}");
        let err = AzureBlobStore::new("not a url", sas, Options::default()).unwrap_err();
        assert!(err.to_string().contains("not a URL"), "{err}");
    }

    #[test]
    fn a_trailing_slash_does_not_double_the_path() {
        let store = AzureBlobStore::new(
            "https://acct.blob.core.windows.net/",
            Credential::Sas(SasToken::new("sv=1")),
            Options::default(),
        )
        .unwrap();
        assert_eq!(store.endpoint(), "https://acct.blob.core.windows.net/");
        let url = store.service.blob_client("c", "a/b").url().to_string();
        assert_eq!(url, "https://acct.blob.core.windows.net/c/a%2Fb");
    }

    #[test]
    fn stored_hashes_must_be_hex_sha256() {
        let ok = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";
        let m = |v: &str| HashMap::from([("sha256".to_owned(), v.to_owned())]);
        let check = |m: &HashMap<String, String>| stored_sha256(Operation::Head, "c/b", m);
        assert_eq!(check(&m(ok)).unwrap(), ok);
        assert!(check(&m("abc")).is_err());
        assert!(check(&m(&ok.to_uppercase())).is_err());
        let err = check(&HashMap::new()).unwrap_err();
        let source = std::error::Error::source(&err).unwrap().to_string();
        assert!(
            source.contains("c/b") && source.contains("no sha256"),
            "{source}"
        );
    }
}
