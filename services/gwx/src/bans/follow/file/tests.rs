//! The follower driven step by step against real files: each step sees exactly the
//! file system state the test made, so rotation and truncation cases are deterministic.

use std::fs::{self, OpenOptions};
use std::io::Write;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

use super::*;

#[path = "../../../../tests/common/logfile.rs"]
mod logfile;

use logfile::{append, log_file, truncate};

#[derive(Default)]
struct Collect {
    lines: Vec<String>,
    position: Option<FilePosition>,
    stop_after: Option<usize>,
}

impl Sink for Collect {
    fn line(&mut self, line: LogLine) -> ControlFlow<()> {
        assert!(line.source_time.is_none() && line.unit.is_none());
        if Some(self.lines.len()) == self.stop_after {
            return ControlFlow::Break(());
        }
        self.lines.push(line.text);
        ControlFlow::Continue(())
    }
    fn position(&mut self, position: FilePosition) {
        self.position = Some(position);
    }
}

impl Collect {
    fn take(&mut self) -> Vec<String> {
        std::mem::take(&mut self.lines)
    }
}

/// A follower, and an empty sink for it.
fn follower(options: FileOptions) -> (FileFollower, Collect) {
    let f = FileFollower::new(&options, Arc::new(FollowStats::default())).unwrap();
    (f, Collect::default())
}

/// A follower that has opened the file, at its end, and an empty sink for it.
fn opened(options: FileOptions) -> (FileFollower, Collect) {
    let (mut f, mut out) = follower(options);
    assert_eq!(f.step(&mut out), Step::Idle);
    assert!(out.lines.is_empty());
    (f, Collect::default())
}

/// One step of `f`: the lines it gave.
fn read(f: &mut FileFollower, out: &mut Collect) -> Vec<String> {
    f.step(out);
    out.take()
}

/// From the start of the file rather than its end.
fn from_start(log: &Path) -> FileOptions {
    FileOptions {
        from_start: true,
        ..FileOptions::new(log)
    }
}

fn id(path: &Path) -> (u64, u64) {
    let m = fs::metadata(path).unwrap();
    (m.dev(), m.ino())
}

#[test]
fn starts_at_the_end_but_keeps_an_incomplete_last_line() {
    let (_dir, log) = log_file("auth.log", "old 1\nold 2\npar");
    let (mut f, mut out) = follower(FileOptions::new(&log));
    assert_eq!(f.step(&mut out), Step::Idle);
    assert!(out.take().is_empty());
    // The position is the start of the incomplete line.
    assert_eq!(out.position.unwrap().offset, 12);
    append(&log, "tial\nnew\n");
    assert_eq!(f.step(&mut out), Step::Idle);
    assert_eq!(out.take(), ["partial", "new"]);
    let len = fs::metadata(&log).unwrap().len();
    assert_eq!(out.position, f.position());
    assert_eq!(out.position.unwrap().offset, len);
}

#[test]
fn from_start_reads_everything() {
    let (_dir, log) = log_file("auth.log", b"one\r\ntwo\n\xff\n");
    let (mut f, mut out) = follower(from_start(&log));
    assert_eq!(read(&mut f, &mut out), ["one", "two", "\u{fffd}"]);
}

#[test]
fn a_missing_file_is_awaited_then_read_from_its_start() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("later.log");
    let (mut f, mut out) = follower(FileOptions::new(&log));
    assert_eq!(f.step(&mut out), Step::PathMissing);
    assert_eq!(f.step(&mut out), Step::PathMissing);
    append(&log, "first\nsecond\n");
    assert_eq!(f.step(&mut out), Step::Idle);
    assert_eq!(out.take(), ["first", "second"]);
}

