//! Strict-Transport-Security: parser and the Observatory's HSTS test
//! (`strict_transport_security()` in mozilla/http-observatory
//! `httpobs/scanner/analyzer/headers.py`; "HTTP Strict Transport Security" table of the
//! Observatory's Tests & Scoring page):
//!
//! | result | modifier |
//! | --- | :-: |
//! | hsts-preloaded | +5 |
//! | hsts-implemented-max-age-at-least-six-months | 0 |
//! | hsts-implemented-max-age-less-than-six-months | -10 |
//! | hsts-not-implemented | -20 |
//! | hsts-not-implemented-no-https | -20 |
//! | hsts-header-invalid | -20 |
//!
//! `hsts-preloaded` means "on the Chromium preload list", which needs the network. In its
//! place we award `hsts-preload-ready` (+5) to a header that meets the hstspreload.org
//! submission requirements: `max-age` of at least one year (31536000),
//! `includeSubDomains` and `preload`. "Six months" is 15552000 s, the analyzer's "white
//! lie" below the table's 15768000 because so many sites send 180 days.
//!
//! The header counts only on an HTTPS response: RFC 6797 §8.1 has user agents ignore it
//! over plain HTTP; seeing it there is reported as such. An invalid certificate makes
//! the fetch fail, so `hsts-invalid-cert` never arises.

use crate::report::{Finding, Response, Severity};

use super::score;

const SIX_MONTHS: u64 = 15_552_000;
const ONE_YEAR: u64 = 31_536_000;

pub const FIX: &str =
    "add_header Strict-Transport-Security \"max-age=63072000; includeSubDomains; preload\" always;";

/// A parsed header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Hsts {
    pub max_age: u64,
    pub include_subdomains: bool,
    pub preload: bool,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ParseError {
    #[error("the header is set more than once")]
    Repeated,
    #[error("max-age is missing")]
    NoMaxAge,
    #[error("max-age {0:?} is not a number")]
    BadMaxAge(String),
    #[error("max-age=0 removes HSTS")]
    ZeroMaxAge,
}

/// Parses one header value. Directive names are case-insensitive and `max-age` may be
/// quoted (RFC 6797 §6.1); a comma means two headers were joined: invalid, as in the
/// analyzer.
pub fn parse(value: &str) -> Result<Hsts, ParseError> {
    if value.contains(',') {
        return Err(ParseError::Repeated);
    }
    let mut max_age = None;
    let mut include_subdomains = false;
    let mut preload = false;
    for directive in value.split(';') {
        let directive = directive.trim().to_ascii_lowercase();
        if let Some(age) = directive.strip_prefix("max-age") {
            let Some(age) = age.trim_start().strip_prefix('=') else {
                return Err(ParseError::BadMaxAge(age.into()));
            };
            let age = age.trim().trim_matches('"');
            max_age = Some(
                age.parse::<u64>()
                    .map_err(|_| ParseError::BadMaxAge(age.into()))?,
            );
        } else if directive == "includesubdomains" {
            include_subdomains = true;
        } else if directive == "preload" {
            preload = true;
        }
    }
    match max_age {
        None => Err(ParseError::NoMaxAge),
        Some(0) => Err(ParseError::ZeroMaxAge),
        Some(max_age) => Ok(Hsts {
            max_age,
            include_subdomains,
            preload,
        }),
    }
}

/// The HSTS test's outcome.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Outcome {
    pub result: &'static str,
    pub hsts: Option<Hsts>,
}

impl Outcome {
    /// The analyzer's "pass": HSTS keeps cookies off plain HTTP (the cookie test's
    /// "protected by HSTS").
    pub fn protects(&self) -> bool {
        matches!(
            self.result,
            "hsts-implemented-max-age-at-least-six-months" | "hsts-preload-ready"
        )
    }
}

/// The result for the final response.
pub fn classify(final_https: bool, fields: &[&str]) -> (Outcome, Option<ParseError>) {
    let outcome = |result| Outcome { result, hsts: None };
    if !final_https {
        return (outcome("hsts-not-implemented-no-https"), None);
    }
    let value = match fields {
        [] => return (outcome("hsts-not-implemented"), None),
        [one] => *one,
        _ => return (outcome("hsts-header-invalid"), Some(ParseError::Repeated)),
    };
    match parse(value) {
        Err(e) => (outcome("hsts-header-invalid"), Some(e)),
        Ok(h) => {
            let result = if h.max_age < SIX_MONTHS {
                "hsts-implemented-max-age-less-than-six-months"
            } else if h.max_age >= ONE_YEAR && h.include_subdomains && h.preload {
                "hsts-preload-ready"
            } else {
                "hsts-implemented-max-age-at-least-six-months"
            };
            (
                Outcome {
                    result,
                    hsts: Some(h),
                },
                None,
            )
        }
    }
}

