//! The integration kit: what the twelve vendor-facing apps share. A vendor app is its
//! provider adapters and their typed operations ([`VendorApp`]); the kit gives it
//!
//! - `POST /api/integrations/connections` (secret to custody through the registry, a live
//!   connection test, `IntegrationConnectionEstablished` or an `IntegrationFailure` +
//!   `IntegrationFailed`) and `GET /api/integrations/connections/{id}`;
//! - `POST /api/integrations/runs`: the input parsed once as the operation's typed input
//!   (400 `invalid_input` with the field's JSON pointer), `Idempotency-Key` (the same key
//!   within 24 h is the same run), `Prefer: wait=N` (200 with the finished run; the run is
//!   then executed in the request itself); `GET /api/integrations/runs/{runId}` with the
//!   run's typed `output`, and `GET /api/integrations/runs/{runId}/output`;
//! - `ExecuteRun` on the app's `runs-<slug>` queue: the run state machine, the resilience
//!   pipeline around every vendor call, failover across the tenant's connections in
//!   priority order, retries of the run on a schedule, runs that wait for their vendor
//!   (`waiting`, resumed by scheduled messages, ended by a vendor webhook or past the
//!   operation's maximum wait), exactly one `IntegrationFailure` per run that fails; the
//!   connection re-test that credential rotation asks for; and vendor webhooks the gateway
//!   routes to the app ([`Provider::webhook`]);
//! - `GET /api/integrations/failures[/{id}]`: the failure ledger;
//! - `PollReceipts`, a timer declared when a provider's receipts must be asked for (019):
//!   it asks the vendor about every watched message and applies what it says as a pushed
//!   receipt would be;
//! - `GET /api/openapi.json` (every app has it: [`functions_runtime::openapi`]).
//!
//! Storage: container `<slug>`, partition = the tenant: `connection-…`, `run-…`,
//! `failure-…`, `idem-…` (24 h TTL), `vmsg-…` (vendor message id → run, for receipts),
//! `rwatch-…` (a message whose receipt is still to be asked for; 7 days TTL), `corr-…` (a
//! vendor's name for the work a run waits on → the run), `vhook-…` (a vendor webhook
//! applied; 7 days TTL). Run inputs go to blob storage (`runs-input/<tenant>/<run id>`), and
//! outputs over 16 KiB (`runs-output/…`): documents stay small whatever the payloads.
//!
//! # A new app, step by step
//!
//! 1. `cargo new --lib functions/<slug>` (folder = package name), add it to the workspace
//!    members, and depend on `integration-kit`, `async-trait`, `serde`, `serde_json`,
//!    `domain` and `resilience`.
//! 2. An operation: a unit type implementing [`Operation`] with its `NAME`, its `Input`
//!    (serde, `#[serde(deny_unknown_fields)]`; fields that check themselves on reading, as
//!    `sms::E164` does, are refused at their path) and its `Output` (what the run keeps:
//!    put the vendor's ids there). Rules across fields go in [`Operation::check`];
//!    operations the vendor finishes later set `MAX_WAIT`.
//! 3. A provider's config: a serde type (`#[serde(rename_all = "camelCase",
//!    deny_unknown_fields)]`) implementing [`ProviderConfig`], whose `check` holds the rules
//!    serde cannot say, each naming its field. The kit parses and checks it when a
//!    connection is made (400 `invalid_config` with the field's pointer) and checks the
//!    addresses it knows for every provider ([`BASE_URL`], [`ENDPOINT`], [`HOST`]: SSRF
//!    guard, https); the provider reads it typed at each use (`call.config_as::<C>()`,
//!    [`config_of`] in hooks), never by field name.
//! 4. A provider: a type implementing [`Provider`] (its catalogue key, the credential kinds
//!    it takes, a cheap `test_connection`, and `serves`, which lists its operations and its
//!    config: `served.operation::<Send>().config::<VendorConfig>()`), and [`Serves`] for
//!    each operation: `execute` builds the vendor request from the typed input and the
//!    connection ([`ProviderCall`]: config, credential resolved per call, the run's
//!    idempotency key, the SSRF-guarded client) and sends it through `call.pipeline` with a classifier of the
//!    vendor's answers (`resilience::classify_status` plus the vendor's error body, its
//!    words through [`vendor_text`]); it answers [`Done`] (the output), or [`Wait`]
//!    (`correlate` it with the vendor's id of the work, so its webhook ends the wait; then
//!    `resume` looks again, and [`Provider::webhook`] reads the vendor's webhooks).
//! 5. The app: `pub const CATALOGUE: &[CatalogueEntry]` (its providers as the registry lists
//!    them), `pub fn registration() -> AppRegistration { integration_kit::registration(SLUG,
//!    build, CATALOGUE) }` with `build` = `VendorApp::new(SLUG, "/integration/<slug>")
//!    .failover(…).provider(Fake).provider(Vendor).build(ctx)` (it reads and checks the
//!    kit's settings: a bad one stops start-up naming it); then the app joins the one
//!    app list: `<crate>::registration` in `platform_apps!(…)` of
//!    `shared/platform/platform-apps` (and that crate's dependencies): the runner, packaging, the one handler binary, the Bicep checks and the
//!    registry's catalogue read it.
//! 6. Tests: the provider against a faithful fake over real HTTP ([`testing::FakeVendor`],
//!    [`testing::Harness`]) and the conformance suite ([`testing::conformance`]: success,
//!    the vendor's validation and auth errors, 429 + `Retry-After`, 5xx, timeout, malformed
//!    body); the app end to end through the runner (`testkit::TestPlatform`).

