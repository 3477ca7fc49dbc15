//! Export end to end. `init` takes the process-wide subscriber and the exporter trusts the CA
//! through `SSL_CERT_FILE`, read when its client is built; neither can be scoped to one test.
//! So each test here runs [`child_process`] — a handler-like program: `init` from its
//! environment, an axum app behind `HttpServerLayer` making an outbound call — as a child
//! process of this test binary, with the environment it needs, and then inspects what the fake
//! ingestion endpoint received.

use std::collections::BTreeMap;
use std::process::Output;
use std::time::Duration;

use axum::Router;
use axum::http::StatusCode;
use axum::routing::get;
use serde_json::Value;

use crate::fake::FakeIngestion;

const SERVICE: &str = "telemetry-it";
const KEY: &str = "9a8b7c6d-1111-2222-3333-444455556666";
const TRACE_ID: &str = "0af7651916cd43dd8448eb211c80319c";
const PARENT_ID: &str = "b7ad6b7169203331";
/// A Functions key in the query: it must never be exported.
const FUNCTION_KEY: &str = "functionkeyvalue";
/// A signature in an outbound URL's query: it must never be exported either.
const SIGNATURE: &str = "sigvalue";

const MODE: &str = "TELEMETRY_IT_MODE";
const INCOMING: &str = "TELEMETRY_IT_TRACEPARENT";

/// Runs [`child_process`] with `env` and `SSL_CERT_FILE` trusting the fake's CA.
async fn run_child(fake: &FakeIngestion, mode: &str, env: &[(&str, String)]) -> (String, String) {
    let dir = tempfile::tempdir().expect("temp dir");
    let bundle = dir.path().join("ca-bundle.pem");
    std::fs::write(&bundle, fake.pki.ca_pem()).expect("write CA bundle");
    let mut command = tokio::process::Command::new(std::env::current_exe().expect("test binary"));
    command
        .args([
            "export::child_process",
            "--exact",
            "--ignored",
            "--nocapture",
            "--test-threads=1",
        ])
        .env("SSL_CERT_FILE", &bundle)
        .env(MODE, mode)
        .env(INCOMING, format!("00-{TRACE_ID}-{PARENT_ID}-01"))
        .env("RUST_LOG", "info")
        .env_remove(telemetry::CONNECTION_STRING_SETTING)
        .env_remove(telemetry::SAMPLING_RATIO_SETTING)
        .env_remove(telemetry::HANDLER_PORT_SETTING)
        .kill_on_drop(true);
    for (k, v) in env {
        command.env(k, v);
    }
    let output: Output = tokio::time::timeout(Duration::from_secs(120), command.output())
        .await
        .expect("the child process finished in time")
        .expect("the child process ran");
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
    assert!(
        output.status.success(),
        "child failed ({}):\n--- stdout\n{stdout}\n--- stderr\n{stderr}",
        output.status
    );
    (stdout, stderr)
}

fn tag<'a>(item: &'a Value, name: &str) -> &'a str {
    item["tags"][name].as_str().unwrap_or_default()
}

fn base_type(item: &Value) -> &str {
    item["data"]["baseType"].as_str().unwrap_or_default()
}

fn line_value<'a>(stdout: &'a str, prefix: &str) -> &'a str {
    stdout
        .lines()
        // libtest may print `test … ... ` on the same line first.
        .find_map(|l| l.split_once(prefix).map(|(_, value)| value.trim()))
        .unwrap_or_else(|| panic!("no {prefix} line in:\n{stdout}"))
}

