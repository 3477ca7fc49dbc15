//! Crash safety through a real process: a message accepted before `kill -9` is delivered
//! after a restart on the same data folder.

use std::time::Duration;

use ports::DocumentStore as _;
use serde_json::json;

use crate::support::{dev_token, eventually, spawn, write_settings};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_message_accepted_before_kill_9_is_delivered_after_restart() {
    let dir = tempfile::tempdir().unwrap();
    write_settings(dir.path(), "0 0 0 1 1 *");
    // The token is made by the CLI before the runner exists, from the same data folder.
    let tok = dev_token(dir.path(), "crash-tenant");
    let hold = dir.path().join("hold");
    std::fs::write(&hold, b"").unwrap();

    let (mut first, addr) = spawn(dir.path());
    let client = reqwest::Client::new();
    let r = client
        .post(format!("http://{addr}/probe/api/messages"))
        .bearer_auth(&tok)
        .json(&json!({"id": "survivor"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 202, "accepted");
    // Wait until the invocation is in flight (held by the hold file), then kill -9.
    // (Another process may read the same SQLite database.)
    let store = embedded::SqliteDocumentStore::open(
        &dir.path().join("data/documents.db"),
        embedded::Durability::Normal,
    )
    .unwrap();
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while store
        .read("probe", "crash-tenant", "started-survivor")
        .await
        .unwrap()
        .is_none()
    {
        assert!(
            std::time::Instant::now() < deadline,
            "the invocation never started"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    first.kill().expect("SIGKILL");
    first.wait().unwrap();

    std::fs::remove_file(&hold).unwrap();
    let (mut second, addr) = spawn(dir.path());
    let record = eventually(
        &client,
        &format!("http://{addr}/probe/api/messages/survivor"),
        &tok,
        Duration::from_secs(20),
    )
    .await;
    assert_eq!(record["messageId"], "survivor");
    assert_eq!(
        record["deliveryCount"], 2,
        "the lock held by the killed process expired and the message came again"
    );
    second.kill().unwrap();
    second.wait().unwrap();
}
