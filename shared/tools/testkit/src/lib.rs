//! Test fixtures shared by every app's tests: `TestPlatform` runs the given apps in this
//! process through the local runner (the same front door, triggers and embedded adapters as
//! `cargo run`), on a temporary data folder, with an HTTP client and token minting.

use std::path::Path;
use std::time::{Duration, Instant};

use app_context::AppRegistration;
use integration_platform::{RunArgs, Runner};
use serde_json::{Value, json};

/// Any free port, the folder's data and settings, two-second locks, four calls at a time.
fn args(dir: &Path) -> RunArgs {
    RunArgs {
        listen: Some("127.0.0.1:0".parse().expect("an address")),
        data_dir: dir.join("data"),
        settings: Some(dir.join("local.settings.json")),
        lock_seconds: 2,
        function_timeout: 30,
        max_concurrent_calls: Some(4),
    }
}

pub struct TestPlatform {
    pub runner: Runner,
    pub client: reqwest::Client,
    base: String,
    dir: tempfile::TempDir,
}

impl TestPlatform {
    /// Starts `apps` with `values` as the `Values` of `local.settings.json`, two-second
    /// locks (so lock expiry is quick to observe) and four concurrent calls per function.
    pub async fn start(apps: &[AppRegistration], values: Value) -> TestPlatform {
        Self::launch(apps, values, |_| {})
            .await
            .expect("the runner starts")
    }

    /// Like [`Self::start`], with the runner's refusal to start (a bad setting, say) as an
    /// error.
    pub async fn try_start(
        apps: &[AppRegistration],
        values: Value,
    ) -> anyhow::Result<TestPlatform> {
        Self::launch(apps, values, |_| {}).await
    }

    /// Like [`Self::start`] with `concurrency` calls at a time per function and the runner's
    /// default one-minute locks (for load harnesses, which measure the runner as it ships).
    pub async fn start_with(
        apps: &[AppRegistration],
        values: Value,
        concurrency: usize,
    ) -> TestPlatform {
        Self::launch(apps, values, |args| {
            args.max_concurrent_calls = Some(concurrency);
            args.lock_seconds = 60;
        })
        .await
        .expect("the runner starts")
    }

    async fn launch(
        apps: &[AppRegistration],
        values: Value,
        adjust: impl FnOnce(&mut RunArgs),
    ) -> anyhow::Result<TestPlatform> {
        let dir = tempfile::tempdir().expect("a temporary folder");
        let settings = dir.path().join("local.settings.json");
        let file = json!({ "IsEncrypted": false, "Values": values });
        std::fs::write(&settings, file.to_string()).expect("settings written");
        let mut args = args(dir.path());
        adjust(&mut args);
        let runner = Runner::start(apps, args).await?;
        let base = format!("http://{}", runner.addr);
        Ok(TestPlatform {
            runner,
            client: reqwest::Client::new(),
            base,
            dir,
        })
    }

