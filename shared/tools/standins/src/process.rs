//! A stand-in server as a child process: started on a free port, ready once it accepts TCP
//! connections, and killed (with its whole process group) when its handle drops.

use std::fs::{self, File};
use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::os::unix::process::CommandExt as _;
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use anyhow::{Context as _, Result, bail};

/// How long a stand-in may take to accept connections. Azurite and cosmosdb-server start in
/// about a second; the margin is for a loaded 2-core machine running tests in parallel.
pub const DEFAULT_STARTUP_TIMEOUT: Duration = Duration::from_secs(60);

/// How often a spawn is tried again when the child exits before accepting: a free port can be
/// taken by another process between our probe and the child's bind.
const SPAWN_ATTEMPTS: usize = 3;

/// A port on 127.0.0.1 that nothing listened on a moment ago.
pub fn free_port() -> Result<u16> {
    let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
        .context("cannot bind 127.0.0.1:0 to find a free port")?;
    Ok(listener.local_addr()?.port())
}

/// A running child process listening on `127.0.0.1:port`.
#[derive(Debug)]
pub struct ChildProcess {
    name: String,
    child: Child,
    /// Our end of the child's stdin. Node stand-ins are started with [`EXIT_WITH_PARENT_JS`],
    /// which exits when this pipe closes: that also happens when the test process dies without
    /// running `Drop` (a timeout's SIGKILL), so no server outlives its test.
    stdin: Option<ChildStdin>,
    port: u16,
    log: PathBuf,
}

impl ChildProcess {
    /// Spawns `make(port)` on a free port, with stdout discarded and stderr in
    /// `<log_dir>/<name>.log`, and waits until the port accepts connections. Spawns again on
    /// another port if the child exits first (its port was taken), up to 3 times.
    ///
    /// The child leads a new process group, so that `Drop` kills whatever it started too.
    pub fn spawn(
        name: &str,
        log_dir: &Path,
        timeout: Duration,
        mut make: impl FnMut(u16) -> Command,
    ) -> Result<ChildProcess> {
        let log = log_dir.join(format!("{name}.log"));
        let mut last_error = None;
        for _ in 0..SPAWN_ATTEMPTS {
            let port = free_port()?;
            let stderr = File::create(&log)
                .with_context(|| format!("cannot create the log {}", log.display()))?;
            let mut command = make(port);
            command
                .stdin(Stdio::piped())
                .stdout(Stdio::null())
                .stderr(stderr)
                .process_group(0);
            let mut child = match command.spawn() {
                Ok(child) => child,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => bail!(
                    "cannot start {name}: `{}` is not on PATH (the stand-ins need Node 20 and \
                     npm)",
                    command.get_program().to_string_lossy()
                ),
                Err(e) => {
                    return Err(e).with_context(|| format!("cannot start {name}: {command:?}"));
                }
            };
            let stdin = child.stdin.take();
            let mut process = ChildProcess {
                name: name.to_owned(),
                child,
                stdin,
                port,
                log: log.clone(),
            };
            match process.wait_until_listening(timeout) {
                Ok(()) => return Ok(process),
                Err(Exited(e)) => last_error = Some(e),
                Err(TimedOut(e)) => return Err(e),
            }
        }
        Err(last_error.unwrap_or_else(|| anyhow::anyhow!("{name} did not start")))
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Where the child's stderr goes.
    pub fn log_path(&self) -> &Path {
        &self.log
    }

    /// The end of the child's stderr so far, for failure messages.
    pub fn log_tail(&self) -> String {
        match fs::read(&self.log) {
            Ok(bytes) => crate::npm::tail(&String::from_utf8_lossy(&bytes)),
            Err(e) => format!("(cannot read {}: {e})", self.log.display()),
        }
    }

    /// Whether the child is still running.
    pub fn is_running(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }

    fn wait_until_listening(&mut self, timeout: Duration) -> Result<(), StartFailure> {
        let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, self.port));
        let deadline = Instant::now() + timeout;
        loop {
            if let Ok(Some(status)) = self.child.try_wait() {
                return Err(Exited(anyhow::anyhow!(
                    "{} exited ({status}) before accepting connections on port {}; its stderr:\n{}",
                    self.name,
                    self.port,
                    self.log_tail()
                )));
            }
            if TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_ok() {
                return Ok(());
            }
            if Instant::now() >= deadline {
                return Err(TimedOut(anyhow::anyhow!(
                    "{} did not accept connections on port {} within {timeout:?}; its stderr:\n{}",
                    self.name,
                    self.port,
                    self.log_tail()
                )));
            }
            thread::sleep(Duration::from_millis(50));
        }
    }
}

enum StartFailure {
    Exited(anyhow::Error),
    TimedOut(anyhow::Error),
}
use StartFailure::{Exited, TimedOut};

impl Drop for ChildProcess {
    fn drop(&mut self) {
        drop(self.stdin.take());
        // The child leads its own group (`process_group(0)`), so the group id is its pid.
        let pid = rustix::process::Pid::from_child(&self.child);
        let _ = rustix::process::kill_process_group(pid, rustix::process::Signal::KILL);
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A Node preload (`node --require <file>`) that exits the process when its stdin closes,
/// that is when the test process that started it goes away, however it ended.
pub const EXIT_WITH_PARENT_JS: &str = "\
// Written by the standins test crate: exit when the test process that started this server
// goes away (its end of our stdin closes), even if it was killed without cleaning up.
process.stdin.on('end', () => process.exit(0));
process.stdin.on('error', () => process.exit(0));
process.stdin.resume();
";

/// Builds `node --require <dir>/exit-with-parent.js …` commands.
#[derive(Clone, Debug)]
pub struct Node {
    guard: PathBuf,
}

impl Node {
    /// Writes the [`EXIT_WITH_PARENT_JS`] preload into `dir`.
    pub fn prepare(dir: &Path) -> Result<Node> {
        let guard = dir.join("exit-with-parent.js");
        fs::write(&guard, EXIT_WITH_PARENT_JS)
            .with_context(|| format!("cannot write {}", guard.display()))?;
        Ok(Node { guard })
    }

    /// `node --require <preload>`; add the script and its arguments.
    pub fn command(&self) -> Command {
        let mut command = Command::new("node");
        command.arg("--require").arg(&self.guard);
        command
    }
}

/// Fails, with the child's stderr, when the child is no longer running: for checks after
/// start-up.
pub fn ensure_running(process: &mut ChildProcess) -> Result<()> {
    if process.is_running() {
        return Ok(());
    }
    bail!(
        "{} is no longer running; its stderr:\n{}",
        process.name,
        process.log_tail()
    )
}
