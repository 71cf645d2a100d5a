//! The header audit: fetches a URL, follows its redirects, and grades the security
//! headers of the final response twice, by the Mozilla HTTP Observatory's scoring
//! ([`score`]) and by a securityheaders.com-style letter ([`letter`]).
//!
//! * [`fetch`]: the I/O: GET with ureq 3, redirects followed by hand so each response is
//!   recorded, TLS verified against the system roots plus an optional extra CA.
//! * [`judge`]: the pure part, from recorded [`Response`]s to a [`HeaderAudit`].
//! * [`csp`], [`hsts`], [`cookies`]: parsers and the Observatory tests of those headers.
//! * [`score`]: the Observatory result table, the smaller tests (redirection,
//!   Referrer-Policy, X-Content-Type-Options, X-Frame-Options), the two-round total and
//!   the grade chart.
//! * [`letter`]: the six-header letter.
//!
//! Source of the rules: the Observatory's published methodology ("Tests & Scoring",
//! MDN, <https://developer.mozilla.org/en-US/observatory/docs/tests_and_scoring>, the
//! successor of `httpobs/docs/scoring.md` in mozilla/http-observatory) and its reference
//! analyzer (`httpobs/scanner/analyzer/headers.py`, `misc.py`, `grader/grade.py`,
//! `scanner.py`) where the table leaves details open. Each Observatory test yields
//! exactly one result and one modifier; problems beyond the scored one are reported
//! with `score_delta` 0 so the sum of the findings' deltas is always the score's
//! distance from 100 (before the floor at 0).
//!
//! Out of scope, on purpose: CSP and Referrer-Policy set by `<meta http-equiv>` and
//! Subresource Integrity (both need HTML parsing), CORS and CORP (no extra requests),
//! the HSTS preload list (needs the network; see [`hsts`] for what stands in for it).
//! X-XSS-Protection is reported, not rewarded: the current table dropped the test and
//! browsers removed the XSS auditor.

pub mod cookies;
pub mod csp;
pub mod fetch;
pub mod hsts;
pub mod letter;
pub mod score;

use std::path::PathBuf;
use std::time::Duration;

use crate::report::{Finding, HeaderAudit, Response, Severity};

/// How to fetch.
#[derive(Debug, Clone)]
pub struct Options {
    /// Each request (connect, TLS, response) must finish within this.
    pub timeout: Duration,
    /// Redirects followed before giving up with an error.
    pub max_redirects: usize,
    /// Extra trust anchors (PEM), e.g. a test CA; the system roots are always used.
    pub ca_file: Option<PathBuf>,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            timeout: Duration::from_secs(10),
            max_redirects: 10,
            ca_file: None,
        }
    }
}

/// Fetches `url` (GET), follows redirects (recording each response), audits the final
/// response's headers (and the redirection from `http://`), and fetches a path that
/// cannot exist on the final origin to see whether the error page has the same
/// headers.
pub fn audit(url: &str, options: &Options) -> anyhow::Result<HeaderAudit> {
    let client = fetch::Client::new(options)?;
    let chain = client.follow(url, options.max_redirects)?;
    let error_page = match chain.last() {
        Some(last) => client.error_page(&last.url).ok(),
        None => None,
    };
    Ok(judge(url, chain, error_page))
}

