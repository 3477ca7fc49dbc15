//! The runner's trigger loops: Service Bus consumers and timers, each calling the app's
//! handler with the exact invocation body the Functions host would send (built by
//! `functions_runtime::encode`, the encoder the conformance tests use).

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::extract::Request;
use axum::http::{Method, header};
use chrono::{DateTime, Utc};
use functions_runtime::encode::{self, ScheduleStatus, ServiceBusDelivery};
use functions_runtime::ncrontab::Schedule;
use http_body_util::BodyExt as _;
use ports::{BrokerReceiver, DocumentStore, DocumentStoreExt as _, Entity, ReceivedMessage};
use serde_json::{Map, Value, json};
use tokio::sync::{Semaphore, watch};
use tower::ServiceExt as _;

use crate::front::HOST_VERSION;

/// Why an invocation did not succeed, as the host would judge it.
#[derive(Debug, PartialEq)]
pub(crate) enum Outcome {
    Success,
    Failed(String),
    TimedOut,
}

/// POSTs one invocation body to `/<function>` and judges the reply as the host does: 2xx,
/// `application/json`, a non-empty JSON object.
pub(crate) async fn invoke(
    router: &Router,
    function: &str,
    body: &Value,
    timeout: Duration,
) -> Outcome {
    let invocation_id = uuid::Uuid::new_v4().to_string();
    let request = Request::builder()
        .method(Method::POST)
        .uri(format!("/{function}"))
        .header(header::CONTENT_TYPE, "application/json; charset=utf-8")
        .header("x-azure-functions-invocationid", &invocation_id)
        .header("x-azure-functions-hostversion", HOST_VERSION)
        .header(
            header::USER_AGENT,
            format!("Azure-Functions-Host/{HOST_VERSION}"),
        )
        .body(Body::from(serde_json::to_vec(body).unwrap_or_default()));
    let Ok(request) = request else {
        return Outcome::Failed("the invocation request could not be built".into());
    };
    let call = async {
        let response = match router.clone().oneshot(request).await {
            Ok(r) => r,
            Err(never) => match never {},
        };
        let status = response.status();
        let json_type = response
            .headers()
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.starts_with("application/json") || v.starts_with("text/json"));
        let bytes = response
            .into_body()
            .collect()
            .await
            .map(|b| b.to_bytes())
            .unwrap_or_default();
        if !status.is_success() {
            return Outcome::Failed(format!("the handler answered {status}"));
        }
        if bytes.is_empty() {
            // The real host would wait for the function timeout here and restart the handler.
            tracing::error!(%function, "the handler answered 2xx with an EMPTY body: the Functions host would hang until functionTimeout");
            return Outcome::Failed("empty 2xx reply".into());
        }
        if !json_type {
            return Outcome::Failed("the reply is not application/json".into());
        }
        match serde_json::from_slice::<Value>(&bytes) {
            Ok(Value::Object(reply)) => {
                // The host writes each entry of `Logs` as an information log of the invocation.
                let logs = reply
                    .iter()
                    .find(|(k, _)| k.eq_ignore_ascii_case("logs"))
                    .and_then(|(_, v)| v.as_array());
                for line in logs.into_iter().flatten().filter_map(Value::as_str) {
                    tracing::info!(%function, %invocation_id, "{line}");
                }
                Outcome::Success
            }
            _ => Outcome::Failed("the reply is not a JSON object".into()),
        }
    };
    match tokio::time::timeout(timeout, call).await {
        Ok(outcome) => outcome,
        Err(_) => Outcome::TimedOut,
    }
}

pub(crate) struct ConsumerConfig {
    pub(crate) function: String,
    pub(crate) binding: String,
    pub(crate) entity: Entity,
    pub(crate) max_concurrent: usize,
    pub(crate) timeout: Duration,
    pub(crate) lock_renew_every: Duration,
}

