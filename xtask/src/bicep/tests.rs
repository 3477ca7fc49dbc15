//! `infra-bicep/` against the code: the same apps, the same messaging entities (names,
//! sessions, delivery and duplicate-detection settings), the same containers, app settings
//! the code reads, and no keys. Plus the tokenizer the checks rely on.

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::time::Duration;

use app_context::{VENDOR_APPS, platform_topology};
use ports::EntitySpec;

use super::*;
use crate::package::{apps, workspace_root};

fn infra() -> PathBuf {
    workspace_root().join("infra-bicep")
}

fn source(relative: &str) -> String {
    let path = infra().join(relative);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

fn tokens(relative: &str) -> Vec<Token> {
    tokenize(&source(relative)).unwrap_or_else(|e| panic!("{relative}: {e}"))
}

fn strings_of_var(tokens: &[Token], name: &str) -> Vec<String> {
    string_items(var_value(tokens, name).unwrap_or_else(|| panic!("no var {name}")))
}

fn single_value(tokens: &[Token]) -> String {
    match tokens {
        [t] => match &t.tok {
            Tok::Str { text, .. } => text.clone(),
            Tok::Num(n) | Tok::Ident(n) => n.clone(),
            Tok::Punct(c) => c.to_string(),
        },
        other => panic!("expected one value, got {other:?}"),
    }
}

/// `PT1M`, `PT10M`, `PT30S`, `PT1H` (what the Bicep uses for Service Bus durations).
fn iso_duration(text: &str) -> Duration {
    let rest = text
        .strip_prefix("PT")
        .unwrap_or_else(|| panic!("{text}: only PT durations"));
    let mut seconds = 0u64;
    let mut number = String::new();
    for c in rest.chars() {
        if c.is_ascii_digit() {
            number.push(c);
            continue;
        }
        let n: u64 = number.parse().unwrap_or_else(|_| panic!("{text}"));
        number.clear();
        seconds += n * match c {
            'H' => 3600,
            'M' => 60,
            'S' => 1,
            _ => panic!("{text}: unit {c}"),
        };
    }
    Duration::from_secs(seconds)
}

#[test]
fn the_tokenizer_sees_strings_comments_and_brackets_as_bicep_does() {
    let src = "// a { comment\nvar a = 'x}' /* ] */\nvar b = '${concat('[', a)}-y'\nvar c = [\n  'p\\'q'\n  '''\n{ multi\n'''\n]\n";
    let toks = tokenize(src).unwrap();
    check_balance(&toks).unwrap();
    assert_eq!(single_value(var_value(&toks, "a").unwrap()), "x}");
    let b = var_value(&toks, "b").unwrap();
    assert!(
        matches!(&b[0].tok, Tok::Str { interpolated: true, text } if text == "${concat('[', a)}-y")
    );
    assert_eq!(
        string_items(var_value(&toks, "c").unwrap()),
        ["p'q", "\n{ multi\n"]
    );

    for broken in [
        "var a = {\n",
        "var a = [ ]]\n",
        "var a = ( ]\n",
        "var a = 'open\n",
        "/* never closed",
        "var a = '${b'\n",
    ] {
        let result = tokenize(broken).and_then(|t| check_balance(&t));
        assert!(result.is_err(), "{broken:?} should be refused");
    }
}

#[test]
fn every_file_is_balanced_and_every_module_exists() {
    let files = bicep_files(&infra()).unwrap();
    assert!(files.len() >= 8, "{files:?}");
    let mut used = BTreeSet::new();
    for file in &files {
        let text = std::fs::read_to_string(file).unwrap();
        let toks = tokenize(&text).unwrap_or_else(|e| panic!("{}: {e}", file.display()));
        check_balance(&toks).unwrap_or_else(|e| panic!("{}: {e}", file.display()));
        for path in module_paths(&toks) {
            let target = file.parent().unwrap().join(&path);
            assert!(
                target.is_file(),
                "{}: module {path} does not exist",
                file.display()
            );
            used.insert(target.canonicalize().unwrap());
        }
    }
    // One module per resource kind, and none left unused.
    for module in bicep_files(&infra().join("modules")).unwrap() {
        assert!(
            used.contains(&module.canonicalize().unwrap()),
            "{} is not used by main.bicep",
            module.display()
        );
    }
}

#[test]
fn the_function_apps_are_the_fourteen_apps() {
    let main = tokens("main.bicep");
    let listed = strings_of_var(&main, "apps");
    let mut expected: BTreeSet<String> = VENDOR_APPS.iter().map(|s| (*s).to_owned()).collect();
    expected.insert("registry".into());
    expected.insert("webhook-gateway".into());
    assert_eq!(listed.len(), 14, "{listed:?}");
    assert_eq!(listed.iter().cloned().collect::<BTreeSet<_>>(), expected);
    // The apps without a runs queue are the platform ones.
    let platform: BTreeSet<String> = strings_of_var(&main, "platformApps").into_iter().collect();
    let vendor: BTreeSet<String> = listed
        .iter()
        .filter(|a| !platform.contains(*a))
        .cloned()
        .collect();
    assert_eq!(
        vendor,
        VENDOR_APPS
            .iter()
            .map(|s| (*s).to_owned())
            .collect::<BTreeSet<_>>()
    );
    for reg in apps() {
        assert_eq!(
            platform.contains(reg.slug),
            !reg.has_runs_queue,
            "{}: platformApps and has_runs_queue disagree",
            reg.slug
        );
    }
    // Function Apps, deployment containers and role assignments all come from that list.
    let text = source("main.bicep");
    for generated in [
        "var functionAppNames = [for app in apps:",
        "containers: [for app in apps: 'deploy-${app}']",
        "module functionApps 'modules/functionapp.bicep' = [for (app, i) in apps:",
        "module roles 'modules/roles.bicep' = [for (app, i) in apps:",
    ] {
        assert!(text.contains(generated), "main.bicep lacks {generated:?}");
    }
}

#[test]
fn the_messaging_entities_are_the_codes_topology() {
    let main = tokens("main.bicep");
    let topology = platform_topology(&apps(), &EntitySpec::default());

    // Queues: the shared ones as listed, plus `runs-<app>` for every vendor app.
    let platform: BTreeSet<String> = strings_of_var(&main, "platformApps").into_iter().collect();
    let runs = var_value(&main, "runsQueues").expect("var runsQueues");
    let runs_items = object_items(runs);
    assert_eq!(runs_items.len(), 1, "one templated item");
    assert_eq!(runs_items[0]["name"], "runs-${app}");
    assert_eq!(app_context::runs_queue("x"), "runs-x");
    let mut bicep_queues: BTreeMap<String, bool> = strings_of_var(&main, "apps")
        .into_iter()
        .filter(|a| !platform.contains(a))
        .map(|a| {
            (
                app_context::runs_queue(&a),
                runs_items[0]["requiresSession"] == "true",
            )
        })
        .collect();
    for q in object_items(var_value(&main, "sharedQueues").expect("var sharedQueues")) {
        bicep_queues.insert(q["name"].clone(), q["requiresSession"] == "true");
    }
    let code_queues: BTreeMap<String, bool> = topology
        .queues
        .iter()
        .map(|(name, spec)| (name.clone(), spec.requires_session))
        .collect();
    assert_eq!(bicep_queues, code_queues, "queues (name → sessions)");

    // The topic and one subscription per consuming app, with the code's filter as SQL.
    let topic = single_value(var_value(&main, "eventsTopic").unwrap());
    assert_eq!(
        topology.topics.keys().cloned().collect::<Vec<_>>(),
        vec![topic.clone()]
    );
    let bicep_subs: BTreeMap<String, String> =
        object_items(var_value(&main, "topicSubscriptions").unwrap())
            .into_iter()
            .map(|s| (s["name"].clone(), s["sqlFilter"].clone()))
            .collect();
    let code_subs: BTreeMap<String, String> = topology.topics[&topic]
        .iter()
        .map(|s| (s.name.clone(), s.filter.to_sql()))
        .collect();
    assert_eq!(bicep_subs, code_subs, "subscriptions (name → SQL filter)");

    // Every entity gets the module's settings: they must be the code's.
    let sb = tokens("modules/servicebus.bicep");
    let defaults = EntitySpec::default();
    let max = single_value(var_value(&sb, "maxDeliveryCount").unwrap());
    let lock = iso_duration(&single_value(var_value(&sb, "lockDuration").unwrap()));
    let window = iso_duration(&single_value(
        var_value(&sb, "duplicateDetectionWindow").unwrap(),
    ));
    let specs = topology
        .queues
        .values()
        .chain(topology.topics.values().flatten().map(|s| &s.spec));
    for spec in specs {
        assert_eq!(max, spec.max_delivery_count.to_string());
        assert_eq!(lock, spec.lock_duration);
        assert_eq!(window, spec.duplicate_detection_window);
        assert_eq!(spec.default_time_to_live, defaults.default_time_to_live);
    }
    let text = source("modules/servicebus.bicep");
    assert_eq!(
        text.matches("requiresDuplicateDetection: true").count(),
        2,
        "queues and topic"
    );
    assert_eq!(
        text.matches("deadLetteringOnMessageExpiration: true")
            .count(),
        2,
        "queues and subscriptions"
    );
    assert!(text.contains("requiresSession: queue.requiresSession"));
    assert!(
        text.contains("name: '$Default'"),
        "the filter replaces the default rule"
    );
}

#[test]
fn the_containers_are_the_codes() {
    let main = tokens("main.bicep");
    assert!(
        source("main.bicep")
            .contains("var cosmosContainers = concat(platformContainers, vendorApps)"),
        "one Cosmos DB container per vendor app, from the app list"
    );
    let mut cosmos: BTreeSet<String> = strings_of_var(&main, "platformContainers")
        .into_iter()
        .collect();
    cosmos.extend(VENDOR_APPS.iter().map(|s| (*s).to_owned()));
    let registered = apps();
    let mut code: BTreeSet<String> = registered
        .iter()
        .flat_map(|r| r.containers.iter().map(|c| (*c).to_owned()))
        .collect();
    code.insert(registry_data::CONTAINER.to_owned());
    // Vendor apps not in this build yet will keep their documents in a container named
    // after them, as the integration kit does for those that are.
    for vendor in VENDOR_APPS {
        if !registered.iter().any(|r| r.slug == vendor) {
            code.insert(vendor.to_owned());
        }
    }
    assert_eq!(cosmos, code, "Cosmos DB containers");
    let blobs: BTreeSet<String> = strings_of_var(&main, "payloadContainers")
        .into_iter()
        .collect();
    let code_blobs: BTreeSet<String> = [
        webhook_gateway::RAW_CONTAINER.to_owned(),
        webhook_gateway::outbound::OUTBOUND_CONTAINER.to_owned(),
    ]
    .into();
    assert_eq!(blobs, code_blobs, "blob containers that expire");
    let runs: BTreeSet<String> = strings_of_var(&main, "runContainers").into_iter().collect();
    let code_runs: BTreeSet<String> = [
        integration_kit::INPUT_CONTAINER.to_owned(),
        integration_kit::OUTPUT_CONTAINER.to_owned(),
    ]
    .into();
    assert_eq!(runs, code_runs, "blob containers of runs");
    assert!(
        source("main.bicep").contains("containers: concat(payloadContainers, runContainers)"),
        "every blob container is created"
    );
    let text = source("main.bicep");
    assert!(
        text.contains("retainedContainers: payloadContainers"),
        "payloads expire"
    );
    let cosmos_text = source("modules/cosmos.bicep");
    assert!(cosmos_text.contains("'/tenantId'"));
    assert!(cosmos_text.contains("defaultTtl: -1"));
    assert!(source("modules/storage.bicep").contains("daysAfterModificationGreaterThan"));
}

/// Settings the Functions host itself reads (not our code).
const HOST_SETTINGS: [&str; 1] = ["APPLICATIONINSIGHTS_CONNECTION_STRING"];

/// The Rust sources of every crate's `src` under `shared/` and `functions/`, concatenated: a setting is
/// known to the code when its name appears there as a string literal.
fn code_sources() -> String {
    fn walk(dir: &std::path::Path, out: &mut String) {
        let Ok(entries) = std::fs::read_dir(dir) else {
            return;
        };
        for entry in entries {
            let path = entry.unwrap().path();
            if path.is_dir() {
                walk(&path, out);
            } else if path.extension().is_some_and(|e| e == "rs")
                && path.components().any(|c| c.as_os_str() == "src")
            {
                out.push_str(&std::fs::read_to_string(&path).unwrap());
            }
        }
    }
    let mut out = String::new();
    for group in ["shared", "functions"] {
        walk(&workspace_root().join(group), &mut out);
    }
    out
}

#[test]
fn app_settings_are_names_the_code_knows_and_carry_no_keys() {
    let app = tokens("modules/functionapp.bicep");
    let settings_block = property_value(&app, "appSettings").expect("appSettings");
    let names: Vec<String> = object_items(settings_block)
        .into_iter()
        .map(|o| o["name"].clone())
        .collect();
    assert!(names.len() >= 10, "{names:?}");
    let code = code_sources();
    let in_code = |name: &str| code.contains(&format!("\"{name}\""));
    let sample: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(workspace_root().join("local.settings.sample.json")).unwrap(),
    )
    .unwrap();
    let sample_names: BTreeSet<String> = sample["Values"]
        .as_object()
        .unwrap()
        .keys()
        .cloned()
        .collect();
    let known =
        |name: &str| in_code(name) || sample_names.contains(name) || HOST_SETTINGS.contains(&name);
    for name in &names {
        assert!(!name.contains("${"), "{name}: setting names are literal");
        // `<connection>__<property>`: identity-based connections of a known connection.
        let base = name.split("__").next().unwrap_or(name);
        assert!(
            known(name) || (name.contains("__") && known(base)),
            "{name} is written by the Bicep but read by no code and absent from local.settings.sample.json"
        );
    }
    // What the code needs in Azure is all there.
    let required = [
        app_host::adapters::SERVICE_BUS_NAMESPACE,
        app_host::adapters::COSMOS_ENDPOINT,
        app_host::adapters::COSMOS_DATABASE,
        app_host::adapters::BLOB_SERVICE_URI,
        app_host::adapters::KEY_VAULT_URI,
        auth::entra::SETTING_ISSUER,
        auth::entra::SETTING_AUDIENCE,
        auth::entra::SETTING_JWKS_URI,
        "AzureWebJobsStorage__accountName",
    ];
    for name in required {
        assert!(names.iter().any(|n| n == name), "{name} is not set");
    }
    for reg in apps() {
        let url = app_host::url_setting(reg.slug);
        if in_code(&url) {
            assert!(
                names.contains(&url),
                "{url} is read by the code but not set"
            );
        }
    }
    // Identity everywhere: no key, connection string or SAS reaches a setting.
    for name in &names {
        let lower = name.to_ascii_lowercase();
        for forbidden in [
            "accountkey",
            "accesskey",
            "connectionstring",
            "password",
            "sastoken",
        ] {
            assert!(!lower.contains(forbidden), "{name} looks like a credential");
        }
        // A bare connection name (no `__<property>`) would hold a connection string.
        assert!(
            name.contains("__") || !name.ends_with("Connection") && name != "AzureWebJobsStorage",
            "{name} would hold a connection string"
        );
        // Flex Consumption rejects these; the runtime is in functionAppConfig.
        assert!(
            ![
                "FUNCTIONS_WORKER_RUNTIME",
                "FUNCTIONS_EXTENSION_VERSION",
                "WEBSITE_RUN_FROM_PACKAGE"
            ]
            .contains(&name.as_str()),
            "{name} is not allowed on Flex Consumption"
        );
    }
    for file in bicep_files(&infra()).unwrap() {
        let text = std::fs::read_to_string(&file).unwrap();
        for call in ["listKeys(", "listConnectionStrings(", "listSecrets("] {
            assert!(
                !text.contains(call),
                "{}: {call} puts a key in a deployment",
                file.display()
            );
        }
    }
    let text = source("modules/functionapp.bicep");
    assert!(
        text.contains("name: 'custom'"),
        "the custom-handler runtime"
    );
    assert!(text.contains("type: 'SystemAssigned'"));
    assert!(text.contains("name: 'FC1'"));
}

