//! `integration-platform`: the local runner with every app of this build.

/// The apps this build hosts. Each app's issue adds its registration here.
const APPS: &[app_context::AppRegistration] = &[];

fn main() -> anyhow::Result<()> {
    integration_platform::main_with(APPS)
}
