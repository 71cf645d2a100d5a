//! Text for a terminal: per target the grade first, then the evidence (responses or
//! protocols, suites and certificate), then the findings worst first with what each
//! cost and how to fix it. A scan of several targets ends with a one-line-per-target
//! summary. Whatever the server sent is shown with its control characters escaped, so a
//! hostile header cannot drive the terminal.

use std::fmt::Write as _;

use crate::report::{Audit, CertificateReport, Finding, HeaderAudit, Severity, TlsAudit};

/// Header values longer than this are cut (the JSON and HTML outputs keep them whole).
const MAX_VALUE: usize = 160;

/// Renders `audits`; `colour` adds ANSI colours (grades, severities).
pub fn render(audits: &[Audit], colour: bool) -> String {
    let p = Paint(colour);
    let mut out = String::new();
    for (i, audit) in audits.iter().enumerate() {
        if i > 0 {
            out.push('\n');
        }
        match audit {
            Audit::Headers(h) => headers(&mut out, &p, h),
            Audit::Tls(t) => tls(&mut out, &p, t),
            Audit::Error { target, error } => {
                let _ = writeln!(out, "{}  {}", p.bold(&clean(target)), p.dim("error"));
                let _ = writeln!(out, "  {} {}", p.red("could not audit:"), clean(error));
            }
        }
    }
    if audits.len() > 1 {
        summary(&mut out, &p, audits);
    }
    out
}

fn headers(out: &mut String, p: &Paint, h: &HeaderAudit) {
    let _ = writeln!(
        out,
        "{}  {}",
        p.bold(&clean(&h.url)),
        p.dim("security headers")
    );
    let _ = writeln!(
        out,
        "  grade {}  score {}/100  letter {}",
        p.grade(&h.grade),
        h.score,
        p.grade(&h.letter)
    );
    let _ = writeln!(out, "  {}", p.bold("responses"));
    for r in &h.chain {
        let _ = writeln!(out, "    {}  {}", r.status, clean(&r.url));
        for (name, value) in &r.headers {
            let _ = writeln!(out, "         {}: {}", clean(name), cut(&clean(value)));
        }
    }
    findings(out, p, &h.findings, true);
}

fn tls(out: &mut String, p: &Paint, t: &TlsAudit) {
    let how = match &t.starttls {
        Some(s) => format!("TLS (STARTTLS {})", clean(s)),
        None => "TLS".to_owned(),
    };
    let _ = writeln!(out, "{}  {}", p.bold(&clean(&t.target)), p.dim(&how));
    let r = &t.rating;
    let _ = writeln!(
        out,
        "  grade {}  score {} ({} before caps)",
        p.grade(&r.grade),
        r.score,
        clean(&r.score_grade)
    );
    let _ = writeln!(
        out,
        "  rating      protocol {}, key exchange {}, cipher {} (score = 0.3 protocol + 0.3 key exchange + 0.4 cipher)",
        r.protocol_score, r.key_exchange_score, r.cipher_score
    );
    let caps: Vec<String> = super::by_severity(&t.findings)
        .into_iter()
        .filter_map(|f| {
            f.cap
                .as_ref()
                .map(|c| format!("{} by {}", clean(c), clean(&f.id)))
        })
        .collect();
    if !caps.is_empty() {
        let _ = writeln!(out, "  caps        {}", caps.join(", "));
    }

    let _ = writeln!(out, "  {}", p.bold("protocols"));
    let width = t
        .protocols
        .iter()
        .flat_map(|r| r.ciphers.iter().map(|c| c.name.chars().count()))
        .max()
        .unwrap_or(0);
    for pr in &t.protocols {
        let name = format!("{:<8}", pr.protocol.name());
        if !pr.accepted {
            let _ = writeln!(out, "    {name} {}", p.dim("no"));
            continue;
        }
        let order = match pr.server_order {
            Some(true) => "  server's order",
            Some(false) => "  client's order",
            None => "",
        };
        let _ = writeln!(out, "    {name} yes{order}");
        for c in &pr.ciphers {
            let bits = format!("{:>3} bits", c.bits);
            let bits = if c.bits < 128 { p.red(&bits) } else { bits };
            let fs = if c.forward_secrecy {
                "FS".to_owned()
            } else {
                p.yellow("no FS")
            };
            let _ = writeln!(out, "             {:<width$}  {bits}  {fs}", clean(&c.name));
        }
    }
    if !t.groups.is_empty() {
        let groups: Vec<String> = t.groups.iter().map(|g| clean(g)).collect();
        let _ = writeln!(out, "  groups      {}", groups.join(", "));
    }
    match &t.certificate {
        Some(c) => certificate(out, p, c),
        None => {
            let _ = writeln!(out, "  certificate {}", p.red("none received"));
        }
    }
    findings(out, p, &t.findings, false);
    let _ = writeln!(
        out,
        "  {}",
        p.dim(&format!("audited in {:.1} s", t.seconds))
    );
}

