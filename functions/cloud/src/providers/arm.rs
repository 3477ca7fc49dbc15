//! The `azure-resource-manager` provider: Azure Resource Manager
//! (`https://management.azure.com`, config `baseUrl` for sovereign clouds), `api-version`
//! [`API_VERSION`] on every call (Microsoft.Resources' stable version in the published REST
//! specifications).
//!
//! What each call relies on, from the ARM REST reference and its long-running operation
//! rules:
//! - **Auth.** An Entra ID token for `https://management.azure.com/.default`: the
//!   connection's `oauth2ClientCredentials` (a service principal; a workload identity
//!   federation token endpoint works the same way) or the Function App's `managedIdentity`,
//!   through the kit's token cache; a 401 drops the token and tries once more.
//! - **`ensureResourceGroup`.** `PUT /subscriptions/{s}/resourcegroups/{name}` `{location,
//!   tags}` is idempotent: 200 (there) or 201 (made) with `properties.provisioningState`. A
//!   group in another location is 409 `InvalidResourceGroupLocation`.
//! - **`deployTemplate`.** The deployment (named after the run unless named) is read first:
//!   one that exists is followed rather than started again (a retried or restarted run).
//!   Else `PUT …/providers/Microsoft.Resources/deployments/{name}` with `properties {mode,
//!   template | templateLink {uri}, parameters {name: {value}}}` answers 200/201 and
//!   `Azure-AsyncOperation` (else `Location`) to follow, and `Retry-After`. The run waits;
//!   each look is a scheduled resume that reads the operation (`status`: `InProgress`,
//!   `Succeeded`, `Failed`, `Canceled`) after the `Retry-After` ARM asked for, and only on
//!   the management endpoint's own origin (another is refused: a status URL must not lead
//!   the platform's credential elsewhere). When it ends, the deployment is read for its
//!   `outputs` and `duration`; a failed or canceled one fails the run with ARM's error code
//!   and message.
//! - **`getDeployment`.** `GET` of the deployment: `provisioningState` (`Accepted`,
//!   `Running`, … → `running`; `Succeeded`; `Failed`; `Canceled`), `outputs`, `duration`
//!   (ISO 8601), `error`.
//! - **Errors** are `{"error": {code, message, details}}`; the code is the vendor code, the
//!   message redacted. 429 waits the `Retry-After`; 409 `RetryableErrorDueToAnotherOperation`
//!   (another operation holds the resource) is transient, retried. A success whose
//!   `x-ms-ratelimit-remaining-*` reached 0 holds the connection's next calls for a second
//!   (`resilience::hints`: ARM's buckets refill each second), rather than earning a 429.

use std::time::Duration;

use async_trait::async_trait;
use domain::{CredentialKind, FailureClassification};
use integration_kit::{
    Done, InputError, JsonCall, Provider, ProviderCall, Served, Serves, Step, VendorAnswers, Wait,
    call_failed, malformed,
};
use resilience::{CallError, Safety};
use secrecy::ExposeSecret as _;
use serde_json::{Value, json};

use crate::{
    DeployTemplate, Deployment, DeploymentError, DeploymentMode, DeploymentRef, DeploymentState,
    EnsureResourceGroup, GetDeployment, NewDeployment, NewResourceGroup, ResourceGroup,
};

pub const DEFAULT_BASE_URL: &str = "https://management.azure.com";
/// Microsoft.Resources' stable API version.
pub const API_VERSION: &str = "2025-04-01";
const SCOPE: &str = "https://management.azure.com/.default";
const RESOURCE: &str = "https://management.azure.com/";
/// A look when ARM names no `Retry-After`.
const DEFAULT_LOOK: Duration = Duration::from_secs(15);

pub struct Arm;

#[derive(Debug, serde::Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct ArmConfig {
    #[serde(default, rename = "baseUrl")]
    _base_url: Option<String>,
    subscription_id: String,
}

fn is_guid(s: &str) -> bool {
    let parts: Vec<&str> = s.split('-').collect();
    parts.iter().map(|p| p.len()).eq([8, 4, 4, 4, 12])
        && parts
            .iter()
            .all(|p| p.bytes().all(|b| b.is_ascii_hexdigit()))
}

