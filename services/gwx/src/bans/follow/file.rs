//! Following one log file across rotation and truncation (see `LIFECYCLE.md`).
//!
//! The follower proper, [`FileFollower`], is synchronous: each [`FileFollower::step`]
//! reads whatever is new, notices truncation and replacement, and hands lines to a
//! [`Sink`]. It never sleeps, so unit tests drive it step by step. The driver, [`spawn`],
//! runs it on a blocking-pool thread (file reads can block, e.g. on NFS) and calls a step
//! whenever inotify reports a change in the file's directory, and at least every poll
//! interval (inotify is missing or blind on some file systems: overlay, NFS, FUSE).

use std::ffi::OsString;
use std::fs::{self, File, Metadata};
use std::io;
use std::ops::ControlFlow;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{FileExt, MetadataExt};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::Ordering::Relaxed;
use std::time::{Duration, Instant};

use notify::{RecommendedWatcher, RecursiveMode, Watcher};
use std::sync::mpsc::{RecvTimeoutError, SyncSender, sync_channel};
use tokio::runtime::Handle;
use tokio::sync::mpsc::error::TrySendError;
use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use tracing::{debug, info, warn};

use super::lines::{LineSplitter, MAX_LINE, to_text};
use super::{FilePosition, FollowError, FollowStats, LogLine};

/// Bytes read per `pread`.
const CHUNK: usize = 128 * 1024;
/// Bytes at the start of the file remembered to notice it being rewritten in place.
const HEAD: usize = 256;
/// How often to try inotify again after it failed.
const WATCH_RETRY: Duration = Duration::from_secs(10);

/// How to follow a file. [`SourceSpec::File`](super::SourceSpec::File) sets the first
/// three fields and leaves the others at their defaults.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileOptions {
    pub path: PathBuf,
    /// Read an existing file from its start instead of its end.
    pub from_start: bool,
    /// A position saved by an earlier run; wins over `from_start` (see `SourceSpec`).
    pub resume: Option<FilePosition>,
    /// Look at the file at least this often, inotify or not (default 1 s).
    pub poll_interval: Duration,
    /// Wake on inotify events of the file's directory (default true).
    pub inotify: bool,
    /// Longest line kept, in bytes (default [`MAX_LINE`]).
    pub max_line: usize,
    /// After a rotation, keep reading the old file this long for lines its writers
    /// still add before they reopen the log (default 5 s).
    pub linger: Duration,
}

impl FileOptions {
    pub fn new(path: impl Into<PathBuf>) -> FileOptions {
        FileOptions {
            path: path.into(),
            from_start: false,
            resume: None,
            poll_interval: Duration::from_secs(1),
            inotify: true,
            max_line: MAX_LINE,
            linger: Duration::from_secs(5),
        }
    }
}

/// Where the follower's lines and positions go.
pub(super) trait Sink {
    /// Hands one line on; `Break` when the follower must stop.
    fn line(&mut self, line: LogLine) -> ControlFlow<()>;
    /// The position just past the last line accepted by [`Sink::line`].
    fn position(&mut self, position: FilePosition);
}

/// What a step saw.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Step {
    /// Read what there was; the file is where the path says.
    Idle,
    /// The path names no file (yet, or any more).
    PathMissing,
    /// The sink asked to stop.
    Stop,
}

/// Where to start in the first file opened.
#[derive(Debug, Clone, Copy)]
enum Start {
    End,
    Beginning,
    Resume(FilePosition),
}

/// One open file being read.
struct Tracked {
    file: File,
    /// The name it was opened by, for logs.
    shown: PathBuf,
    dev: u64,
    ino: u64,
    /// The next byte to read.
    read_off: u64,
    /// Just past the last line handed on: the position to save.
    done_off: u64,
    /// The first bytes of the file (up to `HEAD`), as first seen.
    head: Vec<u8>,
    split: LineSplitter,
}

impl Tracked {
    fn open(path: &Path, max_line: usize) -> io::Result<(Tracked, Metadata)> {
        let file = File::open(path)?;
        let meta = file.metadata()?;
        let tracked = Tracked {
            file,
            shown: path.to_owned(),
            dev: meta.dev(),
            ino: meta.ino(),
            read_off: 0,
            done_off: 0,
            head: Vec::new(),
            split: LineSplitter::new(max_line),
        };
        Ok((tracked, meta))
    }

