//! The catalogue routes: providers and their API clients.

use api_kit::{ApiError, Caller, JsonBody, OPERATOR_ROLE, Paging, QueryParams};
use app_context::AppContext;
use axum::Json;
use axum::extract::{Path, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use domain::{
    AuthScheme, ClientId, DisplayName, ExternalApiClient, HttpUrl, IntegrationProvider,
    NewApiClient, NewProvider, ProviderCategory, ProviderKey, RateLimitHints,
};
use ports::{Query, WriteOp};
use serde::{Deserialize, Serialize};
use serde_json::json;

use crate::store::{commit, document, read};

use registry_data::doc_type::{CLIENT, PROVIDER};

pub(crate) fn platform() -> String {
    registry_data::catalogue_partition().to_owned()
}

pub(crate) fn parse_url(ctx: &AppContext, field: &str, raw: &str) -> Result<HttpUrl, ApiError> {
    let url = HttpUrl::parse(raw)
        .map_err(|e| ApiError::bad_request("invalid_url", format!("{field}: {e}")))?;
    if ctx.requires_https() && !url.is_https() {
        return Err(ApiError::bad_request(
            "https_required",
            format!("{field} must be an https URL"),
        ));
    }
    Ok(url)
}

fn parse_key(raw: &str) -> Result<ProviderKey, ApiError> {
    ProviderKey::parse(raw).map_err(|e| ApiError::bad_request("invalid_key", e.to_string()))
}

use registry_data::{client_doc_id as client_id, provider_doc_id as provider_id};

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub(crate) struct ProviderIn {
    key: String,
    display_name: String,
    category: ProviderCategory,
    auth_scheme: AuthScheme,
    base_url: String,
    #[serde(default)]
    rate_limit_hints: Option<RateLimitHints>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct ProviderOut<'a> {
    key: &'a ProviderKey,
    display_name: &'a DisplayName,
    category: ProviderCategory,
    auth_scheme: AuthScheme,
    base_url: &'a HttpUrl,
    rate_limit_hints: Option<&'a RateLimitHints>,
    created_at: chrono::DateTime<chrono::Utc>,
    updated_at: chrono::DateTime<chrono::Utc>,
}

fn provider_out(p: &IntegrationProvider) -> ProviderOut<'_> {
    ProviderOut {
        key: p.key(),
        display_name: p.display_name(),
        category: p.category(),
        auth_scheme: p.auth_scheme(),
        base_url: p.base_url(),
        rate_limit_hints: p.rate_limit_hints(),
        created_at: p.created_at(),
        updated_at: p.updated_at(),
    }
}

pub(crate) async fn register_provider(
    State(ctx): State<AppContext>,
    caller: Caller,
    JsonBody(body): JsonBody<ProviderIn>,
) -> Result<Response, ApiError> {
    caller.require(OPERATOR_ROLE)?;
    let key = parse_key(&body.key)?;
    let new = NewProvider {
        display_name: DisplayName::parse(&body.display_name)
            .map_err(|e| ApiError::bad_request("invalid_display_name", e.to_string()))?,
        base_url: parse_url(&ctx, "baseUrl", &body.base_url)?,
        key,
        category: body.category,
        auth_scheme: body.auth_scheme,
        rate_limit_hints: body.rate_limit_hints,
    };
    let (provider, event) = IntegrationProvider::register(new, chrono::Utc::now());
    let id = provider_id(provider.key());
    let conflict = format!("a provider with key {:?} exists", provider.key().as_str());
    let ops = vec![WriteOp::create(id, document(&provider, PROVIDER)?)];
    commit(&ctx, &platform(), ops, &[event], &conflict).await?;
    let location = format!("/api/integrations/providers/{}", provider.key());
    Ok((
        StatusCode::CREATED,
        [(header::LOCATION, location)],
        Json(provider_out(&provider)),
    )
        .into_response())
}

pub(crate) async fn list_providers(
    State(ctx): State<AppContext>,
    _caller: Caller,
    QueryParams(paging): QueryParams<Paging>,
) -> Result<Response, ApiError> {
    let query = Query::partition(platform()).filter("docType", PROVIDER);
    let (items, continuation) = crate::store::STORE
        .page::<IntegrationProvider>(&ctx, query, paging)
        .await?;
    let out: Vec<_> = items.iter().map(provider_out).collect();
    Ok(Json(json!({ "items": out, "continuation": continuation })).into_response())
}

pub(crate) async fn read_provider(
    ctx: &AppContext,
    raw_key: &str,
) -> Result<IntegrationProvider, ApiError> {
    // A key that cannot exist is simply not there.
    let key = ProviderKey::parse(raw_key).map_err(|_| ApiError::not_found("the provider"))?;
    if let Some((p, _)) = read(ctx, &platform(), &provider_id(&key)).await? {
        return Ok(p);
    }
    let Some(new) = crate::builtin::builtin(ctx, &key) else {
        return Err(ApiError::not_found("the provider"));
    };
    let now = chrono::Utc::now();
    let (provider, event) = IntegrationProvider::register(new, now);
    let mut ops = vec![WriteOp::create(
        provider_id(provider.key()),
        document(&provider, PROVIDER)?,
    )];
    let mut events = vec![event];
    for new in crate::builtin::builtin_clients(ctx, &key) {
        let (client, event) = ExternalApiClient::register(new, now);
        ops.push(client_write(&client)?);
        events.push(event);
    }
    match commit(ctx, &platform(), ops, &events, "registered meanwhile").await {
        Ok(()) => Ok(provider),
        // Registered by a concurrent lookup (or an operator): theirs is the one.
        Err(ApiError::Conflict(_)) => read(ctx, &platform(), &provider_id(&key))
            .await?
            .map(|(p, _)| p)
            .ok_or(ApiError::Unavailable),
        Err(e) => Err(e),
    }
}

