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

/// A runner hosting the probe app in this process, on a temporary data folder, with a
/// client for it.
pub(crate) struct Probe {
    pub(crate) runner: Runner,
    pub(crate) client: reqwest::Client,
    base: String,
    _dir: tempfile::TempDir,
}

impl Probe {
    pub(crate) async fn start(schedule: &str) -> Probe {
        let dir = tempfile::tempdir().unwrap();
        let args = RunArgs {
            listen: Some("127.0.0.1:0".parse().unwrap()),
            data_dir: dir.path().join("data"),
            settings: write_settings(dir.path(), schedule),
            lock_seconds: 2,
            function_timeout: 30,
            max_concurrent_calls: 4,
        };
        let runner = Runner::start(&[e2e::registration()], args)
            .await
            .expect("runner starts");
        let base = format!("http://{}", runner.addr);
        Probe {
            runner,
            client: reqwest::Client::new(),
            base,
            _dir: dir,
        }
    }

    pub(crate) fn token(&self, tenant: &str) -> String {
        self.runner
            .dev_tokens
            .issue(tenant, &[], chrono::Duration::hours(1), chrono::Utc::now())
            .unwrap()
    }

    pub(crate) fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    /// Sends a request, with a bearer token when given.
    pub(crate) async fn send(
        &self,
        method: &str,
        path: &str,
        token: Option<&str>,
        body: Option<Value>,
    ) -> reqwest::Response {
        let mut rb = self.client.request(method.parse().unwrap(), self.url(path));
        if let Some(t) = token {
            rb = rb.bearer_auth(t);
        }
        if let Some(b) = body {
            rb = rb.json(&b);
        }
        rb.send().await.unwrap()
    }

    pub(crate) async fn post(&self, path: &str, token: &str, body: Value) -> reqwest::Response {
        self.send("POST", path, Some(token), Some(body)).await
    }

    pub(crate) async fn eventually(&self, path: &str, token: &str) -> Value {
        eventually(
            &self.client,
            &self.url(path),
            token,
            Duration::from_secs(10),
        )
        .await
    }
}
