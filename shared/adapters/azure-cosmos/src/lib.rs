//! `CosmosDocumentStore`: the document store port (`ports::DocumentStore`) on Azure Cosmos DB
//! (NoSQL API) with `azure_data_cosmos` 1.0.
//!
//! # Mapping
//!
//! - **Containers** are the port's containers, in one database ([`settings::DATABASE_SETTING`]),
//!   each partitioned by `/tenantId` and with TTL on (`defaultTtl: -1`); the Bicep provisions
//!   them (apps never create containers). The first use of a container in a process reads
//!   its properties once and refuses any other partition key path.
//! - **Items** wrap the port's document (see the `item` module): `id`, `tenantId` = the
//!   port's partition value, `body` = the document untouched, `sortKey`, and `expiresAt` +
//!   `ttl` when the write had a time-to-live.
//! - **ETags** are Cosmos `_etag`s; `if_match` becomes `If-Match` (412 →
//!   `PreconditionFailed`), a create of a taken id is 409 → `AlreadyExists`. An upsert with
//!   `if_match` is a replace (the version must exist), as in the embedded store.
//! - **TTL**: readers obey `expiresAt` at millisecond precision; Cosmos reclaims the item by
//!   its `ttl` afterwards. A create over an expired item not reclaimed yet replaces exactly
//!   that version (`If-Match` on its etag), so an expired id can be created again at once.
//! - **Batches** of several writes are one Cosmos transactional batch (all in the partition,
//!   at most 100): an aggregate and its outbox documents commit together or not at all. A
//!   batch of one write is the plain point operation (same cost, one request).
//! - **Queries** are one parameterized SQL query each, ordered and paged by keyset on
//!   `sortKey` (see the `query` module); cross-partition queries send the legacy header
//!   `x-ms-documentdb-query-enablecrosspartition: true`, which Cosmos DB accepts and the
//!   stand-in requires.
//! - **Throttling**: the SDK retries 429s itself, waiting what `x-ms-retry-after-ms` says, up
//!   to its throttling budget (9 retries or 30 s by default, `ThrottlingRetryOptions`). When
//!   it gives up, the port sees `PortError::Throttled { retry_after }` with the server's last
//!   retry-after.
//! - **Usage**: [`CosmosDocumentStore::usage`] counts calls, HTTP requests and request units
//!   (`x-ms-request-charge`) per operation kind.
//!
//! # Configuration
//!
//! [`CosmosDocumentStore::from_settings`] reads the settings `app_host::adapters` chooses by
//! (see [`settings`]). Production code sets no transport knobs: the SDK reads its
//! environment, so a launcher pointing the platform at the local stand-in sets
//! `AZURE_COSMOS_CONNECTION_POOL_IS_HTTP2_ALLOWED=false` (the stand-in speaks HTTP/1.1; the
//! SDK assumes HTTP/2), `AZURE_COSMOS_BINARY_ENCODING_ENABLED=false` (the stand-in speaks
//! JSON only) and `SSL_CERT_FILE=<system CAs + the test CA>` (or, for a `localhost`
//! endpoint, `AZURE_COSMOS_EMULATOR_SERVER_CERT_VALIDATION_DISABLED=true`). Tests set the
//! same knobs in code on the client they build ([`CosmosDocumentStore::connect`] takes a
//! `CosmosClientBuilder`), or in the environment of a child process.
//!
//! # Differences from real Cosmos DB the tests work around
//!
//! The tests run against `@vercel/cosmosdb-server` (in memory, npm), which differs from
//! Cosmos DB in these ways:
//!
//! 1. **Partition-key-range ids** are numbers (`0`); the SDK wants strings. The stand-ins
//!    crate patches the package (`id: "0"`).
//! 2. **A point read of a missing item answers 500**, in any partition (the handler
//!    dereferences the missing item); Cosmos answers 404. The tests' launcher wraps the read handler to answer 404.
//! 3. **Transactional batches are not atomic**: the package applies operations one by one,
//!    keeps those before a failure and answers 200 with per-operation statuses; and it reads
//!    a replace's, delete's or read's partition key from a per-operation field Cosmos DB does
//!    not have (the SDK sends the batch's partition key once, as a header), so those
//!    operations fail with 500. Cosmos applies all or none in the header's partition, marks
//!    the others 424 and answers with the failing operation's status. The tests' launcher
//!    serves batches with its own handler that does so (built from the package's
//!    single-operation functions, restoring a snapshot on failure). The adapter reads both
//!    answer shapes: a failed batch as an error carrying per-operation results (Cosmos), or
//!    as a success whose results hold a failure.
//! 4. **No TTL**: items never expire or disappear. The adapter does not depend on Cosmos
//!    expiring anything (readers obey `expiresAt`; creates take over expired items), so the
//!    port's TTL contract holds on both; only reclaiming storage is Cosmos's job, and the
//!    stand-in never reclaims.
//! 5. **Queries ignore the partition scope** and require the partition key in the query
//!    text unless the legacy cross-partition header is sent: partition-scoped queries carry
//!    `c.tenantId = @pk` (redundant in Cosmos), cross-partition ones the header.
//! 6. **HTTP/1.1 only, JSON only, no key check, a fixed request charge of 1 RU** per
//!    response, `If-None-Match` ignored (unused here). Request-unit figures from the tests
//!    are request counts, not costs.
//!
//! Not covered by the stand-in at all: Entra ID auth (it checks no signature), real
//! throttling (the tests inject 429s with the SDK's fault injection), Cosmos binary encoding
//! (the SDK's default in production; the stand-in speaks JSON only, so the tests turn it
//! off), the exact wire shape of a refused batch, session consistency, partition splits, the
//! item size limit.
//!
//! # Known edges
//!
//! A replace or delete that names an expired item Cosmos has not reclaimed yet acts on it
//! (the embedded store answers `NotFound`); in Azure that window is the TTL reclaimer's lag.

