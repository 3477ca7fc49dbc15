//! Every app's OpenAPI document through the runner: served without a token, a valid OpenAPI
//! 3.1 document, linked from the runner's index, and naming every HTTP function the app
//! declares, with its methods, path parameters and the problem+json error answer.

use serde_json::{Value, json};
use testkit::TestPlatform;

/// The four apps through the runner, and the runner's index.
async fn platform_and_index() -> (TestPlatform, Value) {
    let platform = TestPlatform::start(
        &[
            registry::registration(),
            webhook_gateway::registration(),
            sms::registration(),
            email::registration(),
        ],
        json!({}),
    )
    .await;
    let index: Value = platform
        .client
        .get(platform.url("/"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    (platform, index)
}

#[tokio::test]
async fn every_app_documents_every_http_function() {
    let (platform, index) = platform_and_index().await;
    let apps = index["apps"].as_array().unwrap();
    assert_eq!(apps.len(), 4);
    for app in apps {
        let slug = app["slug"].as_str().unwrap();
        let link = app["openapi"].as_str().unwrap();
        assert_eq!(link, format!("/{slug}/api/openapi.json"));
        // No token: the description of an API is public.
        let r = platform
            .client
            .get(platform.url(link))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200, "{slug}");
        assert_eq!(r.headers()["content-type"], "application/json");
        let text = r.text().await.unwrap();
        let spec = oas3::from_json(&text).unwrap_or_else(|e| panic!("{slug}: invalid: {e}"));
        assert!(spec.openapi.starts_with("3.1"), "{slug}");
        let doc: Value = serde_json::from_str(&text).unwrap();
        assert!(
            doc["components"]["schemas"]["Problem"].is_object(),
            "{slug}: the problem schema"
        );
        assert_eq!(
            doc["components"]["securitySchemes"]["bearer"]["scheme"],
            "bearer"
        );
        let mut http = 0;
        for f in app["functions"].as_array().unwrap() {
            if f["trigger"] != "http" {
                continue;
            }
            http += 1;
            let name = f["name"].as_str().unwrap();
            let route = f["route"].as_str().unwrap();
            let path = route
                .strip_prefix(&format!("/{slug}"))
                .unwrap_or_else(|| panic!("{slug}: {route} outside the app"));
            let item = &doc["paths"][path];
            assert!(
                item.is_object(),
                "{slug}: {name} ({path}) is not documented"
            );
            for method in f["methods"].as_array().unwrap() {
                let op = &item[method.as_str().unwrap()];
                assert_eq!(op["operationId"], name, "{slug}: {name} {method}");
                assert_eq!(
                    op["responses"]["4XX"]["$ref"], "#/components/responses/Problem",
                    "{slug}: {name}"
                );
                let params = path.matches('{').count();
                assert_eq!(
                    op["parameters"]
                        .as_array()
                        .map_or(0, |p| p.iter().filter(|p| p["in"] == "path").count()),
                    params,
                    "{slug}: {name}'s path parameters"
                );
            }
        }
        assert!(http > 1, "{slug} declares HTTP functions");
        // Every operation the document has is a declared function, and nothing more.
        let documented: usize = doc["paths"]
            .as_object()
            .unwrap()
            .values()
            .map(|item| item.as_object().unwrap().len())
            .sum();
        let declared: usize = app["functions"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|f| f["trigger"] == "http")
            .map(|f| f["methods"].as_array().unwrap().len())
            .sum();
        assert_eq!(documented, declared, "{slug}");
    }
    // The vendor apps say which operations they run.
    let sms: Value = platform
        .client
        .get(platform.url("/sms/api/openapi.json"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(
        sms["paths"]["/api/integrations/runs"]["post"]["requestBody"]["content"]["application/json"]
            ["schema"]["properties"]["operation"]["enum"],
        json!(["send"])
    );
    assert_eq!(
        sms["paths"]["/api/integrations/receipts/{tenantId}/{connectionId}"]["post"]["security"],
        json!([])
    );
    platform.shutdown().await;
}

/// Every HTTP function an app declares is served by its router at the declared route and
/// methods: the declaration (what the host forwards) and the axum route (what answers)
/// cannot drift apart unnoticed. A route that is not served answers the router's fallback
/// (404 `no such route`) or 405.
#[tokio::test]
async fn every_declared_route_is_served() {
    let (platform, index) = platform_and_index().await;
    let mut checked = 0;
    for app in index["apps"].as_array().unwrap() {
        for f in app["functions"].as_array().unwrap() {
            if f["trigger"] != "http" {
                continue;
            }
            // Parameters filled with a value of the right shape for no resource.
            let route: String = f["route"]
                .as_str()
                .unwrap()
                .split('/')
                .map(|s| if s.starts_with('{') { "x0" } else { s })
                .collect::<Vec<_>>()
                .join("/");
            for method in f["methods"].as_array().unwrap() {
                let method = method.as_str().unwrap().to_ascii_uppercase();
                let r = platform
                    .client
                    .request(method.parse().unwrap(), platform.url(&route))
                    .send()
                    .await
                    .unwrap();
                let status = r.status().as_u16();
                let body = r.text().await.unwrap_or_default();
                assert_ne!(status, 405, "{method} {route}: declared, not served");
                assert!(
                    !(status == 404 && body.contains("no such route")),
                    "{method} {route}: declared ({}), not served",
                    f["name"]
                );
                checked += 1;
            }
        }
    }
    assert!(checked > 20, "{checked}");
    platform.shutdown().await;
}
