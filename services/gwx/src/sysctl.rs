//! The gateway's kernel settings, rendered as a `sysctl.d` file from the inventory: each
//! setting with a comment saying why, in a fixed order, so the same inventory always
//! gives the same bytes (the appliance image build and the golden test rely on it).
//!
//! What is deliberately absent: `net.ipv4.tcp_tw_recycle`. It broke every client behind
//! NAT (it dropped SYNs whose TCP timestamps went backwards, and clients behind one NAT
//! share an address but not a clock) and was removed from Linux in 4.12; an old tuning
//! guide's copy would at best be an unknown key. A test asserts it never comes back.
//!
//! `net.netfilter.*` keys exist only once the `nf_conntrack` module is loaded: the image
//! must load it before `systemd-sysctl` runs (`modules-load.d`), or those lines fail.

use std::fmt::Write;

use crate::inventory::{Inventory, Mode, Protocol};

/// Where a setting can be changed: in any network namespace, or only in the host's
/// initial one (tests, which run in namespaces, can apply only the former).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scope {
    Netns,
    Host,
}

/// One setting.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sysctl {
    pub key: &'static str,
    pub value: String,
    /// Why, written above the line.
    pub why: &'static str,
    pub scope: Scope,
}

#[derive(Debug, thiserror::Error)]
pub enum SysctlError {
    #[error("unknown gateway `{id}`: the inventory has {known}")]
    UnknownGateway { id: String, known: String },
}

/// Conntrack entries: about 320 bytes each, so 1M is ~320 MB at worst, which a gateway
/// is sized for. The kernel's default (from RAM size, often 65536 to 262144) lets a
/// flood of real connections fill the table, after which every new connection of every
/// client is dropped; the per-source limits keep one source from doing it alone.
pub const CONNTRACK_MAX: u32 = 1 << 20;

