//! How `nft` is run. A gateway runs plain `nft`; tests run it inside a network namespace
//! (`ip netns exec NAME nft`). [`Nft`] is the program and its leading arguments, so every
//! caller can say which, and every error shows the full command line.
//!
//! The `nftables` crate's `helper::apply_ruleset*` functions are not used: they leave
//! nft's stderr to the terminal instead of capturing it, and the error would not say
//! what nft objected to.

use std::io::Write;
use std::process::{Command, Stdio};

use super::NftError;

/// The `nft` invocation: a program and the arguments that come before nft's own.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Nft {
    argv: Vec<String>,
}

impl Default for Nft {
    fn default() -> Nft {
        Nft::new()
    }
}

impl Nft {
    /// `nft` from `PATH`.
    pub fn new() -> Nft {
        Nft {
            argv: vec!["nft".to_owned()],
        }
    }

    /// Any command line that ends up running nft, e.g. `["sudo", "nft"]`.
    ///
    /// # Panics
    /// If `argv` is empty.
    pub fn with_argv<I, S>(argv: I) -> Nft
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        let argv: Vec<String> = argv.into_iter().map(Into::into).collect();
        assert!(!argv.is_empty(), "an nft command line needs a program");
        Nft { argv }
    }

    /// `ip netns exec NAME nft`: nft inside the named network namespace.
    pub fn in_netns(name: &str) -> Nft {
        Nft::with_argv(["ip", "netns", "exec", name, "nft"])
    }

    /// The command line before nft's own arguments.
    pub fn argv(&self) -> &[String] {
        &self.argv
    }

    /// Runs nft with `args`, feeding `stdin`, and returns its stdout. `owner` and
    /// `action` say in errors whose ruleset and what was being done.
    pub fn run(
        &self,
        owner: &str,
        action: &str,
        args: &[&str],
        stdin: Option<&str>,
    ) -> Result<String, NftError> {
        let command = self.shown(args);
        let mut cmd = Command::new(&self.argv[0]);
        cmd.args(&self.argv[1..])
            .args(args)
            .stdin(if stdin.is_some() {
                Stdio::piped()
            } else {
                Stdio::null()
            })
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let spawn_error = |source| NftError::Spawn {
            owner: owner.to_owned(),
            command: command.clone(),
            source,
        };
        let mut child = cmd.spawn().map_err(spawn_error)?;
        let mut written = Ok(());
        if let Some(input) = stdin {
            // nft reads its whole input before it writes anything, so writing all of it
            // first cannot deadlock on a full stdout pipe. A write error (nft exited
            // early) matters only if nft then claims success: its stderr says more.
            let mut pipe = child.stdin.take().expect("stdin was piped");
            written = pipe.write_all(input.as_bytes());
        }
        let out = child.wait_with_output().map_err(spawn_error)?;
        if out.status.success() {
            written.map_err(spawn_error)?;
            Ok(String::from_utf8_lossy(&out.stdout).into_owned())
        } else {
            Err(NftError::Failed {
                owner: owner.to_owned(),
                action: action.to_owned(),
                command,
                status: out.status.to_string(),
                stderr: String::from_utf8_lossy(&out.stderr).trim().to_owned(),
            })
        }
    }

    fn shown(&self, args: &[&str]) -> String {
        let mut words: Vec<&str> = self.argv.iter().map(String::as_str).collect();
        words.extend_from_slice(args);
        words.join(" ")
    }
}
