//! The SSL Labs grade: the numeric method of the *SSL Server Rating Guide* (version
//! 2009q, <https://github.com/ssllabs/research/wiki/SSL-Server-Rating-Guide>) and the
//! grade caps SSL Labs added later in its announcements (cited at each rule below).
//!
//! Method (guide, "Methodology Overview"): three category scores (protocol support, key
//! exchange, cipher strength), each the average of the best and the worst thing the
//! server accepts; the weighted sum 0.3 / 0.3 / 0.4 (guide, "Combining the category
//! scores"), zero if any category is zero; a letter by Table 1; then rules that cap the
//! letter, and the out-of-scope grades T (not trusted) and M (name mismatch).
//!
//! What SSL Labs learns from 60+ simulated browser handshakes ("not penalised if never
//! negotiated with clients that can do better") is approximated from the server's
//! preference order: see [`modern_choice`].
//!
//! Not done here: A+ (needs HSTS, which the header audit sees, and TLS_FALLBACK_SCSV) and
//! A- (its warnings, e.g. no secure renegotiation, are not probed); ROBOT, Heartbleed,
//! POODLE-TLS and other vulnerability caps (not probed).

use crate::report::{
    CertificateReport, Cipher, Finding, Protocol, ProtocolResult, Rating, Severity,
};

const GUIDE: &str = "SSL Labs SSL Server Rating Guide";

/// Guide, Table 2 "Protocol support rating guide" (TLS 1.3 added in 2009q at 100%).
fn protocol_percent(protocol: Protocol) -> u32 {
    match protocol {
        // SSL 2.0 would be 0%: not probed.
        Protocol::Ssl3 => 80,
        Protocol::Tls10 => 90,
        Protocol::Tls11 => 95,
        Protocol::Tls12 | Protocol::Tls13 => 100,
    }
}

/// Strength of one key exchange, as guide Table 3 "Key exchange rating guide" sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum KexStrength {
    /// Anonymous key exchange (no authentication): 0%.
    Anonymous,
    /// Exportable key exchange (limited to 512 bits): 40%.
    Export,
    /// RSA-equivalent bits: the weaker of the certificate key and the ephemeral key.
    Bits(u32),
}

impl KexStrength {
    /// Guide Table 3.
    fn percent(self) -> u32 {
        match self {
            KexStrength::Anonymous => 0,
            KexStrength::Export => 40,
            KexStrength::Bits(b) if b < 512 => 20,
            KexStrength::Bits(b) if b < 1024 => 40,
            KexStrength::Bits(b) if b < 2048 => 80,
            KexStrength::Bits(b) if b < 4096 => 90,
            KexStrength::Bits(_) => 100,
        }
    }
}

/// RSA-equivalent strength of an elliptic-curve (or EdDSA) key of `ec_bits`, by the
/// comparable-strength table of NIST SP 800-57 Part 1 (Table 2): EC 160-223 ≈ RSA 1024,
/// 224-255 ≈ 2048, 256-383 ≈ 3072, 384-511 ≈ 7680, 512+ ≈ 15360. The guide's Table 3
/// speaks of RSA/DH sizes only; this is how EC keys are placed on it, so P-256 and
/// X25519 (≈ 3072) score 90% and P-384 (≈ 7680) 100%.
pub fn ec_to_rsa_bits(ec_bits: u32) -> u32 {
    match ec_bits {
        0..160 => ec_bits * 6, // toy curves: below 1024, weak either way
        160..224 => 1024,
        224..255 => 2048,
        255..384 => 3072, // 255: X25519's field
        384..512 => 7680,
        _ => 15360,
    }
}

/// RSA-equivalent bits of a certificate key as [`CertificateReport::key`] names it
/// ("RSA 2048", "EC P-256", "Ed25519", "DSA 1024").
pub fn certificate_rsa_bits(key: &str, key_bits: u32) -> u32 {
    if key.starts_with("EC") || key.starts_with("Ed") {
        ec_to_rsa_bits(key_bits)
    } else {
        key_bits
    }
}

