//! The provider against a fake Azure Resource Manager (and Entra ID token endpoint) over real
//! HTTP, answering as the ARM REST reference says: `api-version` required, a bearer token
//! from the client-credentials grant, resource groups made by an idempotent `PUT` (409
//! `InvalidResourceGroupLocation` in another location), deployments started by `PUT` with
//! `Azure-AsyncOperation` + `Retry-After`, their operation status `Running` until it ends,
//! errors as `{"error": {code, message}}`.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use domain::CredentialKind;
use integration_kit::testing::{
    Case, FakeVendor, Harness, Perform, Recorded, Reply, assert_no_secret, conformance, step,
};
use integration_kit::{Serves, parse_input};
use serde_json::{Value, json};

use super::*;

const SUB: &str = "8f3c2a1e-0b4d-4c6e-9a7f-123456789abc";
const SECRET: &str = "entra-client-secret-0123456789";
const TOKEN: &str = "arm-access-token-1";

#[derive(Default)]
struct Cloud {
    groups: BTreeMap<String, String>,
    /// name → (status looks left, the deployment's body, whether it fails)
    deployments: BTreeMap<String, (u32, Value, bool)>,
    tokens: u32,
    puts: u32,
    /// Answer this origin in `Azure-AsyncOperation` instead of ARM's own.
    foreign_status: bool,
    /// Answer the next PUT with 409 RetryableErrorDueToAnotherOperation.
    busy: bool,
}

fn arm_error(status: u16, code: &str, message: &str) -> Reply {
    Reply::json(status, json!({"error": {"code": code, "message": message}}))
}

fn arm(
    cloud: Arc<Mutex<Cloud>>,
    base: Arc<Mutex<String>>,
) -> impl Fn(&Recorded, usize) -> Reply + Send + Sync {
    move |r, _| {
        let mut c = cloud.lock().unwrap();
        if r.path == "/tenant-1/oauth2/v2.0/token" {
            let form: BTreeMap<String, String> = r.form().into_iter().collect();
            if form.get("client_secret").map(String::as_str) != Some(SECRET) {
                return Reply::json(
                    401,
                    json!({"error": "invalid_client", "error_description": "AADSTS7000215: Invalid client secret provided."}),
                );
            }
            assert_eq!(form["scope"], "https://management.azure.com/.default");
            c.tokens += 1;
            return Reply::json(
                200,
                json!({"token_type": "Bearer", "expires_in": 3599, "access_token": TOKEN}),
            );
        }
        if r.header("authorization") != Some(format!("Bearer {TOKEN}").as_str()) {
            return arm_error(401, "AuthenticationFailed", "Authentication failed.");
        }
        if !r
            .query
            .as_deref()
            .unwrap_or_default()
            .contains("api-version=")
        {
            return arm_error(
                400,
                "MissingApiVersionParameter",
                "The api-version query parameter (?api-version=) is required for all requests.",
            );
        }
        let prefix = format!("/subscriptions/{SUB}");
        let Some(rest) = r.path.strip_prefix(&prefix) else {
            return arm_error(
                404,
                "SubscriptionNotFound",
                "The subscription could not be found.",
            );
        };
        let parts: Vec<&str> = rest.split('/').filter(|p| !p.is_empty()).collect();
        match (r.method.as_str(), parts.as_slice()) {
            ("GET", []) => Reply::json(
                200,
                json!({"subscriptionId": SUB, "displayName": "Demo", "state": "Enabled"}),
            ),
            ("PUT", ["resourcegroups", name]) => {
                let location = r.json()["location"].as_str().unwrap_or_default().to_owned();
                match c.groups.get(*name) {
                    Some(l) if *l != location => arm_error(
                        409,
                        "InvalidResourceGroupLocation",
                        &format!(
                            "Invalid resource group location '{location}'. The Resource group already exists in location '{l}'."
                        ),
                    ),
                    found => {
                        let status = if found.is_some() { 200 } else { 201 };
                        c.groups.insert((*name).to_owned(), location.clone());
                        Reply::json(
                            status,
                            json!({"id": format!("{prefix}/resourceGroups/{name}"), "name": name,
                            "location": location, "tags": r.json()["tags"], "properties": {"provisioningState": "Succeeded"}}),
                        )
                    }
                }
            }
            (
                "GET",
                [
                    "resourcegroups",
                    _,
                    "providers",
                    "Microsoft.Resources",
                    "deployments",
                    name,
                ],
            ) => match c.deployments.get(*name) {
                Some((_, body, _)) => Reply::json(200, body.clone()),
                None => arm_error(
                    404,
                    "DeploymentNotFound",
                    &format!("Deployment '{name}' could not be found."),
                ),
            },
            (
                "PUT",
                [
                    "resourcegroups",
                    group,
                    "providers",
                    "Microsoft.Resources",
                    "deployments",
                    name,
                ],
            ) => {
                if c.busy {
                    c.busy = false;
                    return arm_error(
                        409,
                        "RetryableErrorDueToAnotherOperation",
                        "Operation is not allowed because another operation is in progress.",
                    );
                }
                c.puts += 1;
                let fails = r.json()["properties"]["template"]["fail"] == true;
                let body = json!({"name": name, "id": format!("{prefix}/resourceGroups/{group}/providers/Microsoft.Resources/deployments/{name}"),
                    "properties": {"provisioningState": "Accepted", "mode": r.json()["properties"]["mode"],
                                   "parameters": r.json()["properties"]["parameters"]}});
                c.deployments
                    .insert((*name).to_owned(), (2, body.clone(), fails));
                let origin = if c.foreign_status {
                    "https://elsewhere.example".to_owned()
                } else {
                    base.lock().unwrap().clone()
                };
                Reply::json(201, body)
                    .header("azure-asyncoperation", &format!("{origin}{prefix}/resourcegroups/{group}/providers/Microsoft.Resources/deployments/{name}/operationStatuses/08585?api-version={API_VERSION}"))
                    .header("retry-after", "1")
            }
            (
                "GET",
                [
                    "resourcegroups",
                    _,
                    "providers",
                    "Microsoft.Resources",
                    "deployments",
                    name,
                    "operationStatuses",
                    _,
                ],
            ) => {
                let Some((left, body, fails)) = c.deployments.get_mut(*name) else {
                    return arm_error(404, "DeploymentNotFound", "no such deployment");
                };
                if *left > 0 {
                    *left -= 1;
                    body["properties"]["provisioningState"] = json!("Running");
                    return Reply::json(200, json!({"status": "Running"}))
                        .header("retry-after", "2");
                }
                if *fails {
                    body["properties"]["provisioningState"] = json!("Failed");
                    body["properties"]["error"] = json!({"code": "DeploymentFailed", "message": "At least one resource deployment operation failed."});
                    return Reply::json(
                        200,
                        json!({"status": "Failed", "error": body["properties"]["error"]}),
                    );
                }
                body["properties"]["provisioningState"] = json!("Succeeded");
                body["properties"]["duration"] = json!("PT2.5S");
                body["properties"]["outputs"] =
                    json!({"siteUrl": {"type": "String", "value": "https://web.example"}});
                Reply::json(200, json!({"status": "Succeeded"}))
            }
            _ => arm_error(
                404,
                "InvalidResourceType",
                "The resource type could not be found.",
            ),
        }
    }
}

