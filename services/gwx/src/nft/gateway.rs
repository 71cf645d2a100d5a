//! The gateway's hardened ruleset, table `inet gwx`, derived from the inventory for one
//! gateway. See the [module docs](super) for the chain layout and why.
//!
//! Rules per chain, in order (each with a counter and a comment):
//!
//! * `prefilter` (prerouting, -450): banned sources (`bans4`, `bans6`: named sets with
//!   timeouts, filled by the ban engine), fragments (`hardening.drop_fragments`), bogus
//!   TCP flag combinations, the per-source SYN rate of TCP services, `notrack` of SYNs
//!   for synproxy (`hardening.syn_proxy`).
//! * `stateful` (prerouting, -150): the synproxy handshake let through, `ct state
//!   invalid`, new TCP without SYN, the per-source connection limit (TCP: reset, so a
//!   real client learns at once; UDP: drop, never reflecting to a spoofed source), the
//!   per-source rate of new UDP flows.
//! * `input` (policy drop): loopback, established/related, synproxy, neighbour
//!   discovery, rate-limited echo requests, management ports, proxy services on the
//!   public addresses; a final counter `drop:input-policy` counts what the policy drops.
//! * L3 services only: `forward` (policy drop), `dnat`, `dnat_local` (with synproxy),
//!   `snat`.
//!
//! The per-source sets are per service and per family (`rate4_web`, `conn6_web`). An
//! entry of a rate set expires when its source has been quiet for a minute (or for as
//! long as its bucket takes to refill, if longer); an entry of a connection set goes
//! when its source holds no connection any more.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use nftables::expr::{Expression, MetaKey};
use nftables::stmt::SetOp;
use nftables::types::{NfChainPolicy, NfChainType, NfHook};

use super::expr::*;
use super::ruleset::{Ruleset, Stmt};
use super::{NftError, find_gateway};
use crate::inventory::{Gateway, Hardening, Inventory, Mode, Protocol, Service};

/// The gateway's table (family `inet`).
pub const TABLE: &str = "gwx";

/// Chain names, for readers of counters.
pub const PREFILTER: &str = "prefilter";
pub const STATEFUL: &str = "stateful";
pub const INPUT: &str = "input";
pub const FORWARD: &str = "forward";
pub const DNAT: &str = "dnat";
pub const DNAT_LOCAL: &str = "dnat_local";
pub const SNAT: &str = "snat";

/// Priorities. Defragmentation runs at -400 once conntrack is in use, so the prefilter
/// must come before it to see fragments at all.
pub const PRIO_PREFILTER: i32 = -450;
pub const PRIO_STATEFUL: i32 = -150;
const PRIO_FILTER: i32 = 0;
const PRIO_DSTNAT: i32 = -100;
const PRIO_SRCNAT: i32 = 100;

/// Most entries a per-source set holds. A full set makes its rule not match (nft cannot
/// add the source), so the limit fails open under a spoofed flood of more sources than
/// this; syncookies cover that case.
pub const PER_SOURCE_SET_SIZE: u32 = 65535;

/// Echo requests answered per second (all sources together), and the burst above it.
const ECHO_RATE: u32 = 10;
const ECHO_BURST: u32 = 50;

/// MSS announced by synproxy: Ethernet MTU minus IPv4 (or IPv6) and TCP headers.
const SYNPROXY_MSS4: u32 = 1460;
const SYNPROXY_MSS6: u32 = 1440;

/// The impossible TCP flag combinations, each with its own counter. The list is the
/// classic one (iptables "bad TCP flags" recipes, Linux conntrack's invalid flags): no
/// legitimate stack sends any of them; scanners (nmap -sN/-sX/-sF) and floods do.
const BOGUS_FLAGS: [(&str, &[&str], &[&str]); 8] = [
    // (reason, mask, value): drop when `tcp flags & mask == value`.
    (
        "null-flags",
        &["fin", "syn", "rst", "psh", "ack", "urg"],
        &[],
    ),
    ("xmas", &["fin", "psh", "urg"], &["fin", "psh", "urg"]),
    ("syn-fin", &["fin", "syn"], &["fin", "syn"]),
    ("syn-rst", &["syn", "rst"], &["syn", "rst"]),
    ("fin-rst", &["fin", "rst"], &["fin", "rst"]),
    ("fin-no-ack", &["fin", "ack"], &["fin"]),
    ("psh-no-ack", &["psh", "ack"], &["psh"]),
    ("urg-no-ack", &["ack", "urg"], &["urg"]),
];

