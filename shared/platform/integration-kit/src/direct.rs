//! Calls an app makes from its own routes, answered in the request itself (the model
//! gateway's OpenAI-compatible API; later the mcp app's tool calls): the app picks among the
//! tenant's connections ([`Direct::connections`]), calls the vendor through the same
//! pipeline, custody and token cache as a run's provider ([`Direct::prepare`],
//! [`Prepared::call`]), and records what happened as a run of one of its operations
//! ([`Direct::record`]): the same run documents, `IntegrationRunCompleted` /
//! `IntegrationFailed` and failure ledger as a queued run, so usage and failures are read
//! from one place.
//!
//! The record is written after the answer (off the request's critical path) in one batch
//! with its events through the outbox; what the record holds was decided before the answer
//! left, so a retry of the batch writes the same thing. A process that dies between the
//! answer and the batch loses that record: the window is one group commit long.

use std::sync::Arc;

use chrono::{DateTime, Utc};
use custody::SecretMaterial;
use domain::{
    ConnectionConfig, IntegrationConnection, IntegrationRun, NewRun, OperationName, PayloadRef,
    RunId, TenantId, TraceId,
};
use envelope::TraceParent;
use ports::{PutOptions, WriteOp};
use resilience::{CallError, CallKey, RateLimit};
use serde_json::Value;

use crate::operation::Done;
use crate::provider::ProviderCall;
use crate::store::{RUN, StoredRun, run_doc_id};
use crate::{INPUT_CONTAINER, Kit};

/// The kit, as an app's own routes use it.
#[derive(Clone)]
pub struct Direct {
    kit: Arc<Kit>,
}

impl std::fmt::Debug for Direct {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Direct")
            .field("app", &self.kit.app.slug)
            .finish()
    }
}

impl Direct {
    pub(crate) fn new(kit: Arc<Kit>) -> Self {
        Direct { kit }
    }

    /// The app's context (ports, settings, the authenticator of `api_kit::Caller`).
    pub fn ctx(&self) -> &app_context::AppContext {
        &self.kit.ctx
    }

