//! The systemd journal, read from `journalctl -f -o json`.
//!
//! Each output line is one JSON object (journalctl's "json" format, see
//! systemd.journal-fields(7) and the journal export format): field values are strings,
//! arrays of byte values when not valid UTF-8, arrays of such values when a field
//! occurs several times, and `null` when larger than 4096 bytes (unless `--all`).
//!
//! [`parse_journal_entry`] builds the text fail2ban's systemd backend
//! (`filtersystemd.py`, `formatJournalEntry`) matches its filters against, so that
//! `filter.d` files written for `backend = systemd` match here too. fail2ban hands its
//! filter the tuple `("", "<iso time> ", "<host> <ident>[<pid>]: <message>")` and the
//! regexes see the first and last parts only; the time goes separately, as here in
//! [`LogLine::source_time`].
//!
//! The process: if journalctl exits, its exit and stderr are logged and it is started
//! again with backoff; once an entry was read, the restart continues after that entry
//! (`--after-cursor`), so entries logged in between are not lost.

use std::borrow::Cow;
use std::fmt::Write as _;
use std::ops::ControlFlow;
use std::process::Stdio;
use std::sync::Arc;
use std::sync::atomic::Ordering::Relaxed;
use std::time::{Duration, Instant};

use serde::{Deserialize, Deserializer};
use serde_json::Value;
use tokio::io::AsyncReadExt;
use tokio::process::{Child, ChildStderr, Command};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use tracing::{debug, info, warn};

use super::lines::LineSplitter;
use super::{FollowError, FollowStats, LogLine};

/// `journalctl -f -o json -n 0`: follow, JSON, no backlog.
pub const DEFAULT_JOURNAL_COMMAND: &[&str] = &["journalctl", "-f", "-o", "json", "-n", "0"];

/// Bytes read from journalctl's output at a time.
const CHUNK: usize = 64 * 1024;
/// A run this long counts as healthy: the next restart waits the shortest delay again.
const HEALTHY_RUN: Duration = Duration::from_secs(30);
/// How long journalctl may take to exit after closing its output.
const EXIT_GRACE: Duration = Duration::from_secs(2);
/// Stderr lines logged per run, and their length.
const STDERR_LINES: usize = 20;
const STDERR_LINE: usize = 4096;

/// [`DEFAULT_JOURNAL_COMMAND`] plus a filter's `journalmatch` split into arguments (e.g.
/// `_SYSTEMD_UNIT=sshd.service + _COMM=sshd`; journalctl reads `+` as "or").
pub fn journal_command(journalmatch: &str) -> Vec<String> {
    DEFAULT_JOURNAL_COMMAND
        .iter()
        .map(|s| (*s).to_owned())
        .chain(journalmatch.split_whitespace().map(str::to_owned))
        .collect()
}

/// How to read the journal.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JournalOptions {
    /// The program and its arguments (see [`journal_command`]).
    pub command: Vec<String>,
    /// Wait before the first restart; doubled after each failed run (default 1 s).
    pub restart_delay: Duration,
    /// The longest wait between restarts (default 60 s).
    pub max_restart_delay: Duration,
    /// Longest JSON line read; longer entries are skipped (default 1 MiB).
    pub max_entry: usize,
}

impl JournalOptions {
    pub fn new(command: Vec<String>) -> JournalOptions {
        JournalOptions {
            command,
            restart_delay: Duration::from_secs(1),
            max_restart_delay: Duration::from_secs(60),
            max_entry: 1024 * 1024,
        }
    }
}

/// The fields fail2ban's systemd backend reads. `Some(Value::Null)` is a field present
/// as `null` (too large), `None` one absent.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct Entry {
    #[serde(rename = "__CURSOR", deserialize_with = "present")]
    cursor: Option<Value>,
    #[serde(rename = "__REALTIME_TIMESTAMP", deserialize_with = "present")]
    realtime: Option<Value>,
    #[serde(rename = "_SOURCE_REALTIME_TIMESTAMP", deserialize_with = "present")]
    source_realtime: Option<Value>,
    #[serde(rename = "__MONOTONIC_TIMESTAMP", deserialize_with = "present")]
    monotonic: Option<Value>,
    #[serde(rename = "_SOURCE_MONOTONIC_TIMESTAMP", deserialize_with = "present")]
    source_monotonic: Option<Value>,
    #[serde(rename = "_HOSTNAME", deserialize_with = "present")]
    hostname: Option<Value>,
    #[serde(rename = "SYSLOG_IDENTIFIER", deserialize_with = "present")]
    identifier: Option<Value>,
    #[serde(rename = "_COMM", deserialize_with = "present")]
    comm: Option<Value>,
    #[serde(rename = "SYSLOG_PID", deserialize_with = "present")]
    syslog_pid: Option<Value>,
    #[serde(rename = "_PID", deserialize_with = "present")]
    pid: Option<Value>,
    #[serde(rename = "MESSAGE", deserialize_with = "present")]
    message: Option<Value>,
    #[serde(rename = "_SYSTEMD_UNIT", deserialize_with = "present")]
    unit: Option<Value>,
}

