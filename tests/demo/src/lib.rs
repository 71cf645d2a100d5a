//! The gateway demo: builds a small grid on this machine (a client, the gateways of the
//! inventory, a hidden backend; each a network namespace), runs `gwx` on every gateway
//! with the inventory shipped in the repository, sends traffic through every gateway
//! and service, plays a small attack, and prints what happened. `scripts/demo` runs it.
//!
//! The namespaces use the fixed documentation addresses of [`testbed::topology::Grid`];
//! the inventory must use the same ones, which [`check_fits`] verifies first.

mod traffic;

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Duration;

use gwx::inventory::{Inventory, Mode, Protocol};
use testbed::clients::{Sample, healthz, http_get, parse_metrics};
use testbed::topology::Grid;
use testbed::{Netns, Process};

/// Where gwx serves /metrics inside each gateway (the shipped inventory's
/// `runtime.metrics_listen`).
const DEFAULT_METRICS: &str = "127.0.0.1:9100";

/// How often the demo's gwx reads its nftables counters (`--counter-interval`).
const COUNTER_INTERVAL: Duration = Duration::from_secs(1);

#[derive(Debug, thiserror::Error)]
pub enum DemoError {
    #[error("{0:#}")]
    Config(#[from] appliance::ConfigError),
    #[error("the inventory does not fit the demo grid: {0}")]
    Layout(String),
    #[error("gwx binary {}: {reason}", path.display())]
    Gwx { path: PathBuf, reason: String },
    #[error("building the grid: {0}")]
    Testbed(#[from] testbed::Error),
    #[error("{0}")]
    Io(#[from] std::io::Error),
}

/// What to run.
pub struct Options {
    pub inventory: PathBuf,
    pub gwx: PathBuf,
    pub requests_per_service: usize,
}

/// What one gateway did, read from its `/metrics` at the end.
#[derive(Debug, Default)]
pub struct GatewayReport {
    pub id: String,
    /// Replies the client got through this gateway: (service, reply).
    pub replies: Vec<(String, String)>,
    /// Connections (TCP) or sessions (UDP) forwarded, per service: counted by the proxy,
    /// or for L3 services by the ruleset's DNAT rule.
    pub forwarded: BTreeMap<String, f64>,
    /// Refusals by the proxy, per reason.
    pub refused: BTreeMap<String, f64>,
    /// Packets dropped by the gateway's nftables ruleset, per reason.
    pub dropped: BTreeMap<String, f64>,
}

/// What the demo observed.
#[derive(Debug, Default)]
pub struct Summary {
    pub gateways: Vec<GatewayReport>,
    pub backend_reachable_directly: bool,
}

/// Checks that `inv` uses the addresses the demo grid builds.
pub fn check_fits(inv: &Inventory) -> Result<(), DemoError> {
    let n = inv.gateways.len();
    if !(1..=8).contains(&n) {
        return Err(DemoError::Layout(format!(
            "expected 1 to 8 gateways, got {n}"
        )));
    }
    for (i, g) in inv.gateways.iter().enumerate() {
        let has =
            |list: &[std::net::IpAddr], want: String| list.iter().any(|a| a.to_string() == want);
        for (field, list, want) in [
            ("public", &g.public, Grid::gateway_public(i)),
            ("public", &g.public, Grid::gateway_public6(i)),
            ("private", &g.private, Grid::gateway_private(i)),
            ("private", &g.private, Grid::gateway_private6(i)),
        ] {
            if !has(list, want.clone()) {
                return Err(DemoError::Layout(format!(
                    "gateway `{}` (number {}) must have {want} in `{field}`",
                    g.id,
                    i + 1
                )));
            }
        }
    }
    for s in &inv.services {
        let ip = s.backend.ip().to_string();
        if ip != Grid::BACKEND && ip != Grid::BACKEND6 {
            return Err(DemoError::Layout(format!(
                "service `{}` must have its backend on {} or {}, not {ip}",
                s.name,
                Grid::BACKEND,
                Grid::BACKEND6
            )));
        }
    }
    Ok(())
}

/// Runs the demo, printing each step to `out`.
pub fn run(opts: &Options, out: &mut impl Write) -> Result<Summary, DemoError> {
    let inv = Inventory::load(&opts.inventory)?;
    check_fits(&inv)?;
    if !opts.gwx.is_file() {
        return Err(DemoError::Gwx {
            path: opts.gwx.clone(),
            reason: "not found; build it with `cargo build -p gwx`".into(),
        });
    }
    let metrics = inv
        .runtime
        .metrics_listen
        .map(|a| a.to_string())
        .unwrap_or_else(|| DEFAULT_METRICS.into());

    writeln!(
        out,
        "== grid `{}` from {}",
        inv.grid.name,
        opts.inventory.display()
    )?;
    let grid = Grid::new(inv.gateways.len())?;
    writeln!(out, "   client   {} / {}", Grid::CLIENT, Grid::CLIENT6)?;
    for (i, g) in inv.gateways.iter().enumerate() {
        writeln!(
            out,
            "   {:<8} public {} / {}   private {}",
            g.id,
            Grid::gateway_public(i),
            Grid::gateway_public6(i),
            Grid::gateway_private(i)
        )?;
    }
    writeln!(
        out,
        "   backend  {} / {} (hidden: no route from the client)",
        Grid::BACKEND,
        Grid::BACKEND6
    )?;

    traffic::start_backends(&grid.backend, &inv)?;
    gwx_in(&grid.backend, opts, &["backend-ruleset", "--apply"])?;
    writeln!(
        out,
        "== backend: services up; `gwx backend-ruleset --apply` accepts them only from the gateways"
    )?;

    let logs = tempfile_dir()?;
    let l3 = inv.services.iter().any(|s| s.mode == Mode::L3);
    let mut daemons = Vec::new();
    for (gw, g) in grid.gateways.iter().zip(&inv.gateways) {
        if l3 {
            // What `gwx sysctl` writes for a gateway with L3 services; the other keys of
            // that file tune the host and are not needed for the demo's traffic.
            gw.enable_forwarding()?;
        }
        daemons.push(start_gwx(gw, &g.id, opts, &logs, &metrics)?);
    }
    writeln!(
        out,
        "== gwx running on {} gateways (ruleset applied, proxy listeners up); logs in {}",
        daemons.len(),
        logs.display()
    )?;

    let mut summary = Summary::default();
    for (i, g) in inv.gateways.iter().enumerate() {
        let mut report = GatewayReport {
            id: g.id.clone(),
            ..Default::default()
        };
        for s in &inv.services {
            for n in 1..=opts.requests_per_service {
                let reply = traffic::request(&grid.client, i, s, &format!("request {n}"));
                let shown = reply.as_deref().unwrap_or_else(|e| e.as_str());
                writeln!(
                    out,
                    "   client -> {} {}/{} ({}): {shown}",
                    g.id,
                    s.protocol.as_str(),
                    s.port,
                    s.name
                )?;
                report.replies.push((
                    s.name.clone(),
                    reply.unwrap_or_else(|e| format!("error: {e}")),
                ));
            }
        }
        summary.gateways.push(report);
    }

    writeln!(
        out,
        "== attack on {}: a flood of connections from one source, probes of closed ports",
        inv.gateways[0].id
    )?;
    if let Some(web) = inv
        .services
        .iter()
        .find(|s| s.mode == Mode::Proxy && s.protocol == Protocol::Tcp)
    {
        let (held, refused) = traffic::connection_flood(
            &grid.client,
            web,
            web.limits.connections_per_source as usize + 3,
        );
        writeln!(
            out,
            "   {held} connections held, {refused} refused over the per-source limit of {}",
            web.limits.connections_per_source
        )?;
    }
    let probes = traffic::probe_closed_ports(&grid.client, &[23, 3389, 5900]);
    writeln!(out, "   {probes} probes of closed ports went unanswered")?;

    summary.backend_reachable_directly = inv
        .services
        .iter()
        .any(|s| traffic::direct(&grid.client, s));
    writeln!(
        out,
        "== client -> backend directly: {}",
        if summary.backend_reachable_directly {
            "REACHED (the backend is exposed!)"
        } else {
            "unreachable, as it must be"
        }
    )?;

    // gwx reads its ruleset's counters every COUNTER_INTERVAL: let one read pass.
    std::thread::sleep(COUNTER_INTERVAL + Duration::from_millis(500));
    for (report, gw) in summary.gateways.iter_mut().zip(&grid.gateways) {
        let (_, text) = http_get(gw, &metrics, "/metrics")?;
        fill_report(report, &parse_metrics(&text));
    }
    print_summary(&summary, out)?;

    for (mut d, _) in daemons {
        d.signal(nix::sys::signal::Signal::SIGTERM)?;
        d.wait_exit(Duration::from_secs(15))?;
    }
    writeln!(out, "== gwx drained and stopped; tearing down the grid")?;
    Ok(summary)
}

fn fill_report(report: &mut GatewayReport, samples: &[Sample]) {
    for s in samples {
        match s.name.as_str() {
            "gwx_connections_total" => {
                *report
                    .forwarded
                    .entry(s.label("service").unwrap_or("?").into())
                    .or_default() += s.value;
            }
            // L3 services: the ruleset's DNAT rule counts each new connection once.
            "gwx_nft_rule_packets_total" => {
                if let Some(service) = s.label("rule").and_then(|r| r.strip_prefix("dnat:")) {
                    *report.forwarded.entry(service.into()).or_default() += s.value;
                }
            }
            "gwx_refused_total" if s.value > 0.0 => {
                *report
                    .refused
                    .entry(s.label("reason").unwrap_or("?").into())
                    .or_default() += s.value;
            }
            "gwx_nft_drops_total" if s.value > 0.0 => {
                *report
                    .dropped
                    .entry(s.label("reason").unwrap_or("?").into())
                    .or_default() += s.value;
            }
            _ => {}
        }
    }
}

fn print_summary(summary: &Summary, out: &mut impl Write) -> std::io::Result<()> {
    writeln!(out, "== summary")?;
    for r in &summary.gateways {
        let join = |m: &BTreeMap<String, f64>| {
            let mut s = String::new();
            for (k, v) in m {
                let _ = write!(s, " {k}={v}");
            }
            if s.is_empty() { " none".into() } else { s }
        };
        writeln!(out, "   {}: forwarded{}", r.id, join(&r.forwarded))?;
        writeln!(out, "   {}: refused by the proxy{}", r.id, join(&r.refused))?;
        writeln!(out, "   {}: dropped by nftables{}", r.id, join(&r.dropped))?;
    }
    Ok(())
}

fn tempfile_dir() -> Result<PathBuf, DemoError> {
    let dir = std::env::temp_dir().join(format!("gwx-demo-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    Ok(dir)
}

/// Starts `gwx run` for gateway `id` inside `ns` and waits for its /healthz.
fn start_gwx(
    ns: &Netns,
    id: &str,
    opts: &Options,
    logs: &Path,
    metrics: &str,
) -> Result<(Process, String), DemoError> {
    let log = logs.join(format!("{id}.log"));
    let inventory = opts.inventory.to_string_lossy();
    let gwx = opts.gwx.to_string_lossy();
    let interval = COUNTER_INTERVAL.as_secs().to_string();
    let args = [
        "--config",
        &inventory,
        "--gateway",
        id,
        "run",
        "--counter-interval",
        &interval,
    ];
    let mut p = ns.spawn(&format!("gwx {id}"), &gwx, &args, &log)?;
    p.wait_ready(Duration::from_secs(20), || healthz(ns, metrics))?;
    Ok((p, id.to_owned()))
}

/// Runs a gwx subcommand with the inventory inside `ns` and returns its stdout.
fn gwx_in(ns: &Netns, opts: &Options, args: &[&str]) -> Result<String, DemoError> {
    let inventory = opts.inventory.to_string_lossy();
    let mut all = vec!["--config", &inventory];
    all.extend_from_slice(args);
    ns.exec(&opts.gwx.to_string_lossy(), &all)
        .map_err(|e| DemoError::Gwx {
            path: opts.gwx.clone(),
            reason: e.to_string(),
        })
}
