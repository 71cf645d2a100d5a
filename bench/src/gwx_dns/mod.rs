//! `gwx-dns`: dnsperf against `gwx dns run` and against NSD serving a static zone with
//! the same 32 addresses, in one namespace and one run; queries per second of each
//! and the ratio. gwx does what NSD does not: every answer is 4 addresses drawn at
//! random from the ones its health checks found up.
//!
//! The namespace holds the 32 gateway addresses (4 gateways x 8, 198.18.G.1-8 on the
//! namespace's loopback) and a listener on their checked port, so every address is
//! healthy; gwx's checks run against them throughout the measurement. NSD gets the
//! same number of server processes as gwx gets threads.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use testbed::{Netns, Process};

use crate::cmd;
use crate::table::{Table, quantile};

const GWX_PORT: u16 = 5300;
const NSD_PORT: u16 = 5400;
const METRICS: &str = "127.0.0.1:9103";
const GATEWAYS: usize = 4;
const PER_GATEWAY: usize = 8;

#[derive(Debug, Clone)]
pub struct Options {
    pub gwx: PathBuf,
    pub seconds: u32,
    pub rounds: u32,
    pub workers: usize,
    /// dnsperf's concurrent clients.
    pub clients: u32,
}

fn addresses() -> Vec<String> {
    (1..=GATEWAYS)
        .flat_map(|g| (1..=PER_GATEWAY).map(move |i| format!("198.18.{g}.{i}")))
        .collect()
}

fn inventory() -> String {
    let mut t = String::from("[grid]\nname = \"bench\"\n\n");
    for g in 1..=GATEWAYS {
        let public: Vec<String> = (1..=PER_GATEWAY)
            .map(|i| format!("\"198.18.{g}.{i}\""))
            .collect();
        t += &format!(
            "[[gateway]]\nid = \"gw{g}\"\npublic = [{}]\nprivate = [\"192.0.2.{}\"]\n\n",
            public.join(", "),
            10 + g
        );
    }
    t += &format!(
        "[[service]]\nname = \"www\"\nprotocol = \"tcp\"\nport = 8080\nbackend = \"192.0.2.2:8080\"\nmode = \"proxy\"\n\n\
         [runtime]\nmetrics_listen = \"{METRICS}\"\n\n\
         [dns]\nzone = \"example.net\"\nlisten = [\"127.0.0.1:{GWX_PORT}\"]\nnameservers = [\"ns1.example.net\"]\nanswer_count = 4\nttl_secs = 30\n\n\
         [dns.glue]\n\"ns1.example.net\" = [\"127.0.0.1\"]\n\n\
         [dns.check]\ninterval_ms = 1000\ntimeout_ms = 500\nrise = 1\nfall = 2\n"
    );
    t
}

/// NSD's config and zone. Response rate limiting is off: NSD limits a source to 200
/// answers a second by default, which would measure the limit, not the server.
fn nsd_files(dir: &Path, workers: usize) -> Result<PathBuf> {
    let mut zone = String::from(
        "$ORIGIN example.net.\n$TTL 30\n@ SOA ns1 hostmaster 1 3600 600 86400 30\n@ NS ns1\nns1 3600 A 127.0.0.1\n",
    );
    for a in addresses() {
        zone += &format!("www A {a}\n");
    }
    std::fs::write(dir.join("example.net.zone"), zone)?;
    let d = dir.display();
    let conf = format!(
        "server:\n    ip-address: 127.0.0.1@{NSD_PORT}\n    port: {NSD_PORT}\n    username: \"\"\n    zonesdir: \"{d}\"\n    database: \"\"\n    pidfile: \"{d}/nsd.pid\"\n    xfrdfile: \"{d}/xfrd.state\"\n    zonelistfile: \"{d}/zone.list\"\n    server-count: {workers}\n    verbosity: 1\n    hide-version: yes\n    rrl-ratelimit: 0\nremote-control:\n    control-enable: no\nzone:\n    name: \"example.net\"\n    zonefile: \"example.net.zone\"\n"
    );
    let path = dir.join("nsd.conf");
    std::fs::write(&path, conf)?;
    Ok(path)
}