pub(crate) fn test(chain: &[Response], out: &mut Vec<Finding>) -> Outcome {
    let last = chain.last().expect("judge checks the chain is not empty");
    let https = super::is_https(&last.url);
    let fields = super::headers(last, "strict-transport-security");
    let (outcome, error) = classify(https, &fields);
    let detail = match (outcome.result, &error, outcome.hsts) {
        (_, Some(e), _) => format!("Strict-Transport-Security {fields:?}: {e}."),
        ("hsts-not-implemented-no-https", ..) => {
            format!(
                "The final response ({}) is not HTTPS, where HSTS could be set.",
                last.url
            )
        }
        ("hsts-not-implemented", ..) => "No Strict-Transport-Security header.".into(),
        (_, None, Some(h)) => format!(
            "max-age={} ({} days){}{}.{}",
            h.max_age,
            h.max_age / 86_400,
            if h.include_subdomains {
                ", includeSubDomains"
            } else {
                ""
            },
            if h.preload { ", preload" } else { "" },
            if outcome.result == "hsts-preload-ready" {
                " Meets the hstspreload.org requirements (one year, includeSubDomains, \
                 preload); this stands in for the Observatory's hsts-preloaded, which checks \
                 the preload list itself."
            } else if h.preload {
                " `preload` needs max-age of a year and includeSubDomains to be accepted."
            } else {
                ""
            }
        ),
        _ => String::new(),
    };
    let fix = match outcome.result {
        "hsts-preload-ready" | "hsts-implemented-max-age-at-least-six-months" => None,
        "hsts-not-implemented-no-https" => Some(format!("Serve the site over HTTPS, then: {FIX}")),
        _ => Some(FIX.into()),
    };
    out.push(score::finding(outcome.result, detail, fix));

    let over_http: Vec<&str> = chain
        .iter()
        .filter(|r| {
            !super::is_https(&r.url) && super::header(r, "strict-transport-security").is_some()
        })
        .map(|r| r.url.as_str())
        .collect();
    if !over_http.is_empty() {
        out.push(Finding {
            id: "hsts-ignored-over-http".into(),
            severity: Severity::Info,
            title: "Strict-Transport-Security sent over plain HTTP is ignored".into(),
            detail: format!(
                "Sent by {}; browsers ignore it there (RFC 6797 §8.1): only an HTTPS \
                 response sets HSTS.",
                over_http.join(", ")
            ),
            score_delta: 0,
            cap: None,
            fix: None,
        });
    }
    outcome
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_directives() {
        assert_eq!(
            parse("Max-Age=\"31536000\" ; includeSubDomains; PRELOAD"),
            Ok(Hsts {
                max_age: 31_536_000,
                include_subdomains: true,
                preload: true
            })
        );
        assert_eq!(
            parse("max-age=300"),
            Ok(Hsts {
                max_age: 300,
                include_subdomains: false,
                preload: false
            })
        );
        assert_eq!(parse("includeSubDomains"), Err(ParseError::NoMaxAge));
        assert_eq!(
            parse("max-age=abc"),
            Err(ParseError::BadMaxAge("abc".into()))
        );
        assert_eq!(parse("max-age=0"), Err(ParseError::ZeroMaxAge));
        assert_eq!(parse("max-age=300, max-age=600"), Err(ParseError::Repeated));
    }

    fn result(https: bool, fields: &[&str]) -> &'static str {
        classify(https, fields).0.result
    }

    #[test]
    fn results_and_their_boundaries() {
        assert_eq!(
            result(false, &["max-age=63072000"]),
            "hsts-not-implemented-no-https"
        );
        assert_eq!(result(true, &[]), "hsts-not-implemented");
        assert_eq!(
            result(true, &["max-age=1", "max-age=2"]),
            "hsts-header-invalid"
        );
        assert_eq!(
            result(true, &["max-age=15551999"]),
            "hsts-implemented-max-age-less-than-six-months"
        );
        assert_eq!(
            result(true, &["max-age=15552000"]),
            "hsts-implemented-max-age-at-least-six-months"
        );
        // Preload needs all three of a year, includeSubDomains and preload.
        assert_eq!(
            result(true, &["max-age=31535999; includeSubDomains; preload"]),
            "hsts-implemented-max-age-at-least-six-months"
        );
        assert_eq!(
            result(true, &["max-age=31536000; preload"]),
            "hsts-implemented-max-age-at-least-six-months"
        );
        assert_eq!(
            result(true, &["max-age=31536000; includeSubDomains; preload"]),
            "hsts-preload-ready"
        );
    }

    #[test]
    fn ignored_over_http_is_reported() {
        let chain = vec![Response {
            url: "http://h/".into(),
            status: 200,
            headers: vec![(
                "strict-transport-security".into(),
                "max-age=63072000".into(),
            )],
        }];
        let mut out = Vec::new();
        let outcome = test(&chain, &mut out);
        assert!(!outcome.protects());
        let ids: Vec<(&str, i32)> = out.iter().map(|f| (f.id.as_str(), f.score_delta)).collect();
        assert_eq!(
            ids,
            [
                ("hsts-not-implemented-no-https", -20),
                ("hsts-ignored-over-http", 0)
            ]
        );
    }
}
