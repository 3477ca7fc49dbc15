use std::sync::Arc;

use embedded::{Durability, SqliteDocumentStore};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_document_store_passes_the_contract() {
    let dir = tempfile::tempdir().unwrap();
    let store =
        SqliteDocumentStore::open(&dir.path().join("documents.db"), Durability::Normal).unwrap();
    ports::conformance::document::document_store_contract(Arc::new(store)).await;
}

#[tokio::test]
async fn documents_survive_reopening() {
    use ports::DocumentStoreExt as _;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("documents.db");
    {
        let store = SqliteDocumentStore::open(&path, Durability::Full).unwrap();
        store
            .create("c", "p", "kept", serde_json::json!({"v": 1}))
            .await
            .unwrap();
    }
    let store = SqliteDocumentStore::open(&path, Durability::Normal).unwrap();
    use ports::DocumentStore as _;
    assert_eq!(
        store.read("c", "p", "kept").await.unwrap().unwrap().body["v"],
        1
    );
}

/// Batches arriving together commit together, each in its own savepoint: one that fails
/// (a create of a taken id, a stale etag) leaves no trace and takes no other with it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_batches_commit_or_fail_alone() {
    use ports::{DocumentStore as _, PortError, WriteOp};
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(
        SqliteDocumentStore::open(&dir.path().join("documents.db"), Durability::Normal).unwrap(),
    );
    let mut tasks = Vec::new();
    for i in 0..64 {
        let store = store.clone();
        tasks.push(tokio::spawn(async move {
            // Every batch writes its own document; every fourth also claims the shared one.
            let mut ops = vec![WriteOp::create(
                format!("own-{i}"),
                serde_json::json!({"i": i}),
            )];
            if i % 4 == 0 {
                ops.push(WriteOp::create("shared", serde_json::json!({"winner": i})));
            }
            store.batch("c", "p", ops).await
        }));
    }
    let mut won = 0;
    let mut refused = Vec::new();
    for (i, t) in tasks.into_iter().enumerate() {
        match t.await.unwrap() {
            Ok(etags) => {
                assert!(etags.iter().all(Option::is_some));
                if i % 4 == 0 {
                    won += 1;
                }
            }
            Err(PortError::AlreadyExists) => refused.push(i),
            Err(e) => panic!("batch {i}: {e}"),
        }
    }
    assert_eq!(won, 1, "exactly one batch claims the shared document");
    assert_eq!(refused.len(), 15);
    for i in 0..64 {
        let own = store.read("c", "p", &format!("own-{i}")).await.unwrap();
        // A refused batch is all or nothing: its own document is not there either.
        assert_eq!(own.is_some(), !refused.contains(&i), "batch {i}");
    }
    let shared = store.read("c", "p", "shared").await.unwrap().unwrap();
    let winner = shared.body["winner"].as_u64().unwrap() as usize;
    assert!(!refused.contains(&winner));
}

/// Committed pages reach the database file itself while the store is open (the checkpoint
/// thread copies them out of the WAL), not only when the last connection closes: the WAL
/// stays short under steady writes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn commits_are_checkpointed_into_the_database_while_open() {
    use ports::DocumentStoreExt as _;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("documents.db");
    let store = SqliteDocumentStore::open(&path, Durability::Normal).unwrap();
    for i in 0..50 {
        store
            .create("c", "p", &format!("d{i}"), serde_json::json!({"n": i}))
            .await
            .unwrap();
    }
    // `immutable=1` reads the database file alone, ignoring the WAL: what it sees has been
    // checkpointed.
    let uri = format!("file:{}?immutable=1", path.display());
    let in_file = || {
        let conn = rusqlite::Connection::open_with_flags(
            &uri,
            rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY | rusqlite::OpenFlags::SQLITE_OPEN_URI,
        )
        .unwrap();
        conn.query_row("SELECT COUNT(*) FROM documents", [], |r| r.get::<_, i64>(0))
            .unwrap_or(0)
    };
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while in_file() < 50 {
        assert!(
            std::time::Instant::now() < deadline,
            "only {} of 50 documents reached the database file",
            in_file()
        );
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    drop(store);
}

/// The write-ahead log stays bounded under a steady load with readers always at work: once
/// it passes its limit (64 MiB) a checkpoint waits for the readers and truncates it, so the
/// file does not stay at its high-water mark.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_write_ahead_log_is_bounded_while_readers_keep_reading() {
    use ports::{DocumentStore as _, WriteOp};
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("documents.db");
    let store = Arc::new(SqliteDocumentStore::open(&path, Durability::Normal).unwrap());
    let reading = Arc::new(std::sync::atomic::AtomicBool::new(true));
    let mut readers = Vec::new();
    for _ in 0..2 {
        let (store, reading) = (store.clone(), reading.clone());
        readers.push(tokio::spawn(async move {
            while reading.load(std::sync::atomic::Ordering::Relaxed) {
                let _ = store.read("c", "p", "d-1").await;
            }
        }));
    }
    // About 100 MiB of documents, in batches of 1 MiB.
    let payload = "x".repeat(64 * 1024);
    let wal = dir.path().join("documents.db-wal");
    let mut peak = 0;
    for batch in 0..100 {
        let ops = (0..16)
            .map(|i| {
                WriteOp::upsert(
                    format!("d-{}", batch * 16 + i),
                    serde_json::json!({"v": payload}),
                )
            })
            .collect();
        store.batch("c", "p", ops).await.unwrap();
        peak = peak.max(std::fs::metadata(&wal).map(|m| m.len()).unwrap_or(0));
    }
    reading.store(false, std::sync::atomic::Ordering::Relaxed);
    for r in readers {
        r.await.unwrap();
    }
    // Let the last checkpoint run.
    let limit = 64 * 1024 * 1024;
    let mut size = u64::MAX;
    for _ in 0..100 {
        size = std::fs::metadata(&wal).map(|m| m.len()).unwrap_or(0);
        if size <= limit {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    assert!(
        size <= limit,
        "the WAL stayed at {size} bytes (peak {peak})"
    );
}
