//! The `BlobStore` contract. Every container it touches has a unique name, so runs can share a
//! backend (a folder, Azurite, a real storage account).

use bytes::Bytes;
use chrono::Utc;

use super::unique;
use crate::{BlobStore, PortError, PutOptions};

/// SHA-256 of the empty input and of "abc" (FIPS 180-2 test vectors): the suite checks the
/// reported hashes without depending on a hashing crate.
const SHA256_EMPTY: &str = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";
const SHA256_ABC: &str = "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad";

/// Runs every check of the contract; panics with a message naming the broken rule.
pub async fn blob_store_contract(store: &dyn BlobStore) {
    round_trip(store).await;
    overwrite(store).await;
    if_none_match(store).await;
    if_none_match_race(store).await;
    head_and_missing(store).await;
    list(store).await;
    delete(store).await;
    invalid_names(store).await;
    empty_and_large(store).await;
}

fn typed(content_type: &str) -> PutOptions {
    PutOptions {
        content_type: Some(content_type.to_owned()),
        if_none_match: false,
    }
}

fn first_writer() -> PutOptions {
    PutOptions {
        content_type: None,
        if_none_match: true,
    }
}

fn is_sha256_hex(s: &str) -> bool {
    s.len() == 64
        && s.bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

/// Content without a type reads back with none, or with Azure's default.
fn untyped(content_type: &Option<String>) -> bool {
    matches!(
        content_type.as_deref(),
        None | Some("application/octet-stream")
    )
}

async fn round_trip(store: &dyn BlobStore) {
    let c = unique("blob");
    let before = Utc::now() - chrono::Duration::minutes(5);
    let data: Bytes = (0..=255u8)
        .chain((0..=255u8).rev())
        .collect::<Vec<u8>>()
        .into();
    let put = store
        .put(
            &c,
            "dir/all-bytes.bin",
            data.clone(),
            typed("application/x-test"),
        )
        .await
        .expect("put of a new blob succeeds");
    assert_eq!(put.container, c, "put reports the container");
    assert_eq!(put.name, "dir/all-bytes.bin", "put reports the name");
    assert_eq!(put.size, 512, "put reports the size");
    assert_eq!(
        put.content_type.as_deref(),
        Some("application/x-test"),
        "put reports the content type"
    );
    assert!(
        is_sha256_hex(&put.sha256),
        "sha256 is 64 lowercase hex characters: {}",
        put.sha256
    );
    assert!(!put.etag.is_empty(), "put reports an etag");
    assert!(
        put.last_modified > before && put.last_modified < Utc::now() + chrono::Duration::minutes(5),
        "last_modified is about now: {}",
        put.last_modified
    );

    let (got, info) = store
        .get(&c, "dir/all-bytes.bin")
        .await
        .expect("get of a stored blob");
    assert_eq!(got, data, "get returns every byte value unchanged");
    assert_eq!(info, put, "get reports what put reported");

    let abc = store
        .put(&c, "abc", Bytes::from_static(b"abc"), PutOptions::default())
        .await
        .expect("put abc");
    assert_eq!(
        abc.sha256, SHA256_ABC,
        "sha256 is the hex SHA-256 of the content"
    );
    assert!(
        untyped(&abc.content_type),
        "no content type given: {:?}",
        abc.content_type
    );
    assert_ne!(abc.etag, put.etag, "different blobs have different etags");
}

async fn overwrite(store: &dyn BlobStore) {
    let c = unique("blob");
    let first = store
        .put(&c, "doc", Bytes::from_static(b"one"), typed("text/plain"))
        .await
        .expect("put");
    let second = store
        .put(
            &c,
            "doc",
            Bytes::from_static(b"second version"),
            PutOptions::default(),
        )
        .await
        .expect("a put without if_none_match overwrites");
    assert_ne!(first.etag, second.etag, "an overwrite changes the etag");
    assert_ne!(
        first.sha256, second.sha256,
        "an overwrite changes the sha256"
    );
    let (got, info) = store.get(&c, "doc").await.expect("get after overwrite");
    assert_eq!(&got[..], b"second version", "get returns the new content");
    assert_eq!(info.size, 14, "the size is the new one");
    assert!(
        untyped(&info.content_type),
        "the content type is replaced: {:?}",
        info.content_type
    );
    assert_eq!(info.etag, second.etag, "get reports the new etag");
}

async fn if_none_match(store: &dyn BlobStore) {
    let c = unique("blob");
    store
        .put(&c, "once", Bytes::from_static(b"first"), first_writer())
        .await
        .expect("if_none_match on a new name succeeds");
    let again = store
        .put(&c, "once", Bytes::from_static(b"second"), first_writer())
        .await;
    assert!(
        matches!(again, Err(PortError::AlreadyExists)),
        "if_none_match on an existing blob is AlreadyExists, got {again:?}"
    );
    let (got, _) = store.get(&c, "once").await.expect("get");
    assert_eq!(&got[..], b"first", "a refused put leaves the first content");
}

async fn if_none_match_race(store: &dyn BlobStore) {
    let c = unique("blob");
    let put = |i: u8| {
        let c = c.clone();
        async move {
            store
                .put(&c, "race", Bytes::from(vec![i; 1024]), first_writer())
                .await
        }
    };
    let results = {
        let (a, b, c, d, e, f, g, h) = tokio::join!(
            put(0),
            put(1),
            put(2),
            put(3),
            put(4),
            put(5),
            put(6),
            put(7)
        );
        [a, b, c, d, e, f, g, h]
    };
    let winners: Vec<usize> = results
        .iter()
        .enumerate()
        .filter(|(_, r)| r.is_ok())
        .map(|(i, _)| i)
        .collect();
    assert_eq!(
        winners.len(),
        1,
        "exactly one of 8 racing if_none_match puts wins: {results:?}"
    );
    for r in &results {
        assert!(
            matches!(r, Ok(_) | Err(PortError::AlreadyExists)),
            "racing losers get AlreadyExists, got {r:?}"
        );
    }
    let (got, _) = store.get(&c, "race").await.expect("get the race winner");
    assert_eq!(
        &got[..],
        &vec![winners[0] as u8; 1024][..],
        "the stored content is the winner's"
    );
}

async fn head_and_missing(store: &dyn BlobStore) {
    let c = unique("blob");
    let put = store
        .put(
            &c,
            "a/b/c.json",
            Bytes::from_static(b"{}"),
            typed("application/json"),
        )
        .await
        .expect("put");
    let head = store
        .head(&c, "a/b/c.json")
        .await
        .expect("head of a stored blob");
    assert_eq!(head, put, "head reports what put reported");
    for name in ["a/b/missing.json", "a/b", "a"] {
        let r = store.head(&c, name).await;
        assert!(
            matches!(r, Err(PortError::NotFound)),
            "head of missing {name:?} is NotFound, got {r:?}"
        );
        let r = store.get(&c, name).await;
        assert!(
            matches!(r, Err(PortError::NotFound)),
            "get of missing {name:?} is NotFound, got {r:?}"
        );
    }
    let other = unique("blob");
    let r = store.get(&other, "a/b/c.json").await;
    assert!(
        matches!(r, Err(PortError::NotFound)),
        "get in an unused container is NotFound, got {r:?}"
    );
}

async fn list(store: &dyn BlobStore) {
    let c = unique("blob");
    // Put out of order, with a blob that is also a "folder" of another ("nest" and
    // "nest/child"), which Azure allows.
    for name in [
        "list/b",
        "other/x",
        "list/a",
        "listing",
        "list/c/d",
        "nest/child",
        "nest",
        "lis",
    ] {
        store
            .put(
                &c,
                name,
                Bytes::from(name.to_owned()),
                PutOptions::default(),
            )
            .await
            .expect("put");
    }
    let names = |infos: Vec<crate::BlobInfo>| infos.into_iter().map(|i| i.name).collect::<Vec<_>>();

    let all = names(store.list(&c, "").await.expect("list everything"));
    assert_eq!(
        all,
        [
            "lis",
            "list/a",
            "list/b",
            "list/c/d",
            "listing",
            "nest",
            "nest/child",
            "other/x"
        ],
        "an empty prefix lists every blob, sorted by name"
    );
    let folder = names(store.list(&c, "list/").await.expect("list a folder prefix"));
    assert_eq!(
        folder,
        ["list/a", "list/b", "list/c/d"],
        "a prefix excludes other prefixes"
    );
    let partial = names(store.list(&c, "list").await.expect("list a partial prefix"));
    assert_eq!(
        partial,
        ["list/a", "list/b", "list/c/d", "listing"],
        "a prefix is a string prefix, not a folder"
    );
    let deep = names(store.list(&c, "list/c").await.expect("list a deep prefix"));
    assert_eq!(deep, ["list/c/d"], "a prefix can end inside a segment");
    let nest = names(store.list(&c, "nest").await.expect("list nest"));
    assert_eq!(
        nest,
        ["nest", "nest/child"],
        "a blob and a blob under its name both list"
    );
    assert!(
        store
            .list(&c, "zzz")
            .await
            .expect("list a prefix with no match")
            .is_empty(),
        "no match lists nothing"
    );

    let infos = store.list(&c, "list/a").await.expect("list one");
    assert_eq!(infos.len(), 1, "one blob matches");
    let head = store.head(&c, "list/a").await.expect("head");
    assert_eq!(infos[0], head, "list reports what head reports");

    let empty = store
        .list(&unique("blob"), "")
        .await
        .expect("listing an unused container succeeds");
    assert!(empty.is_empty(), "an unused container lists nothing");
}

async fn delete(store: &dyn BlobStore) {
    let c = unique("blob");
    store
        .put(
            &c,
            "gone/soon",
            Bytes::from_static(b"x"),
            PutOptions::default(),
        )
        .await
        .expect("put");
    store
        .put(
            &c,
            "gone/stays",
            Bytes::from_static(b"y"),
            PutOptions::default(),
        )
        .await
        .expect("put");
    store
        .delete(&c, "gone/soon")
        .await
        .expect("delete of a stored blob");
    let r = store.get(&c, "gone/soon").await;
    assert!(
        matches!(r, Err(PortError::NotFound)),
        "get after delete is NotFound, got {r:?}"
    );
    let r = store.head(&c, "gone/soon").await;
    assert!(
        matches!(r, Err(PortError::NotFound)),
        "head after delete is NotFound, got {r:?}"
    );
    let r = store.delete(&c, "gone/soon").await;
    assert!(
        matches!(r, Err(PortError::NotFound)),
        "a second delete is NotFound, got {r:?}"
    );
    let listed: Vec<String> = store
        .list(&c, "")
        .await
        .expect("list")
        .into_iter()
        .map(|i| i.name)
        .collect();
    assert_eq!(listed, ["gone/stays"], "a deleted blob is not listed");
    store
        .put(&c, "gone/soon", Bytes::from_static(b"z"), first_writer())
        .await
        .expect("a deleted name can be created again");
}

async fn invalid_names(store: &dyn BlobStore) {
    let c = unique("blob");
    let bad_containers = [
        "ab",
        "Upper",
        "under_score",
        "-lead",
        "trail-",
        "dou--ble",
        "a/b",
        "",
    ];
    let bad_names = [
        "",
        "../escape",
        "a/../../b",
        "/abs",
        "a//b",
        "a/./b",
        "a\\b",
        ".",
        "..",
        "nul\0",
    ];
    for bad in bad_containers {
        let r = store
            .put(bad, "ok", Bytes::from_static(b"x"), PutOptions::default())
            .await;
        assert!(
            matches!(r, Err(PortError::Invalid(_))),
            "put in container {bad:?} is Invalid, got {r:?}"
        );
        let r = store.get(bad, "ok").await;
        assert!(
            matches!(r, Err(PortError::Invalid(_))),
            "get in container {bad:?} is Invalid, got {r:?}"
        );
        let r = store.list(bad, "").await;
        assert!(
            matches!(r, Err(PortError::Invalid(_))),
            "list of container {bad:?} is Invalid, got {r:?}"
        );
    }
    for bad in bad_names {
        let r = store
            .put(&c, bad, Bytes::from_static(b"x"), PutOptions::default())
            .await;
        assert!(
            matches!(r, Err(PortError::Invalid(_))),
            "put of name {bad:?} is Invalid, got {r:?}"
        );
        let r = store.get(&c, bad).await;
        assert!(
            matches!(r, Err(PortError::Invalid(_))),
            "get of name {bad:?} is Invalid, got {r:?}"
        );
        let r = store.head(&c, bad).await;
        assert!(
            matches!(r, Err(PortError::Invalid(_))),
            "head of name {bad:?} is Invalid, got {r:?}"
        );
        let r = store.delete(&c, bad).await;
        assert!(
            matches!(r, Err(PortError::Invalid(_))),
            "delete of name {bad:?} is Invalid, got {r:?}"
        );
    }
    let listed = store.list(&c, "").await.expect("list");
    assert!(listed.is_empty(), "refused puts store nothing: {listed:?}");
}

async fn empty_and_large(store: &dyn BlobStore) {
    let c = unique("blob");
    let empty = store
        .put(&c, "empty", Bytes::new(), PutOptions::default())
        .await
        .expect("put of an empty blob");
    assert_eq!(empty.size, 0, "an empty blob has size 0");
    assert_eq!(
        empty.sha256, SHA256_EMPTY,
        "the sha256 of an empty blob is the empty-input hash"
    );
    let (got, info) = store.get(&c, "empty").await.expect("get of an empty blob");
    assert!(got.is_empty(), "an empty blob reads back empty");
    assert_eq!(info.size, 0, "get reports size 0");

    let big: Bytes = (0..5 * 1024 * 1024u32)
        .map(|i| (i % 251) as u8)
        .collect::<Vec<u8>>()
        .into();
    let put = store
        .put(
            &c,
            "big/five-mib",
            big.clone(),
            typed("application/octet-stream"),
        )
        .await
        .expect("put of 5 MiB");
    assert_eq!(put.size, 5 * 1024 * 1024, "a 5 MiB blob reports its size");
    let (got, info) = store.get(&c, "big/five-mib").await.expect("get of 5 MiB");
    assert!(got == big, "a 5 MiB blob reads back unchanged");
    assert_eq!(
        info.sha256, put.sha256,
        "get reports the sha256 put reported"
    );
}