pub mod acs;
mod connections;
pub mod direct;
mod executor;
mod failures;
pub mod fake;
mod input;
mod operation;
mod poll;
pub mod private_endpoints;
pub mod provider;
mod receipts;
pub mod records;
mod runs;
mod signals;
mod store;
#[cfg(any(test, feature = "testing"))]
pub mod testing;
mod tokens;
mod vendor_webhooks;

pub use input::{EmailAddress, null_as_default};
pub use operation::{
    DEFAULT_MAX_INPUT_BYTES, DEFAULT_MAX_WAIT, Done, InputError, Operation, ProviderConfig, Served,
    Serves, Step, Wait, config_of, parse_input,
};
pub use poll::{DEFAULT_RECEIPTS_POLL_SCHEDULE, RECEIPTS_POLL_SCHEDULE_SETTING};
pub use provider::{
    Answer, BASE_URL, DeliveryState, ENDPOINT, HOST, JsonCall, PendingReceipt, Provider,
    ProviderCall, Receipt, ReceiptError, ReceiptRequest, VendorAnswers, answered,
    event_grid_receipts, fail as call_failed, failed_answer, malformed, query_value, receipt_code,
    receipt_code_query, run_created_at, vendor_text, verify_receipt_code,
};
pub use tokens::{
    AccessToken, IDENTITY_ENDPOINT_SETTING, IDENTITY_HEADER_SETTING, IdentityEndpoint, TokenCache,
    TokenStats,
};
pub use vendor_webhooks::{RecordChange, RecordKind, VendorWebhook, WebhookEffect};

use std::sync::Arc;
use std::time::Duration;

use app_context::{AppContext, AppRegistration, InvalidSetting, runs_queue};
use axum::extract::FromRef;
use functions_runtime::{FunctionApp, FunctionDecl};
use resilience::{Pipeline, Policy};

/// CloudEvents `type` of the command on `runs-<slug>`: "execute this run".
pub const RUN_REQUESTED: &str = "connectsoft.integration.run.requested.v1";
/// Blob container of run inputs.
pub const INPUT_CONTAINER: &str = "runs-input";
/// Blob container of run outputs too large for the run's document.
pub const OUTPUT_CONTAINER: &str = "runs-output";
/// Setting: how many times a run is tried (each try goes through the pipeline's own retries)
/// before it fails (default 5).
pub const MAX_RUN_ATTEMPTS_SETTING: &str = "RUN_MAX_ATTEMPTS";
const DEFAULT_MAX_RUN_ATTEMPTS: u32 = 5;
/// Setting: how long a run of any of the app's operations may stay `waiting` (seconds, 60 to
/// 7 days) before it fails with `timeout`; unset, each operation's own
/// [`Operation::MAX_WAIT`] (six hours unless it says otherwise).
pub const RUN_MAX_WAIT_SETTING: &str = "RUN_MAX_WAIT_SECONDS";
/// Setting: the longest pause between two looks at a waiting run (seconds, 1 to 3600,
/// default 3600), whatever backoff the provider asks for: lower it where vendor webhooks
/// cannot reach the platform and polling is how runs end.
pub const RUN_MAX_CHECK_INTERVAL_SETTING: &str = "RUN_MAX_CHECK_INTERVAL_SECONDS";

