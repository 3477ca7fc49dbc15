//! Load harness for the source-control apps: `cargo bench -p e2e --bench source_control`.
//!
//! The registry, the github app and the azure-devops app run in this process through the
//! runner (release build, embedded default). Each app has one connection to a fake vendor
//! over loopback HTTP: GitHub with a GitHub App credential (installation tokens exchanged
//! for App JWTs, an hour each), Azure DevOps with an Entra ID service principal (tokens from
//! a fake token endpoint). For each app, `RUNS` waited runs (`Prefer: wait`, 16 in flight)
//! read a repository; the harness reports runs completed per second, the request latency,
//! and the token cache's hit ratio as the vendor sees it: 1 − token requests ÷ API calls
//! (every API call needs a token; only a miss asks the token endpoint). Bounded counts,
//! loopback only.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use futures::StreamExt as _;
use integration_kit::testing::{FakeVendor, Reply};
use serde_json::{Value, json};

mod support;

use support::percentile;

const RUNS: usize = 2000;
const IN_FLIGHT: usize = 16;

/// Test-only RSA key (the auth crate's fixture; it protects nothing).
const APP_KEY: &str = include_str!("../../../shared/platform/auth/tests/fixtures/key1.pem");

#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// What a fake vendor counts: token requests and API calls.
#[derive(Default)]
struct Counts {
    tokens: AtomicU64,
    calls: AtomicU64,
}

fn main() {
    support::block_on(run());
}

/// GitHub: installation tokens for App JWTs, and one repository.
async fn github() -> (FakeVendor, Arc<Counts>) {
    let counts = Arc::new(Counts::default());
    let c = counts.clone();
    let fake = FakeVendor::start(move |r, _| {
        if r.path == "/app/installations/77/access_tokens" {
            let n = c.tokens.fetch_add(1, Ordering::Relaxed) + 1;
            let expires = chrono::Utc::now() + chrono::TimeDelta::hours(1);
            return Reply::json(
                201,
                json!({"token": format!("ghs_{n}"), "expires_at": expires.to_rfc3339()}),
            );
        }
        c.calls.fetch_add(1, Ordering::Relaxed);
        match r.path.as_str() {
            "/rate_limit" => Reply::json(200, json!({"resources": {}})),
            "/repos/octo/svc-a" => Reply::json(
                200,
                json!({"id": 1296269, "full_name": "octo/svc-a", "private": true,
                       "default_branch": "main", "html_url": "https://github.com/octo/svc-a"}),
            ),
            _ => Reply::json(404, json!({"message": "Not Found"})),
        }
    })
    .await;
    (fake, counts)
}

/// Entra ID's token endpoint and Azure DevOps: one repository.
async fn azure_devops() -> (FakeVendor, Arc<Counts>) {
    let counts = Arc::new(Counts::default());
    let c = counts.clone();
    let fake = FakeVendor::start(move |r, _| {
        if r.path == "/entra/oauth2/v2.0/token" {
            let n = c.tokens.fetch_add(1, Ordering::Relaxed) + 1;
            return Reply::json(
                200,
                json!({"token_type": "Bearer", "expires_in": 3599, "access_token": format!("eyJ.{n}")}),
            );
        }
        c.calls.fetch_add(1, Ordering::Relaxed);
        match r.path.as_str() {
            "/_apis/connectionData" => Reply::json(200, json!({"authenticatedUser": {}})),
            "/fabrikam/Fabrikam-Fiber/_apis/git/repositories/svc-a" => Reply::json(
                200,
                json!({"id": "5febef5a-833d-4e14-b9c0-14cb638f91e6", "name": "svc-a",
                       "defaultBranch": "refs/heads/main",
                       "webUrl": "https://dev.azure.com/fabrikam/Fabrikam-Fiber/_git/svc-a",
                       "project": {"visibility": "private"}}),
            ),
            _ => Reply::json(404, json!({"message": "Not found."})),
        }
    })
    .await;
    (fake, counts)
}

