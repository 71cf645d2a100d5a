//! The gateway demo: builds a small grid on this machine (client, gateways, hidden
//! backend, each a network namespace), forwards a service through every gateway and
//! prints what happens. `scripts/demo` runs it with `config/demo-grid.toml`.
//!
//! Until gwx exists the gateways are a stand-in: kernel forwarding with an nftables
//! ruleset written here (DNAT to the backend, SNAT to the gateway's own address, so
//! replies return through the gateway and the client never learns the backend's
//! address), and the backend's ruleset accepts the port only from the gateways.

use std::fmt::Write as _;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::time::Duration;

use appliance::config::{Problems, Validate};
use serde::Deserialize;
use testbed::Netns;
use testbed::topology::Grid;

/// The demo's config file.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    pub gateways: usize,
    pub requests_per_gateway: usize,
    pub service: Service,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Service {
    pub name: String,
    pub port: u16,
}

impl Validate for Config {
    fn validate(&self, problems: &mut Problems) {
        problems.check(
            (1..=8).contains(&self.gateways),
            "gateways",
            format!("expected 1 to 8 gateways, got {}", self.gateways),
        );
        problems.check(
            (1..=100).contains(&self.requests_per_gateway),
            "requests_per_gateway",
            format!("expected 1 to 100, got {}", self.requests_per_gateway),
        );
        problems.check(
            self.service.port != 0,
            "service.port",
            "expected a port between 1 and 65535, got 0",
        );
    }
}

#[derive(Debug, thiserror::Error)]
pub enum DemoError {
    #[error("building the grid: {0}")]
    Testbed(#[from] testbed::Error),
    #[error("{0}")]
    Io(#[from] std::io::Error),
    #[error("{what}: {source}")]
    Request {
        what: String,
        #[source]
        source: std::io::Error,
    },
}

/// What the demo observed, for its test and its last lines of output.
#[derive(Debug, Default)]
pub struct Summary {
    /// Per gateway: the replies the client got through it.
    pub replies: Vec<Vec<String>>,
    /// Per gateway: packets its DNAT rule translated.
    pub translated: Vec<u64>,
    /// Whether the client could reach the backend directly (it must not).
    pub backend_reachable_directly: bool,
}

/// The stand-in gateway ruleset: DNAT the service to the backend, SNAT to the gateway's
/// private address, count per rule. Replaced in one transaction by `nft -f`.
fn gateway_ruleset(public: &str, private: &str, port: u16) -> String {
    format!(
        "table ip demo_gw {{
    counter translated {{}}
    chain prerouting {{
        type nat hook prerouting priority dstnat; policy accept;
        ip daddr {public} tcp dport {port} counter name translated dnat to {backend}:{port}
    }}
    chain postrouting {{
        type nat hook postrouting priority srcnat; policy accept;
        ip daddr {backend} tcp dport {port} snat to {private}
    }}
    chain forward {{
        type filter hook forward priority filter; policy drop;
        ct state invalid drop
        ct state established,related accept
        ip daddr {backend} tcp dport {port} ct state new accept
    }}
}}
",
        backend = Grid::BACKEND
    )
}

/// The backend accepts the service only from the gateways' private addresses.
fn backend_ruleset(gateways: usize, port: u16) -> String {
    let allowed: Vec<String> = (0..gateways).map(Grid::gateway_private).collect();
    format!(
        "table inet demo_backend {{
    chain input {{
        type filter hook input priority filter; policy accept;
        tcp dport {port} ip saddr {{ {} }} accept
        tcp dport {port} drop
    }}
}}
",
        allowed.join(", ")
    )
}

fn translated(gw: &Netns) -> Result<u64, DemoError> {
    let out = gw.exec("nft", &["list", "counter", "ip", "demo_gw", "translated"])?;
    Ok(out
        .split("packets ")
        .nth(1)
        .and_then(|s| s.split_whitespace().next())
        .and_then(|n| n.parse().ok())
        .unwrap_or(0))
}

/// Sends one request from `client` to `addr` and returns the reply.
fn request(client: &Netns, addr: SocketAddr, body: &str) -> Result<String, DemoError> {
    let body = body.to_owned();
    client
        .enter(move || {
            let mut s = TcpStream::connect_timeout(&addr, Duration::from_secs(2))?;
            s.set_read_timeout(Some(Duration::from_secs(5)))?;
            s.write_all(body.as_bytes())?;
            s.shutdown(std::net::Shutdown::Write)?;
            let mut reply = String::new();
            s.read_to_string(&mut reply)?;
            Ok(reply)
        })?
        .map_err(|source| DemoError::Request {
            what: format!("request to {addr}"),
            source,
        })
}

