//! SpamAssassin's `spamd`, the scorer the mail perimeter asks before the queue.
//!
//! Flags and why:
//!
//! * `-L` (local tests only): no DNS blocklists or other network tests, which would time
//!   out offline and make scores depend on the machine. The shipped rules still score
//!   GTUBE about 1000 and a plain, well-formed mail near 0.
//! * `-x`: no per-user config; the scores depend only on the shipped rules.
//! * `-u nobody`: spamd will not run its children as root (it would fall back to nobody
//!   anyway, with a warning); the pid file is written before it drops privileges.
//! * `-s stderr`: log into the server's log instead of the system's syslog.
//! * `-A 0.0.0.0/0,::/0`: spamd only serves 127.0.0.1 by default; the listen address is
//!   already a test address, and clients in other namespaces must get through.
//! * one or two children: scoring is quick and the test machine is small.
//!
//! spamd looks up the host name of every client and drops the connection when the lookup
//! fails *temporarily*, which is what a DNS query does in a namespace without a route to
//! the system's name server (a definite "no such name" would be fine). So spamd runs in
//! a mount namespace of its own (`unshare --mount`) where a private copy of
//! `/etc/nsswitch.conf` says `hosts: files`: unknown client addresses resolve to "not
//! found" at once, on loopback and in namespaces alike, and the system file is untouched.
//!
//! Readiness is the SPAMC protocol's `PING` answered with `PONG`.

use std::ffi::OsString;
use std::path::PathBuf;
use std::time::Duration;

use super::{CLIENT_TIMEOUT, Host, Running, Server, Setup, command_failed, impl_server, run};
use crate::error::{Error, Result};
use crate::require;

/// A running spamd.
#[derive(Debug)]
pub struct Spamd {
    run: Running,
    spamc: PathBuf,
}
impl_server!(Spamd);

/// spamd's verdict on a mail, as `spamc -c` prints it.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct SpamScore {
    pub score: f64,
    /// The score from which spamd calls a mail spam (5.0 with the shipped config).
    pub threshold: f64,
}

impl Spamd {
    pub fn start(host: Host<'_>) -> Result<Spamd> {
        require::root()?;
        let spamd = require::tool("spamd", "spamd")?;
        let spamc = require::tool("spamc", "spamc")?;

        let unshare = require::tool("unshare", "util-linux")?;
        require::tool("mount", "mount")?;

        let setup = Setup::new("spamd", host)?;
        let addr = setup.addr();
        let system = std::fs::read_to_string(NSSWITCH).unwrap_or_default();
        let nsswitch = setup.write("nsswitch.conf", hosts_from_files(&system))?;
        let mut args: Vec<OsString> = ["--mount", "--propagation", "private", "/bin/sh", "-c"]
            .map(OsString::from)
            .into();
        // exec keeps the pid: the process the test owns is spamd itself.
        args.push(format!("mount --bind \"$0\" {NSSWITCH} && exec \"$@\"").into());
        args.push(nsswitch.into());
        args.push(spamd.into());
        args.extend(
            [
                "-L".to_owned(),
                "-x".to_owned(),
                format!("--listen={addr}"),
                "--allowed-ips=0.0.0.0/0,::/0".to_owned(),
                "--username=nobody".to_owned(),
                format!("--pidfile={}", setup.path("spamd.pid").display()),
                "--syslog=stderr".to_owned(),
                "--min-children=1".to_owned(),
                "--max-children=2".to_owned(),
                "--min-spare=1".to_owned(),
                "--max-spare=1".to_owned(),
            ]
            .map(OsString::from),
        );
        let run = setup.launch(&unshare, &args, Duration::from_secs(120), |s| {
            let answer = s.talk(b"PING SPAMC/1.5\r\n\r\n", |_| false)?;
            let answer = String::from_utf8_lossy(&answer);
            if answer.starts_with("SPAMD/") && answer.contains(" 0 PONG") {
                Ok(())
            } else {
                Err(format!("PING answered {answer:?}"))
            }
        })?;
        Ok(Spamd { run, spamc })
    }

    /// Scores `mail` with the reference client (`spamc -c`, in the server's namespace).
    pub fn check(&self, mail: &[u8]) -> Result<SpamScore> {
        let addr = self.addr();
        let mut cmd = self.command(&self.spamc);
        // -x: without it spamc answers "0/0" when spamd is unreachable, a silent pass.
        cmd.args([
            "-x",
            "-c",
            "-d",
            &addr.ip().to_string(),
            "-p",
            &addr.port().to_string(),
        ]);
        let out = run(&mut cmd, mail, CLIENT_TIMEOUT)?;
        // -c exits 1 for spam and 0 for ham; anything else is an error.
        if !matches!(out.status.code(), Some(0 | 1)) {
            return Err(command_failed(&cmd, &out));
        }
        let parsed = out
            .stdout
            .trim()
            .split_once('/')
            .and_then(|(score, threshold)| {
                Some(SpamScore {
                    score: score.parse().ok()?,
                    threshold: threshold.parse().ok()?,
                })
            });
        parsed.ok_or_else(|| Error::Command {
            command: format!("spamc -c -d {addr}"),
            status: out.status.to_string(),
            stderr: format!("expected SCORE/THRESHOLD, got {:?}", out.stdout),
        })
    }
}

const NSSWITCH: &str = "/etc/nsswitch.conf";

/// The system's name service config with host names looked up in `/etc/hosts` only.
fn hosts_from_files(system: &str) -> String {
    let mut conf: String = system
        .lines()
        .filter(|line| !line.trim_start().starts_with("hosts:"))
        .map(|line| format!("{line}\n"))
        .collect();
    conf.push_str("hosts: files\n");
    conf
}
