//! The `webhook-gateway` custom handler: the process the Functions host starts for this app.

fn main() -> std::process::ExitCode {
    app_host::main(webhook_gateway::registration(), platform_apps::catalogue())
}
