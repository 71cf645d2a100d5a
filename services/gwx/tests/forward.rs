//! gwx proxy mode against the real kernel: client -> gwx in a gateway namespace ->
//! backend, over TCP and UDP, IPv4 and IPv6, with PROXY headers, limits, reload and drain.

mod common;

use common::{Grid, inventory};
use nix::sys::signal::Signal;
use std::time::Duration;
use testbed::backends::{tcp_backend, udp_backend};
use testbed::clients::{Client, udp_ask};
use testbed::topology::Chain;

fn web(proxy_protocol: &str, extra_limits: &str) -> String {
    format!(
        r#"[[service]]
name = "web"
protocol = "tcp"
port = 8080
backend = "{}:8080"
mode = "proxy"
proxy_protocol = "{proxy_protocol}"

[service.limits]
{extra_limits}
"#,
        Chain::BACKEND
    )
}

const DNS: &str = r#"
[[service]]
name = "dns"
protocol = "udp"
port = 5353
backend = "192.0.2.2:5353"
mode = "proxy"
"#;

/// Tests of the proxy's own behaviour run without the nftables ruleset, so a limit the
/// ruleset also enforces is seen by the proxy; `tests/nft.rs` covers the ruleset.
const PROXY_ONLY: &[&str] = &["--no-ruleset"];

fn front(port: u16) -> String {
    format!("{}:{port}", Chain::GATEWAY_FRONT)
}

fn front6(port: u16) -> String {
    format!("[{}]:{port}", Chain::GATEWAY_FRONT6)
}

#[test]
fn tcp_reaches_the_backend_with_the_client_address_in_proxy_v2() {
    let grid = Grid::start(&inventory(&web("v2", "")), &["--counter-interval", "1"]);
    tcp_backend(&grid.chain.backend, "0.0.0.0:8080");

    let mut c = Client::connect(&grid.chain.client, &front(8080), None).unwrap();
    assert_eq!(
        c.ask("hello").unwrap(),
        format!("{} gw1 v2 hello", Chain::CLIENT)
    );
    assert_eq!(
        c.ask("again").unwrap(),
        format!("{} gw1 v2 again", Chain::CLIENT)
    );

    // IPv6 client on the gateway's IPv6 address, forwarded to the IPv4 backend.
    let mut c6 = Client::connect(&grid.chain.client, &front6(8080), None).unwrap();
    assert_eq!(
        c6.ask("six").unwrap(),
        format!("{} gw1 v2 six", Chain::CLIENT6)
    );

    drop((c, c6));
    assert_eq!(
        grid.metric("gwx_connections_total{service=\"web\",protocol=\"tcp\"}"),
        2.0
    );
    // "hello\n" + "again\n" + "six\n" from the clients, beyond the PROXY headers.
    assert_eq!(
        grid.metric("gwx_bytes_total{service=\"web\",direction=\"to_backend\"}"),
        16.0
    );
}

#[test]
fn bulk_transfer_is_intact_both_ways_with_half_close() {
    let grid = Grid::start(&inventory(&web("none", "")), PROXY_ONLY);
    testbed::backends::tcp_echo(&grid.chain.backend, "0.0.0.0:8080");
    // Bigger than the copy buffer, so both directions switch to splice.
    let data: Vec<u8> = (0..4 * 1024 * 1024u32).map(|i| (i % 251) as u8).collect();
    let to: std::net::SocketAddr = front(8080).parse().unwrap();
    let sent = data.clone();
    let echoed = grid
        .chain
        .client
        .enter(move || {
            use std::io::{Read, Write};
            let s = std::net::TcpStream::connect(to).unwrap();
            s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
            let mut writer = s.try_clone().unwrap();
            let sender = std::thread::spawn(move || {
                writer.write_all(&sent).unwrap();
                writer.shutdown(std::net::Shutdown::Write).unwrap();
            });
            let mut back = Vec::new();
            (&s).read_to_end(&mut back).unwrap();
            sender.join().unwrap();
            back
        })
        .unwrap();
    assert_eq!(echoed.len(), data.len());
    assert!(echoed == data, "bytes changed on the way");
    let to_backend = grid.metric("gwx_bytes_total{service=\"web\",direction=\"to_backend\"}");
    let to_client = grid.metric("gwx_bytes_total{service=\"web\",direction=\"to_client\"}");
    assert_eq!(
        (to_backend, to_client),
        (data.len() as f64, data.len() as f64)
    );
}

