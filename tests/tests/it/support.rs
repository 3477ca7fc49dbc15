use std::path::Path;
use std::time::{Duration, Instant};

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

/// A platform hosting the probe app in this process.
pub(crate) struct Probe {
    platform: testkit::TestPlatform,
}

impl std::ops::Deref for Probe {
    type Target = testkit::TestPlatform;
    fn deref(&self) -> &testkit::TestPlatform {
        &self.platform
    }
}

impl Probe {
    pub(crate) async fn start(schedule: &str) -> Probe {
        let values = json!({ "FUNCTIONS_WORKER_RUNTIME": "Custom", "PROBE_SCHEDULE": schedule });
        Probe {
            platform: testkit::TestPlatform::start(&[e2e::registration()], values).await,
        }
    }

    pub(crate) fn token(&self, tenant: &str) -> String {
        self.platform.token(tenant, &[])
    }

    pub(crate) async fn eventually(&self, path: &str, token: &str) -> Value {
        self.platform.eventually(path, token).await
    }

    pub(crate) async fn shutdown(self) {
        self.platform.shutdown().await;
    }
}
