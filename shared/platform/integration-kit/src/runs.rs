//! Runs: `POST /api/integrations/runs` queues one operation against a connection (the
//! command goes out through the outbox with the run, so a run exists exactly when it is
//! queued); `GET /api/integrations/runs/{runId}` shows it with its `output`, and
//! `GET /api/integrations/runs/{runId}/output` serves the output alone (also one too large for
//! the run's document, kept in blob storage).
//!
//! The input is parsed as the operation's typed input here, once: a bad one is a 400
//! `invalid_input` with the field's JSON pointer.
//!
//! `Prefer: wait=N` (RFC 7240, N up to 60 seconds): the answer waits until the run is
//! finished, then is `200` with the run (and `Preference-Applied: wait`); a run not finished
//! by then is answered `202` as without the preference. Waiting changes nothing of the run:
//! it is queued and executed exactly as any other.
//!
//! Idempotency: with an `Idempotency-Key`, the run, an idempotency record (24 h TTL, id =
//! hash of the key) and the command are one batch. A second request with the key finds the
//! record and answers the same run; two concurrent ones race on creating the record, and the
//! loser answers the winner's run. A key reused for a different request is refused (422).

use std::time::Duration;

use api_kit::{ApiError, Caller, JsonBody};
use axum::Json;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::MethodRouter;
use axum::routing::{get, post};
use bytes::Bytes;
use chrono::Utc;
use domain::{IdempotencyKey, IntegrationRun, NewRun, OperationName, PayloadRef, RunId};
use envelope::{Envelope, TraceParent};
use functions_runtime::FunctionDecl;
use ports::{PortError, PutOptions, WriteOp};
use serde::Deserialize;
use serde_json::{Value, json};

use crate::connections::{read_connection, tenant_of};
use crate::store::{
    IDEMPOTENCY, IdempotencyRecord, RUN, StoredRun, idempotency_doc_id, request_fingerprint,
    run_doc_id,
};
use crate::{INPUT_CONTAINER, Kit, KitState, RUN_REQUESTED};

/// How long an idempotency key names its run.
const IDEMPOTENCY_TTL: Duration = Duration::from_secs(24 * 3600);

/// The run functions, each declared once with the code that answers it.
pub(crate) fn functions(state: &KitState) -> Vec<(FunctionDecl, MethodRouter)> {
    // The body may carry the largest input of the app's operations, with its envelope
    // (axum's own default is 2 MB); each operation's own limit is checked on the input.
    let largest = state
        .0
        .app
        .operations
        .iter()
        .map(|o| o.max_input)
        .max()
        .unwrap_or(crate::DEFAULT_MAX_INPUT_BYTES);
    vec![
        (
            FunctionDecl::http("StartRun", "integrations/runs", &["post"])
                .api(crate::start_run_api(&state.0.app)),
            post(start)
                .with_state(state.clone())
                .layer(axum::extract::DefaultBodyLimit::max(largest + 1024 * 1024)),
        ),
        (
            FunctionDecl::http("GetRun", "integrations/runs/{runId}", &["get"]),
            get(show).with_state(state.clone()),
        ),
        (
            FunctionDecl::http("GetRunOutput", "integrations/runs/{runId}/output", &["get"]),
            get(output).with_state(state.clone()),
        ),
    ]
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct RunIn {
    connection_id: String,
    operation: String,
    #[serde(default)]
    input: Value,
}

/// The command that asks the executor to run `run`.
#[derive(Debug, Clone, serde::Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct RunRequested {
    pub(crate) run_id: RunId,
}

pub(crate) fn command(
    kit: &Kit,
    tenant: &str,
    run_id: RunId,
    id: Option<String>,
    traceparent: Option<TraceParent>,
) -> Result<Envelope, envelope::EnvelopeError> {
    let mut b =
        Envelope::builder(kit.app.source, RUN_REQUESTED, tenant).subject(format!("runs/{run_id}"));
    if let Some(id) = id {
        b = b.id(id);
    }
    if let Some(tp) = traceparent {
        b = b.traceparent(tp);
    }
    b.json_data(&RunRequested { run_id })
}

pub(crate) fn input_blob(tenant: &str, run: &RunId) -> String {
    format!("{tenant}/{run}")
}

pub(crate) async fn read_input(kit: &Kit, tenant: &str, run: &RunId) -> Result<Value, PortError> {
    let (bytes, _) = kit
        .ctx
        .blobs
        .get(INPUT_CONTAINER, &input_blob(tenant, run))
        .await?;
    serde_json::from_slice(&bytes)
        .map_err(|e| PortError::Invalid(format!("a run's input is not JSON: {e}")))
}