fn harness(base: &str) -> Harness {
    Harness::new(
        "azure-resource-manager",
        CredentialKind::Oauth2ClientCredentials,
        json!({"clientId": "app-1", "clientSecret": SECRET,
               "tokenUrl": format!("{base}/tenant-1/oauth2/v2.0/token")}),
        json!({"baseUrl": base, "subscriptionId": SUB}),
    )
}

async fn start() -> (FakeVendor, Arc<Mutex<Cloud>>) {
    let cloud = Arc::new(Mutex::new(Cloud::default()));
    let base = Arc::new(Mutex::new(String::new()));
    let fake = FakeVendor::start(arm(cloud.clone(), base.clone())).await;
    *base.lock().unwrap() = fake.base.clone();
    (fake, cloud)
}

fn wait_state(s: Step<Deployment>) -> (Value, Duration) {
    match s {
        Step::Wait(w) => (w.state, w.after),
        Step::Done(d) => panic!("done already: {:?}", d.output),
    }
}

#[tokio::test]
async fn groups_are_ensured_with_one_token() {
    let (fake, cloud) = start().await;
    let h = harness(&fake.base);
    Arm.test_connection(&h.call())
        .await
        .expect("the subscription");
    let made = Perform::<EnsureResourceGroup>::perform(
        &Arm,
        &h.call(),
        &json!({"name": "rg-web", "location": "westeurope", "tags": {"env": "test"}}),
    )
    .await
    .unwrap();
    assert_eq!(
        made.output["id"],
        format!("/subscriptions/{SUB}/resourceGroups/rg-web")
    );
    assert_eq!(made.output["state"], "Succeeded");
    Perform::<EnsureResourceGroup>::perform(
        &Arm,
        &h.call(),
        &json!({"name": "rg-web", "location": "westeurope"}),
    )
    .await
    .expect("again: there");
    let e = Perform::<EnsureResourceGroup>::perform(
        &Arm,
        &h.call(),
        &json!({"name": "rg-web", "location": "eastus"}),
    )
    .await
    .unwrap_err();
    assert_eq!(e.class(), FailureClassification::Validation);
    assert_eq!(
        e.failure.vendor_code.as_deref(),
        Some("InvalidResourceGroupLocation")
    );
    assert!(
        e.failure.message.contains("already exists in location"),
        "{e:?}"
    );
    assert_eq!(cloud.lock().unwrap().tokens, 1, "one token for every call");
}

