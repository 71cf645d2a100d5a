//! Commands from the plan (db1's start and stop, the upgrade, the cutover hook) and
//! the tools dbm drives, run to completion with their errors carrying stderr's tail.

use std::process::Stdio;
use std::time::Duration;

use anyhow::{Context, bail};
use tokio::io::{AsyncRead, AsyncReadExt};
use tokio::process::Command;

/// Makes the command's process die (SIGKILL) when dbm dies, kill -9 included: a
/// backup, unpack or prepare left running by a killed dbm would write into the datadir
/// that the next `dbm run` is redoing.
pub fn die_with_dbm(cmd: &mut Command) {
    // SAFETY: prctl is async-signal-safe and touches no memory of the parent.
    unsafe {
        cmd.pre_exec(|| {
            nix::sys::prctl::set_pdeathsig(nix::sys::signal::Signal::SIGKILL)
                .map_err(std::io::Error::from)
        });
    }
}

/// How much of a failed command's stderr an error carries.
pub const STDERR_TAIL: usize = 2048;

/// Runs `cmd` to completion, stdin closed; an error carries its stderr's tail.
pub async fn run_checked(mut cmd: Command, what: &str) -> anyhow::Result<String> {
    die_with_dbm(&mut cmd);
    let out = cmd
        .stdin(Stdio::null())
        .kill_on_drop(true)
        .output()
        .await
        .with_context(|| format!("starting {what} ({:?})", cmd.as_std().get_program()))?;
    stdout_of(out, what)
}

/// A finished command's stdout; an error naming `what`, with the exit status and
/// stderr's tail, when it failed.
pub fn stdout_of(out: std::process::Output, what: &str) -> anyhow::Result<String> {
    if !out.status.success() {
        bail!(
            "{what} failed ({}): {}",
            out.status,
            tail(&String::from_utf8_lossy(&out.stderr))
        );
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// The last `STDERR_TAIL` bytes of `text`, trimmed, at a character boundary.
pub fn tail(text: &str) -> &str {
    let text = text.trim();
    let mut start = text.len().saturating_sub(STDERR_TAIL);
    while !text.is_char_boundary(start) {
        start += 1;
    }
    &text[start..]
}

/// Reads `from` to its end, keeping its tail (for the error message).
pub async fn collect_tail(mut from: impl AsyncRead + Unpin) -> String {
    let mut kept = Vec::new();
    let mut buf = [0u8; 4096];
    while let Ok(n) = from.read(&mut buf).await {
        if n == 0 {
            break;
        }
        kept.extend_from_slice(&buf[..n]);
        if kept.len() > 4 * STDERR_TAIL {
            kept.drain(..kept.len() - STDERR_TAIL);
        }
    }
    tail(&String::from_utf8_lossy(&kept)).to_owned()
}

/// Runs `command` with `sh -c`, `env` added, stopped (its process group killed) after
/// `timeout`; an error names `key` and carries stderr's tail.
pub async fn run_with_timeout(
    key: &str,
    command: &str,
    env: &[(&str, String)],
    timeout: Duration,
) -> anyhow::Result<String> {
    tracing::info!(%key, %command, "running");
    let mut cmd = Command::new("sh");
    cmd.arg("-c")
        .arg(command)
        .envs(env.iter().map(|(k, v)| (*k, v)))
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        // Its own process group, so a timeout stops what it started too.
        .process_group(0);
    die_with_dbm(&mut cmd);
    let child = cmd
        .spawn()
        .with_context(|| format!("starting {key} with sh -c"))?;
    let pgid = child.id().map(|id| nix::unistd::Pid::from_raw(id as i32));
    match tokio::time::timeout(timeout, child.wait_with_output()).await {
        Ok(out) => stdout_of(out.with_context(|| format!("waiting for {key}"))?, key),
        Err(_) => {
            if let Some(pgid) = pgid {
                let _ = nix::sys::signal::killpg(pgid, nix::sys::signal::Signal::SIGKILL);
            }
            bail!(
                "{key} did not finish within {}s and was stopped",
                timeout.as_secs_f64()
            )
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tails_are_cut_at_character_boundaries() {
        let long = "é".repeat(STDERR_TAIL);
        assert!(tail(&long).len() <= STDERR_TAIL);
        assert_eq!(tail("  short\n"), "short");
    }

    #[tokio::test]
    async fn failures_carry_stderr_and_timeouts_stop_the_command() {
        let e = run_with_timeout(
            "t.hook",
            "echo oops >&2; exit 3",
            &[],
            Duration::from_secs(5),
        )
        .await
        .unwrap_err()
        .to_string();
        assert!(e.contains("t.hook failed") && e.contains("oops"), "{e}");
        let out = run_with_timeout(
            "t.env",
            "echo $X",
            &[("X", "y".to_owned())],
            Duration::from_secs(5),
        )
        .await
        .unwrap();
        assert_eq!(out.trim(), "y");
        let e = run_with_timeout("t.slow", "sleep 5", &[], Duration::from_millis(200))
            .await
            .unwrap_err()
            .to_string();
        assert!(e.contains("did not finish within"), "{e}");
    }
}