fn accepted(run: &IntegrationRun) -> Response {
    (
        StatusCode::ACCEPTED,
        [(
            header::LOCATION,
            format!("/api/integrations/runs/{}", run.id()),
        )],
        Json(json!({"runId": run.id(), "status": run.status().as_str()})),
    )
        .into_response()
}

/// `POST /api/integrations/runs`: the request checked, an earlier run of its idempotency
/// key answered, else a new run queued (and, when the caller waits, executed here).
async fn start(
    State(KitState(kit)): State<KitState>,
    caller: Caller,
    headers: HeaderMap,
    JsonBody(body): JsonBody<RunIn>,
) -> Result<Response, ApiError> {
    let tenant = tenant_of(&caller)?;
    let request = RunRequest::read(&kit, &headers, &body)?;
    if let Some(key) = &request.key
        && let Some(run) = existing_run(&kit, tenant.as_str(), key, &request.fingerprint).await?
    {
        return answer(&kit, tenant.as_str(), &run, request.wait).await;
    }
    let connection =
        usable_connection(&kit, &tenant, &body.connection_id, request.operation).await?;
    queue(&kit, &tenant, &headers, request, connection, body.input).await
}

/// A run request, checked: everything but the connection.
struct RunRequest {
    key: Option<IdempotencyKey>,
    operation: &'static str,
    /// The input as received (the typed one was checked), for blob storage.
    input: Bytes,
    fingerprint: String,
    wait: Option<Duration>,
}

impl RunRequest {
    fn read(kit: &Kit, headers: &HeaderMap, body: &RunIn) -> Result<RunRequest, ApiError> {
        let key = match headers.get("idempotency-key") {
            None => None,
            Some(v) => Some(
                v.to_str()
                    .ok()
                    .and_then(|s| IdempotencyKey::parse(s).ok())
                    .ok_or_else(|| {
                        ApiError::bad_request(
                            "invalid_idempotency_key",
                            "Idempotency-Key must be 1 to 255 printable ASCII characters",
                        )
                    })?,
            ),
        };
        let operation = kit.operation(&body.operation).ok_or_else(|| {
            let known: Vec<_> = kit.app.operations.iter().map(|o| o.name).collect();
            ApiError::bad_request(
                "unknown_operation",
                format!("the {} app offers {}", kit.app.slug, known.join(", ")),
            )
        })?;
        (operation.check)(&body.input).map_err(|e| ApiError::InvalidField {
            code: "invalid_input",
            detail: e.to_string(),
            pointer: e.pointer(),
        })?;
        let input = Bytes::from(serde_json::to_vec(&body.input).map_err(ApiError::internal)?);
        if input.len() > operation.max_input {
            return Err(ApiError::bad_request(
                "input_too_large",
                format!(
                    "the input is {} bytes; {} takes at most {} bytes",
                    input.len(),
                    operation.name,
                    operation.max_input
                ),
            ));
        }
        Ok(RunRequest {
            key,
            operation: operation.name,
            fingerprint: request_fingerprint(&body.connection_id, &body.operation, &input),
            input,
            wait: preferred_wait(headers),
        })
    }
}

/// The caller's connection, if this app serves its provider, the provider performs
/// `operation`, and the connection is established.
async fn usable_connection(
    kit: &Kit,
    tenant: &domain::TenantId,
    id: &str,
    operation: &str,
) -> Result<domain::IntegrationConnection, ApiError> {
    let (connection, _) = read_connection(kit, tenant.as_str(), id).await?;
    let provider = connection.provider_key().as_str();
    if kit.provider(provider).is_none() {
        return Err(ApiError::not_found("the connection"));
    }
    if kit.handler(provider, operation).is_none() {
        return Err(ApiError::bad_request(
            "unsupported_operation",
            format!("the connection's provider {provider} does not perform {operation}"),
        ));
    }
    if !connection.is_usable() {
        return Err(ApiError::Conflict(format!(
            "the connection is {}; only established connections run operations",
            connection.status().as_str()
        )));
    }
    Ok(connection)
}

