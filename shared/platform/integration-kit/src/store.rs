//! Document ids and the stored shapes of the kit's aggregates.

use domain::{ConnectionId, FailureId, IntegrationRun, RunId};
use serde::{Deserialize, Serialize};
use sha2::{Digest as _, Sha256};

pub(crate) const CONNECTION: &str = "connection";
pub(crate) const RUN: &str = "run";
pub(crate) const FAILURE: &str = "failure";
pub(crate) const IDEMPOTENCY: &str = "idempotency";
pub(crate) const VENDOR_MESSAGE: &str = "vendorMessage";
pub(crate) const RECEIPT_WATCH: &str = "receiptWatch";

/// The connection's document id: part of the contract with the webhook gateway, which
/// checks a source's connection by it.
pub(crate) use app_context::commands::connection_doc_id;

pub(crate) fn run_doc_id(id: &RunId) -> String {
    format!("run-{id}")
}

pub(crate) fn failure_doc_id(id: &FailureId) -> String {
    format!("failure-{id}")
}

/// Keys are the caller's text (printable ASCII, up to 255): hashed, so any key makes a valid,
/// fixed-length document id.
pub(crate) fn idempotency_doc_id(key: &str) -> String {
    format!("idem-{}", hex(&Sha256::digest(key.as_bytes())))
}

pub(crate) fn vendor_message_doc_id(provider: &str, message_id: &str) -> String {
    format!(
        "vmsg-{provider}-{}",
        hex(&Sha256::digest(message_id.as_bytes()))
    )
}

/// One per message whose receipt is to be asked for (at most one per run).
pub(crate) fn receipt_watch_doc_id(run: &RunId) -> String {
    format!("rwatch-{run}")
}

/// A fingerprint of a run request, so a key reused for a different request is refused.
pub(crate) fn request_fingerprint(connection: &str, operation: &str, input: &[u8]) -> String {
    let mut h = Sha256::new();
    for part in [connection.as_bytes(), operation.as_bytes(), input] {
        h.update((part.len() as u64).to_be_bytes());
        h.update(part);
    }
    hex(&h.finalize())
}

pub(crate) fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// The stored run: the aggregate plus where it was executed (failover may pick another
/// connection than the one asked for) and its delivery receipts.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct StoredRun {
    #[serde(flatten)]
    pub(crate) run: IntegrationRun,
    /// Fingerprint of the request, for idempotency-key reuse checks.
    pub(crate) request: String,
    /// The connection that served the run (after failover).
    #[serde(default)]
    pub(crate) served_by: Option<ConnectionId>,
    #[serde(default)]
    pub(crate) served_by_provider: Option<String>,
    /// Connections tried and why they were passed over.
    #[serde(default)]
    pub(crate) failovers: Vec<Failover>,
    /// What the vendor's delivery receipts said, normalised.
    #[serde(default)]
    pub(crate) delivery: Option<Delivery>,
    /// The operation's output when it fits the document ([`INLINE_OUTPUT`]); while the run
    /// waits, what the provider already knows (the vendor's job id).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) output: Option<serde_json::Value>,
    /// Where a larger output is kept (`runs-output/<tenant>/<run id>` in blob storage).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) output_ref: Option<String>,
    /// A waiting run: what its provider needs to look again, and when.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) waiting: Option<Waiting>,
    /// A call answered in its request ([`crate::direct`]) whose outcome is not written yet:
    /// what the `SweepDirectRuns` timer looks for.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub(crate) direct: bool,
}

impl StoredRun {
    /// A new run's document, nothing tried yet.
    pub(crate) fn new(run: IntegrationRun) -> Self {
        StoredRun {
            run,
            request: String::new(),
            served_by: None,
            served_by_provider: None,
            failovers: Vec::new(),
            delivery: None,
            output: None,
            output_ref: None,
            waiting: None,
            direct: false,
        }
    }
}

/// The largest output kept on the run's document (serialised bytes); larger ones go to blob
/// storage.
pub(crate) const INLINE_OUTPUT: usize = 16 * 1024;

/// How a waiting run stands.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct Waiting {
    /// The provider's own state (the vendor's id of the job), handed back on resume.
    pub(crate) state: serde_json::Value,
    pub(crate) since: chrono::DateTime<chrono::Utc>,
    /// Past this the run fails with `timeout` (the operation's maximum wait).
    pub(crate) deadline: chrono::DateTime<chrono::Utc>,
    /// When the vendor is asked next (a scheduled message on `runs-<slug>` is due then).
    pub(crate) next_check: chrono::DateTime<chrono::Utc>,
    /// Times the vendor has been asked.
    pub(crate) checks: u32,
    /// Checks in a row that failed and may be tried again.
    #[serde(default)]
    pub(crate) failed_checks: u32,
    /// Checks scheduled so far: numbers each scheduled message, so no two share an id (the
    /// bus drops a repeated message id).
    #[serde(default)]
    pub(crate) scheduled: u32,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct Delivery {
    pub(crate) state: crate::DeliveryState,
    pub(crate) detail: Option<String>,
    pub(crate) updated_at: chrono::DateTime<chrono::Utc>,
    /// Every receipt received, in arrival order (duplicates dropped).
    pub(crate) receipts: Vec<ReceiptSeen>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct ReceiptSeen {
    pub(crate) state: crate::DeliveryState,
    pub(crate) detail: Option<String>,
    pub(crate) at: chrono::DateTime<chrono::Utc>,
}

impl StoredRun {
    /// Applies a receipt: recorded once (a repeat of the same state and detail is dropped);
    /// the run's state moves only forward, and the first terminal state stays. Answers
    /// whether anything changed.
    pub(crate) fn apply_receipt(
        &mut self,
        receipt: &crate::Receipt,
        now: chrono::DateTime<chrono::Utc>,
    ) -> bool {
        let seen = ReceiptSeen {
            state: receipt.state,
            detail: receipt.detail.clone(),
            at: now,
        };
        match &mut self.delivery {
            None => {
                self.delivery = Some(Delivery {
                    state: receipt.state,
                    detail: receipt.detail.clone(),
                    updated_at: now,
                    receipts: vec![seen],
                });
                true
            }
            Some(d) => {
                if d.receipts
                    .iter()
                    .any(|r| r.state == seen.state && r.detail == seen.detail)
                {
                    return false;
                }
                d.receipts.push(seen);
                if receipt.state.rank() > d.state.rank() {
                    d.state = receipt.state;
                    d.detail = receipt.detail.clone();
                    d.updated_at = now;
                }
                true
            }
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct Failover {
    pub(crate) connection_id: ConnectionId,
    pub(crate) provider: String,
    pub(crate) class: domain::FailureClassification,
    pub(crate) reason: String,
}

/// An idempotency record: which run a key started.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct IdempotencyRecord {
    pub(crate) run_id: RunId,
    pub(crate) request: String,
}
