//! `azure-openai`: Azure OpenAI (Foundry) deployments behind the model gateway's
//! OpenAI-compatible API (`/api/v1/chat/completions`, `/api/v1/embeddings`,
//! `/api/v1/models`, quotas and usage; see the `model-gateway` crate), with the kit's
//! common routes (connections, runs, failures). Provider: `azure-openai` ([`provider`]; the
//! in-process `fake-model` belongs to the openai app, provider keys being unique across
//! apps). A tenant's connections in several regions, by priority, are the regional
//! failover.

pub mod provider;

use std::sync::Arc;

use app_context::{AppContext, AppRegistration, CatalogueEntry, InvalidSetting};
use domain::AuthScheme;
use functions_runtime::FunctionApp;
use integration_kit::VendorApp;

pub const SLUG: &str = "azure-openai";
pub const SOURCE: &str = "/integration/azure-openai";

/// The providers this app has adapters for, as the registry's catalogue lists them.
pub const CATALOGUE: &[CatalogueEntry] = &[CatalogueEntry::retested(
    provider::KEY,
    "Azure OpenAI (Foundry)",
    domain::ProviderCategory::AiModel,
    AuthScheme::ApiKey,
    "https://example-resource.openai.azure.com",
)];

pub fn registration() -> AppRegistration {
    integration_kit::registration(SLUG, build, CATALOGUE)
}

pub fn build(ctx: &AppContext) -> Result<FunctionApp, InvalidSetting> {
    VendorApp::new(SLUG, SOURCE)
        // Fallback between connections (regions) is the gateway's, per model.
        .failover(false)
        .provider(provider::AzureOpenAi)
        .routes(|direct| model_gateway::routes(direct, vec![Arc::new(provider::AzureOpenAi)]))
        .build(ctx)
        // Its answers stream: the host proxies requests instead of buffering answers.
        .map(FunctionApp::proxying)
}
