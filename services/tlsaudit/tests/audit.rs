//! `audit()` end to end against `openssl s_server`s on loopback, whose certificate comes
//! from the testbed's throwaway CA (RSA 2048, valid a week, naming 127.0.0.1), or is
//! self-signed or expired (the testbed's [`Certs`] again, served with
//! `SServer::start_with_cert`); the self-signed one through the `tlsaudit` binary too.
//!
//! What the testbed cannot serve is covered by the unit tests instead: TLS 1.0/1.1-only
//! servers (the verifying s_client refuses their SHA-1 handshake), 3DES and RC4 (gone
//! from Debian's OpenSSL 3).

use std::net::IpAddr;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use tempfile::TempDir;
use testbed::servers::{Certs, Host, SServer, Server};
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

/// A server with the certificate `make` puts in a temporary directory (which the caller
/// keeps, after the server, for as long as it needs the files).
fn start_with_cert(make: fn(&Path, IpAddr) -> testbed::Result<Certs>) -> (SServer, Certs, TempDir) {
    let dir = tempfile::tempdir().expect("tempdir");
    let certs = make(dir.path(), "127.0.0.1".parse().unwrap()).expect("certificate");
    let server =
        SServer::start_with_cert(Host::Loopback, &certs.cert, &certs.key, &[]).expect("s_server");
    (server, certs, dir)
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

#[test]
fn self_signed_certificate_grades_t() {
    let (server, _certs, _dir) = start_with_cert(Certs::self_signed);
    let mut opts = options(&server);
    opts.ca_file = None;
    let audit = audit(&opts).expect("audit");
    let cert = audit.certificate.as_ref().expect("certificate");
    assert!(!cert.trusted, "{cert:?}");
    assert!(!cert.expired, "{cert:?}");
    assert_eq!(cert.trust_error.as_deref(), Some("self-signed"));
    assert!(cert.hostname_matches, "{cert:?}");
    assert_eq!(audit.rating.grade, "T", "{:#?}", audit.rating);
    assert_eq!(cap(&audit, "cert-self-signed"), Some("T"));
    let finding = audit
        .findings
        .iter()
        .find(|f| f.id == "cert-self-signed")
        .unwrap();
    assert!(finding.title.contains("self-signed"), "{finding:?}");
}

#[test]
fn expired_certificate_grades_t() {
    let (server, certs, _dir) = start_with_cert(Certs::expired);
    let mut opts = options(&server);
    // The issuing CA is trusted: the date is the only problem.
    opts.ca_file = Some(certs.ca.clone());
    let audit = audit(&opts).expect("audit");
    let cert = audit.certificate.as_ref().expect("certificate");
    assert!(cert.expired, "{cert:?}");
    assert!(!cert.trusted, "{cert:?}");
    assert_eq!(cert.trust_error.as_deref(), Some("expired"));
    assert_eq!(cert.not_after, "2020-02-01T00:00:00Z");
    assert_eq!(audit.rating.grade, "T", "{:#?}", audit.rating);
    assert_eq!(cap(&audit, "cert-expired"), Some("T"));
    let finding = audit
        .findings
        .iter()
        .find(|f| f.id == "cert-expired")
        .unwrap();
    assert!(finding.title.contains("expired"), "{finding:?}");
    let ids: Vec<&str> = audit.findings.iter().map(|f| f.id.as_str()).collect();
    assert!(
        !ids.contains(&"cert-untrusted") && !ids.contains(&"cert-self-signed"),
        "{ids:?}"
    );
}

#[test]
fn cli_reports_t_for_a_self_signed_certificate() {
    let (server, _certs, _dir) = start_with_cert(Certs::self_signed);
    let target = server.addr().to_string();
    let out = Command::new(env!("CARGO_BIN_EXE_tlsaudit"))
        .args(["tls", &target, "--format", "json"])
        .env("NO_COLOR", "1")
        .stdin(Stdio::null())
        .output()
        .expect("run tlsaudit");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    // No --fail-below: a finished audit exits 0 whatever the grade.
    assert!(out.status.success(), "{:?}: {stderr}", out.status);
    let json: serde_json::Value = serde_json::from_str(&stdout).expect("JSON");
    let audit = &json["audits"][0];
    assert_eq!(audit["kind"], "tls", "{stdout}");
    assert_eq!(audit["target"], target.as_str(), "{stdout}");
    assert_eq!(audit["rating"]["grade"], "T", "{stdout}");
    assert_eq!(
        audit["certificate"]["trust_error"], "self-signed",
        "{stdout}"
    );
    let findings = audit["findings"].as_array().expect("findings");
    assert!(
        findings
            .iter()
            .any(|f| f["id"] == "cert-self-signed" && f["cap"] == "T"),
        "{stdout}"
    );
}
