//! Backends for forwarding tests and the demo: servers in a namespace that answer with
//! what they saw of the connection (the source address, and the client address and
//! gateway announced in a PROXY protocol header), so a test can assert what crossed the
//! gateway.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream, UdpSocket};

use crate::netns::Netns;

/// TLV type gwx uses for the gateway ID in PROXY v2 headers (PP2_TYPE_MIN_CUSTOM).
pub const TLV_GATEWAY_ID: u8 = 0xE0;

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
pub fn read_proxy(reader: &mut BufReader<TcpStream>) -> Seen {
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
            .find(|t| t.kind == TLV_GATEWAY_ID)
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

/// A raw TCP echo in `ns` on `addr`: every byte back, then a half-close when the client
/// half-closes. For bulk transfers through a forwarder.
pub fn tcp_echo(ns: &Netns, addr: &str) {
    let listener = ns.enter(|| TcpListener::bind(addr)).unwrap().unwrap();
    std::thread::spawn(move || {
        for conn in listener.incoming() {
            let Ok(mut conn) = conn else { return };
            std::thread::spawn(move || {
                let mut out = conn.try_clone().unwrap();
                if std::io::copy(&mut conn, &mut out).is_ok() {
                    let _ = out.shutdown(std::net::Shutdown::Write);
                }
            });
        }
    });
}
