//! The gateway's settings, read and checked once when the app is built (shared with its
//! routes as `api_kit::AppState`).

use std::time::Duration;

use app_context::{AppContext, InvalidSetting};

use crate::outbound::pacing::{DEFAULT_OPEN_FOR, DEFAULT_THRESHOLD};
use crate::outbound::retry::Schedule;
use crate::outbound::{DISABLE_AFTER_SETTING, SCHEDULE_SETTING, TIMEOUT_SETTING};

/// Setting: failures in a row that open an endpoint's breaker.
pub const BREAKER_THRESHOLD_SETTING: &str = "WEBHOOK_BREAKER_THRESHOLD";
/// Setting: how long an open breaker holds deliveries back, in seconds.
pub const BREAKER_OPEN_SETTING: &str = "WEBHOOK_BREAKER_OPEN_SECONDS";

/// The default request timeout of one attempt.
const DEFAULT_TIMEOUT: Duration = Duration::from_secs(15);
/// The default period of continuous failure after which an endpoint is disabled.
const DEFAULT_DISABLE_AFTER: Duration = Duration::from_secs(5 * 24 * 3600);

pub(crate) struct Settings {
    /// The gateway's public address (`WEBHOOK_GATEWAY_URL`), without a trailing `/`: the
    /// base of sources' URLs and the URL vendors such as Twilio sign. Empty when unset.
    pub(crate) public_url: String,
    /// The guard for calls to endpoints (SSRF), with the exceptions the settings name.
    pub(crate) guard: netguard::Guard,
    pub(crate) delivery: Delivery,
}

/// How outbound deliveries are attempted.
pub(crate) struct Delivery {
    pub(crate) timeout: Duration,
    pub(crate) schedule: Schedule,
    pub(crate) disable_after: Duration,
    pub(crate) breaker_threshold: u32,
    pub(crate) breaker_open: Duration,
}

impl Settings {
    pub(crate) fn read(ctx: &AppContext) -> Result<Self, InvalidSetting> {
        const DAY: u64 = 86_400;
        // Sources keep their secrets through the registry.
        api_kit::custody::check_registry_url(ctx)?;
        // Read where it is used (`outbound::retention`); checked here, once.
        ::settings::integer(ctx, app_context::PAYLOAD_RETENTION_SETTING, 1u32..=3650)?;
        Ok(Settings {
            public_url: ::settings::base_url(ctx, &app_context::url_setting(crate::SLUG))?
                .unwrap_or_default(),
            guard: netguard::Guard::from_settings(ctx)?,
            delivery: Delivery {
                timeout: ::settings::seconds(ctx, TIMEOUT_SETTING, 1..=300)?
                    .unwrap_or(DEFAULT_TIMEOUT),
                schedule: ::settings::parsed(ctx, SCHEDULE_SETTING, Schedule::parse)?
                    .unwrap_or_default(),
                disable_after: ::settings::seconds(ctx, DISABLE_AFTER_SETTING, 0..=365 * DAY)?
                    .unwrap_or(DEFAULT_DISABLE_AFTER),
                breaker_threshold: ::settings::integer(ctx, BREAKER_THRESHOLD_SETTING, 1..=1000)?
                    .unwrap_or(DEFAULT_THRESHOLD),
                breaker_open: ::settings::seconds(ctx, BREAKER_OPEN_SETTING, 0..=DAY)?
                    .unwrap_or(DEFAULT_OPEN_FOR),
            },
        })
    }
}
