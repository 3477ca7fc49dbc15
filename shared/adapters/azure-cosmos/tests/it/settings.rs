//! `from_settings`, the constructor hosts use, with the knobs in the environment as a
//! launcher sets them. A running test process cannot change its own environment safely, so
//! the test runs its other half in a child process (this test binary again) with that
//! environment, and real certificate checks: `SSL_CERT_FILE` trusts the test CA, no
//! emulator relaxation.

use std::collections::BTreeMap;
use std::process::Command;

use azure_cosmos::CosmosDocumentStore;
use ports::{DocumentStore, DocumentStoreExt};
use serde_json::json;

use crate::standin::{DATABASE, StandIn};

const CHILD: &str = "settings::from_settings_in_a_launched_process";
const CONNECTION_VAR: &str = "AZURE_COSMOS_TEST_CONNECTION";

#[tokio::test]
async fn from_settings_works_with_the_launcher_environment() {
    let standin = StandIn::start().expect("start the stand-in");
    standin.provision(&["settings"]).await;
    let output = Command::new(std::env::current_exe().expect("test binary"))
        .args([
            "--exact",
            CHILD,
            "--ignored",
            "--nocapture",
            "--test-threads=1",
        ])
        .env("SSL_CERT_FILE", standin.ca_bundle())
        .env("AZURE_COSMOS_CONNECTION_POOL_IS_HTTP2_ALLOWED", "false")
        .env("AZURE_COSMOS_BINARY_ENCODING_ENABLED", "false")
        .env_remove("AZURE_COSMOS_EMULATOR_SERVER_CERT_VALIDATION_DISABLED")
        .env(CONNECTION_VAR, standin.connection_string())
        .output()
        .expect("run the child");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success() && stdout.contains("1 passed"),
        "the child failed or did not run:\n{stdout}\n{stderr}\nserver:\n{}",
        standin.log_tail()
    );
}

/// The child half: run only by the test above, which sets its environment.
#[tokio::test]
#[ignore = "run by from_settings_works_with_the_launcher_environment in a child process"]
async fn from_settings_in_a_launched_process() {
    let connection = std::env::var(CONNECTION_VAR).expect("started by the parent test");
    let settings: BTreeMap<String, String> = [
        ("CosmosDbConnection".to_owned(), connection),
        ("COSMOS_DATABASE".to_owned(), DATABASE.to_owned()),
        ("FUNCTIONS_WORKER_RUNTIME".to_owned(), "Custom".to_owned()),
    ]
    .into_iter()
    .collect();
    let store = CosmosDocumentStore::from_settings(&settings)
        .await
        .expect("open")
        .expect("the connection string configures it");
    assert_eq!(store.database(), DATABASE);
    let etag = store
        .create("settings", "t", "d", json!({"n": 1}))
        .await
        .expect("create");
    let doc = store
        .read("settings", "t", "d")
        .await
        .expect("read")
        .expect("exists");
    assert_eq!((doc.etag, doc.body), (etag, json!({"n": 1})));
}

#[tokio::test]
async fn nothing_configured_is_none() {
    let settings = BTreeMap::from([("FUNCTIONS_WORKER_RUNTIME".to_owned(), "Custom".to_owned())]);
    assert!(
        CosmosDocumentStore::from_settings(&settings)
            .await
            .expect("no error")
            .is_none()
    );
}