#[test]
fn each_identity_gets_the_roles_of_the_design() {
    let roles = source("modules/roles.bicep");
    for (role, id) in [
        (
            "Azure Service Bus Data Sender",
            "69a216fc-b8fb-44d8-bc22-1f3c2cd27a39",
        ),
        (
            "Azure Service Bus Data Receiver",
            "4f6d3b9b-027b-4f4c-9142-0e5a2a2247e0",
        ),
        (
            "Storage Blob Data Contributor",
            "ba92f5b4-2d11-453d-a403-e96b0029c9fe",
        ),
        (
            "Storage Blob Data Owner",
            "b7e6dc6d-f1e8-4753-8033-0f276bb0955b",
        ),
        (
            "Key Vault Secrets Officer",
            "b86a8fe4-44ce-4948-aee5-eccb2c155cd7",
        ),
        (
            "Key Vault Secrets User",
            "4633458b-17de-408a-b874-0445c86b69e6",
        ),
        (
            "Cosmos DB Built-in Data Contributor",
            "00000000-0000-0000-0000-000000000002",
        ),
        (
            "Cosmos DB Built-in Data Reader",
            "00000000-0000-0000-0000-000000000001",
        ),
    ] {
        assert!(roles.contains(id), "{role} ({id}) is not assigned");
    }
    assert!(roles.contains("Microsoft.DocumentDB/databaseAccounts/sqlRoleAssignments@"));
    assert!(roles.contains("writesSecrets ? keyVaultSecretsOfficer : keyVaultSecretsUser"));
    assert!(source("main.bicep").contains("writesSecrets: app == 'registry'"));
}

