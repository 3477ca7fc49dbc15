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
mod sources;

use app_context::{
    AppContext, AppRegistration, EVENTS_TOPIC, WEBHOOK_DELIVERIES_ORDERED_QUEUE,
    WEBHOOK_DELIVERIES_QUEUE,
};
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

pub fn build(ctx: &AppContext) -> FunctionApp {
    let deliverer = outbound::Deliverer::new(ctx);
    let ordered_deliverer = deliverer.clone();
    let fan_out_ctx = ctx.clone();
    FunctionApp::new(SLUG)
        .http_routes(
            sources::routes(ctx.clone())
                .merge(inbound::routes(ctx.clone()))
                .merge(outbound::routes(ctx.clone())),
        )
        .http_function(FunctionDecl::http(
            "CreateSource",
            "webhooks/sources",
            &["post"],
        ))
        .http_function(FunctionDecl::http(
            "GetSource",
            "webhooks/sources/{sourceId}",
            &["get"],
        ))
        .http_function(
            FunctionDecl::http(
                "ReceiveWebhook",
                "webhooks/inbound/{sourceId}",
                &["post", "options"],
            )
            // The vendor's signature over the exact bytes is the authentication.
            .public()
            .api(json!({"summary": "A vendor's webhook delivery to a source"})),
        )
        .http_function(FunctionDecl::http(
            "CreateSubscription",
            "webhooks/subscriptions",
            &["post"],
        ))
        .http_function(FunctionDecl::http(
            "Subscription",
            "webhooks/subscriptions/{subscriptionId}",
            &["get", "delete"],
        ))
        .http_function(FunctionDecl::http(
            "SendEvent",
            "webhooks/deliveries",
            &["post"],
        ))
        .http_function(FunctionDecl::http(
            "GetDelivery",
            "webhooks/deliveries/{deliveryId}",
            &["get"],
        ))
        .http_function(FunctionDecl::http(
            "ReplayDelivery",
            "webhooks/deliveries/{deliveryId}/replay",
            &["post"],
        ))
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
        )
}
