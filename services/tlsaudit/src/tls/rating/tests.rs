//! Hand-computed ratings. Category percentages are from the guide's tables (see
//! rating.rs); each test shows its arithmetic.

use super::{ec_to_rsa_bits, group_rsa_bits, rate};
use crate::report::{CertificateReport, Cipher, Protocol, ProtocolResult, Rating};

fn suite(name: &str, bits: u16) -> Cipher {
    let forward_secrecy =
        name.contains("ECDHE") || name.contains("DHE") || !name.contains("_WITH_"); // TLS 1.3 suites
    Cipher {
        id: 0,
        name: name.into(),
        bits,
        forward_secrecy,
    }
}

const ECDHE_AES128_GCM: (&str, u16) = ("TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256", 128);
const ECDHE_AES256_GCM: (&str, u16) = ("TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384", 256);
const ECDHE_AES128_CBC: (&str, u16) = ("TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA", 128);
const RSA_AES128_GCM: (&str, u16) = ("TLS_RSA_WITH_AES_128_GCM_SHA256", 128);
const RSA_RC4: (&str, u16) = ("TLS_RSA_WITH_RC4_128_SHA", 128);
const RSA_3DES: (&str, u16) = ("TLS_RSA_WITH_3DES_EDE_CBC_SHA", 112);
const TLS13: [(&str, u16); 3] = [
    ("TLS_AES_256_GCM_SHA384", 256),
    ("TLS_CHACHA20_POLY1305_SHA256", 256),
    ("TLS_AES_128_GCM_SHA256", 128),
];

/// A server: per protocol the suites it accepts (in its order) and whether it enforces
/// that order.
struct Server(Vec<ProtocolResult>);

impl Server {
    fn new() -> Server {
        Server(
            Protocol::ALL
                .iter()
                .map(|&protocol| ProtocolResult {
                    protocol,
                    accepted: false,
                    ciphers: Vec::new(),
                    server_order: None,
                })
                .collect(),
        )
    }

    fn with(mut self, protocol: Protocol, suites: &[(&str, u16)], order: Option<bool>) -> Self {
        let p = self.0.iter_mut().find(|p| p.protocol == protocol).unwrap();
        p.accepted = true;
        p.ciphers = suites.iter().map(|(n, b)| suite(n, *b)).collect();
        p.server_order = order;
        self
    }

    /// TLS 1.2 (ECDHE + AES-GCM 256 and 128, server order) and TLS 1.3.
    fn modern() -> Server {
        Server::new()
            .with(
                Protocol::Tls12,
                &[ECDHE_AES256_GCM, ECDHE_AES128_GCM],
                Some(true),
            )
            .with(Protocol::Tls13, &TLS13, Some(true))
    }

    fn rate(&self, cert: &CertificateReport) -> (Rating, Vec<String>) {
        let groups = ["x25519".to_string(), "secp256r1".to_string()];
        self.rate_with(&groups, None, Some(cert))
    }

    fn rate_with(
        &self,
        groups: &[String],
        dh_bits: Option<u32>,
        cert: Option<&CertificateReport>,
    ) -> (Rating, Vec<String>) {
        let (rating, findings) = rate(&self.0, groups, dh_bits, cert);
        for f in &findings {
            assert!(f.cap.is_some(), "{f:?}");
            assert!(f.title.starts_with("Grade capped at"), "{f:?}");
        }
        (rating, findings.into_iter().map(|f| f.id).collect())
    }
}

fn cert(key: &str, bits: u32) -> CertificateReport {
    CertificateReport {
        subject: "CN=mail.example.test".into(),
        issuer: "CN=Test CA".into(),
        names: vec!["mail.example.test".into()],
        not_before: "2026-01-01T00:00:00Z".into(),
        not_after: "2027-01-01T00:00:00Z".into(),
        key: format!("{key} {bits}"),
        key_bits: bits,
        signature_algorithm: "sha256WithRSAEncryption".into(),
        chain_length: 2,
        trusted: true,
        trust_error: None,
        expired: false,
        hostname_matches: true,
        ocsp_stapled: true,
    }
}

fn rsa2048() -> CertificateReport {
    cert("RSA", 2048)
}

fn scores(r: &Rating) -> (u32, u32, u32, u32, &str, &str) {
    (
        r.protocol_score,
        r.key_exchange_score,
        r.cipher_score,
        r.score,
        &r.score_grade,
        &r.grade,
    )
}

