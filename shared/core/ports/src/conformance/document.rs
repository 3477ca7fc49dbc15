//! The `DocumentStore` contract.

use std::sync::Arc;
use std::time::Duration;

use serde_json::json;

use super::unique;
use crate::{DocumentStore, DocumentStoreExt, ETag, PortError, Query, WriteOp};

/// Runs every check against `store`. Uses fresh partitions, so stores may be shared.
pub async fn document_store_contract(store: Arc<dyn DocumentStore>) {
    let c = "contract";
    round_trip(store.as_ref(), c).await;
    optimistic_concurrency(store.as_ref(), c).await;
    concurrent_writers(store.clone(), c).await;
    partitions_and_queries(store.as_ref(), c).await;
    batches_are_atomic(store.as_ref(), c).await;
    time_to_live(store.as_ref(), c).await;
    invalid_input(store.as_ref(), c).await;
}

async fn round_trip(store: &dyn DocumentStore, c: &str) {
    let p = unique("t");
    let body = json!({"name": "ada", "n": 1, "nested": {"list": [1, 2, 3]}, "unicode": "é✓"});
    let etag = store
        .create(c, &p, "doc-1", body.clone())
        .await
        .expect("create");
    let doc = store
        .read(c, &p, "doc-1")
        .await
        .expect("read")
        .expect("document exists");
    assert_eq!(doc.body, body, "the body reads back unchanged");
    assert_eq!(doc.etag, etag, "read returns the etag create returned");
    assert_eq!(doc.partition, p);
    assert!(
        store.read(c, &p, "missing").await.expect("read").is_none(),
        "missing reads as None"
    );
    assert!(
        matches!(
            store.create(c, &p, "doc-1", json!({})).await,
            Err(PortError::AlreadyExists)
        ),
        "creating an existing id fails with AlreadyExists"
    );
}

async fn optimistic_concurrency(store: &dyn DocumentStore, c: &str) {
    let p = unique("t");
    let e1 = store
        .create(c, &p, "d", json!({"v": 1}))
        .await
        .expect("create");
    let e2 = store
        .replace(c, &p, "d", json!({"v": 2}), Some(e1.clone()))
        .await
        .expect("replace with current etag");
    assert_ne!(e1, e2, "every write changes the etag");
    assert!(
        matches!(
            store
                .replace(c, &p, "d", json!({"v": 3}), Some(e1.clone()))
                .await,
            Err(PortError::PreconditionFailed)
        ),
        "a stale etag is refused"
    );
    assert_eq!(
        store.read(c, &p, "d").await.unwrap().unwrap().body,
        json!({"v": 2}),
        "the refused write left no trace"
    );
    assert!(
        matches!(
            store.replace(c, &p, "nope", json!({}), None).await,
            Err(PortError::NotFound)
        ),
        "replace of a missing document is NotFound"
    );
    let up = store
        .single(
            c,
            &p,
            WriteOp::Upsert {
                id: "d".into(),
                body: json!({"v": 4}),
                if_match: Some(e1),
                ttl: None,
            },
        )
        .await;
    assert!(
        matches!(up, Err(PortError::PreconditionFailed)),
        "upsert with a stale etag is refused"
    );
    store
        .upsert(c, &p, "u", json!({"v": 1}))
        .await
        .expect("upsert creates");
    store
        .upsert(c, &p, "u", json!({"v": 2}))
        .await
        .expect("upsert replaces");
    assert_eq!(
        store.read(c, &p, "u").await.unwrap().unwrap().body,
        json!({"v": 2})
    );
    assert!(
        matches!(
            store.delete(c, &p, "d", Some(ETag("stale".into()))).await,
            Err(PortError::PreconditionFailed)
        ),
        "delete with a stale etag is refused"
    );
    store
        .delete(c, &p, "d", Some(e2))
        .await
        .expect("delete with current etag");
    assert!(store.read(c, &p, "d").await.unwrap().is_none());
    assert!(
        matches!(
            store.delete(c, &p, "d", None).await,
            Err(PortError::NotFound)
        ),
        "deleting twice is NotFound"
    );
}