#[test]
fn proxy_v1_and_no_header() {
    let grid = Grid::start(&inventory(&web("v1", "")), PROXY_ONLY);
    tcp_backend(&grid.chain.backend, "0.0.0.0:8080");
    let mut c = Client::connect(&grid.chain.client, &front(8080), None).unwrap();
    assert_eq!(c.ask("x").unwrap(), format!("{} - v1 x", Chain::CLIENT));

    let grid = Grid::start(&inventory(&web("none", "")), PROXY_ONLY);
    tcp_backend(&grid.chain.backend, "0.0.0.0:8080");
    let mut c = Client::connect(&grid.chain.client, &front(8080), None).unwrap();
    // Without a header the backend sees the gateway, never the client.
    assert_eq!(
        c.ask("y").unwrap(),
        format!("{} - none y", Chain::GATEWAY_BACK)
    );
}

#[test]
fn udp_sessions_reach_the_backend_and_replies_return() {
    let grid = Grid::start(&inventory(DNS), PROXY_ONLY);
    udp_backend(&grid.chain.backend, "0.0.0.0:5353");
    for i in 0..3 {
        let answer = udp_ask(&grid.chain.client, &front(5353), &format!("q{i}")).unwrap();
        assert_eq!(answer, format!("{} q{i}", Chain::GATEWAY_BACK));
    }
    let answer = udp_ask(&grid.chain.client, &front6(5353), "q6").unwrap();
    assert_eq!(answer, format!("{} q6", Chain::GATEWAY_BACK));
    // Each ask used a new client port: four sessions.
    assert_eq!(
        grid.metric("gwx_connections_total{service=\"dns\",protocol=\"udp\"}"),
        4.0
    );
}

#[test]
fn udp_session_cap_refuses_new_clients_only() {
    let services =
        DNS.to_owned() + "\n[service.limits]\nudp_sessions = 1\nudp_idle_timeout_secs = 30\n";
    let grid = Grid::start(&inventory(&services), PROXY_ONLY);
    udp_backend(&grid.chain.backend, "0.0.0.0:5353");
    // One long-lived session from a fixed client socket.
    let to: std::net::SocketAddr = front(5353).parse().unwrap();
    let held = grid
        .chain
        .client
        .enter(move || {
            let s = std::net::UdpSocket::bind("0.0.0.0:0").unwrap();
            s.set_read_timeout(Some(Duration::from_secs(3))).unwrap();
            s.connect(to).unwrap();
            s
        })
        .unwrap();
    let mut buf = [0u8; 512];
    held.send(b"first").unwrap();
    let n = held.recv(&mut buf).unwrap();
    assert_eq!(
        &buf[..n],
        format!("{} first", Chain::GATEWAY_BACK).as_bytes()
    );

    // A second client is over the cap: no answer, counted.
    assert!(udp_ask(&grid.chain.client, &front(5353), "second").is_err());
    assert_eq!(
        grid.metric("gwx_refused_total{service=\"dns\",reason=\"session_cap\"}"),
        1.0
    );
    // The existing session still works.
    held.send(b"again").unwrap();
    let n = held.recv(&mut buf).unwrap();
    assert_eq!(
        &buf[..n],
        format!("{} again", Chain::GATEWAY_BACK).as_bytes()
    );
}

#[test]
fn a_source_over_its_connection_limit_is_refused_while_others_pass() {
    let grid = Grid::start(
        &inventory(&web("v2", "connections_per_source = 2")),
        PROXY_ONLY,
    );
    tcp_backend(&grid.chain.backend, "0.0.0.0:8080");
    grid.chain.add_second_client().unwrap();
    let second = Chain::CLIENT2;

    let mut held: Vec<Client> = (0..2)
        .map(|_| Client::connect(&grid.chain.client, &front(8080), Some(Chain::CLIENT)).unwrap())
        .collect();
    for c in &mut held {
        assert!(c.ask("in").unwrap().starts_with(Chain::CLIENT));
    }
    // The third from the same source is accepted by the kernel and closed by gwx.
    let mut third = Client::connect(&grid.chain.client, &front(8080), Some(Chain::CLIENT)).unwrap();
    let refused = third.ask("over").unwrap_or_default();
    assert_eq!(
        refused, "",
        "third connection must be closed without an answer"
    );
    // Another source still passes.
    let mut other = Client::connect(&grid.chain.client, &front(8080), Some(second)).unwrap();
    assert_eq!(other.ask("ok").unwrap(), format!("{second} gw1 v2 ok"));
    assert_eq!(
        grid.metric("gwx_refused_total{service=\"web\",reason=\"source_limit\"}"),
        1.0
    );

    // Closing one frees a slot.
    held.pop();
    std::thread::sleep(Duration::from_millis(200));
    let mut again = Client::connect(&grid.chain.client, &front(8080), Some(Chain::CLIENT)).unwrap();
    assert!(again.ask("back").unwrap().starts_with(Chain::CLIENT));
}

