//! OpenSSH `sshd`, the way the migration tool reaches the database hosts: it runs
//! `ssh <options> root@host -- <command>` for the backup on one host and the unpacking,
//! prepare, start and stop on the other. On one machine both hosts are this server.
//!
//! At start `ssh-keygen` makes an ed25519 host key and an ed25519 client key without a
//! passphrase in the private directory; the client's public key is the only line of
//! `authorized_keys`, and the host's public key is the only line of a `known_hosts` for
//! `[IP]:PORT` (the bare IP on port 22), so the client verifies the server for real and
//! is never asked to trust it on first use. [`Sshd::client_options`] is everything a
//! client needs to get in; nothing of the user's or the system's ssh configuration is
//! read on either side.
//!
//! sshd runs with `-D` (foreground) and `-e` (log to stderr, i.e. the log file) from its
//! absolute path, which sshd requires because it re-executes itself for every
//! connection. Readiness is its `SSH-2.0-` banner; then one `ssh ... true` proves the
//! key is accepted, so a start that returns is a server a test can log in to.
//!
//! Two things differ from the other servers:
//!
//! * sshd insists on its compiled-in privilege separation directory, `/run/sshd` (on
//!   Debian the init script or systemd makes it at boot, which a container lacks). It
//!   is created empty, mode 0755, if missing, and left in place: other sshds may use it.
//! * sshd puts every connection in a session of its own (`setsid`), outside the process
//!   group the test bed kills on drop, so that a restarted sshd keeps its users logged
//!   in. Dropping an [`Sshd`] therefore first kills every process descended from the
//!   listener (connection handlers and the commands they run), then the listener, so a
//!   remote command still running when a test ends does not outlive it.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::os::unix::fs::DirBuilderExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;

use super::{CLIENT_TIMEOUT, Host, Running, Server, Setup, checked, impl_server};
use crate::error::{Error, IoContext, Result};
use crate::require;

/// A running sshd that lets in `root` with the key it generated, and nobody else.
#[derive(Debug)]
pub struct Sshd {
    run: Running,
    ssh: PathBuf,
    options: Vec<String>,
}
impl_server!(Sshd);

/// sshd's compiled-in privilege separation directory (Debian's build).
const PRIVSEP_DIR: &str = "/run/sshd";

/// The server's settings beyond address, keys and files; why each is here:
const SETTINGS: &str = "\
# The test's key is the only way in, and as root, as the migration tool logs in.
PermitRootLogin prohibit-password
PubkeyAuthentication yes
PasswordAuthentication no
KbdInteractiveAuthentication no
# No PAM: no account checks, limits or session modules of the machine's own.
UsePAM no
# The key files live in a private dir under /tmp, which strict modes would reject.
StrictModes no
# Logs which key was accepted, and why a login was refused.
LogLevel VERBOSE
# No AcceptEnv: a remote command sees none of the client's environment (LANG, LC_*),
# as on a real host where the migration tool cannot rely on it.
PrintMotd no
PrintLastLog no
# A test may open many connections at once (a backup stream beside control
# commands); the default 10 unauthenticated ones would make sshd drop some at random.
MaxStartups 100
";

/// Since OpenSSH 9.8 sshd blocks an address that caused failed or unauthenticated
/// connections for a while; on loopback that address is every client of the test, so a
/// test that checks a refused login would lock out the logins after it. Older sshd
/// rejects the keyword, so it is written only where `sshd -t` accepts it.
const NO_PENALTIES: &str = "PerSourcePenalties no\n";

