//! Network namespaces as test hosts, joined by veth pairs.
//!
//! A [`Netns`] is a named namespace (`ip netns`), so the same host can be used both by
//! commands (`ip netns exec`) and by sockets this process opens inside it ([`Netns::enter`]).
//! Dropping it kills every process inside and deletes it. Names carry the creating pid
//! (`tb-<pid>-<n>-<label>`), so namespaces left by a test process that was killed with
//! SIGKILL are swept away by the next one.

use std::fs::File;
use std::process::Command;
use std::sync::Once;
use std::sync::atomic::{AtomicUsize, Ordering};

use nix::sched::{CloneFlags, setns};

use crate::error::{Error, IoContext, Result};
use crate::process::Process;
use crate::require;

const PREFIX: &str = "tb-";
static SEQ: AtomicUsize = AtomicUsize::new(0);
static SWEEP: Once = Once::new();

/// A network namespace owned by the test; deleted on drop.
#[derive(Debug)]
pub struct Netns {
    name: String,
}

impl Netns {
    /// Creates a namespace with loopback up. `label` (e.g. `client`, `gw1`) shows in its name.
    pub fn new(label: &str) -> Result<Netns> {
        require::root()?;
        require::tool("ip", "iproute2")?;
        SWEEP.call_once(sweep_stale);
        let name = format!(
            "{PREFIX}{}-{}-{label}",
            std::process::id(),
            SEQ.fetch_add(1, Ordering::Relaxed)
        );
        run(Command::new("ip").args(["netns", "add", &name]))?;
        let ns = Netns { name };
        ns.ip(&["link", "set", "lo", "up"])?;
        // A new namespace copies some defaults from the host (seen here: ip_forward=1 on a
        // Docker host), so a test host starts as a plain host, not a router; forwarding is
        // a test's explicit choice. Duplicate address detection is off because it holds
        // IPv6 addresses, link-local ones too, "tentative" for a couple of seconds and
        // makes the first connections of a test flaky; no address is shared here anyway.
        for (key, value) in [
            ("net.ipv4.ip_forward", "0"),
            ("net.ipv6.conf.all.forwarding", "0"),
            ("net.ipv6.conf.default.forwarding", "0"),
            ("net.ipv6.conf.all.accept_dad", "0"),
            ("net.ipv6.conf.default.accept_dad", "0"),
        ] {
            ns.sysctl(key, value)?;
        }
        Ok(ns)
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    /// A command that runs `program` inside this namespace.
    pub fn command(&self, program: &str) -> Command {
        command_in(&self.name, program.as_ref())
    }

    /// Runs `program args...` inside the namespace; returns stdout, or an error with stderr.
    pub fn exec(&self, program: &str, args: &[&str]) -> Result<String> {
        run(self.command(program).args(args))
    }

    /// `ip ARGS` inside the namespace.
    pub fn ip(&self, args: &[&str]) -> Result<String> {
        self.exec("ip", args)
    }

    /// Starts a long-running program inside the namespace (see [`Process::spawn`]).
    pub fn spawn(
        &self,
        name: &str,
        program: &str,
        args: &[&str],
        log: &std::path::Path,
    ) -> Result<Process> {
        let mut cmd = self.command(program);
        cmd.args(args);
        Process::spawn(name, cmd, log)
    }

    /// Runs `f` on a thread that has joined this namespace: sockets it creates live in the
    /// namespace and stay there when handed back to other threads.
    pub fn enter<T: Send>(&self, f: impl FnOnce() -> T + Send) -> Result<T> {
        let path = format!("/run/netns/{}", self.name);
        let file = File::open(&path).context(|| format!("open namespace {path}"))?;
        std::thread::scope(|s| {
            s.spawn(|| {
                setns(&file, CloneFlags::CLONE_NEWNET).map_err(|e| Error::Io {
                    what: format!("join namespace {}", self.name),
                    source: e.into(),
                })?;
                Ok(f())
            })
            .join()
            .unwrap_or_else(|panic| std::panic::resume_unwind(panic))
        })
    }

    /// Sets a sysctl inside the namespace, e.g. `net.ipv4.ip_forward` = `1`.
    pub fn sysctl(&self, key: &str, value: &str) -> Result<()> {
        self.exec("sysctl", &["-q", "-w", &format!("{key}={value}")])
            .map(drop)
    }

    /// Turns this namespace into a router for IPv4 and IPv6.
    pub fn enable_forwarding(&self) -> Result<()> {
        self.sysctl("net.ipv4.ip_forward", "1")?;
        self.sysctl("net.ipv6.conf.all.forwarding", "1")
    }

    /// Adds a route: `dest` (CIDR or `default`) via gateway address `via`.
    pub fn route(&self, dest: &str, via: &str) -> Result<()> {
        let family = if via.contains(':') { "-6" } else { "-4" };
        self.ip(&[family, "route", "add", dest, "via", via])
            .map(drop)
    }

    /// Applies an nftables ruleset (text) in one transaction.
    pub fn nft_apply(&self, ruleset: &str) -> Result<()> {
        require::tool("nft", "nftables")?;
        let mut file = tempfile::NamedTempFile::new().context(|| "create ruleset file".into())?;
        std::io::Write::write_all(&mut file, ruleset.as_bytes())
            .context(|| "write ruleset file".into())?;
        self.exec("nft", &["-f", &file.path().to_string_lossy()])
            .map(drop)
    }

    /// PIDs of the processes inside the namespace.
    pub fn pids(&self) -> Vec<i32> {
        run(Command::new("ip").args(["netns", "pids", &self.name]))
            .map(|out| {
                out.split_whitespace()
                    .filter_map(|p| p.parse().ok())
                    .collect()
            })
            .unwrap_or_default()
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        remove(&self.name);
    }
}

/// One end of a veth link: the namespace, the interface name inside it and its
/// addresses in CIDR form (`198.51.100.1/24`, `2001:db8:1::1/64`).
pub struct End<'a> {
    pub ns: &'a Netns,
    pub ifname: &'a str,
    pub addrs: &'a [&'a str],
}

