//! Set-Cookie: parser and the Observatory's cookie test (`cookies()` in
//! mozilla/http-observatory `httpobs/scanner/analyzer/headers.py`; "Cookies" table of the
//! Observatory's Tests & Scoring page):
//!
//! | result | modifier |
//! | --- | :-: |
//! | cookies-secure-with-httponly-sessions-and-samesite | +5 |
//! | cookies-not-found, cookies-secure-with-httponly-sessions | 0 |
//! | cookies-without-secure-flag-but-protected-by-hsts | -5 |
//! | cookies-session-without-secure-flag-but-protected-by-hsts | -10 |
//! | cookies-without-secure-flag | -20 |
//! | cookies-samesite-flag-invalid | -20 |
//! | cookies-anticsrf-without-samesite-flag | -20 |
//! | cookies-session-without-httponly-flag | -30 |
//! | cookies-session-without-secure-flag | -40 |
//!
//! As in the analyzer: every cookie of every response followed counts; a session cookie
//! is one whose name contains `login` or `sess`, an anti-CSRF token one containing
//! `csrf` (case-insensitive); SameSite must be `Strict` or `Lax` (bare `SameSite` counts
//! as Lax), anything else, `None` included, is invalid; the result is the worst by the
//! analyzer's own order (`goodness`, which is not the order of the modifiers); the
//! bonus needs at least one cookie with a valid SameSite and no problem. A cookie set
//! over plain HTTP counts as without `Secure` ("or set via HTTP"). Cloudflare's
//! `__cfduid` and Heroku's `heroku-session-affinity` are ignored, as there.

use crate::report::{Finding, Response};

use super::score;

/// Cookies a site does not control (analyzer's `COOKIES_TO_DELETE`).
const IGNORED: [&str; 2] = ["__cfduid", "heroku-session-affinity"];

/// The analyzer's order of badness, least bad first.
const WORSE: [&str; 7] = [
    "cookies-without-secure-flag-but-protected-by-hsts",
    "cookies-without-secure-flag",
    "cookies-session-without-secure-flag-but-protected-by-hsts",
    "cookies-samesite-flag-invalid",
    "cookies-anticsrf-without-samesite-flag",
    "cookies-session-without-httponly-flag",
    "cookies-session-without-secure-flag",
];

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SameSite {
    Strict,
    Lax,
    /// `None` or an unknown value.
    Invalid,
}

/// What the test reads from one Set-Cookie.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cookie {
    pub name: String,
    pub secure: bool,
    pub http_only: bool,
    pub same_site: Option<SameSite>,
}

impl Cookie {
    pub fn is_session(&self) -> bool {
        let name = self.name.to_ascii_lowercase();
        name.contains("login") || name.contains("sess")
    }

    pub fn is_anti_csrf(&self) -> bool {
        self.name.to_ascii_lowercase().contains("csrf")
    }
}

/// Parses a Set-Cookie value (RFC 6265 §5.2: attribute names case-insensitive, the
/// first SameSite wins in the analyzer). None without a `name=`.
pub fn parse(value: &str) -> Option<Cookie> {
    let mut parts = value.split(';');
    let (name, _) = parts.next()?.split_once('=')?;
    let name = name.trim();
    if name.is_empty() {
        return None;
    }
    let mut cookie = Cookie {
        name: name.into(),
        secure: false,
        http_only: false,
        same_site: None,
    };
    for attribute in parts {
        let (key, val) = match attribute.split_once('=') {
            Some((k, v)) => (k.trim(), Some(v.trim())),
            None => (attribute.trim(), None),
        };
        if key.eq_ignore_ascii_case("secure") {
            cookie.secure = true;
        } else if key.eq_ignore_ascii_case("httponly") {
            cookie.http_only = true;
        } else if key.eq_ignore_ascii_case("samesite") && cookie.same_site.is_none() {
            cookie.same_site = Some(match val.map(str::to_ascii_lowercase).as_deref() {
                None | Some("lax") => SameSite::Lax,
                Some("strict") => SameSite::Strict,
                Some(_) => SameSite::Invalid,
            });
        }
    }
    Some(cookie)
}

