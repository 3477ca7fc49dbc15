//! Ordered delivery: a subscription created with `ordered: true` gets its deliveries one at a
//! time per ordering key, in the order they were accepted, retries included.
//!
//! A *lane* is (subscription, ordering key); deliveries with no key share the subscription's
//! keyless lane. The order is kept in the store, not on the bus:
//!
//! - the lane document (`lane-…`) names the lane's last delivery (its tail);
//! - a delivery entering a lane (fanned out, or replayed) is committed in one batch with the
//!   lane document (etag-guarded) and, when the tail is still in flight, with the tail's
//!   `next` set to it, and no message: it waits. When the tail has ended, its first attempt
//!   is queued in the same batch instead;
//! - when a delivery ends (delivered, or dead-lettered: exhausted, 410, subscription
//!   disabled, unprocessable), the batch recording that also queues its `next`'s first
//!   attempt (`deliver::record`).
//!
//! So a lane has at most one delivery in flight, and a later one is never attempted before an
//! earlier one has ended, however long the earlier one's retries take.
//!
//! Why not hold the Service Bus session instead (fail the invocation so the same message is
//! abandoned and redelivered until it succeeds)? An abandon is redelivered at once, not after
//! the retry schedule's wait; waiting inside the invocation is bounded by the function timeout
//! (5-10 minutes on Consumption) and the lock's auto-renewal (5 minutes), while the schedule
//! waits up to 8 hours between attempts; the schedule has 11 attempts but the entity dead-
//! letters after 10 deliveries (and a crash or a timeout spends one too); and a sleeping
//! invocation holds one of the few concurrent sessions (8 by default), so a handful of dead
//! endpoints would stall every other lane. Keeping the order in the store keeps the whole
//! retry schedule, `Retry-After`, the breaker and the rate limit exactly as for unordered
//! subscriptions, and never depends on the order in which the outbox publishes.
//!
//! The session queue (`webhook-deliveries-ordered`, `SessionId` = [`Lane::session_id`]) still
//! carries every attempt of an ordered delivery: it hands one lane to one consumer at a time
//! (in Azure the session lock; in the embedded broker one message per session), so a lane's
//! duplicate or held-back messages never run concurrently. The outbox publisher sets no
//! `SessionId`, so an ordered attempt is committed (atomically with its state, like every
//! attempt) to `webhook-deliveries` with the session named in its data, and `DeliverWebhook`
//! hands it on to the session queue (same `MessageId`, so a repeated hand-off is dropped by
//! duplicate detection, and a late copy finds its attempt recorded already). Since a session
//! rarely holds more than one message, the Functions host should not linger on a drained one:
//! the gateway's `extensions.serviceBus.sessionIdleTimeout` wants to be a few seconds (the
//! default, the client's one-minute try timeout, keeps one of `maxConcurrentSessions` busy
//! waiting after every attempt).

use api_kit::ApiError;
use app_context::AppContext;
use chrono::{DateTime, Utc};
use domain::{DeliveryId, DeliveryStatus, SubscriptionId, TenantId, WebhookDelivery};
use ports::{ETag, WriteOp};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::{
    AttemptDue, StoredDelivery, attempt_write, commit, delivery_write, document, read,
    read_delivery,
};

/// The longest ordering key, in characters.
pub(crate) const MAX_KEY_CHARS: usize = 128;
/// Service Bus's longest `SessionId`.
const MAX_SESSION_ID: usize = 128;
/// `docType` of lane documents.
const LANE: &str = "lane";
/// How many times entering a lane is tried when concurrent writers keep moving its tail.
const ENTER_TRIES: usize = 32;

/// What orders deliveries within an ordered subscription: 1-128 characters, no control
/// characters (it is logged and shown).
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub(crate) struct OrderingKey(String);

impl OrderingKey {
    pub(crate) fn parse(raw: &str) -> Result<Self, &'static str> {
        let chars = raw.chars().count();
        if chars == 0 || chars > MAX_KEY_CHARS {
            return Err("orderingKey is 1-128 characters");
        }
        if raw.chars().any(char::is_control) {
            return Err("orderingKey holds a control character");
        }
        Ok(OrderingKey(raw.to_owned()))
    }

    pub(crate) fn as_str(&self) -> &str {
        &self.0
    }
}

impl TryFrom<String> for OrderingKey {
    type Error = &'static str;
    fn try_from(value: String) -> Result<Self, Self::Error> {
        OrderingKey::parse(&value)
    }
}

impl From<OrderingKey> for String {
    fn from(value: OrderingKey) -> Self {
        value.0
    }
}

/// One ordered stream: a subscription and an ordering key (none: the keyless lane).
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Lane {
    pub(crate) subscription: SubscriptionId,
    pub(crate) key: Option<OrderingKey>,
}

