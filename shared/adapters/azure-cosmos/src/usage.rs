//! What the store has cost: calls, HTTP requests and request units, per kind of operation.
//!
//! A proxy for the bill (serverless Cosmos DB charges request units): take a [`Usage`]
//! before and after an accepted API operation and [`Usage::since`] says how many Cosmos
//! requests and RUs it took. Requests are the SDK's own count of attempts, so throttled
//! retries show; the charge is the sum of `x-ms-request-charge` over them.

use std::collections::BTreeMap;
use std::sync::Mutex;

use azure_data_cosmos::diagnostics::DiagnosticsContext;

/// One kind of operation's totals.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct OpUsage {
    /// SDK calls made (a port query that reads several pages counts each page).
    pub calls: u64,
    /// HTTP requests those calls sent, retries included.
    pub requests: u64,
    /// Request units the server reported (`x-ms-request-charge`), summed.
    pub request_charge: f64,
}

impl OpUsage {
    fn add(&mut self, other: OpUsage) {
        self.calls += other.calls;
        self.requests += other.requests;
        self.request_charge += other.request_charge;
    }
}

/// A snapshot of the totals, by operation: `read`, `create`, `replace`, `upsert`, `delete`,
/// `batch`, `query`, and `container` (the properties read the first use of a container makes
/// in a process). The metadata requests the SDK makes on its own (account properties at
/// start-up, container and partition-range resolution, once each) are not counted.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Usage {
    by_operation: BTreeMap<&'static str, OpUsage>,
}

impl Usage {
    /// The totals of one operation kind (zero when it never ran).
    pub fn get(&self, operation: &str) -> OpUsage {
        self.by_operation
            .get(operation)
            .copied()
            .unwrap_or_default()
    }

    /// All operations together.
    pub fn total(&self) -> OpUsage {
        let mut total = OpUsage::default();
        for usage in self.by_operation.values() {
            total.add(*usage);
        }
        total
    }

    /// What happened after `earlier` (a snapshot of the same store).
    pub fn since(&self, earlier: &Usage) -> Usage {
        let by_operation = self
            .by_operation
            .iter()
            .map(|(op, now)| {
                let before = earlier.get(op);
                (
                    *op,
                    OpUsage {
                        calls: now.calls.saturating_sub(before.calls),
                        requests: now.requests.saturating_sub(before.requests),
                        request_charge: now.request_charge - before.request_charge,
                    },
                )
            })
            .filter(|(_, u)| u.calls > 0 || u.requests > 0)
            .collect();
        Usage { by_operation }
    }

    pub fn iter(&self) -> impl Iterator<Item = (&'static str, OpUsage)> + '_ {
        self.by_operation.iter().map(|(op, u)| (*op, *u))
    }
}

/// The live counters behind [`Usage`].
#[derive(Debug, Default)]
pub(crate) struct Meter {
    totals: Mutex<Usage>,
}

impl Meter {
    pub(crate) fn record(&self, operation: &'static str, usage: OpUsage) {
        // A poisoned lock only means another thread panicked mid-update of plain numbers;
        // the counts are still usable.
        let mut totals = self.totals.lock().unwrap_or_else(|e| e.into_inner());
        totals.by_operation.entry(operation).or_default().add(usage);
    }

    /// Records one SDK call from its diagnostics (present on answers and on most errors).
    pub(crate) fn record_call(
        &self,
        operation: &'static str,
        diagnostics: Option<&DiagnosticsContext>,
    ) {
        let (requests, request_charge) = diagnostics.map_or((1, 0.0), |d| {
            (
                u64::try_from(d.request_count()).unwrap_or(u64::MAX),
                d.total_request_charge().value(),
            )
        });
        self.record(
            operation,
            OpUsage {
                calls: 1,
                requests,
                request_charge,
            },
        );
    }

    pub(crate) fn snapshot(&self) -> Usage {
        self.totals
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn since_subtracts_and_drops_idle_operations() {
        let meter = Meter::default();
        let usage = |calls, requests, request_charge| OpUsage {
            calls,
            requests,
            request_charge,
        };
        meter.record("read", usage(1, 1, 1.0));
        meter.record("query", usage(2, 3, 5.5));
        let before = meter.snapshot();
        meter.record("read", usage(1, 2, 2.0));
        meter.record("batch", usage(1, 1, 10.25));
        let after = meter.snapshot();
        let delta = after.since(&before);
        assert_eq!(delta.get("read"), usage(1, 2, 2.0));
        assert_eq!(delta.get("batch"), usage(1, 1, 10.25));
        assert_eq!(delta.get("query"), OpUsage::default());
        assert_eq!(delta.iter().count(), 2, "idle operations are left out");
        assert_eq!(after.total(), usage(5, 7, 18.75));
    }
}
