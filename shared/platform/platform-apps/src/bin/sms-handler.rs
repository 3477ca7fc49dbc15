//! The `sms` custom handler: the process the Functions host starts for this app.

fn main() -> std::process::ExitCode {
    app_host::main(sms::registration(), platform_apps::catalogue())
}
