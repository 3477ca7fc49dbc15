//! Function declarations: the generated `function.json` (§3), the host's name rules (§2.1)
//! and our own refusals.

use std::path::PathBuf;

use serde_json::{Map, Value, json};

use functions_runtime::declare::{
    AuthLevel, DeclarationError, FunctionDecl, OutputBinding, ServiceBusSource, Trigger,
    valid_binding_name, valid_function_name, validate,
};
use functions_runtime::{FunctionApp, InvocationResponse};

fn ok_app() -> FunctionApp {
    FunctionApp::new("test")
        .http_function(FunctionDecl::http(
            "StartRun",
            "runs/{runId}",
            &["GET", "Post"],
        ))
        .function(FunctionDecl::queue("ProcessRun", "runs"), |_| async {
            Ok(InvocationResponse::default())
        })
        .function(
            FunctionDecl::subscription("OnEvent", "events", "platform"),
            |_| async { Ok(InvocationResponse::default()) },
        )
        .function(FunctionDecl::timer("Nightly", "0 0 2 * * *"), |_| async {
            Ok(InvocationResponse::default())
        })
}

fn output(name: &str) -> OutputBinding {
    OutputBinding {
        name: name.into(),
        binding_type: "serviceBus".into(),
        properties: Map::new(),
    }
}

// --- function.json ---------------------------------------------------------------------------

#[test]
fn http_function_json() {
    let decl = FunctionDecl::http("StartRun", "runs/{runId}", &["GET", "Post"])
        .with_auth_level(AuthLevel::Function);
    assert_eq!(
        decl.function_json(),
        json!({ "bindings": [
            { "type": "httpTrigger", "direction": "in", "name": "req",
              "authLevel": "function", "methods": ["get", "post"], "route": "runs/{runId}" },
            { "type": "http", "direction": "out", "name": "res" },
        ] })
    );
    // Anonymous by default: the platform authenticates requests itself.
    assert_eq!(
        FunctionDecl::http("A", "a", &["get"]).function_json()["bindings"][0]["authLevel"],
        "anonymous"
    );
    assert_eq!(
        FunctionDecl::http("A", "a", &["get"])
            .with_auth_level(AuthLevel::Admin)
            .function_json()["bindings"][0]["authLevel"],
        "admin"
    );
}

#[test]
fn auth_level_only_applies_to_http() {
    let decl = FunctionDecl::queue("ProcessRun", "runs").with_auth_level(AuthLevel::Admin);
    assert_eq!(decl, FunctionDecl::queue("ProcessRun", "runs"));
    assert!(
        decl.function_json()["bindings"][0]
            .get("authLevel")
            .is_none()
    );
}

#[test]
fn service_bus_queue_function_json() {
    assert_eq!(
        FunctionDecl::queue("ProcessRun", "runs").function_json(),
        json!({ "bindings": [
            { "type": "serviceBusTrigger", "direction": "in", "name": "msg", "queueName": "runs",
              "connection": "ServiceBusConnection", "isSessionsEnabled": false,
              "autoCompleteMessages": true, "cardinality": "one", "dataType": "binary" },
        ] })
    );
}

#[test]
fn service_bus_subscription_function_json() {
    let fj = FunctionDecl::subscription("OnEvent", "events", "platform").function_json();
    assert_eq!(
        fj,
        json!({ "bindings": [
            { "type": "serviceBusTrigger", "direction": "in", "name": "msg",
              "topicName": "events", "subscriptionName": "platform",
              "connection": "ServiceBusConnection", "isSessionsEnabled": false,
              "autoCompleteMessages": true, "cardinality": "one", "dataType": "binary" },
        ] })
    );
    assert!(fj["bindings"][0].get("queueName").is_none());
}

#[test]
fn session_enabled_trigger() {
    let decl = FunctionDecl::service_bus(
        "PerTenant",
        ServiceBusSource::Queue("tenant-runs".into()),
        true,
    );
    let b = &decl.function_json()["bindings"][0];
    assert_eq!(b["isSessionsEnabled"], true);
    assert_eq!(b["queueName"], "tenant-runs");
    assert_eq!(b["dataType"], "binary");
    assert_eq!(b["autoCompleteMessages"], true);
}

#[test]
fn timer_function_json() {
    assert_eq!(
        FunctionDecl::timer("Nightly", "0 */5 * * * *").function_json(),
        json!({ "bindings": [
            { "type": "timerTrigger", "direction": "in", "name": "timer",
              "schedule": "0 */5 * * * *", "runOnStartup": false, "useMonitor": true },
        ] })
    );
    let mut decl = FunctionDecl::timer("Nightly", "%NightlySchedule%");
    decl.trigger = Trigger::Timer {
        schedule: "%NightlySchedule%".into(),
        run_on_startup: true,
        use_monitor: false,
    };
    let b = &decl.function_json()["bindings"][0];
    assert_eq!(b["schedule"], "%NightlySchedule%");
    assert_eq!(b["runOnStartup"], true);
    assert_eq!(b["useMonitor"], false);
}

// --- Name rules ------------------------------------------------------------------------------

