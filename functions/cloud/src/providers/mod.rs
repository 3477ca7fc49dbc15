//! The cloud app's providers.

pub mod fake;