/// The result for `cookies` (with whether each was set over HTTPS), given whether HSTS
/// protects the site; and a line per problem.
pub fn classify(cookies: &[(Cookie, bool)], hsts: bool) -> (&'static str, Vec<String>) {
    if cookies.is_empty() {
        return ("cookies-not-found", Vec::new());
    }
    let mut worst: Option<usize> = None;
    let mut problems = Vec::new();
    let mut same_site = false;
    let mut hit = |result: &'static str, problem: String| {
        let rank = WORSE
            .iter()
            .position(|r| *r == result)
            .expect("a known result");
        worst = Some(worst.map_or(rank, |w| w.max(rank)));
        problems.push(problem);
    };
    for (cookie, over_https) in cookies {
        let name = &cookie.name;
        let secure = cookie.secure && *over_https;
        let why = if cookie.secure {
            "set over plain HTTP"
        } else {
            "without Secure"
        };
        match cookie.same_site {
            Some(SameSite::Invalid) => hit(
                "cookies-samesite-flag-invalid",
                format!("{name}: SameSite is neither Strict nor Lax"),
            ),
            Some(_) => same_site = true,
            None => {}
        }
        if !secure {
            let result = if hsts {
                "cookies-without-secure-flag-but-protected-by-hsts"
            } else {
                "cookies-without-secure-flag"
            };
            hit(result, format!("{name}: {why}"));
        }
        if cookie.is_anti_csrf() && cookie.same_site.is_none() {
            hit(
                "cookies-anticsrf-without-samesite-flag",
                format!("{name}: anti-CSRF token without SameSite"),
            );
        }
        if cookie.is_session() && !secure {
            let result = if hsts {
                "cookies-session-without-secure-flag-but-protected-by-hsts"
            } else {
                "cookies-session-without-secure-flag"
            };
            hit(result, format!("{name}: session cookie {why}"));
        }
        if cookie.is_session() && !cookie.http_only {
            hit(
                "cookies-session-without-httponly-flag",
                format!("{name}: session cookie without HttpOnly"),
            );
        }
    }
    let result = match worst {
        Some(rank) => WORSE[rank],
        None if same_site => "cookies-secure-with-httponly-sessions-and-samesite",
        None => "cookies-secure-with-httponly-sessions",
    };
    (result, problems)
}

