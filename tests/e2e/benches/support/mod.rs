//! What the load harnesses share: the runner started as it ships (release build, embedded
//! default, one-minute locks, the host's default concurrency), a token for it, and
//! percentiles. Each harness uses part of it.
#![allow(dead_code)]

use std::time::Duration;

use app_context::AppRegistration;
use integration_platform::{RunArgs, Runner};
use serde_json::{Value, json};

/// Runs a harness on a multi-threaded runtime.
pub(crate) fn block_on<F: std::future::Future>(harness: F) -> F::Output {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime")
        .block_on(harness)
}

/// A runner serving `apps` on a free port, with `values` as its settings' `Values`.
pub(crate) struct Bench {
    pub(crate) runner: Runner,
    /// `http://127.0.0.1:<port>`.
    pub(crate) base: String,
    /// A bearer token of tenant `bench`.
    pub(crate) token: String,
    /// The settings file and the data folder; removed when dropped.
    pub(crate) dir: tempfile::TempDir,
}

pub(crate) async fn start(apps: &[AppRegistration], values: Value) -> Bench {
    let dir = tempfile::tempdir().expect("dir");
    std::fs::write(
        dir.path().join("local.settings.json"),
        json!({"Values": values}).to_string(),
    )
    .expect("settings");
    let args = RunArgs {
        listen: Some("127.0.0.1:0".parse().expect("addr")),
        data_dir: dir.path().join("data"),
        settings: Some(dir.path().join("local.settings.json")),
        lock_seconds: 60,
        function_timeout: 60,
        max_concurrent_calls: None,
    };
    let runner = Runner::start(apps, args).await.expect("runner");
    let base = format!("http://{}", runner.addr);
    let token = runner
        .dev_tokens
        .issue("bench", &[], chrono::Duration::hours(1), chrono::Utc::now())
        .expect("token");
    Bench {
        runner,
        base,
        token,
        dir,
    }
}

/// The `p` quantile (0 to 1) of `samples` (sorted in place).
pub(crate) fn percentile(samples: &mut [Duration], p: f64) -> Duration {
    samples.sort();
    samples[((samples.len() as f64 - 1.0) * p).round() as usize]
}
