//! TCP relay: short exchanges are copied, bulk streams move with splice(2), socket ->
//! pipe -> socket inside the kernel, never entering user space. The sockets stay tokio
//! sockets; readiness comes from tokio and each splice is a non-blocking attempt
//! (`try_io`), so a relay costs no thread. tokio's `copy_bidirectional` would copy every
//! byte of a bulk stream through a user buffer.

use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::sync::atomic::{AtomicU8, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
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

/// Empty pipes kept for reuse. Creating a pipe and growing it to [`CHUNK`] costs
/// several syscalls and a page allocation, which every short connection would otherwise
/// pay twice; HAProxy pools its pipes for the same reason.
static POOL: Mutex<Vec<(OwnedFd, OwnedFd)>> = Mutex::new(Vec::new());
/// Most pipes kept: enough for bursts of short connections, bounded in memory
/// (each holds up to CHUNK bytes of kernel buffer only while in use).
const POOL_MAX: usize = 256;

/// A pipe between two splices; back into the pool on drop if it is empty.
struct Pipe {
    /// (read end, write end); `None` only while being returned to the pool.
    fds: Option<(OwnedFd, OwnedFd)>,
    /// Bytes spliced in and not yet out. Only an empty pipe may be reused: leftover
    /// bytes would leak into another connection.
    pending: usize,
}

impl Pipe {
    fn take() -> std::io::Result<Pipe> {
        let pooled = POOL.lock().unwrap_or_else(|e| e.into_inner()).pop();
        let fds = match pooled {
            Some(p) => p,
            None => {
                // Non-blocking: a full or empty pipe is an EAGAIN, never a stalled thread.
                let (r, w) = nix::unistd::pipe2(OFlag::O_NONBLOCK | OFlag::O_CLOEXEC)?;
                // Best effort: a larger pipe means fewer calls per byte; 64 KiB works too.
                let _ = nix::fcntl::fcntl(&w, nix::fcntl::FcntlArg::F_SETPIPE_SZ(CHUNK as i32));
                (r, w)
            }
        };
        Ok(Pipe {
            fds: Some(fds),
            pending: 0,
        })
    }

    fn read_end(&self) -> BorrowedFd<'_> {
        self.fds.as_ref().expect("pipe in use").0.as_fd()
    }

    fn write_end(&self) -> BorrowedFd<'_> {
        self.fds.as_ref().expect("pipe in use").1.as_fd()
    }
}

impl Drop for Pipe {
    fn drop(&mut self) {
        let Some(fds) = self.fds.take() else { return };
        if self.pending == 0 {
            let mut pool = POOL.lock().unwrap_or_else(|e| e.into_inner());
            if pool.len() < POOL_MAX {
                pool.push(fds);
            }
        }
    }
}

/// Bytes copied through user space before a stream counts as bulk.
const COPY_BUF: usize = 16 * 1024;

/// Moves bytes from `from` to `to` until `from` reaches EOF. Returns the bytes moved;
/// `bytes` counts them as they go. `ended` is shared by the two directions of one
/// connection: the first to reach EOF half-closes its peer so it sees the end; the
/// second does not, as both sockets are closed right after (which sends the FIN anyway,
/// one syscall fewer per connection).
///
/// Short exchanges (a request, a small response) are copied through a small buffer: for
/// a few hundred bytes a pipe costs more than the copy it saves. A read that fills the
/// buffer marks the stream as bulk, and from then on it is spliced, as HAProxy's
/// `splice-auto` does.
pub async fn one_way(
    from: &TcpStream,
    to: &TcpStream,
    activity: &Activity,
    bytes: &Counter,
    ended: &AtomicU8,
) -> std::io::Result<u64> {
    // Read into spare capacity: no zeroing of a fresh buffer per connection.
    let mut buf = Vec::with_capacity(COPY_BUF);
    let mut total = 0u64;
    loop {
        buf.clear();
        let n = when_ready(from, Interest::READABLE, || read_draining(from, &mut buf)).await?;
        if n == 0 {
            return end_of_stream(to, ended).map(|()| total);
        }
        let mut sent = 0;
        while sent < n {
            sent += when_ready(to, Interest::WRITABLE, || to.try_write(&buf[sent..n])).await?;
        }
        total += n as u64;
        bytes.inc_by(n as u64);
        activity.touch();
        if n >= COPY_BUF {
            drop(buf);
            return Ok(total + splice_rest(from, to, activity, bytes, ended).await?);
        }
    }
}

