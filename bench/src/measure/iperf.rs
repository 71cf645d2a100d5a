//! Throughput with iperf3: `iperf3 -s` in the backend's namespace, `iperf3 -c -J` from
//! the client's, the result read from the JSON report (`end.sum_received`, what the
//! server actually received, summed over the streams).

use std::net::SocketAddr;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use serde_json::Value;
use testbed::{Netns, require};

use crate::cmd;
use crate::daemon::Daemon;

/// The port iperf3 uses by default.
pub const PORT: u16 = 5201;

/// How long the client may take to connect (ms), so a dead path fails quickly.
const CONNECT_TIMEOUT_MS: &str = "3000";
/// A server still finishing the previous test answers "busy"; tries before giving up.
const BUSY_TRIES: u32 = 3;

/// Starts `iperf3 -s -B ADDR -p PORT` in `ns`.
pub fn server(ns: &Netns, addr: SocketAddr) -> Result<Daemon> {
    let program = require::tool("iperf3", "iperf3")?;
    let dir = Daemon::dir("iperf3")?;
    let mut cmd = ns.command(&program.to_string_lossy());
    cmd.args([
        "-s",
        "-B",
        &addr.ip().to_string(),
        "-p",
        &addr.port().to_string(),
    ]);
    Daemon::start(ns, "iperf3", dir, cmd, &[addr])
}

/// Bits per second the server received from `iperf3 -c TARGET -t SECONDS -P STREAMS`
/// run in `ns`.
pub fn throughput(ns: &Netns, target: SocketAddr, seconds: u32, streams: u32) -> Result<f64> {
    let program = require::tool("iperf3", "iperf3")?;
    let (host, port) = (target.ip().to_string(), target.port().to_string());
    let (time, parallel) = (seconds.to_string(), streams.to_string());
    let args = [
        "-c",
        &host,
        "-p",
        &port,
        "-t",
        &time,
        "-P",
        &parallel,
        "-J",
        "--connect-timeout",
        CONNECT_TIMEOUT_MS,
    ];
    // The test itself, plus setup and teardown, plus a margin for a loaded machine.
    let timeout = Duration::from_secs(u64::from(seconds) + 20);
    let mut tries = 0;
    loop {
        tries += 1;
        let mut command = ns.command(&program.to_string_lossy());
        command.args(args);
        let out = cmd::run(&mut command, timeout)?;
        match parse_report(&out.stdout) {
            Err(e) if e.to_string().contains("busy") && tries < BUSY_TRIES => {
                std::thread::sleep(Duration::from_secs(1));
            }
            result => {
                return result.with_context(|| {
                    let mut what = format!("iperf3 to {target} with {streams} stream(s)");
                    if !out.stderr.trim().is_empty() {
                        what += &format!(" (stderr: {})", out.stderr.trim());
                    }
                    what
                });
            }
        }
    }
}

/// `end.sum_received.bits_per_second` from an `iperf3 -J` report, or the report's error.
fn parse_report(json: &str) -> Result<f64> {
    let report: Value = serde_json::from_str(json).context("read the JSON report")?;
    if let Some(error) = report.get("error").and_then(Value::as_str) {
        bail!("iperf3 says: {error}");
    }
    report
        .pointer("/end/sum_received/bits_per_second")
        .and_then(Value::as_f64)
        .context("the report has no end.sum_received.bits_per_second")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_received_rate() {
        let json = r#"{"start":{},"intervals":[],"end":{
            "sum_sent":{"bits_per_second":9.5e9},
            "sum_received":{"bits_per_second":9.4e9}}}"#;
        assert_eq!(parse_report(json).unwrap(), 9.4e9);
    }

    #[test]
    fn reports_iperfs_own_error() {
        let json = r#"{"start":{},"intervals":[],"end":{},
            "error":"unable to connect to server: Connection refused"}"#;
        let msg = parse_report(json).unwrap_err().to_string();
        assert!(msg.contains("Connection refused"), "{msg}");
    }

    #[test]
    fn rejects_output_that_is_not_a_report() {
        assert!(parse_report("iperf3: error - no such option").is_err());
    }
}