/// RSA-equivalent bits of a named key exchange group (IANA names); hybrid post-quantum
/// groups count as their classical part. None for names not known.
pub fn group_rsa_bits(group: &str) -> Option<u32> {
    let g = group.to_ascii_lowercase();
    if let Some(bits) = g.strip_prefix("ffdhe") {
        return bits.parse().ok();
    }
    let ec = if g.contains("x25519") || g.contains("25519") {
        255
    } else if g.contains("x448") {
        448
    } else if g.contains("256") || g == "prime256v1" {
        256
    } else if g.contains("384") {
        384
    } else if g.contains("521") || g.contains("512") {
        521
    } else if g.contains("224") {
        224
    } else if g.contains("192") {
        192
    } else {
        return None;
    };
    Some(ec_to_rsa_bits(ec))
}

/// Guide Table 4 "Cipher strength rating guide". Bits as scored: 3DES counts as 168,
/// the guide's own example ("< 256 bits (e.g., 128, 168)"), though [`Cipher::bits`]
/// gives its effective 112.
fn cipher_percent(cipher: &Cipher) -> u32 {
    let bits = if is_3des(&cipher.name) {
        168
    } else {
        u32::from(cipher.bits)
    };
    match bits {
        0 => 0,
        1..128 => 20,
        128..256 => 80,
        _ => 100,
    }
}

/// Guide Table 1 "Letter grade translation".
pub fn grade_for_score(score: u32) -> &'static str {
    match score {
        80.. => "A",
        65.. => "B",
        50.. => "C",
        35.. => "D",
        20.. => "E",
        _ => "F",
    }
}

// Suite classification by IANA name (SSLv3 suites may be named SSL_...).

fn is_3des(name: &str) -> bool {
    name.contains("3DES") || name.contains("DES_EDE")
}

fn is_rc4(name: &str) -> bool {
    name.contains("RC4")
}

/// 64-bit block ciphers (Sweet32): 3DES, DES, IDEA, RC2.
pub(crate) fn is_64bit_block(name: &str) -> bool {
    is_3des(name)
        || name.contains("_DES_")
        || name.contains("DES40")
        || name.contains("DES_CBC")
        || name.contains("IDEA")
        || name.contains("RC2")
}

pub(crate) fn is_export(name: &str) -> bool {
    name.contains("EXPORT")
}

pub(crate) fn is_anonymous(name: &str) -> bool {
    name.contains("_anon_") || name.contains("_ANON_")
}

pub(crate) fn is_null(cipher: &Cipher) -> bool {
    cipher.bits == 0 || cipher.name.contains("WITH_NULL") || cipher.name.ends_with("_NULL")
}

pub(crate) fn is_aead(protocol: Protocol, name: &str) -> bool {
    protocol == Protocol::Tls13
        || name.contains("GCM")
        || name.contains("CCM")
        || name.contains("POLY1305")
}

pub(crate) fn is_cbc(name: &str) -> bool {
    name.contains("_CBC")
}

/// Key exchange of a suite, as far as strength goes.
fn suite_kex(
    protocol: Protocol,
    cipher: &Cipher,
    groups: &[String],
    dh_bits: Option<u32>,
    cert_bits: Option<u32>,
) -> Vec<KexStrength> {
    let name = cipher.name.as_str();
    if is_anonymous(name) {
        return vec![KexStrength::Anonymous];
    }
    if is_export(name) {
        return vec![KexStrength::Export];
    }
    let with_cert = |eph: u32| KexStrength::Bits(cert_bits.map_or(eph, |c| c.min(eph)));
    if protocol == Protocol::Tls13 || name.contains("ECDHE") {
        let mut strengths: Vec<KexStrength> = groups
            .iter()
            .filter_map(|g| group_rsa_bits(g))
            .map(with_cert)
            .collect();
        if strengths.is_empty() {
            // Groups unknown: assume the usual 256-bit curve (X25519/P-256).
            strengths.push(with_cert(ec_to_rsa_bits(256)));
        }
        strengths
    } else if name.contains("DHE") || name.contains("EDH") {
        // DH parameter size unknown: the certificate alone decides.
        vec![match dh_bits {
            Some(bits) => with_cert(bits),
            None => KexStrength::Bits(cert_bits.unwrap_or(2048)),
        }]
    } else {
        // Static RSA/ECDH/DH, PSK...: the certificate key (unknown without one).
        cert_bits.map(KexStrength::Bits).into_iter().collect()
    }
}

