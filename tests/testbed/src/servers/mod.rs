//! Real servers from Debian packages, started on a private port and data dir, waited for
//! until they answer, and stopped when their handle drops.
//!
//! Every server follows the same life cycle, implemented once here:
//!
//! 1. check that its binaries are installed ([`require::tool`](crate::require::tool)),
//!    so a missing package is a failure naming the package, not a confusing spawn error;
//! 2. make a private temporary directory (`/tmp/tb-<server>-XXXXXX`) for its config,
//!    data, pid file, sockets and log: a test server never touches `/etc`, `/var` or
//!    `/run`, and two tests can run the same server side by side;
//! 3. start it in the foreground as a [`Process`] (own process group, killed on drop)
//!    with its output in `<dir>/<server>.log`;
//! 4. wait until it answers *at protocol level* (a handshake, a PONG, a greeting, an HTTP
//!    200), not merely until its port accepts connections: many daemons bind early and
//!    load for seconds afterwards. If it exits or stays silent, the start fails with
//!    [`Error::NotReady`] carrying the tail of its log.
//!
//! Where a server runs is a [`Host`]: on loopback with a free port, on a fixed address,
//! or inside a [`Netns`] on a given address. Helpers that drive a server with its
//! reference client (`mariadb`, `ldapsearch`, `spamc`, `clamdscan`, `openssl s_client`)
//! run that client in the server's namespace, so they work wherever the server is.
//!
//! Dropping a server kills its process group first and then removes its directory; the
//! [`Server`] trait gives every server its address, pid, directory and log.
//!
//! Processes get SIGKILL when the *thread* that started them exits (see
//! [`Process::spawn`]): start a server on the thread that uses it, as tests do.

mod clamd;
mod mariadb;
mod nginx;
mod postfix;
mod s_server;
mod slapd;
mod smtp_sink;
mod spamd;
mod sshd;

pub use clamd::{Clamd, EICAR, EICAR_SIGNATURE, Scan};
pub use mariadb::{APP_USER, Control, DBM_USER, MariaDb, MariaDbOptions, REPL_USER};
pub use nginx::Nginx;
pub use postfix::{Postfix, PostfixOptions};
pub use s_server::{Certs, SServer};
pub use slapd::Slapd;
pub use smtp_sink::SmtpSink;
pub use spamd::{SpamScore, Spamd};
pub use sshd::Sshd;

use std::ffi::OsStr;
use std::io::{ErrorKind, Read, Write};
use std::net::{IpAddr, Ipv4Addr, SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use tempfile::TempDir;

use crate::error::{Error, IoContext, Result};
use crate::netns::Netns;
use crate::ports::free_port;
use crate::process::Process;

/// Where a server listens.
#[derive(Clone, Copy, Debug)]
pub enum Host<'a> {
    /// 127.0.0.1 on a free port, in the test's own network namespace.
    Loopback,
    /// A fixed address in the test's own namespace, e.g. a port a test holds on purpose.
    At(SocketAddr),
    /// Inside a namespace, on an address configured there (`127.0.0.1` inside a fresh
    /// namespace is its own loopback, private to it).
    Netns(&'a Netns, SocketAddr),
}

impl Host<'_> {
    fn netns_name(&self) -> Option<String> {
        match self {
            Host::Netns(ns, _) => Some(ns.name().to_owned()),
            Host::Loopback | Host::At(_) => None,
        }
    }

    /// Runs `f` on a thread inside the namespace (or directly on loopback), so sockets it
    /// opens reach the server's address.
    fn within<T: Send>(&self, f: impl FnOnce() -> Result<T, String> + Send) -> Result<T, String> {
        match self {
            Host::Netns(ns, _) => ns.enter(f).map_err(|e| e.to_string())?,
            Host::Loopback | Host::At(_) => f(),
        }
    }
}

/// The process and private directory every server has. Field order matters: the process
/// drops (is killed) before the directory it writes into is removed.
#[derive(Debug)]
pub struct Running {
    process: Process,
    dir: TempDir,
    addr: SocketAddr,
    netns: Option<String>,
}

/// What every started server offers; each server type adds its own helpers.
pub trait Server {
    /// The shared part of the server (implementors only hand it out).
    fn running(&self) -> &Running;
    /// Mutable access, e.g. to stop the server in the middle of a test.
    fn running_mut(&mut self) -> &mut Running;

    /// The address the server listens on.
    fn addr(&self) -> SocketAddr {
        self.running().addr
    }

    /// The server's private directory (config, data, pid file, log); removed on drop.
    fn dir(&self) -> &Path {
        self.running().dir.path()
    }

    fn pid(&self) -> u32 {
        self.running().process.pid()
    }

    /// The server's stdout and stderr.
    fn log_path(&self) -> &Path {
        self.running().process.log_path()
    }

