//! The broker contract: Service Bus semantics for brokers the platform runs itself.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::unique;
use crate::{
    BrokerReceiver, BusSender, Entity, EntitySpec, Filter, OutgoingMessage, PortError,
    SubscriptionSpec, Topology,
};

/// A broker is both ends.
pub trait Broker: BusSender + BrokerReceiver {}
impl<T: BusSender + BrokerReceiver> Broker for T {}

fn spec(max_delivery_count: u32, lock_ms: u64) -> EntitySpec {
    EntitySpec {
        max_delivery_count,
        lock_duration: Duration::from_millis(lock_ms),
        ..EntitySpec::default()
    }
}

async fn queue(broker: &dyn Broker, spec: EntitySpec) -> (String, Entity) {
    let name = unique("q");
    broker
        .ensure_topology(&Topology::default().queue(&name, spec))
        .await
        .expect("topology");
    (name.clone(), Entity::queue(name))
}

fn msg(id: &str, body: &str) -> OutgoingMessage {
    OutgoingMessage::new(id, body.as_bytes().to_vec())
}

/// Runs every check. Entities get unique names, so brokers may be shared.
pub async fn broker_contract(broker: Arc<dyn Broker>) {
    send_receive_complete(broker.as_ref()).await;
    peek_lock_and_abandon(broker.as_ref()).await;
    lock_expiry(broker.as_ref()).await;
    dead_letter_after_max_deliveries(broker.as_ref()).await;
    explicit_dead_letter_and_renew(broker.as_ref()).await;
    scheduled_delivery(broker.as_ref()).await;
    duplicate_detection(broker.as_ref()).await;
    topic_filters(broker.as_ref()).await;
    sessions_in_order(broker.as_ref()).await;
    time_to_live(broker.as_ref()).await;
    wakes_waiting_receivers(broker.clone()).await;
    competing_receivers(broker.clone()).await;
    invalid_sends(broker.as_ref()).await;
}

async fn send_receive_complete(broker: &dyn Broker) {
    let (name, q) = queue(broker, EntitySpec::default()).await;
    let sent = msg("m-1", "{\"hello\":\"world\"}")
        .content_type("application/json")
        .subject("greeting")
        .correlation_id("corr-1")
        .property("tenantId", "t1")
        .property("attempt", crate::PropertyValue::Int(2));
    broker.send(&name, vec![sent.clone()]).await.expect("send");
    assert_eq!(broker.active_count(&q).await.unwrap(), 1);
    let got = broker.receive(&q, 10).await.expect("receive");
    assert_eq!(got.len(), 1);
    let m = &got[0];
    assert_eq!(m.message.body, sent.body, "body bytes round-trip");
    assert_eq!(m.message.message_id, "m-1");
    assert_eq!(m.message.subject.as_deref(), Some("greeting"));
    assert_eq!(m.message.correlation_id.as_deref(), Some("corr-1"));
    assert_eq!(m.message.content_type.as_deref(), Some("application/json"));
    assert_eq!(
        m.message.application_properties,
        sent.application_properties
    );
    assert_eq!(m.delivery_count, 1, "the first delivery counts 1");
    assert!(!m.lock_token.is_empty());
    broker.complete(&q, &m.lock_token).await.expect("complete");
    assert_eq!(
        broker.active_count(&q).await.unwrap(),
        0,
        "completed messages are gone"
    );
    assert!(
        matches!(
            broker.complete(&q, &m.lock_token).await,
            Err(PortError::NotFound)
        ),
        "complete twice fails"
    );
}

async fn peek_lock_and_abandon(broker: &dyn Broker) {
    let (name, q) = queue(broker, EntitySpec::default()).await;
    broker.send(&name, vec![msg("a", "1")]).await.unwrap();
    let first = broker.receive(&q, 1).await.unwrap();
    assert_eq!(first.len(), 1);
    assert!(
        broker.receive(&q, 1).await.unwrap().is_empty(),
        "a locked message is invisible"
    );
    broker
        .abandon(&q, &first[0].lock_token)
        .await
        .expect("abandon");
    let again = broker.receive(&q, 1).await.unwrap();
    assert_eq!(
        again.len(),
        1,
        "an abandoned message is redelivered at once"
    );
    assert_eq!(again[0].delivery_count, 2, "and its delivery count grows");
    assert!(
        matches!(
            broker.complete(&q, &first[0].lock_token).await,
            Err(PortError::NotFound)
        ),
        "an old lock token is no longer valid"
    );
    broker.complete(&q, &again[0].lock_token).await.unwrap();
}

