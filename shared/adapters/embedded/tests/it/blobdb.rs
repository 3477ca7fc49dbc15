//! `SqliteBlobStore`: the port contract, plus what only its database can get wrong
//! (corruption on disk, reopening, the size limit, importing an earlier blob folder).

use bytes::Bytes;
use embedded::{Durability, FolderBlobStore, SqliteBlobStore};
use ports::conformance::blob::blob_store_contract;
use ports::{BlobStore, PortError, PutOptions};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_blob_store_passes_the_contract() {
    let dir = tempfile::tempdir().unwrap();
    let store = SqliteBlobStore::open(&dir.path().join("blobs.db"), Durability::Normal).unwrap();
    blob_store_contract(&store).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_blob_store_with_full_durability_passes_the_contract() {
    let dir = tempfile::tempdir().unwrap();
    let store = SqliteBlobStore::open(&dir.path().join("blobs.db"), Durability::Full).unwrap();
    blob_store_contract(&store).await;
}

#[tokio::test]
async fn a_reopened_store_reads_earlier_blobs() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("blobs.db");
    let put = SqliteBlobStore::open(&path, Durability::Normal)
        .unwrap()
        .put(
            "box",
            "a/b",
            Bytes::from_static(b"kept"),
            PutOptions {
                content_type: Some("text/plain".into()),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    let reopened = SqliteBlobStore::open(&path, Durability::Normal).unwrap();
    let (data, info) = reopened.get("box", "a/b").await.unwrap();
    assert_eq!(&data[..], b"kept");
    assert_eq!(info, put, "the metadata survives as it was written");
}

#[tokio::test]
async fn corruption_on_disk_is_a_backend_error_not_wrong_data() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("blobs.db");
    let store = SqliteBlobStore::open(&path, Durability::Normal).unwrap();
    for name in ["flipped", "shortened"] {
        store
            .put(
                "box",
                name,
                Bytes::from_static(b"original content"),
                PutOptions::default(),
            )
            .await
            .unwrap();
    }
    let raw = rusqlite::Connection::open(&path).unwrap();
    raw.execute(
        "UPDATE blobs SET data = CAST('original c0ntent' AS BLOB) WHERE name = 'flipped'",
        [],
    )
    .unwrap();
    raw.execute(
        "UPDATE blobs SET data = CAST('original' AS BLOB) WHERE name = 'shortened'",
        [],
    )
    .unwrap();
    drop(raw);
    for name in ["flipped", "shortened"] {
        let got = store.get("box", name).await;
        assert!(
            matches!(&got, Err(PortError::Backend { .. })),
            "{name}: {got:?}"
        );
        // The metadata alone is still readable: head does not read the content.
        assert_eq!(store.head("box", name).await.unwrap().size, 16);
    }
}

#[tokio::test]
async fn a_prefix_is_matched_literally() {
    let dir = tempfile::tempdir().unwrap();
    let store = SqliteBlobStore::open(&dir.path().join("blobs.db"), Durability::Normal).unwrap();
    for name in ["a%b/1", "a_b/2", "axb/3", "ünï/4", "ünïcode/5", "un/6"] {
        store
            .put("box", name, Bytes::from_static(b"x"), PutOptions::default())
            .await
            .unwrap();
    }
    let names = |prefix: &'static str| {
        let store = store.clone();
        async move {
            store
                .list("box", prefix)
                .await
                .unwrap()
                .into_iter()
                .map(|i| i.name)
                .collect::<Vec<_>>()
        }
    };
    // SQL wildcards in a prefix are plain characters.
    assert_eq!(names("a%").await, ["a%b/1"]);
    assert_eq!(names("a_").await, ["a_b/2"]);
    assert_eq!(names("ünï").await, ["ünï/4", "ünïcode/5"]);
    assert_eq!(names("ünï/").await, ["ünï/4"]);
    assert_eq!(names("").await.len(), 6);
    assert!(names("zzz").await.is_empty());
}

