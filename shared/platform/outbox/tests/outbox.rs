//! The outbox against the embedded store and broker.

use std::sync::Arc;

use embedded::{Durability, SqliteBroker, SqliteDocumentStore};
use envelope::Envelope;
use outbox::{EVENTS_TOPIC, OutboxPublisher, outbox_write};
use ports::{
    BrokerReceiver, DocumentStore, Entity, EntitySpec, Filter, Query, SubscriptionSpec, Topology,
    WriteOp,
};
use serde_json::json;

fn event(tenant: &str, n: u32) -> Envelope {
    Envelope::builder(
        "/integration/test",
        "connectsoft.integration.test.happened.v1",
        tenant,
    )
    .json_data(&json!({"n": n}))
    .unwrap()
}

async fn setup(dir: &std::path::Path) -> (Arc<SqliteDocumentStore>, Arc<SqliteBroker>) {
    let store =
        Arc::new(SqliteDocumentStore::open(&dir.join("documents.db"), Durability::Normal).unwrap());
    let broker = Arc::new(SqliteBroker::open(&dir.join("broker.db"), Durability::Normal).unwrap());
    let sub = SubscriptionSpec {
        name: "all".into(),
        filter: Filter::All,
        spec: EntitySpec::default(),
    };
    broker
        .ensure_topology(&Topology::default().subscription(EVENTS_TOPIC, sub))
        .await
        .unwrap();
    (store, broker)
}

#[tokio::test]
async fn committed_events_reach_the_bus_once_with_their_ids() {
    let dir = tempfile::tempdir().unwrap();
    let (store, broker) = setup(dir.path()).await;
    let events = [event("t1", 1), event("t1", 2)];
    let mut ops = vec![WriteOp::create("agg-1", json!({"v": 1}))];
    ops.extend(events.iter().map(|e| outbox_write(e, EVENTS_TOPIC)));
    store.batch("things", "t1", ops).await.unwrap();

    let publisher = OutboxPublisher::new(store.clone(), broker.clone(), vec!["things".into()]);
    assert_eq!(publisher.publish_pending().await.unwrap(), 2);
    assert_eq!(
        publisher.publish_pending().await.unwrap(),
        0,
        "published events leave the outbox"
    );

    let sub = Entity::subscription(EVENTS_TOPIC, "all");
    let got = broker.receive(&sub, 10).await.unwrap();
    assert_eq!(got.len(), 2);
    for (m, e) in got.iter().zip(&events) {
        assert_eq!(m.message.message_id, e.id(), "MessageId is the envelope id");
        assert_eq!(m.message.subject.as_deref(), Some(e.event_type()));
        assert_eq!(
            m.message
                .application_properties
                .get("tenantId")
                .and_then(|v| v.as_str()),
            Some("t1")
        );
        assert_eq!(
            Envelope::parse(&m.message.body).unwrap(),
            *e,
            "the envelope arrives unchanged"
        );
    }
}

#[tokio::test]
async fn a_crash_between_send_and_delete_does_not_deliver_twice() {
    let dir = tempfile::tempdir().unwrap();
    let (store, broker) = setup(dir.path()).await;
    let e = event("t2", 1);
    store
        .batch("things", "t2", vec![outbox_write(&e, EVENTS_TOPIC)])
        .await
        .unwrap();
    // Simulate the crash: the message went out but the outbox document stayed.
    let publisher = OutboxPublisher::new(store.clone(), broker.clone(), vec!["things".into()]);
    publisher.publish_pending().await.unwrap();
    store
        .batch("things", "t2", vec![outbox_write(&e, EVENTS_TOPIC)])
        .await
        .unwrap();
    // The restarted publisher sends it again; the broker drops the duplicate.
    let restarted = OutboxPublisher::new(store.clone(), broker.clone(), vec!["things".into()]);
    assert_eq!(restarted.publish_pending().await.unwrap(), 1);
    let sub = Entity::subscription(EVENTS_TOPIC, "all");
    assert_eq!(
        broker.receive(&sub, 10).await.unwrap().len(),
        1,
        "one delivery"
    );
    let left = store
        .query(
            "things",
            &Query::cross_partition().filter("docType", "outbox"),
        )
        .await
        .unwrap();
    assert!(left.documents.is_empty());
}

#[tokio::test]
async fn events_committed_before_a_restart_are_published_after_it() {
    let dir = tempfile::tempdir().unwrap();
    {
        let (store, _broker) = setup(dir.path()).await;
        store
            .batch(
                "things",
                "t3",
                vec![outbox_write(&event("t3", 9), EVENTS_TOPIC)],
            )
            .await
            .unwrap();
        // The process dies here, before any publisher ran.
    }
    let (store, broker) = setup(dir.path()).await;
    let publisher = OutboxPublisher::new(store.clone(), broker.clone(), vec!["things".into()]);
    assert_eq!(publisher.publish_pending().await.unwrap(), 1);
    assert_eq!(
        broker
            .active_count(&Entity::subscription(EVENTS_TOPIC, "all"))
            .await
            .unwrap(),
        1
    );
}

/// An event's trace travels as an application property too, so the consumer's invocation
/// joins that trace before it reads the envelope.
#[tokio::test]
async fn the_events_traceparent_is_a_message_property() {
    let dir = tempfile::tempdir().unwrap();
    let (store, broker) = setup(dir.path()).await;
    let tp = envelope::TraceParent::new_root();
    let traced = Envelope::builder("/integration/test", "connectsoft.integration.test.v1", "t1")
        .traceparent(tp)
        .json_data(&json!({}))
        .unwrap();
    let untraced = event("t1", 2);
    let ops = vec![
        outbox_write(&traced, EVENTS_TOPIC),
        outbox_write(&untraced, EVENTS_TOPIC),
    ];
    store.batch("things", "t1", ops).await.unwrap();
    OutboxPublisher::new(store.clone(), broker.clone(), vec!["things".into()])
        .publish_pending()
        .await
        .unwrap();
    let got = broker
        .receive(&Entity::subscription(EVENTS_TOPIC, "all"), 10)
        .await
        .unwrap();
    let property = |id: &str| {
        got.iter()
            .find(|m| m.message.message_id == id)
            .and_then(|m| m.message.application_properties.get("traceparent"))
            .and_then(|v| v.as_str())
            .map(str::to_owned)
    };
    assert_eq!(property(traced.id()), Some(tp.to_string()));
    assert_eq!(property(untraced.id()), None);
}
