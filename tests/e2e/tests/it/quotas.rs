//! The model gateway's quotas across instances, and its usage ledger: four instances of the
//! openai app over one document store (as Function App instances share Cosmos DB: the
//! runner's and three more built from the same context, each with its own slices in
//! memory) take 200 concurrent chat requests against a 10k tokens-per-minute budget; what
//! they admit stays within it, the rest are 429s the OpenAI SDKs understand, and the usage
//! route's totals equal the sum of the admitted calls' runs.

use std::time::Duration;

use futures::StreamExt as _;
use serde_json::{Value, json};
use testkit::TestPlatform;

use super::models::connect;

/// Fifty words of three bytes each (with the space): the gateway's estimate (a token per
/// three bytes, plus overheads) is above what `fake-model` counts (a token per word).
fn body() -> Value {
    let words = vec!["ab"; 50].join(" ");
    json!({"model": "m", "max_tokens": 60, "messages": [{"role": "user", "content": words}]})
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn four_instances_admit_no_more_than_the_budget_and_usage_adds_up() {
    let platform = TestPlatform::start(
        &[registry::registration(), openai::registration()],
        json!({}),
    )
    .await;
    let token = platform.token("tenant-q", &[]);
    let operator = platform.token("ops", &["operator"]);
    connect(&platform, &token, "fake", json!({"models": ["m"]})).await;
    // Only an operator sets limits; they are checked.
    let r = platform
        .client
        .put(platform.url("/openai/api/integrations/limits/tenant-q"))
        .bearer_auth(&token)
        .json(&json!({"tokensPerMinute": 10000}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 403);
    let r = platform
        .client
        .put(platform.url("/openai/api/integrations/limits/tenant-q"))
        .bearer_auth(&operator)
        .json(&json!({"tokensPerMinute": 0}))
        .send()
        .await
        .unwrap();
    testkit::assert_problem(r, 400, "invalid_limits").await;
    let r = platform
        .client
        .put(platform.url("/openai/api/integrations/limits/tenant-q"))
        .bearer_auth(&operator)
        .json(&json!({"tokensPerMinute": 10000}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let mine: Value = platform
        .get("/openai/api/integrations/limits", &token)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(mine, json!({"tokensPerMinute": 10000}));

    // Three more instances of the app over the same store.
    let registration = openai::registration();
    let mut bases = vec![platform.url("/openai/api")];
    for _ in 0..3 {
        let app = (registration.build)(&registration.context_for(&platform.runner.context))
            .expect("the app builds");
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        bases.push(format!("http://{}/api", listener.local_addr().unwrap()));
        tokio::spawn(functions_runtime::serve_on(
            listener,
            app,
            std::future::pending(),
        ));
    }

    // All in one minute's window: start with at least 20 s of it left.
    let second = chrono::Utc::now().timestamp().rem_euclid(60);
    if second > 40 {
        tokio::time::sleep(Duration::from_secs((61 - second) as u64)).await;
    }
    let answers: Vec<(u16, Option<String>, Value, reqwest::header::HeaderMap)> =
        futures::stream::iter(0..200)
            .map(|i| {
                let request = platform
                    .client
                    .post(format!("{}/v1/chat/completions", bases[i % 4]))
                    .bearer_auth(&token)
                    .json(&body());
                async move {
                    let r = request.send().await.unwrap();
                    let status = r.status().as_u16();
                    let run = r
                        .headers()
                        .get("x-request-id")
                        .map(|v| v.to_str().unwrap().to_owned());
                    let headers = r.headers().clone();
                    (status, run, r.json::<Value>().await.unwrap(), headers)
                }
            })
            .buffer_unordered(200)
            .collect()
            .await;
    let admitted: Vec<&(u16, Option<String>, Value, _)> =
        answers.iter().filter(|a| a.0 == 200).collect();
    let refused: Vec<&(u16, Option<String>, Value, _)> =
        answers.iter().filter(|a| a.0 != 200).collect();
    let used: u64 = admitted
        .iter()
        .map(|a| a.2["usage"]["total_tokens"].as_u64().unwrap())
        .sum();
    eprintln!("admitted {} of 200, {used} tokens", admitted.len());
    assert!(
        used <= 10_000,
        "{used} tokens admitted by {} calls",
        admitted.len()
    );
    assert!(admitted.len() >= 70, "only {} admitted", admitted.len());
    assert!(refused.len() >= 90, "{} refused", refused.len());
    for (status, _, body, headers) in &refused {
        assert_eq!(*status, 429, "{body}");
        assert_eq!(body["error"]["code"], "rate_limit_exceeded", "{body}");
        assert_eq!(headers["x-ratelimit-limit-tokens"], "10000");
        assert!(headers.contains_key("retry-after"));
    }

    // The ledger: one entry per admitted call, once every run is recorded.
    let mut usage = Value::Null;
    for _ in 0..100 {
        usage = platform
            .get("/openai/api/integrations/usage?groupBy=subject", &token)
            .await
            .json()
            .await
            .unwrap();
        if usage["totals"]["requests"] == admitted.len() as u64 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(
        usage["totals"]["requests"],
        admitted.len() as u64,
        "{usage}"
    );
    let mut from_runs = 0;
    for (_, run, _, _) in &admitted {
        let recorded = platform
            .run_until(
                "openai",
                &token,
                run.as_deref().unwrap(),
                &["succeeded", "failed"],
            )
            .await;
        from_runs += recorded["usage"]["tokensIn"].as_u64().unwrap()
            + recorded["usage"]["tokensOut"].as_u64().unwrap();
    }
    let totals = &usage["totals"];
    assert_eq!(
        totals["tokensIn"].as_u64().unwrap() + totals["tokensOut"].as_u64().unwrap(),
        from_runs,
        "{usage}"
    );
    assert_eq!(from_runs, used);
    assert_eq!(usage["groups"].as_array().unwrap().len(), 1, "one subject");
    // Another tenant's ledger is its own (empty); its runs are 404s.
    let other = platform.token("tenant-other", &[]);
    let theirs: Value = platform
        .get("/openai/api/integrations/usage", &other)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(theirs["totals"]["requests"], 0, "{theirs}");
    let run = admitted[0].1.as_deref().unwrap();
    let r = platform
        .get(&format!("/openai/api/integrations/runs/{run}"), &other)
        .await;
    assert_eq!(r.status(), 404);
    let r = platform
        .get(
            "/openai/api/integrations/usage?from=2026-01-01&to=2026-12-31",
            &token,
        )
        .await;
    testkit::assert_problem(r, 400, "invalid_query").await;
    platform.shutdown().await;
}
