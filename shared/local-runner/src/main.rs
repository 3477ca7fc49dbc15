//! `integration-platform`: the local runner with every app of this build.

/// A faster allocator for a process that allocates per request (measured in
/// docs/BENCHMARKS.md).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// The apps this build hosts; each new app adds its registration here.
fn apps() -> Vec<app_context::AppRegistration> {
    vec![
        registry::registration(),
        webhook_gateway::registration(),
        sms::registration(),
        email::registration(),
    ]
}

fn main() -> anyhow::Result<()> {
    integration_platform::main_with(&apps())
}