async fn lock_expiry(broker: &dyn Broker) {
    let (name, q) = queue(broker, spec(10, 400)).await;
    broker.send(&name, vec![msg("l", "1")]).await.unwrap();
    let first = broker.receive(&q, 1).await.unwrap();
    assert_eq!(first.len(), 1);
    tokio::time::sleep(Duration::from_millis(700)).await;
    let again = broker.receive(&q, 1).await.unwrap();
    assert_eq!(
        again.len(),
        1,
        "a message whose lock expired is delivered again"
    );
    assert_eq!(again[0].delivery_count, 2);
    assert!(
        matches!(
            broker.complete(&q, &first[0].lock_token).await,
            Err(PortError::NotFound)
        ),
        "the expired lock is lost"
    );
    broker.complete(&q, &again[0].lock_token).await.unwrap();
}

async fn dead_letter_after_max_deliveries(broker: &dyn Broker) {
    let (name, q) = queue(broker, spec(3, 60_000)).await;
    broker.send(&name, vec![msg("poison", "x")]).await.unwrap();
    for expected in 1..=3 {
        let got = broker.receive(&q, 1).await.unwrap();
        assert_eq!(got.len(), 1, "delivery {expected} happens");
        assert_eq!(got[0].delivery_count, expected);
        broker.abandon(&q, &got[0].lock_token).await.unwrap();
    }
    assert!(
        broker.receive(&q, 1).await.unwrap().is_empty(),
        "no fourth delivery with max 3"
    );
    assert_eq!(broker.active_count(&q).await.unwrap(), 0);
    let dead = broker.peek_dead_letters(&q, 10).await.unwrap();
    assert_eq!(dead.len(), 1, "the message is in the dead-letter queue");
    assert_eq!(
        dead[0].dead_letter_reason.as_deref(),
        Some("MaxDeliveryCountExceeded")
    );
    assert_eq!(dead[0].delivery_count, 3);
    assert_eq!(dead[0].message.message_id, "poison");

    // A lock that expires on the last allowed delivery dead-letters too.
    let (name, q) = queue(broker, spec(1, 300)).await;
    broker.send(&name, vec![msg("slow", "x")]).await.unwrap();
    assert_eq!(broker.receive(&q, 1).await.unwrap().len(), 1);
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(broker.receive(&q, 1).await.unwrap().is_empty());
    assert_eq!(broker.peek_dead_letters(&q, 10).await.unwrap().len(), 1);
}

async fn explicit_dead_letter_and_renew(broker: &dyn Broker) {
    let (name, q) = queue(broker, spec(10, 500)).await;
    broker
        .send(&name, vec![msg("bad", "x"), msg("long", "y")])
        .await
        .unwrap();
    let got = broker.receive(&q, 2).await.unwrap();
    assert_eq!(got.len(), 2);
    broker
        .dead_letter(&q, &got[0].lock_token, "ValidationFailed")
        .await
        .expect("dead-letter");
    let dead = broker.peek_dead_letters(&q, 10).await.unwrap();
    assert_eq!(dead.len(), 1);
    assert_eq!(
        dead[0].dead_letter_reason.as_deref(),
        Some("ValidationFailed")
    );
    // Renewing keeps the second message locked past its original lock.
    for _ in 0..3 {
        tokio::time::sleep(Duration::from_millis(250)).await;
        let until = broker
            .renew_lock(&q, &got[1].lock_token)
            .await
            .expect("renew");
        assert!(until > chrono::Utc::now());
    }
    assert!(
        broker.receive(&q, 1).await.unwrap().is_empty(),
        "a renewed lock holds"
    );
    broker
        .complete(&q, &got[1].lock_token)
        .await
        .expect("complete after renewals");
}

