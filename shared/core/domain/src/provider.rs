//! The platform-wide provider catalogue: [`IntegrationProvider`] and its versioned
//! [`ExternalApiClient`]s. Both live in the platform partition ([`TenantId::platform`]).

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::aggregate::impl_aggregate;
use crate::event::{DomainEvent, ExternalApiClientRegistered, IntegrationProviderRegistered};
use crate::ids::ClientId;
use crate::values::{DisplayName, HttpUrl, ProviderKey, TenantId};

/// What kind of vendor a provider is; decides which app family serves it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum ProviderCategory {
    /// Repositories and pipelines (GitHub, Azure DevOps).
    SourceControl,
    /// Model APIs (OpenAI, Azure OpenAI, Ollama).
    AiModel,
    /// Upstream MCP servers.
    Mcp,
    /// Cloud control planes (Azure Resource Manager).
    Cloud,
    /// Email.
    Email,
    /// SMS.
    Sms,
    /// Payments.
    Payment,
    /// CRM.
    Crm,
    /// Support tickets.
    Support,
    /// Anything else.
    Other,
}

/// How a provider authenticates calls; tells the connection form which credential kinds fit.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum AuthScheme {
    /// No authentication (a local Ollama).
    None,
    /// An API key in a header or query parameter.
    ApiKey,
    /// HTTP Basic.
    Basic,
    /// A static bearer token (personal access token).
    Bearer,
    /// OAuth 2 client credentials.
    Oauth2ClientCredentials,
    /// OAuth 2 with a refresh token.
    Oauth2RefreshToken,
    /// A GitHub App (JWT, then installation token).
    GithubApp,
    /// A managed identity / Entra ID token.
    ManagedIdentity,
    /// Requests signed with a shared HMAC secret.
    Hmac,
}

/// How a vendor's rate-limit reset header expresses time.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum ResetFormat {
    /// Unix time in seconds (GitHub's `x-ratelimit-reset`).
    #[default]
    UnixSeconds,
    /// Seconds from now (`x-ratelimit-reset-requests` style).
    DeltaSeconds,
}

/// Where a vendor tells callers about its rate limits, so the resilience pipeline can slow down before
/// it is throttled. Header names are stored as given; HTTP header names are case-insensitive.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RateLimitHints {
    /// Header holding the requests left in the window.
    pub remaining_header: Option<String>,
    /// Header holding the window's limit.
    pub limit_header: Option<String>,
    /// Header holding when the window resets.
    pub reset_header: Option<String>,
    /// How [`RateLimitHints::reset_header`] is expressed.
    #[serde(default)]
    pub reset_format: ResetFormat,
    /// Header holding a back-off time on 429/503 (normally `retry-after`).
    pub retry_after_header: Option<String>,
    /// The vendor's documented sustained limit, if any.
    pub requests_per_second: Option<u32>,
}

/// Input of [`IntegrationProvider::register`].
#[derive(Debug, Clone)]
pub struct NewProvider {
    /// The key, which is also the id.
    pub key: ProviderKey,
    /// Name shown to people.
    pub display_name: DisplayName,
    /// Category.
    pub category: ProviderCategory,
    /// Authentication scheme.
    pub auth_scheme: AuthScheme,
    /// Default API base URL.
    pub base_url: HttpUrl,
    /// Rate-limit hints, when the vendor publishes them.
    pub rate_limit_hints: Option<RateLimitHints>,
}

/// A vendor the platform can talk to. The key is the id: unique in the platform partition.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct IntegrationProvider {
    tenant_id: TenantId,
    id: ProviderKey,
    version: u64,
    created_at: DateTime<Utc>,
    updated_at: DateTime<Utc>,
    display_name: DisplayName,
    category: ProviderCategory,
    auth_scheme: AuthScheme,
    base_url: HttpUrl,
    rate_limit_hints: Option<RateLimitHints>,
}
impl_aggregate!(
    IntegrationProvider,
    "integrationProvider",
    key: &ProviderKey,
    id_doc = "The key (also the id).",
    tenant_doc = "The partition (always the platform).",
);

