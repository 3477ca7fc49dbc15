//! `cloud`: cloud control planes behind one surface, on the integration kit. Operations are
//! named by intent and typed, the same on every provider:
//!
//! - `ensureResourceGroup` `{name, location, tags?}` → `{id, name, location, state}`: the
//!   group exists in that location afterwards (made if missing; one in another location is
//!   refused, as the control planes do);
//! - `deployTemplate` `{resourceGroup, deploymentName?, template | templateUri,
//!   parameters?, mode?}`: the run **waits** while the deployment runs (each look a
//!   scheduled resume of the run, no invocation held), then ends with `{name, state,
//!   outputs, durationMs}`; a deployment that fails or is canceled fails the run with the
//!   control plane's code and message. The deployment is named after the run unless the
//!   caller names it, so a retried run, or one resumed after a crash, continues the same
//!   deployment instead of starting a second;
//! - `getDeployment` `{resourceGroup, deploymentName}` → where a deployment stands
//!   (`running`, `succeeded`, `failed`, `canceled`, with its outputs or error), inline with
//!   `Prefer: wait`.
//!
//! Providers ([`providers`]): `azure-resource-manager` (ARM, its long-running operations
//! followed by scheduled looks) and `fake-cloud` (in process; deployments take
//! `deploymentMs` and may be steered to fail). Failover is off: a resource lives in one
//! cloud.

pub mod providers;

use std::collections::BTreeMap;
use std::time::Duration;

use app_context::{AppContext, AppRegistration, CatalogueEntry, InvalidSetting};
use domain::AuthScheme;
use functions_runtime::FunctionApp;
use integration_kit::{Done, InputError, Operation, Step, VendorApp, call_failed};
use resilience::CallError;
use serde::{Deserialize, Serialize};
use serde_json::Value;

pub const SLUG: &str = "cloud";
pub const SOURCE: &str = "/integration/cloud";

/// The providers this app has adapters for, as the registry's catalogue lists them.
pub const CATALOGUE: &[CatalogueEntry] = &[
    CatalogueEntry::retested(
        "fake-cloud",
        "Fake cloud control plane (tests and demos)",
        domain::ProviderCategory::Cloud,
        AuthScheme::ApiKey,
        "https://fake-cloud.invalid",
    ),
    CatalogueEntry::retested(
        "azure-resource-manager",
        "Azure Resource Manager (resource groups, template deployments)",
        domain::ProviderCategory::Cloud,
        AuthScheme::Oauth2ClientCredentials,
        providers::arm::DEFAULT_BASE_URL,
    ),
];

pub fn registration() -> AppRegistration {
    integration_kit::registration(SLUG, build, CATALOGUE)
}

pub fn build(ctx: &AppContext) -> Result<FunctionApp, InvalidSetting> {
    VendorApp::new(SLUG, SOURCE)
        // A resource lives in one cloud: another connection is not a failover.
        .failover(false)
        .provider(providers::fake::Fake)
        .provider(providers::arm::Arm)
        .build(ctx)
}

integration_kit::checked_string!(
    /// A resource group's or a deployment's name: 1 to 90 letters, digits, `-`, `_`, `.`,
    /// `(` or `)`, not ending with `.` (the strictest of the control planes' rules).
    Name,
    |s| {
        if (1..=90).contains(&s.len())
            && !s.ends_with('.')
            && s.bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'(' | b')'))
        {
            Ok(())
        } else {
            Err("must be 1 to 90 letters, digits, -, _, ., ( or ), not ending with .".into())
        }
    }
);

integration_kit::checked_string!(
    /// A region: 1 to 50 lowercase letters, digits or `-` (`westeurope`, `us-east-1`).
    Location,
    |s| {
        if (1..=50).contains(&s.len())
            && s
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        {
            Ok(())
        } else {
            Err("must be a region name (lowercase letters, digits and -, westeurope)".into())
        }
    }
);

/// `ensureResourceGroup`: a resource group exists in a location.
pub struct EnsureResourceGroup;

impl Operation for EnsureResourceGroup {
    const NAME: &'static str = "ensureResourceGroup";
    type Input = NewResourceGroup;
    type Output = ResourceGroup;

