//! ClientHellos as bytes (sans-io): one per question the probe asks a server.
//!
//! The probe never finishes a handshake of its own making, so a hello only has to be
//! good enough to draw a ServerHello: random bytes stand in for the TLS 1.3 key share,
//! and nothing here keeps state for later messages.

use std::hash::{BuildHasher, Hasher};
use std::sync::atomic::{AtomicU64, Ordering};

use crate::report::Protocol;

/// The signalling suite TLS_EMPTY_RENEGOTIATION_INFO_SCSV, added to hellos below TLS 1.3
/// (as browsers did) because some servers refuse clients without secure renegotiation.
pub const RENEGOTIATION_SCSV: u16 = 0x00FF;

pub const X25519: u16 = 29;

/// Named groups the probe asks about, IANA code point and name, in the order they are
/// reported. The first five are the ones clients use; the rest show up on old or
/// unusual servers.
pub const GROUPS: &[(u16, &str)] = &[
    (X25519, "x25519"),
    (23, "secp256r1"),
    (24, "secp384r1"),
    (25, "secp521r1"),
    (30, "x448"),
    (256, "ffdhe2048"),
    (257, "ffdhe3072"),
    (258, "ffdhe4096"),
    (259, "ffdhe6144"),
    (260, "ffdhe8192"),
    (21, "secp224r1"),
    (22, "secp256k1"),
    (26, "brainpoolP256r1"),
    (27, "brainpoolP384r1"),
    (28, "brainpoolP512r1"),
];

/// Groups for elliptic curve suites in TLS 1.2 (no finite-field groups: in TLS 1.2 the
/// DHE prime is the server's choice and comes in the ServerKeyExchange).
pub fn ec_groups() -> Vec<u16> {
    GROUPS
        .iter()
        .map(|g| g.0)
        .filter(|g| !(256..=260).contains(g))
        .collect()
}

pub fn group_name(id: u16) -> Option<&'static str> {
    GROUPS.iter().find(|g| g.0 == id).map(|g| g.1)
}

/// Every signature algorithm a server might need, SHA-1 and MD5 included: the probe asks
/// what the server accepts, so it must not be the one refusing.
const SIGNATURE_ALGORITHMS: &[u16] = &[
    0x0403, 0x0503, 0x0603, // ecdsa sha256/384/512
    0x0807, 0x0808, // ed25519, ed448
    0x0804, 0x0805, 0x0806, // rsa_pss_rsae
    0x0809, 0x080A, 0x080B, // rsa_pss_pss
    0x0401, 0x0501, 0x0601, // rsa_pkcs1
    0x0303, 0x0301, 0x0302, // sha224
    0x0203, 0x0201, 0x0202, // sha1
    0x0101, // rsa md5
];

/// What to put in one ClientHello.
#[derive(Debug, Clone, PartialEq)]
pub struct ClientHello {
    pub protocol: Protocol,
    /// Cipher suites in order of preference.
    pub suites: Vec<u16>,
    /// Host name for SNI (never an IP address, which SNI does not allow).
    pub sni: Option<String>,
    /// supported_groups.
    pub groups: Vec<u16>,
    /// TLS 1.3 key_share entries by group; an empty list asks the server for a
    /// HelloRetryRequest naming the group it wants.
    pub key_shares: Vec<u16>,
}

impl ClientHello {
    /// A hello for `protocol` offering `suites` with the usual groups (for TLS 1.3 an
    /// x25519 key share).
    pub fn new(protocol: Protocol, suites: Vec<u16>, sni: Option<String>) -> ClientHello {
        let tls13 = protocol == Protocol::Tls13;
        ClientHello {
            protocol,
            suites,
            sni,
            groups: GROUPS.iter().map(|g| g.0).collect(),
            key_shares: if tls13 { vec![X25519] } else { Vec::new() },
        }
    }

    /// The complete TLS record(s) to send.
    pub fn to_bytes(&self) -> Vec<u8> {
        let body = self.body();
        let mut handshake = Vec::with_capacity(body.len() + 4);
        handshake.push(1); // client_hello
        put_u24(&mut handshake, body.len());
        handshake.extend_from_slice(&body);

        // The record version stays at TLS 1.0 above SSLv3, as clients send it, because
        // some servers refuse a first record with a newer version.
        let record_version: u16 = if self.protocol == Protocol::Ssl3 {
            0x0300
        } else {
            0x0301
        };
        let mut out = Vec::with_capacity(handshake.len() + 10);
        // Split at the maximum record size; real hellos are far below it.
        for chunk in handshake.chunks(16384) {
            out.push(22);
            out.extend_from_slice(&record_version.to_be_bytes());
            put_u16(&mut out, chunk.len());
            out.extend_from_slice(chunk);
        }
        out
    }