/// A vendor-facing app: its slug, the `source` of its events, its providers with the
/// operations each serves, and whether a run fails over to the tenant's other connections.
///
/// ```ignore
/// VendorApp::new("sms", "/integration/sms")
///     .failover(true)
///     .provider(providers::fake::Fake)
///     .provider(providers::twilio::Twilio)
///     .build(ctx)
/// ```
pub struct VendorApp {
    pub slug: &'static str,
    /// `/integration/<slug>`.
    pub source: &'static str,
    providers: Vec<Arc<dyn Provider>>,
    /// Every operation some provider serves, in the order first declared.
    operations: Vec<operation::OperationEntry>,
    /// (provider key, the check of its typed config).
    configs: Vec<(&'static str, operation::ConfigCheck)>,
    /// (provider key, operation) → the provider's code for it.
    handlers: Vec<(&'static str, &'static str, Arc<dyn operation::Handler>)>,
    /// Whether a run whose provider is down (5xx, timeout, open circuit, throttled) moves on
    /// to the tenant's next connection of this app (by `config.priority`, lowest first).
    failover: bool,
    /// The app's own HTTP functions, given the kit ([`VendorApp::routes`]).
    routes: Option<AppRoutes>,
    /// Whether an operator may approve private endpoints for a tenant's connections
    /// ([`VendorApp::private_endpoints`]).
    pub(crate) private_endpoints: bool,
    /// The app's reconciliation of its records of vendor objects ([`records`]).
    pub(crate) reconciler: Option<Arc<dyn records::Reconciler>>,
}

/// An app's own HTTP functions, built with the kit ([`direct::Direct`]); a setting of theirs
/// that is present but unusable stops the app's start-up.
pub type AppRoutes =
    fn(direct::Direct) -> Result<Vec<(FunctionDecl, axum::routing::MethodRouter)>, InvalidSetting>;

impl VendorApp {
    pub fn new(slug: &'static str, source: &'static str) -> Self {
        VendorApp {
            slug,
            source,
            providers: Vec::new(),
            operations: Vec::new(),
            configs: Vec::new(),
            handlers: Vec::new(),
            failover: false,
            routes: None,
            private_endpoints: false,
            reconciler: None,
        }
    }

    /// The app keeps records of vendor objects and reconciles them from the vendor
    /// ([`records`]): its providers' webhooks may answer `WebhookEffect::Reconcile`, its
    /// runs `Done::reconcile_after`.
    pub fn reconciler<R: records::Reconciler + 'static>(mut self, reconciler: R) -> Self {
        self.reconciler = Some(Arc::new(reconciler));
        self
    }

    /// Lets an operator approve private `host:port` endpoints for a tenant's connections of
    /// this app (self-hosted vendors on private networks), which the SSRF guard otherwise
    /// refuses; see [`private_endpoints`].
    pub fn private_endpoints(mut self) -> Self {
        self.private_endpoints = true;
        self
    }

    /// The app's own HTTP functions beside the kit's (the model gateway's OpenAI-compatible
    /// API), built once the kit is: they call vendors and record runs through
    /// [`direct::Direct`].
    pub fn routes(mut self, routes: AppRoutes) -> Self {
        self.routes = Some(routes);
        self
    }

    /// Whether runs fail over to the tenant's other connections of the app.
    pub fn failover(mut self, on: bool) -> Self {
        self.failover = on;
        self
    }

