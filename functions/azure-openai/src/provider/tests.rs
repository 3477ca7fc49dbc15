//! The provider against a fake Azure OpenAI resource over real HTTP, in its documented
//! shapes: both URL styles (`/openai/v1/…` with the deployment as `model`, and
//! `/openai/deployments/{d}/…?api-version=`), `api-key` or an Entra ID bearer, content-filter
//! annotations on answers, a prompt refused by the content filter (400 `content_filter` with
//! its `innererror`), and 429s whose wait is `retry-after-ms`.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use domain::{CredentialKind, FailureClassification};
use futures::StreamExt as _;
use integration_kit::testing::{
    Case, FakeVendor, Harness, Piece, Recorded, Reply, THROTTLE_SECS, assert_no_secret, conformance,
};
use serde_json::{Value, json};

use super::*;

const API_KEY: &str = "0123456789abcdef0123456789abcdef";
const CLIENT_SECRET: &str = "entra-client-secret-0123456789";
const IDENTITY_HEADER: &str = "identity-header-0123456789";

fn error(status: u16, code: &str, message: &str) -> Reply {
    Reply::json(
        status,
        json!({"error": {"message": message, "type": null, "param": null, "code": code}}),
    )
}

fn filters() -> Value {
    json!({"hate": {"filtered": false, "severity": "safe"},
           "self_harm": {"filtered": false, "severity": "safe"},
           "sexual": {"filtered": false, "severity": "safe"},
           "violence": {"filtered": false, "severity": "safe"}})
}

fn completion(deployment: &str) -> Value {
    json!({"id": "chatcmpl-az1", "object": "chat.completion", "created": 1_788_000_000u64,
           "model": format!("{deployment}-2024-07-18"),
           "prompt_filter_results": [{"prompt_index": 0, "content_filter_results": filters()}],
           "choices": [{"index": 0, "message": {"role": "assistant", "content": "Hello"},
                        "finish_reason": "stop", "content_filter_results": filters()}],
           "usage": {"prompt_tokens": 9, "completion_tokens": 1, "total_tokens": 10}})
}

/// A stream as Azure sends it: a first chunk with the prompt's filter results and no
/// choices, then the content.
fn stream() -> Reply {
    let frame = |v: Value| Piece::Data(format!("data: {v}\n\n"));
    Reply::streamed(
        200,
        "text/event-stream; charset=utf-8",
        vec![
            frame(
                json!({"id": "", "object": "", "created": 0, "model": "", "choices": [],
                         "prompt_filter_results": [{"prompt_index": 0, "content_filter_results": filters()}]}),
            ),
            frame(
                json!({"id": "chatcmpl-az2", "object": "chat.completion.chunk", "created": 1,
                         "model": "gpt-4o-mini",
                         "choices": [{"index": 0, "delta": {"role": "assistant", "content": "Hi"},
                                      "finish_reason": null, "content_filter_results": {}}]}),
            ),
            frame(
                json!({"id": "chatcmpl-az2", "object": "chat.completion.chunk", "created": 1,
                         "model": "gpt-4o-mini",
                         "choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}],
                         "usage": null}),
            ),
            frame(
                json!({"id": "chatcmpl-az2", "object": "chat.completion.chunk", "created": 1,
                         "model": "gpt-4o-mini", "choices": [],
                         "usage": {"prompt_tokens": 9, "completion_tokens": 1, "total_tokens": 10}}),
            ),
            Piece::Data("data: [DONE]\n\n".into()),
        ],
    )
}

/// What the deployment answers, whatever the URL style that reached it.
fn deployment_answer(deployment: &str, r: &Recorded, embeddings: bool) -> Reply {
    let body = r.json();
    if embeddings {
        return Reply::json(
            200,
            json!({"object": "list", "model": "text-embedding-3-small",
                   "data": [{"object": "embedding", "index": 0, "embedding": [0.5, 0.5]}],
                   "usage": {"prompt_tokens": 2, "total_tokens": 2}}),
        );
    }
    match deployment {
        "filtered" => Reply::json(
            400,
            json!({"error": {"message": format!("The response was filtered due to the prompt triggering Azure OpenAI's content management policy. (key {API_KEY})"),
                             "type": null, "param": "prompt", "code": "content_filter", "status": 400,
                             "innererror": {"code": "ResponsibleAIPolicyViolation",
                                            "content_filter_result": {"jailbreak": {"filtered": true, "detected": true}}}}}),
        ),
        "busy" => error(
            429,
            "429",
            "Requests to the ChatCompletions_Create Operation under Azure OpenAI API version 2024-10-21 have exceeded token rate limit of your current pricing tier.",
        )
        .header("retry-after-ms", "250")
        .header("retry-after", "1"),
        _ if body["stream"] == true => stream(),
        _ => Reply::json(200, completion(deployment)),
    }
}

