use serde_json::json;

use super::*;

const NOW: i64 = 1_764_230_400_000;

#[test]
fn an_item_wraps_the_body_untouched() {
    let body = json!({"id": "prov_1", "tenantId": "acme", "ttl": "not ours", "_etag": "nor this"});
    let item = to_item("sources", "source-1", body.clone(), None, NOW).unwrap();
    assert_eq!(
        item,
        json!({"id": "source-1", "tenantId": "sources", "sortKey": "sources/source-1", "body": body})
    );
    let stored = StoredItem::parse(json!({
        "id": "source-1", "tenantId": "sources", "body": body, "_etag": "\"e1\"", "_ts": 1, "_rid": "r"
    }))
    .unwrap();
    let doc = stored.into_document(None).unwrap();
    assert_eq!(
        (doc.id.as_str(), doc.partition.as_str()),
        ("source-1", "sources")
    );
    assert_eq!(doc.etag, ETag("\"e1\"".into()));
    assert_eq!(
        doc.body, body,
        "the body's own id, tenantId and ttl come back as written"
    );
}

#[test]
fn ttl_is_exact_for_readers_and_rounded_up_for_cosmos() {
    for (ttl, seconds) in [
        (Duration::from_millis(800), 2),
        (Duration::from_millis(1500), 3),
        (Duration::from_secs(2), 3),
        (Duration::ZERO, 1),
        (Duration::from_secs(u64::MAX), i32::MAX as u64),
    ] {
        let (expires_at, ttl_seconds) = expiry(ttl, NOW);
        assert_eq!(ttl_seconds, seconds, "{ttl:?}");
        // Below the 32-bit cap (68 years), Cosmos never reclaims before readers stop seeing
        // the item, even when `_ts` rounds the write down to its second.
        if ttl_seconds < i32::MAX as u64 {
            let reclaimed_at = (NOW / 1000) * 1000 + i64::try_from(ttl_seconds).unwrap() * 1000;
            assert!(reclaimed_at >= expires_at, "{ttl:?}");
        }
    }
    let item = to_item("t", "d", json!({}), Some(Duration::from_millis(800)), NOW).unwrap();
    assert_eq!(item["expiresAt"], NOW + 800);
    assert_eq!(item["ttl"], 2);
    let stored = StoredItem::parse(json!({
        "id": "d", "tenantId": "t", "body": {}, "expiresAt": NOW + 800, "_etag": "e"
    }))
    .unwrap();
    assert!(!stored.is_expired(NOW + 799));
    assert!(stored.is_expired(NOW + 800));
}

#[test]
fn bodies_are_objects_within_the_size_limit() {
    for body in [json!([1, 2]), json!("text"), json!(null), json!(3)] {
        assert!(matches!(
            to_item("t", "d", body, None, NOW),
            Err(PortError::Invalid(_))
        ));
    }
    let big = json!({"blob": "x".repeat(MAX_ITEM_BYTES)});
    assert!(matches!(
        to_item("t", "d", big, None, NOW),
        Err(PortError::Invalid(m)) if m.contains("limit")
    ));
}

#[test]
fn foreign_items_are_named_not_shown() {
    let err = StoredItem::parse(json!({"id": "x", "tenantId": "t", "password": "hunter2"}))
        .err()
        .expect("no body");
    let text = match err {
        PortError::Backend { source, .. } => source.to_string(),
        other => panic!("{other:?}"),
    };
    assert!(
        text.contains("\"x\"") && !text.contains("hunter2"),
        "{text}"
    );
    let no_etag = StoredItem::parse(json!({"id": "x", "tenantId": "t", "body": {}})).unwrap();
    assert!(matches!(
        no_etag.into_document(None),
        Err(PortError::Backend { .. })
    ));
}

#[test]
fn keys_follow_the_cosmos_id_rules() {
    for ok in ["a", "tenant-1", "outbox-evt_01J", &"x".repeat(255)] {
        validate_key("id", ok).unwrap();
    }
    for bad in ["", "a/b", "a\\b", "a?b", "a#b", &"x".repeat(256)] {
        assert!(
            matches!(validate_key("id", bad), Err(PortError::Invalid(_))),
            "{bad}"
        );
    }
    // Neither part can hold '/', so distinct pairs never share a sort key.
    assert_ne!(sort_key("a", "b-c"), sort_key("a-b", "c"));
}
