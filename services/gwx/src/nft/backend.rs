//! The backend host's ruleset, table `inet gwx_backend`: the services' backend ports
//! accept only the grid's gateways (their private addresses) and the host itself
//! (loopback: its own health checks and local clients); anyone else is dropped and
//! counted. Everything else is left alone (policy accept), so the backend's own
//! management, outbound traffic and unrelated services keep working, and its own
//! firewall, if any, stays in charge of them.
//!
//! Ports are matched on every address of the host, not only on the service's backend
//! address: a hidden backend often has a public address too, and the service must not
//! answer there either. The ports are those of every service's backend in the inventory,
//! per protocol, so one file serves every backend host of a grid.

use nftables::expr::MetaKey;
use nftables::types::{NfChainPolicy, NfChainType, NfHook};

use super::expr::*;
use super::ruleset::Ruleset;
use crate::inventory::{Inventory, Protocol};

/// The backend's table (family `inet`).
pub const TABLE: &str = "gwx_backend";
/// Its only chain.
pub const INPUT: &str = "input";

/// The allow-only-gateways ruleset for the backend hosts of `inventory`.
pub fn ruleset(inventory: &Inventory) -> Ruleset {
    let mut rs = Ruleset::new("backend", TABLE);
    rs.add_base_chain(
        INPUT,
        NfChainType::Filter,
        NfHook::Input,
        0,
        NfChainPolicy::Accept,
    );
    let private: Vec<_> = inventory.private_addresses().collect();
    for protocol in [Protocol::Tcp, Protocol::Udp] {
        let mut ports: Vec<u16> = inventory
            .services
            .iter()
            .filter(|s| s.protocol == protocol)
            .map(|s| s.backend.port())
            .collect();
        ports.sort_unstable();
        ports.dedup();
        if ports.is_empty() {
            continue;
        }
        let p = protocol.as_str();
        rs.add_rule(
            INPUT,
            format!("accept:loopback {p}"),
            vec![
                eq(meta(MetaKey::Iif), string("lo")),
                dport(protocol, &ports),
                counter(),
                accept(),
            ],
        );
        for f in Family::ALL {
            let gateways = f.filter(&private);
            if gateways.is_empty() {
                continue;
            }
            rs.add_rule(
                INPUT,
                format!("accept:gateways {p} {}", f.proto()),
                vec![
                    eq(addr(f, "saddr"), addrs(&gateways)),
                    dport(protocol, &ports),
                    counter(),
                    accept(),
                ],
            );
        }
        rs.add_rule(
            INPUT,
            format!("drop:not-gateway {p}"),
            vec![dport(protocol, &ports), counter(), drop()],
        );
    }
    rs
}