/// The backend's service: answers each request with the address it saw it from.
fn serve_backend(listener: TcpListener) {
    std::thread::spawn(move || {
        for conn in listener.incoming() {
            let Ok(mut conn) = conn else { return };
            let mut req = Vec::new();
            if conn.read_to_end(&mut req).is_ok() {
                let peer = conn
                    .peer_addr()
                    .map(|p| p.ip().to_string())
                    .unwrap_or_default();
                let _ = write!(
                    conn,
                    "backend got {:?} from {peer}",
                    String::from_utf8_lossy(&req)
                );
            }
        }
    });
}

/// Runs the demo, printing each step to `out`.
pub fn run(config: &Config, out: &mut impl Write) -> Result<Summary, DemoError> {
    let port = config.service.port;
    writeln!(
        out,
        "== building the grid: 1 client, {} gateways, 1 backend",
        config.gateways
    )?;
    let grid = Grid::new(config.gateways)?;
    writeln!(out, "   client  {} (no route to the backend)", Grid::CLIENT)?;
    for i in 0..config.gateways {
        writeln!(
            out,
            "   gw{}     public {} / private {}",
            i + 1,
            Grid::gateway_public(i),
            Grid::gateway_private(i)
        )?;
    }
    writeln!(out, "   backend {} (hidden)", Grid::BACKEND)?;

    let listener = grid
        .backend
        .enter(|| TcpListener::bind(("0.0.0.0", port)))??;
    serve_backend(listener);
    grid.backend
        .nft_apply(&backend_ruleset(config.gateways, port))?;
    writeln!(
        out,
        "== backend: service `{}` on port {port}, accepted only from the gateways",
        config.service.name
    )?;

    for (i, gw) in grid.gateways.iter().enumerate() {
        gw.sysctl("net.ipv4.ip_forward", "1")?;
        gw.nft_apply(&gateway_ruleset(
            &Grid::gateway_public(i),
            &Grid::gateway_private(i),
            port,
        ))?;
    }
    writeln!(
        out,
        "== gateways: DNAT {port} -> backend, SNAT to own address (one nft transaction each)"
    )?;

    let mut summary = Summary::default();
    for (i, gw) in grid.gateways.iter().enumerate() {
        let addr: SocketAddr = format!("{}:{port}", Grid::gateway_public(i))
            .parse()
            .unwrap();
        let mut replies = Vec::new();
        for n in 1..=config.requests_per_gateway {
            let reply = request(&grid.client, addr, &format!("request {n}"))?;
            writeln!(out, "   client -> gw{} {addr}: {reply}", i + 1)?;
            replies.push(reply);
        }
        summary.replies.push(replies);
        summary.translated.push(translated(gw)?);
    }

    let direct: SocketAddr = format!("{}:{port}", Grid::BACKEND).parse().unwrap();
    summary.backend_reachable_directly = request(&grid.client, direct, "direct").is_ok();
    writeln!(
        out,
        "== client -> backend {direct} directly: {}",
        if summary.backend_reachable_directly {
            "REACHED (the backend is exposed!)"
        } else {
            "unreachable, as it must be"
        }
    )?;
    let mut counters = String::new();
    for (i, n) in summary.translated.iter().enumerate() {
        let _ = write!(counters, " gw{}={n}", i + 1);
    }
    writeln!(out, "== connections translated per gateway:{counters}")?;
    writeln!(out, "== tearing down the grid")?;
    Ok(summary)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rulesets_name_backend_and_gateways() {
        let gw = gateway_ruleset("203.0.113.11", "192.0.2.11", 8080);
        assert!(gw.contains(
            "ip daddr 203.0.113.11 tcp dport 8080 counter name translated dnat to 192.0.2.2:8080"
        ));
        assert!(gw.contains("snat to 192.0.2.11"));
        let be = backend_ruleset(2, 8080);
        assert!(
            be.contains("ip saddr { 192.0.2.11, 192.0.2.12 } accept"),
            "{be}"
        );
    }
}
