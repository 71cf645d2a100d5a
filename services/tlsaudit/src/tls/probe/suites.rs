//! The cipher suites the probe offers and how it describes them.
//!
//! The table is derived from tls-parser's copy of the IANA registry rather than typed in
//! by hand: every code point a server might pick (SSLv3 to TLS 1.3, export, NULL, RC4,
//! DES/3DES, CBC, GCM, CCM, CHACHA20, ARIA, CAMELLIA, SEED, IDEA, anonymous DH) is then
//! known by its IANA name. Left out are the suites a server can only pick with a shared
//! secret or a special client identity (PSK, SRP, Kerberos, ECCPWD), the non-standard
//! TLS 1.3 suites (SM4, AEGIS, integrity-only), and TLS_NULL_WITH_NULL_NULL: offering
//! them would only make the ClientHello longer.
//!
//! Two IANA-file values are corrected: CHACHA20 keys are 256 bits (the file says 128),
//! and 3DES counts as 112 bits (its effective strength, as SSL Labs rates it).

use std::sync::OnceLock;

use tls_parser::{TlsCipherAu, TlsCipherEnc, TlsCipherKx, TlsCipherMac, TlsPRF};

use crate::report::{Cipher, Protocol};

/// How a suite agrees on keys; decides forward secrecy and which parameters the
/// ServerKeyExchange carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kx {
    /// RSA key transport (no ServerKeyExchange, except export suites).
    Rsa,
    /// Static DH from the certificate.
    Dh,
    Dhe,
    /// Anonymous (unauthenticated) ephemeral DH.
    DhAnon,
    /// Static ECDH from the certificate.
    Ecdh,
    Ecdhe,
    /// Anonymous (unauthenticated) ephemeral ECDH.
    EcdhAnon,
    /// TLS 1.3: always (EC)DHE, negotiated apart from the suite.
    Tls13,
}

/// One cipher suite of the table.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Suite {
    pub id: u16,
    /// IANA name.
    pub name: &'static str,
    /// Symmetric key bits (0 NULL, 40 export, 56 DES, 112 3DES, 128, 256).
    pub bits: u16,
    pub kx: Kx,
    /// AEAD or SHA-256/384 PRF: defined for TLS 1.2 only, never offered below it.
    pub tls12_only: bool,
    /// AEAD (GCM, CCM, CHACHA20-POLY1305): ranks above CBC in the offering order.
    pub aead: bool,
}

impl Suite {
    /// Ephemeral key exchange. Anonymous (EC)DH is ephemeral too but not counted: without
    /// authentication the secrecy protects nothing, and raters treat it as insecure.
    pub fn forward_secrecy(&self) -> bool {
        matches!(self.kx, Kx::Dhe | Kx::Ecdhe | Kx::Tls13)
    }

    /// Whether this suite belongs in a ClientHello for `protocol`.
    pub fn offered_in(&self, protocol: Protocol) -> bool {
        match protocol {
            Protocol::Tls13 => self.kx == Kx::Tls13,
            Protocol::Tls12 => self.kx != Kx::Tls13,
            Protocol::Ssl3 | Protocol::Tls10 | Protocol::Tls11 => {
                self.kx != Kx::Tls13 && !self.tls12_only
            }
        }
    }

    /// Uses (EC)DHE, whose ServerKeyExchange names the group or carries the DH prime.
    pub fn ecdhe(&self) -> bool {
        matches!(self.kx, Kx::Ecdhe | Kx::EcdhAnon)
    }

    pub fn dhe(&self) -> bool {
        matches!(self.kx, Kx::Dhe | Kx::DhAnon)
    }

    pub fn cipher(&self) -> Cipher {
        Cipher {
            id: self.id,
            name: self.name.to_owned(),
            bits: self.bits,
            forward_secrecy: self.forward_secrecy(),
        }
    }
}

/// Every suite the probe knows, strongest first (TLS 1.3, then forward secret AEAD, ...),
/// so that a server honouring the client's order picks what a modern client would.
pub fn all() -> &'static [Suite] {
    static TABLE: OnceLock<Vec<Suite>> = OnceLock::new();
    TABLE.get_or_init(|| {
        let mut table: Vec<Suite> = tls_parser::CIPHERS.values().filter_map(from_iana).collect();
        table.sort_by_key(|s| {
            (
                s.kx != Kx::Tls13,
                !s.forward_secrecy(),
                !s.aead,
                std::cmp::Reverse(s.bits),
                s.id,
            )
        });
        table
    })
}

/// The suites offered for `protocol`, in table order.
pub fn for_protocol(protocol: Protocol) -> Vec<u16> {
    all()
        .iter()
        .filter(|s| s.offered_in(protocol))
        .map(|s| s.id)
        .collect()
}

