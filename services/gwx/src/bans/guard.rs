//! Who may never be banned. Two lists: the protected addresses (every gateway of the
//! grid, every backend, loopback), which nothing bans, not even an operator's `gwx bans
//! add`; and the jails' `ignoreip` allowlists. A ban covers a network (a /64 for IPv6),
//! so a ban is refused when its network overlaps a protected or allowlisted one, not
//! only when the offending address itself is listed: banning 2001:db8:1::/64 would
//! also cut off a gateway at 2001:db8:1::1.

use std::net::IpAddr;

use ipnet::IpNet;

use crate::inventory::Inventory;

/// Why a network is not banned.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refusal {
    /// It covers a gateway, a backend or loopback.
    Protected { net: IpNet, what: String },
    /// It overlaps an `ignoreip` entry.
    Allowlisted { entry: IpNet },
}

impl std::fmt::Display for Refusal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Refusal::Protected { net, what } => {
                write!(f, "{net} is protected: it covers {what}")
            }
            Refusal::Allowlisted { entry } => write!(f, "allowlisted by ignoreip {entry}"),
        }
    }
}

impl Refusal {
    /// A short label for metrics.
    pub fn label(&self) -> &'static str {
        match self {
            Refusal::Protected { .. } => "protected",
            Refusal::Allowlisted { .. } => "ignoreip",
        }
    }
}

/// The protected networks and one allowlist.
#[derive(Debug, Clone, Default)]
pub struct Guard {
    protected: Vec<(IpNet, String)>,
    allow: Vec<IpNet>,
}

impl Guard {
    /// The grid's own addresses, its backends and loopback.
    pub fn for_grid(inventory: &Inventory) -> Guard {
        let mut protected: Vec<(IpNet, String)> = vec![
            (
                "127.0.0.0/8".parse().expect("literal"),
                "loopback".to_owned(),
            ),
            ("::1/128".parse().expect("literal"), "loopback".to_owned()),
        ];
        for g in &inventory.gateways {
            for a in g.public.iter().chain(&g.private) {
                protected.push((IpNet::from(*a), format!("gateway {} ({a})", g.id)));
            }
        }
        for s in &inventory.services {
            let a = s.backend.ip();
            protected.push((IpNet::from(a), format!("the backend of {} ({a})", s.name)));
        }
        Guard {
            protected,
            allow: Vec::new(),
        }
    }

    /// This guard plus an allowlist.
    pub fn with_allowlist(&self, allow: impl IntoIterator<Item = IpNet>) -> Guard {
        let mut g = self.clone();
        g.allow.extend(allow);
        g
    }

    /// Whether `net` may be banned.
    pub fn check(&self, net: &IpNet) -> Result<(), Refusal> {
        if let Some((_, what)) = self.protected.iter().find(|(p, _)| overlaps(p, net)) {
            return Err(Refusal::Protected {
                net: *net,
                what: what.clone(),
            });
        }
        match self.allow.iter().find(|a| overlaps(a, net)) {
            Some(entry) => Err(Refusal::Allowlisted { entry: *entry }),
            None => Ok(()),
        }
    }

    /// Whether `ip` itself is allowlisted or protected (checked before any counting,
    /// so allowlisted sources cost nothing).
    pub fn covers(&self, ip: IpAddr) -> bool {
        self.protected.iter().any(|(p, _)| p.contains(&ip))
            || self.allow.iter().any(|a| a.contains(&ip))
    }
}

/// Two networks share an address exactly when one contains the other's first address.
fn overlaps(a: &IpNet, b: &IpNet) -> bool {
    a.contains(&b.network()) || b.contains(&a.network())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn net(s: &str) -> IpNet {
        s.parse().unwrap()
    }

    #[test]
    fn a_network_ban_that_would_cover_a_gateway_is_refused() {
        let inv = crate::test_support::shipped();
        let guard = Guard::for_grid(&inv);
        let gw = inv.gateways[0].public[0];
        let wide = IpNet::new(gw, if gw.is_ipv4() { 24 } else { 64 })
            .unwrap()
            .trunc();
        assert!(matches!(guard.check(&wide), Err(Refusal::Protected { .. })));
        assert!(guard.check(&net("127.0.0.1/32")).is_err());
        assert!(guard.check(&net("198.18.0.9/32")).is_ok());
    }

    #[test]
    fn allowlisted_networks_are_not_banned() {
        let guard = Guard::default().with_allowlist([net("198.18.0.0/24")]);
        assert_eq!(
            guard.check(&net("198.18.0.7/32")),
            Err(Refusal::Allowlisted {
                entry: net("198.18.0.0/24")
            })
        );
        assert!(guard.covers("198.18.0.200".parse().unwrap()));
        assert!(guard.check(&net("198.18.1.7/32")).is_ok());
    }
}
