//! Log sources for the ban engine: a file followed across rotation and truncation, or
//! the systemd journal read through `journalctl -o json`. Each source runs as one task
//! that sends [`LogLine`]s, in order, on a bounded channel (so a slow engine slows the
//! reader down instead of growing a queue) until its stop token is cancelled.
//!
//! * `lines`: splitting bytes into lines in bounded memory (no I/O).
//! * `file`: the file follower, a small state machine driven by inotify on the file's
//!   directory and by polling; `LIFECYCLE.md` beside this file walks through rotation,
//!   truncation and resume.
//! * `journal`: `journalctl -o json` entries turned into the text fail2ban's systemd
//!   backend gives its filters, and the `journalctl` process kept running.
//!
//! [`start`] returns a [`Handle`]; [`spawn`] just the task. A file source publishes
//! its [`FilePosition`] (device, inode, offset just past the last line handed to the
//! channel) through [`Handle::position`]. The engine saves it in its state file and
//! passes it back as `resume` after a restart: lines written while it was down are
//! read once, and a file rotated meanwhile is finished before its successor.
//!
//! Designs not taken: reading files on async workers (a read on NFS or a stuck disk
//! would stall the runtime; the follower runs on a blocking-pool thread instead);
//! `tail -F` as a child process (no positions, no control over rotation order);
//! switching to the new file as soon as the path names another one (loses what the
//! daemon writes to the renamed file before it reopens; we switch once the new file
//! has data); a per-line position in `LogLine` (the channel's order makes the
//! published position enough).

mod file;
mod journal;
pub(crate) mod lines;

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::AtomicU64;

use serde::{Deserialize, Serialize};
use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

pub use file::FileOptions;
pub use journal::{DEFAULT_JOURNAL_COMMAND, JournalOptions, journal_command, parse_journal_entry};
pub use lines::MAX_LINE;

/// One line for the filters.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogLine {
    /// The line without its `\n` (and trailing `\r`), invalid UTF-8 replaced, at most
    /// [`MAX_LINE`] bytes of the original. For the journal: the text fail2ban's systemd
    /// backend matches its regexes against, `"<host> <ident>[<pid>]: <message>"` (see
    /// [`parse_journal_entry`]); its time is in `source_time`, not in the text.
    pub text: String,
    /// When the journal says the entry was logged (`_SOURCE_REALTIME_TIMESTAMP`, else
    /// `__REALTIME_TIMESTAMP`, as fail2ban uses them); `None` for files, whose lines carry
    /// their own time text for the filter's date pattern.
    pub source_time: Option<chrono::DateTime<chrono::Utc>>,
    /// The journal's `_SYSTEMD_UNIT`, else its `SYSLOG_IDENTIFIER`; `None` for files.
    pub unit: Option<String>,
}

/// Where a file source stands: the file (device and inode) and the offset just past
/// the last line handed to the channel (always the start of a line).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct FilePosition {
    pub dev: u64,
    pub inode: u64,
    pub offset: u64,
    /// A hash of the file's first `min(offset, 256)` bytes: a file deleted while we were
    /// down frees its inode number, which a new file may reuse; this tells them apart.
    /// 0 means unknown (not checked).
    #[serde(default)]
    pub head: u64,
}

/// What to read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SourceSpec {
    /// Follow a file. Without `resume`: start at its end (at the start of its last,
    /// incomplete line, if any), or at its start with `from_start`; a file that does not
    /// exist yet is read from its start once it appears. With `resume` (a position saved
    /// by an earlier run): continue there if the file is the same inode; if it was rotated
    /// meanwhile, finish the rotated file (found beside it by inode, e.g. `auth.log.1`)
    /// then read the new one from its start; otherwise read the new one from its start.
    File {
        path: PathBuf,
        from_start: bool,
        resume: Option<FilePosition>,
    },
    /// Run `command` (see [`journal_command`]) and read its `-o json` output; restarted
    /// with backoff if it exits.
    Journal { command: Vec<String> },
}

/// Counters of one source, for metrics and tests.
#[derive(Debug, Default)]
pub struct FollowStats {
    /// Lines sent.
    pub lines: AtomicU64,
    /// Lines cut at [`MAX_LINE`] bytes.
    pub truncated_lines: AtomicU64,
    /// Files: switches to a new file after a rename or delete.
    pub rotations: AtomicU64,
    /// Files: restarts at offset 0 after the file shrank or was rewritten in place.
    pub truncations: AtomicU64,
    /// Journal: entries not sent (not JSON, too long, or `MESSAGE` null because it was
    /// larger than journalctl's 4096-byte field limit without `--all`).
    pub skipped: AtomicU64,
    /// Journal: restarts of the command after it exited.
    pub restarts: AtomicU64,
}