    fn body(&self) -> Vec<u8> {
        let tls13 = self.protocol == Protocol::Tls13;
        let mut b = Vec::with_capacity(1024);
        let legacy_version = if tls13 { 0x0303 } else { self.protocol.wire() };
        b.extend_from_slice(&u16::to_be_bytes(legacy_version));
        b.extend_from_slice(&random_bytes(32));
        // TLS 1.3 middlebox compatibility mode wants a session id; older hellos send none
        // so that no server tries to resume.
        if tls13 {
            b.push(32);
            b.extend_from_slice(&random_bytes(32));
        } else {
            b.push(0);
        }
        let mut suites = self.suites.clone();
        if !tls13 {
            suites.push(RENEGOTIATION_SCSV);
        }
        put_u16(&mut b, suites.len() * 2);
        for s in suites {
            b.extend_from_slice(&s.to_be_bytes());
        }
        b.extend_from_slice(&[1, 0]); // compression: null only
        // SSLv3 has no extensions; some SSLv3-only servers choke on them.
        if self.protocol != Protocol::Ssl3 {
            let ext = self.extensions();
            put_u16(&mut b, ext.len());
            b.extend_from_slice(&ext);
        }
        b
    }

    fn extensions(&self) -> Vec<u8> {
        let mut e = Vec::with_capacity(512);
        if let Some(name) = &self.sni {
            let name = name.as_bytes();
            let mut list = vec![0]; // host_name
            put_u16(&mut list, name.len());
            list.extend_from_slice(name);
            let mut data = Vec::new();
            put_u16(&mut data, list.len());
            data.extend_from_slice(&list);
            extension(&mut e, 0, &data);
        }
        // status_request: OCSP, no responder ids, no extensions.
        extension(&mut e, 5, &[1, 0, 0, 0, 0]);
        extension(&mut e, 10, &u16_list(&self.groups, 2));
        extension(&mut e, 11, &[1, 0]); // ec_point_formats: uncompressed
        if matches!(self.protocol, Protocol::Tls12 | Protocol::Tls13) {
            extension(&mut e, 13, &u16_list(SIGNATURE_ALGORITHMS, 2));
        }
        if self.protocol == Protocol::Tls13 {
            extension(&mut e, 43, &u16_list(&[0x0304], 1)); // supported_versions
            extension(&mut e, 45, &[1, 1]); // psk_key_exchange_modes: psk_dhe_ke
            let mut shares = Vec::new();
            for &group in &self.key_shares {
                let key = random_bytes(key_share_len(group));
                shares.extend_from_slice(&group.to_be_bytes());
                put_u16(&mut shares, key.len());
                shares.extend_from_slice(&key);
            }
            let mut data = Vec::new();
            put_u16(&mut data, shares.len());
            data.extend_from_slice(&shares);
            extension(&mut e, 51, &data);
        } else {
            extension(&mut e, 23, &[]); // extended_master_secret
        }
        e
    }
}

/// The public key length of a group's key share. Only x25519 is sent by the probe in
/// practice (any 32 bytes are a usable x25519 key); the others keep the format right.
fn key_share_len(group: u16) -> usize {
    match group {
        29 => 32,
        30 => 56,
        23 => 65,
        24 => 97,
        25 => 133,
        256 => 256,
        257 => 384,
        258 => 512,
        259 => 768,
        260 => 1024,
        _ => 32,
    }
}

fn extension(out: &mut Vec<u8>, kind: u16, data: &[u8]) {
    out.extend_from_slice(&kind.to_be_bytes());
    put_u16(out, data.len());
    out.extend_from_slice(data);
}

/// A list of u16 prefixed by its length in bytes, the length field `len_bytes` wide.
fn u16_list(items: &[u16], len_bytes: usize) -> Vec<u8> {
    let mut out = Vec::with_capacity(items.len() * 2 + 2);
    let n = items.len() * 2;
    if len_bytes == 1 {
        out.push(n as u8);
    } else {
        put_u16(&mut out, n);
    }
    for i in items {
        out.extend_from_slice(&i.to_be_bytes());
    }
    out
}

