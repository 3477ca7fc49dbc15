use std::io::{BufRead as _, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, RwLock};
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
    pub(crate) platform: testkit::TestPlatform,
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

pub(crate) const BIN: &str = env!("CARGO_BIN_EXE_test-platform");

/// Starts the `test-platform` runner process on `dir` (settings and data folder there),
/// returning it and the address it printed.
pub(crate) fn spawn(dir: &Path) -> (Child, String) {
    spawn_with_env(dir, &[])
}

/// [`spawn`] with extra environment variables for the child (the test process's own
/// environment cannot be changed safely). Panics with what the runner printed when it exits
/// before listening.
pub(crate) fn spawn_with_env(dir: &Path, env: &[(String, String)]) -> (Child, String) {
    let mut child = Command::new(BIN)
        .args(["--listen", "127.0.0.1:0", "--lock-seconds", "2"])
        .arg("--data-dir")
        .arg(dir.join("data"))
        .arg("--settings")
        .arg(dir.join("local.settings.json"))
        .envs(env.iter().map(|(k, v)| (k, v)))
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn the runner");
    let stderr = child.stderr.take().unwrap();
    let mut lines = BufReader::new(stderr).lines();
    let mut printed = Vec::new();
    let addr = loop {
        let Some(line) = lines.next() else {
            let status = child.wait().map(|s| s.to_string()).unwrap_or_default();
            panic!(
                "the runner exited ({status}) before printing its address:\n{}",
                printed.join("\n")
            );
        };
        let line = line.unwrap();
        if let Some(rest) = line.split("listening on http://").nth(1) {
            break rest.trim().to_owned();
        }
        printed.push(line);
    };
    // Keep draining stderr so the child never blocks on a full pipe.
    std::thread::spawn(move || for _ in lines {});
    (child, addr)
}

/// The runner process of the moment, replaced after each kill.
pub(crate) struct RunnerProcess {
    pub(crate) child: Child,
    /// `http://<address>`, shared with whoever sends to the runner of the moment.
    pub(crate) base: Arc<RwLock<String>>,
    /// The largest peak resident set of any of the runner's lives, in KiB.
    pub(crate) peak_kib: u64,
}

impl RunnerProcess {
    pub(crate) fn start(dir: &Path) -> RunnerProcess {
        let (child, addr) = spawn(dir);
        RunnerProcess {
            child,
            base: Arc::new(RwLock::new(format!("http://{addr}"))),
            peak_kib: 0,
        }
    }

    pub(crate) fn base(&self) -> String {
        self.base.read().unwrap().clone()
    }

    /// A memory figure of the running process from `/proc/<pid>/status` (`VmRSS`, `VmHWM`),
    /// in KiB; 0 where the system has none.
    pub(crate) fn memory_kib(&self, field: &str) -> u64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.child.id()))
            .unwrap_or_default();
        status
            .lines()
            .find_map(|l| l.strip_prefix(field)?.strip_prefix(':'))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
            .unwrap_or(0)
    }

    /// Keeps the peak resident memory of this life (`VmHWM`) if it is the largest so far.
    pub(crate) fn sample_peak(&mut self) {
        self.peak_kib = self.peak_kib.max(self.memory_kib("VmHWM"));
    }

    pub(crate) fn kill(&mut self) {
        self.sample_peak();
        self.child.kill().expect("SIGKILL");
        self.child.wait().unwrap();
    }

    pub(crate) fn restart(&mut self, dir: &Path) {
        self.kill();
        let (child, addr) = spawn(dir);
        self.child = child;
        *self.base.write().unwrap() = format!("http://{addr}");
    }
}

/// A token for `tenant` from the data folder's local signer, as `dev-token` prints it.
pub(crate) fn dev_token(dir: &Path, tenant: &str) -> String {
    let out = Command::new(BIN)
        .args(["dev-token", "--tenant", tenant])
        .arg("--data-dir")
        .arg(dir.join("data"))
        .output()
        .expect("dev-token runs");
    assert!(out.status.success());
    String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .last()
        .expect("a token line")
        .trim()
        .to_owned()
}

/// Creates a connection of app `slug` (201 expected, the secret never echoed); its id.
pub(crate) async fn connect_app(
    platform: &testkit::TestPlatform,
    slug: &str,
    token: &str,
    body: Value,
    secret: &str,
) -> String {
    let r = platform
        .post(
            &format!("/{slug}/api/integrations/connections"),
            token,
            body,
        )
        .await;
    let status = r.status();
    let text = r.text().await.unwrap();
    assert_eq!(status, 201, "{text}");
    assert!(!text.contains(secret), "the secret is never echoed: {text}");
    serde_json::from_str::<Value>(&text).unwrap()["id"]
        .as_str()
        .unwrap()
        .to_owned()
}

/// A run of app `slug` asked with `Prefer: wait=30` (and `Idempotency-Key: key`): the
/// answer's body.
pub(crate) async fn run_waited(
    platform: &testkit::TestPlatform,
    slug: &str,
    token: &str,
    key: Option<&str>,
    body: Value,
) -> Value {
    let mut request = platform
        .client
        .post(platform.url(&format!("/{slug}/api/integrations/runs")))
        .bearer_auth(token)
        .header("prefer", "wait=30")
        .json(&body);
    if let Some(key) = key {
        request = request.header("idempotency-key", key);
    }
    request.send().await.unwrap().json().await.unwrap()
}

/// The first webhook of `event_type` the subscriber endpoint received, within 30 s.
pub(crate) async fn delivered(
    subscriber: &integration_kit::testing::FakeVendor,
    event_type: &str,
) -> Value {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if let Some(event) = subscriber
            .requests()
            .into_iter()
            .map(|r| r.json())
            .find(|p| p["type"] == event_type)
        {
            return event;
        }
        assert!(
            Instant::now() < deadline,
            "no {event_type} delivered within 30 s"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Sends a GitHub webhook delivery (`X-GitHub-Delivery` = `delivery`, signed with `secret`)
/// to an inbound source of the runner at `base`.
pub(crate) async fn send_github(
    client: &reqwest::Client,
    base: &str,
    source: &str,
    secret: &str,
    delivery: &str,
    body: &str,
) -> reqwest::Result<reqwest::Response> {
    client
        .post(format!(
            "{base}/webhook-gateway/api/webhooks/inbound/{source}"
        ))
        .header("content-type", "application/json")
        .header("x-github-event", "ping")
        .header("x-github-delivery", delivery)
        .header(
            "x-hub-signature-256",
            testkit::github_signature(secret, body.as_bytes()),
        )
        .body(body.to_owned())
        .send()
        .await
}