    /// Adds a provider with the operations it declares ([`Provider::serves`]).
    pub fn provider<P: Provider + 'static>(mut self, provider: P) -> Self {
        let provider = Arc::new(provider);
        let mut served = Served::new(provider.clone());
        P::serves(&mut served);
        if let Some(check) = served.config {
            self.configs.push((provider.key(), check));
        }
        for (entry, handler) in served.operations {
            if !self.operations.iter().any(|o| o.name == entry.name) {
                self.operations.push(entry.clone());
            }
            self.handlers.push((provider.key(), entry.name, handler));
        }
        self.providers.push(provider);
        self
    }

    /// The names of the operations the app offers.
    pub fn operation_names(&self) -> Vec<&'static str> {
        self.operations.iter().map(|o| o.name).collect()
    }
}

/// How a host registers a vendor app built on the kit: its slug, how it is built, and the
/// providers it has adapters for (the registry's catalogue entries; the kit re-tests their
/// connections during credential rotation).
pub fn registration(
    slug: &'static str,
    build: fn(&AppContext) -> Result<FunctionApp, InvalidSetting>,
    catalogue: &'static [app_context::CatalogueEntry],
) -> AppRegistration {
    AppRegistration {
        slug,
        build,
        containers: containers(slug),
        // Credential references, catalogue entries and rate-limit hints.
        reads: &[registry_data::CONTAINER],
        subscriptions: Vec::new,
        has_runs_queue: true,
        catalogue,
    }
}