/// The hardened ruleset of gateway `gateway_id`.
pub fn ruleset(inventory: &Inventory, gateway_id: &str) -> Result<Ruleset, NftError> {
    let gw = find_gateway(inventory, gateway_id)?;
    let owner = format!("gateway {}", gw.id);
    let h = &inventory.hardening;
    let mut rs = Ruleset::new(owner.clone(), TABLE);

    // Which families each service is served on by this gateway: a proxy service on every
    // public address, an L3 service only where DNAT can reach its backend (same family).
    let mut served: Vec<(&Service, Vec<Family>)> = Vec::new();
    for s in &inventory.services {
        let families: Vec<Family> = match s.mode {
            Mode::Proxy => Family::ALL
                .into_iter()
                .filter(|f| !f.filter(&gw.public).is_empty())
                .collect(),
            Mode::L3 => {
                let f = Family::of(&s.backend.ip());
                if f.filter(&gw.public).is_empty() {
                    return Err(NftError::Inventory {
                        owner,
                        problem: format!(
                            "L3 service `{}` has an {} backend ({}) but the gateway has no \
                             public {} address to DNAT from",
                            s.name,
                            family_name(f),
                            s.backend,
                            family_name(f)
                        ),
                    });
                }
                vec![f]
            }
        };
        served.push((s, families));
    }
    let l3: Vec<&Service> = inventory
        .services
        .iter()
        .filter(|s| s.mode == Mode::L3)
        .collect();
    let synproxied = |s: &Service| h.syn_proxy && s.mode == Mode::L3 && s.protocol == Protocol::Tcp;
    let synproxy_ports = |f: Family| -> Vec<u16> {
        l3.iter()
            .filter(|s| synproxied(s) && Family::of(&s.backend.ip()) == f)
            .map(|s| s.port)
            .collect()
    };

    // Sets.
    let ban_timeout = u32::try_from(h.ban_timeout_secs).unwrap_or(u32::MAX);
    for f in Family::ALL {
        rs.add_set(address_set(TABLE, bans(f), f, Some(ban_timeout), None));
    }
    for (s, families) in &served {
        let l = &s.limits;
        for &f in families {
            if l.new_per_second_per_source > 0 {
                // Long enough for an idle source's bucket to refill completely.
                let refill = l.new_burst_per_source.div_ceil(l.new_per_second_per_source);
                let timeout = refill.max(60);
                rs.add_set(address_set(
                    TABLE,
                    &rate_set(s, f),
                    f,
                    Some(timeout),
                    Some(PER_SOURCE_SET_SIZE),
                ));
            }
            if l.connections_per_source > 0 && !synproxied(s) {
                // No timeout: an entry goes when its source holds no connection any more.
                rs.add_set(address_set(
                    TABLE,
                    &conn_set(s, f),
                    f,
                    None,
                    Some(PER_SOURCE_SET_SIZE),
                ));
            }
        }
    }

    // Chains.
    use NfChainPolicy::{Accept, Drop};
    use NfChainType::{Filter, NAT};
    rs.add_base_chain(
        PREFILTER,
        Filter,
        NfHook::Prerouting,
        PRIO_PREFILTER,
        Accept,
    );
    rs.add_base_chain(STATEFUL, Filter, NfHook::Prerouting, PRIO_STATEFUL, Accept);
    rs.add_base_chain(INPUT, Filter, NfHook::Input, PRIO_FILTER, Drop);
    if !l3.is_empty() {
        // Only with L3 services: a policy-drop forward chain would also stop forwarding
        // that other tables (containers on the same host) rely on.
        rs.add_base_chain(FORWARD, Filter, NfHook::Forward, PRIO_FILTER, Drop);
        rs.add_base_chain(DNAT, NAT, NfHook::Prerouting, PRIO_DSTNAT, Accept);
        if l3.iter().any(|s| synproxied(s)) {
            rs.add_base_chain(DNAT_LOCAL, NAT, NfHook::Output, PRIO_DSTNAT, Accept);
        }
        rs.add_base_chain(SNAT, NAT, NfHook::Postrouting, PRIO_SRCNAT, Accept);
    }

    // prefilter: stateless decisions, before defragmentation and conntrack.
    for f in Family::ALL {
        rs.add_rule(
            PREFILTER,
            format!("drop:ban {}", f.proto()),
            vec![eq(ban_key(f, h), set_ref(bans(f))), counter(), drop()],
        );
    }
    if h.drop_fragments {
        // IPv4: a fragment has a non-zero offset or, the first one, more-fragments set.
        rs.add_rule(
            PREFILTER,
            "drop:fragment ip",
            vec![
                ne(and(payload("ip", "frag-off"), num(0x3fff_u32)), num(0_u32)),
                counter(),
                drop(),
            ],
        );
        rs.add_rule(
            PREFILTER,
            "drop:fragment ip6",
            vec![
                eq(exthdr("frag"), Expression::Boolean(true)),
                counter(),
                drop(),
            ],
        );
    }
    // Fast path: a segment whose flags (of FIN, SYN, RST, ACK) are exactly ACK, nearly
    // every packet of an established flow, can match none of the rules below (each needs
    // a SYN, FIN or RST, or a missing ACK), so it leaves this chain here instead of being
    // tried against each of them.
    rs.add_rule(
        PREFILTER,
        "accept:plain-ack",
        vec![
            tcp_flags_eq(&["fin", "syn", "rst", "ack"], flags(&["ack"])),
            counter(),
            accept(),
        ],
    );
    for (reason, mask, value) in BOGUS_FLAGS {
        let value = if value.is_empty() {
            num(0_u32)
        } else {
            flags(value)
        };
        rs.add_rule(
            PREFILTER,
            format!("drop:{reason}"),
            vec![tcp_flags_eq(mask, value), counter(), drop()],
        );
    }
    for (s, families) in &served {
        let l = &s.limits;
        if s.protocol != Protocol::Tcp || l.new_per_second_per_source == 0 {
            continue;
        }
        // A TCP connection is opened by a SYN, which can be told without conntrack: an
        // over-rate source's SYNs are dropped before they cost a conntrack entry.
        for &f in families {
            rs.add_rule(
                PREFILTER,
                format!("drop:rate {} {}", s.name, f.proto()),
                vec![
                    eq(addr(f, "daddr"), addrs(&f.filter(&gw.public))),
                    dport(s.protocol, &[s.port]),
                    tcp_syn(),
                    per_source_rate(s, f),
                    counter(),
                    drop(),
                ],
            );
        }
    }
    for f in Family::ALL {
        let ports = synproxy_ports(f);
        if ports.is_empty() {
            continue;
        }
        rs.add_rule(
            PREFILTER,
            format!("notrack:synproxy {}", f.proto()),
            vec![
                eq(addr(f, "daddr"), addrs(&f.filter(&gw.public))),
                dport(Protocol::Tcp, &ports),
                tcp_syn(),
                counter(),
                notrack(),
            ],
        );
    }

    // stateful: decisions that need conntrack, before NAT. Every rule of it concerns
    // invalid or new packets, so established ones leave at once (an accept only ends this
    // chain; the later hooks still see the packet).
    rs.add_rule(
        STATEFUL,
        "accept:established",
        vec![
            ct_is("state", &["established", "related"]),
            counter(),
            accept(),
        ],
    );
    for f in Family::ALL {
        let ports = synproxy_ports(f);
        if ports.is_empty() {
            continue;
        }
        // The handshake synproxy answers is untracked (SYN) or invalid (the client's
        // ACK, which conntrack has not seen a SYN for): let it reach `input`.
        rs.add_rule(
            STATEFUL,
            format!("accept:synproxy-handshake {}", f.proto()),
            vec![
                eq(addr(f, "daddr"), addrs(&f.filter(&gw.public))),
                dport(Protocol::Tcp, &ports),
                ct_is("state", &["invalid", "untracked"]),
                counter(),
                accept(),
            ],
        );
    }
    rs.add_rule(
        STATEFUL,
        "drop:invalid",
        vec![ct_is("state", &["invalid"]), counter(), drop()],
    );
    rs.add_rule(
        STATEFUL,
        "drop:new-not-syn",
        vec![
            ne(
                and(
                    payload("tcp", "flags"),
                    flags(&["fin", "syn", "rst", "ack"]),
                ),
                flags(&["syn"]),
            ),
            ct_is("state", &["new"]),
            counter(),
            drop(),
        ],
    );
    for (s, families) in &served {
        let l = &s.limits;
        if l.connections_per_source == 0 || synproxied(s) {
            continue;
        }
        for &f in families {
            let refuse = match s.protocol {
                Protocol::Tcp => reject_tcp_reset(),
                Protocol::Udp => drop(),
            };
            rs.add_rule(
                STATEFUL,
                format!("drop:connlimit {} {}", s.name, f.proto()),
                vec![
                    eq(addr(f, "daddr"), addrs(&f.filter(&gw.public))),
                    dport(s.protocol, &[s.port]),
                    ct_is("state", &["new"]),
                    set_update(
                        SetOp::Add,
                        &conn_set(s, f),
                        addr(f, "saddr"),
                        ct_count_over(l.connections_per_source),
                    ),
                    counter(),
                    refuse,
                ],
            );
        }
    }
    for (s, families) in &served {
        if s.protocol != Protocol::Udp || s.limits.new_per_second_per_source == 0 {
            continue;
        }
        // A new UDP flow is only known as such once conntrack has looked it up.
        for &f in families {
            rs.add_rule(
                STATEFUL,
                format!("drop:rate {} {}", s.name, f.proto()),
                vec![
                    eq(addr(f, "daddr"), addrs(&f.filter(&gw.public))),
                    dport(s.protocol, &[s.port]),
                    ct_is("state", &["new"]),
                    per_source_rate(s, f),
                    counter(),
                    drop(),
                ],
            );
        }
    }

    // input: what the gateway itself serves.
    rs.add_rule(
        INPUT,
        "accept:loopback",
        vec![eq(meta(MetaKey::Iif), string("lo")), counter(), accept()],
    );
    rs.add_rule(
        INPUT,
        "accept:established",
        vec![
            ct_is("state", &["established", "related"]),
            counter(),
            accept(),
        ],
    );
    for f in Family::ALL {
        let ports = synproxy_ports(f);
        if ports.is_empty() {
            continue;
        }
        let mss = match f {
            Family::V4 => SYNPROXY_MSS4,
            Family::V6 => SYNPROXY_MSS6,
        };
        rs.add_rule(
            INPUT,
            format!("synproxy:l3 {}", f.proto()),
            vec![
                eq(addr(f, "daddr"), addrs(&f.filter(&gw.public))),
                dport(Protocol::Tcp, &ports),
                ct_is("state", &["invalid", "untracked"]),
                counter(),
                synproxy(mss),
            ],
        );
    }
    // Neighbour discovery is IPv6's ARP: never rate-limited, and only from the link
    // (hop limit 255, RFC 4861).
    rs.add_rule(
        INPUT,
        "accept:neighbour-discovery",
        vec![
            eq(
                payload("icmpv6", "type"),
                any_of(
                    [
                        "nd-neighbor-solicit",
                        "nd-neighbor-advert",
                        "nd-router-solicit",
                        "nd-router-advert",
                    ]
                    .into_iter()
                    .map(string)
                    .collect(),
                ),
            ),
            eq(payload("ip6", "hoplimit"), num(255_u32)),
            counter(),
            accept(),
        ],
    );
    // ICMP errors about our own flows are `related` (accepted above); unsolicited
    // echo requests get a bounded share.
    for (proto, comment) in [
        ("icmp", "accept:icmp-echo"),
        ("icmpv6", "accept:icmpv6-echo"),
    ] {
        rs.add_rule(
            INPUT,
            comment,
            vec![
                eq(payload(proto, "type"), string("echo-request")),
                Stmt::Nft(limit(ECHO_RATE, ECHO_BURST, false)),
                counter(),
                accept(),
            ],
        );
    }
    management_rules(&mut rs, inventory);
    dns_rules(&mut rs, inventory, gw);
    for (s, families) in &served {
        if s.mode != Mode::Proxy {
            continue;
        }
        for &f in families {
            rs.add_rule(
                INPUT,
                format!("accept:service {} {}", s.name, f.proto()),
                vec![
                    eq(addr(f, "daddr"), addrs(&f.filter(&gw.public))),
                    dport(s.protocol, &[s.port]),
                    counter(),
                    accept(),
                ],
            );
        }
    }
    rs.add_rule(INPUT, "drop:input-policy", vec![counter()]);

    if !l3.is_empty() {
        l3_rules(&mut rs, gw, &l3, &owner, |s| synproxied(s))?;
    }
    Ok(rs)
}