pub fn by_id(id: u16) -> Option<&'static Suite> {
    all().iter().find(|s| s.id == id)
}

/// A [`Cipher`] for any code point, also one outside the table (a server may pick a
/// suite it was not offered; the report should still name what it saw).
pub fn describe(id: u16) -> Cipher {
    match by_id(id) {
        Some(suite) => suite.cipher(),
        None => Cipher {
            id,
            name: tls_parser::TlsCipherSuite::from_id(id)
                .map_or_else(|| format!("UNKNOWN_0x{id:04X}"), |s| s.name.to_owned()),
            bits: 0,
            forward_secrecy: false,
        },
    }
}

fn from_iana(s: &tls_parser::TlsCipherSuite) -> Option<Suite> {
    let id = s.id.0;
    let kx = match (s.kx, s.au) {
        (
            _,
            TlsCipherAu::Psk
            | TlsCipherAu::Krb5
            | TlsCipherAu::Srp
            | TlsCipherAu::Srp_Dss
            | TlsCipherAu::Srp_Rsa
            | TlsCipherAu::Eccpwd,
        ) => return None,
        (TlsCipherKx::Tls13, _) if (0x1301..=0x1305).contains(&id) => Kx::Tls13,
        (TlsCipherKx::Rsa, _) => Kx::Rsa,
        (TlsCipherKx::Dh, TlsCipherAu::Null) => Kx::DhAnon,
        (TlsCipherKx::Dh, _) => Kx::Dh,
        (TlsCipherKx::Dhe, _) => Kx::Dhe,
        (TlsCipherKx::Ecdh | TlsCipherKx::Aecdh, TlsCipherAu::Null) => Kx::EcdhAnon,
        (TlsCipherKx::Ecdh, _) => Kx::Ecdh,
        (TlsCipherKx::Ecdhe, _) => Kx::Ecdhe,
        _ => return None,
    };
    let bits = match s.enc {
        TlsCipherEnc::Chacha20_Poly1305 => 256,
        TlsCipherEnc::TripleDes => 112,
        _ => s.enc_size,
    };
    let aead = s.mac == TlsCipherMac::Aead;
    Some(Suite {
        id,
        name: s.name,
        bits,
        kx,
        tls12_only: kx != Kx::Tls13 && (aead || s.prf != TlsPRF::Default),
        aead,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table_knows_the_suites_a_scanner_must_name() {
        let expect = [
            (0x0004, "TLS_RSA_WITH_RC4_128_MD5", 128, false),
            (0x0003, "TLS_RSA_EXPORT_WITH_RC4_40_MD5", 40, false),
            (0x0002, "TLS_RSA_WITH_NULL_SHA", 0, false),
            (0x000A, "TLS_RSA_WITH_3DES_EDE_CBC_SHA", 112, false),
            (0x002F, "TLS_RSA_WITH_AES_128_CBC_SHA", 128, false),
            (0x0039, "TLS_DHE_RSA_WITH_AES_256_CBC_SHA", 256, true),
            (0xC02F, "TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256", 128, true),
            (
                0xCCA8,
                "TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256",
                256,
                true,
            ),
            (0xC0AC, "TLS_ECDHE_ECDSA_WITH_AES_128_CCM", 128, true),
            (0x1301, "TLS_AES_128_GCM_SHA256", 128, true),
            (0x1302, "TLS_AES_256_GCM_SHA384", 256, true),
            (0x1303, "TLS_CHACHA20_POLY1305_SHA256", 256, true),
            (0x1304, "TLS_AES_128_CCM_SHA256", 128, true),
            (0x1305, "TLS_AES_128_CCM_8_SHA256", 128, true),
        ];
        for (id, name, bits, fs) in expect {
            let s = by_id(id).unwrap_or_else(|| panic!("{name} missing"));
            assert_eq!((s.name, s.bits, s.forward_secrecy()), (name, bits, fs));
        }
        assert_eq!(for_protocol(Protocol::Tls13).len(), 5);
    }

    #[test]
    fn tls12_only_suites_are_not_offered_below_tls12() {
        let tls10 = for_protocol(Protocol::Tls10);
        assert!(tls10.contains(&0x002F) && tls10.contains(&0x0005));
        // GCM, SHA256-CBC, CCM.
        for id in [0xC02F, 0x003C, 0xC0AC, 0x1301] {
            assert!(!tls10.contains(&id), "{id:04X} offered in TLS 1.0");
        }
        let tls12 = for_protocol(Protocol::Tls12);
        assert!(tls12.contains(&0xC02F) && tls12.contains(&0x002F) && !tls12.contains(&0x1301));
        // No PSK, SRP or Kerberos suites.
        assert!(by_id(0x008C).is_none() && by_id(0xC01D).is_none() && by_id(0x001E).is_none());
    }
}
