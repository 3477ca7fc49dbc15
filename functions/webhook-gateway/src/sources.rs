//! Inbound sources: a tenant's vendor, its signature scheme and the secret to check it with.

use api_kit::{ApiError, Caller, JsonBody};
use app_context::AppContext;
use axum::Json;
use axum::extract::{Path, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use domain::{
    ConnectionId, CredentialId, NewSource, SecretRef, SourceId, TenantId, WebhookScheme,
    WebhookSource,
};
use ports::WriteOp;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use crate::settings::Settings;
use crate::{CONTAINER, SOURCES_PARTITION};
use std::sync::Arc;

pub(crate) fn source_doc_id(id: &SourceId) -> String {
    format!("source-{id}")
}

/// The stored source: the aggregate plus what the gateway needs beside it.
#[derive(Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct StoredSource {
    #[serde(flatten)]
    pub(crate) source: WebhookSource,
    /// The custody credential holding the secret (for rotation).
    pub(crate) credential_id: CredentialId,
    /// Scheme options (tolerances, header names), as given.
    #[serde(default)]
    pub(crate) options: Value,
    pub(crate) description: Option<String>,
    /// The vendor app of the source's connection: verified deliveries are routed to it
    /// (`runs-<app>`).
    #[serde(default)]
    pub(crate) app: Option<String>,
    #[serde(default = "source_doc_type")]
    doc_type: String,
}