fn put_u16(out: &mut Vec<u8>, n: usize) {
    out.extend_from_slice(&(n as u16).to_be_bytes());
}

fn put_u24(out: &mut Vec<u8>, n: usize) {
    out.extend_from_slice(&(n as u32).to_be_bytes()[1..]);
}

/// Unpredictable enough for hello randoms and throwaway key shares (nothing secret
/// depends on them): std's randomly seeded SipHash over a counter and the clock, which
/// spares a dependency on a random number crate.
pub fn random_bytes(n: usize) -> Vec<u8> {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let state = std::hash::RandomState::new();
    let mut out = Vec::with_capacity(n + 8);
    while out.len() < n {
        let mut h = state.build_hasher();
        h.write_u64(COUNTER.fetch_add(1, Ordering::Relaxed));
        if let Ok(t) = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH) {
            h.write_u128(t.as_nanos());
        }
        out.extend_from_slice(&h.finish().to_le_bytes());
    }
    out.truncate(n);
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use tls_parser::{
        TlsExtension, TlsMessage, TlsMessageHandshake, parse_tls_extensions, parse_tls_plaintext,
    };

    fn parse(hello: &ClientHello) -> (u16, u16, Vec<u16>, Vec<TlsExtension<'static>>) {
        let bytes: &'static [u8] = Box::leak(hello.to_bytes().into_boxed_slice());
        let (rest, record) = parse_tls_plaintext(bytes).expect("record");
        assert!(rest.is_empty());
        let [TlsMessage::Handshake(TlsMessageHandshake::ClientHello(ch))] = &record.msg[..] else {
            panic!("not a ClientHello: {:?}", record.msg);
        };
        let ext = ch
            .ext
            .map(|e| parse_tls_extensions(e).expect("extensions").1);
        (
            record.hdr.version.0,
            ch.version.0,
            ch.ciphers.iter().map(|c| c.0).collect(),
            ext.unwrap_or_default(),
        )
    }

    #[test]
    fn tls12_hello_parses_with_suites_sni_and_extensions() {
        let hello = ClientHello::new(
            Protocol::Tls12,
            vec![0xC02F, 0x002F],
            Some("mail.example".into()),
        );
        let (record, version, suites, ext) = parse(&hello);
        assert_eq!((record, version), (0x0301, 0x0303));
        assert_eq!(suites, [0xC02F, 0x002F, RENEGOTIATION_SCSV]);
        assert!(
            ext.iter()
                .any(|e| matches!(e, TlsExtension::SNI(v) if v[0].1 == b"mail.example"))
        );
        assert!(
            ext.iter()
                .any(|e| matches!(e, TlsExtension::SignatureAlgorithms(_)))
        );
        assert!(
            ext.iter()
                .any(|e| matches!(e, TlsExtension::StatusRequest(_)))
        );
        assert!(
            ext.iter()
                .any(|e| matches!(e, TlsExtension::EllipticCurves(g) if g[0].0 == X25519))
        );
        assert!(
            !ext.iter()
                .any(|e| matches!(e, TlsExtension::SupportedVersions(_)))
        );
    }

    #[test]
    fn tls13_hello_has_supported_versions_and_a_key_share() {
        let hello = ClientHello::new(Protocol::Tls13, vec![0x1301], None);
        let (_, version, suites, ext) = parse(&hello);
        assert_eq!(version, 0x0303);
        assert_eq!(suites, [0x1301]);
        assert!(ext.iter().any(
            |e| matches!(e, TlsExtension::SupportedVersions(v) if v.len() == 1 && v[0].0 == 0x0304)
        ));
        let share = ext
            .iter()
            .find_map(|e| match e {
                TlsExtension::KeyShare(k) => Some(*k),
                _ => None,
            })
            .expect("key_share");
        // client_shares length, group x25519, key length 32.
        assert_eq!(&share[..6], &[0, 36, 0, 29, 0, 32]);
        assert!(!ext.iter().any(|e| matches!(e, TlsExtension::SNI(_))));
    }

    #[test]
    fn ssl3_hello_has_no_extensions() {
        let hello = ClientHello::new(Protocol::Ssl3, vec![0x000A], Some("x".into()));
        let (record, version, _, ext) = parse(&hello);
        assert_eq!((record, version), (0x0300, 0x0300));
        assert!(ext.is_empty());
    }
}
