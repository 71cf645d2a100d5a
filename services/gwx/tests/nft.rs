//! gwx's nftables rulesets against the real kernel, in network namespaces: they apply and
//! check, match the golden listings, re-apply atomically keeping bans, leave the old
//! ruleset in place when refused, and do what they say to real packets (bogus flags,
//! fragments, per-source rate and connection limits, L3 DNAT + SNAT, synproxy, the
//! backend's allow-only-gateways rule). Also the sysctls, applied in a namespace.
//!
//! Packets with impossible TCP flags are crafted with raw sockets (libc) in the client
//! namespace; connections from a chosen source address bind before connecting.
//! Counters are read with [`gwx::nft::counters::read`], waiting until the kernel has
//! processed what was sent (never asserting how long that took).

mod common;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{IpAddr, SocketAddr, TcpListener, TcpStream};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::path::Path;
use std::time::{Duration, Instant};

use gwx::inventory::Inventory;
use gwx::nft::{self, Nft, Options, apply, backend, counters, gateway};
use testbed::Netns;
use testbed::topology::Chain;

// ---------------------------------------------------------------------------------------
// Inventories and helpers

/// An inventory for the chain topology: gateway `gw1` with the chain's gateway addresses
/// (front = public, back = private), then `services` and `hardening` TOML.
fn chain_inventory(services: &str, hardening: &str) -> Inventory {
    let text = common::inventory_text(services, hardening);
    appliance::config::parse(&text, Path::new("test-grid.toml"))
        .unwrap_or_else(|e| panic!("test inventory: {e}\n{text}"))
}

/// A `[[service]]` table whose per-source limits are `limits` (TOML lines); the ones
/// not given are off, so each test sees only the limit it is about.
fn service(name: &str, proto: &str, port: u16, backend: &str, mode: &str, limits: &str) -> String {
    let mut limits = limits.to_owned();
    for key in ["connections_per_source", "new_per_second_per_source"] {
        if !limits.contains(key) {
            limits.push_str(&format!("\n{key} = 0"));
        }
    }
    format!(
        r#"
[[service]]
name = "{name}"
protocol = "{proto}"
port = {port}
backend = "{backend}"
mode = "{mode}"

[service.limits]
{limits}
"#
    )
}

fn shipped() -> Inventory {
    Inventory::load(&Path::new(env!("CARGO_MANIFEST_DIR")).join("../../config/gwx/grid.toml"))
        .unwrap()
}

fn nft_in(ns: &Netns) -> Nft {
    testbed::require::tool("nft", "nftables").unwrap();
    Nft::in_netns(ns.name())
}

fn apply_gateway(ns: &Netns, inv: &Inventory) -> nft::Plan {
    let rs = gateway::ruleset(inv, "gw1").unwrap();
    apply(&nft_in(ns), &rs, Options::default()).unwrap()
}

/// The counter of the rule `comment` in `chain` of table `table`.
fn counter_of(ns: &Netns, table: &str, chain: &str, comment: &str) -> u64 {
    let all = counters::read(&nft_in(ns), table).unwrap();
    all.iter()
        .find(|c| c.chain == chain && c.comment == comment)
        .unwrap_or_else(|| panic!("no counted rule {comment:?} in {chain}: {all:#?}"))
        .packets
}