impl IntegrationProvider {
    /// Registers a provider in the platform partition and emits `IntegrationProviderRegistered`.
    /// Duplicate keys are the store's business (a create that fails on an existing id).
    pub fn register(new: NewProvider, now: DateTime<Utc>) -> (Self, DomainEvent) {
        let provider = Self {
            tenant_id: TenantId::platform(),
            id: new.key,
            version: 1,
            created_at: now,
            updated_at: now,
            display_name: new.display_name,
            category: new.category,
            auth_scheme: new.auth_scheme,
            base_url: new.base_url,
            rate_limit_hints: new.rate_limit_hints,
        };
        let event = DomainEvent::IntegrationProviderRegistered(IntegrationProviderRegistered {
            tenant_id: provider.tenant_id.clone(),
            provider_key: provider.id.clone(),
            display_name: provider.display_name.clone(),
            category: provider.category,
            auth_scheme: provider.auth_scheme,
            base_url: provider.base_url.clone(),
            occurred_at: now,
        });
        (provider, event)
    }

    /// Name shown to people.
    pub fn display_name(&self) -> &DisplayName {
        &self.display_name
    }
    /// Category.
    pub fn category(&self) -> ProviderCategory {
        self.category
    }
    /// Authentication scheme.
    pub fn auth_scheme(&self) -> AuthScheme {
        self.auth_scheme
    }
    /// Default API base URL.
    pub fn base_url(&self) -> &HttpUrl {
        &self.base_url
    }
    /// Rate-limit hints.
    pub fn rate_limit_hints(&self) -> Option<&RateLimitHints> {
        self.rate_limit_hints.as_ref()
    }
}

/// Input of [`ExternalApiClient::register`].
#[derive(Debug, Clone)]
pub struct NewApiClient {
    /// The new id.
    pub id: ClientId,
    /// The provider it belongs to.
    pub provider_key: ProviderKey,
    /// The client's name (`rest`, `graphql`).
    pub name: DisplayName,
    /// The API version it speaks.
    pub version: semver::Version,
    /// Its base URL.
    pub base_url: HttpUrl,
}

/// One versioned API client of a provider (`github` / `rest` / `2022.11.28`). Platform-wide.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ExternalApiClient {
    tenant_id: TenantId,
    id: ClientId,
    version: u64,
    created_at: DateTime<Utc>,
    updated_at: DateTime<Utc>,
    provider_key: ProviderKey,
    name: DisplayName,
    api_version: semver::Version,
    base_url: HttpUrl,
}
impl_aggregate!(
    ExternalApiClient,
    "externalApiClient",
    id: ClientId,
    tenant_doc = "The partition (always the platform).",
    version_doc = "The change counter (not the API version; see [`Self::api_version`]).",
);

impl ExternalApiClient {
    /// Registers a client in the platform partition and emits `ExternalApiClientRegistered`.
    /// Uniqueness of (provider, name, version) is enforced by the store with [`Self::natural_key`].
    pub fn register(new: NewApiClient, now: DateTime<Utc>) -> (Self, DomainEvent) {
        let client = Self {
            tenant_id: TenantId::platform(),
            id: new.id,
            version: 1,
            created_at: now,
            updated_at: now,
            provider_key: new.provider_key,
            name: new.name,
            api_version: new.version,
            base_url: new.base_url,
        };
        let event = DomainEvent::ExternalApiClientRegistered(ExternalApiClientRegistered {
            tenant_id: client.tenant_id.clone(),
            client_id: client.id,
            provider_key: client.provider_key.clone(),
            name: client.name.clone(),
            version: client.api_version.clone(),
            base_url: client.base_url.clone(),
            occurred_at: now,
        });
        (client, event)
    }

    /// `"<provider>/<name>/<semver>"`: what must be unique among clients.
    pub fn natural_key(&self) -> String {
        format!("{}/{}/{}", self.provider_key, self.name, self.api_version)
    }

    /// The provider.
    pub fn provider_key(&self) -> &ProviderKey {
        &self.provider_key
    }
    /// The client's name.
    pub fn name(&self) -> &DisplayName {
        &self.name
    }
    /// The API version it speaks.
    pub fn api_version(&self) -> &semver::Version {
        &self.api_version
    }
    /// Its base URL.
    pub fn base_url(&self) -> &HttpUrl {
        &self.base_url
    }
}

#[cfg(test)]
mod tests;
