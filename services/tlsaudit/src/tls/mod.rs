//! The TLS audit: what the server speaks (raw ClientHellos, since rustls cannot speak
//! SSLv3 to TLS 1.1 and hides what it negotiates), its certificate, and a grade by the
//! SSL Labs rating guide.
//!
//! [`probe`] talks to the server and returns a [`Probe`]; [`cert`] judges the chain;
//! [`rating`] grades; [`audit`] puts them together into a [`crate::report::TlsAudit`].

pub mod probe;
pub use probe::probe;
mod audit;
pub mod cert;
pub mod rating;
pub use audit::audit;

use std::time::Duration;

use crate::report::ProtocolResult;

/// How to reach the server.
#[derive(Debug, Clone)]
pub struct Options {
    /// `host:port`; the host is also the SNI name and the name the certificate must
    /// match (unless `sni` says otherwise).
    pub target: String,
    /// Override of the name sent in SNI and checked against the certificate.
    pub sni: Option<String>,
    /// `Some("smtp")`: STARTTLS on an SMTP server first.
    pub starttls: Option<String>,
    /// Each connection (connect, STARTTLS, handshake) must finish within this.
    pub timeout: Duration,
    /// Extra trust anchors (PEM), e.g. a test CA; the system roots are always used.
    pub ca_file: Option<std::path::PathBuf>,
}

/// What the server showed, before judgement.
#[derive(Debug, Clone, PartialEq)]
pub struct Probe {
    /// One entry per protocol of [`crate::report::Protocol::ALL`], in that order.
    pub protocols: Vec<ProtocolResult>,
    /// Key exchange groups accepted (for ECDHE in TLS 1.2 and for TLS 1.3), names as
    /// IANA writes them: x25519, secp256r1, secp384r1, secp521r1, x448, ffdhe2048, ...
    pub groups: Vec<String>,
    /// The DH parameter size of DHE suites, when one was negotiated.
    pub dh_bits: Option<u32>,
    /// The certificate chain as sent, leaf first (DER).
    pub chain: Vec<Vec<u8>>,
    /// The server stapled an OCSP response.
    pub ocsp_stapled: bool,
}
