//! Everything this benchmark assumes about gwx, kept in one place so it is easy to
//! adjust while gwx's command line settles:
//!
//! * the binary is `target/release/gwx` (`cargo build --release -p gwx`);
//! * it reads the grid inventory of `services/gwx/src/inventory`, written here for the
//!   chain: one gateway whose public address is the chain's gateway front and whose
//!   private address is its back, the benchmark's services with per-source limits off
//!   (0 = unlimited) so they never cap a measurement, and no PROXY header (iperf3 and
//!   nginx's plain HTTP do not speak it);
//! * `gwx --config INVENTORY --gateway ID run` is the proxy: it listens on the public
//!   addresses for the `mode = "proxy"` services and runs until SIGTERM;
//! * `gwx --config INVENTORY --gateway ID apply` installs the gateway's nftables ruleset,
//!   which forwards the `mode = "l3"` services in the kernel (DNAT + SNAT), and exits;
//! * `--log-level warn`: like its peers here (HAProxy without `log`, nginx stream
//!   without an access log), gwx does not log every connection;
//! * `--threads N` gives gwx the same worker count as its peers; with 1, gwx runs one
//!   event loop on one thread, as HAProxy does with `nbthread 1`.
//!
//! While gwx is being written, a missing binary or a missing subcommand skips the
//! variant that needs it (see [`unavailable`]) instead of failing the run.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::Result;
use tempfile::TempDir;
use testbed::Netns;
use testbed::topology::Chain;

use crate::cmd;
use crate::daemon::write_file;
use crate::forwarders::Forward;

/// The gateway's id in the inventory (`--gateway`).
pub const GATEWAY_ID: &str = "bench";
/// The subcommand that runs the proxy until SIGTERM.
pub const RUN: &str = "run";
/// The subcommand that installs the nftables ruleset (L3 forwarding) and exits.
pub const APPLY: &str = "apply";

/// `target/release/gwx` in this workspace.
pub fn default_binary() -> PathBuf {
    cmd::workspace_binary("gwx")
}

/// Why `gwx ACTION` cannot run yet, if it cannot: the binary is not built, or it has
/// no such subcommand (`gwx ACTION --help` fails).
pub fn unavailable(gwx: &Path, action: &str) -> Option<String> {
    cmd::unavailable(gwx, "gwx", action, None)
}

/// How gwx forwards a service (the inventory's `mode`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    Proxy,
    L3,
}

/// A service in the benchmark's inventory: `forward.listen`'s port on the gateway's
/// public address, relayed to `forward.backend`.
#[derive(Debug, Clone)]
pub struct Service {
    pub name: String,
    pub mode: Mode,
    pub forward: Forward,
}

/// The inventory for the chain's gateway and `services`.
pub fn inventory(services: &[Service]) -> String {
    let mut toml = format!(
        "\
# Written by bench/gwx-forward for one run: the chain's gateway in front of its backend.
[grid]
name = \"bench\"

[[gateway]]
id = \"{GATEWAY_ID}\"
public = [\"{public}\"]
private = [\"{private}\"]
",
        public = Chain::GATEWAY_FRONT,
        private = Chain::GATEWAY_BACK,
    );
    for s in services {
        let (mode, proxy_protocol) = match s.mode {
            Mode::Proxy => ("proxy", "proxy_protocol = \"none\"\n"),
            Mode::L3 => ("l3", ""),
        };
        let _ = write!(
            toml,
            "
[[service]]
name = \"{name}\"
protocol = \"tcp\"
port = {port}
backend = \"{backend}\"
mode = \"{mode}\"
{proxy_protocol}
[service.limits]
connections_per_source = 0
new_per_second_per_source = 0
",
            name = s.name,
            port = s.forward.listen.port(),
            backend = s.forward.backend,
        );
    }
    toml
}

/// Writes [`inventory`] as `inventory.toml` into `dir`.
pub fn write_inventory(dir: &TempDir, services: &[Service]) -> Result<PathBuf> {
    write_file(dir, "inventory.toml", &inventory(services))
}

/// `gwx --config INVENTORY --gateway ID ACTION` in `ns`, with `workers` worker threads.
pub fn command(ns: &Netns, gwx: &Path, inventory: &Path, action: &str, workers: usize) -> Command {
    let mut cmd = ns.command(&gwx.to_string_lossy());
    cmd.arg("--config")
        .arg(inventory)
        .args(["--gateway", GATEWAY_ID, "--log-level", "warn"])
        .args(["--threads", &workers.to_string(), action]);
    cmd
}

#[cfg(test)]
mod tests {
    use super::*;

    fn services() -> Vec<Service> {
        let forward = |port: u16, backend: &str| Forward {
            listen: format!("{}:{port}", Chain::GATEWAY_FRONT).parse().unwrap(),
            backend: backend.parse().unwrap(),
        };
        vec![
            Service {
                name: "proxy-iperf".into(),
                mode: Mode::Proxy,
                forward: forward(10021, "192.0.2.2:5201"),
            },
            Service {
                name: "l3-iperf".into(),
                mode: Mode::L3,
                forward: forward(10031, "192.0.2.2:5201"),
            },
        ]
    }

    #[test]
    fn inventory_describes_the_chain_gateway_and_every_service() {
        let text = inventory(&services());
        let doc: toml::Table = text.parse().unwrap_or_else(|e| panic!("{e}\n{text}"));
        let gateway = &doc["gateway"][0];
        assert_eq!(gateway["id"].as_str(), Some(GATEWAY_ID));
        assert_eq!(gateway["public"][0].as_str(), Some(Chain::GATEWAY_FRONT));
        assert_eq!(gateway["private"][0].as_str(), Some(Chain::GATEWAY_BACK));

        let service = doc["service"].as_array().unwrap();
        assert_eq!(service.len(), 2);
        let (proxy, l3) = (&service[0], &service[1]);
        assert_eq!(proxy["mode"].as_str(), Some("proxy"));
        assert_eq!(proxy["proxy_protocol"].as_str(), Some("none"));
        assert_eq!(proxy["port"].as_integer(), Some(10021));
        assert_eq!(proxy["backend"].as_str(), Some("192.0.2.2:5201"));
        assert_eq!(l3["mode"].as_str(), Some("l3"));
        assert!(l3.get("proxy_protocol").is_none());
        for s in service {
            assert_eq!(s["limits"]["connections_per_source"].as_integer(), Some(0));
            assert_eq!(
                s["limits"]["new_per_second_per_source"].as_integer(),
                Some(0)
            );
        }
    }
}
