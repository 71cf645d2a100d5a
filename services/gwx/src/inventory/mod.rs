//! The grid inventory: one TOML file describing the whole grid (gateways, their public
//! and private addresses, the services they forward, limits and hardening), the same
//! file on every gateway. A gateway learns which entry is itself from `--gateway ID`.
//!
//! Everything else in gwx is derived from this: the listeners of the L4 proxy, the
//! gateway's nftables ruleset, the backend's allow-only-gateways ruleset, the sysctls.

use std::collections::HashSet;
use std::net::{IpAddr, SocketAddr};
use std::path::Path;
use std::time::Duration;

use appliance::RuntimeConfig;
use appliance::config::{self, ConfigError, Problems, Validate};
use serde::Deserialize;

mod dns;
pub use dns::{Check, Dns, Fallback, HttpCheck};

/// The whole grid.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Inventory {
    pub grid: Grid,
    #[serde(rename = "gateway")]
    pub gateways: Vec<Gateway>,
    #[serde(rename = "service")]
    pub services: Vec<Service>,
    #[serde(default)]
    pub hardening: Hardening,
    #[serde(default)]
    pub runtime: RuntimeConfig,
    /// The grid's DNS (`gwx dns`), if it serves one.
    pub dns: Option<Dns>,
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Grid {
    /// Name of the grid, used in logs and metrics.
    pub name: String,
}

/// One gateway host.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Gateway {
    /// Short identifier; also sent to the backend in the PROXY v2 gateway-ID TLV.
    pub id: String,
    /// Addresses clients reach (IPv4 and IPv6); every service listens on each of them.
    pub public: Vec<IpAddr>,
    /// This gateway's own addresses toward the backend: the source of forwarded
    /// connections (SNAT in L3 mode) and what the backend ruleset allows.
    pub private: Vec<IpAddr>,
    /// Provider, site or country: DNS answers spread over as many groups as they can,
    /// so one provider's outage or one blocked country takes out a part of each answer.
    #[serde(default)]
    pub group: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Protocol {
    Tcp,
    Udp,
}

impl Protocol {
    pub fn as_str(self) -> &'static str {
        match self {
            Protocol::Tcp => "tcp",
            Protocol::Udp => "udp",
        }
    }
}

/// How a service is forwarded.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Mode {
    /// L4 proxy in gwx: terminates the client's connection and opens one to the backend,
    /// optionally with a PROXY protocol header carrying the client's address.
    Proxy,
    /// L3 in the kernel: nftables DNAT to the backend plus SNAT to the gateway's private
    /// address, so replies come back through the gateway.
    L3,
}

/// PROXY protocol header sent to the backend in proxy mode (TCP only).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum ProxyProtocol {
    #[default]
    None,
    V1,
    V2,
}

/// One forwarded service.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Service {
    pub name: String,
    pub protocol: Protocol,
    /// Port on every public address of every gateway.
    pub port: u16,
    /// The hidden backend.
    pub backend: SocketAddr,
    pub mode: Mode,
    #[serde(default)]
    pub proxy_protocol: ProxyProtocol,
    #[serde(default)]
    pub limits: Limits,
    /// The name `gwx dns` answers for this service, relative to the zone (default: the
    /// service's name).
    pub hostname: Option<String>,
}

/// Per-service limits. Per-source limits are enforced by nftables in both modes (and
/// by the proxy itself in proxy mode, so they hold even without the ruleset).
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Limits {
    /// Concurrent connections one source address may hold (0: unlimited).
    pub connections_per_source: u32,
    /// New connections per second one source may open, enforced in nftables (0: unlimited).
    pub new_per_second_per_source: u32,
    /// Burst allowed above that rate.
    pub new_burst_per_source: u32,
    /// Proxy mode: time to connect to the backend.
    pub connect_timeout_ms: u64,
    /// Proxy mode: a TCP connection with no data either way for this long is closed.
    pub idle_timeout_secs: u64,
    /// Proxy mode, UDP: most client sessions (4-tuples) kept at once.
    pub udp_sessions: usize,
    /// Proxy mode, UDP: a session with no datagram either way for this long ends.
    pub udp_idle_timeout_secs: u64,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            connections_per_source: 256,
            new_per_second_per_source: 100,
            new_burst_per_source: 200,
            connect_timeout_ms: 3000,
            idle_timeout_secs: 600,
            udp_sessions: 65536,
            udp_idle_timeout_secs: 60,
        }
    }
}

