use std::path::Path;
use std::time::{Duration, Instant};

use integration_platform::{RunArgs, Runner};
use serde_json::{Value, json};

pub(crate) fn write_settings(dir: &Path, schedule: &str) -> std::path::PathBuf {
    let path = dir.join("local.settings.json");
    let hold = dir.join("hold");
    let settings = json!({
        "IsEncrypted": false,
        "Values": {
            "FUNCTIONS_WORKER_RUNTIME": "Custom",
            "PROBE_SCHEDULE": schedule,
            "PROBE_HOLD_FILE": hold.to_string_lossy(),
        }
    });
    std::fs::write(&path, settings.to_string()).unwrap();
    path
}

pub(crate) async fn start(dir: &Path, schedule: &str) -> Runner {
    let args = RunArgs {
        listen: Some("127.0.0.1:0".parse().unwrap()),
        data_dir: dir.join("data"),
        settings: write_settings(dir, schedule),
        lock_seconds: 2,
        function_timeout: 30,
        max_concurrent_calls: 4,
    };
    Runner::start(&[e2e::registration()], args)
        .await
        .expect("runner starts")
}

pub(crate) fn token(runner: &Runner, tenant: &str) -> String {
    runner
        .context
        .dev_tokens
        .as_ref()
        .unwrap()
        .issue(tenant, &[], chrono::Duration::hours(1), chrono::Utc::now())
        .unwrap()
}

/// Polls `url` until it answers 200, returning the JSON body.
pub(crate) async fn eventually(
    client: &reqwest::Client,
    url: &str,
    token: &str,
    within: Duration,
) -> Value {
    let deadline = Instant::now() + within;
    loop {
        let r = client.get(url).bearer_auth(token).send().await.unwrap();
        if r.status() == 200 {
            return r.json().await.unwrap();
        }
        assert!(
            Instant::now() < deadline,
            "{url} did not become available within {within:?} (last status {})",
            r.status()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}
