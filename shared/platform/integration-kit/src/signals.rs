//! In-process signals that a run finished, for requests waiting on it (`Prefer: wait`).
//!
//! The executor of a run usually runs in the same process as the request that queued it (the
//! local runner; one Function App instance); there, a waiting request is woken the moment the
//! run's outcome commits. Elsewhere the waiting request also reads the run on a slow timer,
//! so a run finished by another instance is seen too, only later.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use domain::RunId;
use tokio::sync::Notify;

#[derive(Default)]
pub(crate) struct RunSignals {
    waiting: Mutex<HashMap<RunId, (Arc<Notify>, usize)>>,
}

/// A request's interest in one run; dropping it forgets the run when nobody else waits.
pub(crate) struct Subscription<'a> {
    signals: &'a RunSignals,
    run: RunId,
    pub(crate) notify: Arc<Notify>,
}

impl RunSignals {
    pub(crate) fn subscribe(&self, run: RunId) -> Subscription<'_> {
        let mut map = self.waiting.lock().unwrap_or_else(|p| p.into_inner());
        let entry = map
            .entry(run)
            .or_insert_with(|| (Arc::new(Notify::new()), 0));
        entry.1 += 1;
        Subscription {
            signals: self,
            run,
            notify: entry.0.clone(),
        }
    }

    /// Wakes every request waiting on `run`. Costs one map look-up when nobody waits.
    pub(crate) fn finished(&self, run: &RunId) {
        let map = self.waiting.lock().unwrap_or_else(|p| p.into_inner());
        if let Some((notify, _)) = map.get(run) {
            notify.notify_waiters();
        }
    }

    #[cfg(test)]
    fn len(&self) -> usize {
        self.waiting.lock().unwrap_or_else(|p| p.into_inner()).len()
    }
}

impl Drop for Subscription<'_> {
    fn drop(&mut self) {
        let mut map = self
            .signals
            .waiting
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        if let Some(entry) = map.get_mut(&self.run) {
            entry.1 -= 1;
            if entry.1 == 0 {
                map.remove(&self.run);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[tokio::test]
    async fn a_finish_wakes_every_waiter_of_that_run_only() {
        let signals = RunSignals::default();
        let (a, b) = (RunId::new(), RunId::new());
        let sub_a1 = signals.subscribe(a);
        let sub_a2 = signals.subscribe(a);
        let sub_b = signals.subscribe(b);
        // Futures made before the signal see it even if first polled after.
        let (wa1, wa2, wb) = (
            sub_a1.notify.notified(),
            sub_a2.notify.notified(),
            sub_b.notify.notified(),
        );
        signals.finished(&a);
        tokio::time::timeout(Duration::from_secs(1), wa1)
            .await
            .expect("woken");
        tokio::time::timeout(Duration::from_secs(1), wa2)
            .await
            .expect("woken");
        assert!(
            tokio::time::timeout(Duration::from_millis(50), wb)
                .await
                .is_err(),
            "another run's waiter stays asleep"
        );
        drop(sub_a1);
        assert_eq!(signals.len(), 2);
        drop(sub_a2);
        drop(sub_b);
        assert_eq!(signals.len(), 0, "nothing is kept once nobody waits");
        // A finish nobody waits for costs nothing and keeps nothing.
        signals.finished(&a);
        assert_eq!(signals.len(), 0);
    }
}
