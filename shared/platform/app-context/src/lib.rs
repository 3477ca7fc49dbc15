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

mod scope;

pub use settings::InvalidSetting;

/// The topic every platform event goes to (design §7).
pub const EVENTS_TOPIC: &str = "integration-events";

/// The blob containers of the webhook gateway's payloads (raw inbound bodies, large outbound
/// payloads): kept for the payload retention and no longer (Bicep's lifecycle rule in Azure,
/// the embedded store's expiry locally).
pub const PAYLOAD_CONTAINERS: [&str; 2] = ["webhooks-raw", "webhooks-outbound"];

/// Setting: days raw webhook bodies and outbound payloads, and the gateway's records of them
/// (receipts, deliveries), are kept (1 to 3650, default 30: Bicep's `payloadRetentionDays`,
/// which sets it in Azure, where Blob Storage's lifecycle rule deletes the blobs).
pub const PAYLOAD_RETENTION_SETTING: &str = "PAYLOAD_RETENTION_DAYS";
/// The default of [`PAYLOAD_RETENTION_SETTING`].
pub const DEFAULT_PAYLOAD_RETENTION_DAYS: u32 = 30;
/// The queue of outbound webhook deliveries.
pub const WEBHOOK_DELIVERIES_QUEUE: &str = "webhook-deliveries";
/// The session-enabled queue of deliveries to ordered subscriptions (`SessionId` =
/// `<subscription id>/<ordering key>`): one lane's attempts are handled one at a time.
pub const WEBHOOK_DELIVERIES_ORDERED_QUEUE: &str = "webhook-deliveries-ordered";
/// The queue of credential rotation commands.
pub const CREDENTIAL_ROTATIONS_QUEUE: &str = "credential-rotations";

/// The twelve vendor-facing apps; each has a `runs-<slug>` queue whether or not this
/// build hosts it, as in Azure, so commands to an app that is not there wait instead of failing.
pub const VENDOR_APPS: [&str; 12] = [
    "github",
    "azure-devops",
    "openai",
    "azure-openai",
    "ollama",
    "mcp",
    "cloud",
    "email",
    "sms",
    "payment",
    "crm",
    "support",
];

/// The setting that holds an app's public base URL (`REGISTRY_URL`, `WEBHOOK_GATEWAY_URL`):
/// apps reach each other through these, in Azure as locally.
pub fn url_setting(slug: &str) -> String {
    format!("{}_URL", slug.to_ascii_uppercase().replace('-', "_"))
}

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
    /// The providers every app of the platform has adapters for, by app (the host fills it
    /// from its app list; the registry reads it).
    pub catalogue: Arc<Vec<AppCatalogue>>,
}

impl std::fmt::Debug for AppContext {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Settings may hold connection strings: never print them.
        f.debug_struct("AppContext")
            .field("settings", &self.settings.keys().collect::<Vec<_>>())
            .finish_non_exhaustive()
    }
}

/// An app reads its typed settings from its context (`settings::integer(ctx, ...)`).
impl settings::Source for AppContext {
    fn get(&self, name: &str) -> Option<&str> {
        self.setting(name)
    }
}

impl AppContext {
    /// The app that has an adapter for provider `key`, and its catalogue entry.
    pub fn catalogue_entry(&self, key: &str) -> Option<(&'static str, &'static CatalogueEntry)> {
        self.catalogue.iter().find_map(|a| {
            a.providers
                .iter()
                .find(|e| e.key == key)
                .map(|e| (a.app, e))
        })
    }

    /// The catalogue of `apps`, as a host gives it to them.
    pub fn catalogue_of(apps: &[AppRegistration]) -> Arc<Vec<AppCatalogue>> {
        Arc::new(
            apps.iter()
                .map(|a| AppCatalogue {
                    app: a.slug,
                    providers: a.catalogue,
                })
                .collect(),
        )
    }

    pub fn setting(&self, name: &str) -> Option<&str> {
        self.settings.get(name).map(String::as_str)
    }

    /// Says that a batch with outbox documents was committed: the publisher is woken to
    /// send them at once, unless the store has put them on the bus already (then a wake-up
    /// would only cost the publisher an empty query per commit).
    pub fn outbox_committed(&self) {
        if !self.documents.routes_outbox() {
            self.outbox_waker.notify_one();
        }
    }

