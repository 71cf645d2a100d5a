//! The runtime as systemd sees it: a real service process (src/bin/hello-service.rs)
//! with a real NOTIFY_SOCKET, reloaded with SIGHUP and drained with SIGTERM, observed
//! through its notifications, its `/healthz` and `/metrics`, its clients and its log.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::os::unix::net::UnixDatagram;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use nix::sys::signal::Signal;
use testbed::Process;
use testbed::ports::free_port;

/// The example service; cargo builds a crate's binaries before its integration tests.
fn example_binary() -> &'static str {
    env!("CARGO_BIN_EXE_hello-service")
}

struct Service {
    _dir: tempfile::TempDir,
    config: PathBuf,
    notify: UnixDatagram,
    listen: SocketAddr,
    metrics: SocketAddr,
    process: Process,
}

fn config_text(listen: SocketAddr, metrics: SocketAddr, greeting: &str) -> String {
    format!(
        "listen = \"{listen}\"\ngreeting = \"{greeting}\"\n\n[runtime]\nmetrics_listen = \"{metrics}\"\ndrain_timeout_secs = 20\n"
    )
}

impl Service {
    fn start() -> Service {
        Service::start_with_env(&[])
    }

    fn start_with_env(env: &[(&str, &str)]) -> Service {
        let dir = tempfile::tempdir().unwrap();
        let listen: SocketAddr = format!("127.0.0.1:{}", free_port().unwrap())
            .parse()
            .unwrap();
        let metrics: SocketAddr = format!("127.0.0.1:{}", free_port().unwrap())
            .parse()
            .unwrap();
        let config = dir.path().join("hello.toml");
        std::fs::write(&config, config_text(listen, metrics, "hello v1")).unwrap();
        let socket_path = dir.path().join("notify.sock");
        let notify = UnixDatagram::bind(&socket_path).unwrap();
        notify
            .set_read_timeout(Some(Duration::from_secs(20)))
            .unwrap();
        let mut cmd = Command::new(example_binary());
        cmd.args(["--config", config.to_str().unwrap(), "--log-format", "json"])
            .env("NOTIFY_SOCKET", &socket_path)
            .env_remove("RUST_LOG")
            .envs(env.iter().copied());
        let process = Process::spawn("hello-service", cmd, &dir.path().join("log")).unwrap();
        Service {
            _dir: dir,
            config,
            notify,
            listen,
            metrics,
            process,
        }
    }

    /// Next notification datagram, as its `KEY=VALUE` lines.
    fn next_notification(&self) -> Vec<String> {
        let mut buf = [0u8; 4096];
        let n = self.notify.recv(&mut buf).unwrap_or_else(|e| {
            panic!("no notification: {e}\nlog:\n{}", self.process.log_tail(20))
        });
        String::from_utf8_lossy(&buf[..n])
            .lines()
            .map(str::to_owned)
            .collect()
    }

    fn expect_notification(&self, first: &str) -> Vec<String> {
        let got = self.next_notification();
        assert_eq!(got.first().map(String::as_str), Some(first), "{got:?}");
        got
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self.process.log_path()).unwrap()
    }

    fn http_get(&self, path: &str) -> (u16, String) {
        let mut s = TcpStream::connect(self.metrics).unwrap();
        write!(
            s,
            "GET {path} HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n"
        )
        .unwrap();
        let mut resp = String::new();
        s.read_to_string(&mut resp).unwrap();
        let code = resp[9..12].parse().unwrap();
        (code, resp.split_once("\r\n\r\n").unwrap().1.to_owned())
    }
}

struct Client {
    reader: BufReader<TcpStream>,
}

impl Client {
    fn connect(addr: SocketAddr) -> std::io::Result<Client> {
        let s = TcpStream::connect_timeout(&addr, Duration::from_secs(2))?;
        s.set_read_timeout(Some(Duration::from_secs(10)))?;
        Ok(Client {
            reader: BufReader::new(s),
        })
    }

    fn line(&mut self) -> String {
        let mut l = String::new();
        self.reader.read_line(&mut l).unwrap();
        l.trim_end().to_owned()
    }

    fn say(&mut self, text: &str) -> String {
        writeln!(self.reader.get_mut(), "{text}").unwrap();
        self.line()
    }
}

fn greeting(addr: SocketAddr) -> String {
    Client::connect(addr).unwrap().line()
}

