//! The `[dns]` section of the inventory: the zone gwx answers for, how many gateway
//! addresses one answer holds, how gateways are checked, and what to answer when none
//! is healthy. Names come from the services: service `web` is `web.<zone>`, unless it
//! sets `hostname`.
//!
//! A name server inside the zone (`ns1.example.net` for `example.net`) needs its
//! addresses in `[dns.glue]`: gwx answers A and AAAA for it, and adds them to NS
//! answers, and the parent zone needs the same addresses as glue for the delegation.
//! Name servers outside the zone take no glue here: their own zone serves them.
//!
//! Each address is drawn in proportion to its weight in `[dns.weights]` (default 1; 0 is
//! a standby, drawn only when no address of positive weight is healthy), and answers
//! spread over the gateways' `group`s (provider, site, country) before they take a
//! second address from any group.
//!
//! ```toml
//! [dns]
//! zone = "example.net"
//! listen = ["203.0.113.53:53"]
//! nameservers = ["ns1.example.net", "ns2.example.net"]
//! answer_count = 4
//! ttl_secs = 30
//! fallback = "all"                        # or { backup = ["203.0.113.200"] }
//! metrics_listen = "0.0.0.0:9153"         # optional: see Dns::metrics_listen
//!
//! [dns.check]
//! port = 443                              # default: the first TCP service's port
//! interval_ms = 2000
//! timeout_ms = 1000
//! rise = 2
//! fall = 3
//! http = { path = "/healthz" }            # optional; Host is the service's name
//!
//! [dns.weights]                           # optional: default 1, 0 = standby
//! "203.0.113.11" = 3                      # three times as often as weight 1
//!
//! [dns.glue]                              # every in-zone name server, no other name
//! "ns1.example.net" = ["203.0.113.53", "2001:db8::53"]
//! "ns2.example.net" = ["198.51.100.53"]
//! ```

use std::collections::{BTreeMap, HashMap, HashSet};
use std::net::{IpAddr, SocketAddr};

use appliance::config::{Problems, is_hostname};
use serde::Deserialize;

use super::{Gateway, Protocol, Service};

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Dns {
    /// The zone, e.g. `example.net` (a trailing dot is allowed).
    pub zone: String,
    /// Where the server listens, UDP and TCP.
    pub listen: Vec<SocketAddr>,
    /// The zone's name servers (NS records); the first is the SOA's primary.
    pub nameservers: Vec<String>,
    /// Addresses per answer (per family).
    #[serde(default = "default_answer_count")]
    pub answer_count: usize,
    #[serde(default = "default_ttl")]
    pub ttl_secs: u32,
    /// What to answer when no address of a family is healthy.
    #[serde(default)]
    pub fallback: Fallback,
    /// Answer with addresses never checked yet, right after a start, when nothing has
    /// been checked at all (otherwise such a query gets the fallback).
    #[serde(default)]
    pub allow_unchecked_at_start: bool,
    #[serde(default)]
    pub check: Check,
    /// The addresses of the name servers inside the zone, by name (as in
    /// `nameservers`, case and trailing dot aside).
    #[serde(default)]
    pub glue: BTreeMap<String, Vec<IpAddr>>,
    /// Draw weights by gateway address (default 1).
    #[serde(default)]
    pub weights: BTreeMap<IpAddr, u32>,
    /// Where `gwx dns run` serves `/metrics` and `/healthz`; none means
    /// `runtime.metrics_listen`. A gateway that runs `gwx run` and `gwx dns run` side by
    /// side needs its own port here, as both would bind the runtime's.
    #[serde(default)]
    pub metrics_listen: Option<SocketAddr>,
}

fn default_answer_count() -> usize {
    4
}
fn default_ttl() -> u32 {
    30
}