async fn concurrent_writers(store: Arc<dyn DocumentStore>, c: &str) {
    let p = unique("t");
    let etag = store
        .create(c, &p, "race", json!({"winner": null}))
        .await
        .expect("create");
    let mut tasks = Vec::new();
    for i in 0..8 {
        let (store, p, etag, c) = (store.clone(), p.clone(), etag.clone(), c.to_owned());
        tasks.push(tokio::spawn(async move {
            store
                .replace(&c, &p, "race", json!({"winner": i}), Some(etag))
                .await
        }));
    }
    let mut wins = 0;
    let mut conflicts = 0;
    for t in tasks {
        match t.await.expect("task") {
            Ok(_) => wins += 1,
            Err(PortError::PreconditionFailed) => conflicts += 1,
            Err(e) => panic!("unexpected error in a write race: {e}"),
        }
    }
    assert_eq!(
        (wins, conflicts),
        (1, 7),
        "with one etag, exactly one writer wins"
    );
}

async fn partitions_and_queries(store: &dyn DocumentStore, c: &str) {
    let (a, b) = (unique("t"), unique("t"));
    store
        .create(c, &a, "same-id", json!({"owner": "a"}))
        .await
        .expect("create a");
    store
        .create(c, &b, "same-id", json!({"owner": "b"}))
        .await
        .expect("create b");
    assert_eq!(
        store.read(c, &a, "same-id").await.unwrap().unwrap().body["owner"],
        "a",
        "partitions are separate"
    );
    for i in 0..25 {
        let kind = if i % 2 == 0 { "even" } else { "odd" };
        store
            .create(
                c,
                &a,
                &format!("item-{i:03}"),
                json!({"kind": kind, "i": i, "flag": i % 5 == 0}),
            )
            .await
            .expect("create item");
    }
    // Filters on strings, numbers and booleans.
    let evens = store
        .query(c, &Query::partition(&a).filter("kind", "even").limit(100))
        .await
        .expect("query");
    assert_eq!(evens.documents.len(), 13);
    assert!(
        evens
            .documents
            .iter()
            .all(|d| d.body["kind"] == "even" && d.partition == a)
    );
    let one = store
        .query(c, &Query::partition(&a).filter("i", 7))
        .await
        .expect("query number");
    assert_eq!(one.documents.len(), 1);
    assert_eq!(one.documents[0].id, "item-007");
    let flagged = store
        .query(c, &Query::partition(&a).filter("flag", true))
        .await
        .expect("query bool");
    assert_eq!(flagged.documents.len(), 5);
    // Another partition's documents never appear in a partition-scoped query.
    let in_b = store
        .query(c, &Query::partition(&b))
        .await
        .expect("query b");
    assert_eq!(in_b.documents.len(), 1);
    // Paging: every document exactly once, in id order.
    let mut seen = Vec::new();
    let mut token = None;
    loop {
        let page = store
            .query(
                c,
                &Query::partition(&a)
                    .filter("kind", "odd")
                    .limit(5)
                    .after(token),
            )
            .await
            .expect("page");
        assert!(page.documents.len() <= 5);
        seen.extend(page.documents.into_iter().map(|d| d.id));
        token = page.continuation;
        if token.is_none() {
            break;
        }
    }
    let expected: Vec<String> = (0..25)
        .filter(|i| i % 2 == 1)
        .map(|i| format!("item-{i:03}"))
        .collect();
    assert_eq!(seen, expected, "paging returns each match once, in order");
    // Cross-partition queries see both partitions.
    let marker = unique("m");
    store
        .create(c, &a, "x1", json!({"marker": marker}))
        .await
        .unwrap();
    store
        .create(c, &b, "x2", json!({"marker": marker}))
        .await
        .unwrap();
    let all = store
        .query(
            c,
            &Query::cross_partition().filter("marker", marker.as_str()),
        )
        .await
        .expect("cross");
    assert_eq!(
        all.documents.len(),
        2,
        "a cross-partition query sees every partition"
    );
}

