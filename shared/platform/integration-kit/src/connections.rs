//! Connections: a tenant's link to one provider of the app, its secret in custody, tested
//! live before it is used.

use std::time::Instant;

use api_kit::{ApiError, Caller, JsonBody};
use axum::Json;
use axum::extract::{Path, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::MethodRouter;
use axum::routing::{get, post};
use chrono::Utc;
use custody::SecretMaterial;
use domain::{
    ConnectionConfig, ConnectionId, ConnectionTestResult, CredentialKind, DisplayName, FailureId,
    FailureSubject, IntegrationConnection, IntegrationFailure, NewConnection, NewFailure,
    ProviderKey, RedactedText, TenantId,
};
use functions_runtime::FunctionDecl;
use ports::WriteOp;
use resilience::CallError;
use serde::Deserialize;
use serde_json::{Map, Value};

use crate::provider::ProviderCall;
use crate::store::{CONNECTION, FAILURE, connection_doc_id, failure_doc_id};
use crate::{Kit, KitState};

/// The connection functions, each declared once with the code that answers it.
pub(crate) fn functions(state: &KitState) -> Vec<(FunctionDecl, MethodRouter)> {
    vec![
        (
            FunctionDecl::http("CreateConnection", "integrations/connections", &["post"]),
            post(create).with_state(state.clone()),
        ),
        (
            FunctionDecl::http(
                "GetConnection",
                "integrations/connections/{connectionId}",
                &["get"],
            ),
            get(show).with_state(state.clone()),
        ),
    ]
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct ConnectionIn {
    provider_key: String,
    display_name: String,
    #[serde(default)]
    config: ConnectionConfig,
    credential: CredentialIn,
}

#[derive(Deserialize)]
struct CredentialIn {
    kind: CredentialKind,
    #[serde(flatten)]
    fields: Map<String, Value>,
}

pub(crate) fn tenant_of(caller: &Caller) -> Result<TenantId, ApiError> {
    TenantId::parse_tenant(caller.tenant_id()).map_err(|e| ApiError::Forbidden(e.to_string()))
}

/// The connection as the API shows it: the aggregate's JSON (references only, never
/// secret fields).
fn connection_out(c: &IntegrationConnection) -> Result<Value, ApiError> {
    serde_json::to_value(c).map_err(ApiError::internal)
}

/// How long a connection's reservation lasts: longer than its creation takes.
const PENDING_CONNECTION_TTL: std::time::Duration = std::time::Duration::from_secs(600);

/// `POST /api/integrations/connections`: the request checked, the secret to custody, a
/// live test, and the connection saved with what the test said.
async fn create(
    State(KitState(kit)): State<KitState>,
    caller: Caller,
    JsonBody(body): JsonBody<ConnectionIn>,
) -> Result<Response, ApiError> {
    let tenant = tenant_of(&caller)?;
    // An endpoint an operator approved for the tenant is allowed despite being private.
    let approved = crate::private_endpoints::approved_host(&kit, tenant.as_str(), &body.config)
        .await
        .map_err(|e| ApiError::from_port(e, "approvals"))?;
    let (provider, display_name, material) = check_request(&kit, &body, approved.is_some())?;
    let provider_key = ProviderKey::parse(provider.key()).map_err(ApiError::internal)?;
    let id = ConnectionId::new();
    // The reservation that lets the registry see the connection is this tenant's before
    // its document exists (the registry refuses a credential naming anyone else's).
    kit.ctx
        .documents
        .batch(
            kit.app.slug,
            tenant.as_str(),
            vec![
                WriteOp::create(
                    app_context::commands::pending_connection_doc_id(&id),
                    serde_json::json!({"docType": "pendingConnection"}),
                )
                .with_ttl(PENDING_CONNECTION_TTL),
            ],
        )
        .await
        .map_err(|e| ApiError::from_port(e, "the connection exists"))?;
    let (credential_id, _reference) = api_kit::custody::store_credential(
        &kit.ctx,
        &caller,
        provider.key(),
        body.credential.kind,
        body.credential.fields,
        Some(&id.to_string()),
    )
    .await?;
    let mut connection = IntegrationConnection::new(
        NewConnection {
            tenant_id: tenant.clone(),
            id,
            provider_key,
            display_name,
            config: body.config,
            credential_id,
        },
        Utc::now(),
    );
    let tested = test(
        &kit,
        &tenant,
        &id,
        provider.as_ref(),
        connection.config(),
        &material,
    )
    .await;
    let (mut ops, events, problem) = record_test(&mut connection, &tenant, tested, &material)?;
    ops.insert(
        0,
        WriteOp::create(
            connection_doc_id(&id),
            api_kit::Aggregates::document(&connection, CONNECTION)?,
        ),
    );
    kit.store
        .commit(
            &kit.ctx,
            tenant.as_str(),
            ops,
            &events,
            "the connection exists",
        )
        .await?;
    // Failover sees it at once in this process (others within the list's lifetime).
    kit.connections.invalidate(tenant.as_str()).await;
    if let Some((class, message, failure_id)) = problem {
        tracing::info!(tenant = %tenant, connection = %id, ?class, "a connection test failed");
        return Err(failed_test(id, class, &message, failure_id));
    }
    Ok((
        StatusCode::CREATED,
        [(
            header::LOCATION,
            format!("/api/integrations/connections/{id}"),
        )],
        Json(connection_out(&connection)?),
    )
        .into_response())
}

/// Everything about a connection request that can be checked before anything is stored:
/// the provider, the name, the credential's kind and fields, the config (SSRF first, then
/// the provider's typed config, then its own rules).
fn check_request<'k>(
    kit: &'k Kit,
    body: &ConnectionIn,
    approved_private: bool,
) -> Result<
    (
        &'k std::sync::Arc<dyn crate::Provider>,
        DisplayName,
        SecretMaterial,
    ),
    ApiError,
> {
    let provider = kit.provider(&body.provider_key).ok_or_else(|| {
        let known: Vec<_> = kit.app.providers.iter().map(|p| p.key()).collect();
        ApiError::bad_request(
            "unknown_provider",
            format!(
                "the {} app serves the providers {}",
                kit.app.slug,
                known.join(", ")
            ),
        )
    })?;
    let display_name = DisplayName::parse(&body.display_name)
        .map_err(|e| ApiError::bad_request("invalid_display_name", e.to_string()))?;
    if !provider.credential_kinds().contains(&body.credential.kind) {
        return Err(ApiError::bad_request(
            "invalid_credential",
            format!(
                "{} takes credentials of kind {}",
                provider.key(),
                provider
                    .credential_kinds()
                    .iter()
                    .map(|k| serde_json::to_value(k)
                        .ok()
                        .and_then(|v| v.as_str().map(str::to_owned))
                        .unwrap_or_default())
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        ));
    }
    // An internal vendor address is refused as such, whatever else is wrong.
    check_base_url(kit, &body.config, approved_private)?;
    kit.check_config(provider.key(), &body.config)
        .map_err(|e| ApiError::InvalidField {
            code: "invalid_config",
            detail: format!(
                "config{}: {}",
                if e.path.is_empty() {
                    String::new()
                } else {
                    format!(".{}", e.path)
                },
                e.message
            ),
            pointer: e.pointer_below("config"),
        })?;
    if let Some(p) = body.config.get("priority")
        && !p.is_u64()
    {
        return Err(ApiError::bad_request(
            "invalid_config",
            "priority must be a non-negative integer (lower goes first)",
        ));
    }
    if let Some(f) = body.config.get(FALLBACK)
        && f.as_str()
            .is_none_or(|id| domain::ConnectionId::parse(id).is_err())
    {
        return Err(ApiError::bad_request(
            "invalid_config",
            "fallback must be the id of another connection of this app (conn_…)",
        ));
    }
    // Validated here too, so a bad secret is refused before anything is stored.
    let material = SecretMaterial::new(body.credential.kind, body.credential.fields.clone())
        .map_err(|e| ApiError::bad_request("invalid_secret", e.to_string()))?;
    Ok((provider, display_name, material))
}

/// Records the connection test's outcome on the connection: the event of an established
/// connection, or one `IntegrationFailure` (with its document) and what to answer.
#[allow(clippy::type_complexity)]
fn record_test(
    connection: &mut IntegrationConnection,
    tenant: &TenantId,
    tested: Result<u64, resilience::CallError>,
    material: &SecretMaterial,
) -> Result<
    (
        Vec<WriteOp>,
        Vec<domain::DomainEvent>,
        Option<(domain::FailureClassification, RedactedText, FailureId)>,
    ),
    ApiError,
> {
    let mut ops = Vec::new();
    let mut events = Vec::new();
    let id = connection.id();
    let problem = match tested {
        Ok(latency_ms) => {
            events.extend(
                connection
                    .record_test(
                        ConnectionTestResult::succeeded(Utc::now(), Some(latency_ms)),
                        Utc::now(),
                    )
                    .map_err(ApiError::internal)?,
            );
            None
        }
        Err(e) => {
            let failure_id = FailureId::new();
            let message = redact(&e, material);
            let (failure, event) =
                IntegrationFailure::record(
                    NewFailure {
                        tenant_id: tenant.clone(),
                        id: failure_id,
                        subject: FailureSubject::Connection(id),
                        provider_key: Some(connection.provider_key().clone()),
                        classification: e.class(),
                        vendor_status: e.failure.vendor_status,
                        vendor_code: e.failure.vendor_code.as_deref().map(|c| {
                            RedactedText::redact(c, &material.values().collect::<Vec<_>>())
                        }),
                        message: message.clone(),
                        retryable: e.retryable,
                        dead_lettered: false,
                        trace_id: None,
                    },
                    Utc::now(),
                );
            connection
                .record_test(
                    ConnectionTestResult::failed(Utc::now(), failure_id, message.clone()),
                    Utc::now(),
                )
                .map_err(ApiError::internal)?;
            ops.push(WriteOp::create(
                failure_doc_id(&failure_id),
                api_kit::Aggregates::document(&failure, FAILURE)?,
            ));
            events.push(event);
            Some((e.class(), message, failure_id))
        }
    };
    Ok((ops, events, problem))
}

/// The answer to a connection whose test failed: the caller's to fix (422) when the
/// credential was refused or the input is wrong, else the vendor's trouble (502).
fn failed_test(
    id: ConnectionId,
    class: domain::FailureClassification,
    message: &RedactedText,
    failure_id: FailureId,
) -> ApiError {
    let detail = format!(
        "connection {id} was saved as failed: {} (failure {failure_id})",
        message.as_str()
    );
    match class {
        domain::FailureClassification::Auth
        | domain::FailureClassification::Validation
        | domain::FailureClassification::Unprocessable => {
            ApiError::unprocessable("connection_test_failed", detail)
        }
        _ => ApiError::Upstream(detail),
    }
}

/// Config URLs the vendor is called at (`baseUrl`, `endpoint`) are user-supplied: each
/// must be an http(s) URL, https outside development, and not an internal address written
/// as an IP literal (names are checked by the guard's resolver at connect time).
///
/// `approved_private`: the `baseUrl` is an endpoint an operator approved for the tenant
/// ([`crate::private_endpoints`]): an http(s) URL is all it must be.
fn check_base_url(
    kit: &Kit,
    config: &ConnectionConfig,
    approved_private: bool,
) -> Result<(), ApiError> {
    for field in [crate::provider::BASE_URL, crate::provider::ENDPOINT] {
        let Some(raw) = config.get(field) else {
            continue;
        };
        let text = raw.as_str().ok_or_else(|| {
            ApiError::bad_request("invalid_url", format!("{field} must be an http(s) URL"))
        })?;
        if approved_private && field == crate::provider::BASE_URL {
            continue;
        }
        api_kit::urls::user_url(&kit.ctx, &kit.guard, field, text)?;
    }
    // A bare host (an SMTP server, say): an IP literal must not be internal; a name is
    // checked when it is resolved, at connect time.
    if let Some(host) = config
        .get(crate::provider::HOST)
        .and_then(serde_json::Value::as_str)
    {
        api_kit::urls::user_host(&kit.guard, crate::provider::HOST, host)?;
    }
    Ok(())
}

/// Redacts a failure's message against the credential's own values (a vendor may echo a
/// key back in an error).
pub(crate) fn redact(e: &CallError, material: &SecretMaterial) -> RedactedText {
    RedactedText::redact(&e.failure.message, &material.values().collect::<Vec<_>>())
}

/// Tests a connection's credential against the vendor through the pipeline; answers the
/// latency in milliseconds.
pub(crate) async fn test(
    kit: &Kit,
    tenant: &TenantId,
    connection: &ConnectionId,
    provider: &dyn crate::Provider,
    config: &ConnectionConfig,
    material: &SecretMaterial,
) -> Result<u64, CallError> {
    let key = crate::call_key(tenant.as_str(), provider.key(), connection);
    let reach = crate::private_endpoints::reach(kit, tenant.as_str(), config).await?;
    let call = ProviderCall {
        pipeline: &kit.pipeline,
        http: &reach.http,
        guard: &reach.guard,
        key: &key,
        config,
        credential: material,
        traceparent: None,
        idempotency_key: None,
        max_attempts: None,
        rate_limit: None,
        receipt_url: None,
        tokens: &kit.tokens,
    };
    let started = Instant::now();
    provider.test_connection(&call).await?;
    Ok(u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX))
}

pub(crate) async fn read_connection(
    kit: &Kit,
    tenant: &str,
    raw_id: &str,
) -> Result<(IntegrationConnection, ports::ETag), ApiError> {
    let id = ConnectionId::parse(raw_id).map_err(|_| ApiError::not_found("the connection"))?;
    kit.store
        .read(&kit.ctx, tenant, &connection_doc_id(&id))
        .await?
        .ok_or_else(|| ApiError::not_found("the connection"))
}

async fn show(
    State(KitState(kit)): State<KitState>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    let (connection, _) = read_connection(&kit, caller.tenant_id(), &id).await?;
    let mut out = connection_out(&connection)?;
    // Where to point the vendor's delivery receipts (for vendors configured by hand, such
    // as an Event Grid subscription for Azure Communication Services).
    if let Some(provider) = kit.provider(connection.provider_key().as_str())
        && let Ok(resolved) = kit
            .resolver
            .resolve(caller.tenant_id(), &connection.credential_id())
            .await
        && let Some(url) = kit.receipt_url_for(
            caller.tenant_id(),
            &connection.id(),
            provider.as_ref(),
            &resolved.material,
        )
        && let Value::Object(m) = &mut out
    {
        m.insert("receiptUrl".into(), Value::String(url));
    }
    Ok(Json(out).into_response())
}

/// The tenant's usable connections of this app's providers, in priority order
/// (`config.priority`, lowest first; absent = 100; then oldest first): sorted once here, as
/// cached (one query per tenant and [`CONNECTIONS_TTL`]: every run of a failover app and
/// every model call asks for them).
async fn usable_connections(
    kit: &Kit,
    tenant: &str,
) -> Result<std::sync::Arc<Vec<IntegrationConnection>>, ports::PortError> {
    let mut out = Vec::new();
    let mut continuation = None;
    loop {
        let page = kit
            .ctx
            .documents
            .query(
                kit.app.slug,
                &ports::Query::partition(tenant)
                    .filter("docType", CONNECTION)
                    .limit(200)
                    .after(continuation),
            )
            .await?;
        for doc in page.documents {
            if let Ok(c) = doc.parse::<IntegrationConnection>()
                && c.is_usable()
                && kit.provider(c.provider_key().as_str()).is_some()
            {
                out.push(c);
            }
        }
        continuation = page.continuation;
        if continuation.is_none() {
            break;
        }
    }
    out.sort_by_key(|c| (priority(c), c.created_at()));
    Ok(std::sync::Arc::new(out))
}

/// The tenant's usable connections of this app by priority, from the short cache.
pub(crate) async fn by_priority(
    kit: &Kit,
    tenant: &str,
) -> Result<std::sync::Arc<Vec<IntegrationConnection>>, ports::PortError> {
    kit.connections
        .try_get_with_by_ref(tenant, usable_connections(kit, tenant))
        .await
        .map_err(|e| (*e).clone())
}

fn priority(c: &IntegrationConnection) -> u64 {
    c.config()
        .get("priority")
        .and_then(Value::as_u64)
        .unwrap_or(100)
}

/// How long a tenant's list of connections is reused for failover: a connection made in
/// another process is a failover candidate after at most this long (one made here, at once).
pub(crate) const CONNECTIONS_TTL: std::time::Duration = std::time::Duration::from_secs(5);

/// The tenant's usable connections of this app, failover order: the asked-for one first,
/// then by `config.priority` (lowest first; absent = 100), then oldest first.
pub(crate) async fn failover_candidates(
    kit: &Kit,
    tenant: &str,
    primary: &IntegrationConnection,
) -> Result<Vec<IntegrationConnection>, ports::PortError> {
    let usable = by_priority(kit, tenant).await?;
    Ok(std::iter::once(primary.clone())
        .chain(usable.iter().filter(|c| c.id() != primary.id()).cloned())
        .collect())
}

/// The connection `primary` names as its fallback (`config.fallback`, for apps without
/// failover), when it is usable: the run's second and last candidate.
pub(crate) async fn named_fallback(
    kit: &Kit,
    tenant: &str,
    primary: &IntegrationConnection,
) -> Result<Option<IntegrationConnection>, ports::PortError> {
    let Some(named) = primary.config().get(FALLBACK).and_then(Value::as_str) else {
        return Ok(None);
    };
    let usable = by_priority(kit, tenant).await?;
    Ok(usable
        .iter()
        .find(|c| c.id().to_string() == named && c.id() != primary.id())
        .cloned())
}

/// The config member naming a connection's fallback.
pub(crate) const FALLBACK: &str = "fallback";