/// `forward`, `dnat`, `dnat_local`, `snat` for the L3 services.
fn l3_rules(
    rs: &mut Ruleset,
    gw: &Gateway,
    l3: &[&Service],
    owner: &str,
    synproxied: impl Fn(&Service) -> bool,
) -> Result<(), NftError> {
    rs.add_rule(
        FORWARD,
        "accept:established",
        vec![
            ct_is("state", &["established", "related"]),
            counter(),
            accept(),
        ],
    );
    for s in l3 {
        let backend = s.backend.ip();
        let f = Family::of(&backend);
        rs.add_rule(
            FORWARD,
            format!("accept:l3 {}", s.name),
            vec![
                ct_is("state", &["new"]),
                ct_is("status", &["dnat"]),
                eq(addr(f, "daddr"), string(backend.to_string())),
                dport(s.protocol, &[s.backend.port()]),
                counter(),
                accept(),
            ],
        );
    }
    rs.add_rule(FORWARD, "drop:forward-policy", vec![counter()]);

    for s in l3 {
        let f = Family::of(&s.backend.ip());
        let chains: &[&str] = if synproxied(s) {
            // synproxy's own SYN to the server is locally generated: nat output.
            &[DNAT, DNAT_LOCAL]
        } else {
            &[DNAT]
        };
        for chain in chains {
            rs.add_rule(
                chain,
                format!("dnat:{}", s.name),
                vec![
                    eq(addr(f, "daddr"), addrs(&f.filter(&gw.public))),
                    dport(s.protocol, &[s.port]),
                    counter(),
                    dnat(s.backend.ip(), s.backend.port()),
                ],
            );
        }
    }
    for s in l3 {
        let backend = s.backend.ip();
        let f = Family::of(&backend);
        // The inventory's validation guarantees a private address of each L3 backend's
        // family; say so clearly if a caller skipped it.
        let Some(private) = f.filter(&gw.private).first().copied() else {
            return Err(NftError::Inventory {
                owner: owner.to_owned(),
                problem: format!(
                    "L3 service `{}` needs a private {} address on the gateway to SNAT to",
                    s.name,
                    family_name(f)
                ),
            });
        };
        // Replies must come back through this gateway (the backend routes elsewhere),
        // and the client must never see the backend: SNAT what was DNATed to it.
        rs.add_rule(
            SNAT,
            format!("snat:{}", s.name),
            vec![
                ct_is("status", &["dnat"]),
                eq(addr(f, "daddr"), string(backend.to_string())),
                dport(s.protocol, &[s.backend.port()]),
                counter(),
                snat(private),
            ],
        );
    }
    Ok(())
}

