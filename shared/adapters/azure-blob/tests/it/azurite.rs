//! Against Azurite: HTTPS with OAuth (production's token path) and HTTP with a connection
//! string (the local stand-in path).

use std::collections::BTreeMap;
use std::num::NonZero;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use azure_blob::{AzureBlobStore, BLOB_CONNECTION, BLOB_SERVICE_URI, Credential, Options};
use bytes::Bytes;
use ports::{BlobStore, PortError, PutOptions};
use standins::azurite::Azurite;
use standins::tls::TestTls;

use crate::AzuriteToken;

/// HTTPS Azurite with OAuth, and the options that trust its test CA.
fn oauth_azurite() -> (TestTls, Azurite, Options) {
    let tls = TestTls::generate().expect("test certificates");
    let azurite = Azurite::start_oauth(&tls).expect("start Azurite");
    let options = Options {
        root_certificates_pem: vec![tls.ca_pem().as_bytes().to_vec()],
        ..Options::default()
    };
    (tls, azurite, options)
}

fn token_store(azurite: &Azurite, options: Options) -> (AzureBlobStore, Arc<AzuriteToken>) {
    let token = AzuriteToken::new();
    let store = AzureBlobStore::new(
        azurite.blob_endpoint(),
        Credential::Token(token.clone()),
        options,
    )
    .expect("open the store");
    (store, token)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_token_path_passes_the_blob_contract() {
    let (_tls, azurite, options) = oauth_azurite();
    let (store, token) = token_store(&azurite, options);
    ports::conformance::blob::blob_store_contract(&store).await;
    assert!(
        token.issued.load(Ordering::Relaxed) >= 1,
        "the bearer-token policy asked the credential"
    );
    assert_eq!(store.untagged_requests(), 0, "every request is counted");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_connection_string_path_passes_the_blob_contract() {
    let azurite = Azurite::start_http().expect("start Azurite");
    let settings = BTreeMap::from([(BLOB_CONNECTION.to_owned(), azurite.connection_string())]);
    let store = AzureBlobStore::from_settings(&settings)
        .expect("valid settings")
        .expect("a connection string chooses the store");
    assert_eq!(store.endpoint(), azurite.blob_endpoint());
    ports::conformance::blob::blob_store_contract(&store).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_identity_setting_opens_a_token_store() {
    let (_tls, azurite, options) = oauth_azurite();
    let token = AzuriteToken::new();
    let settings = BTreeMap::from([(
        BLOB_SERVICE_URI.to_owned(),
        azurite.blob_endpoint().to_owned(),
    )]);
    let store = AzureBlobStore::from_settings_with(&settings, options, Some(token.clone()))
        .expect("valid settings")
        .expect("the identity form chooses the store");
    let put = store
        .put(
            "settings",
            "x",
            Bytes::from_static(b"hi"),
            PutOptions::default(),
        )
        .await
        .expect("put with a token");
    let (got, info) = store.get("settings", "x").await.expect("get");
    assert_eq!(&got[..], b"hi");
    assert_eq!(info, put);
    assert!(token.issued.load(Ordering::Relaxed) >= 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_expired_token_is_unauthenticated() {
    let (_tls, azurite, options) = oauth_azurite();
    let token = AzuriteToken::lasting(Duration::ZERO);
    let store = AzureBlobStore::new(azurite.blob_endpoint(), Credential::Token(token), options)
        .expect("open");
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let r = store
        .put(
            "expired",
            "x",
            Bytes::from_static(b"x"),
            PutOptions::default(),
        )
        .await;
    assert!(matches!(r, Err(PortError::Unauthenticated)), "{r:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_the_test_ca_the_store_fails_fast() {
    let tls = TestTls::generate().expect("test certificates");
    let azurite = Azurite::start_oauth(&tls).expect("start Azurite");
    let (store, _) = token_store(&azurite, Options::default());
    let started = std::time::Instant::now();
    let r = store.head("untrusted", "x").await;
    assert!(
        matches!(&r, Err(PortError::Backend { .. })),
        "an untrusted certificate is a backend error: {r:?}"
    );
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "no retry loop hides the TLS failure ({:?})",
        started.elapsed()
    );
}

/// A raw request to Azurite with a bearer token, bypassing the adapter.
async fn raw_put(
    azurite: &Azurite,
    tls: &TestTls,
    path: &str,
    body: &'static [u8],
    sha256: Option<&str>,
) {
    let client = reqwest::Client::builder()
        .tls_certs_merge([reqwest::Certificate::from_pem(tls.ca_pem().as_bytes()).unwrap()])
        .build()
        .unwrap();
    let (token, _) = standins::azurite::unsigned_storage_token(Duration::from_secs(600));
    let mut request = client
        .put(format!("{}/{path}", azurite.blob_endpoint()))
        .bearer_auth(token)
        .header("x-ms-version", "2025-11-05")
        .header("x-ms-blob-type", "BlockBlob")
        .body(body);
    if let Some(sha) = sha256 {
        request = request.header("x-ms-meta-sha256", sha);
    }
    let response = request.send().await.expect("raw put");
    assert!(response.status().is_success(), "{response:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_read_that_does_not_match_the_stored_hash_is_an_error() {
    let (tls, azurite, options) = oauth_azurite();
    let (store, _) = token_store(&azurite, options);
    let put = store
        .put(
            "hashes",
            "doc",
            Bytes::from_static(b"original"),
            PutOptions::default(),
        )
        .await
        .expect("put");
    // Replace the content behind the adapter's back, keeping the old hash: what a corrupted
    // or tampered blob looks like.
    raw_put(&azurite, &tls, "hashes/doc", b"tampered", Some(&put.sha256)).await;
    let r = store.get("hashes", "doc").await;
    let Err(e @ PortError::Backend { .. }) = &r else {
        panic!("a hash mismatch is an error: {r:?}");
    };
    let message = format!("{:?}", std::error::Error::source(e));
    assert!(message.contains("content hash mismatch"), "{message}");

    // A blob written without the hash is refused with a reason, by get, head and list.
    raw_put(&azurite, &tls, "hashes/foreign", b"x", None).await;
    for r in [
        store.head("hashes", "foreign").await.map(|_| ()),
        store.get("hashes", "foreign").await.map(|_| ()),
        store.list("hashes", "foreign").await.map(|_| ()),
    ] {
        let message = format!("{:?}", r.as_ref().err().and_then(std::error::Error::source));
        assert!(message.contains("no sha256 metadata"), "{r:?}: {message}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn transactions_are_counted_per_operation() {
    let (_tls, azurite, options) = oauth_azurite();
    // A small single-request limit, to see how larger payloads are split.
    let options = Options {
        single_request_limit: NonZero::new(1024 * 1024).unwrap(),
        ..options
    };
    let (store, _) = token_store(&azurite, options);
    let count = |before: &azure_blob::TransactionCounts| store.transactions().since(before);

    let before = store.transactions();
    store
        .put(
            "counts",
            "a",
            Bytes::from_static(b"a"),
            PutOptions::default(),
        )
        .await
        .unwrap();
    let first = count(&before);
    assert_eq!(first.put.calls, 1);
    assert_eq!(
        first.put.transactions, 3,
        "the first put in a new container: put (404), create container, put"
    );

    let before = store.transactions();
    store
        .put(
            "counts",
            "a",
            Bytes::from_static(b"b"),
            PutOptions::default(),
        )
        .await
        .unwrap();
    store.get("counts", "a").await.unwrap();
    store.head("counts", "a").await.unwrap();
    store.list("counts", "").await.unwrap();
    store.delete("counts", "a").await.unwrap();
    let _ = store.delete("counts", "a").await;
    let small = count(&before);
    assert_eq!(small.put.transactions, 1, "a small put is one request");
    assert_eq!(small.get.transactions, 1, "a small get is one request");
    assert_eq!(small.head.transactions, 1);
    assert_eq!(small.list.transactions, 1, "one page");
    assert_eq!(
        small.delete,
        azure_blob::OperationCount {
            calls: 2,
            transactions: 2
        },
        "a refused delete (404) is a billed transaction too"
    );

    let before = store.transactions();
    let big = Bytes::from(vec![7u8; 3 * 1024 * 1024 + 1]);
    store
        .put("counts", "big", big.clone(), PutOptions::default())
        .await
        .unwrap();
    let (got, _) = store.get("counts", "big").await.unwrap();
    assert!(got == big, "a payload split into parts reads back whole");
    let split = count(&before);
    assert_eq!(
        split.put.transactions, 5,
        "4 blocks of at most 1 MiB, then one commit"
    );
    assert_eq!(split.get.transactions, 4, "4 ranged reads");

    // Invalid names are refused before any request.
    let before = store.transactions();
    let _ = store.get("counts", "../x").await;
    assert_eq!(count(&before), azure_blob::TransactionCounts::default());
    assert_eq!(store.untagged_requests(), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_large_first_writer_put_refuses_an_existing_blob() {
    // Above the single-request limit If-None-Match goes on the block-list commit.
    let (_tls, azurite, options) = oauth_azurite();
    let options = Options {
        single_request_limit: NonZero::new(64 * 1024).unwrap(),
        ..options
    };
    let (store, _) = token_store(&azurite, options);
    let first = PutOptions {
        content_type: None,
        if_none_match: true,
    };
    let big = |b: u8| Bytes::from(vec![b; 200 * 1024]);
    store
        .put("large-first", "x", big(1), first.clone())
        .await
        .expect("the first large put wins");
    let again = store.put("large-first", "x", big(2), first).await;
    assert!(matches!(again, Err(PortError::AlreadyExists)), "{again:?}");
    let (got, _) = store.get("large-first", "x").await.unwrap();
    assert!(got == big(1), "the first content stays");
}
