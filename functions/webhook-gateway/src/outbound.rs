//! Outbound webhooks: a tenant's subscriptions (its endpoints), the fan-out of an event to the
//! subscriptions whose filters match, and the delivery of each one, signed with Standard
//! Webhooks headers, retried on a schedule, recorded attempt by attempt.
//!
//! Storage (container `webhooks`, partition = the tenant):
//! - `subscription-sub_…` ([`StoredSubscription`]): the `WebhookSubscription` aggregate and
//!   the custody credential holding its `whsec_…` secret (the registry keeps the secret; the
//!   document holds a reference only);
//! - `delivery-dlv_…` ([`StoredDelivery`]): the `WebhookDelivery` aggregate with every
//!   attempt, and for an ordered subscription its place in its lane;
//! - `lane-…`: the last delivery of an ordered lane (see [`ordering`]);
//! - `failure-fail_…`: the `IntegrationFailure` of a dead-lettered delivery.
//!
//! A payload up to [`INLINE_PAYLOAD_LIMIT`] is kept on each delivery's document (its
//! `payloadRef` is then `inline:<event id>`): no blob to write at the fan-out and none to read
//! per attempt, which for the small events most webhooks carry costs less than the blob's
//! round trips. A larger payload goes to blob storage (`webhooks-outbound/<tenant>/<event
//! id>`), written once per event and shared by its deliveries, so documents stay small
//! whatever the payload's size. Either way, the bytes signed and sent are the same on every
//! attempt and every replay.
//!
//! Each change of an aggregate is one batch with the outbox records it causes: its events
//! (to `integration-events`) and the message of the next attempt (to `webhook-deliveries`,
//! scheduled for retries, `MessageId` = `<delivery id>.<cycle>.<attempt>`), so an attempt is
//! queued exactly when it is recorded as due. Attempts of ordered subscriptions name their
//! lane's session and are handed on to `webhook-deliveries-ordered` (see [`ordering`]).

mod deliver;
pub(crate) mod deliveries;
pub(crate) mod ordering;
pub(crate) mod pacing;
mod platform;
pub(crate) mod retry;

pub(crate) use platform::fan_out_platform_event;
pub(crate) mod subscriptions;

use api_kit::ApiError;
use app_context::AppContext;
use domain::{DeliveryId, SubscriptionId, TenantId, WebhookDelivery, WebhookSubscription};
use ports::{ETag, WriteOp};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use serde_json::Value;

pub(crate) use deliver::{Deliverer, deliver_ordered_webhook, deliver_webhook};

use crate::{CONTAINER, SOURCE};

/// Blob container of outbound payloads.
pub const OUTBOUND_CONTAINER: &str = "webhooks-outbound";
/// The largest payload kept on the delivery document rather than in blob storage.
pub const INLINE_PAYLOAD_LIMIT: usize = 8 * 1024;
/// CloudEvents `type` of the command on `webhook-deliveries`: "make this attempt".
pub const DELIVERY_ATTEMPT: &str = "connectsoft.integration.webhook.delivery-attempt.v1";
/// Setting: the request timeout of one attempt, in seconds (default 15).
pub const TIMEOUT_SETTING: &str = "WEBHOOK_TIMEOUT_SECONDS";
/// Setting: the retry schedule (see [`retry::Schedule`]).
pub const SCHEDULE_SETTING: &str = "WEBHOOK_RETRY_SCHEDULE_SECONDS";
/// Setting: how long an endpoint may fail without a success before it is disabled
/// (seconds; default five days).
pub const DISABLE_AFTER_SETTING: &str = "WEBHOOK_DISABLE_AFTER_SECONDS";

const SUBSCRIPTION: &str = "subscription";
const DELIVERY: &str = "delivery";
const FAILURE: &str = "failure";

pub(crate) fn subscription_doc_id(id: &SubscriptionId) -> String {
    format!("subscription-{id}")
}

pub(crate) fn delivery_doc_id(id: &DeliveryId) -> String {
    format!("delivery-{id}")
}

/// The stored subscription: the aggregate plus the custody credential of its secret.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct StoredSubscription {
    #[serde(flatten)]
    pub(crate) subscription: WebhookSubscription,
    pub(crate) credential_id: domain::CredentialId,
}

/// The stored delivery: the aggregate plus, for an ordered subscription, its place in its
/// lane (the gateway's bookkeeping, like a subscription's credential).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct StoredDelivery {
    #[serde(flatten)]
    pub(crate) delivery: WebhookDelivery,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) lane: Option<ordering::LanePlace>,
    /// The payload's exact bytes (UTF-8 JSON) when at most [`INLINE_PAYLOAD_LIMIT`];
    /// otherwise it is in blob storage at the delivery's `payloadRef`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) payload: Option<String>,
}

