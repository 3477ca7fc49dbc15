//! Packages laid out around a dummy executable (no release build): what the Functions host
//! would read from them, checked against the host's rules independently of the generator.

use std::collections::{BTreeMap, BTreeSet};
use std::io::Read as _;
use std::path::Path;

use serde_json::{Value, json};

use super::*;

/// Problems the Functions host (or forwarding) would have with one `function.json`, by the
/// rules of the custom-handler reference: name rules, binding names, one trigger,
/// `dataType: binary` on Service Bus triggers and other outputs, and forwarded HTTP
/// functions (exactly an httpTrigger in and one http out named `res` or `$return`,
/// anonymous, with a route).
fn host_rules(function: &str, fj: &Value) -> Vec<String> {
    let mut problems = Vec::new();
    let mut say = |p: String| problems.push(format!("{function}: {p}"));
    let name_ok = {
        let b = function.as_bytes();
        !b.is_empty()
            && b.len() <= 128
            && b[0].is_ascii_alphabetic()
            && b.iter()
                .all(|c| c.is_ascii_alphanumeric() || *c == b'_' || *c == b'-')
            && !function.eq_ignore_ascii_case("host")
    };
    if !name_ok {
        say("invalid function name".into());
    }
    let Some(bindings) = fj["bindings"].as_array().filter(|b| !b.is_empty()) else {
        say("no bindings".into());
        return problems;
    };
    let binding_name_ok = |n: &str| {
        n == "$return"
            || (!n.is_empty()
                && n.len() <= 128
                && n.as_bytes()[0].is_ascii_alphabetic()
                && n.bytes().all(|c| c.is_ascii_alphanumeric()))
    };
    for b in bindings {
        let name = b["name"].as_str().unwrap_or_default();
        if !binding_name_ok(name) {
            say(format!("invalid binding name {name:?}"));
        }
        if !matches!(b["direction"].as_str(), Some("in" | "out")) {
            say(format!("binding {name:?} has no direction"));
        }
    }
    let triggers: Vec<&Value> = bindings
        .iter()
        .filter(|b| {
            b["type"].as_str().is_some_and(|t| t.ends_with("Trigger")) && b["direction"] == "in"
        })
        .collect();
    if triggers.len() != 1 {
        say(format!("{} triggers, not one", triggers.len()));
        return problems;
    }
    let trigger = triggers[0];
    match trigger["type"].as_str().unwrap_or_default() {
        "httpTrigger" => {
            if trigger["authLevel"] != "anonymous" {
                say("HTTP trigger is not anonymous (the platform authenticates)".into());
            }
            if trigger["route"]
                .as_str()
                .is_none_or(|r| r.trim().is_empty())
            {
                say("HTTP trigger has no route".into());
            }
            let methods_ok = trigger["methods"].as_array().is_some_and(|m| {
                !m.is_empty()
                    && m.iter().all(|v| {
                        v.as_str()
                            .is_some_and(|s| !s.is_empty() && s == s.to_ascii_lowercase())
                    })
            });
            if !methods_ok {
                say("HTTP methods must be a non-empty list in lower case".into());
            }
            let outputs: Vec<&Value> = bindings
                .iter()
                .filter(|b| b["direction"] == "out")
                .collect();
            let forwarded = bindings.len() == 2
                && outputs.len() == 1
                && outputs[0]["type"] == "http"
                && matches!(outputs[0]["name"].as_str(), Some("res" | "$return"));
            if !forwarded {
                say("an HTTP function must be one httpTrigger in and one http out (res or $return) to be forwarded".into());
            }
        }
        "serviceBusTrigger" => {
            if trigger["dataType"] != "binary" {
                say("Service Bus trigger without dataType binary".into());
            }
            if trigger["connection"].as_str().is_none_or(str::is_empty) {
                say("Service Bus trigger without a connection".into());
            }
            let queue = trigger["queueName"].as_str().is_some_and(|q| !q.is_empty());
            let sub = trigger["topicName"].as_str().is_some_and(|q| !q.is_empty())
                && trigger["subscriptionName"]
                    .as_str()
                    .is_some_and(|q| !q.is_empty());
            if queue == sub {
                say("Service Bus trigger needs a queue or a topic and subscription".into());
            }
            if trigger["autoCompleteMessages"] == false {
                say(
                    "a custom handler cannot settle messages: autoCompleteMessages must stay true"
                        .into(),
                );
            }
        }
        "timerTrigger" => {
            let schedule = trigger["schedule"].as_str().unwrap_or_default();
            let setting =
                schedule.len() > 2 && schedule.starts_with('%') && schedule.ends_with('%');
            if !setting && schedule.split_whitespace().count() != 6 {
                say(format!(
                    "timer schedule {schedule:?} is not six-field NCRONTAB"
                ));
            }
        }
        other => say(format!("unexpected trigger type {other:?}")),
    }
    if trigger["type"] != "httpTrigger" {
        for b in bindings.iter().filter(|b| b["direction"] == "out") {
            if b["dataType"] != "binary" {
                say(format!(
                    "output {:?} is not binary: the host would base64-decode text",
                    b["name"]
                ));
            }
        }
    }
    problems
}

