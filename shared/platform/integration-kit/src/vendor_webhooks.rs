//! Vendor webhooks routed to the app: the gateway verifies a delivery for a source that
//! belongs to one of the app's connections and, in the batch that records it, puts a
//! `WEBHOOK_ROUTED` command on `runs-<slug>`. Here the connection's provider reads it
//! ([`Provider::webhook`](crate::Provider::webhook)) and the kit applies what it says: a
//! waiting run finished or failed (found by the correlation its [`Wait`](crate::Wait)
//! named), or a delivery receipt.
//!
//! Idempotent by the vendor's delivery id: a marker per (connection, delivery) is written
//! once the effects are applied, and each effect is idempotent on its own (a run that is no
//! longer waiting is left alone; receipts drop repeats), so a redelivered command or a
//! vendor's retry changes nothing twice.

use std::time::Duration;

use chrono::Utc;
use domain::{ConnectionConfig, IntegrationConnection, RunId, RunStatus, TenantId};
use envelope::{Envelope, TraceParent};
use functions_runtime::InvocationError;
use ports::{PortError, WriteOp};
use resilience::CallError;
use serde::Deserialize;
use serde_json::{Value, json};
use sha2::{Digest as _, Sha256};

use crate::Kit;
use crate::executor::{commit, permanent, record_failure, run_write, succeed, transient};
use crate::operation::{Done, Operation};
use crate::provider::Receipt;
use crate::store::{StoredRun, connection_doc_id, hex, run_doc_id};

/// A verified vendor webhook, as the connection's provider reads it.
pub struct VendorWebhook<'a> {
    /// The vendor's event type (`workflow_run`), when its scheme carries one.
    pub event_type: Option<&'a str>,
    /// The vendor's delivery id.
    pub delivery_id: Option<&'a str>,
    pub content_type: Option<&'a str>,
    /// The exact bytes the vendor sent (verified by the gateway).
    pub body: &'a [u8],
    pub config: &'a ConnectionConfig,
}

/// What a vendor webhook means for the app.
#[derive(Debug)]
pub enum WebhookEffect {
    /// The vendor finished the work a waiting run waits for.
    Completed {
        correlation: String,
        done: Done<Value>,
    },
    /// The vendor's work failed: the waiting run fails with this.
    Failed {
        correlation: String,
        failure: CallError,
    },
    /// A delivery receipt, applied as a pushed one is.
    Receipt(Receipt),
    /// A record at the vendor changed: published as an event for the tenant's
    /// subscriptions, and merged into the last run that touched the record.
    Changed(RecordChange),
    /// A record the app keeps may have changed at the vendor: the app's reconciler fetches
    /// it and applies what the vendor says ([`crate::records`]); the webhook's own content
    /// is not trusted, so order and repeats do not matter.
    Reconcile { record_id: String },
}

/// What kind of record changed (each has its event: `crm.contact.changed`, ...).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RecordKind {
    CrmContact,
    CrmDeal,
    SupportTicket,
}

/// A change of a record at the vendor ([`WebhookEffect::Changed`]).
#[derive(Debug, Clone)]
pub struct RecordChange {
    pub kind: RecordKind,
    /// The vendor's id of the record: also how the last run that touched it is found (the
    /// id its output named through [`Done::vendor_message_id`]).
    pub record_id: String,
    /// What changed, in the vendor's words.
    pub change: String,
    pub property: Option<String>,
    pub value: Option<String>,
    /// When the vendor says it happened.
    pub occurred_at: Option<chrono::DateTime<Utc>>,
    pub vendor_event_id: Option<String>,
    /// Fields set on the output of the last run that touched the record (a ticket's new
    /// `status`); nothing when the app keeps no copy of the record.
    pub patch: Option<serde_json::Map<String, Value>>,
}

impl WebhookEffect {
    /// Operation `O`'s work named `correlation` finished with `done`.
    pub fn completed<O: Operation>(correlation: impl Into<String>, done: Done<O::Output>) -> Self {
        let correlation = correlation.into();
        match done.erase() {
            Ok(done) => WebhookEffect::Completed { correlation, done },
            Err(failure) => WebhookEffect::Failed {
                correlation,
                failure,
            },
        }
    }

    pub fn failed(correlation: impl Into<String>, failure: CallError) -> Self {
        WebhookEffect::Failed {
            correlation: correlation.into(),
            failure,
        }
    }
}

/// How long a delivery's marker is kept: longer than any vendor retries one.
const SEEN_TTL: Duration = Duration::from_secs(7 * 24 * 3600);

/// The index from a provider's name for its work to the run waiting on it.
pub(crate) fn correlation_doc_id(provider: &str, correlation: &str) -> String {
    format!(
        "corr-{provider}-{}",
        hex(&Sha256::digest(correlation.as_bytes()))
    )
}

