//! Mozilla HTTP Observatory scoring: the result table, the tests without a module of
//! their own, the two-round total and the grade chart.
//!
//! Sources: the Observatory's "Tests & Scoring" page (MDN,
//! <https://developer.mozilla.org/en-US/observatory/docs/tests_and_scoring>; before it
//! `httpobs/docs/scoring.md` in mozilla/http-observatory) for the modifiers and the
//! grading chart, and the reference implementation (`httpobs/scanner/analyzer/misc.py`
//! for redirection, `headers.py` for the header tests, `scanner.py` for the total,
//! `grader/grade.py` for the chart) for the details.
//!
//! Scoring (`scanner.py`): start at 100, add every penalty; only if that is 90 (A) or
//! more, add the bonuses too; the minimum is 0. Grade: 100+ A+, 90 A, 85 A-, 80 B+, 70 B,
//! 65 B-, 60 C+, 50 C, 45 C-, 40 D+, 30 D, 25 D-, below 25 F.

use crate::report::{Finding, Response, Severity};

use super::csp::Policy;

/// One Observatory result: id, modifier, severity here, one-line description.
struct Rule {
    id: &'static str,
    modifier: i32,
    severity: Severity,
    title: &'static str,
}

const fn rule(id: &'static str, modifier: i32, severity: Severity, title: &'static str) -> Rule {
    Rule {
        id,
        modifier,
        severity,
        title,
    }
}

use Severity::{High, Info, Low, Medium, Pass};

