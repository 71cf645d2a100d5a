//! What every audit produces and every output renders (text, JSON, HTML): findings with
//! the rule they come from and what they cost, and per target a header or a TLS audit.
//! The audits fill these types; `output` only reads them.

use serde::Serialize;

/// How much a finding matters to an operator.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    /// Good practice seen, or a neutral fact.
    Pass,
    Info,
    Low,
    Medium,
    High,
    Critical,
}

/// One thing found, explained: what, why it matters, what it cost, how to fix it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Finding {
    /// Stable identifier, e.g. `csp-unsafe-inline`, `tls10-enabled`.
    pub id: String,
    pub severity: Severity,
    /// One line.
    pub title: String,
    /// Why, with the rule it comes from (Observatory test, SSL Labs guide section).
    pub detail: String,
    /// Score change this finding caused (Observatory: -25, +5; SSL Labs: 0, the cap is
    /// in `cap`).
    pub score_delta: i32,
    /// A grade cap this finding imposes (SSL Labs, e.g. "B" for TLS 1.0), if any.
    pub cap: Option<String>,
    /// What to change, when there is something to change.
    pub fix: Option<String>,
}

/// One HTTP response of a header audit (the first, each redirect, the final one).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Response {
    pub url: String,
    pub status: u16,
    /// Header fields as received, in order, names lowercased.
    pub headers: Vec<(String, String)>,
}

impl Response {
    /// A response with `headers` as given (names as written: lowercase them to match
    /// what the fetcher records).
    pub fn new(url: &str, status: u16, headers: &[(&str, &str)]) -> Response {
        Response {
            url: url.into(),
            status,
            headers: headers
                .iter()
                .map(|(n, v)| (n.to_string(), v.to_string()))
                .collect(),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct HeaderAudit {
    pub url: String,
    /// Every response followed, first to last.
    pub chain: Vec<Response>,
    /// Mozilla Observatory score (starts at 100, bonuses only at 90 and above) and grade.
    pub score: i32,
    pub grade: String,
    /// securityheaders.com-style letter: how many of the six main headers are present.
    pub letter: String,
    pub findings: Vec<Finding>,
}

/// A protocol version as TLS scanners name it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
pub enum Protocol {
    #[serde(rename = "SSLv3")]
    Ssl3,
    #[serde(rename = "TLSv1.0")]
    Tls10,
    #[serde(rename = "TLSv1.1")]
    Tls11,
    #[serde(rename = "TLSv1.2")]
    Tls12,
    #[serde(rename = "TLSv1.3")]
    Tls13,
}

impl Protocol {
    pub const ALL: [Protocol; 5] = [
        Protocol::Ssl3,
        Protocol::Tls10,
        Protocol::Tls11,
        Protocol::Tls12,
        Protocol::Tls13,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Protocol::Ssl3 => "SSLv3",
            Protocol::Tls10 => "TLSv1.0",
            Protocol::Tls11 => "TLSv1.1",
            Protocol::Tls12 => "TLSv1.2",
            Protocol::Tls13 => "TLSv1.3",
        }
    }

    /// The record/ClientHello version: 0x0300 for SSLv3 to 0x0304 for TLS 1.3.
    pub fn wire(self) -> u16 {
        match self {
            Protocol::Ssl3 => 0x0300,
            Protocol::Tls10 => 0x0301,
            Protocol::Tls11 => 0x0302,
            Protocol::Tls12 => 0x0303,
            Protocol::Tls13 => 0x0304,
        }
    }
}

/// A cipher suite the server accepted.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Cipher {
    /// IANA code point.
    pub id: u16,
    /// IANA name, e.g. `TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256`.
    pub name: String,
    /// Symmetric key bits (0 for NULL, 56 for DES, 112 for 3DES, 128, 256).
    pub bits: u16,
    /// Ephemeral key exchange (ECDHE, DHE, or any TLS 1.3 suite).
    pub forward_secrecy: bool,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ProtocolResult {
    pub protocol: Protocol,
    pub accepted: bool,
    /// Accepted suites, in the server's order of preference when it has one, else in
    /// the order found.
    pub ciphers: Vec<Cipher>,
    /// Whether the server picks by its own preference (None: not determinable, e.g. one
    /// cipher).
    pub server_order: Option<bool>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct CertificateReport {
    pub subject: String,
    pub issuer: String,
    /// DNS names and IPs of the subjectAltName.
    pub names: Vec<String>,
    pub not_before: String,
    pub not_after: String,
    /// e.g. "RSA 2048", "EC P-256".
    pub key: String,
    pub key_bits: u32,
    /// e.g. "sha256WithRSAEncryption".
    pub signature_algorithm: String,
    /// Chain length as sent by the server (leaf included).
    pub chain_length: usize,
    pub trusted: bool,
    /// Why not trusted, when not ("self-signed", "unknown issuer", "expired", ...).
    pub trust_error: Option<String>,
    pub expired: bool,
    pub hostname_matches: bool,
    pub ocsp_stapled: bool,
}

/// SSL Labs rating guide: three category scores, the score, caps, the grade.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Rating {
    pub protocol_score: u32,
    pub key_exchange_score: u32,
    pub cipher_score: u32,
    /// 0.3 protocol + 0.3 key exchange + 0.4 cipher.
    pub score: u32,
    /// The grade from the score before caps.
    pub score_grade: String,
    /// The final grade (A+ ... F, T for trust problems, M for a name mismatch).
    pub grade: String,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct TlsAudit {
    /// `host:port`.
    pub target: String,
    /// `smtp` for STARTTLS, None for direct TLS.
    pub starttls: Option<String>,
    pub protocols: Vec<ProtocolResult>,
    /// Key exchange groups the server accepted, e.g. "x25519", "secp256r1".
    pub groups: Vec<String>,
    pub certificate: Option<CertificateReport>,
    pub rating: Rating,
    pub findings: Vec<Finding>,
    /// Seconds the audit took.
    pub seconds: f64,
}

/// One target's outcome.
// One per target, built once and rendered: boxing the larger variant would buy nothing.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "kind", rename_all = "lowercase")]
pub enum Audit {
    Headers(HeaderAudit),
    Tls(TlsAudit),
    /// The audit could not be done (refused, timed out, hostile server): why.
    Error {
        target: String,
        error: String,
    },
}