#[test]
fn modern_server_gets_an_a() {
    let (rating, caps) = Server::modern().rate(&rsa2048());
    // Protocol: TLS 1.2 100, TLS 1.3 100 -> (100 + 100) / 2 = 100.
    // Key exchange: every suite min(RSA 2048, X25519/P-256 ≈ RSA 3072) = 2048 -> 90%;
    //   (90 + 90) / 2 = 90.
    // Cipher: strongest 256 -> 100, weakest 128 -> 80; (100 + 80) / 2 = 90.
    // Score: 0.3 * 100 + 0.3 * 90 + 0.4 * 90 = 30 + 27 + 36 = 93 -> A.
    assert_eq!(scores(&rating), (100, 90, 90, 93, "A", "A"));
    assert!(caps.is_empty(), "{caps:?}");
}

#[test]
fn key_exchange_is_the_weaker_of_certificate_and_ephemeral_key() {
    let server = Server::modern();
    // RSA 4096 with X25519 (≈ 3072): 3072 < 4096 -> 90.
    let (rating, _) = server.rate(&cert("RSA", 4096));
    assert_eq!(rating.key_exchange_score, 90);
    // EC P-384 (≈ 7680) with secp384r1 only: 7680 >= 4096 -> 100.
    // Score: 30 + 30 + 36 = 96.
    let p384 = CertificateReport {
        key: "EC P-384".into(),
        ..cert("EC", 384)
    };
    let (rating, _) = server.rate_with(&["secp384r1".into()], None, Some(&p384));
    assert_eq!(scores(&rating), (100, 100, 90, 96, "A", "A"));
    // X25519 and secp384r1 with P-384: best 100, worst 90 -> 95.
    let groups = ["x25519".to_string(), "secp384r1".to_string()];
    let (rating, _) = server.rate_with(&groups, None, Some(&p384));
    assert_eq!(rating.key_exchange_score, 95);
}

#[test]
fn tls10_caps_at_b() {
    let server = Server::modern().with(Protocol::Tls10, &[ECDHE_AES128_CBC], Some(true));
    let (rating, caps) = server.rate(&rsa2048());
    // Protocol: best 100, worst TLS 1.0 90 -> 95. Key exchange 90, cipher 90.
    // Score: 0.3 * 95 + 27 + 36 = 28.5 + 63 = 91.5 -> 92 -> A, capped at B.
    assert_eq!(scores(&rating), (95, 90, 90, 92, "A", "B"));
    assert_eq!(caps, ["rating-tls10-tls11"]);
}

#[test]
fn only_tls10_caps_at_c() {
    let server = Server::new().with(Protocol::Tls10, &[ECDHE_AES128_CBC], Some(true));
    let (rating, caps) = server.rate(&rsa2048());
    // Protocol 90; key exchange 90; cipher (80 + 80) / 2 = 80.
    // Score: 27 + 27 + 32 = 86 -> A; TLS 1.0 -> B, no TLS 1.2 -> C, and no AEAD -> B.
    assert_eq!(scores(&rating), (90, 90, 80, 86, "A", "C"));
    assert_eq!(
        caps,
        ["rating-tls10-tls11", "rating-no-tls12", "rating-no-aead"]
    );
}

#[test]
fn rc4_with_tls12_caps_at_c_and_with_tls10_only_at_b() {
    let server = Server::modern().with(Protocol::Tls12, &[ECDHE_AES128_GCM, RSA_RC4], Some(true));
    let (rating, caps) = server.rate(&rsa2048());
    assert_eq!(rating.grade, "C");
    assert_eq!(caps, ["rating-rc4"]);

    let server = Server::modern().with(Protocol::Tls10, &[RSA_RC4], Some(true));
    let (rating, caps) = server.rate(&rsa2048());
    assert_eq!(rating.grade, "B");
    assert_eq!(caps, ["rating-tls10-tls11", "rating-rc4"]);
}