impl Sshd {
    pub fn start(host: Host<'_>) -> Result<Sshd> {
        require::root()?;
        let sshd = require::tool("sshd", "openssh-server")?;
        let keygen = require::tool("ssh-keygen", "openssh-client")?;
        let ssh = require::tool("ssh", "openssh-client")?;
        privsep_dir()?;

        let setup = Setup::new("sshd", host)?;
        let addr = setup.addr();
        let host_key = setup.path("host_key");
        let client_key = setup.path("client_key");
        for (key, comment) in [(&host_key, "testbed-host"), (&client_key, "testbed-client")] {
            setup.prepare(
                &format!("generate {comment} key"),
                Command::new(&keygen)
                    .args(["-q", "-t", "ed25519", "-N", "", "-C", comment, "-f"])
                    .arg(key),
            )?;
        }
        let authorized_keys = setup.write("authorized_keys", read_public(&client_key)?)?;
        let host_public = read_public(&host_key)?;
        let known_hosts = setup.write(
            "known_hosts",
            format!("{} {}\n", known_host(addr), host_public.trim()),
        )?;

        let base = format!(
            "\
Port {port}
ListenAddress {ip}
HostKey {host_key}
AuthorizedKeysFile {authorized_keys}
PidFile {pid}
{SETTINGS}",
            port = addr.port(),
            ip = addr.ip(),
            host_key = host_key.display(),
            authorized_keys = authorized_keys.display(),
            pid = setup.path("sshd.pid").display(),
        );
        let config = setup.write("sshd_config", format!("{base}{NO_PENALTIES}"))?;
        if let Err(e) = test_config(&setup, &sshd, &config) {
            if !e.to_string().contains("PerSourcePenalties") {
                return Err(e);
            }
            setup.write("sshd_config", &base)?;
            test_config(&setup, &sshd, &config)?;
        }

        let options = client_options(addr, &client_key, &known_hosts);
        let args = [
            "-D".into(),
            "-e".into(),
            "-f".into(),
            config.into_os_string(),
        ];
        let run = setup.launch(&sshd, &args, Duration::from_secs(20), |s| {
            let banner = s.talk(b"", |a| a.contains(&b'\n'))?;
            if banner.starts_with(b"SSH-2.0-") {
                Ok(())
            } else {
                Err(format!("banner {:?}", String::from_utf8_lossy(&banner)))
            }
        })?;
        let server = Sshd { run, ssh, options };
        // The banner says sshd is up; a login says the keys and the config are right.
        if let Err(e) = server.run("true") {
            return Err(Error::NotReady {
                server: format!("sshd on {} (pid {})", server.addr(), server.pid()),
                reason: format!("the test's key does not log in: {e}"),
                log: server.log_path().display().to_string(),
                tail: server.log_tail(20),
            });
        }
        Ok(server)
    }

    /// The options `ssh` needs to log in here, to put before [`Sshd::destination`]:
    ///
    /// * `-F /dev/null`: no user config (`~/.ssh/config`) and no system one;
    /// * `-p PORT`: the server's private port;
    /// * `-i KEY`, `-o IdentitiesOnly=yes`: the generated client key and only it, not
    ///   whatever keys an agent or `~/.ssh` holds;
    /// * `-o BatchMode=yes`: never prompt (a prompt would hang a test); fail instead;
    /// * `-o StrictHostKeyChecking=yes`, `-o UserKnownHostsFile=DIR/known_hosts`: the
    ///   server must present the host key generated for it, listed there;
    /// * `-o GlobalKnownHostsFile=/dev/null`: `/etc/ssh/ssh_known_hosts` plays no part;
    /// * `-o LogLevel=ERROR`: no warnings mixed into a remote command's stderr.
    pub fn client_options(&self) -> Vec<String> {
        self.options.clone()
    }

    /// `root@IP`: whom to log in as, where (the address sshd listens on).
    pub fn destination(&self) -> String {
        format!("root@{}", self.addr().ip())
    }

    /// Runs `ssh <client_options> <destination> -- <command>` to completion (in the
    /// server's namespace) and returns its stdout; a failure carries the exit status
    /// (the remote command's, or 255 for ssh's own errors) and stderr.
    pub fn run(&self, command: &str) -> Result<String> {
        let mut cmd = self.ssh_command(command);
        checked(&mut cmd, b"", CLIENT_TIMEOUT)
    }

    /// The `ssh` command line [`Sshd::run`] runs, for a test that streams stdin or
    /// stdout itself.
    pub fn ssh_command(&self, command: &str) -> Command {
        let mut cmd = self.command(&self.ssh);
        cmd.args(&self.options)
            .arg(self.destination())
            .arg("--")
            .arg(command);
        cmd
    }
}

impl Drop for Sshd {
    /// Kills the connections (each in a session of its own) and what they run; the
    /// listener and the directory go when `run` drops.
    fn drop(&mut self) {
        // A handler may fork while we kill; a few rounds catch its children.
        for _ in 0..5 {
            let pids = descendants(self.pid());
            if pids.is_empty() {
                break;
            }
            for pid in pids {
                let _ = kill(Pid::from_raw(pid), Signal::SIGKILL);
            }
        }
    }
}

