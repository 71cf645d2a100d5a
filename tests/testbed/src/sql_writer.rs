//! A client that inserts into a MySQL/MariaDB table without pause, as an application
//! would during a migration, and keeps the books a migration test needs: which inserts
//! the server acknowledged (each must survive), how many failed, and the longest time
//! without an acknowledged write (the write-unavailability window a client saw).
//!
//! Where it writes is the `host:port` in a *target file*, re-read after every failed
//! insert: the migration's cutover hook rewrites the file, as a DNS or proxy switch
//! would redirect a real application. Each insert gets a fresh id, also after a
//! failure, since a failed commit may still have happened; only acknowledged ids are
//! promised.
//!
//! It runs on its own thread with its own runtime, so the test's or benchmark's
//! thread stays free to drive the migration.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use mysql_async::prelude::Queryable;
use mysql_async::{Conn, OptsBuilder};

/// What a [`SqlWriter`] saw.
#[derive(Debug, Clone, Default)]
pub struct WriterReport {
    /// Ids whose insert the server acknowledged, in order.
    pub acked: Vec<u64>,
    /// Inserts (or connection attempts) that failed.
    pub failures: u64,
    /// The longest time between two acknowledged inserts.
    pub longest_gap: Duration,
    /// Every time without an acknowledged insert of at least [`STALL`], in order: when
    /// it began (the last acknowledgement before it) and how long it lasted. A
    /// benchmark picks the one around the cutover; others come from the backup's locks.
    pub stalls: Vec<Stall>,
    /// The targets written to, in order (`host:port`).
    pub targets: Vec<String>,
    /// The first few distinct errors, for the test's message.
    pub errors: Vec<String>,
    /// How long the writer ran.
    pub elapsed: Duration,
}

/// The shortest gap between acknowledged inserts that [`WriterReport::stalls`] lists.
pub const STALL: Duration = Duration::from_millis(50);

/// A time without acknowledged inserts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Stall {
    pub began: std::time::SystemTime,
    pub length: Duration,
}

impl WriterReport {
    /// The stall that was going on at `at` (e.g. when the freeze began), if any.
    pub fn stall_at(&self, at: std::time::SystemTime) -> Option<Stall> {
        self.stalls
            .iter()
            .copied()
            .find(|s| s.began <= at && at <= s.began + s.length)
    }

    /// Acknowledged inserts per second.
    pub fn rate(&self) -> f64 {
        self.acked.len() as f64 / self.elapsed.as_secs_f64().max(1e-9)
    }
}

/// How the writer logs in, and where.
#[derive(Debug, Clone)]
pub struct WriterOptions {
    pub user: String,
    pub password: String,
    /// `schema.table` with an integer primary key `id` and a `DATETIME(6)` column `at`.
    pub table: String,
    /// The file holding `host:port`.
    pub target_file: PathBuf,
    /// A pause between inserts (none: as fast as the server acknowledges).
    pub pause: Duration,
}

/// A running writer; [`SqlWriter::stop`] ends it and returns its report.
pub struct SqlWriter {
    stop: Arc<AtomicBool>,
    thread: JoinHandle<WriterReport>,
}

/// Writes `host:port` into `file` atomically (a rename), so a writer never reads half.
pub fn set_target(file: &Path, host: &str, port: u16) -> std::io::Result<()> {
    let tmp = file.with_extension("tmp");
    std::fs::write(&tmp, format!("{host}:{port}\n"))?;
    std::fs::rename(&tmp, file)
}

fn read_target(file: &Path) -> Option<(String, u16)> {
    let text = std::fs::read_to_string(file).ok()?;
    let (host, port) = text.trim().rsplit_once(':')?;
    Some((host.to_owned(), port.parse().ok()?))
}

impl SqlWriter {
    pub fn start(options: WriterOptions) -> SqlWriter {
        let stop = Arc::new(AtomicBool::new(false));
        let flag = stop.clone();
        let thread = std::thread::spawn(move || {
            tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("a runtime for the writer")
                .block_on(write_until(options, flag))
        });
        SqlWriter { stop, thread }
    }

    /// Stops after the insert in flight and returns what happened.
    pub fn stop(self) -> WriterReport {
        self.stop.store(true, Ordering::SeqCst);
        self.thread.join().expect("the writer thread panicked")
    }
}

async fn connect(options: &WriterOptions) -> Result<(Conn, String), String> {
    let (host, port) = read_target(&options.target_file).ok_or_else(|| {
        format!(
            "no host:port in the target file {}",
            options.target_file.display()
        )
    })?;
    let opts = OptsBuilder::default()
        .ip_or_hostname(host.clone())
        .tcp_port(port)
        .user(Some(options.user.clone()))
        .pass(Some(options.password.clone()))
        .prefer_socket(false);
    let conn = tokio::time::timeout(Duration::from_secs(2), Conn::new(opts))
        .await
        .map_err(|_| format!("{host}:{port}: connect timed out"))?
        .map_err(|e| format!("{host}:{port}: {e}"))?;
    Ok((conn, format!("{host}:{port}")))
}

async fn write_until(options: WriterOptions, stop: Arc<AtomicBool>) -> WriterReport {
    let mut report = WriterReport::default();
    let started = Instant::now();
    let mut last_ack = Instant::now();
    let mut last_ack_wall = std::time::SystemTime::now();
    let mut next_id: u64 = 1;
    let mut conn: Option<Conn> = None;
    let sql = format!("INSERT INTO {} (id, at) VALUES (?, NOW(6))", options.table);
    let note = |report: &mut WriterReport, e: String| {
        report.failures += 1;
        if report.errors.len() < 10 && !report.errors.contains(&e) {
            report.errors.push(e);
        }
    };
    while !stop.load(Ordering::SeqCst) {
        let c = match conn.as_mut() {
            Some(c) => c,
            None => match connect(&options).await {
                Ok((c, target)) => {
                    if report.targets.last() != Some(&target) {
                        report.targets.push(target);
                    }
                    conn.insert(c)
                }
                Err(e) => {
                    note(&mut report, e);
                    tokio::time::sleep(Duration::from_millis(5)).await;
                    continue;
                }
            },
        };
        let id = next_id;
        next_id += 1;
        let insert = tokio::time::timeout(Duration::from_secs(5), c.exec_drop(&sql, (id,))).await;
        match insert {
            Ok(Ok(())) => {
                let now = Instant::now();
                let gap = now - last_ack;
                report.longest_gap = report.longest_gap.max(gap);
                if gap >= STALL {
                    report.stalls.push(Stall {
                        began: last_ack_wall,
                        length: gap,
                    });
                }
                last_ack = now;
                last_ack_wall = std::time::SystemTime::now();
                report.acked.push(id);
            }
            Ok(Err(e)) => {
                note(&mut report, e.to_string());
                // Reconnect, to wherever the target file points now.
                conn = None;
                tokio::time::sleep(Duration::from_millis(2)).await;
            }
            Err(_) => {
                note(&mut report, "insert timed out after 5 s".to_owned());
                conn = None;
            }
        }
        if !options.pause.is_zero() {
            tokio::time::sleep(options.pause).await;
        }
    }
    report.elapsed = started.elapsed();
    report
}