fn present<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Value>, D::Error> {
    Value::deserialize(d).map(Some)
}

/// A field's text: a string as is, an array of bytes decoded lossily, several values
/// joined by spaces (as fail2ban joins a repeated `MESSAGE`); `None` for `null`.
fn text(value: &Value) -> Option<Cow<'_, str>> {
    match value {
        Value::Null => None,
        Value::String(s) => Some(Cow::Borrowed(s)),
        Value::Array(items) if items.iter().all(Value::is_u64) => {
            let bytes: Vec<u8> = items
                .iter()
                .map(|b| u8::try_from(b.as_u64().unwrap_or(0)).unwrap_or(u8::MAX))
                .collect();
            Some(Cow::Owned(String::from_utf8_lossy(&bytes).into_owned()))
        }
        Value::Array(items) => {
            let parts: Vec<Cow<'_, str>> = items.iter().filter_map(text).collect();
            Some(Cow::Owned(parts.join(" ")))
        }
        other => Some(Cow::Owned(other.to_string())),
    }
}

/// A field's text if present and not empty (Python's truthiness, as fail2ban tests it).
fn nonempty(value: &Option<Value>) -> Option<Cow<'_, str>> {
    value.as_ref().and_then(text).filter(|s| !s.is_empty())
}

fn micros(value: &Option<Value>) -> Option<i64> {
    value.as_ref().and_then(text)?.trim().parse().ok()
}

/// Parses one line of `journalctl -o json` output into the line fail2ban's systemd
/// backend would give its filters: `"<_HOSTNAME> <SYSLOG_IDENTIFIER>[<SYSLOG_PID>]:
/// <MESSAGE>"` (identifier falling back to `_COMM`, pid to `_PID`; parts that are absent
/// left out; for `kernel:` the monotonic time `[%12.6f]` after it; newlines in the
/// message written as `\n`). `Ok(None)` for an entry whose `MESSAGE` is `null`
/// (journalctl leaves out fields over 4096 bytes unless given `--all`).
pub fn parse_journal_entry(json: &[u8]) -> Result<Option<LogLine>, FollowError> {
    Ok(parse(json)?.0)
}

/// The line, and the entry's cursor.
fn parse(json: &[u8]) -> Result<(Option<LogLine>, Option<String>), FollowError> {
    // A struct also deserializes from an array; an entry is an object.
    if json.trim_ascii_start().first() != Some(&b'{') {
        return Err(<serde_json::Error as serde::de::Error>::custom("expected an object").into());
    }
    let entry: Entry = serde_json::from_slice::<Entry>(json)?;
    let cursor = entry.cursor.as_ref().and_then(text).map(Cow::into_owned);
    Ok((fail2ban_line(&entry), cursor))
}

fn fail2ban_line(e: &Entry) -> Option<LogLine> {
    let message = match &e.message {
        Some(Value::Null) => return None,
        Some(v) => text(v).unwrap_or_default(),
        None => Cow::Borrowed(""),
    };
    let mut out = String::with_capacity(message.len() + 64);
    if let Some(host) = nonempty(&e.hostname) {
        out.push_str(&host);
    }
    let ident = nonempty(&e.identifier).or_else(|| nonempty(&e.comm));
    if let Some(ident) = &ident {
        if !out.is_empty() {
            out.push(' ');
        }
        let from = out.len();
        out.push_str(ident);
        if let Some(pid) = nonempty(&e.syslog_pid).or_else(|| nonempty(&e.pid)) {
            match py_int(&pid) {
                Some(n) => write!(out, "[{n}]").expect("to a String"),
                None => write!(out, "[{pid}]").expect("to a String"),
            }
        }
        out.push(':');
        if &out[from..] == "kernel:" {
            if let Some(us) = micros(&e.source_monotonic).or_else(|| micros(&e.monotonic)) {
                write!(out, " [{:12.6}]", us as f64 / 1e6).expect("to a String");
            }
        }
    }
    if !out.is_empty() {
        out.push(' ');
    }
    out.push_str(&message);
    if out.contains('\n') {
        out = out.replace('\n', "\\n");
    }
    let source_time = micros(&e.source_realtime)
        .or_else(|| micros(&e.realtime))
        .and_then(chrono::DateTime::from_timestamp_micros);
    let unit = nonempty(&e.unit)
        .or_else(|| nonempty(&e.identifier))
        .map(Cow::into_owned);
    Some(LogLine {
        text: out,
        source_time,
        unit,
    })
}

