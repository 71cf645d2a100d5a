//! gwx's log sources against real files and a real process: lines appended in pieces,
//! logrotate-style rename-and-create while a writer keeps writing, copytruncate, a file
//! that appears late, resume after a restart, and a `journalctl` that exits.
//!
//! Timeouts here only keep a broken follower from hanging the test; nothing asserts
//! how fast a line arrives.

mod common;

use std::fs::{self, OpenOptions};
use std::io::Write;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering::Relaxed;
use std::time::{Duration, Instant};

use common::logfile::{append, log_file, truncate};
use gwx::bans::follow::{
    self, FileOptions, FilePosition, Handle, JournalOptions, LogLine, Position, SourceSpec,
};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

/// Long enough that only a lost line reaches it.
const PATIENCE: Duration = Duration::from_secs(60);

async fn next(rx: &mut mpsc::Receiver<LogLine>) -> String {
    tokio::time::timeout(PATIENCE, rx.recv())
        .await
        .expect("a line within the timeout")
        .expect("the source still running")
        .text
}

async fn take(rx: &mut mpsc::Receiver<LogLine>, n: usize) -> Vec<String> {
    let mut lines = Vec::with_capacity(n);
    for _ in 0..n {
        lines.push(next(rx).await);
    }
    lines
}

/// Waits until the follower has opened a file, and returns where it stands.
async fn opened(follow: &Handle) -> FilePosition {
    tokio::time::timeout(PATIENCE, follow.position().opened())
        .await
        .expect("the file opened within the timeout")
        .expect("the follower running")
}

/// Stops the source, checks it ended cleanly, drains the channel, and returns the
/// position to save.
async fn stop(
    follow: Handle,
    stop: CancellationToken,
    mut rx: mpsc::Receiver<LogLine>,
) -> (Option<FilePosition>, Vec<String>) {
    stop.cancel();
    let position = follow.position();
    tokio::time::timeout(PATIENCE, follow.join())
        .await
        .expect("the source stops")
        .expect("the source ended without error");
    let mut rest = Vec::new();
    while let Some(line) = rx.recv().await {
        rest.push(line.text);
    }
    (position.get(), rest)
}

/// [`stop`], checking the channel held nothing more; returns the position to save.
async fn stop_drained(
    follow: Handle,
    token: CancellationToken,
    rx: mpsc::Receiver<LogLine>,
) -> Option<FilePosition> {
    let (position, rest) = stop(follow, token, rx).await;
    assert!(rest.is_empty(), "nothing else: {rest:?}");
    position
}

fn file_source(
    options: FileOptions,
    capacity: usize,
) -> (Handle, CancellationToken, mpsc::Receiver<LogLine>) {
    let (tx, rx) = mpsc::channel(capacity);
    let token = CancellationToken::new();
    let follow = follow::start_file(options, tx, token.clone());
    (follow, token, rx)
}

/// [`file_source`], once it has opened the file.
async fn opened_source(
    options: FileOptions,
    capacity: usize,
) -> (Handle, CancellationToken, mpsc::Receiver<LogLine>) {
    let (follow, token, rx) = file_source(options, capacity);
    opened(&follow).await;
    (follow, token, rx)
}

/// From the start of the file rather than its end.
fn from_start(log: &Path) -> FileOptions {
    FileOptions {
        from_start: true,
        ..FileOptions::new(log)
    }
}

/// Resuming at `resume`.
fn resume(log: &Path, resume: Option<FilePosition>) -> FileOptions {
    FileOptions {
        resume,
        ..FileOptions::new(log)
    }
}

fn line(i: usize) -> String {
    // Varying lengths, so that lines straddle read chunks and pieces differ.
    format!(
        "{i:06} sshd[{}]: Failed password for root from 192.0.2.{} port {}",
        1000 + i % 97,
        i % 250,
        40000 + i
    )
}

fn expected(range: std::ops::RangeInclusive<usize>) -> Vec<String> {
    range.map(line).collect()
}