impl Limits {
    pub fn connect_timeout(&self) -> Duration {
        Duration::from_millis(self.connect_timeout_ms)
    }
    pub fn idle_timeout(&self) -> Duration {
        Duration::from_secs(self.idle_timeout_secs)
    }
    pub fn udp_idle_timeout(&self) -> Duration {
        Duration::from_secs(self.udp_idle_timeout_secs)
    }
}

/// The gateway's own hardening.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Hardening {
    /// Drop IP fragments (legitimate service traffic here is never fragmented).
    pub drop_fragments: bool,
    /// SYN proxy for forwarded (L3) TCP services: the kernel answers SYNs with cookies
    /// and only hands completed handshakes to conntrack.
    pub syn_proxy: bool,
    /// Default lifetime of an entry in the ban sets.
    pub ban_timeout_secs: u64,
    /// Bans cover the source's network of this prefix length: 32 bans one IPv4
    /// address.
    pub ban_ipv4_prefix: u8,
    /// The same for IPv6. Default 64: one host usually holds a whole /64, so banning a
    /// single address would be undone by the next address of the same host.
    pub ban_ipv6_prefix: u8,
    /// TCP ports for managing the gateway itself (ssh, the metrics endpoint).
    pub management_ports: Vec<u16>,
    /// Sources allowed to reach the management ports; empty means any.
    pub management_sources: Vec<ipnet::IpNet>,
}

impl Default for Hardening {
    fn default() -> Self {
        Hardening {
            drop_fragments: true,
            syn_proxy: false,
            ban_timeout_secs: 1200,
            ban_ipv4_prefix: 32,
            ban_ipv6_prefix: 64,
            management_ports: vec![22],
            management_sources: Vec::new(),
        }
    }
}

impl Hardening {
    /// The network a ban of `ip` covers: `ip` itself, or its network of
    /// `ban_ipv4_prefix` / `ban_ipv6_prefix` bits. The ban sets hold these network
    /// addresses and the ban rule masks the source address the same way.
    pub fn ban_net(&self, ip: IpAddr) -> ipnet::IpNet {
        let len = match ip {
            IpAddr::V4(_) => self.ban_ipv4_prefix,
            IpAddr::V6(_) => self.ban_ipv6_prefix,
        };
        // Validation keeps the length within the family's range.
        ipnet::IpNet::new(ip, len)
            .map(|n| n.trunc())
            .unwrap_or_else(|_| ipnet::IpNet::from(ip))
    }
}

impl Inventory {
    /// Reads and validates an inventory file.
    pub fn load(path: &Path) -> Result<Inventory, ConfigError> {
        config::load(path)
    }

    /// The gateway called `id`.
    pub fn gateway(&self, id: &str) -> Option<&Gateway> {
        self.gateways.iter().find(|g| g.id == id)
    }

    /// Every gateway's private addresses: what the backend must accept.
    pub fn private_addresses(&self) -> impl Iterator<Item = IpAddr> + '_ {
        self.gateways.iter().flat_map(|g| g.private.iter().copied())
    }

    /// Every gateway's own addresses (public and private): never banned.
    pub fn own_addresses(&self) -> impl Iterator<Item = IpAddr> + '_ {
        self.gateways
            .iter()
            .flat_map(|g| g.public.iter().chain(g.private.iter()).copied())
    }
}