/// The results of the Tests & Scoring tables this audit can reach, with their
/// modifiers. Severity is ours: Pass for good practice, Info for neutral, then by cost.
#[rustfmt::skip]
const RULES: &[Rule] = &[
    // Content Security Policy (CSP)
    rule("csp-implemented-with-no-unsafe-default-src-none", 10, Pass, "CSP with default-src 'none' and nothing unsafe"),
    rule("csp-implemented-with-no-unsafe", 5, Pass, "CSP without 'unsafe-inline' or 'unsafe-eval'"),
    rule("csp-implemented-with-unsafe-inline-in-style-src-only", 0, Info, "CSP allows unsafe sources in style-src only"),
    rule("csp-implemented-with-insecure-scheme-in-passive-content-only", -10, Low, "CSP lets a secure site load images or media over HTTP"),
    rule("csp-implemented-with-unsafe-eval", -10, Medium, "CSP allows 'unsafe-eval'"),
    rule("csp-implemented-with-insecure-scheme", -20, Medium, "CSP lets a secure site load resources over HTTP"),
    rule("csp-implemented-with-unsafe-inline", -20, Medium, "CSP implemented unsafely ('unsafe-inline', data: or broad sources in script-src or object-src)"),
    rule("csp-not-implemented", -25, Medium, "No Content-Security-Policy"),
    rule("csp-header-invalid", -25, Medium, "Content-Security-Policy cannot be parsed"),
    // Cookies
    rule("cookies-secure-with-httponly-sessions-and-samesite", 5, Pass, "Cookies Secure, session cookies HttpOnly, SameSite set"),
    rule("cookies-not-found", 0, Pass, "No cookies"),
    rule("cookies-secure-with-httponly-sessions", 0, Pass, "Cookies Secure, session cookies HttpOnly"),
    rule("cookies-without-secure-flag-but-protected-by-hsts", -5, Low, "Cookies without Secure, but HSTS keeps them off HTTP"),
    rule("cookies-session-without-secure-flag-but-protected-by-hsts", -10, Low, "Session cookie without Secure, but HSTS keeps it off HTTP"),
    rule("cookies-without-secure-flag", -20, Medium, "Cookies without Secure or set over HTTP"),
    rule("cookies-samesite-flag-invalid", -20, Medium, "Cookies with SameSite other than Strict or Lax"),
    rule("cookies-anticsrf-without-samesite-flag", -20, Medium, "Anti-CSRF token without SameSite"),
    rule("cookies-session-without-httponly-flag", -30, High, "Session cookie without HttpOnly"),
    rule("cookies-session-without-secure-flag", -40, High, "Session cookie without Secure or set over HTTP"),
    // HTTP Strict Transport Security (hsts-preload-ready stands in for hsts-preloaded, see hsts.rs)
    rule("hsts-preload-ready", 5, Pass, "HSTS ready for preloading (a year, includeSubDomains, preload)"),
    rule("hsts-implemented-max-age-at-least-six-months", 0, Pass, "HSTS of at least six months"),
    rule("hsts-implemented-max-age-less-than-six-months", -10, Low, "HSTS max-age under six months"),
    rule("hsts-not-implemented", -20, Medium, "No Strict-Transport-Security"),
    rule("hsts-not-implemented-no-https", -20, Medium, "No HTTPS, so no HSTS"),
    rule("hsts-header-invalid", -20, Medium, "Strict-Transport-Security cannot be recognized"),
    // Redirections (redirection-not-tested is ours: the audit of an https:// URL does not try http://)
    rule("redirection-to-https", 0, Pass, "HTTP redirects to HTTPS on the same host"),
    rule("redirection-not-tested", 0, Info, "HTTP to HTTPS redirection not tested"),
    rule("redirection-off-host-from-http", -5, Low, "HTTP redirects to HTTPS on another host, so HSTS cannot be set for the first"),
    rule("redirection-not-to-https-on-initial-redirection", -10, Low, "First redirect is to another HTTP URL"),
    rule("redirection-missing", -20, Medium, "HTTP does not redirect to HTTPS"),
    rule("redirection-not-to-https", -20, Medium, "Redirects, but not to HTTPS"),
    // Referrer Policy
    rule("referrer-policy-private", 5, Pass, "Referrer-Policy keeps URLs private"),
    rule("referrer-policy-no-referrer-when-downgrade", 0, Info, "Referrer-Policy no-referrer-when-downgrade"),
    rule("referrer-policy-not-implemented", 0, Info, "No Referrer-Policy"),
    rule("referrer-policy-unsafe", -5, Low, "Referrer-Policy leaks URLs (origin, origin-when-cross-origin, unsafe-url)"),
    rule("referrer-policy-header-invalid", -5, Low, "Referrer-Policy cannot be recognized"),
    // X-Content-Type-Options
    rule("x-content-type-options-nosniff", 0, Pass, "X-Content-Type-Options nosniff"),
    rule("x-content-type-options-not-implemented", -5, Low, "No X-Content-Type-Options"),
    rule("x-content-type-options-header-invalid", -5, Low, "X-Content-Type-Options cannot be recognized"),
    // X-Frame-Options
    rule("x-frame-options-implemented-via-csp", 5, Pass, "Framing controlled by CSP frame-ancestors"),
    rule("x-frame-options-allow-from-origin", 0, Info, "X-Frame-Options ALLOW-FROM"),
    rule("x-frame-options-sameorigin-or-deny", 0, Pass, "X-Frame-Options SAMEORIGIN or DENY"),
    rule("x-frame-options-not-implemented", -20, Medium, "No X-Frame-Options nor CSP frame-ancestors"),
    rule("x-frame-options-header-invalid", -20, Medium, "X-Frame-Options cannot be recognized"),
];

fn lookup(id: &str) -> &'static Rule {
    RULES
        .iter()
        .find(|r| r.id == id)
        .unwrap_or_else(|| panic!("{id} is not in the Observatory table"))
}

/// The modifier of Observatory result `id`.
pub fn modifier(id: &str) -> i32 {
    lookup(id).modifier
}

/// The finding for Observatory result `id`, costing its modifier.
pub(crate) fn finding(id: &str, detail: String, fix: Option<String>) -> Finding {
    let rule = lookup(id);
    Finding {
        id: id.into(),
        severity: rule.severity,
        title: rule.title.into(),
        detail,
        score_delta: rule.modifier,
        cap: None,
        fix,
    }
}

/// The bonuses count only if the score after penalties is at least this.
pub const MINIMUM_FOR_BONUSES: i32 = 90;

/// The score from the findings' deltas (`scanner.py`): 100 plus the penalties; plus the
/// bonuses only at 90 or more, otherwise the bonus findings are set to 0 and say why;
/// never below 0.
pub fn total(findings: &mut [Finding]) -> i32 {
    let penalties: i32 = findings.iter().map(|f| f.score_delta.min(0)).sum();
    let before = 100 + penalties;
    let mut score = before;
    for f in findings.iter_mut().filter(|f| f.score_delta > 0) {
        if before >= MINIMUM_FOR_BONUSES {
            score += f.score_delta;
        } else {
            f.detail.push_str(&format!(
                " Bonus of {} not awarded: the score after penalties, {before}, is below {MINIMUM_FOR_BONUSES}.",
                f.score_delta
            ));
            f.score_delta = 0;
        }
    }
    score.max(0)
}