async fn run() {
    let (github, github_counts) = github().await;
    let (ado, ado_counts) = azure_devops().await;
    let bench = support::start(
        &[
            registry::registration(),
            github::registration(),
            azure_devops::registration(),
        ],
        json!({"OUTBOUND_ALLOWED_HOSTS": "localhost,127.0.0.1"}),
    )
    .await;
    let (base, token) = (bench.base.clone(), bench.token.clone());
    let client = reqwest::Client::new();
    let connect = |app: &str, body: Value| {
        let request = client
            .post(format!("{base}/{app}/api/integrations/connections"))
            .bearer_auth(&token)
            .json(&body);
        async move {
            let v: Value = request
                .send()
                .await
                .expect("connection")
                .json()
                .await
                .expect("json");
            v["id"].as_str().expect("connection id").to_owned()
        }
    };
    let github_connection = connect(
        "github",
        json!({"providerKey": "github", "displayName": "bench", "config": {"baseUrl": github.base},
               "credential": {"kind": "githubApp", "appId": "4242", "privateKey": APP_KEY,
                              "installationId": "77"}}),
    )
    .await;
    let ado_connection = connect(
        "azure-devops",
        json!({"providerKey": "azure-devops", "displayName": "bench", "config": {"baseUrl": ado.base},
               "credential": {"kind": "oauth2ClientCredentials", "clientId": "bench",
                              "clientSecret": "bench-secret",
                              "tokenUrl": format!("{}/entra/oauth2/v2.0/token", ado.base)}}),
    )
    .await;

    println!(
        "| app (credential) | runs | completed runs/s | waited run p50 / p99 | token requests / API calls | token cache hit ratio |"
    );
    println!("|---|---|---|---|---|---|");
    for (label, app, connection, input, counts) in [
        (
            "github (GitHub App)",
            "github",
            &github_connection,
            json!({"owner": "octo", "repository": "svc-a"}),
            &github_counts,
        ),
        (
            "azure-devops (Entra ID)",
            "azure-devops",
            &ado_connection,
            json!({"organization": "fabrikam", "project": "Fabrikam-Fiber", "repository": "svc-a"}),
            &ado_counts,
        ),
    ] {
        let url = format!("{base}/{app}/api/integrations/runs");
        let request = |_: usize| {
            let (client, url, token) = (client.clone(), url.clone(), token.clone());
            let body =
                json!({"connectionId": connection, "operation": "getRepository", "input": input});
            async move {
                let t = Instant::now();
                let v: Value = client
                    .post(url)
                    .bearer_auth(token)
                    .header("Prefer", "wait=30")
                    .json(&body)
                    .send()
                    .await
                    .expect("answered")
                    .json()
                    .await
                    .expect("json");
                assert_eq!(v["status"], "succeeded", "{v}");
                t.elapsed()
            }
        };
        let started = Instant::now();
        let mut latencies = Vec::with_capacity(RUNS);
        let mut pending = futures::stream::FuturesUnordered::new();
        let mut next = 0;
        while next < RUNS.min(IN_FLIGHT) {
            pending.push(request(next));
            next += 1;
        }
        while let Some(latency) = pending.next().await {
            latencies.push(latency);
            if next < RUNS {
                pending.push(request(next));
                next += 1;
            }
        }
        let elapsed = started.elapsed();
        let tokens = counts.tokens.load(Ordering::Relaxed);
        let calls = counts.calls.load(Ordering::Relaxed);
        println!(
            "| {label} | {RUNS} ({IN_FLIGHT} in flight) | {:.0} | {:.2} ms / {:.2} ms | {tokens} / {calls} | {:.4} |",
            RUNS as f64 / elapsed.as_secs_f64(),
            percentile(&mut latencies, 0.5).as_secs_f64() * 1e3,
            percentile(&mut latencies, 0.99).as_secs_f64() * 1e3,
            1.0 - tokens as f64 / calls as f64,
        );
    }
    bench.runner.shutdown().await;
}
