//! The custom handler: the process the Functions host starts for an app. One binary serves
//! every app of the list; each package's host.json names its app as the first argument.

fn main() -> std::process::ExitCode {
    app_host::main_of(platform_apps::all(), platform_apps::catalogue())
}
