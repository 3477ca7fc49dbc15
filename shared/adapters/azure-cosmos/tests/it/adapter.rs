//! What this adapter adds to the contract: paging over many documents, batch failures,
//! Cosmos TTL fields, throttling, usage counters, and containers it must refuse.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::{Duration, Instant};

use azure_core::http::StatusCode;
use azure_data_cosmos::fault_injection::{
    CustomResponseBuilder, FaultInjectionConditionBuilder, FaultInjectionResultBuilder,
    FaultInjectionRuleBuilder, FaultOperationType,
};
use ports::{DocumentStore, DocumentStoreExt, ETag, PortError, Query, WriteOp};
use serde_json::{Value, json};

use crate::standin::{DATABASE, StandIn, test_builder};

fn start() -> StandIn {
    StandIn::start().expect("start the stand-in")
}

/// Creates `count` documents `doc-0000…` of `kind` in `partition`, 100 to a batch.
async fn fill(store: &dyn DocumentStore, c: &str, partition: &str, kind: &str, count: usize) {
    let ids: Vec<usize> = (0..count).collect();
    for chunk in ids.chunks(100) {
        let ops = chunk
            .iter()
            .map(|i| WriteOp::create(format!("doc-{i:04}"), json!({"kind": kind, "i": i})))
            .collect();
        store.batch(c, partition, ops).await.expect("fill");
    }
}

/// Every page of `query`, re-issued with each continuation.
async fn all_pages(store: &dyn DocumentStore, c: &str, query: Query) -> Vec<Vec<(String, String)>> {
    let mut pages = Vec::new();
    let mut token = None;
    loop {
        let page = store
            .query(c, &query.clone().after(token))
            .await
            .expect("page");
        pages.push(
            page.documents
                .iter()
                .map(|d| (d.partition.clone(), d.id.clone()))
                .collect(),
        );
        token = page.continuation;
        if token.is_none() {
            return pages;
        }
    }
}

#[tokio::test]
async fn pages_cover_many_documents_once_each_in_order() {
    let standin = start();
    let store = standin.store(&["paging"]).await;
    let c = "paging";
    fill(&store, c, "tenant-a", "item", 230).await;
    fill(&store, c, "tenant-b", "item", 45).await;
    store
        .create(c, "tenant-a", "other-1", json!({"kind": "other"}))
        .await
        .unwrap();

    // One partition: 230 matches in pages of 37 are 7 pages, one request each.
    let before = store.usage();
    let pages = all_pages(
        &store,
        c,
        Query::partition("tenant-a")
            .filter("kind", "item")
            .limit(37),
    )
    .await;
    let used = store.usage().since(&before);
    assert_eq!(
        pages.iter().map(Vec::len).collect::<Vec<_>>(),
        vec![37, 37, 37, 37, 37, 37, 8]
    );
    let ids: Vec<String> = pages.concat().into_iter().map(|(_, id)| id).collect();
    let expected: Vec<String> = (0..230).map(|i| format!("doc-{i:04}")).collect();
    assert_eq!(ids, expected, "every match once, in id order");
    assert_eq!(
        used.get("query").requests,
        7,
        "one request per page: {used:?}"
    );

    // A page size that divides the matches: the last full page already says "no more".
    let pages = all_pages(
        &store,
        c,
        Query::partition("tenant-a")
            .filter("kind", "item")
            .limit(46),
    )
    .await;
    assert_eq!(pages.len(), 5, "no empty trailing page");

    // Across partitions the same ids occur twice; (partition, id) is unique and ordered.
    let pages = all_pages(
        &store,
        c,
        Query::cross_partition().filter("kind", "item").limit(50),
    )
    .await;
    let seen = pages.concat();
    assert_eq!(seen.len(), 275);
    let unique: BTreeSet<&(String, String)> = seen.iter().collect();
    assert_eq!(unique.len(), 275, "no document twice");
    let mut sorted = seen.clone();
    sorted.sort();
    assert_eq!(seen, sorted, "ordered by partition, then id");
    assert!(pages.iter().all(|p| p.len() <= 50));
}

#[tokio::test]
async fn paging_survives_deleting_what_was_read() {
    // The outbox publisher's pattern: read a page across partitions, delete it, go on.
    let standin = start();
    let store = standin.store(&["outbox"]).await;
    let c = "outbox";
    fill(&store, c, "tenant-a", "outbox", 130).await;
    fill(&store, c, "tenant-b", "outbox", 70).await;
    let mut seen = BTreeSet::new();
    let mut token = None;
    loop {
        let page = store
            .query(
                c,
                &Query::cross_partition()
                    .filter("docType", Value::Null)
                    .filter("kind", "outbox")
                    .limit(60)
                    .after(token),
            )
            .await
            .expect("page");
        for doc in &page.documents {
            assert!(
                seen.insert((doc.partition.clone(), doc.id.clone())),
                "{} seen twice",
                doc.id
            );
            store
                .delete(c, &doc.partition, &doc.id, Some(doc.etag.clone()))
                .await
                .expect("delete");
        }
        token = page.continuation;
        if token.is_none() {
            break;
        }
    }
    assert_eq!(seen.len(), 200);
    let left = store
        .query(c, &Query::cross_partition().filter("kind", "outbox"))
        .await
        .unwrap();
    assert!(left.documents.is_empty());
}

