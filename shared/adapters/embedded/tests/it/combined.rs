//! The document store and the broker in one database (`open_combined`): both port contracts,
//! outbox documents committed as messages with their batch, and the import of an earlier
//! version's broker database.

use std::sync::Arc;

use embedded::{Durability, SqliteBroker, open_combined};
use ports::{
    BrokerReceiver, BusSender, DocumentStore, Entity, EntitySpec, Filter, OutgoingMessage,
    PortError, SubscriptionSpec, Topology, WriteOp,
};
use serde_json::{Value, json};

/// The test's outbox format: `{"docType":"outbox","entity","messageId","type"}`.
fn message(body: &Value) -> Option<(String, OutgoingMessage)> {
    (body["docType"] == "outbox").then(|| {
        (
            body["entity"].as_str().unwrap_or_default().to_owned(),
            OutgoingMessage::new(
                body["messageId"].as_str().unwrap_or_default(),
                body.to_string().into_bytes(),
            )
            .property("type", body["type"].as_str().unwrap_or_default()),
        )
    })
}

fn outbox(id: &str, entity: &str, kind: &str) -> WriteOp {
    WriteOp::create(
        format!("outbox-{id}"),
        json!({"docType": "outbox", "entity": entity, "messageId": id, "type": kind}),
    )
}

fn open(dir: &std::path::Path) -> (embedded::SqliteDocumentStore, SqliteBroker) {
    open_combined(
        &dir.join("documents.db"),
        Durability::Normal,
        Arc::new(message),
    )
    .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn both_ports_pass_their_contracts_on_one_database() {
    let dir = tempfile::tempdir().unwrap();
    let (documents, broker) = open(dir.path());
    ports::conformance::document::document_store_contract(Arc::new(documents)).await;
    ports::conformance::bus::broker_contract(Arc::new(broker)).await;
}

#[tokio::test]
async fn outbox_documents_are_committed_as_messages_with_their_batch() {
    let dir = tempfile::tempdir().unwrap();
    let (documents, broker) = open(dir.path());
    broker
        .ensure_topology(
            &Topology::default()
                .queue("work", EntitySpec::default())
                .subscription(
                    "events",
                    SubscriptionSpec {
                        name: "fans-out".into(),
                        filter: Filter::PropertyNotIn {
                            name: "type".into(),
                            values: vec!["quiet".into()],
                        },
                        spec: EntitySpec::default(),
                    },
                ),
        )
        .await
        .unwrap();
    let work = Entity::queue("work");

    // A change and its event: the event is a message on the queue, not a document.
    let etags = documents
        .batch(
            "c",
            "p",
            vec![
                WriteOp::create("agg-1", json!({"n": 1})),
                outbox("e1", "work", "made"),
            ],
        )
        .await
        .unwrap();
    assert!(etags[0].is_some());
    assert_eq!(etags[1], None, "no document, so no etag");
    assert!(
        documents
            .read("c", "p", "outbox-e1")
            .await
            .unwrap()
            .is_none()
    );
    let got = broker.receive(&work, 10).await.unwrap();
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].message.message_id, "e1");
    broker
        .complete(&work, got[0].lock_token.as_str())
        .await
        .unwrap();

    // A batch that fails sends nothing.
    let failed = documents
        .batch(
            "c",
            "p",
            vec![
                WriteOp::create("agg-1", json!({"n": 2})),
                outbox("e2", "work", "made"),
            ],
        )
        .await;
    assert!(
        matches!(failed, Err(PortError::AlreadyExists)),
        "{failed:?}"
    );
    assert!(broker.receive(&work, 10).await.unwrap().is_empty());

    // A topic: its subscriptions' filters decide, as for any send.
    documents
        .batch(
            "c",
            "p",
            vec![
                outbox("e3", "events", "loud"),
                outbox("e4", "events", "quiet"),
            ],
        )
        .await
        .unwrap();
    let fanned = broker
        .receive(&Entity::subscription("events", "fans-out"), 10)
        .await
        .unwrap();
    let ids: Vec<&str> = fanned
        .iter()
        .map(|m| m.message.message_id.as_str())
        .collect();
    assert_eq!(ids, ["e3"]);

    // An entity the broker does not have yet: the event stays a document for the publisher.
    documents
        .batch("c", "p", vec![outbox("e5", "not-yet", "made")])
        .await
        .unwrap();
    assert!(
        documents
            .read("c", "p", "outbox-e5")
            .await
            .unwrap()
            .is_some()
    );

    // The same event twice: the broker's duplicate detection drops the copy.
    for _ in 0..2 {
        documents
            .batch("c", "p", vec![outbox("e6", "work", "made")])
            .await
            .unwrap();
    }
    assert_eq!(broker.receive(&work, 10).await.unwrap().len(), 1);
}

#[tokio::test]
async fn a_waiting_receiver_is_woken_by_a_routed_message() {
    let dir = tempfile::tempdir().unwrap();
    let (documents, broker) = open(dir.path());
    broker
        .ensure_topology(&Topology::default().queue("work", EntitySpec::default()))
        .await
        .unwrap();
    let waiting = {
        let broker = broker.clone();
        tokio::spawn(async move {
            let started = std::time::Instant::now();
            broker
                .wait_for_messages(&Entity::queue("work"), std::time::Duration::from_secs(10))
                .await;
            started.elapsed()
        })
    };
    tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    documents
        .batch("c", "p", vec![outbox("w1", "work", "made")])
        .await
        .unwrap();
    let waited = waiting.await.unwrap();
    assert!(waited < std::time::Duration::from_secs(5), "{waited:?}");
}

#[tokio::test]
async fn an_earlier_broker_database_is_imported_in_order_with_its_state() {
    let dir = tempfile::tempdir().unwrap();
    let old_path = dir.path().join("broker.db");
    {
        let old = SqliteBroker::open(&old_path, Durability::Normal).unwrap();
        old.ensure_topology(&Topology::default().queue("work", EntitySpec::default()))
            .await
            .unwrap();
        for id in ["a", "b", "c"] {
            old.send(
                "work",
                vec![OutgoingMessage::new(id, id.as_bytes().to_vec())],
            )
            .await
            .unwrap();
        }
        // "a" was being handled when the old process stopped: its delivery count stays.
        let first = old.receive(&Entity::queue("work"), 1).await.unwrap();
        assert_eq!(first[0].message.message_id, "a");
    }
    let (_documents, broker) = open(dir.path());
    // The combined database already has a message of its own.
    broker
        .ensure_topology(&Topology::default().queue("work", EntitySpec::default()))
        .await
        .unwrap();
    broker
        .send("work", vec![OutgoingMessage::new("new", b"new".to_vec())])
        .await
        .unwrap();
    let copied = embedded::import_broker(&dir.path().join("documents.db"), &old_path).unwrap();
    assert_eq!(copied, 3);
    let got = broker.receive(&Entity::queue("work"), 10).await.unwrap();
    let ids: Vec<&str> = got.iter().map(|m| m.message.message_id.as_str()).collect();
    // "a" is still locked by the old process's receive; the others keep their enqueue order,
    // ahead of the one sent after them.
    assert_eq!(ids, ["b", "c", "new"]);
    // The imported duplicate-detection ids still hold.
    broker
        .send("work", vec![OutgoingMessage::new("b", b"again".to_vec())])
        .await
        .unwrap();
    assert_eq!(
        broker.active_count(&Entity::queue("work")).await.unwrap(),
        4
    );
}