/// Waits until the counter reaches `at_least` (the kernel may still be processing what
/// was just sent) and returns its value. Fails after 10 s: that is a hang, not slowness.
fn wait_counter(ns: &Netns, table: &str, chain: &str, comment: &str, at_least: u64) -> u64 {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let n = counter_of(ns, table, chain, comment);
        if n >= at_least {
            return n;
        }
        assert!(
            Instant::now() < deadline,
            "counter {comment:?} in {chain} stayed at {n}, expected at least {at_least}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn gw_counter(ns: &Netns, chain: &str, comment: &str) -> u64 {
    counter_of(ns, gateway::TABLE, chain, comment)
}

fn wait_gw(ns: &Netns, chain: &str, comment: &str, at_least: u64) -> u64 {
    wait_counter(ns, gateway::TABLE, chain, comment, at_least)
}

fn sock(addr: &str, port: u16) -> SocketAddr {
    SocketAddr::new(addr.parse().unwrap(), port)
}

fn ip(addr: &str) -> IpAddr {
    addr.parse().unwrap()
}

/// A TCP server in `ns` that tells each client the address it sees it from (one line),
/// then echoes; connections stay open until the client closes them.
fn peer_echo_server(ns: &Netns, addr: SocketAddr) {
    let listener = ns.enter(move || TcpListener::bind(addr)).unwrap().unwrap();
    std::thread::spawn(move || {
        for conn in listener.incoming() {
            let Ok(mut conn) = conn else { return };
            std::thread::spawn(move || {
                let peer = conn.peer_addr().unwrap().ip();
                if writeln!(conn, "{peer}").is_err() {
                    return;
                }
                let mut buf = [0u8; 1024];
                while let Ok(n @ 1..) = conn.read(&mut buf) {
                    if conn.write_all(&buf[..n]).is_err() {
                        return;
                    }
                }
            });
        }
    });
}

/// The first line the server sends: who it thinks we are.
fn seen_as(stream: &TcpStream) -> String {
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let mut line = String::new();
    BufReader::new(stream).read_line(&mut line).unwrap();
    line.trim().to_owned()
}

/// An echo round trip over an open connection.
fn echo(stream: &mut TcpStream, msg: &[u8]) -> Vec<u8> {
    stream.write_all(msg).unwrap();
    let mut buf = vec![0u8; msg.len()];
    stream.read_exact(&mut buf).unwrap();
    buf
}

// ---------------------------------------------------------------------------------------
// Sockets the standard library does not offer: bind-before-connect, raw TCP, capture.

fn sockaddr(addr: SocketAddr) -> (libc::sockaddr_storage, libc::socklen_t) {
    // SAFETY: sockaddr_storage is plain data; all-zero is a valid value.
    let mut storage: libc::sockaddr_storage = unsafe { std::mem::zeroed() };
    let len = match addr {
        SocketAddr::V4(a) => {
            let sin = libc::sockaddr_in {
                sin_family: libc::AF_INET as libc::sa_family_t,
                sin_port: a.port().to_be(),
                sin_addr: libc::in_addr {
                    s_addr: u32::from(*a.ip()).to_be(),
                },
                sin_zero: [0; 8],
            };
            // SAFETY: sockaddr_storage is larger than and aligned for sockaddr_in.
            unsafe { std::ptr::write(&mut storage as *mut _ as *mut libc::sockaddr_in, sin) };
            std::mem::size_of::<libc::sockaddr_in>()
        }
        SocketAddr::V6(a) => {
            let sin6 = libc::sockaddr_in6 {
                sin6_family: libc::AF_INET6 as libc::sa_family_t,
                sin6_port: a.port().to_be(),
                sin6_flowinfo: 0,
                sin6_addr: libc::in6_addr {
                    s6_addr: a.ip().octets(),
                },
                sin6_scope_id: 0,
            };
            // SAFETY: as above, for sockaddr_in6.
            unsafe { std::ptr::write(&mut storage as *mut _ as *mut libc::sockaddr_in6, sin6) };
            std::mem::size_of::<libc::sockaddr_in6>()
        }
    };
    (storage, len as libc::socklen_t)
}

fn check(ret: libc::c_int, what: &str) -> std::io::Result<libc::c_int> {
    if ret < 0 {
        let e = std::io::Error::last_os_error();
        Err(std::io::Error::new(e.kind(), format!("{what}: {e}")))
    } else {
        Ok(ret)
    }
}

fn new_socket(domain: libc::c_int, kind: libc::c_int, proto: libc::c_int) -> OwnedFd {
    // SAFETY: socket() has no memory-safety preconditions; the fd is owned from here on.
    let fd = check(
        unsafe { libc::socket(domain, kind | libc::SOCK_CLOEXEC, proto) },
        "socket",
    )
    .unwrap();
    // SAFETY: fd is a fresh descriptor nobody else owns.
    unsafe { OwnedFd::from_raw_fd(fd) }
}

fn domain_of(addr: &IpAddr) -> libc::c_int {
    if addr.is_ipv4() {
        libc::AF_INET
    } else {
        libc::AF_INET6
    }
}

fn bind(fd: &OwnedFd, addr: SocketAddr) -> std::io::Result<()> {
    let (sa, len) = sockaddr(addr);
    // SAFETY: sa is a valid sockaddr of length len.
    check(
        unsafe {
            libc::bind(
                fd.as_raw_fd(),
                &sa as *const _ as *const libc::sockaddr,
                len,
            )
        },
        "bind",
    )
    .map(drop)
}

/// Starts a TCP connection from `src` to `dst` inside `ns` without waiting for it.
fn connect_start(ns: &Netns, src: IpAddr, dst: SocketAddr) -> OwnedFd {
    ns.enter(move || {
        let fd = new_socket(domain_of(&src), libc::SOCK_STREAM | libc::SOCK_NONBLOCK, 0);
        bind(&fd, SocketAddr::new(src, 0)).unwrap();
        let (sa, len) = sockaddr(dst);
        // SAFETY: sa is a valid sockaddr of length len.
        let r = unsafe {
            libc::connect(
                fd.as_raw_fd(),
                &sa as *const _ as *const libc::sockaddr,
                len,
            )
        };
        let e = std::io::Error::last_os_error();
        assert!(
            r == 0 || e.raw_os_error() == Some(libc::EINPROGRESS),
            "connect {src} -> {dst}: {e}"
        );
        fd
    })
    .unwrap()
}

/// Waits up to `limit` for a started connection: `Some(result)` once decided, `None`
/// while still pending (a dropped SYN).
fn connect_outcome(fd: &OwnedFd, limit: Duration) -> Option<std::io::Result<()>> {
    let mut pfd = libc::pollfd {
        fd: fd.as_raw_fd(),
        events: libc::POLLOUT,
        revents: 0,
    };
    // SAFETY: pfd is one valid pollfd.
    let n = check(
        unsafe { libc::poll(&mut pfd, 1, limit.as_millis() as libc::c_int) },
        "poll",
    )
    .unwrap();
    if n == 0 {
        return None;
    }
    let mut err: libc::c_int = 0;
    let mut len = std::mem::size_of::<libc::c_int>() as libc::socklen_t;
    // SAFETY: err and len are valid for getsockopt(SO_ERROR).
    check(
        unsafe {
            libc::getsockopt(
                fd.as_raw_fd(),
                libc::SOL_SOCKET,
                libc::SO_ERROR,
                &mut err as *mut _ as *mut libc::c_void,
                &mut len,
            )
        },
        "getsockopt",
    )
    .unwrap();
    Some(if err == 0 {
        Ok(())
    } else {
        Err(std::io::Error::from_raw_os_error(err))
    })
}

/// A TCP connection from `src` to `dst` inside `ns`; fails if refused, or if it is not
/// decided within 10 s (a hang).
fn connect_from(ns: &Netns, src: IpAddr, dst: SocketAddr) -> std::io::Result<TcpStream> {
    let fd = connect_start(ns, src, dst);
    match connect_outcome(&fd, Duration::from_secs(10)) {
        Some(Ok(())) => {
            let stream = TcpStream::from(fd);
            stream.set_nonblocking(false)?;
            Ok(stream)
        }
        Some(Err(e)) => Err(e),
        None => Err(std::io::Error::new(
            std::io::ErrorKind::TimedOut,
            format!("connect {src} -> {dst} undecided after 10 s"),
        )),
    }
}

const FIN: u8 = 0x01;
const SYN: u8 = 0x02;
const RST: u8 = 0x04;
const PSH: u8 = 0x08;
const ACK: u8 = 0x10;
const URG: u8 = 0x20;

fn checksum(data: &[u8]) -> u16 {
    let mut sum: u32 = data
        .chunks(2)
        .map(|c| u32::from(u16::from_be_bytes([c[0], *c.get(1).unwrap_or(&0)])))
        .sum();
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    !(sum as u16)
}

/// A 20-byte TCP header with `flags` and a correct checksum (conntrack checks it).
fn tcp_segment(src: IpAddr, dst: SocketAddr, sport: u16, flags: u8) -> Vec<u8> {
    let mut seg = Vec::with_capacity(20);
    seg.extend_from_slice(&sport.to_be_bytes());
    seg.extend_from_slice(&dst.port().to_be_bytes());
    seg.extend_from_slice(&0x1000_0000_u32.wrapping_add(u32::from(sport)).to_be_bytes());
    let ack = if flags & ACK != 0 { 0x2000_0000_u32 } else { 0 };
    seg.extend_from_slice(&ack.to_be_bytes());
    seg.push(5 << 4); // data offset: 5 words, no options
    seg.push(flags);
    seg.extend_from_slice(&64240_u16.to_be_bytes()); // window
    seg.extend_from_slice(&[0, 0, 0, 0]); // checksum, urgent pointer
    let mut pseudo = Vec::new();
    match (src, dst.ip()) {
        (IpAddr::V4(s), IpAddr::V4(d)) => {
            pseudo.extend_from_slice(&s.octets());
            pseudo.extend_from_slice(&d.octets());
            pseudo.extend_from_slice(&[0, libc::IPPROTO_TCP as u8, 0, 20]);
        }
        (IpAddr::V6(s), IpAddr::V6(d)) => {
            pseudo.extend_from_slice(&s.octets());
            pseudo.extend_from_slice(&d.octets());
            pseudo.extend_from_slice(&20_u32.to_be_bytes());
            pseudo.extend_from_slice(&[0, 0, 0, libc::IPPROTO_TCP as u8]);
        }
        _ => panic!("mixed families {src} -> {dst}"),
    }
    pseudo.extend_from_slice(&seg);
    let sum = checksum(&pseudo);
    seg[16..18].copy_from_slice(&sum.to_be_bytes());
    seg
}

/// Sends `count` TCP segments with `flags` from `src` to `dst` through a raw socket in
/// `ns`, each from another source port (so each is a new flow).
fn send_raw_tcp(ns: &Netns, src: &str, dst: SocketAddr, flags: u8, count: u16, first_port: u16) {
    let src = ip(src);
    ns.enter(move || {
        let fd = new_socket(domain_of(&src), libc::SOCK_RAW, libc::IPPROTO_TCP);
        bind(&fd, SocketAddr::new(src, 0)).unwrap();
        // Raw IPv6 sockets take the protocol, not a port, in sin6_port: 0 means "ours".
        let (sa, len) = sockaddr(SocketAddr::new(dst.ip(), 0));
        for i in 0..count {
            let seg = tcp_segment(src, dst, first_port + i, flags);
            // SAFETY: seg and sa are valid for their lengths.
            let sent = unsafe {
                libc::sendto(
                    fd.as_raw_fd(),
                    seg.as_ptr() as *const libc::c_void,
                    seg.len(),
                    0,
                    &sa as *const _ as *const libc::sockaddr,
                    len,
                )
            };
            assert_eq!(
                sent,
                seg.len() as isize,
                "sendto: {}",
                std::io::Error::last_os_error()
            );
        }
    })
    .unwrap();
}

/// Captures every frame on `ifname` in `ns` (both directions) from now on.
struct Capture(OwnedFd);

impl Capture {
    fn start(ns: &Netns, ifname: &str) -> Capture {
        let ifname = std::ffi::CString::new(ifname).unwrap();
        ns.enter(move || {
            let proto = (libc::ETH_P_ALL as u16).to_be();
            let fd = new_socket(libc::AF_PACKET, libc::SOCK_RAW, libc::c_int::from(proto));
            // SAFETY: ifname is a valid C string.
            let index = unsafe { libc::if_nametoindex(ifname.as_ptr()) };
            assert!(index > 0, "no interface {ifname:?}");
            // SAFETY: all-zero sockaddr_ll is valid; fields set below.
            let mut sll: libc::sockaddr_ll = unsafe { std::mem::zeroed() };
            sll.sll_family = libc::AF_PACKET as u16;
            sll.sll_protocol = proto;
            sll.sll_ifindex = index as i32;
            // SAFETY: sll is a valid sockaddr_ll.
            check(
                unsafe {
                    libc::bind(
                        fd.as_raw_fd(),
                        &sll as *const _ as *const libc::sockaddr,
                        std::mem::size_of::<libc::sockaddr_ll>() as libc::socklen_t,
                    )
                },
                "bind AF_PACKET",
            )
            .unwrap();
            Capture(fd)
        })
        .unwrap()
    }

    /// The (source, destination) IP addresses of every frame captured so far.
    fn addresses(&self) -> Vec<(IpAddr, IpAddr)> {
        let mut seen = Vec::new();
        let mut buf = [0u8; 65536];
        loop {
            // SAFETY: buf is valid for its length.
            let n = unsafe {
                libc::recv(
                    self.0.as_raw_fd(),
                    buf.as_mut_ptr() as *mut libc::c_void,
                    buf.len(),
                    libc::MSG_DONTWAIT,
                )
            };
            if n < 0 {
                break; // EAGAIN: everything read
            }
            let frame = &buf[..n as usize];
            if frame.len() < 14 {
                continue;
            }
            let l3 = &frame[14..];
            match u16::from_be_bytes([frame[12], frame[13]]) {
                0x0800 if l3.len() >= 20 => {
                    let a = |o: usize| IpAddr::from(<[u8; 4]>::try_from(&l3[o..o + 4]).unwrap());
                    seen.push((a(12), a(16)));
                }
                0x86dd if l3.len() >= 40 => {
                    let a = |o: usize| IpAddr::from(<[u8; 16]>::try_from(&l3[o..o + 16]).unwrap());
                    seen.push((a(8), a(24)));
                }
                _ => {}
            }
        }
        seen
    }
}

// ---------------------------------------------------------------------------------------
// Applying, golden listings, atomic re-apply

fn golden(name: &str, actual: &str) {
    testbed::golden::check(
        &Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("test_data")
            .join(name),
        actual,
    );
}

/// `nft list table` as nft prints it (terse: without set elements).
fn listing(ns: &Netns, table: &str, terse: bool) -> String {
    let mut args = vec!["list", "table", "inet", table];
    if terse {
        args.insert(0, "-t");
    }
    ns.exec("nft", &args).unwrap()
}

/// The shipped grid's gw1 ruleset and the backend ruleset apply in a fresh namespace,
/// pass `nft --check` before and after, and list exactly as the golden files say (the
/// readable form of what gwx installs; nft 1.0.6's rendering).
#[test]
fn shipped_rulesets_apply_check_and_match_the_golden_listings() {
    let ns = Netns::new("gw").unwrap();
    let nft = nft_in(&ns);
    let inv = shipped();
    let rs = gateway::ruleset(&inv, "gw1").unwrap();

    let check = apply(&nft, &rs, Options { dry_run: true }).unwrap();
    assert_eq!(check.created_sets.len(), rs.sets.len());
    assert!(
        ns.exec("nft", &["list", "tables"])
            .unwrap()
            .trim()
            .is_empty(),
        "a dry run changes nothing"
    );

    let plan = apply(&nft, &rs, Options::default()).unwrap();
    assert_eq!(plan.created_chains.len(), rs.chains.len());
    golden("gateway-gw1.nft", &listing(&ns, gateway::TABLE, false));
    // The JSON gwx prints is itself a valid nft input.
    let json = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(json.path(), rs.to_json()).unwrap();
    let fresh = Netns::new("gwjson").unwrap();
    fresh
        .exec("nft", &["-j", "-f", &json.path().to_string_lossy()])
        .unwrap();
    assert_eq!(
        listing(&fresh, gateway::TABLE, false),
        listing(&ns, gateway::TABLE, false)
    );

    let again = apply(&nft, &rs, Options { dry_run: true }).unwrap();
    assert_eq!(again.kept_sets.len(), rs.sets.len(), "{again:?}");
    assert_eq!(again.kept_chains.len(), rs.chains.len(), "{again:?}");

    let b = backend::ruleset(&inv);
    apply(&nft, &b, Options::default()).unwrap();
    golden("backend.nft", &listing(&ns, backend::TABLE, false));
    // Both tables side by side: each apply touches only its own.
    apply(&nft, &rs, Options::default()).unwrap();
    assert!(listing(&ns, backend::TABLE, true).contains("drop:not-gateway tcp"));
}

/// A re-apply replaces chains and rules in one transaction and keeps the bans; a set
/// whose definition changed is re-created; chains no longer wanted go.
#[test]
fn reapply_keeps_bans_and_replaces_rules() {
    let ns = Netns::new("gw").unwrap();
    let inv = shipped();
    apply_gateway(&ns, &inv);
    ns.exec(
        "nft",
        &["add element inet gwx bans4 { 198.51.100.7, 198.51.100.8 timeout 1h }"],
    )
    .unwrap();
    ns.exec("nft", &["add element inet gwx bans6 { 2001:db8:1::7 }"])
        .unwrap();

    // The web service moves to another port.
    let mut moved = inv.clone();
    moved.services[0].port = 8443;
    let plan = apply_gateway(&ns, &moved);
    assert!(plan.kept_sets.contains(&"bans4".to_owned()), "{plan:?}");
    assert!(plan.kept_sets.contains(&"bans6".to_owned()), "{plan:?}");
    assert!(
        plan.replaced_sets.is_empty() && plan.deleted_sets.is_empty(),
        "{plan:?}"
    );
    let input = ns
        .exec("nft", &["list", "chain", "inet", "gwx", "input"])
        .unwrap();
    assert!(input.contains("tcp dport 8443"), "{input}");
    assert!(!input.contains("tcp dport 8080"), "{input}");
    let bans4 = ns
        .exec("nft", &["list", "set", "inet", "gwx", "bans4"])
        .unwrap();
    assert!(
        bans4.contains("198.51.100.7") && bans4.contains("198.51.100.8 timeout 1h"),
        "{bans4}"
    );
    let bans6 = ns
        .exec("nft", &["list", "set", "inet", "gwx", "bans6"])
        .unwrap();
    assert!(bans6.contains("2001:db8:1::7"), "{bans6}");

    // The same ruleset again: every rule replaced (one copy of each), nothing else.
    let before = listing(&ns, gateway::TABLE, true);
    let plan = apply_gateway(&ns, &moved);
    assert!(
        plan.created_sets.is_empty() && plan.created_chains.is_empty(),
        "{plan:?}"
    );
    assert_eq!(listing(&ns, gateway::TABLE, true), before);

    // Without L3 services the forward and NAT chains and the L3 service's sets go.
    let mut proxy_only = moved.clone();
    proxy_only.services.retain(|s| s.name != "raw");
    let plan = apply_gateway(&ns, &proxy_only);
    assert_eq!(plan.deleted_chains, ["dnat", "forward", "snat"]);
    assert_eq!(plan.deleted_sets, ["conn4_raw", "rate4_raw"]);
    let chains = ns.exec("nft", &["list", "chains", "inet"]).unwrap();
    assert!(
        !chains.contains("forward") && !chains.contains("snat"),
        "{chains}"
    );
    assert!(
        ns.exec("nft", &["list", "set", "inet", "gwx", "bans4"])
            .unwrap()
            .contains("198.51.100.7")
    );

    // A new ban timeout is a new set definition: the sets are re-created, and the bans
    // in them go with them (the ban engine re-adds what is still current).
    let mut longer = proxy_only.clone();
    longer.hardening.ban_timeout_secs = 3600;
    let plan = apply_gateway(&ns, &longer);
    assert_eq!(plan.replaced_sets, ["bans4", "bans6"]);
    let bans4 = ns
        .exec("nft", &["list", "set", "inet", "gwx", "bans4"])
        .unwrap();
    assert!(
        bans4.contains("timeout 1h") && !bans4.contains("198.51.100.7"),
        "{bans4}"
    );
}

/// A ruleset nft or the kernel refuses changes nothing: the previous rules, chains and
/// bans stay exactly as they were, and the error carries nft's message.
#[test]
fn refused_ruleset_leaves_the_previous_one_in_place() {
    let ns = Netns::new("gw").unwrap();
    let nft = nft_in(&ns);
    let inv = shipped();
    apply_gateway(&ns, &inv);
    ns.exec("nft", &["add element inet gwx bans4 { 198.51.100.9 }"])
        .unwrap();
    let before = listing(&ns, gateway::TABLE, true);

    let mut moved = inv.clone();
    moved.services[0].port = 8443;
    let good = gateway::ruleset(&moved, "gw1").unwrap();

    // Refused by nft itself: a rule names a set that does not exist. It comes last in the
    // batch, after every flush and delete.
    let mut missing_set = good.clone();
    missing_set.rules.push(nft::Rule {
        chain: gateway::INPUT.into(),
        comment: Some("broken".into()),
        expr: serde_json::from_str(
            r#"[{"match": {"op": "==", "right": "@no_such_set",
                           "left": {"payload": {"protocol": "ip", "field": "saddr"}}}},
                {"drop": null}]"#,
        )
        .map(|v: Vec<serde_json::Value>| v.into_iter().map(stmt_from_json).collect())
        .unwrap(),
    });
    // Refused by the kernel: synproxy is valid only in input and forward hooks; nft
    // does not know that, the kernel aborts the whole transaction.
    let mut bad_hook = good.clone();
    let synproxy_rule = good
        .rules
        .iter()
        .find(|r| r.comment.as_deref() == Some("drop:xmas"))
        .unwrap()
        .clone();
    let mut synproxy_rule = synproxy_rule;
    synproxy_rule.comment = Some("synproxy in prerouting".into());
    synproxy_rule.expr.truncate(1);
    synproxy_rule.expr.extend(
        serde_json::from_str::<Vec<serde_json::Value>>(
            r#"[{"synproxy": {"mss": 1460, "wscale": 7}}]"#,
        )
        .unwrap()
        .into_iter()
        .map(stmt_from_json),
    );
    bad_hook.rules.push(synproxy_rule);

    for (what, bad) in [("missing set", missing_set), ("synproxy hook", bad_hook)] {
        for dry_run in [true, false] {
            let err = apply(&nft, &bad, Options { dry_run }).unwrap_err();
            let msg = err.to_string();
            assert!(
                msg.starts_with("gateway gw1: ") && msg.contains(" -j -f -` failed"),
                "{what}: {msg}"
            );
            assert!(
                !err.stderr().unwrap_or("").is_empty(),
                "{what}: nft's message: {msg}"
            );
            assert_eq!(
                listing(&ns, gateway::TABLE, true),
                before,
                "{what}: changed"
            );
        }
    }
    let bans4 = ns
        .exec("nft", &["list", "set", "inet", "gwx", "bans4"])
        .unwrap();
    assert!(bans4.contains("198.51.100.9"), "{bans4}");

    // The good one still applies on top.
    apply(&nft, &good, Options::default()).unwrap();
    assert!(listing(&ns, gateway::TABLE, true).contains("tcp dport 8443"));
}

