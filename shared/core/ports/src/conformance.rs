//! One conformance suite per port. Every adapter's tests call the suite of its port, so the
//! embedded and the Azure adapters are held to the same contract.

pub mod blob;
pub mod bus;
pub mod document;
pub mod secrets;

/// A name unique to one run of a suite, so suites can share a backend.
pub fn unique(prefix: &str) -> String {
    format!("{prefix}{}", uuid::Uuid::new_v4().simple())
}