/// The Observatory grade of `score` (`GRADE_CHART` in `grader/grade.py`).
pub fn grade(score: i32) -> &'static str {
    const CHART: [(i32, &str); 12] = [
        (100, "A+"),
        (90, "A"),
        (85, "A-"),
        (80, "B+"),
        (70, "B"),
        (65, "B-"),
        (60, "C+"),
        (50, "C"),
        (45, "C-"),
        (40, "D+"),
        (30, "D"),
        (25, "D-"),
    ];
    CHART
        .iter()
        .find(|(min, _)| score >= *min)
        .map_or("F", |(_, g)| g)
}

/// Redirection (`redirection()` in `misc.py`), for a chain starting at an `http://` URL.
/// An audit of an `https://` URL does not request `http://` (the Observatory does, on
/// port 80): `redirection-not-tested`, scored 0.
pub(crate) fn redirection(chain: &[Response], out: &mut Vec<Finding>) {
    let route: Vec<super::Url<'_>> = chain
        .iter()
        .filter_map(|r| super::Url::parse(&r.url))
        .collect();
    let (Some(first), Some(last)) = (route.first(), route.last()) else {
        return;
    };
    let fix =
        "server { listen 80; server_name example.org; return 301 https://$host$request_uri; }";
    let urls: Vec<&str> = chain.iter().map(|r| r.url.as_str()).collect();
    let detail = format!("Route: {}.", urls.join(" -> "));
    let (result, fix) = if first.scheme != "http" {
        ("redirection-not-tested", None)
    } else if route.len() == 1 {
        ("redirection-missing", Some(fix))
    } else if last.scheme != "https" {
        ("redirection-not-to-https", Some(fix))
    } else if route[1].scheme == "http" {
        ("redirection-not-to-https-on-initial-redirection", Some(fix))
    } else if route[1].host() != first.host() {
        ("redirection-off-host-from-http", Some(fix))
    } else {
        ("redirection-to-https", None)
    };
    let detail = if result == "redirection-not-tested" {
        format!("{detail} Audit the http:// URL to test the redirection to HTTPS.")
    } else {
        detail
    };
    out.push(finding(result, detail, fix.map(String::from)));
}

/// Referrer-Policy (`referrer_policy()` in `headers.py`): the last valid token of the
/// comma-separated list decides.
pub(crate) fn referrer_policy(response: &Response, out: &mut Vec<Finding>) {
    const PRIVATE: [&str; 4] = [
        "no-referrer",
        "same-origin",
        "strict-origin",
        "strict-origin-when-cross-origin",
    ];
    const UNSAFE: [&str; 3] = ["origin", "origin-when-cross-origin", "unsafe-url"];
    let fix = "add_header Referrer-Policy strict-origin-when-cross-origin always;";
    let values = super::headers(response, "referrer-policy");
    if values.is_empty() {
        out.push(finding(
            "referrer-policy-not-implemented",
            "No Referrer-Policy header; browsers default to strict-origin-when-cross-origin."
                .into(),
            Some(fix.into()),
        ));
        return;
    }
    let joined = values.join(", ").to_ascii_lowercase();
    let policy = joined
        .split(',')
        .map(str::trim)
        .rfind(|t| PRIVATE.contains(t) || UNSAFE.contains(t) || *t == "no-referrer-when-downgrade");
    let result = match policy {
        Some(p) if PRIVATE.contains(&p) => "referrer-policy-private",
        Some("no-referrer-when-downgrade") => "referrer-policy-no-referrer-when-downgrade",
        Some(_) => "referrer-policy-unsafe",
        None => "referrer-policy-header-invalid",
    };
    let fix = (result != "referrer-policy-private").then(|| fix.to_string());
    out.push(finding(result, format!("Referrer-Policy: {joined}."), fix));
}