#[test]
fn ready_reload_bad_reload_and_graceful_drain() {
    let mut svc = Service::start();
    let ready = svc.expect_notification("READY=1");
    assert!(
        ready.contains(&"STATUS=hello ready".to_owned()),
        "{ready:?}"
    );

    assert_eq!(svc.http_get("/healthz"), (200, "ready\n".into()));
    assert_eq!(greeting(svc.listen), "hello v1");

    // A good reload: RELOADING=1 with the monotonic timestamp systemd requires, then READY.
    std::fs::write(
        &svc.config,
        config_text(svc.listen, svc.metrics, "hello v2"),
    )
    .unwrap();
    svc.process.signal(Signal::SIGHUP).unwrap();
    let reloading = svc.expect_notification("RELOADING=1");
    assert!(
        reloading.iter().any(|l| l.starts_with("MONOTONIC_USEC=")),
        "{reloading:?}"
    );
    svc.expect_notification("READY=1");
    assert_eq!(greeting(svc.listen), "hello v2");

    // A bad reload keeps the old config and says exactly what was wrong.
    std::fs::write(
        &svc.config,
        "listen = \"127.0.0.1:1\"\ngreting = \"typo\"\n",
    )
    .unwrap();
    svc.process.signal(Signal::SIGHUP).unwrap();
    svc.expect_notification("RELOADING=1");
    let after_bad = svc.expect_notification("READY=1");
    assert!(
        after_bad.contains(&"STATUS=hello ready (reload error)".to_owned()),
        "{after_bad:?}"
    );
    assert_eq!(greeting(svc.listen), "hello v2");
    let log = svc.log();
    assert!(
        log.contains("line 2, column 1, key `greting`: unknown field `greting`"),
        "reload error must name line and key:\n{log}"
    );

    let (code, metrics) = svc.http_get("/metrics");
    assert_eq!(code, 200);
    assert!(
        metrics.contains("hello_reloads_total{result=\"ok\"} 1\n"),
        "{metrics}"
    );
    assert!(
        metrics.contains("hello_reloads_total{result=\"error\"} 1\n"),
        "{metrics}"
    );
    assert!(metrics.contains("hello_connections_total 3\n"), "{metrics}");
    assert!(metrics.contains("hello_ready 1\n"), "{metrics}");

    // Drain: an in-flight client keeps being served after SIGTERM while new ones are
    // refused and /healthz says draining; the process exits once it is done.
    let mut in_flight = Client::connect(svc.listen).unwrap();
    assert_eq!(in_flight.line(), "hello v2");
    svc.process.signal(Signal::SIGTERM).unwrap();
    let stopping = svc.expect_notification("STOPPING=1");
    assert!(
        stopping.contains(&"STATUS=hello draining".to_owned()),
        "{stopping:?}"
    );
    assert_eq!(svc.http_get("/healthz"), (503, "draining\n".into()));
    let deadline = Instant::now() + Duration::from_secs(5);
    while Client::connect(svc.listen).is_ok() {
        assert!(
            Instant::now() < deadline,
            "listener still accepting after SIGTERM"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    assert!(
        svc.process.is_running(),
        "must wait for the in-flight client"
    );
    assert_eq!(in_flight.say("still there?"), "still there?");
    assert_eq!(in_flight.say("bye"), "bye");
    let status = svc.process.wait_exit(Duration::from_secs(10)).unwrap();
    assert!(status.success(), "{status}");

    let log = svc.log();
    let last: Vec<serde_json::Value> = log
        .lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .filter(|v: &serde_json::Value| v["fields"]["message"] == "stopped")
        .collect();
    assert_eq!(last.len(), 1, "{log}");
    assert_eq!(last[0]["fields"]["abandoned"], 0);
}

#[test]
fn second_signal_during_drain_stops_at_once() {
    let mut svc = Service::start();
    svc.expect_notification("READY=1");
    let mut held = Client::connect(svc.listen).unwrap();
    assert_eq!(held.line(), "hello v1");
    svc.process.signal(Signal::SIGTERM).unwrap();
    svc.expect_notification("STOPPING=1");
    svc.process.signal(Signal::SIGINT).unwrap();
    let status = svc.process.wait_exit(Duration::from_secs(10)).unwrap();
    assert!(status.success(), "{status}");
    assert!(
        svc.log().contains("second signal during drain"),
        "{}",
        svc.log()
    );
}

#[test]
fn bad_config_at_start_exits_64_listing_every_problem() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("hello.toml");
    std::fs::write(
        &config,
        "listen = \"127.0.0.1:0\"\ngreeting = \" \"\n[runtime]\ndrain_timeout_secs = 0\n",
    )
    .unwrap();
    let out = Command::new(example_binary())
        .args(["--config", config.to_str().unwrap()])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(64));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains(&format!(
            "invalid config file {} (2 problems)",
            config.display()
        )),
        "{stderr}"
    );
    assert!(
        stderr.contains("line 2, column 1, key `greeting`: expected one non-empty line"),
        "{stderr}"
    );
    assert!(
        stderr.contains("line 4, column 1, key `runtime.drain_timeout_secs`: expected seconds between 1 and 3600, got 0"),
        "{stderr}"
    );
    let missing = Command::new(example_binary())
        .args([
            "--config",
            &Path::new("/nonexistent/hello.toml").display().to_string(),
        ])
        .output()
        .unwrap();
    assert_eq!(missing.status.code(), Some(64));
    assert!(
        String::from_utf8_lossy(&missing.stderr)
            .contains("cannot read config file /nonexistent/hello.toml")
    );
}

#[test]
fn watchdog_keepalives_follow_ready_when_systemd_asks_for_them() {
    // WatchdogSec=200ms: the service must send WATCHDOG=1 repeatedly until it stops.
    let mut svc = Service::start_with_env(&[("WATCHDOG_USEC", "200000")]);
    svc.expect_notification("READY=1");
    for _ in 0..3 {
        svc.expect_notification("WATCHDOG=1");
    }
    svc.process.signal(Signal::SIGTERM).unwrap();
    // Keep-alives may still be queued; STOPPING=1 must come after them.
    let mut seen = svc.next_notification();
    while seen == ["WATCHDOG=1"] {
        seen = svc.next_notification();
    }
    assert_eq!(
        seen.first().map(String::as_str),
        Some("STOPPING=1"),
        "{seen:?}"
    );
    assert!(
        svc.process
            .wait_exit(Duration::from_secs(10))
            .unwrap()
            .success()
    );
    assert!(
        svc.log().contains("systemd watchdog enabled"),
        "{}",
        svc.log()
    );
}

#[test]
fn no_watchdog_keepalives_without_watchdog_usec() {
    let mut svc = Service::start();
    svc.expect_notification("READY=1");
    svc.process.signal(Signal::SIGTERM).unwrap();
    // The very next datagram is STOPPING=1: nothing in between.
    svc.expect_notification("STOPPING=1");
    assert!(
        svc.process
            .wait_exit(Duration::from_secs(10))
            .unwrap()
            .success()
    );
}