pub mod settings;

mod errors;
mod item;
mod query;
mod usage;

use std::collections::HashMap;
use std::fmt;
use std::num::NonZeroU32;
use std::sync::RwLock;

use async_trait::async_trait;
use azure_core::http::headers::{HeaderName, HeaderValue};
use azure_data_cosmos::clients::{ContainerClient, DatabaseClient};
use azure_data_cosmos::feed::FeedScope;
use azure_data_cosmos::models::ItemResponse;
use azure_data_cosmos::options::{
    BatchDeleteOptions, BatchReplaceOptions, ItemWriteOptions, MaxItemCountHint, OperationOptions,
    Precondition, QueryOptions,
};
use azure_data_cosmos::{
    AccountEndpoint, AccountReference, CosmosClient, CosmosClientBuilder, CosmosError,
    RoutingStrategy, TransactionalBatch,
};
use futures::StreamExt as _;
use ports::{Document, DocumentStore, ETag, Page, PortError, Query, Result, WriteOp};
use serde_json::Value;

use crate::errors::{BatchFailure, OpResult};
pub use crate::item::MAX_ITEM_BYTES;
use crate::item::{StoredItem, now_ms, to_item, validate_key};
pub use crate::query::{DEFAULT_PAGE, MAX_PAGE};
pub use crate::settings::CosmosConfig;
pub use crate::usage::{OpUsage, Usage};

/// Largest batch accepted: Cosmos DB's transactional batch limit.
pub const MAX_BATCH: usize = 100;

/// How many times a write re-decides after finding an expired item in its way (each round
/// means another writer moved it meanwhile).
const MAX_TAKEOVER_ROUNDS: usize = 4;

/// The legacy header that lets a query span partitions. Cosmos DB accepts it (older SDKs
/// always sent it); the stand-in refuses a query without the partition key unless it is set.
const ENABLE_CROSS_PARTITION: &str = "x-ms-documentdb-query-enablecrosspartition";

/// Why the store could not be opened from settings.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("setting {setting}: {reason}")]
    Setting {
        setting: &'static str,
        reason: String,
    },
    #[error("cannot create the {kind} credential for Cosmos DB: {reason}")]
    Credential { kind: &'static str, reason: String },
    #[error(
        "setting {setting} holds an account key, but this build has no key auth (the \
         `key_auth` feature of azure-cosmos); use {endpoint} with Entra ID instead",
        endpoint = settings::ENDPOINT_SETTING
    )]
    KeyAuthNotBuilt { setting: &'static str },
    #[error("cannot connect to Cosmos DB at {endpoint}")]
    Connect {
        endpoint: String,
        #[source]
        source: CosmosError,
    },
}

