//! Ready-made layouts of test hosts.

use crate::error::Result;
use crate::netns::{End, Netns, link};

/// Three hosts in a row, `client -> gateway -> backend`, with the gateway routing between
/// two subnets:
///
/// ```text
/// client 198.51.100.2/24 --- 198.51.100.1 gateway 192.0.2.1 --- 192.0.2.2/24 backend
///        2001:db8:1::2/64    2001:db8:1::1        2001:db8:2::1  2001:db8:2::2/64
/// ```
///
/// Forwarding in the gateway is off until [`Netns::enable_forwarding`], so a test decides
/// whether the gateway routes (L3) or relays in user space (L4).
pub struct Chain {
    pub client: Netns,
    pub gateway: Netns,
    pub backend: Netns,
}

impl Chain {
    pub const CLIENT: &'static str = "198.51.100.2";
    /// A second client address, added by [`Chain::add_second_client`].
    pub const CLIENT2: &'static str = "198.51.100.3";
    pub const GATEWAY_FRONT: &'static str = "198.51.100.1";
    pub const GATEWAY_BACK: &'static str = "192.0.2.1";
    pub const BACKEND: &'static str = "192.0.2.2";
    pub const CLIENT6: &'static str = "2001:db8:1::2";
    pub const GATEWAY_FRONT6: &'static str = "2001:db8:1::1";
    pub const GATEWAY_BACK6: &'static str = "2001:db8:2::1";
    pub const BACKEND6: &'static str = "2001:db8:2::2";

    /// Adds [`Chain::CLIENT2`] to the client, for tests of per-source limits: one
    /// source over its limit, another that must still pass.
    pub fn add_second_client(&self) -> Result<()> {
        let cidr = format!("{}/24", Self::CLIENT2);
        self.client
            .ip(&["addr", "add", &cidr, "dev", "eth0"])
            .map(drop)
    }

    pub fn new() -> Result<Chain> {
        let chain = Chain {
            client: Netns::new("client")?,
            gateway: Netns::new("gateway")?,
            backend: Netns::new("backend")?,
        };
        let cidr = |addr: &str, len: u8| format!("{addr}/{len}");
        let (client, front) = (
            [cidr(Self::CLIENT, 24), cidr(Self::CLIENT6, 64)],
            [
                cidr(Self::GATEWAY_FRONT, 24),
                cidr(Self::GATEWAY_FRONT6, 64),
            ],
        );
        let (back, backend) = (
            [cidr(Self::GATEWAY_BACK, 24), cidr(Self::GATEWAY_BACK6, 64)],
            [cidr(Self::BACKEND, 24), cidr(Self::BACKEND6, 64)],
        );
        fn refs(a: &[String; 2]) -> [&str; 2] {
            [&a[0], &a[1]]
        }
        link(
            End::new(&chain.client, "eth0", &refs(&client)),
            End::new(&chain.gateway, "front", &refs(&front)),
        )?;
        link(
            End::new(&chain.gateway, "back", &refs(&back)),
            End::new(&chain.backend, "eth0", &refs(&backend)),
        )?;
        chain.client.route("default", Self::GATEWAY_FRONT)?;
        chain.client.route("default", Self::GATEWAY_FRONT6)?;
        chain.backend.route("default", Self::GATEWAY_BACK)?;
        chain.backend.route("default", Self::GATEWAY_BACK6)?;
        Ok(chain)
    }
}

/// A gateway grid: one client, `n` gateways, one backend. The client's side is one
/// segment (a bridge in the client host) on which every gateway has a public address;
/// the backend's side is another segment (a bridge in the backend host). The backend has
/// no route to the client's segment: like the real thing, it is reachable only through
/// gateways that translate addresses.
///
/// ```text
///                     +-- gw1 203.0.113.11 | 192.0.2.11 --+
/// client 203.0.113.100+                                   +-- 192.0.2.2 backend
///                     +-- gw2 203.0.113.12 | 192.0.2.12 --+
/// ```
///
/// Every host also has an IPv6 address: 2001:db8:203::/64 on the client's segment,
/// 2001:db8:192::/64 on the backend's, with the same last group as the IPv4 address.
pub struct Grid {
    pub client: Netns,
    pub gateways: Vec<Netns>,
    pub backend: Netns,
}

impl Grid {
    pub const CLIENT: &'static str = "203.0.113.100";
    pub const BACKEND: &'static str = "192.0.2.2";
    pub const CLIENT6: &'static str = "2001:db8:203::100";
    pub const BACKEND6: &'static str = "2001:db8:192::2";

    /// Public (client-side) address of gateway `i` (0-based).
    pub fn gateway_public(i: usize) -> String {
        format!("203.0.113.{}", 11 + i)
    }

    /// Private (backend-side) address of gateway `i` (0-based).
    pub fn gateway_private(i: usize) -> String {
        format!("192.0.2.{}", 11 + i)
    }

    /// Public IPv6 address of gateway `i` (0-based).
    pub fn gateway_public6(i: usize) -> String {
        format!("2001:db8:203::{}", 11 + i)
    }

    /// Private IPv6 address of gateway `i` (0-based).
    pub fn gateway_private6(i: usize) -> String {
        format!("2001:db8:192::{}", 11 + i)
    }

    pub fn new(gateways: usize) -> Result<Grid> {
        assert!((1..=40).contains(&gateways), "a grid has 1 to 40 gateways");
        let grid = Grid {
            client: Netns::new("client")?,
            gateways: (0..gateways)
                .map(|i| Netns::new(&format!("gw{}", i + 1)))
                .collect::<Result<_>>()?,
            backend: Netns::new("backend")?,
        };
        for (host, addr, addr6) in [
            (&grid.client, Self::CLIENT, Self::CLIENT6),
            (&grid.backend, Self::BACKEND, Self::BACKEND6),
        ] {
            host.ip(&["link", "add", "br0", "type", "bridge"])?;
            host.ip(&["addr", "add", &format!("{addr}/24"), "dev", "br0"])?;
            host.ip(&["addr", "add", &format!("{addr6}/64"), "dev", "br0", "nodad"])?;
            host.ip(&["link", "set", "br0", "up"])?;
        }
        for (i, gw) in grid.gateways.iter().enumerate() {
            // The bridge port in the client's and the backend's host, named for the gateway.
            let port = format!("gw{}", i + 1);
            let public = format!("{}/24", Self::gateway_public(i));
            let public6 = format!("{}/64", Self::gateway_public6(i));
            let private = format!("{}/24", Self::gateway_private(i));
            let private6 = format!("{}/64", Self::gateway_private6(i));
            link(
                End::new(&grid.client, &port, &[]),
                End::new(gw, "wan", &[&public, &public6]),
            )?;
            link(
                End::new(gw, "lan", &[&private, &private6]),
                End::new(&grid.backend, &port, &[]),
            )?;
            grid.client.ip(&["link", "set", &port, "master", "br0"])?;
            grid.backend.ip(&["link", "set", &port, "master", "br0"])?;
        }
        Ok(grid)
    }
}
