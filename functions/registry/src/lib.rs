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
mod settings;
mod store;

use std::sync::Arc;

use app_context::{AppContext, AppRegistration, CREDENTIAL_ROTATIONS_QUEUE, InvalidSetting};
use axum::routing::{get, post};
use functions_runtime::{FunctionApp, FunctionDecl};

use crate::settings::Settings;
pub use crate::settings::{
    DEFAULT_ROTATION_SCHEDULE, ROTATION_SCHEDULE_SETTING, ROTATION_TEST_TIMEOUT_SETTING,
};

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
        // A credential's connection is checked in the app that serves its provider.
        reads: &app_context::VENDOR_APPS,
        subscriptions: Vec::new,
        has_runs_queue: false,
        catalogue: CATALOGUE,
    }
}

/// The app: its settings read and checked, then its functions and their code. Each HTTP
/// function is declared with its route and handler together (`FunctionApp::route`).
pub fn build(ctx: &AppContext) -> Result<FunctionApp, InvalidSetting> {
    let settings = Arc::new(Settings::read(ctx)?);
    let state = api_kit::AppState {
        ctx: ctx.clone(),
        settings: settings.clone(),
    };
    let http = |name: &str, route: &str, method: &str| FunctionDecl::http(name, route, &[method]);
    let (advance_ctx, sweep) = (ctx.clone(), state.clone());
    Ok(FunctionApp::new(SLUG)
        .route(
            http("RegisterProvider", "integrations/providers", "post"),
            post(catalogue::register_provider).with_state(state.clone()),
        )
        .route(
            http("ListProviders", "integrations/providers", "get"),
            get(catalogue::list_providers).with_state(state.clone()),
        )
        .route(
            http("GetProvider", "integrations/providers/{key}", "get"),
            get(catalogue::get_provider).with_state(state.clone()),
        )
        .route(
            http(
                "RegisterApiClient",
                "integrations/providers/{key}/clients",
                "post",
            ),
            post(catalogue::register_client).with_state(state.clone()),
        )
        .route(
            http(
                "ListApiClients",
                "integrations/providers/{key}/clients",
                "get",
            ),
            get(catalogue::list_clients).with_state(state.clone()),
        )
        .route(
            http("CreateCredential", "integrations/credentials", "post"),
            post(credentials::create_credential).with_state(state.clone()),
        )
        .route(
            http(
                "RotateCredential",
                "integrations/credentials/rotate",
                "post",
            ),
            post(credentials::rotate).with_state(state.clone()),
        )
        .route(
            http(
                "GetRotation",
                "integrations/credentials/rotations/{rotationId}",
                "get",
            ),
            get(credentials::get_rotation).with_state(state.clone()),
        )
        .route(
            http(
                "GetCredential",
                "integrations/credentials/{credentialId}",
                "get",
            ),
            get(credentials::get_credential).with_state(state),
        )
        .function(
            FunctionDecl::queue("AdvanceRotation", CREDENTIAL_ROTATIONS_QUEUE),
            move |inv| rotation::advance(advance_ctx.clone(), inv),
        )
        .function(
            FunctionDecl::timer("RotationSweep", &settings.rotation_schedule),
            move |inv| rotation::sweep(sweep.clone(), inv),
        ))
}