/// Queues a new run: its input in blob storage, then the run, its idempotency record and
/// its command in one batch. A concurrent request with the same key that won the race is
/// the answer instead.
async fn queue(
    kit: &Kit,
    tenant: &domain::TenantId,
    headers: &HeaderMap,
    request: RunRequest,
    connection: domain::IntegrationConnection,
    input_value: Value,
) -> Result<Response, ApiError> {
    let RunRequest {
        key,
        operation,
        input,
        fingerprint,
        wait,
    } = request;
    let traceparent = headers
        .get("traceparent")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| TraceParent::parse(v).ok())
        .unwrap_or_else(TraceParent::new_root);
    let trace_id = domain::TraceId::from_bytes(traceparent.trace_id().to_bytes())
        .map_err(ApiError::internal)?;
    let id = RunId::new();
    let blob = input_blob(tenant.as_str(), &id);
    kit.ctx
        .blobs
        .put(
            INPUT_CONTAINER,
            &blob,
            input,
            PutOptions {
                content_type: Some("application/json".into()),
                if_none_match: true,
            },
        )
        .await
        .map_err(|e| ApiError::from_port(e, "conflict"))?;
    let run = IntegrationRun::queue(
        NewRun {
            tenant_id: tenant.clone(),
            id,
            connection_id: connection.id(),
            provider_key: connection.provider_key().clone(),
            operation: OperationName::parse(operation).map_err(ApiError::internal)?,
            input_ref: PayloadRef::parse(&format!("{INPUT_CONTAINER}/{blob}"))
                .map_err(ApiError::internal)?,
            idempotency_key: key.clone(),
            trace_id,
        },
        Utc::now(),
    );
    let mut stored = StoredRun::new(run);
    stored.request = fingerprint.clone();
    // A waited run is executed by this request, so it is committed already started (its
    // first attempt `running`): the executor's rule that the vendor is called only once
    // `running` is durable holds, one commit sooner.
    if wait.is_some() {
        stored.run.start(Utc::now()).map_err(ApiError::internal)?;
    }
    let command = command(kit, tenant.as_str(), id, None, Some(traceparent))
        .map_err(|e| ApiError::internal(format!("a run command did not make an envelope: {e}")))?;
    let mut ops = vec![
        WriteOp::create(
            run_doc_id(&id),
            api_kit::Aggregates::document(&stored, RUN)?,
        ),
        // A waited run is executed by this request; its command is the backup, due once
        // this request's attempt cannot be in flight any more (so the consumer does not
        // race the attempt it would only find running).
        outbox::outbox_write_at(
            &command,
            &app_context::runs_queue(kit.app.slug),
            wait.map(|_| Utc::now() + crate::executor::in_flight_for(kit)),
        ),
    ];
    if let Some(key) = &key {
        let record = IdempotencyRecord {
            run_id: id,
            request: fingerprint.clone(),
        };
        ops.push(
            WriteOp::create(
                idempotency_doc_id(key.as_str()),
                api_kit::Aggregates::document(&record, IDEMPOTENCY)?,
            )
            .with_ttl(IDEMPOTENCY_TTL),
        );
    }
    match kit
        .ctx
        .documents
        .batch(kit.app.slug, tenant.as_str(), ops)
        .await
        .map_err(|e| ApiError::from_port(e, "conflict"))
    {
        Ok(etags) => {
            kit.ctx.outbox_committed();
            tracing::info!(tenant = %tenant, run = %id, operation, "run queued");
            let Some(Some(etag)) = etags.into_iter().next().filter(|_| wait.is_some()) else {
                return answer(kit, tenant.as_str(), &stored.run, wait).await;
            };
            let run = stored.run.clone();
            let started = Started {
                stored,
                etag,
                connection,
                input: input_value,
            };
            match execute_now(kit, tenant, started, &traceparent).await {
                Some(done) if done.run.status().is_terminal() => Ok(finished_answer(&done)),
                _ => answer(kit, tenant.as_str(), &run, wait).await,
            }
        }
        Err(ApiError::Conflict(_)) if key.is_some() => {
            let _ = kit.ctx.blobs.delete(INPUT_CONTAINER, &blob).await;
            let key = key
                .as_ref()
                .ok_or_else(|| ApiError::internal("a key conflict without a key"))?;
            match existing_run(kit, tenant.as_str(), key, &fingerprint).await? {
                Some(run) => answer(kit, tenant.as_str(), &run, wait).await,
                None => Err(ApiError::Unavailable),
            }
        }
        Err(e) => Err(e),
    }
}

