//! `POST /api/webhooks/deliveries` (fan-out), `GET /api/webhooks/deliveries/{id}` (with every
//! attempt) and `POST /api/webhooks/deliveries/{id}/replay`.

use api_kit::{ApiError, Caller, JsonBody};
use app_context::AppContext;
use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use domain::{
    DeliveryId, EventName, NewDelivery, PayloadRef, SubscriptionStatus, TenantId, WebhookDelivery,
};
use ports::{PutOptions, Query};
use serde::Deserialize;
use serde_json::{Value, json};

use super::ordering::{Lane, NotEntered, OrderingKey, enter_lane, lane_of, next_attempt};
use super::{
    INLINE_PAYLOAD_LIMIT, OUTBOUND_CONTAINER, StoredDelivery, StoredSubscription, attempt_write,
    commit, delivery_write, read_delivery, read_subscription, tenant_of,
};
use crate::CONTAINER;

/// The largest payload accepted (the signed body, `{type, timestamp, data}`).
pub(crate) const PAYLOAD_LIMIT: usize = 256 * 1024;

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub(crate) struct EventIn {
    event_type: String,
    payload: Value,
    /// Orders the event among the others with the same key, for ordered subscriptions
    /// (unordered ones ignore it).
    #[serde(default)]
    ordering_key: Option<String>,
}

pub(super) fn delivery_out(stored: &StoredDelivery) -> Value {
    let d = &stored.delivery;
    let ordering = stored.lane.as_ref().map(|p| {
        json!({
            "key": p.ordering_key.as_ref().map(OrderingKey::as_str),
            "after": p.after,
            "next": p.next,
        })
    });
    json!({
        "id": d.id(),
        "subscriptionId": d.subscription_id(),
        "eventId": d.event_id(),
        "eventType": d.event_name(),
        "status": d.status(),
        "cycle": d.cycle(),
        "attempts": d.attempts(),
        "nextAttemptAt": d.next_attempt_at(),
        "deliveredAt": d.delivered_at(),
        "failureId": d.failure_id(),
        "createdAt": d.created_at(),
        "updatedAt": d.updated_at(),
        "ordering": ordering,
    })
}

/// The tenant's active subscriptions that want `event`.
async fn matching(
    ctx: &AppContext,
    tenant: &TenantId,
    event: &EventName,
) -> Result<Vec<StoredSubscription>, ApiError> {
    let mut out = Vec::new();
    let mut token = None;
    loop {
        let query = Query::partition(tenant.as_str())
            .filter("docType", super::SUBSCRIPTION)
            .filter("status", SubscriptionStatus::Active.as_str())
            .limit(100)
            .after(token);
        let page = ctx
            .documents
            .query(CONTAINER, &query)
            .await
            .map_err(|e| ApiError::from_port(e, "conflict"))?;
        for doc in &page.documents {
            match doc.parse::<StoredSubscription>() {
                Ok(s) if s.subscription.wants(event.as_str()) => out.push(s),
                Ok(_) => {}
                Err(e) => {
                    tracing::error!(id = %doc.id, error = %e, "an unreadable subscription; skipped")
                }
            }
        }
        token = page.continuation;
        if token.is_none() {
            return Ok(out);
        }
    }
}

/// Fans an event out: one `WebhookDelivery` per matching active subscription, each committed
/// with its first attempt's message; the payload goes to blob storage first, once.
pub(crate) async fn fan_out(
    State(ctx): State<AppContext>,
    caller: Caller,
    JsonBody(body): JsonBody<EventIn>,
) -> Result<Response, ApiError> {
    let tenant = tenant_of(&caller)?;
    let event = EventName::parse(&body.event_type)
        .map_err(|e| ApiError::bad_request("invalid_event_type", format!("eventType: {e}")))?;
    if event.is_reserved() {
        return Err(ApiError::bad_request(
            "reserved_event_type",
            "eventType: the integration.* names and the platform's event names are the platform's own",
        ));
    }
    let key = body
        .ordering_key
        .as_deref()
        .map(OrderingKey::parse)
        .transpose()
        .map_err(|e| ApiError::bad_request("invalid_ordering_key", e))?;
    let event_id = envelope::new_event_id();
    let ids = fan_out_event(
        &ctx,
        &tenant,
        &event,
        &event_id,
        body.payload,
        key.as_ref(),
        Some(chrono::Utc::now()),
    )
    .await?;
    Ok((
        StatusCode::ACCEPTED,
        Json(json!({
            "eventId": event_id,
            "eventType": event,
            "orderingKey": key.as_ref().map(OrderingKey::as_str),
            "deliveries": ids,
        })),
    )
        .into_response())
}