#[tokio::test]
async fn a_blob_above_the_limit_is_refused_before_it_is_stored() {
    let dir = tempfile::tempdir().unwrap();
    let store = SqliteBlobStore::open(&dir.path().join("blobs.db"), Durability::Normal).unwrap();
    let too_big = Bytes::from(vec![0u8; embedded::blobdb::MAX_BLOB_BYTES + 1]);
    let r = store
        .put("box", "huge", too_big, PutOptions::default())
        .await;
    match r {
        Err(PortError::Invalid(why)) => assert!(why.contains("256 MiB"), "{why}"),
        other => panic!("expected Invalid, got {other:?}"),
    }
    assert!(matches!(
        store.head("box", "huge").await,
        Err(PortError::NotFound)
    ));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_blob_folder_is_imported_with_its_metadata_and_newer_rows_win() {
    let dir = tempfile::tempdir().unwrap();
    let folder = dir.path().join("blobs");
    let old = FolderBlobStore::open(&folder).unwrap();
    let typed = PutOptions {
        content_type: Some("application/json".into()),
        ..Default::default()
    };
    let a = old
        .put(
            "webhooks-raw",
            "t1/a",
            Bytes::from_static(b"{\"a\":1}"),
            typed,
        )
        .await
        .unwrap();
    old.put(
        "runs-input",
        "t1/r",
        Bytes::from_static(b"run"),
        PutOptions::default(),
    )
    .await
    .unwrap();
    old.put(
        "runs-input",
        "t1/taken",
        Bytes::from_static(b"old"),
        PutOptions::default(),
    )
    .await
    .unwrap();
    // Not a container: the importer skips what the folder store would never have written.
    std::fs::create_dir_all(folder.join("Not_A_Container")).unwrap();

    let store = SqliteBlobStore::open(&dir.path().join("blobs.db"), Durability::Normal).unwrap();
    store
        .put(
            "runs-input",
            "t1/taken",
            Bytes::from_static(b"new"),
            PutOptions::default(),
        )
        .await
        .unwrap();
    assert_eq!(store.import_folder(&folder).await.unwrap(), 2);

    let (data, info) = store.get("webhooks-raw", "t1/a").await.unwrap();
    assert_eq!(&data[..], b"{\"a\":1}");
    assert_eq!(info, a, "etag, time and content type are kept");
    assert_eq!(
        &store.get("runs-input", "t1/r").await.unwrap().0[..],
        b"run"
    );
    assert_eq!(
        &store.get("runs-input", "t1/taken").await.unwrap().0[..],
        b"new",
        "a blob already in the database is not overwritten by the import"
    );
    // Importing twice copies nothing more.
    assert_eq!(store.import_folder(&folder).await.unwrap(), 0);
}

/// Retention: `expire` deletes a container's blobs older than the time given, and only
/// those; `keep_for` does it on its own, as Blob Storage's lifecycle rule does in Azure.
#[tokio::test]
async fn blobs_past_their_retention_are_deleted_and_no_others() {
    use ports::{BlobStore as _, PutOptions};
    let dir = tempfile::tempdir().unwrap();
    let store = SqliteBlobStore::open(&dir.path().join("blobs.db"), Durability::Normal).unwrap();
    let put = |container: &'static str, name: &'static str| {
        let store = store.clone();
        async move {
            store
                .put(
                    container,
                    name,
                    bytes::Bytes::from_static(b"body"),
                    PutOptions::default(),
                )
                .await
                .unwrap();
        }
    };
    for i in ["a", "b", "c"] {
        put("webhooks-raw", i).await;
    }
    put("runs-input", "kept").await;
    // Nothing is older than an hour ago.
    let hour_ago = chrono::Utc::now() - chrono::TimeDelta::hours(1);
    assert_eq!(
        store.expire("webhooks-raw", hour_ago, 100).await.unwrap(),
        0
    );
    // Everything written so far is older than a moment from now: two at a time.
    let soon = chrono::Utc::now() + chrono::TimeDelta::seconds(1);
    assert_eq!(store.expire("webhooks-raw", soon, 2).await.unwrap(), 2);
    assert_eq!(store.expire("webhooks-raw", soon, 2).await.unwrap(), 1);
    assert!(store.list("webhooks-raw", "").await.unwrap().is_empty());
    assert_eq!(
        store.list("runs-input", "").await.unwrap().len(),
        1,
        "another container is kept"
    );

    // The task: a zero retention empties the container at once, and again later.
    put("webhooks-raw", "d").await;
    let task = store.keep_for(
        vec!["webhooks-raw".into()],
        std::time::Duration::ZERO,
        std::time::Duration::from_millis(20),
    );
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while !store.list("webhooks-raw", "").await.unwrap().is_empty() {
        assert!(std::time::Instant::now() < deadline, "never expired");
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    put("webhooks-raw", "e").await;
    while !store.list("webhooks-raw", "").await.unwrap().is_empty() {
        assert!(
            std::time::Instant::now() < deadline,
            "not expired on the next pass"
        );
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    assert_eq!(store.list("runs-input", "").await.unwrap().len(), 1);
    task.abort();
}
