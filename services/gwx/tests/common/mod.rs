//! Shared harness of the gwx integration tests: a client -> gateway -> backend chain of
//! namespaces, an inventory written for it, gwx running in the gateway namespace, and
//! backends that report what they saw.

#![allow(dead_code)] // each test binary uses its own part of the harness

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream, UdpSocket};
use std::path::PathBuf;
use std::time::Duration;

use testbed::topology::Chain;
use testbed::{Netns, Process};

/// Where gwx serves /metrics inside the gateway namespace.
pub const METRICS: &str = "127.0.0.1:9100";

/// An inventory for the chain: one gateway `gw1` with the chain's gateway addresses,
/// then `services` (TOML `[[service]]` tables) and `extra` (other sections).
pub fn inventory(services: &str) -> String {
    format!(
        r#"[grid]
name = "test"

[[gateway]]
id = "gw1"
public = ["{front}", "{front6}"]
private = ["{back}", "{back6}"]

{services}

[hardening]
management_ports = [22, 9100]

[runtime]
metrics_listen = "{METRICS}"
drain_timeout_secs = 20
"#,
        front = Chain::GATEWAY_FRONT,
        front6 = Chain::GATEWAY_FRONT6,
        back = Chain::GATEWAY_BACK,
        back6 = Chain::GATEWAY_BACK6,
    )
}

/// A chain with gwx running in its gateway.
pub struct Grid {
    pub chain: Chain,
    pub dir: tempfile::TempDir,
    pub inventory: PathBuf,
    pub gwx: Process,
}

