//! The Fake provider (`fake-cloud`): an in-process control plane for tests and demos, on the
//! kit's shared Fake ([`integration_kit::fake`]: credential `{"apiKey": …}`, the key
//! `rejected` refused; config `mode`, `latencyMs`, `retryAfterMs`, which throttles as a
//! control plane does). Its own config: `deploymentMs` (how long a deployment runs, 0 to one
//! day; 0 by default) and `failDeployments` (every deployment ends `failed` with
//! `DeploymentFailed`).
//!
//! Like a real control plane, a deployment goes on whatever happens to the caller: its start
//! and length travel in the waiting run's state, so a look after the platform restarted (this
//! process's memory gone) still finds it where the clock says it is. A deployment name seen
//! before is the same deployment (a retried run continues it).

use std::collections::BTreeMap;
use std::sync::Mutex;
use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use domain::{CredentialKind, FailureClassification};
use integration_kit::fake::{self, CallCounter};
use integration_kit::{
    Done, InputError, Provider, ProviderCall, Served, Serves, Step, Wait, malformed,
};
use resilience::{CallError, Safety};
use serde::{Deserialize, Serialize};
use serde_json::json;

use crate::{
    DeployTemplate, Deployment, DeploymentError, DeploymentRef, DeploymentState,
    EnsureResourceGroup, GetDeployment, NewDeployment, NewResourceGroup, ResourceGroup,
};

static CALLS: CallCounter = CallCounter::new();

/// Calls that reached the Fake for one run (its idempotency key).
pub fn calls(idempotency_key: &str) -> u32 {
    CALLS.calls(idempotency_key)
}

/// Resource groups by (tenant, name): their location.
static GROUPS: Mutex<BTreeMap<(String, String), String>> = Mutex::new(BTreeMap::new());
/// Deployments by (tenant, group, name).
static DEPLOYMENTS: Mutex<BTreeMap<(String, String, String), Running>> =
    Mutex::new(BTreeMap::new());

/// A deployment as the Fake keeps it (and as the waiting run carries it).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Running {
    group: String,
    name: String,
    started_at: DateTime<Utc>,
    duration_ms: u64,
    fails: bool,
}

impl Running {
    fn now(&self) -> Deployment {
        let elapsed = (Utc::now() - self.started_at)
            .to_std()
            .unwrap_or_default()
            .as_millis() as u64;
        let done = elapsed >= self.duration_ms;
        let state = match (done, self.fails) {
            (false, _) => DeploymentState::Running,
            (true, false) => DeploymentState::Succeeded,
            (true, true) => DeploymentState::Failed,
        };
        Deployment {
            name: self.name.clone(),
            resource_group: self.group.clone(),
            state,
            outputs: if state == DeploymentState::Succeeded {
                json!({"deploymentName": {"type": "String", "value": self.name}})
            } else {
                json!({})
            },
            duration_ms: elapsed.min(self.duration_ms),
            error: (state == DeploymentState::Failed).then(|| DeploymentError {
                code: "DeploymentFailed".into(),
                message: "At least one resource deployment operation failed.".into(),
            }),
        }
    }

    /// Time left to run.
    fn left(&self) -> Duration {
        let end = self.started_at + chrono::TimeDelta::milliseconds(self.duration_ms as i64);
        (end - Utc::now()).to_std().unwrap_or_default()
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct FakeConfig {
    #[serde(default)]
    mode: fake::Mode,
    latency_ms: Option<u64>,
    retry_after_ms: Option<u64>,
    #[serde(default)]
    deployment_ms: u64,
    #[serde(default)]
    fail_deployments: bool,
}

impl integration_kit::ProviderConfig for FakeConfig {
    fn check(&self) -> Result<(), InputError> {
        if self.deployment_ms > 24 * 3600 * 1000 {
            return Err(InputError::at(
                "deploymentMs",
                "must be at most 86400000 (one day)",
            ));
        }
        Ok(())
    }
}

async fn go(call: &ProviderCall<'_>, operation: bool) -> Result<FakeConfig, CallError> {
    let config: FakeConfig = call.config_as()?;
    let steer = fake::Steer {
        mode: config.mode,
        latency_ms: config.latency_ms,
        retry_after_ms: config.retry_after_ms,
    };
    fake::call_through(&CALLS, call, &steer, Safety::Idempotent, operation).await?;
    Ok(config)
}

fn tenant(call: &ProviderCall<'_>) -> String {
    call.key.tenant.to_string()
}

/// How soon to look at a running deployment again: when it should end, at most a minute on.
fn next_look(running: &Running) -> Duration {
    running
        .left()
        .clamp(Duration::from_millis(100), Duration::from_secs(60))
}

/// The step a deployment's state makes: done, failed (the run fails with its error), or
/// another look.
fn step(running: &Running) -> Result<Step<Deployment>, CallError> {
    let deployment = running.now();
    match deployment.state {
        DeploymentState::Running => Ok(Wait::after(
            next_look(running),
            serde_json::to_value(running).map_err(|e| malformed(&e.to_string()))?,
        )
        .progress(serde_json::to_value(&deployment).unwrap_or_default())
        .into()),
        _ => crate::ended(deployment),
    }
}

#[async_trait]
impl Provider for Fake {
    fn key(&self) -> &'static str {
        "fake-cloud"
    }

    fn credential_kinds(&self) -> &'static [CredentialKind] {
        &[CredentialKind::ApiKey]
    }

