//! Everything this benchmark assumes about avsx, kept in one place so it is easy to
//! adjust while avsx's command line settles:
//!
//! * the binary is `target/release/avsx` (`cargo build --release -p avsx`);
//! * `avsx --config FILE --log-level warn run` is the server: it listens on
//!   `[smtp] listen` and runs until SIGTERM; `--log-level` is the shared appliance
//!   option, `warn` because Postfix's log goes to a file the benchmark never reads
//!   either, and avsx must not pay for a line per mail the other side does not;
//! * ready means `GET /healthz` on `[runtime] metrics_listen` answers 200;
//! * the config is `services/avsx/src/config.rs`'s: the recipients map is the same file
//!   of known addresses Postfix gets (`addr OK` per line, which avsx reads too), the
//!   relay target is the same sink, connection limits are high enough never to cap a
//!   measurement (the whole load comes from one address), and scanning is on exactly
//!   when `[scan.spamd]` and `[scan.clamd]` are present.
//!
//! While avsx is being written, a missing binary or `run` subcommand skips its
//! variants (see [`unavailable`]) instead of failing the run.

use std::fmt::Write as _;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Command;

use testbed::Netns;

use crate::cmd;

/// The subcommand that runs the SMTP server until SIGTERM.
pub const RUN: &str = "run";

/// `target/release/avsx` in this workspace.
pub fn default_binary() -> PathBuf {
    cmd::workspace_binary("avsx")
}

/// Why `avsx run` cannot run yet, if it cannot: the binary is not built, or it has no
/// `run` subcommand (`avsx run --help` fails).
pub fn unavailable(avsx: &Path) -> Option<String> {
    cmd::unavailable(avsx, "avsx", RUN, None)
}

/// The scanners of the "scan on" variant.
#[derive(Debug, Clone, Copy)]
pub struct Scanners {
    pub spamd: SocketAddr,
    pub clamd: SocketAddr,
}

/// One avsx instance of the benchmark.
#[derive(Debug, Clone)]
pub struct Instance {
    /// `[smtp] listen`.
    pub smtp: SocketAddr,
    /// `[runtime] metrics_listen`: `/healthz` for readiness.
    pub metrics: SocketAddr,
    /// `[recipients] map`.
    pub map: PathBuf,
    /// `[relay] address`: the sink.
    pub relay: SocketAddr,
    /// `[stats] path`.
    pub stats: PathBuf,
    /// Scanning on (both scanners) or off (neither).
    pub scan: Option<Scanners>,
}

/// The config file for `instance`.
pub fn config(instance: &Instance, domain: &str) -> String {
    let mut toml = format!(
        "\
# Written by bench/avsx for one run.
[smtp]
listen = [\"{smtp}\"]
hostname = \"avsx.{domain}\"
# The whole load comes from one address: no limit may cap it.
max_connections = 1000
max_connections_per_ip = 1000

[recipients]
domains = [\"{domain}\"]
map = \"{map}\"

[scan]
",
        smtp = instance.smtp,
        map = instance.map.display(),
    );
    if let Some(scan) = instance.scan {
        let _ = write!(
            toml,
            "
[scan.spamd]
address = \"{spamd}\"
max_bytes = 512000

[scan.clamd]
address = \"{clamd}\"
max_bytes = 26214400
",
            spamd = scan.spamd,
            clamd = scan.clamd,
        );
    }
    let _ = write!(
        toml,
        "
[relay]
address = \"{relay}\"

[stats]
path = \"{stats}\"

[runtime]
metrics_listen = \"{metrics}\"
",
        relay = instance.relay,
        stats = instance.stats.display(),
        metrics = instance.metrics,
    );
    toml
}

/// `avsx --config FILE --log-level warn run` in `ns`.
pub fn command(ns: &Netns, avsx: &Path, config: &Path) -> Command {
    let mut cmd = ns.command(&avsx.to_string_lossy());
    cmd.arg("--config")
        .arg(config)
        .args(["--log-level", "warn", RUN]);
    cmd
}

#[cfg(test)]
mod tests {
    use super::*;

    fn instance(scan: bool) -> Instance {
        Instance {
            smtp: "127.0.0.1:2527".parse().unwrap(),
            metrics: "127.0.0.1:9125".parse().unwrap(),
            map: "/tmp/bench/relay_recipients".into(),
            relay: "127.0.0.1:2525".parse().unwrap(),
            stats: "/tmp/bench/verdicts.jsonl".into(),
            scan: scan.then(|| Scanners {
                spamd: "127.0.0.1:783".parse().unwrap(),
                clamd: "127.0.0.1:3310".parse().unwrap(),
            }),
        }
    }

    fn parse(text: &str) -> toml::Table {
        text.parse().unwrap_or_else(|e| panic!("{e}\n{text}"))
    }

    #[test]
    fn config_without_scanning_has_an_empty_scan_section() {
        let doc = parse(&config(&instance(false), "perimeter.test"));
        assert_eq!(doc["smtp"]["listen"][0].as_str(), Some("127.0.0.1:2527"));
        assert_eq!(
            doc["smtp"]["hostname"].as_str(),
            Some("avsx.perimeter.test")
        );
        assert_eq!(
            doc["smtp"]["max_connections_per_ip"].as_integer(),
            Some(1000)
        );
        assert_eq!(
            doc["recipients"]["domains"][0].as_str(),
            Some("perimeter.test")
        );
        assert_eq!(
            doc["recipients"]["map"].as_str(),
            Some("/tmp/bench/relay_recipients")
        );
        assert!(doc["scan"].as_table().unwrap().is_empty());
        assert_eq!(doc["relay"]["address"].as_str(), Some("127.0.0.1:2525"));
        assert_eq!(
            doc["stats"]["path"].as_str(),
            Some("/tmp/bench/verdicts.jsonl")
        );
        assert_eq!(
            doc["runtime"]["metrics_listen"].as_str(),
            Some("127.0.0.1:9125")
        );
    }

    #[test]
    fn config_with_scanning_names_both_scanners() {
        let doc = parse(&config(&instance(true), "perimeter.test"));
        assert_eq!(
            doc["scan"]["spamd"]["address"].as_str(),
            Some("127.0.0.1:783")
        );
        assert_eq!(
            doc["scan"]["clamd"]["address"].as_str(),
            Some("127.0.0.1:3310")
        );
        assert!(doc["scan"]["spamd"]["max_bytes"].as_integer().unwrap() >= 1024);
    }
}