#[test]
fn triple_des_last_in_server_order_is_tolerated() {
    // 3DES scores as 168 bits (guide's example) -> 80%, like AES-128: cipher 80.
    let last = Server::new().with(Protocol::Tls12, &[ECDHE_AES128_GCM, RSA_3DES], Some(true));
    let (rating, caps) = last.rate(&rsa2048());
    // Score: 30 + 27 + 32 = 89 -> A.
    assert_eq!(scores(&rating), (100, 90, 80, 89, "A", "A"));
    assert!(caps.is_empty(), "{caps:?}");

    let client_order = Server::new().with(Protocol::Tls12, &[ECDHE_AES128_GCM, RSA_3DES], None);
    let (rating, caps) = client_order.rate(&rsa2048());
    assert_eq!(rating.grade, "C");
    assert_eq!(caps, ["rating-64bit-block"]);

    let first = Server::new().with(Protocol::Tls12, &[RSA_3DES, ECDHE_AES128_GCM], Some(true));
    let (rating, caps) = first.rate(&rsa2048());
    assert_eq!(rating.grade, "C");
    // The server's first choice is 3DES with RSA key exchange: no FS, no AEAD either.
    assert_eq!(
        caps,
        [
            "rating-64bit-block",
            "rating-no-forward-secrecy",
            "rating-no-aead"
        ]
    );
}

#[test]
fn no_forward_secrecy_or_no_aead_caps_at_b() {
    let rsa_only = Server::new().with(Protocol::Tls12, &[RSA_AES128_GCM], Some(true));
    let (rating, caps) = rsa_only.rate(&rsa2048());
    // Static RSA: key exchange is the certificate, 2048 -> 90. Cipher 80.
    // Score: 30 + 27 + 32 = 89 -> A, capped at B.
    assert_eq!(scores(&rating), (100, 90, 80, 89, "A", "B"));
    assert_eq!(caps, ["rating-no-forward-secrecy"]);

    let cbc_only = Server::new().with(Protocol::Tls12, &[ECDHE_AES128_CBC], Some(true));
    let (rating, caps) = cbc_only.rate(&rsa2048());
    assert_eq!(rating.grade, "B");
    assert_eq!(caps, ["rating-no-aead"]);

    // Client order with an ECDHE-GCM suite on offer: a modern client picks it.
    let mixed = Server::new().with(Protocol::Tls12, &[RSA_AES128_GCM, ECDHE_AES128_GCM], None);
    assert_eq!(mixed.rate(&rsa2048()).0.grade, "A");
    // TLS 1.3 always gives both.
    let with13 = rsa_only.with(Protocol::Tls13, &TLS13, None);
    assert_eq!(with13.rate(&rsa2048()).0.grade, "A");
}

#[test]
fn ssl3() {
    let cbc = Server::modern().with(
        Protocol::Ssl3,
        &[("TLS_RSA_WITH_AES_128_CBC_SHA", 128)],
        Some(true),
    );
    let (rating, caps) = cbc.rate(&rsa2048());
    // Protocol (100 + 80) / 2 = 90. Key exchange 90, cipher 90.
    // Score: 27 + 27 + 36 = 90 -> A; POODLE -> C.
    assert_eq!(scores(&rating), (90, 90, 90, 90, "A", "C"));
    assert_eq!(caps, ["rating-ssl3"]);

    let only = Server::new().with(
        Protocol::Ssl3,
        &[("TLS_RSA_WITH_AES_128_CBC_SHA", 128)],
        None,
    );
    assert_eq!(only.rate(&rsa2048()).0.grade, "F");
}

#[test]
fn weak_dh_parameters() {
    let dhe = ("TLS_DHE_RSA_WITH_AES_128_GCM_SHA256", 128);
    let server = Server::modern().with(Protocol::Tls12, &[ECDHE_AES128_GCM, dhe], Some(true));
    let groups = ["x25519".to_string()];
    let (rating, caps) = server.rate_with(&groups, Some(1024), Some(&rsa2048()));
    // Key exchange: ECDHE min(2048, 3072) -> 90; DHE min(2048, 1024) = 1024 -> 80.
    //   (90 + 80) / 2 = 85. Cipher 90. Score: 30 + 25.5 + 36 = 91.5 -> 92.
    assert_eq!(scores(&rating), (100, 85, 90, 92, "A", "B"));
    assert_eq!(caps, ["rating-weak-dh"]);
    let (rating, _) = server.rate_with(&groups, Some(512), Some(&rsa2048()));
    assert_eq!(rating.grade, "F");
}