impl integration_kit::ProviderConfig for ArmConfig {
    fn check(&self) -> Result<(), InputError> {
        if !is_guid(&self.subscription_id) {
            return Err(InputError::at(
                "subscriptionId",
                "must be a subscription id (a GUID)",
            ));
        }
        Ok(())
    }
}

/// ARM's answers: the status decides (429's `Retry-After` kept), then its error body.
fn answers<'s>(
    call: &'s ProviderCall<'_>,
) -> VendorAnswers<
    's,
    impl Fn(&mut resilience::VendorFailure, &integration_kit::Answer<'_>) -> String + Send + Sync,
> {
    VendorAnswers::new(
        "azure-resource-manager",
        call.credential.values().collect(),
        |failure, answer| {
            let error = &answer.error["error"];
            let code = error["code"].as_str();
            if code == Some("RetryableErrorDueToAnotherOperation") {
                failure.class = FailureClassification::Transient;
            }
            failure.vendor_code = code.map(str::to_owned);
            error["message"].as_str().unwrap_or_default().to_owned()
        },
    )
}

async fn authorization(call: &ProviderCall<'_>) -> Result<String, CallError> {
    let token = match call.credential.kind() {
        CredentialKind::Oauth2ClientCredentials => call.client_credentials_token(SCOPE).await?,
        CredentialKind::ManagedIdentity => call.managed_identity_token(RESOURCE).await?,
        other => {
            return Err(call_failed(
                FailureClassification::Validation,
                format!("azure-resource-manager takes an Entra ID credential, not {other:?}"),
            ));
        }
    };
    Ok(format!("Bearer {}", token.token.expose_secret()))
}

/// One ARM call with the connection's token (fetched again once after a 401).
async fn send(
    call: &ProviderCall<'_>,
    method: reqwest::Method,
    url: &str,
    body: Option<&Value>,
    safety: Safety,
) -> Result<resilience::VendorResponse, CallError> {
    call.with_fresh_token_on_401(true, || async {
        let auth = authorization(call).await?;
        call.json_response(
            JsonCall {
                method: method.clone(),
                url,
                authorization: Some(&auth),
                headers: &[],
                body,
                safety,
            },
            &answers(call),
        )
        .await
    })
    .await
}

fn secrets<'a>(call: &'a ProviderCall<'_>) -> Vec<&'a str> {
    call.credential.values().collect()
}

fn json_of(answer: &resilience::VendorResponse) -> Result<Value, CallError> {
    serde_json::from_slice(&answer.body).map_err(|_| malformed("not JSON"))
}

fn base(call: &ProviderCall<'_>) -> String {
    call.base_url(DEFAULT_BASE_URL)
        .trim_end_matches('/')
        .to_owned()
}

fn subscription(call: &ProviderCall<'_>) -> Result<String, CallError> {
    let config: ArmConfig = call.config_as()?;
    Ok(format!(
        "{}/subscriptions/{}",
        base(call),
        config.subscription_id
    ))
}

fn deployment_url(call: &ProviderCall<'_>, group: &str, name: &str) -> Result<String, CallError> {
    Ok(format!(
        "{}/resourcegroups/{group}/providers/Microsoft.Resources/deployments/{name}?api-version={API_VERSION}",
        subscription(call)?
    ))
}

/// ISO 8601 durations as ARM writes them (`PT1M2.345S`, `PT1H`), in milliseconds.
fn duration_ms(iso: &str) -> Option<u64> {
    let rest = iso.strip_prefix("PT")?;
    let (mut total, mut number) = (0f64, String::new());
    for c in rest.chars() {
        match c {
            '0'..='9' | '.' => number.push(c),
            'H' | 'M' | 'S' => {
                let n: f64 = number.parse().ok()?;
                number.clear();
                total += n * match c {
                    'H' => 3_600_000.0,
                    'M' => 60_000.0,
                    _ => 1000.0,
                };
            }
            _ => return None,
        }
    }
    number.is_empty().then_some(total.round() as u64)
}

/// A deployment as ARM answers it, normalised; its error's words with `secrets` masked.
pub(crate) fn read_deployment(
    group: &str,
    v: &Value,
    secrets: &[&str],
) -> Result<Deployment, CallError> {
    let properties = &v["properties"];
    let word = properties["provisioningState"]
        .as_str()
        .ok_or_else(|| malformed("the deployment has no provisioningState"))?;
    let state = match word {
        "Succeeded" => DeploymentState::Succeeded,
        "Failed" => DeploymentState::Failed,
        "Canceled" => DeploymentState::Canceled,
        _ => DeploymentState::Running,
    };
    let error = &properties["error"];
    Ok(Deployment {
        name: v["name"]
            .as_str()
            .ok_or_else(|| malformed("the deployment has no name"))?
            .to_owned(),
        resource_group: group.to_owned(),
        state,
        outputs: properties["outputs"].clone(),
        duration_ms: properties["duration"]
            .as_str()
            .and_then(duration_ms)
            .unwrap_or(0),
        error: error["code"].as_str().map(|code| DeploymentError {
            code: code.to_owned(),
            message: integration_kit::vendor_text(
                error["message"].as_str().unwrap_or_default(),
                secrets,
            ),
        }),
    })
}

/// `Retry-After` (seconds) of an answer, else the default look.
fn retry_after(answer: &resilience::VendorResponse) -> Duration {
    answer
        .headers
        .get("retry-after")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok())
        .map(Duration::from_secs)
        .unwrap_or(DEFAULT_LOOK)
}