fn containers(slug: &'static str) -> &'static [&'static str] {
    // The container is named after the app; `AppRegistration` wants a static slice.
    Box::leak(Box::new([slug]))
}

/// What the kit's functions share, built once per app.
pub(crate) struct Kit {
    pub(crate) app: VendorApp,
    pub(crate) ctx: AppContext,
    pub(crate) store: api_kit::Aggregates,
    pub(crate) pipeline: Pipeline,
    pub(crate) resolver: custody::Resolver,
    pub(crate) http: reqwest::Client,
    /// The SSRF guard behind `http`; also checks IP-literal URLs in config, which a
    /// connection never resolves.
    pub(crate) guard: netguard::Guard,
    pub(crate) max_run_attempts: u32,
    /// The app's own public URL (`<SLUG>_URL`), for receipt URLs.
    pub(crate) self_url: Option<String>,
    /// [`RUN_MAX_WAIT_SETTING`], overriding the operations' own.
    pub(crate) max_wait: Option<Duration>,
    /// [`RUN_MAX_CHECK_INTERVAL_SETTING`].
    pub(crate) max_check_interval: Duration,
    /// How old a direct call's `running` run must be for `SweepDirectRuns` to fail it.
    pub(crate) direct_stale_after: Duration,
    /// Access tokens minted from connections' credentials ([`ProviderCall::access_token`]).
    pub(crate) tokens: TokenCache,
    /// Wakes requests waiting on a run (`Prefer: wait`) when its outcome commits.
    pub(crate) signals: signals::RunSignals,
    /// Providers' rate limits from the registry's catalogue, cached briefly (one read per
    /// provider at a time, however many runs ask).
    pub(crate) rate_limits: moka::future::Cache<String, Option<resilience::RateLimit>>,
    /// Each tenant's approved private endpoints ([`private_endpoints`]), cached briefly.
    pub(crate) approvals: moka::future::Cache<String, Option<Arc<private_endpoints::Approvals>>>,
    /// The clients whose guard also allows an approved private host, per host.
    pub(crate) private_clients: moka::future::Cache<String, reqwest::Client>,
    /// Each tenant's usable connections, for failover (`connections::failover_candidates`).
    pub(crate) connections: moka::future::Cache<String, Arc<Vec<domain::IntegrationConnection>>>,
}

/// How long a provider's rate limit is trusted before the catalogue is read again.
const RATE_LIMIT_TTL: Duration = Duration::from_secs(60);

impl Kit {
    /// The provider's sustained rate from the registry's hints (`requestsPerSecond`, with a
    /// burst of the same size), so calls are spaced before the vendor answers 429. Read from
    /// the catalogue at most once a minute per provider; an unreadable catalogue means no
    /// limit (the vendor's own 429 and `Retry-After` still apply).
    pub(crate) async fn rate_limit(&self, provider: &str) -> Option<resilience::RateLimit> {
        self.rate_limits
            .get_with_by_ref(provider, async {
                registry_data::rate_limit_hints(self.ctx.documents.as_ref(), provider)
                    .await
                    .ok()
                    .flatten()
                    .and_then(|hints| hints.requests_per_second)
                    .and_then(std::num::NonZeroU32::new)
                    .map(|n| resilience::RateLimit {
                        per_second: n,
                        burst: n,
                    })
            })
            .await
    }

    /// The receipt URL a provider is given: [`Self::receipt_url`] plus the provider's query.
    pub(crate) fn receipt_url_for(
        &self,
        tenant: &str,
        connection: &domain::ConnectionId,
        provider: &dyn Provider,
        credential: &custody::SecretMaterial,
    ) -> Option<String> {
        let url = self.receipt_url(tenant, connection)?;
        Some(match provider.receipt_query(credential) {
            Some(query) => format!("{url}?{query}"),
            None => url,
        })
    }

    /// The public URL where a connection's vendor sends delivery receipts, when the app
    /// knows its own URL (`<SLUG>_URL`).
    pub(crate) fn receipt_url(
        &self,
        tenant: &str,
        connection: &domain::ConnectionId,
    ) -> Option<String> {
        let base = self.self_url.as_deref()?;
        Some(format!(
            "{base}/api/integrations/receipts/{tenant}/{connection}"
        ))
    }

    pub(crate) fn provider(&self, key: &str) -> Option<&Arc<dyn Provider>> {
        self.app.providers.iter().find(|p| p.key() == key)
    }

    pub(crate) fn operation(&self, name: &str) -> Option<&operation::OperationEntry> {
        self.app.operations.iter().find(|o| o.name == name)
    }

    /// How long a run of `operation` may wait: the app's setting, else the operation's own.
    pub(crate) fn max_wait(&self, operation: &str) -> Duration {
        self.max_wait.unwrap_or_else(|| {
            self.operation(operation)
                .map_or(DEFAULT_MAX_WAIT, |o| o.max_wait)
        })
    }

    /// Checks a connection's config against its provider's type, if it declared one.
    pub(crate) fn check_config(
        &self,
        provider: &str,
        config: &domain::ConnectionConfig,
    ) -> Result<(), InputError> {
        match self.app.configs.iter().find(|(p, _)| *p == provider) {
            Some((_, check)) => check(&operation::provider_config(config)),
            None => Ok(()),
        }
    }

    /// The provider's code for an operation, if it serves it.
    pub(crate) fn handler(
        &self,
        provider: &str,
        operation: &str,
    ) -> Option<&Arc<dyn operation::Handler>> {
        self.app
            .handlers
            .iter()
            .find(|(p, o, _)| *p == provider && *o == operation)
            .map(|(_, _, h)| h)
    }
}

/// What the OpenAPI document says of `POST /api/integrations/runs`: the app's operations
/// and the `Prefer: wait` header.
impl VendorApp {
    /// The operations' input limits, for the API document.
    fn input_limits(&self) -> String {
        let limits: Vec<String> = self
            .operations
            .iter()
            .map(|o| format!("{}: at most {} bytes", o.name, o.max_input))
            .collect();
        format!("the operation's input, as JSON ({})", limits.join("; "))
    }
}

pub(crate) fn start_run_api(app: &VendorApp) -> serde_json::Value {
    serde_json::json!({
        "summary": "Start a run of one of the app's operations",
        "parameters": [
            {"name": "Idempotency-Key", "in": "header", "required": false,
             "schema": {"type": "string", "minLength": 1, "maxLength": 255}},
            {"name": "Prefer", "in": "header", "required": false,
             "description": "wait=N (N ≤ 60): answer 200 with the finished run if it ends within N seconds",
             "schema": {"type": "string"}},
        ],
        "requestBody": {"content": {"application/json": {"schema": {
            "type": "object",
            "required": ["connectionId", "operation"],
            "additionalProperties": false,
            "properties": {
                "connectionId": {"type": "string"},
                "operation": {"type": "string", "enum": app.operation_names()},
                "input": {"description": app.input_limits()},
            },
        }}}},
        "responses": {
            "200": {"description": "The finished run (with Prefer: wait)"},
            "202": {"description": "The run, queued"},
        },
    })
}

/// Whether a failed call should go on to the tenant's next connection: the connection is
/// down, throttled or refused its credential, not the request itself (which the next one
/// would refuse too).
pub fn fails_over(e: &resilience::CallError) -> bool {
    matches!(
        e.class(),
        domain::FailureClassification::Transient
            | domain::FailureClassification::Timeout
            | domain::FailureClassification::CircuitOpen
            | domain::FailureClassification::RateLimited
            | domain::FailureClassification::Auth
    )
}

/// The pipeline key of calls through a connection. Breakers, limiters and budgets are per
/// tenant and provider, and within that per connection: a tenant's two accounts at one
/// vendor (or two regions) fail and throttle independently, and failover between them must
/// not be refused by the other's open circuit.
pub(crate) fn call_key(
    tenant: &str,
    provider: &str,
    connection: &domain::ConnectionId,
) -> resilience::CallKey {
    resilience::CallKey::new(tenant, &format!("{provider}/{connection}"))
}

/// The state of the kit's routes: the kit, and the context the `Caller` extractor reads.
#[derive(Clone)]
pub(crate) struct KitState(pub(crate) Arc<Kit>);

impl FromRef<KitState> for AppContext {
    fn from_ref(state: &KitState) -> AppContext {
        state.0.ctx.clone()
    }
}

impl VendorApp {
    /// The app's functions and their code, once its settings are read and checked.
    pub fn build(self, ctx: &AppContext) -> Result<FunctionApp, InvalidSetting> {
        let KitSettings {
            policy,
            guard,
            max_run_attempts,
            poll_schedule,
            self_url,
            max_wait,
            max_check_interval,
            identity,
            sweep_schedule,
            direct_stale_after,
        } = KitSettings::read(ctx, self.slug)?;
        // The pipeline's timeouts govern; the client's is a backstop.
        let http = guard.client(policy.attempt_timeout + Duration::from_secs(5));
        let slug = self.slug;
        let source = self.source;
        let kit = Arc::new(Kit {
            store: api_kit::Aggregates::new(slug, source),
            pipeline: Pipeline::new(policy),
            resolver: custody::Resolver::new(ctx.documents.clone(), ctx.secrets.clone()),
            http,
            guard,
            max_run_attempts,
            self_url,
            max_wait,
            max_check_interval,
            direct_stale_after,
            tokens: TokenCache::default().with_identity(identity),
            signals: signals::RunSignals::default(),
            rate_limits: moka::future::Cache::builder()
                .max_capacity(1_000)
                .time_to_live(RATE_LIMIT_TTL)
                .build(),
            connections: moka::future::Cache::builder()
                .max_capacity(10_000)
                .time_to_live(connections::CONNECTIONS_TTL)
                .build(),
            approvals: moka::future::Cache::builder()
                .max_capacity(10_000)
                .time_to_live(private_endpoints::APPROVALS_TTL)
                .build(),
            private_clients: moka::future::Cache::builder()
                .max_capacity(1_000)
                .time_to_idle(Duration::from_secs(600))
                .build(),
            ctx: ctx.clone(),
            app: self,
        });
        let state = KitState(kit.clone());
        let own_routes = kit
            .app
            .routes
            .map(|routes| routes(direct::Direct::new(kit.clone())))
            .transpose()?
            .unwrap_or_default();
        let polls = kit.app.providers.iter().any(|p| p.polls_receipts());
        let poll_kit = kit.clone();
        let sweep_kit = kit.clone();
        let mut app = FunctionApp::new(slug);
        for (decl, handler) in connections::functions(&state)
            .into_iter()
            .chain(runs::functions(&state))
            .chain(failures::functions(&state))
            .chain(receipts::functions(&state))
            .chain(private_endpoints::functions(&state))
            .chain(own_routes)
        {
            app = app.route(decl, handler);
        }
        let mut app = app.function(
            FunctionDecl::queue("ExecuteRun", &runs_queue(slug)),
            move |inv| executor::handle(kit.clone(), inv),
        );
        if polls {
            app = app.function(
                FunctionDecl::timer("PollReceipts", &poll_schedule),
                move |inv| poll::poll(poll_kit.clone(), inv),
            );
        }
        // Only apps with their own routes make direct calls.
        if sweep_kit.app.routes.is_some() {
            app = app.function(
                FunctionDecl::timer("SweepDirectRuns", &sweep_schedule),
                move |inv| direct::sweep(sweep_kit.clone(), inv),
            );
        }
        Ok(app)
    }
}

/// The kit's settings, read once when the app is built.
struct KitSettings {
    policy: Policy,
    guard: netguard::Guard,
    max_run_attempts: u32,
    poll_schedule: String,
    /// The app's own public URL (`<SLUG>_URL`), for receipt URLs.
    self_url: Option<String>,
    max_wait: Option<Duration>,
    max_check_interval: Duration,
    /// The platform's managed-identity endpoint, when the app has an identity.
    identity: Option<IdentityEndpoint>,
    sweep_schedule: String,
    direct_stale_after: Duration,
}

/// A six-field NCRONTAB schedule setting.
fn schedule(ctx: &AppContext, name: &str, default: &str) -> Result<String, InvalidSetting> {
    Ok(settings::parsed(ctx, name, |v| {
        functions_runtime::ncrontab::Schedule::parse(v)
            .map(|_| v.to_owned())
            .map_err(|e| format!("a six-field NCRONTAB schedule ({e})"))
    })?
    .unwrap_or_else(|| default.to_owned()))
}

impl KitSettings {
    fn read(ctx: &AppContext, slug: &str) -> Result<Self, InvalidSetting> {
        // Connections keep their secrets through the registry.
        api_kit::custody::check_registry_url(ctx)?;
        Ok(KitSettings {
            policy: Policy::from_settings(ctx)?,
            guard: netguard::Guard::from_settings(ctx)?,
            max_run_attempts: settings::integer(ctx, MAX_RUN_ATTEMPTS_SETTING, 1u32..=50)?
                .unwrap_or(DEFAULT_MAX_RUN_ATTEMPTS),
            poll_schedule: schedule(
                ctx,
                RECEIPTS_POLL_SCHEDULE_SETTING,
                DEFAULT_RECEIPTS_POLL_SCHEDULE,
            )?,
            sweep_schedule: schedule(
                ctx,
                direct::DIRECT_RUNS_SWEEP_SCHEDULE_SETTING,
                direct::DEFAULT_DIRECT_RUNS_SWEEP_SCHEDULE,
            )?,
            direct_stale_after: settings::seconds(
                ctx,
                direct::DIRECT_RUNS_STALE_AFTER_SETTING,
                1..=7 * 24 * 3600,
            )?
            .unwrap_or(direct::DEFAULT_DIRECT_RUNS_STALE_AFTER),
            self_url: settings::base_url(ctx, &app_context::url_setting(slug))?,
            max_wait: settings::seconds(ctx, RUN_MAX_WAIT_SETTING, 60..=7 * 24 * 3600)?,
            max_check_interval: settings::seconds(ctx, RUN_MAX_CHECK_INTERVAL_SETTING, 1..=3600)?
                .unwrap_or(executor::MAX_CHECK_INTERVAL),
            identity: match (
                settings::parsed(ctx, IDENTITY_ENDPOINT_SETTING, |v| {
                    reqwest::Url::parse(v).map_err(|_| "an http(s) URL".to_owned())
                })?,
                settings::text(ctx, IDENTITY_HEADER_SETTING),
            ) {
                (Some(url), Some(header)) => Some(IdentityEndpoint::new(
                    url,
                    secrecy::SecretString::from(header.to_owned()),
                )),
                _ => None,
            },
        })
    }
}
