//! `GET /api/webhooks/payloads/{sourceId}/{key}`: the raw body of an inbound webhook, for
//! the subscribers its `WebhookReceived` event reached. The event's `payloadRef` is
//! `webhooks-raw/<tenant>/<sourceId>/<key>`; the route reads only the caller's tenant's
//! bodies (any other is 404, as for an unknown one), never writes, and serves what blob
//! storage still holds (the bodies' retention is the route's).

use api_kit::{ApiError, Caller};
use app_context::AppContext;
use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use domain::{SourceId, TenantId};
use ports::PortError;

use crate::RAW_CONTAINER;

pub(crate) async fn get_payload(
    State(ctx): State<AppContext>,
    caller: Caller,
    Path((source, key)): Path<(String, String)>,
) -> Result<Response, ApiError> {
    let tenant = TenantId::parse_tenant(caller.tenant_id())
        .map_err(|e| ApiError::Forbidden(e.to_string()))?;
    let missing = || ApiError::not_found("the payload");
    // Ids that cannot exist are simply not there (and never reach a blob name).
    let source = SourceId::parse(&source).map_err(|_| missing())?;
    if key.len() != 64 || !key.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')) {
        return Err(missing());
    }
    let (bytes, info) = match ctx
        .blobs
        .get(RAW_CONTAINER, &format!("{tenant}/{source}/{key}"))
        .await
    {
        Ok(found) => found,
        Err(PortError::NotFound) => return Err(missing()),
        Err(e) => return Err(ApiError::from_port(e, "conflict")),
    };
    let mut response = (StatusCode::OK, Body::from(bytes)).into_response();
    let headers = response.headers_mut();
    // The vendor chose the content type: kept, but never rendered by a browser as ours.
    let content_type = info
        .content_type
        .and_then(|t| HeaderValue::from_str(&t).ok())
        .unwrap_or(HeaderValue::from_static("application/octet-stream"));
    headers.insert(header::CONTENT_TYPE, content_type);
    headers.insert(
        header::CONTENT_DISPOSITION,
        HeaderValue::from_static("attachment"),
    );
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    headers.insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static("private, no-store"),
    );
    Ok(response)
}
