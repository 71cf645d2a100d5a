//! Judges the certificate chain a server sent: what the leaf says (x509-parser), whether
//! the chain leads to a trusted root and is valid now (rustls-webpki, the verifier
//! rustls itself uses, so the answer is the one a rustls client would get), whether it
//! names the host, and what is weak about it.
//!
//! Trust and time are judged separately: webpki stops at the first error and checks
//! validity dates before it looks for an issuer, so an expired self-signed certificate
//! would only say "expired". When the verdict at `now` is about time, the chain is
//! verified again at an instant inside the leaf's validity to learn whether the issuer
//! is trusted as well; [`CertificateReport::trust_error`] names the trust problem first.

use std::path::Path;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::Context;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, ServerName, SignatureVerificationAlgorithm, UnixTime};
use webpki::{EndEntityCert, KeyUsage};
use x509_parser::certificate::X509Certificate;
use x509_parser::extensions::GeneralName;
use x509_parser::objects::{oid_registry, oid2sn};
use x509_parser::prelude::FromDer;
use x509_parser::public_key::{PublicKey, RSAPublicKey};

use crate::report::{CertificateReport, Finding, Severity};

/// A certificate expiring within this many days is reported.
pub const EXPIRY_WARNING_DAYS: u64 = 30;

/// Signature algorithms a rustls (ring) client accepts: the same list rustls' ring
/// provider verifies with. SHA-1 and MD5 are deliberately absent, so such chains are
/// untrusted, as in browsers.
static SIGNATURE_ALGORITHMS: &[&dyn SignatureVerificationAlgorithm] = &[
    webpki::ring::ECDSA_P256_SHA256,
    webpki::ring::ECDSA_P256_SHA384,
    webpki::ring::ECDSA_P384_SHA256,
    webpki::ring::ECDSA_P384_SHA384,
    webpki::ring::ED25519,
    webpki::ring::RSA_PKCS1_2048_8192_SHA256,
    webpki::ring::RSA_PKCS1_2048_8192_SHA384,
    webpki::ring::RSA_PKCS1_2048_8192_SHA512,
    webpki::ring::RSA_PKCS1_3072_8192_SHA384,
    webpki::ring::RSA_PSS_2048_8192_SHA256_LEGACY_KEY,
    webpki::ring::RSA_PSS_2048_8192_SHA384_LEGACY_KEY,
    webpki::ring::RSA_PSS_2048_8192_SHA512_LEGACY_KEY,
];

/// The system's trust anchors (rustls-native-certs: `SSL_CERT_FILE`/`SSL_CERT_DIR` or
/// the distribution's bundle) plus every certificate in the PEM file `ca_file`.
///
/// Unreadable system certificates are skipped (native-certs reports them one by one);
/// an unreadable or empty `ca_file` is an error, since the operator asked for it.
pub fn load_roots(ca_file: Option<&Path>) -> anyhow::Result<Vec<CertificateDer<'static>>> {
    let native = rustls_native_certs::load_native_certs();
    for error in &native.errors {
        tracing::debug!("system trust store: {error}");
    }
    let mut roots = native.certs;
    if let Some(path) = ca_file {
        let before = roots.len();
        let certs = CertificateDer::pem_file_iter(path)
            .with_context(|| format!("read CA file {}", path.display()))?;
        for cert in certs {
            roots.push(cert.with_context(|| format!("parse CA file {}", path.display()))?);
        }
        if roots.len() == before {
            anyhow::bail!("CA file {} holds no certificate", path.display());
        }
    }
    Ok(roots)
}

