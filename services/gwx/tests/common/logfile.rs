//! Log files for the follower tests: shared by `tests/bans_follow.rs` (through
//! `common`) and the unit tests in `src/bans/follow/file/tests.rs` (which include this
//! file by path), so it uses nothing but std and tempfile.

use std::fs::OpenOptions;
use std::io::Write;
use std::path::{Path, PathBuf};

/// Appends `data` to the file at `path`, creating the file if need be.
pub fn append(path: &Path, data: impl AsRef<[u8]>) {
    OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .unwrap()
        .write_all(data.as_ref())
        .unwrap();
}

/// Cuts the file at `path` to nothing, as logrotate's `copytruncate` does.
pub fn truncate(path: &Path) {
    OpenOptions::new()
        .write(true)
        .open(path)
        .unwrap()
        .set_len(0)
        .unwrap();
}

/// A fresh directory with the file `name` in it, holding `content`; the directory
/// lives as long as the returned guard.
pub fn log_file(name: &str, content: impl AsRef<[u8]>) -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join(name);
    append(&log, content);
    (dir, log)
}
