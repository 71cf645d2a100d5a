//! Content-Security-Policy: a parser into directives and source lists, and the
//! Observatory's CSP test.
//!
//! The test follows `content_security_policy()` in mozilla/http-observatory
//! `httpobs/scanner/analyzer/headers.py`; its results and modifiers are the "Content
//! Security Policy (CSP)" table of the Observatory's Tests & Scoring page:
//!
//! | result | modifier |
//! | --- | :-: |
//! | csp-implemented-with-no-unsafe-default-src-none | +10 |
//! | csp-implemented-with-no-unsafe | +5 |
//! | csp-implemented-with-unsafe-inline-in-style-src-only | 0 |
//! | csp-implemented-with-insecure-scheme-in-passive-content-only | -10 |
//! | csp-implemented-with-unsafe-eval | -10 |
//! | csp-implemented-with-insecure-scheme | -20 |
//! | csp-implemented-with-unsafe-inline | -20 |
//! | csp-not-implemented, csp-header-invalid | -25 |
//!
//! One result per site, the first that applies in the order the analyzer checks:
//! invalid, unsafe-inline, insecure scheme (active), unsafe-eval, insecure scheme
//! (passive), unsafe style, then the two bonuses. A policy with both 'unsafe-inline'
//! and 'unsafe-eval' costs 20, not 30; the other problems are reported unscored.
//!
//! Differences from the analyzer, each toward what browsers do: directive names are
//! case-insensitive (CSP3 §2.2.1; the analyzer keeps case, see w3c/webappsec-csp#236);
//! several policies (several header fields, or one field with commas) are combined by
//! union of their source lists, as the analyzer does for header plus `<meta>`
//! (conservative: flags what either policy allows). `<meta>` policies are not read.

use std::collections::{BTreeMap, BTreeSet};

use crate::report::{Finding, Response, Severity};

use super::score;

/// Sources that allow (nearly) any host.
/// `DANGEROUSLY_BROAD` in the analyzer.
const BROAD: [&str; 8] = [
    "ftp:",
    "http:",
    "https:",
    "*",
    "http://*",
    "http://*.*",
    "https://*",
    "https://*.*",
];
/// `UNSAFE_INLINE` in the analyzer: inline code and `data:` URLs.
const UNSAFE_INLINE: [&str; 2] = ["'unsafe-inline'", "data:"];
/// Directives for passive content (images, media): insecure schemes there cost less.
const PASSIVE: [&str; 2] = ["img-src", "media-src"];
const NONCES_HASHES: [&str; 4] = ["'sha256-", "'sha384-", "'sha512-", "'nonce-"];
/// A policy shorter than this cannot hold a directive with a source (`img-src` minus
/// one, as in the analyzer).
const SHORTEST: usize = "img-src".len() - 1;

pub const FIX: &str = "add_header Content-Security-Policy \"default-src 'none'; script-src 'self'; \
style-src 'self'; img-src 'self'; connect-src 'self'; object-src 'none'; base-uri 'none'; \
form-action 'self'; frame-ancestors 'none'\" always;";

/// A parsed policy: directive name (lowercase) to its sources (lowercase; the paths of
/// host sources are case-sensitive, but no test looks at paths). A directive without
/// sources holds `'none'`, as in the analyzer.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Policy {
    pub directives: BTreeMap<String, BTreeSet<String>>,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ParseError {
    #[error("policy {0:?} is too short to hold a directive")]
    TooShort(String),
    #[error("directive {0} appears twice in one policy")]
    Repeated(String),
}

impl Policy {
    pub fn get(&self, directive: &str) -> Option<&BTreeSet<String>> {
        self.directives.get(directive)
    }

    pub fn has(&self, directive: &str) -> bool {
        self.directives.contains_key(directive)
    }

    fn union(&mut self, other: Policy) {
        for (name, sources) in other.directives {
            self.directives.entry(name).or_default().extend(sources);
        }
    }
}

