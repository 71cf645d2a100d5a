//! Shared harness of the gwx integration tests: a client -> gateway -> backend chain of
//! namespaces, an inventory written for it, and gwx running in the gateway namespace.

#![allow(dead_code)] // each test binary uses its own part of the harness

pub mod logfile;

use std::path::PathBuf;
use std::time::Duration;

use testbed::Process;
use testbed::clients::{healthz, http_get};
use testbed::topology::Chain;

/// Where gwx serves /metrics inside the gateway namespace.
pub const METRICS: &str = "127.0.0.1:9100";

/// An inventory for the chain: one gateway `gw1` with the chain's gateway addresses
/// (front = public, back = private), then `services` (`[[service]]` tables), then the
/// `[hardening]` lines, and a `[runtime]` serving metrics on [`METRICS`].
pub fn inventory_text(services: &str, hardening: &str) -> String {
    format!(
        r#"[grid]
name = "test"

[[gateway]]
id = "gw1"
public = ["{front}", "{front6}"]
private = ["{back}", "{back6}"]

{services}

[hardening]
{hardening}

[runtime]
metrics_listen = "{METRICS}"
drain_timeout_secs = 20
"#,
        front = Chain::GATEWAY_FRONT,
        front6 = Chain::GATEWAY_FRONT6,
        back = Chain::GATEWAY_BACK,
        back6 = Chain::GATEWAY_BACK6,
    )
}

/// [`inventory_text`] with the metrics port among the management ports.
pub fn inventory(services: &str) -> String {
    inventory_text(services, "management_ports = [22, 9100]")
}

/// A chain with gwx running in its gateway.
pub struct Grid {
    pub chain: Chain,
    pub dir: tempfile::TempDir,
    pub inventory: PathBuf,
    pub gwx: Process,
}

impl Grid {
    /// Builds the chain, writes the inventory `text` and starts `gwx run` in the gateway.
    pub fn start(text: &str, run_args: &[&str]) -> Grid {
        Grid::start_with(text, run_args, |_| {})
    }

    /// Like [`Grid::start`], preparing the gateway with `prepare` before gwx starts.
    pub fn start_with(
        text: &str,
        run_args: &[&str],
        prepare: impl FnOnce(&testbed::Netns),
    ) -> Grid {
        let chain = Chain::new().unwrap();
        prepare(&chain.gateway);
        let dir = tempfile::tempdir().unwrap();
        let inventory = dir.path().join("grid.toml");
        std::fs::write(&inventory, text).unwrap();
        let mut args = vec![
            "--config",
            inventory.to_str().unwrap(),
            "--gateway",
            "gw1",
            "--log-format",
            "json",
            "run",
        ];
        args.extend_from_slice(run_args);
        let log = dir.path().join("gwx.log");
        let mut gwx = chain
            .gateway
            .spawn("gwx", env!("CARGO_BIN_EXE_gwx"), &args, &log)
            .unwrap();
        let gateway = &chain.gateway;
        gwx.wait_ready(Duration::from_secs(20), || healthz(gateway, METRICS))
            .unwrap();
        Grid {
            chain,
            dir,
            inventory,
            gwx,
        }
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.gwx.log_path()).unwrap_or_default()
    }

    pub fn metrics(&self) -> String {
        http_get(&self.chain.gateway, METRICS, "/metrics")
            .unwrap()
            .1
    }

    /// The value of the metric line starting with `prefix` (name and labels).
    pub fn metric(&self, prefix: &str) -> f64 {
        let text = self.metrics();
        text.lines()
            .find_map(|l| l.strip_prefix(prefix).and_then(|v| v.trim().parse().ok()))
            .unwrap_or_else(|| panic!("no metric {prefix} in:\n{text}"))
    }

    /// Waits up to 10 s until the metric `prefix` satisfies `ok` (counters that gwx
    /// refreshes periodically).
    pub fn wait_for_metric(&self, prefix: &str, ok: impl Fn(f64) -> bool) {
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        loop {
            let text = self.metrics();
            let value = text
                .lines()
                .find_map(|l| l.strip_prefix(prefix).and_then(|v| v.trim().parse().ok()));
            if value.is_some_and(&ok) {
                return;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "{prefix} is {value:?}:\n{text}"
            );
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    /// Rewrites the inventory and sends SIGHUP; waits until gwx logged the reload.
    pub fn reload(&mut self, text: &str) {
        let before = self.log().matches("config reloaded").count()
            + self.log().matches("reload failed").count();
        std::fs::write(&self.inventory, text).unwrap();
        self.gwx.signal(nix::sys::signal::Signal::SIGHUP).unwrap();
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        loop {
            let log = self.log();
            if log.matches("config reloaded").count() + log.matches("reload failed").count()
                > before
            {
                return;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "no reload logged:\n{log}"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}
