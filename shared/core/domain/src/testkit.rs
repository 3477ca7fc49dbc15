//! Fixtures shared by the unit tests.

use chrono::{DateTime, TimeZone, Utc};

use crate::values::TenantId;

/// A fixed instant, `2025-01-01T00:00:00Z` plus `secs`.
pub(crate) fn at(secs: i64) -> DateTime<Utc> {
    Utc.timestamp_opt(1_735_689_600 + secs, 0)
        .single()
        .expect("valid fixed time")
}

/// A tenant.
pub(crate) fn tenant() -> TenantId {
    TenantId::parse("acme").expect("valid tenant")
}