async fn batches_are_atomic(store: &dyn DocumentStore, c: &str) {
    let p = unique("t");
    store.create(c, &p, "existing", json!({})).await.unwrap();
    let failed = store
        .batch(
            c,
            &p,
            vec![
                WriteOp::create("agg", json!({"v": 1})),
                WriteOp::create("existing", json!({})),
            ],
        )
        .await;
    assert!(
        matches!(failed, Err(PortError::AlreadyExists)),
        "a failing op fails the batch: {failed:?}"
    );
    assert!(
        store.read(c, &p, "agg").await.unwrap().is_none(),
        "nothing of a failed batch is visible"
    );
    let etags = store
        .batch(
            c,
            &p,
            vec![
                WriteOp::create("agg", json!({"v": 1})),
                WriteOp::create("outbox-1", json!({"docType": "outbox"})),
                WriteOp::create("outbox-2", json!({"docType": "outbox"})),
                WriteOp::delete("existing", None),
            ],
        )
        .await
        .expect("batch");
    assert_eq!(etags.len(), 4);
    assert!(etags[..3].iter().all(Option::is_some) && etags[3].is_none());
    let outbox = store
        .query(c, &Query::partition(&p).filter("docType", "outbox"))
        .await
        .unwrap();
    assert_eq!(
        outbox.documents.len(),
        2,
        "the aggregate and its events commit together"
    );
    assert!(store.read(c, &p, "existing").await.unwrap().is_none());
}

async fn time_to_live(store: &dyn DocumentStore, c: &str) {
    let p = unique("t");
    store
        .single(
            c,
            &p,
            WriteOp::create("short", json!({"kind": "ttl"})).with_ttl(Duration::from_millis(800)),
        )
        .await
        .expect("create with ttl");
    store
        .create(c, &p, "long", json!({"kind": "ttl"}))
        .await
        .unwrap();
    assert!(
        store.read(c, &p, "short").await.unwrap().is_some(),
        "readable before it expires"
    );
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert!(
        store.read(c, &p, "short").await.unwrap().is_none(),
        "gone after its ttl"
    );
    let left = store
        .query(c, &Query::partition(&p).filter("kind", "ttl"))
        .await
        .unwrap();
    assert_eq!(
        left.documents
            .iter()
            .map(|d| d.id.as_str())
            .collect::<Vec<_>>(),
        vec!["long"]
    );
    store
        .create(c, &p, "short", json!({}))
        .await
        .expect("an expired id can be created again");
}

async fn invalid_input(store: &dyn DocumentStore, c: &str) {
    let p = unique("t");
    assert!(
        matches!(
            store.create(c, &p, "x", json!([1, 2])).await,
            Err(PortError::Invalid(_))
        ),
        "bodies are objects"
    );
    assert!(
        matches!(store.batch(c, &p, vec![]).await, Err(PortError::Invalid(_))),
        "empty batches are refused"
    );
    assert!(
        matches!(
            store.create(c, &p, "a/b", json!({})).await,
            Err(PortError::Invalid(_))
        ),
        "ids may not hold '/'"
    );
    let bad_field = store
        .query(c, &Query::partition(&p).filter("x') OR 1=1 --", 1))
        .await;
    assert!(
        matches!(bad_field, Err(PortError::Invalid(_))),
        "filter fields are identifiers only"
    );
    let bad_token = store
        .query(c, &Query::partition(&p).after(Some("%%%".into())))
        .await;
    assert!(
        matches!(bad_token, Err(PortError::Invalid(_))),
        "a malformed continuation is Invalid"
    );
}
