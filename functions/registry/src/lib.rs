//! `registry` (VendorApiClientRegistryService): the platform-wide catalogue of vendors
//! (`IntegrationProvider`) and their versioned API clients (`ExternalApiClient`).
//!
//! Reading the catalogue needs any valid token; writing it needs the `operator` role.
//! The registry is also the custody authority: the only writer of secrets, and the owner of
//! credential rotation (`credentials.rs`, `rotation.rs`).
//! Providers and clients live in the `platform` partition of the `registry` container; each
//! registration commits the document and its event (outbox) in one batch, so the event is
//! published exactly when the registration exists.

mod builtin;
mod catalogue;
mod credentials;
mod rotation;
mod store;

use app_context::{AppContext, AppRegistration, CREDENTIAL_ROTATIONS_QUEUE};
use functions_runtime::{FunctionApp, FunctionDecl};

pub const SLUG: &str = "registry";
/// Where the registry keeps its documents.
pub use registry_data::CONTAINER;
/// `source` of the registry's events.
pub const SOURCE: &str = "/integration/registry";

/// How hosts register the app.
/// Platform apps have no vendor adapters of their own.
pub const CATALOGUE: &[app_context::CatalogueEntry] = &[];

pub fn registration() -> AppRegistration {
    AppRegistration {
        slug: SLUG,
        build,
        containers: &[CONTAINER],
        reads: &[],
        subscriptions: Vec::new,
        has_runs_queue: false,
        catalogue: CATALOGUE,
    }
}

/// The rotation sweep's schedule when the `ROTATION_SCHEDULE` setting does not give one:
/// hourly, on the hour (six-field NCRONTAB).
pub const DEFAULT_ROTATION_SCHEDULE: &str = "0 0 * * * *";

/// The app: its functions and their code.
pub fn build(ctx: &AppContext) -> FunctionApp {
    let schedule = ctx
        .setting("ROTATION_SCHEDULE")
        .unwrap_or(DEFAULT_ROTATION_SCHEDULE)
        .to_owned();
    let (advance_ctx, sweep_ctx) = (ctx.clone(), ctx.clone());
    FunctionApp::new(SLUG)
        .http_routes(catalogue::routes(ctx.clone()).merge(credentials::routes(ctx.clone())))
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
        .http_function(FunctionDecl::http(
            "CreateCredential",
            "integrations/credentials",
            &["post"],
        ))
        .http_function(FunctionDecl::http(
            "RotateCredential",
            "integrations/credentials/rotate",
            &["post"],
        ))
        .http_function(FunctionDecl::http(
            "GetRotation",
            "integrations/credentials/rotations/{rotationId}",
            &["get"],
        ))
        .http_function(FunctionDecl::http(
            "GetCredential",
            "integrations/credentials/{credentialId}",
            &["get"],
        ))
        .function(
            FunctionDecl::queue("AdvanceRotation", CREDENTIAL_ROTATIONS_QUEUE),
            move |inv| rotation::advance(advance_ctx.clone(), inv),
        )
        .function(
            FunctionDecl::timer("RotationSweep", &schedule),
            move |inv| rotation::sweep(sweep_ctx.clone(), inv),
        )
}