/// The status URL ARM named, kept only on the management endpoint's own origin.
fn status_url(
    call: &ProviderCall<'_>,
    answer: &resilience::VendorResponse,
) -> Result<Option<String>, CallError> {
    let Some(url) = ["azure-asyncoperation", "location"]
        .iter()
        .find_map(|h| answer.headers.get(*h)?.to_str().ok())
    else {
        return Ok(None);
    };
    let origin = |u: &str| {
        reqwest::Url::parse(u)
            .ok()
            .map(|u| u.origin().ascii_serialization())
    };
    if origin(url).is_none() || origin(url) != origin(&base(call)) {
        return Err(call_failed(
            FailureClassification::VendorError,
            "the operation's status URL is not on the management endpoint",
        ));
    }
    Ok(Some(url.to_owned()))
}

fn waiting(group: &str, name: &str, status: Option<String>, after: Duration) -> Step<Deployment> {
    Wait::after(
        after,
        json!({"resourceGroup": group, "name": name, "status": status}),
    )
    .progress(json!({"name": name, "resourceGroup": group, "state": "running", "durationMs": 0}))
    .into()
}

#[async_trait]
impl Provider for Arm {
    fn key(&self) -> &'static str {
        "azure-resource-manager"
    }

    fn credential_kinds(&self) -> &'static [CredentialKind] {
        &[
            CredentialKind::Oauth2ClientCredentials,
            CredentialKind::ManagedIdentity,
        ]
    }

    /// `GET /subscriptions/{s}`: the identity may read the subscription.
    async fn test_connection(&self, call: &ProviderCall<'_>) -> Result<(), CallError> {
        let url = format!("{}?api-version={API_VERSION}", subscription(call)?);
        let answer = send(call, reqwest::Method::GET, &url, None, Safety::Safe).await?;
        if json_of(&answer)?["subscriptionId"].is_null() {
            return Err(malformed("the subscription answer has no subscriptionId"));
        }
        Ok(())
    }

    fn serves(served: &mut Served<Self>) {
        served
            .operation::<EnsureResourceGroup>()
            .operation::<DeployTemplate>()
            .operation::<GetDeployment>()
            .config::<ArmConfig>();
    }
}

#[async_trait]
impl Serves<EnsureResourceGroup> for Arm {
    async fn execute(
        &self,
        call: &ProviderCall<'_>,
        input: &NewResourceGroup,
    ) -> Result<Step<ResourceGroup>, CallError> {
        let url = format!(
            "{}/resourcegroups/{}?api-version={API_VERSION}",
            subscription(call)?,
            input.name
        );
        let body = json!({"location": input.location.as_str(), "tags": input.tags});
        let answer = send(
            call,
            reqwest::Method::PUT,
            &url,
            Some(&body),
            Safety::Idempotent,
        )
        .await?;
        let group = json_of(&answer)?;
        let field = |name: &str| {
            group[name]
                .as_str()
                .map(str::to_owned)
                .ok_or_else(|| malformed(&format!("the resource group has no {name}")))
        };
        Ok(Done::new(ResourceGroup {
            id: field("id")?,
            name: field("name")?,
            location: field("location")?,
            state: group["properties"]["provisioningState"]
                .as_str()
                .unwrap_or("Succeeded")
                .to_owned(),
        })
        .into())
    }
}