    /// Whether user-supplied URLs must be https: always, except in a Development
    /// environment (what Core Tools and the local runner set), for fakes on loopback.
    pub fn requires_https(&self) -> bool {
        !self
            .setting("AZURE_FUNCTIONS_ENVIRONMENT")
            .is_some_and(|e| e.eq_ignore_ascii_case("development"))
    }
}

/// An app as a host registers it.
#[derive(Clone)]
pub struct AppRegistration {
    pub slug: &'static str,
    /// Builds the app: reads and checks its settings once (a bad one stops start-up,
    /// named), then declares its functions.
    pub build: fn(&AppContext) -> Result<FunctionApp, InvalidSetting>,
    /// The document containers the app owns: the only ones it writes (and where its outbox
    /// documents are).
    pub containers: &'static [&'static str],
    /// Other apps' containers the app reads (never writes): vendor apps read the
    /// registry's, the webhook gateway reads the vendor apps' connections. Hosts enforce
    /// both lists ([`AppRegistration::context_for`]); Bicep grants the same roles.
    pub reads: &'static [&'static str],
    /// Topic subscriptions the app consumes, with their filters.
    pub subscriptions: fn() -> Vec<(String, SubscriptionSpec)>,
    /// Whether the app has a `runs-<slug>` queue (the vendor-facing apps do).
    pub has_runs_queue: bool,
    /// The providers the app has adapters for: they join the registry's catalogue on first
    /// use, and credential rotations of their connections are re-tested by this app.
    pub catalogue: &'static [CatalogueEntry],
}

/// A provider an app has an adapter for, as the registry's catalogue registers it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CatalogueEntry {
    pub key: &'static str,
    pub name: &'static str,
    pub category: domain::ProviderCategory,
    pub auth: domain::AuthScheme,
    /// The vendor's public origin (informative where the connection names its own).
    pub base_url: &'static str,
    /// Whether the app re-tests a connection's credential when it rotates.
    pub retests: bool,
    /// The vendor API versions the adapter pins, registered with the provider as its
    /// `ExternalApiClient`s.
    pub clients: &'static [ApiClientEntry],
}

/// A vendor API version an adapter pins (`X-GitHub-Api-Version: 2022-11-28`,
/// `api-version=7.1`), as the registry records it: a client name, the version as semver
/// (a date version `YYYY-MM-DD` is written `YYYY.M.D`) and the API's origin.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ApiClientEntry {
    pub name: &'static str,
    pub version: &'static str,
    pub base_url: &'static str,
}

impl CatalogueEntry {
    /// An entry whose connections the app re-tests during credential rotation (what the
    /// integration kit does for every provider it serves).
    pub const fn retested(
        key: &'static str,
        name: &'static str,
        category: domain::ProviderCategory,
        auth: domain::AuthScheme,
        base_url: &'static str,
    ) -> Self {
        CatalogueEntry {
            key,
            name,
            category,
            auth,
            base_url,
            retests: true,
            clients: &[],
        }
    }

    /// The entry with the API versions its adapter pins.
    pub const fn with_clients(mut self, clients: &'static [ApiClientEntry]) -> Self {
        self.clients = clients;
        self
    }
}

/// One app's catalogue entries: what the registry reads (hosts give it the catalogue of
/// every app of the platform, [`AppContext::catalogue`]).
#[derive(Clone, Copy, Debug)]
pub struct AppCatalogue {
    pub app: &'static str,
    pub providers: &'static [CatalogueEntry],
}

impl AppRegistration {
    /// `ctx` as this app may use it: its document store limited to the app's own
    /// containers for writes and to those plus [`AppRegistration::reads`] for reads.
    pub fn context_for(&self, ctx: &AppContext) -> AppContext {
        AppContext {
            documents: Arc::new(scope::ScopedDocuments {
                inner: ctx.documents.clone(),
                app: self.slug,
                writes: self.containers,
                reads: self.reads,
            }),
            ..ctx.clone()
        }
    }
}

impl std::fmt::Debug for AppRegistration {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AppRegistration")
            .field("slug", &self.slug)
            .finish_non_exhaustive()
    }
}