fn seen_doc_id(connection: &domain::ConnectionId, delivery: &str) -> String {
    format!(
        "vhook-{}",
        hex(&Sha256::digest(
            format!("{connection}/{delivery}").as_bytes()
        ))
    )
}

/// The index document written when a run starts waiting on correlated work.
pub(crate) fn correlation_write(
    provider: &str,
    correlation: &str,
    run: RunId,
    keep: Duration,
) -> WriteOp {
    WriteOp::upsert(
        correlation_doc_id(provider, correlation),
        json!({"docType": "correlation", "runId": run}),
    )
    .with_ttl(keep)
}

#[derive(Deserialize)]
struct CorrelationIndex {
    #[serde(rename = "runId")]
    run_id: RunId,
}

pub(crate) async fn handle(
    kit: &std::sync::Arc<Kit>,
    tenant: &TenantId,
    event: &Envelope,
) -> Result<(), InvocationError> {
    let data: domain::WebhookReceived = event.data_json().map_err(permanent)?;
    let Some(connection_id) = data.connection_id else {
        return Ok(());
    };
    let Some((connection, _)) = kit
        .store
        .read::<IntegrationConnection>(
            &kit.ctx,
            tenant.as_str(),
            &connection_doc_id(&connection_id),
        )
        .await
        .map_err(|_| transient("the connection could not be read"))?
    else {
        tracing::info!(tenant = %tenant, connection = %connection_id, "a webhook for a connection that is gone was dropped");
        return Ok(());
    };
    let provider_key = connection.provider_key().as_str();
    let Some(provider) = kit.provider(provider_key) else {
        return Ok(());
    };
    let seen = data
        .vendor_delivery_id
        .as_deref()
        .map(|d| seen_doc_id(&connection_id, d));
    if let Some(seen) = &seen
        && kit
            .ctx
            .documents
            .read(kit.app.slug, tenant.as_str(), seen)
            .await
            .map_err(transient)?
            .is_some()
    {
        return Ok(());
    }
    let (container, name) = data
        .payload_ref
        .as_str()
        .split_once('/')
        .ok_or_else(|| permanent("a payload reference without a container"))?;
    let body = match kit.ctx.blobs.get(container, name).await {
        Ok((body, _)) => body,
        Err(PortError::NotFound) => {
            tracing::warn!(tenant = %tenant, "a routed webhook's body is gone (past its retention?)");
            return Ok(());
        }
        Err(e) => return Err(transient(e)),
    };
    let webhook = VendorWebhook {
        event_type: data.vendor_event_type.as_deref(),
        delivery_id: data.vendor_delivery_id.as_deref(),
        content_type: data.content_type.as_deref(),
        body: &body,
        config: connection.config(),
    };
    let effects = match provider.webhook(&webhook) {
        Ok(effects) => effects,
        Err(why) => {
            tracing::warn!(tenant = %tenant, provider = provider_key, %why, "a vendor webhook could not be read");
            Vec::new()
        }
    };
    let traceparent = event.traceparent().cloned();
    for effect in effects {
        match effect {
            WebhookEffect::Completed { correlation, done } => {
                end_wait(
                    kit,
                    tenant,
                    provider_key,
                    &correlation,
                    Ok(done),
                    traceparent.as_ref(),
                )
                .await?;
            }
            WebhookEffect::Failed {
                correlation,
                failure,
            } => {
                end_wait(
                    kit,
                    tenant,
                    provider_key,
                    &correlation,
                    Err(failure),
                    traceparent.as_ref(),
                )
                .await?;
            }
            WebhookEffect::Receipt(receipt) => {
                crate::receipts::apply(kit, tenant, provider_key, &receipt)
                    .await
                    .map_err(|_| transient("a receipt could not be applied"))?;
            }
            WebhookEffect::Changed(change) => {
                record_changed(kit, tenant, &connection, change, traceparent.as_ref()).await?;
            }
            WebhookEffect::Reconcile { record_id } => {
                let reason = crate::records::ReconcileReason::Callback {
                    vendor_event_id: data.vendor_delivery_id.clone(),
                    attempt: 0,
                };
                crate::records::reconcile(
                    kit,
                    tenant,
                    &connection,
                    &record_id,
                    &reason,
                    traceparent.as_ref(),
                )
                .await?;
            }
        }
    }
    if let Some(seen) = seen {
        let marker = WriteOp::create(seen, json!({"docType": "vendorWebhook"})).with_ttl(SEEN_TTL);
        match kit
            .ctx
            .documents
            .batch(kit.app.slug, tenant.as_str(), vec![marker])
            .await
        {
            Ok(_) | Err(PortError::AlreadyExists) => {}
            Err(e) => return Err(transient(e)),
        }
    }
    Ok(())
}

