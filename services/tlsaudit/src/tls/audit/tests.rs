//! [`assemble`] on hand-made probes, with certificates from the test CA of the cert
//! tests.

use std::time::{Duration, SystemTime};

use super::{assemble, host_of};
use crate::report::{Cipher, Protocol, ProtocolResult, Severity, TlsAudit};
use crate::tls::cert::tests::Pki;
use crate::tls::{Options, Probe};

fn options(target: &str) -> Options {
    Options {
        target: target.into(),
        sni: None,
        starttls: None,
        timeout: Duration::from_secs(5),
        ca_file: None,
    }
}

fn suite(name: &str, bits: u16, forward_secrecy: bool) -> Cipher {
    Cipher {
        id: 0,
        name: name.into(),
        bits,
        forward_secrecy,
    }
}

/// A probe accepting `accepted` (protocol, suites, server order), the rest refused.
fn probe(accepted: Vec<(Protocol, Vec<Cipher>, Option<bool>)>, chain: Vec<Vec<u8>>) -> Probe {
    let protocols = Protocol::ALL
        .iter()
        .map(
            |&protocol| match accepted.iter().find(|(p, _, _)| *p == protocol) {
                Some((_, ciphers, order)) => ProtocolResult {
                    protocol,
                    accepted: true,
                    ciphers: ciphers.clone(),
                    server_order: *order,
                },
                None => ProtocolResult {
                    protocol,
                    accepted: false,
                    ciphers: Vec::new(),
                    server_order: None,
                },
            },
        )
        .collect();
    Probe {
        protocols,
        groups: vec!["x25519".into(), "secp256r1".into()],
        dh_bits: None,
        chain,
        ocsp_stapled: true,
    }
}

fn modern(chain: Vec<Vec<u8>>) -> Probe {
    probe(
        vec![
            (
                Protocol::Tls12,
                vec![
                    suite("TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384", 256, true),
                    suite("TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256", 128, true),
                ],
                Some(true),
            ),
            (
                Protocol::Tls13,
                vec![
                    suite("TLS_AES_256_GCM_SHA384", 256, true),
                    suite("TLS_AES_128_GCM_SHA256", 128, true),
                ],
                Some(true),
            ),
        ],
        chain,
    )
}

fn ids(audit: &TlsAudit) -> Vec<&str> {
    audit.findings.iter().map(|f| f.id.as_str()).collect()
}

fn find<'a>(audit: &'a TlsAudit, id: &str) -> &'a crate::report::Finding {
    audit
        .findings
        .iter()
        .find(|f| f.id == id)
        .unwrap_or_else(|| panic!("no {id} in {:?}", ids(audit)))
}

#[test]
fn modern_server_with_trusted_certificate() {
    let pki = Pki::new();
    let leaf = pki.leaf("good", "rsa:2048", "sha256");
    let audit = assemble(
        &options("mail.example.test:443"),
        modern(vec![leaf]),
        &pki.roots(),
        SystemTime::now(),
        1.5,
    );
    assert_eq!(audit.target, "mail.example.test:443");
    assert_eq!(audit.seconds, 1.5);
    assert_eq!(audit.groups, ["x25519", "secp256r1"]);
    let cert = audit.certificate.as_ref().unwrap();
    assert!(cert.trusted && cert.hostname_matches, "{cert:?}");
    // 100 / 90 / 90 -> 93 (see the rating tests).
    assert_eq!(audit.rating.score, 93);
    assert_eq!(audit.rating.grade, "A");
    // The test certificate lives a week.
    assert_eq!(ids(&audit), ["cert-expiring"]);
}

