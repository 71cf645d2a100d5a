//! Clients for forwarding tests and the demo, run from inside a namespace: a line-based
//! TCP client that can choose its source address, a one-datagram UDP exchange, and a
//! minimal HTTP GET for `/metrics` and `/healthz`.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream, UdpSocket};
use std::time::Duration;

use crate::netns::Netns;

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