/// Parses one serialized policy (`name source source; name ...`).
pub fn parse(text: &str) -> Result<Policy, ParseError> {
    let text: String = text.chars().filter(|c| *c != '\r' && *c != '\n').collect();
    let text = text.trim();
    if text.len() < SHORTEST {
        return Err(ParseError::TooShort(text.into()));
    }
    let mut policy = Policy::default();
    for directive in text.split(';') {
        let mut words = directive.split_ascii_whitespace();
        let Some(name) = words.next() else { continue };
        let name = name.to_ascii_lowercase();
        let mut sources: BTreeSet<String> = words.map(str::to_ascii_lowercase).collect();
        if sources.is_empty() {
            sources.insert("'none'".into());
        }
        // Browsers use the first and ignore repeats; the analyzer calls the policy
        // invalid "so that people notice it".
        if policy.directives.insert(name.clone(), sources).is_some() {
            return Err(ParseError::Repeated(name));
        }
    }
    Ok(policy)
}

/// Parses every policy in `fields` (header field values; a field may hold several
/// policies separated by commas) into their union.
pub fn parse_all(fields: &[&str]) -> Result<Policy, ParseError> {
    let mut all = Policy::default();
    for field in fields {
        for text in field.split(',') {
            all.union(parse(text)?);
        }
    }
    Ok(all)
}

/// What the analyzer concludes about a policy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Analysis {
    /// The scored result (an id of the table above).
    pub result: &'static str,
    /// Why the policy is invalid, for `csp-header-invalid`.
    pub invalid: Option<String>,
    pub unsafe_inline: bool,
    pub insecure_scheme_active: bool,
    pub unsafe_eval: bool,
    pub insecure_scheme_passive: bool,
    pub unsafe_inline_style: bool,
    pub default_none: bool,
    /// `'strict-dynamic'` with a nonce or hash: host and scheme sources, `'self'` and
    /// `'unsafe-inline'` are ignored by CSP3 browsers.
    pub strict_dynamic: bool,
    /// `'unsafe-inline'` beside a nonce or hash: ignored by CSP2+ browsers.
    pub inline_ignored: bool,
    /// `frame-ancestors` present and not broad.
    pub anti_clickjacking: bool,
    pub insecure_base_uri: bool,
    pub insecure_form_action: bool,
    pub unsafe_objects: bool,
}

fn any_in(set: &BTreeSet<String>, list: &[&str]) -> bool {
    list.iter().any(|s| set.contains(*s))
}

fn nonce_or_hash(set: &BTreeSet<String>) -> bool {
    set.iter()
        .any(|s| NONCES_HASHES.iter().any(|p| s.starts_with(p)))
}

fn effective(policy: &Policy, directive: &str, fallback: bool) -> BTreeSet<String> {
    policy
        .get(directive)
        .or(if fallback {
            policy.get("default-src")
        } else {
            None
        })
        .cloned()
        .unwrap_or_else(|| BTreeSet::from(["*".to_string()]))
}