impl Grid {
    /// Builds the chain, writes `inventory_text` and starts `gwx run` in the gateway.
    pub fn start(inventory_text: &str, run_args: &[&str]) -> Grid {
        let chain = Chain::new().unwrap();
        let dir = tempfile::tempdir().unwrap();
        let inventory = dir.path().join("grid.toml");
        std::fs::write(&inventory, inventory_text).unwrap();
        let mut args = vec![
            "--config",
            inventory.to_str().unwrap(),
            "--gateway",
            "gw1",
            "--log-format",
            "json",
            "run",
        ];
        args.extend_from_slice(run_args);
        let log = dir.path().join("gwx.log");
        let mut gwx = chain
            .gateway
            .spawn("gwx", env!("CARGO_BIN_EXE_gwx"), &args, &log)
            .unwrap();
        let gateway = &chain.gateway;
        gwx.wait_ready(Duration::from_secs(20), || {
            match http_get(gateway, METRICS, "/healthz") {
                Ok((200, _)) => Ok(()),
                Ok((code, body)) => Err(format!("/healthz answered {code} {body}")),
                Err(e) => Err(e.to_string()),
            }
        })
        .unwrap();
        Grid {
            chain,
            dir,
            inventory,
            gwx,
        }
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.gwx.log_path()).unwrap_or_default()
    }

    pub fn metrics(&self) -> String {
        http_get(&self.chain.gateway, METRICS, "/metrics")
            .unwrap()
            .1
    }

    /// The value of the metric line starting with `prefix` (name and labels).
    pub fn metric(&self, prefix: &str) -> f64 {
        let text = self.metrics();
        text.lines()
            .find_map(|l| l.strip_prefix(prefix).and_then(|v| v.trim().parse().ok()))
            .unwrap_or_else(|| panic!("no metric {prefix} in:\n{text}"))
    }

    /// Rewrites the inventory and sends SIGHUP; waits until gwx logged the reload.
    pub fn reload(&mut self, inventory_text: &str) {
        let before = self.log().matches("config reloaded").count()
            + self.log().matches("reload failed").count();
        std::fs::write(&self.inventory, inventory_text).unwrap();
        self.gwx.signal(nix::sys::signal::Signal::SIGHUP).unwrap();
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        loop {
            let log = self.log();
            if log.matches("config reloaded").count() + log.matches("reload failed").count()
                > before
            {
                return;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "no reload logged:\n{log}"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

/// GET over HTTP/1.1 from inside `ns`.
pub fn http_get(ns: &Netns, addr: &str, path: &str) -> std::io::Result<(u16, String)> {
    let addr: SocketAddr = addr.parse().unwrap();
    let path = path.to_owned();
    ns.enter(move || {
        let mut s = TcpStream::connect_timeout(&addr, Duration::from_secs(2))?;
        s.set_read_timeout(Some(Duration::from_secs(5)))?;
        write!(
            s,
            "GET {path} HTTP/1.1\r\nHost: gwx\r\nConnection: close\r\n\r\n"
        )?;
        let mut resp = String::new();
        s.read_to_string(&mut resp)?;
        let code = resp.get(9..12).and_then(|c| c.parse().ok()).unwrap_or(0);
        Ok((
            code,
            resp.split_once("\r\n\r\n")
                .map(|x| x.1.to_owned())
                .unwrap_or_default(),
        ))
    })
    .unwrap()
}

/// What a backend connection saw in its PROXY header.
#[derive(Debug, Clone, PartialEq)]
pub struct Seen {
    /// The client address the header announced, or the TCP peer when there was none.
    pub source: String,
    /// The gateway-ID TLV (v2 only).
    pub gateway: Option<String>,
    /// `v1`, `v2` or `none`.
    pub header: &'static str,
}

/// Reads a PROXY v1 or v2 header if one is there. v2 begins with a 12-byte signature,
/// v1 with "PROXY "; anything else is payload and is left in `reader`.
fn read_proxy(reader: &mut BufReader<TcpStream>) -> Seen {
    let peer = reader.get_ref().peer_addr().unwrap().ip().to_string();
    let head = reader.fill_buf().unwrap().to_vec();
    if head.starts_with(b"\r\n\r\n\0\r\nQUIT\n") {
        let mut fixed = [0u8; 16];
        reader.read_exact(&mut fixed).unwrap();
        let len = u16::from_be_bytes([fixed[14], fixed[15]]) as usize;
        let mut rest = vec![0u8; len];
        reader.read_exact(&mut rest).unwrap();
        let all = [fixed.to_vec(), rest].concat();
        let h = ppp::v2::Header::try_from(all.as_slice()).unwrap();
        let source = match h.addresses {
            ppp::v2::Addresses::IPv4(a) => a.source_address.to_string(),
            ppp::v2::Addresses::IPv6(a) => a.source_address.to_string(),
            other => format!("{other:?}"),
        };
        let gateway = h
            .tlvs()
            .filter_map(Result::ok)
            .find(|t| u8::from(t.kind) == 0xE0)
            .map(|t| String::from_utf8_lossy(&t.value).into_owned());
        Seen {
            source,
            gateway,
            header: "v2",
        }
    } else if head.starts_with(b"PROXY ") {
        let mut line = String::new();
        reader.read_line(&mut line).unwrap();
        let source = line.split_whitespace().nth(2).unwrap().to_owned();
        Seen {
            source,
            gateway: None,
            header: "v1",
        }
    } else {
        Seen {
            source: peer,
            gateway: None,
            header: "none",
        }
    }
}

/// A TCP backend in `ns` on `addr`: reads an optional PROXY header, then answers each
/// line with `<source> <gateway> <header> <line>` until the client closes.
pub fn tcp_backend(ns: &Netns, addr: &str) {
    let listener = ns.enter(|| TcpListener::bind(addr)).unwrap().unwrap();
    std::thread::spawn(move || {
        for conn in listener.incoming() {
            let Ok(conn) = conn else { return };
            std::thread::spawn(move || {
                let mut reader = BufReader::new(conn);
                let seen = read_proxy(&mut reader);
                let mut out = reader.get_ref().try_clone().unwrap();
                let gw = seen.gateway.clone().unwrap_or_else(|| "-".into());
                let mut line = String::new();
                while reader.read_line(&mut line).unwrap_or(0) > 0 {
                    if writeln!(
                        out,
                        "{} {gw} {} {}",
                        seen.source,
                        seen.header,
                        line.trim_end()
                    )
                    .is_err()
                    {
                        return;
                    }
                    line.clear();
                }
            });
        }
    });
}

/// A UDP backend in `ns` on `addr`: answers each datagram with `<source> <datagram>`.
pub fn udp_backend(ns: &Netns, addr: &str) {
    let socket = ns.enter(|| UdpSocket::bind(addr)).unwrap().unwrap();
    std::thread::spawn(move || {
        let mut buf = [0u8; 2048];
        while let Ok((n, from)) = socket.recv_from(&mut buf) {
            let reply = format!("{} {}", from.ip(), String::from_utf8_lossy(&buf[..n]));
            let _ = socket.send_to(reply.as_bytes(), from);
        }
    });
}

/// A line-based client connection opened from inside a namespace.
pub struct Client {
    reader: BufReader<TcpStream>,
}

impl Client {
    /// Connects from `ns` to `to`, from `source` when given.
    pub fn connect(ns: &Netns, to: &str, source: Option<&str>) -> std::io::Result<Client> {
        let to: SocketAddr = to.parse().unwrap();
        let source = source.map(|s| s.parse::<std::net::IpAddr>().unwrap());
        let stream = ns
            .enter(move || -> std::io::Result<TcpStream> {
                let socket = if to.is_ipv4() {
                    socket2_v4()?
                } else {
                    socket2_v6()?
                };
                if let Some(ip) = source {
                    socket.bind(SocketAddr::new(ip, 0))?;
                }
                let s = socket.connect_timeout_std(to)?;
                s.set_read_timeout(Some(Duration::from_secs(5)))?;
                Ok(s)
            })
            .unwrap()?;
        Ok(Client {
            reader: BufReader::new(stream),
        })
    }

    /// Sends a line and returns the answer line ("" when the connection was closed).
    pub fn ask(&mut self, line: &str) -> std::io::Result<String> {
        writeln!(self.reader.get_mut(), "{line}")?;
        let mut answer = String::new();
        self.reader.read_line(&mut answer)?;
        Ok(answer.trim_end().to_owned())
    }
}

/// A minimal blocking TCP socket that can bind a source before connecting (std's
/// TcpStream cannot); tokio's TcpSocket needs a runtime, which these threads lack.
pub struct RawSocket(std::os::fd::OwnedFd);

fn socket2_v4() -> std::io::Result<RawSocket> {
    raw(nix::sys::socket::AddressFamily::Inet)
}

fn socket2_v6() -> std::io::Result<RawSocket> {
    raw(nix::sys::socket::AddressFamily::Inet6)
}

fn raw(family: nix::sys::socket::AddressFamily) -> std::io::Result<RawSocket> {
    use nix::sys::socket::{SockFlag, SockType, socket};
    Ok(RawSocket(socket(
        family,
        SockType::Stream,
        SockFlag::SOCK_CLOEXEC,
        None,
    )?))
}

impl RawSocket {
    fn bind(&self, addr: SocketAddr) -> std::io::Result<()> {
        use std::os::fd::AsRawFd;
        let a = nix::sys::socket::SockaddrStorage::from(addr);
        nix::sys::socket::bind(self.0.as_raw_fd(), &a).map_err(Into::into)
    }

    fn connect_timeout_std(self, to: SocketAddr) -> std::io::Result<TcpStream> {
        use std::os::fd::AsRawFd;
        let a = nix::sys::socket::SockaddrStorage::from(to);
        nix::sys::socket::connect(self.0.as_raw_fd(), &a)?;
        Ok(TcpStream::from(self.0))
    }
}

/// Sends one datagram from `ns` to `to` and returns the answer.
pub fn udp_ask(ns: &Netns, to: &str, payload: &str) -> std::io::Result<String> {
    let to: SocketAddr = to.parse().unwrap();
    let payload = payload.to_owned();
    ns.enter(move || {
        let bind = if to.is_ipv4() { "0.0.0.0:0" } else { "[::]:0" };
        let s = UdpSocket::bind(bind)?;
        s.set_read_timeout(Some(Duration::from_secs(3)))?;
        s.send_to(payload.as_bytes(), to)?;
        let mut buf = [0u8; 2048];
        let n = s.recv(&mut buf)?;
        Ok(String::from_utf8_lossy(&buf[..n]).into_owned())
    })
    .unwrap()
}
