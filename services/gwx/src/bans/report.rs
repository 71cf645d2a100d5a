//! `gwx bans report`: the bans grouped by network (/24 and /64 by default) with the
//! reverse-DNS names of the banned addresses, the recon an operator otherwise does by
//! hand with `whois` and `host` before deciding to ban a whole network.
//!
//! Names come from the system resolver (`getnameinfo`, so /etc/hosts and nsswitch
//! apply), looked up concurrently, each within a timeout: one dead name server must not
//! stall the report. A lookup that times out or fails shows as `?`.

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use ipnet::IpNet;
use serde::Serialize;
use tokio::sync::Semaphore;

use super::nftset::Listed;

/// Lookups running at once.
const PARALLEL_LOOKUPS: usize = 32;
/// Names looked up per network (the first addresses); the rest are only counted.
pub const NAMES_PER_NETWORK: usize = 5;

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct NetworkReport {
    pub network: IpNet,
    pub bans: usize,
    /// Jails that banned in this network, with their counts.
    pub jails: BTreeMap<String, usize>,
    /// `(address, name)` for the first [`NAMES_PER_NETWORK`] bans; `None` when the
    /// lookup failed or timed out.
    pub names: Vec<(IpAddr, Option<String>)>,
}

/// Groups `bans` by their /`v4_prefix` or /`v6_prefix` network, largest group first.
pub fn group(bans: &[Listed], v4_prefix: u8, v6_prefix: u8) -> Vec<NetworkReport> {
    let mut groups: BTreeMap<IpNet, NetworkReport> = BTreeMap::new();
    for b in bans {
        let addr = b.net.network();
        let len = if addr.is_ipv4() { v4_prefix } else { v6_prefix };
        let len = len.min(b.net.prefix_len());
        let network = IpNet::new(addr, len).map_or(b.net, |n| n.trunc());
        let g = groups.entry(network).or_insert_with(|| NetworkReport {
            network,
            bans: 0,
            jails: BTreeMap::new(),
            names: Vec::new(),
        });
        g.bans += 1;
        *g.jails.entry(b.jail.clone()).or_default() += 1;
        if g.names.len() < NAMES_PER_NETWORK {
            g.names.push((addr, None));
        }
    }
    let mut out: Vec<NetworkReport> = groups.into_values().collect();
    out.sort_by(|a, b| b.bans.cmp(&a.bans).then(a.network.cmp(&b.network)));
    out
}

/// Fills in the names of every group, each lookup bounded by `timeout`.
pub async fn resolve(groups: &mut [NetworkReport], timeout: Duration) {
    let limit = Arc::new(Semaphore::new(PARALLEL_LOOKUPS));
    let mut lookups = tokio::task::JoinSet::new();
    for (gi, g) in groups.iter().enumerate() {
        for (ni, (addr, _)) in g.names.iter().enumerate() {
            let (addr, limit) = (*addr, limit.clone());
            lookups.spawn(async move {
                let _permit = limit.acquire_owned().await.ok();
                // getnameinfo blocks; a timed-out lookup's thread finishes on its own.
                let lookup = tokio::task::spawn_blocking(move || dns_lookup::lookup_addr(&addr));
                let name = match tokio::time::timeout(timeout, lookup).await {
                    Ok(Ok(Ok(name))) if name != addr.to_string() => Some(name),
                    _ => None,
                };
                (gi, ni, name)
            });
        }
    }
    while let Some(done) = lookups.join_next().await {
        if let Ok((gi, ni, name)) = done {
            groups[gi].names[ni].1 = name;
        }
    }
}

/// The report as a table.
pub fn render(groups: &[NetworkReport]) -> String {
    let mut out = format!("{:<24} {:>6}  {:<24} names\n", "network", "bans", "jails");
    for g in groups {
        let jails = g
            .jails
            .iter()
            .map(|(j, n)| format!("{}:{n}", if j.is_empty() { "?" } else { j }))
            .collect::<Vec<_>>()
            .join(",");
        let mut names: Vec<String> = g
            .names
            .iter()
            .map(|(a, n)| format!("{a}={}", n.as_deref().unwrap_or("?")))
            .collect();
        if g.bans > g.names.len() {
            names.push(format!("(+{} more)", g.bans - g.names.len()));
        }
        out.push_str(&format!(
            "{:<24} {:>6}  {:<24} {}\n",
            g.network.to_string(),
            g.bans,
            jails,
            names.join(" ")
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn listed(net: &str, jail: &str) -> Listed {
        Listed {
            net: net.parse().unwrap(),
            expires: Duration::from_secs(60),
            jail: jail.into(),
        }
    }

    #[test]
    fn bans_group_by_network_largest_first() {
        let bans = [
            listed("198.18.0.1/32", "wp"),
            listed("198.18.1.1/32", "ssh"),
            listed("198.18.0.2/32", "ssh"),
            listed("2001:db8:1:2::/64", "ssh"),
        ];
        let g = group(&bans, 24, 48);
        let nets: Vec<String> = g.iter().map(|g| g.network.to_string()).collect();
        assert_eq!(nets, ["198.18.0.0/24", "198.18.1.0/24", "2001:db8:1::/48"]);
        assert_eq!(g[0].bans, 2);
        assert_eq!(g[0].jails.get("wp"), Some(&1));
    }

    #[tokio::test]
    async fn names_come_from_the_system_resolver() {
        // 127.0.0.1 is `localhost` in every /etc/hosts; 198.18.0.1 has no name.
        let mut g = group(
            &[listed("127.0.0.1/32", "x"), listed("198.18.0.1/32", "x")],
            24,
            64,
        );
        resolve(&mut g, Duration::from_secs(5)).await;
        let by_addr: BTreeMap<String, Option<String>> = g
            .iter()
            .flat_map(|g| g.names.iter().map(|(a, n)| (a.to_string(), n.clone())))
            .collect();
        assert_eq!(by_addr["127.0.0.1"].as_deref(), Some("localhost"));
        let text = render(&g);
        assert!(text.contains("127.0.0.1=localhost"), "{text}");
    }
}
