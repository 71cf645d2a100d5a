//! The DNS health checker against real sockets: rise and fall across a gateway grid in
//! namespaces, HTTP status checks and drains on loopback. Intervals are short; the
//! timeouts only keep a broken test from hanging.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::sync::atomic::{AtomicU16, Ordering};
use std::time::Duration;

use gwx::dns::health::{CheckConfig, Checker, Health, HealthMetrics, HttpCheck, Snapshot, Target};
use prometheus_client::registry::Registry;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

const CONFIG: CheckConfig = CheckConfig {
    interval: Duration::from_millis(50),
    timeout: Duration::from_secs(1),
    rise: 2,
    fall: 3,
};

/// Status 0: no HTTP, accept and close. Status 1: read the request, close unanswered.
const NO_HTTP: u16 = 0;
const SILENT: u16 = 1;

/// A service port that accepts connections; with a status, it answers each HTTP request
/// with that status and closes.
struct Server {
    addr: SocketAddr,
    status: Arc<AtomicU16>,
    task: JoinHandle<()>,
}

impl Server {
    fn start(listener: std::net::TcpListener, status: Option<u16>) -> Server {
        listener.set_nonblocking(true).unwrap();
        let addr = listener.local_addr().unwrap();
        let listener = tokio::net::TcpListener::from_std(listener).unwrap();
        let status = Arc::new(AtomicU16::new(status.unwrap_or(NO_HTTP)));
        let task = tokio::spawn({
            let status = status.clone();
            async move {
                loop {
                    let Ok((mut stream, _)) = listener.accept().await else {
                        continue;
                    };
                    let code = status.load(Ordering::Relaxed);
                    if code == NO_HTTP {
                        continue;
                    }
                    tokio::spawn(async move {
                        let mut request = Vec::new();
                        let mut buf = [0u8; 512];
                        while !request.ends_with(b"\r\n\r\n") {
                            match stream.read(&mut buf).await {
                                Ok(0) | Err(_) => return,
                                Ok(n) => request.extend_from_slice(&buf[..n]),
                            }
                        }
                        if code == SILENT {
                            return;
                        }
                        // A request other than the configured one never passes.
                        let expected =
                            b"GET /healthz HTTP/1.1\r\nHost: gw.test\r\nConnection: close\r\n\r\n";
                        let code = if request == expected { code } else { 400 };
                        let response =
                            format!("HTTP/1.1 {code} Whatever\r\nContent-Length: 0\r\n\r\n");
                        let _ = stream.write_all(response.as_bytes()).await;
                    });
                }
            }
        });
        Server { addr, status, task }
    }

    fn bind(addr: &str, status: Option<u16>) -> Server {
        Server::start(std::net::TcpListener::bind(addr).unwrap(), status)
    }

    /// Closes the listening socket: connects are refused from now on.
    async fn kill(self) {
        self.task.abort();
        let _ = self.task.await;
    }
}

fn target(addr: SocketAddr, gateway: &str) -> Target {
    Target {
        addr,
        gateway: gateway.into(),
        http: None,
    }
}

async fn wait_health(rx: &mut watch::Receiver<Snapshot>, ip: IpAddr, want: Health) {
    let wait = rx.wait_for(|s| s.iter().any(|&(a, h)| a == ip && h == want));
    // (The borrow the wait returns ends with this statement.)
    let done = matches!(
        tokio::time::timeout(Duration::from_secs(30), wait).await,
        Ok(Ok(_))
    );
    if !done {
        panic!("{ip} never became {want}: {:?}", rx.borrow());
    }
}

fn health_of(rx: &watch::Receiver<Snapshot>, ip: IpAddr) -> Health {
    rx.borrow().iter().find(|e| e.0 == ip).unwrap().1
}

/// The value of the metric line that starts with `series`.
fn metric(registry: &Registry, series: &str) -> u64 {
    let mut text = String::new();
    prometheus_client::encoding::text::encode(&mut text, registry).unwrap();
    text.lines()
        .find_map(|l| l.strip_prefix(series)?.trim().parse().ok())
        .unwrap_or_else(|| panic!("no {series} in\n{text}"))
}

fn registry() -> (Registry, HealthMetrics) {
    let mut registry = Registry::with_prefix("gwx");
    let metrics = HealthMetrics::register(&mut registry);
    (registry, metrics)
}

