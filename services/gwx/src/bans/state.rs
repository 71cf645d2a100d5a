//! The ban state file (`bans.json` in `[bans] state_dir`): what must outlive a restart
//! or a reboot. The kernel's ban sets are the truth while the gateway runs; the file is
//! a snapshot of them (each ban with its end time, so a restore gives the remaining
//! time), plus the ban history of the increasing ban times and each jail's position in
//! its log, so a restart neither reads old lines twice nor misses the lines written
//! while it was down.
//!
//! The daemon and `gwx bans add|del` both change the sets and the file; each takes the
//! lock file around its change-and-write, so a snapshot never resurrects a ban that
//! `del` just removed.

use std::collections::BTreeMap;
use std::fs::{File, OpenOptions};
use std::path::{Path, PathBuf};

use anyhow::Context;
use appliance::state::{self, MODE_PUBLIC};
use ipnet::IpNet;
use nix::fcntl::{Flock, FlockArg};
use serde::{Deserialize, Serialize};

use super::counter::{History, Millis};
use super::follow::FilePosition;

/// Bumped when the format changes incompatibly; a newer file is refused, not misread.
pub const VERSION: u32 = 1;

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Saved {
    pub version: u32,
    /// When the snapshot was taken (ms since the epoch).
    pub saved_at: Millis,
    pub bans: Vec<SavedBan>,
    /// Per jail: past bans per network.
    #[serde(default)]
    pub history: BTreeMap<String, Vec<(IpNet, History)>>,
    /// Per jail: where its log file was read up to.
    #[serde(default)]
    pub positions: BTreeMap<String, FilePosition>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SavedBan {
    pub net: IpNet,
    pub jail: String,
    /// When the ban ends (ms since the epoch).
    pub until: Millis,
}

/// The state file and its lock.
#[derive(Debug, Clone)]
pub struct StateFile {
    path: PathBuf,
}

/// Held while a change to the sets and the file is in progress.
pub struct Locked {
    _lock: Flock<File>,
}

impl StateFile {
    pub fn new(path: PathBuf) -> StateFile {
        StateFile { path }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Takes the lock (waiting for another holder), creating the state directory.
    pub fn lock(&self) -> anyhow::Result<Locked> {
        let dir = self.path.parent().unwrap_or(Path::new("."));
        std::fs::create_dir_all(dir)
            .with_context(|| format!("creating the ban state directory {}", dir.display()))?;
        let lock_path = self.path.with_extension("lock");
        let file = OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&lock_path)
            .with_context(|| format!("opening the lock file {}", lock_path.display()))?;
        let lock = Flock::lock(file, FlockArg::LockExclusive)
            .map_err(|(_, e)| e)
            .with_context(|| format!("locking {}", lock_path.display()))?;
        Ok(Locked { _lock: lock })
    }

    /// The saved state; empty if there is none yet.
    pub fn read(&self, _lock: &Locked) -> anyhow::Result<Saved> {
        let saved: Option<Saved> = state::read_json(&self.path)
            .with_context(|| format!("reading the ban state {}", self.path.display()))?;
        let saved = saved.unwrap_or(Saved {
            version: VERSION,
            ..Saved::default()
        });
        anyhow::ensure!(
            saved.version <= VERSION,
            "the ban state {} has format version {}, this gwx reads up to {VERSION}: it was written by a newer gwx",
            self.path.display(),
            saved.version
        );
        Ok(saved)
    }

    /// Replaces the file atomically.
    pub fn write(&self, _lock: &Locked, saved: &Saved) -> anyhow::Result<()> {
        state::write_json(&self.path, saved, MODE_PUBLIC)
            .with_context(|| format!("writing the ban state {}", self.path.display()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn state_round_trips_and_refuses_newer_formats() {
        let dir = tempfile::tempdir().unwrap();
        let f = StateFile::new(dir.path().join("sub/bans.json"));
        let lock = f.lock().unwrap();
        assert_eq!(f.read(&lock).unwrap().bans.len(), 0);
        let mut s = Saved {
            version: VERSION,
            saved_at: 5,
            bans: vec![SavedBan {
                net: "2001:db8::/64".parse().unwrap(),
                jail: "ssh".into(),
                until: 99,
            }],
            ..Saved::default()
        };
        s.history.insert(
            "ssh".into(),
            vec![(
                "2001:db8::/64".parse().unwrap(),
                History { bans: 2, last: 7 },
            )],
        );
        f.write(&lock, &s).unwrap();
        assert_eq!(f.read(&lock).unwrap(), s);
        s.version = VERSION + 1;
        f.write(&lock, &s).unwrap();
        let e = f.read(&lock).unwrap_err().to_string();
        assert!(e.contains("newer gwx"), "{e}");
    }
}
