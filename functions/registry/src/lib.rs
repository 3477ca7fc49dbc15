//! `registry` (VendorApiClientRegistryService): the platform-wide catalogue of vendors
//! (`IntegrationProvider`) and their versioned API clients (`ExternalApiClient`).
//!
//! Reading the catalogue needs any valid token; writing it needs the `operator` role.
//! Providers and clients live in the `platform` partition of the `registry` container; each
//! registration commits the document and its event (outbox) in one batch, so the event is
//! published exactly when the registration exists.

mod catalogue;

use app_context::{AppContext, AppRegistration};
use functions_runtime::{FunctionApp, FunctionDecl};

pub const SLUG: &str = "registry";
/// Where the registry keeps its documents.
pub const CONTAINER: &str = "registry";
/// `source` of the registry's events.
pub const SOURCE: &str = "/integration/registry";

/// How hosts register the app.
pub fn registration() -> AppRegistration {
    AppRegistration {
        slug: SLUG,
        build,
        containers: &[CONTAINER],
        subscriptions: Vec::new,
        has_runs_queue: false,
    }
}

/// The app: its functions and their code.
pub fn build(ctx: &AppContext) -> FunctionApp {
    FunctionApp::new(SLUG)
        .http_routes(catalogue::routes(ctx.clone()))
        .http_function(FunctionDecl::http(
            "RegisterProvider",
            "integrations/providers",
            &["post"],
        ))
        .http_function(FunctionDecl::http(
            "ListProviders",
            "integrations/providers",
            &["get"],
        ))
        .http_function(FunctionDecl::http(
            "GetProvider",
            "integrations/providers/{key}",
            &["get"],
        ))
        .http_function(FunctionDecl::http(
            "RegisterApiClient",
            "integrations/providers/{key}/clients",
            &["post"],
        ))
        .http_function(FunctionDecl::http(
            "ListApiClients",
            "integrations/providers/{key}/clients",
            &["get"],
        ))
}