/// A started source.
#[derive(Debug)]
pub struct Handle {
    task: JoinHandle<anyhow::Result<()>>,
    position: Position,
    stats: Arc<FollowStats>,
}

impl Handle {
    /// Starts the task `spawn` makes, giving it the sender of the position and the
    /// counters.
    fn start(
        spawn: impl FnOnce(
            watch::Sender<Option<FilePosition>>,
            Arc<FollowStats>,
        ) -> JoinHandle<anyhow::Result<()>>,
    ) -> Handle {
        let (position_tx, position) = watch::channel(None);
        let stats = Arc::new(FollowStats::default());
        let task = spawn(position_tx, stats.clone());
        Handle {
            task,
            position: Position(position),
            stats,
        }
    }

    /// Where a file source stands, shared: see [`Position`].
    pub fn position(&self) -> Position {
        self.position.clone()
    }

    pub fn stats(&self) -> Arc<FollowStats> {
        self.stats.clone()
    }

    /// Waits for the source to end: `Ok` when the stop token was cancelled or the
    /// receiver dropped; a panic of the source is an error too.
    pub async fn join(self) -> anyhow::Result<()> {
        self.task.await.map_err(anyhow::Error::from).and_then(|r| r)
    }

    /// The task itself, as [`spawn`] returns it.
    pub fn into_task(self) -> JoinHandle<anyhow::Result<()>> {
        self.task
    }
}

/// The position of a file source after the last line the channel accepted; `None` until
/// the file is opened, and always for the journal. Cheap to clone and to read.
///
/// For an exact position to save at shutdown: cancel the stop token, wait for the
/// source to end ([`Handle::join`]), drain the channel, then read it. Saved while
/// running, it may be ahead of the engine by the lines still in the channel.
#[derive(Debug, Clone)]
pub struct Position(watch::Receiver<Option<FilePosition>>);

impl Position {
    pub fn get(&self) -> Option<FilePosition> {
        *self.0.borrow()
    }

    /// Waits until the file is open and returns where the source starts; `None` if the
    /// source ended first.
    pub async fn opened(&mut self) -> Option<FilePosition> {
        self.0.wait_for(Option::is_some).await.ok().and_then(|p| *p)
    }

    /// Waits for the next change; `false` once the source has ended.
    pub async fn changed(&mut self) -> bool {
        self.0.changed().await.is_ok()
    }
}

/// Errors of the log sources.
#[derive(Debug, thiserror::Error)]
pub enum FollowError {
    #[error("log file path {0} does not name a file")]
    NotAFile(PathBuf),
    #[error("the journal command is empty")]
    EmptyCommand,
    #[error("journal entry is not a JSON object: {0}")]
    JournalJson(#[from] serde_json::Error),
}

/// Starts reading; lines arrive on the channel in order; ends when `stop` is cancelled.
/// Must be called within a Tokio runtime.
pub fn spawn(
    spec: SourceSpec,
    tx: mpsc::Sender<LogLine>,
    stop: CancellationToken,
) -> JoinHandle<anyhow::Result<()>> {
    start(spec, tx, stop).task
}

/// [`spawn`], giving a handle with the position and counters too.
pub fn start(spec: SourceSpec, tx: mpsc::Sender<LogLine>, stop: CancellationToken) -> Handle {
    match spec {
        SourceSpec::File {
            path,
            from_start,
            resume,
        } => {
            let mut options = FileOptions::new(path);
            options.from_start = from_start;
            options.resume = resume;
            start_file(options, tx, stop)
        }
        SourceSpec::Journal { command } => start_journal(JournalOptions::new(command), tx, stop),
    }
}

/// Follows a file with explicit options (poll interval, inotify, line limit).
pub fn start_file(
    options: FileOptions,
    tx: mpsc::Sender<LogLine>,
    stop: CancellationToken,
) -> Handle {
    Handle::start(|position, stats| file::spawn(options, tx, stop, position, stats))
}

/// Reads the journal with explicit options (restart delays, entry limit).
pub fn start_journal(
    options: JournalOptions,
    tx: mpsc::Sender<LogLine>,
    stop: CancellationToken,
) -> Handle {
    Handle::start(|_, stats| tokio::spawn(journal::run(options, tx, stop, stats)))
}
