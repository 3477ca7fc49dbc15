//! Delivery receipts that must be asked for: the `PollReceipts` timer.
//!
//! Some vendors push no receipts, or push them unauthenticated to a URL set up by hand and
//! stop after a few failed pushes (019). For their providers ([`Provider::polls_receipts`])
//! the executor writes a watch (`rwatch-<run>`, 7 days TTL) in the same batch as the
//! successful run. Each tick reads the watches, drops those whose run already has a final
//! delivery state (a pushed receipt came first), asks the vendor about the rest, one call per
//! connection ([`Provider::poll_receipts`], through the resilience pipeline), and applies
//! what it says exactly as a pushed receipt ([`crate::receipts::apply`]). A watch ends with
//! the final state, or with its TTL: vendors keep delivery reports for about a week.
//!
//! [`Provider::polls_receipts`]: crate::Provider::polls_receipts
//! [`Provider::poll_receipts`]: crate::Provider::poll_receipts

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use domain::{ConnectionId, IntegrationConnection, RunId, TenantId};
use functions_runtime::{Invocation, InvocationError, InvocationResponse};
use ports::{PortError, Query, WriteOp};
use serde::{Deserialize, Serialize};
use serde_json::json;

use crate::Kit;
use crate::provider::{PendingReceipt, ProviderCall};
use crate::store::{RECEIPT_WATCH, StoredRun, connection_doc_id, receipt_watch_doc_id, run_doc_id};

/// Setting: the NCRONTAB schedule of `PollReceipts`.
pub const RECEIPTS_POLL_SCHEDULE_SETTING: &str = "RECEIPTS_POLL_SCHEDULE";
/// Every two minutes: receipts are for people and reports, not for control flow, and a
/// vendor asked too often may throttle the sends that share its limits.
pub const DEFAULT_RECEIPTS_POLL_SCHEDULE: &str = "0 */2 * * * *";
/// How long a message is asked about: the week vendors keep delivery reports.
const WATCH_TTL: Duration = Duration::from_secs(7 * 24 * 3600);
/// The most watches one tick handles; the rest wait for the next tick.
const MAX_PER_TICK: usize = 20_000;

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Watch {
    run_id: RunId,
    connection_id: ConnectionId,
    message_id: String,
    sent_at: DateTime<Utc>,
}

/// The watch of a run whose vendor message `message_id` was just accepted through
/// `connection`: written in the batch that records the run's success.
pub(crate) fn watch(
    connection: &IntegrationConnection,
    run: RunId,
    message_id: &str,
    now: DateTime<Utc>,
) -> WriteOp {
    WriteOp::upsert(
        receipt_watch_doc_id(&run),
        json!({
            "docType": RECEIPT_WATCH,
            "runId": run,
            "connectionId": connection.id(),
            "messageId": message_id,
            "sentAt": now,
        }),
    )
    .with_ttl(WATCH_TTL)
}

/// The timer: every watched message is asked about once.
pub(crate) async fn poll(
    kit: Arc<Kit>,
    inv: Invocation,
) -> Result<InvocationResponse, InvocationError> {
    inv.timer()?;
    let mut groups: BTreeMap<(String, ConnectionId), Vec<Watch>> = BTreeMap::new();
    let mut token = None;
    let mut seen = 0usize;
    loop {
        let query = Query::cross_partition()
            .filter("docType", RECEIPT_WATCH)
            .limit(500)
            .after(token);
        let page = kit
            .ctx
            .documents
            .query(kit.app.slug, &query)
            .await
            .map_err(|e| InvocationError::transient(e.to_string()))?;
        for doc in &page.documents {
            match doc.parse::<Watch>() {
                Ok(w) => groups
                    .entry((doc.partition.clone(), w.connection_id))
                    .or_default()
                    .push(w),
                Err(e) => {
                    tracing::error!(id = %doc.id, error = %e, "an unreadable receipt watch; skipped")
                }
            }
        }
        seen += page.documents.len();
        token = page.continuation;
        if token.is_none() || seen >= MAX_PER_TICK {
            break;
        }
    }
    let (mut asked, mut settled) = (0usize, 0usize);
    for ((tenant, connection), watches) in groups {
        let Ok(tenant) = TenantId::parse(&tenant) else {
            continue;
        };
        match poll_connection(&kit, &tenant, &connection, watches).await {
            Ok((a, s)) => {
                asked += a;
                settled += s;
            }
            Err(why) => {
                tracing::warn!(tenant = %tenant, connection = %connection, why, "delivery receipts could not be asked for");
            }
        }
    }
    tracing::info!(app = kit.app.slug, asked, settled, "receipt poll done");
    Ok(InvocationResponse::default())
}