impl Validate for Inventory {
    fn validate(&self, p: &mut Problems) {
        p.check(
            !self.grid.name.trim().is_empty(),
            "grid.name",
            "expected a non-empty grid name",
        );
        p.check(
            !self.gateways.is_empty(),
            "gateway",
            "expected at least one [[gateway]]",
        );
        p.check(
            !self.services.is_empty(),
            "service",
            "expected at least one [[service]]",
        );
        self.runtime.validate_at("runtime", p);
        if let Some(dns) = &self.dns {
            dns.validate_at(
                p,
                &self.services,
                &self.gateways,
                self.runtime.metrics_listen,
            );
        }

        let mut ids = HashSet::new();
        let mut addresses = HashSet::new();
        for (i, g) in self.gateways.iter().enumerate() {
            let key = format!("gateway[{i}]");
            p.check_name(format!("{key}.id"), &g.id);
            p.check_unique(&mut ids, format!("{key}.id"), "gateway id", &g.id);
            p.check(
                !g.public.is_empty(),
                format!("{key}.public"),
                "expected at least one public address",
            );
            p.check(
                !g.private.is_empty(),
                format!("{key}.private"),
                "expected at least one private address",
            );
            for (field, list) in [("public", &g.public), ("private", &g.private)] {
                for (j, a) in list.iter().enumerate() {
                    p.check(
                        !a.is_unspecified() && !a.is_multicast(),
                        format!("{key}.{field}[{j}]"),
                        format!("expected a unicast host address, got {a}"),
                    );
                    p.check(
                        addresses.insert(*a),
                        format!("{key}.{field}[{j}]"),
                        format!("expected each address once in the grid, {a} appears twice"),
                    );
                }
            }
        }

        let mut names = HashSet::new();
        let mut ports = HashSet::new();
        for (i, s) in self.services.iter().enumerate() {
            let key = format!("service[{i}]");
            p.check_name(format!("{key}.name"), &s.name);
            p.check_unique(&mut names, format!("{key}.name"), "service name", &s.name);
            if let Some(h) = &s.hostname {
                p.check(
                    appliance::config::is_hostname(h) && !h.ends_with('.'),
                    format!("{key}.hostname"),
                    format!("expected a name relative to the DNS zone, like www, got {h:?}"),
                );
            }
            p.check(
                s.port != 0,
                format!("{key}.port"),
                "expected a port between 1 and 65535, got 0",
            );
            p.check(
                ports.insert((s.protocol, s.port)),
                format!("{key}.port"),
                format!(
                    "expected one service per protocol and port, {}/{} is used twice",
                    s.protocol.as_str(),
                    s.port
                ),
            );
            p.check(
                s.backend.port() != 0 && !s.backend.ip().is_unspecified(),
                format!("{key}.backend"),
                format!(
                    "expected a backend host address and port, got {}",
                    s.backend
                ),
            );
            p.check(
                !self.own_addresses().any(|a| a == s.backend.ip()),
                format!("{key}.backend"),
                format!(
                    "expected the backend to be another host, {} is a gateway address",
                    s.backend.ip()
                ),
            );
            if s.proxy_protocol != ProxyProtocol::None {
                p.check(
                    s.mode == Mode::Proxy && s.protocol == Protocol::Tcp,
                    format!("{key}.proxy_protocol"),
                    "expected proxy_protocol only with mode = \"proxy\" and protocol = \"tcp\" (L3 mode keeps the client address by itself)",
                );
            }
            if s.mode == Mode::L3 {
                let family_ok = self
                    .gateways
                    .iter()
                    .all(|g| g.private.iter().any(|a| a.is_ipv4() == s.backend.is_ipv4()));
                p.check(
                    family_ok,
                    format!("{key}.backend"),
                    "expected every gateway to have a private address of the backend's family (L3 mode SNATs to it)",
                );
            }
            let l = &s.limits;
            let lk = format!("{key}.limits");
            p.check(
                (1..=60_000).contains(&l.connect_timeout_ms),
                format!("{lk}.connect_timeout_ms"),
                format!("expected 1 to 60000 ms, got {}", l.connect_timeout_ms),
            );
            p.check(
                l.idle_timeout_secs >= 1,
                format!("{lk}.idle_timeout_secs"),
                "expected at least 1 second",
            );
            p.check(
                l.udp_idle_timeout_secs >= 1,
                format!("{lk}.udp_idle_timeout_secs"),
                "expected at least 1 second",
            );
            p.check(
                l.udp_sessions >= 1,
                format!("{lk}.udp_sessions"),
                "expected at least 1 session",
            );
            p.check(
                l.new_per_second_per_source == 0 || l.new_burst_per_source >= 1,
                format!("{lk}.new_burst_per_source"),
                "expected a burst of at least 1 when a rate is set",
            );
        }

        let h = &self.hardening;
        p.check(
            (1..=30 * 86_400).contains(&h.ban_timeout_secs),
            "hardening.ban_timeout_secs",
            format!("expected 1 second to 30 days, got {}", h.ban_timeout_secs),
        );
        p.check(
            (8..=32).contains(&h.ban_ipv4_prefix),
            "hardening.ban_ipv4_prefix",
            format!(
                "expected a prefix length of 8 to 32, got {}",
                h.ban_ipv4_prefix
            ),
        );
        p.check(
            (16..=128).contains(&h.ban_ipv6_prefix),
            "hardening.ban_ipv6_prefix",
            format!(
                "expected a prefix length of 16 to 128, got {}",
                h.ban_ipv6_prefix
            ),
        );
        for (i, port) in h.management_ports.iter().enumerate() {
            p.check(
                *port != 0
                    && !self
                        .services
                        .iter()
                        .any(|s| s.protocol == Protocol::Tcp && s.port == *port),
                format!("hardening.management_ports[{i}]"),
                format!("expected a port that no service uses, got {port}"),
            );
        }
    }
}

#[cfg(test)]
mod tests;