/// What each app's identity may do in Cosmos DB, as main.bicep says: (writes, reads).
fn bicep_cosmos_access() -> BTreeMap<String, (BTreeSet<String>, BTreeSet<String>)> {
    let main = tokens("main.bicep");
    let text = source("main.bicep");
    let vendor_apps: BTreeSet<String> = VENDOR_APPS.iter().map(|s| (*s).to_owned()).collect();
    // An array literal, or the name of the vendor apps' list.
    let names = |value: &[Token]| -> BTreeSet<String> {
        match value {
            [t] if t.tok == Tok::Ident("vendorApps".into()) => vendor_apps.clone(),
            array => string_items(array).into_iter().collect(),
        }
    };
    let listed = var_value(&main, "cosmosAccess").expect("var cosmosAccess");
    let mut access: BTreeMap<String, _> = object_entries(listed)
        .into_iter()
        .map(|(app, entry)| {
            let writes = names(property_value(entry, "writes").expect("writes"));
            let reads = names(property_value(entry, "reads").expect("reads"));
            (app, (writes, reads))
        })
        .collect();
    // Every other app: its own container, and the vendor apps' reads.
    assert!(text.contains(
        "writesContainers: contains(cosmosAccess, app) ? cosmosAccess[app].writes : [\n      app\n    ]"
    ));
    assert!(text.contains(
        "readsContainers: contains(cosmosAccess, app) ? cosmosAccess[app].reads : vendorCosmosReads"
    ));
    let vendor_reads: BTreeSet<String> = strings_of_var(&main, "vendorCosmosReads")
        .into_iter()
        .collect();
    for app in strings_of_var(&main, "apps") {
        access
            .entry(app.clone())
            .or_insert_with(|| ([app].into(), vendor_reads.clone()));
    }
    access
}