    fn id(&self) -> (u64, u64) {
        (self.dev, self.ino)
    }

    fn position(&self) -> FilePosition {
        // `is` checks the first min(HEAD, offset) bytes, so the hash must cover exactly
        // those. The kept head can be shorter: a read racing the writer may have seen
        // part of the first line (a write to a regular file is not atomic for readers),
        // and later reads grow `head` only when they start at its end. Those bytes were
        // read before, so read them again here (a rare path).
        let want = HEAD.min(self.done_off as usize);
        let head = if self.head.len() >= want {
            head_hash(&self.head[..want])
        } else {
            let mut buf = [0u8; HEAD];
            match read_full_at(&self.file, &mut buf[..want], 0) {
                Ok(got) if got == want => head_hash(&buf[..want]),
                // Unreadable now: no head, so a resume trusts the file's identity alone.
                _ => 0,
            }
        };
        FilePosition {
            dev: self.dev,
            inode: self.ino,
            offset: self.done_off,
            head,
        }
    }

    /// Whether this is the file `position` was taken in: same identity and, if the
    /// position knows it, the same first bytes.
    fn is(&self, position: &FilePosition) -> io::Result<bool> {
        if self.id() != (position.dev, position.inode) {
            return Ok(false);
        }
        if position.head == 0 {
            return Ok(true);
        }
        let mut head = [0u8; HEAD];
        let want = HEAD.min(position.offset as usize);
        let got = read_full_at(&self.file, &mut head[..want], 0)?;
        Ok(got == want && head_hash(&head[..got]) == position.head)
    }

    /// Continues at `offset`, which must be the start of a line.
    fn seek(&mut self, offset: u64) -> io::Result<()> {
        self.read_off = offset;
        self.done_off = offset;
        self.split.reset();
        self.head.resize(HEAD.min(offset as usize), 0);
        let got = read_full_at(&self.file, &mut self.head, 0)?;
        self.head.truncate(got);
        Ok(())
    }

    /// Positions at the end, backing up to the start of an incomplete last line so it
    /// is read whole once its writer ends it.
    fn seek_end(&mut self, size: u64, buf: &mut [u8]) -> io::Result<()> {
        let tail = (buf.len() as u64).min(size);
        let from = size - tail;
        let got = read_full_at(&self.file, &mut buf[..tail as usize], from)?;
        match buf[..got].iter().rposition(|&b| b == b'\n') {
            Some(i) => self.seek(from + i as u64 + 1),
            None if from == 0 => self.seek(0),
            None => {
                // An incomplete line longer than a chunk: skip its rest.
                self.seek(size)?;
                self.split.skip_to_next_line();
                Ok(())
            }
        }
    }

    /// Whether the first bytes differ from those seen before, or the file is now shorter
    /// than they were: it was truncated (and perhaps written again past our offset
    /// before we looked: copytruncate). Remembers more of them while they match.
    fn head_changed(&mut self, size: u64) -> io::Result<bool> {
        let mut now = [0u8; HEAD];
        let want = (HEAD as u64).min(size) as usize;
        let got = read_full_at(&self.file, &mut now[..want], 0)?;
        if got < self.head.len() || now[..self.head.len()] != self.head[..] {
            return Ok(true);
        }
        if got > self.head.len() {
            self.head.clear();
            self.head.extend_from_slice(&now[..got]);
        }
        Ok(false)
    }
}