    /// The app's slug.
    pub fn slug(&self) -> &'static str {
        self.kit.app.slug
    }

    /// The tenant's usable connections of the app whose provider the app serves, in
    /// priority order (`config.priority`, lowest first, absent = 100; then oldest first).
    /// Read at most once per five seconds per tenant (a connection made here is seen at
    /// once).
    pub async fn connections(
        &self,
        tenant: &str,
    ) -> Result<Arc<Vec<IntegrationConnection>>, ports::PortError> {
        crate::connections::by_priority(&self.kit, tenant).await
    }

    /// What a call through `connection` needs: its credential resolved through custody
    /// (`auth` when it is gone or revoked), its pipeline key and the provider's rate limit.
    pub async fn prepare(
        &self,
        tenant: &TenantId,
        connection: &IntegrationConnection,
        run: RunId,
    ) -> Result<Prepared, CallError> {
        let resolved = self
            .kit
            .resolver
            .resolve(tenant.as_str(), &connection.credential_id())
            .await
            .map_err(|e| match e {
                custody::ResolveError::NotFound | custody::ResolveError::Revoked => {
                    crate::provider::fail(
                        domain::FailureClassification::Auth,
                        "the connection's credential is gone or revoked",
                    )
                }
                _ => crate::provider::fail(
                    domain::FailureClassification::Transient,
                    "the connection's credential could not be read",
                ),
            })?;
        let provider = connection.provider_key().as_str();
        let reach =
            crate::private_endpoints::reach(&self.kit, tenant.as_str(), connection.config())
                .await?;
        Ok(Prepared {
            reach,
            kit: self.kit.clone(),
            key: crate::call_key(tenant.as_str(), provider, &connection.id()),
            config: connection.config().clone(),
            material: resolved.material.clone(),
            rate_limit: self.kit.rate_limit(provider).await,
            run: run.to_string(),
        })
    }

    /// Records a call as a finished run of `record.operation` (succeeded with its output and
    /// usage, or failed with one `IntegrationFailure`), with its events, in one batch.
    pub async fn record(&self, record: DirectRun) -> Result<(), ports::PortError> {
        let kit = &self.kit;
        let DirectRun {
            tenant,
            run_id,
            operation,
            connection,
            input,
            outcome,
            traceparent,
            started_at,
            also,
        } = record;
        let now = Utc::now();
        let blob = crate::runs::input_blob(tenant.as_str(), &run_id);
        let input_ref = PayloadRef::parse(&format!("{INPUT_CONTAINER}/{blob}"))
            .map_err(|e| ports::PortError::Invalid(e.to_string()))?;
        kit.ctx
            .blobs
            .put(
                INPUT_CONTAINER,
                &blob,
                bytes::Bytes::from(serde_json::to_vec(&input).unwrap_or_default()),
                PutOptions {
                    content_type: Some("application/json".into()),
                    if_none_match: false,
                },
            )
            .await?;
        let invalid = |e: &dyn std::fmt::Display| ports::PortError::Invalid(e.to_string());
        let trace_id =
            TraceId::from_bytes(traceparent.trace_id().to_bytes()).map_err(|e| invalid(&e))?;
        let mut stored = StoredRun::new(IntegrationRun::queue(
            NewRun {
                tenant_id: tenant.clone(),
                id: run_id,
                connection_id: connection.id(),
                provider_key: connection.provider_key().clone(),
                operation: OperationName::parse(operation).map_err(|e| invalid(&e))?,
                input_ref,
                idempotency_key: None,
                trace_id,
            },
            started_at,
        ));
        let mut ops = Vec::new();
        let mut events = stored.run.start(started_at).map_err(|e| invalid(&e))?;
        match outcome {
            Ok(done) => {
                crate::executor::succeed(
                    kit,
                    &tenant,
                    &mut stored,
                    &connection,
                    done,
                    now,
                    &mut ops,
                    &mut events,
                )
                .await
                .map_err(|e| invalid(&format!("{e:?}")))?;
            }
            Err(e) => {
                stored.served_by = Some(connection.id());
                stored.served_by_provider = Some(connection.provider_key().as_str().to_owned());
                crate::executor::record_failure(
                    &mut stored,
                    &tenant,
                    &e,
                    false,
                    now,
                    &mut ops,
                    &mut events,
                )
                .map_err(|e| invalid(&format!("{e:?}")))?;
            }
        }
        ops.insert(
            0,
            WriteOp::create(
                run_doc_id(&run_id),
                api_kit::Aggregates::document(&stored, RUN)
                    .map_err(|e| invalid(&format!("{e:?}")))?,
            ),
        );
        ops.extend(also);
        crate::executor::commit(kit, &tenant, ops, &events, Some(&traceparent)).await
    }
}

/// A finished call, as [`Direct::record`] keeps it.
#[derive(Debug)]
pub struct DirectRun {
    pub tenant: TenantId,
    /// Chosen before the call (callers are told it at once).
    pub run_id: RunId,
    /// One of the app's operation names.
    pub operation: &'static str,
    /// The connection that served the call, or the last one tried.
    pub connection: IntegrationConnection,
    /// What the caller asked (kept in blob storage as the run's input).
    pub input: Value,
    pub outcome: Result<Done<Value>, CallError>,
    /// The request's trace (a new root when the caller sent none).
    pub traceparent: TraceParent,
    pub started_at: DateTime<Utc>,
    /// Documents of the app written in the same batch as the run (in its container and the
    /// tenant's partition): the model gateway's usage entry, which so exists exactly when
    /// the run does.
    pub also: Vec<WriteOp>,
}

/// A connection ready to be called ([`Direct::prepare`]).
pub struct Prepared {
    kit: Arc<Kit>,
    reach: crate::private_endpoints::Reach,
    key: CallKey,
    config: ConnectionConfig,
    material: Arc<SecretMaterial>,
    rate_limit: Option<RateLimit>,
    run: String,
}

impl Prepared {
    /// The provider call, as a run's provider gets it: the pipeline, the guarded client, the
    /// credential, the token cache; the run's id as its idempotency key.
    pub fn call<'a>(&'a self, traceparent: Option<&'a TraceParent>) -> ProviderCall<'a> {
        ProviderCall {
            pipeline: &self.kit.pipeline,
            http: &self.reach.http,
            guard: &self.reach.guard,
            key: &self.key,
            config: &self.config,
            credential: &self.material,
            traceparent,
            idempotency_key: Some(&self.run),
            max_attempts: None,
            rate_limit: self.rate_limit,
            receipt_url: None,
            tokens: &self.kit.tokens,
        }
    }
}