/// The settings for gateway `gateway_id`, in file order.
pub fn entries(inventory: &Inventory, gateway_id: &str) -> Result<Vec<Sysctl>, SysctlError> {
    if inventory.gateway(gateway_id).is_none() {
        return Err(SysctlError::UnknownGateway {
            id: gateway_id.to_owned(),
            known: crate::nft::known_ids(inventory),
        });
    }
    let l3 = inventory.services.iter().filter(|s| s.mode == Mode::L3);
    let l3_v4 = l3.clone().any(|s| s.backend.is_ipv4());
    let l3_v6 = l3.clone().any(|s| s.backend.is_ipv6());
    let synproxy = inventory.hardening.syn_proxy && l3.clone().any(|s| s.protocol == Protocol::Tcp);

    let mut reserved: Vec<u16> = inventory
        .services
        .iter()
        .map(|s| s.port)
        .chain(inventory.hardening.management_ports.iter().copied())
        .collect();
    reserved.sort_unstable();
    reserved.dedup();
    let reserved = reserved
        .iter()
        .map(u16::to_string)
        .collect::<Vec<_>>()
        .join(",");
    let idle = inventory
        .services
        .iter()
        .map(|s| s.limits.idle_timeout_secs)
        .max()
        .unwrap_or(0)
        .max(3600);

    use Scope::{Host, Netns};
    let s = |key, value: &str, why, scope| Sysctl {
        key,
        value: value.to_owned(),
        why,
        scope,
    };
    let mut v = vec![
        // SYN floods.
        s(
            "net.ipv4.tcp_syncookies",
            "1",
            "Answer SYN floods with cookies once a listener's SYN backlog is full: half-open \
             connections then cost no memory. synproxy needs it too.",
            Netns,
        ),
        s(
            "net.ipv4.tcp_max_syn_backlog",
            "8192",
            "Half-open connections kept per listener before cookies take over: room for a busy \
             service's normal load, so cookies (which lose some TCP options) are kept for \
             floods.",
            Netns,
        ),
        s(
            "net.core.somaxconn",
            "8192",
            "Upper bound of every listener's accept queue: a burst of completed handshakes \
             waits for the proxy instead of being dropped.",
            Netns,
        ),
        // Connection churn.
        s(
            "net.ipv4.tcp_max_tw_buckets",
            "262144",
            "TIME-WAIT sockets kept: a proxy closes connections at the rate it accepts them; \
             beyond this count the kernel kills them early and logs about it.",
            Netns,
        ),
        s(
            "net.ipv4.tcp_fin_timeout",
            "15",
            "Orphaned connections in FIN-WAIT-2 are released after 15 s instead of 60: a flood \
             of half-closed connections holds a quarter of the memory.",
            Netns,
        ),
        s(
            "net.ipv4.ip_local_port_range",
            "10240 65535",
            "Proxy mode opens one backend connection per client connection, each from a local \
             port: a wide range allows ~55000 at once per backend address (ends of different \
             parity, as Linux prefers).",
            Netns,
        ),
        s(
            "net.ipv4.ip_local_reserved_ports",
            &reserved,
            "The service and management ports are never handed out as local ports of outgoing \
             connections, so gwx and sshd can always bind them, also after a restart.",
            Netns,
        ),
        // Spoofing and rerouting.
        s(
            "net.ipv4.conf.all.rp_filter",
            "1",
            "Strict reverse-path filter: drop packets whose source would not be routed back out \
             of the interface they came in on (spoofed sources). Caveat: with asymmetric \
             routing (traffic arriving on another interface than the route back, e.g. two \
             uplinks) strict mode drops legitimate packets; use 2 (loose) there. L3 mode is \
             symmetric by itself: SNAT brings the backend's replies back through the gateway.",
            Netns,
        ),
        s(
            "net.ipv4.conf.default.rp_filter",
            "1",
            "The same for interfaces created later (the kernel uses the higher of `all` and the \
             interface's own value).",
            Netns,
        ),
    ];
    for key in [
        "net.ipv4.conf.all.accept_redirects",
        "net.ipv4.conf.default.accept_redirects",
        "net.ipv4.conf.all.secure_redirects",
        "net.ipv4.conf.default.secure_redirects",
        "net.ipv6.conf.all.accept_redirects",
        "net.ipv6.conf.default.accept_redirects",
    ] {
        v.push(s(
            key,
            "0",
            "ICMP redirects would let whoever sends them reroute the gateway's traffic; its \
             routes are static.",
            Netns,
        ));
    }
    for key in [
        "net.ipv4.conf.all.send_redirects",
        "net.ipv4.conf.default.send_redirects",
    ] {
        v.push(s(
            key,
            "0",
            "Never tell neighbours about other paths: the gateway's routing is nobody else's \
             business.",
            Netns,
        ));
    }
    for key in [
        "net.ipv4.conf.all.accept_source_route",
        "net.ipv4.conf.default.accept_source_route",
        "net.ipv6.conf.all.accept_source_route",
        "net.ipv6.conf.default.accept_source_route",
    ] {
        v.push(s(
            key,
            "0",
            "Source-routed packets choose their own path through the network: a spoofing aid, \
             never needed.",
            Netns,
        ));
    }
    // Forwarding.
    v.push(if l3_v4 {
        s(
            "net.ipv4.ip_forward",
            "1",
            "L3 services with IPv4 backends are forwarded by the kernel (DNAT): the gateway \
             routes, and its forward chain (policy drop) lets only those through.",
            Netns,
        )
    } else {
        s(
            "net.ipv4.ip_forward",
            "0",
            "No L3 service with an IPv4 backend: the gateway answers everything itself and \
             never routes.",
            Netns,
        )
    });
    v.push(if l3_v6 {
        s(
            "net.ipv6.conf.all.forwarding",
            "1",
            "L3 services with IPv6 backends are forwarded by the kernel. With forwarding on, \
             router advertisements are ignored: IPv6 addresses and routes must be static.",
            Netns,
        )
    } else {
        s(
            "net.ipv6.conf.all.forwarding",
            "0",
            "No L3 service with an IPv6 backend: the gateway never routes IPv6.",
            Netns,
        )
    });
    // Conntrack.
    v.push(s(
        "net.netfilter.nf_conntrack_max",
        &CONNTRACK_MAX.to_string(),
        "Connections tracked at once: ~320 bytes each, ~320 MB at worst. The default (from RAM \
         size) lets a flood of real connections fill the table, and then everyone's new \
         connections are dropped.",
        Host,
    ));
    v.push(s(
        "net.netfilter.nf_conntrack_tcp_timeout_established",
        &idle.to_string(),
        "An idle established TCP flow is forgotten after this long (the longest service idle \
         timeout, at least an hour) instead of 5 days, so vanished clients do not pin conntrack \
         entries.",
        Netns,
    ));
    if synproxy {
        v.push(s(
            "net.netfilter.nf_conntrack_tcp_loose",
            "0",
            "synproxy: conntrack must not pick up connections from their middle, so the \
             client's final handshake ACK stays invalid and reaches synproxy (and ACK floods \
             create no entries).",
            Netns,
        ));
    }
    Ok(v)
}