/// Asks the vendor of one connection about its watched messages. Answers how many were asked
/// about and how many reached a final state (their watches are removed).
async fn poll_connection(
    kit: &Kit,
    tenant: &TenantId,
    connection_id: &ConnectionId,
    watches: Vec<Watch>,
) -> Result<(usize, usize), String> {
    let connection = kit
        .store
        .read::<IntegrationConnection>(&kit.ctx, tenant.as_str(), &connection_doc_id(connection_id))
        .await
        .map_err(|e| format!("the connection could not be read: {e:?}"))?;
    let Some((connection, _)) = connection else {
        // Nobody can be asked any more.
        for w in &watches {
            unwatch(kit, tenant, &w.run_id).await;
        }
        return Ok((0, watches.len()));
    };
    let Some(provider) = kit.provider(connection.provider_key().as_str()) else {
        return Err(format!("no provider {} here", connection.provider_key()));
    };
    // Watches whose run a pushed receipt (or anything else) already settled end here.
    let mut pending = Vec::new();
    let mut settled = 0;
    for w in watches {
        if is_settled(kit, tenant, &w.run_id).await? {
            unwatch(kit, tenant, &w.run_id).await;
            settled += 1;
        } else {
            pending.push(w);
        }
    }
    if pending.is_empty() {
        return Ok((0, settled));
    }
    let resolved = kit
        .resolver
        .resolve(tenant.as_str(), &connection.credential_id())
        .await
        .map_err(|e| format!("the credential could not be resolved: {e:?}"))?;
    let key = crate::call_key(tenant.as_str(), provider.key(), &connection.id());
    let reach = crate::private_endpoints::reach(kit, tenant.as_str(), connection.config())
        .await
        .map_err(|e| e.failure.message)?;
    let call = ProviderCall {
        pipeline: &kit.pipeline,
        http: &reach.http,
        guard: &reach.guard,
        key: &key,
        config: connection.config(),
        credential: &resolved.material,
        traceparent: None,
        idempotency_key: None,
        max_attempts: None,
        rate_limit: kit.rate_limit(provider.key()).await,
        receipt_url: None,
        tokens: &kit.tokens,
    };
    let asked: Vec<PendingReceipt> = pending
        .iter()
        .map(|w| PendingReceipt {
            message_id: w.message_id.clone(),
            sent_at: w.sent_at,
        })
        .collect();
    let receipts = provider
        .poll_receipts(&call, &asked)
        .await
        // The provider's failure text is already redacted of the credential.
        .map_err(|e| format!("{:?}: {}", e.class(), e.failure.message))?;
    let runs: HashMap<&str, &RunId> = pending
        .iter()
        .map(|w| (w.message_id.as_str(), &w.run_id))
        .collect();
    for receipt in &receipts {
        let Some(run) = runs.get(receipt.message_id.as_str()) else {
            continue;
        };
        crate::receipts::apply(kit, tenant, provider.key(), receipt)
            .await
            .map_err(|e| format!("a receipt could not be applied: {e:?}"))?;
        if receipt.state.rank() == crate::DeliveryState::Delivered.rank() {
            unwatch(kit, tenant, run).await;
            settled += 1;
        }
    }
    Ok((asked.len(), settled))
}

/// Whether the run is gone or its delivery state is final.
async fn is_settled(kit: &Kit, tenant: &TenantId, run: &RunId) -> Result<bool, String> {
    let stored = kit
        .store
        .read::<StoredRun>(&kit.ctx, tenant.as_str(), &run_doc_id(run))
        .await
        .map_err(|e| format!("a run could not be read: {e:?}"))?;
    Ok(match stored {
        None => true,
        Some((stored, _)) => stored
            .delivery
            .is_some_and(|d| d.state.rank() == crate::DeliveryState::Delivered.rank()),
    })
}

/// Ends a watch. Another instance's tick may have ended it first; anything else is only
/// logged: the watch is asked about again next tick and ends then (or with its TTL).
async fn unwatch(kit: &Kit, tenant: &TenantId, run: &RunId) {
    let op = WriteOp::delete(receipt_watch_doc_id(run), None);
    match kit
        .ctx
        .documents
        .batch(kit.app.slug, tenant.as_str(), vec![op])
        .await
    {
        Ok(_) | Err(PortError::NotFound) => {}
        Err(e) => {
            tracing::warn!(tenant = %tenant, run = %run, error = %e, "a receipt watch could not be removed")
        }
    }
}