/// Ends the run waiting on `correlation` with the vendor's outcome, guarded by the run's
/// etag (a scheduled check may be applying its own answer at the same moment).
async fn end_wait(
    kit: &Kit,
    tenant: &TenantId,
    provider: &str,
    correlation: &str,
    outcome: Result<Done<Value>, CallError>,
    traceparent: Option<&TraceParent>,
) -> Result<(), InvocationError> {
    let Some((index, _)) = kit
        .store
        .read::<CorrelationIndex>(
            &kit.ctx,
            tenant.as_str(),
            &correlation_doc_id(provider, correlation),
        )
        .await
        .map_err(|_| transient("the correlation could not be read"))?
    else {
        // Not ours, or the run has not recorded its wait yet: its scheduled check will
        // find the vendor's answer.
        tracing::info!(tenant = %tenant, provider, "a vendor webhook names no waiting run");
        return Ok(());
    };
    for _ in 0..5 {
        let Some((mut stored, etag)) = kit
            .store
            .read::<StoredRun>(&kit.ctx, tenant.as_str(), &run_doc_id(&index.run_id))
            .await
            .map_err(|_| transient("the run could not be read"))?
        else {
            return Ok(());
        };
        if stored.run.status() != RunStatus::Waiting {
            return Ok(());
        }
        let connection_id = stored.served_by.unwrap_or(stored.run.connection_id());
        let Some((connection, _)) = kit
            .store
            .read::<IntegrationConnection>(
                &kit.ctx,
                tenant.as_str(),
                &connection_doc_id(&connection_id),
            )
            .await
            .map_err(|_| transient("the connection could not be read"))?
        else {
            return Ok(());
        };
        let now = Utc::now();
        let mut ops = Vec::new();
        let mut events = Vec::new();
        match &outcome {
            Ok(done) => {
                succeed(
                    kit,
                    tenant,
                    &mut stored,
                    &connection,
                    done.clone(),
                    now,
                    &mut ops,
                    &mut events,
                )
                .await?;
            }
            Err(failure) => {
                record_failure(
                    &mut stored,
                    tenant,
                    failure,
                    false,
                    now,
                    &mut ops,
                    &mut events,
                )?;
            }
        }
        stored.waiting = None;
        ops.insert(0, run_write(&stored, etag)?);
        match commit(kit, tenant, ops, &events, traceparent).await {
            Ok(()) => {
                tracing::info!(tenant = %tenant, run = %index.run_id, "a vendor webhook ended a waiting run");
                kit.signals.finished(&index.run_id);
                return Ok(());
            }
            Err(PortError::PreconditionFailed) => continue,
            Err(e) => return Err(transient(e)),
        }
    }
    Err(transient("the run kept changing"))
}

/// Publishes a record's change and, with a patch, sets it on the output of the last run
/// that touched the record, in one batch guarded by the run's etag.
async fn record_changed(
    kit: &Kit,
    tenant: &TenantId,
    connection: &IntegrationConnection,
    change: RecordChange,
    traceparent: Option<&TraceParent>,
) -> Result<(), InvocationError> {
    let provider = connection.provider_key().as_str();
    let index = kit
        .store
        .read::<crate::receipts::MessageIndex>(
            &kit.ctx,
            tenant.as_str(),
            &crate::store::vendor_message_doc_id(provider, &change.record_id),
        )
        .await
        .map_err(|_| transient("the record's run could not be found"))?
        .map(|(index, _)| index.run_id);
    for _ in 0..5 {
        let mut ops = Vec::new();
        if let (Some(run), Some(patch)) = (index, &change.patch)
            && let Some((mut stored, etag)) = kit
                .store
                .read::<StoredRun>(&kit.ctx, tenant.as_str(), &run_doc_id(&run))
                .await
                .map_err(|_| transient("the run could not be read"))?
            && let Some(Value::Object(output)) = &mut stored.output
        {
            let before = output.clone();
            output.extend(patch.clone());
            if *output != before {
                ops.push(run_write(&stored, etag)?);
            }
        }
        let data = domain::RecordChanged {
            tenant_id: tenant.clone(),
            connection_id: connection.id(),
            provider_key: connection.provider_key().clone(),
            record_id: change.record_id.clone(),
            change: change.change.clone(),
            property: change.property.clone(),
            value: change.value.clone(),
            run_id: index,
            vendor_event_id: change.vendor_event_id.clone(),
            occurred_at: change.occurred_at.unwrap_or_else(Utc::now),
        };
        let event = match change.kind {
            RecordKind::CrmContact => domain::DomainEvent::CrmContactChanged(data),
            RecordKind::CrmDeal => domain::DomainEvent::CrmDealChanged(data),
            RecordKind::SupportTicket => domain::DomainEvent::SupportTicketChanged(data),
        };
        match commit(kit, tenant, ops, &[event], traceparent).await {
            Ok(()) => return Ok(()),
            Err(PortError::PreconditionFailed) => continue,
            Err(e) => return Err(transient(e)),
        }
    }
    Err(transient("the run kept changing"))
}
