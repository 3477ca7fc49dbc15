//! The registry's aggregate storage (container `registry`), through the shared
//! `api_kit::Aggregates`.

use api_kit::{Aggregates, ApiError};
use app_context::AppContext;
use ports::{ETag, WriteOp};
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::Value;

use crate::{CONTAINER, SOURCE};

pub(crate) const STORE: Aggregates = Aggregates::new(CONTAINER, SOURCE);

pub(crate) fn document<T: Serialize>(aggregate: &T, doc_type: &str) -> Result<Value, ApiError> {
    Aggregates::document(aggregate, doc_type)
}

pub(crate) async fn commit(
    ctx: &AppContext,
    partition: &str,
    ops: Vec<WriteOp>,
    events: &[domain::DomainEvent],
    conflict: &str,
) -> Result<(), ApiError> {
    STORE.commit(ctx, partition, ops, events, conflict).await
}

pub(crate) async fn read<T: DeserializeOwned>(
    ctx: &AppContext,
    partition: &str,
    id: &str,
) -> Result<Option<(T, ETag)>, ApiError> {
    STORE.read(ctx, partition, id).await
}
