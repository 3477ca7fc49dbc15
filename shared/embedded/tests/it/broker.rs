use std::sync::Arc;

use embedded::{Durability, SqliteBroker};
use ports::{BrokerReceiver, BusSender, Entity, EntitySpec, OutgoingMessage, Topology};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_broker_passes_the_contract() {
    let dir = tempfile::tempdir().unwrap();
    let broker = SqliteBroker::open(&dir.path().join("broker.db"), Durability::Normal).unwrap();
    ports::conformance::bus::broker_contract(Arc::new(broker)).await;
}

#[tokio::test]
async fn messages_and_topology_survive_reopening() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("broker.db");
    {
        let broker = SqliteBroker::open(&path, Durability::Normal).unwrap();
        broker
            .ensure_topology(&Topology::default().queue("runs-sms", EntitySpec::default()))
            .await
            .unwrap();
        broker
            .send(
                "runs-sms",
                vec![OutgoingMessage::new("m1", b"kept".to_vec())],
            )
            .await
            .unwrap();
        // Locked but never settled when the process "dies".
        assert_eq!(
            broker
                .receive(&Entity::queue("runs-sms"), 1)
                .await
                .unwrap()
                .len(),
            1
        );
    }
    let broker = SqliteBroker::open(&path, Durability::Normal).unwrap();
    // A fresh process knows the entities without being told again.
    broker
        .send(
            "runs-sms",
            vec![OutgoingMessage::new("m2", b"new".to_vec())],
        )
        .await
        .unwrap();
    let got = broker
        .receive(&Entity::queue("runs-sms"), 10)
        .await
        .unwrap();
    assert_eq!(
        got.iter()
            .map(|m| m.message.message_id.as_str())
            .collect::<Vec<_>>(),
        vec!["m2"],
        "m1 is still locked"
    );
    assert_eq!(
        broker
            .active_count(&Entity::queue("runs-sms"))
            .await
            .unwrap(),
        2,
        "nothing accepted was lost"
    );
}
