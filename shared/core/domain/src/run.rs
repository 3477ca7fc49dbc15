//! [`IntegrationRun`]: one operation against a vendor, its attempts and its state machine.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::aggregate::{impl_aggregate, touch};
use crate::error::TransitionError;
use crate::event::{DomainEvent, IntegrationRunCompleted};
use crate::failure::{FailureSubject, IntegrationFailure};
use crate::ids::{ConnectionId, FailureId, RunId};
use crate::redact::RedactedText;
use crate::values::{IdempotencyKey, OperationName, PayloadRef, ProviderKey, TenantId, TraceId};

/// Where a run stands.
///
/// | from \ call     | `start`   | `wait`    | `succeed`           | `retry`  | `fail`   | `dead_letter`   |
/// |-----------------|-----------|-----------|---------------------|----------|----------|-----------------|
/// | `queued`        | `running` | refused   | refused             | refused  | refused  | `dead_lettered` |
/// | `running`       | refused   | `waiting` | `succeeded` + event | `queued` | `failed` | `dead_lettered` |
/// | `waiting`       | refused   | refused   | `succeeded` + event | refused  | `failed` | `dead_lettered` |
/// | `succeeded`     | refused   | refused   | refused             | refused  | refused  | refused         |
/// | `failed`        | refused   | refused   | refused             | refused  | refused  | refused         |
/// | `dead_lettered` | refused   | refused   | refused             | refused  | refused  | refused         |
///
/// `waiting`: the vendor accepted the work and finishes it later (a deployment, a workflow
/// run); the run ends when the vendor says so (a webhook, or being asked again).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RunStatus {
    /// Waiting for the executor.
    Queued,
    /// An attempt is in progress.
    Running,
    /// The vendor accepted the work and has not finished it yet.
    Waiting,
    /// Done.
    Succeeded,
    /// Ended with a failure.
    Failed,
    /// Given up on and parked.
    DeadLettered,
}

impl RunStatus {
    /// The status as written in JSON.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Queued => "queued",
            Self::Running => "running",
            Self::Waiting => "waiting",
            Self::Succeeded => "succeeded",
            Self::Failed => "failed",
            Self::DeadLettered => "dead_lettered",
        }
    }

    /// Whether the run is over.
    pub fn is_terminal(self) -> bool {
        matches!(self, Self::Succeeded | Self::Failed | Self::DeadLettered)
    }
}

/// How one attempt ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AttemptOutcome {
    /// The vendor call succeeded.
    Succeeded,
    /// The attempt failed (retried, failed the run, or dead-lettered it).
    Failed,
    /// The vendor accepted the work; the run waits for it to finish.
    Waiting,
}

/// One try at executing a run.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RunAttempt {
    /// 1 for the first attempt.
    pub number: u32,
    /// When it started.
    pub started_at: DateTime<Utc>,
    /// When it finished; `None` while running.
    pub finished_at: Option<DateTime<Utc>>,
    /// How it ended; `None` while running.
    pub outcome: Option<AttemptOutcome>,
    /// Why it failed.
    pub error: Option<RedactedText>,
}

/// What a run consumed. Sums saturate rather than overflow.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RunUsage {
    /// Model input tokens.
    pub tokens_in: u64,
    /// Model output tokens.
    pub tokens_out: u64,
    /// Cost in millionths of the billing currency.
    pub cost_micros: u64,
    /// Vendor-specific units (messages sent, API calls).
    pub units: u64,
}

impl RunUsage {
    /// The sum of two usages.
    pub fn saturating_add(self, other: Self) -> Self {
        Self {
            tokens_in: self.tokens_in.saturating_add(other.tokens_in),
            tokens_out: self.tokens_out.saturating_add(other.tokens_out),
            cost_micros: self.cost_micros.saturating_add(other.cost_micros),
            units: self.units.saturating_add(other.units),
        }
    }
}

/// Input of [`IntegrationRun::queue`].
#[derive(Debug, Clone)]
pub struct NewRun {
    /// The owning tenant.
    pub tenant_id: TenantId,
    /// The new id.
    pub id: RunId,
    /// The connection to run against.
    pub connection_id: ConnectionId,
    /// The connection's provider.
    pub provider_key: ProviderKey,
    /// The operation.
    pub operation: OperationName,
    /// Where the input is kept.
    pub input_ref: PayloadRef,
    /// The caller's idempotency key.
    pub idempotency_key: Option<IdempotencyKey>,
    /// The trace the run belongs to.
    pub trace_id: TraceId,
}