#[tokio::test]
async fn continuation_tokens_resume_only_their_own_query() {
    let standin = start();
    let store = standin.store(&["tokens"]).await;
    let c = "tokens";
    fill(&store, c, "t", "a", 5).await;
    let first = store
        .query(c, &Query::partition("t").filter("kind", "a").limit(2))
        .await
        .unwrap();
    let token = first.continuation.expect("more pages");
    // The same query with another page size goes on where it stopped.
    let next = store
        .query(
            c,
            &Query::partition("t")
                .filter("kind", "a")
                .limit(10)
                .after(Some(token.clone())),
        )
        .await
        .unwrap();
    assert_eq!(
        next.documents
            .iter()
            .map(|d| d.id.as_str())
            .collect::<Vec<_>>(),
        ["doc-0002", "doc-0003", "doc-0004"]
    );
    for other in [
        Query::partition("t").filter("kind", "b"),
        Query::partition("u").filter("kind", "a"),
        Query::cross_partition().filter("kind", "a"),
    ] {
        let refused = store.query(c, &other.after(Some(token.clone()))).await;
        assert!(
            matches!(refused, Err(PortError::Invalid(_))),
            "a token is bound to its query: {refused:?}"
        );
    }
}

#[tokio::test]
async fn a_refused_batch_commits_nothing_and_says_why() {
    let standin = start();
    let store = standin.store(&["batches"]).await;
    let (c, p) = ("batches", "t");
    let e1 = store
        .create(c, p, "existing", json!({"v": 1}))
        .await
        .unwrap();
    let stale = ETag("stale".into());
    let cases = [
        (
            WriteOp::replace("existing", json!({"v": 2}), Some(stale.clone())),
            "precondition",
        ),
        (
            WriteOp::Upsert {
                id: "existing".into(),
                body: json!({"v": 2}),
                if_match: Some(stale.clone()),
                ttl: None,
            },
            "precondition",
        ),
        (WriteOp::delete("missing", None), "not found"),
        (WriteOp::replace("missing", json!({}), None), "not found"),
        (WriteOp::create("existing", json!({})), "exists"),
    ];
    for (failing, why) in cases {
        let result = store
            .batch(
                c,
                p,
                vec![
                    WriteOp::create("agg", json!({"v": 1})),
                    WriteOp::create("outbox-1", json!({"docType": "outbox"})),
                    failing.clone(),
                ],
            )
            .await;
        let expected = match why {
            "precondition" => matches!(result, Err(PortError::PreconditionFailed)),
            "not found" => matches!(result, Err(PortError::NotFound)),
            _ => matches!(result, Err(PortError::AlreadyExists)),
        };
        assert!(expected, "{failing:?} → {result:?}");
        assert!(
            store.read(c, p, "agg").await.unwrap().is_none(),
            "{why}: agg"
        );
        assert!(
            store.read(c, p, "outbox-1").await.unwrap().is_none(),
            "{why}: outbox"
        );
        let existing = store.read(c, p, "existing").await.unwrap().unwrap();
        assert_eq!(existing.body, json!({"v": 1}), "{why}");
        assert_eq!(existing.etag, e1, "{why}");
    }

    // The aggregate, its events and an etag-guarded change commit together; each etag is
    // the one a read returns.
    let etags = store
        .batch(
            c,
            p,
            vec![
                WriteOp::create("agg", json!({"v": 1})),
                WriteOp::create("outbox-1", json!({"docType": "outbox"})),
                WriteOp::replace("existing", json!({"v": 2}), Some(e1)),
                WriteOp::upsert("counter", json!({"n": 1})),
            ],
        )
        .await
        .expect("batch");
    for (id, etag) in ["agg", "outbox-1", "existing", "counter"]
        .iter()
        .zip(&etags)
    {
        let doc = store.read(c, p, id).await.unwrap().expect(id);
        assert_eq!(Some(&doc.etag), etag.as_ref(), "{id}");
    }

    // An upsert of one exact version needs that version, as in the embedded store.
    let missing = store
        .single(
            c,
            p,
            WriteOp::Upsert {
                id: "nowhere".into(),
                body: json!({}),
                if_match: Some(stale),
                ttl: None,
            },
        )
        .await;
    assert!(matches!(missing, Err(PortError::NotFound)), "{missing:?}");
    assert!(store.read(c, p, "nowhere").await.unwrap().is_none());

    let before = store.usage();
    let too_many = (0..101)
        .map(|i| WriteOp::create(format!("n{i}"), json!({})))
        .collect();
    assert!(matches!(
        store.batch(c, p, too_many).await,
        Err(PortError::Invalid(_))
    ));
    assert_eq!(
        store.usage().since(&before).total().requests,
        0,
        "refused before any request"
    );
}

