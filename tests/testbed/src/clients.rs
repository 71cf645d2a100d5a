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

/// A readiness check for [`crate::Process::wait_ready`]: `/healthz` on `addr` inside
/// `ns` answers 200.
pub fn healthz(ns: &Netns, addr: &str) -> Result<(), String> {
    match http_get(ns, addr, "/healthz") {
        Ok((200, _)) => Ok(()),
        Ok((code, body)) => Err(format!("/healthz answered {code} {}", body.trim())),
        Err(e) => Err(e.to_string()),
    }
}

/// How long [`Client::connect`] waits for a handshake.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(3);

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

    /// Connects within [`CONNECT_TIMEOUT`]: Linux bounds a blocking connect() by the
    /// send timeout, so a dropped SYN fails the connect instead of retrying for minutes.
    fn connect_timeout_std(self, to: SocketAddr) -> std::io::Result<TcpStream> {
        use std::os::fd::AsRawFd;
        let timeout = nix::sys::time::TimeVal::new(CONNECT_TIMEOUT.as_secs() as i64, 0);
        nix::sys::socket::setsockopt(&self.0, nix::sys::socket::sockopt::SendTimeout, &timeout)?;
        let a = nix::sys::socket::SockaddrStorage::from(to);
        nix::sys::socket::connect(self.0.as_raw_fd(), &a)?;
        let stream = TcpStream::from(self.0);
        stream.set_write_timeout(None)?;
        Ok(stream)
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

/// One sample of a Prometheus/OpenMetrics text exposition.
#[derive(Debug, Clone, PartialEq)]
pub struct Sample {
    pub name: String,
    pub labels: Vec<(String, String)>,
    pub value: f64,
}

impl Sample {
    /// The value of label `key`, if present.
    pub fn label(&self, key: &str) -> Option<&str> {
        self.labels
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }
}

/// Parses the samples of a metrics text (comments skipped). Label values with escaped
/// quotes are not expected from our services and are kept as they are.
pub fn parse_metrics(text: &str) -> Vec<Sample> {
    text.lines()
        .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
        .filter_map(|line| {
            let (series, value) = line.rsplit_once(' ')?;
            let value = value.parse().ok()?;
            let (name, labels) = match series.split_once('{') {
                Some((name, rest)) => {
                    let body = rest.strip_suffix('}')?;
                    let labels = body
                        .split("\",")
                        .filter(|p| !p.is_empty())
                        .filter_map(|p| {
                            let (k, v) = p.split_once("=\"")?;
                            Some((k.to_owned(), v.trim_end_matches('"').to_owned()))
                        })
                        .collect();
                    (name, labels)
                }
                None => (series, Vec::new()),
            };
            Some(Sample {
                name: name.to_owned(),
                labels,
                value,
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_names_labels_and_values() {
        let text = "# HELP x y\ngwx_refused_total{service=\"web\",reason=\"source_limit\"} 3\ngwx_ready 1\n# EOF\n";
        let s = parse_metrics(text);
        assert_eq!(s.len(), 2);
        assert_eq!(s[0].name, "gwx_refused_total");
        assert_eq!(s[0].label("reason"), Some("source_limit"));
        assert_eq!(s[0].value, 3.0);
        assert_eq!((s[1].name.as_str(), s[1].value), ("gwx_ready", 1.0));
    }
}
