//! The registry's settings, read and checked once when the app is built (shared with its
//! routes as `api_kit::AppState`).

use std::time::Duration;

use app_context::{AppContext, InvalidSetting};

/// The rotation sweep's schedule (six-field NCRONTAB).
pub const ROTATION_SCHEDULE_SETTING: &str = "ROTATION_SCHEDULE";
/// How long the owning app has to answer a re-test, in seconds.
pub const ROTATION_TEST_TIMEOUT_SETTING: &str = "ROTATION_TEST_TIMEOUT_SECONDS";
/// The sweep's schedule when the setting does not give one: hourly, on the hour.
pub const DEFAULT_ROTATION_SCHEDULE: &str = "0 0 * * * *";
const DEFAULT_TEST_TIMEOUT: Duration = Duration::from_secs(300);

pub(crate) struct Settings {
    pub(crate) rotation_schedule: String,
    /// How long the owning app has to answer a re-test before the rotation is abandoned.
    pub(crate) test_timeout: Duration,
    /// The guard for calls to user-supplied URLs (token endpoints).
    pub(crate) guard: netguard::Guard,
}

impl Settings {
    pub(crate) fn read(ctx: &AppContext) -> Result<Self, InvalidSetting> {
        Ok(Settings {
            rotation_schedule: ::settings::parsed(ctx, ROTATION_SCHEDULE_SETTING, |v| {
                functions_runtime::ncrontab::Schedule::parse(v)
                    .map(|_| v.to_owned())
                    .map_err(|e| format!("a six-field NCRONTAB schedule ({e})"))
            })?
            .unwrap_or_else(|| DEFAULT_ROTATION_SCHEDULE.to_owned()),
            test_timeout: ::settings::seconds(ctx, ROTATION_TEST_TIMEOUT_SETTING, 1..=86_400)?
                .unwrap_or(DEFAULT_TEST_TIMEOUT),
            guard: netguard::Guard::from_settings(ctx)?,
        })
    }
}

/// What the app's handlers share.
pub(crate) type Registry = api_kit::AppState<Settings>;