/// What a modern client (one offering TLS 1.3/1.2 with ECDHE and AEAD suites) may end up
/// with: the best protocol, and the suite the server picks when it has an order, else
/// any suite of that protocol (the client picks, and modern clients prefer FS + AEAD).
fn modern_choice<'a>(accepted: &[&'a ProtocolResult]) -> Option<(Protocol, Vec<&'a Cipher>)> {
    let best = accepted.iter().max_by_key(|p| p.protocol)?;
    let suites = if best.server_order == Some(true) {
        best.ciphers.iter().take(1).collect()
    } else {
        best.ciphers.iter().collect()
    };
    Some((best.protocol, suites))
}

/// A grade cap and the finding that explains it.
struct Cap {
    grade: &'static str,
    finding: Finding,
}

fn cap(grade: &'static str, id: &str, title: &str, detail: String, fix: &str) -> Cap {
    let severity = match grade {
        "F" | "T" | "M" => Severity::Critical,
        "C" | "D" | "E" => Severity::High,
        _ => Severity::Medium,
    };
    Cap {
        grade,
        finding: Finding {
            id: id.into(),
            severity,
            title: format!("Grade capped at {grade}: {title}"),
            detail,
            score_delta: 0,
            cap: Some(grade.into()),
            fix: Some(fix.into()),
        },
    }
}

/// Rank of a letter grade, best first; T and M are handled apart.
fn rank(grade: &str) -> u8 {
    match grade {
        "A+" => 0,
        "A" => 1,
        "A-" => 2,
        "B" => 3,
        "C" => 4,
        "D" => 5,
        "E" => 6,
        _ => 7,
    }
}

/// Grades a server from what it accepted (`protocols`, only `accepted` entries count),
/// the key exchange `groups` and DH size it used, and its certificate (None: grade the
/// configuration alone). Returns the rating and one finding per cap applied.
pub fn rate(
    protocols: &[ProtocolResult],
    groups: &[String],
    dh_bits: Option<u32>,
    cert: Option<&CertificateReport>,
) -> (Rating, Vec<Finding>) {
    let accepted: Vec<&ProtocolResult> = protocols.iter().filter(|p| p.accepted).collect();
    let suites: Vec<(Protocol, &Cipher)> = accepted
        .iter()
        .flat_map(|p| p.ciphers.iter().map(move |c| (p.protocol, c)))
        .collect();
    let cert_bits = cert
        .filter(|c| c.key_bits > 0)
        .map(|c| certificate_rsa_bits(&c.key, c.key_bits));

    // Guide, "Protocol support": (best + worst) / 2 (kept doubled until the end).
    let protocol_score = best_worst(accepted.iter().map(|p| protocol_percent(p.protocol)));

    // Guide, "Key exchange": Table 3 on the weaker of certificate key and ephemeral key
    // for each suite, then (best + worst) / 2 over the suites.
    let mut kex: Vec<KexStrength> = suites
        .iter()
        .flat_map(|(protocol, c)| suite_kex(*protocol, c, groups, dh_bits, cert_bits))
        .collect();
    if kex.is_empty() {
        kex.extend(cert_bits.map(KexStrength::Bits));
    }
    let key_exchange_score = best_worst(kex.iter().map(|k| k.percent()));

    // Guide, "Cipher strength": Table 4, (strongest + weakest) / 2.
    let cipher_score = best_worst(suites.iter().map(|(_, c)| cipher_percent(c)));

    // Guide, "Combining the category scores": 30% / 30% / 40%, and "a zero in any
    // category will push the overall score to zero". Integer arithmetic on doubled
    // category scores (best + worst), rounding half up: 91.5 is 92.
    let score = if protocol_score == 0 || key_exchange_score == 0 || cipher_score == 0 {
        0
    } else {
        (3 * protocol_score + 3 * key_exchange_score + 4 * cipher_score + 10) / 20
    };
    let score_grade = grade_for_score(score);

    let caps = caps(&accepted, &suites, dh_bits, cert, cert_bits);
    let mut grade = score_grade;
    for c in &caps {
        if !matches!(c.grade, "T" | "M") && rank(c.grade) > rank(grade) {
            grade = c.grade;
        }
    }
    // Out of scope grades (guide, "Methodology Overview" step 4): without trust the
    // security grade does not matter. T before M: a name match means little on a
    // certificate nobody vouches for.
    if caps.iter().any(|c| c.grade == "T") {
        grade = "T";
    } else if caps.iter().any(|c| c.grade == "M") {
        grade = "M";
    }

    let halve = |doubled: u32| doubled.div_ceil(2);
    let rating = Rating {
        protocol_score: halve(protocol_score),
        key_exchange_score: halve(key_exchange_score),
        cipher_score: halve(cipher_score),
        score,
        score_grade: score_grade.into(),
        grade: grade.into(),
    };
    (rating, caps.into_iter().map(|c| c.finding).collect())
}

