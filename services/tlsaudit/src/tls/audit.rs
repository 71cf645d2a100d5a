//! One TLS audit: probe the server, judge its certificate, grade it, and explain.
//!
//! [`audit`] does the I/O (the probe, the trust store) and hands everything to
//! [`assemble`], which is pure and unit-tested. Findings come from three places, the
//! protocol and suite list (here), the certificate ([`cert::analyse`]) and the grade caps
//! ([`rating::rate`]); a cap that explains a problem already reported is folded into
//! that finding (its `cap` set, the rule appended) so each problem is listed once.

use std::cmp::Reverse;
use std::time::{Instant, SystemTime};

use rustls_pki_types::CertificateDer;

use super::rating::{is_64bit_block, is_aead, is_anonymous, is_cbc, is_export, is_null};
use super::{Options, Probe, cert, rating};
use crate::report::{Cipher, Finding, Protocol, Severity, TlsAudit};

/// Probes `options.target`, loads the trust store (system roots plus
/// `options.ca_file`) and assembles the audit. Fails when the probe fails (unreachable,
/// STARTTLS refused, not TLS) or the CA file cannot be read.
pub fn audit(options: &Options) -> anyhow::Result<TlsAudit> {
    let started = Instant::now();
    let probe = super::probe(options)?;
    let roots = cert::load_roots(options.ca_file.as_deref())?;
    let seconds = started.elapsed().as_secs_f64();
    Ok(assemble(options, probe, &roots, SystemTime::now(), seconds))
}