#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Default)]
#[serde(deny_unknown_fields, rename_all = "snake_case")]
pub enum Fallback {
    /// Every address of the grid (of the family asked for).
    #[default]
    All,
    /// A fixed set of addresses.
    Backup(Vec<IpAddr>),
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Check {
    /// TCP port checked on every gateway address; none means the first TCP service's.
    pub port: Option<u16>,
    pub interval_ms: u64,
    pub timeout_ms: u64,
    /// Consecutive successes before an address is up.
    pub rise: u32,
    /// Consecutive failures before an address is down.
    pub fall: u32,
    /// An HTTP request instead of a bare connect.
    pub http: Option<HttpCheck>,
}

impl Default for Check {
    fn default() -> Self {
        Check {
            port: None,
            interval_ms: 2000,
            timeout_ms: 1000,
            rise: 2,
            fall: 3,
            http: None,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HttpCheck {
    pub path: String,
}

impl Dns {
    /// Checks the section (found at `dns`), given the inventory's services (their
    /// hostnames, and whether any is TCP).
    /// The highest weight: a draw sums weights of up to a few hundred addresses in a
    /// u64, and a weight of a million means nothing more than one of a thousand.
    pub const MAX_WEIGHT: u32 = 1000;

    /// The weight of `addr` (default 1).
    pub fn weight(&self, addr: IpAddr) -> u32 {
        self.weights.get(&addr).copied().unwrap_or(1)
    }

    pub fn validate_at(
        &self,
        p: &mut Problems,
        services: &[Service],
        gateways: &[Gateway],
        runtime_metrics: Option<SocketAddr>,
    ) {
        if let Some(addr) = self.metrics_listen {
            p.check(
                Some(addr) != runtime_metrics,
                "dns.metrics_listen",
                format!(
                    "{addr} is runtime.metrics_listen too, which `gwx run` binds; give the \
                     DNS server its own port, or leave this out on a host that runs only DNS"
                ),
            );
        }
        for (addr, weight) in &self.weights {
            let key = format!("dns.weights.\"{addr}\"");
            p.check(
                gateways.iter().any(|g| g.public.contains(addr)),
                key.clone(),
                format!("{addr} is no gateway's public address"),
            );
            p.check(
                *weight <= Self::MAX_WEIGHT,
                key,
                format!("expected 0 to {}, got {weight}", Self::MAX_WEIGHT),
            );
        }
        let has_tcp_service = services.iter().any(|s| s.protocol == Protocol::Tcp);
        p.check(
            is_hostname(&self.zone),
            "dns.zone",
            format!(
                "expected a domain name like example.net, got {:?}",
                self.zone
            ),
        );
        p.check(
            !self.listen.is_empty(),
            "dns.listen",
            "expected at least one address to listen on",
        );
        p.check(
            !self.nameservers.is_empty(),
            "dns.nameservers",
            "expected at least one name server",
        );
        for (i, ns) in self.nameservers.iter().enumerate() {
            p.check(
                is_hostname(ns),
                format!("dns.nameservers[{i}]"),
                format!("expected a domain name, got {ns:?}"),
            );
        }
        // 1232 bytes (the EDNS buffer size that avoids fragmentation) fit about 60 A or
        // 40 AAAA records next to the question and the SOA-less answer section.
        p.check(
            (1..=16).contains(&self.answer_count),
            "dns.answer_count",
            format!(
                "expected 1 to 16 addresses per answer, got {}",
                self.answer_count
            ),
        );
        p.check(
            (1..=86_400).contains(&self.ttl_secs),
            "dns.ttl_secs",
            format!("expected 1 to 86400 seconds, got {}", self.ttl_secs),
        );
        if let Fallback::Backup(list) = &self.fallback {
            p.check(
                !list.is_empty(),
                "dns.fallback.backup",
                "expected at least one backup address",
            );
        }
        let c = &self.check;
        p.check(
            c.port.is_some() || has_tcp_service,
            "dns.check.port",
            "expected a port to check: no TCP service to take it from",
        );
        p.check(
            (100..=3_600_000).contains(&c.interval_ms),
            "dns.check.interval_ms",
            format!("expected 100 ms to 1 hour, got {}", c.interval_ms),
        );
        p.check(
            (10..=60_000).contains(&c.timeout_ms) && c.timeout_ms <= c.interval_ms,
            "dns.check.timeout_ms",
            format!(
                "expected 10 ms to 60 s and at most interval_ms, got {}",
                c.timeout_ms
            ),
        );
        p.check(
            (1..=100).contains(&c.rise),
            "dns.check.rise",
            format!("expected 1 to 100, got {}", c.rise),
        );
        p.check(
            (1..=100).contains(&c.fall),
            "dns.check.fall",
            format!("expected 1 to 100, got {}", c.fall),
        );
        if let Some(h) = &c.http {
            p.check(
                h.path.starts_with('/'),
                "dns.check.http.path",
                format!("expected a path starting with /, got {:?}", h.path),
            );
        }
        self.validate_glue(p, services);
    }

    /// `[dns.glue]` against the name servers: glue for each in-zone one, none for the
    /// others; an in-zone name server is no service's hostname.
    fn validate_glue(&self, p: &mut Problems, services: &[Service]) {
        // An invalid zone is reported above; what is inside it is then unknown.
        let zone = is_hostname(&self.zone).then(|| canonical(&self.zone));
        let glue_for = |name: &str| self.glue.keys().any(|k| canonical(k) == name);
        if let Some(zone) = &zone {
            let hosts: Vec<(String, String)> = services
                .iter()
                .enumerate()
                .map(|(j, s)| {
                    let (field, h) = match &s.hostname {
                        Some(h) => ("hostname", h),
                        None => ("name", &s.name),
                    };
                    let name = format!("{}.{zone}", canonical(h));
                    (name, format!("service[{j}].{field}"))
                })
                .collect();
            for (i, ns) in self.nameservers.iter().enumerate() {
                let name = canonical(ns);
                if !is_hostname(ns) || !in_zone(&name, zone) {
                    continue;
                }
                let key = format!("dns.nameservers[{i}]");
                p.check(
                    glue_for(&name),
                    &key,
                    format!(
                        "{ns:?} is inside the zone {zone}, so its addresses must be given: \
                         expected \"{name}\" = [...] in [dns.glue]"
                    ),
                );
                if let Some((_, service)) = hosts.iter().find(|(h, _)| *h == name) {
                    p.push(
                        key,
                        format!(
                            "{ns:?} is also the DNS name of {service}: a name server's name \
                             answers with its glue, it cannot also answer with gateway addresses"
                        ),
                    );
                }
            }
        }
        let mut glued = HashMap::new();
        for (k, addrs) in &self.glue {
            let key = format!("dns.glue.{k:?}");
            let name = canonical(k);
            if !self.nameservers.iter().any(|ns| canonical(ns) == name) {
                p.push(
                    key,
                    format!("expected glue only for names in dns.nameservers, {k:?} is not one"),
                );
                continue;
            }
            if let Some(zone) = zone.as_deref().filter(|z| !in_zone(&name, z)) {
                p.push(
                    key,
                    format!(
                        "{k:?} is outside the zone {zone}: its addresses are for its own zone \
                         to serve, expected no glue for it"
                    ),
                );
                continue;
            }
            if let Some(first) = glued.insert(name.clone(), k) {
                p.push(
                    key,
                    format!(
                        "expected glue once per name server, {first:?} and {k:?} are both {name}"
                    ),
                );
                continue;
            }
            // An answer holds 16 addresses at most (dns::answer, Size).
            let v4 = addrs.iter().filter(|a| a.is_ipv4()).count();
            let v6 = addrs.len() - v4;
            p.check(
                !addrs.is_empty() && v4 <= 16 && v6 <= 16,
                &key,
                format!(
                    "expected 1 to 16 addresses per family for {k:?}, got {v4} IPv4 and {v6} IPv6"
                ),
            );
            let mut seen = HashSet::new();
            for (j, a) in addrs.iter().enumerate() {
                let key = format!("{key}[{j}]");
                p.check(
                    !a.is_unspecified() && !a.is_multicast(),
                    &key,
                    format!("expected a unicast host address, got {a}"),
                );
                p.check(
                    seen.insert(*a),
                    key,
                    format!("expected each address once, {a} appears twice"),
                );
            }
        }
    }
}

/// A name as names are compared: lower case, without the trailing dot.
fn canonical(name: &str) -> String {
    name.strip_suffix('.').unwrap_or(name).to_ascii_lowercase()
}

/// Whether `name` is `zone` or below it (both [`canonical`]).
fn in_zone(name: &str, zone: &str) -> bool {
    name.strip_suffix(zone)
        .is_some_and(|head| head.is_empty() || head.ends_with('.'))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn domain_names_are_host_names() {
        for ok in ["example.net", "example.net.", "a-b.c0.example"] {
            assert!(is_hostname(ok), "{ok}");
        }
        for bad in [
            "",
            ".",
            "-a.example",
            "a..b",
            "under_score.net",
            &"a".repeat(64),
        ] {
            assert!(!is_hostname(bad), "{bad}");
        }
    }
}
