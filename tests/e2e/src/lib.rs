//! `probe`: a test-only Function App with one function of each trigger kind, used to prove
//! the runtime and the runner end to end. It is never part of a production build.
//!
//! - `POST /api/messages {id, fail?}` (bearer token) sends a command to `runs-probe`;
//!   `ProcessMessage` (Service Bus) records it, failing its first `fail` deliveries;
//!   `GET /api/messages/{id}` reads the record.
//! - `POST /api/events {id}` commits a document and a `probe.recorded` event through the
//!   outbox; `RecordEvent` (topic subscription) records each event it receives;
//!   `GET /api/events/{eventId}` reads that.
//! - `Tick` (timer, schedule from the `PROBE_SCHEDULE` setting) counts its firings;
//!   `GET /api/ticks` reads the count.
//! - While the file named by the `PROBE_HOLD_FILE` setting exists, `ProcessMessage` holds
//!   its messages in flight (to kill the process mid-invocation).

use std::time::Duration;

use api_kit::Caller;
use app_context::{AppContext, AppRegistration, EVENTS_TOPIC, runs_queue};
use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use functions_runtime::problem::problem;
use functions_runtime::{
    FunctionApp, FunctionDecl, Invocation, InvocationError, InvocationResponse,
};
use ports::{
    DocumentStoreExt as _, EntitySpec, Filter, OutgoingMessage, PortError, SubscriptionSpec,
    WriteOp,
};
use serde_json::{Value, json};

pub const SLUG: &str = "probe";
const CONTAINER: &str = "probe";

pub fn registration() -> AppRegistration {
    AppRegistration {
        slug: SLUG,
        build: |ctx| Ok(build(ctx)),
        containers: &[CONTAINER],
        reads: &[],
        subscriptions: || {
            vec![(
                EVENTS_TOPIC.to_owned(),
                SubscriptionSpec {
                    name: SLUG.into(),
                    filter: Filter::PropertyPrefix {
                        name: "type".into(),
                        prefix: "connectsoft.integration.probe.".into(),
                    },
                    spec: EntitySpec::default(),
                },
            )]
        },
        has_runs_queue: true,
        catalogue: &[],
    }
}

fn build(ctx: &AppContext) -> FunctionApp {
    let routes = axum::Router::new()
        .route("/api/messages", post(send_message))
        .route("/api/messages/{id}", get(read_record))
        .route("/api/events", post(record_with_event))
        .route("/api/events/{id}", get(read_record))
        .route("/api/ticks", get(read_ticks))
        .with_state(ctx.clone());
    let c1 = ctx.clone();
    let c2 = ctx.clone();
    let c3 = ctx.clone();
    FunctionApp::new(SLUG)
        .http_routes(routes)
        .http_function(FunctionDecl::http("SendMessage", "messages", &["post"]))
        .http_function(FunctionDecl::http("ReadMessage", "messages/{id}", &["get"]))
        .http_function(FunctionDecl::http("RecordWithEvent", "events", &["post"]))
        .http_function(FunctionDecl::http("ReadEvent", "events/{id}", &["get"]))
        .http_function(FunctionDecl::http("ReadTicks", "ticks", &["get"]))
        .function(
            FunctionDecl::queue("ProcessMessage", &runs_queue(SLUG)),
            move |inv| process_message(c1.clone(), inv),
        )
        .function(
            FunctionDecl::subscription("RecordEvent", EVENTS_TOPIC, SLUG),
            move |inv| record_event(c2.clone(), inv),
        )
        .function(
            FunctionDecl::timer("Tick", "%PROBE_SCHEDULE%"),
            move |inv| tick(c3.clone(), inv),
        )
}

fn port_error(e: PortError) -> Response {
    problem(
        StatusCode::SERVICE_UNAVAILABLE,
        "store_unavailable",
        &e.to_string(),
    )
}

async fn send_message(
    State(ctx): State<AppContext>,
    caller: Caller,
    Json(body): Json<Value>,
) -> Response {
    let tenant = caller.tenant_id().to_owned();
    let Some(id) = body.get("id").and_then(Value::as_str) else {
        return problem(StatusCode::BAD_REQUEST, "invalid_body", "id is required");
    };
    let message = OutgoingMessage::new(id, body.to_string().into_bytes())
        .content_type("application/json")
        .property("tenantId", tenant.as_str());
    match ctx.bus.send(&runs_queue(SLUG), vec![message]).await {
        Ok(()) => (StatusCode::ACCEPTED, Json(json!({"id": id}))).into_response(),
        Err(e) => port_error(e),
    }
}

async fn read_record(
    State(ctx): State<AppContext>,
    caller: Caller,
    Path(id): Path<String>,
) -> Response {
    let tenant = caller.tenant_id().to_owned();
    match ctx
        .documents
        .read(CONTAINER, &tenant, &format!("record-{id}"))
        .await
    {
        Ok(Some(doc)) => Json(doc.body).into_response(),
        Ok(None) => problem(StatusCode::NOT_FOUND, "not_found", "no such record"),
        Err(e) => port_error(e),
    }
}