/// Failures to run nft at all name the command and keep the wrapper's message.
#[test]
fn errors_name_the_command_and_what_failed() {
    let rs = gateway::ruleset(&shipped(), "gw2").unwrap();
    let err = apply(&Nft::in_netns("gwx-no-such-netns"), &rs, Options::default()).unwrap_err();
    let msg = err.to_string();
    assert!(
        msg.starts_with(
            "gateway gw2: reading the current table with \
             `ip netns exec gwx-no-such-netns nft -j list table inet gwx` failed"
        ),
        "{msg}"
    );
    assert!(msg.contains("Cannot open network namespace"), "{msg}");
    let err = counters::read(&Nft::with_argv(["/nonexistent/nft"]), "gwx").unwrap_err();
    assert!(matches!(err, nft::NftError::Spawn { .. }), "{err:?}");
    assert!(
        err.to_string()
            .contains("cannot run `/nonexistent/nft -j list table inet gwx`"),
        "{err}"
    );
}

/// A statement from its JSON, for building rulesets nft must refuse.
fn stmt_from_json(v: serde_json::Value) -> nft::Stmt {
    nft::Stmt::Nft(serde_json::from_value(v).unwrap())
}

// ---------------------------------------------------------------------------------------
// Behaviour against real packets

/// Inventory for proxy-mode behaviour: `web` TCP 8080 with `web_limits`, `dns` UDP 5353.
fn proxy_inventory(web_limits: &str) -> Inventory {
    let backend = sock(Chain::BACKEND, 8080).to_string();
    let dns_backend = sock(Chain::BACKEND, 5353).to_string();
    chain_inventory(
        &(service("web", "tcp", 8080, &backend, "proxy", web_limits)
            + &service("dns", "udp", 5353, &dns_backend, "proxy", "")),
        "drop_fragments = true",
    )
}

