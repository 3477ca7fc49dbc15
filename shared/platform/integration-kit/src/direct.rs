//! Calls an app makes from its own routes, answered in the request itself (the model
//! gateway's OpenAI-compatible API; later the mcp app's tool calls): the app picks among the
//! tenant's connections ([`Direct::connections`]), calls the vendor through the same
//! pipeline, custody and token cache as a run's provider ([`Direct::prepare`],
//! [`Prepared::call`]), and records what happened as a run of one of its operations
//! ([`Direct::record`]): the same run documents, `IntegrationRunCompleted` /
//! `IntegrationFailed` and failure ledger as a queued run, so usage and failures are read
//! from one place.
//!
//! A call is durable before its answer leaves: [`Direct::begin`] writes the run `running`
//! (its input in blob storage) while the vendor is called, and the app awaits that write
//! ([`Begun::stored`]) before answering, which costs nothing unless the store is slower
//! than the vendor. The outcome is written after the answer (off the request's critical
//! path) in one batch with its events through the outbox; what it holds was decided before
//! the answer left, so a retry of the batch writes the same thing. A process that dies
//! between the answer and that batch leaves the run `running`: the `SweepDirectRuns` timer
//! fails such runs once they are older than any call can last
//! ([`DIRECT_RUNS_STALE_AFTER_SETTING`]), with an `IntegrationFailure` saying the outcome
//! was lost. A timer rather than a scheduled message per call (as waited runs have): direct
//! calls are many and short, and one query per tick over the calls in flight costs less
//! than a bus message for each.

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

    /// Starts writing the call's run, `running`, with its input (returns at once; the
    /// write goes on beside the vendor call). Await [`Begun::stored`] before answering.
    pub fn begin(&self, intent: Intent<'_>) -> Begun {
        let kit = self.kit.clone();
        let input = bytes::Bytes::from(serde_json::to_vec(intent.input).unwrap_or_default());
        let blob = crate::runs::input_blob(intent.tenant.as_str(), &intent.run_id);
        let tenant = intent.tenant.clone();
        let run = intent.run_id;
        let doc = started(&intent).and_then(|(stored, _)| {
            api_kit::Aggregates::document(&stored, RUN)
                .map_err(|e| ports::PortError::Invalid(format!("{e:?}")))
        });
        Begun(tokio::spawn(async move {
            let written = async {
                let doc = doc?;
                let (put, created) = tokio::join!(
                    put_input(&kit, &blob, input),
                    kit.ctx.documents.batch(
                        kit.app.slug,
                        tenant.as_str(),
                        vec![WriteOp::create(run_doc_id(&run), doc)],
                    )
                );
                put.and(created.map(|_| ()))
            };
            match written.await {
                Ok(()) => true,
                Err(e) => {
                    // The outcome's batch writes the whole run after the answer instead.
                    tracing::warn!(tenant = %tenant, run = %run, error = %e,
                        "a call's run could not be written before its answer");
                    false
                }
            }
        }))
    }

    /// Records a call as a finished run of `record.operation` (succeeded with its output and
    /// usage, or failed with one `IntegrationFailure`), with its events, in one batch.
    pub async fn record(&self, record: DirectRun) -> Result<(), ports::PortError> {
        let kit = &self.kit;
        let invalid = |e: &dyn std::fmt::Display| ports::PortError::Invalid(e.to_string());
        let (mut stored, mut events) = started(&Intent {
            tenant: &record.tenant,
            run_id: record.run_id,
            operation: record.operation,
            connection: &record.connection,
            input: &record.input,
            traceparent: &record.traceparent,
            started_at: record.started_at,
        })?;
        let DirectRun {
            tenant,
            run_id,
            connection,
            input,
            outcome,
            traceparent,
            also,
            begun,
            ..
        } = record;
        if !begun {
            let blob = crate::runs::input_blob(tenant.as_str(), &run_id);
            let input = bytes::Bytes::from(serde_json::to_vec(&input).unwrap_or_default());
            put_input(kit, &blob, input).await?;
        }
        let now = Utc::now();
        stored.direct = false;
        let mut ops = Vec::new();
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
        // Replaces the `running` document [`Direct::begin`] wrote.
        ops.insert(
            0,
            WriteOp::upsert(
                run_doc_id(&run_id),
                api_kit::Aggregates::document(&stored, RUN)
                    .map_err(|e| invalid(&format!("{e:?}")))?,
            ),
        );
        ops.extend(also);
        crate::executor::commit(kit, &tenant, ops, &events, Some(&traceparent)).await
    }
}