/// The fan-out itself, for events posted by tenants and for platform events from the bus.
///
/// Idempotent per (event, subscription): a delivery's id is derived from both (see
/// [`delivery_id_for`]), so a redelivered bus message (or a retried call with the same event
/// id) creates the same document again, which fails as a duplicate; an ordered one is
/// committed with a marker derived from both instead (entering a lane takes more than one
/// document). The payload blob is written once (first writer wins), so every delivery of an
/// event signs the same bytes. For an ordered subscription the delivery enters the lane of
/// (subscription, `key`) and waits there for the ones before it. `event_time` is the
/// payload's timestamp (now when the event has none).
pub(crate) async fn fan_out_event(
    ctx: &AppContext,
    tenant: &TenantId,
    event: &EventName,
    event_id: &str,
    data: Value,
    key: Option<&OrderingKey>,
    event_time: Option<chrono::DateTime<chrono::Utc>>,
) -> Result<Vec<Value>, ApiError> {
    let at = event_time.unwrap_or_else(chrono::Utc::now);
    // Standard Webhooks' payload structure; these exact bytes are signed on every attempt.
    let bytes = serde_json::to_vec(&json!({
        "type": event.as_str(),
        "timestamp": at.to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
        "data": data,
    }))
    .map_err(ApiError::internal)?;
    if bytes.len() > PAYLOAD_LIMIT {
        return Err(ApiError::PayloadTooLarge);
    }
    let subscriptions = matching(ctx, tenant, event).await?;
    let mut ids = Vec::with_capacity(subscriptions.len());
    if subscriptions.is_empty() {
        return Ok(ids);
    }
    let (payload_ref, inline) = if bytes.len() <= INLINE_PAYLOAD_LIMIT {
        // Serialised JSON is UTF-8; the string keeps the exact bytes.
        let text = String::from_utf8(bytes).map_err(ApiError::internal)?;
        (format!("inline:{event_id}"), Some(text))
    } else {
        let blob = format!("{tenant}/{event_id}");
        let put = PutOptions {
            content_type: Some("application/json".into()),
            if_none_match: true,
        };
        match ctx
            .blobs
            .put(OUTBOUND_CONTAINER, &blob, bytes.into(), put)
            .await
        {
            Ok(_) | Err(ports::PortError::AlreadyExists) => {}
            Err(e) => return Err(ApiError::from_port(e, "conflict")),
        }
        (format!("{OUTBOUND_CONTAINER}/{blob}"), None)
    };
    let payload_ref = PayloadRef::parse(&payload_ref).map_err(ApiError::internal)?;
    let now = chrono::Utc::now();
    for s in &subscriptions {
        let ordered = s.subscription.ordered();
        let stored = StoredDelivery {
            delivery: WebhookDelivery::new(
                NewDelivery {
                    tenant_id: tenant.clone(),
                    id: if ordered {
                        DeliveryId::new()
                    } else {
                        delivery_id_for(event_id, &s.subscription.id(), event_time)
                    },
                    subscription_id: s.subscription.id(),
                    event_id: event_id.to_owned(),
                    event_name: event.clone(),
                    payload_ref: payload_ref.clone(),
                },
                now,
            ),
            lane: None,
            payload: inline.clone(),
        };
        let id = stored.delivery.id();
        let committed = if ordered {
            let marker_id = format!("fanout-{}-{}", short_hash(event_id), s.subscription.id());
            let marker = ports::WriteOp::create(
                marker_id.clone(),
                json!({"docType": "fanout", "deliveryId": id}),
            )
            .with_ttl(super::retention(ctx));
            let lane = Lane {
                subscription: s.subscription.id(),
                key: key.cloned(),
            };
            match enter_lane(
                ctx,
                tenant,
                &lane,
                &stored,
                None,
                &[marker],
                Some(&marker_id),
            )
            .await
            {
                Ok(()) => true,
                // This event reached this subscription before.
                Err(NotEntered::Settled) => false,
                Err(NotEntered::Failed(e)) => return Err(e),
            }
        } else {
            let ops = vec![
                delivery_write(ctx, &stored, None)?,
                attempt_write(tenant, &next_attempt(&stored.delivery, None), None)?,
            ];
            match commit(ctx, tenant, ops, &[], "fanned out already").await {
                Ok(()) => true,
                // This event reached this subscription before.
                Err(ApiError::Conflict(_)) => false,
                Err(e) => return Err(e),
            }
        };
        if committed {
            ids.push(json!({"id": id, "subscriptionId": s.subscription.id()}));
        }
    }
    tracing::info!(tenant = %tenant, event = %event, event_id, deliveries = ids.len(), "event fanned out");
    Ok(ids)
}

/// The id of the delivery of event `event_id` to an unordered `subscription`, derived from
/// both: fanning the same event out again creates the same document, which the store refuses
/// as a duplicate, so no marker document is needed. A version 8 UUID whose first 48 bits are
/// the event's time in milliseconds when it has one (ids of one moment sort together, as
/// UUID v7s do, so inserts land at the end of the index), and whose other bits (all of them
/// without a time) come from SHA-256 of the event id and the subscription id.
pub(crate) fn delivery_id_for(
    event_id: &str,
    subscription: &domain::SubscriptionId,
    time: Option<chrono::DateTime<chrono::Utc>>,
) -> DeliveryId {
    use sha2::Digest as _;
    let digest = sha2::Sha256::new()
        .chain_update(event_id.as_bytes())
        .chain_update([0u8])
        .chain_update(subscription.to_string().as_bytes())
        .finalize();
    let mut bytes = [0u8; 16];
    bytes.copy_from_slice(&digest[..16]);
    if let Some(ms) = time.and_then(|t| u64::try_from(t.timestamp_millis()).ok()) {
        bytes[..6].copy_from_slice(&ms.to_be_bytes()[2..]);
    }
    DeliveryId::from_uuid(uuid::Builder::from_custom_bytes(bytes).into_uuid())
}

