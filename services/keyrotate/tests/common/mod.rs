//! GnuPG as the judge: a throwaway GNUPGHOME per use, and keys made the way an
//! operator made theirs (with gpg itself).

#![allow(dead_code)] // each test binary uses its own part

pub mod http;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

pub struct Gpg {
    dir: tempfile::TempDir,
}

impl Gpg {
    pub fn new() -> Gpg {
        testbed::require::tool("gpg", "gnupg").unwrap();
        // Short path: gpg-agent's socket path must fit in 108 bytes.
        let dir = tempfile::Builder::new()
            .prefix("kr-gpg")
            .tempdir_in("/tmp")
            .unwrap();
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o700)).unwrap();
        Gpg { dir }
    }

    pub fn home(&self) -> &Path {
        self.dir.path()
    }

    /// gpg with this home, in batch mode, with `passphrase` for a loopback pinentry.
    pub fn cmd(&self, passphrase: Option<&str>) -> Command {
        let mut c = Command::new("gpg");
        c.arg("--homedir")
            .arg(self.home())
            .args(["--batch", "--no-tty"]);
        if let Some(p) = passphrase {
            c.args(["--pinentry-mode", "loopback", "--passphrase", p]);
        }
        c
    }

    /// Runs gpg; panics with its stderr when it fails.
    pub fn ok(&self, passphrase: Option<&str>, args: &[&str]) -> String {
        let out = self.run(passphrase, args);
        assert!(
            out.status.success(),
            "gpg {args:?} failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
    }

    pub fn run(&self, passphrase: Option<&str>, args: &[&str]) -> Output {
        self.cmd(passphrase).args(args).output().unwrap()
    }

    /// A new Ed25519 key with `uid`, protected by `passphrase`; returns its fingerprint.
    pub fn generate(&self, uid: &str, passphrase: &str) -> String {
        self.ok(
            Some(passphrase),
            &["--quick-gen-key", uid, "ed25519", "sign,cert", "2y"],
        );
        let listing = self.ok(None, &["--with-colons", "--list-secret-keys", uid]);
        listing
            .lines()
            .find(|l| l.starts_with("fpr:"))
            .and_then(|l| l.split(':').nth(9))
            .unwrap()
            .to_owned()
    }

    /// Imports `files`.
    pub fn import(&self, files: &[&Path]) {
        let mut args = vec!["--import".to_owned()];
        args.extend(files.iter().map(|f| f.display().to_string()));
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        self.ok(None, &args);
    }

    /// The `--with-colons` records of `what` (e.g. `--check-sigs`) for the key
    /// `fingerprint`. The whole keyring is listed and the key's block picked out:
    /// GnuPG 2.2's `--check-sigs KEY` fails to look up the other keys that signed it
    /// (it reports them missing, '?'), while a listing of all keys checks them.
    pub fn colons(&self, what: &str, fingerprint: &str) -> Vec<Vec<String>> {
        let all = self.ok(None, &["--with-colons", what]);
        let mut blocks: Vec<Vec<Vec<String>>> = Vec::new();
        for line in all.lines() {
            let record: Vec<String> = line.split(':').map(str::to_owned).collect();
            if record[0] == "pub" {
                blocks.push(Vec::new());
            }
            if let Some(b) = blocks.last_mut() {
                b.push(record);
            }
        }
        blocks
            .into_iter()
            .find(|b| {
                b.iter()
                    .find(|r| r[0] == "fpr")
                    .is_some_and(|r| r[9] == fingerprint)
            })
            .unwrap_or_else(|| panic!("{fingerprint} is not in the keyring:\n{all}"))
    }
}

impl Drop for Gpg {
    fn drop(&mut self) {
        let _ = Command::new("gpgconf")
            .arg("--homedir")
            .arg(self.home())
            .args(["--kill", "all"])
            .output();
    }
}

/// The keyrotate binary with `config`.
pub fn keyrotate(config: &Path, args: &[&str]) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_keyrotate"));
    c.arg("--config").arg(config).args(args);
    c
}

pub fn text(out: &Output) -> String {
    format!(
        "exit {:?}\nstdout:\n{}\nstderr:\n{}",
        out.status.code(),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

pub fn files_in(dir: &Path) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = match std::fs::read_dir(dir) {
        Ok(rd) => rd.map(|e| e.unwrap().path()).collect(),
        Err(_) => Vec::new(),
    };
    v.sort();
    v
}