fn client_options(addr: SocketAddr, key: &Path, known_hosts: &Path) -> Vec<String> {
    let mut options = vec![
        "-F".to_owned(),
        "/dev/null".to_owned(),
        "-p".to_owned(),
        addr.port().to_string(),
        "-i".to_owned(),
        key.display().to_string(),
    ];
    for option in [
        "IdentitiesOnly=yes".to_owned(),
        "BatchMode=yes".to_owned(),
        "StrictHostKeyChecking=yes".to_owned(),
        format!("UserKnownHostsFile={}", known_hosts.display()),
        "GlobalKnownHostsFile=/dev/null".to_owned(),
        "LogLevel=ERROR".to_owned(),
    ] {
        options.push("-o".to_owned());
        options.push(option);
    }
    options
}

/// How `known_hosts` names the server: `[IP]:PORT`, or the bare IP on port 22 (ssh looks
/// up the bracketed form only for other ports).
fn known_host(addr: SocketAddr) -> String {
    match addr.port() {
        22 => addr.ip().to_string(),
        port => format!("[{}]:{port}", addr.ip()),
    }
}

fn read_public(key: &Path) -> Result<String> {
    let path = key.with_extension("pub");
    std::fs::read_to_string(&path).context(|| format!("sshd: read {}", path.display()))
}

/// `sshd -t`: checks the config (and the keys and directories it names) before the
/// start, so a mistake is one clear line instead of an sshd that exits.
fn test_config(setup: &Setup<'_>, sshd: &Path, config: &Path) -> Result<String> {
    setup.prepare(
        "check the config",
        setup.command(sshd).arg("-t").arg("-f").arg(config),
    )
}

fn privsep_dir() -> Result<()> {
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o755)
        .create(PRIVSEP_DIR)
        .context(|| format!("sshd: create the privilege separation directory {PRIVSEP_DIR}"))
}

/// Every process descended from `root` (not `root` itself), from the parent pids in
/// `/proc`.
fn descendants(root: u32) -> Vec<i32> {
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    let mut children: HashMap<i32, Vec<i32>> = HashMap::new();
    for entry in entries.flatten() {
        let Some(pid) = entry
            .file_name()
            .to_str()
            .and_then(|n| n.parse::<i32>().ok())
        else {
            continue;
        };
        // `pid (comm) state ppid ...`; comm may hold spaces and parentheses.
        let Ok(stat) = std::fs::read_to_string(entry.path().join("stat")) else {
            continue;
        };
        let ppid = stat
            .rsplit_once(')')
            .and_then(|(_, rest)| rest.split_whitespace().nth(1))
            .and_then(|p| p.parse::<i32>().ok());
        if let Some(ppid) = ppid {
            children.entry(ppid).or_default().push(pid);
        }
    }
    let mut found = Vec::new();
    let mut todo = vec![root as i32];
    while let Some(pid) = todo.pop() {
        for &child in children.get(&pid).into_iter().flatten() {
            found.push(child);
            todo.push(child);
        }
    }
    found
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::{client_options, descendants, known_host};

    #[test]
    fn names_a_host_on_its_port() {
        assert_eq!(
            known_host("127.0.0.1:2222".parse().unwrap()),
            "[127.0.0.1]:2222"
        );
        assert_eq!(known_host("[::1]:2222".parse().unwrap()), "[::1]:2222");
        assert_eq!(known_host("127.0.0.1:22".parse().unwrap()), "127.0.0.1");
    }

    #[test]
    fn client_options_pin_key_and_host_key() {
        let options = client_options(
            "127.0.0.1:2222".parse().unwrap(),
            Path::new("/d/client_key"),
            Path::new("/d/known_hosts"),
        );
        let line = options.join(" ");
        assert!(
            line.starts_with("-F /dev/null -p 2222 -i /d/client_key "),
            "{line}"
        );
        assert!(
            line.contains("-o UserKnownHostsFile=/d/known_hosts"),
            "{line}"
        );
        assert!(line.contains("-o StrictHostKeyChecking=yes"), "{line}");
    }

    #[test]
    fn finds_descendants() {
        let mut child = std::process::Command::new("sleep")
            .arg("30")
            .spawn()
            .unwrap();
        let found = descendants(std::process::id());
        let _ = child.kill();
        let _ = child.wait();
        assert!(found.contains(&(child.id() as i32)), "{found:?}");
    }
}