fn certificate(out: &mut String, p: &Paint, c: &CertificateReport) {
    let _ = writeln!(out, "  {}", p.bold("certificate"));
    let _ = writeln!(out, "    subject   {}", clean(&c.subject));
    let _ = writeln!(out, "    issuer    {}", clean(&c.issuer));
    let names: Vec<String> = c.names.iter().map(|n| clean(n)).collect();
    let _ = writeln!(out, "    names     {}", names.join(", "));
    let expired = if c.expired {
        format!("  {}", p.red("EXPIRED"))
    } else {
        String::new()
    };
    let _ = writeln!(
        out,
        "    valid     {} to {}{expired}",
        clean(&c.not_before),
        clean(&c.not_after)
    );
    let _ = writeln!(
        out,
        "    key       {} ({} bits), {}",
        clean(&c.key),
        c.key_bits,
        clean(&c.signature_algorithm)
    );
    let trust = if c.trusted {
        p.green("trusted")
    } else {
        let why = c.trust_error.as_deref().map(clean).unwrap_or_default();
        p.red(&format!("NOT trusted: {why}"))
    };
    let _ = writeln!(
        out,
        "    chain     {} sent, {trust}",
        plural(c.chain_length, "certificate")
    );
    let name = if c.hostname_matches {
        p.green("matches")
    } else {
        p.red("DOES NOT match")
    };
    let _ = writeln!(out, "    hostname  {name}");
    let ocsp = if c.ocsp_stapled {
        "stapled"
    } else {
        "not stapled"
    };
    let _ = writeln!(out, "    OCSP      {ocsp}");
}

/// `scores`: show each finding's score change (the Observatory's deductions and
/// bonuses); SSL Labs findings show the cap they impose instead.
fn findings(out: &mut String, p: &Paint, findings: &[Finding], scores: bool) {
    if findings.is_empty() {
        let _ = writeln!(out, "  {}", p.bold("findings: none"));
        return;
    }
    let _ = writeln!(out, "  {}", p.bold("findings"));
    for f in super::by_severity(findings) {
        let level = p.severity(f.severity, &format!("{:<8}", severity_name(f.severity)));
        let cost = match (&f.cap, scores) {
            (_, true) if f.score_delta == 0 => "   0".to_owned(),
            (_, true) => format!("{:>+4}", f.score_delta),
            (Some(cap), false) => format!("{:<4}", format!("≤{}", clean(cap))),
            (None, false) => "    ".to_owned(),
        };
        let _ = writeln!(
            out,
            "    {level} {cost}  {} ({})",
            clean(&f.title),
            clean(&f.id)
        );
        let _ = writeln!(out, "                   {}", clean(&f.detail));
        if let Some(fix) = &f.fix {
            let _ = writeln!(out, "                   {} {}", p.cyan("fix:"), clean(fix));
        }
    }
}