/// The document store on Cosmos DB. Cheap to share behind an `Arc`; clients and container
/// handles are reused across calls.
pub struct CosmosDocumentStore {
    database: DatabaseClient,
    database_name: String,
    containers: RwLock<HashMap<String, ContainerClient>>,
    meter: usage::Meter,
}

impl fmt::Debug for CosmosDocumentStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CosmosDocumentStore")
            .field("database", &self.database_name)
            .finish_non_exhaustive()
    }
}

/// A write, ready for the SDK.
enum Prepared {
    Create {
        id: String,
        item: Value,
    },
    /// A create over an expired item Cosmos has not reclaimed: replaces exactly that version.
    Takeover {
        id: String,
        item: Value,
        expired: String,
    },
    Upsert {
        id: String,
        item: Value,
    },
    Replace {
        id: String,
        item: Value,
        if_match: Option<String>,
    },
    Delete {
        id: String,
        if_match: Option<String>,
    },
}

impl Prepared {
    fn new(partition: &str, op: WriteOp, now: i64) -> Result<Prepared> {
        validate_key("a document id", op.id())?;
        Ok(match op {
            WriteOp::Create { id, body, ttl } => Prepared::Create {
                item: to_item(partition, &id, body, ttl, now)?,
                id,
            },
            WriteOp::Upsert {
                id,
                body,
                if_match: None,
                ttl,
            } => Prepared::Upsert {
                item: to_item(partition, &id, body, ttl, now)?,
                id,
            },
            // An upsert of one exact version is a replace: that version must exist.
            WriteOp::Upsert {
                id,
                body,
                if_match: Some(etag),
                ttl,
            } => Prepared::Replace {
                item: to_item(partition, &id, body, ttl, now)?,
                id,
                if_match: Some(etag.0),
            },
            WriteOp::Replace {
                id,
                body,
                if_match,
                ttl,
            } => Prepared::Replace {
                item: to_item(partition, &id, body, ttl, now)?,
                id,
                if_match: if_match.map(|e| e.0),
            },
            WriteOp::Delete { id, if_match } => Prepared::Delete {
                id,
                if_match: if_match.map(|e| e.0),
            },
        })
    }

    fn returns_etag(&self) -> bool {
        !matches!(self, Prepared::Delete { .. })
    }
}

/// What is in the way of a create.
enum Existing {
    Live,
    Expired(String),
    Gone,
}

fn if_match(etag: &str) -> Precondition {
    Precondition::if_match(azure_core::http::Etag::from(etag.to_owned()))
}

fn write_options(etag: Option<&str>) -> Option<ItemWriteOptions> {
    etag.map(|e| ItemWriteOptions::default().with_precondition(if_match(e)))
}

fn etag_of(response: &ItemResponse) -> Result<ETag> {
    response
        .headers()
        .etag()
        .map(|e| ETag(e.to_string()))
        .ok_or_else(|| PortError::backend("cosmos", "a write came back without an etag"))
}

impl CosmosDocumentStore {
    /// Opens the account the settings name (see [`settings`]); `Ok(None)` when they name
    /// none, so the host keeps the embedded default. Transport knobs come from the SDK's
    /// environment variables only (see the crate docs).
    ///
    /// The SDK reads the account's properties while it builds the client, so an unreachable
    /// endpoint or a refused credential fails here, at start-up, rather than on the first
    /// request. Containers are checked on first use.
    pub async fn from_settings(
        settings: &std::collections::BTreeMap<String, String>,
    ) -> Result<Option<Self>, Error> {
        let Some(config) = CosmosConfig::from_settings(settings)? else {
            return Ok(None);
        };
        Self::connect(&config, CosmosClientBuilder::new())
            .await
            .map(Some)
    }

