//! A server a benchmark starts: a private directory (`/tmp/bench-<name>-XXXXXX`) for its
//! config and log, a process inside a namespace that is killed (with its process group)
//! when the handle drops, and readiness meaning "every address it must serve is a
//! listening socket". A daemon that exits or never listens fails the start with the
//! tail of its log.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;

use anyhow::{Context, Result};
use tempfile::TempDir;
use testbed::{Netns, Process};

use crate::cmd;

/// How long a daemon may take to listen on every address.
const READY_TIMEOUT: Duration = Duration::from_secs(15);

/// A running daemon. Field order matters: the process is killed before the directory
/// it writes into is removed.
#[derive(Debug)]
pub struct Daemon {
    process: Process,
    /// Held only to be removed on drop.
    _dir: TempDir,
}

impl Daemon {
    /// A fresh private directory for daemon `name`, to write its config into before
    /// [`Daemon::start`].
    pub fn dir(name: &str) -> Result<TempDir> {
        tempfile::Builder::new()
            .prefix(&format!("bench-{name}-"))
            .tempdir()
            .with_context(|| format!("{name}: create a private directory"))
    }

    /// Starts `cmd` (made with [`Netns::command`], so it runs in `ns`) with its output in
    /// `<dir>/<name>.log`, and waits until each of `listen` is a listening TCP socket
    /// in `ns`.
    pub fn start(
        ns: &Netns,
        name: &str,
        dir: TempDir,
        cmd: Command,
        listen: &[SocketAddr],
    ) -> Result<Daemon> {
        let log = dir.path().join(format!("{name}.log"));
        let title = format!("{name} in {}", ns.name());
        let mut process = Process::spawn(&title, cmd, &log)?;
        process
            .wait_ready(READY_TIMEOUT, || {
                for addr in listen {
                    match cmd::listening(ns, *addr) {
                        Ok(true) => {}
                        Ok(false) => return Err(format!("not listening on {addr} yet")),
                        Err(e) => return Err(format!("{e:#}")),
                    }
                }
                Ok(())
            })
            .with_context(|| format!("start {name}"))?;
        Ok(Daemon { process, _dir: dir })
    }

    /// The last `lines` lines of its output, to show next to a failed measurement.
    pub fn log_tail(&self, lines: usize) -> String {
        self.process.log_tail(lines)
    }
}

/// Writes `contents` to `name` inside `dir`; returns the path.
pub fn write_file(dir: &TempDir, name: &str, contents: &str) -> Result<PathBuf> {
    let path = dir.path().join(name);
    std::fs::write(&path, contents).with_context(|| format!("write {}", path.display()))?;
    Ok(path)
}
