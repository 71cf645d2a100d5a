//! Running programs from a benchmark: to completion under a deadline (a client stuck on
//! a broken forwarder must end the measurement, not hang the run), and small probes:
//! a program's version, the listening sockets of a namespace.

use std::io::Read;
use std::net::SocketAddr;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use testbed::Netns;

/// What a finished program printed, and how long it ran.
#[derive(Debug)]
pub struct Output {
    pub status: ExitStatus,
    pub stdout: String,
    pub stderr: String,
    /// From spawn to exit, taken when `wait` returns (no polling granularity: a whole
    /// tlsaudit run takes 20 ms).
    pub seconds: f64,
}

impl Output {
    /// stderr, or stdout when stderr is empty: where a failed program said why.
    pub fn complaint(&self) -> &str {
        if self.stderr.trim().is_empty() {
            self.stdout.trim()
        } else {
            self.stderr.trim()
        }
    }
}

/// Runs `cmd` with its output captured; kills it, and whatever it started, if it has
/// not finished after `timeout`. It runs in its own process group so that a timeout
/// also ends its children (testssl.sh runs openssl, which holds the output pipes).
pub fn run(cmd: &mut Command, timeout: Duration) -> Result<Output> {
    let shown = shown(cmd);
    cmd.process_group(0);
    let start = Instant::now();
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .with_context(|| format!("start `{shown}`"))?;
    let pid = child.id();
    let (mut out, mut err) = (child.stdout.take(), child.stderr.take());
    let (done, exited) = mpsc::channel();
    std::thread::scope(|s| {
        let out = s.spawn(move || read_all(out.as_mut()));
        let err = s.spawn(move || read_all(err.as_mut()));
        s.spawn(move || {
            let status = child.wait();
            let _ = done.send((status, start.elapsed().as_secs_f64()));
        });
        let (status, seconds) = match exited.recv_timeout(timeout) {
            Ok(exit) => exit,
            Err(_) => {
                let _ = Command::new("kill")
                    .args(["-KILL", "--", &format!("-{pid}")])
                    .status();
                let _ = exited.recv();
                bail!("`{shown}` did not finish within {timeout:?} and was killed");
            }
        };
        let status = status.with_context(|| format!("wait for `{shown}`"))?;
        Ok(Output {
            status,
            stdout: out.join().unwrap_or_default(),
            stderr: err.join().unwrap_or_default(),
            seconds,
        })
    })
}

/// Like [`run`], but a non-zero exit is an error carrying what the program said.
pub fn checked(cmd: &mut Command, timeout: Duration) -> Result<String> {
    let out = run(cmd, timeout)?;
    if !out.status.success() {
        bail!(
            "`{}` failed ({}): {}",
            shown(cmd),
            out.status,
            out.complaint()
        );
    }
    Ok(out.stdout)
}

/// The first line `program args` prints (on stdout or stderr, some print versions to
/// stderr), or why there is none; for the report's header.
pub fn version(program: &str, args: &[&str]) -> String {
    match run(Command::new(program).args(args), Duration::from_secs(10)) {
        Ok(out) => out
            .stdout
            .lines()
            .chain(out.stderr.lines())
            .map(str::trim)
            .find(|l| !l.is_empty())
            .unwrap_or("(printed nothing)")
            .to_owned(),
        Err(e) => format!("unknown ({e:#})"),
    }
}

/// The running kernel's release, e.g. `6.1.0-26-amd64`.
pub fn kernel() -> String {
    std::fs::read_to_string("/proc/sys/kernel/osrelease")
        .map(|s| s.trim().to_owned())
        .unwrap_or_else(|e| format!("unknown ({e})"))
}

/// Whether a TCP socket listens on `addr` inside `ns` (on that address or a wildcard).
/// Asks `ss` rather than connecting, so a probe never counts as a client of the server.
pub fn listening(ns: &Netns, addr: SocketAddr) -> Result<bool> {
    let table = ns
        .exec("ss", &["-H", "-l", "-t", "-n"])
        .with_context(|| format!("list listening sockets in {}", ns.name()))?;
    Ok(listens_on(&table, addr))
}

/// Whether `ss -Hltn` output shows a socket that accepts connections to `addr`.
fn listens_on(ss: &str, addr: SocketAddr) -> bool {
    let port = addr.port();
    let accepted = [
        addr.to_string(),
        format!("0.0.0.0:{port}"),
        format!("*:{port}"),
        format!("[::]:{port}"),
    ];
    ss.lines()
        .filter_map(|line| line.split_whitespace().nth(3))
        .any(|local| accepted.iter().any(|a| a == local))
}