    /// Opens `config`'s account with a client made by `builder`. Tests pass a builder with
    /// their transport knobs (runtime, binary encoding, fault injection); hosts pass
    /// `CosmosClientBuilder::new()`.
    pub async fn connect(
        config: &CosmosConfig,
        builder: CosmosClientBuilder,
    ) -> Result<Self, Error> {
        let setting = if config.uses_account_key() {
            settings::CONNECTION_SETTING
        } else {
            settings::ENDPOINT_SETTING
        };
        let endpoint: AccountEndpoint = config.endpoint().parse().map_err(|_| Error::Setting {
            setting,
            reason: "the endpoint is not a valid account endpoint".to_owned(),
        })?;
        let account = match config.auth() {
            settings::Auth::Identity { managed, client_id } => AccountReference::with_credential(
                endpoint,
                settings::token_credential(*managed, client_id.as_deref())?,
            ),
            settings::Auth::Key(key) => key_account(endpoint, key, setting)?,
        };
        // An empty preference list means the account's own region order: the apps run in
        // the account's region.
        let client = builder
            .build(account, RoutingStrategy::PreferredRegions(Vec::new()))
            .await
            .map_err(|source| Error::Connect {
                endpoint: config.endpoint().to_owned(),
                source,
            })?;
        tracing::info!(
            endpoint = config.endpoint(),
            database = config.database(),
            account_key = config.uses_account_key(),
            "documents: Cosmos DB"
        );
        Ok(Self::with_client(client, config.database()))
    }

    /// A store over an existing client and database.
    pub fn with_client(client: CosmosClient, database: &str) -> Self {
        CosmosDocumentStore {
            database: client.database_client(database.to_owned()),
            database_name: database.to_owned(),
            containers: RwLock::new(HashMap::new()),
            meter: usage::Meter::default(),
        }
    }

    pub fn database(&self) -> &str {
        &self.database_name
    }

    /// Calls, requests and request units so far, per operation kind.
    pub fn usage(&self) -> Usage {
        self.meter.snapshot()
    }

    /// The container's client, resolved (and its partition key checked) once per process.
    async fn container(&self, name: &str) -> Result<ContainerClient> {
        validate_key("a container name", name)?;
        if let Some(client) = self
            .containers
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .get(name)
        {
            return Ok(client.clone());
        }
        let missing = |e: CosmosError| match errors::to_port(e) {
            PortError::NotFound => PortError::backend(
                "cosmos",
                format!(
                    "container {name:?} does not exist in database {:?}; containers are \
                     provisioned with the infrastructure, not by the apps",
                    self.database_name
                ),
            ),
            other => other,
        };
        let client = self
            .database
            .container_client(name.to_owned(), None)
            .await
            .map_err(missing)?;
        let properties = match client.read(None).await {
            Ok(response) => {
                self.meter
                    .record_call("container", Some(&response.diagnostics()));
                response.into_model().map_err(errors::to_port)?
            }
            Err(e) => {
                self.meter
                    .record_call("container", e.diagnostics().as_deref());
                return Err(missing(e));
            }
        };
        let paths = properties.partition_key.paths();
        if paths.len() != 1 || paths[0] != item::PARTITION_KEY_PATH {
            return Err(PortError::backend(
                "cosmos",
                format!(
                    "container {name:?} is partitioned by {paths:?}; this store needs {:?}",
                    item::PARTITION_KEY_PATH
                ),
            ));
        }
        if properties.default_ttl.is_forever() {
            // Readers still obey each item's expiry; only reclaiming the storage is lost.
            tracing::warn!(
                container = name,
                "container has TTL off (defaultTtl unset): expired documents are hidden but \
                 never reclaimed; provision it with defaultTtl -1"
            );
        }
        self.containers
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .insert(name.to_owned(), client.clone());
        Ok(client)
    }

    /// What occupies `id` for a create that found it taken.
    async fn existing(
        &self,
        client: &ContainerClient,
        partition: &str,
        id: &str,
    ) -> Result<Existing> {
        match client.read_item(partition.to_owned(), id, None).await {
            Ok(response) => {
                self.meter
                    .record_call("read", Some(&response.diagnostics()));
                let etag = etag_of(&response)?;
                let value: Value = response.into_model().map_err(errors::to_port)?;
                let item = StoredItem::parse(value)?;
                Ok(if item.is_expired(now_ms()) {
                    Existing::Expired(etag.0)
                } else {
                    Existing::Live
                })
            }
            Err(e) => {
                self.meter.record_call("read", e.diagnostics().as_deref());
                match errors::to_port(e) {
                    PortError::NotFound => Ok(Existing::Gone),
                    other => Err(other),
                }
            }
        }
    }