/// The `sysctl.d` file for gateway `gateway_id`.
pub fn render(inventory: &Inventory, gateway_id: &str) -> Result<String, SysctlError> {
    let entries = entries(inventory, gateway_id)?;
    let mut out = format!(
        "# Kernel settings of gwx gateway {gateway_id} (grid {}).\n\
         # Generated by gwx from the grid inventory: change the inventory, not this file.\n\
         # net.netfilter.* needs the nf_conntrack module loaded before systemd-sysctl runs.\n",
        inventory.grid.name
    );
    let mut previous = None;
    for e in &entries {
        // Consecutive settings for the same reason share one comment.
        if previous != Some(e.why) {
            out.push('\n');
            for line in wrap(e.why, 86) {
                let _ = writeln!(out, "# {line}");
            }
        }
        previous = Some(e.why);
        let _ = writeln!(out, "{} = {}", e.key, e.value);
    }
    Ok(out)
}

/// Greedy word wrap for comments.
fn wrap(text: &str, width: usize) -> Vec<String> {
    let mut lines = Vec::new();
    let mut line = String::new();
    for word in text.split_whitespace() {
        if !line.is_empty() && line.len() + 1 + word.len() > width {
            lines.push(std::mem::take(&mut line));
        }
        if !line.is_empty() {
            line.push(' ');
        }
        line.push_str(word);
    }
    if !line.is_empty() {
        lines.push(line);
    }
    lines
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_support::{golden, shipped};

    #[test]
    fn shipped_gateway_matches_the_golden_file() {
        let inv = shipped();
        let text = render(&inv, "gw1").unwrap();
        golden("sysctl-gw1.conf", &text);
        assert_eq!(text, render(&inv, "gw1").unwrap(), "deterministic");
    }

    #[test]
    fn tcp_tw_recycle_is_never_set() {
        let mut inv = shipped();
        for syn_proxy in [false, true] {
            inv.hardening.syn_proxy = syn_proxy;
            let text = render(&inv, "gw2").unwrap();
            assert!(!text.contains("tcp_tw_recycle"), "{text}");
        }
    }

    #[test]
    fn every_line_says_why() {
        let text = render(&shipped(), "gw1").unwrap();
        let lines: Vec<&str> = text.lines().collect();
        // Each setting sits under a comment, possibly shared with the settings above it.
        for (i, line) in lines.iter().enumerate() {
            if line.contains(" = ") && !line.starts_with('#') {
                let above = lines[..i].iter().rev().find(|l| !l.contains(" = "));
                assert!(
                    above.is_some_and(|l| l.starts_with("# ")),
                    "no comment above {line:?}"
                );
            }
        }
    }

    #[test]
    fn forwarding_follows_the_l3_services() {
        let mut inv = shipped();
        let value = |inv: &Inventory, key: &str| {
            entries(inv, "gw1")
                .unwrap()
                .into_iter()
                .find(|e| e.key == key)
                .map(|e| e.value)
        };
        // The shipped grid has an L3 service with an IPv4 backend.
        assert_eq!(value(&inv, "net.ipv4.ip_forward").as_deref(), Some("1"));
        assert_eq!(
            value(&inv, "net.ipv6.conf.all.forwarding").as_deref(),
            Some("0")
        );
        assert_eq!(value(&inv, "net.netfilter.nf_conntrack_tcp_loose"), None);
        inv.services.retain(|s| s.mode == Mode::Proxy);
        assert_eq!(value(&inv, "net.ipv4.ip_forward").as_deref(), Some("0"));
        let mut inv = shipped();
        inv.hardening.syn_proxy = true;
        assert_eq!(
            value(&inv, "net.netfilter.nf_conntrack_tcp_loose").as_deref(),
            Some("0")
        );
    }

    #[test]
    fn unknown_gateway_names_the_known_ones() {
        let err = render(&shipped(), "gw9").unwrap_err().to_string();
        assert_eq!(err, "unknown gateway `gw9`: the inventory has `gw1`, `gw2`");
    }
}