/// The messaging topology of design §7 for a set of apps: the events topic with each app's
/// subscriptions, one runs queue per vendor-facing app, and the shared queues (the ordered
/// deliveries' one with sessions). `spec` overrides entity defaults (the runner's tests
/// shorten lock durations).
pub fn platform_topology(apps: &[AppRegistration], spec: &EntitySpec) -> Topology {
    let mut t = Topology::default()
        .topic(EVENTS_TOPIC)
        .queue(WEBHOOK_DELIVERIES_QUEUE, spec.clone())
        .queue(
            WEBHOOK_DELIVERIES_ORDERED_QUEUE,
            EntitySpec {
                requires_session: true,
                ..spec.clone()
            },
        )
        .queue(CREDENTIAL_ROTATIONS_QUEUE, spec.clone());
    for slug in VENDOR_APPS {
        t = t.queue(runs_queue(slug), spec.clone());
    }
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

/// Commands between apps (envelopes on queues), and their data.
pub mod commands {
    use domain::{ConnectionId, CredentialId, ProviderKey, RotationId, SecretRef};
    use serde::{Deserialize, Serialize};

    /// Registry → owning app (`runs-<slug>`): re-test the connection with a pending secret.
    pub const RETEST_REQUESTED: &str = "connectsoft.integration.connection.retest.requested.v1";
    /// Owning app → registry (`credential-rotations`): the re-test's outcome.
    pub const RETEST_COMPLETED: &str = "connectsoft.integration.connection.retest.completed.v1";
    /// Registry → itself, scheduled: the re-test did not answer in time.
    pub const ROTATION_TIMEOUT: &str = "connectsoft.integration.credential.rotation-timeout.v1";

    #[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
    #[serde(rename_all = "camelCase")]
    pub struct RetestRequested {
        pub rotation_id: RotationId,
        pub credential_id: CredentialId,
        pub connection_id: Option<ConnectionId>,
        pub provider_key: ProviderKey,
        /// The secret version to test (a reference; the app resolves it through custody).
        pub pending_secret: SecretRef,
        /// Where to send `RetestCompleted`.
        pub reply_to: String,
    }

    #[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
    #[serde(rename_all = "snake_case")]
    pub enum RetestOutcome {
        Succeeded,
        Failed,
        /// The app cannot re-test connections (yet): said honestly, never faked.
        NotSupported,
    }

    #[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
    #[serde(rename_all = "camelCase")]
    pub struct RetestCompleted {
        pub rotation_id: RotationId,
        pub outcome: RetestOutcome,
        /// Why, for a failure; redacted by the sender.
        pub detail: Option<String>,
    }

    #[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
    #[serde(rename_all = "camelCase")]
    pub struct RotationTimeout {
        pub rotation_id: RotationId,
    }

    /// Webhook gateway → the app of the source's connection (`runs-<slug>`): a verified
    /// inbound delivery for that connection, written in the batch that records it. The data
    /// is the `WebhookReceived` event's ([`domain::WebhookReceived`]).
    pub const WEBHOOK_ROUTED: &str = "connectsoft.integration.webhook.routed.v1";

    /// The id of a vendor app's connection document in the app's container (partition = the
    /// tenant): how the gateway checks a source's connection before routing to it.
    pub fn connection_doc_id(id: &ConnectionId) -> String {
        format!("connection-{id}")
    }

    /// The id of the reservation a vendor app writes (with a short TTL) for a connection it
    /// is creating, before it asks the registry to keep the connection's credential: what
    /// lets the registry check that a credential's connection is the caller's before the
    /// connection document exists.
    pub fn pending_connection_doc_id(id: &ConnectionId) -> String {
        format!("pending-connection-{id}")
    }

    /// The app a webhook scheme's deliveries belong to when the scheme names one vendor app
    /// (GitHub's go to `github`, Stripe's to `payment`); schemes several apps use (Event
    /// Grid, Standard Webhooks, generic HMAC) name none, and the source names its app.
    pub fn app_of_scheme(scheme: &str) -> Option<&'static str> {
        Some(match scheme {
            "github" => "github",
            "azure-devops" => "azure-devops",
            "stripe" | "adyen" | "bill" => "payment",
            "twilio" => "sms",
            "sendgrid" => "email",
            "zendesk" => "support",
            "hubspot" => "crm",
            _ => return None,
        })
    }
}
