//! Renders audits for people and programs: [`text`] for a terminal, [`json`] for
//! scripts (a stable envelope around the [`crate::report`] model), [`html`] for a
//! self-contained page to mail or archive. Renderers only read the model; what they
//! share (severity order, grade colours) lives here.

pub mod html;
pub mod json;
pub mod text;

use std::io::IsTerminal;

use crate::report::{Audit, Finding};

/// How a report is written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    /// For a terminal: grades first, then the evidence and the fixes (colours only on
    /// a terminal).
    Text,
    /// `{ "tool", "version", "generated", "audits": [...] }`, pretty-printed.
    Json,
    /// One self-contained page: inline CSS, no scripts, no external assets.
    Html,
}

/// Renders `audits` as `format`; text is coloured when stdout is a terminal (and
/// `NO_COLOR` is unset). To render for a file, use [`render_with`].
pub fn render(audits: &[Audit], format: Format) -> anyhow::Result<String> {
    render_with(audits, format, colour_for_stdout())
}

/// Renders `audits` as `format`; `colour` only matters for [`Format::Text`].
pub fn render_with(audits: &[Audit], format: Format, colour: bool) -> anyhow::Result<String> {
    match format {
        Format::Text => Ok(text::render(audits, colour)),
        Format::Json => json::render(audits),
        Format::Html => html::render(audits),
    }
}

/// Whether text written to stdout should carry ANSI colours: stdout is a terminal and
/// the user did not ask for none (<https://no-color.org>).
pub fn colour_for_stdout() -> bool {
    std::io::stdout().is_terminal() && std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty())
}

/// How a grade looks: `good` (A+, A, A-), `fair` (B, C), `poor` (D, E), `bad` (F, and
/// the SSL Labs T and M, which mean the certificate cannot be trusted), `none` (no
/// grade: the audit failed).
pub fn grade_class(grade: &str) -> &'static str {
    match grade.trim().chars().next() {
        Some('A') => "good",
        Some('B' | 'C') => "fair",
        Some('D' | 'E') => "poor",
        Some(_) => "bad",
        None => "none",
    }
}

/// Findings worst first (critical to pass); within a severity, the costliest first,
/// then as found.
pub fn by_severity(findings: &[Finding]) -> Vec<&Finding> {
    let mut sorted: Vec<&Finding> = findings.iter().collect();
    sorted.sort_by(|a, b| {
        b.severity
            .cmp(&a.severity)
            .then(a.score_delta.cmp(&b.score_delta))
    });
    sorted
}

/// The grade an audit ended with (the Observatory grade of a header audit, the final
/// SSL Labs grade of a TLS audit), None when it could not be done.
pub fn grade(audit: &Audit) -> Option<&str> {
    match audit {
        Audit::Headers(h) => Some(&h.grade),
        Audit::Tls(t) => Some(&t.rating.grade),
        Audit::Error { .. } => None,
    }
}

/// What an audit was about: the URL, `host:port`, or the target that failed.
pub fn target(audit: &Audit) -> &str {
    match audit {
        Audit::Headers(h) => &h.url,
        Audit::Tls(t) => &t.target,
        Audit::Error { target, .. } => target,
    }
}

#[cfg(test)]
pub(crate) mod fixtures {
    //! Hand-built audits: one of each kind, with a hostile header value.

    use crate::report::*;

    pub fn finding(id: &str, severity: Severity, delta: i32, cap: Option<&str>) -> Finding {
        Finding {
            id: id.into(),
            severity,
            title: format!("title of {id}"),
            detail: format!("detail of {id}"),
            score_delta: delta,
            cap: cap.map(Into::into),
            fix: Some(format!("fix for {id}")),
        }
    }

