//! A securityheaders.com-style letter: how many of the six main headers the final
//! response sends.
//!
//! securityheaders.com does not publish its algorithm; this is our documented
//! approximation of it. The six: Strict-Transport-Security (counts over HTTPS only,
//! RFC 6797 §8.1), Content-Security-Policy (enforced, not Report-Only),
//! X-Frame-Options (or CSP `frame-ancestors`, which supersedes it),
//! X-Content-Type-Options, Referrer-Policy, Permissions-Policy. A header counts when
//! present, whatever its value; values are the Observatory score's business.
//!
//! | present | letter |
//! | :-: | :-: |
//! | 6, no warning | A+ |
//! | 6 | A |
//! | 5 | B |
//! | 4 | C |
//! | 3 | D |
//! | 2 | E |
//! | 0-1 | F |
//!
//! A warning is any finding that cost points (`score_delta` < 0, e.g. CSP with
//! 'unsafe-inline', HSTS under six months, a cookie without Secure), or one of the
//! unscored CSP problems (`csp-unsafe-eval` and the like).

use crate::report::{Finding, Response, Severity};

use super::csp::Policy;

/// The six headers, as counted.
pub fn present(response: &Response, https: bool, csp: Option<&Policy>) -> Vec<&'static str> {
    let has = |name| super::header(response, name).is_some();
    let mut found = Vec::new();
    if https && has("strict-transport-security") {
        found.push("strict-transport-security");
    }
    if has("content-security-policy") {
        found.push("content-security-policy");
    }
    if has("x-frame-options") || csp.is_some_and(|p| p.has("frame-ancestors")) {
        found.push("x-frame-options");
    }
    for name in [
        "x-content-type-options",
        "referrer-policy",
        "permissions-policy",
    ] {
        if has(name) {
            found.push(name);
        }
    }
    found
}

/// Whether `finding` is a warning for the letter.
pub fn is_warning(finding: &Finding) -> bool {
    finding.score_delta < 0 || (finding.id.starts_with("csp-") && finding.severity >= Severity::Low)
}

/// The letter for `count` headers present, with or without warnings.
pub fn for_count(count: usize, warnings: bool) -> &'static str {
    match count {
        6.. if !warnings => "A+",
        6.. => "A",
        5 => "B",
        4 => "C",
        3 => "D",
        2 => "E",
        _ => "F",
    }
}

pub(crate) fn letter(
    response: &Response,
    https: bool,
    csp: Option<&Policy>,
    findings: &[Finding],
) -> &'static str {
    let count = present(response, https, csp).len();
    for_count(count, findings.iter().any(is_warning))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn response(headers: &[&str]) -> Response {
        Response {
            url: "https://a/".into(),
            status: 200,
            headers: headers
                .iter()
                .map(|n| (n.to_string(), "x".into()))
                .collect(),
        }
    }

    #[test]
    fn table() {
        assert_eq!(for_count(6, false), "A+");
        assert_eq!(for_count(6, true), "A");
        assert_eq!(for_count(5, false), "B");
        assert_eq!(for_count(4, true), "C");
        assert_eq!(for_count(3, false), "D");
        assert_eq!(for_count(2, false), "E");
        assert_eq!(for_count(1, false), "F");
        assert_eq!(for_count(0, false), "F");
    }

    #[test]
    fn counts_the_six() {
        let all = [
            "strict-transport-security",
            "content-security-policy",
            "x-frame-options",
            "x-content-type-options",
            "referrer-policy",
            "permissions-policy",
            "x-xss-protection",
        ];
        assert_eq!(present(&response(&all), true, None).len(), 6);
        // HSTS over plain HTTP does not count.
        assert_eq!(present(&response(&all), false, None).len(), 5);
        // frame-ancestors stands in for X-Frame-Options.
        let csp = super::super::csp::parse("frame-ancestors 'none'").unwrap();
        assert_eq!(
            present(&response(&["content-security-policy"]), true, Some(&csp)),
            ["content-security-policy", "x-frame-options"]
        );
        assert!(present(&response(&["x-xss-protection"]), true, None).is_empty());
    }

    #[test]
    fn warnings() {
        let f = |id: &str, severity, score_delta| Finding {
            id: id.into(),
            severity,
            title: String::new(),
            detail: String::new(),
            score_delta,
            cap: None,
            fix: None,
        };
        assert!(is_warning(&f("referrer-policy-unsafe", Severity::Low, -5)));
        assert!(is_warning(&f("csp-unsafe-eval", Severity::Medium, 0)));
        assert!(!is_warning(&f("csp-no-frame-ancestors", Severity::Info, 0)));
        assert!(!is_warning(&f(
            "headers-missing-on-error-pages",
            Severity::Low,
            0
        )));
    }
}
