//! Records an app keeps of a vendor's objects (the payment app's payments), reconciled from
//! the vendor's own word: whatever says a record may have changed (the vendor's webhook, a
//! run that touched it, the record's scheduled look) only asks the app's [`Reconciler`] to
//! fetch the record from the vendor and apply what it finds, so the order and number of
//! callbacks do not matter and a callback that never comes is covered by the next look.
//!
//! Three ways in, one code path:
//! - a provider's webhook reader answers [`WebhookEffect::Reconcile`](crate::WebhookEffect)
//!   (applied once per vendor delivery id, as every routed webhook is);
//! - a run's [`Done::reconcile_after`](crate::Done) schedules a look at the record it
//!   created or changed, in the batch that records the run's success;
//! - the reconciler schedules the next look itself ([`Reconcile::later`]) while the record
//!   is not final: a scheduled message per record, never a scan.
//!
//! Each is a [`RECORD_RECONCILE`] command on `runs-<slug>` (or, for a webhook, the routed
//! webhook's own invocation), handled by the app's reconciler with a [`Reconcile`]: the
//! connection, a fetch through the provider's own operation ([`Reconcile::fetch`]: the
//! pipeline, custody, the SSRF guard), and a commit through the outbox.

use std::sync::Arc;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use domain::{IntegrationConnection, RunId, TenantId};
use envelope::{Envelope, TraceParent};
use functions_runtime::InvocationError;
use ports::{PortError, WriteOp};
use resilience::CallError;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use sha2::{Digest as _, Sha256};

use crate::Kit;
use crate::direct::Direct;
use crate::executor::{permanent, transient};
use crate::operation::{Operation, Step};
use crate::store::{connection_doc_id, hex};

/// CloudEvents `type` of the command on `runs-<slug>`: "look at this record again".
pub const RECORD_RECONCILE: &str = "connectsoft.integration.record.reconcile.v1";

/// Why a record is being looked at.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "camelCase")]
pub enum ReconcileReason {
    /// The vendor's webhook said it changed; `attempt` counts the looks while the app does
    /// not know the record yet (a callback can overtake the run that created the record).
    #[serde(rename_all = "camelCase")]
    Callback {
        vendor_event_id: Option<String>,
        attempt: u32,
    },
    /// A run created or changed it.
    #[serde(rename_all = "camelCase")]
    Run { run_id: RunId },
    /// The record's `n`th scheduled look while it is not final.
    Sweep { n: u32 },
}

impl ReconcileReason {
    /// `callback`, `run` or `sweep`.
    pub fn name(&self) -> &'static str {
        match self {
            ReconcileReason::Callback { .. } => "callback",
            ReconcileReason::Run { .. } => "run",
            ReconcileReason::Sweep { .. } => "sweep",
        }
    }

    /// The vendor's event id, for a callback that has one.
    pub fn vendor_event_id(&self) -> Option<&str> {
        match self {
            ReconcileReason::Callback {
                vendor_event_id, ..
            } => vendor_event_id.as_deref(),
            _ => None,
        }
    }
}

/// The command's data.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct ReconcileRequested {
    pub(crate) connection_id: domain::ConnectionId,
    pub(crate) record_id: String,
    pub(crate) reason: ReconcileReason,
}

/// An app's reconciliation of its records ([`VendorApp::reconciler`](crate::VendorApp)).
#[async_trait]
pub trait Reconciler: Send + Sync {
    /// Fetches the record from the vendor and applies what it finds. An error is retried
    /// (the command is redelivered); what can never succeed should be logged and dropped.
    async fn reconcile(&self, r: &Reconcile<'_>) -> Result<(), InvocationError>;
}

/// One look at one record, as the reconciler gets it.
pub struct Reconcile<'a> {
    pub(crate) kit: &'a Arc<Kit>,
    pub tenant: &'a TenantId,
    pub connection: &'a IntegrationConnection,
    /// The vendor's id of the record (`pi_…`).
    pub record_id: &'a str,
    pub reason: &'a ReconcileReason,
    pub traceparent: Option<&'a TraceParent>,
}