#[test]
fn rename_rotation_finishes_the_old_file_before_the_new_one() {
    let (dir, log) = log_file("auth.log", "");
    let rotated = dir.path().join("auth.log.1");
    let mut options = FileOptions::new(&log);
    options.linger = Duration::from_secs(3600);
    let (mut f, mut out) = opened(options);
    append(&log, "a\n");
    assert_eq!(read(&mut f, &mut out), ["a"]);

    // logrotate: rename, create; the daemon writes to the old file until told to reopen.
    let old = OpenOptions::new().append(true).open(&log).unwrap();
    fs::rename(&log, &rotated).unwrap();
    (&old).write_all(b"b\n").unwrap();
    append(&log, "");
    assert_eq!(f.step(&mut out), Step::Idle);
    assert_eq!(out.take(), ["b"]);
    // The new file is empty: the old one is still the one written to.
    (&old).write_all(b"c, cut short by the rotation").unwrap();
    assert_eq!(f.step(&mut out), Step::Idle);
    assert!(out.take().is_empty());
    append(&log, "d\n");
    assert_eq!(f.step(&mut out), Step::Idle);
    assert_eq!(out.take(), ["c, cut short by the rotation", "d"]);
    let (dev, inode) = id(&log);
    let position = out.position.unwrap();
    assert_eq!(
        (position.dev, position.inode, position.offset),
        (dev, inode, 2)
    );
    assert_eq!(position.head, head_hash(b"d\n"));
    assert_eq!(f.stats.rotations.load(Relaxed), 1);

    // A late writer of the old file is still heard while it lingers.
    (&old).write_all(b"late\n").unwrap();
    append(&log, "e\n");
    assert_eq!(read(&mut f, &mut out), ["late", "e"]);
    // The position stays on the new file.
    assert_eq!(out.position.unwrap().inode, inode);
}

#[test]
fn without_linger_the_old_file_is_closed_at_the_switch() {
    let (_dir, log) = log_file("app.log", "");
    let mut options = FileOptions::new(&log);
    options.linger = Duration::ZERO;
    let (mut f, mut out) = opened(options);
    f.step(&mut out);
    let old = OpenOptions::new().append(true).open(&log).unwrap();
    fs::remove_file(&log).unwrap();
    (&old).write_all(b"1\n").unwrap();
    assert_eq!(f.step(&mut out), Step::PathMissing);
    assert_eq!(out.take(), ["1"]);
    append(&log, "2\n");
    assert_eq!(read(&mut f, &mut out), ["2"]);
    (&old).write_all(b"lost\n").unwrap();
    assert!(read(&mut f, &mut out).is_empty());
}

#[test]
fn truncation_to_less_restarts_at_zero() {
    let (dir, log) = log_file("app.log", "");
    let (mut f, mut out) = opened(FileOptions::new(&log));
    append(&log, "line 1\nline 2\n");
    assert_eq!(read(&mut f, &mut out), ["line 1", "line 2"]);
    fs::copy(&log, dir.path().join("app.log.1")).unwrap();
    truncate(&log);
    append(&log, "x\n");
    assert_eq!(read(&mut f, &mut out), ["x"]);
    assert_eq!(f.stats.truncations.load(Relaxed), 1);
    assert_eq!(out.position.unwrap().offset, 2);
}

#[test]
fn truncation_rewritten_past_the_offset_is_noticed_by_the_first_bytes() {
    let (_dir, log) = log_file("app.log", "");
    let (mut f, mut out) = opened(FileOptions::new(&log));
    append(&log, "Jan  1 00:00:01 one\n");
    assert_eq!(read(&mut f, &mut out), ["Jan  1 00:00:01 one"]);
    truncate(&log);
    append(&log, "Jan  1 00:00:02 two\nJan  1 00:00:03 three\n");
    assert_eq!(
        read(&mut f, &mut out),
        ["Jan  1 00:00:02 two", "Jan  1 00:00:03 three"]
    );
    assert_eq!(f.stats.truncations.load(Relaxed), 1);
}

#[test]
fn a_writer_without_append_leaves_a_hole_that_is_skipped() {
    let (_dir, log) = log_file("app.log", "");
    let (mut f, mut out) = opened(FileOptions::new(&log));
    let writer = OpenOptions::new().write(true).open(&log).unwrap();
    writer.write_all_at(b"line 1\nline 2\n", 0).unwrap();
    assert_eq!(read(&mut f, &mut out), ["line 1", "line 2"]);
    truncate(&log);
    // The writer goes on at its own offset: 14 NUL bytes, then its line.
    writer.write_all_at(b"line 3\n", 14).unwrap();
    assert_eq!(read(&mut f, &mut out), ["line 3"]);
}

#[test]
fn a_deleted_file_is_read_to_its_end_and_its_successor_from_its_start() {
    let (_dir, log) = log_file("app.log", "");
    let (mut f, mut out) = opened(FileOptions::new(&log));
    f.step(&mut out);
    append(&log, "last of the old\nincomplete");
    fs::remove_file(&log).unwrap();
    assert_eq!(f.step(&mut out), Step::PathMissing);
    assert_eq!(out.take(), ["last of the old"]);
    append(&log, "first of the new\n");
    assert_eq!(f.step(&mut out), Step::Idle);
    assert_eq!(out.take(), ["incomplete", "first of the new"]);
}

