//! The `registry` custom handler: the process the Functions host starts for this app
//! (`cargo xtask package` ships it under the name host.json gives it).

fn main() -> std::process::ExitCode {
    app_host::main(registry::registration())
}
