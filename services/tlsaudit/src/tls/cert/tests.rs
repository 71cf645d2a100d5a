//! Certificates made on the fly with the `openssl` CLI in a temporary directory: a test
//! CA (passed as an extra root), leaves it signs (RSA 2048/1024, EC P-256, SHA-1, an
//! expired one via `openssl ca -startdate/-enddate`, since OpenSSL 3.0's `x509` cannot
//! backdate), and a self-signed one.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, SystemTime};

use rustls_pki_types::CertificateDer;
use rustls_pki_types::pem::PemObject;

use super::{analyse, load_roots};
use crate::report::Severity;

const CNF: &str = "\
[req]
distinguished_name = dn
prompt = no
[dn]
CN = unused
[ca_ext]
basicConstraints = critical,CA:TRUE
keyUsage = critical,keyCertSign,cRLSign
subjectKeyIdentifier = hash
[leaf_ext]
basicConstraints = critical,CA:FALSE
keyUsage = critical,digitalSignature,keyEncipherment
extendedKeyUsage = serverAuth
subjectAltName = DNS:mail.example.test,DNS:*.web.example.test,IP:127.0.0.1
subjectKeyIdentifier = hash
[ca]
default_ca = testca
[testca]
database = index.txt
new_certs_dir = .
serial = serial
default_md = sha256
policy = anything
unique_subject = no
[anything]
commonName = optional
";

/// A temporary directory with a test CA in it.
pub(crate) struct Pki {
    dir: tempfile::TempDir,
}

impl Pki {
    pub(crate) fn new() -> Pki {
        let pki = Pki {
            dir: tempfile::tempdir().expect("tempdir"),
        };
        std::fs::write(pki.path("openssl.cnf"), CNF).unwrap();
        std::fs::write(pki.path("index.txt"), "").unwrap();
        std::fs::write(pki.path("serial"), "1000\n").unwrap();
        pki.openssl(&[
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-keyout",
            "ca.key",
            "-out",
            "ca.pem",
            "-subj",
            "/CN=Test CA",
            "-days",
            "30",
            "-extensions",
            "ca_ext",
        ]);
        pki
    }