/// A log `auth.log` holding "1\n2\n", read through: its directory, the log and the
/// position to save.
fn saved() -> (tempfile::TempDir, PathBuf, FilePosition) {
    let (dir, log) = log_file("auth.log", "1\n2\n");
    let (mut f, mut out) = follower(from_start(&log));
    f.step(&mut out);
    (dir, log, out.position.unwrap())
}

fn resumed(log: &Path, position: FilePosition) -> Vec<String> {
    let (mut f, mut out) = follower(FileOptions {
        resume: Some(position),
        ..FileOptions::new(log)
    });
    read(&mut f, &mut out)
}

#[test]
fn resume_reads_what_was_written_while_down_once() {
    let (_dir, log, position) = saved();
    assert_eq!(position.offset, 4);
    append(&log, "3\n4\n");
    assert_eq!(resumed(&log, position), ["3", "4"]);
}

#[test]
fn resume_finishes_a_file_rotated_while_down() {
    let (dir, log, position) = saved();
    append(&log, "3\n");
    fs::rename(&log, dir.path().join("auth.log.1")).unwrap();
    append(&log, "4\n");
    assert_eq!(resumed(&log, position), ["3", "4"]);
}

#[test]
fn resume_reads_a_replaced_file_from_its_start() {
    let (_dir, log, position) = saved();
    fs::remove_file(&log).unwrap();
    // The new file may well get the old inode number back (tmpfs and ext4 reuse them).
    append(&log, "new 1\n");
    assert_eq!(resumed(&log, position), ["new 1"]);
}

#[test]
fn resume_without_a_head_hash_trusts_the_inode() {
    let (_dir, log, mut position) = saved();
    position.head = 0;
    append(&log, "3\n");
    assert_eq!(resumed(&log, position), ["3"]);
}

#[test]
fn resume_reads_a_file_truncated_while_down_from_its_start() {
    let (_dir, log, position) = saved();
    truncate(&log);
    append(&log, "3\n");
    assert_eq!(resumed(&log, position), ["3"]);
}

#[test]
fn long_lines_are_cut_and_counted() {
    let (_dir, log) = log_file("app.log", "");
    let mut options = FileOptions::new(&log);
    options.max_line = 16;
    let (mut f, mut out) = opened(options);
    f.step(&mut out);
    append(&log, format!("{}\nshort\n", "y".repeat(100_000)));
    assert_eq!(read(&mut f, &mut out), ["y".repeat(16), "short".to_owned()]);
    assert_eq!(f.stats.truncated_lines.load(Relaxed), 1);
    assert_eq!(out.position.unwrap().offset, 100_007);
}

#[test]
fn a_stop_keeps_the_position_of_the_last_line_taken() {
    let (_dir, log) = log_file("app.log", "aa\nbb\ncc\n");
    let (mut f, mut out) = follower(from_start(&log));
    out.stop_after = Some(2);
    assert_eq!(f.step(&mut out), Step::Stop);
    assert_eq!(out.take(), ["aa", "bb"]);
    assert_eq!(out.position.unwrap().offset, 6);
}

#[test]
fn a_path_without_a_file_name_is_refused() {
    let err = FileFollower::new(&FileOptions::new("/"), Arc::default())
        .err()
        .unwrap();
    assert!(matches!(err, FollowError::NotAFile(_)));
}

/// A first line seen in two reads (a read racing the writer) leaves a short kept head;
/// the saved position must still hash exactly the bytes a resume compares, or the
/// restart takes the file for a new one and reads it again from its start.
#[test]
fn a_position_hashes_the_bytes_a_resume_checks() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("access.log");
    append(&path, "198.18.0.7 first line\n");
    let (mut t, _) = Tracked::open(&path, 4096).unwrap();
    // As after a read that saw only part of the line, then the rest.
    t.head.extend_from_slice(b"198.18.0.7 first lin");
    t.read_off = 22;
    t.done_off = 22;
    let position = t.position();
    let (reopened, _) = Tracked::open(&path, 4096).unwrap();
    assert!(reopened.is(&position).unwrap(), "{position:?}");
    // And a different first line is still told apart.
    fs::write(&path, "203.0.113.9 other line\n").unwrap();
    let (other, _) = Tracked::open(&path, 4096).unwrap();
    assert!(!other.is(&position).unwrap());
}
