//! Self-tests of the test bed's hosts and links: what every service test stands on.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::time::Duration;

use testbed::topology::{Chain, Grid};
use testbed::{End, Netns, link};

/// Counts forwarded TCP packets in the gateway, so the test can prove the message went
/// through it and not around it.
const COUNT_FORWARDED: &str = "
table inet tbcount {
    chain forward {
        type filter hook forward priority 0; policy accept;
        tcp dport 7000 counter name to_backend
    }
    counter to_backend {}
}
";

fn forwarded_packets(gw: &Netns) -> u64 {
    let out = gw
        .exec("nft", &["list", "counter", "inet", "tbcount", "to_backend"])
        .unwrap();
    let after = out
        .split("packets ")
        .nth(1)
        .expect("counter output has packets");
    after.split_whitespace().next().unwrap().parse().unwrap()
}

fn send(from: &Netns, to: SocketAddr, msg: &[u8]) -> std::io::Result<Vec<u8>> {
    let msg = msg.to_vec();
    from.enter(move || {
        let mut s = TcpStream::connect_timeout(&to, Duration::from_secs(2))?;
        s.set_read_timeout(Some(Duration::from_secs(5)))?;
        s.write_all(&msg)?;
        s.shutdown(std::net::Shutdown::Write)?;
        let mut reply = Vec::new();
        s.read_to_end(&mut reply)?;
        Ok(reply)
    })
    .unwrap()
}

/// A listener in `ns` that answers each connection with "got <bytes> from <peer ip>".
fn echo_peer(ns: &Netns, addr: &str) -> std::thread::JoinHandle<()> {
    let listener = ns.enter(|| TcpListener::bind(addr)).unwrap().unwrap();
    std::thread::spawn(move || {
        for conn in listener.incoming() {
            let Ok(mut conn) = conn else { return };
            let mut buf = Vec::new();
            if conn.read_to_end(&mut buf).is_err() {
                continue;
            }
            let peer = conn.peer_addr().unwrap().ip();
            let _ = write!(conn, "got {} from {peer}", String::from_utf8_lossy(&buf));
        }
    })
}

#[test]
fn tcp_message_crosses_the_gateway_from_client_to_backend() {
    let chain = Chain::new().unwrap();
    chain.gateway.nft_apply(COUNT_FORWARDED).unwrap();
    let _server = echo_peer(&chain.backend, "0.0.0.0:7000");
    let backend: SocketAddr = format!("{}:7000", Chain::BACKEND).parse().unwrap();

    // Forwarding is off: the gateway must not pass the packet, so the connection fails.
    let blocked = send(&chain.client, backend, b"early");
    assert!(blocked.is_err(), "no forwarding yet, got {blocked:?}");

    chain.gateway.enable_forwarding().unwrap();
    let reply = send(&chain.client, backend, b"hello backend").unwrap();
    assert_eq!(
        String::from_utf8(reply).unwrap(),
        format!("got hello backend from {}", Chain::CLIENT)
    );
    assert!(
        forwarded_packets(&chain.gateway) >= 3,
        "handshake + data through the gateway"
    );
}

#[test]
fn ipv6_message_crosses_the_gateway() {
    let chain = Chain::new().unwrap();
    chain.gateway.enable_forwarding().unwrap();
    let _server = echo_peer(&chain.backend, "[::]:7001");
    let backend: SocketAddr = format!("[{}]:7001", Chain::BACKEND6).parse().unwrap();
    let reply = send(&chain.client, backend, b"v6").unwrap();
    assert_eq!(
        String::from_utf8(reply).unwrap(),
        format!("got v6 from {}", Chain::CLIENT6)
    );
}

#[test]
fn grid_gateways_reach_backend_but_client_does_not() {
    let grid = Grid::new(2).unwrap();
    let _server = echo_peer(&grid.backend, "0.0.0.0:7002");
    let backend: SocketAddr = format!("{}:7002", Grid::BACKEND).parse().unwrap();
    for (i, gw) in grid.gateways.iter().enumerate() {
        let reply = send(gw, backend, b"hi").unwrap();
        assert_eq!(
            String::from_utf8(reply).unwrap(),
            format!("got hi from {}", Grid::gateway_private(i))
        );
        // And each gateway's public addresses answer from the client's segment.
        for addr in [Grid::gateway_public(i), Grid::gateway_public6(i)] {
            let ping = grid.client.exec("ping", &["-c1", "-W2", &addr]);
            assert!(ping.is_ok(), "{addr}: {ping:?}");
        }
        // The backend's IPv6 address is reachable from each gateway too.
        let ping6 = gw.exec("ping", &["-c1", "-W2", Grid::BACKEND6]);
        assert!(ping6.is_ok(), "{ping6:?}");
    }
    // The backend is hidden: the client has no route to it.
    assert!(send(&grid.client, backend, b"direct").is_err());
}

#[test]
fn namespace_and_its_processes_are_removed_on_drop_even_on_panic() {
    let ns = Netns::new("dropme").unwrap();
    let name = ns.name().to_owned();
    let log = tempfile::NamedTempFile::new().unwrap();
    let sleeper = ns.spawn("sleep", "sleep", &["300"], log.path()).unwrap();
    let pid = sleeper.pid();
    std::mem::forget(sleeper); // only the namespace's own cleanup may kill it now

    let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(move || {
        let _owned = ns;
        panic!("test failed while the namespace was alive");
    }));
    assert!(result.is_err());
    let list = std::process::Command::new("ip")
        .args(["netns", "list"])
        .output()
        .unwrap();
    assert!(
        !String::from_utf8_lossy(&list.stdout).contains(&name),
        "namespace {name} still exists"
    );
    // The process was killed; give the kernel a moment to reap it (its parent is us).
    let _ = nix::sys::wait::waitpid(nix::unistd::Pid::from_raw(pid as i32), None);
    assert!(!std::path::Path::new(&format!("/proc/{pid}")).exists());
}

#[test]
fn command_failures_carry_the_command_and_stderr() {
    let ns = Netns::new("errs").unwrap();
    let err = ns
        .ip(&["route", "add", "default", "via", "192.0.2.99"])
        .unwrap_err();
    let msg = err.to_string();
    assert!(msg.contains("route add default via 192.0.2.99"), "{msg}");
    assert!(
        msg.contains("Nexthop has invalid gateway") || msg.contains("unreachable"),
        "{msg}"
    );

    let bad_rules = ns.nft_apply("table inet t { chain c { tcp dport bogus accept } }");
    let msg = bad_rules.unwrap_err().to_string();
    assert!(msg.contains("nft") && msg.contains("bogus"), "{msg}");
}

#[test]
fn veth_link_with_duplicate_interface_name_fails_clearly() {
    let a = Netns::new("a").unwrap();
    let b = Netns::new("b").unwrap();
    let end_a = || End {
        ns: &a,
        ifname: "x0",
        addrs: &["192.0.2.1/30"],
    };
    link(
        end_a(),
        End {
            ns: &b,
            ifname: "x0",
            addrs: &["192.0.2.2/30"],
        },
    )
    .unwrap();
    let err = link(
        end_a(),
        End {
            ns: &b,
            ifname: "x1",
            addrs: &[],
        },
    )
    .unwrap_err();
    assert!(err.to_string().contains("x0"), "{err}");
}