/// X-Content-Type-Options (`x_content_type_options()` in `headers.py`).
pub(crate) fn x_content_type_options(response: &Response, out: &mut Vec<Finding>) {
    let fix = Some("add_header X-Content-Type-Options nosniff always;".to_string());
    let (result, detail, fix) = match super::header(response, "x-content-type-options") {
        None => (
            "x-content-type-options-not-implemented",
            "Header absent.".into(),
            fix,
        ),
        Some(v) if v.trim().eq_ignore_ascii_case("nosniff") => {
            ("x-content-type-options-nosniff", "nosniff.".into(), None)
        }
        Some(v) => (
            "x-content-type-options-header-invalid",
            format!("Value {v:?}: only nosniff is defined."),
            fix,
        ),
    };
    out.push(finding(result, detail, fix));
}

/// X-Frame-Options (`x_frame_options()` in `headers.py`): a CSP `frame-ancestors`
/// overrides the header's result (the analyzer does not check it for broad sources;
/// `csp-frame-ancestors-broad` reports that, unscored).
pub(crate) fn x_frame_options(response: &Response, csp: Option<&Policy>, out: &mut Vec<Finding>) {
    let fix = Some(
        "add_header Content-Security-Policy \"frame-ancestors 'none'\" always; \
         (or add_header X-Frame-Options DENY always;)"
            .to_string(),
    );
    let xfo = super::header(response, "x-frame-options");
    let (result, detail, fix) = if let Some(sources) = csp.and_then(|p| p.get("frame-ancestors")) {
        let sources: Vec<&str> = sources.iter().map(String::as_str).collect();
        (
            "x-frame-options-implemented-via-csp",
            format!("CSP frame-ancestors {}.", sources.join(" ")),
            None,
        )
    } else {
        match xfo.map(|v| v.trim().to_ascii_lowercase()) {
            None => (
                "x-frame-options-not-implemented",
                "Neither X-Frame-Options nor CSP frame-ancestors.".into(),
                fix,
            ),
            Some(v) if v == "deny" || v == "sameorigin" => (
                "x-frame-options-sameorigin-or-deny",
                format!("X-Frame-Options {v}."),
                None,
            ),
            Some(v) if v.starts_with("allow-from ") => (
                "x-frame-options-allow-from-origin",
                "ALLOW-FROM is obsolete: current browsers ignore it and allow framing.".into(),
                fix,
            ),
            Some(v) => (
                "x-frame-options-header-invalid",
                format!("X-Frame-Options {v:?}."),
                fix,
            ),
        }
    };
    out.push(finding(result, detail, fix));
}

/// X-XSS-Protection: reported, not rewarded. The current Tests & Scoring page has no
/// such test any more (the old table had -10 for a missing header); browsers removed
/// the XSS auditor, and `1; mode=block` could itself be abused to leak data.
pub(crate) fn x_xss_protection(response: &Response, out: &mut Vec<Finding>) {
    let Some(value) = super::header(response, "x-xss-protection") else {
        return;
    };
    out.push(Finding {
        id: "x-xss-protection-deprecated".into(),
        severity: Info,
        title: "X-XSS-Protection is deprecated".into(),
        detail: format!(
            "X-XSS-Protection {value:?}: no current browser has an XSS filter; reported, \
             not rewarded (the Observatory dropped the test). Use a CSP instead."
        ),
        score_delta: 0,
        cap: None,
        fix: Some(
            "Remove the header, or send `X-XSS-Protection: 0`; rely on Content-Security-Policy."
                .into(),
        ),
    });
}