#[test]
fn each_identity_writes_only_its_own_containers_and_reads_what_its_app_declares() {
    let access = bicep_cosmos_access();
    let registered = apps();
    for (app, (writes, reads)) in &access {
        // What the code declares (and the hosts enforce, `AppRegistration::context_for`);
        // a vendor app not in this build yet is what the kit registers for it.
        let (code_writes, code_reads): (BTreeSet<String>, BTreeSet<String>) =
            match registered.iter().find(|r| r.slug == app) {
                Some(r) => (
                    r.containers.iter().map(|c| (*c).to_owned()).collect(),
                    r.reads.iter().map(|c| (*c).to_owned()).collect(),
                ),
                None => (
                    [app.clone()].into(),
                    [registry_data::CONTAINER.to_owned()].into(),
                ),
            };
        assert_eq!(writes, &code_writes, "{app}: containers written");
        assert_eq!(reads, &code_reads, "{app}: containers read");
        assert!(writes.is_disjoint(reads), "{app}");
    }
    // Only the registry writes the registry's container.
    for (app, (writes, _)) in &access {
        assert_eq!(
            writes.contains(registry_data::CONTAINER),
            app == "registry",
            "{app}"
        );
    }

    // Data roles are per container; only the metadata role is account-wide.
    let roles = source("modules/roles.bicep");
    let per_container = "scope: '${cosmos.id}/dbs/${cosmosDatabaseName}/colls/${container}'";
    assert_eq!(roles.matches(per_container).count(), 2, "writes and reads");
    assert!(roles.contains("[for container in writesContainers:"));
    assert!(roles.contains("[for container in readsContainers:"));
    assert_eq!(
        roles.matches("scope: cosmos.id").count(),
        1,
        "one account-wide Cosmos DB assignment"
    );
    assert!(roles.contains(
        "roleDefinitionId: cosmosMetadataRoleId\n    principalId: principalId\n    scope: cosmos.id"
    ));
    let cosmos = tokens("modules/cosmos.bicep");
    let actions = property_value(&cosmos, "dataActions").expect("the metadata role's actions");
    assert_eq!(
        string_items(actions),
        ["Microsoft.DocumentDB/databaseAccounts/readMetadata"],
        "the account-wide role reads metadata only"
    );
}
