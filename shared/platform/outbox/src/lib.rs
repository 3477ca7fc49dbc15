//! The transactional outbox: events are written as documents in the same batch (same
//! container, same partition) as the aggregate change that caused them, and a publisher
//! moves them to the bus until the bus has acknowledged them.
//!
//! Crash safety comes from the order of steps: commit (aggregate + outbox documents) →
//! send (MessageId = envelope id) → delete the outbox document. A crash before the send
//! leaves the document for the next pass; a crash between send and delete sends again, and
//! the broker's duplicate detection (and consumers' idempotency on the envelope id) drops
//! the copy. Nothing committed is lost; nothing is delivered twice to a consumer that keys
//! on the id.

use std::sync::Arc;
use std::time::Duration;

use envelope::Envelope;
use ports::{DocumentStore, OutgoingMessage, PortError, Query, WriteOp};
use serde_json::{Value, json};
use tokio::sync::Notify;

/// `docType` of outbox documents.
pub const OUTBOX_DOC_TYPE: &str = "outbox";

/// The topic every platform event goes to (design §7).
pub const EVENTS_TOPIC: &str = "integration-events";

/// The write that records `event` for publishing to `entity`; put it in the same batch as
/// the aggregate change.
pub fn outbox_write(event: &Envelope, entity: &str) -> WriteOp {
    outbox_write_at(event, entity, None)
}

/// Like [`outbox_write`], for a message the bus should deliver only at `at` (a saga's
/// timeout, say).
pub fn outbox_write_at(
    event: &Envelope,
    entity: &str,
    at: Option<chrono::DateTime<chrono::Utc>>,
) -> WriteOp {
    let body = json!({
        "docType": OUTBOX_DOC_TYPE,
        "entity": entity,
        "messageId": event.id(),
        "subject": event.event_type(),
        "tenantId": event.tenant_id(),
        "correlationId": event.correlation_id(),
        // Also an application property of the message, so the consumer's invocation can run
        // in the event's trace without parsing the envelope first.
        "traceparent": event.traceparent().map(ToString::to_string),
        // The envelope as text: its bytes are sent exactly as they were built.
        "envelope": String::from_utf8_lossy(&event.to_vec()),
        "createdAt": chrono::Utc::now().to_rfc3339(),
        "scheduledAt": at.map(|t| t.to_rfc3339()),
    });
    WriteOp::create(outbox_id(event.id()), body)
}

/// The envelope of a domain event, produced by the app at `source` (`/integration/<slug>`):
/// CloudEvents `type` and `subject` from the event, its tenant, its time, its data.
pub fn envelope_of(
    event: &domain::DomainEvent,
    source: &str,
    traceparent: Option<envelope::TraceParent>,
) -> Result<Envelope, envelope::EnvelopeError> {
    let data = event
        .to_data()
        .map_err(envelope::EnvelopeError::DataEncode)?;
    let raw = serde_json::value::RawValue::from_string(String::from_utf8_lossy(&data).into_owned())
        .map_err(envelope::EnvelopeError::DataEncode)?;
    let mut builder = Envelope::builder(source, event.event_type(), event.tenant_id().as_str())
        .subject(event.subject())
        .time(event.occurred_at());
    if let Some(tp) = traceparent {
        builder = builder.traceparent(tp);
    }
    builder.raw_json_data(raw)
}

/// The writes recording `events` for the events topic, for an aggregate's batch.
pub fn event_writes(
    events: &[domain::DomainEvent],
    source: &str,
    traceparent: Option<&envelope::TraceParent>,
) -> Result<Vec<WriteOp>, envelope::EnvelopeError> {
    events
        .iter()
        .map(|e| {
            envelope_of(e, source, traceparent.map(|t| t.child()))
                .map(|env| outbox_write(&env, EVENTS_TOPIC))
        })
        .collect()
}

/// Outbox document ids are derived from the event id, so writing the same event twice fails.
pub fn outbox_id(event_id: &str) -> String {
    format!("outbox-{event_id}")
}

