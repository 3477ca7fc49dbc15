//! One module per help desk.

pub mod deputy;
pub mod fake;
pub mod zendesk;