#[test]
fn function_names() {
    let long_ok = format!("a{}", "b".repeat(127));
    let too_long = format!("a{}", "b".repeat(128));
    assert_eq!(long_ok.len(), 128);
    for name in [
        "a",
        "StartRun",
        "process_run",
        "process-run",
        "A1",
        "x-_-9",
        "hosts",
        "Host1",
        long_ok.as_str(),
    ] {
        assert!(valid_function_name(name), "{name:?} is valid");
    }
    for name in [
        "",
        "host",
        "HOST",
        "Host",
        "1run",
        "_run",
        "-run",
        "run.v2",
        "run run",
        "rün",
        "run/x",
        too_long.as_str(),
    ] {
        assert!(!valid_function_name(name), "{name:?} is invalid");
    }
}

#[test]
fn binding_names() {
    let long_ok = format!("a{}", "b".repeat(127));
    let too_long = format!("a{}", "b".repeat(128));
    for name in [
        "req",
        "msg",
        "outMsg",
        "A1",
        "return",
        "$return",
        long_ok.as_str(),
    ] {
        assert!(valid_binding_name(name), "{name:?} is valid");
    }
    for name in [
        "",
        "out_msg",
        "out-msg",
        "_msg",
        "1msg",
        "$Return",
        "$return2",
        "$ret",
        "m sg",
        too_long.as_str(),
    ] {
        assert!(!valid_binding_name(name), "{name:?} is invalid");
    }
}

#[test]
fn invalid_names_are_refused_by_validate() {
    let too_long = "a".repeat(129);
    for name in ["host", "1run", "run.v2", too_long.as_str()] {
        assert_eq!(
            validate(&[FunctionDecl::queue(name, "runs")]),
            Err(DeclarationError::FunctionName(name.to_owned())),
            "{name}"
        );
    }
    // `api` is valid for the host but collides with the forwarded routes.
    assert_eq!(
        validate(&[FunctionDecl::queue("Api", "runs")]),
        Err(DeclarationError::Reserved("Api".into()))
    );

    let mut decl = FunctionDecl::queue("ProcessRun", "runs");
    decl.trigger_binding = "my_msg".into();
    assert_eq!(
        validate(&[decl]),
        Err(DeclarationError::BindingName {
            function: "ProcessRun".into(),
            binding: "my_msg".into()
        })
    );
    let mut decl = FunctionDecl::queue("ProcessRun", "runs");
    decl.outputs.push(output("out-msg"));
    assert_eq!(
        validate(&[decl]),
        Err(DeclarationError::BindingName {
            function: "ProcessRun".into(),
            binding: "out-msg".into()
        })
    );
    let mut decl = FunctionDecl::queue("ProcessRun", "runs");
    decl.outputs.push(output("$return"));
    decl.outputs.push(output("outMsg"));
    assert_eq!(validate(&[decl]), Ok(()));
}

#[test]
fn duplicate_names_are_case_insensitive() {
    assert_eq!(
        validate(&[
            FunctionDecl::queue("ProcessRun", "runs"),
            FunctionDecl::timer("processrun", "0 0 * * * *")
        ]),
        Err(DeclarationError::Duplicate("processrun".into()))
    );
    let app = FunctionApp::new("dup")
        .function(FunctionDecl::queue("ProcessRun", "runs"), |_| async {
            Ok(InvocationResponse::default())
        })
        .http_function(FunctionDecl::http("PROCESSRUN", "x", &["get"]));
    assert_eq!(
        app.validate(),
        Err(DeclarationError::Duplicate("PROCESSRUN".into()))
    );
}

#[test]
fn http_with_outputs_is_refused() {
    let mut decl = FunctionDecl::http("StartRun", "runs", &["post"]);
    decl.outputs.push(output("outMsg"));
    assert_eq!(
        validate(&[decl]),
        Err(DeclarationError::HttpWithOutputs("StartRun".into()))
    );
}

#[test]
fn invalid_routes_are_refused() {
    for route in [
        "",
        "/",
        "runs//x",
        "{*rest}/x",
        "runs/x{id}",
        "runs/{id}x",
        "{id?}/runs",
        "runs/{}",
        "runs/{a-b}",
    ] {
        match validate(&[FunctionDecl::http("StartRun", route, &["get"])]) {
            Err(DeclarationError::Route { function, .. }) => assert_eq!(function, "StartRun"),
            other => panic!("route {route:?}: {other:?}"),
        }
    }
    assert_eq!(
        validate(&[FunctionDecl::http(
            "StartRun",
            "runs/{runId:guid}/steps/{*rest}",
            &["get"]
        )]),
        Ok(())
    );
}

#[test]
fn schedules() {
    for schedule in [
        "0 */5 * * * *",
        "0 0 2 * * mon-fri",
        "%NightlySchedule%",
        "%X%",
    ] {
        assert_eq!(
            validate(&[FunctionDecl::timer("Nightly", schedule)]),
            Ok(()),
            "{schedule}"
        );
    }
    for schedule in [
        "",
        "*/5 * * * *",
        "0 0 24 * * *",
        "%%",
        "%Unclosed",
        "Setting%",
        "0 0 0 * * 7",
        "hourly",
    ] {
        match validate(&[FunctionDecl::timer("Nightly", schedule)]) {
            Err(DeclarationError::Schedule { function, reason }) => {
                assert_eq!(function, "Nightly");
                assert!(!reason.is_empty());
            }
            other => panic!("schedule {schedule:?}: {other:?}"),
        }
    }
}