#[tokio::test]
async fn a_deployment_is_followed_to_its_end_and_never_started_twice() {
    let (fake, cloud) = start().await;
    let h = harness(&fake.base);
    let input = json!({"resourceGroup": "rg-web", "template": {"resources": []},
                       "parameters": {"sku": "B1"}});
    let (state, after) = wait_state(
        step::<DeployTemplate, _>(&Arm, &h.call(), &input)
            .await
            .unwrap(),
    );
    assert_eq!(after, Duration::from_secs(1), "ARM's Retry-After");
    assert_eq!(
        state["name"],
        h.idempotency_key.as_deref().unwrap(),
        "named after the run"
    );
    assert!(
        state["status"]
            .as_str()
            .unwrap()
            .contains("/operationStatuses/")
    );
    let put = fake
        .requests()
        .into_iter()
        .find(|r| r.method == reqwest::Method::PUT)
        .unwrap();
    assert_eq!(put.json()["properties"]["mode"], "Incremental");
    assert_eq!(put.json()["properties"]["parameters"]["sku"]["value"], "B1");
    let parsed = parse_input::<DeployTemplate>(&input).unwrap();
    let mut state = state;
    let mut looks = 0;
    let done = loop {
        looks += 1;
        match Serves::<DeployTemplate>::resume(&Arm, &h.call(), &parsed, &state)
            .await
            .unwrap()
        {
            Step::Wait(w) => {
                assert_eq!(w.after, Duration::from_secs(2));
                state = w.state;
            }
            Step::Done(done) => break done,
        }
        assert!(looks < 10, "never ended");
    };
    assert_eq!(looks, 3, "two Running, then Succeeded");
    assert_eq!(done.output.state, DeploymentState::Succeeded);
    assert_eq!(done.output.duration_ms, 2500);
    assert_eq!(
        done.output.outputs["siteUrl"]["value"],
        "https://web.example"
    );
    // The run again (a retry after its end): the deployment is read, not started again.
    let Step::Done(again) = step::<DeployTemplate, _>(&Arm, &h.call(), &input)
        .await
        .unwrap()
    else {
        panic!("started again");
    };
    assert_eq!(again.output.state, DeploymentState::Succeeded);
    assert_eq!(cloud.lock().unwrap().puts, 1);
    let read = Perform::<GetDeployment>::perform(
        &Arm,
        &h.call(),
        &json!({"resourceGroup": "rg-web", "deploymentName": h.idempotency_key.as_deref().unwrap()}),
    )
    .await
    .unwrap();
    assert_eq!(read.output["state"], "succeeded");
}

#[tokio::test]
async fn a_failed_deployment_fails_the_run_with_arms_error() {
    let (fake, _) = start().await;
    let h = harness(&fake.base);
    let input =
        json!({"resourceGroup": "rg-web", "deploymentName": "broken", "template": {"fail": true}});
    let (mut state, _) = wait_state(
        step::<DeployTemplate, _>(&Arm, &h.call(), &input)
            .await
            .unwrap(),
    );
    let parsed = parse_input::<DeployTemplate>(&input).unwrap();
    let e = loop {
        match Serves::<DeployTemplate>::resume(&Arm, &h.call(), &parsed, &state).await {
            Ok(Step::Wait(w)) => state = w.state,
            Ok(Step::Done(d)) => panic!("succeeded: {:?}", d.output),
            Err(e) => break e,
        }
    };
    assert_eq!(e.class(), FailureClassification::VendorError);
    assert_eq!(e.failure.vendor_code.as_deref(), Some("DeploymentFailed"));
    assert!(
        e.failure
            .message
            .contains("resource deployment operation failed"),
        "{e:?}"
    );
    assert_no_secret(&e, &[SECRET, TOKEN]);
}