/// The resource: `api-key` or the Entra token `eyJ.{n}` (the first one refused once, as a
/// revoked token is).
fn resource(r: &Recorded, tokens: &AtomicUsize) -> Reply {
    if r.path == "/entra/oauth2/v2.0/token" {
        let n = tokens.fetch_add(1, Ordering::SeqCst) + 1;
        assert_eq!(
            r.form_field("scope").as_deref(),
            Some("https://cognitiveservices.azure.com/.default")
        );
        return Reply::json(
            200,
            json!({"token_type": "Bearer", "expires_in": 3599, "access_token": format!("eyJ.{n}")}),
        );
    }
    if r.path == "/msi/token" {
        // App Service's identity protocol.
        if r.header("x-identity-header") != Some(IDENTITY_HEADER) {
            return Reply::json(
                400,
                json!({"statusCode": 400, "message": "Unable to load the proper Managed Identity."}),
            );
        }
        let query = r.query.clone().unwrap_or_default();
        assert!(
            query.contains("resource=https%3A%2F%2Fcognitiveservices.azure.com"),
            "{query}"
        );
        assert!(query.contains("api-version=2019-08-01"), "{query}");
        let n = tokens.fetch_add(1, Ordering::SeqCst) + 1;
        let expires = chrono::Utc::now().timestamp() + 3600;
        return Reply::json(
            200,
            json!({"access_token": format!("mi.{n}"), "expires_on": expires.to_string(),
                   "resource": "https://cognitiveservices.azure.com", "token_type": "Bearer"}),
        );
    }
    let key_ok = r.header("api-key") == Some(API_KEY);
    let bearer_ok = matches!(
        r.header("authorization"),
        Some("Bearer eyJ.2" | "Bearer mi.1")
    );
    if !key_ok && !bearer_ok {
        return error(
            401,
            "401",
            "Access denied due to invalid subscription key or wrong API endpoint. Make sure to provide a valid key for an active subscription and use a correct regional API endpoint for your resource.",
        );
    }
    let version = r
        .query
        .as_deref()
        .and_then(|q| q.strip_prefix("api-version="));
    let path = r.path.as_str();
    if let Some(rest) = path.strip_prefix("/openai/v1/") {
        if version.is_some() {
            return error(
                400,
                "BadRequest",
                "api-version is not allowed on the v1 API",
            );
        }
        let deployment = r.json()["model"].as_str().unwrap_or_default().to_owned();
        return match rest {
            "models" => Reply::json(200, json!({"object": "list", "data": []})),
            "chat/completions" => deployment_answer(&deployment, r, false),
            "embeddings" => deployment_answer(&deployment, r, true),
            _ => error(404, "404", "Resource not found"),
        };
    }
    if version != Some("2024-10-21") {
        return error(
            404,
            "404",
            "Resource not found: the API version is missing or not supported",
        );
    }
    if path == "/openai/models" {
        return Reply::json(200, json!({"object": "list", "data": []}));
    }
    match path
        .strip_prefix("/openai/deployments/")
        .and_then(|p| p.split_once('/'))
    {
        Some((deployment, "chat/completions")) => {
            assert!(
                r.json().get("model").is_none(),
                "the deployment is in the path"
            );
            deployment_answer(deployment, r, false)
        }
        Some((deployment, "embeddings")) => deployment_answer(deployment, r, true),
        _ => error(
            404,
            "DeploymentNotFound",
            "The API deployment for this resource does not exist.",
        ),
    }
}

async fn fake() -> (FakeVendor, Arc<AtomicUsize>) {
    let tokens = Arc::new(AtomicUsize::new(0));
    let t = tokens.clone();
    (FakeVendor::start(move |r, _| resource(r, &t)).await, tokens)
}

fn harness(base: &str, config: Value) -> Harness {
    let mut config = config;
    config["baseUrl"] = json!(base);
    Harness::new(
        KEY,
        CredentialKind::ApiKey,
        json!({"apiKey": API_KEY}),
        config,
    )
}

fn ask(deployment: &str) -> Value {
    json!({"model": deployment, "messages": [{"role": "user", "content": "Hi"}]})
}