#[tokio::test]
async fn expired_documents_vanish_and_free_their_ids() {
    let standin = start();
    let store = standin.store(&["ttl"]).await;
    let (c, p) = ("ttl", "t");
    // Long enough to read before it passes on a loaded machine, short enough to wait for.
    let ttl = Duration::from_millis(1500);
    let started = azure_cosmos_now_ms();
    store
        .single(
            c,
            p,
            WriteOp::create("short", json!({"kind": "ttl"})).with_ttl(ttl),
        )
        .await
        .unwrap();
    assert!(
        store.read(c, p, "short").await.unwrap().is_some(),
        "alive before its ttl"
    );
    store
        .batch(
            c,
            p,
            vec![
                WriteOp::create("batch-short", json!({"kind": "ttl"})).with_ttl(ttl),
                WriteOp::create("long", json!({"kind": "ttl"})),
            ],
        )
        .await
        .unwrap();

    // The item carries what Cosmos needs to reclaim it: `ttl` in whole seconds (1.5 s
    // rounded up, plus one), and the instant readers stop seeing it.
    let raw = raw_item(&standin, c, p, "short").await;
    assert_eq!(raw["ttl"], 3, "{raw}");
    let expires_at = raw["expiresAt"].as_i64().expect("expiresAt");
    assert!(
        (started + 1500..started + 1500 + 5_000).contains(&expires_at),
        "{expires_at} vs {started}"
    );
    assert_eq!(raw["tenantId"], p);
    assert_eq!(raw["sortKey"], format!("{p}/short"));
    assert_eq!(raw["body"], json!({"kind": "ttl"}));
    assert!(raw_item(&standin, c, p, "long").await.get("ttl").is_none());

    let wait = expires_at + 300 - azure_cosmos_now_ms();
    tokio::time::sleep(Duration::from_millis(u64::try_from(wait).unwrap_or(0))).await;
    // The stand-in never expires anything: what disappears here, the adapter hid.
    assert!(store.read(c, p, "short").await.unwrap().is_none());
    assert!(store.read(c, p, "batch-short").await.unwrap().is_none());
    let left = store
        .query(c, &Query::partition(p).filter("kind", "ttl"))
        .await
        .unwrap();
    assert_eq!(
        left.documents
            .iter()
            .map(|d| d.id.as_str())
            .collect::<Vec<_>>(),
        ["long"]
    );

    // Expired ids can be created again, alone or in a batch, and then live without expiry.
    store
        .create(c, p, "short", json!({"again": 1}))
        .await
        .expect("create over expired");
    store
        .batch(
            c,
            p,
            vec![
                WriteOp::create("batch-short", json!({"again": 2})),
                WriteOp::create("next", json!({})),
            ],
        )
        .await
        .expect("batch over expired");
    assert_eq!(
        store.read(c, p, "short").await.unwrap().unwrap().body,
        json!({"again": 1})
    );
    assert_eq!(
        store.read(c, p, "batch-short").await.unwrap().unwrap().body,
        json!({"again": 2})
    );
    assert!(
        raw_item(&standin, c, p, "short")
            .await
            .get("expiresAt")
            .is_none()
    );
    // A live id is still taken.
    assert!(matches!(
        store.create(c, p, "short", json!({})).await,
        Err(PortError::AlreadyExists)
    ));
}

fn azure_cosmos_now_ms() -> i64 {
    i64::try_from(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_millis(),
    )
    .unwrap()
}

/// The item as stored, read past the adapter.
async fn raw_item(standin: &StandIn, c: &str, p: &str, id: &str) -> Value {
    let client = standin.client(test_builder(None).await).await;
    let container = client
        .database_client(DATABASE)
        .container_client(c.to_owned(), None)
        .await
        .unwrap();
    container
        .read_item(p.to_owned(), id, None)
        .await
        .unwrap()
        .into_model()
        .unwrap()
}

