//! The header audit against the test bed's nginx on loopback (plain HTTP on the test
//! bed's port, HTTPS with a private CA on a second port, both in one `server` block),
//! and `judge` on hand-made chains.
//!
//! Expected scores are worked out by hand from the Observatory's Tests & Scoring table
//! (modifiers in each comment) and its two rounds: penalties first, bonuses only when
//! that is 90 or more, minimum 0.

use std::path::PathBuf;
use std::time::Duration;

use tempfile::TempDir;
use testbed::ports::free_port;
use testbed::servers::{Certs, Host, Nginx, Server};
use tlsaudit::headers::{self, Options};
use tlsaudit::report::{HeaderAudit, Response};

/// nginx with an HTTPS listener beside its plain one; the CA that signed its
/// certificate.
struct Site {
    nginx: Nginx,
    https: u16,
    ca: PathBuf,
    _certs: TempDir,
}

impl Site {
    /// Starts nginx with `directives(https_port)` in its server block and an index page.
    fn start(directives: impl FnOnce(u16) -> String) -> Site {
        let certs_dir = tempfile::tempdir().unwrap();
        let certs = Certs::generate(certs_dir.path(), [127, 0, 0, 1].into()).unwrap();
        let https = free_port().unwrap();
        let tls = format!(
            "listen 127.0.0.1:{https} ssl;\nssl_certificate {};\nssl_certificate_key {};\n",
            certs.cert.display(),
            certs.key.display()
        );
        let nginx = Nginx::start_with(Host::Loopback, &(tls + &directives(https))).unwrap();
        std::fs::write(
            nginx.root().join("index.html"),
            "<!doctype html><p>hi</p>\n",
        )
        .unwrap();
        Site {
            nginx,
            https,
            ca: certs.ca,
            _certs: certs_dir,
        }
    }

    fn https_url(&self, path: &str) -> String {
        format!("https://127.0.0.1:{}{path}", self.https)
    }

    fn http_url(&self, path: &str) -> String {
        format!("http://{}{path}", self.nginx.addr())
    }

    fn options(&self) -> Options {
        Options {
            timeout: Duration::from_secs(10),
            max_redirects: 5,
            ca_file: Some(self.ca.clone()),
        }
    }

    fn audit(&self, url: &str) -> HeaderAudit {
        headers::audit(url, &self.options())
            .unwrap_or_else(|e| panic!("audit {url}: {e:#}\n{}", self.nginx.log_tail(20)))
    }
}

/// `(id, score_delta)` of the finding `id`, if any.
fn delta(audit: &HeaderAudit, id: &str) -> Option<i32> {
    audit
        .findings
        .iter()
        .find(|f| f.id == id)
        .map(|f| f.score_delta)
}

/// Every finding `(id, delta)` of `expected` is there, and no other finding costs or
/// earns anything.
fn assert_scored(audit: &HeaderAudit, expected: &[(&str, i32)]) {
    for (id, d) in expected {
        assert_eq!(delta(audit, id), Some(*d), "{id} in {:#?}", audit.findings);
    }
    for f in &audit.findings {
        if f.score_delta != 0 {
            assert!(
                expected.iter().any(|(id, _)| *id == f.id),
                "unexpected {} ({}) in {:#?}",
                f.id,
                f.score_delta,
                audit.findings
            );
        }
    }
}

fn ids(audit: &HeaderAudit) -> Vec<&str> {
    audit.findings.iter().map(|f| f.id.as_str()).collect()
}

const HARDENED: &str = r#"
add_header Strict-Transport-Security "max-age=63072000; includeSubDomains; preload" always;
add_header Content-Security-Policy "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'" always;
add_header X-Content-Type-Options nosniff always;
add_header Referrer-Policy no-referrer always;
add_header Permissions-Policy "camera=(), microphone=(), geolocation=()" always;
add_header Set-Cookie "sessionid=abc; Path=/; Secure; HttpOnly; SameSite=Strict" always;
"#;

#[test]
fn hardened_site_scores_a_plus() {
    let site = Site::start(|_| HARDENED.into());
    let audit = site.audit(&site.https_url("/"));

    // Penalties: none, so 100 >= 90 and the bonuses count:
    //   CSP default-src 'none', nothing unsafe          +10
    //   cookies Secure, HttpOnly session, SameSite        +5
    //   HSTS 2 years, includeSubDomains, preload          +5 (preload-ready)
    //   Referrer-Policy no-referrer                       +5
    //   X-Frame-Options via CSP frame-ancestors           +5
    //   X-Content-Type-Options nosniff                     0
    //   redirection (https:// URL, not tested)             0
    // 100 + 30 = 130: A+.
    assert_scored(
        &audit,
        &[
            ("csp-implemented-with-no-unsafe-default-src-none", 10),
            ("cookies-secure-with-httponly-sessions-and-samesite", 5),
            ("hsts-preload-ready", 5),
            ("referrer-policy-private", 5),
            ("x-frame-options-implemented-via-csp", 5),
            ("x-content-type-options-nosniff", 0),
            ("redirection-not-tested", 0),
        ],
    );
    assert_eq!(
        (audit.score, audit.grade.as_str()),
        (130, "A+"),
        "{audit:#?}"
    );
    // All six headers, no warning.
    assert_eq!(audit.letter, "A+");
    assert_eq!(audit.chain.len(), 1);
    assert_eq!(audit.chain[0].status, 200);
    assert_eq!(delta(&audit, "permissions-policy-implemented"), Some(0));
    // `always`: the error page has them too.
    assert_eq!(delta(&audit, "headers-missing-on-error-pages"), None);
    let deltas: i32 = audit.findings.iter().map(|f| f.score_delta).sum();
    assert_eq!(100 + deltas, audit.score);
}

