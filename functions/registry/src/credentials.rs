//! Credential custody routes: a tenant's credentials are created here (the registry is the
//! only writer of secrets) and rotated through the saga in `rotation`.

use api_kit::{ApiError, Caller, JsonBody};
use app_context::AppContext;
use axum::Json;
use axum::extract::{Path, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use custody::{Custody, SecretMaterial};
use domain::{
    ConnectionId, CredentialId, CredentialKind, IntegrationCredential, NewCredential,
    RotationPolicy, TenantId,
};
use ports::WriteOp;
use registry_data::credential_doc_id;
use serde::Deserialize;
use serde_json::{Map, Value};

use crate::catalogue::read_provider;
use crate::rotation::{self, Rotation};
use crate::settings::Settings;
use crate::store::{commit, document, read};
use registry_data::rotation_doc_id;
use secrecy::ExposeSecret as _;
use std::sync::Arc;

pub(crate) use registry_data::doc_type::CREDENTIAL;

fn material_error(e: custody::MaterialError) -> ApiError {
    ApiError::bad_request("invalid_secret", e.to_string())
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub(crate) struct CredentialIn {
    provider_key: String,
    kind: CredentialKind,
    secret: Map<String, Value>,
    #[serde(default)]
    connection_id: Option<String>,
    #[serde(default)]
    rotation_policy: Option<RotationPolicy>,
}

/// The credential as the API shows it: the aggregate's JSON, which holds references only.
fn credential_out(c: &IntegrationCredential) -> Result<Value, ApiError> {
    serde_json::to_value(c).map_err(ApiError::internal)
}

/// An OAuth 2 credential's token endpoint is a URL the platform will call: checked when
/// the secret is given (scheme, https outside development, internal addresses), as every
/// user-supplied URL is, not only when it is first used.
fn check_token_url(
    ctx: &AppContext,
    settings: &Settings,
    material: &SecretMaterial,
) -> Result<(), ApiError> {
    if let Some(url) = material.get("tokenUrl") {
        api_kit::urls::user_url(ctx, &settings.guard, "secret.tokenUrl", url.expose_secret())?;
    }
    Ok(())
}

fn tenant_of(caller: &Caller) -> Result<TenantId, ApiError> {
    TenantId::parse_tenant(caller.tenant_id()).map_err(|e| ApiError::Forbidden(e.to_string()))
}

/// A credential's connection must be the caller's: a connection (or the reservation of one
/// being created) in the caller's partition of the app that serves the provider. Anything
/// else, another tenant's included, is 404 as for any unknown id.
async fn check_connection(
    ctx: &AppContext,
    tenant: &TenantId,
    provider: &str,
    connection: &ConnectionId,
) -> Result<(), ApiError> {
    let missing = || ApiError::not_found("the connection");
    let Some((app, _)) = ctx.catalogue_entry(provider) else {
        // No app of this platform serves the provider: no connection of it can exist.
        return Err(missing());
    };
    for id in [
        app_context::commands::connection_doc_id(connection),
        app_context::commands::pending_connection_doc_id(connection),
    ] {
        let found = ctx
            .documents
            .read(app, tenant.as_str(), &id)
            .await
            .map_err(|e| ApiError::from_port(e, "conflict"))?;
        if found.is_some() {
            return Ok(());
        }
    }
    Err(missing())
}

pub(crate) async fn create_credential(
    State(ctx): State<AppContext>,
    State(settings): State<Arc<Settings>>,
    caller: Caller,
    JsonBody(body): JsonBody<CredentialIn>,
) -> Result<Response, ApiError> {
    let tenant = tenant_of(&caller)?;
    // Signing secrets of inbound webhook sources name their scheme (`github`, `stripe`,
    // `standard-webhooks`, ...), which need not be a catalogue provider; every other kind
    // is for a registered provider.
    let provider_key = if body.kind == CredentialKind::HmacSecret
        && body.provider_key.parse::<domain::WebhookScheme>().is_ok()
    {
        domain::ProviderKey::parse(&body.provider_key)
            .map_err(|e| ApiError::bad_request("invalid_key", e.to_string()))?
    } else {
        read_provider(&ctx, &body.provider_key)
            .await
            .map_err(|_| {
                ApiError::bad_request(
                    "unknown_provider",
                    "providerKey names no registered provider",
                )
            })?
            .key()
            .clone()
    };
    let connection_id = body
        .connection_id
        .as_deref()
        .map(ConnectionId::parse)
        .transpose()
        .map_err(|e| ApiError::bad_request("invalid_connection_id", e.to_string()))?;
    let material = SecretMaterial::new(body.kind, body.secret).map_err(material_error)?;
    check_token_url(&ctx, &settings, &material)?;
    if let Some(connection) = &connection_id {
        check_connection(&ctx, &tenant, provider_key.as_str(), connection).await?;
    }
    let id = CredentialId::new();
    let custody = Custody::new(ctx.secrets.clone());
    let reference = custody
        .store(&id, &material)
        .await
        .map_err(|e| ApiError::from_port(e, "conflict"))?;
    let credential = IntegrationCredential::new(
        NewCredential {
            tenant_id: tenant.clone(),
            id,
            provider_key,
            connection_id,
            kind: body.kind,
            secret: reference.clone(),
            policy: body.rotation_policy.unwrap_or_default(),
        },
        chrono::Utc::now(),
    );
    let ops = vec![WriteOp::create(
        credential_doc_id(&id),
        document(&credential, CREDENTIAL)?,
    )];
    if let Err(e) = commit(&ctx, tenant.as_str(), ops, &[], "the credential exists").await {
        // Nothing refers to the stored version: withdraw it.
        let _ = custody.discard(&reference).await;
        return Err(e);
    }
    let location = format!("/api/integrations/credentials/{id}");
    Ok((
        StatusCode::CREATED,
        [(header::LOCATION, location)],
        Json(credential_out(&credential)?),
    )
        .into_response())
}

pub(crate) async fn read_credential(
    ctx: &AppContext,
    tenant: &str,
    raw_id: &str,
) -> Result<(IntegrationCredential, ports::ETag), ApiError> {
    let id = CredentialId::parse(raw_id).map_err(|_| ApiError::not_found("the credential"))?;
    read(ctx, tenant, &credential_doc_id(&id))
        .await?
        .ok_or_else(|| ApiError::not_found("the credential"))
}

pub(crate) async fn get_credential(
    State(ctx): State<AppContext>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    let (credential, _) = read_credential(&ctx, caller.tenant_id(), &id).await?;
    Ok(Json(credential_out(&credential)?).into_response())
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub(crate) struct RotateIn {
    credential_id: String,
    #[serde(default)]
    secret: Option<Map<String, Value>>,
}

pub(crate) async fn rotate(
    State(ctx): State<AppContext>,
    State(settings): State<Arc<Settings>>,
    caller: Caller,
    JsonBody(body): JsonBody<RotateIn>,
) -> Result<Response, ApiError> {
    let tenant = tenant_of(&caller)?;
    let (credential, _) = read_credential(&ctx, tenant.as_str(), &body.credential_id).await?;
    let (rotation_id, status) = match body.secret {
        Some(fields) => {
            let material =
                SecretMaterial::new(credential.kind(), fields).map_err(material_error)?;
            check_token_url(&ctx, &settings, &material)?;
            rotation::start(
                &ctx,
                &tenant,
                credential.id(),
                &material,
                settings.test_timeout,
                false,
            )
            .await?
        }
        None if credential.kind() == CredentialKind::Oauth2RefreshToken => {
            rotation::self_rotate(&ctx, &settings, &credential).await?
        }
        None => {
            return Err(ApiError::bad_request(
                "secret_required",
                "give the new secret: this credential kind cannot rotate itself",
            ));
        }
    };
    let location = format!("/api/integrations/credentials/rotations/{rotation_id}");
    Ok((
        StatusCode::ACCEPTED,
        [(header::LOCATION, location)],
        Json(serde_json::json!({ "rotationId": rotation_id, "status": status })),
    )
        .into_response())
}

pub(crate) async fn get_rotation(
    State(ctx): State<AppContext>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    let id = domain::RotationId::parse(&id).map_err(|_| ApiError::not_found("the rotation"))?;
    let (rotation, _): (Rotation, _) = read(&ctx, caller.tenant_id(), &rotation_doc_id(&id))
        .await?
        .ok_or_else(|| ApiError::not_found("the rotation"))?;
    Ok(Json(rotation).into_response())
}
