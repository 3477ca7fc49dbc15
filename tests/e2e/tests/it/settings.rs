//! Settings are read and checked once, at start-up: a setting that is present but unusable
//! stops the platform from starting, and the error names the app and the setting. Unset or
//! blank settings take their defaults.

use serde_json::json;
use testkit::TestPlatform;

fn apps() -> Vec<app_context::AppRegistration> {
    vec![
        registry::registration(),
        webhook_gateway::registration(),
        sms::registration(),
        email::registration(),
    ]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bad_setting_stops_start_up_naming_it() {
    for (setting, value, app) in [
        // The registry's own.
        ("ROTATION_SCHEDULE", "hourly", "registry"),
        ("ROTATION_TEST_TIMEOUT_SECONDS", "5m", "registry"),
        // The gateway's.
        ("WEBHOOK_RETRY_SCHEDULE_SECONDS", "0,5,x", "webhook-gateway"),
        ("WEBHOOK_TIMEOUT_SECONDS", "0", "webhook-gateway"),
        ("WEBHOOK_GATEWAY_URL", "gateway.example", "webhook-gateway"),
        // The kit's (the first vendor app in the list is the one that stops).
        ("VENDOR_MAX_ATTEMPTS", "100", "sms"),
        ("RUN_MAX_ATTEMPTS", "-1", "sms"),
        ("RUN_MAX_WAIT_SECONDS", "30", "sms"),
        ("RUN_MAX_CHECK_INTERVAL_SECONDS", "1h", "sms"),
        ("RECEIPTS_POLL_SCHEDULE", "*/5 * * * *", "sms"),
        ("SMS_URL", "https://x.example/?q=1", "sms"),
        // Where apps keep secrets, checked by every app that does.
        ("REGISTRY_URL", "registry.local/api", "webhook-gateway"),
        // netguard's, read by every app.
        (
            "OUTBOUND_ALLOWED_HOSTS",
            "http://localhost:8080",
            "registry",
        ),
    ] {
        let err = match TestPlatform::try_start(&apps(), json!({ setting: value })).await {
            Ok(p) => {
                p.shutdown().await;
                panic!("{setting}={value} should stop start-up");
            }
            Err(e) => format!("{e:#}"),
        };
        assert!(
            err.contains(&format!("app {app}"))
                && err.contains(&format!("setting {setting} must be")),
            "{setting}={value}: {err}"
        );
        assert!(err.contains(value.trim()), "the value is shown: {err}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn good_and_blank_settings_start() {
    let p = TestPlatform::try_start(
        &apps(),
        json!({
            "ROTATION_SCHEDULE": "0 */5 * * * *",
            "ROTATION_TEST_TIMEOUT_SECONDS": "60",
            "WEBHOOK_RETRY_SCHEDULE_SECONDS": "0, 1, 1",
            "VENDOR_MAX_ATTEMPTS": " 4 ",
            "RUN_MAX_ATTEMPTS": "",
            "RUN_MAX_WAIT_SECONDS": "86400",
            "RUN_MAX_CHECK_INTERVAL_SECONDS": "5",
            "OUTBOUND_ALLOWED_HOSTS": "127.0.0.1, localhost",
        }),
    )
    .await
    .expect("good settings start");
    p.shutdown().await;
}