async fn scheduled_delivery(broker: &dyn Broker) {
    let (name, q) = queue(broker, EntitySpec::default()).await;
    let at = chrono::Utc::now() + chrono::Duration::milliseconds(700);
    broker
        .send(
            &name,
            vec![msg("later", "x").scheduled_at(at), msg("now", "y")],
        )
        .await
        .unwrap();
    let got = broker.receive(&q, 10).await.unwrap();
    assert_eq!(
        got.iter()
            .map(|m| m.message.message_id.as_str())
            .collect::<Vec<_>>(),
        vec!["now"],
        "scheduled messages wait"
    );
    broker.complete(&q, &got[0].lock_token).await.unwrap();
    assert_eq!(
        broker.active_count(&q).await.unwrap(),
        1,
        "a scheduled message counts as active"
    );
    tokio::time::sleep(Duration::from_millis(900)).await;
    let later = broker.receive(&q, 10).await.unwrap();
    assert_eq!(later.len(), 1);
    assert_eq!(later[0].message.message_id, "later");
    assert!(
        later[0].enqueued_time >= at - chrono::Duration::milliseconds(5),
        "enqueued at its scheduled time"
    );
}

async fn duplicate_detection(broker: &dyn Broker) {
    let (name, q) = queue(broker, EntitySpec::default()).await;
    broker.send(&name, vec![msg("dup", "1")]).await.unwrap();
    broker
        .send(&name, vec![msg("dup", "2")])
        .await
        .expect("a duplicate is accepted");
    broker
        .send(&name, vec![msg("other", "3"), msg("dup", "4")])
        .await
        .unwrap();
    let got = broker.receive(&q, 10).await.unwrap();
    let ids: Vec<_> = got.iter().map(|m| m.message.message_id.as_str()).collect();
    assert_eq!(ids, vec!["dup", "other"], "and dropped");
    assert_eq!(got[0].message.body.as_ref(), b"1", "the first copy is kept");
    // Consumed messages stay remembered for the window.
    for m in &got {
        broker.complete(&q, &m.lock_token).await.unwrap();
    }
    broker.send(&name, vec![msg("dup", "5")]).await.unwrap();
    assert!(
        broker.receive(&q, 10).await.unwrap().is_empty(),
        "even after completion, within the window"
    );
}

async fn topic_filters(broker: &dyn Broker) {
    let topic = unique("topic");
    let sub = |name: &str, filter: Filter| SubscriptionSpec {
        name: name.into(),
        filter,
        spec: EntitySpec::default(),
    };
    let topology = Topology::default()
        .subscription(&topic, sub("all", Filter::All))
        .subscription(
            &topic,
            sub(
                "runs",
                Filter::PropertyIn {
                    name: "type".into(),
                    values: vec!["run.completed".into(), "run.failed".into()],
                },
            ),
        )
        .subscription(
            &topic,
            sub(
                "webhooks",
                Filter::PropertyPrefix {
                    name: "type".into(),
                    prefix: "webhook.".into(),
                },
            ),
        );
    broker.ensure_topology(&topology).await.unwrap();
    broker
        .send(
            &topic,
            vec![
                msg("1", "a").property("type", "run.completed"),
                msg("2", "b").property("type", "webhook.received"),
                msg("3", "c").property("type", "provider.registered"),
                msg("4", "d").property("type", "run.failed"),
            ],
        )
        .await
        .unwrap();
    let ids = |v: Vec<crate::ReceivedMessage>| {
        v.into_iter()
            .map(|m| m.message.message_id)
            .collect::<Vec<_>>()
    };
    assert_eq!(
        ids(broker
            .receive(&Entity::subscription(&topic, "all"), 10)
            .await
            .unwrap()),
        vec!["1", "2", "3", "4"]
    );
    assert_eq!(
        ids(broker
            .receive(&Entity::subscription(&topic, "runs"), 10)
            .await
            .unwrap()),
        vec!["1", "4"]
    );
    assert_eq!(
        ids(broker
            .receive(&Entity::subscription(&topic, "webhooks"), 10)
            .await
            .unwrap()),
        vec!["2"]
    );
    assert!(
        matches!(
            broker.receive(&Entity::queue(&topic), 1).await,
            Err(PortError::Invalid(_) | PortError::NotFound)
        ),
        "a topic is not received from"
    );
}

