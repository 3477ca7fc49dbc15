//! Fixtures: an observer of the events topic, and a fake owning app for rotations.

use std::time::{Duration, Instant};

use app_context::commands::{
    RETEST_COMPLETED, RETEST_REQUESTED, RetestCompleted, RetestOutcome, RetestRequested,
};
use app_context::{AppContext, AppRegistration};
use domain::CredentialKind;
use functions_runtime::{
    FunctionApp, FunctionDecl, Invocation, InvocationError, InvocationResponse,
};
use ports::{
    BrokerReceiver, Entity, EntitySpec, Filter, OutgoingMessage, SubscriptionSpec, Topology,
};
use secrecy::ExposeSecret as _;
use serde_json::Value;
use testkit::TestPlatform;

/// Starts the registry (and `extra` apps) with an observer subscription on the events topic.
pub(crate) async fn platform(extra: &[AppRegistration], values: Value) -> TestPlatform {
    let mut apps = vec![registry::registration()];
    apps.extend_from_slice(extra);
    let p = TestPlatform::start(&apps, values).await;
    observe(&p).await;
    p
}

pub(crate) async fn observe(p: &TestPlatform) {
    let observer = SubscriptionSpec {
        name: "observer".into(),
        filter: Filter::All,
        spec: EntitySpec::default(),
    };
    p.runner
        .broker
        .ensure_topology(&Topology::default().subscription(app_context::EVENTS_TOPIC, observer))
        .await
        .unwrap();
}

/// Everything published to the events topic until `expected` arrived and a moment passed.
pub(crate) async fn published(p: &TestPlatform, expected: usize) -> Vec<envelope::Envelope> {
    let sub = Entity::subscription(app_context::EVENTS_TOPIC, "observer");
    let mut out = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(10);
    while Instant::now() < deadline {
        for m in p.runner.broker.receive(&sub, 100).await.unwrap() {
            assert_eq!(m.delivery_count, 1);
            let env = envelope::Envelope::parse(&m.message.body).expect("a CloudEvents envelope");
            assert_eq!(
                m.message.message_id,
                env.id(),
                "MessageId is the envelope id"
            );
            out.push(env);
            p.runner.broker.complete(&sub, &m.lock_token).await.unwrap();
        }
        if out.len() >= expected {
            // Give a duplicate the chance to show up.
            tokio::time::sleep(Duration::from_millis(700)).await;
            for m in p.runner.broker.receive(&sub, 100).await.unwrap() {
                out.push(envelope::Envelope::parse(&m.message.body).unwrap());
            }
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    out
}

/// A fake `sms` app that re-tests connections: it resolves the pending secret through
/// custody and answers by its value: `good…` succeeds, `unsupported…` says not supported,
/// `silent…` never answers, anything else fails.
pub(crate) fn fake_sms_app() -> AppRegistration {
    AppRegistration {
        slug: "sms",
        build: |ctx| Ok(build_fake(ctx)),
        containers: &[],
        reads: &[],
        subscriptions: Vec::new,
        has_runs_queue: true,
        catalogue: &[],
    }
}

/// An `sms` app that is part of the platform but does not consume its queue (stopped, or
/// slow to start): re-tests wait for it.
pub(crate) fn idle_sms_app() -> AppRegistration {
    AppRegistration {
        build: |_| Ok(FunctionApp::new("sms")),
        ..fake_sms_app()
    }
}

fn build_fake(ctx: &AppContext) -> FunctionApp {
    let c = ctx.clone();
    FunctionApp::new("sms").function(FunctionDecl::queue("Runs", "runs-sms"), move |inv| {
        retest(c.clone(), inv)
    })
}

async fn retest(ctx: AppContext, inv: Invocation) -> Result<InvocationResponse, InvocationError> {
    let msg = inv.service_bus()?;
    let env = envelope::Envelope::parse(&msg.body)
        .map_err(|e| InvocationError::permanent(e.to_string()))?;
    assert_eq!(env.event_type(), RETEST_REQUESTED);
    let req: RetestRequested = env
        .data_json()
        .map_err(|e| InvocationError::permanent(e.to_string()))?;
    let resolver = custody::Resolver::new(ctx.documents.clone(), ctx.secrets.clone());
    // API keys, or refresh tokens (`rt-…` test good).
    let key = match resolver
        .material(CredentialKind::ApiKey, &req.pending_secret)
        .await
    {
        Ok(m) => m.get("apiKey").unwrap().expose_secret().to_owned(),
        Err(_) => {
            let m = resolver
                .material(CredentialKind::Oauth2RefreshToken, &req.pending_secret)
                .await
                .map_err(|e| InvocationError::transient(e.to_string()))?;
            let token = m.get("refreshToken").unwrap().expose_secret().to_owned();
            if token.starts_with("rt-") {
                format!("good-{token}")
            } else {
                token
            }
        }
    };
    let outcome = if key.starts_with("good") {
        RetestOutcome::Succeeded
    } else if key.starts_with("unsupported") {
        RetestOutcome::NotSupported
    } else if key.starts_with("silent") {
        return Ok(InvocationResponse::default());
    } else {
        RetestOutcome::Failed
    };
    let detail = (outcome == RetestOutcome::Failed).then(|| "the vendor answered 401".to_owned());
    let reply = RetestCompleted {
        rotation_id: req.rotation_id,
        outcome,
        detail,
    };
    let reply = envelope::Envelope::builder("/integration/sms", RETEST_COMPLETED, env.tenant_id())
        .json_data(&reply)
        .unwrap();
    let message = OutgoingMessage::new(format!("retest-{}", req.rotation_id), reply.to_vec());
    ctx.bus
        .send(&req.reply_to, vec![message])
        .await
        .map_err(|e| InvocationError::transient(e.to_string()))?;
    Ok(InvocationResponse::default())
}

/// A token endpoint (RFC 6749 refresh grant) that rotates refresh tokens: `rt-N` is
/// exchanged for an access token and `rt-N+1`; `revoked…` gets `invalid_grant`. Returns its
/// URL and a hit counter.
pub(crate) async fn token_endpoint() -> (String, std::sync::Arc<std::sync::atomic::AtomicUsize>) {
    use axum::extract::State;
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};
    let hits = Arc::new(AtomicUsize::new(0));
    async fn token(
        State(hits): State<Arc<AtomicUsize>>,
        axum::Form(form): axum::Form<std::collections::HashMap<String, String>>,
    ) -> axum::response::Response {
        use axum::response::IntoResponse as _;
        hits.fetch_add(1, Ordering::SeqCst);
        let rt = form.get("refresh_token").cloned().unwrap_or_default();
        if form.get("grant_type").map(String::as_str) != Some("refresh_token")
            || rt.starts_with("revoked")
        {
            let body = serde_json::json!({"error": "invalid_grant", "error_description": "the refresh token is not valid"});
            return (axum::http::StatusCode::BAD_REQUEST, axum::Json(body)).into_response();
        }
        // `<prefix>-<n>` becomes `<prefix>-<n + 1>` (the fake sms app re-tests `rt-…` good).
        let (prefix, n) = rt.rsplit_once('-').unwrap_or(("rt", "0"));
        let n: u32 = n.parse().unwrap_or(0);
        let body = serde_json::json!({"access_token": format!("at-{n}"), "token_type": "Bearer", "expires_in": 3600, "refresh_token": format!("{prefix}-{}", n + 1)});
        axum::Json(body).into_response()
    }
    let app = axum::Router::new()
        .route("/token", axum::routing::post(token))
        .with_state(hits.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await });
    (format!("http://{addr}/token"), hits)
}