fn root_host_json() -> std::path::PathBuf {
    workspace_root().join("host.json")
}

/// A stand-in for the release handler, deliberately not executable: the layout must set
/// the mode.
fn dummy_handler(dir: &Path) -> std::path::PathBuf {
    let path = dir.join("dummy-handler");
    std::fs::write(&path, b"#!/bin/sh\necho not the real handler\n").unwrap();
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt as _;
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
    }
    path
}

fn zip_entries(path: &Path) -> BTreeMap<String, (Option<u32>, Vec<u8>)> {
    let mut archive = zip::ZipArchive::new(std::fs::File::open(path).unwrap()).unwrap();
    let mut out = BTreeMap::new();
    for i in 0..archive.len() {
        let mut f = archive.by_index(i).unwrap();
        let mut bytes = Vec::new();
        f.read_to_end(&mut bytes).unwrap();
        out.insert(f.name().unwrap().to_string(), (f.unix_mode(), bytes));
    }
    out
}

#[test]
fn every_app_packages_into_what_the_host_reads() {
    let host_text = std::fs::read_to_string(root_host_json()).unwrap();
    let exe = executable_name(&host_text).unwrap();
    for reg in apps() {
        let (decls, proxying) = declarations(&reg, &BTreeMap::new()).unwrap();
        assert!(!decls.is_empty(), "{} declares functions", reg.slug);
        let tmp = tempfile::tempdir().unwrap();
        let handler = dummy_handler(tmp.path());
        let out = tmp.path().join("package");
        let dir = layout(
            &out,
            reg.slug,
            &decls,
            proxying,
            &root_host_json(),
            &handler,
        )
        .unwrap();
        assert_eq!(dir, out.join(reg.slug));

        // The folder: host.json, the handler, one folder per function, nothing else.
        let mut expected: BTreeSet<String> = ["host.json".to_owned(), exe.clone()].into();
        expected.extend(decls.iter().map(|d| d.name.clone()));
        let found: BTreeSet<String> = std::fs::read_dir(&dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        assert_eq!(found, expected, "{}", reg.slug);
        // The root host.json, with the app named as the handler's argument.
        let written: Value =
            serde_json::from_str(&std::fs::read_to_string(dir.join("host.json")).unwrap()).unwrap();
        let mut expected_host: Value = serde_json::from_str(&host_text).unwrap();
        expected_host["customHandler"]["description"]["arguments"] = serde_json::json!([reg.slug]);
        // The model apps stream their answers: the host proxies their requests.
        assert_eq!(
            proxying,
            ["openai", "azure-openai", "ollama"].contains(&reg.slug),
            "{}",
            reg.slug
        );
        if proxying {
            let handler = expected_host["customHandler"].as_object_mut().unwrap();
            handler.remove("enableForwardingHttpRequest");
            handler.insert("enableProxyingHttpRequest".into(), Value::Bool(true));
        }
        assert_eq!(written, expected_host, "{}", reg.slug);
        assert_eq!(
            app_host::pick(apps(), Some(reg.slug)).unwrap().slug,
            reg.slug,
            "the handler serves the app host.json names"
        );
        assert_eq!(
            std::fs::read(dir.join(&exe)).unwrap(),
            std::fs::read(&handler).unwrap()
        );
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt as _;
            let mode = std::fs::metadata(dir.join(&exe))
                .unwrap()
                .permissions()
                .mode();
            assert_eq!(
                mode & 0o777,
                0o755,
                "{}: the handler is executable",
                reg.slug
            );
        }

        // Every function.json obeys the host's rules and says what the declaration says.
        let mut problems = Vec::new();
        for d in &decls {
            let text = std::fs::read_to_string(dir.join(&d.name).join("function.json")).unwrap();
            let fj: Value = serde_json::from_str(&text).unwrap();
            assert_eq!(fj, d.function_json());
            problems.extend(host_rules(&d.name, &fj));
        }
        assert!(problems.is_empty(), "{}: {problems:#?}", reg.slug);

        // The zip: the same files, the handler 0755 and everything else 0644.
        let zip = out.join(format!("{}.zip", reg.slug));
        zip_dir(&dir, &zip).unwrap();
        let entries = zip_entries(&zip);
        let mut names: BTreeSet<String> = ["host.json".to_owned(), exe.clone()].into();
        names.extend(decls.iter().map(|d| format!("{}/function.json", d.name)));
        assert_eq!(entries.keys().cloned().collect::<BTreeSet<_>>(), names);
        for (name, (mode, bytes)) in &entries {
            let want = if *name == exe { 0o755 } else { 0o644 };
            assert_eq!(mode.map(|m| m & 0o777), Some(want), "{}: {name}", reg.slug);
            assert_eq!(bytes, &std::fs::read(dir.join(name)).unwrap(), "{name}");
        }
    }
}