fn read_all(pipe: Option<&mut impl Read>) -> String {
    let mut bytes = Vec::new();
    if let Some(pipe) = pipe {
        let _ = pipe.read_to_end(&mut bytes);
    }
    String::from_utf8_lossy(&bytes).into_owned()
}

/// A command as a reader would type it.
pub fn shown(cmd: &Command) -> String {
    format!("{cmd:?}").replace('"', "")
}

/// `target/release/<name>` in this workspace: where `cargo build --release -p <name>`
/// puts a service's binary.
pub fn workspace_binary(name: &str) -> PathBuf {
    let bench = Path::new(env!("CARGO_MANIFEST_DIR"));
    bench
        .parent()
        .unwrap_or(bench)
        .join("target/release")
        .join(name)
}

/// Why `<binary> <subcommand>` cannot run yet, if it cannot: the binary is not built,
/// or `<binary> <subcommand> --help` fails or its help lacks `needs` (an option the
/// benchmark passes). `package` names the cargo package that builds it.
pub fn unavailable(
    binary: &Path,
    package: &str,
    subcommand: &str,
    needs: Option<&str>,
) -> Option<String> {
    if !binary.is_file() {
        return Some(format!(
            "{package} binary not built ({} is missing; `cargo build --release -p {package}`)",
            binary.display()
        ));
    }
    let mut help = Command::new(binary);
    help.args([subcommand, "--help"]);
    let wanted = needs.map_or_else(String::new, |option| format!(" with `{option}`"));
    match run(&mut help, Duration::from_secs(10)) {
        Ok(out) if out.status.success() && needs.is_none_or(|o| out.stdout.contains(o)) => None,
        Ok(out) => Some(format!(
            "{package} has no `{subcommand}` command{wanted} yet ({}: {})",
            binary.display(),
            out.complaint().lines().next().unwrap_or("")
        )),
        Err(e) => Some(format!("{e:#}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SS: &str = "\
LISTEN 0      4096     192.0.2.2:5201      0.0.0.0:*
LISTEN 0      511        0.0.0.0:8080      0.0.0.0:*
LISTEN 0      511           [::]:9090         [::]:*
";

    #[test]
    fn a_run_captures_output_and_time() {
        let mut cmd = Command::new("sh");
        cmd.args(["-c", "echo out; echo err >&2; exit 3"]);
        let output = run(&mut cmd, Duration::from_secs(10)).unwrap();
        assert_eq!(output.stdout, "out\n");
        assert_eq!(output.stderr, "err\n");
        assert_eq!(output.status.code(), Some(3));
        assert!(
            output.seconds > 0.0 && output.seconds < 5.0,
            "{}",
            output.seconds
        );
    }

    #[test]
    fn a_hanging_run_is_killed_with_what_it_started() {
        let mut cmd = Command::new("sh");
        // The grandchild holds stdout: only killing the group ends the run.
        cmd.args(["-c", "sleep 30 & sleep 30"]);
        let start = Instant::now();
        let err = run(&mut cmd, Duration::from_millis(300)).unwrap_err();
        assert!(err.to_string().contains("killed"), "{err}");
        assert!(start.elapsed() < Duration::from_secs(10));
    }

    #[test]
    fn listening_matches_the_address_or_a_wildcard() {
        let at = |s: &str| s.parse::<SocketAddr>().unwrap();
        assert!(listens_on(SS, at("192.0.2.2:5201")));
        assert!(listens_on(SS, at("192.0.2.9:8080")));
        assert!(listens_on(SS, at("192.0.2.9:9090")));
        assert!(!listens_on(SS, at("192.0.2.9:5201")));
        assert!(!listens_on(SS, at("192.0.2.2:5202")));
    }

    #[test]
    fn a_failing_program_reports_what_it_said() {
        let err = checked(
            Command::new("sh").args(["-c", "echo broken >&2; exit 3"]),
            Duration::from_secs(10),
        )
        .unwrap_err();
        let msg = format!("{err:#}");
        assert!(msg.contains("broken"), "{msg}");
    }

    #[test]
    fn a_hanging_program_is_killed() {
        let err = run(Command::new("sleep").arg("30"), Duration::from_millis(200)).unwrap_err();
        assert!(err.to_string().contains("killed"), "{err}");
    }
}
