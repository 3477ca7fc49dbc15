//! The per-invocation cost of the custom-handler protocol for a Service Bus message with a
//! 1 KiB body. Run with `cargo bench -p functions-runtime --bench invocation`.

use axum::body::Body;
use axum::http::{Request, StatusCode, header};
use bytes::Bytes;
use chrono::{TimeZone, Utc};
use divan::{Bencher, black_box};
use http_body_util::BodyExt;
use serde_json::{Map, Value, json};
use tower::ServiceExt;

use functions_runtime::encode::{self, ServiceBusDelivery};
use functions_runtime::triggers::ServiceBusMessage;
use functions_runtime::{FunctionApp, FunctionDecl, InvocationRequest, InvocationResponse};

fn main() {
    divan::main();
}

/// A 1 KiB JSON message body.
fn body() -> Vec<u8> {
    let head = r#"{"runId":"run_01J9Z8","step":2,"note":""#;
    let body = format!("{head}{}\"}}", "x".repeat(1024 - head.len() - 2));
    assert_eq!(body.len(), 1024);
    body.into_bytes()
}

fn delivery(body: &[u8]) -> ServiceBusDelivery<'_> {
    let mut props = Map::new();
    props.insert("tenant".into(), json!("tenant-42"));
    props.insert("attempt".into(), json!(1));
    ServiceBusDelivery {
        body,
        message_id: "run_01J9Z8-step-2",
        delivery_count: 1,
        sequence_number: 42,
        lock_token: "7a1d0c1e-5b64-4a8b-9f0e-0d5c1a2b3c4d",
        enqueued_time: Utc.with_ymd_and_hms(2025, 1, 15, 10, 0, 0).unwrap(),
        expires_at: None,
        content_type: Some("application/json"),
        correlation_id: Some("corr_01J9Z8"),
        session_id: Some("tenant-42"),
        subject: Some("step"),
        dead_letter_source: None,
        application_properties: props,
    }
}

/// The exact bytes the host POSTs for the message (`dataType: binary`).
fn invocation_bytes() -> Vec<u8> {
    let body = body();
    let now = Utc.with_ymd_and_hms(2025, 1, 15, 10, 0, 1).unwrap();
    let built = encode::service_bus_invocation("ProcessRun", "msg", true, &delivery(&body), now);
    serde_json::to_vec(&built).unwrap()
}

/// Handler side: parse the invocation, read the message, build and serialise the reply.
#[divan::bench]
fn decode_and_reply(bencher: Bencher<'_, '_>) {
    let bytes = invocation_bytes();
    bencher
        .counter(divan::counter::BytesCount::new(bytes.len()))
        .bench(|| {
            let msg = ServiceBusMessage::from_binary_invocation(black_box(&bytes), "msg").unwrap();
            let mut outputs = Map::new();
            outputs.insert("outMsg".into(), json!({ "processed": msg.message_id }));
            let reply = InvocationResponse {
                outputs,
                logs: vec![],
                return_value: Value::Null,
            };
            black_box(reply.to_bytes())
        });
}

/// The same through the generic JSON tree (`InvocationRequest`), for comparison.
#[divan::bench]
fn decode_generic_and_reply(bencher: Bencher<'_, '_>) {
    let bytes = invocation_bytes();
    bencher
        .counter(divan::counter::BytesCount::new(bytes.len()))
        .bench(|| {
            let req = InvocationRequest::parse(black_box(&bytes)).unwrap();
            let msg = ServiceBusMessage::from_invocation(&req, "msg", true).unwrap();
            let mut outputs = Map::new();
            outputs.insert("outMsg".into(), json!({ "processed": msg.message_id }));
            let reply = InvocationResponse {
                outputs,
                logs: vec![],
                return_value: Value::Null,
            };
            black_box(reply.to_bytes())
        });
}

/// Host side (local runner): build the invocation and serialise it.
#[divan::bench]
fn encode_invocation(bencher: Bencher<'_, '_>) {
    let body = body();
    let now = Utc.with_ymd_and_hms(2025, 1, 15, 10, 0, 1).unwrap();
    bencher.bench(|| {
        let built = encode::service_bus_invocation(
            "ProcessRun",
            "msg",
            true,
            &delivery(black_box(&body)),
            now,
        );
        black_box(serde_json::to_vec(&built).unwrap())
    });
}

/// The whole handler in-process: `POST /ProcessRun` through the router to a no-op handler
/// and back, on a current-thread runtime.
#[divan::bench]
fn router_round_trip(bencher: Bencher<'_, '_>) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let app = FunctionApp::new("bench")
        .function(FunctionDecl::queue("ProcessRun", "runs"), |_| async {
            Ok(InvocationResponse::default())
        });
    let router = app.router();
    let bytes = Bytes::from(invocation_bytes());
    bencher.bench_local(|| {
        rt.block_on(async {
            let req = Request::post("/ProcessRun")
                .header(header::CONTENT_TYPE, "application/json; charset=utf-8")
                .header(
                    "X-Azure-Functions-InvocationId",
                    "0f4737ff-5b49-4e1d-9639-e51aaca81bc6",
                )
                .body(Body::from(bytes.clone()))
                .unwrap();
            let resp = router.clone().oneshot(req).await.unwrap();
            assert_eq!(resp.status(), StatusCode::OK);
            black_box(resp.into_body().collect().await.unwrap().to_bytes())
        })
    });
}