fn source_doc_type() -> String {
    "source".into()
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub(crate) struct SourceIn {
    provider: String,
    secret: String,
    #[serde(default)]
    connection_id: Option<String>,
    /// The vendor app the connection belongs to, when the scheme does not say
    /// ([`app_context::commands::app_of_scheme`]).
    #[serde(default)]
    app: Option<String>,
    #[serde(default)]
    description: Option<String>,
    /// Scheme options: `{"toleranceSecs": 300}`, `{"header": "X-Signature"}`, ...
    #[serde(default)]
    options: Option<Value>,
}

fn inbound_url(settings: &Settings, id: &SourceId) -> String {
    format!("{}/api/webhooks/inbound/{id}", settings.public_url)
}

/// The source's signing secret goes to custody as an `hmacSecret` credential of its scheme.
pub(crate) async fn store_secret(
    ctx: &AppContext,
    caller: &Caller,
    scheme: WebhookScheme,
    secret: &str,
) -> Result<(CredentialId, SecretRef), ApiError> {
    let mut fields = serde_json::Map::new();
    fields.insert("secret".into(), json!(secret));
    api_kit::custody::store_credential(
        ctx,
        caller,
        scheme.as_str(),
        domain::CredentialKind::HmacSecret,
        fields,
        None,
    )
    .await
}

fn source_out(settings: &Settings, s: &StoredSource) -> Value {
    json!({
        "id": s.source.id(),
        "provider": s.source.scheme(),
        "url": inbound_url(settings, &s.source.id()),
        "connectionId": s.source.connection_id(),
        "app": s.app,
        "description": s.description,
        "createdAt": s.source.created_at(),
    })
}

pub(crate) async fn create_source(
    State(ctx): State<AppContext>,
    State(settings): State<Arc<Settings>>,
    caller: Caller,
    JsonBody(body): JsonBody<SourceIn>,
) -> Result<Response, ApiError> {
    let tenant = TenantId::parse_tenant(caller.tenant_id())
        .map_err(|e| ApiError::Forbidden(e.to_string()))?;
    let scheme: WebhookScheme = body.provider.parse().map_err(|_| {
        ApiError::bad_request(
            "unknown_provider",
            format!(
                "provider is one of: {}",
                WebhookScheme::ALL.map(|s| s.as_str()).join(", ")
            ),
        )
    })?;
    let options = body.options.unwrap_or(Value::Object(Default::default()));
    // The options must make a valid scheme before any secret is stored.
    let verifier = crate::inbound::scheme_for(scheme, &options)
        .map_err(|e| ApiError::bad_request("invalid_options", e))?;
    unknown_options(&verifier, &options)?;
    crate::inbound::secret_for(&verifier, &body.secret)
        .map_err(|e| ApiError::bad_request("invalid_secret", e))?
        .check_strength(&verifier)
        .map_err(|e| ApiError::bad_request("weak_secret", e))?;
    let connection_id = body
        .connection_id
        .as_deref()
        .map(ConnectionId::parse)
        .transpose()
        .map_err(|e| ApiError::bad_request("invalid_connection_id", e.to_string()))?;
    let app = connection_app(&ctx, &tenant, scheme, connection_id, body.app.as_deref()).await?;
    if body.description.as_ref().is_some_and(|d| d.len() > 500) {
        return Err(ApiError::bad_request(
            "invalid_description",
            "a description is at most 500 characters",
        ));
    }
    let (credential_id, secret) = store_secret(&ctx, &caller, scheme, &body.secret).await?;
    let source = WebhookSource::new(
        NewSource {
            tenant_id: tenant,
            id: SourceId::new(),
            scheme,
            secret,
            connection_id,
        },
        chrono::Utc::now(),
    );
    let stored = StoredSource {
        source,
        credential_id,
        options,
        description: body.description,
        app,
        doc_type: source_doc_type(),
    };
    let doc = serde_json::to_value(&stored).map_err(ApiError::internal)?;
    let id = stored.source.id();
    ctx.documents
        .batch(
            CONTAINER,
            SOURCES_PARTITION,
            vec![WriteOp::create(source_doc_id(&id), doc)],
        )
        .await
        .map_err(|e| ApiError::from_port(e, "the source exists"))?;
    let location = format!("/api/webhooks/sources/{id}");
    Ok((
        StatusCode::CREATED,
        [(header::LOCATION, location)],
        Json(source_out(&settings, &stored)),
    )
        .into_response())
}

/// Options the scheme does not have are refused (a misspelt `toleranceSecs` would otherwise
/// silently keep the default): every option given must be one the scheme's settings
/// serialise back.
fn unknown_options(scheme: &webhooks::Scheme, options: &Value) -> Result<(), ApiError> {
    let known = serde_json::to_value(scheme).map_err(ApiError::internal)?;
    let Some(given) = options.as_object() else {
        return Ok(());
    };
    match given
        .keys()
        .find(|k| k.as_str() == "kind" || known.get(k.as_str()).is_none())
    {
        Some(k) => {
            let mut name: String = k.chars().take(64).collect();
            if k.chars().count() > 64 {
                name.push('…');
            }
            Err(ApiError::bad_request(
                "invalid_options",
                format!("options: {} sources have no option {name:?}", scheme.name()),
            ))
        }
        None => Ok(()),
    }
}

/// The vendor app a source's deliveries are routed to: the app named (or the one the scheme
/// belongs to), whose connection `connection_id` must be, in the caller's tenant (else 404,
/// as for any other tenant's id). A source without a connection is routed nowhere.
async fn connection_app(
    ctx: &AppContext,
    tenant: &TenantId,
    scheme: WebhookScheme,
    connection_id: Option<ConnectionId>,
    app: Option<&str>,
) -> Result<Option<String>, ApiError> {
    let Some(connection_id) = connection_id else {
        if app.is_some() {
            return Err(ApiError::bad_request(
                "invalid_app",
                "app names where the deliveries of a connection go: give connectionId too",
            ));
        }
        return Ok(None);
    };
    let app = app
        .or_else(|| app_context::commands::app_of_scheme(scheme.as_str()))
        .ok_or_else(|| {
            ApiError::bad_request(
                "app_required",
                format!(
                    "{} deliveries can belong to several apps: name the connection's app",
                    scheme.as_str()
                ),
            )
        })?;
    let app = app_context::VENDOR_APPS
        .into_iter()
        .find(|a| *a == app)
        .ok_or_else(|| {
            ApiError::bad_request(
                "unknown_app",
                format!("app is one of: {}", app_context::VENDOR_APPS.join(", ")),
            )
        })?;
    let found = ctx
        .documents
        .read(
            app,
            tenant.as_str(),
            &app_context::commands::connection_doc_id(&connection_id),
        )
        .await
        .map_err(|e| ApiError::from_port(e, "conflict"))?;
    if found.is_none() {
        return Err(ApiError::not_found("the connection"));
    }
    Ok(Some(app.to_owned()))
}

pub(crate) async fn read_source(
    ctx: &AppContext,
    raw_id: &str,
) -> Result<Option<StoredSource>, ApiError> {
    let Ok(id) = SourceId::parse(raw_id) else {
        return Ok(None);
    };
    let Some(doc) = ctx
        .documents
        .read(CONTAINER, SOURCES_PARTITION, &source_doc_id(&id))
        .await
        .map_err(|e| ApiError::from_port(e, "conflict"))?
    else {
        return Ok(None);
    };
    doc.parse()
        .map(Some)
        .map_err(|e| ApiError::from_port(e, "conflict"))
}

pub(crate) async fn get_source(
    State(ctx): State<AppContext>,
    State(settings): State<Arc<Settings>>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    match read_source(&ctx, &id).await? {
        // Another tenant's source does not exist for this caller.
        Some(s) if s.source.tenant_id().as_str() == caller.tenant_id() => {
            Ok(Json(source_out(&settings, &s)).into_response())
        }
        _ => Err(ApiError::not_found("the source")),
    }
}
