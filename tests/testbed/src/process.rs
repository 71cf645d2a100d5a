//! Child processes owned by a test: started in their own process group with output to a
//! log file, checked for readiness, and killed when the handle drops, including when the
//! test panics.

use std::fs::File;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use nix::sys::signal::{Signal, killpg};
use nix::unistd::Pid;

use crate::error::{Error, IoContext, Result};

/// A running child process, killed (with its whole process group) on drop.
#[derive(Debug)]
pub struct Process {
    name: String,
    child: Child,
    log: PathBuf,
}

impl Process {
    /// Starts `cmd` with stdout and stderr appended to `log`. The child gets its own
    /// process group (so helpers it forks die with it) and SIGKILL when the thread that
    /// started it dies, so even a test killed by a signal leaves no daemon behind.
    pub fn spawn(name: &str, mut cmd: Command, log: &Path) -> Result<Process> {
        let out = File::options()
            .create(true)
            .append(true)
            .open(log)
            .context(|| format!("open log file {} for {name}", log.display()))?;
        let err = out
            .try_clone()
            .context(|| format!("duplicate log file handle for {name}"))?;
        cmd.stdin(Stdio::null())
            .stdout(out)
            .stderr(err)
            .process_group(0);
        // SAFETY: prctl is async-signal-safe and touches no memory of the parent.
        unsafe {
            cmd.pre_exec(|| {
                if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL) != 0 {
                    return Err(std::io::Error::last_os_error());
                }
                Ok(())
            });
        }
        let child = cmd
            .spawn()
            .context(|| format!("start {name}: {:?}", cmd.get_program()))?;
        Ok(Process {
            name: name.to_owned(),
            child,
            log: log.to_owned(),
        })
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    pub fn log_path(&self) -> &Path {
        &self.log
    }

    /// The last `lines` lines of the process's log.
    pub fn log_tail(&self, lines: usize) -> String {
        let text = std::fs::read_to_string(&self.log).unwrap_or_default();
        let all: Vec<&str> = text.lines().collect();
        all[all.len().saturating_sub(lines)..].join("\n")
    }

    /// Whether the process is still running; reaps it if it exited.
    pub fn is_running(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }

    /// Polls `check` every 100 ms until it returns Ok, the process exits, or `timeout`
    /// passes. The error carries the last check result and the tail of the log, which is
    /// what one needs to see why a daemon did not come up.
    pub fn wait_ready<F>(&mut self, timeout: Duration, mut check: F) -> Result<()>
    where
        F: FnMut() -> Result<(), String>,
    {
        let deadline = Instant::now() + timeout;
        loop {
            let reason = match check() {
                Ok(()) => return Ok(()),
                Err(reason) => reason,
            };
            if let Ok(Some(status)) = self.child.try_wait() {
                return Err(self.not_ready(format!("exited with {status} (last check: {reason})")));
            }
            if Instant::now() >= deadline {
                return Err(self.not_ready(format!("no answer within {timeout:?}: {reason}")));
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    fn not_ready(&self, reason: String) -> Error {
        Error::NotReady {
            server: format!("{} (pid {})", self.name, self.child.id()),
            reason,
            log: self.log.display().to_string(),
            tail: self.log_tail(20),
        }
    }

    /// Sends `signal` to the process (not its group), e.g. SIGHUP for a reload test.
    pub fn signal(&self, signal: Signal) -> Result<()> {
        nix::sys::signal::kill(Pid::from_raw(self.child.id() as i32), signal).map_err(|e| {
            Error::Io {
                what: format!("send {signal} to {}", self.name),
                source: e.into(),
            }
        })
    }

    /// Waits up to `timeout` for the process to exit by itself and returns its status.
    pub fn wait_exit(&mut self, timeout: Duration) -> Result<std::process::ExitStatus> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(status) = self
                .child
                .try_wait()
                .context(|| format!("wait for {}", self.name))?
            {
                return Ok(status);
            }
            if Instant::now() >= deadline {
                return Err(self.not_ready(format!("did not exit within {timeout:?}")));
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Stops the process group: SIGTERM, up to 5 s grace, then SIGKILL.
    pub fn stop(&mut self) {
        let group = Pid::from_raw(self.child.id() as i32);
        if self.is_running() {
            let _ = killpg(group, Signal::SIGTERM);
            let deadline = Instant::now() + Duration::from_secs(5);
            while self.is_running() && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(20));
            }
        }
        // The leader may be gone while helpers it forked still run in the group.
        let _ = killpg(group, Signal::SIGKILL);
        let _ = self.child.wait();
    }
}

impl Drop for Process {
    fn drop(&mut self) {
        self.stop();
    }
}
