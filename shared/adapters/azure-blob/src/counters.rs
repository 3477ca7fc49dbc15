//! Storage transactions per port operation: what a blob operation costs.
//!
//! Azure bills Blob Storage per transaction, one per HTTP request the service answers
//! (failed ones included). A policy in the SDK's pipeline counts every answered request under
//! the port operation that made it (tagged in the request's context), so a `put` that had to
//! create its container, or a large `get` split into ranged reads, shows its true cost.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use async_trait::async_trait;
use azure_core::http::policies::{Policy, PolicyResult};
use azure_core::http::{Context, Request};

/// A port operation, as tagged in the SDK call's context.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Operation {
    Put,
    Get,
    Head,
    Delete,
    List,
}

impl Operation {
    pub(crate) fn name(self) -> &'static str {
        match self {
            Operation::Put => "put",
            Operation::Get => "get",
            Operation::Head => "head",
            Operation::Delete => "delete",
            Operation::List => "list",
        }
    }

    /// The context to give every SDK call made for this operation.
    pub(crate) fn context(self) -> Context<'static> {
        Context::new().with_value(self)
    }

    fn index(self) -> usize {
        self as usize
    }
}

/// Calls and storage transactions of one port operation.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct OperationCount {
    /// Calls of the operation that reached the service (invalid names are refused before).
    pub calls: u64,
    /// HTTP requests the service answered for those calls: billed storage transactions.
    pub transactions: u64,
}

/// Calls and transactions per port operation, since the store was opened.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct TransactionCounts {
    pub put: OperationCount,
    pub get: OperationCount,
    pub head: OperationCount,
    pub delete: OperationCount,
    pub list: OperationCount,
}

impl TransactionCounts {
    /// Every transaction, all operations together.
    pub fn total_transactions(&self) -> u64 {
        self.all().iter().map(|c| c.transactions).sum()
    }

    /// What happened between `earlier` (a previous snapshot) and this one.
    pub fn since(&self, earlier: &TransactionCounts) -> TransactionCounts {
        let d = |now: OperationCount, then: OperationCount| OperationCount {
            calls: now.calls.saturating_sub(then.calls),
            transactions: now.transactions.saturating_sub(then.transactions),
        };
        TransactionCounts {
            put: d(self.put, earlier.put),
            get: d(self.get, earlier.get),
            head: d(self.head, earlier.head),
            delete: d(self.delete, earlier.delete),
            list: d(self.list, earlier.list),
        }
    }

    fn all(&self) -> [OperationCount; 5] {
        [self.put, self.get, self.head, self.delete, self.list]
    }
}

#[derive(Debug, Default)]
pub(crate) struct Counters {
    calls: [AtomicU64; 5],
    transactions: [AtomicU64; 5],
    /// Requests that carried no operation tag: a bug in this crate, kept visible for tests.
    untagged: AtomicU64,
}

impl Counters {
    pub(crate) fn call(&self, op: Operation) {
        self.calls[op.index()].fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn snapshot(&self) -> TransactionCounts {
        let c = |op: Operation| OperationCount {
            calls: self.calls[op.index()].load(Ordering::Relaxed),
            transactions: self.transactions[op.index()].load(Ordering::Relaxed),
        };
        TransactionCounts {
            put: c(Operation::Put),
            get: c(Operation::Get),
            head: c(Operation::Head),
            delete: c(Operation::Delete),
            list: c(Operation::List),
        }
    }

    pub(crate) fn untagged(&self) -> u64 {
        self.untagged.load(Ordering::Relaxed)
    }
}

/// Per-try pipeline policy: counts each answered request under its operation.
#[derive(Debug)]
pub(crate) struct CountingPolicy(pub(crate) Arc<Counters>);

// The trait elides `Context`'s lifetime; async-trait needs the impl to match it exactly.
#[allow(elided_lifetimes_in_paths)]
#[async_trait]
impl Policy for CountingPolicy {
    async fn send(
        &self,
        ctx: &Context,
        request: &mut Request,
        next: &[Arc<dyn Policy>],
    ) -> PolicyResult {
        let Some((first, rest)) = next.split_first() else {
            return Err(azure_core::Error::with_message(
                azure_core::error::ErrorKind::Other,
                "the counting policy must not be the last in the pipeline",
            ));
        };
        let response = first.send(ctx, request, rest).await;
        // An answer of any status is a billed transaction; a connection failure is not.
        if response.is_ok() {
            match ctx.value::<Operation>() {
                Some(op) => {
                    self.0.transactions[op.index()].fetch_add(1, Ordering::Relaxed);
                }
                None => {
                    self.0.untagged.fetch_add(1, Ordering::Relaxed);
                }
            }
        }
        response
    }
}