impl Reconcile<'_> {
    /// The app's context (its document store, for the record).
    pub fn ctx(&self) -> &app_context::AppContext {
        &self.kit.ctx
    }

    /// The app's slug (its container).
    pub fn slug(&self) -> &'static str {
        self.kit.app.slug
    }

    /// The vendor's record, read with the connection's provider's own operation `O` (its
    /// `getPayment`), through the pipeline and custody as a run's call is.
    pub async fn fetch<O: Operation>(&self, input: Value) -> Result<O::Output, CallError>
    where
        O::Output: serde::de::DeserializeOwned,
    {
        let provider = self.connection.provider_key().as_str();
        let handler = self.kit.handler(provider, O::NAME).ok_or_else(|| {
            crate::provider::fail(
                domain::FailureClassification::Validation,
                format!("{provider} does not serve {}", O::NAME),
            )
        })?;
        // Reads carry no idempotency key of a run; a fresh id stands in for one.
        let prepared = Direct::new(self.kit.clone())
            .prepare(self.tenant, self.connection, RunId::new())
            .await?;
        let call = prepared.call(self.traceparent);
        match handler.execute(&call, &input).await? {
            Step::Done(done) => serde_json::from_value(done.output).map_err(|e| {
                crate::provider::malformed(&format!("the record did not read back: {e}"))
            }),
            Step::Wait(_) => Err(crate::provider::fail(
                domain::FailureClassification::VendorError,
                format!("{} did not answer at once", O::NAME),
            )),
        }
    }

    /// The write that schedules another look at this record at `at` (put it in the batch
    /// that records this one). Its message id is fixed by the record and `tag`, so a
    /// repeated schedule is one message.
    pub fn later(
        &self,
        reason: ReconcileReason,
        tag: &str,
        at: DateTime<Utc>,
    ) -> Result<WriteOp, InvocationError> {
        schedule(
            self.kit,
            self.tenant,
            ReconcileRequested {
                connection_id: self.connection.id(),
                record_id: self.record_id.to_owned(),
                reason,
            },
            tag,
            at,
            self.traceparent,
        )
        .map_err(permanent)
    }

    /// Commits `ops` with `events` through the outbox, in one batch.
    pub async fn commit(
        &self,
        ops: Vec<WriteOp>,
        events: &[domain::DomainEvent],
    ) -> Result<(), PortError> {
        crate::executor::commit(self.kit, self.tenant, ops, events, self.traceparent).await
    }

    /// An `IntegrationFailure` of the run `run` (document and event), for a record the
    /// reconciler will not apply: it shows in the app's failure ledger.
    pub fn failure(
        &self,
        run: RunId,
        class: domain::FailureClassification,
        message: impl Into<String>,
        now: DateTime<Utc>,
    ) -> Result<(WriteOp, domain::DomainEvent), InvocationError> {
        crate::executor::standalone_failure(
            self.tenant,
            domain::FailureSubject::Run(run),
            Some(self.connection.provider_key().clone()),
            class,
            message.into(),
            now,
        )
    }
}

/// The scheduled command of a look at a record. Its message id is a digest of the record
/// and `tag` (the vendor's text never reaches an id as it is).
pub(crate) fn schedule(
    kit: &Kit,
    tenant: &TenantId,
    request: ReconcileRequested,
    tag: &str,
    at: DateTime<Utc>,
    traceparent: Option<&TraceParent>,
) -> Result<WriteOp, envelope::EnvelopeError> {
    let id = format!(
        "reconcile-{}",
        hex(&Sha256::digest(
            format!("{}/{}/{tag}", request.connection_id, request.record_id).as_bytes()
        ))
    );
    let mut b = Envelope::builder(kit.app.source, RECORD_RECONCILE, tenant.as_str())
        .subject(format!("records/{}", request.record_id))
        .id(id);
    if let Some(tp) = traceparent {
        b = b.traceparent(*tp);
    }
    let command = b.json_data(&request)?;
    Ok(outbox::outbox_write_at(
        &command,
        &app_context::runs_queue(kit.app.slug),
        Some(at),
    ))
}

/// The command: the record's connection read, then the app's reconciler.
pub(crate) async fn handle(
    kit: &Arc<Kit>,
    tenant: &TenantId,
    event: &Envelope,
) -> Result<(), InvocationError> {
    let request: ReconcileRequested = event.data_json().map_err(permanent)?;
    let Some((connection, _)) = kit
        .store
        .read::<IntegrationConnection>(
            &kit.ctx,
            tenant.as_str(),
            &connection_doc_id(&request.connection_id),
        )
        .await
        .map_err(|_| transient("the connection could not be read"))?
    else {
        tracing::info!(tenant = %tenant, connection = %request.connection_id,
            "a record of a connection that is gone is not reconciled");
        return Ok(());
    };
    reconcile(
        kit,
        tenant,
        &connection,
        &request.record_id,
        &request.reason,
        event.traceparent(),
    )
    .await
}

/// Hands one look to the app's reconciler (none: nothing to do).
pub(crate) async fn reconcile(
    kit: &Arc<Kit>,
    tenant: &TenantId,
    connection: &IntegrationConnection,
    record_id: &str,
    reason: &ReconcileReason,
    traceparent: Option<&TraceParent>,
) -> Result<(), InvocationError> {
    let Some(reconciler) = kit.app.reconciler.clone() else {
        tracing::warn!(
            app = kit.app.slug,
            "a record to reconcile, and no reconciler"
        );
        return Ok(());
    };
    reconciler
        .reconcile(&Reconcile {
            kit,
            tenant,
            connection,
            record_id,
            reason,
            traceparent,
        })
        .await
}