/// The bus message an outbox document stands for, with its entity; `None` for any other
/// document (and for a malformed outbox document, which the publisher reports). The
/// embedded document store uses it to hand outbox documents to the embedded broker in the
/// batch's own transaction.
pub fn outbox_message(doc: &Value) -> Option<(String, OutgoingMessage)> {
    if doc.get("docType").and_then(Value::as_str) != Some(OUTBOX_DOC_TYPE) {
        return None;
    }
    message_from(doc).ok()
}

/// The bus message for an outbox document: `MessageId` = envelope id (duplicate detection),
/// `Subject` = event type, application properties `tenantId` and `type` (subscription filters).
fn message_from(doc: &Value) -> Result<(String, OutgoingMessage), PortError> {
    let field = |k: &str| doc.get(k).and_then(Value::as_str);
    let bad = || PortError::Invalid("an outbox document is malformed".into());
    let entity = field("entity").ok_or_else(bad)?.to_owned();
    let mut m = OutgoingMessage::new(
        field("messageId").ok_or_else(bad)?,
        field("envelope").ok_or_else(bad)?.as_bytes().to_vec(),
    )
    .content_type("application/cloudevents+json; charset=utf-8");
    if let Some(subject) = field("subject") {
        m = m.subject(subject).property("type", subject);
    }
    if let Some(traceparent) = field("traceparent") {
        m = m.property("traceparent", traceparent);
    }
    if let Some(tenant) = field("tenantId") {
        m = m.property("tenantId", tenant);
    }
    if let Some(corr) = field("correlationId") {
        m = m.correlation_id(corr);
    }
    if let Some(at) =
        field("scheduledAt").and_then(|t| chrono::DateTime::parse_from_rfc3339(t).ok())
    {
        m = m.scheduled_at(at.to_utc());
    }
    Ok((entity, m))
}

/// The wait before the publisher's next unprompted pass. Writers wake it after each commit,
/// so the passes between wake-ups only find events whose writer crashed (or ran in another
/// instance) before waking it: after a pass that published something, `min` (more may be
/// there); after an idle one, twice the last wait, at most `max`. An idle instance then asks
/// the store about once per `max` instead of once per `min` (in Azure, each ask is a
/// cross-partition query billed in request units).
pub fn next_wait(last: Duration, published: usize, min: Duration, max: Duration) -> Duration {
    if published > 0 {
        min
    } else {
        last.saturating_mul(2).clamp(min, max.max(min))
    }
}

/// Moves committed outbox documents to the bus.
pub struct OutboxPublisher {
    store: Arc<dyn DocumentStore>,
    bus: Arc<dyn ports::BusSender>,
    containers: Vec<String>,
    wake: Arc<Notify>,
}

impl OutboxPublisher {
    pub fn new(
        store: Arc<dyn DocumentStore>,
        bus: Arc<dyn ports::BusSender>,
        containers: Vec<String>,
    ) -> Self {
        OutboxPublisher {
            store,
            bus,
            containers,
            wake: Arc::new(Notify::new()),
        }
    }

    /// Like `new`, sharing a waker that writers already hold.
    pub fn with_waker(
        store: Arc<dyn DocumentStore>,
        bus: Arc<dyn ports::BusSender>,
        containers: Vec<String>,
        wake: Arc<Notify>,
    ) -> Self {
        OutboxPublisher {
            store,
            bus,
            containers,
            wake,
        }
    }

    /// A handle that writers can poke after a commit, so events go out at once instead of on
    /// the next poll.
    pub fn waker(&self) -> Arc<Notify> {
        self.wake.clone()
    }