    pub fn headers() -> HeaderAudit {
        HeaderAudit {
            url: "http://example.org/".into(),
            chain: vec![
                Response {
                    url: "http://example.org/".into(),
                    status: 301,
                    headers: vec![("location".into(), "https://example.org/".into())],
                },
                Response {
                    url: "https://example.org/".into(),
                    status: 200,
                    headers: vec![
                        ("x-evil".into(), "<script>alert(1)</script>".into()),
                        (
                            "strict-transport-security".into(),
                            "max-age=63072000".into(),
                        ),
                    ],
                },
            ],
            score: 45,
            grade: "D+".into(),
            letter: "C".into(),
            findings: vec![
                finding("hsts-preloaded", Severity::Pass, 5, None),
                finding("csp-not-implemented", Severity::High, -25, None),
                finding("x-content-type-options-missing", Severity::Medium, -5, None),
                finding("referrer-policy-unsafe", Severity::Medium, -10, None),
            ],
        }
    }

    pub fn tls() -> TlsAudit {
        let suite = |id: u16, name: &str, bits: u16, fs: bool| Cipher {
            id,
            name: name.into(),
            bits,
            forward_secrecy: fs,
        };
        TlsAudit {
            target: "mail.example.org:25".into(),
            starttls: Some("smtp".into()),
            protocols: Protocol::ALL
                .iter()
                .map(|&p| ProtocolResult {
                    protocol: p,
                    accepted: p >= Protocol::Tls10,
                    ciphers: match p {
                        Protocol::Tls13 => {
                            vec![suite(0x1302, "TLS_AES_256_GCM_SHA384", 256, true)]
                        }
                        Protocol::Ssl3 => vec![],
                        _ => vec![
                            suite(0xc02f, "TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256", 128, true),
                            suite(0x000a, "TLS_RSA_WITH_3DES_EDE_CBC_SHA", 112, false),
                        ],
                    },
                    server_order: (p >= Protocol::Tls10).then_some(true),
                })
                .collect(),
            groups: vec!["x25519".into(), "secp256r1".into()],
            certificate: Some(CertificateReport {
                subject: "CN=mail.example.org".into(),
                issuer: "CN=Example CA".into(),
                names: vec!["mail.example.org".into()],
                not_before: "2025-01-01T00:00:00Z".into(),
                not_after: "2026-01-01T00:00:00Z".into(),
                key: "RSA 2048".into(),
                key_bits: 2048,
                signature_algorithm: "sha256WithRSAEncryption".into(),
                chain_length: 2,
                trusted: false,
                trust_error: Some("unknown issuer".into()),
                expired: false,
                hostname_matches: true,
                ocsp_stapled: false,
            }),
            rating: Rating {
                protocol_score: 95,
                key_exchange_score: 90,
                cipher_score: 80,
                score: 87,
                score_grade: "A-".into(),
                grade: "T".into(),
            },
            findings: vec![
                finding("tls10-enabled", Severity::Medium, 0, Some("B")),
                finding("cert-untrusted", Severity::Critical, 0, Some("T")),
                finding("3des-enabled", Severity::Medium, 0, Some("C")),
            ],
            seconds: 3.25,
        }
    }

    pub fn all() -> Vec<Audit> {
        vec![
            Audit::Headers(headers()),
            Audit::Tls(tls()),
            Audit::Error {
                target: "down.example.org:443".into(),
                error: "connecting: connection refused".into(),
            },
        ]
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::Severity;

    #[test]
    fn findings_worst_first_costliest_first() {
        let h = fixtures::headers();
        let ids: Vec<&str> = by_severity(&h.findings)
            .iter()
            .map(|f| f.id.as_str())
            .collect();
        assert_eq!(
            ids,
            [
                "csp-not-implemented",
                "referrer-policy-unsafe",
                "x-content-type-options-missing",
                "hsts-preloaded"
            ]
        );
        assert_eq!(by_severity(&h.findings)[3].severity, Severity::Pass);
    }

    #[test]
    fn grade_classes() {
        assert_eq!(grade_class("A+"), "good");
        assert_eq!(grade_class("B-"), "fair");
        assert_eq!(grade_class("D"), "poor");
        assert_eq!(grade_class("F"), "bad");
        assert_eq!(grade_class("T"), "bad");
        assert_eq!(grade_class(""), "none");
    }
}
