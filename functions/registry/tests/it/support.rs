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
        build: build_fake,
        containers: &[],
        subscriptions: Vec::new,
        has_runs_queue: true,
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
    let material = resolver
        .material(CredentialKind::ApiKey, &req.pending_secret)
        .await
        .map_err(|e| InvocationError::transient(e.to_string()))?;
    let key = material.get("apiKey").unwrap().expose_secret().to_owned();
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