    fn check(input: &NewResourceGroup) -> Result<(), InputError> {
        if input.tags.len() > 50 {
            return Err(InputError::at(
                "tags",
                format!("at most 50 entries (got {})", input.tags.len()),
            ));
        }
        for (k, v) in &input.tags {
            if !(1..=512).contains(&k.chars().count()) || v.chars().count() > 256 {
                return Err(InputError::at(
                    format!("tags/{k}"),
                    "keys are 1 to 512 characters, values at most 256",
                ));
            }
        }
        Ok(())
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct NewResourceGroup {
    pub name: Name,
    pub location: Location,
    #[serde(default, deserialize_with = "integration_kit::null_as_default")]
    pub tags: BTreeMap<String, String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ResourceGroup {
    /// The control plane's id of the group.
    pub id: String,
    pub name: String,
    pub location: String,
    /// The control plane's word (`Succeeded`).
    pub state: String,
}

/// How a template is applied.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum DeploymentMode {
    /// Resources in the template are made or updated; others are left alone.
    #[default]
    Incremental,
    /// Resources of the group not in the template are deleted.
    Complete,
}

/// `deployTemplate`: a template deployed; the run waits until the deployment ends.
pub struct DeployTemplate;

impl Operation for DeployTemplate {
    const NAME: &'static str = "deployTemplate";
    /// Long deployments run for hours; the kit's setting may lower it.
    const MAX_WAIT: Duration = Duration::from_secs(24 * 3600);
    type Input = NewDeployment;
    type Output = Deployment;

    fn check(input: &NewDeployment) -> Result<(), InputError> {
        match (&input.template, &input.template_uri) {
            (Some(_), Some(_)) => Err(InputError::at(
                "templateUri",
                "give template or templateUri, not both",
            )),
            (None, None) => Err(InputError::at(
                "template",
                "a template or templateUri is required",
            )),
            (Some(t), None) if !t.is_object() => {
                Err(InputError::at("template", "must be a JSON object"))
            }
            (None, Some(uri)) if !uri.starts_with("https://") || uri.len() > 2048 => {
                Err(InputError::at(
                    "templateUri",
                    "must be an https URL of at most 2048 characters",
                ))
            }
            _ => Ok(()),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct NewDeployment {
    pub resource_group: Name,
    /// The run's id when absent: a retried run continues the same deployment.
    #[serde(default)]
    pub deployment_name: Option<Name>,
    #[serde(default)]
    pub template: Option<Value>,
    #[serde(default)]
    pub template_uri: Option<String>,
    #[serde(default)]
    pub parameters: Option<serde_json::Map<String, Value>>,
    #[serde(default)]
    pub mode: DeploymentMode,
}

/// Where a deployment stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum DeploymentState {
    Running,
    Succeeded,
    Failed,
    Canceled,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Deployment {
    pub name: String,
    pub resource_group: String,
    pub state: DeploymentState,
    /// The template's outputs, once it succeeded.
    #[serde(default)]
    pub outputs: Value,
    /// How long it ran (so far).
    pub duration_ms: u64,
    /// The control plane's error, when it failed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<DeploymentError>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeploymentError {
    pub code: String,
    pub message: String,
}

/// `getDeployment`: where a deployment stands.
pub struct GetDeployment;

impl Operation for GetDeployment {
    const NAME: &'static str = "getDeployment";
    type Input = DeploymentRef;
    type Output = Deployment;
}

#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct DeploymentRef {
    pub resource_group: Name,
    pub deployment_name: Name,
}

/// A control plane's refusal or failure: `code: message`, the code kept as the vendor code.
pub(crate) fn refused(
    class: domain::FailureClassification,
    code: &str,
    message: &str,
) -> CallError {
    let mut e = call_failed(class, format!("{code}: {message}"));
    e.failure.vendor_code = Some(code.to_owned());
    e
}

/// A deployment that stopped, as its run's end: the deployment, or (failed, canceled) the
/// run's failure with the control plane's code.
pub(crate) fn ended(deployment: Deployment) -> Result<Step<Deployment>, CallError> {
    let (code, message) = match (deployment.state, &deployment.error) {
        (DeploymentState::Succeeded, _) => return Ok(Done::new(deployment).into()),
        (DeploymentState::Running, _) => {
            return Err(integration_kit::malformed(
                "a running deployment is not an end",
            ));
        }
        (_, Some(error)) => (error.code.as_str(), error.message.as_str()),
        (DeploymentState::Canceled, None) => ("Canceled", "the deployment was canceled"),
        (DeploymentState::Failed, None) => ("DeploymentFailed", "the deployment did not succeed"),
    };
    Err(refused(
        domain::FailureClassification::VendorError,
        code,
        message,
    ))
}