impl<'a> End<'a> {
    pub fn new(ns: &'a Netns, ifname: &'a str, addrs: &'a [&'a str]) -> End<'a> {
        End { ns, ifname, addrs }
    }
}

/// Joins two namespaces with a veth pair, assigns the addresses and brings both ends up.
/// Interface names only need to be unique inside their own namespace.
pub fn link(a: End<'_>, b: End<'_>) -> Result<()> {
    run(Command::new("ip").args([
        "link", "add", "name", a.ifname, "netns", &a.ns.name, "type", "veth", "peer", "name",
        b.ifname, "netns", &b.ns.name,
    ]))?;
    for end in [&a, &b] {
        for addr in end.addrs {
            let mut args = vec!["addr", "add", addr, "dev", end.ifname];
            // Duplicate address detection would hold an IPv6 address back for ~2 s.
            if addr.contains(':') {
                args.push("nodad");
            }
            end.ns.ip(&args)?;
        }
        end.ns.ip(&["link", "set", end.ifname, "up"])?;
    }
    Ok(())
}

/// A command that runs `program` inside the namespace called `name`; for holders of a
/// namespace's name that must not borrow the [`Netns`] (a server next to it in a fixture).
pub(crate) fn command_in(name: &str, program: &std::ffi::OsStr) -> Command {
    let mut c = Command::new("ip");
    c.args(["netns", "exec", name]).arg(program);
    c
}

fn run(cmd: &mut Command) -> Result<String> {
    let shown = format!("{:?}", cmd).replace('"', "");
    let out = cmd.output().context(|| format!("run {shown}"))?;
    if out.status.success() {
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    } else {
        Err(Error::Command {
            command: shown,
            status: out.status.to_string(),
            stderr: String::from_utf8_lossy(&out.stderr).trim().to_owned(),
        })
    }
}

/// Kills what runs inside the namespace, then deletes it. Errors are ignored: this runs
/// from Drop, possibly while a panic unwinds.
fn remove(name: &str) {
    if let Ok(out) = run(Command::new("ip").args(["netns", "pids", name])) {
        for pid in out.split_whitespace().filter_map(|p| p.parse::<i32>().ok()) {
            let _ = nix::sys::signal::kill(
                nix::unistd::Pid::from_raw(pid),
                nix::sys::signal::Signal::SIGKILL,
            );
        }
    }
    let _ = run(Command::new("ip").args(["netns", "del", name]));
}

/// Deletes namespaces whose creating test process no longer exists.
fn sweep_stale() {
    let Ok(entries) = std::fs::read_dir("/run/netns") else {
        return;
    };
    for entry in entries.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        let Some(pid) = name
            .strip_prefix(PREFIX)
            .and_then(|rest| rest.split('-').next())
            .and_then(|p| p.parse::<u32>().ok())
        else {
            continue;
        };
        if !std::path::Path::new(&format!("/proc/{pid}")).exists() {
            remove(&name);
        }
    }
}