#[tokio::test]
async fn both_url_styles_reach_the_deployment_and_keep_the_filter_annotations() {
    let (fake, _) = fake().await;
    for api in ["v1", "deployments"] {
        let h = harness(&fake.base, json!({"models": ["gpt-4o-mini"], "api": api}));
        AzureOpenAi.test_connection(&h.call()).await.unwrap();
        let answer = AzureOpenAi
            .chat(&h.call(), &ask("gpt-4o-mini"))
            .await
            .unwrap();
        assert_eq!(answer["choices"][0]["message"]["content"], "Hello", "{api}");
        assert_eq!(
            answer["prompt_filter_results"][0]["content_filter_results"]["hate"]["severity"],
            "safe"
        );
        let list = AzureOpenAi
            .embed(&h.call(), &json!({"model": "gpt-4o-mini", "input": "a b"}))
            .await
            .unwrap();
        assert_eq!(list["data"][0]["embedding"], json!([0.5, 0.5]));
    }
    let paths: Vec<String> = fake
        .requests()
        .iter()
        .map(|r| format!("{}?{}", r.path, r.query.clone().unwrap_or_default()))
        .collect();
    assert!(
        paths.contains(&"/openai/v1/chat/completions?".to_owned()),
        "{paths:?}"
    );
    assert!(
        paths.contains(
            &"/openai/deployments/gpt-4o-mini/chat/completions?api-version=2024-10-21".to_owned()
        ),
        "{paths:?}"
    );
}

#[tokio::test]
async fn a_stream_keeps_azures_first_chunk_and_ends_with_the_usage() {
    let (fake, _) = fake().await;
    let h = harness(&fake.base, json!({"models": ["gpt-4o-mini"]}));
    let mut asked = ask("gpt-4o-mini");
    asked["stream"] = json!(true);
    asked["stream_options"] = json!({"include_usage": true});
    let chunks: Vec<Value> = AzureOpenAi
        .chat_stream(&h.call(), &asked)
        .await
        .unwrap()
        .map(Result::unwrap)
        .collect()
        .await;
    assert_eq!(chunks.len(), 4);
    assert!(chunks[0]["prompt_filter_results"].is_array());
    let mut assembled = model_gateway::stream::Assembled::default();
    chunks.iter().for_each(|c| assembled.add(c));
    assert_eq!(
        assembled.completion()["choices"][0]["message"]["content"],
        "Hi"
    );
    assert_eq!(assembled.usage().unwrap()["total_tokens"], 10);
}

#[tokio::test]
async fn a_filtered_prompt_is_the_callers_fault_and_throttling_waits_retry_after_ms() {
    let (fake, _) = fake().await;
    let h = harness(&fake.base, json!({"models": ["x"]})).attempts(1);
    let e = AzureOpenAi
        .chat(&h.call(), &ask("filtered"))
        .await
        .unwrap_err();
    assert_eq!(e.class(), FailureClassification::Validation);
    assert_eq!(e.failure.vendor_code.as_deref(), Some("content_filter"));
    assert!(!e.retryable);
    assert_no_secret(&e, &[API_KEY]);
    let e = AzureOpenAi.chat(&h.call(), &ask("busy")).await.unwrap_err();
    assert_eq!(e.class(), FailureClassification::RateLimited);
    assert_eq!(
        e.failure.retry_after,
        Some(std::time::Duration::from_millis(250)),
        "retry-after-ms first"
    );
    let h = harness(
        &fake.base,
        json!({"models": ["x"], "api": "deployments",
                                       "apiVersion": "2025-04-01-preview"}),
    );
    let e = AzureOpenAi
        .chat(&h.call(), &ask("gpt-4o-mini"))
        .await
        .unwrap_err();
    assert_eq!(
        e.failure.vendor_status,
        Some(404),
        "the version is in the URL"
    );
}

#[tokio::test]
async fn an_entra_token_refused_once_is_fetched_again() {
    let (fake, tokens) = fake().await;
    let h = Harness::new(
        KEY,
        CredentialKind::Oauth2ClientCredentials,
        json!({"clientId": "app-1", "clientSecret": CLIENT_SECRET,
               "tokenUrl": format!("{}/entra/oauth2/v2.0/token", fake.base)}),
        json!({"models": ["gpt-4o-mini"], "baseUrl": fake.base}),
    );
    let answer = AzureOpenAi
        .chat(&h.call(), &ask("gpt-4o-mini"))
        .await
        .unwrap();
    assert_eq!(answer["choices"][0]["message"]["content"], "Hello");
    assert_eq!(
        tokens.load(Ordering::SeqCst),
        2,
        "eyJ.1 refused, eyJ.2 used"
    );
    AzureOpenAi
        .chat(&h.call(), &ask("gpt-4o-mini"))
        .await
        .unwrap();
    assert_eq!(tokens.load(Ordering::SeqCst), 2, "then cached");
}