/// The run of a call about to be made, `running`, and the events of its start.
fn started(intent: &Intent<'_>) -> Result<(StoredRun, Vec<domain::DomainEvent>), ports::PortError> {
    let invalid = |e: &dyn std::fmt::Display| ports::PortError::Invalid(e.to_string());
    let blob = crate::runs::input_blob(intent.tenant.as_str(), &intent.run_id);
    let input_ref =
        PayloadRef::parse(&format!("{INPUT_CONTAINER}/{blob}")).map_err(|e| invalid(&e))?;
    let trace_id =
        TraceId::from_bytes(intent.traceparent.trace_id().to_bytes()).map_err(|e| invalid(&e))?;
    let mut stored = StoredRun::new(IntegrationRun::queue(
        NewRun {
            tenant_id: intent.tenant.clone(),
            id: intent.run_id,
            connection_id: intent.connection.id(),
            provider_key: intent.connection.provider_key().clone(),
            operation: OperationName::parse(intent.operation).map_err(|e| invalid(&e))?,
            input_ref,
            idempotency_key: None,
            trace_id,
        },
        intent.started_at,
    ));
    stored.direct = true;
    let events = stored
        .run
        .start(intent.started_at)
        .map_err(|e| invalid(&e))?;
    Ok((stored, events))
}

async fn put_input(kit: &Kit, blob: &str, input: bytes::Bytes) -> Result<(), ports::PortError> {
    kit.ctx
        .blobs
        .put(
            INPUT_CONTAINER,
            blob,
            input,
            PutOptions {
                content_type: Some("application/json".into()),
                if_none_match: false,
            },
        )
        .await
        .map(|_| ())
}

/// A call about to be made ([`Direct::begin`]).
#[derive(Debug, Clone, Copy)]
pub struct Intent<'a> {
    pub tenant: &'a TenantId,
    /// Chosen before the call (callers are told it at once).
    pub run_id: RunId,
    /// One of the app's operation names.
    pub operation: &'static str,
    /// The connection expected to serve it (the outcome names the one that did).
    pub connection: &'a IntegrationConnection,
    pub input: &'a Value,
    pub traceparent: &'a TraceParent,
    pub started_at: DateTime<Utc>,
}

/// The write of a call's `running` run ([`Direct::begin`]).
#[derive(Debug)]
#[must_use = "await `stored` before answering"]
pub struct Begun(tokio::task::JoinHandle<bool>);