#[test]
fn the_root_host_json_forwards_http_and_loads_the_bundle() {
    let v: Value =
        serde_json::from_str(&std::fs::read_to_string(root_host_json()).unwrap()).unwrap();
    assert_eq!(v["version"], "2.0");
    let handler = &v["customHandler"];
    assert_eq!(handler["enableForwardingHttpRequest"], true);
    assert!(handler["description"]["defaultExecutablePath"].is_string());
    assert_eq!(
        v["extensionBundle"],
        json!({"id": "Microsoft.Azure.Functions.ExtensionBundle", "version": "[4.*, 5.0.0)"})
    );
    // Forwarded requests arrive under /api: the apps' routers are mounted there.
    assert_eq!(v["extensions"]["http"]["routePrefix"], "api");
    // Custom handlers cannot settle messages themselves.
    assert_ne!(v["extensions"]["serviceBus"]["autoCompleteMessages"], false);
}

#[test]
fn the_rules_catch_what_the_host_would_refuse() {
    let http_ok = json!({"bindings": [
        {"type": "httpTrigger", "direction": "in", "name": "req", "authLevel": "anonymous", "methods": ["get"], "route": "things"},
        {"type": "http", "direction": "out", "name": "res"}]});
    assert!(host_rules("GetThings", &http_ok).is_empty());
    let cases = [
        ("1bad", http_ok.clone(), "invalid function name"),
        (
            "Keyed",
            json!({"bindings": [
                {"type": "httpTrigger", "direction": "in", "name": "req", "authLevel": "function", "methods": ["get"], "route": "x"},
                {"type": "http", "direction": "out", "name": "res"}]}),
            "not anonymous",
        ),
        (
            "NoRoute",
            json!({"bindings": [
                {"type": "httpTrigger", "direction": "in", "name": "req", "authLevel": "anonymous", "methods": ["get"]},
                {"type": "http", "direction": "out", "name": "res"}]}),
            "no route",
        ),
        (
            "NotForwarded",
            json!({"bindings": [
                {"type": "httpTrigger", "direction": "in", "name": "req", "authLevel": "anonymous", "methods": ["post"], "route": "x"},
                {"type": "http", "direction": "out", "name": "res"},
                {"type": "serviceBus", "direction": "out", "name": "out", "queueName": "q", "dataType": "binary"}]}),
            "forwarded",
        ),
        (
            "Text",
            json!({"bindings": [
                {"type": "serviceBusTrigger", "direction": "in", "name": "msg", "queueName": "q", "connection": "C"}]}),
            "dataType binary",
        ),
        (
            "Underscore",
            json!({"bindings": [
                {"type": "serviceBusTrigger", "direction": "in", "name": "my_msg", "queueName": "q", "connection": "C", "dataType": "binary"}]}),
            "invalid binding name",
        ),
        (
            "Both",
            json!({"bindings": [
                {"type": "serviceBusTrigger", "direction": "in", "name": "msg", "queueName": "q", "topicName": "t", "subscriptionName": "s", "connection": "C", "dataType": "binary"}]}),
            "a queue or a topic",
        ),
        (
            "Sniffed",
            json!({"bindings": [
                {"type": "timerTrigger", "direction": "in", "name": "timer", "schedule": "0 0 * * * *"},
                {"type": "blob", "direction": "out", "name": "report", "path": "r/x"}]}),
            "not binary",
        ),
        (
            "FiveFields",
            json!({"bindings": [
                {"type": "timerTrigger", "direction": "in", "name": "timer", "schedule": "0 * * * *"}]}),
            "six-field",
        ),
    ];
    for (name, fj, expected) in cases {
        let problems = host_rules(name, &fj);
        assert!(
            problems.iter().any(|p| p.contains(expected)),
            "{name}: expected {expected:?} in {problems:?}"
        );
    }
}

