//! `integration-platform`: the local runner with every app of this build.

/// A faster allocator for a process that allocates per request (measured in
/// docs/BENCHMARKS.md).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> anyhow::Result<()> {
    integration_platform::main_with(&platform_apps::all())
}