#[tokio::test]
async fn status_urls_elsewhere_are_refused_and_busy_resources_retried() {
    let (fake, cloud) = start().await;
    cloud.lock().unwrap().foreign_status = true;
    let e = step::<DeployTemplate, _>(
        &Arm,
        &harness(&fake.base).call(),
        &json!({"resourceGroup": "rg-web", "deploymentName": "elsewhere", "template": {}}),
    )
    .await
    .unwrap_err();
    assert!(
        e.failure.message.contains("not on the management endpoint"),
        "{e:?}"
    );
    // A waiting state pointing elsewhere is refused too.
    let parsed =
        parse_input::<DeployTemplate>(&json!({"resourceGroup": "rg-web", "template": {}})).unwrap();
    assert!(Serves::<DeployTemplate>::resume(
        &Arm,
        &harness(&fake.base).call(),
        &parsed,
        &json!({"resourceGroup": "rg-web", "name": "x", "status": "https://elsewhere.example/op"}),
    )
    .await
    .is_err());

    {
        let mut c = cloud.lock().unwrap();
        c.foreign_status = false;
        c.busy = true;
    }
    let s = step::<DeployTemplate, _>(
        &Arm,
        &harness(&fake.base).attempts(3).call(),
        &json!({"resourceGroup": "rg-web", "deploymentName": "busy", "template": {}}),
    )
    .await
    .expect("retried past RetryableErrorDueToAnotherOperation");
    wait_state(s);
}

#[test]
fn durations_and_states_read_as_arm_writes_them() {
    assert_eq!(duration_ms("PT2.5S"), Some(2500));
    assert_eq!(duration_ms("PT1M2.345S"), Some(62_345));
    assert_eq!(duration_ms("PT1H"), Some(3_600_000));
    assert_eq!(duration_ms("P1D"), None);
    assert_eq!(duration_ms("PT5"), None);
    let d = |state: &str| {
        read_deployment(
            "rg",
            &json!({"name": "d", "properties": {"provisioningState": state}}),
            &[],
        )
        .unwrap()
        .state
    };
    assert_eq!(d("Accepted"), DeploymentState::Running);
    assert_eq!(d("Running"), DeploymentState::Running);
    assert_eq!(d("Succeeded"), DeploymentState::Succeeded);
    assert_eq!(d("Failed"), DeploymentState::Failed);
    assert_eq!(d("Canceled"), DeploymentState::Canceled);
    assert!(read_deployment("rg", &json!({"name": "d"}), &[]).is_err());
    assert!(is_guid(SUB));
    assert!(!is_guid("not-a-guid"));
}

struct Script;

impl integration_kit::testing::VendorScript for Script {
    fn reply(&self, case: Case, request: &Recorded) -> Result<Reply, &'static str> {
        if request.path.ends_with("/oauth2/v2.0/token") {
            return Ok(Reply::json(
                200,
                json!({"token_type": "Bearer", "expires_in": 3599, "access_token": TOKEN}),
            ));
        }
        Ok(match case {
            Case::Success => Reply::json(
                200,
                json!({"id": "/subscriptions/x/resourceGroups/rg", "name": "rg",
                "location": "westeurope", "properties": {"provisioningState": "Succeeded"}}),
            ),
            Case::Invalid => arm_error(
                400,
                "InvalidParameter",
                "The value of parameter location is invalid.",
            ),
            Case::Unauthorized => arm_error(
                403,
                "AuthorizationFailed",
                "The client does not have authorization to perform action.",
            ),
            Case::Throttled => arm_error(
                429,
                "TooManyRequests",
                "Number of requests exceeded the limit.",
            )
            .header(
                "retry-after",
                &integration_kit::testing::THROTTLE_SECS.to_string(),
            ),
            Case::ServerError => arm_error(
                500,
                "InternalServerError",
                "Encountered internal server error.",
            ),
            Case::Malformed => Reply::text(200, "<html>"),
        })
    }
}

#[tokio::test]
async fn conformance_of_the_group_and_the_reads() {
    let skipped = conformance::<EnsureResourceGroup, _, _>(
        &Arm,
        Script,
        harness,
        json!({"name": "rg", "location": "westeurope"}),
        &[SECRET, TOKEN],
        true,
    )
    .await;
    assert!(skipped.is_empty(), "{skipped:?}");
    // The script's success reads as a deployment too (a name and a provisioningState).
    let skipped = conformance::<GetDeployment, _, _>(
        &Arm,
        Script,
        harness,
        json!({"resourceGroup": "rg", "deploymentName": "d"}),
        &[SECRET, TOKEN],
        true,
    )
    .await;
    assert!(skipped.is_empty(), "{skipped:?}");
}
