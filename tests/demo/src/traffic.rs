//! The demo's traffic: backends for each service, requests through a gateway, and the
//! small attack (a connection flood from one source, probes of closed ports).

use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

use gwx::inventory::{Inventory, Protocol, Service};
use testbed::Netns;
use testbed::backends::{tcp_backend, udp_backend};
use testbed::clients::{Client, udp_ask};
use testbed::topology::Grid;

/// Starts a reporting backend for every service on the backend host.
pub fn start_backends(backend: &Netns, inv: &Inventory) -> std::io::Result<()> {
    for s in &inv.services {
        let addr = s.backend.to_string();
        match s.protocol {
            Protocol::Tcp => tcp_backend(backend, &addr),
            Protocol::Udp => udp_backend(backend, &addr),
        }
    }
    Ok(())
}

fn gateway_addr(gateway: usize, service: &Service) -> String {
    format!("{}:{}", Grid::gateway_public(gateway), service.port)
}

/// One request to `service` through gateway number `gateway`; the reply says what the
/// backend saw.
pub fn request(
    client: &Netns,
    gateway: usize,
    service: &Service,
    body: &str,
) -> Result<String, String> {
    let to = gateway_addr(gateway, service);
    match service.protocol {
        Protocol::Tcp => Client::connect(client, &to, None)
            .and_then(|mut c| c.ask(body))
            .map_err(|e| e.to_string()),
        Protocol::Udp => udp_ask(client, &to, body).map_err(|e| e.to_string()),
    }
}

/// Opens `count` connections to `service` on the first gateway from one source and
/// holds them; returns how many got an answer and how many were refused.
pub fn connection_flood(client: &Netns, service: &Service, count: usize) -> (usize, usize) {
    let to = gateway_addr(0, service);
    let mut held = Vec::new();
    let mut refused = 0;
    for i in 0..count {
        match Client::connect(client, &to, None)
            .and_then(|mut c| c.ask(&format!("flood {i}")).map(|a| (c, a)))
        {
            Ok((c, answer)) if !answer.is_empty() => held.push(c),
            _ => refused += 1,
        }
    }
    (held.len(), refused)
}

/// Tries TCP ports nothing listens on at the first gateway; returns how many got no answer
/// at all (dropped, not refused).
pub fn probe_closed_ports(client: &Netns, ports: &[u16]) -> usize {
    ports
        .iter()
        .filter(|port| {
            let to: SocketAddr = format!("{}:{port}", Grid::gateway_public(0))
                .parse()
                .unwrap();
            let r =
                client.enter(move || TcpStream::connect_timeout(&to, Duration::from_millis(700)));
            matches!(r, Ok(Err(e)) if e.kind() == std::io::ErrorKind::TimedOut)
        })
        .count()
}

/// Whether the client reaches `service` on the backend without a gateway.
pub fn direct(client: &Netns, service: &Service) -> bool {
    let to = service.backend;
    match service.protocol {
        Protocol::Tcp => client
            .enter(move || TcpStream::connect_timeout(&to, Duration::from_secs(1)).is_ok())
            .unwrap_or(false),
        Protocol::Udp => udp_ask(client, &to.to_string(), "direct").is_ok(),
    }
}
