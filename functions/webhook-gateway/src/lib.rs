//! `webhook-gateway`: inbound webhooks. A tenant registers a source (its vendor's signature
//! scheme and secret, the secret kept in custody through the registry); the vendor posts to
//! the source's URL; the gateway verifies the signature over the raw bytes, stores the raw
//! body in blob storage, and only then commits the normalised `WebhookReceived` event
//! (through the outbox) and answers 202. A vendor's redelivery of the same delivery id is
//! acknowledged and not published again.
//!
//! Outbound (`outbound.rs`): a tenant's subscriptions, the fan-out of its events to them, and
//! `DeliverWebhook` on `webhook-deliveries`: Standard Webhooks signatures, retries on a
//! jittered schedule over about a day (`Retry-After` honoured), 410 disables the endpoint,
//! endpoints failing for too long are disabled, exhausted deliveries are dead-lettered as
//! `IntegrationFailure`s, every call goes through the SSRF guard. Ordered subscriptions get
//! their deliveries one at a time per ordering key (`outbound/ordering.rs`), attempted by
//! `DeliverOrderedWebhook` on the session queue `webhook-deliveries-ordered`.

mod inbound;
pub mod outbound;
mod payloads;
mod settings;
mod sources;

use std::sync::Arc;

use app_context::{
    AppContext, AppRegistration, EVENTS_TOPIC, InvalidSetting, WEBHOOK_DELIVERIES_ORDERED_QUEUE,
    WEBHOOK_DELIVERIES_QUEUE,
};
use axum::routing::{get, post};

use crate::settings::Settings;
pub use crate::settings::{BREAKER_OPEN_SETTING, BREAKER_THRESHOLD_SETTING};
use functions_runtime::{FunctionApp, FunctionDecl, ServiceBusSource};
use serde_json::json;

pub const SLUG: &str = "webhook-gateway";
/// Where the gateway keeps its documents.
pub const CONTAINER: &str = "webhooks";
/// Sources are found by id alone (the vendor knows no tenant), so they share one partition;
/// each carries its tenant, checked on every authenticated read.
pub const SOURCES_PARTITION: &str = "sources";
/// Blob container of raw inbound bodies.
pub const RAW_CONTAINER: &str = "webhooks-raw";
/// `source` of the gateway's events.
pub const SOURCE: &str = "/integration/webhook-gateway";

/// Platform apps have no vendor adapters of their own.
pub const CATALOGUE: &[app_context::CatalogueEntry] = &[];

pub fn registration() -> AppRegistration {
    AppRegistration {
        slug: SLUG,
        build,
        containers: &[CONTAINER],
        // A source's connection, in its vendor app's container.
        reads: &app_context::VENDOR_APPS,
        subscriptions: || {
            vec![(
                EVENTS_TOPIC.to_owned(),
                ports::SubscriptionSpec {
                    name: SLUG.to_owned(),
                    // Every event that may fan out; the bus keeps the rest away.
                    filter: ports::Filter::PropertyNotIn {
                        name: "type".to_owned(),
                        values: domain::EventKind::NEVER_FANNED_OUT
                            .iter()
                            .map(|k| k.event_type().to_owned())
                            .collect(),
                    },
                    spec: ports::EntitySpec::default(),
                },
            )]
        },
        has_runs_queue: false,
        catalogue: CATALOGUE,
    }
}

/// The app: its settings read and checked, then its functions and their code. Each HTTP
/// function is declared with its route and handler together (`FunctionApp::route`).
pub fn build(ctx: &AppContext) -> Result<FunctionApp, InvalidSetting> {
    let settings = Arc::new(Settings::read(ctx)?);
    let deliverer = outbound::Deliverer::new(ctx, &settings);
    let ordered_deliverer = deliverer.clone();
    let fan_out_ctx = ctx.clone();
    let state = api_kit::AppState {
        ctx: ctx.clone(),
        settings: settings.clone(),
    };
    let inbound = inbound::Inbound::new(ctx, settings);
    let http = |name: &str, route: &str, methods: &[&str]| FunctionDecl::http(name, route, methods);
    use outbound::{deliveries, subscriptions};
    Ok(FunctionApp::new(SLUG)
        .route(
            http("CreateSource", "webhooks/sources", &["post"]),
            post(sources::create_source).with_state(state.clone()),
        )
        .route(
            http("GetSource", "webhooks/sources/{sourceId}", &["get"]),
            get(sources::get_source).with_state(state.clone()),
        )
        .route(
            http(
                "ReceiveWebhook",
                "webhooks/inbound/{sourceId}",
                &["post", "options"],
            )
            // The vendor's signature over the exact bytes is the authentication.
            .public()
            .api(json!({"summary": "A vendor's webhook delivery to a source"})),
            post(inbound::receive)
                .options(inbound::abuse_protection)
                .with_state(inbound),
        )
        .route(
            http(
                "GetPayload",
                "webhooks/payloads/{sourceId}/{key}",
                &["get"],
            )
            .api(json!({"summary": "The raw body of an inbound webhook (a WebhookReceived event's payloadRef)"})),
            get(payloads::get_payload).with_state(state.clone()),
        )
        .route(
            http("CreateSubscription", "webhooks/subscriptions", &["post"]),
            post(subscriptions::create).with_state(state.clone()),
        )
        .route(
            http(
                "Subscription",
                "webhooks/subscriptions/{subscriptionId}",
                &["get", "delete"],
            ),
            get(subscriptions::show)
                .delete(subscriptions::remove)
                .with_state(state.clone()),
        )
        .route(
            http("SendEvent", "webhooks/deliveries", &["post"]),
            post(deliveries::fan_out).with_state(state.clone()),
        )
        .route(
            http("GetDelivery", "webhooks/deliveries/{deliveryId}", &["get"]),
            get(deliveries::show).with_state(state.clone()),
        )
        .route(
            http(
                "ReplayDelivery",
                "webhooks/deliveries/{deliveryId}/replay",
                &["post"],
            ),
            post(deliveries::replay).with_state(state),
        )
        .function(
            FunctionDecl::queue("DeliverWebhook", WEBHOOK_DELIVERIES_QUEUE),
            move |inv| outbound::deliver_webhook(deliverer.clone(), inv),
        )
        .function(
            // `isSessionsEnabled: true`: the trigger accepts one session (lane) at a time.
            FunctionDecl::service_bus(
                "DeliverOrderedWebhook",
                ServiceBusSource::Queue(WEBHOOK_DELIVERIES_ORDERED_QUEUE.to_owned()),
                true,
            ),
            move |inv| outbound::deliver_ordered_webhook(ordered_deliverer.clone(), inv),
        )
        .function(
            FunctionDecl::subscription("FanOutEvent", EVENTS_TOPIC, SLUG),
            move |inv| outbound::fan_out_platform_event(fan_out_ctx.clone(), inv),
        ))
}
