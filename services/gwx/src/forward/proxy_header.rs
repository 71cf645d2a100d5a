//! PROXY protocol headers sent to the backend so it sees the client's real address
//! (<https://www.haproxy.org/download/2.9/doc/proxy-protocol.txt>). Encoding is done by
//! the `ppp` crate; this module only decides what goes in: addresses normalised to one
//! family, and in v2 a TLV naming the gateway, so the backend can tell which gateway a
//! connection came through (useful when one gateway is under attack).

use std::net::SocketAddr;

use ppp::v2;

use crate::inventory::ProxyProtocol;

/// TLV type of the gateway ID: the first of the range the spec reserves for custom use
/// (PP2_TYPE_MIN_CUSTOM = 0xE0).
pub const TLV_GATEWAY_ID: u8 = 0xE0;

/// The header for a TCP connection from `client` accepted on `local`, or `None` when
/// the service sends no header.
pub fn encode(
    version: ProxyProtocol,
    client: SocketAddr,
    local: SocketAddr,
    gateway_id: &str,
) -> std::io::Result<Option<Vec<u8>>> {
    let (client, local) = (canonical(client), canonical(local));
    match version {
        ProxyProtocol::None => Ok(None),
        ProxyProtocol::V1 => Ok(Some(
            ppp::v1::Addresses::from((client, local))
                .to_string()
                .into_bytes(),
        )),
        ProxyProtocol::V2 => v2::Builder::with_addresses(
            v2::Version::Two | v2::Command::Proxy,
            v2::Protocol::Stream,
            (client, local),
        )
        .write_tlv(TLV_GATEWAY_ID, gateway_id.as_bytes())?
        .build()
        .map(Some),
    }
}

/// A dual-stack socket reports IPv4 peers as `::ffff:a.b.c.d`; the header must say
/// TCP4 with the plain address, and both ends must be of one family.
fn canonical(addr: SocketAddr) -> SocketAddr {
    match addr {
        SocketAddr::V6(v6) => match v6.ip().to_ipv4_mapped() {
            Some(v4) => SocketAddr::new(v4.into(), v6.port()),
            None => addr,
        },
        v4 => v4,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn addr(s: &str) -> SocketAddr {
        s.parse().unwrap()
    }

    #[test]
    fn v1_is_the_text_line() {
        let h = encode(
            ProxyProtocol::V1,
            addr("198.51.100.2:40000"),
            addr("203.0.113.11:443"),
            "gw1",
        )
        .unwrap()
        .unwrap();
        assert_eq!(h, b"PROXY TCP4 198.51.100.2 203.0.113.11 40000 443\r\n");
    }

    #[test]
    fn v2_carries_addresses_and_the_gateway_tlv() {
        let h = encode(
            ProxyProtocol::V2,
            addr("[2001:db8:1::2]:40000"),
            addr("[2001:db8:203::11]:443"),
            "gw1",
        )
        .unwrap()
        .unwrap();
        let parsed = v2::Header::try_from(h.as_slice()).unwrap();
        assert_eq!(parsed.command, v2::Command::Proxy);
        match parsed.addresses {
            v2::Addresses::IPv6(a) => {
                assert_eq!(
                    a.source_address,
                    "2001:db8:1::2".parse::<std::net::Ipv6Addr>().unwrap()
                );
                assert_eq!((a.source_port, a.destination_port), (40000, 443));
            }
            other => panic!("expected IPv6 addresses, got {other:?}"),
        }
        let tlvs: Vec<_> = parsed.tlvs().map(|t| t.unwrap()).collect();
        assert_eq!(tlvs.len(), 1);
        assert_eq!(tlvs[0].kind, TLV_GATEWAY_ID);
        assert_eq!(&tlvs[0].value[..], b"gw1");
    }

    #[test]
    fn mapped_ipv4_peers_are_sent_as_ipv4() {
        let h = encode(
            ProxyProtocol::V1,
            addr("[::ffff:198.51.100.2]:1"),
            addr("[::ffff:203.0.113.11]:2"),
            "g",
        )
        .unwrap()
        .unwrap();
        assert!(
            h.starts_with(b"PROXY TCP4 198.51.100.2 "),
            "{}",
            String::from_utf8_lossy(&h)
        );
    }

    #[test]
    fn none_sends_nothing() {
        assert_eq!(
            encode(
                ProxyProtocol::None,
                addr("1.2.3.4:1"),
                addr("5.6.7.8:2"),
                "g"
            )
            .unwrap(),
            None
        );
    }
}
