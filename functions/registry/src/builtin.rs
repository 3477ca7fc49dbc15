//! Providers the platform's apps have adapters for ([`app_context::CatalogueEntry`], declared
//! by each app and given to the registry by its host). They join the catalogue the first
//! time they are looked up (through the same registration, event included), so a tenant can
//! connect to them without an operator registering them first; an operator's own
//! registration of the same key, made earlier, wins. The API versions each adapter pins join
//! as the provider's `ExternalApiClient`s.

use app_context::AppContext;
use domain::{ClientId, DisplayName, HttpUrl, NewApiClient, NewProvider, ProviderKey};

/// The registration of a provider an app has an adapter for, if `key` is one.
pub(crate) fn builtin(ctx: &AppContext, key: &ProviderKey) -> Option<NewProvider> {
    let (_, e) = ctx.catalogue_entry(key.as_str())?;
    Some(NewProvider {
        key: key.clone(),
        display_name: DisplayName::parse(e.name).ok()?,
        category: e.category,
        auth_scheme: e.auth,
        base_url: HttpUrl::parse(e.base_url).ok()?,
        rate_limit_hints: None,
    })
}

/// The API clients (pinned versions) the adapter of `key` declares; none for a provider no
/// app has an adapter for.
pub(crate) fn builtin_clients(ctx: &AppContext, key: &ProviderKey) -> Vec<NewApiClient> {
    let Some((_, e)) = ctx.catalogue_entry(key.as_str()) else {
        return Vec::new();
    };
    e.clients
        .iter()
        .filter_map(|c| {
            Some(NewApiClient {
                id: ClientId::new(),
                provider_key: key.clone(),
                name: DisplayName::parse(c.name).ok()?,
                version: semver::Version::parse(c.version).ok()?,
                base_url: HttpUrl::parse(c.base_url).ok()?,
            })
        })
        .collect()
}