/// One operation against a vendor.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct IntegrationRun {
    tenant_id: TenantId,
    id: RunId,
    version: u64,
    created_at: DateTime<Utc>,
    updated_at: DateTime<Utc>,
    connection_id: ConnectionId,
    provider_key: ProviderKey,
    operation: OperationName,
    input_ref: PayloadRef,
    idempotency_key: Option<IdempotencyKey>,
    trace_id: TraceId,
    status: RunStatus,
    attempts: Vec<RunAttempt>,
    usage: RunUsage,
    output_summary: Option<serde_json::Value>,
    failure_id: Option<FailureId>,
    completed_at: Option<DateTime<Utc>>,
}
impl_aggregate!(IntegrationRun, "integrationRun", id: RunId);

impl IntegrationRun {
    const AGGREGATE: &'static str = "run";

    /// A new `queued` run.
    pub fn queue(new: NewRun, now: DateTime<Utc>) -> Self {
        Self {
            tenant_id: new.tenant_id,
            id: new.id,
            version: 1,
            created_at: now,
            updated_at: now,
            connection_id: new.connection_id,
            provider_key: new.provider_key,
            operation: new.operation,
            input_ref: new.input_ref,
            idempotency_key: new.idempotency_key,
            trace_id: new.trace_id,
            status: RunStatus::Queued,
            attempts: Vec::new(),
            usage: RunUsage::default(),
            output_summary: None,
            failure_id: None,
            completed_at: None,
        }
    }

    fn forbidden(&self, to: RunStatus) -> TransitionError {
        TransitionError::Forbidden {
            aggregate: Self::AGGREGATE,
            from: self.status.as_str(),
            to: to.as_str(),
        }
    }

    fn require(&self, allowed: &[RunStatus], to: RunStatus) -> Result<(), TransitionError> {
        if allowed.contains(&self.status) {
            Ok(())
        } else {
            Err(self.forbidden(to))
        }
    }

    /// Closes the open attempt. A running run always has one; a document without one is reported,
    /// not trusted.
    fn finish_attempt(
        &mut self,
        outcome: AttemptOutcome,
        error: Option<RedactedText>,
        now: DateTime<Utc>,
    ) -> Result<(), TransitionError> {
        match self.attempts.last_mut() {
            Some(attempt) if attempt.finished_at.is_none() => {
                attempt.finished_at = Some(now);
                attempt.outcome = Some(outcome);
                attempt.error = error;
                Ok(())
            }
            _ => Err(TransitionError::Inconsistent {
                aggregate: Self::AGGREGATE,
                detail: "running without an open attempt",
            }),
        }
    }

    fn check_failure(&self, failure: &IntegrationFailure) -> Result<(), TransitionError> {
        if failure.tenant_id() != &self.tenant_id
            || failure.subject() != FailureSubject::Run(self.id)
        {
            return Err(TransitionError::FailureMismatch {
                aggregate: Self::AGGREGATE,
                failure: failure.id(),
            });
        }
        Ok(())
    }

    /// `queued → running`: opens a new attempt.
    ///
    /// When a crashed executor's message is redelivered the run is still `running`; call
    /// [`Self::retry`] (the attempt was abandoned) and then `start`.
    pub fn start(&mut self, now: DateTime<Utc>) -> Result<Vec<DomainEvent>, TransitionError> {
        self.require(&[RunStatus::Queued], RunStatus::Running)?;
        let number = u32::try_from(self.attempts.len())
            .unwrap_or(u32::MAX)
            .saturating_add(1);
        self.attempts.push(RunAttempt {
            number,
            started_at: now,
            finished_at: None,
            outcome: None,
            error: None,
        });
        self.status = RunStatus::Running;
        touch(&mut self.version, &mut self.updated_at, now);
        Ok(Vec::new())
    }

    /// `running → waiting`: the vendor accepted the work and finishes it later; the attempt
    /// closes as `waiting`, adding `usage`.
    pub fn wait(&mut self, usage: RunUsage, now: DateTime<Utc>) -> Result<(), TransitionError> {
        self.require(&[RunStatus::Running], RunStatus::Waiting)?;
        self.finish_attempt(AttemptOutcome::Waiting, None, now)?;
        self.usage = self.usage.saturating_add(usage);
        self.status = RunStatus::Waiting;
        touch(&mut self.version, &mut self.updated_at, now);
        Ok(())
    }

    /// `running | waiting → succeeded`: closes the attempt (a waiting run has none open), adds `usage`, keeps a short output summary and emits
    /// `IntegrationRunCompleted`.
    pub fn succeed(
        &mut self,
        output_summary: Option<serde_json::Value>,
        usage: RunUsage,
        now: DateTime<Utc>,
    ) -> Result<Vec<DomainEvent>, TransitionError> {
        self.require(
            &[RunStatus::Running, RunStatus::Waiting],
            RunStatus::Succeeded,
        )?;
        if self.status == RunStatus::Running {
            self.finish_attempt(AttemptOutcome::Succeeded, None, now)?;
        }
        self.usage = self.usage.saturating_add(usage);
        self.output_summary = output_summary;
        self.status = RunStatus::Succeeded;
        self.completed_at = Some(now);
        touch(&mut self.version, &mut self.updated_at, now);
        Ok(vec![DomainEvent::IntegrationRunCompleted(
            IntegrationRunCompleted {
                tenant_id: self.tenant_id.clone(),
                run_id: self.id,
                connection_id: self.connection_id,
                provider_key: self.provider_key.clone(),
                operation: self.operation.clone(),
                attempts: u32::try_from(self.attempts.len()).unwrap_or(u32::MAX),
                usage: self.usage,
                output_summary: self.output_summary.clone(),
                trace_id: self.trace_id,
                occurred_at: now,
            },
        )])
    }