async fn record_with_event(
    State(ctx): State<AppContext>,
    caller: Caller,
    Json(body): Json<Value>,
) -> Response {
    let tenant = caller.tenant_id().to_owned();
    let Some(id) = body.get("id").and_then(Value::as_str) else {
        return problem(StatusCode::BAD_REQUEST, "invalid_body", "id is required");
    };
    let event = match envelope::Envelope::builder(
        "/integration/probe",
        "connectsoft.integration.probe.recorded.v1",
        &tenant,
    )
    .subject(format!("things/{id}"))
    .json_data(&json!({"thingId": id}))
    {
        Ok(e) => e,
        Err(e) => return problem(StatusCode::BAD_REQUEST, "invalid_event", &e.to_string()),
    };
    let ops = vec![
        WriteOp::create(format!("thing-{id}"), json!({"id": id})),
        outbox::outbox_write(&event, EVENTS_TOPIC),
    ];
    match ctx.documents.batch(CONTAINER, &tenant, ops).await {
        Ok(_) => {
            ctx.outbox_waker.notify_one();
            (
                StatusCode::ACCEPTED,
                Json(json!({"id": id, "eventId": event.id()})),
            )
                .into_response()
        }
        Err(PortError::AlreadyExists) => {
            problem(StatusCode::CONFLICT, "duplicate", "that id exists")
        }
        Err(e) => port_error(e),
    }
}

async fn read_ticks(State(ctx): State<AppContext>) -> Response {
    match ctx.documents.read(CONTAINER, "platform", "ticks").await {
        Ok(Some(doc)) => Json(doc.body).into_response(),
        Ok(None) => Json(json!({"count": 0})).into_response(),
        Err(e) => port_error(e),
    }
}

fn transient(e: impl std::fmt::Display) -> InvocationError {
    InvocationError::transient(e.to_string())
}

async fn process_message(
    ctx: AppContext,
    inv: Invocation,
) -> Result<InvocationResponse, InvocationError> {
    let msg = inv.service_bus()?;
    let body: Value =
        serde_json::from_slice(&msg.body).map_err(|e| InvocationError::permanent(e.to_string()))?;
    let tenant = msg
        .property("tenantId")
        .ok_or_else(|| InvocationError::permanent("no tenantId"))?;
    let id = body
        .get("id")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_owned();
    let started = json!({"id": id, "deliveryCount": msg.delivery_count});
    ctx.documents
        .upsert(CONTAINER, &tenant, &format!("started-{id}"), started)
        .await
        .map_err(transient)?;
    if let Some(hold) = ctx.setting("PROBE_HOLD_FILE") {
        while std::path::Path::new(hold).exists() {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
    let fail = body.get("fail").and_then(Value::as_u64).unwrap_or(0);
    if u64::from(msg.delivery_count) <= fail {
        return Err(InvocationError::transient(format!(
            "failing delivery {} on purpose",
            msg.delivery_count
        )));
    }
    let record = json!({
        "id": id,
        "messageId": msg.message_id,
        "deliveryCount": msg.delivery_count,
        "invocationId": inv.invocation_id,
        "body": body,
    });
    ctx.documents
        .upsert(CONTAINER, &tenant, &format!("record-{id}"), record)
        .await
        .map_err(transient)?;
    Ok(InvocationResponse::default())
}

async fn record_event(
    ctx: AppContext,
    inv: Invocation,
) -> Result<InvocationResponse, InvocationError> {
    let msg = inv.service_bus()?;
    let event = envelope::Envelope::parse(&msg.body)
        .map_err(|e| InvocationError::permanent(e.to_string()))?;
    let record = json!({
        "eventId": event.id(),
        "type": event.event_type(),
        "messageId": msg.message_id,
        "subject": msg.subject,
        "data": event.data_json::<Value>().ok(),
    });
    // Idempotent on the event id: a redelivery overwrites the same record.
    ctx.documents
        .upsert(
            CONTAINER,
            event.tenant_id(),
            &format!("record-{}", event.id()),
            record,
        )
        .await
        .map_err(transient)?;
    Ok(InvocationResponse::default())
}

async fn tick(ctx: AppContext, inv: Invocation) -> Result<InvocationResponse, InvocationError> {
    let info = inv.timer()?;
    // Optimistic concurrency: re-read and retry on a conflicting write.
    for _ in 0..10 {
        let current = ctx
            .documents
            .read(CONTAINER, "platform", "ticks")
            .await
            .map_err(transient)?;
        let (count, etag) = match &current {
            Some(d) => (d.body["count"].as_u64().unwrap_or(0), Some(d.etag.clone())),
            None => (0, None),
        };
        let body = json!({"count": count + 1, "lastPastDue": info.is_past_due, "last": info.last.map(|t| t.to_rfc3339())});
        let op = match etag {
            Some(e) => WriteOp::replace("ticks", body, Some(e)),
            None => WriteOp::create("ticks", body),
        };
        match ctx.documents.batch(CONTAINER, "platform", vec![op]).await {
            Ok(_) => return Ok(InvocationResponse::default()),
            Err(PortError::PreconditionFailed | PortError::AlreadyExists) => continue,
            Err(e) => return Err(transient(e)),
        }
    }
    Err(InvocationError::transient(
        "too much contention on the tick counter",
    ))
}