/// One read into `buf`'s spare capacity. A read shorter than the space offered means the
/// socket's receive queue is empty, so the socket's readiness is cleared as if the next
/// read had said EAGAIN: that saves the EAGAIN read. tokio only clears readiness if no
/// new event arrived since it was set, so data that comes in meanwhile is not missed.
fn read_draining(from: &TcpStream, buf: &mut Vec<u8>) -> std::io::Result<usize> {
    let mut got = 0;
    let result = from.try_io(Interest::READABLE, || {
        let spare = buf.spare_capacity_mut();
        let asked = spare.len();
        // SAFETY: recv writes at most `asked` bytes into the spare capacity it is given,
        // and only the bytes it reports are marked initialised below.
        let n = unsafe {
            libc::recv(
                std::os::fd::AsRawFd::as_raw_fd(from),
                spare.as_mut_ptr().cast(),
                asked,
                0,
            )
        };
        if n < 0 {
            return Err(std::io::Error::last_os_error());
        }
        got = n as usize;
        // SAFETY: recv initialised the first `got` bytes of the spare capacity.
        unsafe { buf.set_len(buf.len() + got) };
        if got > 0 && got < asked {
            return Err(std::io::ErrorKind::WouldBlock.into());
        }
        Ok(got)
    });
    match result {
        Err(e) if e.kind() == std::io::ErrorKind::WouldBlock && got > 0 => Ok(got),
        other => other,
    }
}

/// Waits until `stream` is ready for `interest` and runs `op`, again after each EAGAIN
/// (readiness can be stale; `op` clears it by reporting EAGAIN through tokio).
async fn when_ready<T>(
    stream: &TcpStream,
    interest: Interest,
    mut op: impl FnMut() -> std::io::Result<T>,
) -> std::io::Result<T> {
    loop {
        stream.ready(interest).await?;
        match op() {
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => continue,
            other => return other,
        }
    }
}

/// One direction reached EOF: the first of the two half-closes the peer, the second
/// leaves the FIN to the close that follows (see [`one_way`]).
fn end_of_stream(to: &TcpStream, ended: &AtomicU8) -> std::io::Result<()> {
    if ended.fetch_add(1, Ordering::AcqRel) == 0 {
        half_close(to)?;
    }
    Ok(())
}

/// Tells the peer that no more bytes come (a FIN), unless it is already gone.
fn half_close(to: &TcpStream) -> std::io::Result<()> {
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
    })
    .map_err(Into::into)
}

/// The bulk part of [`one_way`]: socket -> pipe -> socket until EOF.
async fn splice_rest(
    from: &TcpStream,
    to: &TcpStream,
    activity: &Activity,
    bytes: &Counter,
    ended: &AtomicU8,
) -> std::io::Result<u64> {
    let mut pipe = Pipe::take()?;
    let flags = SpliceFFlags::SPLICE_F_MOVE | SpliceFFlags::SPLICE_F_NONBLOCK;
    let mut total = 0u64;
    loop {
        let n = when_ready(from, Interest::READABLE, || {
            from.try_io(Interest::READABLE, || {
                splice(from.as_fd(), None, pipe.write_end(), None, CHUNK, flags).map_err(Into::into)
            })
        })
        .await?;
        if n == 0 {
            return end_of_stream(to, ended).map(|()| total);
        }
        pipe.pending = n;
        while pipe.pending > 0 {
            let pending = pipe.pending;
            pipe.pending -= when_ready(to, Interest::WRITABLE, || {
                to.try_io(Interest::WRITABLE, || {
                    splice(pipe.read_end(), None, to.as_fd(), None, pending, flags)
                        .map_err(Into::into)
                })
            })
            .await?;
        }
        total += n as u64;
        bytes.inc_by(n as u64);
        activity.touch();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pooled() -> usize {
        POOL.lock().unwrap().len()
    }

    // The only test in this binary that uses the pool, so the counts are exact.
    #[test]
    fn only_empty_pipes_return_to_the_pool() {
        POOL.lock().unwrap().clear();
        let mut dirty = Pipe::take().unwrap();
        dirty.pending = 5;
        drop(dirty);
        assert_eq!(
            pooled(),
            0,
            "a pipe with bytes in it is closed, never reused"
        );

        drop(Pipe::take().unwrap());
        assert_eq!(pooled(), 1, "an empty pipe goes back to the pool");
        let reused = Pipe::take().unwrap();
        assert_eq!(pooled(), 0, "and is taken from it again");
        drop(reused);
        assert_eq!(pooled(), 1);
    }
}
