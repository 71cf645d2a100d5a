//! The ways the benchmark gets the client's traffic to the backend, run one at a time
//! in the same chain, each against its own instances of the same backend servers:
//!
//! | variant        | the client connects to        | what carries the traffic          |
//! |----------------|-------------------------------|-----------------------------------|
//! | `direct`       | the backend, ports 5201, 8080 | kernel routing in the gateway     |
//! | `haproxy`      | gateway front, 10011, 10012   | HAProxy `mode tcp`                |
//! | `nginx-stream` | gateway front, 10021, 10022   | nginx `stream` `proxy_pass`       |
//! | `gwx-proxy`    | gateway front, 10031, 10032   | `gwx run --no-ruleset`, `mode = "proxy"`: the proxy alone, as HAProxy and nginx run |
//! | `gwx-proxy-hardened` | gateway front, 10041, 10042 | `gwx run`: the proxy behind its own nftables ruleset, as deployed |
//! | `gwx-l3`       | gateway front, 10051, 10052   | `gwx apply`: nftables DNAT + SNAT |
//!
//! `gwx-proxy` is the like-for-like comparison with the other proxies (none of them runs
//! a firewall here); `gwx-proxy-hardened` shows what the hardening costs on top
//! (connection tracking of both legs, the ruleset's rules).
//!
//! Each variant has two paths: to an iperf3 server and to the HTTP server of the
//! connection-rate test, started in the backend for that variant on ports of its own
//! (iperf3 on 5201 + n, HTTP on 8080 + n for the n-th variant). Every port differs
//! between variants so one variant's leftovers never meet the next one. This matters:
//! the backend keeps each closed connection in TIME_WAIT for a minute, and a SYN from
//! another TCP stack (the client's, through `gwx-l3`'s SNAT) that reuses the 4-tuple of
//! a proxy's earlier connection is taken for an old duplicate and costs a retransmit.

use std::net::{IpAddr, SocketAddr};
use std::path::Path;
use std::time::Duration;

use anyhow::{Context, Result};
use testbed::Netns;
use testbed::servers::Nginx;
use testbed::topology::Chain;

use super::gwx::{self, Mode, Service};
use crate::cmd;
use crate::daemon::Daemon;
use crate::forwarders::{self, Forward};
use crate::measure::{connrate, iperf};

/// How long `gwx apply` may take.
const APPLY_TIMEOUT: Duration = Duration::from_secs(30);

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Variant {
    Direct,
    Haproxy,
    NginxStream,
    GwxProxy,
    GwxProxyHardened,
    GwxL3,
}

/// The two addresses of a variant on one side: where the client connects, or where
/// the backend servers listen.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Endpoints {
    /// The iperf3 server (throughput).
    pub iperf: SocketAddr,
    /// The HTTP server (connection rate).
    pub http: SocketAddr,
}

/// A variant set up: its backend servers and whatever forwards to them in the gateway.
/// Dropping it stops everything and removes the gateway's ruleset. Field order is drop
/// order: the forwarder stops, then its ruleset goes, then the backend servers stop.
pub struct Active<'a> {
    /// Where the client connects.
    pub targets: Endpoints,
    forwarder: Option<Daemon>,
    _ruleset: Option<RulesetGuard<'a>>,
    _iperf: Daemon,
    _http: Nginx,
}

impl Active<'_> {
    /// The end of the forwarder's log, if it has one, to show next to a failure.
    pub fn log_tail(&self) -> Option<String> {
        self.forwarder.as_ref().map(|d| d.log_tail(10))
    }
}