/// The analyzer's checks on `policy`, for a page fetched over HTTPS or not.
pub fn analyze(policy: &Policy, https: bool) -> Analysis {
    let broad_or_inline: Vec<&str> = BROAD.iter().chain(UNSAFE_INLINE.iter()).copied().collect();
    let base_uri = effective(policy, "base-uri", false);
    let frame_ancestors = effective(policy, "frame-ancestors", false);
    let form_action = effective(policy, "form-action", false);
    let object_src = effective(policy, "object-src", true);
    let mut script_src = effective(policy, "script-src", true);
    let mut style_src = effective(policy, "style-src", true);

    // A nonce or hash makes CSP2 browsers ignore 'unsafe-inline' (http-observatory
    // issues 88 and 277).
    let mut inline_ignored = false;
    for sources in [&mut script_src, &mut style_src] {
        if nonce_or_hash(sources) && sources.remove("'unsafe-inline'") {
            inline_ignored = true;
        }
    }

    let mut result: Option<&'static str> = None;
    let mut invalid = None;
    let mut strict_dynamic = false;
    if script_src.contains("'strict-dynamic'") {
        if nonce_or_hash(&script_src) {
            // CSP3 §8.2: with 'strict-dynamic', host and scheme sources, 'self' and
            // 'unsafe-inline' are ignored.
            script_src.retain(|s| {
                !(BROAD.iter().any(|b| s.starts_with(b)) || s == "'self'" || s == "'unsafe-inline'")
            });
            strict_dynamic = true;
        } else {
            result = Some("csp-header-invalid");
            invalid = Some("'strict-dynamic' without a nonce or hash blocks every script".into());
        }
    }

    let active: Vec<&String> = policy
        .directives
        .iter()
        .filter(|(name, _)| !PASSIVE.contains(&name.as_str()) && name.as_str() != "script-src")
        .flat_map(|(_, sources)| sources)
        .chain(script_src.iter())
        .collect();
    let passive: Vec<&String> = PASSIVE
        .iter()
        .filter_map(|d| policy.get(d).or(policy.get("default-src")))
        .flatten()
        .collect();
    let insecure = |s: &&String| s.contains("http:") || s.contains("ftp:");

    let unsafe_inline = any_in(&script_src, &broad_or_inline) || any_in(&object_src, &BROAD);
    let insecure_scheme_active = https && !strict_dynamic && active.iter().any(insecure);
    let unsafe_eval = script_src.contains("'unsafe-eval'") || style_src.contains("'unsafe-eval'");
    let insecure_scheme_passive = https && passive.iter().any(insecure);
    let unsafe_inline_style = any_in(&style_src, &broad_or_inline);
    let default_none = policy.get("default-src") == Some(&BTreeSet::from(["'none'".to_string()]));

    let checks = [
        (unsafe_inline, "csp-implemented-with-unsafe-inline"),
        (
            insecure_scheme_active,
            "csp-implemented-with-insecure-scheme",
        ),
        (unsafe_eval, "csp-implemented-with-unsafe-eval"),
        (
            insecure_scheme_passive,
            "csp-implemented-with-insecure-scheme-in-passive-content-only",
        ),
        (
            unsafe_inline_style,
            "csp-implemented-with-unsafe-inline-in-style-src-only",
        ),
        (
            default_none,
            "csp-implemented-with-no-unsafe-default-src-none",
        ),
        (true, "csp-implemented-with-no-unsafe"),
    ];
    let result = result.unwrap_or_else(|| {
        checks
            .iter()
            .find(|(hit, _)| *hit)
            .map_or("csp-implemented-with-no-unsafe", |(_, id)| id)
    });

    Analysis {
        result,
        invalid,
        unsafe_inline,
        insecure_scheme_active,
        unsafe_eval,
        insecure_scheme_passive,
        unsafe_inline_style,
        default_none,
        strict_dynamic,
        inline_ignored,
        anti_clickjacking: !any_in(&frame_ancestors, &BROAD),
        insecure_base_uri: any_in(&base_uri, &broad_or_inline),
        insecure_form_action: any_in(&form_action, &BROAD),
        unsafe_objects: any_in(&object_src, &BROAD),
    }
}

