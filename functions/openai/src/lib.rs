//! `openai`: OpenAI's models behind the model gateway's OpenAI-compatible API
//! (`/api/v1/chat/completions`, `/api/v1/models`; see the `model-gateway` crate), with
//! the kit's common routes (connections, runs, failures). Providers: `openai`
//! ([`provider`]) and the in-process `fake-model`.

pub mod provider;

use std::sync::Arc;

use app_context::{AppContext, AppRegistration, CatalogueEntry, InvalidSetting};
use domain::AuthScheme;
use functions_runtime::FunctionApp;
use integration_kit::VendorApp;

pub const SLUG: &str = "openai";
pub const SOURCE: &str = "/integration/openai";

/// The providers this app has adapters for, as the registry's catalogue lists them.
pub const CATALOGUE: &[CatalogueEntry] = &[
    CatalogueEntry::retested(
        provider::KEY,
        "OpenAI API",
        domain::ProviderCategory::AiModel,
        AuthScheme::Bearer,
        provider::DEFAULT_BASE_URL,
    ),
    CatalogueEntry::retested(
        model_gateway::fake::KEY,
        "Fake model (in process)",
        domain::ProviderCategory::AiModel,
        AuthScheme::ApiKey,
        "https://fake-model.invalid",
    ),
];

pub fn registration() -> AppRegistration {
    integration_kit::registration(SLUG, build, CATALOGUE)
}

pub fn build(ctx: &AppContext) -> Result<FunctionApp, InvalidSetting> {
    VendorApp::new(SLUG, SOURCE)
        // Fallback between connections is the gateway's, per model.
        .failover(false)
        .provider(provider::OpenAi)
        .provider(model_gateway::fake::FakeModel)
        .routes(|direct| {
            model_gateway::routes(
                direct,
                vec![
                    Arc::new(provider::OpenAi),
                    Arc::new(model_gateway::fake::FakeModel),
                ],
            )
        })
        .build(ctx)
        // Its answers stream: the host proxies requests instead of buffering answers.
        .map(FunctionApp::proxying)
}