    /// One write as a point operation.
    async fn write_one(
        &self,
        client: &ContainerClient,
        partition: &str,
        op: Prepared,
    ) -> Result<Option<ETag>> {
        let pk = || partition.to_owned();
        match op {
            Prepared::Create { id, item } => self
                .create_one(client, partition, &id, &item)
                .await
                .map(Some),
            Prepared::Upsert { id, item } => {
                let result = client.upsert_item(pk(), &id, &item, None).await;
                self.finish_write("upsert", result).map(Some)
            }
            Prepared::Replace { id, item, if_match } => {
                let result = client
                    .replace_item(pk(), &id, &item, write_options(if_match.as_deref()))
                    .await;
                self.finish_write("replace", result).map(Some)
            }
            Prepared::Takeover { id, item, expired } => {
                let result = client
                    .replace_item(pk(), &id, &item, write_options(Some(&expired)))
                    .await;
                self.finish_write("replace", result).map(Some)
            }
            Prepared::Delete { id, if_match } => {
                let result = client
                    .delete_item(pk(), &id, write_options(if_match.as_deref()))
                    .await;
                match result {
                    Ok(response) => {
                        self.meter
                            .record_call("delete", Some(&response.diagnostics()));
                        Ok(None)
                    }
                    Err(e) => {
                        self.meter.record_call("delete", e.diagnostics().as_deref());
                        Err(errors::to_port(e))
                    }
                }
            }
        }
    }

    /// Records a point write and reads its etag.
    fn finish_write(
        &self,
        operation: &'static str,
        result: azure_data_cosmos::Result<ItemResponse>,
    ) -> Result<ETag> {
        match result {
            Ok(response) => {
                self.meter
                    .record_call(operation, Some(&response.diagnostics()));
                etag_of(&response)
            }
            Err(e) => {
                self.meter
                    .record_call(operation, e.diagnostics().as_deref());
                Err(errors::to_port(e))
            }
        }
    }

    /// A create; an expired item in the way is replaced (that exact version only).
    async fn create_one(
        &self,
        client: &ContainerClient,
        partition: &str,
        id: &str,
        item: &Value,
    ) -> Result<ETag> {
        for _ in 0..MAX_TAKEOVER_ROUNDS {
            let created = client
                .create_item(partition.to_owned(), id, item, None)
                .await;
            match self.finish_write("create", created) {
                Err(PortError::AlreadyExists) => {}
                other => return other,
            }
            let expired = match self.existing(client, partition, id).await? {
                Existing::Live => return Err(PortError::AlreadyExists),
                // Reclaimed in between: create again.
                Existing::Gone => continue,
                Existing::Expired(etag) => etag,
            };
            let replaced = client
                .replace_item(
                    partition.to_owned(),
                    id,
                    item,
                    write_options(Some(&expired)),
                )
                .await;
            match self.finish_write("replace", replaced) {
                // Another writer took it over or it was reclaimed: decide again.
                Err(PortError::PreconditionFailed | PortError::NotFound) => {}
                other => return other,
            }
        }
        Err(PortError::AlreadyExists)
    }

    /// Several writes as one transactional batch.
    async fn write_batch(
        &self,
        client: &ContainerClient,
        partition: &str,
        mut ops: Vec<Prepared>,
    ) -> Result<Vec<Option<ETag>>> {
        for _ in 0..MAX_TAKEOVER_ROUNDS {
            let failure = match self.execute_batch(client, partition, &ops).await? {
                Ok(etags) => {
                    return ops
                        .iter()
                        .zip(etags)
                        .map(|(op, etag)| match (op.returns_etag(), etag) {
                            (true, Some(etag)) => Ok(Some(ETag(etag))),
                            (true, None) => Err(PortError::backend(
                                "cosmos",
                                "a batch write came back without an etag",
                            )),
                            (false, _) => Ok(None),
                        })
                        .collect();
                }
                Err(failure) => failure,
            };
            let Some(index) = failure.index else {
                return Err(errors::batch_failure_to_port(&failure));
            };
            let Some(op) = ops.get_mut(index) else {
                return Err(errors::batch_failure_to_port(&failure));
            };
            match (failure.status, &mut *op) {
                (409, Prepared::Create { id, item }) => {
                    match self.existing(client, partition, id).await? {
                        Existing::Live => return Err(PortError::AlreadyExists),
                        // Reclaimed in between: send the same batch again.
                        Existing::Gone => {}
                        Existing::Expired(expired) => {
                            let (id, item) = (std::mem::take(id), std::mem::take(item));
                            *op = Prepared::Takeover { id, item, expired };
                        }
                    }
                }
                // The expired item moved under us: decide again, from a plain create.
                (404 | 412, Prepared::Takeover { id, item, .. }) => {
                    let (id, item) = (std::mem::take(id), std::mem::take(item));
                    *op = Prepared::Create { id, item };
                }
                _ => return Err(errors::batch_failure_to_port(&failure)),
            }
        }
        Err(PortError::AlreadyExists)
    }

