//! The cloud app's providers.

pub mod arm;
pub mod fake;