pub(crate) fn test(chain: &[Response], hsts: bool, out: &mut Vec<Finding>) {
    let cookies: Vec<(Cookie, bool)> = chain
        .iter()
        .flat_map(|r| {
            let https = super::is_https(&r.url);
            super::headers(r, "set-cookie")
                .into_iter()
                .filter_map(parse)
                .map(move |c| (c, https))
        })
        .filter(|(c, _)| !IGNORED.contains(&c.name.as_str()))
        .collect();
    let (result, problems) = classify(&cookies, hsts);
    let names: Vec<&str> = cookies.iter().map(|(c, _)| c.name.as_str()).collect();
    let detail = if problems.is_empty() {
        format!(
            "Cookies: {}.",
            if names.is_empty() {
                "none".into()
            } else {
                names.join(", ")
            }
        )
    } else {
        format!(
            "{}. The Observatory scores the worst cookie result only.",
            problems.join("; ")
        )
    };
    let fix = match result {
        "cookies-not-found" | "cookies-secure-with-httponly-sessions-and-samesite" => None,
        "cookies-secure-with-httponly-sessions" => {
            Some("Add `SameSite=Lax` (or Strict) to every cookie.".into())
        }
        _ => Some(
            "Set every cookie with `Secure; HttpOnly; SameSite=Lax` (Strict where possible) in \
             the application; nginx in front can add missing flags with \
             `proxy_cookie_flags ~ secure httponly samesite=lax;`."
                .into(),
        ),
    };
    out.push(score::finding(result, detail, fix));
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cookie(value: &str) -> Cookie {
        parse(value).unwrap()
    }

    #[test]
    fn parses_flags() {
        let c = cookie("SESSIONID=a=b; path=/; SECURE; httponly; SameSite=strict; SameSite=None");
        assert_eq!(
            c,
            Cookie {
                name: "SESSIONID".into(),
                secure: true,
                http_only: true,
                same_site: Some(SameSite::Strict)
            }
        );
        assert!(c.is_session());
        assert_eq!(cookie("a=1; SameSite").same_site, Some(SameSite::Lax));
        assert_eq!(
            cookie("a=1; SameSite=None; Secure").same_site,
            Some(SameSite::Invalid)
        );
        assert_eq!(cookie("a=1").same_site, None);
        assert!(cookie("XCSRF-Token=1").is_anti_csrf());
        assert!(cookie("user_login=1").is_session());
        assert_eq!(parse("novalue; Secure"), None);
        assert_eq!(parse("=1"), None);
    }

    fn result(values: &[&str], https: bool, hsts: bool) -> &'static str {
        let cookies: Vec<(Cookie, bool)> = values.iter().map(|v| (cookie(v), https)).collect();
        classify(&cookies, hsts).0
    }

    #[test]
    fn each_result() {
        assert_eq!(result(&[], true, false), "cookies-not-found");
        assert_eq!(
            result(&["a=1; Secure"], true, false),
            "cookies-secure-with-httponly-sessions"
        );
        assert_eq!(
            result(&["a=1; Secure; SameSite=Lax", "b=1; Secure"], true, false),
            "cookies-secure-with-httponly-sessions-and-samesite"
        );
        assert_eq!(
            result(&["a=1"], true, true),
            "cookies-without-secure-flag-but-protected-by-hsts"
        );
        assert_eq!(result(&["a=1"], true, false), "cookies-without-secure-flag");
        // Secure, but set over plain HTTP.
        assert_eq!(
            result(&["a=1; Secure"], false, false),
            "cookies-without-secure-flag"
        );
        assert_eq!(
            result(&["sess=1; HttpOnly"], true, true),
            "cookies-session-without-secure-flag-but-protected-by-hsts"
        );
        assert_eq!(
            result(&["a=1; Secure; SameSite=None"], true, false),
            "cookies-samesite-flag-invalid"
        );
        assert_eq!(
            result(&["csrf=1; Secure"], true, false),
            "cookies-anticsrf-without-samesite-flag"
        );
        assert_eq!(
            result(&["sess=1; Secure"], true, false),
            "cookies-session-without-httponly-flag"
        );
        assert_eq!(
            result(&["sess=1; HttpOnly"], true, false),
            "cookies-session-without-secure-flag"
        );
        // The worst wins, in the analyzer's order.
        assert_eq!(
            result(&["sess=1", "csrf=1; Secure"], true, false),
            "cookies-session-without-secure-flag"
        );
        assert_eq!(
            result(&["sess=1; HttpOnly", "csrf=1"], true, true),
            "cookies-anticsrf-without-samesite-flag"
        );
    }

    #[test]
    fn ignored_cookies_and_deltas() {
        let chain = vec![Response {
            url: "https://h/".into(),
            status: 200,
            headers: vec![
                ("set-cookie".into(), "__cfduid=1".into()),
                ("set-cookie".into(), "sid_session=1; Secure".into()),
            ],
        }];
        let mut out = Vec::new();
        test(&chain, false, &mut out);
        assert_eq!(out[0].id, "cookies-session-without-httponly-flag");
        assert_eq!(out[0].score_delta, -30);
        assert!(!out[0].detail.contains("__cfduid"));
    }
}
