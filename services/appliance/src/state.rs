//! Atomic state files: a reader sees the old contents or the new, never a torn mix, even
//! if the machine loses power mid-write.
//!
//! The recipe: write a temporary file in the same directory (a rename is only atomic
//! within one filesystem), fsync it, rename it over the target, then fsync the directory
//! so the rename itself is durable.

use std::fs::{File, Permissions};
use std::io::Write;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use serde::Serialize;
use serde::de::DeserializeOwned;

#[derive(Debug, thiserror::Error)]
pub enum StateError {
    #[error("cannot {action} state file {}: {source}", path.display())]
    Io {
        action: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot encode state for {}: {source}", path.display())]
    Encode {
        path: PathBuf,
        #[source]
        source: serde_json::Error,
    },
    #[error("state file {} is corrupt (line {}, column {}): {source}", path.display(), source.line(), source.column())]
    Decode {
        path: PathBuf,
        #[source]
        source: serde_json::Error,
    },
}

/// Permission bits of ordinary state files.
pub const MODE_PUBLIC: u32 = 0o644;
/// Permission bits of files holding secrets (keys, credentials): owner only.
pub const MODE_PRIVATE: u32 = 0o600;

/// Replaces `path` with `bytes` atomically and durably, with permission bits `mode`.
pub fn write_atomic(path: &Path, bytes: &[u8], mode: u32) -> Result<(), StateError> {
    let io = |action, source| StateError::Io {
        action,
        path: path.to_owned(),
        source,
    };
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    // tempfile creates the file with mode 0600, so a secret is never readable by others,
    // not even between create and chmod.
    let mut tmp = tempfile::Builder::new()
        .prefix(".tmp-")
        .tempfile_in(dir)
        .map_err(|e| io("create a temporary file for", e))?;
    tmp.write_all(bytes).map_err(|e| io("write", e))?;
    tmp.as_file()
        .set_permissions(Permissions::from_mode(mode))
        .map_err(|e| io("set permissions of", e))?;
    tmp.as_file().sync_all().map_err(|e| io("fsync", e))?;
    tmp.persist(path)
        .map_err(|e| io("rename into place", e.error))?;
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(|e| io("fsync the directory of", e))
}

/// Writes `value` as pretty JSON, atomically (see [`write_atomic`]).
pub fn write_json<T: Serialize>(path: &Path, value: &T, mode: u32) -> Result<(), StateError> {
    let mut bytes = serde_json::to_vec_pretty(value).map_err(|source| StateError::Encode {
        path: path.to_owned(),
        source,
    })?;
    bytes.push(b'\n');
    write_atomic(path, &bytes, mode)
}

/// Reads a JSON state file; `Ok(None)` when it does not exist yet (a first start).
pub fn read_json<T: DeserializeOwned>(path: &Path) -> Result<Option<T>, StateError> {
    let bytes = match std::fs::read(path) {
        Ok(b) => b,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(source) => {
            return Err(StateError::Io {
                action: "read",
                path: path.to_owned(),
                source,
            });
        }
    };
    serde_json::from_slice(&bytes)
        .map(Some)
        .map_err(|source| StateError::Decode {
            path: path.to_owned(),
            source,
        })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    fn entries(dir: &Path) -> Vec<String> {
        let mut names: Vec<String> = std::fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        names.sort();
        names
    }

    #[test]
    fn replaces_contents_and_leaves_no_temporary_files() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("bans.json");
        write_atomic(&path, b"first", MODE_PUBLIC).unwrap();
        write_atomic(&path, b"second", MODE_PUBLIC).unwrap();
        assert_eq!(std::fs::read(&path).unwrap(), b"second");
        assert_eq!(entries(dir.path()), vec!["bans.json"]);
    }

    #[test]
    fn applies_the_requested_mode() {
        let dir = tempfile::tempdir().unwrap();
        let secret = dir.path().join("key.asc");
        let public = dir.path().join("state.json");
        write_atomic(&secret, b"k", MODE_PRIVATE).unwrap();
        write_atomic(&public, b"s", MODE_PUBLIC).unwrap();
        let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode(&secret), 0o600);
        assert_eq!(mode(&public), 0o644);
    }

    #[test]
    fn json_round_trip_and_missing_file_is_none() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("journal.json");
        assert_eq!(read_json::<BTreeMap<String, u32>>(&path).unwrap(), None);
        let value = BTreeMap::from([("step".to_owned(), 3u32)]);
        write_json(&path, &value, MODE_PUBLIC).unwrap();
        assert_eq!(read_json(&path).unwrap(), Some(value));
    }

    #[test]
    fn corrupt_state_is_an_error_naming_the_file_not_a_fresh_start() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("journal.json");
        std::fs::write(&path, b"{\"step\": 3,").unwrap();
        let err = read_json::<BTreeMap<String, u32>>(&path).unwrap_err();
        let msg = err.to_string();
        assert!(
            msg.contains("journal.json") && msg.contains("corrupt"),
            "{msg}"
        );
        // The corrupt file is left for the operator to inspect.
        assert_eq!(std::fs::read(&path).unwrap(), b"{\"step\": 3,");
    }

    #[test]
    fn failed_write_keeps_the_old_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("state.json");
        write_atomic(&path, b"old", MODE_PUBLIC).unwrap();
        // A directory where the file should go makes the rename fail after the
        // temporary file was fully written.
        let blocked = dir.path().join("blocked");
        std::fs::create_dir(&blocked).unwrap();
        std::fs::write(blocked.join("x"), b"").unwrap();
        let err = write_atomic(&blocked, b"new", MODE_PUBLIC).unwrap_err();
        assert!(err.to_string().contains("rename into place"), "{err}");
        assert_eq!(std::fs::read(&path).unwrap(), b"old");
        assert_eq!(entries(dir.path()), vec!["blocked", "state.json"]);
    }
}