impl Lane {
    /// `<subscription id>` for the keyless lane, `<subscription id>/<key>` otherwise, or
    /// `<subscription id>/#<sha-256 of the key>` when that would pass Service Bus's 128
    /// characters. Two lanes sharing a session (a key that spells another's hash) only wait
    /// for each other's invocations; their order is the lanes' own either way.
    pub(crate) fn session_id(&self) -> String {
        let sub = self.subscription.to_string();
        match &self.key {
            None => sub,
            Some(k) => {
                let plain = format!("{sub}/{}", k.as_str());
                if plain.len() <= MAX_SESSION_ID {
                    plain
                } else {
                    format!("{sub}/#{}", hex_sha256(k.as_str()))
                }
            }
        }
    }

    /// Document ids allow neither every character nor every length: the key is hashed.
    fn doc_id(&self) -> String {
        match &self.key {
            None => format!("lane-{}", self.subscription),
            Some(k) => format!("lane-{}-{}", self.subscription, hex_sha256(k.as_str())),
        }
    }
}

fn hex_sha256(text: &str) -> String {
    use sha2::Digest as _;
    sha2::Sha256::digest(text.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// An ordered delivery's place in its lane, kept beside the aggregate.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct LanePlace {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) ordering_key: Option<OrderingKey>,
    /// The delivery before it that was still in flight when it entered: it is not attempted
    /// before that one ends.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) after: Option<DeliveryId>,
    /// The delivery that entered after it while it was in flight: released when it ends.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) next: Option<DeliveryId>,
}

/// The lane document: which delivery entered the lane last.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct LaneDoc {
    subscription_id: SubscriptionId,
    ordering_key: Option<OrderingKey>,
    tail: DeliveryId,
    updated_at: DateTime<Utc>,
}

/// Whether a delivery still has attempts coming (and so holds its lane).
pub(crate) fn in_flight(d: &WebhookDelivery) -> bool {
    matches!(d.status(), DeliveryStatus::Pending | DeliveryStatus::Failed)
}

/// The next attempt of an in-flight delivery, routed to its lane's session.
pub(crate) fn next_attempt(d: &WebhookDelivery, session: Option<String>) -> AttemptDue {
    AttemptDue {
        delivery_id: d.id(),
        cycle: d.cycle(),
        attempt: d.attempts_in_cycle().saturating_add(1),
        session,
    }
}

/// The lane of an ordered delivery; `None` for an unordered one.
pub(crate) fn lane_of(stored: &StoredDelivery) -> Option<Lane> {
    stored.lane.as_ref().map(|p| Lane {
        subscription: stored.delivery.subscription_id(),
        key: p.ordering_key.clone(),
    })
}

/// What stops a delivery from entering its lane.
#[derive(Debug)]
pub(crate) enum NotEntered {
    /// `settled` exists, or the delivery changed since it was read: the caller's write was
    /// made (or overtaken) by someone else.
    Settled,
    Failed(ApiError),
}

impl From<ApiError> for NotEntered {
    fn from(e: ApiError) -> Self {
        NotEntered::Failed(e)
    }
}

/// Puts `stored` (an in-flight delivery: new, or just replayed) at the end of `lane`, in one
/// batch with `extra`: after the tail, which releases it when it ends, or, when the tail has
/// ended, with its first attempt queued. `etag` is the delivery's own (`None`: created here).
///
/// A conflict (another delivery entered the lane meanwhile, or the tail ended) re-reads and
/// tries again. It stops with [`NotEntered::Settled`] when the conflict was the caller's own
/// business: the document `settled` now exists (a fan-out's marker), or the delivery's etag
/// moved.
pub(crate) async fn enter_lane(
    ctx: &AppContext,
    tenant: &TenantId,
    lane: &Lane,
    stored: &StoredDelivery,
    etag: Option<&ETag>,
    extra: &[WriteOp],
    settled: Option<&str>,
) -> Result<(), NotEntered> {
    let me = stored.delivery.id();
    let session = lane.session_id();
    for _ in 0..ENTER_TRIES {
        let lane_doc: Option<(LaneDoc, ETag)> = read(ctx, tenant.as_str(), &lane.doc_id()).await?;
        let tail = match &lane_doc {
            Some((l, _)) if l.tail != me => read_delivery(ctx, tenant.as_str(), &l.tail).await?,
            _ => None,
        };
        let open_tail = tail.filter(|(t, _)| in_flight(&t.delivery));
        let mut entering = stored.clone();
        entering.lane = Some(LanePlace {
            ordering_key: lane.key.clone(),
            after: open_tail.as_ref().map(|(t, _)| t.delivery.id()),
            next: None,
        });
        let mut ops = extra.to_vec();
        ops.push(delivery_write(ctx, &entering, etag.cloned())?);
        let now = Utc::now();
        let doc = document(
            &LaneDoc {
                subscription_id: lane.subscription,
                ordering_key: lane.key.clone(),
                tail: me,
                updated_at: now,
            },
            LANE,
        )?;
        ops.push(match lane_doc {
            Some((_, e)) => WriteOp::replace(lane.doc_id(), doc, Some(e)),
            None => WriteOp::create(lane.doc_id(), doc),
        });
        match open_tail {
            Some((mut tail, tail_etag)) => {
                let place = tail.lane.get_or_insert_with(LanePlace::default);
                if place.next.is_some_and(|n| n != me) {
                    // Another delivery entered between our two reads (the lane document and
                    // the tail's `next` move in one batch): read the lane again.
                    continue;
                }
                place.next = Some(me);
                ops.push(delivery_write(ctx, &tail, Some(tail_etag))?);
            }
            None => ops.push(attempt_write(
                tenant,
                &next_attempt(&entering.delivery, Some(session.clone())),
                None,
            )?),
        }
        match commit(ctx, tenant, ops, &[], "the lane moved").await {
            Ok(()) => return Ok(()),
            Err(ApiError::Conflict(_)) => {
                if let Some(id) = settled
                    && read::<Value>(ctx, tenant.as_str(), id).await?.is_some()
                {
                    return Err(NotEntered::Settled);
                }
                if let Some(etag) = etag {
                    let now = read_delivery(ctx, tenant.as_str(), &me).await?;
                    if now.is_none_or(|(_, e)| &e != etag) {
                        return Err(NotEntered::Settled);
                    }
                }
            }
            Err(e) => return Err(e.into()),
        }
    }
    tracing::warn!(tenant = %tenant, session = %session, "a lane kept moving; giving up for now");
    Err(ApiError::Unavailable.into())
}

