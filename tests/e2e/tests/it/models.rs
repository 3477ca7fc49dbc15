//! The openai app's OpenAI-compatible API end to end through the runner: on the in-process
//! `fake-model` provider, routing by the tenant's `config.models`, fallback to the next
//! connection before anything reached the caller, OpenAI's error shape, every call a run
//! with its usage, and another tenant seeing none of it; then the official OpenAI SDKs for
//! Node and Python, unchanged, through the `openai` provider to a fake OpenAI over real
//! HTTP (`model-fakes`).

use serde_json::{Value, json};
use testkit::TestPlatform;

pub(crate) const CHAT: &str = "/openai/api/v1/chat/completions";

pub(crate) async fn connect(
    platform: &TestPlatform,
    token: &str,
    name: &str,
    config: Value,
) -> String {
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

pub(crate) fn ask(model: &str, text: &str) -> Value {
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
    streaming["stream"] = json!("yes");
    let r = chat(&platform, Some(&token), streaming).await;
    assert_eq!(r.status(), 400);
    assert_eq!(r.json::<Value>().await.unwrap()["error"]["param"], "stream");
    let mut options = ask("gpt-4o-mini", "hi");
    options["stream_options"] = json!({"include_usage": true});
    let r = chat(&platform, Some(&token), options).await;
    assert_eq!(r.status(), 400, "stream_options without stream");
    assert_eq!(
        r.json::<Value>().await.unwrap()["error"]["param"],
        "stream_options"
    );
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
    let mine = platform.failures_of_run("openai", &token, &run).await;
    assert_eq!(mine.len(), 1, "{mine:?}");
    assert_eq!(mine[0]["classification"], "validation");
    platform.shutdown().await;
}

/// What both official SDKs do, unchanged, pointed at the app with the platform's token as
/// their API key: a completion (its request id the run that recorded it), the model list,
/// embeddings, a 404 raised as the SDK's own `NotFoundError`, a stream read to its usage,
/// and a stream cut upstream raised as the SDK's `APIError`.
const NODE_SCRIPT: &str = r#"
const OpenAI = require(process.env.OPENAI_MODULE);
const client = new OpenAI({ apiKey: process.env.TOKEN, baseURL: process.env.BASE_URL, maxRetries: 0 });
const ask = (content) => [{ role: 'user', content }];
(async () => {
  const completion = await client.chat.completions.create({ model: 'fast', messages: ask('hello from the sdk') });
  const ids = [];
  for await (const model of client.models.list()) ids.push(model.id);
  const embedded = await client.embeddings.create({ model: 'fast', input: 'hello' });
  let missing = null;
  try {
    await client.chat.completions.create({ model: 'gpt-9', messages: ask('x') });
  } catch (e) {
    missing = { name: e.constructor.name, status: e.status, code: e.code, type: e.type, param: e.param };
  }
  const stream = await client.chat.completions.create({
    model: 'fast', stream: true, stream_options: { include_usage: true }, messages: ask('stream this please'),
  });
  let streamed = '', streamUsage = null, chunks = 0;
  for await (const chunk of stream) {
    chunks += 1;
    if (chunk.choices.length) streamed += chunk.choices[0].delta.content || '';
    if (chunk.usage) streamUsage = chunk.usage;
  }
  let cut = null;
  try {
    const broken = await client.chat.completions.create({ model: 'cut', stream: true, messages: ask('a b c d') });
    for await (const _ of broken) { /* read to the end */ }
  } catch (e) {
    cut = e.constructor.name;
  }
  let responded = null, respondedStream = null;
  if (process.env.RESPONSES) {
    const r = await client.responses.create({ model: 'fast', input: 'respond to this', instructions: 'be brief' });
    responded = { text: r.output_text, status: r.status, usage: r.usage.output_tokens };
    let deltas = '', usage = null;
    const events = await client.responses.create({ model: 'fast', input: 'stream a response', stream: true });
    for await (const e of events) {
      if (e.type === 'response.output_text.delta') deltas += e.delta;
      if (e.type === 'response.completed') usage = e.response.usage.output_tokens;
    }
    respondedStream = { text: deltas, usage };
  }
  console.log(JSON.stringify({
    content: completion.choices[0].message.content, usage: completion.usage,
    requestId: completion._request_id, ids, dimensions: embedded.data[0].embedding.length,
    missing, streamed, streamUsage, chunks, cut, responded, respondedStream,
  }));
})().catch((e) => { console.error(e); process.exit(1); });
"#;

/// [`NODE_SCRIPT`] for the Python SDK.
const PYTHON_SCRIPT: &str = r#"
import json, os
from openai import APIError, NotFoundError, OpenAI

client = OpenAI(api_key=os.environ["TOKEN"], base_url=os.environ["BASE_URL"], max_retries=0)
ask = lambda content: [{"role": "user", "content": content}]
completion = client.chat.completions.create(model="fast", messages=ask("hello from the sdk"))
ids = [m.id for m in client.models.list()]
embedded = client.embeddings.create(model="fast", input="hello")
missing = None
try:
    client.chat.completions.create(model="gpt-9", messages=ask("x"))
except NotFoundError as e:
    missing = {"name": type(e).__name__, "status": e.status_code, "code": e.code, "type": e.type,
               "param": e.param}
streamed, stream_usage, chunks = "", None, 0
for chunk in client.chat.completions.create(model="fast", stream=True,
                                            stream_options={"include_usage": True},
                                            messages=ask("stream this please")):
    chunks += 1
    if chunk.choices:
        streamed += chunk.choices[0].delta.content or ""
    if chunk.usage:
        stream_usage = chunk.usage.model_dump(exclude_none=True)
cut = None
try:
    for _ in client.chat.completions.create(model="cut", stream=True, messages=ask("a b c d")):
        pass
except APIError as e:
    cut = type(e).__name__
responded = responded_stream = None
if os.environ.get("RESPONSES"):
    r = client.responses.create(model="fast", input="respond to this", instructions="be brief")
    responded = {"text": r.output_text, "status": r.status, "usage": r.usage.output_tokens}
    deltas, usage = "", None
    for e in client.responses.create(model="fast", input="stream a response", stream=True):
        if e.type == "response.output_text.delta":
            deltas += e.delta
        if e.type == "response.completed":
            usage = e.response.usage.output_tokens
    responded_stream = {"text": deltas, "usage": usage}
print(json.dumps({
    "content": completion.choices[0].message.content,
    "usage": completion.usage.model_dump(exclude_none=True),
    "requestId": completion._request_id, "ids": ids,
    "dimensions": len(embedded.data[0].embedding), "missing": missing, "streamed": streamed,
    "streamUsage": stream_usage, "chunks": chunks, "cut": cut,
    "responded": responded, "respondedStream": responded_stream,
}))
"#;

/// An app with one connection to its fake vendor over real HTTP (`model-fakes`), serving
/// `gpt-4o-mini`, its alias `fast`, and `cut` (a stream the fake drops after two chunks):
/// `openai`, or `azure-openai` in the URL style `api` (`v1` or `deployments`).
async fn sdk_platform(app: &str, api: &str) -> (TestPlatform, Fake, String) {
    let azure = app == "azure-openai";
    let fake = match app {
        "azure-openai" => {
            Fake::OpenAi(model_fakes::FakeOpenAi::start_azure(Default::default()).await)
        }
        "ollama" => Fake::Ollama(model_fakes::ollama::FakeOllama::start(Default::default()).await),
        _ => Fake::OpenAi(model_fakes::FakeOpenAi::start(Default::default()).await),
    };
    let platform = TestPlatform::start(
        &[
            registry::registration(),
            openai::registration(),
            azure_openai::registration(),
            ollama::registration(),
        ],
        json!({"OUTBOUND_ALLOWED_HOSTS": "localhost"}),
    )
    .await;
    let token = platform.token("tenant-sdk", &[]);
    let mut config = json!({"baseUrl": fake.base_url(),
        "models": ["gpt-4o-mini", {"name": "fast", "upstream": "gpt-4o-mini"}, "cut"]});
    if azure {
        config["api"] = json!(api);
    }
    let r = platform
        .post(
            &format!("/{app}/api/integrations/connections"),
            &token,
            json!({"providerKey": app, "displayName": "fake vendor", "config": config,
                   "credential": {"kind": "apiKey", "apiKey": fake.api_key()}}),
        )
        .await;
    assert_eq!(r.status(), 201, "{}", r.text().await.unwrap());
    (platform, fake, token)
}

/// The fake vendor of an app.
enum Fake {
    OpenAi(std::io::Result<model_fakes::FakeOpenAi>),
    Ollama(std::io::Result<model_fakes::ollama::FakeOllama>),
}

impl Fake {
    fn base_url(&self) -> &str {
        match self {
            Fake::OpenAi(f) => &f.as_ref().unwrap().base_url,
            Fake::Ollama(f) => &f.as_ref().unwrap().base_url,
        }
    }

    fn api_key(&self) -> &str {
        match self {
            Fake::OpenAi(f) => f.as_ref().unwrap().api_key(),
            Fake::Ollama(_) => "ollama",
        }
    }

    fn requests(&self) -> u64 {
        match self {
            Fake::OpenAi(f) => f.as_ref().unwrap().requests(),
            Fake::Ollama(f) => f.as_ref().unwrap().requests(),
        }
    }
}

/// Runs an SDK script with the app's base URL and the token; answers what it printed last.
async fn run_sdk(mut command: tokio::process::Command, base_url: &str, token: &str) -> Value {
    // The Responses API is served by the apps whose vendors have it (not ollama).
    if !base_url.contains("/ollama/") {
        command.env("RESPONSES", "1");
    }
    let out = command
        .env("TOKEN", token)
        .env("BASE_URL", base_url)
        .output()
        .await
        .expect("the SDK's script runs");
    assert!(
        out.status.success(),
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(
        out.stdout
            .split(|b| *b == b'\n')
            .rfind(|l| !l.is_empty())
            .unwrap(),
    )
    .unwrap()
}

/// What either SDK must have seen through `app`.
async fn assert_sdk_saw(platform: &TestPlatform, app: &str, token: &str, seen: &Value) {
    assert_eq!(seen["content"], "echo: hello from the sdk", "{seen}");
    assert_eq!(seen["usage"]["completion_tokens"], 5, "{seen}");
    assert_eq!(seen["ids"], json!(["cut", "fast", "gpt-4o-mini"]), "{seen}");
    // The SDKs ask for base64 embeddings unless told otherwise: either way they hand back
    // numbers.
    assert_eq!(seen["dimensions"], 8, "{seen}");
    assert_eq!(
        seen["missing"],
        json!({"name": "NotFoundError", "status": 404, "code": "model_not_found",
               "type": "invalid_request_error", "param": "model"}),
        "{seen}"
    );
    assert_eq!(seen["streamed"], "echo: stream this please", "{seen}");
    assert_eq!(seen["streamUsage"]["completion_tokens"], 4, "{seen}");
    assert_eq!(
        seen["chunks"],
        1 + 4 + 1 + 1,
        "role, words, finish, usage: {seen}"
    );
    assert_eq!(seen["cut"], "APIError", "{seen}");
    if app == "ollama" {
        assert_eq!(seen["responded"], Value::Null, "{seen}");
    } else {
        assert_eq!(
            seen["responded"],
            json!({"text": "echo: respond to this", "status": "completed", "usage": 4}),
            "{seen}"
        );
        assert_eq!(
            seen["respondedStream"],
            json!({"text": "echo: stream a response", "usage": 4}),
            "{seen}"
        );
    }
    // The SDK's request id is the run that recorded the call.
    let run = seen["requestId"].as_str().unwrap();
    let recorded = platform
        .run_until(app, token, run, &["succeeded", "failed"])
        .await;
    assert_eq!(recorded["status"], "succeeded", "{recorded}");
}

/// The Node SDK's script through `app`.
async fn node_sdk(app: &str, api: &str) {
    let tools = tokio::task::spawn_blocking(standins::npm::ensure_installed)
        .await
        .unwrap()
        .expect("the npm packages install");
    let (platform, fake, token) = sdk_platform(app, api).await;
    let script = platform.dir().join("sdk.cjs");
    std::fs::write(&script, NODE_SCRIPT).unwrap();
    let mut node = tokio::process::Command::new("node");
    node.arg(&script)
        .env("OPENAI_MODULE", tools.package_dir("openai"));
    let seen = run_sdk(node, &platform.url(&format!("/{app}/api/v1")), &token).await;
    assert_sdk_saw(&platform, app, &token, &seen).await;
    assert!(fake.requests() >= 5, "the upstream was called over HTTP");
    platform.shutdown().await;
}

/// The Python SDK's script through `app`.
async fn python_sdk(app: &str, api: &str) {
    let python = tokio::task::spawn_blocking(standins::python::ensure_openai_sdk)
        .await
        .unwrap()
        .expect("the Python SDK installs");
    let (platform, fake, token) = sdk_platform(app, api).await;
    let script = platform.dir().join("sdk.py");
    std::fs::write(&script, PYTHON_SCRIPT).unwrap();
    let mut command = tokio::process::Command::new(python);
    command.arg(&script);
    let seen = run_sdk(command, &platform.url(&format!("/{app}/api/v1")), &token).await;
    assert_sdk_saw(&platform, app, &token, &seen).await;
    assert!(fake.requests() >= 5, "the upstream was called over HTTP");
    platform.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_official_openai_node_sdk_works_unchanged() {
    node_sdk("openai", "").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_official_openai_python_sdk_works_unchanged() {
    python_sdk("openai", "").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_node_sdk_works_through_azure_openai_on_its_v1_api() {
    node_sdk("azure-openai", "v1").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_python_sdk_works_through_azure_openai_on_its_dated_api() {
    python_sdk("azure-openai", "deployments").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_node_sdk_works_through_ollama() {
    node_sdk("ollama", "").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_python_sdk_works_through_ollama() {
    python_sdk("ollama", "").await;
}

/// An azure-openai connection with the platform's own managed identity: no secret given or
/// stored, tokens from the identity endpoint the platform sets (`IDENTITY_ENDPOINT`,
/// `IDENTITY_HEADER`), one per hour for every call.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn azure_openai_connects_with_the_platforms_managed_identity() {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};

    use integration_kit::testing::{FakeVendor, Reply};

    let azure = model_fakes::FakeOpenAi::start_azure(model_fakes::Options::default())
        .await
        .unwrap();
    let token = azure.api_key().to_owned();
    let minted = Arc::new(AtomicUsize::new(0));
    let counted = minted.clone();
    let identity = FakeVendor::start(move |r, _| {
        if r.header("x-identity-header") != Some("e2e-identity-header") {
            return Reply::json(400, json!({"statusCode": 400, "message": "bad header"}));
        }
        counted.fetch_add(1, Ordering::SeqCst);
        Reply::json(
            200,
            json!({"access_token": token, "token_type": "Bearer",
                   "expires_on": (chrono::Utc::now().timestamp() + 3600).to_string(),
                   "resource": "https://cognitiveservices.azure.com"}),
        )
    })
    .await;
    let platform = TestPlatform::start(
        &[registry::registration(), azure_openai::registration()],
        json!({"OUTBOUND_ALLOWED_HOSTS": "localhost",
               "IDENTITY_ENDPOINT": format!("{}/msi/token", identity.base),
               "IDENTITY_HEADER": "e2e-identity-header"}),
    )
    .await;
    let tenant = platform.token("tenant-mi", &[]);
    let r = platform
        .post(
            "/azure-openai/api/integrations/connections",
            &tenant,
            json!({"providerKey": "azure-openai", "displayName": "mi",
                   "config": {"baseUrl": azure.base_url, "models": ["gpt-4o-mini"]},
                   "credential": {"kind": "managedIdentity"}}),
        )
        .await;
    assert_eq!(r.status(), 201, "{}", r.text().await.unwrap());
    for _ in 0..3 {
        let r = platform
            .client
            .post(platform.url("/azure-openai/api/v1/chat/completions"))
            .bearer_auth(&tenant)
            .json(&ask("gpt-4o-mini", "hello identity"))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200);
        assert_eq!(
            r.json::<Value>().await.unwrap()["choices"][0]["message"]["content"],
            "echo: hello identity"
        );
    }
    assert_eq!(
        minted.load(Ordering::SeqCst),
        1,
        "one token for the test and every call"
    );
    platform.shutdown().await;
}