/// The checker runs inside gw1 and checks both gateways' public addresses over the
/// client segment; gw2's service dies and comes back.
#[test]
fn rise_and_fall_across_the_grid() {
    let grid = testbed::topology::Grid::new(2).unwrap();
    let public = |i| -> SocketAddr {
        format!("{}:8080", testbed::topology::Grid::gateway_public(i))
            .parse()
            .unwrap()
    };
    let (gw1, gw2) = (public(0), public(1));
    let listen = |i: usize| {
        grid.gateways[i]
            .enter(|| std::net::TcpListener::bind(public(i)).unwrap())
            .unwrap()
    };
    grid.gateways[0]
        .enter(|| {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            runtime.block_on(async {
                let (registry, metrics) = registry();
                let _server1 = Server::start(listen(0), None);
                let server2 = Server::start(listen(1), None);
                let stop = CancellationToken::new();
                let targets = vec![target(gw1, "gw1"), target(gw2, "gw2")];
                let checker = Checker::start(targets, CONFIG, &metrics, stop.clone()).unwrap();
                let mut rx = checker.subscribe();
                assert_eq!(
                    *checker.snapshot(),
                    [(gw1.ip(), Health::Unchecked), (gw2.ip(), Health::Unchecked)]
                );

                let ok2 = r#"gwx_dns_checks_total{address="203.0.113.12",gateway="gw2",result="ok"}"#;
                wait_health(&mut rx, gw2.ip(), Health::Up).await;
                assert!(metric(&registry, ok2) >= u64::from(CONFIG.rise));
                wait_health(&mut rx, gw1.ip(), Health::Up).await;
                let up2 = r#"gwx_dns_address_up{address="203.0.113.12",gateway="gw2"}"#;
                assert_eq!(metric(&registry, up2), 1);

                server2.kill().await;
                wait_health(&mut rx, gw2.ip(), Health::Down).await;
                let refused = r#"gwx_dns_checks_total{address="203.0.113.12",gateway="gw2",result="refused"}"#;
                assert!(metric(&registry, refused) >= u64::from(CONFIG.fall));
                assert_eq!(metric(&registry, up2), 0);
                assert_eq!(health_of(&rx, gw1.ip()), Health::Up);

                let ok_before = metric(&registry, ok2);
                let _server2 = Server::start(listen(1), None);
                wait_health(&mut rx, gw2.ip(), Health::Up).await;
                assert!(metric(&registry, ok2) >= ok_before + u64::from(CONFIG.rise));
                assert_eq!(health_of(&rx, gw1.ip()), Health::Up);

                stop.cancel();
                checker.stopped().await;
            })
        })
        .unwrap();
}

#[tokio::test]
async fn http_status_decides() {
    let (registry, metrics) = registry();
    let server = Server::bind("127.0.0.1:0", Some(503));
    let listener_addr = server.addr;
    let stop = CancellationToken::new();
    let mut t = target(listener_addr, "gw1");
    t.http = Some(HttpCheck {
        path: "/healthz".into(),
        host: "gw.test".into(),
    });
    let checker = Checker::start(vec![t], CONFIG, &metrics, stop.clone()).unwrap();
    let mut rx = checker.subscribe();
    let ip = listener_addr.ip();

    // It connects, but 503 is a failure.
    wait_health(&mut rx, ip, Health::Down).await;
    let status = r#"gwx_dns_checks_total{address="127.0.0.1",gateway="gw1",result="http_status"}"#;
    assert!(metric(&registry, status) >= u64::from(CONFIG.fall));

    server.status.store(200, Ordering::Relaxed);
    wait_health(&mut rx, ip, Health::Up).await;
    let ok = r#"gwx_dns_checks_total{address="127.0.0.1",gateway="gw1",result="ok"}"#;
    assert!(metric(&registry, ok) >= u64::from(CONFIG.rise));

    // A redirect passes too; a server that stops answering HTTP fails.
    server.status.store(302, Ordering::Relaxed);
    let before = metric(&registry, ok);
    tokio::time::timeout(Duration::from_secs(30), async {
        while metric(&registry, ok) < before + 3 {
            tokio::time::sleep(CONFIG.interval).await;
        }
    })
    .await
    .expect("checks go on");
    assert_eq!(health_of(&rx, ip), Health::Up);
    server.status.store(SILENT, Ordering::Relaxed);
    wait_health(&mut rx, ip, Health::Down).await;
    let bad = r#"gwx_dns_checks_total{address="127.0.0.1",gateway="gw1",result="bad_response"}"#;
    assert!(metric(&registry, bad) >= u64::from(CONFIG.fall));

    stop.cancel();
    checker.stopped().await;
}

#[tokio::test]
async fn drain_hides_and_undrain_restores() {
    let (registry, metrics) = registry();
    let a = Server::bind("127.0.0.1:0", None);
    let b = Server::bind("127.0.0.2:0", None);
    let (addr_a, addr_b) = (a.addr, b.addr);
    let stop = CancellationToken::new();
    let targets = vec![target(addr_a, "a"), target(addr_b, "b")];
    let checker = Checker::start(targets, CONFIG, &metrics, stop.clone()).unwrap();
    let mut rx = checker.subscribe();
    wait_health(&mut rx, addr_a.ip(), Health::Up).await;
    wait_health(&mut rx, addr_b.ip(), Health::Up).await;

    checker.drain("a").unwrap();
    assert_eq!(health_of(&rx, addr_a.ip()), Health::Drained);
    assert_eq!(health_of(&rx, addr_b.ip()), Health::Up);
    let up_a = r#"gwx_dns_address_up{address="127.0.0.1",gateway="a"}"#;
    assert_eq!(metric(&registry, up_a), 0);

    // Checks go on while drained: the death of a's service is seen, but not shown. (One
    // refused check more than `fall`: the verdict of the `fall`th is surely recorded.)
    a.kill().await;
    let refused = r#"gwx_dns_checks_total{address="127.0.0.1",gateway="a",result="refused"}"#;
    tokio::time::timeout(Duration::from_secs(30), async {
        while metric(&registry, refused) <= u64::from(CONFIG.fall) {
            tokio::time::sleep(CONFIG.interval).await;
        }
    })
    .await
    .expect("checks go on while drained");
    assert_eq!(health_of(&rx, addr_a.ip()), Health::Drained);

    // Undrain shows the real state at once, without waiting for checks.
    checker.undrain("a").unwrap();
    assert_eq!(health_of(&rx, addr_a.ip()), Health::Down);
    assert_eq!(health_of(&rx, addr_b.ip()), Health::Up);
    assert!(checker.undrain("nope").is_err());

    stop.cancel();
    checker.stopped().await;
    drop(b);
}