/// Python's `int(s, 0)`, which fail2ban applies to the pid: surrounding whitespace,
/// a sign, `0x`/`0o`/`0b` prefixes and `_` between digits; no leading zeros in decimal.
fn py_int(s: &str) -> Option<i128> {
    let t = s.trim();
    let (negative, t) = match t.as_bytes().first()? {
        b'-' => (true, &t[1..]),
        b'+' => (false, &t[1..]),
        _ => (false, t),
    };
    let lower = t.get(..2).map(str::to_ascii_lowercase);
    let (radix, digits) = match lower.as_deref() {
        Some("0x") => (16, t[2..].strip_prefix('_').unwrap_or(&t[2..])),
        Some("0o") => (8, t[2..].strip_prefix('_').unwrap_or(&t[2..])),
        Some("0b") => (2, t[2..].strip_prefix('_').unwrap_or(&t[2..])),
        _ => (10, t),
    };
    if digits.is_empty()
        || digits.starts_with('_')
        || digits.ends_with('_')
        || digits.contains("__")
    {
        return None;
    }
    let clean: String = digits.chars().filter(|&c| c != '_').collect();
    if !clean.chars().all(|c| c.is_digit(radix)) {
        return None;
    }
    if radix == 10 && clean.starts_with('0') && clean.bytes().any(|b| b != b'0') {
        return None;
    }
    let n = i128::from_str_radix(&clean, radix).ok()?;
    Some(if negative { -n } else { n })
}

/// The arguments for a (re)start: after an entry was read, continue right after it,
/// whatever the original said about where to start.
fn args_after(args: &[String], cursor: Option<&str>) -> Vec<String> {
    let Some(cursor) = cursor else {
        return args.to_vec();
    };
    let lines_value = |v: &str| {
        v == "all"
            || (!v.is_empty()
                && v.trim_start_matches('+')
                    .bytes()
                    .all(|b| b.is_ascii_digit()))
    };
    let mut out = Vec::with_capacity(args.len() + 2);
    let mut it = args.iter().peekable();
    while let Some(arg) = it.next() {
        match arg.as_str() {
            "-n" | "--lines" => {
                if it.peek().is_some_and(|v| lines_value(v)) {
                    it.next();
                }
            }
            "-c" | "--cursor" | "--after-cursor" => {
                it.next();
            }
            a if a.starts_with("--lines=")
                || a.starts_with("--cursor=")
                || a.starts_with("--after-cursor=") => {}
            a if a.len() > 2 && a.starts_with("-n") && lines_value(&a[2..]) => {}
            _ => out.push(arg.clone()),
        }
    }
    out.push("--lines=all".to_owned());
    out.push(format!("--after-cursor={cursor}"));
    out
}

/// How one run of the command ended.
enum Ended {
    /// Stop requested or the receiver is gone.
    Stop,
    /// The command ended; `delivered`: it sent at least one line.
    Exited { delivered: bool },
}