/// The data of a [`DELIVERY_ATTEMPT`] message: which attempt of which delivery is due.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct AttemptDue {
    pub(crate) delivery_id: DeliveryId,
    /// The cycle (1, then +1 per replay).
    pub(crate) cycle: u32,
    /// The attempt within the cycle, 1-based.
    pub(crate) attempt: u32,
    /// For an ordered subscription, the `SessionId` of the delivery's lane: the attempt is
    /// made from `webhook-deliveries-ordered`, in that session.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) session: Option<String>,
}

/// The outbox write queueing `due` on `webhook-deliveries`, at `at` when given. The message
/// id is deterministic per attempt: writing it twice fails, and the bus drops a copy.
pub(crate) fn attempt_write(
    tenant: &TenantId,
    due: &AttemptDue,
    at: Option<chrono::DateTime<chrono::Utc>>,
) -> Result<WriteOp, ApiError> {
    let id = format!("{}.{}.{}", due.delivery_id, due.cycle, due.attempt);
    let env = attempt_envelope(tenant, due, id)?;
    Ok(outbox::outbox_write_at(
        &env,
        app_context::WEBHOOK_DELIVERIES_QUEUE,
        at,
    ))
}

/// The envelope of a [`DELIVERY_ATTEMPT`] message with the given id.
pub(crate) fn attempt_envelope(
    tenant: &TenantId,
    due: &AttemptDue,
    id: String,
) -> Result<envelope::Envelope, ApiError> {
    envelope::Envelope::builder(SOURCE, DELIVERY_ATTEMPT, tenant.as_str())
        .id(id)
        .subject(format!("deliveries/{}", due.delivery_id))
        .json_data(due)
        .map_err(|e| ApiError::internal(format!("an attempt did not make an envelope: {e}")))
}

/// An aggregate's document: its JSON plus `docType`.
pub(crate) fn document<T: Serialize>(aggregate: &T, doc_type: &str) -> Result<Value, ApiError> {
    api_kit::Aggregates::document(aggregate, doc_type)
}

pub(crate) fn subscription_write(
    stored: &StoredSubscription,
    etag: Option<ETag>,
) -> Result<WriteOp, ApiError> {
    let id = subscription_doc_id(&stored.subscription.id());
    let doc = document(stored, SUBSCRIPTION)?;
    Ok(match etag {
        Some(e) => WriteOp::replace(id, doc, Some(e)),
        None => WriteOp::create(id, doc),
    })
}

/// A delivery's document, kept for the payload retention after its last change.
pub(crate) fn delivery_write(
    ctx: &AppContext,
    stored: &StoredDelivery,
    etag: Option<ETag>,
) -> Result<WriteOp, ApiError> {
    let id = delivery_doc_id(&stored.delivery.id());
    let doc = document(stored, DELIVERY)?;
    Ok(match etag {
        Some(e) => WriteOp::replace(id, doc, Some(e)),
        None => WriteOp::create(id, doc),
    }
    .with_ttl(retention(ctx)))
}

/// How long the gateway keeps its records of payloads (inbound receipts, deliveries and
/// their markers): the payload retention ([`app_context::PAYLOAD_RETENTION_SETTING`],
/// checked when the app is built).
pub(crate) fn retention(ctx: &AppContext) -> std::time::Duration {
    let days = ctx
        .setting(app_context::PAYLOAD_RETENTION_SETTING)
        .and_then(|v| v.trim().parse::<u64>().ok())
        .unwrap_or(u64::from(app_context::DEFAULT_PAYLOAD_RETENTION_DAYS));
    std::time::Duration::from_secs(days * 24 * 3600)
}

const STORE: api_kit::Aggregates = api_kit::Aggregates::new(CONTAINER, SOURCE);

/// Commits `ops` and the outbox records of `events` in one batch of the tenant's partition.
pub(crate) async fn commit(
    ctx: &AppContext,
    tenant: &TenantId,
    ops: Vec<WriteOp>,
    events: &[domain::DomainEvent],
    conflict: &str,
) -> Result<(), ApiError> {
    STORE
        .commit(ctx, tenant.as_str(), ops, events, conflict)
        .await
}

/// Reads and parses a tenant's document with its etag; `None` when absent.
pub(crate) async fn read<T: DeserializeOwned>(
    ctx: &AppContext,
    tenant: &str,
    id: &str,
) -> Result<Option<(T, ETag)>, ApiError> {
    STORE.read(ctx, tenant, id).await
}

pub(crate) async fn read_subscription(
    ctx: &AppContext,
    tenant: &str,
    id: &SubscriptionId,
) -> Result<Option<(StoredSubscription, ETag)>, ApiError> {
    read(ctx, tenant, &subscription_doc_id(id)).await
}

pub(crate) async fn read_delivery(
    ctx: &AppContext,
    tenant: &str,
    id: &DeliveryId,
) -> Result<Option<(StoredDelivery, ETag)>, ApiError> {
    read(ctx, tenant, &delivery_doc_id(id)).await
}

/// The tenant of an authenticated caller.
pub(crate) fn tenant_of(caller: &api_kit::Caller) -> Result<TenantId, ApiError> {
    TenantId::parse_tenant(caller.tenant_id()).map_err(|e| ApiError::Forbidden(e.to_string()))
}