impl Begun {
    /// Whether the run is durable: awaited before the answer leaves (set the outcome's
    /// [`DirectRun::begun`] from it).
    pub async fn stored(self) -> bool {
        self.0.await.unwrap_or(false)
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
    /// Whether [`Direct::begin`] stored the run (its input is then in place).
    pub begun: bool,
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

/// Setting: the NCRONTAB schedule of `SweepDirectRuns`.
pub const DIRECT_RUNS_SWEEP_SCHEDULE_SETTING: &str = "DIRECT_RUNS_SWEEP_SCHEDULE";
/// Every five minutes: a lost outcome is rare (a process killed mid-call) and only its
/// record waits for the sweep; the caller was answered, or saw the connection drop.
pub const DEFAULT_DIRECT_RUNS_SWEEP_SCHEDULE: &str = "0 */5 * * * *";
/// Setting: how long after its start a direct call's run still `running` is known to have
/// lost its outcome, in seconds. It must exceed the longest call an app serves.
pub const DIRECT_RUNS_STALE_AFTER_SETTING: &str = "DIRECT_RUNS_STALE_AFTER_SECONDS";
/// Fifteen minutes: past the Functions host's HTTP limit (230 s) and any app's own cap on a
/// call (the model gateway's streams stop at 200 s by default).
pub(crate) const DEFAULT_DIRECT_RUNS_STALE_AFTER: std::time::Duration =
    std::time::Duration::from_secs(15 * 60);
/// The most runs one tick fails; the rest wait for the next tick.
const MAX_SWEPT_PER_TICK: usize = 5_000;

/// What a swept run's failure says.
pub(crate) const LOST_OUTCOME: &str = "the call's outcome was not recorded: the process serving \
     it ended first (its answer may have reached the caller)";

/// The timer: every direct call's run left `running` past the stale age fails with one
/// `IntegrationFailure` (classified transient, not retried: the call is not made again).
pub(crate) async fn sweep(
    kit: Arc<Kit>,
    inv: functions_runtime::Invocation,
) -> Result<functions_runtime::InvocationResponse, functions_runtime::InvocationError> {
    use functions_runtime::InvocationError;
    inv.timer()?;
    let now = Utc::now();
    let stale_before =
        now - chrono::TimeDelta::from_std(kit.direct_stale_after).unwrap_or(chrono::TimeDelta::MAX);
    let (mut token, mut seen, mut swept) = (None, 0usize, 0usize);
    loop {
        let query = ports::Query::cross_partition()
            .filter("docType", RUN)
            .filter("status", "running")
            .filter("direct", true)
            .limit(500)
            .after(token);
        let page = kit
            .ctx
            .documents
            .query(kit.app.slug, &query)
            .await
            .map_err(|e| InvocationError::transient(e.to_string()))?;
        for doc in &page.documents {
            let Ok(tenant) = TenantId::parse(&doc.partition) else {
                continue;
            };
            let stored = match doc.parse::<StoredRun>() {
                Ok(s) => s,
                Err(e) => {
                    tracing::error!(id = %doc.id, error = %e, "an unreadable run; not swept");
                    continue;
                }
            };
            let started = stored
                .run
                .current_attempt()
                .map_or(stored.run.created_at(), |a| a.started_at);
            if started >= stale_before {
                continue;
            }
            match fail_lost(&kit, &tenant, stored, doc.etag.clone(), now).await {
                Ok(()) => swept += 1,
                // Its outcome came meanwhile, or another instance swept it.
                Err(ports::PortError::PreconditionFailed) => {}
                Err(e) => tracing::warn!(tenant = %tenant, id = %doc.id, error = %e,
                    "a lost call's run could not be failed; the next sweep tries again"),
            }
        }
        seen += page.documents.len();
        token = page.continuation;
        if token.is_none() || seen >= MAX_SWEPT_PER_TICK {
            break;
        }
    }
    tracing::info!(app = kit.app.slug, seen, swept, "direct runs swept");
    Ok(functions_runtime::InvocationResponse::default())
}

async fn fail_lost(
    kit: &Kit,
    tenant: &TenantId,
    mut stored: StoredRun,
    etag: ports::ETag,
    now: DateTime<Utc>,
) -> Result<(), ports::PortError> {
    let invalid = |e: &dyn std::fmt::Debug| ports::PortError::Invalid(format!("{e:?}"));
    let lost = CallError {
        failure: resilience::VendorFailure::new(
            domain::FailureClassification::Transient,
            LOST_OUTCOME,
        ),
        retryable: false,
        attempts: 1,
    };
    stored.direct = false;
    let (mut ops, mut events) = (Vec::new(), Vec::new());
    crate::executor::record_failure(
        &mut stored,
        tenant,
        &lost,
        false,
        now,
        &mut ops,
        &mut events,
    )
    .map_err(|e| invalid(&e))?;
    ops.insert(
        0,
        WriteOp::replace(
            run_doc_id(&stored.run.id()),
            api_kit::Aggregates::document(&stored, RUN).map_err(|e| invalid(&e))?,
            Some(etag),
        ),
    );
    crate::executor::commit(kit, tenant, ops, &events, None).await
}