    /// The temporary folder holding the settings and the data folder (`data/`).
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// A bearer token for `tenant` with `roles`, as `dev-token` would print.
    pub fn token(&self, tenant: &str, roles: &[&str]) -> String {
        let roles: Vec<String> = roles.iter().map(|r| (*r).to_owned()).collect();
        self.runner
            .dev_tokens
            .issue(
                tenant,
                &roles,
                chrono::Duration::hours(1),
                chrono::Utc::now(),
            )
            .expect("a token")
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    /// Sends a request, with a bearer token and a JSON body when given.
    pub async fn send(
        &self,
        method: &str,
        path: &str,
        token: Option<&str>,
        body: Option<Value>,
    ) -> reqwest::Response {
        let mut rb = self
            .client
            .request(method.parse().expect("a method"), self.url(path));
        if let Some(t) = token {
            rb = rb.bearer_auth(t);
        }
        if let Some(b) = body {
            rb = rb.json(&b);
        }
        rb.send().await.expect("the request is answered")
    }

    pub async fn post(&self, path: &str, token: &str, body: Value) -> reqwest::Response {
        self.send("POST", path, Some(token), Some(body)).await
    }

    pub async fn get(&self, path: &str, token: &str) -> reqwest::Response {
        self.send("GET", path, Some(token), None).await
    }

    /// Polls `path` (a JSON document with a `status`) until its status is one of `statuses`
    /// (within 15 s), returning it; panics with the last one seen.
    pub async fn until_status(&self, path: &str, token: &str, statuses: &[&str]) -> Value {
        let deadline = Instant::now() + Duration::from_secs(15);
        let mut seen = Value::Null;
        while Instant::now() < deadline {
            let r = self.get(path, token).await;
            if r.status() == 200 {
                seen = r.json().await.expect("a JSON body");
                if statuses.iter().any(|s| seen["status"] == *s) {
                    return seen;
                }
            }
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
        panic!("{path} never reached {statuses:?}: {seen}");
    }

    /// The run `run` of app `slug` once its status is one of `statuses`.
    pub async fn run_until(&self, slug: &str, token: &str, run: &str, statuses: &[&str]) -> Value {
        self.until_status(
            &format!("/{slug}/api/integrations/runs/{run}"),
            token,
            statuses,
        )
        .await
    }

    /// The failures app `slug` recorded for run `run` (its failure ledger, filtered).
    pub async fn failures_of_run(&self, slug: &str, token: &str, run: &str) -> Vec<Value> {
        let r = self
            .get(&format!("/{slug}/api/integrations/failures"), token)
            .await;
        assert_eq!(r.status(), 200);
        let failures: Value = r.json().await.expect("failures are JSON");
        failures["items"]
            .as_array()
            .into_iter()
            .flatten()
            .filter(|f| f["subject"]["id"] == run)
            .cloned()
            .collect()
    }

    /// The credential rotation `rotation` once it is decided (no longer `testing`).
    pub async fn rotation_decided(&self, token: &str, rotation: &str) -> Value {
        self.until_status(
            &format!("/registry/api/integrations/credentials/rotations/{rotation}"),
            token,
            &["promoted", "aborted"],
        )
        .await
    }

    /// Polls `path` until it answers 200 (within 10 s), returning the JSON body.
    pub async fn eventually(&self, path: &str, token: &str) -> Value {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let r = self.get(path, token).await;
            if r.status() == 200 {
                return r.json().await.expect("a JSON body");
            }
            assert!(
                Instant::now() < deadline,
                "{path} did not answer 200 within 10 s (last status {})",
                r.status()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    pub async fn shutdown(self) {
        self.runner.shutdown().await;
    }

    /// Stops the platform and starts `apps` again on the same data folder and settings, as
    /// after a crash or a deployment.
    pub async fn restart(self, apps: &[AppRegistration]) -> TestPlatform {
        let TestPlatform {
            runner,
            client,
            dir,
            ..
        } = self;
        runner.shutdown().await;
        let args = args(dir.path());
        let runner = Runner::start(apps, args)
            .await
            .expect("the runner starts again");
        let base = format!("http://{}", runner.addr);
        TestPlatform {
            runner,
            client,
            base,
            dir,
        }
    }
}

/// Asserts a problem+json answer with `status` and `code`; returns the problem.
/// The `X-Hub-Signature-256` value GitHub sends with `body` for a webhook whose secret is
/// `secret`: `sha256=` and the hex HMAC-SHA256 of the exact bytes.
pub fn github_signature(secret: &str, body: &[u8]) -> String {
    use hmac::Mac as _;
    let mut mac = hmac::Hmac::<sha2::Sha256>::new_from_slice(secret.as_bytes())
        .expect("HMAC takes a key of any length");
    mac.update(body);
    let hex: String = mac
        .finalize()
        .into_bytes()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    format!("sha256={hex}")
}

pub async fn assert_problem(response: reqwest::Response, status: u16, code: &str) -> Value {
    assert_eq!(response.status().as_u16(), status, "status");
    let ct = response
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    assert_eq!(ct, "application/problem+json", "content type");
    let body: Value = response.json().await.expect("a JSON problem");
    assert_eq!(body["code"], code, "problem code in {body}");
    assert_eq!(body["status"], status);
    body
}

/// Everything the process logs (all levels), kept in memory, to check what never may appear
/// in logs (secrets). Installs a global subscriber: one per test process (nextest runs each
/// test in its own); later calls in the same process share the first capture.
#[derive(Clone)]
pub struct LogCapture {
    buffer: std::sync::Arc<std::sync::Mutex<Vec<u8>>>,
}

struct CaptureWriter(std::sync::Arc<std::sync::Mutex<Vec<u8>>>);

impl std::io::Write for CaptureWriter {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

static CAPTURE: std::sync::OnceLock<LogCapture> = std::sync::OnceLock::new();

pub fn capture_logs() -> LogCapture {
    CAPTURE
        .get_or_init(|| {
            let capture = LogCapture {
                buffer: std::sync::Arc::default(),
            };
            let buffer = capture.buffer.clone();
            let _ = tracing_subscriber::fmt()
                .with_max_level(tracing::Level::TRACE)
                .with_ansi(false)
                .with_writer(move || CaptureWriter(buffer.clone()))
                .try_init();
            capture
        })
        .clone()
}

impl LogCapture {
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.buffer.lock().unwrap_or_else(|p| p.into_inner())).into_owned()
    }

    /// Panics if any of `secrets` was logged; also checks something was logged at all.
    pub fn assert_absent(&self, secrets: &[&str]) {
        let text = self.text();
        assert!(
            !text.is_empty(),
            "nothing was logged: the capture is not working"
        );
        for s in secrets {
            assert!(!text.contains(s), "the logs hold the secret {s:?}");
        }
    }
}
