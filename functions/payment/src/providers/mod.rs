//! One module per payment processor.

pub mod bill;
pub mod fake;
pub mod stripe;