/// What the leaf certificate says, before judgement.
struct Leaf {
    subject: String,
    issuer: String,
    self_issued: bool,
    names: Vec<String>,
    not_before: i64,
    not_after: i64,
    key: String,
    key_bits: u32,
    /// Kind of key for strength rules: RSA/DSA sizes compare to 2048, EC to 256.
    key_kind: KeyKind,
    signature_algorithm: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum KeyKind {
    Rsa,
    Dsa,
    Ec,
    Other,
}

/// Judges `chain` (DER, leaf first, as sent) for `host` (a DNS name or an IP address)
/// at `now`, trusting the system roots passed in `extra_roots` (see [`load_roots`]).
///
/// An empty or unparsable chain gives a report saying so (untrusted, no names) and a
/// critical finding rather than an error: the server did send something unusable.
pub fn analyse(
    chain: &[Vec<u8>],
    host: &str,
    extra_roots: &[CertificateDer<'static>],
    ocsp_stapled: bool,
    now: SystemTime,
) -> (CertificateReport, Vec<Finding>) {
    let leaf = match chain.first().map(|der| parse_leaf(der)) {
        Some(Ok(leaf)) => leaf,
        Some(Err(error)) => return unusable(chain.len(), ocsp_stapled, &error),
        None => return unusable(0, ocsp_stapled, "the server sent no certificate"),
    };
    let now_secs = unix_secs(now);

    let der = CertificateDer::from(chain[0].as_slice());
    let intermediates: Vec<CertificateDer<'_>> = chain[1..]
        .iter()
        .map(|c| CertificateDer::from(c.as_slice()))
        .collect();
    let anchors: Vec<_> = extra_roots
        .iter()
        .filter_map(|root| webpki::anchor_from_trusted_cert(root).ok())
        .collect();

    let (trust_error, hostname_matches) = match EndEntityCert::try_from(&der) {
        Ok(ee) => {
            let verify = |at: i64| {
                let time = UnixTime::since_unix_epoch(Duration::from_secs(at.max(0) as u64));
                ee.verify_for_usage(
                    SIGNATURE_ALGORITHMS,
                    &anchors,
                    &intermediates,
                    time,
                    KeyUsage::server_auth(),
                    None,
                    None,
                )
                .map(|_| ())
            };
            let trust_error = match verify(now_secs) {
                Ok(()) => None,
                Err(
                    e @ (webpki::Error::CertExpired { .. } | webpki::Error::CertNotValidYet { .. }),
                ) => {
                    // Would the chain be trusted when the leaf is valid? (Intermediates
                    // may still be out of their validity then: that is reported too.)
                    let inside = leaf.not_before + (leaf.not_after - leaf.not_before) / 2;
                    match verify(inside) {
                        Ok(()) => Some(describe(&e, &leaf)),
                        Err(other) => Some(describe(&other, &leaf)),
                    }
                }
                Err(e) => Some(describe(&e, &leaf)),
            };
            let matches = ServerName::try_from(host)
                .is_ok_and(|name| ee.verify_is_valid_for_subject_name(&name).is_ok());
            (trust_error, matches)
        }
        Err(e) => (Some(format!("unusable certificate ({e})")), false),
    };

    let expired = now_secs > leaf.not_after;
    let not_yet_valid = now_secs < leaf.not_before;
    let report = CertificateReport {
        subject: leaf.subject.clone(),
        issuer: leaf.issuer.clone(),
        names: leaf.names.clone(),
        not_before: format_time(leaf.not_before),
        not_after: format_time(leaf.not_after),
        key: leaf.key.clone(),
        key_bits: leaf.key_bits,
        signature_algorithm: leaf.signature_algorithm.clone(),
        chain_length: chain.len(),
        trusted: trust_error.is_none(),
        trust_error: trust_error.clone(),
        expired,
        hostname_matches,
        ocsp_stapled,
    };

    let mut findings = Vec::new();
    if expired {
        findings.push(finding(
            "cert-expired",
            Severity::Critical,
            format!("Certificate expired on {}", report.not_after),
            "Clients refuse an expired certificate; SSL Labs treats it as not trusted (grade T)."
                .into(),
            "Renew the certificate (e.g. certbot renew) and reload the server.",
        ));
    } else if not_yet_valid {
        findings.push(finding(
            "cert-not-yet-valid",
            Severity::Critical,
            format!("Certificate not valid before {}", report.not_before),
            "Clients refuse a certificate before its notBefore date: check the issuing \
             host's clock, or wait."
                .into(),
            "Install a certificate valid now; check the clocks of the server and the CA.",
        ));
    } else {
        let left = (leaf.not_after - now_secs) / 86_400;
        if left < EXPIRY_WARNING_DAYS as i64 {
            findings.push(finding(
                "cert-expiring",
                Severity::Medium,
                format!("Certificate expires in {left} days ({})", report.not_after),
                format!(
                    "Less than {EXPIRY_WARNING_DAYS} days of validity left; automated \
                     renewal (ACME) normally renews 30 days ahead, so it may be failing."
                ),
                "Renew now and check that automatic renewal runs.",
            ));
        }
    }
    if let Some(error) = &trust_error {
        // Time problems have their own finding above; report trust only when the issuer
        // (or something other than dates) is the problem.
        if !matches!(error.as_str(), "expired" | "not yet valid") {
            let id = if error == "self-signed" {
                "cert-self-signed"
            } else {
                "cert-untrusted"
            };
            findings.push(finding(
                id,
                Severity::Critical,
                format!("Certificate not trusted: {error}"),
                format!(
                    "The chain does not verify against the system trust store{} for \
                     server authentication ({error}); clients refuse it or ask the user \
                     to click through, and an active attacker can impersonate the server. \
                     SSL Labs grades this T.",
                    if extra_roots.is_empty() {
                        ""
                    } else {
                        " and the extra CAs"
                    }
                ),
                "Use a certificate from a public CA (e.g. Let's Encrypt) and send its \
                 intermediates with it (fullchain.pem).",
            ));
        }
    }
    if !hostname_matches {
        findings.push(finding(
            "cert-name-mismatch",
            Severity::Critical,
            format!("Certificate does not name {host}"),
            format!(
                "{host} is not among the certificate's subjectAltName entries ({}); clients \
                 refuse it. SSL Labs grades this M.",
                if report.names.is_empty() {
                    "none".to_string()
                } else {
                    report.names.join(", ")
                }
            ),
            "Issue a certificate whose subjectAltName includes the name clients connect to.",
        ));
    }
    let weak_key = match leaf.key_kind {
        KeyKind::Rsa | KeyKind::Dsa => leaf.key_bits < 2048,
        KeyKind::Ec => leaf.key_bits < 256,
        KeyKind::Other => false,
    };
    if weak_key {
        findings.push(finding(
            "cert-weak-key",
            Severity::High,
            format!("Weak certificate key: {}", leaf.key),
            "RSA keys below 2048 bits and EC keys below 256 bits are below the CA/Browser \
             Forum baseline (and NIST SP 800-131A); SSL Labs caps such servers at B, and \
             gives F below 1024 bits."
                .into(),
            "Issue a new certificate with an RSA 2048+ or EC P-256 key.",
        ));
    }
    let sig = leaf.signature_algorithm.to_ascii_lowercase();
    if sig.contains("md5") || sig.contains("sha1") || sig.contains("sha-1") {
        let hash = if sig.contains("md5") { "MD5" } else { "SHA-1" };
        findings.push(finding(
            "cert-weak-signature",
            Severity::High,
            format!(
                "Certificate signed with {hash} ({})",
                leaf.signature_algorithm
            ),
            format!(
                "{hash} collisions are practical; browsers and rustls reject {hash}-signed \
                 certificates. SSL Labs gives F for MD5 and treats SHA-1 as not trusted."
            ),
            "Reissue the certificate with a SHA-256 signature.",
        ));
    }
    if !ocsp_stapled {
        findings.push(finding(
            "cert-no-ocsp-stapling",
            Severity::Low,
            "No OCSP stapling".into(),
            "The server does not staple an OCSP response, so clients that check \
             revocation ask the CA themselves (slower, leaks the visit). Note that some \
             CAs (Let's Encrypt since 2025) no longer run OCSP at all."
                .into(),
            "Enable stapling (nginx: ssl_stapling on; ssl_stapling_verify on;) if the CA \
             offers OCSP.",
        ));
    }
    if report.trust_error.as_deref() == Some("unknown issuer") && !chain_ends_in_root(chain) {
        findings.push(finding(
            "cert-chain-incomplete",
            Severity::Medium,
            "Certificate chain may be incomplete".into(),
            format!(
                "The last certificate sent is issued by \"{}\", which the server did not \
                 send and the trust store does not hold: either an intermediate is \
                 missing (clients without it cached fail; SSL Labs caps at B) or the \
                 issuing CA is private.",
                last_issuer(chain).unwrap_or_else(|| leaf.issuer.clone())
            ),
            "Serve the full chain (leaf then intermediates, e.g. fullchain.pem).",
        ));
    }
    (report, findings)
}

fn finding(id: &str, severity: Severity, title: String, detail: String, fix: &str) -> Finding {
    Finding {
        id: id.into(),
        severity,
        title,
        detail,
        score_delta: 0,
        cap: None,
        fix: Some(fix.into()),
    }
}

/// The report and finding for a chain that could not be read at all.
fn unusable(
    chain_length: usize,
    ocsp_stapled: bool,
    why: &str,
) -> (CertificateReport, Vec<Finding>) {
    let report = CertificateReport {
        subject: String::new(),
        issuer: String::new(),
        names: Vec::new(),
        not_before: String::new(),
        not_after: String::new(),
        key: String::new(),
        key_bits: 0,
        signature_algorithm: String::new(),
        chain_length,
        trusted: false,
        trust_error: Some(why.to_string()),
        expired: false,
        hostname_matches: false,
        ocsp_stapled,
    };
    let finding = finding(
        "cert-unusable",
        Severity::Critical,
        "No usable certificate".into(),
        format!("The server's certificate could not be used: {why}."),
        "Configure a valid certificate and key.",
    );
    (report, vec![finding])
}

fn parse_leaf(der: &[u8]) -> Result<Leaf, String> {
    let (_, cert) = X509Certificate::from_der(der)
        .map_err(|e| format!("the leaf certificate does not parse ({e})"))?;
    let registry = oid_registry();
    let subject = cert.subject().to_string();
    let issuer = cert.issuer().to_string();
    let self_issued = cert.subject().as_raw() == cert.issuer().as_raw();
    let mut names = Vec::new();
    if let Ok(Some(san)) = cert.subject_alternative_name() {
        for name in &san.value.general_names {
            match name {
                GeneralName::DNSName(dns) => names.push(dns.to_string()),
                GeneralName::IPAddress(bytes) => {
                    if let Some(ip) = ip_from_bytes(bytes) {
                        names.push(ip.to_string());
                    }
                }
                _ => {}
            }
        }
    }
    let validity = cert.validity();
    let spki = cert.public_key();
    let alg = spki.algorithm.algorithm.to_id_string();
    let (key, key_bits, key_kind) = match spki.parsed() {
        Ok(PublicKey::RSA(rsa)) => {
            let bits = modulus_bits(rsa.modulus);
            (format!("RSA {bits}"), bits, KeyKind::Rsa)
        }
        Ok(PublicKey::EC(point)) => {
            let curve = spki
                .algorithm
                .parameters
                .as_ref()
                .and_then(|p| p.as_oid().ok())
                .map(|oid| oid.to_id_string());
            let (name, bits) = match curve.as_deref() {
                Some("1.2.840.10045.3.1.7") => ("P-256".to_string(), 256),
                Some("1.3.132.0.34") => ("P-384".to_string(), 384),
                Some("1.3.132.0.35") => ("P-521".to_string(), 521),
                Some("1.3.132.0.33") => ("P-224".to_string(), 224),
                Some("1.2.840.10045.3.1.1") => ("P-192".to_string(), 192),
                Some(other) => {
                    let bits = point.key_size() as u32;
                    (other.to_string(), bits)
                }
                None => ("unknown curve".to_string(), point.key_size() as u32),
            };
            (format!("EC {name}"), bits, KeyKind::Ec)
        }
        Ok(PublicKey::DSA(y)) => {
            let bits = modulus_bits(y);
            (format!("DSA {bits}"), bits, KeyKind::Dsa)
        }
        _ if alg == "1.3.101.112" => ("Ed25519".to_string(), 256, KeyKind::Ec),
        _ if alg == "1.3.101.113" => ("Ed448".to_string(), 456, KeyKind::Ec),
        // RSASSA-PSS keys carry an ordinary RSAPublicKey.
        _ if alg == "1.2.840.113549.1.1.10" => {
            match RSAPublicKey::from_der(&spki.subject_public_key.data) {
                Ok((_, rsa)) => {
                    let bits = modulus_bits(rsa.modulus);
                    (format!("RSA-PSS {bits}"), bits, KeyKind::Rsa)
                }
                Err(_) => ("RSA-PSS".to_string(), 0, KeyKind::Other),
            }
        }
        _ => (
            oid2sn(&spki.algorithm.algorithm, registry)
                .map(str::to_string)
                .unwrap_or(alg.clone()),
            0,
            KeyKind::Other,
        ),
    };
    let signature_algorithm = oid2sn(&cert.signature_algorithm.algorithm, registry)
        .map(str::to_string)
        .unwrap_or_else(|_| cert.signature_algorithm.algorithm.to_id_string());
    Ok(Leaf {
        subject,
        issuer,
        self_issued,
        names,
        not_before: validity.not_before.timestamp(),
        not_after: validity.not_after.timestamp(),
        key,
        key_bits,
        key_kind,
        signature_algorithm,
    })
}

/// Bits of a big-endian unsigned integer (leading zero bytes and bits skipped):
/// x509-parser's own `key_size` counts bytes and misreads moduli without a sign byte.
fn modulus_bits(bytes: &[u8]) -> u32 {
    let bytes = match bytes.iter().position(|&b| b != 0) {
        Some(first) => &bytes[first..],
        None => return 0,
    };
    bytes.len() as u32 * 8 - bytes[0].leading_zeros()
}

fn ip_from_bytes(bytes: &[u8]) -> Option<std::net::IpAddr> {
    match bytes.len() {
        4 => Some(<[u8; 4]>::try_from(bytes).ok()?.into()),
        16 => Some(<[u8; 16]>::try_from(bytes).ok()?.into()),
        _ => None,
    }
}

/// The text of a webpki error, in the words of [`CertificateReport::trust_error`].
fn describe(error: &webpki::Error, leaf: &Leaf) -> String {
    use webpki::Error as E;
    match error {
        E::UnknownIssuer if leaf.self_issued => "self-signed".into(),
        E::UnknownIssuer => "unknown issuer".into(),
        E::CertExpired { .. } => "expired".into(),
        E::CertNotValidYet { .. } => "not yet valid".into(),
        E::InvalidSignatureForPublicKey => "bad signature".into(),
        E::UnsupportedSignatureAlgorithmContext(_)
        | E::UnsupportedSignatureAlgorithmForPublicKeyContext(_) => {
            "unsupported or weak signature algorithm (e.g. SHA-1, MD5, RSA < 2048)".into()
        }
        E::CaUsedAsEndEntity => "a CA certificate used as the server certificate".into(),
        E::EndEntityUsedAsCa => "an end-entity certificate used as a CA".into(),
        E::RequiredEkuNotFoundContext(_) => {
            "not valid for server authentication (extendedKeyUsage)".into()
        }
        E::CertRevoked => "revoked".into(),
        E::NameConstraintViolation => "violates the issuer's name constraints".into(),
        E::PathLenConstraintViolated => "violates a path length constraint".into(),
        E::BadDer | E::BadDerTime => "malformed certificate".into(),
        other => format!("{other}"),
    }
}

/// Whether the last certificate sent is self-issued (a root, needed or not).
fn chain_ends_in_root(chain: &[Vec<u8>]) -> bool {
    chain
        .last()
        .and_then(|der| X509Certificate::from_der(der).ok())
        .is_some_and(|(_, c)| c.subject().as_raw() == c.issuer().as_raw())
}

fn last_issuer(chain: &[Vec<u8>]) -> Option<String> {
    let (_, cert) = X509Certificate::from_der(chain.last()?).ok()?;
    Some(cert.issuer().to_string())
}

fn unix_secs(time: SystemTime) -> i64 {
    match time.duration_since(UNIX_EPOCH) {
        Ok(after) => after.as_secs() as i64,
        Err(before) => -(before.duration().as_secs() as i64),
    }
}

/// RFC 3339 in UTC, e.g. `2026-01-31T12:00:00Z`.
fn format_time(secs: i64) -> String {
    chrono::DateTime::from_timestamp(secs, 0)
        .map(|t| t.format("%Y-%m-%dT%H:%M:%SZ").to_string())
        .unwrap_or_else(|| secs.to_string())
}

#[cfg(test)]
pub(crate) mod tests;