/// Judges what `probe` found, the certificate against `roots` at `now`, for the name
/// `options.sni` or else the host of `options.target`.
pub fn assemble(
    options: &Options,
    probe: Probe,
    roots: &[CertificateDer<'static>],
    now: SystemTime,
    seconds: f64,
) -> TlsAudit {
    let host = options
        .sni
        .clone()
        .unwrap_or_else(|| host_of(&options.target));
    let spoke_tls = probe.protocols.iter().any(|p| p.accepted);
    let (certificate, cert_findings) = if probe.chain.is_empty() && !spoke_tls {
        (None, Vec::new())
    } else {
        let (report, findings) = cert::analyse(&probe.chain, &host, roots, probe.ocsp_stapled, now);
        (Some(report), findings)
    };
    let (rating, caps) = rating::rate(
        &probe.protocols,
        &probe.groups,
        probe.dh_bits,
        certificate.as_ref(),
    );

    let mut findings = protocol_findings(&probe);
    findings.extend(cert_findings);
    fold_caps(&mut findings, caps);
    // Worst first; the sort is stable, so related findings stay together.
    findings.sort_by_key(|f| Reverse(f.severity));

    TlsAudit {
        target: options.target.clone(),
        starttls: options.starttls.clone(),
        protocols: probe.protocols,
        groups: probe.groups,
        certificate,
        rating,
        findings,
        seconds,
    }
}

/// The host part of `host:port`, `[v6]:port`, or a bare host.
fn host_of(target: &str) -> String {
    if let Some((host, _)) = target.strip_prefix('[').and_then(|r| r.split_once(']')) {
        return host.to_string();
    }
    match target.rsplit_once(':') {
        Some((host, port)) if !host.contains(':') && port.parse::<u16>().is_ok() => host.into(),
        _ => target.into(),
    }
}

/// For each rating cap, the findings that already describe its cause (first present wins).
const CAP_CAUSES: &[(&str, &[&str])] = &[
    ("rating-ssl3", &["ssl3-enabled"]),
    ("rating-tls10-tls11", &["tls10-enabled", "tls11-enabled"]),
    ("rating-rc4", &["rc4-suites"]),
    ("rating-64bit-block", &["64bit-block-suites"]),
    ("rating-export", &["export-suites"]),
    ("rating-anonymous", &["anon-suites"]),
    ("rating-null-cipher", &["null-suites"]),
    (
        "rating-no-forward-secrecy",
        &["no-forward-secrecy", "rsa-key-exchange"],
    ),
    ("rating-no-aead", &["cbc-only"]),
    ("rating-weak-dh", &["weak-dh"]),
    ("rating-weak-key", &["cert-weak-key"]),
    ("rating-md5-signature", &["cert-weak-signature"]),
    (
        "rating-untrusted",
        &[
            "cert-self-signed",
            "cert-untrusted",
            "cert-expired",
            "cert-not-yet-valid",
            "cert-unusable",
        ],
    ),
    ("rating-name-mismatch", &["cert-name-mismatch"]),
];

/// Folds each cap into the finding about its cause, or keeps it as a finding of its own.
fn fold_caps(findings: &mut Vec<Finding>, caps: Vec<Finding>) {
    for cap in caps {
        let causes = CAP_CAUSES
            .iter()
            .find(|(id, _)| *id == cap.id)
            .map_or(&[][..], |(_, causes)| *causes);
        let target = causes
            .iter()
            .find_map(|cause| findings.iter().position(|f| f.id == *cause));
        match target {
            Some(i) if findings[i].cap.is_none() => {
                let f = &mut findings[i];
                f.cap = cap.cap;
                f.severity = f.severity.max(cap.severity);
                f.detail = format!("{} {}: {}", f.detail, cap.title, cap.detail);
            }
            _ => findings.push(cap),
        }
    }
}

fn finding(id: &str, severity: Severity, title: String, detail: &str, fix: &str) -> Finding {
    Finding {
        id: id.into(),
        severity,
        title,
        detail: detail.into(),
        score_delta: 0,
        cap: None,
        fix: Some(fix.into()),
    }
}

const PROTOCOLS_FIX: &str = "Accept TLS 1.2 and 1.3 only (nginx: ssl_protocols TLSv1.2 \
                             TLSv1.3; postfix: smtpd_tls_protocols = >=TLSv1.2, and \
                             smtpd_tls_mandatory_protocols likewise).";
const CIPHERS_FIX: &str = "Use the Mozilla \"intermediate\" suite list: ECDHE with AES-GCM \
                           or ChaCha20-Poly1305 (nginx: ssl_ciphers; postfix: \
                           tls_high_cipherlist and smtpd_tls_mandatory_ciphers = high).";

/// A kind of weak suite: finding id, severity, title, why, which suites.
type WeakSuites = (
    &'static str,
    Severity,
    &'static str,
    &'static str,
    fn(&Cipher) -> bool,
);

/// Findings about protocols and suites.
fn protocol_findings(probe: &Probe) -> Vec<Finding> {
    let accepted: Vec<_> = probe.protocols.iter().filter(|p| p.accepted).collect();
    let has = |p: Protocol| accepted.iter().any(|r| r.protocol == p);
    let suites: Vec<(Protocol, &Cipher)> = accepted
        .iter()
        .flat_map(|p| p.ciphers.iter().map(move |c| (p.protocol, c)))
        .collect();
    let names = |pick: &dyn Fn(Protocol, &Cipher) -> bool| -> String {
        let mut names: Vec<&str> = suites
            .iter()
            .filter(|(p, c)| pick(*p, c))
            .map(|(_, c)| c.name.as_str())
            .collect();
        names.sort_unstable();
        names.dedup();
        names.join(", ")
    };
    let mut out = Vec::new();

    if has(Protocol::Ssl3) {
        out.push(finding(
            "ssl3-enabled",
            Severity::High,
            "SSLv3 accepted".into(),
            "SSL 3.0 is broken (POODLE) and prohibited by RFC 7568.",
            PROTOCOLS_FIX,
        ));
    }
    for (protocol, id) in [
        (Protocol::Tls10, "tls10-enabled"),
        (Protocol::Tls11, "tls11-enabled"),
    ] {
        if has(protocol) {
            out.push(finding(
                id,
                Severity::Medium,
                format!("{} accepted", protocol.name()),
                "TLS 1.0 and 1.1 are deprecated by RFC 8996 (SHA-1/MD5 handshake, CBC \
                 only) and disabled in every current browser; mail clients older than about \
                 2014 may still need them.",
                PROTOCOLS_FIX,
            ));
        }
    }
    if !accepted.is_empty() && !has(Protocol::Tls13) {
        out.push(finding(
            "tls13-missing",
            Severity::Info,
            "TLS 1.3 not supported".into(),
            "TLS 1.3 (RFC 8446) has a faster handshake and only strong suites.",
            "Enable TLS 1.3 (OpenSSL 1.1.1+: nginx ssl_protocols TLSv1.2 TLSv1.3).",
        ));
    }

    if !suites.is_empty() {
        let with_fs = suites.iter().filter(|(_, c)| c.forward_secrecy).count();
        if with_fs == 0 {
            out.push(finding(
                "no-forward-secrecy",
                Severity::High,
                "No forward secrecy".into(),
                "No accepted suite uses an ephemeral key exchange (ECDHE/DHE): whoever \
                 obtains the server key later can decrypt recorded traffic.",
                CIPHERS_FIX,
            ));
        } else if with_fs < suites.len() {
            out.push(finding(
                "rsa-key-exchange",
                Severity::Low,
                "Suites without forward secrecy accepted".into(),
                &format!(
                    "Static key exchange: {}. Clients choosing them lose forward secrecy.",
                    names(&|_, c| !c.forward_secrecy)
                ),
                CIPHERS_FIX,
            ));
        }
        if !suites.iter().any(|(p, c)| is_aead(*p, &c.name)) {
            out.push(finding(
                "cbc-only",
                Severity::Medium,
                "No AEAD suites (CBC only)".into(),
                "Without AES-GCM or ChaCha20-Poly1305 every connection uses CBC \
                 (MAC-then-encrypt: Lucky13, padding oracles) or a stream cipher.",
                CIPHERS_FIX,
            ));
        }
    }
    let weak_suites: [WeakSuites; 5] = [
        (
            "null-suites",
            Severity::Critical,
            "NULL (unencrypted) suites accepted",
            "These suites send data in clear text.",
            is_null,
        ),
        (
            "export-suites",
            Severity::Critical,
            "EXPORT suites accepted",
            "Export-grade suites (40/56-bit) are broken in minutes (FREAK, Logjam).",
            |c| is_export(&c.name),
        ),
        (
            "anon-suites",
            Severity::Critical,
            "Anonymous suites accepted",
            "Anonymous key exchange authenticates nobody: any man in the middle wins.",
            |c| is_anonymous(&c.name),
        ),
        (
            "rc4-suites",
            Severity::High,
            "RC4 suites accepted",
            "RC4 has exploitable biases and is prohibited by RFC 7465.",
            |c| c.name.contains("RC4"),
        ),
        (
            "64bit-block-suites",
            Severity::Medium,
            "64-bit block cipher suites (3DES, DES, IDEA) accepted",
            "64-bit blocks allow plaintext recovery on long connections (Sweet32, \
             CVE-2016-2183).",
            |c| is_64bit_block(&c.name),
        ),
    ];
    for (id, severity, title, why, pick) in weak_suites {
        if suites.iter().any(|(_, c)| pick(c)) {
            out.push(finding(
                id,
                severity,
                title.into(),
                &format!("{why} Accepted: {}.", names(&|_, c| pick(c))),
                CIPHERS_FIX,
            ));
        }
    }
    if let Some(bits) = probe.dh_bits.filter(|b| *b < 2048) {
        out.push(finding(
            "weak-dh",
            if bits < 1024 {
                Severity::High
            } else {
                Severity::Medium
            },
            format!("Weak DH parameters ({bits} bits)"),
            "DHE with parameters below 2048 bits is within reach of well-funded attackers \
             (Logjam; RFC 7919 groups start at 2048).",
            "Use 2048-bit or larger DH parameters (or ffdhe groups), or only ECDHE.",
        ));
    }

    // Server preference matters only where the client could pick a weak suite.
    let weak = |p: Protocol, c: &Cipher| {
        !c.forward_secrecy
            || !is_aead(p, &c.name)
            || is_64bit_block(&c.name)
            || c.name.contains("RC4")
            || is_cbc(&c.name)
    };
    let client_picks: Vec<&str> = accepted
        .iter()
        .filter(|p| {
            p.server_order == Some(false)
                && p.ciphers.iter().any(|c| weak(p.protocol, c))
                && p.ciphers.iter().any(|c| !weak(p.protocol, c))
        })
        .map(|p| p.protocol.name())
        .collect();
    if !client_picks.is_empty() {
        out.push(finding(
            "server-order-not-set",
            Severity::Low,
            "Server does not enforce its suite order".into(),
            &format!(
                "With {} the client chooses, and it may choose one of the weaker suites \
                 the server also accepts.",
                client_picks.join(", ")
            ),
            "Enforce the server's order (nginx: ssl_prefer_server_ciphers on; postfix: \
             tls_preempt_cipherlist = yes), or drop the weaker suites.",
        ));
    }
    out
}

#[cfg(test)]
mod tests;