#[test]
fn backend_down_is_refused_and_counted() {
    let grid = Grid::start(
        &inventory(&web("v2", "connect_timeout_ms = 500")),
        PROXY_ONLY,
    );
    // No backend listener: the backend host answers with a reset.
    let mut c = Client::connect(&grid.chain.client, &front(8080), None).unwrap();
    assert_eq!(c.ask("anyone?").unwrap_or_default(), "");
    assert_eq!(
        grid.metric("gwx_refused_total{service=\"web\",reason=\"backend_unreachable\"}"),
        1.0
    );
    assert!(grid.log().contains("backend unreachable"), "{}", grid.log());
}

#[test]
fn reload_under_live_connections_drops_none() {
    let mut grid = Grid::start(&inventory(&web("v2", "")), PROXY_ONLY);
    tcp_backend(&grid.chain.backend, "0.0.0.0:8080");
    tcp_backend(&grid.chain.backend, "0.0.0.0:8081");
    let mut live: Vec<Client> = (0..5)
        .map(|_| Client::connect(&grid.chain.client, &front(8080), None).unwrap())
        .collect();
    for c in &mut live {
        assert_eq!(
            c.ask("before").unwrap(),
            format!("{} gw1 v2 before", Chain::CLIENT)
        );
    }

    // New settings for the same listener (v1 header) and a second service.
    let second = web("none", "")
        .replace("\"web\"", "\"api\"")
        .replace("8080", "8081");
    grid.reload(&inventory(&(web("v1", "") + &second)));
    assert!(grid.log().contains("config reloaded"), "{}", grid.log());

    // Live connections keep their PROXY v2 session; new ones get the new settings.
    for c in &mut live {
        assert_eq!(
            c.ask("after").unwrap(),
            format!("{} gw1 v2 after", Chain::CLIENT)
        );
    }
    let mut fresh = Client::connect(&grid.chain.client, &front(8080), None).unwrap();
    assert_eq!(
        fresh.ask("new").unwrap(),
        format!("{} - v1 new", Chain::CLIENT)
    );
    let mut api = Client::connect(&grid.chain.client, &front(8081), None).unwrap();
    assert_eq!(
        api.ask("api").unwrap(),
        format!("{} - none api", Chain::GATEWAY_BACK)
    );

    // A broken inventory changes nothing and is reported with line and key.
    grid.reload(&inventory(&web("v3", "")));
    assert!(grid.log().contains("reload failed"), "{}", grid.log());
    assert!(
        grid.log().contains("key `service[0].proxy_protocol`"),
        "{}",
        grid.log()
    );
    for c in &mut live {
        assert_eq!(
            c.ask("still").unwrap(),
            format!("{} gw1 v2 still", Chain::CLIENT)
        );
    }

    // Removing the service stops its listener but not its connections.
    grid.reload(&inventory(&second));
    assert!(Client::connect(&grid.chain.client, &front(8080), None).is_err());
    for c in &mut live {
        assert_eq!(
            c.ask("last").unwrap(),
            format!("{} gw1 v2 last", Chain::CLIENT)
        );
    }
    assert_eq!(grid.metric("gwx_reloads_total{result=\"ok\"}"), 2.0);
    assert_eq!(grid.metric("gwx_reloads_total{result=\"error\"}"), 1.0);
}

#[test]
fn sigterm_drains_open_connections_then_exits() {
    let mut grid = Grid::start(&inventory(&web("v2", "")), PROXY_ONLY);
    tcp_backend(&grid.chain.backend, "0.0.0.0:8080");
    let mut c = Client::connect(&grid.chain.client, &front(8080), None).unwrap();
    assert!(c.ask("one").unwrap().ends_with("one"));
    grid.gwx.signal(Signal::SIGTERM).unwrap();
    std::thread::sleep(Duration::from_millis(300));
    assert!(grid.gwx.is_running(), "must wait for the open connection");
    assert!(
        Client::connect(&grid.chain.client, &front(8080), None).is_err(),
        "no new connections while draining"
    );
    assert!(c.ask("two").unwrap().ends_with("two"));
    drop(c);
    let status = grid.gwx.wait_exit(Duration::from_secs(10)).unwrap();
    assert!(status.success(), "{status}\n{}", grid.log());
}