    /// One pass over every container; returns how many events were published.
    pub async fn publish_pending(&self) -> Result<usize, PortError> {
        let mut published = 0;
        for container in &self.containers {
            let mut token = None;
            loop {
                let page = self
                    .store
                    .query(
                        container,
                        &Query::cross_partition()
                            .filter("docType", OUTBOX_DOC_TYPE)
                            .limit(100)
                            .after(token),
                    )
                    .await?;
                // One send per entity and one delete batch per partition for the whole page:
                // a burst of events costs a few transactions, not two per event.
                let mut by_entity: std::collections::BTreeMap<
                    String,
                    Vec<(OutgoingMessage, &ports::Document)>,
                > = std::collections::BTreeMap::new();
                for doc in &page.documents {
                    match message_from(&doc.body) {
                        Ok((entity, message)) => {
                            by_entity.entry(entity).or_default().push((message, doc))
                        }
                        Err(e) => {
                            tracing::error!(container = %container, id = %doc.id, error = %e, "skipping a malformed outbox document");
                        }
                    }
                }
                let mut sent: std::collections::BTreeMap<&str, Vec<&ports::Document>> =
                    std::collections::BTreeMap::new();
                for (entity, items) in by_entity {
                    let (messages, docs): (Vec<_>, Vec<_>) = items.into_iter().unzip();
                    match self.bus.send(&entity, messages).await {
                        Ok(()) => {
                            for doc in docs {
                                sent.entry(doc.partition.as_str()).or_default().push(doc);
                            }
                        }
                        // Left in the outbox for the next pass; other entities go on.
                        Err(e) => {
                            tracing::warn!(entity = %entity, error = %e, "could not publish outbox events; will retry")
                        }
                    }
                }
                for (partition, docs) in sent {
                    published += docs.len();
                    for chunk in docs.chunks(100) {
                        let ops = chunk
                            .iter()
                            .map(|d| WriteOp::delete(&d.id, Some(d.etag.clone())))
                            .collect();
                        match self.store.batch(container, partition, ops).await {
                            Ok(_) => {}
                            // Someone else forgot some of them first: forget the rest one by one.
                            Err(PortError::NotFound | PortError::PreconditionFailed) => {
                                for d in chunk {
                                    match self
                                        .store
                                        .batch(
                                            container,
                                            partition,
                                            vec![WriteOp::delete(&d.id, Some(d.etag.clone()))],
                                        )
                                        .await
                                    {
                                        Ok(_)
                                        | Err(
                                            PortError::NotFound | PortError::PreconditionFailed,
                                        ) => {}
                                        Err(e) => return Err(e),
                                    }
                                }
                            }
                            Err(e) => return Err(e),
                        }
                    }
                }
                token = page.continuation;
                if token.is_none() {
                    break;
                }
            }
        }
        Ok(published)
    }

    /// Publishes until `shutdown` completes: on every wake-up, and otherwise after a wait
    /// that starts at `interval` and doubles after each pass that found nothing, up to
    /// `idle_interval` (see [`next_wait`]). Errors are logged and retried on the next pass
    /// (the documents stay until sent).
    pub async fn run(
        self,
        interval: Duration,
        idle_interval: Duration,
        shutdown: impl std::future::Future<Output = ()>,
    ) {
        tokio::pin!(shutdown);
        let mut wait = interval;
        loop {
            let published = match self.publish_pending().await {
                Ok(n) => n,
                Err(e) => {
                    tracing::warn!(error = %e, "outbox pass failed; retrying");
                    0
                }
            };
            wait = next_wait(wait, published, interval, idle_interval);
            tokio::select! {
                _ = &mut shutdown => break,
                _ = self.wake.notified() => wait = interval,
                _ = tokio::time::sleep(wait) => {},
            }
        }
        // One last pass so events committed just before shutdown go out now.
        let _ = self.publish_pending().await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn idle_passes_space_out_and_a_find_resets_the_wait() {
        let (min, max) = (Duration::from_millis(500), Duration::from_secs(8));
        let mut wait = min;
        let mut waits = Vec::new();
        for _ in 0..6 {
            wait = next_wait(wait, 0, min, max);
            waits.push(wait.as_millis());
        }
        assert_eq!(waits, [1000, 2000, 4000, 8000, 8000, 8000]);
        assert_eq!(
            next_wait(wait, 3, min, max),
            min,
            "events found: look again soon"
        );
        // A maximum below the minimum never makes the wait shorter than the minimum.
        assert_eq!(next_wait(min, 0, min, Duration::from_millis(100)), min);
    }
}