    /// Sends one batch: `Ok(Ok(etags))` when it committed, `Ok(Err(failure))` when Cosmos
    /// refused one of its operations (nothing committed), `Err` for everything else.
    async fn execute_batch(
        &self,
        client: &ContainerClient,
        partition: &str,
        ops: &[Prepared],
    ) -> Result<std::result::Result<Vec<Option<String>>, BatchFailure>> {
        let sdk_error = |e: CosmosError| PortError::backend("cosmos", e);
        let mut batch = TransactionalBatch::new(partition.to_owned());
        for op in ops {
            batch = match op {
                Prepared::Create { item, .. } => batch.create_item(item).map_err(sdk_error)?,
                Prepared::Upsert { item, .. } => {
                    batch.upsert_item(item, None).map_err(sdk_error)?
                }
                Prepared::Replace { id, item, if_match } => batch
                    .replace_item(
                        id.clone(),
                        item,
                        if_match.as_deref().map(|e| {
                            BatchReplaceOptions::default().with_precondition(self::if_match(e))
                        }),
                    )
                    .map_err(sdk_error)?,
                Prepared::Takeover { id, item, expired } => batch
                    .replace_item(
                        id.clone(),
                        item,
                        Some(
                            BatchReplaceOptions::default()
                                .with_precondition(self::if_match(expired)),
                        ),
                    )
                    .map_err(sdk_error)?,
                Prepared::Delete { id, if_match } => batch.delete_item(
                    id.clone(),
                    if_match.as_deref().map(|e| {
                        BatchDeleteOptions::default().with_precondition(self::if_match(e))
                    }),
                ),
            };
        }
        match client.execute_transactional_batch(batch, None).await {
            Ok(response) => {
                self.meter
                    .record_call("batch", Some(&response.diagnostics()));
                let status = u16::from(response.status().status_code());
                let model = response.into_model().map_err(errors::to_port)?;
                let results: Vec<OpResult> = model
                    .results()
                    .iter()
                    .map(|r| OpResult {
                        status_code: r.status_code(),
                        etag: r.etag().map(str::to_owned),
                        retry_after_milliseconds: r
                            .retry_after()
                            .map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX)),
                    })
                    .collect();
                Ok(errors::batch_outcome(status, &results, ops.len()))
            }
            Err(e) => {
                self.meter.record_call("batch", e.diagnostics().as_deref());
                // Cosmos answers a refused batch with the failing operation's status and the
                // per-operation results in the body.
                match errors::batch_results_of(&e) {
                    Some(results) if !results.is_empty() => {
                        let (status, _) = errors::batch_error(&e);
                        Ok(errors::batch_outcome(status, &results, ops.len()))
                    }
                    _ => Err(errors::to_port(e)),
                }
            }
        }
    }
}

#[cfg(feature = "key_auth")]
fn key_account(
    endpoint: AccountEndpoint,
    key: &azure_core::credentials::Secret,
    _setting: &'static str,
) -> Result<AccountReference, Error> {
    Ok(AccountReference::with_authentication_key(
        endpoint,
        key.clone(),
    ))
}

#[cfg(not(feature = "key_auth"))]
fn key_account(
    _endpoint: AccountEndpoint,
    _key: &azure_core::credentials::Secret,
    setting: &'static str,
) -> Result<AccountReference, Error> {
    Err(Error::KeyAuthNotBuilt { setting })
}

