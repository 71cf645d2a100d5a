//! The `[dns]` section of the inventory: the zone gwx answers for, how many gateway
//! addresses one answer holds, how gateways are checked, and what to answer when none
//! is healthy. Names come from the services: service `web` is `web.<zone>`, unless it
//! sets `hostname`.
//!
//! ```toml
//! [dns]
//! zone = "example.net"
//! listen = ["203.0.113.53:53"]
//! nameservers = ["ns1.example.net", "ns2.example.net"]
//! answer_count = 4
//! ttl_secs = 30
//! fallback = "all"                        # or { backup = ["203.0.113.200"] }
//!
//! [dns.check]
//! port = 443                              # default: the first TCP service's port
//! interval_ms = 2000
//! timeout_ms = 1000
//! rise = 2
//! fall = 3
//! http = { path = "/healthz" }            # optional; Host is the service's name
//! ```

use std::net::{IpAddr, SocketAddr};

use appliance::config::Problems;
use serde::Deserialize;

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
    /// Checks the section (found at `dns`), given whether any service is TCP.
    pub fn validate_at(&self, p: &mut Problems, has_tcp_service: bool) {
        p.check(
            is_domain(&self.zone),
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
                is_domain(ns),
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
    }
}

/// A domain name: labels of 1 to 63 letters, digits and hyphens, not starting or ending
/// with a hyphen, 253 characters at most; one trailing dot allowed.
pub fn is_domain(name: &str) -> bool {
    let name = name.strip_suffix('.').unwrap_or(name);
    !name.is_empty()
        && name.len() <= 253
        && name.split('.').all(|l| {
            (1..=63).contains(&l.len())
                && l.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
                && !l.starts_with('-')
                && !l.ends_with('-')
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn domain_names() {
        for ok in ["example.net", "example.net.", "a-b.c0.example"] {
            assert!(is_domain(ok), "{ok}");
        }
        for bad in [
            "",
            ".",
            "-a.example",
            "a..b",
            "under_score.net",
            &"a".repeat(64),
        ] {
            assert!(!is_domain(bad), "{bad}");
        }
    }
}