/// FNV-1a, never 0 (0 is "unknown" in a saved position).
fn head_hash(bytes: &[u8]) -> u64 {
    let hash = bytes.iter().fold(0xcbf2_9ce4_8422_2325_u64, |h, &b| {
        (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    });
    hash.max(1)
}

fn read_full_at(file: &File, buf: &mut [u8], offset: u64) -> io::Result<usize> {
    let mut got = 0;
    while got < buf.len() {
        match file.read_at(&mut buf[got..], offset + got as u64) {
            Ok(0) => break,
            Ok(n) => got += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(got)
}

fn emit(
    sink: &mut dyn Sink,
    stats: &FollowStats,
    bytes: &[u8],
    cut: bool,
    file: &Path,
) -> ControlFlow<()> {
    if cut && stats.truncated_lines.fetch_add(1, Relaxed) == 0 {
        warn!(
            file = %file.display(),
            "a line longer than the limit was cut (further ones are counted, not logged)"
        );
    }
    stats.lines.fetch_add(1, Relaxed);
    sink.line(LogLine {
        text: to_text(bytes),
        source_time: None,
        unit: None,
    })
}

/// Reads `t` to its end, restarting at 0 when it was truncated. Publishes positions
/// when `publish` (not for a rotated file still being read).
fn drain(
    t: &mut Tracked,
    buf: &mut [u8],
    sink: &mut dyn Sink,
    stats: &FollowStats,
    publish: bool,
) -> io::Result<ControlFlow<()>> {
    let size = t.file.metadata()?.len();
    if (size < t.read_off || (size > t.read_off && t.head_changed(size)?))
        && restart(t, sink, stats, publish)?.is_break()
    {
        return Ok(ControlFlow::Break(()));
    }
    loop {
        let n = match t.file.read_at(buf, t.read_off) {
            Ok(0) => return Ok(ControlFlow::Continue(())),
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        // Truncated and written again between the check above and this read, these
        // bytes would come from the middle of the new content: check after reading.
        if t.read_off > 0 && t.head_changed(u64::MAX)? {
            if restart(t, sink, stats, publish)?.is_break() {
                return Ok(ControlFlow::Break(()));
            }
            continue;
        }
        let chunk = &buf[..n];
        if t.head.len() as u64 == t.read_off && t.head.len() < HEAD {
            t.head
                .extend_from_slice(&chunk[..(HEAD - t.head.len()).min(n)]);
        }
        let base = t.read_off;
        t.read_off += n as u64;
        let before = t.done_off;
        let done = &mut t.done_off;
        let shown = &t.shown;
        let flow = t.split.feed(chunk, |line, cut, end| {
            let flow = emit(sink, stats, line, cut, shown);
            if flow.is_continue() {
                *done = base + end as u64;
            }
            flow
        });
        if publish && t.done_off != before {
            sink.position(t.position());
        }
        if flow.is_break() {
            return Ok(flow);
        }
    }
}

/// The file was truncated: hands out an incomplete last line, then starts again at 0.
fn restart(
    t: &mut Tracked,
    sink: &mut dyn Sink,
    stats: &FollowStats,
    publish: bool,
) -> io::Result<ControlFlow<()>> {
    info!(
        file = %t.shown.display(), offset = t.read_off,
        "log file truncated (copytruncate?): reading it again from its start"
    );
    stats.truncations.fetch_add(1, Relaxed);
    let flow = flush(t, sink, stats)?;
    t.split.reset();
    t.read_off = 0;
    t.done_off = 0;
    t.head.clear();
    if publish {
        sink.position(t.position());
    }
    Ok(flow)
}

/// Hands out an incomplete last line: its file was rotated away or truncated.
fn flush(t: &mut Tracked, sink: &mut dyn Sink, stats: &FollowStats) -> io::Result<ControlFlow<()>> {
    let shown = &t.shown;
    let flow = t
        .split
        .flush(|line, cut| emit(sink, stats, line, cut, shown));
    t.done_off = t.read_off;
    Ok(flow.unwrap_or(ControlFlow::Continue(())))
}

/// What the path names now, compared with the file being read.
enum Next {
    Same,
    Missing,
    Replaced(Tracked),
}

/// Things logged once until they change.
#[derive(Default)]
struct Notes {
    waiting: bool,
    gone: bool,
    new_empty: bool,
    open_error: Option<io::ErrorKind>,
    read_error: Option<io::ErrorKind>,
}

/// Follows one path. See the module docs and `LIFECYCLE.md`.
pub(super) struct FileFollower {
    path: PathBuf,
    /// The file name, to find rotated siblings (`auth.log.1`) and filter inotify events.
    name: OsString,
    dir: PathBuf,
    start: Start,
    cur: Option<Tracked>,
    /// The file before the last rotation, still read for late lines, and since when.
    lingering: Option<(Tracked, Instant)>,
    linger: Duration,
    max_line: usize,
    buf: Box<[u8]>,
    stats: Arc<FollowStats>,
    notes: Notes,
}

impl FileFollower {
    pub(super) fn new(
        options: &FileOptions,
        stats: Arc<FollowStats>,
    ) -> Result<FileFollower, FollowError> {
        let path = options.path.clone();
        let name = path
            .file_name()
            .ok_or_else(|| FollowError::NotAFile(path.clone()))?
            .to_owned();
        let dir = match path.parent() {
            Some(d) if !d.as_os_str().is_empty() => d.to_owned(),
            _ => PathBuf::from("."),
        };
        let start = match (options.resume, options.from_start) {
            (Some(position), _) => Start::Resume(position),
            (None, true) => Start::Beginning,
            (None, false) => Start::End,
        };
        Ok(FileFollower {
            path,
            name,
            dir,
            start,
            cur: None,
            lingering: None,
            linger: options.linger,
            max_line: options.max_line,
            buf: vec![0; CHUNK].into_boxed_slice(),
            stats,
            notes: Notes::default(),
        })
    }

    /// Reads everything new, switching files as rotation requires. Never waits.
    pub(super) fn step(&mut self, sink: &mut dyn Sink) -> Step {
        if self.step_lingering(sink).is_break() {
            return Step::Stop;
        }
        loop {
            if self.cur.is_none() {
                match self.open_first() {
                    Some(t) => {
                        sink.position(t.position());
                        self.cur = Some(t);
                    }
                    None => return Step::PathMissing,
                }
            }
            let cur = self.cur.as_mut().expect("opened above");
            match drain(cur, &mut self.buf, sink, &self.stats, true) {
                Ok(ControlFlow::Break(())) => return Step::Stop,
                Ok(ControlFlow::Continue(())) => self.notes.read_error = None,
                Err(e) => {
                    // Retried at the next step; meanwhile the path may name a new file
                    // (e.g. a stale NFS handle after the file was replaced).
                    if self.notes.read_error != Some(e.kind()) {
                        warn!(file = %cur.shown.display(), "cannot read the log file, will retry: {e}");
                        self.notes.read_error = Some(e.kind());
                    }
                }
            }
            match self.next() {
                Next::Same => return Step::Idle,
                Next::Missing => return Step::PathMissing,
                Next::Replaced(new) => {
                    if self.switch(new, sink).is_break() {
                        return Step::Stop;
                    }
                }
            }
        }
    }

    /// The current position, if a file is open.
    #[cfg(test)]
    fn position(&self) -> Option<FilePosition> {
        self.cur.as_ref().map(Tracked::position)
    }

    fn step_lingering(&mut self, sink: &mut dyn Sink) -> ControlFlow<()> {
        let Some((old, since)) = &mut self.lingering else {
            return ControlFlow::Continue(());
        };
        let expired = since.elapsed() >= self.linger;
        match drain(old, &mut self.buf, sink, &self.stats, false) {
            Ok(ControlFlow::Break(())) => return ControlFlow::Break(()),
            Ok(ControlFlow::Continue(())) if !expired => return ControlFlow::Continue(()),
            Ok(ControlFlow::Continue(())) => {}
            Err(e) => debug!(file = %old.shown.display(), "stopped reading the rotated file: {e}"),
        }
        let flow = flush(old, sink, &self.stats).unwrap_or(ControlFlow::Continue(()));
        debug!(file = %old.shown.display(), "done with the rotated file");
        self.lingering = None;
        flow
    }

    /// Opens the path for the first time, or again after it was missing.
    fn open_first(&mut self) -> Option<Tracked> {
        let opened = Tracked::open(&self.path, self.max_line);
        let start = self.start;
        if let Start::Resume(position) = start {
            return self.resume(position, opened);
        }
        match opened {
            Ok((mut t, meta)) => {
                let at = match start {
                    Start::End => t.seek_end(meta.len(), &mut self.buf),
                    _ => Ok(()),
                };
                if let Err(e) = at {
                    self.open_failed(&e);
                    return None;
                }
                if self.notes.waiting {
                    info!(file = %self.path.display(), "log file appeared: reading it from its start");
                } else {
                    debug!(file = %self.path.display(), offset = t.read_off, "following the log file");
                }
                self.opened();
                Some(t)
            }
            Err(e) => {
                self.open_failed(&e);
                None
            }
        }
    }

    fn resume(
        &mut self,
        position: FilePosition,
        opened: io::Result<(Tracked, Metadata)>,
    ) -> Option<Tracked> {
        let path = self.path.display();
        let found = match opened {
            Ok((t, meta)) if t.is(&position).unwrap_or(false) => Some((t, meta)),
            other => match self.find_sibling(&position) {
                Some(found) => {
                    info!(file = %path, rotated = %found.0.shown.display(),
                        "log file was rotated while we were down: finishing the rotated file first");
                    Some(found)
                }
                None => {
                    return match other {
                        Ok((t, _)) => {
                            info!(file = %path, "log file was replaced while we were down: reading it from its start");
                            self.opened();
                            Some(t)
                        }
                        Err(e) => {
                            self.open_failed(&e);
                            None
                        }
                    };
                }
            },
        };
        let (mut t, meta) = found?;
        if meta.len() < position.offset {
            info!(file = %t.shown.display(), "log file shrank while we were down: reading it from its start");
        } else if let Err(e) = t.seek(position.offset) {
            self.open_failed(&e);
            return None;
        } else {
            debug!(file = %t.shown.display(), offset = position.offset, "resuming the log file");
        }
        self.opened();
        Some(t)
    }

    /// A file beside ours, named like ours plus a suffix, with the given identity.
    fn find_sibling(&self, position: &FilePosition) -> Option<(Tracked, Metadata)> {
        let want = (position.dev, position.inode);
        let name = self.name.as_bytes();
        for entry in fs::read_dir(&self.dir).ok()?.flatten() {
            let entry_name = entry.file_name();
            if entry_name.as_bytes().len() <= name.len() || !entry_name.as_bytes().starts_with(name)
            {
                continue;
            }
            match entry.metadata() {
                Ok(m) if m.is_file() && (m.dev(), m.ino()) == want => {}
                _ => continue,
            }
            if let Ok(found) = Tracked::open(&entry.path(), self.max_line) {
                if found.0.is(position).unwrap_or(false) {
                    return Some(found);
                }
            }
        }
        None
    }

    fn opened(&mut self) {
        self.start = Start::Beginning;
        self.notes.waiting = false;
        self.notes.open_error = None;
    }

    fn open_failed(&mut self, e: &io::Error) {
        if e.kind() == io::ErrorKind::NotFound {
            // Whatever appears later is new: read it whole.
            if !matches!(self.start, Start::Resume(_)) {
                self.start = Start::Beginning;
            }
            if !self.notes.waiting {
                info!(file = %self.path.display(), "waiting for the log file to appear");
                self.notes.waiting = true;
            }
        } else if self.notes.open_error != Some(e.kind()) {
            warn!(file = %self.path.display(), "cannot open the log file, will retry: {e}");
            self.notes.open_error = Some(e.kind());
        }
    }

    /// Looks at what the path names now.
    fn next(&mut self) -> Next {
        let cur = self.cur.as_ref().expect("a file is open");
        let meta = match fs::metadata(&self.path) {
            Ok(meta) => meta,
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                if !self.notes.gone {
                    info!(file = %self.path.display(),
                        "log file removed or renamed: reading the old file until a new one appears");
                    self.notes.gone = true;
                }
                return Next::Missing;
            }
            Err(e) => {
                debug!(file = %self.path.display(), "cannot stat the log file: {e}");
                return Next::Same;
            }
        };
        self.notes.gone = false;
        if (meta.dev(), meta.ino()) == cur.id() {
            return Next::Same;
        }
        // A new file. Until it has data its writer may still be writing to the old one
        // (logrotate renames, creates, and only then signals the daemon to reopen).
        if meta.len() == 0 {
            if !self.notes.new_empty {
                debug!(file = %self.path.display(), "new log file still empty: still reading the old one");
                self.notes.new_empty = true;
            }
            return Next::Same;
        }
        match Tracked::open(&self.path, self.max_line) {
            Ok((new, meta)) if new.id() != cur.id() && meta.len() > 0 => Next::Replaced(new),
            Ok(_) => Next::Same,
            Err(e) => {
                debug!(file = %self.path.display(), "cannot open the new log file yet: {e}");
                Next::Same
            }
        }
    }

    /// Finishes the old file (its writer has moved to the new one), then reads the new
    /// one from its start; the old one lingers for late writers.
    fn switch(&mut self, new: Tracked, sink: &mut dyn Sink) -> ControlFlow<()> {
        let mut old = self.cur.take().expect("a file is open");
        match drain(&mut old, &mut self.buf, sink, &self.stats, false) {
            Ok(ControlFlow::Break(())) => return ControlFlow::Break(()),
            Ok(ControlFlow::Continue(())) => {}
            Err(e) => debug!(file = %old.shown.display(), "cannot read the rotated file: {e}"),
        }
        flush(&mut old, sink, &self.stats).unwrap_or(ControlFlow::Continue(()))?;
        if let Some((mut previous, _)) = self.lingering.take() {
            if let Ok(flow) = drain(&mut previous, &mut self.buf, sink, &self.stats, false) {
                flow?;
            }
            flush(&mut previous, sink, &self.stats).unwrap_or(ControlFlow::Continue(()))?;
        }
        info!(
            file = %self.path.display(), old_inode = old.ino, new_inode = new.ino,
            "log file rotated: following the new file from its start"
        );
        self.stats.rotations.fetch_add(1, Relaxed);
        self.notes.new_empty = false;
        sink.position(new.position());
        self.cur = Some(new);
        if !self.linger.is_zero() {
            self.lingering = Some((old, Instant::now()));
        }
        ControlFlow::Continue(())
    }
}

/// Sends to the engine's channel from the blocking thread, waiting on a full channel
/// for room or for the stop token.
struct ChannelSink {
    tx: mpsc::Sender<LogLine>,
    stop: CancellationToken,
    rt: Handle,
    position: watch::Sender<Option<FilePosition>>,
}

impl Sink for ChannelSink {
    fn line(&mut self, line: LogLine) -> ControlFlow<()> {
        if self.stop.is_cancelled() {
            return ControlFlow::Break(());
        }
        match self.tx.try_send(line) {
            Ok(()) => ControlFlow::Continue(()),
            Err(TrySendError::Closed(_)) => ControlFlow::Break(()),
            Err(TrySendError::Full(line)) => {
                let (tx, stop) = (&self.tx, &self.stop);
                self.rt.block_on(async {
                    tokio::select! {
                        biased;
                        () = stop.cancelled() => ControlFlow::Break(()),
                        sent = tx.send(line) => match sent {
                            Ok(()) => ControlFlow::Continue(()),
                            Err(_) => ControlFlow::Break(()),
                        },
                    }
                })
            }
        }
    }

    fn position(&mut self, position: FilePosition) {
        self.position.send_if_modified(|p| {
            let changed = *p != Some(position);
            *p = Some(position);
            changed
        });
    }
}

/// inotify on the file's directory (so creations and renames are seen), retried when
/// it fails or the directory is replaced.
struct DirWatch {
    enabled: bool,
    dir: PathBuf,
    name: OsString,
    path: PathBuf,
    poll: Duration,
    wake: SyncSender<()>,
    /// The watcher and the identity of the directory it watches.
    watcher: Option<(RecommendedWatcher, (u64, u64))>,
    retry_at: Option<Instant>,
    said_polling: bool,
}

impl DirWatch {
    fn new(options: &FileOptions, follower: &FileFollower, wake: SyncSender<()>) -> DirWatch {
        let mut watch = DirWatch {
            enabled: options.inotify,
            dir: follower.dir.clone(),
            name: follower.name.clone(),
            path: options.path.clone(),
            poll: options.poll_interval,
            wake,
            watcher: None,
            retry_at: None,
            said_polling: false,
        };
        if watch.enabled {
            watch.start();
        } else {
            info!(file = %watch.path.display(), poll = ?watch.poll, "following the log file by polling (inotify off)");
        }
        watch
    }

    fn start(&mut self) {
        let (wake, dir, name) = (self.wake.clone(), self.dir.clone(), self.name.clone());
        let handler = move |event: notify::Result<notify::Event>| {
            let relevant = match &event {
                Ok(event) => {
                    event.need_rescan()
                        || event.paths.is_empty()
                        || event.paths.iter().any(|p| {
                            *p == dir
                                || p.file_name()
                                    .is_some_and(|f| f.as_bytes().starts_with(name.as_bytes()))
                        })
                }
                Err(_) => true,
            };
            if relevant {
                // Full means a wake-up is pending already.
                let _ = wake.try_send(());
            }
        };
        let watched = fs::metadata(&self.dir).and_then(|m| {
            let mut watcher = notify::recommended_watcher(handler).map_err(io::Error::other)?;
            watcher
                .watch(&self.dir, RecursiveMode::NonRecursive)
                .map_err(io::Error::other)?;
            Ok((watcher, (m.dev(), m.ino())))
        });
        match watched {
            Ok(watcher) => {
                info!(
                    file = %self.path.display(), dir = %self.dir.display(), poll = ?self.poll,
                    "following the log file with inotify on its directory, and polling"
                );
                self.watcher = Some(watcher);
                self.retry_at = None;
                self.said_polling = false;
            }
            Err(e) => {
                if !self.said_polling {
                    warn!(
                        file = %self.path.display(), dir = %self.dir.display(), poll = ?self.poll,
                        "no inotify on the log file's directory ({e}): following it by polling"
                    );
                    self.said_polling = true;
                }
                self.retry_at = Some(Instant::now() + WATCH_RETRY);
            }
        }
    }

    /// The path is missing: if its directory went too, the watch is dead.
    fn check_dir(&mut self) {
        let Some((_, id)) = &self.watcher else { return };
        match fs::metadata(&self.dir) {
            Ok(m) if (m.dev(), m.ino()) == *id => {}
            _ => {
                debug!(dir = %self.dir.display(), "log directory gone or replaced: watching again");
                self.watcher = None;
                self.retry_at = Some(Instant::now());
            }
        }
    }

    fn retry_if_due(&mut self) {
        if self.enabled
            && self.watcher.is_none()
            && self.retry_at.is_some_and(|at| Instant::now() >= at)
        {
            self.start();
        }
    }
}

/// Runs a [`FileFollower`] on the blocking pool until `stop`.
///
/// The thread waits on a std channel, woken by inotify, by the stop token (through a
/// small task), or by the poll timeout; it uses no Tokio timer, so a runtime shutting
/// down (which drops that task) ends it too instead of making it panic.
pub(super) fn spawn(
    options: FileOptions,
    tx: mpsc::Sender<LogLine>,
    stop: CancellationToken,
    position: watch::Sender<Option<FilePosition>>,
    stats: Arc<FollowStats>,
) -> JoinHandle<anyhow::Result<()>> {
    let rt = Handle::current();
    let (wake, woken) = sync_channel::<()>(1);
    let alive = Arc::new(());
    let runtime_alive = Arc::downgrade(&alive);
    let guard = {
        let (wake, stop) = (wake.clone(), stop.clone());
        tokio::spawn(async move {
            let _alive = alive;
            stop.cancelled().await;
            let _ = wake.try_send(());
        })
    };
    tokio::task::spawn_blocking(move || {
        let mut follower = FileFollower::new(&options, stats)?;
        let mut watch = DirWatch::new(&options, &follower, wake.clone());
        let mut sink = ChannelSink {
            tx,
            stop: stop.clone(),
            rt,
            position,
        };
        while !stop.is_cancelled() && !sink.tx.is_closed() && runtime_alive.strong_count() > 0 {
            match follower.step(&mut sink) {
                Step::Stop => break,
                Step::PathMissing => watch.check_dir(),
                Step::Idle => {}
            }
            watch.retry_if_due();
            match woken.recv_timeout(options.poll_interval) {
                Ok(()) | Err(RecvTimeoutError::Timeout) => {}
                Err(RecvTimeoutError::Disconnected) => unreachable!("`wake` is held here"),
            }
        }
        guard.abort();
        debug!(file = %options.path.display(), "stopped following the log file");
        Ok(())
    })
}

#[cfg(test)]
mod tests;