#[tokio::test]
async fn the_function_apps_managed_identity_is_a_credential() {
    let (fake, tokens) = fake().await;
    let identity = |header: &str| {
        Some(integration_kit::IdentityEndpoint::new(
            reqwest::Url::parse(&format!("{}/msi/token", fake.base)).unwrap(),
            header.to_owned().into(),
        ))
    };
    let mut h = Harness::new(
        KEY,
        CredentialKind::ManagedIdentity,
        json!({}),
        json!({"models": ["gpt-4o-mini"], "baseUrl": fake.base}),
    );
    h.tokens = integration_kit::TokenCache::default().with_identity(identity(IDENTITY_HEADER));
    let answer = AzureOpenAi
        .chat(&h.call(), &ask("gpt-4o-mini"))
        .await
        .unwrap();
    assert_eq!(answer["choices"][0]["message"]["content"], "Hello");
    AzureOpenAi
        .chat(&h.call(), &ask("gpt-4o-mini"))
        .await
        .unwrap();
    assert_eq!(tokens.load(Ordering::SeqCst), 1, "one token, cached");
    // A wrong identity header, or no identity endpoint at all: an auth failure, no call.
    let mut wrong = h;
    wrong.tokens = integration_kit::TokenCache::default().with_identity(identity("nope"));
    let e = AzureOpenAi
        .chat(&wrong.call(), &ask("gpt-4o-mini"))
        .await
        .unwrap_err();
    assert_eq!(e.class(), FailureClassification::Auth);
    wrong.tokens = integration_kit::TokenCache::default();
    let e = AzureOpenAi
        .chat(&wrong.call(), &ask("gpt-4o-mini"))
        .await
        .unwrap_err();
    assert_eq!(e.class(), FailureClassification::Auth);
    assert!(e.failure.message.contains("IDENTITY_ENDPOINT"), "{e}");
}

#[test]
fn configs_name_an_endpoint_and_deployments_azure_accepts() {
    use integration_kit::ProviderConfig as _;
    let config = |v: Value| serde_json::from_value::<AzureConfig>(v).unwrap().check();
    assert!(config(json!({"models": ["m"], "baseUrl": "https://r.openai.azure.com"})).is_ok());
    assert!(config(json!({"models": ["m"]})).is_err());
    assert!(
        config(json!({"models": [{"name": "m", "upstream": "a/b"}],
                          "baseUrl": "https://r.openai.azure.com"}))
        .is_err()
    );
    assert!(
        config(
            json!({"models": ["m"], "baseUrl": "https://r.openai.azure.com",
                          "apiVersion": "2024-10-21&x=1"})
        )
        .is_err()
    );
    assert!(serde_json::from_value::<AzureConfig>(json!({"models": ["m"], "api": "v2"})).is_err());
}

/// Azure OpenAI's documented answers for the kit's conformance suite.
struct Script;

impl integration_kit::testing::VendorScript for Script {
    fn reply(&self, case: Case, _request: &Recorded) -> Result<Reply, &'static str> {
        Ok(match case {
            Case::Success => Reply::json(200, completion("gpt-4o-mini")),
            Case::Invalid => error(400, "BadRequest", "Invalid value for 'messages'"),
            Case::Unauthorized => {
                error(401, "401", "Access denied due to invalid subscription key")
            }
            Case::Throttled => error(429, "429", "Rate limit is exceeded.")
                .header("retry-after", &THROTTLE_SECS.to_string()),
            Case::ServerError => error(500, "InternalServerError", "The server had an error"),
            Case::Malformed => Reply::text(200, "<html>not json</html>"),
        })
    }
}

#[tokio::test]
async fn the_provider_passes_the_kits_conformance_suite() {
    let skipped = conformance::<model_gateway::Complete, _, _>(
        &AzureOpenAi,
        Script,
        |base| harness(base, json!({"models": ["gpt-4o-mini"]})),
        ask("gpt-4o-mini"),
        &[API_KEY],
        // A completion changes nothing: repeating one after a 5xx is safe.
        true,
    )
    .await;
    assert!(skipped.is_empty(), "{skipped:?}");
}
