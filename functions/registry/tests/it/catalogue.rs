use crate::support::published;
use serde_json::{Value, json};
use testkit::{TestPlatform, assert_problem};

const PROVIDERS: &str = "/registry/api/integrations/providers";

async fn platform(environment: &str) -> TestPlatform {
    crate::support::platform(&[], json!({ "AZURE_FUNCTIONS_ENVIRONMENT": environment })).await
}

fn github() -> Value {
    json!({
        "key": "github",
        "displayName": "GitHub",
        "category": "sourceControl",
        "authScheme": "githubApp",
        "baseUrl": "https://api.github.com",
        "rateLimitHints": {"remainingHeader": "x-ratelimit-remaining", "resetHeader": "x-ratelimit-reset", "retryAfterHeader": "retry-after"}
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn providers_and_clients_are_registered_read_back_and_published_once() {
    let p = platform("Development").await;
    let op = p.token("platform-ops", &["operator"]);
    let reader = p.token("tenant-a", &[]);

    let r = p.post(PROVIDERS, &op, github()).await;
    assert_eq!(r.status(), 201);
    assert_eq!(
        r.headers()["location"],
        "/api/integrations/providers/github"
    );
    let created: Value = r.json().await.unwrap();
    assert_eq!(created["key"], "github");
    assert_eq!(
        created["rateLimitHints"]["remainingHeader"],
        "x-ratelimit-remaining"
    );

    // Any valid token reads the catalogue.
    let got: Value = p
        .get(&format!("{PROVIDERS}/github"), &reader)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(got, created, "reads back what was registered");
    let list: Value = p.get(PROVIDERS, &reader).await.json().await.unwrap();
    assert_eq!(list["items"].as_array().unwrap().len(), 1);

    let r = p
        .post(
            &format!("{PROVIDERS}/github/clients"),
            &op,
            json!({"name": "rest", "version": "2022.11.28", "baseUrl": "https://api.github.com"}),
        )
        .await;
    assert_eq!(r.status(), 201);
    let client: Value = r.json().await.unwrap();
    assert_eq!(client["version"], "2022.11.28");
    assert!(client["id"].as_str().unwrap().starts_with("cli_"));
    let r = p
        .post(&format!("{PROVIDERS}/github/clients"), &op, json!({"name": "rest", "version": "2026.3.0-beta.1", "baseUrl": "https://api.github.com"}))
        .await;
    assert_eq!(r.status(), 201, "another version of the same client");
    let clients: Value = p
        .get(&format!("{PROVIDERS}/github/clients"), &reader)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(clients["items"].as_array().unwrap().len(), 2);

    let events = published(&p, 3).await;
    let types: Vec<&str> = events.iter().map(|e| e.event_type()).collect();
    assert_eq!(
        types,
        vec![
            "connectsoft.integration.provider.registered.v1",
            "connectsoft.integration.client.registered.v1",
            "connectsoft.integration.client.registered.v1"
        ],
        "each registration published exactly once"
    );
    assert!(
        events
            .iter()
            .all(|e| e.source() == registry::SOURCE && e.tenant_id() == "platform")
    );
    let data: Value = events[0].data_json().unwrap();
    assert_eq!(data["providerKey"], "github");
    p.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn duplicates_are_conflicts_and_publish_nothing() {
    let p = platform("Development").await;
    let op = p.token("ops", &["operator"]);
    assert_eq!(p.post(PROVIDERS, &op, github()).await.status(), 201);
    assert_problem(p.post(PROVIDERS, &op, github()).await, 409, "conflict").await;
    let client = json!({"name": "rest", "version": "1.0.0", "baseUrl": "https://api.github.com"});
    assert_eq!(
        p.post(&format!("{PROVIDERS}/github/clients"), &op, client.clone())
            .await
            .status(),
        201
    );
    assert_problem(
        p.post(&format!("{PROVIDERS}/github/clients"), &op, client)
            .await,
        409,
        "conflict",
    )
    .await;
    assert_eq!(
        published(&p, 2).await.len(),
        2,
        "the refused duplicates published no events"
    );
    p.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_input_is_a_400_problem() {
    let p = platform("Development").await;
    let op = p.token("ops", &["operator"]);
    let with = |k: &str, v: Value| {
        let mut b = github();
        b[k] = v;
        b
    };
    let cases = [
        (with("key", json!("GitHub")), "invalid_key"),
        (with("key", json!("-github")), "invalid_key"),
        (with("key", json!("")), "invalid_key"),
        (with("category", json!("telepathy")), "invalid_body"),
        (with("baseUrl", json!("not a url")), "invalid_url"),
        (with("unexpected", json!(1)), "invalid_body"),
        (with("displayName", json!(42)), "invalid_body"),
        (json!({"key": "x"}), "invalid_body"),
    ];
    for (body, code) in cases {
        assert_problem(p.post(PROVIDERS, &op, body.clone()).await, 400, code).await;
    }
    let raw = p
        .client
        .post(p.url(PROVIDERS))
        .bearer_auth(&op)
        .header("content-type", "application/json")
        .body("{\"key\": \"github\",")
        .send()
        .await
        .unwrap();
    assert_problem(raw, 400, "malformed_json").await;
    let no_type = p
        .client
        .post(p.url(PROVIDERS))
        .bearer_auth(&op)
        .body(github().to_string())
        .send()
        .await
        .unwrap();
    assert_problem(no_type, 400, "unsupported_media_type").await;

    assert_eq!(p.post(PROVIDERS, &op, github()).await.status(), 201);
    let clients = format!("{PROVIDERS}/github/clients");
    for (body, code) in [
        (
            json!({"name": "rest", "version": "v1", "baseUrl": "https://api.github.com"}),
            "invalid_version",
        ),
        (
            json!({"name": "rest", "version": "1.0", "baseUrl": "https://api.github.com"}),
            "invalid_version",
        ),
        (
            json!({"name": "re st", "version": "1.0.0", "baseUrl": "https://api.github.com"}),
            "invalid_name",
        ),
        (
            json!({"name": "rest", "version": "1.0.0", "baseUrl": "https://api.github.com", "extra": true}),
            "invalid_body",
        ),
    ] {
        assert_problem(p.post(&clients, &op, body).await, 400, code).await;
    }
    assert_problem(
        p.get(&format!("{PROVIDERS}?limit=0"), &op).await,
        400,
        "invalid_limit",
    )
    .await;
    assert_problem(
        p.get(&format!("{PROVIDERS}?limit=abc"), &op).await,
        400,
        "invalid_query",
    )
    .await;
    p.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn production_settings_require_https() {
    let p = platform("Production").await;
    let op = p.token("ops", &["operator"]);
    let mut body = github();
    body["baseUrl"] = json!("http://api.github.com");
    assert_problem(p.post(PROVIDERS, &op, body).await, 400, "https_required").await;
    assert_eq!(p.post(PROVIDERS, &op, github()).await.status(), 201);
    let client = json!({"name": "rest", "version": "1.0.0", "baseUrl": "http://127.0.0.1:9"});
    assert_problem(
        p.post(&format!("{PROVIDERS}/github/clients"), &op, client)
            .await,
        400,
        "https_required",
    )
    .await;
    p.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tokens_and_roles_are_enforced() {
    let p = platform("Development").await;
    let tenant = p.token("tenant-a", &[]);
    // No token, a tampered token, a token of another data folder: 401.
    assert_problem(
        p.send("GET", PROVIDERS, None, None).await,
        401,
        "unauthenticated",
    )
    .await;
    // Change one character in the middle of the signature.
    let mut chars: Vec<char> = tenant.chars().collect();
    let at = chars.len() - 10;
    chars[at] = if chars[at] == 'A' { 'B' } else { 'A' };
    let tampered: String = chars.into_iter().collect();
    assert_problem(p.get(PROVIDERS, &tampered).await, 401, "unauthenticated").await;
    let stranger = auth::DevTokens::from_key(vec![9u8; 32])
        .unwrap()
        .issue(
            "tenant-a",
            &["operator".into()],
            chrono::Duration::hours(1),
            chrono::Utc::now(),
        )
        .unwrap();
    assert_problem(
        p.post(PROVIDERS, &stranger, github()).await,
        401,
        "unauthenticated",
    )
    .await;
    // A tenant token without the operator role reads but does not write: 403.
    assert_problem(p.post(PROVIDERS, &tenant, github()).await, 403, "forbidden").await;
    let op = p.token("ops", &["operator"]);
    assert_eq!(p.post(PROVIDERS, &op, github()).await.status(), 201);
    let client = json!({"name": "rest", "version": "1.0.0", "baseUrl": "https://api.github.com"});
    assert_problem(
        p.post(&format!("{PROVIDERS}/github/clients"), &tenant, client)
            .await,
        403,
        "forbidden",
    )
    .await;
    assert_eq!(
        p.get(&format!("{PROVIDERS}/github"), &tenant)
            .await
            .status(),
        200
    );
    // Unknown providers are 404 for reads and for client registration.
    assert_problem(
        p.get(&format!("{PROVIDERS}/gitlab"), &tenant).await,
        404,
        "not_found",
    )
    .await;
    assert_problem(
        p.get(&format!("{PROVIDERS}/Not_A_Key"), &tenant).await,
        404,
        "not_found",
    )
    .await;
    let client = json!({"name": "rest", "version": "1.0.0", "baseUrl": "https://gitlab.com"});
    assert_problem(
        p.post(&format!("{PROVIDERS}/gitlab/clients"), &op, client)
            .await,
        404,
        "not_found",
    )
    .await;
    p.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn listing_pages_through_the_catalogue() {
    let p = platform("Development").await;
    let op = p.token("ops", &["operator"]);
    for i in 0..7 {
        let mut b = github();
        b["key"] = json!(format!("vendor-{i}"));
        assert_eq!(p.post(PROVIDERS, &op, b).await.status(), 201);
    }
    let mut keys = Vec::new();
    let mut next: Option<String> = None;
    loop {
        let url = match &next {
            Some(c) => format!("{PROVIDERS}?limit=3&continuation={c}"),
            None => format!("{PROVIDERS}?limit=3"),
        };
        let page: Value = p.get(&url, &op).await.json().await.unwrap();
        keys.extend(
            page["items"]
                .as_array()
                .unwrap()
                .iter()
                .map(|i| i["key"].as_str().unwrap().to_owned()),
        );
        match page["continuation"].as_str() {
            Some(c) => next = Some(c.to_owned()),
            None => break,
        }
    }
    let expected: Vec<String> = (0..7).map(|i| format!("vendor-{i}")).collect();
    assert_eq!(keys, expected);
    p.shutdown().await;
}