/// The CSP test on the final response; returns the policy when there is a valid one
/// (the X-Frame-Options test and the letter look at `frame-ancestors`).
pub(crate) fn test(response: &Response, https: bool, out: &mut Vec<Finding>) -> Option<Policy> {
    let fields = super::headers(response, "content-security-policy");
    if fields.is_empty() {
        let detail = if super::header(response, "content-security-policy-report-only").is_some() {
            "Only Content-Security-Policy-Report-Only is set: it reports, it does not \
             enforce, and does not count."
        } else {
            "No Content-Security-Policy header (policies in <meta> are not read)."
        };
        out.push(score::finding(
            "csp-not-implemented",
            detail.into(),
            Some(FIX.into()),
        ));
        return None;
    }
    let policy = match parse_all(&fields) {
        Ok(policy) => policy,
        Err(e) => {
            out.push(score::finding(
                "csp-header-invalid",
                format!("The policy cannot be parsed: {e}."),
                Some(FIX.into()),
            ));
            return None;
        }
    };
    let a = analyze(&policy, https);
    let fix = |text: &str| Some(text.to_string());
    let scored_fix = match a.result {
        "csp-header-invalid" => fix("Add a nonce or hash to script-src beside 'strict-dynamic'."),
        "csp-implemented-with-unsafe-inline" => fix(
            "Remove 'unsafe-inline', data: and broad sources (*, http:, https:) from \
             script-src; set script-src and object-src (or default-src); use nonces or \
             hashes for inline scripts.",
        ),
        "csp-implemented-with-insecure-scheme"
        | "csp-implemented-with-insecure-scheme-in-passive-content-only" => {
            fix("Replace http: and ftp: sources with https: ones.")
        }
        "csp-implemented-with-unsafe-eval" => {
            fix("Remove 'unsafe-eval'; move code out of eval() and new Function().")
        }
        "csp-implemented-with-unsafe-inline-in-style-src-only" => {
            fix("Remove 'unsafe-inline', data: and broad sources from style-src.")
        }
        _ => None,
    };
    let detail = match &a.invalid {
        Some(why) => format!("Invalid policy: {why}."),
        None => format!("Policy: {}.", render(&policy)),
    };
    out.push(score::finding(a.result, detail, scored_fix));

    // Problems the single scored result does not show, unscored.
    let also = [
        (
            a.unsafe_inline,
            "csp-unsafe-inline",
            Severity::Medium,
            "script-src or object-src allows inline code, data: or any host",
        ),
        (
            a.insecure_scheme_active,
            "csp-insecure-scheme",
            Severity::Medium,
            "active content may load over http: or ftp:",
        ),
        (
            a.unsafe_eval,
            "csp-unsafe-eval",
            Severity::Medium,
            "script-src or style-src allows 'unsafe-eval'",
        ),
        (
            a.insecure_scheme_passive,
            "csp-insecure-scheme-passive",
            Severity::Low,
            "images or media may load over http: or ftp:",
        ),
        (
            a.unsafe_inline_style,
            "csp-unsafe-inline-style",
            Severity::Low,
            "style-src allows 'unsafe-inline', data: or any host",
        ),
    ];
    let scored = [
        "csp-implemented-with-unsafe-inline",
        "csp-implemented-with-insecure-scheme",
        "csp-implemented-with-unsafe-eval",
        "csp-implemented-with-insecure-scheme-in-passive-content-only",
        "csp-implemented-with-unsafe-inline-in-style-src-only",
    ];
    for ((hit, id, severity, what), scored_id) in also.into_iter().zip(scored) {
        if hit && a.result != scored_id {
            out.push(note(
                id,
                severity,
                format!("CSP: {what}"),
                format!(
                    "Also {what}; the Observatory scores one CSP result per site ({}), so \
                     this costs nothing more.",
                    a.result
                ),
            ));
        }
    }
    if !policy.has("default-src") {
        out.push(note(
            "csp-no-default-src",
            Severity::Low,
            "CSP: no default-src".into(),
            "Every fetch directive not listed falls back to allowing anything.".into(),
        ));
    }
    if !policy.has("object-src") && !a.default_none {
        out.push(note(
            "csp-no-object-src",
            Severity::Low,
            "CSP: no object-src".into(),
            "Plugins (object, embed) follow default-src; `object-src 'none'` shuts them out."
                .into(),
        ));
    }
    if a.insecure_base_uri {
        out.push(note(
            "csp-base-uri",
            Severity::Low,
            "CSP: base-uri not restricted".into(),
            "An injected <base> tag can redirect every relative script URL; base-uri does \
             not fall back to default-src."
                .into(),
        ));
    }
    if !policy.has("frame-ancestors") {
        out.push(note(
            "csp-no-frame-ancestors",
            Severity::Info,
            "CSP: no frame-ancestors".into(),
            "frame-ancestors supersedes X-Frame-Options and does not fall back to default-src."
                .into(),
        ));
    } else if !a.anti_clickjacking {
        out.push(note(
            "csp-frame-ancestors-broad",
            Severity::Medium,
            "CSP: frame-ancestors allows any site to frame the page".into(),
            "The Observatory still counts frame-ancestors as implemented (it does not check \
             for broad sources); browsers will let any site frame the page."
                .into(),
        ));
    }
    if a.strict_dynamic {
        out.push(note(
            "csp-strict-dynamic",
            Severity::Pass,
            "CSP: 'strict-dynamic' with nonces or hashes".into(),
            "CSP3 browsers ignore host sources, 'self' and 'unsafe-inline' in script-src and \
             trust only nonced or hashed scripts and what they load."
                .into(),
        ));
    } else if a.inline_ignored {
        out.push(note(
            "csp-unsafe-inline-ignored",
            Severity::Info,
            "CSP: 'unsafe-inline' beside nonces or hashes".into(),
            "CSP2+ browsers ignore 'unsafe-inline' when a nonce or hash is present (it is \
             the fallback for CSP1 browsers), so it is not counted."
                .into(),
        ));
    }
    Some(policy)
}