/// Receives from `entity` and invokes the function per message: complete on success,
/// abandon on failure (immediate redelivery with a higher delivery count; the broker
/// dead-letters after the maximum), like the Service Bus trigger with autoComplete.
pub(crate) async fn consume(
    router: Router,
    broker: Arc<dyn BrokerReceiver>,
    cfg: ConsumerConfig,
    mut stop: watch::Receiver<bool>,
) {
    let cfg = Arc::new(cfg);
    let permits = Arc::new(Semaphore::new(cfg.max_concurrent));
    // Every invocation's task, until its message is settled (after its slot is given back).
    let mut running = tokio::task::JoinSet::new();
    loop {
        while running.try_join_next().is_some() {}
        if *stop.borrow() {
            break;
        }
        let free = permits.available_permits();
        if free == 0 {
            // Wait for an invocation to finish.
            let _ = tokio::select! {
                p = permits.clone().acquire_owned() => p.map(drop),
                _ = stop.changed() => Ok(()),
            };
            continue;
        }
        let batch = match broker.receive(&cfg.entity, free).await {
            Ok(b) => b,
            Err(e) => {
                tracing::warn!(entity = %cfg.entity.path(), error = %e, "receive failed; retrying");
                tokio::time::sleep(Duration::from_millis(500)).await;
                continue;
            }
        };
        if batch.is_empty() {
            tokio::select! {
                _ = broker.wait_for_messages(&cfg.entity, Duration::from_secs(1)) => {},
                _ = stop.changed() => {},
            }
            continue;
        }
        for message in batch {
            let Ok(permit) = permits.clone().acquire_owned().await else {
                break;
            };
            let (router, broker, cfg) = (router.clone(), broker.clone(), cfg.clone());
            running.spawn(async move {
                deliver(&router, broker.as_ref(), &cfg, message, permit).await;
            });
        }
    }
    // Let in-flight invocations finish and settle their messages.
    while running.join_next().await.is_some() {}
}

fn properties_object(m: &ReceivedMessage) -> Map<String, Value> {
    m.message
        .application_properties
        .iter()
        .map(|(k, v)| (k.clone(), serde_json::to_value(v).unwrap_or(Value::Null)))
        .collect()
}

/// Invokes the function with `m` and settles it. `permit` (the invocation's slot) is given
/// back as soon as the function has answered, before the settlement commits: the message
/// stays locked until then, so nothing else can take it, and a settlement that is lost (the
/// process dies first) only means a redelivery, which consumers are idempotent to. Holding
/// the slot through one more commit made every invocation wait for two.
async fn deliver(
    router: &Router,
    broker: &dyn BrokerReceiver,
    cfg: &ConsumerConfig,
    m: ReceivedMessage,
    permit: tokio::sync::OwnedSemaphorePermit,
) {
    let delivery = ServiceBusDelivery {
        body: &m.message.body,
        message_id: &m.message.message_id,
        delivery_count: m.delivery_count,
        sequence_number: m.sequence_number,
        lock_token: &m.lock_token,
        enqueued_time: m.enqueued_time,
        expires_at: m.expires_at,
        content_type: m.message.content_type.as_deref(),
        correlation_id: m.message.correlation_id.as_deref(),
        session_id: m.message.session_id.as_deref(),
        subject: m.message.subject.as_deref(),
        dead_letter_source: m.dead_letter_source.as_deref(),
        application_properties: properties_object(&m),
    };
    let body =
        encode::service_bus_invocation(&cfg.function, &cfg.binding, true, &delivery, Utc::now());
    // Renew the lock while the function runs, as the trigger's auto-renewal does.
    let renew = async {
        loop {
            tokio::time::sleep(cfg.lock_renew_every).await;
            if broker.renew_lock(&cfg.entity, &m.lock_token).await.is_err() {
                break;
            }
        }
    };
    let outcome = tokio::select! {
        o = invoke(router, &cfg.function, &body, cfg.timeout) => o,
        _ = renew => Outcome::Failed("the message lock was lost".into()),
    };
    drop(permit);
    let settle = match &outcome {
        Outcome::Success => broker.complete(&cfg.entity, &m.lock_token).await,
        Outcome::Failed(why) => {
            tracing::warn!(function = %cfg.function, message_id = %m.message.message_id, delivery_count = m.delivery_count, reason = %why, "invocation failed; abandoning for redelivery");
            broker.abandon(&cfg.entity, &m.lock_token).await
        }
        Outcome::TimedOut => {
            tracing::error!(function = %cfg.function, message_id = %m.message.message_id, "invocation timed out; abandoning for redelivery");
            broker.abandon(&cfg.entity, &m.lock_token).await
        }
    };
    if let Err(e) = settle {
        // The lock expired meanwhile: the broker redelivers it anyway.
        tracing::warn!(function = %cfg.function, message_id = %m.message.message_id, error = %e, "could not settle the message");
    }
}

