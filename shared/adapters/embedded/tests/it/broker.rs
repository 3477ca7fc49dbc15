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

/// A lock token settles only its own message: a made-up token, another message's number with
/// a guessed remainder, or a token of a message already settled all answer "not found".
#[tokio::test]
async fn only_the_exact_lock_token_settles_its_message() {
    let dir = tempfile::tempdir().unwrap();
    let broker = SqliteBroker::open(&dir.path().join("broker.db"), Durability::Normal).unwrap();
    let queue = Entity::queue("work");
    broker
        .ensure_topology(&Topology::default().queue("work", EntitySpec::default()))
        .await
        .unwrap();
    broker
        .send(
            "work",
            vec![
                OutgoingMessage::new("a", b"a".to_vec()),
                OutgoingMessage::new("b", b"b".to_vec()),
            ],
        )
        .await
        .unwrap();
    let got = broker.receive(&queue, 2).await.unwrap();
    let (a, b) = (&got[0].lock_token, &got[1].lock_token);
    let (seq, _) = a.split_once('.').expect("a token names its message");
    for forged in [
        "garbage".to_owned(),
        uuid::Uuid::new_v4().to_string(),
        format!("{seq}.{}", uuid::Uuid::new_v4()),
        format!("{seq}.{}", b.split_once('.').unwrap().1),
    ] {
        assert!(
            matches!(
                broker.complete(&queue, &forged).await,
                Err(ports::PortError::NotFound)
            ),
            "{forged}"
        );
        assert!(
            broker.renew_lock(&queue, &forged).await.is_err(),
            "{forged}"
        );
        assert!(broker.abandon(&queue, &forged).await.is_err(), "{forged}");
    }
    broker.complete(&queue, a).await.unwrap();
    assert!(matches!(
        broker.complete(&queue, a).await,
        Err(ports::PortError::NotFound)
    ));
    broker.renew_lock(&queue, b).await.unwrap();
    broker.complete(&queue, b).await.unwrap();
    assert!(broker.receive(&queue, 10).await.unwrap().is_empty());
}