/// Asks `port` in `ns` until it answers www.example.net with `want` addresses.
fn wait_answers(ns: &Netns, port: u16, want: usize) -> Result<()> {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let out = ns.exec(
            "dig",
            &[
                "@127.0.0.1",
                "-p",
                &port.to_string(),
                "+short",
                "+tries=1",
                "+time=1",
                "www.example.net",
                "A",
            ],
        );
        if let Ok(out) = &out {
            if out.lines().filter(|l| l.starts_with("198.18.")).count() == want {
                return Ok(());
            }
        }
        if Instant::now() > deadline {
            bail!("port {port} never answered with {want} addresses: {out:?}");
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// dnsperf against `port` for the configured time; queries per second.
fn dnsperf(ns: &Netns, port: u16, data: &Path, opts: &Options) -> Result<f64> {
    let out = cmd::checked(
        ns.command("dnsperf").args([
            "-s",
            "127.0.0.1",
            "-p",
            &port.to_string(),
            "-d",
            &data.to_string_lossy(),
            "-l",
            &opts.seconds.to_string(),
            "-c",
            &opts.clients.to_string(),
            "-T",
            "1",
            "-q",
            "500",
        ]),
        Duration::from_secs(u64::from(opts.seconds) + 60),
    )?;
    let line = out
        .lines()
        .find(|l| l.trim_start().starts_with("Queries per second:"))
        .with_context(|| format!("dnsperf printed no rate:\n{out}"))?;
    let qps: f64 = line
        .split(':')
        .nth(1)
        .and_then(|v| v.trim().parse().ok())
        .with_context(|| format!("cannot read {line:?}"))?;
    // Lost queries are shown, not hidden in the rate.
    if let Some(lost) = out.lines().find(|l| l.contains("Queries lost:")) {
        let n: u64 = lost
            .split_whitespace()
            .nth(2)
            .and_then(|v| v.parse().ok())
            .unwrap_or(0);
        if n > 0 {
            eprintln!("   dnsperf on port {port}: {}", lost.trim());
        }
    }
    Ok(qps)
}

pub fn run(opts: &Options, out: &mut impl Write) -> Result<()> {
    testbed::require::tool("dnsperf", "dnsperf")?;
    testbed::require::tool("nsd", "nsd")?;
    testbed::require::tool("dig", "dnsutils")?;
    let ns = Netns::new("dns")?;
    // On loopback: this kernel has no dummy interfaces, and nothing here leaves the
    // namespace anyway.
    for a in addresses() {
        ns.ip(&["addr", "add", &format!("{a}/32"), "dev", "lo"])?;
    }
    // Every gateway address accepts on the checked port: all 32 are healthy.
    let listener = ns
        .enter(|| std::net::TcpListener::bind("0.0.0.0:8080"))?
        .context("listen on the checked port")?;
    std::thread::spawn(move || for _ in listener.incoming() {});

    let dir = tempfile::Builder::new()
        .prefix("bench-gwx-dns-")
        .tempdir()?;
    let inv = dir.path().join("grid.toml");
    std::fs::write(&inv, inventory())?;
    let data = dir.path().join("queries.txt");
    std::fs::write(&data, "www.example.net A\n")?;
    let threads = opts.workers.to_string();
    let mut gwx_cmd = ns.command(&opts.gwx.to_string_lossy());
    gwx_cmd
        .args([
            "--config",
            &inv.to_string_lossy(),
            "--log-level",
            "warn",
            "--threads",
            &threads,
        ])
        .args([
            "dns",
            "--state-dir",
            &dir.path().join("state").to_string_lossy(),
            "run",
        ]);
    let mut gwx = Process::spawn("gwx dns", gwx_cmd, &dir.path().join("gwx.log"))?;
    gwx.wait_ready(Duration::from_secs(30), || {
        testbed::clients::healthz(&ns, METRICS)
    })
    .context("gwx dns did not start")?;
    wait_answers(&ns, GWX_PORT, 4)?;
    let conf = nsd_files(dir.path(), opts.workers)?;
    let mut nsd_cmd = ns.command("nsd");
    nsd_cmd.args(["-d", "-c", &conf.to_string_lossy()]);
    let _nsd = Process::spawn("nsd", nsd_cmd, &dir.path().join("nsd.log"))?;
    wait_answers(&ns, NSD_PORT, 32)?;

    writeln!(
        out,
        "gwx-dns: dnsperf against gwx dns (4 random healthy of 32 per answer) and NSD (static zone, all 32)"
    )?;
    writeln!(out, "versions  {}", cmd::version("nsd", &["-v"]))?;
    writeln!(
        out,
        "          {}",
        cmd::version("dnsperf", &["-h"])
            .lines()
            .next()
            .unwrap_or("")
    )?;
    writeln!(
        out,
        "          {}",
        cmd::version(&opts.gwx.to_string_lossy(), &["--version"])
    )?;
    writeln!(
        out,
        "load      dnsperf -c {} for {} s per round, {} round(s) interleaved, medians; {} worker(s) each (gwx --threads, nsd server-count)",
        opts.clients, opts.seconds, opts.rounds, opts.workers
    )?;
    let (mut g, mut n) = (Vec::new(), Vec::new());
    for r in 1..=opts.rounds {
        let q = dnsperf(&ns, NSD_PORT, &data, opts)?;
        writeln!(out, "   round {r}: nsd {q:.0} q/s")?;
        n.push(q);
        let q = dnsperf(&ns, GWX_PORT, &data, opts)?;
        writeln!(out, "   round {r}: gwx {q:.0} q/s")?;
        g.push(q);
        out.flush()?;
    }
    if !gwx.is_running() {
        bail!("gwx dns exited during the run:\n{}", gwx.log_tail(20));
    }
    let (gq, nq) = (quantile(&g, 0.5), quantile(&n, 0.5));
    let mut t = Table::new(["server", "queries/s"]);
    t.row(["nsd (static, 32 addresses)".to_owned(), format!("{nq:.0}")]);
    t.row(["gwx dns (4 of 32 healthy)".to_owned(), format!("{gq:.0}")]);
    let ratio = gq / nq;
    writeln!(
        out,
        "\n{t}\nratio gwx / nsd: {ratio:.2}\ngoal: at least half of the static server's rate: {}",
        if ratio >= 0.5 { "yes" } else { "no" }
    )?;
    Ok(())
}