/// The lines of `range` as written to the log, each ending in a newline.
fn written(range: std::ops::RangeInclusive<usize>) -> String {
    range.map(|i| format!("{}\n", line(i))).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lines_written_in_pieces_arrive_whole() {
    let (_dir, log) = log_file("auth.log", "old line, before the follower started\n");
    let (follow, token, mut rx) = opened_source(FileOptions::new(&log), 16).await;

    let mut writer = OpenOptions::new().append(true).open(&log).unwrap();
    for piece in [
        "Jun 10 06:13:20 gw1 sshd[1]: Failed pass",
        "word for root",
        " from 192.0.2.7\nJun 10 06:13:21 ",
        "gw1 sshd[1]: next\n",
    ] {
        writer.write_all(piece.as_bytes()).unwrap();
        tokio::time::sleep(Duration::from_millis(30)).await;
    }
    assert_eq!(
        take(&mut rx, 2).await,
        [
            "Jun 10 06:13:20 gw1 sshd[1]: Failed password for root from 192.0.2.7",
            "Jun 10 06:13:21 gw1 sshd[1]: next"
        ]
    );
    let position = stop_drained(follow, token, rx).await;
    assert_eq!(position.unwrap().offset, fs::metadata(&log).unwrap().len());
}

/// A writer thread writes `n` numbered lines, some in several `write()` calls, and
/// rotates the file every `every` lines as logrotate does: rename to `.1` (removing the
/// previous `.1`), a few more lines into the renamed file (the daemon has not reopened
/// yet), sometimes ending in an incomplete line, then create the file again and carry on
/// there. Before the next rotation it waits until the follower has moved to the new file:
/// two rotations within one look of the follower would hide the middle file from any
/// path-based follower.
fn rotating_writer(
    log: PathBuf,
    n: usize,
    every: usize,
    position: Position,
) -> std::thread::JoinHandle<usize> {
    std::thread::spawn(move || {
        let rotated = log.with_extension("log.1");
        let mut file = OpenOptions::new().append(true).open(&log).unwrap();
        let mut rotations = 0;
        let mut i = 1;
        while i <= n {
            let text = line(i);
            if i % 7 == 0 {
                // In pieces.
                let (a, b) = text.split_at(text.len() / 3);
                file.write_all(a.as_bytes()).unwrap();
                file.write_all(b.as_bytes()).unwrap();
                file.write_all(b"\n").unwrap();
            } else {
                file.write_all(format!("{text}\n").as_bytes()).unwrap();
            }
            i += 1;
            if i % every == 0 && i + 3 <= n {
                let _ = fs::remove_file(&rotated);
                fs::rename(&log, &rotated).unwrap();
                // The daemon writes on into the renamed file; every other time its last
                // line there is cut short by the rotation.
                for _ in 0..2 {
                    file.write_all(format!("{}\n", line(i)).as_bytes()).unwrap();
                    i += 1;
                }
                if rotations % 2 == 0 {
                    file.write_all(line(i).as_bytes()).unwrap();
                    i += 1;
                }
                file = OpenOptions::new()
                    .create_new(true)
                    .append(true)
                    .open(&log)
                    .unwrap();
                let inode = file.metadata().unwrap().ino();
                file.write_all(format!("{}\n", line(i)).as_bytes()).unwrap();
                i += 1;
                rotations += 1;
                let deadline = Instant::now() + PATIENCE;
                while position.get().is_none_or(|p| p.inode != inode) {
                    assert!(
                        Instant::now() < deadline,
                        "the follower never moved to the new file"
                    );
                    std::thread::sleep(Duration::from_millis(1));
                }
            }
        }
        rotations
    })
}

async fn follow_through_rotations(options: FileOptions, n: usize, every: usize) {
    let log = options.path.clone();
    append(&log, "");
    let (follow, token, mut rx) = opened_source(options, 64).await;
    let writer = rotating_writer(log, n, every, follow.position());
    let lines = take(&mut rx, n).await;
    let rotations = writer.join().unwrap();
    assert!(rotations >= 3);
    // Exactly 1..=n, in order: nothing lost, nothing twice.
    if lines != expected(1..=n) {
        let first_bad = lines.iter().zip(expected(1..=n)).position(|(a, b)| *a != b);
        panic!("lines differ, first at index {first_bad:?}");
    }
    assert_eq!(follow.stats().rotations.load(Relaxed), rotations as u64);
    stop_drained(follow, token, rx).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn logrotate_rename_and_create_while_writing_loses_and_repeats_nothing() {
    let dir = tempfile::tempdir().unwrap();
    follow_through_rotations(FileOptions::new(dir.path().join("auth.log")), 5000, 400).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn polling_alone_follows_rotations_too() {
    // As on file systems without inotify.
    let dir = tempfile::tempdir().unwrap();
    let mut options = FileOptions::new(dir.path().join("auth.log"));
    options.inotify = false;
    options.poll_interval = Duration::from_millis(20);
    follow_through_rotations(options, 1200, 300).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn copytruncate_restarts_at_the_start() {
    let (dir, log) = log_file("app.log", "");
    let (follow, token, mut rx) = opened_source(FileOptions::new(&log), 16).await;
    // The daemon keeps its file open with O_APPEND, as syslog daemons do.
    let mut writer = OpenOptions::new().append(true).open(&log).unwrap();
    let mut write = |range| writer.write_all(written(range).as_bytes()).unwrap();
    write(1..=50);
    assert_eq!(take(&mut rx, 50).await, expected(1..=50));

    // copytruncate, then more than before: the file is soon longer than our offset.
    fs::copy(&log, dir.path().join("app.log.1")).unwrap();
    truncate(&log);
    write(51..=200);
    assert_eq!(take(&mut rx, 150).await, expected(51..=200));

    // And again, then less than before.
    truncate(&log);
    write(201..=205);
    assert_eq!(take(&mut rx, 5).await, expected(201..=205));
    assert_eq!(follow.stats().truncations.load(Relaxed), 2);
    let position = stop_drained(follow, token, rx).await;
    assert_eq!(position.unwrap().offset, fs::metadata(&log).unwrap().len());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_file_created_after_the_start_is_read_from_its_start() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("late.log");
    let spec = SourceSpec::File {
        path: log.clone(),
        from_start: false,
        resume: None,
    };
    let (tx, mut rx) = mpsc::channel(16);
    let token = CancellationToken::new();
    let follow = follow::start(spec, tx, token.clone());
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert!(follow.position().get().is_none());
    append(&log, written(1..=2));
    assert_eq!(take(&mut rx, 2).await, expected(1..=2));
    opened(&follow).await;
    stop_drained(follow, token, rx).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restart_resumes_where_the_last_run_stopped() {
    let (dir, log) = log_file("auth.log", written(1..=3));
    let (follow, token, mut rx) = file_source(from_start(&log), 16);
    assert_eq!(take(&mut rx, 3).await, expected(1..=3));
    let saved = stop_drained(follow, token, rx).await;
    // Through the state file.
    let saved: FilePosition =
        serde_json::from_str(&serde_json::to_string(&saved.unwrap()).unwrap()).unwrap();

    // Written while gwx was down: read once, after the restart.
    append(&log, written(4..=5));
    let (follow, token, mut rx) = file_source(resume(&log, Some(saved)), 16);
    assert_eq!(take(&mut rx, 2).await, expected(4..=5));
    append(&log, written(6..=6));
    assert_eq!(next(&mut rx).await, line(6));
    let saved = stop_drained(follow, token, rx).await;

    // Rotated while down: the rest of the rotated file, then the new one.
    append(&log, written(7..=7));
    fs::rename(&log, dir.path().join("auth.log.1")).unwrap();
    append(&log, written(8..=8));
    let (follow, token, mut rx) = file_source(resume(&log, saved), 16);
    assert_eq!(take(&mut rx, 2).await, expected(7..=8));
    let saved = stop_drained(follow, token, rx).await;

    // Replaced by a different file while down: the new one from its start.
    fs::remove_file(&log).unwrap();
    append(&log, written(9..=9));
    let (follow, token, mut rx) = file_source(resume(&log, saved), 16);
    assert_eq!(next(&mut rx).await, line(9));
    stop_drained(follow, token, rx).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_reader_slows_the_follower_without_loss() {
    let n = 30_000;
    let (_dir, log) = log_file("big.log", written(1..=n));
    let (follow, token, mut rx) = file_source(from_start(&log), 1);
    let lines = take(&mut rx, n).await;
    assert!(lines == expected(1..=n), "all lines, in order");
    stop_drained(follow, token, rx).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stop_ends_a_follower_blocked_on_a_full_channel() {
    let (_dir, log) = log_file("big.log", written(1..=100));
    let (follow, token, mut rx) = file_source(from_start(&log), 1);
    assert_eq!(next(&mut rx).await, line(1));
    let (position, rest) = stop(follow, token, rx).await;
    // The saved position is just past the last line the channel took.
    let taken = 1 + rest.len();
    assert_eq!(rest, expected(2..=taken));
    let offset: usize = (1..=taken).map(|i| line(i).len() + 1).sum();
    assert_eq!(position.unwrap().offset, offset as u64);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dropping_the_receiver_ends_the_source() {
    let (_dir, log) = log_file("app.log", "");
    let (follow, _token, rx) = opened_source(FileOptions::new(&log), 1).await;
    drop(rx);
    tokio::time::timeout(PATIENCE, follow.join())
        .await
        .expect("the source ends")
        .expect("without error");
}

/// Entries as `journalctl -o json` writes them (recorded shapes; the hosts, pids and
/// cursors are made up).
const ENTRY_SSHD: &str = r#"{"__CURSOR":"s=5b1f;i=101;b=8f0e;m=1;t=61a84d1a3e241;x=1","__REALTIME_TIMESTAMP":"1718000000123456","__MONOTONIC_TIMESTAMP":"760949786","_TRANSPORT":"syslog","PRIORITY":"5","SYSLOG_FACILITY":"10","SYSLOG_IDENTIFIER":"sshd","SYSLOG_PID":"2345","MESSAGE":"Invalid user admin from 192.0.2.7 port 52144","_PID":"2345","_COMM":"sshd","_SYSTEMD_UNIT":"ssh.service","_HOSTNAME":"gw1","_SOURCE_REALTIME_TIMESTAMP":"1718000000120001"}"#;
/// `MESSAGE` "Failed password for r\xf6ot from 192.0.2.8": not UTF-8, so an array of bytes.
const ENTRY_BYTES: &str = r#"{"__CURSOR":"s=5b1f;i=102;b=8f0e;m=2;t=61a84d1a3e242;x=2","__REALTIME_TIMESTAMP":"1718000001000000","SYSLOG_IDENTIFIER":"sshd","_PID":"2346","MESSAGE":[70,97,105,108,101,100,32,112,97,115,115,119,111,114,100,32,102,111,114,32,114,246,111,116,32,102,114,111,109,32,49,57,50,46,48,46,50,46,56],"_SYSTEMD_UNIT":"ssh.service","_HOSTNAME":"gw1"}"#;
const ENTRY_LATER: &str = r#"{"__CURSOR":"s=5b1f;i=103;b=8f0e;m=3;t=61a84d1a3e243;x=3","__REALTIME_TIMESTAMP":"1718000002000000","SYSLOG_IDENTIFIER":"sshd","SYSLOG_PID":"2347","MESSAGE":"Connection closed by 192.0.2.9 port 40000 [preauth]","_SYSTEMD_UNIT":"ssh.service","_HOSTNAME":"gw1"}"#;

#[test]
fn journal_entries_read_as_fail2ban_reads_them() {
    let sshd = follow::parse_journal_entry(ENTRY_SSHD.as_bytes())
        .unwrap()
        .unwrap();
    assert_eq!(
        sshd.text,
        "gw1 sshd[2345]: Invalid user admin from 192.0.2.7 port 52144"
    );
    assert_eq!(
        sshd.source_time.unwrap().timestamp_micros(),
        1_718_000_000_120_001
    );
    assert_eq!(sshd.unit.as_deref(), Some("ssh.service"));
    let bytes = follow::parse_journal_entry(ENTRY_BYTES.as_bytes())
        .unwrap()
        .unwrap();
    assert_eq!(
        bytes.text,
        "gw1 sshd[2346]: Failed password for r\u{fffd}ot from 192.0.2.8"
    );
    assert_eq!(
        bytes.source_time.unwrap().timestamp_micros(),
        1_718_000_001_000_000
    );
    assert!(follow::parse_journal_entry(b"not json").is_err());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn journalctl_exiting_is_restarted_after_the_last_entry() {
    // A test double for journalctl: no journald runs on this machine, so this script
    // stands in for `journalctl -f -o json` and prints recorded entries. Run 1 prints two
    // entries and fails; run 2 (asked to continue after the second entry) fails at once,
    // as journalctl does with a cursor the journal no longer has; run 3 prints one entry
    // and keeps running until killed.
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    fs::write(
        d.join("run1.json"),
        format!("{ENTRY_SSHD}\n{ENTRY_BYTES}\n"),
    )
    .unwrap();
    fs::write(d.join("run3.json"), format!("{ENTRY_LATER}\n")).unwrap();
    let script = d.join("journalctl.sh");
    fs::write(
        &script,
        r#"dir=$(dirname "$0")
n=$(cat "$dir/runs" 2>/dev/null || echo 0); n=$((n + 1)); echo $n > "$dir/runs"
printf '%s\n' "$*" > "$dir/args.$n"
case $n in
1) cat "$dir/run1.json"; echo "journalctl: boom" >&2; exit 3 ;;
2) echo "Failed to seek to cursor: Invalid argument" >&2; exit 1 ;;
*) echo $$ > "$dir/pid"; cat "$dir/run3.json"; exec sleep 1000 ;;
esac
"#,
    )
    .unwrap();
    // Through sh, not executed directly: a file just written cannot always be executed
    // at once by a multi-threaded process (ETXTBSY).
    let mut command = vec!["/bin/sh".to_owned(), script.display().to_string()];
    command.extend(
        follow::journal_command("_SYSTEMD_UNIT=ssh.service")[1..]
            .iter()
            .cloned(),
    );
    let mut options = JournalOptions::new(command);
    options.restart_delay = Duration::from_millis(10);
    let (tx, mut rx) = mpsc::channel(16);
    let token = CancellationToken::new();
    let follow = follow::start_journal(options, tx, token.clone());

    assert_eq!(
        take(&mut rx, 3).await,
        [
            "gw1 sshd[2345]: Invalid user admin from 192.0.2.7 port 52144",
            "gw1 sshd[2346]: Failed password for r\u{fffd}ot from 192.0.2.8",
            "gw1 sshd[2347]: Connection closed by 192.0.2.9 port 40000 [preauth]",
        ]
    );
    let args = |n: usize| fs::read_to_string(d.join(format!("args.{n}"))).unwrap();
    assert_eq!(args(1), "-f -o json -n 0 _SYSTEMD_UNIT=ssh.service\n");
    assert_eq!(
        args(2),
        "-f -o json _SYSTEMD_UNIT=ssh.service --lines=all --after-cursor=s=5b1f;i=102;b=8f0e;m=2;t=61a84d1a3e242;x=2\n"
    );
    assert_eq!(args(3), args(1));
    assert_eq!(follow.stats().restarts.load(Relaxed), 2);

    let stats = follow.stats().clone();
    let (position, rest) = stop(follow, token, rx).await;
    assert!(position.is_none() && rest.is_empty());
    assert_eq!(stats.lines.load(Relaxed), 3);
    // The running journalctl was killed and reaped.
    let pid = fs::read_to_string(d.join("pid")).unwrap();
    assert!(!Path::new(&format!("/proc/{}", pid.trim())).exists());
}