#[test]
fn legacy_server_caps_fold_into_the_findings() {
    let pki = Pki::new();
    let leaf = pki.leaf("good", "rsa:2048", "sha256");
    let probe = probe(
        vec![
            (
                Protocol::Tls10,
                vec![suite("TLS_RSA_WITH_3DES_EDE_CBC_SHA", 112, false)],
                None,
            ),
            (
                Protocol::Tls12,
                vec![
                    suite("TLS_RSA_WITH_AES_128_CBC_SHA", 128, false),
                    suite("TLS_RSA_WITH_3DES_EDE_CBC_SHA", 112, false),
                ],
                Some(false),
            ),
        ],
        vec![leaf],
    );
    let audit = assemble(
        &options("mail.example.test:443"),
        probe,
        &pki.roots(),
        SystemTime::now(),
        0.0,
    );
    assert_eq!(audit.rating.grade, "C");
    let ids = ids(&audit);
    for id in [
        "tls10-enabled",
        "tls13-missing",
        "no-forward-secrecy",
        "cbc-only",
        "64bit-block-suites",
        "cert-expiring",
    ] {
        assert!(ids.contains(&id), "{id} missing from {ids:?}");
    }
    // Every cap was folded into the finding about its cause.
    assert!(!ids.iter().any(|id| id.starts_with("rating-")), "{ids:?}");
    assert_eq!(find(&audit, "tls10-enabled").cap.as_deref(), Some("B"));
    let sweet32 = find(&audit, "64bit-block-suites");
    assert_eq!(sweet32.cap.as_deref(), Some("C"));
    assert_eq!(
        sweet32.severity,
        Severity::High,
        "raised to the cap's severity"
    );
    assert!(
        sweet32.detail.contains("Grade capped at C"),
        "{}",
        sweet32.detail
    );
    assert!(sweet32.detail.contains("TLS_RSA_WITH_3DES_EDE_CBC_SHA"));
    assert_eq!(find(&audit, "no-forward-secrecy").cap.as_deref(), Some("B"));
    assert_eq!(find(&audit, "cbc-only").cap.as_deref(), Some("B"));
    // Only CBC and 3DES are on offer, none of them strong: client order is no worse.
    assert!(!ids.contains(&"server-order-not-set"));
    // Worst first.
    assert!(
        audit
            .findings
            .windows(2)
            .all(|w| w[0].severity >= w[1].severity)
    );
}

#[test]
fn caps_without_a_finding_of_their_own_stay() {
    let pki = Pki::new();
    let leaf = pki.leaf("good", "rsa:2048", "sha256");
    let probe = probe(
        vec![(
            Protocol::Tls11,
            vec![suite("TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA", 128, true)],
            Some(true),
        )],
        vec![leaf],
    );
    let audit = assemble(
        &options("mail.example.test:25"),
        probe,
        &pki.roots(),
        SystemTime::now(),
        0.0,
    );
    assert_eq!(audit.rating.grade, "C");
    assert_eq!(find(&audit, "rating-no-tls12").cap.as_deref(), Some("C"));
    assert_eq!(find(&audit, "tls11-enabled").cap.as_deref(), Some("B"));
}

#[test]
fn self_signed_certificate_grades_t() {
    let pki = Pki::new();
    let leaf = pki.self_signed();
    let audit = assemble(
        &options("mail.example.test:443"),
        modern(vec![leaf]),
        &[],
        SystemTime::now(),
        0.0,
    );
    assert_eq!(audit.rating.score_grade, "A");
    assert_eq!(audit.rating.grade, "T");
    let untrusted = find(&audit, "cert-self-signed");
    assert_eq!(untrusted.cap.as_deref(), Some("T"));
    assert_eq!(audit.findings[0].severity, Severity::Critical);
}

#[test]
fn sni_overrides_the_name_checked() {
    let pki = Pki::new();
    let leaf = pki.leaf("good", "rsa:2048", "sha256");
    let mut opts = options("127.0.0.2:443");
    let audit = assemble(
        &opts,
        modern(vec![leaf.clone()]),
        &pki.roots(),
        SystemTime::now(),
        0.0,
    );
    assert_eq!(audit.rating.grade, "M");
    assert_eq!(find(&audit, "cert-name-mismatch").cap.as_deref(), Some("M"));

    opts.sni = Some("mail.example.test".into());
    let audit = assemble(
        &opts,
        modern(vec![leaf]),
        &pki.roots(),
        SystemTime::now(),
        0.0,
    );
    assert_eq!(audit.rating.grade, "A");
}

#[test]
fn a_server_speaking_no_tls() {
    let audit = assemble(
        &Options {
            starttls: Some("smtp".into()),
            ..options("mx.example.test:25")
        },
        probe(Vec::new(), Vec::new()),
        &[],
        SystemTime::now(),
        0.0,
    );
    assert_eq!(audit.starttls.as_deref(), Some("smtp"));
    assert_eq!(audit.certificate, None);
    assert_eq!(audit.rating.grade, "F");
    assert!(audit.findings.is_empty(), "{:?}", ids(&audit));
}

#[test]
fn host_of_targets() {
    assert_eq!(host_of("mail.example.test:25"), "mail.example.test");
    assert_eq!(host_of("127.0.0.1:443"), "127.0.0.1");
    assert_eq!(host_of("[::1]:443"), "::1");
    assert_eq!(host_of("example.test"), "example.test");
    assert_eq!(host_of("::1"), "::1");
}
