use domain::CredentialKind;
use integration_kit::testing::{Harness, Perform, step};
use integration_kit::{Serves, parse_input};
use serde_json::{Value, json};

use super::*;

fn harness(config: Value) -> Harness {
    Harness::new(
        "fake-cloud",
        CredentialKind::ApiKey,
        json!({"apiKey": "demo"}),
        config,
    )
}

async fn group(h: &Harness, name: &str) {
    Perform::<EnsureResourceGroup>::perform(
        &Fake,
        &h.call(),
        &json!({"name": name, "location": "westeurope"}),
    )
    .await
    .expect("group");
}

fn waiting(step: Step<Deployment>) -> serde_json::Value {
    match step {
        Step::Wait(w) => w.state,
        Step::Done(d) => panic!("done already: {:?}", d.output),
    }
}

#[tokio::test]
async fn a_resource_group_is_ensured_in_one_location() {
    let h = harness(json!({}));
    let made = Perform::<EnsureResourceGroup>::perform(
        &Fake,
        &h.call(),
        &json!({"name": "rg-ensure", "location": "westeurope", "tags": {"team": "a"}}),
    )
    .await
    .unwrap();
    assert_eq!(
        made.output["id"],
        "/subscriptions/fake/resourceGroups/rg-ensure"
    );
    assert_eq!(made.output["state"], "Succeeded");
    // Again: the same group.
    group(&h, "rg-ensure").await;
    let e = Perform::<EnsureResourceGroup>::perform(
        &Fake,
        &h.call(),
        &json!({"name": "rg-ensure", "location": "eastus"}),
    )
    .await
    .unwrap_err();
    assert_eq!(e.class(), domain::FailureClassification::Validation);
    assert_eq!(
        e.failure.vendor_code.as_deref(),
        Some("InvalidResourceGroupLocation")
    );
}

#[tokio::test]
async fn a_deployment_runs_its_time_and_the_same_name_continues_it() {
    let h = harness(json!({"deploymentMs": 300}));
    group(&h, "rg-deploy").await;
    let input = json!({"resourceGroup": "rg-deploy", "template": {"resources": []}});
    let state = waiting(
        step::<DeployTemplate, _>(&Fake, &h.call(), &input)
            .await
            .unwrap(),
    );
    // Named after the run.
    assert_eq!(state["name"], h.idempotency_key.as_deref().unwrap());
    let parsed = parse_input::<DeployTemplate>(&input).unwrap();
    let again = waiting(
        Serves::<DeployTemplate>::resume(&Fake, &h.call(), &parsed, &state)
            .await
            .unwrap(),
    );
    assert_eq!(
        again["startedAt"], state["startedAt"],
        "the same deployment"
    );
    tokio::time::sleep(Duration::from_millis(350)).await;
    let Step::Done(done) = Serves::<DeployTemplate>::resume(&Fake, &h.call(), &parsed, &state)
        .await
        .unwrap()
    else {
        panic!("still running after its time");
    };
    assert_eq!(done.output.state, DeploymentState::Succeeded);
    assert_eq!(done.output.duration_ms, 300);
    assert_eq!(
        done.output.outputs["deploymentName"]["value"],
        state["name"]
    );
    // The run tried again (same id): the finished deployment, not a new one.
    let Step::Done(repeat) = step::<DeployTemplate, _>(&Fake, &h.call(), &input)
        .await
        .unwrap()
    else {
        panic!("a new deployment was started");
    };
    assert_eq!(repeat.output.state, DeploymentState::Succeeded);
    let read = Perform::<GetDeployment>::perform(
        &Fake,
        &h.call(),
        &json!({"resourceGroup": "rg-deploy", "deploymentName": state["name"]}),
    )
    .await
    .unwrap();
    assert_eq!(read.output["state"], "succeeded");
}

#[tokio::test]
async fn a_look_after_a_restart_finds_the_deployment_where_the_clock_says() {
    let h = harness(json!({"deploymentMs": 100}));
    group(&h, "rg-restart").await;
    let input = json!({"resourceGroup": "rg-restart", "deploymentName": "web-restart",
                       "templateUri": "https://templates.example/web.json"});
    let state = waiting(
        step::<DeployTemplate, _>(&Fake, &h.call(), &input)
            .await
            .unwrap(),
    );
    // The process that started it is gone: only the run's state remains.
    DEPLOYMENTS
        .lock()
        .unwrap()
        .retain(|(_, _, name), _| name != "web-restart");
    tokio::time::sleep(Duration::from_millis(150)).await;
    let parsed = parse_input::<DeployTemplate>(&input).unwrap();
    let Step::Done(done) = Serves::<DeployTemplate>::resume(&Fake, &h.call(), &parsed, &state)
        .await
        .unwrap()
    else {
        panic!("not finished");
    };
    assert_eq!(done.output.name, "web-restart");
    assert_eq!(done.output.state, DeploymentState::Succeeded);
}

#[tokio::test]
async fn a_failed_deployment_fails_with_the_control_planes_code() {
    let h = harness(json!({"failDeployments": true}));
    group(&h, "rg-fail").await;
    let e = step::<DeployTemplate, _>(
        &Fake,
        &h.call(),
        &json!({"resourceGroup": "rg-fail", "template": {}}),
    )
    .await
    .unwrap_err();
    assert_eq!(e.class(), domain::FailureClassification::VendorError);
    assert_eq!(e.failure.vendor_code.as_deref(), Some("DeploymentFailed"));
    let e = step::<DeployTemplate, _>(
        &Fake,
        &h.call(),
        &json!({"resourceGroup": "rg-missing", "template": {}}),
    )
    .await
    .unwrap_err();
    assert_eq!(
        e.failure.vendor_code.as_deref(),
        Some("ResourceGroupNotFound")
    );
    let e = Perform::<GetDeployment>::perform(
        &Fake,
        &h.call(),
        &json!({"resourceGroup": "rg-fail", "deploymentName": "nothing"}),
    )
    .await
    .unwrap_err();
    assert_eq!(e.failure.vendor_code.as_deref(), Some("DeploymentNotFound"));
}

#[test]
fn inputs_are_checked_at_their_field() {
    let bad = |input: Value| parse_input::<DeployTemplate>(&input).unwrap_err().path;
    assert_eq!(
        bad(json!({"resourceGroup": "rg", "template": {}, "templateUri": "https://x"})),
        "templateUri"
    );
    assert_eq!(bad(json!({"resourceGroup": "rg"})), "template");
    assert_eq!(
        bad(json!({"resourceGroup": "rg", "template": [1]})),
        "template"
    );
    assert_eq!(
        bad(json!({"resourceGroup": "rg", "templateUri": "http://plain.example/t.json"})),
        "templateUri"
    );
    assert!(bad(json!({"resourceGroup": "rg.", "template": {}})).contains("resourceGroup"));
    let e = parse_input::<EnsureResourceGroup>(&json!({"name": "rg", "location": "West Europe"}))
        .unwrap_err();
    assert!(e.path.contains("location"), "{e:?}");
}
