//! Each stand-in starts, answers on its port with the test certificate, and goes away with its
//! handle.

use std::net::{Ipv4Addr, SocketAddr, TcpStream};
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use standins::azurite::{self, Azurite};
use standins::cosmos::CosmosServer;
use standins::process::{ChildProcess, Node};
use standins::tls::TestTls;

fn trusting(tls: &TestTls) -> reqwest::Client {
    let ca = reqwest::Certificate::from_pem(tls.ca_pem().as_bytes()).expect("CA PEM parses");
    reqwest::Client::builder()
        .add_root_certificate(ca)
        .timeout(Duration::from_secs(20))
        .build()
        .expect("client")
}

fn accepts(port: u16) -> bool {
    TcpStream::connect_timeout(
        &SocketAddr::from((Ipv4Addr::LOCALHOST, port)),
        Duration::from_millis(300),
    )
    .is_ok()
}

fn alive(pid: u32) -> bool {
    // A zombie has exited; it only waits for its parent to reap it.
    std::fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|stat| {
        !stat
            .rsplit(')')
            .next()
            .unwrap_or("")
            .trim_start()
            .starts_with('Z')
    })
}

fn eventually(what: &str, mut condition: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while !condition() {
        assert!(Instant::now() < deadline, "{what} within 10 s");
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn azurite_oauth_serves_https_that_only_the_test_ca_verifies() {
    let tls = TestTls::generate().expect("certificates");
    let azurite = Azurite::start_oauth(&tls).expect("start Azurite");
    let endpoint = azurite.blob_endpoint().to_owned();
    assert!(
        endpoint.starts_with("https://127.0.0.1:") && endpoint.ends_with("/devstoreaccount1"),
        "{endpoint}"
    );
    assert!(accepts(azurite.port()));
    let list = format!("{endpoint}?comp=list");

    // Without the test CA, the TLS handshake fails.
    let untrusting = reqwest::Client::builder()
        .timeout(Duration::from_secs(20))
        .build()
        .unwrap();
    let err = untrusting
        .get(&list)
        .send()
        .await
        .expect_err("the leaf is not trusted without the test CA");
    assert!(err.is_connect(), "a TLS failure at connect time: {err:?}");

    // With it, the request reaches Azurite, which refuses it for lack of credentials.
    let client = trusting(&tls);
    let anonymous = client.get(&list).send().await.expect("TLS verifies");
    assert_eq!(
        anonymous.status(),
        reqwest::StatusCode::FORBIDDEN,
        "no credentials: {}",
        azurite.log_tail()
    );

    // An unsigned Entra-like token is accepted: this is the OAuth route.
    let (token, _) = azurite::unsigned_storage_token(Duration::from_secs(600));
    let listed = client
        .get(&list)
        .bearer_auth(&token)
        .header("x-ms-version", "2025-11-05")
        .send()
        .await
        .expect("list containers");
    let status = listed.status();
    let body = listed.text().await.unwrap_or_default();
    assert_eq!(status, reqwest::StatusCode::OK, "{body}");
    assert!(body.contains("<EnumerationResults"), "{body}");

    // An expired token is refused: Azurite does check the token's lifetime.
    let (expired, _) = azurite::unsigned_storage_token(Duration::ZERO);
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let refused = client
        .get(&list)
        .bearer_auth(&expired)
        .header("x-ms-version", "2025-11-05")
        .send()
        .await
        .expect("request");
    assert_eq!(refused.status(), reqwest::StatusCode::FORBIDDEN);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn azurite_http_answers_and_stops_on_drop() {
    let mut azurite = Azurite::start_http().expect("start Azurite");
    let port = azurite.port();
    let pid = azurite.process().pid();
    assert!(azurite.blob_endpoint().starts_with("http://127.0.0.1:"));
    assert!(
        azurite
            .connection_string()
            .contains(&format!("BlobEndpoint={};", azurite.blob_endpoint()))
    );
    let response = reqwest::get(format!("{}?comp=list", azurite.blob_endpoint()))
        .await
        .expect("plain HTTP answers");
    assert!(
        response.headers().contains_key("x-ms-request-id"),
        "a storage answer: {response:?}"
    );
    drop(azurite);
    assert!(!alive(pid), "the process is gone once dropped");
    assert!(!accepts(port), "the port is closed once dropped");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cosmos_serves_its_account_and_string_partition_key_range_ids() {
    let tls = TestTls::generate().expect("certificates");
    let cosmos = CosmosServer::start(&tls).expect("start cosmosdb-server");
    let endpoint = cosmos.endpoint().to_owned();
    assert_eq!(endpoint, format!("https://127.0.0.1:{}/", cosmos.port()));
    let client = trusting(&tls);

    // The account document advertises the endpoint the client must keep using.
    let account: serde_json::Value = client
        .get(&endpoint)
        .send()
        .await
        .expect("GET / over TLS with the test CA")
        .json()
        .await
        .expect("account JSON");
    assert_eq!(
        account["writableLocations"][0]["databaseAccountEndpoint"], endpoint,
        "{account}"
    );

    // The patched package answers the partition key range id as a string.
    let created = client
        .post(format!("{endpoint}dbs"))
        .json(&serde_json::json!({"id": "db"}))
        .send()
        .await
        .expect("create database");
    assert!(created.status().is_success(), "{created:?}");
    let created = client
        .post(format!("{endpoint}dbs/db/colls"))
        .json(&serde_json::json!({
            "id": "c",
            "partitionKey": {"paths": ["/tenantId"], "kind": "Hash"}
        }))
        .send()
        .await
        .expect("create container");
    assert!(created.status().is_success(), "{created:?}");
    let ranges: serde_json::Value = client
        .get(format!("{endpoint}dbs/db/colls/c/pkranges"))
        .send()
        .await
        .expect("read partition key ranges")
        .json()
        .await
        .expect("ranges JSON");
    assert_eq!(
        ranges["PartitionKeyRanges"][0]["id"],
        serde_json::json!("0"),
        "{ranges}; log: {}",
        cosmos.log_tail()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cosmos_on_localhost_advertises_localhost() {
    let tls = TestTls::generate().expect("certificates");
    let cosmos = CosmosServer::start_on_localhost(&tls).expect("start cosmosdb-server");
    let endpoint = format!("https://localhost:{}/", cosmos.port());
    assert_eq!(cosmos.endpoint(), endpoint);
    assert!(
        cosmos
            .connection_string()
            .starts_with(&format!("AccountEndpoint={endpoint};"))
    );
    let account: serde_json::Value = trusting(&tls)
        .get(format!("https://127.0.0.1:{}/", cosmos.port()))
        .send()
        .await
        .expect("GET /")
        .json()
        .await
        .expect("account JSON");
    assert_eq!(
        account["writableLocations"][0]["databaseAccountEndpoint"],
        endpoint
    );
}

#[test]
fn the_bundle_holds_the_system_cas_and_ours() {
    let tls = TestTls::generate().expect("certificates");
    let bundle = std::fs::read_to_string(tls.bundle_path()).expect("bundle");
    assert!(
        bundle.ends_with(tls.ca_pem()),
        "the test CA closes the bundle"
    );
    let certs = bundle.matches("-----BEGIN CERTIFICATE-----").count();
    let system = rustls_native_certs::load_native_certs().certs.len();
    assert_eq!(certs, system + 1, "every system CA ({system}) and ours");
    let ca = std::fs::read_to_string(tls.ca_cert_path()).expect("ca.pem");
    assert_eq!(ca, tls.ca_pem());
    let key = std::fs::read_to_string(tls.leaf_key_path()).expect("key");
    assert!(key.starts_with("-----BEGIN PRIVATE KEY-----"), "PKCS#8 key");
}

#[test]
fn a_child_that_exits_at_once_is_reported_with_its_stderr() {
    let dir = tempfile::tempdir().unwrap();
    let err = ChildProcess::spawn("failing", dir.path(), Duration::from_secs(10), |_| {
        let mut c = Command::new("sh");
        c.args(["-c", "echo 'cannot listen: boom' >&2; exit 3"]);
        c
    })
    .expect_err("a child that exits never becomes ready");
    let message = format!("{err:#}");
    assert!(message.contains("failing exited"), "{message}");
    assert!(message.contains("cannot listen: boom"), "{message}");
}

#[test]
fn a_child_that_never_listens_times_out() {
    let dir = tempfile::tempdir().unwrap();
    let started = Instant::now();
    let err = ChildProcess::spawn("silent", dir.path(), Duration::from_millis(700), |_| {
        let mut c = Command::new("sleep");
        c.arg("30");
        c
    })
    .expect_err("never ready");
    assert!(
        format!("{err:#}").contains("did not accept connections"),
        "{err:#}"
    );
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "gave up at the timeout"
    );
}

/// Writes a Node server that listens on argv[2] and starts a grandchild (`sleep`) whose pid it
/// writes to argv[3]: dropping the handle must kill the whole group.
fn group_script(dir: &Path) -> std::path::PathBuf {
    let script = dir.join("group.js");
    std::fs::write(
        &script,
        r#"const { spawn } = require("child_process");
const fs = require("fs");
const grandchild = spawn("sleep", ["300"], { stdio: "ignore" });
fs.writeFileSync(process.argv[3], String(grandchild.pid));
require("net").createServer().listen(Number(process.argv[2]), "127.0.0.1");
"#,
    )
    .unwrap();
    script
}

#[test]
fn drop_kills_the_process_group() {
    standins::npm::check_node_and_npm().expect("node");
    let dir = tempfile::tempdir().unwrap();
    let script = group_script(dir.path());
    let pid_file = dir.path().join("grandchild.pid");
    let node = Node::prepare(dir.path()).unwrap();
    let process = ChildProcess::spawn("group", dir.path(), Duration::from_secs(20), |port| {
        let mut c = node.command();
        c.arg(&script).arg(port.to_string()).arg(&pid_file);
        c
    })
    .expect("start");
    let child = process.pid();
    let port = process.port();
    eventually("the grandchild pid is written", || pid_file.exists());
    let grandchild: u32 = std::fs::read_to_string(&pid_file)
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    assert!(alive(grandchild), "the grandchild runs");
    drop(process);
    assert!(!alive(child), "the child is killed");
    eventually("the grandchild is killed with its group", || {
        !alive(grandchild)
    });
    assert!(!accepts(port));
}

#[test]
fn a_node_child_exits_when_its_stdin_closes() {
    // What happens when the test process dies without running Drop: the OS closes our end of
    // the child's stdin, and the preload exits the server.
    standins::npm::check_node_and_npm().expect("node");
    let dir = tempfile::tempdir().unwrap();
    let node = Node::prepare(dir.path()).unwrap();
    let mut child = node
        .command()
        .args(["-e", "require('net').createServer().listen(0, '127.0.0.1')"])
        .stdin(std::process::Stdio::piped())
        .spawn()
        .expect("node");
    std::thread::sleep(Duration::from_millis(500));
    assert!(
        child.try_wait().unwrap().is_none(),
        "a listening server keeps running"
    );
    drop(child.stdin.take());
    eventually("node exits once its stdin closes", || {
        child.try_wait().unwrap().is_some()
    });
}

#[test]
fn a_missing_program_is_named() {
    let dir = tempfile::tempdir().unwrap();
    let err = ChildProcess::spawn("ghost", dir.path(), Duration::from_secs(1), |_| {
        Command::new("standins-no-such-program")
    })
    .expect_err("nothing to run");
    let message = format!("{err:#}");
    assert!(
        message.contains("`standins-no-such-program` is not on PATH"),
        "{message}"
    );
}