#[test]
fn bad_headers_score_f() {
    let site = Site::start(|_| {
        r#"
add_header Content-Security-Policy "default-src 'self'; script-src 'self' 'unsafe-inline' 'unsafe-eval'" always;
add_header Set-Cookie "sessionid=abc; Path=/" always;
add_header X-XSS-Protection "1; mode=block" always;
"#
        .into()
    });
    let audit = site.audit(&site.https_url("/"));

    // CSP 'unsafe-inline' in script-src                  -20 ('unsafe-eval' unscored: one
    //                                                        result per test)
    // cookie "sessionid" without Secure, no HSTS         -40 (worst cookie result)
    // no HSTS over HTTPS                                 -20
    // no X-Content-Type-Options                           -5
    // no X-Frame-Options, no frame-ancestors             -20
    // no Referrer-Policy                                   0
    // X-XSS-Protection                                     0 (reported, not rewarded)
    // 100 - 105 = -5 < 90: no bonuses; floored at 0: F.
    assert_scored(
        &audit,
        &[
            ("csp-implemented-with-unsafe-inline", -20),
            ("cookies-session-without-secure-flag", -40),
            ("hsts-not-implemented", -20),
            ("x-content-type-options-not-implemented", -5),
            ("x-frame-options-not-implemented", -20),
            ("referrer-policy-not-implemented", 0),
            ("x-xss-protection-deprecated", 0),
            ("csp-unsafe-eval", 0),
        ],
    );
    assert_eq!((audit.score, audit.grade.as_str()), (0, "F"), "{audit:#?}");
    // Only CSP of the six: F.
    assert_eq!(audit.letter, "F");
    let cookie = audit
        .findings
        .iter()
        .find(|f| f.id == "cookies-session-without-secure-flag")
        .unwrap();
    assert!(cookie.detail.contains("without HttpOnly"), "{cookie:?}");
    assert!(
        audit
            .findings
            .iter()
            .filter(|f| f.score_delta < 0)
            .all(|f| f.fix.is_some())
    );
}

/// Headers shared by both redirection cases (`always`, so the 301 carries them too).
const MIDDLING: &str = r#"
add_header Content-Security-Policy "default-src 'self'" always;
add_header X-Frame-Options DENY always;
add_header X-Content-Type-Options nosniff always;
add_header Referrer-Policy no-referrer always;
add_header Strict-Transport-Security "max-age=31536000" always;
"#;