/// A caller waiting for its new run: it is executed here at once, in this request, instead
/// of after the bus hands its command to `ExecuteRun`. The guarantees are the executor's
/// own: the run was committed `running` (its etag guards the outcome) before the vendor is
/// called, so the backup command on the bus finds the run started or finished and calls no
/// one; if this process dies mid-call, that command recovers the run as after any crash.
/// The connection and input the request has already read are handed over, not read again.
/// Answers the run as its outcome was committed.
async fn execute_now(
    kit: &Kit,
    tenant: &domain::TenantId,
    started: Started,
    traceparent: &TraceParent,
) -> Option<StoredRun> {
    let run = started.stored.run.id();
    let e = match crate::executor::execute_started(kit, tenant, started, traceparent).await {
        Ok(done) => return Some(done),
        Err(e) => e,
    };
    // The run is left to the bus: now, not when the backup command is due.
    tracing::info!(tenant = %tenant, run = %run, error = ?e, "a waited run is left to the bus");
    let now = self::command(kit, tenant.as_str(), run, Some(format!("now-{run}")), None).ok()?;
    let write = outbox::outbox_write(&now, &app_context::runs_queue(kit.app.slug));
    if kit
        .ctx
        .documents
        .batch(kit.app.slug, tenant.as_str(), vec![write])
        .await
        .is_ok()
    {
        kit.ctx.outbox_committed();
    }
    None
}

/// The longest `Prefer: wait` honoured.
const MAX_WAIT: Duration = Duration::from_secs(60);

/// The `wait` preference (RFC 7240 §4.3) in seconds, at most [`MAX_WAIT`]; `None` without one
/// (or with `wait=0`, or a value that is not a number, which is ignored as RFC 7240 asks of
/// preferences a server does not understand).
fn preferred_wait(headers: &HeaderMap) -> Option<Duration> {
    headers
        .get_all("prefer")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .filter_map(|pref| {
            // A preference's parameters follow `;`; `wait` has none of its own.
            let pref = pref.split(';').next()?.trim();
            let (name, value) = pref.split_once('=')?;
            if !name.trim().eq_ignore_ascii_case("wait") {
                return None;
            }
            value.trim().trim_matches('"').parse::<u64>().ok()
        })
        .next()
        .filter(|n| *n > 0)
        .map(|n| Duration::from_secs(n).min(MAX_WAIT))
}

/// The answer to a run request: `202` at once, or with `Prefer: wait`, `200` with the run
/// once it is finished within the wait.
async fn answer(
    kit: &Kit,
    tenant: &str,
    run: &IntegrationRun,
    wait: Option<Duration>,
) -> Result<Response, ApiError> {
    let Some(wait) = wait else {
        return Ok(accepted(run));
    };
    if let Some(done) = finished(kit, tenant, &run.id(), wait).await? {
        return Ok(finished_answer(&done));
    }
    Ok(accepted(run))
}

/// What a waited run's request has read and committed, handed to the executor.
pub(crate) struct Started {
    /// The run as committed `running`, and its etag.
    pub(crate) stored: StoredRun,
    pub(crate) etag: ports::ETag,
    pub(crate) connection: domain::IntegrationConnection,
    /// The input as received (its typed form was checked).
    pub(crate) input: Value,
}

/// `200` with a finished run, as `Prefer: wait` asked.
fn finished_answer(done: &StoredRun) -> Response {
    (
        StatusCode::OK,
        [
            (
                header::CONTENT_LOCATION,
                format!("/api/integrations/runs/{}", done.run.id()),
            ),
            (
                header::HeaderName::from_static("preference-applied"),
                "wait".to_owned(),
            ),
        ],
        Json(run_out(done)),
    )
        .into_response()
}

/// How often a waiting request reads the run when no signal comes (a run executed by
/// another instance): from 50 ms, doubling to 1 s.
const FIRST_LOOK: Duration = Duration::from_millis(50);
const SLOWEST_LOOK: Duration = Duration::from_secs(1);

/// The run once it is finished, if that happens within `wait`.
async fn finished(
    kit: &Kit,
    tenant: &str,
    run: &RunId,
    wait: Duration,
) -> Result<Option<StoredRun>, ApiError> {
    let deadline = tokio::time::Instant::now() + wait;
    let subscription = kit.signals.subscribe(*run);
    let mut look = FIRST_LOOK;
    loop {
        // Made before the read, so a finish between the read and the sleep still wakes us.
        let signal = subscription.notify.notified();
        let stored = kit
            .store
            .read::<StoredRun>(&kit.ctx, tenant, &run_doc_id(run))
            .await?
            .ok_or_else(|| ApiError::internal("a waited run vanished"))?
            .0;
        if stored.run.status().is_terminal() {
            return Ok(Some(stored));
        }
        let now = tokio::time::Instant::now();
        if now >= deadline {
            return Ok(None);
        }
        let sleep = look.min(deadline - now);
        look = (look * 2).min(SLOWEST_LOOK);
        tokio::select! {
            () = signal => {}
            () = tokio::time::sleep(sleep) => {}
        }
    }
}