pub(crate) async fn get_provider(
    State(ctx): State<AppContext>,
    _caller: Caller,
    Path(key): Path<String>,
) -> Result<Response, ApiError> {
    let provider = read_provider(&ctx, &key).await?;
    Ok(Json(provider_out(&provider)).into_response())
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub(crate) struct ClientIn {
    name: String,
    version: String,
    base_url: String,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct ClientOut<'a> {
    id: ClientId,
    provider_key: &'a ProviderKey,
    name: &'a DisplayName,
    version: String,
    base_url: &'a HttpUrl,
    created_at: chrono::DateTime<chrono::Utc>,
}

fn client_out(c: &ExternalApiClient) -> ClientOut<'_> {
    ClientOut {
        id: c.id(),
        provider_key: c.provider_key(),
        name: c.name(),
        version: c.api_version().to_string(),
        base_url: c.base_url(),
        created_at: c.created_at(),
    }
}

/// Client names become part of document ids: plain identifiers only (`rest`, `graphql`).
fn valid_client_name(name: &str) -> bool {
    (1..=64).contains(&name.len())
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'))
}

pub(crate) async fn register_client(
    State(ctx): State<AppContext>,
    caller: Caller,
    Path(key): Path<String>,
    JsonBody(body): JsonBody<ClientIn>,
) -> Result<Response, ApiError> {
    caller.require(OPERATOR_ROLE)?;
    let provider = read_provider(&ctx, &key).await?;
    if !valid_client_name(&body.name) {
        return Err(ApiError::bad_request(
            "invalid_name",
            "a client name is 1-64 characters of letters, digits, '.', '_' and '-'",
        ));
    }
    let version = semver::Version::parse(&body.version).map_err(|e| {
        ApiError::bad_request(
            "invalid_version",
            format!("version must be semver (like 1.2.3): {e}"),
        )
    })?;
    let new = NewApiClient {
        id: ClientId::new(),
        provider_key: provider.key().clone(),
        name: DisplayName::parse(&body.name)
            .map_err(|e| ApiError::bad_request("invalid_name", e.to_string()))?,
        base_url: parse_url(&ctx, "baseUrl", &body.base_url)?,
        version,
    };
    let (client, event) = ExternalApiClient::register(new, chrono::Utc::now());
    let conflict = format!("{} is registered already", client.natural_key());
    commit(
        &ctx,
        &platform(),
        vec![client_write(&client)?],
        &[event],
        &conflict,
    )
    .await?;
    let location = format!(
        "/api/integrations/providers/{}/clients",
        client.provider_key()
    );
    Ok((
        StatusCode::CREATED,
        [(header::LOCATION, location)],
        Json(client_out(&client)),
    )
        .into_response())
}

/// The document of a client, created once per (provider, name, version).
fn client_write(client: &ExternalApiClient) -> Result<WriteOp, ApiError> {
    let id = client_id(
        client.provider_key(),
        client.name().as_str(),
        client.api_version(),
    );
    Ok(WriteOp::create(id, document(client, CLIENT)?))
}

/// The clients an adapter pins that its provider's catalogue entry lacks (a provider
/// registered before its adapter pinned them, or by an operator first) join it now.
async fn add_builtin_clients(ctx: &AppContext, key: &ProviderKey) -> Result<(), ApiError> {
    for new in crate::builtin::builtin_clients(ctx, key) {
        let id = client_id(key, new.name.as_str(), &new.version);
        if read::<serde_json::Value>(ctx, &platform(), &id)
            .await?
            .is_some()
        {
            continue;
        }
        let (client, event) = ExternalApiClient::register(new, chrono::Utc::now());
        match commit(ctx, &platform(), vec![client_write(&client)?], &[event], "").await {
            // Added meanwhile by another request: the same client.
            Ok(()) | Err(ApiError::Conflict(_)) => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

pub(crate) async fn list_clients(
    State(ctx): State<AppContext>,
    _caller: Caller,
    Path(key): Path<String>,
    QueryParams(paging): QueryParams<Paging>,
) -> Result<Response, ApiError> {
    let provider = read_provider(&ctx, &key).await?;
    add_builtin_clients(&ctx, provider.key()).await?;
    let query = Query::partition(platform())
        .filter("docType", CLIENT)
        .filter("providerKey", provider.key().as_str());
    let (items, continuation) = crate::store::STORE
        .page::<ExternalApiClient>(&ctx, query, paging)
        .await?;
    let out: Vec<_> = items.iter().map(client_out).collect();
    Ok(Json(json!({ "items": out, "continuation": continuation })).into_response())
}