#[test]
fn http_redirecting_to_https_and_not() {
    let site = Site::start(|https| {
        format!(
            "{MIDDLING}
location = / {{
    if ($scheme = http) {{ return 301 https://127.0.0.1:{https}$request_uri; }}
}}
location = /loop {{ return 302 /loop; }}
"
        )
    });

    let redirected = site.audit(&site.http_url("/"));
    let route: Vec<(&str, u16)> = redirected
        .chain
        .iter()
        .map(|r| (r.url.as_str(), r.status))
        .collect();
    assert_eq!(
        route,
        [
            (site.http_url("/").as_str(), 301),
            (site.https_url("/").as_str(), 200)
        ]
    );
    // http -> https on the same host                      0
    // HSTS one year on the final HTTPS response           0
    // CSP default-src 'self'                             +5
    // Referrer-Policy no-referrer                        +5
    // X-Frame-Options DENY, nosniff, no cookies           0
    // 100 >= 90, + 10 = 110: A+.
    assert_scored(
        &redirected,
        &[
            ("redirection-to-https", 0),
            ("hsts-implemented-max-age-at-least-six-months", 0),
            ("csp-implemented-with-no-unsafe", 5),
            ("referrer-policy-private", 5),
            ("x-frame-options-sameorigin-or-deny", 0),
            ("cookies-not-found", 0),
        ],
    );
    assert_eq!((redirected.score, redirected.grade.as_str()), (110, "A+"));
    // The 301 carried HSTS over plain HTTP, where it is ignored.
    assert_eq!(delta(&redirected, "hsts-ignored-over-http"), Some(0));
    // Five of six (no Permissions-Policy): B.
    assert_eq!(redirected.letter, "B");

    let plain = site.audit(&site.http_url("/index.html"));
    assert_eq!(plain.chain.len(), 1);
    // no redirection to https                           -20
    // final response not HTTPS, so no HSTS              -20
    // CSP default-src 'self'                             +5 (not awarded: 60 < 90)
    // Referrer-Policy no-referrer                        +5 (not awarded)
    // 100 - 40 = 60: C+.
    assert_scored(
        &plain,
        &[
            ("redirection-missing", -20),
            ("hsts-not-implemented-no-https", -20),
        ],
    );
    assert_eq!(delta(&plain, "csp-implemented-with-no-unsafe"), Some(0));
    assert_eq!((plain.score, plain.grade.as_str()), (60, "C+"));
    assert!(ids(&plain).contains(&"hsts-ignored-over-http"));
    // HSTS does not count over HTTP: four of six, C.
    assert_eq!(plain.letter, "C");

    // A redirect loop ends the audit with an error.
    let looping = headers::audit(&site.http_url("/loop"), &site.options()).unwrap_err();
    assert!(
        format!("{looping:#}").contains("more than 5 redirects"),
        "{looping:#}"
    );
}

#[test]
fn headers_missing_on_error_pages() {
    // No `always`: nginx adds these to the 200 but not to the 404.
    let site = Site::start(|_| {
        r#"
add_header Strict-Transport-Security "max-age=31536000";
add_header Content-Security-Policy "default-src 'self'; frame-ancestors 'self'";
add_header X-Content-Type-Options nosniff;
add_header Referrer-Policy strict-origin-when-cross-origin always;
"#
        .into()
    });
    let audit = site.audit(&site.https_url("/"));
    let finding = audit
        .findings
        .iter()
        .find(|f| f.id == "headers-missing-on-error-pages")
        .unwrap_or_else(|| panic!("{:#?}", audit.findings));
    assert_eq!(finding.score_delta, 0);
    for name in [
        "strict-transport-security",
        "content-security-policy",
        "x-content-type-options",
    ] {
        assert!(finding.title.contains(name), "{name}: {finding:?}");
    }
    // Sent with `always`: on the error page too.
    assert!(!finding.title.contains("referrer-policy"), "{finding:?}");
    assert!(finding.detail.contains(" 404 "), "{finding:?}");
    assert!(finding.fix.as_deref().unwrap().contains("always"));
}

#[test]
fn untrusted_certificate_is_an_error() {
    let site = Site::start(|_| String::new());
    let options = Options {
        ca_file: None,
        ..site.options()
    };
    let err = headers::audit(&site.https_url("/"), &options).unwrap_err();
    assert!(
        format!("{err:#}").contains("GET https://127.0.0.1"),
        "{err:#}"
    );
    // With the CA it is fine.
    assert_eq!(site.audit(&site.https_url("/")).chain[0].status, 200);
}

fn response(url: &str, status: u16, headers: &[(&str, &str)]) -> Response {
    Response::new(url, status, headers)
}

#[test]
fn judge_scores_a_chain() {
    // http -> https on another host, then a short HSTS and a cookie without Secure
    // that HSTS does not protect (under six months does not pass).
    let chain = vec![
        response(
            "http://example.org/",
            301,
            &[("location", "https://www.example.org/")],
        ),
        response(
            "https://www.example.org/",
            200,
            &[
                ("strict-transport-security", "max-age=86400"),
                (
                    "content-security-policy",
                    "default-src 'none'; frame-ancestors 'none'",
                ),
                ("x-content-type-options", "nosniff"),
                ("set-cookie", "theme=dark"),
                ("referrer-policy", "unsafe-url"),
            ],
        ),
    ];
    let audit = headers::judge("http://example.org/", chain, None);
    // off-host redirect -5, HSTS < 6 months -10, cookie without Secure -20,
    // Referrer-Policy unsafe-url -5: 100 - 40 = 60 < 90, so CSP +10 and
    // frame-ancestors +5 are not awarded. 60: C+.
    assert_scored(
        &audit,
        &[
            ("redirection-off-host-from-http", -5),
            ("hsts-implemented-max-age-less-than-six-months", -10),
            ("cookies-without-secure-flag", -20),
            ("referrer-policy-unsafe", -5),
        ],
    );
    assert_eq!((audit.score, audit.grade.as_str()), (60, "C+"));
    assert_eq!(
        delta(&audit, "csp-implemented-with-no-unsafe-default-src-none"),
        Some(0)
    );
    // Five of six (no Permissions-Policy): B.
    assert_eq!(audit.letter, "B");
    assert_eq!(audit.chain.len(), 2);
}

#[test]
fn judge_compares_the_error_page() {
    let page = response(
        "https://h/",
        200,
        &[
            ("x-frame-options", "DENY"),
            ("permissions-policy", "camera=()"),
        ],
    );
    let error = response(
        "https://h/tlsaudit-404-1",
        404,
        &[("permissions-policy", "camera=()")],
    );
    let audit = headers::judge("https://h/", vec![page.clone()], Some(error));
    let f = audit
        .findings
        .iter()
        .find(|f| f.id == "headers-missing-on-error-pages")
        .unwrap();
    assert_eq!(f.title, "Missing on error pages: x-frame-options");
    let audit = headers::judge("https://h/", vec![page.clone()], Some(page));
    assert_eq!(delta(&audit, "headers-missing-on-error-pages"), None);
}
