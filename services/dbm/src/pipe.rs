//! Moving the seed's stream from the backup's stdout to the unpacker's stdin.
//!
//! The stream passes through dbm only to be counted (progress, the rate in the seed's
//! summary). Read into a buffer and written out again, in tokio, it cost the 2-core
//! benchmark machine enough CPU, next to the backup and the unpacker, to run at 0.8 of
//! a plain `backup | unpack` (bench/README.md, dbm-migrate). `splice(2)` moves the
//! pages from one pipe to the other inside the kernel, and a blocking thread saves
//! the readiness round trips. No crate wraps this; nix's `splice` is the system call.

use std::fs::File;
use std::io;
use std::os::fd::AsFd;

use nix::errno::Errno;
use nix::fcntl::{FcntlArg, SpliceFFlags, fcntl, splice};

/// Bytes moved per `splice` and the pipes' size: Linux's limit for unprivileged
/// processes (`fs.pipe-max-size`), so that each side moves more per wakeup than the
/// default 64 KiB.
const CHUNK: usize = 1 << 20;

/// Moves everything from `from` to `to` (both pipes, in blocking mode) until `from`
/// ends, calling `progress` with the bytes moved so far after each move; returns the
/// total. `to` is closed when this returns, so the reader sees the end.
pub fn splice_all(from: File, to: File, mut progress: impl FnMut(u64)) -> io::Result<u64> {
    widen(&from);
    widen(&to);
    let mut total = 0u64;
    loop {
        let n = match splice(&from, None, &to, None, CHUNK, SpliceFFlags::SPLICE_F_MOVE) {
            Ok(0) => return Ok(total),
            Ok(n) => n,
            Err(Errno::EINTR) => continue,
            Err(e) => return Err(io::Error::from(e)),
        };
        total += n as u64;
        progress(total);
    }
}

/// Best effort: a pipe left at its size is only slower.
fn widen(pipe: &impl AsFd) {
    if let Err(e) = fcntl(pipe, FcntlArg::F_SETPIPE_SZ(CHUNK as i32)) {
        tracing::debug!("pipe left at its size ({e})");
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{Read, Write};

    #[test]
    fn moves_every_byte_in_order_and_closes_the_far_end() {
        let (from_r, mut from_w) = std::io::pipe().unwrap();
        let (to_r, to_w) = std::io::pipe().unwrap();
        let data: Vec<u8> = (0..5_000_000u32).map(|i| (i * 7 % 251) as u8).collect();
        let expected = data.clone();
        let writer = std::thread::spawn(move || from_w.write_all(&data));
        let reader = std::thread::spawn(move || {
            let mut got = Vec::new();
            let mut to_r = File::from(std::os::fd::OwnedFd::from(to_r));
            to_r.read_to_end(&mut got).map(|_| got)
        });
        let mut seen = Vec::new();
        let moved = splice_all(
            File::from(std::os::fd::OwnedFd::from(from_r)),
            File::from(std::os::fd::OwnedFd::from(to_w)),
            |n| seen.push(n),
        )
        .unwrap();
        writer.join().unwrap().unwrap();
        assert_eq!(moved, expected.len() as u64);
        assert!(seen.windows(2).all(|w| w[0] < w[1]), "progress only grows");
        assert_eq!(seen.last(), Some(&moved));
        assert!(reader.join().unwrap().unwrap() == expected);
    }

    #[test]
    fn a_reader_gone_is_an_error() {
        let (from_r, mut from_w) = std::io::pipe().unwrap();
        let (to_r, to_w) = std::io::pipe().unwrap();
        drop(to_r);
        from_w.write_all(b"some bytes").unwrap();
        drop(from_w);
        // The writing end of a pipe without readers: EPIPE (SIGPIPE is ignored in
        // Rust programs, the test harness included).
        let err = splice_all(
            File::from(std::os::fd::OwnedFd::from(from_r)),
            File::from(std::os::fd::OwnedFd::from(to_w)),
            |_| {},
        )
        .unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::BrokenPipe, "{err}");
    }
}