#[test]
fn the_executable_name_comes_from_host_json_and_must_be_plain() {
    let host = |path: &str| {
        json!({"customHandler": {"description": {"defaultExecutablePath": path}}}).to_string()
    };
    assert_eq!(executable_name(&host("handler")).unwrap(), "handler");
    for bad in ["", "bin/handler", "..", "%HANDLER%"] {
        assert!(executable_name(&host(bad)).is_err(), "{bad:?}");
    }
    assert!(executable_name(r#"{"customHandler": {}}"#).is_err());
    assert!(executable_name("not json").is_err());
}

#[test]
fn a_function_named_like_the_executable_is_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let handler = dummy_handler(tmp.path());
    let decls = vec![functions_runtime::FunctionDecl::http(
        "handler",
        "x",
        &["get"],
    )];
    let err = layout(
        &tmp.path().join("out"),
        "x",
        &decls,
        false,
        &root_host_json(),
        &handler,
    )
    .unwrap_err()
    .to_string();
    assert!(err.contains("collide"), "{err}");
    let err = layout(
        &tmp.path().join("out"),
        "x",
        &[],
        false,
        &root_host_json(),
        &tmp.path().join("missing"),
    )
    .unwrap_err()
    .to_string();
    assert!(err.contains("no handler executable"), "{err}");
}

#[test]
fn zips_are_reproducible_and_stale_files_are_cleared() {
    let tmp = tempfile::tempdir().unwrap();
    let handler = dummy_handler(tmp.path());
    let out = tmp.path().join("out");
    let decls = vec![functions_runtime::FunctionDecl::http("Get", "x", &["get"])];
    let dir = layout(&out, "x", &decls, false, &root_host_json(), &handler).unwrap();
    std::fs::write(dir.join("stale.txt"), "left from an earlier run").unwrap();
    let dir = layout(&out, "x", &decls, false, &root_host_json(), &handler).unwrap();
    assert!(!dir.join("stale.txt").exists());
    zip_dir(&dir, &tmp.path().join("a.zip")).unwrap();
    zip_dir(&dir, &tmp.path().join("b.zip")).unwrap();
    assert_eq!(
        std::fs::read(tmp.path().join("a.zip")).unwrap(),
        std::fs::read(tmp.path().join("b.zip")).unwrap()
    );
}

#[test]
fn apps_are_chosen_by_slug() {
    let all = apps();
    assert_eq!(select(&all, &[]).unwrap().len(), all.len());
    let one = select(&all, &["webhook-gateway".to_owned()]).unwrap();
    assert_eq!(one[0].slug, "webhook-gateway");
    let err = select(&all, &["nope".to_owned()]).unwrap_err().to_string();
    assert!(err.contains("nope") && err.contains("registry"), "{err}");
}

/// Every workspace member under `functions/` is a Function App: it must be in the one app
/// list (`platform_apps::all()`), which the one handler binary of `platform-apps` serves.
#[test]
fn every_app_crate_is_packaged_with_a_handler() {
    let root = workspace_root();
    let workspace = std::fs::read_to_string(root.join("Cargo.toml")).unwrap();
    let members: Vec<&str> = workspace
        .lines()
        .filter_map(|l| l.trim().strip_prefix("\"functions/"))
        .filter_map(|l| l.split('"').next())
        .collect();
    assert!(members.contains(&"registry"), "{members:?}");
    // One handler binary serves every app of the list: the one named by its argument.
    let handlers_dir = root.join("shared/platform").join(HANDLERS_PACKAGE);
    let handlers = std::fs::read_to_string(handlers_dir.join("Cargo.toml")).unwrap();
    assert!(
        handlers.contains(&format!("name = \"{HANDLER_BIN}\"")),
        "{HANDLERS_PACKAGE}/Cargo.toml needs [[bin]] {HANDLER_BIN}"
    );
    let main = std::fs::read_to_string(
        handlers_dir
            .join("src/bin")
            .join(format!("{HANDLER_BIN}.rs")),
    )
    .unwrap_or_default();
    assert!(
        main.contains("app_host::main_of(platform_apps::all(), platform_apps::catalogue())"),
        "{HANDLER_BIN}.rs must serve the app list with the platform's catalogue"
    );
    assert!(app_host::pick(apps(), None).is_err(), "no argument, no app");
    assert!(
        app_host::pick(apps(), Some("nope"))
            .unwrap_err()
            .contains("registry"),
        "an unknown app is refused, naming the apps"
    );
    let mut crates = BTreeSet::new();
    for member in members {
        let manifest = root.join("functions").join(member).join("Cargo.toml");
        let text = std::fs::read_to_string(&manifest).unwrap();
        let name = text
            .lines()
            .find_map(|l| l.trim().strip_prefix("name = \""))
            .and_then(|rest| rest.strip_suffix('"'))
            .unwrap_or_else(|| panic!("{} names no package", manifest.display()))
            .to_owned();
        assert_eq!(name, member, "folder name = package name");
        assert!(
            !text.contains("[[bin]]") && !text.contains("app-host"),
            "{}: an app's crate links no host; its handler lives in {HANDLERS_PACKAGE}",
            manifest.display()
        );
        crates.insert(name);
    }
    let packaged: BTreeSet<String> = apps().iter().map(|r| r.slug.to_owned()).collect();
    assert_eq!(
        crates, packaged,
        "platform_apps! must list every app under functions/"
    );
}
