//! The failure ledger: `GET /api/integrations/failures[?limit&continuation]` (the tenant's
//! failures of this app, newest documents last as the store pages them) and
//! `GET /api/integrations/failures/{failureId}`. Failures hold redacted text only.

use api_kit::{ApiError, Caller, Paging, QueryParams};
use axum::Json;
use axum::Router;
use axum::extract::{Path, State};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use domain::{FailureId, IntegrationFailure};
use serde_json::json;

use crate::KitState;
use crate::store::{FAILURE, failure_doc_id};

pub(crate) fn routes(state: KitState) -> Router {
    Router::new()
        .route("/api/integrations/failures", get(list))
        .route("/api/integrations/failures/{failure_id}", get(show))
        .with_state(state)
}

async fn list(
    State(KitState(kit)): State<KitState>,
    caller: Caller,
    QueryParams(paging): QueryParams<Paging>,
) -> Result<Response, ApiError> {
    let query = ports::Query::partition(caller.tenant_id()).filter("docType", FAILURE);
    let (items, continuation) = kit
        .store
        .page::<IntegrationFailure>(&kit.ctx, query, paging)
        .await?;
    Ok(Json(json!({"items": items, "continuation": continuation})).into_response())
}

async fn show(
    State(KitState(kit)): State<KitState>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    let id = FailureId::parse(&id).map_err(|_| ApiError::not_found("the failure"))?;
    let (failure, _) = kit
        .store
        .read::<IntegrationFailure>(&kit.ctx, caller.tenant_id(), &failure_doc_id(&id))
        .await?
        .ok_or_else(|| ApiError::not_found("the failure"))?;
    Ok(Json(failure).into_response())
}