async fn sessions_in_order(broker: &dyn Broker) {
    let (name, q) = queue(
        broker,
        EntitySpec {
            requires_session: true,
            ..EntitySpec::default()
        },
    )
    .await;
    let m = |id: &str, s: &str| msg(id, id).session_id(s);
    broker
        .send(
            &name,
            vec![
                m("a1", "A"),
                m("b1", "B"),
                m("a2", "A"),
                m("a3", "A"),
                m("b2", "B"),
            ],
        )
        .await
        .unwrap();
    let mut order: Vec<String> = Vec::new();
    loop {
        let got = broker.receive(&q, 10).await.unwrap();
        if got.is_empty() {
            break;
        }
        let sessions: HashSet<_> = got.iter().map(|m| m.message.session_id.clone()).collect();
        assert_eq!(
            sessions.len(),
            got.len(),
            "at most one message per session is in flight"
        );
        for m in got {
            order.push(m.message.message_id.clone());
            broker.complete(&q, &m.lock_token).await.unwrap();
        }
    }
    let a: Vec<_> = order
        .iter()
        .filter(|i| i.starts_with('a'))
        .cloned()
        .collect();
    let b: Vec<_> = order
        .iter()
        .filter(|i| i.starts_with('b'))
        .cloned()
        .collect();
    assert_eq!(a, vec!["a1", "a2", "a3"], "session A in order");
    assert_eq!(b, vec!["b1", "b2"], "session B in order");
    assert!(
        matches!(
            broker.send(&name, vec![msg("nos", "x")]).await,
            Err(PortError::Invalid(_))
        ),
        "a session entity refuses messages without a SessionId"
    );
}

async fn time_to_live(broker: &dyn Broker) {
    let (name, q) = queue(broker, EntitySpec::default()).await;
    let mut m = msg("ttl", "x");
    m.time_to_live = Some(Duration::from_millis(300));
    broker.send(&name, vec![m]).await.unwrap();
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(
        broker.receive(&q, 1).await.unwrap().is_empty(),
        "expired messages are not delivered"
    );
    let dead = broker.peek_dead_letters(&q, 10).await.unwrap();
    assert_eq!(dead.len(), 1, "they are dead-lettered on expiry");
    assert_eq!(
        dead[0].dead_letter_reason.as_deref(),
        Some("TTLExpiredException")
    );
}

async fn wakes_waiting_receivers(broker: Arc<dyn Broker>) {
    let (name, q) = queue(broker.as_ref(), EntitySpec::default()).await;
    let b = broker.clone();
    let waiter = tokio::spawn(async move {
        let start = Instant::now();
        b.wait_for_messages(&q, Duration::from_secs(10)).await;
        start.elapsed()
    });
    tokio::time::sleep(Duration::from_millis(100)).await;
    broker.send(&name, vec![msg("wake", "x")]).await.unwrap();
    let waited = waiter.await.unwrap();
    assert!(
        waited < Duration::from_secs(5),
        "a send wakes a waiting receiver (waited {waited:?})"
    );
}

async fn competing_receivers(broker: Arc<dyn Broker>) {
    let (name, q) = queue(broker.as_ref(), EntitySpec::default()).await;
    let batch: Vec<_> = (0..200).map(|i| msg(&format!("c{i}"), "x")).collect();
    broker.send(&name, batch).await.unwrap();
    let mut tasks = Vec::new();
    for _ in 0..4 {
        let (b, q) = (broker.clone(), q.clone());
        tasks.push(tokio::spawn(async move {
            let mut ids = Vec::new();
            loop {
                let got = b.receive(&q, 7).await.unwrap();
                if got.is_empty() {
                    break;
                }
                for m in got {
                    b.complete(&q, &m.lock_token).await.unwrap();
                    ids.push(m.message.message_id);
                }
            }
            ids
        }));
    }
    let mut all = Vec::new();
    for t in tasks {
        all.extend(t.await.unwrap());
    }
    let unique_ids: HashSet<_> = all.iter().cloned().collect();
    assert_eq!(all.len(), 200, "every message delivered once");
    assert_eq!(unique_ids.len(), 200, "no message delivered twice");
}

async fn invalid_sends(broker: &dyn Broker) {
    assert!(
        matches!(
            broker.send(&unique("missing"), vec![msg("x", "y")]).await,
            Err(PortError::NotFound)
        ),
        "unknown entity"
    );
    let (name, _) = queue(broker, EntitySpec::default()).await;
    assert!(
        matches!(
            broker.send(&name, vec![msg("", "y")]).await,
            Err(PortError::Invalid(_))
        ),
        "empty MessageId"
    );
    let huge = OutgoingMessage::new("big", vec![0u8; 300 * 1024]);
    assert!(
        matches!(
            broker.send(&name, vec![huge]).await,
            Err(PortError::Invalid(_))
        ),
        "oversized body"
    );
}
