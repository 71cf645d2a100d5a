//! Zero-copy TCP relay with splice(2): bytes move socket -> pipe -> socket inside the
//! kernel and never enter user space. The sockets stay tokio sockets; readiness comes
//! from tokio and each splice is a non-blocking attempt (`try_io`), so a relay costs no
//! thread. tokio's `copy_bidirectional` would copy every byte through a user buffer.

use std::os::fd::{AsFd, OwnedFd};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use nix::fcntl::{OFlag, SpliceFFlags, splice};
use prometheus_client::metrics::counter::Counter;
use tokio::io::Interest;
use tokio::net::TcpStream;

/// Bytes handed to one splice call; the pipe is resized to hold this much.
const CHUNK: usize = 1 << 18;

/// Last time bytes moved in either direction, for the idle timeout.
#[derive(Debug)]
pub struct Activity {
    start: Instant,
    last_ms: AtomicU64,
}

impl Activity {
    pub fn new() -> Arc<Activity> {
        Arc::new(Activity {
            start: Instant::now(),
            last_ms: AtomicU64::new(0),
        })
    }

    pub fn touch(&self) {
        self.last_ms
            .store(self.start.elapsed().as_millis() as u64, Ordering::Relaxed);
    }

    /// Time since bytes last moved.
    pub fn idle(&self) -> std::time::Duration {
        let last = std::time::Duration::from_millis(self.last_ms.load(Ordering::Relaxed));
        self.start.elapsed().saturating_sub(last)
    }
}

/// A pipe sized for [`CHUNK`]; non-blocking so a full or empty pipe is an EAGAIN, not a
/// stalled runtime thread.
fn pipe() -> std::io::Result<(OwnedFd, OwnedFd)> {
    let (r, w) = nix::unistd::pipe2(OFlag::O_NONBLOCK | OFlag::O_CLOEXEC)?;
    // Best effort: a larger pipe means fewer calls per byte; the default (64 KiB) works.
    let _ = nix::fcntl::fcntl(&w, nix::fcntl::FcntlArg::F_SETPIPE_SZ(CHUNK as i32));
    Ok((r, w))
}

/// Moves bytes from `from` to `to` until `from` reaches EOF, then half-closes `to` so
/// the peer sees the end too. Returns the bytes moved; `bytes` counts them as they go.
pub async fn one_way(
    from: &TcpStream,
    to: &TcpStream,
    activity: &Activity,
    bytes: &Counter,
) -> std::io::Result<u64> {
    let (pipe_r, pipe_w) = pipe()?;
    let flags = SpliceFFlags::SPLICE_F_MOVE | SpliceFFlags::SPLICE_F_NONBLOCK;
    let mut total = 0u64;
    loop {
        let n = loop {
            from.readable().await?;
            match from.try_io(Interest::READABLE, || {
                splice(from.as_fd(), None, pipe_w.as_fd(), None, CHUNK, flags).map_err(Into::into)
            }) {
                Ok(n) => break n,
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => continue,
                Err(e) => return Err(e),
            }
        };
        if n == 0 {
            nix::sys::socket::shutdown(
                std::os::fd::AsRawFd::as_raw_fd(to),
                nix::sys::socket::Shutdown::Write,
            )
            .or_else(|e| {
                if e == nix::errno::Errno::ENOTCONN {
                    Ok(())
                } else {
                    Err(e)
                }
            })?;
            return Ok(total);
        }
        let mut left = n;
        while left > 0 {
            to.writable().await?;
            match to.try_io(Interest::WRITABLE, || {
                splice(pipe_r.as_fd(), None, to.as_fd(), None, left, flags).map_err(Into::into)
            }) {
                Ok(m) => left -= m,
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => continue,
                Err(e) => return Err(e),
            }
        }
        total += n as u64;
        bytes.inc_by(n as u64);
        activity.touch();
    }
}
