//! Providers the platform's apps have adapters for ([`app_context::CatalogueEntry`], declared
//! by each app and given to the registry by its host). They join the catalogue the first
//! time they are looked up (through the same registration, event included), so a tenant can
//! connect to them without an operator registering them first; an operator's own
//! registration of the same key, made earlier, wins.

use app_context::AppContext;
use domain::{DisplayName, HttpUrl, NewProvider, ProviderKey};

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