    fn log_tail(&self, lines: usize) -> String {
        self.running().process.log_tail(lines)
    }

    /// The name of the namespace the server runs in, if any.
    fn netns(&self) -> Option<&str> {
        self.running().netns.as_deref()
    }

    /// The process, to stop or signal the server (a "dependency down" test) before the
    /// handle drops.
    fn process(&mut self) -> &mut Process {
        &mut self.running_mut().process
    }

    /// A command that runs `program` in the server's network namespace, e.g. a client
    /// that must reach the server's address.
    fn command(&self, program: impl AsRef<OsStr>) -> Command
    where
        Self: Sized,
    {
        command_in(self.netns(), program.as_ref())
    }
}

/// Implements [`Server`] for a struct with a `run: Running` field.
macro_rules! impl_server {
    ($($server:ty),*) => {$(
        impl $crate::servers::Server for $server {
            fn running(&self) -> &$crate::servers::Running {
                &self.run
            }
            fn running_mut(&mut self) -> &mut $crate::servers::Running {
                &mut self.run
            }
        }
    )*};
}
use impl_server;

fn command_in(netns: Option<&str>, program: &OsStr) -> Command {
    match netns {
        // By name, so that a server handle does not borrow its namespace.
        Some(name) => crate::netns::command_in(name, program),
        None => Command::new(program),
    }
}

/// A server being set up: its host, address and private directory, until it runs.
pub(crate) struct Setup<'a> {
    name: &'static str,
    host: Host<'a>,
    addr: SocketAddr,
    dir: TempDir,
}

impl<'a> Setup<'a> {
    pub(crate) fn new(name: &'static str, host: Host<'a>) -> Result<Setup<'a>> {
        let addr = match host {
            Host::Loopback => SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), free_port()?),
            Host::At(addr) | Host::Netns(_, addr) => addr,
        };
        let dir = tempfile::Builder::new()
            .prefix(&format!("tb-{name}-"))
            .tempdir()
            .context(|| format!("{name}: create private directory"))?;
        Ok(Setup {
            name,
            host,
            addr,
            dir,
        })
    }

    pub(crate) fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `rel` inside the private directory.
    pub(crate) fn path(&self, rel: &str) -> PathBuf {
        self.dir.path().join(rel)
    }

    /// Creates `rel` (and parents) inside the private directory.
    pub(crate) fn mkdir(&self, rel: &str) -> Result<PathBuf> {
        let path = self.path(rel);
        std::fs::create_dir_all(&path)
            .context(|| format!("{}: create directory {}", self.name, path.display()))?;
        Ok(path)
    }

    /// Writes a config (or data) file inside the private directory.
    pub(crate) fn write(&self, rel: &str, contents: impl AsRef<[u8]>) -> Result<PathBuf> {
        let path = self.path(rel);
        std::fs::write(&path, contents)
            .context(|| format!("{}: write {}", self.name, path.display()))?;
        Ok(path)
    }

    /// A command in the server's namespace (for readiness probes with a CLI client).
    pub(crate) fn command(&self, program: impl AsRef<OsStr>) -> Command {
        command_in(self.host.netns_name().as_deref(), program.as_ref())
    }

    /// Runs a preparation step (install-db, slapadd, openssl) to completion.
    pub(crate) fn prepare(&self, step: &str, cmd: &mut Command) -> Result<String> {
        checked(cmd, b"", PREPARE_TIMEOUT).map_err(|e| match e {
            Error::Command {
                command,
                status,
                stderr,
            } => Error::Command {
                command: format!("{} ({step}): {command}", self.name),
                status,
                stderr,
            },
            other => other,
        })
    }

    /// Sends `request` to the server from inside its namespace and reads the answer
    /// until `done` says it is complete or the server closes the connection.
    pub(crate) fn talk(
        &self,
        request: &[u8],
        done: impl Fn(&[u8]) -> bool + Send,
    ) -> Result<Vec<u8>, String> {
        let addr = self.addr;
        self.host.within(move || talk(addr, request, done))
    }

    /// Starts `program` in the foreground and waits up to `timeout` for `ready` to pass.
    pub(crate) fn launch<S: AsRef<OsStr>>(
        self,
        program: &Path,
        args: &[S],
        timeout: Duration,
        mut ready: impl FnMut(&Self) -> Result<(), String>,
    ) -> Result<Running> {
        let mut cmd = self.command(program);
        cmd.args(args);
        let log = self.path(&format!("{}.log", self.name));
        let title = match &self.host {
            Host::Netns(ns, _) => format!("{} on {} in {}", self.name, self.addr, ns.name()),
            Host::Loopback | Host::At(_) => format!("{} on {}", self.name, self.addr),
        };
        let mut process = Process::spawn(&title, cmd, &log)?;
        process.wait_ready(timeout, || ready(&self))?;
        Ok(Running {
            process,
            dir: self.dir,
            addr: self.addr,
            netns: self.host.netns_name(),
        })
    }
}