/// Runs the command until `stop`, restarting it with backoff.
pub(super) async fn run(
    options: JournalOptions,
    tx: mpsc::Sender<LogLine>,
    stop: CancellationToken,
    stats: Arc<FollowStats>,
) -> anyhow::Result<()> {
    let (program, args) = options
        .command
        .split_first()
        .ok_or(FollowError::EmptyCommand)?;
    let mut cursor: Option<String> = None;
    let mut delay = options.restart_delay;
    loop {
        let run_args = args_after(args, cursor.as_deref());
        let shown = std::iter::once(program)
            .chain(&run_args)
            .cloned()
            .collect::<Vec<_>>()
            .join(" ");
        let started = Instant::now();
        let resumed = cursor.is_some();
        let spawned = Command::new(program)
            .args(&run_args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .spawn();
        let ended = match spawned {
            Ok(child) => {
                info!(command = %shown, "reading the journal");
                run_once(child, &shown, &options, &tx, &stop, &mut cursor, &stats).await
            }
            Err(e) => {
                warn!(command = %shown, "cannot start the journal reader: {e}");
                Ended::Exited { delivered: false }
            }
        };
        let Ended::Exited { delivered } = ended else {
            return Ok(());
        };
        if delivered || started.elapsed() >= HEALTHY_RUN {
            delay = options.restart_delay;
        } else if resumed {
            // Perhaps the cursor is gone (journal vacuumed): start afresh next time.
            cursor = None;
        }
        stats.restarts.fetch_add(1, Relaxed);
        info!(command = %shown, ?delay, "restarting the journal reader");
        tokio::select! {
            () = stop.cancelled() => return Ok(()),
            () = tx.closed() => return Ok(()),
            () = tokio::time::sleep(delay) => {}
        }
        delay = (delay * 2).min(options.max_restart_delay.max(options.restart_delay));
    }
}

async fn run_once(
    mut child: Child,
    shown: &str,
    options: &JournalOptions,
    tx: &mpsc::Sender<LogLine>,
    stop: &CancellationToken,
    cursor: &mut Option<String>,
    stats: &FollowStats,
) -> Ended {
    let mut stdout = child.stdout.take().expect("stdout is piped");
    let stderr = tokio::spawn(log_stderr(
        child.stderr.take().expect("stderr is piped"),
        shown.to_owned(),
    ));
    let mut split = LineSplitter::new(options.max_entry);
    let mut buf = vec![0; CHUNK];
    let mut batch = Vec::new();
    let mut delivered = false;
    let mut eof = false;
    let stopped = 'read: loop {
        let read = tokio::select! {
            () = stop.cancelled() => break 'read true,
            () = tx.closed() => break 'read true,
            read = stdout.read(&mut buf) => read,
        };
        let mut take = |json: &[u8], cut: bool| {
            if cut {
                stats.skipped.fetch_add(1, Relaxed);
                warn!(command = %shown, limit = options.max_entry, "journal entry too long: skipped");
                return ControlFlow::Continue(());
            }
            match parse(json) {
                Ok((line, at)) => {
                    if at.is_some() {
                        *cursor = at;
                    }
                    match line {
                        Some(line) => batch.push(line),
                        None => {
                            if stats.skipped.fetch_add(1, Relaxed) == 0 {
                                warn!(command = %shown, "journal entry with a MESSAGE over 4096 bytes skipped (journalctl --all would keep it)");
                            }
                        }
                    }
                }
                Err(e) => {
                    stats.skipped.fetch_add(1, Relaxed);
                    warn!(command = %shown, "skipped a journal entry: {e}");
                }
            }
            ControlFlow::Continue(())
        };
        match read {
            Ok(0) => {
                split.flush(&mut take);
                eof = true;
            }
            Ok(n) => {
                let _ = split.feed(&buf[..n], |json, cut, _| take(json, cut));
            }
            Err(e) => {
                warn!(command = %shown, "cannot read the journal reader's output: {e}");
                eof = true;
            }
        }
        for line in batch.drain(..) {
            stats.lines.fetch_add(1, Relaxed);
            let sent = tokio::select! {
                biased;
                () = stop.cancelled() => false,
                sent = tx.send(line) => sent.is_ok(),
            };
            if !sent {
                break 'read true;
            }
            delivered = true;
        }
        if eof {
            break false;
        }
    };
    if stopped {
        let _ = child.start_kill();
        let _ = child.wait().await;
        stderr.abort();
        return Ended::Stop;
    }
    let status = match tokio::time::timeout(EXIT_GRACE, child.wait()).await {
        Ok(status) => status,
        Err(_) => {
            debug!(command = %shown, "journal reader closed its output but runs on: killing it");
            let _ = child.start_kill();
            child.wait().await
        }
    };
    let last_error = tokio::time::timeout(EXIT_GRACE, stderr)
        .await
        .ok()
        .and_then(Result::ok)
        .unwrap_or_default();
    let status = status.map_or_else(|e| e.to_string(), |s| s.to_string());
    warn!(command = %shown, %status, last_error = %last_error, "the journal reader exited");
    Ended::Exited { delivered }
}

/// Logs the command's stderr line by line (the first few of a run) and returns the
/// last line.
async fn log_stderr(mut stderr: ChildStderr, shown: String) -> String {
    let mut split = LineSplitter::new(STDERR_LINE);
    let mut buf = [0u8; 4096];
    let mut logged = 0;
    let mut last = String::new();
    let mut note = |line: &[u8]| {
        let line = super::lines::to_text(line);
        if line.trim().is_empty() {
            return;
        }
        if logged < STDERR_LINES {
            warn!(command = %shown, "journal reader: {line}");
            logged += 1;
        }
        last = line;
    };
    loop {
        match stderr.read(&mut buf).await {
            Ok(0) | Err(_) => break,
            Ok(n) => {
                let _ = split.feed(&buf[..n], |line, _, _| {
                    note(line);
                    ControlFlow::Continue(())
                });
            }
        }
    }
    split.flush(|line, _| note(line));
    last
}

#[cfg(test)]
mod tests;