impl Variant {
    pub const ALL: [Variant; 6] = [
        Variant::Direct,
        Variant::Haproxy,
        Variant::NginxStream,
        Variant::GwxProxy,
        Variant::GwxProxyHardened,
        Variant::GwxL3,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Variant::Direct => "direct",
            Variant::Haproxy => "haproxy",
            Variant::NginxStream => "nginx-stream",
            Variant::GwxProxy => "gwx-proxy",
            Variant::GwxProxyHardened => "gwx-proxy-hardened",
            Variant::GwxL3 => "gwx-l3",
        }
    }

    /// One line on what carries the traffic.
    pub fn describe(self) -> &'static str {
        match self {
            Variant::Direct => "the backend's address, routed by the gateway's kernel (baseline)",
            Variant::Haproxy => "HAProxy mode tcp in the gateway",
            Variant::NginxStream => "nginx stream proxy_pass in the gateway",
            Variant::GwxProxy => "gwx run --no-ruleset (mode = \"proxy\") in the gateway",
            Variant::GwxProxyHardened => {
                "gwx run (mode = \"proxy\") behind its own nftables ruleset in the gateway"
            }
            Variant::GwxL3 => "gwx apply (mode = \"l3\": nftables DNAT + SNAT) in the gateway",
        }
    }

    /// The variant's position in [`Variant::ALL`], which sets its ports.
    fn index(self) -> u16 {
        Variant::ALL.iter().position(|v| *v == self).unwrap_or(0) as u16
    }

    /// Where this variant's backend servers listen.
    pub fn backends(self) -> Endpoints {
        let backend = ip(Chain::BACKEND);
        Endpoints {
            iperf: SocketAddr::new(backend, iperf::PORT + self.index()),
            http: SocketAddr::new(backend, connrate::PORT + self.index()),
        }
    }

    /// Where the client connects: the backend itself for `direct`, otherwise the
    /// variant's two ports on the gateway's front address.
    pub fn targets(self) -> Endpoints {
        if self == Variant::Direct {
            return self.backends();
        }
        let front = |offset: u16| {
            SocketAddr::new(
                ip(Chain::GATEWAY_FRONT),
                10_000 + 10 * self.index() + offset,
            )
        };
        Endpoints {
            iperf: front(1),
            http: front(2),
        }
    }

    /// The `listen -> backend` pairs the variant's forwarder serves.
    fn forwards(self) -> [Forward; 2] {
        let (t, b) = (self.targets(), self.backends());
        [
            Forward {
                listen: t.iperf,
                backend: b.iperf,
            },
            Forward {
                listen: t.http,
                backend: b.http,
            },
        ]
    }

    /// Why this variant cannot run here yet, if it cannot (not a failure of the run).
    pub fn skip_reason(self, gwx: &Path) -> Option<String> {
        match self {
            Variant::GwxProxy | Variant::GwxProxyHardened => gwx::unavailable(gwx, gwx::RUN),
            Variant::GwxL3 => gwx::unavailable(gwx, gwx::APPLY),
            Variant::Direct | Variant::Haproxy | Variant::NginxStream => None,
        }
    }

    /// Starts the variant's backend servers, then sets its forwarding up in the
    /// chain's gateway with `workers` workers.
    pub fn start<'a>(self, chain: &'a Chain, workers: usize, gwx: &Path) -> Result<Active<'a>> {
        let backends = self.backends();
        let mut active = Active {
            targets: self.targets(),
            forwarder: None,
            _ruleset: None,
            _iperf: iperf::server(&chain.backend, backends.iperf)?,
            _http: connrate::server(&chain.backend, backends.http)?,
        };
        let gateway = &chain.gateway;
        let forwards = self.forwards();
        match self {
            Variant::Direct => {}
            Variant::Haproxy => {
                active.forwarder = Some(forwarders::haproxy(gateway, &forwards, workers)?);
            }
            Variant::NginxStream => {
                active.forwarder = Some(forwarders::nginx_stream(gateway, &forwards, workers)?);
            }
            Variant::GwxProxy | Variant::GwxProxyHardened => {
                // Whatever ruleset `gwx run` installs goes when the variant ends.
                active._ruleset = Some(RulesetGuard(gateway));
                let dir = Daemon::dir("gwx")?;
                let inventory = gwx::write_inventory(&dir, &gwx_services())?;
                let mut cmd = gwx::command(gateway, gwx, &inventory, gwx::RUN, workers);
                if self == Variant::GwxProxy {
                    cmd.arg("--no-ruleset");
                }
                let listen = forwards.map(|f| f.listen);
                active.forwarder = Some(Daemon::start(gateway, "gwx", dir, cmd, &listen)?);
            }
            Variant::GwxL3 => {
                active._ruleset = Some(RulesetGuard(gateway));
                let dir = Daemon::dir("gwx")?;
                let inventory = gwx::write_inventory(&dir, &gwx_services())?;
                let mut cmd = gwx::command(gateway, gwx, &inventory, gwx::APPLY, workers);
                cmd::checked(&mut cmd, APPLY_TIMEOUT).context("install gwx's ruleset")?;
            }
        }
        Ok(active)
    }
}