/// The run an idempotency key started, if the key is known; a different request under
/// the same key is refused.
async fn existing_run(
    kit: &Kit,
    tenant: &str,
    key: &IdempotencyKey,
    fingerprint: &str,
) -> Result<Option<IntegrationRun>, ApiError> {
    let Some((record, _)) = kit
        .store
        .read::<IdempotencyRecord>(&kit.ctx, tenant, &idempotency_doc_id(key.as_str()))
        .await?
    else {
        return Ok(None);
    };
    if record.request != fingerprint {
        return Err(ApiError::unprocessable(
            "idempotency_key_reused",
            "this Idempotency-Key was used for a different request in the last 24 hours",
        ));
    }
    let run = kit
        .store
        .read::<StoredRun>(&kit.ctx, tenant, &run_doc_id(&record.run_id))
        .await?
        .ok_or_else(|| ApiError::internal("an idempotency record names no run"))?;
    Ok(Some(run.0.run))
}

pub(crate) fn run_out(stored: &StoredRun) -> Value {
    let mut v = serde_json::to_value(&stored.run).unwrap_or_default();
    if let Value::Object(m) = &mut v {
        let id = stored.run.id();
        m.insert("runId".into(), json!(id));
        m.insert("servedBy".into(), json!(stored.served_by));
        m.insert("servedByProvider".into(), json!(stored.served_by_provider));
        m.insert("failovers".into(), json!(stored.failovers));
        m.insert("delivery".into(), json!(stored.delivery));
        m.insert(
            "output".into(),
            stored.output.clone().unwrap_or(Value::Null),
        );
        if stored.output_ref.is_some() {
            // Too large to show here: served by its own route.
            m.insert(
                "outputUrl".into(),
                json!(format!("/api/integrations/runs/{id}/output")),
            );
        }
        if let Some(w) = &stored.waiting {
            m.insert(
                "waiting".into(),
                json!({
                    "since": w.since,
                    "deadline": w.deadline,
                    "nextCheck": w.next_check,
                    "checks": w.checks,
                }),
            );
        }
    }
    v
}

/// Where a large output is kept, within [`crate::OUTPUT_CONTAINER`].
pub(crate) fn output_blob(tenant: &str, run: &RunId) -> String {
    format!("{tenant}/{run}")
}

/// The largest output that is its own summary (the summary rides on
/// `IntegrationRunCompleted`, so it stays small).
const SUMMARY_OUTPUT: usize = 2 * 1024;

/// A run's summary when the provider gave none: the output itself when it is a small
/// object, else an empty object (the output is on the run).
pub(crate) fn summary_of(output: &Value, encoded_len: usize) -> Value {
    match output {
        Value::Object(_) if encoded_len <= SUMMARY_OUTPUT => output.clone(),
        _ => json!({}),
    }
}

/// `GET /api/integrations/runs/{runId}/output`: the finished run's output, from the run's
/// document or from blob storage; 404 while the run has none.
async fn output(
    State(KitState(kit)): State<KitState>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    let id = RunId::parse(&id).map_err(|_| ApiError::not_found("the run"))?;
    let (stored, _) = kit
        .store
        .read::<StoredRun>(&kit.ctx, caller.tenant_id(), &run_doc_id(&id))
        .await?
        .ok_or_else(|| ApiError::not_found("the run"))?;
    if stored.output_ref.is_some() {
        let (bytes, _) = kit
            .ctx
            .blobs
            .get(
                crate::OUTPUT_CONTAINER,
                &output_blob(caller.tenant_id(), &id),
            )
            .await
            .map_err(|e| ApiError::from_port(e, "conflict"))?;
        return Ok((
            StatusCode::OK,
            [(header::CONTENT_TYPE, "application/json")],
            bytes,
        )
            .into_response());
    }
    match &stored.output {
        Some(output) => Ok(Json(output).into_response()),
        None => Err(ApiError::NotFound(format!(
            "the run has no output (it is {})",
            stored.run.status().as_str()
        ))),
    }
}

async fn show(
    State(KitState(kit)): State<KitState>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    let id = RunId::parse(&id).map_err(|_| ApiError::not_found("the run"))?;
    let (stored, _) = kit
        .store
        .read::<StoredRun>(&kit.ctx, caller.tenant_id(), &run_doc_id(&id))
        .await?
        .ok_or_else(|| ApiError::not_found("the run"))?;
    Ok(Json(run_out(&stored)).into_response())
}