#[test]
fn insecure_suites_give_f() {
    let export = ("TLS_RSA_EXPORT_WITH_RC4_40_MD5", 40);
    let (rating, caps) = Server::modern()
        .with(Protocol::Tls10, &[export], None)
        .rate(&rsa2048());
    assert_eq!(rating.grade, "F");
    assert!(caps.contains(&"rating-export".to_string()), "{caps:?}");

    let anon = ("TLS_DH_anon_WITH_AES_128_CBC_SHA", 128);
    let (rating, caps) = Server::modern()
        .with(Protocol::Tls12, &[ECDHE_AES128_GCM, anon], Some(true))
        .rate(&rsa2048());
    // Key exchange: best 90, worst anonymous 0 -> 45.
    assert_eq!(rating.key_exchange_score, 45);
    assert_eq!(rating.grade, "F");
    assert_eq!(caps, ["rating-anonymous"]);

    // NULL only: cipher category 0, so the whole score is 0 (guide: a zero in any
    // category gives zero).
    let null = ("TLS_RSA_WITH_NULL_SHA256", 0);
    let (rating, caps) = Server::new()
        .with(Protocol::Tls12, &[null], None)
        .rate(&rsa2048());
    assert_eq!(scores(&rating), (100, 90, 0, 0, "F", "F"));
    assert!(caps.contains(&"rating-null-cipher".to_string()), "{caps:?}");
}

#[test]
fn certificate_caps() {
    let server = Server::modern();

    let weak = cert("RSA", 1024);
    let (rating, caps) = server.rate(&weak);
    // Key exchange: 1024 -> 80. Score: 30 + 24 + 36 = 90.
    assert_eq!(scores(&rating), (100, 80, 90, 90, "A", "B"));
    assert_eq!(caps, ["rating-weak-key"]);

    let md5 = CertificateReport {
        signature_algorithm: "md5WithRSAEncryption".into(),
        ..rsa2048()
    };
    assert_eq!(server.rate(&md5).0.grade, "F");

    let untrusted = CertificateReport {
        trusted: false,
        trust_error: Some("self-signed".into()),
        ..rsa2048()
    };
    let (rating, caps) = server.rate(&untrusted);
    assert_eq!(
        (rating.score_grade.as_str(), rating.grade.as_str()),
        ("A", "T")
    );
    assert_eq!(caps, ["rating-untrusted"]);

    let expired = CertificateReport {
        trusted: false,
        trust_error: Some("expired".into()),
        expired: true,
        ..rsa2048()
    };
    assert_eq!(server.rate(&expired).0.grade, "T");

    let mismatch = CertificateReport {
        hostname_matches: false,
        ..rsa2048()
    };
    let (rating, caps) = server.rate(&mismatch);
    assert_eq!(rating.grade, "M");
    assert_eq!(caps, ["rating-name-mismatch"]);

    // Both: T wins; and a T hides an F from the configuration.
    let both = CertificateReport {
        hostname_matches: false,
        ..untrusted.clone()
    };
    assert_eq!(server.rate(&both).0.grade, "T");
    let ssl3_only = Server::new().with(Protocol::Ssl3, &[RSA_RC4], None);
    let (rating, _) = ssl3_only.rate(&untrusted);
    assert_eq!(rating.grade, "T");
}

#[test]
fn without_certificate_or_protocols() {
    let (rating, caps) = Server::modern().rate_with(&["x25519".into()], None, None);
    // Key exchange: X25519 alone ≈ 3072 -> 90.
    assert_eq!(scores(&rating), (100, 90, 90, 93, "A", "A"));
    assert!(caps.is_empty());

    let (rating, caps) = Server::new().rate(&rsa2048());
    assert_eq!(scores(&rating), (0, 90, 0, 0, "F", "F"));
    assert!(caps.is_empty());
}

#[test]
fn strength_mappings() {
    assert_eq!(ec_to_rsa_bits(256), 3072);
    assert_eq!(ec_to_rsa_bits(384), 7680);
    assert_eq!(ec_to_rsa_bits(224), 2048);
    assert_eq!(ec_to_rsa_bits(160), 1024);
    assert_eq!(group_rsa_bits("x25519"), Some(3072));
    assert_eq!(group_rsa_bits("X25519MLKEM768"), Some(3072));
    assert_eq!(group_rsa_bits("secp256r1"), Some(3072));
    assert_eq!(group_rsa_bits("secp384r1"), Some(7680));
    assert_eq!(group_rsa_bits("secp521r1"), Some(15360));
    assert_eq!(group_rsa_bits("x448"), Some(7680));
    assert_eq!(group_rsa_bits("ffdhe2048"), Some(2048));
    assert_eq!(group_rsa_bits("something"), None);
}