/// One inventory for every gwx variant: each variant's services on its own ports.
fn gwx_services() -> Vec<Service> {
    let mut services = Vec::new();
    for (variant, mode, prefix) in [
        (Variant::GwxProxy, Mode::Proxy, "proxy"),
        (Variant::GwxProxyHardened, Mode::Proxy, "hardened"),
        (Variant::GwxL3, Mode::L3, "l3"),
    ] {
        for (forward, what) in variant.forwards().into_iter().zip(["iperf", "http"]) {
            services.push(Service {
                name: format!("{prefix}-{what}"),
                mode,
                forward,
            });
        }
    }
    services
}

fn ip(addr: &str) -> IpAddr {
    addr.parse()
        .unwrap_or_else(|e| panic!("testbed address constant {addr:?}: {e}"))
}

/// Flushes the gateway's nftables ruleset on drop, so the next variant starts clean.
struct RulesetGuard<'a>(&'a Netns);

impl Drop for RulesetGuard<'_> {
    fn drop(&mut self) {
        let _ = self.0.exec("nft", &["flush", "ruleset"]);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_variant_has_ports_of_its_own_on_both_sides() {
        let mut seen = std::collections::HashSet::new();
        for v in Variant::ALL {
            let (t, b) = (v.targets(), v.backends());
            assert!(seen.insert(b.iperf) && seen.insert(b.http), "{v:?} {b:?}");
            if v != Variant::Direct {
                assert!(seen.insert(t.iperf) && seen.insert(t.http), "{v:?} {t:?}");
            }
        }
    }

    #[test]
    fn direct_goes_to_the_backend_and_the_others_to_the_gateway() {
        assert_eq!(Variant::Direct.targets(), Variant::Direct.backends());
        for v in &Variant::ALL[1..] {
            assert_eq!(v.targets().iperf.ip(), ip(Chain::GATEWAY_FRONT), "{v:?}");
            assert_eq!(v.backends().iperf.ip(), ip(Chain::BACKEND), "{v:?}");
        }
    }

    #[test]
    fn the_documented_ports() {
        let t = Variant::Haproxy.targets();
        assert_eq!((t.iperf.port(), t.http.port()), (10011, 10012));
        let t = Variant::GwxProxyHardened.targets();
        assert_eq!((t.iperf.port(), t.http.port()), (10041, 10042));
        let t = Variant::GwxL3.targets();
        assert_eq!((t.iperf.port(), t.http.port()), (10051, 10052));
        let b = Variant::GwxL3.backends();
        assert_eq!((b.iperf.port(), b.http.port()), (5206, 8085));
    }

    #[test]
    fn gwx_inventory_has_the_proxy_and_the_l3_services() {
        let names: Vec<String> = gwx_services().into_iter().map(|s| s.name).collect();
        assert_eq!(
            names,
            [
                "proxy-iperf",
                "proxy-http",
                "hardened-iperf",
                "hardened-http",
                "l3-iperf",
                "l3-http"
            ]
        );
    }
}