fn summary(out: &mut String, p: &Paint, audits: &[Audit]) {
    let _ = writeln!(out, "\n{}", p.bold("summary"));
    let width = audits
        .iter()
        .map(|a| clean(super::target(a)).chars().count())
        .max()
        .unwrap_or(0);
    for a in audits {
        let (grade, what) = match a {
            Audit::Headers(h) => (
                format!("{:<3}", h.grade),
                format!("headers, score {}, letter {}", h.score, clean(&h.letter)),
            ),
            Audit::Tls(t) => (
                format!("{:<3}", t.rating.grade),
                match &t.starttls {
                    Some(s) => format!("TLS, STARTTLS {}", clean(s)),
                    None => "TLS".to_owned(),
                },
            ),
            Audit::Error { error, .. } => ("-  ".to_owned(), format!("error: {}", clean(error))),
        };
        let target = clean(super::target(a));
        let pad = width.saturating_sub(target.chars().count());
        let _ = writeln!(
            out,
            "  {}  {target}{:pad$}  {}",
            p.grade(&grade),
            "",
            p.dim(&what)
        );
    }
}

fn severity_name(s: Severity) -> &'static str {
    match s {
        Severity::Pass => "pass",
        Severity::Info => "info",
        Severity::Low => "low",
        Severity::Medium => "medium",
        Severity::High => "HIGH",
        Severity::Critical => "CRITICAL",
    }
}

fn plural(n: usize, what: &str) -> String {
    if n == 1 {
        format!("1 {what}")
    } else {
        format!("{n} {what}s")
    }
}

/// Escapes control characters (ESC, CR, ...) of text that came from the network.
fn clean(s: &str) -> String {
    if !s.chars().any(char::is_control) {
        return s.to_owned();
    }
    s.chars()
        .map(|c| {
            if c.is_control() {
                c.escape_default().to_string()
            } else {
                c.to_string()
            }
        })
        .collect()
}

fn cut(s: &str) -> String {
    match s.char_indices().nth(MAX_VALUE) {
        Some((i, _)) => format!("{}…", &s[..i]),
        None => s.to_owned(),
    }
}

/// ANSI colours, or none.
struct Paint(bool);

