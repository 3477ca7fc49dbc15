//! End-to-end tests through the local runner with the test-only `probe` app.

mod azure_devops;
mod cloud;
mod crash;
mod crm;
mod delivery_crash;
mod direct_crash;
mod email;
mod entra;
mod faults;
mod github;
mod help_desk;
mod models;
mod openapi;
mod ordered_webhooks;
mod payment;
mod private_endpoints;
mod quotas;
mod run_crash;
mod runner;
mod settings;
mod sms;
mod soak;
mod standins;
mod streams;
mod support;
