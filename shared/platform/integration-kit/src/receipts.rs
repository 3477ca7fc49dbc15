//! Delivery receipts: `POST /api/integrations/receipts/{tenantId}/{connectionId}` (no bearer
//! token: the vendor's signature, checked with the connection's own credential, is the
//! authentication). Each receipt finds its run through the vendor message id and moves the
//! run's delivery state forward.

use api_kit::ApiError;
use axum::body::Bytes;
use axum::extract::{Path, RawQuery, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::MethodRouter;
use axum::routing::post;
use domain::{ConnectionId, IntegrationConnection, RunId, TenantId};
use functions_runtime::FunctionDecl;
use ports::{PortError, WriteOp};
use serde::Deserialize;

use crate::provider::{ReceiptError, ReceiptRequest};
use crate::store::{RUN, StoredRun, connection_doc_id, run_doc_id, vendor_message_doc_id};
use crate::{Kit, KitState};

/// Receipts are small; anything bigger is not one.
const MAX_RECEIPT: usize = 256 * 1024;

/// The receipts function, declared once with the code that answers it.
pub(crate) fn functions(state: &KitState) -> Vec<(FunctionDecl, MethodRouter)> {
    vec![(
        FunctionDecl::http(
            "ReceiveReceipts",
            "integrations/receipts/{tenantId}/{connectionId}",
            &["post"],
        )
        // The vendor's signature, checked with the connection's credential.
        .public(),
        post(receive).with_state(state.clone()),
    )]
}

/// The index from a vendor's message (or record) id to the last run that named it
/// ([`Done::vendor_message_id`](crate::Done::vendor_message_id)).
#[derive(Deserialize)]
pub(crate) struct MessageIndex {
    #[serde(rename = "runId")]
    pub(crate) run_id: RunId,
}

async fn receive(
    State(KitState(kit)): State<KitState>,
    Path((tenant, connection)): Path<(String, String)>,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, ApiError> {
    if body.len() > MAX_RECEIPT {
        return Err(ApiError::PayloadTooLarge);
    }
    // Unknown tenants and connections look the same: not found.
    let tenant =
        TenantId::parse_tenant(&tenant).map_err(|_| ApiError::not_found("the connection"))?;
    let id = ConnectionId::parse(&connection).map_err(|_| ApiError::not_found("the connection"))?;
    let (connection, _) = kit
        .store
        .read::<IntegrationConnection>(&kit.ctx, tenant.as_str(), &connection_doc_id(&id))
        .await?
        .ok_or_else(|| ApiError::not_found("the connection"))?;
    let provider = kit
        .provider(connection.provider_key().as_str())
        .ok_or_else(|| ApiError::not_found("the connection"))?;
    let material = kit
        .resolver
        .resolve(tenant.as_str(), &connection.credential_id())
        .await
        .map_err(|_| ApiError::not_found("the connection"))?
        .material
        .clone();
    let mut url = kit
        .receipt_url(tenant.as_str(), &id)
        .ok_or(ApiError::Unavailable)?;
    // The vendor signed the URL it was given, query included.
    if let Some(q) = query.filter(|q| !q.is_empty()) {
        url = format!("{url}?{q}");
    }
    let request = ReceiptRequest {
        url: &url,
        headers: &headers,
        body: &body,
    };
    let receipts = match provider.parse_receipts(&material, connection.config(), &request) {
        Ok(receipts) => receipts,
        // The vendor's subscription handshake: answered as it expects, nothing recorded.
        Err(ReceiptError::Handshake(body)) => return Ok(axum::Json(body).into_response()),
        Err(ReceiptError::NotSupported) => {
            return Err(ApiError::not_found("receipts for this provider"));
        }
        Err(ReceiptError::Unauthorized) => {
            return Err(ApiError::Unauthorized(
                "the receipt's signature did not verify".into(),
            ));
        }
        Err(ReceiptError::Malformed(why)) => {
            return Err(ApiError::bad_request("invalid_receipt", why));
        }
    };
    for receipt in &receipts {
        apply(&kit, &tenant, provider.key(), receipt).await?;
    }
    Ok(StatusCode::NO_CONTENT.into_response())
}

/// Applies one receipt to its run, retrying on a concurrent change. A receipt for a message
/// we do not know (sent before the run was recorded, or not ours) is acknowledged and
/// dropped: the vendor would only retry it.
pub(crate) async fn apply(
    kit: &Kit,
    tenant: &TenantId,
    provider: &str,
    receipt: &crate::Receipt,
) -> Result<(), ApiError> {
    let Some((index, _)) = kit
        .store
        .read::<MessageIndex>(
            &kit.ctx,
            tenant.as_str(),
            &vendor_message_doc_id(provider, &receipt.message_id),
        )
        .await?
    else {
        tracing::info!(tenant = %tenant, provider, "a receipt for an unknown message was dropped");
        return Ok(());
    };
    for _ in 0..5 {
        let Some((mut stored, etag)) = kit
            .store
            .read::<StoredRun>(&kit.ctx, tenant.as_str(), &run_doc_id(&index.run_id))
            .await?
        else {
            return Ok(());
        };
        if !stored.apply_receipt(receipt, chrono::Utc::now()) {
            return Ok(());
        }
        let doc = api_kit::Aggregates::document(&stored, RUN)?;
        match kit
            .ctx
            .documents
            .batch(
                kit.app.slug,
                tenant.as_str(),
                vec![WriteOp::replace(run_doc_id(&index.run_id), doc, Some(etag))],
            )
            .await
        {
            Ok(_) => return Ok(()),
            Err(PortError::PreconditionFailed) => continue,
            Err(e) => return Err(ApiError::from_port(e, "conflict")),
        }
    }
    Err(ApiError::Unavailable)
}
