//! `webhook-gateway`: inbound webhooks. A tenant registers a source (its vendor's signature
//! scheme and secret, the secret kept in custody through the registry); the vendor posts to
//! the source's URL; the gateway verifies the signature over the raw bytes, stores the raw
//! body in blob storage, and only then commits the normalised `WebhookReceived` event
//! (through the outbox) and answers 202. A vendor's redelivery of the same delivery id is
//! acknowledged and not published again.
//!
//! Outbound delivery (subscriptions, signed deliveries, retries) is not built yet.

mod inbound;
mod sources;

use app_context::{AppContext, AppRegistration};
use functions_runtime::{FunctionApp, FunctionDecl};

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

pub fn registration() -> AppRegistration {
    AppRegistration {
        slug: SLUG,
        build,
        containers: &[CONTAINER],
        subscriptions: Vec::new,
        has_runs_queue: false,
    }
}

pub fn build(ctx: &AppContext) -> FunctionApp {
    FunctionApp::new(SLUG)
        .http_routes(sources::routes(ctx.clone()).merge(inbound::routes(ctx.clone())))
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
        .http_function(FunctionDecl::http(
            "ReceiveWebhook",
            "webhooks/inbound/{sourceId}",
            &["post", "options"],
        ))
}