fn throttle(
    id: &str,
    operation: FaultOperationType,
    hits: Option<u32>,
) -> Arc<azure_data_cosmos::fault_injection::FaultInjectionRule> {
    let response = CustomResponseBuilder::new(StatusCode::TooManyRequests)
        .with_header("x-ms-retry-after-ms", "40")
        .with_body(r#"{"code":"TooManyRequests","message":"Request rate is large"}"#)
        .build();
    let result = FaultInjectionResultBuilder::new()
        .with_custom_response(response)
        .build();
    let condition = FaultInjectionConditionBuilder::new()
        .with_operation_type(operation)
        .build();
    let mut rule = FaultInjectionRuleBuilder::new(id, result).with_condition(condition);
    if let Some(hits) = hits {
        rule = rule.with_hit_limit(hits);
    }
    Arc::new(rule.build())
}

#[tokio::test]
async fn throttling_reaches_the_port_with_the_servers_retry_after() {
    let standin = start();
    standin.provision(&["throttled"]).await;
    let rules = vec![
        throttle("reads", FaultOperationType::ReadItem, None),
        throttle("queries", FaultOperationType::QueryItem, None),
        throttle("one-create", FaultOperationType::CreateItem, Some(1)),
    ];
    // Two retries, so the test takes a moment rather than the SDK's default budget.
    let store = standin
        .store_with(test_builder(Some((rules, 2))).await)
        .await;
    let (c, p) = ("throttled", "t");

    // A throttle that passes is absorbed by the SDK: the create succeeds on its retry.
    let before = store.usage();
    store
        .create(c, p, "d", json!({}))
        .await
        .expect("create after one 429");
    assert_eq!(store.usage().since(&before).get("create").requests, 2);

    // A throttle that lasts reaches the port as Throttled, with the server's hint, after
    // the SDK waited that long between its attempts.
    let before = store.usage();
    let started = Instant::now();
    let read = store.read(c, p, "d").await;
    let waited = started.elapsed();
    assert!(
        matches!(read, Err(PortError::Throttled { retry_after: Some(d) }) if d == Duration::from_millis(40)),
        "{read:?}"
    );
    assert!(
        waited >= Duration::from_millis(80),
        "the SDK waited between retries: {waited:?}"
    );
    let used = store.usage().since(&before).get("read");
    assert_eq!(
        (used.calls, used.requests),
        (1, 3),
        "one call, the first try and two retries"
    );

    let query = store.query(c, &Query::partition(p)).await;
    assert!(
        matches!(
            query,
            Err(PortError::Throttled {
                retry_after: Some(_)
            })
        ),
        "{query:?}"
    );
    assert!(PortError::Throttled { retry_after: None }.is_transient());
}

#[tokio::test]
async fn usage_counts_calls_requests_and_charges() {
    let standin = start();
    let store = standin.store(&["usage"]).await;
    let (c, p) = ("usage", "t");
    store.create(c, p, "warm", json!({})).await.unwrap();
    let before = store.usage();
    store.create(c, p, "a", json!({})).await.unwrap();
    store.read(c, p, "a").await.unwrap();
    store.read(c, p, "missing").await.unwrap();
    store
        .batch(
            c,
            p,
            vec![
                WriteOp::create("b", json!({})),
                WriteOp::create("c", json!({})),
            ],
        )
        .await
        .unwrap();
    store.query(c, &Query::partition(p)).await.unwrap();
    let used = store.usage().since(&before);
    for (op, calls) in [("create", 1), ("read", 2), ("batch", 1), ("query", 1)] {
        let u = used.get(op);
        assert_eq!((u.calls, u.requests), (calls, calls), "{op}: {used:?}");
    }
    // The stand-in reports 1 RU for every answer, so the charge here counts answers.
    assert_eq!(used.get("create").request_charge, 1.0);
    assert_eq!(used.total().requests, 5);
    assert_eq!(
        used.get("container").calls,
        0,
        "a container's properties are read once per process"
    );
}

#[tokio::test]
async fn containers_and_items_it_did_not_make_are_refused_clearly() {
    let standin = start();
    standin.provision_other("other-key", "/pk").await;
    let store = standin.store(&["mine"]).await;

    let wrong = store.read("other-key", "t", "x").await;
    let Err(PortError::Backend { source, .. }) = &wrong else {
        panic!("{wrong:?}")
    };
    assert!(source.to_string().contains("/tenantId"), "{source}");

    let missing = store.read("no-such-container", "t", "x").await;
    let Err(PortError::Backend { source, .. }) = &missing else {
        panic!("{missing:?}")
    };
    assert!(source.to_string().contains("does not exist"), "{source}");

    // An item without the adapter's wrapper: an error naming it, never its content.
    let client = standin.client(test_builder(None).await).await;
    client
        .database_client(DATABASE)
        .container_client("mine".to_owned(), None)
        .await
        .unwrap()
        .create_item(
            "t".to_owned(),
            "foreign",
            json!({"id": "foreign", "tenantId": "t", "note": "private-content"}),
            None,
        )
        .await
        .unwrap();
    let foreign = store.read("mine", "t", "foreign").await;
    let Err(PortError::Backend { source, .. }) = &foreign else {
        panic!("{foreign:?}")
    };
    let text = source.to_string();
    assert!(
        text.contains("foreign") && !text.contains("private-content"),
        "{text}"
    );
}