/// Preparation steps (key generation, install-db) are quick but must never hang a test.
const PREPARE_TIMEOUT: Duration = Duration::from_secs(120);
/// Clients a helper runs against a started server.
pub(crate) const CLIENT_TIMEOUT: Duration = Duration::from_secs(60);
/// One readiness probe: a server that accepted the connection but says nothing within
/// this is not ready yet (or is not the server we started; the port may be taken).
const PROBE_TIMEOUT: Duration = Duration::from_secs(2);

fn talk(addr: SocketAddr, request: &[u8], done: impl Fn(&[u8]) -> bool) -> Result<Vec<u8>, String> {
    let mut stream = TcpStream::connect_timeout(&addr, PROBE_TIMEOUT)
        .map_err(|e| format!("connect to {addr}: {e}"))?;
    stream
        .set_read_timeout(Some(PROBE_TIMEOUT))
        .and_then(|()| stream.set_write_timeout(Some(PROBE_TIMEOUT)))
        .map_err(|e| format!("set timeouts on {addr}: {e}"))?;
    stream
        .write_all(request)
        .map_err(|e| format!("send to {addr}: {e}"))?;
    let mut answer = Vec::new();
    let mut buf = [0u8; 4096];
    while !done(&answer) {
        match stream.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => answer.extend_from_slice(&buf[..n]),
            Err(e) => {
                // A read timeout shows as WouldBlock or TimedOut depending on the platform.
                let why = match e.kind() {
                    ErrorKind::WouldBlock | ErrorKind::TimedOut => {
                        format!("no answer within {PROBE_TIMEOUT:?}")
                    }
                    _ => e.to_string(),
                };
                return Err(format!(
                    "read from {addr}: {why} (got so far: {:?})",
                    String::from_utf8_lossy(&answer)
                ));
            }
        }
    }
    Ok(answer)
}

/// What a finished command printed.
pub(crate) struct Output {
    pub(crate) status: ExitStatus,
    pub(crate) stdout: String,
    pub(crate) stderr: String,
}

/// Runs `cmd` with `stdin`, killing it after `timeout` so a client stuck on a
/// half-working server fails the test instead of hanging it.
pub(crate) fn run(cmd: &mut Command, stdin: &[u8], timeout: Duration) -> Result<Output> {
    let shown = shown(cmd);
    let mut child = cmd
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .context(|| format!("run {shown}"))?;
    let (mut input, mut out, mut err) =
        (child.stdin.take(), child.stdout.take(), child.stderr.take());
    std::thread::scope(|s| {
        // A client may stop reading its input early; a broken pipe is its business.
        s.spawn(move || input.as_mut().map(|i| i.write_all(stdin)));
        let out = s.spawn(move || read_all(out.as_mut()));
        let err = s.spawn(move || read_all(err.as_mut()));
        let deadline = Instant::now() + timeout;
        let status = loop {
            match child.try_wait().context(|| format!("wait for {shown}"))? {
                Some(status) => break status,
                None if Instant::now() >= deadline => {
                    let _ = child.kill();
                    let _ = child.wait();
                    return Err(Error::Command {
                        command: shown.clone(),
                        status: format!("killed after {timeout:?}"),
                        stderr: String::new(),
                    });
                }
                None => std::thread::sleep(Duration::from_millis(10)),
            }
        };
        Ok(Output {
            status,
            stdout: out.join().unwrap_or_default(),
            stderr: err.join().unwrap_or_default(),
        })
    })
}

/// Like [`run`], but a non-zero exit is an error carrying stderr; returns stdout.
pub(crate) fn checked(cmd: &mut Command, stdin: &[u8], timeout: Duration) -> Result<String> {
    let out = run(cmd, stdin, timeout)?;
    if out.status.success() {
        Ok(out.stdout)
    } else {
        Err(command_failed(cmd, &out))
    }
}

pub(crate) fn command_failed(cmd: &Command, out: &Output) -> Error {
    let text = if out.stderr.trim().is_empty() {
        &out.stdout
    } else {
        &out.stderr
    };
    Error::Command {
        command: shown(cmd),
        status: out.status.to_string(),
        stderr: text.trim().to_owned(),
    }
}

fn read_all(pipe: Option<&mut impl Read>) -> String {
    let mut bytes = Vec::new();
    if let Some(pipe) = pipe {
        let _ = pipe.read_to_end(&mut bytes);
    }
    String::from_utf8_lossy(&bytes).into_owned()
}

fn shown(cmd: &Command) -> String {
    format!("{cmd:?}").replace('"', "")
}