/// Permissions-Policy: not an Observatory test, scored 0; counts for the letter.
pub(crate) fn permissions_policy(response: &Response, out: &mut Vec<Finding>) {
    let finding = match super::header(response, "permissions-policy") {
        Some(v) => Finding {
            id: "permissions-policy-implemented".into(),
            severity: Pass,
            title: "Permissions-Policy set".into(),
            detail: format!("Permissions-Policy: {v}."),
            score_delta: 0,
            cap: None,
            fix: None,
        },
        None => Finding {
            id: "permissions-policy-not-implemented".into(),
            severity: Info,
            title: "No Permissions-Policy".into(),
            detail: "Browser features (camera, microphone, geolocation, ...) are not \
                     restricted for the page and its frames. Not scored by the Observatory."
                .into(),
            score_delta: 0,
            cap: None,
            fix: Some(
                "add_header Permissions-Policy \"camera=(), microphone=(), geolocation=(), \
                 payment=(), usb=()\" always;"
                    .into(),
            ),
        },
    };
    out.push(finding);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn response(url: &str, headers: &[(&str, &str)]) -> Response {
        Response {
            url: url.into(),
            status: 200,
            headers: headers
                .iter()
                .map(|(n, v)| (n.to_string(), v.to_string()))
                .collect(),
        }
    }

    fn delta(id: &str, detail: &str) -> Finding {
        let mut f = finding(id, detail.into(), None);
        f.detail = detail.into();
        f
    }

    #[test]
    fn grade_chart_boundaries() {
        let cases = [
            (135, "A+"),
            (100, "A+"),
            (99, "A"),
            (90, "A"),
            (89, "A-"),
            (85, "A-"),
            (84, "B+"),
            (80, "B+"),
            (79, "B"),
            (70, "B"),
            (69, "B-"),
            (65, "B-"),
            (64, "C+"),
            (60, "C+"),
            (59, "C"),
            (50, "C"),
            (49, "C-"),
            (45, "C-"),
            (44, "D+"),
            (40, "D+"),
            (39, "D"),
            (30, "D"),
            (29, "D-"),
            (25, "D-"),
            (24, "F"),
            (0, "F"),
        ];
        for (score, expected) in cases {
            assert_eq!(grade(score), expected, "score {score}");
        }
    }

    #[test]
    fn every_rule_is_unique_and_known() {
        for (i, r) in RULES.iter().enumerate() {
            assert!(RULES[..i].iter().all(|o| o.id != r.id), "{} twice", r.id);
            assert_eq!(
                r.modifier > 0,
                r.severity == Pass && r.modifier != 0,
                "{}",
                r.id
            );
        }
        assert_eq!(modifier("csp-not-implemented"), -25);
        assert_eq!(modifier("cookies-session-without-secure-flag"), -40);
        assert_eq!(modifier("hsts-preload-ready"), 5);
    }

    #[test]
    fn bonuses_only_from_ninety() {
        // 100 - 10 = 90: the +5 counts.
        let mut f = vec![
            delta("hsts-implemented-max-age-less-than-six-months", ""),
            delta("referrer-policy-private", ""),
        ];
        assert_eq!(total(&mut f), 95);
        assert_eq!(f[1].score_delta, 5);
        // 100 - 20 + 5 would be 85, but 80 < 90: no bonus, and the finding says so.
        let mut f = vec![
            delta("hsts-not-implemented", ""),
            delta("referrer-policy-private", ""),
        ];
        assert_eq!(total(&mut f), 80);
        assert_eq!(f[1].score_delta, 0);
        assert!(f[1].detail.contains("not awarded"));
        // Never below 0.
        let mut f = vec![
            delta("cookies-session-without-secure-flag", ""),
            delta("csp-not-implemented", ""),
            delta("x-frame-options-not-implemented", ""),
            delta("hsts-not-implemented", ""),
        ];
        assert_eq!(total(&mut f), 0);
    }

    fn results(f: impl Fn(&mut Vec<Finding>)) -> Vec<(String, i32)> {
        let mut out = Vec::new();
        f(&mut out);
        out.into_iter().map(|f| (f.id, f.score_delta)).collect()
    }

    fn one(id: &str, m: i32) -> Vec<(String, i32)> {
        vec![(id.to_string(), m)]
    }

    #[test]
    fn redirection_results() {
        let chain = |urls: &[&str]| urls.iter().map(|u| response(u, &[])).collect::<Vec<_>>();
        let r = |urls: &[&str]| results(|out| redirection(&chain(urls), out));
        assert_eq!(r(&["https://a/"]), one("redirection-not-tested", 0));
        assert_eq!(r(&["http://a/"]), one("redirection-missing", -20));
        assert_eq!(
            r(&["http://a/", "http://b/"]),
            one("redirection-not-to-https", -20)
        );
        assert_eq!(
            r(&["http://a/", "http://a/x", "https://a/"]),
            one("redirection-not-to-https-on-initial-redirection", -10)
        );
        assert_eq!(
            r(&["http://a/", "https://www.a/"]),
            one("redirection-off-host-from-http", -5)
        );
        // Ports differ, host is the same.
        assert_eq!(
            r(&["http://a:8080/", "https://a:8443/", "https://b/"]),
            one("redirection-to-https", 0)
        );
    }

    #[test]
    fn referrer_policy_results() {
        let r =
            |v: &[(&str, &str)]| results(|out| referrer_policy(&response("https://a/", v), out));
        assert_eq!(r(&[]), one("referrer-policy-not-implemented", 0));
        assert_eq!(
            r(&[("referrer-policy", "No-Referrer")]),
            one("referrer-policy-private", 5)
        );
        assert_eq!(
            r(&[("referrer-policy", "unsafe-url")]),
            one("referrer-policy-unsafe", -5)
        );
        assert_eq!(
            r(&[("referrer-policy", "origin-when-cross-origin")]),
            one("referrer-policy-unsafe", -5)
        );
        assert_eq!(
            r(&[("referrer-policy", "no-referrer-when-downgrade")]),
            one("referrer-policy-no-referrer-when-downgrade", 0)
        );
        // The last valid token wins.
        assert_eq!(
            r(&[(
                "referrer-policy",
                "unsafe-url, bogus, strict-origin, nonsense"
            )]),
            one("referrer-policy-private", 5)
        );
        assert_eq!(
            r(&[
                ("referrer-policy", "no-referrer"),
                ("referrer-policy", "unsafe-url")
            ]),
            one("referrer-policy-unsafe", -5)
        );
        assert_eq!(
            r(&[("referrer-policy", "bogus")]),
            one("referrer-policy-header-invalid", -5)
        );
    }

    #[test]
    fn x_content_type_options_results() {
        let r = |v: &[(&str, &str)]| {
            results(|out| x_content_type_options(&response("https://a/", v), out))
        };
        assert_eq!(r(&[]), one("x-content-type-options-not-implemented", -5));
        assert_eq!(
            r(&[("x-content-type-options", " NoSniff ")]),
            one("x-content-type-options-nosniff", 0)
        );
        assert_eq!(
            r(&[("x-content-type-options", "sniff")]),
            one("x-content-type-options-header-invalid", -5)
        );
    }

    #[test]
    fn x_frame_options_results() {
        let r = |v: &[(&str, &str)], csp: Option<&str>| {
            let policy = csp.map(|c| super::super::csp::parse(c).unwrap());
            results(|out| x_frame_options(&response("https://a/", v), policy.as_ref(), out))
        };
        assert_eq!(r(&[], None), one("x-frame-options-not-implemented", -20));
        assert_eq!(
            r(&[], Some("default-src 'self'")),
            one("x-frame-options-not-implemented", -20)
        );
        assert_eq!(
            r(&[("x-frame-options", "deny")], None),
            one("x-frame-options-sameorigin-or-deny", 0)
        );
        assert_eq!(
            r(&[("x-frame-options", "SAMEORIGIN")], None),
            one("x-frame-options-sameorigin-or-deny", 0)
        );
        assert_eq!(
            r(&[("x-frame-options", "ALLOW-FROM https://b/")], None),
            one("x-frame-options-allow-from-origin", 0)
        );
        assert_eq!(
            r(&[("x-frame-options", "allowall")], None),
            one("x-frame-options-header-invalid", -20)
        );
        // frame-ancestors wins over a bad header.
        assert_eq!(
            r(
                &[("x-frame-options", "allowall")],
                Some("frame-ancestors 'self'")
            ),
            one("x-frame-options-implemented-via-csp", 5)
        );
    }

    #[test]
    fn x_xss_protection_is_reported_not_rewarded() {
        let r =
            |v: &[(&str, &str)]| results(|out| x_xss_protection(&response("https://a/", v), out));
        assert_eq!(r(&[]), vec![]);
        assert_eq!(
            r(&[("x-xss-protection", "1; mode=block")]),
            one("x-xss-protection-deprecated", 0)
        );
    }

    #[test]
    fn permissions_policy_presence() {
        let r =
            |v: &[(&str, &str)]| results(|out| permissions_policy(&response("https://a/", v), out));
        assert_eq!(r(&[]), one("permissions-policy-not-implemented", 0));
        assert_eq!(
            r(&[("permissions-policy", "camera=()")]),
            one("permissions-policy-implemented", 0)
        );
    }
}