fn note(id: &str, severity: Severity, title: String, detail: String) -> Finding {
    Finding {
        id: id.into(),
        severity,
        title,
        detail,
        score_delta: 0,
        cap: None,
        fix: match severity {
            Severity::Pass | Severity::Info => None,
            _ => Some(FIX.into()),
        },
    }
}

fn render(policy: &Policy) -> String {
    policy
        .directives
        .iter()
        .map(|(name, sources)| {
            let sources: Vec<&str> = sources.iter().map(String::as_str).collect();
            format!("{name} {}", sources.join(" "))
        })
        .collect::<Vec<_>>()
        .join("; ")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn result(policy: &str, https: bool) -> &'static str {
        analyze(&parse(policy).unwrap(), https).result
    }

    #[test]
    fn parses_directives_case_insensitively() {
        let p =
            parse("Default-Src 'self' HTTPS://CDN.example; IMG-SRC;; report-uri /r\r\n").unwrap();
        let names: Vec<&str> = p.directives.keys().map(String::as_str).collect();
        assert_eq!(names, ["default-src", "img-src", "report-uri"]);
        assert!(
            p.get("default-src")
                .unwrap()
                .contains("https://cdn.example")
        );
        assert_eq!(
            p.get("img-src").unwrap(),
            &BTreeSet::from(["'none'".to_string()])
        );
    }

    #[test]
    fn rejects_short_and_repeated() {
        assert_eq!(parse("  a  "), Err(ParseError::TooShort("a".into())));
        assert_eq!(
            parse("script-src 'self'; SCRIPT-SRC *"),
            Err(ParseError::Repeated("script-src".into()))
        );
    }

    #[test]
    fn several_policies_are_united() {
        let p = parse_all(&[
            "script-src 'self', object-src 'none'",
            "script-src https://a",
        ])
        .unwrap();
        assert_eq!(p.get("script-src").unwrap().len(), 2);
        assert!(p.has("object-src"));
    }

    #[test]
    fn results_in_the_analyzers_order() {
        // Both unsafe: the worse one is the result.
        assert_eq!(
            result(
                "default-src 'self'; script-src 'self' 'unsafe-inline' 'unsafe-eval'",
                true
            ),
            "csp-implemented-with-unsafe-inline"
        );
        assert_eq!(
            result("default-src 'self'; script-src 'self' 'unsafe-eval'", true),
            "csp-implemented-with-unsafe-eval"
        );
        // No script-src and no default-src: scripts from anywhere.
        assert_eq!(
            result("img-src 'self'", true),
            "csp-implemented-with-unsafe-inline"
        );
        // Broad object-src.
        assert_eq!(
            result("default-src 'self'; object-src https:", true),
            "csp-implemented-with-unsafe-inline"
        );
        assert_eq!(
            result("default-src 'self'; script-src 'self' data:", true),
            "csp-implemented-with-unsafe-inline"
        );
        assert_eq!(
            result("default-src 'self'; script-src http://cdn.example", true),
            "csp-implemented-with-insecure-scheme"
        );
        // Over plain HTTP insecure schemes are not held against the site.
        assert_eq!(
            result("default-src 'self'; script-src http://cdn.example", false),
            "csp-implemented-with-no-unsafe"
        );
        assert_eq!(
            result("default-src 'self'; img-src http://img.example", true),
            "csp-implemented-with-insecure-scheme-in-passive-content-only"
        );
        assert_eq!(
            result("default-src 'self'; style-src 'self' 'unsafe-inline'", true),
            "csp-implemented-with-unsafe-inline-in-style-src-only"
        );
        assert_eq!(
            result("default-src 'none'", true),
            "csp-implemented-with-no-unsafe-default-src-none"
        );
        // 'none' with another source is no longer 'none'.
        assert_eq!(
            result("default-src 'none' 'self'; object-src 'none'", true),
            "csp-implemented-with-no-unsafe"
        );
    }

    #[test]
    fn nonces_hashes_and_strict_dynamic() {
        // CSP2: 'unsafe-inline' is ignored beside a nonce.
        let a = analyze(
            &parse("default-src 'self'; script-src 'nonce-abc' 'unsafe-inline'").unwrap(),
            true,
        );
        assert_eq!(a.result, "csp-implemented-with-no-unsafe");
        assert!(a.inline_ignored);
        // CSP3: 'strict-dynamic' with a hash drops broad sources.
        let a = analyze(
            &parse(
                "default-src 'self'; object-src 'none'; script-src 'strict-dynamic' 'sha256-x' https: 'unsafe-inline'",
            )
            .unwrap(),
            true,
        );
        assert_eq!(a.result, "csp-implemented-with-no-unsafe");
        assert!(a.strict_dynamic);
        // Without a nonce or hash, 'strict-dynamic' blocks everything: invalid.
        assert_eq!(
            result("default-src 'self'; script-src 'strict-dynamic'", true),
            "csp-header-invalid"
        );
    }

    #[test]
    fn side_flags() {
        let a = analyze(
            &parse("default-src 'none'; frame-ancestors *; base-uri 'self'").unwrap(),
            true,
        );
        assert!(!a.anti_clickjacking);
        assert!(!a.insecure_base_uri);
        let a = analyze(
            &parse("default-src 'none'; frame-ancestors 'none'").unwrap(),
            true,
        );
        assert!(a.anti_clickjacking);
        assert!(a.insecure_base_uri);
    }

    fn findings(value: &str) -> Vec<Finding> {
        let response = Response {
            url: "https://h/".into(),
            status: 200,
            headers: vec![("content-security-policy".into(), value.into())],
        };
        let mut out = Vec::new();
        test(&response, true, &mut out);
        out
    }

    #[test]
    fn unscored_problems_are_reported() {
        let out = findings("default-src 'self'; script-src 'self' 'unsafe-inline' 'unsafe-eval'");
        let ids: Vec<(&str, i32)> = out.iter().map(|f| (f.id.as_str(), f.score_delta)).collect();
        assert_eq!(ids[0], ("csp-implemented-with-unsafe-inline", -20));
        assert!(ids.contains(&("csp-unsafe-eval", 0)));
        assert!(!ids.iter().any(|(id, _)| *id == "csp-unsafe-inline"));
        assert!(ids.contains(&("csp-no-object-src", 0)));
        assert!(ids.contains(&("csp-base-uri", 0)));
        assert!(ids.contains(&("csp-no-frame-ancestors", 0)));
        let out = findings("default-src 'none'; base-uri 'none'; frame-ancestors 'none'");
        let ids: Vec<&str> = out.iter().map(|f| f.id.as_str()).collect();
        assert_eq!(ids, ["csp-implemented-with-no-unsafe-default-src-none"]);
        assert_eq!(out[0].score_delta, 10);
        let out = findings("x");
        assert_eq!(
            (out[0].id.as_str(), out[0].score_delta),
            ("csp-header-invalid", -25)
        );
    }
}
