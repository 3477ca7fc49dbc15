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