pub(crate) struct TimerConfig {
    pub(crate) app: String,
    pub(crate) function: String,
    pub(crate) binding: String,
    pub(crate) schedule: Schedule,
    pub(crate) run_on_startup: bool,
    pub(crate) timeout: Duration,
}

const TIMER_CONTAINER: &str = "runner-timers";

/// Fires a timer function on its schedule. The last occurrence is kept in the document
/// store (like the host's `useMonitor` status), so an occurrence missed while the runner was
/// down fires once at start-up with `IsPastDue: true`.
pub(crate) async fn run_timer(
    router: Router,
    store: Arc<dyn DocumentStore>,
    cfg: TimerConfig,
    mut stop: watch::Receiver<bool>,
) {
    let id = format!("{}-{}", cfg.app, cfg.function);
    let read_last = || async {
        store
            .read(TIMER_CONTAINER, "platform", &id)
            .await
            .ok()
            .flatten()
            .and_then(|d| {
                d.body
                    .get("last")
                    .and_then(Value::as_str)
                    .map(str::to_owned)
            })
            .and_then(|s| DateTime::parse_from_rfc3339(&s).ok().map(|t| t.to_utc()))
    };
    let mut last = read_last().await;
    let now = Utc::now();
    let missed = last
        .and_then(|l| cfg.schedule.next_after(l))
        .is_some_and(|due| due <= now);
    if missed || cfg.run_on_startup {
        fire(&router, store.as_ref(), &cfg, &id, &mut last, missed, now).await;
    }
    loop {
        let Some(next) = cfg.schedule.next_after(Utc::now()) else {
            tracing::warn!(function = %cfg.function, "the schedule never fires again");
            return;
        };
        let wait = (next - Utc::now()).to_std().unwrap_or_default();
        tokio::select! {
            _ = tokio::time::sleep(wait) => {},
            _ = stop.changed() => return,
        }
        let late = Utc::now() - next > chrono::Duration::seconds(5);
        fire(&router, store.as_ref(), &cfg, &id, &mut last, late, next).await;
    }
}

async fn fire(
    router: &Router,
    store: &dyn DocumentStore,
    cfg: &TimerConfig,
    id: &str,
    last: &mut Option<DateTime<Utc>>,
    past_due: bool,
    occurrence: DateTime<Utc>,
) {
    let now = Utc::now();
    let status = ScheduleStatus {
        last: last.unwrap_or(occurrence),
        next: cfg.schedule.next_after(now).unwrap_or(now),
        last_updated: now,
    };
    let body = encode::timer_invocation(&cfg.function, &cfg.binding, Some(&status), past_due, now);
    match invoke(router, &cfg.function, &body, cfg.timeout).await {
        Outcome::Success => tracing::info!(function = %cfg.function, past_due, "timer fired"),
        other => {
            tracing::warn!(function = %cfg.function, outcome = ?other, "timer invocation failed; next occurrence as scheduled")
        }
    }
    *last = Some(occurrence);
    let doc = json!({ "last": occurrence.to_rfc3339(), "function": cfg.function });
    if let Err(e) = store.upsert(TIMER_CONTAINER, "platform", id, doc).await {
        tracing::warn!(function = %cfg.function, error = %e, "could not record the timer's last run");
    }
}