/// best + worst (twice the category score), 0 for nothing.
fn best_worst(values: impl Iterator<Item = u32>) -> u32 {
    let (mut best, mut worst) = (None::<u32>, None::<u32>);
    for v in values {
        best = Some(best.map_or(v, |b| b.max(v)));
        worst = Some(worst.map_or(v, |w| w.min(v)));
    }
    match (best, worst) {
        (Some(b), Some(w)) => b + w,
        _ => 0,
    }
}

fn caps(
    accepted: &[&ProtocolResult],
    suites: &[(Protocol, &Cipher)],
    dh_bits: Option<u32>,
    cert: Option<&CertificateReport>,
    cert_bits: Option<u32>,
) -> Vec<Cap> {
    let has = |p: Protocol| accepted.iter().any(|r| r.protocol == p);
    let modern = |p: Protocol| p >= Protocol::Tls11;
    let mut caps = Vec::new();
    const PROTOCOLS_FIX: &str = "Accept TLS 1.2 and 1.3 only (nginx: ssl_protocols TLSv1.2 \
                                 TLSv1.3; postfix: smtpd_tls_protocols = >=TLSv1.2).";
    const CIPHERS_FIX: &str = "Offer only ECDHE suites with AES-GCM or ChaCha20-Poly1305 \
                               (Mozilla \"intermediate\" list).";

    // SSL Labs, "End of Year 2014 Updates" (Dec 2014): SSL 3 caps at B, at C if
    // vulnerable to POODLE (any CBC suite with SSL 3), and F when only SSL 3 is spoken.
    if has(Protocol::Ssl3) {
        let only = accepted.iter().all(|p| p.protocol == Protocol::Ssl3);
        let poodle = suites
            .iter()
            .any(|(p, c)| *p == Protocol::Ssl3 && is_cbc(&c.name));
        let (grade, why) = if only {
            ("F", "the server speaks nothing but SSL 3")
        } else if poodle {
            ("C", "SSL 3 with CBC suites is open to POODLE")
        } else {
            ("B", "SSL 3 is obsolete")
        };
        caps.push(cap(
            grade,
            "rating-ssl3",
            "SSL 3 accepted",
            format!("{why}; SSL Labs rule of December 2014 (\"End of Year 2014 Updates\")."),
            PROTOCOLS_FIX,
        ));
    }

    // SSL Labs, "Grade Change for TLS 1.0 and TLS 1.1 Protocols" (live 31 Jan 2020):
    // servers supporting TLS 1.0 or 1.1 are capped at B.
    if has(Protocol::Tls10) || has(Protocol::Tls11) {
        let which: Vec<&str> = [Protocol::Tls10, Protocol::Tls11]
            .into_iter()
            .filter(|p| has(*p))
            .map(Protocol::name)
            .collect();
        caps.push(cap(
            "B",
            "rating-tls10-tls11",
            &format!("{} accepted", which.join(" and ")),
            "TLS 1.0 and 1.1 are deprecated (RFC 8996); SSL Labs caps servers supporting \
             them at B since January 2020 (\"Grade Change for TLS 1.0 and TLS 1.1 \
             Protocols\")."
                .into(),
            PROTOCOLS_FIX,
        ));
    }

    // "Stricter Security Requirements for 2014" (no TLS 1.2: B), raised to C by SSL Labs
    // 1.17 ("RC4, Obsolete Crypto, and Logjam", May 2015). A TLS 1.3-only server is fine.
    if !accepted.is_empty() && !has(Protocol::Tls12) && !has(Protocol::Tls13) {
        caps.push(cap(
            "C",
            "rating-no-tls12",
            "no TLS 1.2",
            "The server supports neither TLS 1.2 nor 1.3, so no AEAD suites; SSL Labs caps \
             this at C since May 2015 (SSL Labs 1.17)."
                .into(),
            PROTOCOLS_FIX,
        ));
    }

    // RC4: B since December 2014; C when used with TLS 1.1 or newer, B when only with
    // older protocols (SSL Labs 1.17, May 2015).
    let rc4: Vec<Protocol> = suites
        .iter()
        .filter(|(_, c)| is_rc4(&c.name))
        .map(|(p, _)| *p)
        .collect();
    if !rc4.is_empty() {
        let with_modern = rc4.iter().any(|p| modern(*p));
        caps.push(cap(
            if with_modern { "C" } else { "B" },
            "rating-rc4",
            "RC4 accepted",
            format!(
                "RC4 is broken (RFC 7465). SSL Labs caps RC4 {} (SSL Labs 1.17, May 2015).",
                if with_modern {
                    "with TLS 1.1 or newer at C"
                } else {
                    "with old protocols only at B"
                }
            ),
            CIPHERS_FIX,
        ));
    }

    // 64-bit block ciphers (3DES, Sweet32) negotiable with TLS 1.1+: C ("SSL Labs Grading
    // Changes January 2017"); "sites that keep 3DES at the end of their ordered list of
    // suites will not be affected".
    let sweet32 = accepted.iter().any(|p| {
        if !modern(p.protocol) || !p.ciphers.iter().any(|c| is_64bit_block(&c.name)) {
            return false;
        }
        let last_resort = p.server_order == Some(true)
            && p.ciphers.iter().any(|c| !is_64bit_block(&c.name))
            && p.ciphers
                .iter()
                .skip_while(|c| !is_64bit_block(&c.name))
                .all(|c| is_64bit_block(&c.name));
        !last_resort
    });
    if sweet32 {
        caps.push(cap(
            "C",
            "rating-64bit-block",
            "64-bit block cipher (3DES) with TLS 1.1+",
            "A 64-bit block cipher can be negotiated with TLS 1.1 or newer (Sweet32); SSL \
             Labs caps this at C unless the server orders such suites last (\"SSL Labs \
             Grading Changes January 2017\")."
                .into(),
            CIPHERS_FIX,
        ));
    }

    // Insecure suites: export (FREAK, 2015) and anonymous key exchange give F; NULL
    // encryption gives F too (the guide's Table 4 scores it 0%; SSL Labs lists all three
    // as insecure). The F for export/anonymous is SSL Labs practice since 2015, cited
    // from its changelog as remembered, not from a page at hand.
    for (id, what, hit) in [
        (
            "rating-export",
            "export suites",
            suites.iter().any(|(_, c)| is_export(&c.name)),
        ),
        (
            "rating-anonymous",
            "anonymous suites",
            suites.iter().any(|(_, c)| is_anonymous(&c.name)),
        ),
        (
            "rating-null-cipher",
            "NULL (unencrypted) suites",
            suites.iter().any(|(_, c)| is_null(c)),
        ),
    ] {
        if hit {
            caps.push(cap(
                "F",
                id,
                &format!("{what} accepted"),
                format!("{GUIDE}: {what} are insecure; SSL Labs grades servers offering them F."),
                CIPHERS_FIX,
            ));
        }
    }

    // "Forward Secrecy, Authenticated Encryption and ROBOT Grading Update" (1 March
    // 2018): no forward secrecy with modern clients: B; no AEAD suites: B.
    if let Some((best, choice)) = modern_choice(accepted) {
        let tls13 = best == Protocol::Tls13;
        if !tls13 && !choice.iter().any(|c| c.forward_secrecy) {
            caps.push(cap(
                "B",
                "rating-no-forward-secrecy",
                "no forward secrecy",
                format!(
                    "A modern client gets a suite without forward secrecy with {} ({}); \
                     SSL Labs caps this at B since March 2018.",
                    best.name(),
                    if choice.len() == 1 {
                        "the server prefers one"
                    } else {
                        "no ECDHE or DHE suite is offered"
                    }
                ),
                "Offer and prefer ECDHE suites.",
            ));
        }
        if !tls13 && !choice.iter().any(|c| is_aead(best, &c.name)) {
            caps.push(cap(
                "B",
                "rating-no-aead",
                "no AEAD suites",
                format!(
                    "A modern client gets a CBC (or stream) suite with {}; AEAD (GCM, \
                     ChaCha20-Poly1305) is required for A since March 2018.",
                    best.name()
                ),
                CIPHERS_FIX,
            ));
        }
    }

    // Weak DH (Logjam): below 1024 bits F, below 2048 B (SSL Labs 1.17, May 2015; the
    // exact thresholds as remembered from SSL Labs' changelog).
    if let Some(bits) = dh_bits {
        let grade = if bits < 1024 {
            Some("F")
        } else if bits < 2048 {
            Some("B")
        } else {
            None
        };
        if let Some(grade) = grade {
            caps.push(cap(
                grade,
                "rating-weak-dh",
                &format!("DH parameters of {bits} bits"),
                format!(
                    "DHE with {bits}-bit parameters is weak (Logjam); SSL Labs caps DH below \
                     2048 bits at B and below 1024 at F (SSL Labs 1.17, May 2015)."
                ),
                "Use 2048-bit (or ffdhe2048+) DH parameters, or drop DHE suites for ECDHE.",
            ));
        }
    }

    if let Some(cert) = cert {
        // "Stricter Security Requirements for 2014": keys below 2048 bits B, below 1024 F
        // (RSA-equivalent, see `ec_to_rsa_bits`); MD5 signatures F.
        if let Some(bits) = cert_bits.filter(|b| *b < 2048) {
            caps.push(cap(
                if bits < 1024 { "F" } else { "B" },
                "rating-weak-key",
                &format!("certificate key {}", cert.key),
                format!(
                    "Certificate keys below 2048 bits (RSA-equivalent; this one ≈ {bits}) \
                     are weak, below 1024 insecure (\"SSL Labs: Stricter Security \
                     Requirements for 2014\")."
                ),
                "Issue a certificate with an RSA 2048+ or EC P-256 key.",
            ));
        }
        if cert
            .signature_algorithm
            .to_ascii_lowercase()
            .contains("md5")
        {
            caps.push(cap(
                "F",
                "rating-md5-signature",
                "MD5 certificate signature",
                "MD5-signed certificates are insecure (\"SSL Labs: Stricter Security \
                 Requirements for 2014\")."
                    .into(),
                "Reissue the certificate with a SHA-256 signature.",
            ));
        }
        // Guide, "Methodology Overview" step 4: T when the certificate is not trusted
        // (expired, self-signed, unknown CA, SHA-1...), M on a name mismatch.
        if !cert.trusted || cert.expired {
            caps.push(cap(
                "T",
                "rating-untrusted",
                "certificate not trusted",
                format!(
                    "The certificate is not trusted ({}); {GUIDE}: with no trust the \
                     security grade does not matter, an active attacker can impersonate \
                     the server.",
                    cert.trust_error.as_deref().unwrap_or("expired")
                ),
                "Use a certificate from a trusted CA, valid now, with its intermediates.",
            ));
        }
        if !cert.hostname_matches {
            caps.push(cap(
                "M",
                "rating-name-mismatch",
                "certificate name mismatch",
                format!("{GUIDE}: a certificate not valid for the server's name grades M."),
                "Issue a certificate whose subjectAltName includes the server's name.",
            ));
        }
    }
    caps
}

#[cfg(test)]
mod tests;
