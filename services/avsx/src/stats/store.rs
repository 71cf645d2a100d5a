//! The verdict store: a JSON-lines file the daemon appends one line to per judged
//! message.
//!
//! Each append is one `write(2)` of a whole line to a file opened with `O_APPEND`, so
//! lines never interleave: not between threads (a mutex around the file) and not
//! between processes (the kernel places every append at the end). No `fsync`: a crash
//! may cost the last verdicts, which statistics can afford; the mail path must not wait
//! for a disk flush.

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use anyhow::Context;

use super::Verdict;

/// An open verdict store.
#[derive(Debug)]
pub struct Store {
    path: PathBuf,
    file: Mutex<Inner>,
}

#[derive(Debug)]
struct Inner {
    file: File,
    /// The last write failed, perhaps halfway through a line: the next starts with a
    /// line break, so only the torn line is lost, not the one after it too.
    torn: bool,
}

impl Store {
    /// Opens `path` for appending, creating it (mode 0640) and its parent directory.
    pub fn open(path: &Path) -> anyhow::Result<Store> {
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir)
                .with_context(|| format!("creating the stats directory {}", dir.display()))?;
        }
        let file = OpenOptions::new()
            .create(true)
            .append(true)
            .mode(0o640)
            .open(path)
            .with_context(|| format!("opening the stats store {}", path.display()))?;
        Ok(Store {
            path: path.to_owned(),
            file: Mutex::new(Inner { file, torn: false }),
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Appends `v` as one line. A write error (disk full, ...) is returned for the
    /// caller to log; it never panics, and a half-written line is left for
    /// [`report`](super::report()) to skip.
    pub fn append(&self, v: &Verdict) -> anyhow::Result<()> {
        // Serialised outside the lock: the lock only covers the write.
        let mut line = vec![b'\n'];
        serde_json::to_writer(&mut line, v).context("serialising a verdict")?;
        line.push(b'\n');
        // A thread that panicked while holding the lock left no half state behind:
        // the file is all there is.
        let mut inner = self.file.lock().unwrap_or_else(|e| e.into_inner());
        let line = if inner.torn { &line[..] } else { &line[1..] };
        let result = inner.file.write_all(line);
        inner.torn = result.is_err();
        result.with_context(|| format!("appending to the stats store {}", self.path.display()))
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashSet;
    use std::sync::Arc;

    use chrono::{TimeZone, Utc};

    use super::*;

    fn verdict(i: u64) -> Verdict {
        Verdict {
            time: Utc.timestamp_opt(1_780_000_000 + i as i64, 0).unwrap(),
            score: Some(i as f64 / 10.0),
            action: "clean".to_owned(),
            size: i,
        }
    }

    #[test]
    fn open_creates_the_directory_and_appends() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("lib/avsx/verdicts.jsonl");
        Store::open(&path).unwrap().append(&verdict(1)).unwrap();
        // A second open (a restart) appends, it does not truncate.
        Store::open(&path).unwrap().append(&verdict(2)).unwrap();
        let text = std::fs::read_to_string(&path).unwrap();
        let lines: Vec<Verdict> = text
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        assert_eq!(lines, [verdict(1), verdict(2)]);
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&path).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o640);
    }

    #[test]
    fn appends_from_many_threads_and_two_handles_stay_whole_lines() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("verdicts.jsonl");
        // Two handles on one file stand for two processes.
        let stores = [
            Arc::new(Store::open(&path).unwrap()),
            Arc::new(Store::open(&path).unwrap()),
        ];
        let threads: Vec<_> = (0..8u64)
            .map(|t| {
                let store = stores[t as usize % 2].clone();
                std::thread::spawn(move || {
                    for i in 0..250 {
                        let mut v = verdict(t * 1000 + i);
                        // Long lines make torn writes likelier, if they could happen.
                        v.action = format!("action-{t}-{}", "x".repeat(i as usize));
                        store.append(&v).unwrap();
                    }
                })
            })
            .collect();
        for t in threads {
            t.join().unwrap();
        }
        let text = std::fs::read_to_string(&path).unwrap();
        assert!(text.ends_with('\n'));
        let mut seen = HashSet::new();
        for line in text.lines() {
            let v: Verdict = serde_json::from_str(line).expect("a whole line");
            assert!(seen.insert(v.size), "{} twice", v.size);
        }
        assert_eq!(seen.len(), 8 * 250);
    }

    #[test]
    fn after_a_failed_write_the_next_line_starts_fresh() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("verdicts.jsonl");
        std::fs::write(&path, b"{\"time\":\"2026-").unwrap(); // torn by a full disk
        let store = Store::open(&path).unwrap();
        store.file.lock().unwrap().torn = true;
        store.append(&verdict(1)).unwrap();
        store.append(&verdict(2)).unwrap();
        let text = std::fs::read_to_string(&path).unwrap();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 3, "{text}");
        assert_eq!(
            serde_json::from_str::<Verdict>(lines[1]).unwrap(),
            verdict(1)
        );
        assert_eq!(
            serde_json::from_str::<Verdict>(lines[2]).unwrap(),
            verdict(2)
        );
    }

    #[test]
    fn an_unwritable_store_is_an_error_with_the_path() {
        let dir = tempfile::tempdir().unwrap();
        // A directory where the file should be.
        let err = Store::open(dir.path()).unwrap_err();
        assert!(format!("{err:#}").contains(&dir.path().display().to_string()));
        // /dev/full: every write fails with ENOSPC.
        if Path::new("/dev/full").exists() {
            let store = Store::open(Path::new("/dev/full")).unwrap();
            let err = store.append(&verdict(1)).unwrap_err();
            let text = format!("{err:#}");
            assert!(text.contains("/dev/full"), "{text}");
            assert!(store.file.lock().unwrap().torn);
        }
    }
}