/// The grid's DNS server (`gwx dns run`, the `[dns]` section), where it listens on this
/// gateway: on an address of its own or on any address. UDP and TCP, from anywhere:
/// resolvers everywhere ask it.
fn dns_rules(rs: &mut Ruleset, inventory: &Inventory, gw: &Gateway) {
    let Some(dns) = &inventory.dns else {
        return;
    };
    let mut ports: Vec<u16> = dns
        .listen
        .iter()
        .filter(|l| {
            l.ip().is_unspecified() || gw.public.contains(&l.ip()) || gw.private.contains(&l.ip())
        })
        .map(|l| l.port())
        .collect();
    ports.sort_unstable();
    ports.dedup();
    if ports.is_empty() {
        return;
    }
    for protocol in [Protocol::Udp, Protocol::Tcp] {
        rs.add_rule(
            INPUT,
            format!("accept:dns {}", protocol.as_str()),
            vec![dport(protocol, &ports), counter(), accept()],
        );
    }
}

/// Management ports: from `management_sources` per family, or from anywhere when the
/// list is empty.
fn management_rules(rs: &mut Ruleset, inventory: &Inventory) {
    let h = &inventory.hardening;
    if h.management_ports.is_empty() {
        return;
    }
    let mut ports = h.management_ports.clone();
    ports.sort_unstable();
    ports.dedup();
    if h.management_sources.is_empty() {
        rs.add_rule(
            INPUT,
            "accept:management",
            vec![dport(Protocol::Tcp, &ports), counter(), accept()],
        );
        return;
    }
    for f in Family::ALL {
        let nets: Vec<_> = h
            .management_sources
            .iter()
            .filter(|n| Family::of(&n.addr()) == f)
            .map(net)
            .collect();
        if nets.is_empty() {
            continue;
        }
        rs.add_rule(
            INPUT,
            format!("accept:management {}", f.proto()),
            vec![
                eq(addr(f, "saddr"), any_of(nets)),
                dport(Protocol::Tcp, &ports),
                counter(),
                accept(),
            ],
        );
    }
}