    async fn test_connection(&self, call: &ProviderCall<'_>) -> Result<(), CallError> {
        go(call, false).await.map(|_| ())
    }

    fn serves(served: &mut Served<Self>) {
        served
            .operation::<EnsureResourceGroup>()
            .operation::<DeployTemplate>()
            .operation::<GetDeployment>()
            .config::<FakeConfig>();
    }
}

pub struct Fake;

#[async_trait]
impl Serves<EnsureResourceGroup> for Fake {
    async fn execute(
        &self,
        call: &ProviderCall<'_>,
        input: &NewResourceGroup,
    ) -> Result<Step<ResourceGroup>, CallError> {
        go(call, true).await?;
        let mut groups = GROUPS.lock().unwrap_or_else(|p| p.into_inner());
        let location = groups
            .entry((tenant(call), input.name.to_string()))
            .or_insert_with(|| input.location.to_string());
        if *location != input.location.as_str() {
            return Err(crate::refused(
                FailureClassification::Validation,
                "InvalidResourceGroupLocation",
                &format!(
                    "resource group {} already exists in location {location}",
                    input.name
                ),
            ));
        }
        Ok(Done::new(ResourceGroup {
            id: format!("/subscriptions/fake/resourceGroups/{}", input.name),
            name: input.name.to_string(),
            location: location.clone(),
            state: "Succeeded".into(),
        })
        .into())
    }
}

#[async_trait]
impl Serves<DeployTemplate> for Fake {
    async fn execute(
        &self,
        call: &ProviderCall<'_>,
        input: &NewDeployment,
    ) -> Result<Step<Deployment>, CallError> {
        let config = go(call, true).await?;
        let group = input.resource_group.to_string();
        if !GROUPS
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .contains_key(&(tenant(call), group.clone()))
        {
            return Err(crate::refused(
                FailureClassification::Validation,
                "ResourceGroupNotFound",
                &format!("resource group '{group}' could not be found"),
            ));
        }
        let name = input
            .deployment_name
            .as_ref()
            .map(ToString::to_string)
            .or_else(|| call.idempotency_key.map(str::to_owned))
            .ok_or_else(|| malformed("a deployment outside a run needs a deploymentName"))?;
        // The same name is the same deployment: a retried run continues it.
        let running = DEPLOYMENTS
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .entry((tenant(call), group.clone(), name.clone()))
            .or_insert_with(|| Running {
                group,
                name,
                started_at: Utc::now(),
                duration_ms: config.deployment_ms,
                fails: config.fail_deployments,
            })
            .clone();
        step(&running)
    }

    /// Looks at the deployment the run waits on: the Fake's own record, or (this process
    /// restarted) the one the run carried.
    async fn resume(
        &self,
        call: &ProviderCall<'_>,
        _input: &NewDeployment,
        state: &serde_json::Value,
    ) -> Result<Step<Deployment>, CallError> {
        go(call, true).await?;
        let carried: Running = serde_json::from_value(state.clone())
            .map_err(|_| malformed("the waiting state is not a deployment"))?;
        let running = DEPLOYMENTS
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .entry((tenant(call), carried.group.clone(), carried.name.clone()))
            .or_insert(carried)
            .clone();
        step(&running)
    }
}

#[async_trait]
impl Serves<GetDeployment> for Fake {
    async fn execute(
        &self,
        call: &ProviderCall<'_>,
        input: &DeploymentRef,
    ) -> Result<Step<Deployment>, CallError> {
        go(call, true).await?;
        let running = DEPLOYMENTS
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(&(
                tenant(call),
                input.resource_group.to_string(),
                input.deployment_name.to_string(),
            ))
            .cloned();
        let Some(running) = running else {
            return Err(crate::refused(
                FailureClassification::Validation,
                "DeploymentNotFound",
                &format!("deployment '{}' could not be found", input.deployment_name),
            ));
        };
        Ok(Done::new(running.now()).into())
    }
}

#[cfg(test)]
mod tests;
