//! The failure ledger: `GET /api/integrations/failures[?limit&continuation]` (the tenant's
//! failures of this app, newest documents last as the store pages them) and
//! `GET /api/integrations/failures/{failureId}`. Failures hold redacted text only.

use api_kit::{ApiError, Caller, Paging, QueryParams};
use axum::Json;
use axum::extract::{Path, State};
use axum::response::{IntoResponse, Response};
use axum::routing::MethodRouter;
use axum::routing::get;
use domain::{FailureId, IntegrationFailure};
use functions_runtime::FunctionDecl;
use serde_json::json;

use crate::KitState;
use crate::store::{FAILURE, failure_doc_id};

/// The failure-ledger functions, each declared once with the code that answers it.
pub(crate) fn functions(state: &KitState) -> Vec<(FunctionDecl, MethodRouter)> {
    vec![
        (
            FunctionDecl::http("ListFailures", "integrations/failures", &["get"]),
            get(list).with_state(state.clone()),
        ),
        (
            FunctionDecl::http("GetFailure", "integrations/failures/{failureId}", &["get"]),
            get(show).with_state(state.clone()),
        ),
    ]
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
