//! What every Function App is given to build itself: the ports (already chosen by settings),
//! its settings, and how callers are authenticated. Hosts (the local runner, or an app's own
//! custom-handler `main` in Azure) construct it; apps only read it.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use functions_runtime::FunctionApp;
use ports::{
    BlobStore, BusSender, DocumentStore, EntitySpec, SecretStore, SubscriptionSpec, Topology,
};
use tokio::sync::Notify;

/// The topic every platform event goes to (design §7).
pub const EVENTS_TOPIC: &str = "integration-events";
/// The queue of outbound webhook deliveries.
pub const WEBHOOK_DELIVERIES_QUEUE: &str = "webhook-deliveries";
/// The queue of credential rotation commands.
pub const CREDENTIAL_ROTATIONS_QUEUE: &str = "credential-rotations";

/// The queue of run commands of a vendor-facing app.
pub fn runs_queue(slug: &str) -> String {
    format!("runs-{slug}")
}

#[derive(Clone)]
pub struct AppContext {
    pub documents: Arc<dyn DocumentStore>,
    pub bus: Arc<dyn BusSender>,
    pub blobs: Arc<dyn BlobStore>,
    pub secrets: Arc<dyn SecretStore>,
    /// Turns bearer tokens into principals (local tokens, or Entra ID in Azure).
    pub authenticator: Arc<dyn auth::Authenticator>,
    /// App settings (`local.settings.json` Values overlaid by the environment).
    pub settings: Arc<BTreeMap<String, String>>,
    /// Poke after committing outbox documents, so events leave at once.
    pub outbox_waker: Arc<Notify>,
}

impl std::fmt::Debug for AppContext {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Settings may hold connection strings: never print them.
        f.debug_struct("AppContext")
            .field("settings", &self.settings.keys().collect::<Vec<_>>())
            .finish_non_exhaustive()
    }
}

impl AppContext {
    pub fn setting(&self, name: &str) -> Option<&str> {
        self.settings.get(name).map(String::as_str)
    }
}

/// An app as a host registers it.
#[derive(Clone)]
pub struct AppRegistration {
    pub slug: &'static str,
    pub build: fn(&AppContext) -> FunctionApp,
    /// Document containers that may hold outbox documents.
    pub containers: &'static [&'static str],
    /// Topic subscriptions the app consumes, with their filters.
    pub subscriptions: fn() -> Vec<(String, SubscriptionSpec)>,
    /// Whether the app has a `runs-<slug>` queue (the vendor-facing apps do).
    pub has_runs_queue: bool,
}

impl std::fmt::Debug for AppRegistration {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AppRegistration")
            .field("slug", &self.slug)
            .finish_non_exhaustive()
    }
}

/// The messaging topology of design §7 for a set of apps: the events topic with each app's
/// subscriptions, one runs queue per vendor-facing app, and the two shared queues.
/// `spec` overrides entity defaults (the runner's tests shorten lock durations).
pub fn platform_topology(apps: &[AppRegistration], spec: &EntitySpec) -> Topology {
    let mut t = Topology::default()
        .topic(EVENTS_TOPIC)
        .queue(WEBHOOK_DELIVERIES_QUEUE, spec.clone())
        .queue(CREDENTIAL_ROTATIONS_QUEUE, spec.clone());
    for app in apps {
        if app.has_runs_queue {
            t = t.queue(runs_queue(app.slug), spec.clone());
        }
        for (topic, mut sub) in (app.subscriptions)() {
            sub.spec.lock_duration = spec.lock_duration;
            t = t.subscription(topic, sub);
        }
    }
    t
}

/// Default lock duration of platform entities.
pub const DEFAULT_LOCK: Duration = Duration::from_secs(60);