#[async_trait]
impl Serves<DeployTemplate> for Arm {
    async fn execute(
        &self,
        call: &ProviderCall<'_>,
        input: &NewDeployment,
    ) -> Result<Step<Deployment>, CallError> {
        let group = input.resource_group.to_string();
        let name = input
            .deployment_name
            .as_ref()
            .map(ToString::to_string)
            .or_else(|| call.idempotency_key.map(str::to_owned))
            .ok_or_else(|| malformed("a deployment outside a run needs a deploymentName"))?;
        let url = deployment_url(call, &group, &name)?;
        // One that exists (this run's, started before a retry or a restart) is followed.
        match send(call, reqwest::Method::GET, &url, None, Safety::Safe).await {
            Ok(found) => {
                let deployment = read_deployment(&group, &json_of(&found)?, &secrets(call))?;
                if deployment.state != DeploymentState::Running {
                    return crate::ended(deployment);
                }
                return Ok(waiting(&group, &name, None, DEFAULT_LOOK));
            }
            Err(e) if e.failure.vendor_status == Some(404) => {}
            Err(e) => return Err(e),
        }
        let mut properties = json!({"mode": match input.mode {
            DeploymentMode::Incremental => "Incremental",
            DeploymentMode::Complete => "Complete",
        }});
        match (&input.template, &input.template_uri) {
            (Some(template), _) => properties["template"] = template.clone(),
            (None, Some(uri)) => properties["templateLink"] = json!({"uri": uri}),
            (None, None) => return Err(malformed("no template")),
        }
        if let Some(parameters) = &input.parameters {
            properties["parameters"] = Value::Object(
                parameters
                    .iter()
                    .map(|(k, v)| (k.clone(), json!({"value": v})))
                    .collect(),
            );
        }
        let answer = send(
            call,
            reqwest::Method::PUT,
            &url,
            Some(&json!({"properties": properties})),
            // A PUT of the same deployment is the same deployment.
            Safety::Idempotent,
        )
        .await?;
        let status = status_url(call, &answer)?;
        Ok(waiting(&group, &name, status, retry_after(&answer)))
    }

    async fn resume(
        &self,
        call: &ProviderCall<'_>,
        _input: &NewDeployment,
        state: &Value,
    ) -> Result<Step<Deployment>, CallError> {
        let (Some(group), Some(name)) = (state["resourceGroup"].as_str(), state["name"].as_str())
        else {
            return Err(malformed("the waiting state names no deployment"));
        };
        if let Some(status) = state["status"].as_str() {
            // The URL was checked when ARM named it; checked again, as state is data.
            if reqwest::Url::parse(status)
                .ok()
                .map(|u| u.origin().ascii_serialization())
                != reqwest::Url::parse(&base(call))
                    .ok()
                    .map(|u| u.origin().ascii_serialization())
            {
                return Err(malformed("the waiting state's status URL is not ARM's"));
            }
            let answer = send(call, reqwest::Method::GET, status, None, Safety::Safe).await?;
            let operation = json_of(&answer)?;
            match operation["status"].as_str() {
                Some("Succeeded" | "Failed" | "Canceled") => {}
                Some(_) => {
                    return Ok(waiting(
                        group,
                        name,
                        Some(status.to_owned()),
                        retry_after(&answer),
                    ));
                }
                None => return Err(malformed("the operation has no status")),
            }
        }
        let url = deployment_url(call, group, name)?;
        let answer = send(call, reqwest::Method::GET, &url, None, Safety::Safe).await?;
        let deployment = read_deployment(group, &json_of(&answer)?, &secrets(call))?;
        if deployment.state == DeploymentState::Running {
            return Ok(waiting(group, name, None, retry_after(&answer)));
        }
        crate::ended(deployment)
    }
}

#[async_trait]
impl Serves<GetDeployment> for Arm {
    async fn execute(
        &self,
        call: &ProviderCall<'_>,
        input: &DeploymentRef,
    ) -> Result<Step<Deployment>, CallError> {
        let url = deployment_url(call, &input.resource_group, &input.deployment_name)?;
        let answer = send(call, reqwest::Method::GET, &url, None, Safety::Safe).await?;
        Ok(Done::new(read_deployment(
            &input.resource_group,
            &json_of(&answer)?,
            &secrets(call),
        )?)
        .into())
    }
}

#[cfg(test)]
mod tests;
