//! The openai app's OpenAI-compatible API end to end through the runner, on the in-process
//! `fake-model` provider: routing by the tenant's `config.models`, fallback to the next
//! connection before anything reached the caller, OpenAI's error shape, every call a run
//! with its usage, and another tenant seeing none of it.

use serde_json::{Value, json};
use testkit::TestPlatform;

const CHAT: &str = "/openai/api/v1/chat/completions";

async fn connect(platform: &TestPlatform, token: &str, name: &str, config: Value) -> String {
    let r = platform
        .post(
            "/openai/api/integrations/connections",
            token,
            json!({"providerKey": "fake-model", "displayName": name, "config": config,
                   "credential": {"kind": "apiKey", "apiKey": format!("key-{name}")}}),
        )
        .await;
    assert_eq!(r.status(), 201, "{}", r.text().await.unwrap());
    r.json::<Value>().await.unwrap()["id"]
        .as_str()
        .unwrap()
        .to_owned()
}

async fn chat(platform: &TestPlatform, token: Option<&str>, body: Value) -> reqwest::Response {
    let mut request = platform.client.post(platform.url(CHAT)).json(&body);
    if let Some(token) = token {
        request = request.bearer_auth(token);
    }
    request.send().await.unwrap()
}

fn ask(model: &str, text: &str) -> Value {
    json!({"model": model, "messages": [
        {"role": "system", "content": "You are terse."},
        {"role": "user", "content": text}]})
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chat_completions_route_fall_back_and_are_recorded_as_runs() {
    let platform = TestPlatform::start(
        &[registry::registration(), openai::registration()],
        json!({}),
    )
    .await;
    let token = platform.token("tenant-a", &[]);
    let other = platform.token("tenant-b", &[]);
    // The preferred connection is down; the next one serves the model.
    let down = connect(
        &platform,
        &token,
        "down",
        json!({"models": ["gpt-4o-mini"], "priority": 1, "fail": "unavailable"}),
    )
    .await;
    let backup = connect(
        &platform,
        &token,
        "backup",
        json!({"models": ["gpt-4o-mini", {"name": "fast", "upstream": "gpt-4o-mini"}],
               "priority": 2}),
    )
    .await;
    assert_ne!(down, backup);

    let r = chat(&platform, Some(&token), ask("fast", "hello there")).await;
    assert_eq!(r.status(), 200);
    let run = r.headers()["x-request-id"].to_str().unwrap().to_owned();
    let answer: Value = r.json().await.unwrap();
    assert_eq!(answer["object"], "chat.completion");
    assert_eq!(answer["model"], "gpt-4o-mini", "the alias's upstream name");
    assert_eq!(
        answer["choices"][0]["message"]["content"],
        "echo: hello there"
    );
    assert_eq!(answer["usage"]["prompt_tokens"], 5);

    // The call is a run of `complete`, served by the backup, with its usage.
    let recorded = platform
        .run_until("openai", &token, &run, &["succeeded", "failed"])
        .await;
    assert_eq!(recorded["status"], "succeeded", "{recorded}");
    assert_eq!(recorded["operation"], "complete");
    assert_eq!(recorded["usage"]["tokensIn"], 5, "{recorded}");
    assert_eq!(recorded["usage"]["tokensOut"], 3, "{recorded}");
    assert_eq!(
        recorded["output"]["choices"][0]["message"]["content"],
        "echo: hello there"
    );
    assert!(recorded.to_string().contains(&backup), "{recorded}");

    // Embeddings, the same way: a run of `embed`.
    let r = platform
        .client
        .post(platform.url("/openai/api/v1/embeddings"))
        .bearer_auth(&token)
        .json(&json!({"model": "fast", "input": ["one two", "three"], "dimensions": 4}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let embed_run = r.headers()["x-request-id"].to_str().unwrap().to_owned();
    let list: Value = r.json().await.unwrap();
    assert_eq!(list["data"].as_array().unwrap().len(), 2);
    assert_eq!(list["data"][1]["embedding"].as_array().unwrap().len(), 4);
    assert_eq!(list["usage"]["prompt_tokens"], 3);
    let recorded = platform
        .run_until("openai", &token, &embed_run, &["succeeded", "failed"])
        .await;
    assert_eq!(recorded["operation"], "embed", "{recorded}");
    assert_eq!(recorded["usage"]["tokensIn"], 3, "{recorded}");
    let r = platform
        .client
        .post(platform.url("/openai/api/v1/embeddings"))
        .bearer_auth(&token)
        .json(&json!({"model": "fast", "input": []}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    assert_eq!(r.json::<Value>().await.unwrap()["error"]["param"], "input");

    // Errors in OpenAI's shape.
    let r = chat(&platform, Some(&token), ask("gpt-9", "hi")).await;
    assert_eq!(r.status(), 404);
    let e: Value = r.json().await.unwrap();
    assert_eq!(e["error"]["code"], "model_not_found");
    assert_eq!(e["error"]["param"], "model");
    assert_eq!(e["error"]["type"], "invalid_request_error");
    let r = chat(&platform, None, ask("gpt-4o-mini", "hi")).await;
    assert_eq!(r.status(), 401);
    assert_eq!(
        r.json::<Value>().await.unwrap()["error"]["code"],
        "invalid_api_key"
    );
    let mut streaming = ask("gpt-4o-mini", "hi");
    streaming["stream"] = json!(true);
    let r = chat(&platform, Some(&token), streaming).await;
    assert_eq!(r.status(), 400);
    assert_eq!(r.json::<Value>().await.unwrap()["error"]["param"], "stream");
    let r = chat(&platform, Some(&token), json!({"model": "gpt-4o-mini"})).await;
    assert_eq!(r.status(), 400);
    assert_eq!(
        r.json::<Value>().await.unwrap()["error"]["param"],
        "messages"
    );
    let r = platform
        .client
        .post(platform.url(CHAT))
        .bearer_auth(&token)
        .header("content-type", "application/json")
        .body("{\"model\": ")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    assert!(r.json::<Value>().await.unwrap()["error"]["message"].is_string());

    // The models the tenant may use.
    let models: Value = platform
        .get("/openai/api/v1/models", &token)
        .await
        .json()
        .await
        .unwrap();
    let ids: Vec<&str> = models["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, ["fast", "gpt-4o-mini"]);

    // Another tenant: none of these models, none of these runs.
    let r = chat(&platform, Some(&other), ask("gpt-4o-mini", "hi")).await;
    assert_eq!(r.status(), 404);
    assert_eq!(
        r.json::<Value>().await.unwrap()["error"]["code"],
        "model_not_found"
    );
    let theirs: Value = platform
        .get("/openai/api/v1/models", &other)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(theirs["data"], json!([]));
    let r = platform
        .get(&format!("/openai/api/integrations/runs/{run}"), &other)
        .await;
    testkit::assert_problem(r, 404, "not_found").await;
    platform.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_request_the_provider_refuses_does_not_fall_back_and_is_a_failure() {
    let platform = TestPlatform::start(
        &[registry::registration(), openai::registration()],
        json!({}),
    )
    .await;
    let token = platform.token("tenant-r", &[]);
    connect(
        &platform,
        &token,
        "strict",
        json!({"models": ["m"], "priority": 1, "fail": "refused"}),
    )
    .await;
    connect(
        &platform,
        &token,
        "lenient",
        json!({"models": ["m"], "priority": 2}),
    )
    .await;
    let r = chat(&platform, Some(&token), ask("m", "hi")).await;
    assert_eq!(
        r.status(),
        400,
        "the caller's request, not the connection, was refused"
    );
    let run = r.headers()["x-request-id"].to_str().unwrap().to_owned();
    let e: Value = r.json().await.unwrap();
    assert!(
        e["error"]["message"].as_str().unwrap().contains("refused"),
        "{e}"
    );
    let recorded = platform
        .run_until("openai", &token, &run, &["succeeded", "failed"])
        .await;
    assert_eq!(recorded["status"], "failed", "{recorded}");
    let failures: Value = platform
        .get("/openai/api/integrations/failures", &token)
        .await
        .json()
        .await
        .unwrap();
    let mine: Vec<&Value> = failures["items"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|f| f["subject"]["id"] == run.as_str())
        .collect();
    assert_eq!(mine.len(), 1, "{failures}");
    assert_eq!(mine[0]["classification"], "validation");
    platform.shutdown().await;
}

/// The official OpenAI SDK for Node, unchanged, pointed at the app with the platform's
/// token as its API key: a completion (with the run id as its request id), the model list,
/// and a 404 raised as the SDK's own `NotFoundError`.
const SDK_SCRIPT: &str = r#"
const OpenAI = require(process.env.OPENAI_MODULE);
const client = new OpenAI({ apiKey: process.env.TOKEN, baseURL: process.env.BASE_URL, maxRetries: 0 });
(async () => {
  const completion = await client.chat.completions.create({
    model: 'fast', messages: [{ role: 'user', content: 'hello from the sdk' }],
  });
  const ids = [];
  for await (const model of client.models.list()) ids.push(model.id);
  const embedded = await client.embeddings.create({ model: 'fast', input: 'hello' });
  let missing = null;
  try {
    await client.chat.completions.create({ model: 'gpt-9', messages: [{ role: 'user', content: 'x' }] });
  } catch (e) {
    missing = { name: e.constructor.name, status: e.status, code: e.code, type: e.type, param: e.param };
  }
  console.log(JSON.stringify({
    content: completion.choices[0].message.content,
    usage: completion.usage,
    requestId: completion._request_id,
    ids,
    dimensions: embedded.data[0].embedding.length,
    missing,
  }));
})().catch((e) => { console.error(e); process.exit(1); });
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_official_openai_node_sdk_works_unchanged() {
    let tools = tokio::task::spawn_blocking(standins::npm::ensure_installed)
        .await
        .unwrap()
        .expect("the npm packages install");
    let platform = TestPlatform::start(
        &[registry::registration(), openai::registration()],
        json!({}),
    )
    .await;
    let token = platform.token("tenant-sdk", &[]);
    connect(
        &platform,
        &token,
        "sdk",
        json!({"models": ["gpt-4o-mini", {"name": "fast", "upstream": "gpt-4o-mini"}]}),
    )
    .await;
    let script = platform.dir().join("sdk.cjs");
    std::fs::write(&script, SDK_SCRIPT).unwrap();
    let out = tokio::process::Command::new("node")
        .arg(&script)
        .env("OPENAI_MODULE", tools.package_dir("openai"))
        .env("TOKEN", &token)
        .env("BASE_URL", platform.url("/openai/api/v1"))
        .output()
        .await
        .expect("node runs");
    assert!(
        out.status.success(),
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let seen: Value = serde_json::from_slice(
        out.stdout
            .split(|b| *b == b'\n')
            .rfind(|l| !l.is_empty())
            .unwrap(),
    )
    .unwrap();
    assert_eq!(seen["content"], "echo: hello from the sdk", "{seen}");
    assert_eq!(seen["usage"]["completion_tokens"], 5, "{seen}");
    assert_eq!(seen["ids"], json!(["fast", "gpt-4o-mini"]), "{seen}");
    // The SDK asks for base64 embeddings by default unless told otherwise: either way it
    // hands back numbers.
    assert_eq!(seen["dimensions"], 8, "{seen}");
    assert_eq!(
        seen["missing"],
        json!({"name": "NotFoundError", "status": 404, "code": "model_not_found",
               "type": "invalid_request_error", "param": "model"}),
        "{seen}"
    );
    // The SDK's request id is the run that recorded the call.
    let run = seen["requestId"].as_str().unwrap();
    let recorded = platform
        .run_until("openai", &token, run, &["succeeded", "failed"])
        .await;
    assert_eq!(recorded["status"], "succeeded", "{recorded}");
    platform.shutdown().await;
}