#[test]
fn bad_inventory_exits_64_naming_line_and_key() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("grid.toml");
    std::fs::write(&path, inventory(&web("v2", "conections_per_source = 3"))).unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_gwx"))
        .args([
            "--config",
            path.to_str().unwrap(),
            "--gateway",
            "gw1",
            "check",
        ])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(64));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("line 18, column 1, key `service[0].limits.conections_per_source`"),
        "{err}"
    );

    let missing_gateway = std::process::Command::new(env!("CARGO_BIN_EXE_gwx"))
        .args(["--config", path.to_str().unwrap(), "run"])
        .env_remove("GWX_GATEWAY")
        .output()
        .unwrap();
    assert_eq!(missing_gateway.status.code(), Some(64));
}

#[test]
fn l3_mode_forwards_tcp_and_udp_in_the_kernel_with_snat() {
    let services = format!(
        r#"[[service]]
name = "raw"
protocol = "tcp"
port = 9090
backend = "{b}:9090"
mode = "l3"

[[service]]
name = "dgram"
protocol = "udp"
port = 9091
backend = "{b}:9091"
mode = "l3"
"#,
        b = Chain::BACKEND
    );
    // L3 needs forwarding on the gateway (what `gwx sysctl` sets on a real host).
    let grid = Grid::start_with(&inventory(&services), &["--counter-interval", "1"], |g| {
        g.enable_forwarding().unwrap()
    });
    tcp_backend(&grid.chain.backend, "0.0.0.0:9090");
    udp_backend(&grid.chain.backend, "0.0.0.0:9091");

    // The backend sees the gateway's private address (SNAT), never the client's.
    let mut c = Client::connect(&grid.chain.client, &front(9090), None).unwrap();
    assert_eq!(
        c.ask("l3").unwrap(),
        format!("{} - none l3", Chain::GATEWAY_BACK)
    );
    let answer = udp_ask(&grid.chain.client, &front(9091), "d").unwrap();
    assert_eq!(answer, format!("{} d", Chain::GATEWAY_BACK));
    // The kernel did it, not the proxy: no proxy metrics for these services, and the
    // ruleset's DNAT rule counted each new connection.
    assert!(!grid.metrics().contains("service=\"raw\""));
    grid.wait_for_metric(
        "gwx_nft_rule_packets_total{chain=\"dnat\",rule=\"dnat:raw\"}",
        |v| v == 1.0,
    );
    grid.wait_for_metric(
        "gwx_nft_rule_packets_total{chain=\"dnat\",rule=\"dnat:dgram\"}",
        |v| v == 1.0,
    );
}

#[test]
fn idle_tcp_connections_and_udp_sessions_end_after_their_timeouts() {
    let services = web("none", "idle_timeout_secs = 1")
        + DNS
        + "\n[service.limits]\nudp_idle_timeout_secs = 1\n";
    let grid = Grid::start(&inventory(&services), PROXY_ONLY);
    tcp_backend(&grid.chain.backend, "0.0.0.0:8080");
    udp_backend(&grid.chain.backend, "0.0.0.0:5353");
    let mut c = Client::connect(&grid.chain.client, &front(8080), None).unwrap();
    assert!(c.ask("active").unwrap().ends_with("active"));
    udp_ask(&grid.chain.client, &front(5353), "q").unwrap();
    assert_eq!(
        grid.metric("gwx_active_connections{service=\"dns\",protocol=\"udp\"}"),
        1.0
    );

    // Nothing moves for longer than the timeouts: gwx closes both.
    grid.wait_for_metric(
        "gwx_active_connections{service=\"web\",protocol=\"tcp\"}",
        |v| v == 0.0,
    );
    grid.wait_for_metric(
        "gwx_active_connections{service=\"dns\",protocol=\"udp\"}",
        |v| v == 0.0,
    );
    assert_eq!(
        c.ask("too late").unwrap_or_default(),
        "",
        "the idle connection was closed"
    );
}