    pub(crate) fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    fn openssl(&self, args: &[&str]) {
        let out = Command::new("openssl")
            .args(args)
            .current_dir(self.dir.path())
            .env("OPENSSL_CONF", self.path("openssl.cnf"))
            .output()
            .expect("run openssl");
        assert!(
            out.status.success(),
            "openssl {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    /// A key (`rsa:2048`, `ec`...) and a CSR for it.
    fn request(&self, name: &str, key: &str) -> String {
        let csr = format!("{name}.csr");
        let keyfile = format!("{name}.key");
        let mut args = vec!["req", "-new", "-nodes", "-subj", "/CN=leaf", "-keyout"];
        args.push(&keyfile);
        args.extend(["-out", &csr]);
        if key == "ec" {
            args.extend(["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256"]);
        } else {
            args.extend(["-newkey", key]);
        }
        self.openssl(&args);
        csr
    }

    /// A leaf signed by the CA, valid a week from now.
    pub(crate) fn leaf(&self, name: &str, key: &str, digest: &str) -> Vec<u8> {
        let csr = self.request(name, key);
        let out = format!("{name}.pem");
        let digest = format!("-{digest}");
        self.openssl(&[
            "x509",
            "-req",
            "-in",
            &csr,
            "-CA",
            "ca.pem",
            "-CAkey",
            "ca.key",
            "-set_serial",
            "7",
            "-days",
            "7",
            &digest,
            "-extfile",
            "openssl.cnf",
            "-extensions",
            "leaf_ext",
            "-out",
            &out,
        ]);
        der(&self.path(&out))
    }

    /// A leaf signed by the CA, valid only in January 2020.
    pub(crate) fn expired_leaf(&self) -> Vec<u8> {
        let csr = self.request("old", "rsa:2048");
        self.openssl(&[
            "ca",
            "-batch",
            "-config",
            "openssl.cnf",
            "-cert",
            "ca.pem",
            "-keyfile",
            "ca.key",
            "-in",
            &csr,
            "-out",
            "old.pem",
            "-notext",
            "-startdate",
            "20200101000000Z",
            "-enddate",
            "20200201000000Z",
            "-extensions",
            "leaf_ext",
        ]);
        der(&self.path("old.pem"))
    }

    pub(crate) fn self_signed(&self) -> Vec<u8> {
        self.openssl(&[
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-keyout",
            "self.key",
            "-out",
            "self.pem",
            "-subj",
            "/CN=mail.example.test",
            "-days",
            "7",
            "-extensions",
            "leaf_ext",
        ]);
        der(&self.path("self.pem"))
    }

    pub(crate) fn roots(&self) -> Vec<CertificateDer<'static>> {
        vec![CertificateDer::from(der(&self.path("ca.pem")))]
    }
}

fn der(pem: &Path) -> Vec<u8> {
    CertificateDer::from_pem_file(pem)
        .unwrap_or_else(|e| panic!("{}: {e}", pem.display()))
        .to_vec()
}

fn ids(findings: &[crate::report::Finding]) -> Vec<&str> {
    findings.iter().map(|f| f.id.as_str()).collect()
}

#[test]
fn ca_signed_rsa_2048_is_trusted_and_named() {
    let pki = Pki::new();
    let leaf = pki.leaf("good", "rsa:2048", "sha256");
    let (report, findings) = analyse(
        std::slice::from_ref(&leaf),
        "mail.example.test",
        &pki.roots(),
        true,
        SystemTime::now(),
    );
    assert!(report.trusted, "{report:?}");
    assert_eq!(report.trust_error, None);
    assert!(report.hostname_matches);
    assert!(!report.expired);
    assert_eq!(report.key, "RSA 2048");
    assert_eq!(report.key_bits, 2048);
    assert_eq!(report.signature_algorithm, "sha256WithRSAEncryption");
    assert_eq!(report.subject, "CN=leaf");
    assert_eq!(report.issuer, "CN=Test CA");
    assert_eq!(
        report.names,
        ["mail.example.test", "*.web.example.test", "127.0.0.1"]
    );
    assert_eq!(report.chain_length, 1);
    assert!(report.ocsp_stapled);
    // Valid a week: expiring within 30 days is the only finding.
    assert_eq!(ids(&findings), ["cert-expiring"]);
    assert_eq!(findings[0].severity, Severity::Medium);

    // Wildcards and IP addresses match too; other names do not.
    for (host, matches) in [
        ("a.web.example.test", true),
        ("127.0.0.1", true),
        ("web.example.test", false),
        ("127.0.0.2", false),
        ("other.example.test", false),
    ] {
        let (report, findings) = analyse(
            std::slice::from_ref(&leaf),
            host,
            &pki.roots(),
            true,
            SystemTime::now(),
        );
        assert_eq!(report.hostname_matches, matches, "{host}");
        assert_eq!(
            ids(&findings).contains(&"cert-name-mismatch"),
            !matches,
            "{host}"
        );
    }
}

#[test]
fn without_the_ca_the_issuer_is_unknown_and_the_chain_maybe_incomplete() {
    let pki = Pki::new();
    let leaf = pki.leaf("good", "rsa:2048", "sha256");
    let (report, findings) = analyse(&[leaf], "mail.example.test", &[], false, SystemTime::now());
    assert!(!report.trusted);
    assert_eq!(report.trust_error.as_deref(), Some("unknown issuer"));
    assert!(
        report.hostname_matches,
        "names are checked even when untrusted"
    );
    let ids = ids(&findings);
    for id in [
        "cert-untrusted",
        "cert-no-ocsp-stapling",
        "cert-chain-incomplete",
    ] {
        assert!(ids.contains(&id), "{id} missing from {ids:?}");
    }
}

#[test]
fn self_signed_is_untrusted() {
    let pki = Pki::new();
    let leaf = pki.self_signed();
    let (report, findings) = analyse(
        &[leaf],
        "mail.example.test",
        &pki.roots(),
        true,
        SystemTime::now(),
    );
    assert!(!report.trusted);
    assert_eq!(report.trust_error.as_deref(), Some("self-signed"));
    let untrusted = findings
        .iter()
        .find(|f| f.id == "cert-self-signed")
        .unwrap();
    assert_eq!(untrusted.severity, Severity::Critical);
    assert!(!ids(&findings).contains(&"cert-chain-incomplete"));
}

#[test]
fn expired_certificate() {
    let pki = Pki::new();
    let leaf = pki.expired_leaf();
    let (report, findings) = analyse(
        std::slice::from_ref(&leaf),
        "mail.example.test",
        &pki.roots(),
        true,
        SystemTime::now(),
    );
    assert!(report.expired);
    assert!(!report.trusted);
    assert_eq!(report.trust_error.as_deref(), Some("expired"));
    assert_eq!(report.not_before, "2020-01-01T00:00:00Z");
    assert_eq!(report.not_after, "2020-02-01T00:00:00Z");
    assert_eq!(ids(&findings), ["cert-expired"]);
    assert_eq!(findings[0].severity, Severity::Critical);

    // Within its validity the same chain is fine: only the date was wrong.
    let january = SystemTime::UNIX_EPOCH + Duration::from_secs(1_578_960_000); // 2020-01-14
    let (report, findings) = analyse(&[leaf], "mail.example.test", &pki.roots(), true, january);
    assert!(report.trusted, "{report:?}");
    assert!(ids(&findings).contains(&"cert-expiring"));
}

#[test]
fn expired_and_self_signed_names_the_issuer_problem() {
    let pki = Pki::new();
    let leaf = pki.self_signed();
    let later = SystemTime::now() + Duration::from_secs(30 * 86_400);
    let (report, findings) = analyse(&[leaf], "mail.example.test", &[], true, later);
    assert!(report.expired);
    assert_eq!(report.trust_error.as_deref(), Some("self-signed"));
    let ids = ids(&findings);
    assert!(
        ids.contains(&"cert-expired") && ids.contains(&"cert-self-signed"),
        "{ids:?}"
    );
}

#[test]
fn weak_rsa_key() {
    let pki = Pki::new();
    let leaf = pki.leaf("weak", "rsa:1024", "sha256");
    let (report, findings) = analyse(
        &[leaf],
        "mail.example.test",
        &pki.roots(),
        true,
        SystemTime::now(),
    );
    assert_eq!(report.key, "RSA 1024");
    assert_eq!(report.key_bits, 1024);
    // Signed by a 2048-bit CA with SHA-256: webpki accepts the chain.
    assert!(report.trusted, "{report:?}");
    let weak = findings.iter().find(|f| f.id == "cert-weak-key").unwrap();
    assert_eq!(weak.severity, Severity::High);
}

#[test]
fn ec_p256_key() {
    let pki = Pki::new();
    let leaf = pki.leaf("ec", "ec", "sha256");
    let (report, findings) = analyse(
        &[leaf],
        "mail.example.test",
        &pki.roots(),
        true,
        SystemTime::now(),
    );
    assert_eq!(report.key, "EC P-256");
    assert_eq!(report.key_bits, 256);
    assert!(report.trusted);
    assert!(!ids(&findings).contains(&"cert-weak-key"));
}

#[test]
fn sha1_signature_is_weak_and_untrusted() {
    let pki = Pki::new();
    let leaf = pki.leaf("sha1", "rsa:2048", "sha1");
    let (report, findings) = analyse(
        &[leaf],
        "mail.example.test",
        &pki.roots(),
        true,
        SystemTime::now(),
    );
    assert_eq!(report.signature_algorithm, "sha1WithRSAEncryption");
    assert!(!report.trusted);
    assert!(
        report
            .trust_error
            .as_deref()
            .unwrap()
            .contains("signature algorithm"),
        "{report:?}"
    );
    let ids = ids(&findings);
    assert!(
        ids.contains(&"cert-weak-signature") && ids.contains(&"cert-untrusted"),
        "{ids:?}"
    );
}

#[test]
fn no_or_garbage_certificate() {
    let (report, findings) = analyse(&[], "x.test", &[], false, SystemTime::now());
    assert!(!report.trusted);
    assert_eq!(ids(&findings), ["cert-unusable"]);
    let (report, findings) = analyse(&[b"junk".to_vec()], "x.test", &[], false, SystemTime::now());
    assert_eq!(report.chain_length, 1);
    assert_eq!(ids(&findings), ["cert-unusable"]);
}

#[test]
fn load_roots_adds_the_ca_file() {
    let pki = Pki::new();
    let system = load_roots(None).unwrap();
    let with_ca = load_roots(Some(&pki.path("ca.pem"))).unwrap();
    assert_eq!(with_ca.len(), system.len() + 1);
    assert_eq!(with_ca.last().unwrap().as_ref(), der(&pki.path("ca.pem")));

    std::fs::write(pki.path("empty.pem"), "").unwrap();
    let error = load_roots(Some(&pki.path("empty.pem"))).unwrap_err();
    assert!(
        format!("{error:#}").contains("holds no certificate"),
        "{error:#}"
    );
    assert!(load_roots(Some(&pki.path("missing.pem"))).is_err());
}