#[async_trait]
impl DocumentStore for CosmosDocumentStore {
    async fn read(&self, container: &str, partition: &str, id: &str) -> Result<Option<Document>> {
        validate_key("a container name", container)?;
        validate_key("a partition key", partition)?;
        validate_key("a document id", id)?;
        let client = self.container(container).await?;
        match client.read_item(partition.to_owned(), id, None).await {
            Ok(response) => {
                self.meter
                    .record_call("read", Some(&response.diagnostics()));
                let etag = etag_of(&response)?;
                let value: Value = response.into_model().map_err(errors::to_port)?;
                let item = StoredItem::parse(value)?;
                if item.is_expired(now_ms()) {
                    return Ok(None);
                }
                item.into_document(Some(etag.0)).map(Some)
            }
            Err(e) => {
                self.meter.record_call("read", e.diagnostics().as_deref());
                match errors::to_port(e) {
                    PortError::NotFound => Ok(None),
                    other => Err(other),
                }
            }
        }
    }

    async fn batch(
        &self,
        container: &str,
        partition: &str,
        ops: Vec<WriteOp>,
    ) -> Result<Vec<Option<ETag>>> {
        validate_key("a container name", container)?;
        validate_key("a partition key", partition)?;
        if ops.is_empty() || ops.len() > MAX_BATCH {
            return Err(PortError::Invalid(format!(
                "a batch holds 1-{MAX_BATCH} operations"
            )));
        }
        let now = now_ms();
        let mut prepared = ops
            .into_iter()
            .map(|op| Prepared::new(partition, op, now))
            .collect::<Result<Vec<_>>>()?;
        let client = self.container(container).await?;
        if prepared.len() == 1 {
            let op = prepared
                .pop()
                .ok_or_else(|| PortError::Invalid("empty batch".into()))?;
            return Ok(vec![self.write_one(&client, partition, op).await?]);
        }
        self.write_batch(&client, partition, prepared).await
    }

    async fn query(&self, container: &str, query: &Query) -> Result<Page> {
        validate_key("a container name", container)?;
        if let Some(partition) = &query.partition {
            validate_key("a partition key", partition)?;
        }
        // Filters and the continuation are checked before any request is made.
        let sql = query::build(container, query, now_ms())?;
        let client = self.container(container).await?;
        let mut cosmos_query = azure_data_cosmos::Query::from(sql.text);
        for (name, value) in sql.parameters {
            cosmos_query = cosmos_query
                .with_parameter(name, value)
                .map_err(|e| PortError::backend("cosmos", e))?;
        }
        let mut options = QueryOptions::default();
        let fetch = u32::try_from(sql.page + 1).unwrap_or(u32::MAX);
        // One page of the server's holds the whole `TOP`, so a port page is one request.
        options.feed.max_item_count = NonZeroU32::new(fetch).map(MaxItemCountHint::Limit);
        let scope = match &query.partition {
            Some(partition) => FeedScope::partition(partition.clone()),
            None => {
                let mut operation = OperationOptions::default();
                operation.custom_headers = Some(HashMap::from([(
                    HeaderName::from_static(ENABLE_CROSS_PARTITION),
                    HeaderValue::from_static("true"),
                )]));
                options.operation = operation;
                FeedScope::full_container()
            }
        };
        let mut pages = match client
            .query_items::<Value>(cosmos_query, scope, Some(options))
            .await
        {
            Ok(items) => items.into_pages(),
            Err(e) => {
                self.meter.record_call("query", e.diagnostics().as_deref());
                return Err(errors::to_port(e));
            }
        };
        let mut rows = Vec::new();
        while rows.len() <= sql.page {
            match pages.next().await {
                None => break,
                Some(Ok(page)) => {
                    self.meter.record_call("query", Some(&page.diagnostics()));
                    rows.extend(page.into_items());
                }
                Some(Err(e)) => {
                    self.meter.record_call("query", e.diagnostics().as_deref());
                    return Err(errors::to_port(e));
                }
            }
        }
        let more = rows.len() > sql.page;
        rows.truncate(sql.page);
        let documents = rows
            .into_iter()
            .map(|row| StoredItem::parse(row)?.into_document(None))
            .collect::<Result<Vec<_>>>()?;
        let continuation = match documents.last() {
            Some(last) if more => Some(query::encode_continuation(
                &sql.fingerprint,
                &item::sort_key(&last.partition, &last.id),
            )),
            _ => None,
        };
        Ok(Page {
            documents,
            continuation,
        })
    }
}
