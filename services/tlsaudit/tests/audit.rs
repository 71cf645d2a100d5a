//! `audit()` end to end against `openssl s_server`s on loopback, whose certificate comes
//! from the testbed's throwaway CA (RSA 2048, valid a week, naming 127.0.0.1).
//!
//! What the testbed cannot serve is covered by the unit tests instead: self-signed and
//! expired certificates (readiness is a verifying s_client; here an untrusted CA, no
//! `ca_file`, stands for them), TLS 1.0/1.1-only servers (that s_client refuses their
//! SHA-1 handshake), 3DES and RC4 (gone from Debian's OpenSSL 3).

use std::time::Duration;

use testbed::servers::{Host, SServer, Server};
use tlsaudit::report::TlsAudit;
use tlsaudit::tls::{Options, audit};

fn start(args: &[&str]) -> SServer {
    SServer::start_with(Host::Loopback, args).expect("s_server")
}

fn options(server: &SServer) -> Options {
    Options {
        target: server.addr().to_string(),
        sni: None,
        starttls: None,
        timeout: Duration::from_secs(5),
        ca_file: Some(server.ca_cert().to_path_buf()),
    }
}

fn cap<'a>(audit: &'a TlsAudit, id: &str) -> Option<&'a str> {
    let ids: Vec<&str> = audit.findings.iter().map(|f| f.id.as_str()).collect();
    audit
        .findings
        .iter()
        .find(|f| f.id == id)
        .unwrap_or_else(|| panic!("no {id} in {ids:?}"))
        .cap
        .as_deref()
}

#[test]
fn modern_server_grades_a() {
    let server = start(&["-no_ssl3", "-no_tls1", "-no_tls1_1"]);
    let audit = audit(&options(&server)).expect("audit");
    let cert = audit.certificate.as_ref().expect("certificate");
    assert!(cert.trusted, "{cert:?}");
    assert!(cert.hostname_matches, "{cert:?}");
    assert_eq!(cert.key, "RSA 2048");
    assert_eq!(audit.rating.grade, "A", "{:#?}", audit.rating);
    assert!(audit.seconds > 0.0);
    assert!(
        audit.findings.iter().all(|f| f.cap.is_none()),
        "{:#?}",
        audit.findings
    );
}

#[test]
fn legacy_server_with_tls10_and_rsa_cbc_is_capped_at_b() {
    // Debian's OpenSSL 3 has no 3DES or RC4 left to serve: the weak suite is static-RSA
    // AES-CBC, and TLS 1.3 is off so that a modern client gets it.
    let args = ["-no_tls1_3", "-cipher", "AES128-SHA:@SECLEVEL=0"];
    let server = start(&args);
    let audit = audit(&options(&server)).expect("audit");
    // TLS 1.0/1.1, no forward secrecy, no AEAD: B each.
    assert_eq!(audit.rating.grade, "B", "{:#?}", audit.rating);
    assert_eq!(cap(&audit, "tls10-enabled"), Some("B"));
    assert_eq!(cap(&audit, "no-forward-secrecy"), Some("B"));
    assert_eq!(cap(&audit, "cbc-only"), Some("B"));
}

#[test]
fn untrusted_ca_grades_t_and_wrong_name_m() {
    let server = start(&[]);
    let mut opts = options(&server);
    opts.ca_file = None;
    let audit = audit(&opts).expect("audit");
    let cert = audit.certificate.as_ref().expect("certificate");
    assert_eq!(cert.trust_error.as_deref(), Some("unknown issuer"));
    assert_eq!(audit.rating.grade, "T");
    assert_eq!(cap(&audit, "cert-untrusted"), Some("T"));

    let mut opts = options(&server);
    opts.sni = Some("other.example.test".into());
    let audit = tlsaudit::tls::audit(&opts).expect("audit");
    assert_eq!(audit.rating.grade, "M");
    assert_eq!(cap(&audit, "cert-name-mismatch"), Some("M"));
}