impl Paint {
    fn paint(&self, code: &str, s: &str) -> String {
        if self.0 {
            format!("\x1b[{code}m{s}\x1b[0m")
        } else {
            s.to_owned()
        }
    }
    fn bold(&self, s: &str) -> String {
        self.paint("1", s)
    }
    fn dim(&self, s: &str) -> String {
        self.paint("2", s)
    }
    fn red(&self, s: &str) -> String {
        self.paint("31", s)
    }
    fn green(&self, s: &str) -> String {
        self.paint("32", s)
    }
    fn yellow(&self, s: &str) -> String {
        self.paint("33", s)
    }
    fn cyan(&self, s: &str) -> String {
        self.paint("36", s)
    }
    fn grade(&self, g: &str) -> String {
        let code = match super::grade_class(g) {
            "good" => "1;32",
            "fair" => "1;33",
            "poor" => "1;35",
            "bad" => "1;31",
            _ => "2",
        };
        self.paint(code, &clean(g))
    }
    fn severity(&self, s: Severity, text: &str) -> String {
        let code = match s {
            Severity::Critical => "1;31",
            Severity::High => "31",
            Severity::Medium => "33",
            Severity::Low => "36",
            Severity::Info => "2",
            Severity::Pass => "32",
        };
        self.paint(code, text)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::output::fixtures;

    #[test]
    fn headers_grade_first_then_chain_then_findings_worst_first() {
        let out = render(&[Audit::Headers(fixtures::headers())], false);
        let lines: Vec<&str> = out.lines().collect();
        assert_eq!(lines[0], "http://example.org/  security headers");
        assert_eq!(lines[1], "  grade D+  score 45/100  letter C");
        assert!(out.contains("    301  http://example.org/\n"), "{out}");
        assert!(
            out.contains("         x-evil: <script>alert(1)</script>\n"),
            "{out}"
        );
        let high = out
            .find("HIGH      -25  title of csp-not-implemented")
            .unwrap();
        let medium = out
            .find("medium    -10  title of referrer-policy-unsafe")
            .unwrap();
        let pass = out.find("pass       +5  title of hsts-preloaded").unwrap();
        assert!(high < medium && medium < pass, "{out}");
        assert!(out.contains("fix: fix for csp-not-implemented"), "{out}");
        assert!(!out.contains('\x1b'), "no colour when asked for none");
        assert!(!out.contains("summary"), "one audit, no summary");
    }

    #[test]
    fn tls_grade_rating_protocols_certificate_findings() {
        let out = render(&[Audit::Tls(fixtures::tls())], false);
        assert!(
            out.starts_with(
                "mail.example.org:25  TLS (STARTTLS smtp)\n  grade T  score 87 (A- before caps)\n"
            ),
            "{out}"
        );
        assert!(
            out.contains("protocol 95, key exchange 90, cipher 80"),
            "{out}"
        );
        assert!(
            out.contains("caps        T by cert-untrusted, B by tls10-enabled, C by 3des-enabled"),
            "{out}"
        );
        assert!(out.contains("    SSLv3    no\n"), "{out}");
        assert!(out.contains("    TLSv1.2  yes  server's order\n"), "{out}");
        assert!(
            out.contains("TLS_RSA_WITH_3DES_EDE_CBC_SHA          112 bits  no FS"),
            "{out}"
        );
        assert!(
            out.contains("TLS_AES_256_GCM_SHA384                 256 bits  FS"),
            "{out}"
        );
        assert!(out.contains("NOT trusted: unknown issuer"), "{out}");
        assert!(out.contains("2 certificates sent"), "{out}");
        assert!(
            out.contains("CRITICAL ≤T    title of cert-untrusted"),
            "{out}"
        );
        assert!(out.contains("audited in 3.2 s"), "{out}");
    }

    #[test]
    fn several_audits_end_with_a_summary_and_errors_say_why() {
        let out = render(&fixtures::all(), false);
        assert!(
            out.contains(
                "down.example.org:443  error\n  could not audit: connecting: connection refused\n"
            ),
            "{out}"
        );
        let summary = &out[out.find("\nsummary\n").expect("a summary")..];
        assert!(
            summary.contains("  D+   http://example.org/   headers, score 45, letter C\n"),
            "{summary}"
        );
        assert!(
            summary.contains("  T    mail.example.org:25   TLS, STARTTLS smtp\n"),
            "{summary}"
        );
        assert!(
            summary.contains("  -    down.example.org:443  error: connecting"),
            "{summary}"
        );
    }

    #[test]
    fn colour_only_when_asked_and_control_characters_escaped() {
        let mut h = fixtures::headers();
        h.chain[1]
            .headers
            .push(("x-term".into(), "\x1b]0;pwned\x07\r\nfake: line".into()));
        let plain = render(&[Audit::Headers(h.clone())], false);
        assert!(
            !plain.contains('\x1b') && !plain.contains('\r'),
            "{plain:?}"
        );
        assert!(
            plain.contains(r"x-term: \u{1b}]0;pwned\u{7}\r\nfake: line"),
            "{plain}"
        );
        let coloured = render(&[Audit::Headers(h)], true);
        assert!(coloured.contains("\x1b[1;35mD+\x1b[0m"), "{coloured:?}");
    }

    #[test]
    fn long_values_are_cut() {
        assert_eq!(cut(&"x".repeat(MAX_VALUE)), "x".repeat(MAX_VALUE));
        assert_eq!(
            cut(&"é".repeat(MAX_VALUE + 1)),
            format!("{}…", "é".repeat(MAX_VALUE))
        );
    }
}