#[tokio::test]
async fn requests_and_dependencies_arrive_under_the_incoming_trace() {
    let fake = FakeIngestion::start().await;
    let (stdout, stderr) = run_child(
        &fake,
        "export",
        &[
            (
                telemetry::CONNECTION_STRING_SETTING,
                fake.connection_string(KEY),
            ),
            // As under the Functions host: the host log format.
            (telemetry::HANDLER_PORT_SETTING, "7072".to_owned()),
        ],
    )
    .await;
    assert_eq!(line_value(&stdout, "EXPORTING="), "true");
    let outbound = line_value(&stdout, "OUTBOUND=").to_owned();

    let items = fake.items();
    assert!(fake.rejected().is_empty(), "{:?}", fake.rejected());
    let requests: Vec<&Value> = items
        .iter()
        .filter(|i| base_type(i) == "RequestData")
        .collect();
    let dependencies: Vec<&Value> = items
        .iter()
        .filter(|i| base_type(i) == "RemoteDependencyData")
        .collect();
    assert_eq!(requests.len(), 2, "two requests were served: {items:#?}");
    // The outbound call's span, and nothing from the exporter's own uploads.
    assert_eq!(dependencies.len(), 1, "{items:#?}");

    let ok = requests
        .iter()
        .find(|r| r["data"]["baseData"]["responseCode"] == "200")
        .expect("the 200 request");
    let ok_data = &ok["data"]["baseData"];
    // One operation: the trace id of the traceparent the caller sent, under the caller's span.
    assert_eq!(tag(ok, "ai.operation.id"), TRACE_ID);
    assert_eq!(tag(ok, "ai.operation.parentId"), PARENT_ID);
    assert_eq!(tag(ok, "ai.cloud.role"), SERVICE);
    assert_eq!(ok["iKey"], KEY);
    // Named by the route template (the layer is a route layer), not the concrete path.
    assert_eq!(ok_data["name"], "GET /api/orders/{id}");
    assert_eq!(ok_data["success"], true);

    let dependency = dependencies[0];
    let dep_data = &dependency["data"]["baseData"];
    assert_eq!(tag(dependency, "ai.operation.id"), TRACE_ID);
    assert_eq!(tag(dependency, "ai.cloud.role"), SERVICE);
    // A child of the request, and the span whose id went out in the outbound traceparent.
    assert_eq!(
        tag(dependency, "ai.operation.parentId"),
        ok_data["id"].as_str().unwrap()
    );
    let (out_trace, out_span) = {
        let parts: Vec<&str> = outbound.split('-').collect();
        (parts[1].to_owned(), parts[2].to_owned())
    };
    assert_eq!(out_trace, TRACE_ID);
    assert_eq!(dep_data["id"].as_str(), Some(out_span.as_str()));
    assert_eq!(dep_data["type"], "HTTP");
    assert_eq!(dep_data["name"], "GET /v1/orders");
    assert_eq!(dep_data["data"], "https://vendor.example/v1/orders");
    assert_eq!(dep_data["target"], "vendor.example");
    assert_eq!(dep_data["success"], true);

    // The 500 is a failed request in the same operation (its own caller span).
    let failed = requests
        .iter()
        .find(|r| r["data"]["baseData"]["responseCode"] == "500")
        .expect("the 500 request");
    assert_eq!(failed["data"]["baseData"]["success"], false);
    assert_eq!(tag(failed, "ai.operation.id"), TRACE_ID);

    // Queries never leave the process; the key never reaches the logs.
    let exported = serde_json::to_string(&items).unwrap();
    assert!(!exported.contains(FUNCTION_KEY), "{exported}");
    assert!(!exported.contains(SIGNATURE), "{exported}");
    assert!(
        !stdout.contains(KEY) && !stderr.contains(KEY),
        "{stdout}\n{stderr}"
    );

    // The Functions-host format: information on stdout, no colours. Logged once (the second
    // `init` built nothing), with the endpoint as used: upgraded to https.
    assert_eq!(
        stdout
            .matches("exporting traces to Application Insights")
            .count(),
        1,
        "{stdout}"
    );
    assert!(
        stdout.contains(&format!(
            "endpoint=\"https://127.0.0.1:{}\"",
            fake.addr.port()
        )),
        "{stdout}"
    );
    assert!(!stdout.contains('\u{1b}') && !stderr.contains('\u{1b}'));
}

