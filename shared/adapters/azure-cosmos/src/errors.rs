//! What a Cosmos DB answer means for the port.
//!
//! The SDK already retries what is safe to retry (429 honouring `x-ms-retry-after-ms`, up to
//! its throttling budget; session and failover retries). What reaches this module is what the
//! SDK gave up on, so nothing here retries: a 429 becomes `PortError::Throttled` carrying the
//! server's last retry-after, for the caller's own policy.

use std::time::Duration;

use azure_data_cosmos::CosmosError;
use ports::PortError;
use serde::Deserialize;

/// The port's reading of a status code (`sub_status` is Cosmos's `x-ms-substatus`).
#[derive(Clone, Debug, PartialEq)]
pub(crate) enum Class {
    NotFound,
    Conflict,
    PreconditionFailed,
    Throttled(Option<Duration>),
    Unauthenticated,
    Timeout,
    TooLarge,
    BadRequest,
    /// Anything else: the backend failed (5xx, transport, an answer we did not expect).
    Backend,
}

pub(crate) fn classify(status: u16, retry_after: Option<Duration>) -> Class {
    match status {
        404 => Class::NotFound,
        409 => Class::Conflict,
        412 => Class::PreconditionFailed,
        429 => Class::Throttled(retry_after),
        // 403 is what Cosmos answers when the identity has no data-plane role assignment:
        // a credentials problem to the caller, like 401.
        401 | 403 => Class::Unauthenticated,
        408 => Class::Timeout,
        413 => Class::TooLarge,
        400 => Class::BadRequest,
        _ => Class::Backend,
    }
}

/// The retry-after the server sent with the final answer (`x-ms-retry-after-ms`).
fn retry_after(err: &CosmosError) -> Option<Duration> {
    err.response()
        .and_then(|r| r.headers().retry_after_ms)
        .map(Duration::from_millis)
}

fn status_of(err: &CosmosError) -> u16 {
    u16::from(err.status().status_code())
}

/// Maps an SDK error onto the port. The source is kept for `Backend` (its text names the
/// endpoint and the status, never a key: the SDK signs requests but does not echo them).
pub(crate) fn to_port(err: CosmosError) -> PortError {
    // Client-side deadlines (end-to-end latency policy, request timeouts) carry synthetic
    // statuses; the SDK knows them as timeouts.
    if err.status().is_timeout() {
        return PortError::Timeout;
    }
    let class = classify(status_of(&err), retry_after(&err));
    from_class(class, err)
}

pub(crate) fn from_class(class: Class, err: CosmosError) -> PortError {
    match class {
        Class::NotFound => PortError::NotFound,
        Class::Conflict => PortError::AlreadyExists,
        Class::PreconditionFailed => PortError::PreconditionFailed,
        Class::Throttled(retry_after) => PortError::Throttled { retry_after },
        Class::Unauthenticated => {
            tracing::warn!(error = %err, "Cosmos DB refused the credentials");
            PortError::Unauthenticated
        }
        Class::Timeout => PortError::Timeout,
        Class::TooLarge => {
            PortError::Invalid("the request is larger than Cosmos DB accepts".into())
        }
        Class::BadRequest => PortError::Invalid(format!("Cosmos DB refused the request: {err}")),
        Class::Backend => PortError::backend("cosmos", err),
    }
}

/// One operation's result inside a transactional batch response.
#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub(crate) struct OpResult {
    pub(crate) status_code: u16,
    #[serde(rename = "eTag", default)]
    pub(crate) etag: Option<String>,
    #[serde(default)]
    pub(crate) retry_after_milliseconds: Option<u64>,
}

/// Why a batch did not commit: the operation that failed (when the response says), its
/// status and retry-after.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct BatchFailure {
    pub(crate) index: Option<usize>,
    pub(crate) status: u16,
    pub(crate) retry_after: Option<Duration>,
}

/// Reads a batch response: every etag when all operations succeeded, otherwise the first
/// operation that failed on its own (424 Failed Dependency marks the ones that were rolled
/// back because of it).
pub(crate) fn batch_outcome(
    top_status: u16,
    results: &[OpResult],
    expected: usize,
) -> Result<Vec<Option<String>>, BatchFailure> {
    let failed = results
        .iter()
        .position(|r| r.status_code >= 300 && r.status_code != 424)
        .or_else(|| results.iter().position(|r| r.status_code >= 300));
    if let Some(index) = failed {
        let r = &results[index];
        return Err(BatchFailure {
            index: Some(index),
            status: r.status_code,
            retry_after: r.retry_after_milliseconds.map(Duration::from_millis),
        });
    }
    if top_status >= 300 || results.len() != expected {
        // A failed batch without per-operation detail, or an answer that does not match what
        // was sent: nothing says which operation to blame.
        return Err(BatchFailure {
            index: None,
            status: if top_status >= 300 { top_status } else { 500 },
            retry_after: None,
        });
    }
    Ok(results.iter().map(|r| r.etag.clone()).collect())
}

/// The port's error for a batch Cosmos refused.
pub(crate) fn batch_failure_to_port(failure: &BatchFailure) -> PortError {
    match classify(failure.status, failure.retry_after) {
        Class::NotFound => PortError::NotFound,
        Class::Conflict => PortError::AlreadyExists,
        Class::PreconditionFailed => PortError::PreconditionFailed,
        Class::Throttled(retry_after) => PortError::Throttled { retry_after },
        Class::Unauthenticated => PortError::Unauthenticated,
        Class::Timeout => PortError::Timeout,
        Class::TooLarge => PortError::Invalid("the batch is larger than Cosmos DB accepts".into()),
        Class::BadRequest => PortError::Invalid(match failure.index {
            Some(i) => format!("Cosmos DB refused operation {i} of the batch"),
            None => "Cosmos DB refused the batch".to_owned(),
        }),
        Class::Backend => PortError::backend(
            "cosmos",
            format!(
                "the transactional batch failed with status {}",
                failure.status
            ),
        ),
    }
}

/// The per-operation results a failed batch carries in its error response, if any.
pub(crate) fn batch_results_of(err: &CosmosError) -> Option<Vec<OpResult>> {
    let response = err.response()?;
    response.body().clone().into_single::<Vec<OpResult>>().ok()
}

/// The status and retry-after of a whole-batch error (no per-operation detail).
pub(crate) fn batch_error(err: &CosmosError) -> (u16, Option<Duration>) {
    (status_of(err), retry_after(err))
}

#[cfg(test)]
mod tests;