    /// `running → queued`: the attempt failed in a way worth retrying; the executor re-schedules it.
    /// No failure record: only an exhausted policy produces one.
    pub fn retry(
        &mut self,
        error: RedactedText,
        now: DateTime<Utc>,
    ) -> Result<Vec<DomainEvent>, TransitionError> {
        self.require(&[RunStatus::Running], RunStatus::Queued)?;
        self.finish_attempt(AttemptOutcome::Failed, Some(error), now)?;
        self.status = RunStatus::Queued;
        touch(&mut self.version, &mut self.updated_at, now);
        Ok(Vec::new())
    }

    /// `running | waiting → failed` with the failure recorded for it. `IntegrationFailed` is emitted by
    /// [`IntegrationFailure::record`]; commit both documents and that event together.
    pub fn fail(
        &mut self,
        failure: &IntegrationFailure,
        now: DateTime<Utc>,
    ) -> Result<Vec<DomainEvent>, TransitionError> {
        self.require(&[RunStatus::Running, RunStatus::Waiting], RunStatus::Failed)?;
        self.check_failure(failure)?;
        if self.status == RunStatus::Running {
            self.finish_attempt(AttemptOutcome::Failed, Some(failure.message().clone()), now)?;
        }
        self.failure_id = Some(failure.id());
        self.status = RunStatus::Failed;
        self.completed_at = Some(now);
        touch(&mut self.version, &mut self.updated_at, now);
        Ok(Vec::new())
    }

    /// `queued | running | waiting → dead_lettered` (poison message, retries exhausted). An
    /// open attempt is closed as failed.
    pub fn dead_letter(
        &mut self,
        failure: &IntegrationFailure,
        now: DateTime<Utc>,
    ) -> Result<Vec<DomainEvent>, TransitionError> {
        self.require(
            &[RunStatus::Queued, RunStatus::Running, RunStatus::Waiting],
            RunStatus::DeadLettered,
        )?;
        self.check_failure(failure)?;
        if self.status == RunStatus::Running {
            self.finish_attempt(AttemptOutcome::Failed, Some(failure.message().clone()), now)?;
        }
        self.failure_id = Some(failure.id());
        self.status = RunStatus::DeadLettered;
        self.completed_at = Some(now);
        touch(&mut self.version, &mut self.updated_at, now);
        Ok(Vec::new())
    }

    /// Adds usage consumed by an attempt that did not succeed (a model call that timed out still
    /// spent tokens).
    pub fn add_usage(&mut self, usage: RunUsage, now: DateTime<Utc>) {
        self.usage = self.usage.saturating_add(usage);
        touch(&mut self.version, &mut self.updated_at, now);
    }

    /// The open attempt, while running.
    pub fn current_attempt(&self) -> Option<&RunAttempt> {
        self.attempts.last().filter(|a| a.finished_at.is_none())
    }

    /// The connection.
    pub fn connection_id(&self) -> ConnectionId {
        self.connection_id
    }
    /// The provider.
    pub fn provider_key(&self) -> &ProviderKey {
        &self.provider_key
    }
    /// The operation.
    pub fn operation(&self) -> &OperationName {
        &self.operation
    }
    /// Where the input is kept.
    pub fn input_ref(&self) -> &PayloadRef {
        &self.input_ref
    }
    /// The caller's idempotency key.
    pub fn idempotency_key(&self) -> Option<&IdempotencyKey> {
        self.idempotency_key.as_ref()
    }
    /// The trace.
    pub fn trace_id(&self) -> TraceId {
        self.trace_id
    }
    /// The status.
    pub fn status(&self) -> RunStatus {
        self.status
    }
    /// The attempts, oldest first.
    pub fn attempts(&self) -> &[RunAttempt] {
        &self.attempts
    }
    /// What the run consumed.
    pub fn usage(&self) -> RunUsage {
        self.usage
    }
    /// A short summary of the output.
    pub fn output_summary(&self) -> Option<&serde_json::Value> {
        self.output_summary.as_ref()
    }
    /// The failure that ended the run.
    pub fn failure_id(&self) -> Option<FailureId> {
        self.failure_id
    }
    /// When the run reached a terminal status.
    pub fn completed_at(&self) -> Option<DateTime<Utc>> {
        self.completed_at
    }
}

#[cfg(test)]
mod tests;
