//! The local runner hosting the test-only `probe` app with the registry, the webhook
//! gateway and vendor apps, for end-to-end tests that need a real process (crash safety).

fn main() -> anyhow::Result<()> {
    integration_platform::main_with(&[
        e2e::registration(),
        registry::registration(),
        webhook_gateway::registration(),
        sms::registration(),
        email::registration(),
        openai::registration(),
        cloud::registration(),
    ])
}