#[tokio::test]
async fn nothing_is_posted_when_the_setting_is_unset() {
    let fake = FakeIngestion::start().await;
    // The process environment points at the fake, but the settings `init` gets do not have
    // the connection string: only the settings decide.
    let (stdout, _) = run_child(
        &fake,
        "unset",
        &[(
            telemetry::CONNECTION_STRING_SETTING,
            fake.connection_string(KEY),
        )],
    )
    .await;
    assert_eq!(line_value(&stdout, "EXPORTING="), "false");
    // Trace context still flows between apps when nothing is exported.
    let outbound = line_value(&stdout, "OUTBOUND=");
    assert_eq!(outbound.split('-').nth(1), Some(TRACE_ID));
    assert!(fake.items().is_empty(), "{:#?}", fake.items());
    assert!(fake.rejected().is_empty(), "{:?}", fake.rejected());
}

/// The handler-like program the tests above run in a child process.
#[test]
#[ignore = "run in a child process by the other tests of this module"]
fn child_process() {
    let mode = std::env::var(MODE).expect("run by a parent test");
    // As app-host reads them: the environment is the settings.
    let mut settings: BTreeMap<String, String> = std::env::vars_os()
        .filter_map(|(k, v)| Some((k.into_string().ok()?, v.into_string().ok()?)))
        .collect();
    if mode == "unset" {
        settings.remove(telemetry::CONNECTION_STRING_SETTING);
    }
    let guard = telemetry::init(SERVICE, &settings).expect("init");
    // Once per process: a second call is an error, not a panic.
    assert!(matches!(
        telemetry::init(SERVICE, &settings),
        Err(telemetry::Error::AlreadyInitialized)
    ));
    println!("EXPORTING={}", guard.is_exporting());

    let incoming = std::env::var(INCOMING).expect("incoming traceparent");
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .expect("runtime");
    let outbound = runtime.block_on(serve_two_requests(&incoming));
    println!("OUTBOUND={outbound}");
    // As in a handler's `main`: the runtime ends, then the guard exports what is queued.
    drop(runtime);
    drop(guard);
}

/// Serves an app behind `HttpServerLayer` and calls it twice with the incoming traceparent;
/// returns the traceparent the 200 handler would have sent on its outbound call.
async fn serve_two_requests(incoming: &str) -> String {
    let app = Router::new()
        .route("/api/orders/{id}", get(order))
        .route("/api/broken", get(broken))
        .route_layer(telemetry::HttpServerLayer);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(async move {
        axum::serve(listener, app)
            .with_graceful_shutdown(async {
                let _ = stopped.await;
            })
            .await
    });
    let client = reqwest::Client::new();
    let response = client
        .get(format!("http://{addr}/api/orders/42?code={FUNCTION_KEY}"))
        .header(telemetry::TRACEPARENT, incoming)
        .send()
        .await
        .expect("call the app");
    assert_eq!(response.status(), 200);
    let outbound = response.text().await.expect("body");
    let broken = client
        .get(format!("http://{addr}/api/broken"))
        .header(telemetry::TRACEPARENT, incoming)
        .send()
        .await
        .expect("call the app");
    assert_eq!(broken.status(), 500);
    let _ = stop.send(());
    server.await.expect("server task").expect("server");
    outbound
}

/// A handler that calls a vendor: one client span, the traceparent it would send.
async fn order() -> String {
    let call = telemetry::http_client_span(
        "GET",
        &format!("https://vendor.example/v1/orders?sig={SIGNATURE}"),
    );
    let traceparent = call
        .in_scope(telemetry::current_traceparent)
        .expect("a traceparent inside the request");
    telemetry::record_dependency_status(&call, StatusCode::OK);
    tracing::info!("order fetched");
    traceparent
}

async fn broken() -> StatusCode {
    StatusCode::INTERNAL_SERVER_ERROR
}
