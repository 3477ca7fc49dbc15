//! `ollama`: self-hosted models (Ollama's native API) behind the model gateway's
//! OpenAI-compatible API (`/api/v1/chat/completions`, streamed or whole, `/api/v1/embeddings`,
//! `/api/v1/models`, quotas and usage; see the `model-gateway` crate), with the kit's common
//! routes (connections, runs, failures). Provider: `ollama` ([`provider`]), translating
//! OpenAI's requests and answers to Ollama's `/api/chat`, `/api/embed` and `/api/tags` and
//! back, its NDJSON streams included.

pub mod provider;

use std::sync::Arc;

use app_context::{AppContext, AppRegistration, CatalogueEntry, InvalidSetting};
use domain::AuthScheme;
use functions_runtime::FunctionApp;
use integration_kit::VendorApp;

pub const SLUG: &str = "ollama";
pub const SOURCE: &str = "/integration/ollama";

/// The providers this app has adapters for, as the registry's catalogue lists them.
pub const CATALOGUE: &[CatalogueEntry] = &[CatalogueEntry::retested(
    provider::KEY,
    "Ollama (self-hosted)",
    domain::ProviderCategory::AiModel,
    AuthScheme::Bearer,
    "http://localhost:11434",
)];

pub fn registration() -> AppRegistration {
    integration_kit::registration(SLUG, build, CATALOGUE)
}

pub fn build(ctx: &AppContext) -> Result<FunctionApp, InvalidSetting> {
    VendorApp::new(SLUG, SOURCE)
        // Fallback between connections is the gateway's, per model.
        .failover(false)
        .provider(provider::Ollama)
        // Self-hosted servers live on private networks: an operator may approve them.
        .private_endpoints()
        .routes(|direct| model_gateway::routes(direct, vec![Arc::new(provider::Ollama)]))
        .build(ctx)
        // Its answers stream: the host proxies requests instead of buffering answers.
        .map(FunctionApp::proxying)
}
