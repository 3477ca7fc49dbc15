//! End-to-end tests through the local runner with the test-only `probe` app.

mod crash;
mod delivery_crash;
mod entra;
mod runner;
mod support;
