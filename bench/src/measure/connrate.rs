//! Connections per second: concurrent workers, each repeating "connect, send one HTTP
//! request with `Connection: close`, read the reply to the end, close" until the time is
//! up. A connection counts when the reply is a complete 200 with the expected body; every
//! other outcome is a failure, counted by kind with the first error of each kind kept,
//! so a forwarder that drops connections shows it instead of looking fast.
//!
//! The server is nginx answering a fixed 3-byte body from its config (no file read, no
//! access log): its own cost per connection is small and the same for every forwarder
//! put in front of it. The server closes first, so the client's ports never sit in
//! TIME_WAIT and a long run does not run out of them.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use testbed::Netns;
use testbed::servers::{Host, Nginx};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::time::timeout;

/// The port the HTTP server listens on.
pub const PORT: u16 = 8080;
const PATH: &str = "/bench";
const BODY: &[u8] = b"ok\n";
/// A connection not established within this counts as failed.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(3);
/// A reply not complete within this (after connecting) counts as failed.
const REPLY_TIMEOUT: Duration = Duration::from_secs(3);

/// Starts the HTTP server in `ns` on `addr`.
pub fn server(ns: &Netns, addr: SocketAddr) -> Result<Nginx> {
    let directives =
        format!("        access_log off;\n        location = {PATH} {{ return 200 \"ok\\n\"; }}\n");
    Nginx::start_with(Host::Netns(ns, addr), &directives)
        .with_context(|| format!("start the HTTP server for connection rates on {addr}"))
}

/// What the client saw.
#[derive(Debug, Clone, Default)]
pub struct ConnRate {
    /// Connections that got a complete, correct reply.
    pub ok: u64,
    /// From the start until the last worker finished its last connection.
    pub elapsed: Duration,
    /// Failed connections by kind (`connect`, `reply timeout`, ...).
    pub failures: BTreeMap<&'static str, Failures>,
}

/// Failures of one kind.
#[derive(Debug, Clone, Default)]
pub struct Failures {
    pub count: u64,
    /// The first error of this kind, as the system reported it.
    pub first: String,
}

impl ConnRate {
    /// Successful connections per second.
    pub fn per_second(&self) -> f64 {
        let secs = self.elapsed.as_secs_f64();
        if secs > 0.0 {
            self.ok as f64 / secs
        } else {
            0.0
        }
    }

    pub fn failed(&self) -> u64 {
        self.failures.values().map(|f| f.count).sum()
    }

    /// `connect: 3 (first: Connection refused); ...`, empty when nothing failed.
    pub fn failure_summary(&self) -> String {
        let mut text = String::new();
        for (kind, f) in &self.failures {
            if !text.is_empty() {
                text.push_str("; ");
            }
            let _ = write!(text, "{kind}: {} (first: {})", f.count, f.first);
        }
        text
    }

    fn fail(&mut self, kind: &'static str, detail: impl FnOnce() -> String) {
        let entry = self.failures.entry(kind).or_default();
        if entry.count == 0 {
            entry.first = detail();
        }
        entry.count += 1;
    }

    fn merge(&mut self, other: ConnRate) {
        self.ok += other.ok;
        for (kind, f) in other.failures {
            let entry = self.failures.entry(kind).or_default();
            if entry.count == 0 {
                entry.first = f.first;
            }
            entry.count += f.count;
        }
    }
}

/// Threads of the client's runtime: one per CPU, so that on a bigger machine the
/// forwarder (with its fixed number of workers), not the client, sets the pace.
pub fn client_threads() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}

/// Runs the client inside `ns` against `target` with `concurrency` workers for
/// `duration`.
pub fn measure(
    ns: &Netns,
    target: SocketAddr,
    duration: Duration,
    concurrency: usize,
) -> Result<ConnRate> {
    // The runtime is built on a thread inside the namespace; its worker threads are
    // spawned from there and so live in the namespace too.
    ns.enter(move || {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(client_threads())
            .enable_all()
            .build()
            .context("start the client's async runtime")?;
        Ok(runtime.block_on(run(target, duration, concurrency)))
    })
    .with_context(|| format!("run the connection-rate client in {}", ns.name()))?
}

async fn run(target: SocketAddr, duration: Duration, concurrency: usize) -> ConnRate {
    let request: Arc<[u8]> =
        format!("GET {PATH} HTTP/1.1\r\nHost: bench\r\nConnection: close\r\n\r\n")
            .into_bytes()
            .into();
    let start = Instant::now();
    let deadline = start + duration;
    let workers: Vec<_> = (0..concurrency)
        .map(|_| tokio::spawn(worker(target, request.clone(), deadline)))
        .collect();
    let mut total = ConnRate::default();
    for w in workers {
        match w.await {
            Ok(tally) => total.merge(tally),
            Err(e) => total.fail("client task", || e.to_string()),
        }
    }
    total.elapsed = start.elapsed();
    total
}

async fn worker(target: SocketAddr, request: Arc<[u8]>, deadline: Instant) -> ConnRate {
    let mut tally = ConnRate::default();
    let mut reply = Vec::with_capacity(512);
    while Instant::now() < deadline {
        match once(target, &request, &mut reply).await {
            Ok(()) => tally.ok += 1,
            Err((kind, detail)) => tally.fail(kind, || detail),
        }
    }
    tally
}

/// One connection; on failure its kind and what went wrong.
async fn once(
    target: SocketAddr,
    request: &[u8],
    reply: &mut Vec<u8>,
) -> Result<(), (&'static str, String)> {
    reply.clear();
    let mut stream = match timeout(CONNECT_TIMEOUT, TcpStream::connect(target)).await {
        Err(_) => {
            return Err((
                "connect timeout",
                format!("not connected within {CONNECT_TIMEOUT:?}"),
            ));
        }
        Ok(Err(e)) => return Err(("connect", e.to_string())),
        Ok(Ok(stream)) => stream,
    };
    let exchange = async {
        stream
            .write_all(request)
            .await
            .map_err(|e| ("send", e.to_string()))?;
        stream
            .read_to_end(reply)
            .await
            .map_err(|e| ("read", e.to_string()))
    };
    match timeout(REPLY_TIMEOUT, exchange).await {
        Err(_) => {
            return Err((
                "reply timeout",
                format!("no complete reply within {REPLY_TIMEOUT:?}"),
            ));
        }
        Ok(result) => result?,
    };
    if reply.starts_with(b"HTTP/1.1 200 ") && reply.ends_with(BODY) {
        Ok(())
    } else {
        let shown = String::from_utf8_lossy(reply);
        Err((
            "bad reply",
            format!("{:?}", shown.lines().next().unwrap_or("")),
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn failures_are_counted_by_kind_keeping_the_first_error() {
        let mut a = ConnRate {
            ok: 5,
            ..ConnRate::default()
        };
        a.fail("connect", || "Connection refused".into());
        a.fail("connect", || "Connection reset".into());
        let mut b = ConnRate {
            ok: 2,
            ..ConnRate::default()
        };
        b.fail("read", || "Broken pipe".into());
        a.merge(b);
        assert_eq!(a.ok, 7);
        assert_eq!(a.failed(), 3);
        assert_eq!(
            a.failure_summary(),
            "connect: 2 (first: Connection refused); read: 1 (first: Broken pipe)"
        );
    }

    #[test]
    fn rate_is_successes_per_second() {
        let r = ConnRate {
            ok: 500,
            elapsed: Duration::from_millis(250),
            ..ConnRate::default()
        };
        assert_eq!(r.per_second(), 2000.0);
    }
}