/// Event ids may be long and hold any character: document ids use their hash.
fn short_hash(text: &str) -> String {
    use sha2::Digest as _;
    sha2::Sha256::digest(text.as_bytes())
        .iter()
        .take(16)
        .map(|b| format!("{b:02x}"))
        .collect()
}

async fn own(
    ctx: &AppContext,
    caller: &Caller,
    raw_id: &str,
) -> Result<(StoredDelivery, ports::ETag), ApiError> {
    let id = DeliveryId::parse(raw_id).map_err(|_| ApiError::not_found("the delivery"))?;
    read_delivery(ctx, caller.tenant_id(), &id)
        .await?
        .ok_or_else(|| ApiError::not_found("the delivery"))
}

pub(crate) async fn show(
    State(ctx): State<AppContext>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    let (delivery, _) = own(&ctx, &caller, &id).await?;
    Ok(Json(delivery_out(&delivery)).into_response())
}

/// Sends a delivered or dead-lettered delivery again: a new cycle of attempts, the same
/// `webhook-id`. 409 while it is in flight or when its subscription is disabled. An ordered
/// delivery goes to the end of its lane: it is sent once the deliveries in flight there have
/// ended, never overtaking them.
pub(crate) async fn replay(
    State(ctx): State<AppContext>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    let tenant = tenant_of(&caller)?;
    let (mut stored, etag) = own(&ctx, &caller, &id).await?;
    let active = read_subscription(&ctx, tenant.as_str(), &stored.delivery.subscription_id())
        .await?
        .is_some_and(|(s, _)| s.subscription.status() == SubscriptionStatus::Active);
    if !active {
        return Err(ApiError::Conflict(
            "the delivery's subscription is disabled".into(),
        ));
    }
    stored
        .delivery
        .replay(chrono::Utc::now())
        .map_err(|e| ApiError::Conflict(e.to_string()))?;
    const CHANGED: &str = "the delivery changed meanwhile; try again";
    if let Some(lane) = lane_of(&stored) {
        match enter_lane(&ctx, &tenant, &lane, &stored, Some(&etag), &[], None).await {
            Ok(()) => {}
            Err(NotEntered::Settled) => return Err(ApiError::Conflict(CHANGED.into())),
            Err(NotEntered::Failed(e)) => return Err(e),
        }
        // Show what was committed (its place in the lane).
        if let Some((now, _)) = read_delivery(&ctx, tenant.as_str(), &stored.delivery.id()).await? {
            stored = now;
        }
    } else {
        let ops = vec![
            delivery_write(&ctx, &stored, Some(etag))?,
            attempt_write(&tenant, &next_attempt(&stored.delivery, None), None)?,
        ];
        commit(&ctx, &tenant, ops, &[], CHANGED).await?;
    }
    Ok((StatusCode::ACCEPTED, Json(delivery_out(&stored))).into_response())
}

#[cfg(test)]
mod tests {
    use domain::SubscriptionId;

    use super::delivery_id_for;

    #[test]
    fn a_delivery_id_is_fixed_by_its_event_and_subscription_and_sorts_by_event_time() {
        let (a, b) = (SubscriptionId::new(), SubscriptionId::new());
        let t1 = chrono::DateTime::parse_from_rfc3339("2026-11-27T10:00:00.001Z")
            .unwrap()
            .to_utc();
        let t2 = t1 + chrono::TimeDelta::milliseconds(1);
        let id = delivery_id_for("evt_1", &a, Some(t1));
        assert_eq!(id, delivery_id_for("evt_1", &a, Some(t1)), "the same again");
        assert_ne!(id, delivery_id_for("evt_1", &b, Some(t1)));
        assert_ne!(id, delivery_id_for("evt_2", &a, Some(t1)));
        // Later events sort after earlier ones, whatever their hashes.
        assert!(id < delivery_id_for("evt_0", &a, Some(t2)));
        assert_eq!(id.as_uuid().get_version_num(), 8);
        assert_eq!(
            domain::DeliveryId::parse(&id.to_string()).unwrap(),
            id,
            "a well-formed delivery id"
        );
        // Without a time, still fixed by the two ids.
        let untimed = delivery_id_for("evt_1", &a, None);
        assert_eq!(untimed, delivery_id_for("evt_1", &a, None));
        assert_ne!(untimed, delivery_id_for("evt_1", &b, None));
    }
}