#[test]
fn service_bus_needs_an_entity_and_a_connection() {
    let missing = |f: FunctionDecl| match validate(std::slice::from_ref(&f)) {
        Err(DeclarationError::Missing { function, .. }) => assert_eq!(function, f.name),
        other => panic!("{f:?}: {other:?}"),
    };
    missing(FunctionDecl::queue("ProcessRun", ""));
    missing(FunctionDecl::subscription("OnEvent", "", "platform"));
    missing(FunctionDecl::subscription("OnEvent", "events", ""));
    let mut decl = FunctionDecl::queue("ProcessRun", "runs");
    if let Trigger::ServiceBus { connection, .. } = &mut decl.trigger {
        connection.clear();
    }
    missing(decl);
}

#[test]
fn app_validate_requires_handlers_for_non_http_functions() {
    assert_eq!(ok_app().validate(), Ok(()));
    let app = ok_app().http_function(FunctionDecl::queue("Orphan", "orphans"));
    assert_eq!(
        app.validate(),
        Err(DeclarationError::Missing {
            function: "Orphan".into(),
            what: "handler"
        })
    );
    let app = FunctionApp::new("t").http_function(FunctionDecl::timer("Tick", "0 * * * * *"));
    assert_eq!(
        app.validate(),
        Err(DeclarationError::Missing {
            function: "Tick".into(),
            what: "handler"
        })
    );
    // HTTP functions are served by the router, not by handlers.
    let app = FunctionApp::new("t").http_function(FunctionDecl::http("Only", "only", &["get"]));
    assert_eq!(app.validate(), Ok(()));
}

#[test]
fn app_keeps_declarations_in_order() {
    let app = ok_app();
    assert_eq!(app.slug(), "test");
    let names: Vec<&str> = app.declarations().iter().map(|d| d.name.as_str()).collect();
    // Every app declares its OpenAPI document first.
    assert_eq!(
        names,
        ["OpenApi", "StartRun", "ProcessRun", "OnEvent", "Nightly"]
    );
}

#[test]
fn the_host_is_given_head_beside_get_and_every_method_of_a_known_route() {
    let app = FunctionApp::new("t")
        .http_function(FunctionDecl::http("ListThings", "things", &["get"]))
        .http_function(FunctionDecl::http("AddThing", "things", &["post"]))
        .http_function(FunctionDecl::http("Anything", "any", &[]));
    let methods = |decls: &[FunctionDecl], name: &str| match &decls
        .iter()
        .find(|d| d.name == name)
        .unwrap()
        .trigger
    {
        functions_runtime::Trigger::Http { methods, .. } => methods.clone(),
        _ => unreachable!(),
    };
    let host = app.host_declarations();
    // The route's first function takes what no function of the route takes.
    assert_eq!(
        methods(&host, "ListThings"),
        ["get", "head", "put", "patch", "delete"]
    );
    assert_eq!(methods(&host, "AddThing"), ["post"]);
    assert!(
        methods(&host, "Anything").is_empty(),
        "already every method"
    );
    // The real declarations (OpenAPI, handlers) are untouched.
    assert_eq!(methods(app.declarations(), "ListThings"), ["get"]);
}

// --- write_function_json ---------------------------------------------------------------------

struct TempDir(PathBuf);

impl TempDir {
    fn new() -> Self {
        let dir =
            std::env::temp_dir().join(format!("functions-runtime-it-{}", uuid::Uuid::new_v4()));
        std::fs::create_dir_all(&dir).unwrap();
        TempDir(dir)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

#[test]
fn write_function_json_writes_one_folder_per_function() {
    let app = ok_app();
    let dir = TempDir::new();
    // A stale file is overwritten, not appended to.
    std::fs::create_dir_all(dir.0.join("ProcessRun")).unwrap();
    std::fs::write(
        dir.0.join("ProcessRun").join("function.json"),
        "{\"stale\":true, \"padding\": \"..........\"}",
    )
    .unwrap();
    app.write_function_json(&dir.0).unwrap();

    let mut folders: Vec<String> = std::fs::read_dir(&dir.0)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    folders.sort();
    assert_eq!(
        folders,
        ["Nightly", "OnEvent", "OpenApi", "ProcessRun", "StartRun"]
    );
    for decl in &app.host_declarations() {
        let folder = dir.0.join(&decl.name);
        let files: Vec<_> = std::fs::read_dir(&folder).unwrap().collect();
        assert_eq!(files.len(), 1, "{}", decl.name);
        let text = std::fs::read_to_string(folder.join("function.json")).unwrap();
        let v: Value = serde_json::from_str(&text).unwrap();
        assert_eq!(v, decl.function_json(), "{}", decl.name);
        // Every function.json has at least one binding, the trigger first.
        assert_eq!(v["bindings"][0]["direction"], "in");
    }
}