/// `update @rateF_svc { ip saddr limit rate over N/second burst B packets }`.
fn per_source_rate(s: &Service, f: Family) -> Stmt {
    let l = &s.limits;
    set_update(
        SetOp::Update,
        &rate_set(s, f),
        addr(f, "saddr"),
        limit(l.new_per_second_per_source, l.new_burst_per_source, true),
    )
}

/// What the ban sets are matched against: the source address, masked to the ban prefix
/// (`ip6 saddr & ffff:ffff:ffff:ffff::` for a /64), so a set element, the network
/// address, covers the whole network. A masked lookup keeps the sets plain hash sets:
/// an interval set would refuse overlapping bans and make every insert dearer.
fn ban_key(f: Family, h: &Hardening) -> Expression<'static> {
    let (len, max) = match f {
        Family::V4 => (h.ban_ipv4_prefix, 32),
        Family::V6 => (h.ban_ipv6_prefix, 128),
    };
    if len >= max {
        return addr(f, "saddr");
    }
    let mask = match f {
        Family::V4 => IpAddr::from(Ipv4Addr::from(u32::MAX << (32 - len))),
        Family::V6 => IpAddr::from(Ipv6Addr::from(u128::MAX << (128 - len))),
    };
    and(addr(f, "saddr"), string(mask.to_string()))
}

/// The sets the ban engine fills (IPv4 and IPv6 sources), with timeouts.
pub const BANS4: &str = "bans4";
pub const BANS6: &str = "bans6";

fn bans(f: Family) -> &'static str {
    match f {
        Family::V4 => BANS4,
        Family::V6 => BANS6,
    }
}

fn rate_set(s: &Service, f: Family) -> String {
    format!("rate{}_{}", f.digit(), s.name)
}

fn conn_set(s: &Service, f: Family) -> String {
    format!("conn{}_{}", f.digit(), s.name)
}

fn family_name(f: Family) -> &'static str {
    match f {
        Family::V4 => "IPv4",
        Family::V6 => "IPv6",
    }
}