/// Scores a chain of responses (first request to final response) and, if fetched, the
/// error page of the final origin.
pub fn judge(url: &str, chain: Vec<Response>, error_page: Option<Response>) -> HeaderAudit {
    let Some(last) = chain.last() else {
        let findings = vec![Finding {
            id: "no-response".into(),
            severity: Severity::High,
            title: "No response to audit".into(),
            detail: "The chain of responses is empty.".into(),
            score_delta: 0,
            cap: None,
            fix: None,
        }];
        return HeaderAudit {
            url: url.into(),
            chain,
            score: 0,
            grade: score::grade(0).into(),
            letter: "F".into(),
            findings,
        };
    };
    let https = is_https(&last.url);

    let mut findings = Vec::new();
    let csp = csp::test(last, https, &mut findings);
    let hsts = hsts::test(&chain, &mut findings);
    cookies::test(&chain, hsts.protects(), &mut findings);
    score::redirection(&chain, &mut findings);
    score::referrer_policy(last, &mut findings);
    score::x_content_type_options(last, &mut findings);
    score::x_frame_options(last, csp.as_ref(), &mut findings);
    score::x_xss_protection(last, &mut findings);
    score::permissions_policy(last, &mut findings);
    if let Some(error_page) = &error_page {
        error_page_headers(last, error_page, https, &mut findings);
    }

    let total = score::total(&mut findings);
    let letter = letter::letter(last, https, csp.as_ref(), &findings);
    HeaderAudit {
        url: url.into(),
        chain,
        score: total,
        grade: score::grade(total).into(),
        letter: letter.into(),
        findings,
    }
}

/// The headers whose absence on error pages is reported: the six of the letter.
const ERROR_PAGE_HEADERS: [&str; 6] = [
    "strict-transport-security",
    "content-security-policy",
    "x-frame-options",
    "x-content-type-options",
    "referrer-policy",
    "permissions-policy",
];

/// Headers on the page but not on the error page: nginx's `add_header` (without
/// `always`) only adds to 200, 201, 204, 206, 301, 302, 303, 304, 307 and 308
/// responses, so 404 and 50x pages, often the ones reflecting input, go without CSP.
/// Not an Observatory test (it fetches only the page): scored 0.
fn error_page_headers(page: &Response, error: &Response, https: bool, out: &mut Vec<Finding>) {
    let missing: Vec<&str> = ERROR_PAGE_HEADERS
        .iter()
        .copied()
        .filter(|name| https || *name != "strict-transport-security")
        .filter(|name| header(page, name).is_some() && header(error, name).is_none())
        .collect();
    if missing.is_empty() {
        return;
    }
    out.push(Finding {
        id: "headers-missing-on-error-pages".into(),
        severity: Severity::Low,
        title: format!("Missing on error pages: {}", missing.join(", ")),
        detail: format!(
            "{} answered {} without headers the page has. Error pages are where injected \
             input is often reflected. In nginx, `add_header` without `always` only applies \
             to 2xx and 3xx responses. Not scored by the Observatory, which fetches only the \
             page.",
            error.url, error.status
        ),
        score_delta: 0,
        cap: None,
        fix: Some(
            "missing on error pages: add `always` to each nginx add_header, e.g. \
             `add_header X-Content-Type-Options nosniff always;`"
                .into(),
        ),
    });
}

/// The first value of header `name` (lowercase), as received.
pub(crate) fn header<'a>(response: &'a Response, name: &str) -> Option<&'a str> {
    response
        .headers
        .iter()
        .find(|(n, _)| n.eq_ignore_ascii_case(name))
        .map(|(_, v)| v.as_str())
}

/// Every value of header `name`, in order.
pub(crate) fn headers<'a>(response: &'a Response, name: &str) -> Vec<&'a str> {
    response
        .headers
        .iter()
        .filter(|(n, _)| n.eq_ignore_ascii_case(name))
        .map(|(_, v)| v.as_str())
        .collect()
}

pub(crate) fn is_https(url: &str) -> bool {
    url.get(..8)
        .is_some_and(|s| s.eq_ignore_ascii_case("https://"))
}

/// A URL split into scheme (lowercase), authority and path-and-query (at least `/`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Url<'a> {
    pub scheme: String,
    pub authority: &'a str,
    pub path: &'a str,
}

