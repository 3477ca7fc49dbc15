//! A self-hosted vendor on a private address (an Ollama server), reachable only once an
//! operator approved its endpoint for one tenant: the tenant alone cannot, another tenant
//! still cannot, the approval is recorded, and withdrawing it stops the calls.

use serde_json::{Value, json};
use testkit::TestPlatform;

async fn create(platform: &TestPlatform, token: &str, base_url: &str) -> reqwest::Response {
    platform
        .post(
            "/ollama/api/integrations/connections",
            token,
            json!({"providerKey": "ollama", "displayName": "gpu box",
                   "config": {"baseUrl": base_url, "models": ["llama3.2"]},
                   "credential": {"kind": "apiKey", "apiKey": "ollama"}}),
        )
        .await
}

async fn approve(platform: &TestPlatform, token: &str, tenant: &str, endpoints: Value) -> u16 {
    platform
        .client
        .put(platform.url(&format!(
            "/ollama/api/integrations/private-endpoints/{tenant}"
        )))
        .bearer_auth(token)
        .json(&json!({"endpoints": endpoints, "reason": "the team's GPU box"}))
        .send()
        .await
        .unwrap()
        .status()
        .as_u16()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn only_an_operator_opens_a_private_endpoint_and_only_for_one_tenant() {
    let fake = model_fakes::ollama::FakeOllama::start(model_fakes::Options::default())
        .await
        .unwrap();
    let port = fake.base_url.rsplit(':').next().unwrap().to_owned();
    let base_url = format!("http://127.0.0.1:{port}");
    // No OUTBOUND_ALLOWED_HOSTS: loopback is as private as any address gets.
    let platform = TestPlatform::start(
        &[registry::registration(), ollama::registration()],
        json!({}),
    )
    .await;
    let token = platform.token("tenant-o", &[]);
    let other = platform.token("tenant-p", &[]);
    let operator = platform.token("ops", &["operator"]);

    testkit::assert_problem(
        create(&platform, &token, &base_url).await,
        400,
        "url_refused",
    )
    .await;
    let endpoint = json!([format!("127.0.0.1:{port}")]);
    assert_eq!(
        approve(&platform, &token, "tenant-o", endpoint.clone()).await,
        403
    );
    assert_eq!(
        approve(&platform, &operator, "tenant-o", json!(["no-port"])).await,
        400
    );
    assert_eq!(
        approve(&platform, &operator, "tenant-o", endpoint.clone()).await,
        200
    );
    let recorded: Value = platform
        .get("/ollama/api/integrations/private-endpoints", &token)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(recorded["endpoints"], endpoint);
    assert_eq!(recorded["reason"], "the team's GPU box");
    assert!(recorded["approvedBy"].is_string() && recorded["approvedAt"].is_string());

    // Approved: the connection is made (its test reached the server) and serves chats.
    let r = create(&platform, &token, &base_url).await;
    assert_eq!(r.status(), 201, "{}", r.text().await.unwrap());
    let chat = |token: String| {
        let request = platform
            .client
            .post(platform.url("/ollama/api/v1/chat/completions"))
            .bearer_auth(token)
            .json(&json!({"model": "llama3.2",
                          "messages": [{"role": "user", "content": "hello box"}]}));
        async move { request.send().await.unwrap() }
    };
    let r = chat(token.clone()).await;
    assert_eq!(r.status(), 200);
    assert_eq!(
        r.json::<Value>().await.unwrap()["choices"][0]["message"]["content"],
        "echo: hello box"
    );
    // Another port of the same host, and another tenant, are still refused.
    testkit::assert_problem(
        create(&platform, &token, "http://127.0.0.1:1").await,
        400,
        "url_refused",
    )
    .await;
    testkit::assert_problem(
        create(&platform, &other, &base_url).await,
        400,
        "url_refused",
    )
    .await;
    let theirs: Value = platform
        .get("/ollama/api/integrations/private-endpoints", &other)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(theirs["endpoints"], json!([]));

    // Withdrawn: the connection's calls are refused again.
    let calls_before = fake.requests();
    assert_eq!(
        approve(&platform, &operator, "tenant-o", json!([])).await,
        200
    );
    let r = chat(token.clone()).await;
    assert_eq!(r.status(), 400);
    let e: Value = r.json().await.unwrap();
    assert_eq!(e["error"]["code"], "url_refused", "{e}");
    assert_eq!(fake.requests(), calls_before, "nothing reached the server");
    platform.shutdown().await;
}