/// The write releasing `next` (the successor of a delivery that is ending in the same
/// batch): its first attempt, to its lane's session. `None` when it is gone or not waiting.
pub(crate) async fn release(
    ctx: &AppContext,
    tenant: &TenantId,
    next: &DeliveryId,
) -> Result<Option<WriteOp>, ApiError> {
    let Some((waiting, _)) = read_delivery(ctx, tenant.as_str(), next).await? else {
        tracing::warn!(delivery = %next, "the next delivery of a lane is missing");
        return Ok(None);
    };
    if !in_flight(&waiting.delivery) {
        return Ok(None);
    }
    let session = lane_of(&waiting).map(|l| l.session_id());
    attempt_write(tenant, &next_attempt(&waiting.delivery, session), None).map(Some)
}

/// Whether `stored` must still wait: the delivery it entered after is in flight and will
/// release it. A message for it before then (a copy, an operator's) is not its turn.
pub(crate) async fn waits(
    ctx: &AppContext,
    tenant: &TenantId,
    stored: &StoredDelivery,
) -> Result<bool, ApiError> {
    let Some(after) = stored.lane.as_ref().and_then(|p| p.after) else {
        return Ok(false);
    };
    let me = stored.delivery.id();
    Ok(read_delivery(ctx, tenant.as_str(), &after)
        .await?
        .is_some_and(|(before, _)| {
            in_flight(&before.delivery) && before.lane.as_ref().and_then(|p| p.next) == Some(me)
        }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_1_to_128_printable_characters() {
        assert!(OrderingKey::parse("").is_err());
        assert!(OrderingKey::parse("order-42").is_ok());
        assert!(
            OrderingKey::parse(&"é".repeat(128)).is_ok(),
            "characters, not bytes"
        );
        assert!(OrderingKey::parse(&"k".repeat(129)).is_err());
        assert!(OrderingKey::parse("a\nb").is_err());
        assert!(OrderingKey::parse("a\u{0}").is_err());
        let k: Result<OrderingKey, _> = serde_json::from_value(serde_json::json!(""));
        assert!(k.is_err(), "stored keys are checked when read too");
    }

    #[test]
    fn session_ids_name_the_lane_within_service_bus_limits() {
        let sub = SubscriptionId::new();
        let keyless = Lane {
            subscription: sub,
            key: None,
        };
        assert_eq!(keyless.session_id(), sub.to_string());
        let short = Lane {
            subscription: sub,
            key: Some(OrderingKey::parse("customer/42").unwrap()),
        };
        assert_eq!(short.session_id(), format!("{sub}/customer/42"));
        let long_key = "k".repeat(128);
        let long = Lane {
            subscription: sub,
            key: Some(OrderingKey::parse(&long_key).unwrap()),
        };
        let id = long.session_id();
        assert!(id.len() <= 128, "{} characters", id.len());
        assert!(id.starts_with(&format!("{sub}/#")));
        let other = Lane {
            subscription: sub,
            key: Some(OrderingKey::parse(&"k".repeat(127)).unwrap()),
        };
        assert_ne!(
            other.session_id(),
            id,
            "different long keys, different sessions"
        );
        assert_ne!(
            Lane {
                subscription: SubscriptionId::new(),
                key: short.key.clone()
            }
            .session_id(),
            short.session_id(),
            "the same key in two subscriptions is two lanes"
        );
    }

    #[test]
    fn lane_documents_have_safe_distinct_ids() {
        let sub = SubscriptionId::new();
        let ids: Vec<String> = [None, Some("a/b?c#d"), Some("a/b?c#e")]
            .into_iter()
            .map(|k| {
                Lane {
                    subscription: sub,
                    key: k.map(|k| OrderingKey::parse(k).unwrap()),
                }
                .doc_id()
            })
            .collect();
        for id in &ids {
            assert!(!id.contains(['/', '?', '#', '\\']), "{id}");
        }
        assert_ne!(ids[0], ids[1]);
        assert_ne!(ids[1], ids[2]);
    }
}