impl<'a> Url<'a> {
    pub(crate) fn parse(url: &'a str) -> Option<Url<'a>> {
        let (scheme, rest) = url.split_once("://")?;
        let end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
        let (authority, path) = rest.split_at(end);
        if authority.is_empty() {
            return None;
        }
        Some(Url {
            scheme: scheme.to_ascii_lowercase(),
            authority,
            path: if path.is_empty() { "/" } else { path },
        })
    }

    /// The host without user info, port or IPv6 brackets, lowercase.
    pub(crate) fn host(&self) -> String {
        let hostport = self.authority.rsplit('@').next().unwrap_or(self.authority);
        let host = if let Some(v6) = hostport.strip_prefix('[') {
            v6.split(']').next().unwrap_or(v6)
        } else {
            hostport.split(':').next().unwrap_or(hostport)
        };
        host.to_ascii_lowercase()
    }

    pub(crate) fn origin(&self) -> String {
        format!("{}://{}", self.scheme, self.authority)
    }
}

/// `location` (a redirect target) resolved against `base`.
pub(crate) fn resolve(base: &str, location: &str) -> Option<String> {
    let location = location.trim();
    if Url::parse(location).is_some() {
        return Some(location.to_string());
    }
    let base = Url::parse(base)?;
    if let Some(rest) = location.strip_prefix("//") {
        return Some(format!("{}://{rest}", base.scheme));
    }
    if location.starts_with('/') {
        return Some(format!("{}{location}", base.origin()));
    }
    let path = base.path.split(['?', '#']).next().unwrap_or("/");
    let dir = &path[..path.rfind('/').map_or(0, |i| i + 1)];
    if location.starts_with('?') {
        return Some(format!("{}{path}{location}", base.origin()));
    }
    Some(format!("{}{dir}{location}", base.origin()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn response(url: &str, status: u16, headers: &[(&str, &str)]) -> Response {
        Response::new(url, status, headers)
    }

    #[test]
    fn urls_split_and_resolve() {
        let u = Url::parse("HTTPS://user@[::1]:8443").unwrap();
        assert_eq!((u.scheme.as_str(), u.path), ("https", "/"));
        assert_eq!(u.host(), "::1");
        assert_eq!(
            Url::parse("http://Example.COM:80/a?b").unwrap().host(),
            "example.com"
        );
        assert_eq!(Url::parse("nope"), None);
        let base = "http://h:1/a/b?q";
        assert_eq!(resolve(base, "https://x/").as_deref(), Some("https://x/"));
        assert_eq!(resolve(base, "//y/z").as_deref(), Some("http://y/z"));
        assert_eq!(resolve(base, "/c").as_deref(), Some("http://h:1/c"));
        assert_eq!(resolve(base, "c").as_deref(), Some("http://h:1/a/c"));
        assert_eq!(resolve(base, "?r").as_deref(), Some("http://h:1/a/b?r"));
    }

    #[test]
    fn error_page_without_the_headers_is_reported() {
        let page = response(
            "https://h/",
            200,
            &[
                ("x-content-type-options", "nosniff"),
                ("referrer-policy", "no-referrer"),
            ],
        );
        let same = response(
            "https://h/x",
            404,
            &page
                .headers
                .iter()
                .map(|(n, v)| (n.as_str(), v.as_str()))
                .collect::<Vec<_>>(),
        );
        let bare = response("https://h/x", 404, &[("referrer-policy", "no-referrer")]);
        let mut out = Vec::new();
        error_page_headers(&page, &same, true, &mut out);
        assert!(out.is_empty());
        error_page_headers(&page, &bare, true, &mut out);
        assert_eq!(out.len(), 1);
        assert_eq!(out[0].id, "headers-missing-on-error-pages");
        assert!(out[0].title.contains("x-content-type-options"));
        assert!(!out[0].title.contains("referrer-policy"));
        assert!(out[0].fix.as_deref().unwrap().contains("always"));
    }

    #[test]
    fn empty_chain_is_an_f() {
        let audit = judge("https://h/", Vec::new(), None);
        assert_eq!((audit.score, audit.grade.as_str()), (0, "F"));
    }
}
