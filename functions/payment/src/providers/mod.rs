//! One module per payment processor.

pub mod fake;
pub mod stripe;