#[test]
fn bogus_tcp_flags_are_dropped_and_counted_by_reason() {
    let chain = Chain::new().unwrap();
    apply_gateway(&chain.gateway, &proxy_inventory(""));
    let front = sock(Chain::GATEWAY_FRONT, 8080);
    let front6 = sock(Chain::GATEWAY_FRONT6, 8080);
    let c = &chain.client;

    send_raw_tcp(c, Chain::CLIENT, front, FIN | PSH | URG, 3, 41000);
    send_raw_tcp(c, Chain::CLIENT6, front6, FIN | PSH | URG, 2, 41100);
    send_raw_tcp(c, Chain::CLIENT, front, 0, 2, 41200);
    send_raw_tcp(c, Chain::CLIENT, front, SYN | FIN, 1, 41300);
    send_raw_tcp(c, Chain::CLIENT, front, SYN | RST, 1, 41400);
    send_raw_tcp(c, Chain::CLIENT6, front6, FIN, 1, 41500);
    // A lone ACK is not bogus by its flags, but it opens no connection: conntrack
    // (which picks up mid-stream flows) calls it new, and it is dropped as such.
    send_raw_tcp(c, Chain::CLIENT, front, ACK, 2, 41600);
    send_raw_tcp(c, Chain::CLIENT6, front6, ACK, 1, 41700);

    let gw = &chain.gateway;
    for (chain_name, comment, n) in [
        (gateway::PREFILTER, "drop:xmas", 5),
        (gateway::PREFILTER, "drop:null-flags", 2),
        (gateway::PREFILTER, "drop:syn-fin", 1),
        (gateway::PREFILTER, "drop:syn-rst", 1),
        (gateway::PREFILTER, "drop:fin-no-ack", 1),
        (gateway::STATEFUL, "drop:new-not-syn", 3),
    ] {
        assert_eq!(wait_gw(gw, chain_name, comment, n), n, "{comment}");
    }
    // The first matching reason counts, and only it.
    assert_eq!(gw_counter(gw, gateway::PREFILTER, "drop:psh-no-ack"), 0);
    assert_eq!(gw_counter(gw, gateway::PREFILTER, "drop:urg-no-ack"), 0);
    assert_eq!(gw_counter(gw, gateway::INPUT, "accept:service web ip"), 0);

    // As metrics: drops by reason.
    let read = counters::read(&nft_in(gw), gateway::TABLE).unwrap();
    let by = counters::drops_by_reason(&read);
    assert_eq!(by["xmas"], 5);
    assert_eq!(by["new-not-syn"], 3);
    let mut registry = prometheus_client::registry::Registry::with_prefix("gwx");
    let metrics = nft::NftMetrics::register(&mut registry);
    metrics.update(&read);
    let mut text = String::new();
    prometheus_client::encoding::text::encode(&mut text, &registry).unwrap();
    assert!(
        text.contains(r#"gwx_nft_drops_total{reason="xmas"} 5"#),
        "{text}"
    );
    assert!(
        text.contains(r#"gwx_nft_rule_packets_total{chain="prefilter",rule="drop:xmas"} 5"#),
        "{text}"
    );
}

/// Fragments are dropped before reassembly: this is what puts `prefilter` at -450 (at
/// -300, after defragmentation at -400, the fragment rules would never match).
#[test]
fn fragments_are_dropped_and_counted() {
    let chain = Chain::new().unwrap();
    apply_gateway(&chain.gateway, &proxy_inventory(""));
    let gw = &chain.gateway;
    for (src, dst) in [
        (Chain::CLIENT, Chain::GATEWAY_FRONT),
        (Chain::CLIENT6, Chain::GATEWAY_FRONT6),
    ] {
        let dst = sock(dst, 5353);
        let src = sock(src, 0);
        chain
            .client
            .enter(move || {
                let s = std::net::UdpSocket::bind(src)?;
                s.send_to(&[7u8; 64], dst)?; // one packet: accepted
                s.send_to(&[7u8; 3000], dst) // two or three fragments: dropped
            })
            .unwrap()
            .unwrap();
    }
    for family in ["ip", "ip6"] {
        wait_gw(
            gw,
            gateway::PREFILTER,
            &format!("drop:fragment {family}"),
            2,
        );
        wait_gw(
            gw,
            gateway::INPUT,
            &format!("accept:service dns {family}"),
            1,
        );
        // Nothing reassembled got through to the service.
        assert_eq!(
            gw_counter(gw, gateway::INPUT, &format!("accept:service dns {family}")),
            1
        );
    }
}

/// The per-source SYN rate: one source over it is dropped, another source is not.
#[test]
fn syn_rate_per_source_is_limited() {
    let chain = Chain::new().unwrap();
    const OTHER: &str = Chain::CLIENT2;
    chain.add_second_client().unwrap();
    let inv = proxy_inventory("new_per_second_per_source = 1\nnew_burst_per_source = 1");
    apply_gateway(&chain.gateway, &inv);
    let gw = &chain.gateway;
    let front = sock(Chain::GATEWAY_FRONT, 8080);

    send_raw_tcp(&chain.client, Chain::CLIENT, front, SYN, 20, 42000);
    // Every SYN is either dropped by the limit or passed to the service.
    let deadline = Instant::now() + Duration::from_secs(10);
    let (dropped, passed) = loop {
        let d = gw_counter(gw, gateway::PREFILTER, "drop:rate web ip");
        let p = gw_counter(gw, gateway::INPUT, "accept:service web ip");
        if d + p >= 20 || Instant::now() > deadline {
            break (d, p);
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    assert_eq!(dropped + passed, 20, "dropped {dropped}, passed {passed}");
    assert!(
        dropped >= 1 && passed >= 1,
        "dropped {dropped}, passed {passed}"
    );

    // Another source has its own bucket.
    send_raw_tcp(&chain.client, OTHER, front, SYN, 1, 42100);
    wait_gw(gw, gateway::INPUT, "accept:service web ip", passed + 1);
    assert_eq!(
        gw_counter(gw, gateway::PREFILTER, "drop:rate web ip"),
        dropped
    );
    let meter = gw
        .exec("nft", &["list", "set", "inet", "gwx", "rate4_web"])
        .unwrap();
    assert!(
        meter.contains(Chain::CLIENT) && meter.contains(OTHER),
        "{meter}"
    );
}

/// L3 inventory: `raw` TCP 9090 -> backend:9090 and `raw6` TCP 9091 -> [backend6]:9091.
fn l3_inventory(limits: &str, hardening: &str) -> Inventory {
    let b4 = sock(Chain::BACKEND, 9090).to_string();
    let b6 = sock(Chain::BACKEND6, 9091).to_string();
    chain_inventory(
        &(service("raw", "tcp", 9090, &b4, "l3", limits)
            + &service("raw6", "tcp", 9091, &b6, "l3", limits)),
        hardening,
    )
}

#[test]
fn l3_dnat_and_snat_hide_the_backend_both_ways() {
    let chain = Chain::new().unwrap();
    chain.gateway.enable_forwarding().unwrap();
    apply_gateway(&chain.gateway, &l3_inventory("", ""));
    peer_echo_server(&chain.backend, sock(Chain::BACKEND, 9090));
    peer_echo_server(&chain.backend, sock(Chain::BACKEND6, 9091));
    let capture = Capture::start(&chain.client, "eth0");

    for (client, front, back, port) in [
        (
            Chain::CLIENT,
            Chain::GATEWAY_FRONT,
            Chain::GATEWAY_BACK,
            9090,
        ),
        (
            Chain::CLIENT6,
            Chain::GATEWAY_FRONT6,
            Chain::GATEWAY_BACK6,
            9091,
        ),
    ] {
        let mut s = connect_from(&chain.client, ip(client), sock(front, port)).unwrap();
        // The backend sees the gateway's private address (SNAT) ...
        assert_eq!(seen_as(&s), back);
        assert_eq!(echo(&mut s, b"through the kernel"), b"through the kernel");
        // ... and the client only ever talks to the gateway's public address.
        assert_eq!(s.peer_addr().unwrap(), sock(front, port));
    }
    let seen = capture.addresses();
    assert!(
        seen.iter().any(|(src, _)| *src == ip(Chain::GATEWAY_FRONT))
            && seen
                .iter()
                .any(|(src, _)| *src == ip(Chain::GATEWAY_FRONT6)),
        "the replies come from the public addresses: {seen:?}"
    );
    for backend in [Chain::BACKEND, Chain::BACKEND6] {
        assert!(
            !seen
                .iter()
                .any(|(s, d)| *s == ip(backend) || *d == ip(backend)),
            "the client saw the backend {backend}: {seen:?}"
        );
    }
    let gw = &chain.gateway;
    assert_eq!(gw_counter(gw, gateway::DNAT, "dnat:raw"), 1);
    assert_eq!(gw_counter(gw, gateway::SNAT, "snat:raw6"), 1);
    assert_eq!(gw_counter(gw, gateway::FORWARD, "accept:l3 raw"), 1);
}

#[test]
fn connection_limit_refuses_one_source_and_not_another() {
    let chain = Chain::new().unwrap();
    const OTHER: &str = Chain::CLIENT2;
    chain.add_second_client().unwrap();
    chain.gateway.enable_forwarding().unwrap();
    apply_gateway(
        &chain.gateway,
        &l3_inventory("connections_per_source = 2", ""),
    );
    peer_echo_server(&chain.backend, sock(Chain::BACKEND, 9090));
    let front = sock(Chain::GATEWAY_FRONT, 9090);

    let mut held = Vec::new();
    for _ in 0..2 {
        let mut s = connect_from(&chain.client, ip(Chain::CLIENT), front).unwrap();
        assert_eq!(seen_as(&s), Chain::GATEWAY_BACK);
        assert_eq!(echo(&mut s, b"x"), b"x");
        held.push(s);
    }
    // A third concurrent connection from the same source is reset at once.
    let third = connect_from(&chain.client, ip(Chain::CLIENT), front).unwrap_err();
    assert_eq!(
        third.kind(),
        std::io::ErrorKind::ConnectionRefused,
        "{third}"
    );
    assert_eq!(
        gw_counter(&chain.gateway, gateway::STATEFUL, "drop:connlimit raw ip"),
        1
    );
    // Another source still gets through.
    let mut other = connect_from(&chain.client, ip(OTHER), front).unwrap();
    assert_eq!(seen_as(&other), Chain::GATEWAY_BACK);
    assert_eq!(echo(&mut other, b"y"), b"y");
    // Once the first source closes one, it may open another.
    drop(held.pop());
    let deadline = Instant::now() + Duration::from_secs(10);
    let again = loop {
        match connect_from(&chain.client, ip(Chain::CLIENT), front) {
            Ok(s) => break s,
            // The closed connection leaves the count once conntrack sees it closed.
            Err(e) if Instant::now() < deadline => {
                assert_eq!(e.kind(), std::io::ErrorKind::ConnectionRefused, "{e}");
                std::thread::sleep(Duration::from_millis(50));
            }
            Err(e) => panic!("still refused after closing one: {e}"),
        }
    };
    assert_eq!(seen_as(&again), Chain::GATEWAY_BACK);
}

/// The SYN proxy in front of an L3 service: the gateway completes the handshake with
/// cookies, then connects to the backend itself (DNAT in nat output), and the client's
/// connection works end to end.
#[test]
fn synproxy_l3_connection_works_end_to_end() {
    let chain = Chain::new().unwrap();
    chain.gateway.enable_forwarding().unwrap();
    let inv = l3_inventory("", "syn_proxy = true");
    // The sysctls the gateway would have; synproxy needs tcp_loose = 0.
    apply_gateway(&chain.gateway, &inv);
    for e in gwx::sysctl::entries(&inv, "gw1").unwrap() {
        if e.scope == gwx::sysctl::Scope::Netns {
            chain.gateway.sysctl(e.key, &e.value).unwrap();
        }
    }
    peer_echo_server(&chain.backend, sock(Chain::BACKEND, 9090));
    peer_echo_server(&chain.backend, sock(Chain::BACKEND6, 9091));

    for (client, front, back, port, family) in [
        (
            Chain::CLIENT,
            Chain::GATEWAY_FRONT,
            Chain::GATEWAY_BACK,
            9090,
            "ip",
        ),
        (
            Chain::CLIENT6,
            Chain::GATEWAY_FRONT6,
            Chain::GATEWAY_BACK6,
            9091,
            "ip6",
        ),
    ] {
        let mut s = connect_from(&chain.client, ip(client), sock(front, port)).unwrap();
        assert_eq!(seen_as(&s), back);
        assert_eq!(echo(&mut s, b"cookie"), b"cookie");
        let gw = &chain.gateway;
        // SYN and the handshake's ACK went through synproxy, not conntrack.
        assert!(
            gw_counter(
                gw,
                gateway::PREFILTER,
                &format!("notrack:synproxy {family}")
            ) >= 1
        );
        assert!(gw_counter(gw, gateway::INPUT, &format!("synproxy:l3 {family}")) >= 2);
    }
}

/// The backend accepts its service ports only from the gateways' private addresses;
/// another source is dropped and counted; other ports are left alone.
#[test]
fn backend_accepts_service_ports_only_from_gateways() {
    let chain = Chain::new().unwrap();
    let inv = l3_inventory("", "");
    apply(
        &nft_in(&chain.backend),
        &backend::ruleset(&inv),
        Options::default(),
    )
    .unwrap();
    peer_echo_server(&chain.backend, sock(Chain::BACKEND, 9090));
    peer_echo_server(&chain.backend, sock(Chain::BACKEND6, 9091));
    peer_echo_server(&chain.backend, sock(Chain::BACKEND, 2222));
    const STRANGER: &str = "192.0.2.99";
    const STRANGER6: &str = "2001:db8:2::99";
    let gw = &chain.gateway;
    gw.ip(&["addr", "add", &format!("{STRANGER}/24"), "dev", "back"])
        .unwrap();
    gw.ip(&[
        "addr",
        "add",
        &format!("{STRANGER6}/64"),
        "dev",
        "back",
        "nodad",
    ])
    .unwrap();

    // The gateway's private addresses pass.
    for (src, dst) in [
        (Chain::GATEWAY_BACK, sock(Chain::BACKEND, 9090)),
        (Chain::GATEWAY_BACK6, sock(Chain::BACKEND6, 9091)),
    ] {
        let s = connect_from(gw, ip(src), dst).unwrap();
        assert_eq!(seen_as(&s), src);
    }
    // A stranger's SYNs are dropped: counted, and the connection never completes.
    let mut pending = Vec::new();
    for (src, dst, n) in [
        (STRANGER, sock(Chain::BACKEND, 9090), 1),
        (STRANGER6, sock(Chain::BACKEND6, 9091), 2),
    ] {
        let fd = connect_start(gw, ip(src), dst);
        wait_counter(
            &chain.backend,
            backend::TABLE,
            backend::INPUT,
            "drop:not-gateway tcp",
            n,
        );
        pending.push(fd);
    }
    for fd in &pending {
        assert!(
            connect_outcome(fd, Duration::ZERO).is_none(),
            "a dropped SYN cannot have been answered"
        );
    }
    // Other ports are not the ruleset's business.
    let s = connect_from(gw, ip(STRANGER), sock(Chain::BACKEND, 2222)).unwrap();
    assert_eq!(seen_as(&s), STRANGER);
    assert!(
        counter_of(
            &chain.backend,
            backend::TABLE,
            backend::INPUT,
            "accept:gateways tcp ip"
        ) >= 1
    );
}

// ---------------------------------------------------------------------------------------
// sysctls

/// Every setting that can be set in a namespace is accepted by the kernel and reads back;
/// the host-only ones exist.
#[test]
fn sysctls_apply_in_a_namespace() {
    let ns = Netns::new("gw").unwrap();
    let mut inv = shipped();
    inv.hardening.syn_proxy = true;
    // Conntrack in use in the namespace, so net.netfilter.* keys exist there.
    apply(
        &nft_in(&ns),
        &gateway::ruleset(&inv, "gw1").unwrap(),
        Options::default(),
    )
    .unwrap();
    let entries = gwx::sysctl::entries(&inv, "gw1").unwrap();
    let normalize = |s: &str| s.split_whitespace().collect::<Vec<_>>().join(" ");
    for e in &entries {
        match e.scope {
            gwx::sysctl::Scope::Netns => {
                ns.sysctl(e.key, &e.value)
                    .unwrap_or_else(|err| panic!("{} = {}: {err}", e.key, e.value));
                let now = ns.exec("sysctl", &["-n", e.key]).unwrap();
                assert_eq!(normalize(&now), normalize(&e.value), "{}", e.key);
            }
            gwx::sysctl::Scope::Host => {
                ns.exec("sysctl", &["-n", e.key])
                    .unwrap_or_else(|err| panic!("{} does not exist: {err}", e.key));
            }
        }
    }
    assert!(entries.iter().any(|e| e.scope == gwx::sysctl::Scope::Host));
}
