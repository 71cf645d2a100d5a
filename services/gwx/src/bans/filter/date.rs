//! Date templates: what a `datepattern` line (or the default list) becomes, following
//! fail2ban's rules so that the same text is found and cut out of the line:
//!
//! * `%` fields become regex groups (see `strptime.rs`); a pattern with month, day or
//!   AM/PM names is case-insensitive.
//! * Unless the pattern is anchored itself (`^`, `**`) it may only start where a word
//!   starts or a non-word character follows (`(?=^|\b|\W)`), and only end at a word end
//!   (`(?=\b|\W|$)`), so `12:34:56` is not found inside `112:34:567`. `{UNB}` turns both
//!   off, `**` at either end turns one off.
//! * `{^LN-BEG}` anchors at the line start, allowing up to two non-word characters
//!   before the date (`[`, `<`, a space).
//! * The date text is group 1: the whole pattern unless it has a capturing group of its
//!   own (`^[^\[]*\[({DATE})` keeps the prefix in the line and cuts only the date).
//! * `EPOCH`/`LEPOCH` (seconds, or milliseconds/microseconds), `TAI64N`, `{NONE}` (no
//!   date: the line's time is `now`), `{DATE}` (each default format in place of
//!   `{DATE}`), `{^LN-BEG}` alone (the default formats that start a line) and
//!   `{DEFAULT}` (all default formats).
//!
//! Without a `datepattern`, the default list applies: for every default format first a
//! variant anchored at the line start, then the format anywhere in the line.

use super::error::PatternError;
use super::strptime;

/// Where a template may start.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Begin {
    Anywhere,
    Word,
    LineStart,
}

/// How the matched text becomes a time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Value {
    /// strptime fields (named groups).
    Fields,
    /// Seconds since the epoch in this Python group.
    Epoch { group: usize, long: bool },
    /// A TAI64N label in group 1.
    Tai64n,
    /// No date (`{NONE}`).
    Nothing,
}

/// A date template before compilation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Spec {
    /// Unique name (the pattern as written, with `{^LN-BEG}` when anchored that way).
    pub name: String,
    /// Python-syntax regex; group 1 is the date text.
    pub regex: String,
    pub line_begin: bool,
    pub line_end: bool,
    pub value: Value,
}

impl Spec {
    /// Anchored at a line boundary: fail2ban trusts such a template's match without
    /// looking for an earlier one.
    pub fn anchored(&self) -> bool {
        self.line_begin || self.line_end
    }
}

/// The formats fail2ban's default detector knows, in its order of preference.
const DEFAULT_FORMATS: [&str; 17] = [
    // ISO 8601 and friends: 2026-11-21T10:00:00.123+01:00, 2026/11/21 10:00:00, 2026.11.21
    r"%ExY(?P<_sep>[-/.])%m(?P=_sep)%d(?:T|  ?)%H:%M:%S(?:[.,]%f)?(?:\s*%z)?",
    // syslog / asctime: Sat Nov 21 10:00:00.123 2026, Nov 21 10:00:00
    r"(?:%a )?%b %d %k:%M:%S(?:\.%f)?(?: %ExY)?",
    // Sat Nov 21 2026 10:00:00
    r"(?:%a )?%b %d %ExY %k:%M:%S(?:\.%f)?",
    // 21/11/2026 10:00:00, 21-11-26 10:00:00
    r"%d(?P<_sep>[-/])%m(?P=_sep)(?:%ExY|%Exy) %k:%M:%S",
    // Apache/nginx: [21/Nov/2026:10:00:00 +0000], 21-Nov-2026 10:00:00.123
    r"%d(?P<_sep>[-/])%b(?P=_sep)%ExY[ :]?%H:%M:%S(?:\.%f)?(?: %z)?",
    // cPanel: 11/21/2026:10:00:00
    r"%m/%d/%ExY:%H:%M:%S",
    // 11-21-2026 10:00:00.123
    r"%m-%d-%ExY %k:%M:%S(?:\.%f)?",
    "EPOCH",
    // a time of day alone, at the start of the line
    r"{^LN-BEG}%H:%M:%S",
    // <11/21/26@10:00:00>
    r"^<%m/%d/%Exy@%H:%M:%S>",
    // MySQL: 261121 10:00:00
    r"%Exy%Exm%Exd  ?%H:%M:%S",
    // Tomcat: Nov 21, 2026 10:00:00 AM
    r"%b %d, %ExY %I:%M:%S %p",
    // ASSP: Nov-21-26 10:00:00
    r"^%b-%d-%Exy %k:%M:%S",
    // 20261121T100000, 20261121 100000
    r"%ExY%Exm%Exd(?:T|  ?)%ExH%ExM%ExS(?:[.,]%f)?(?:\s*%z)?",
    // with a zone name or offset in front: CET Nov 21 10:00:00, +01:00 Nov 21 10:00:00
    r"(?:%Z )?(?:%a )?%b %d %k:%M:%S(?:\.%f)?(?: %ExY)?",
    r"(?:%z )?(?:%a )?%b %d %k:%M:%S(?:\.%f)?(?: %ExY)?",
    "TAI64N",
];

const EPOCH_RE: &str = r"[0-9]{10,11}\b(?:\.[0-9]{3,6})?";
const LONG_EPOCH_RE: &str = r"[0-9]{10,11}(?:[0-9]{3}(?:\.[0-9]{1,6}|[0-9]{3})?)?";

/// The templates for a filter's `datepattern` (one pattern per line), or the default
/// list when there is none. Errors carry the 1-based line.
pub(crate) fn specs(datepattern: Option<&str>) -> Result<Vec<Spec>, (usize, PatternError)> {
    let Some(value) = datepattern else {
        return Ok(default_list());
    };
    let mut out: Vec<Spec> = Vec::new();
    for (i, line) in value
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .enumerate()
    {
        let add = |out: &mut Vec<Spec>, s: Spec| {
            if !out.iter().any(|o| o.name == s.name) {
                out.push(s);
            }
        };
        let upper = if line.contains('%') {
            line.to_string()
        } else {
            line.to_uppercase()
        };
        match upper.as_str() {
            "{^LN-BEG}" => default_list()
                .into_iter()
                .filter(|s| s.line_begin)
                .for_each(|s| add(&mut out, s)),
            "{DEFAULT}" => default_list().into_iter().for_each(|s| add(&mut out, s)),
            _ if upper.contains("{DATE}") => {
                for format in DEFAULT_FORMATS {
                    if format == "EPOCH" || format == "TAI64N" {
                        continue;
                    }
                    let inner = unbound(format);
                    let pattern = replace_date(line, &inner);
                    add(&mut out, pattern_spec(&pattern).map_err(|e| (i + 1, e))?);
                }
            }
            _ => add(&mut out, pattern_spec(line).map_err(|e| (i + 1, e))?),
        }
    }
    Ok(out)
}

/// fail2ban's default list: anchored variants first, then every format anywhere.
pub(crate) fn default_list() -> Vec<Spec> {
    let mut anchored = Vec::new();
    let mut plain = Vec::new();
    for format in DEFAULT_FORMATS {
        let Ok(spec) = pattern_spec(format) else {
            continue;
        };
        if !spec.name.starts_with("{^LN-BEG}")
            && !spec.name.starts_with('^')
            && let Ok(a) = pattern_spec(&format!("{{^LN-BEG}}{format}"))
            && a.name != spec.name
        {
            anchored.push(a);
        }
        plain.push(spec);
    }
    anchored.extend(plain);
    anchored
}

/// `{DATE}` (any case) replaced by `inner`.
fn replace_date(pattern: &str, inner: &str) -> String {
    let upper = pattern.to_uppercase();
    match upper.find("{DATE}") {
        Some(i) if !pattern[..i].ends_with('\\') => {
            format!("{}{}{}", &pattern[..i], inner, &pattern[i + 6..])
        }
        _ => pattern.to_string(),
    }
}

/// A format without its boundary markers, for use inside `{DATE}`.
fn unbound(format: &str) -> String {
    let f = format.strip_prefix("{UNB}").unwrap_or(format);
    let f = f.strip_prefix("{^LN-BEG}").unwrap_or(f);
    let f = f
        .strip_prefix(r"(?:^|\b|\W)")
        .or_else(|| f.strip_prefix(r"(^|\b|\W)"))
        .unwrap_or(f);
    f.strip_suffix(r"(?=\b|\W|$)").unwrap_or(f).to_string()
}

/// One pattern line: special names or a `%` pattern.
pub(crate) fn pattern_spec(pattern: &str) -> Result<Spec, PatternError> {
    let key = if pattern.contains('%') {
        pattern.to_string()
    } else {
        pattern.to_uppercase()
    };
    if key == "{NONE}" {
        return Ok(Spec {
            name: "{NONE}".into(),
            regex: "^()".into(),
            line_begin: true,
            line_end: false,
            value: Value::Nothing,
        });
    }
    if key.contains("EPOCH") {
        if let Some((before, long, after)) = split_epoch(pattern) {
            let re = if long { LONG_EPOCH_RE } else { EPOCH_RE };
            let regex = format!("({before}({re}){after})");
            let (regex, begin, end) = bounds(&regex, Begin::Word, true);
            return Ok(Spec {
                name: pattern.to_string(),
                regex,
                line_begin: begin,
                line_end: end,
                value: Value::Epoch { group: 2, long },
            });
        }
        let (long, anchored) = match key.as_str() {
            "EPOCH" => (false, false),
            "{^LN-BEG}EPOCH" | "^EPOCH" => (false, true),
            "LEPOCH" => (true, false),
            "{^LN-BEG}LEPOCH" | "^LEPOCH" => (true, true),
            _ => return regex_spec(pattern),
        };
        let re = if long { LONG_EPOCH_RE } else { EPOCH_RE };
        // At the line start, after a `[` at the line start, or in an audit record's
        // `audit(...)`.
        let regex = if anchored {
            format!(r"^(?:\W{{0,2}})?({re})(?=\b|\W|$)")
        } else {
            format!(r"(?:^\[?|\baudit\()({re})(?=\b|\W|$)")
        };
        return Ok(Spec {
            name: if anchored {
                format!("{{^LN-BEG}}{}", if long { "LEPOCH" } else { "EPOCH" })
            } else {
                key
            },
            regex,
            line_begin: anchored,
            line_end: false,
            value: Value::Epoch { group: 1, long },
        });
    }
    if matches!(key.as_str(), "TAI64N" | "{^LN-BEG}TAI64N" | "^TAI64N") {
        let begin = if key == "TAI64N" {
            Begin::Anywhere
        } else {
            Begin::LineStart
        };
        let (regex, line_begin, line_end) = bounds("@[0-9a-f]{24}", begin, true);
        return Ok(Spec {
            name: if begin == Begin::LineStart {
                "{^LN-BEG}TAI64N".into()
            } else {
                "TAI64N".into()
            },
            regex,
            line_begin,
            line_end,
            value: Value::Tai64n,
        });
    }
    regex_spec(pattern)
}

/// `{EPOCH}`/`{LEPOCH}` inside a pattern: (text before, long form, text after).
fn split_epoch(pattern: &str) -> Option<(&str, bool, &str)> {
    let upper = pattern.to_uppercase();
    for (token, long) in [("{LEPOCH}", true), ("{EPOCH}", false)] {
        if let Some(i) = upper.find(token)
            && !pattern[..i].ends_with('\\')
        {
            return Some((&pattern[..i], long, &pattern[i + token.len()..]));
        }
    }
    None
}

/// A `%` pattern (fail2ban's `DatePatternRegex`).
fn regex_spec(pattern: &str) -> Result<Spec, PatternError> {
    let mut begin = Begin::Word;
    let mut end = true;
    let mut rest = pattern;
    let mut name = pattern.to_string();
    if let Some(r) = rest.strip_prefix("{UNB}") {
        rest = r;
        begin = Begin::Anywhere;
        end = false;
    }
    if begin != Begin::Anywhere
        && let Some(r) = rest.strip_prefix("{^LN-BEG}")
    {
        rest = r;
        begin = Begin::LineStart;
    }
    let mut regex = String::new();
    let mut alpha = false;
    let mut chars = rest.char_indices().peekable();
    while let Some((i, c)) = chars.next() {
        if c != '%' {
            regex.push(c);
            continue;
        }
        let after = &rest[i + 1..];
        let Some((re, len)) = strptime::field_regex(after) else {
            return Err(PatternError::Invalid(format!(
                "date pattern has an unknown field `%{}` (a literal percent sign is `%%`)",
                after.chars().next().map(String::from).unwrap_or_default()
            )));
        };
        alpha |= strptime::field_is_alpha(after);
        regex.push_str(re);
        for _ in 0..len {
            chars.next();
        }
    }
    if alpha {
        regex.insert_str(0, "(?i)");
    }
    let (regex, line_begin, line_end) = bounds(&regex, begin, end);
    if begin == Begin::LineStart && !name.starts_with("{^LN-BEG}") {
        name = format!("{{^LN-BEG}}{name}");
    }
    Ok(Spec {
        name,
        regex,
        line_begin,
        line_end,
        value: Value::Fields,
    })
}

/// fail2ban's `DateTemplate.setRegex`: group 1 around the date unless the pattern has
/// its own group, word or line-start boundaries unless anchored, `**` markers removed.
/// Returns (regex, anchored at line begin, anchored at line end).
fn bounds(regex: &str, begin: Begin, end: bool) -> (String, bool, bool) {
    let mut regex = regex.trim().to_string();
    // Global flags such as `(?i)` move to the front at the end.
    let flags = find_global_flags(&regex).map(|(s, e)| {
        let f = regex[s..e].to_string();
        regex.replace_range(s..e, "");
        f
    });
    let bound_begin = begin != Begin::Anywhere && !meta().begin_anchored.is_match(&regex);
    let bound_end = end && !ends_anchored(&regex);
    if !has_plain_group(&regex) {
        regex = wrap_group(&regex);
    }
    let mut line_begin = false;
    if bound_begin {
        if begin == Begin::LineStart {
            regex.insert_str(0, r"^(?:\W{0,2})?");
            line_begin = true;
        } else {
            regex.insert_str(0, r"(?=^|\b|\W)");
        }
    }
    if bound_end {
        regex.push_str(r"(?=\b|\W|$)");
    }
    line_begin |= line_bound_begin(&regex);
    let line_end = line_bound_end(&regex);
    let regex = remove_star_markers(&regex);
    let regex = match flags {
        Some(f) => format!("{f}{regex}"),
        None => regex,
    };
    (regex, line_begin, line_end)
}

/// Helper regexes over pattern text (load time only).
struct Meta {
    /// `^`, `**` or `(?:^` at the start, after parentheses and flags.
    begin_anchored: regex::Regex,
    /// Leading parentheses and flags, then `**`.
    begin_stars: regex::Regex,
    /// Optional flags, optional `^`, optional flags: what stays in front of group 1.
    group_prefix: regex::Regex,
}

fn meta() -> &'static Meta {
    static META: std::sync::OnceLock<Meta> = std::sync::OnceLock::new();
    META.get_or_init(|| {
        let re = |s: &str| regex::Regex::new(s).expect("static regex");
        Meta {
            begin_anchored: re(r"^\(*(?:\(\?\w+\))?(?:\^|\(*\*\*|\((?:\?:)?\^)"),
            begin_stars: re(r"^\(*(?:\(\?\w+\))?\(*\*\*"),
            group_prefix: re(r"^(?:\(\?\w+\))?\^?(?:\(\?\w+\))?"),
        }
    })
}

/// The first `(?flags)` in a pattern: its byte range.
fn find_global_flags(regex: &str) -> Option<(usize, usize)> {
    let mut from = 0;
    while let Some(i) = regex[from..].find("(?") {
        let s = from + i;
        let body = &regex[s + 2..];
        let n = body.chars().take_while(char::is_ascii_lowercase).count();
        if n > 0 && body[n..].starts_with(')') {
            return Some((s, s + 2 + n + 1));
        }
        from = s + 2;
    }
    None
}

fn not_escaped(regex: &str, i: usize) -> bool {
    i == 0 || regex.as_bytes()[i - 1] != b'\\'
}

/// Ends with `$`, `$)`, `\b`, `\s` or `**` (then closing parentheses), unescaped?
fn ends_anchored(r: &str) -> bool {
    let n = r.len();
    (r.ends_with('$') && not_escaped(r, n - 1))
        || (r.ends_with("$)") && not_escaped(r, n - 2))
        || ((r.ends_with(r"\b") || r.ends_with(r"\s")) && not_escaped(r, n - 2))
        || {
            let t = r.trim_end_matches(')');
            t.ends_with("**") && not_escaped(r, t.len() - 2)
        }
}

/// Has a capturing group that is not named (`(` not followed by `?`, not escaped, not a
/// conditional's reference)?
fn has_plain_group(regex: &str) -> bool {
    let b = regex.as_bytes();
    (0..b.len()).any(|i| {
        b[i] == b'('
            && b.get(i + 1) != Some(&b'?')
            && !(i >= 1 && b[i - 1] == b'\\')
            && !(i >= 2 && &b[i - 2..i] == b"(?")
    })
}

/// `prefix(middle)suffix` where prefix is flags and `^`, suffix a final `$`.
fn wrap_group(regex: &str) -> String {
    let start = meta().group_prefix.find(regex).map_or(0, |m| m.end());
    let mut end = regex.len();
    if end > start && regex.ends_with('$') && not_escaped(regex, end - 1) {
        end -= 1;
    }
    format!(
        "{}({}){}",
        &regex[..start],
        &regex[start..end],
        &regex[end..]
    )
}

/// Starts (after optional flags) with `^`, or with `(^`/`(?:^` not followed by `|`.
fn line_bound_begin(regex: &str) -> bool {
    let r = skip_flag_group(regex);
    if r.starts_with('^') {
        return true;
    }
    let Some(r) = r.strip_prefix('(') else {
        return false;
    };
    let r = r.strip_prefix("?:").unwrap_or(r);
    r.starts_with('^') && !r[1..].starts_with('|')
}

/// `r` without a leading `(?word)` flag group.
fn skip_flag_group(r: &str) -> &str {
    if let Some(body) = r.strip_prefix("(?") {
        let n = body
            .chars()
            .take_while(|c| c.is_alphanumeric() || *c == '_')
            .count();
        if n > 0 && body[n..].starts_with(')') {
            return &body[n + 1..];
        }
    }
    r
}

fn line_bound_end(r: &str) -> bool {
    let n = r.len();
    let ok = |i: usize| i == 0 || !matches!(r.as_bytes()[i - 1], b'\\' | b'|');
    (r.ends_with('$') && ok(n - 1)) || (r.ends_with("$)") && ok(n - 2))
}

/// Removes the `**` boundary markers at the very start and end.
fn remove_star_markers(regex: &str) -> String {
    let mut r = regex.to_string();
    if let Some(m) = meta().begin_stars.find(&r) {
        let at = m.end() - 2;
        r.replace_range(at..at + 2, "");
    }
    let t = r.trim_end_matches(')');
    if t.ends_with("**") && not_escaped(&r, t.len() - 2) {
        let at = t.len() - 2;
        r.replace_range(at..at + 2, "");
    }
    r
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pattern_regexes() {
        let s = pattern_spec("%H:%M:%S").unwrap();
        assert!(s.regex.starts_with(r"(?=^|\b|\W)((?P<H>"), "{}", s.regex);
        assert!(s.regex.ends_with(r")(?=\b|\W|$)"));
        assert!(!s.anchored());
        let s = pattern_spec("{^LN-BEG}%b %d").unwrap();
        assert!(
            s.regex.starts_with(r"(?i)^(?:\W{0,2})?((?P<b>"),
            "{}",
            s.regex
        );
        assert!(s.line_begin);
        let s = pattern_spec(r"^[^\[]*\[(%d/%b)").unwrap();
        assert!(s.regex.starts_with(r"(?i)^[^\[]*\[((?P<d>"), "{}", s.regex);
        let s = pattern_spec("{UNB}%Y$").unwrap();
        assert_eq!(s.regex, r"((?P<Y>[0-9]{4}))$");
        assert!(s.line_end);
        let s = pattern_spec("**%Y**").unwrap();
        assert_eq!(s.regex, r"((?P<Y>[0-9]{4}))");
        assert!(pattern_spec("%q").is_err());
    }

    #[test]
    fn special_patterns() {
        assert_eq!(
            pattern_spec("Epoch").unwrap().value,
            Value::Epoch {
                group: 1,
                long: false
            }
        );
        assert!(pattern_spec("{^LN-BEG}Epoch").unwrap().line_begin);
        let s = pattern_spec("^{EPOCH}s").unwrap();
        assert_eq!(
            s.value,
            Value::Epoch {
                group: 2,
                long: false
            }
        );
        assert!(pattern_spec("{^LN-BEG}TAI64N").unwrap().line_begin);
        assert_eq!(pattern_spec("{none}").unwrap().value, Value::Nothing);
    }

    #[test]
    fn lists() {
        assert_eq!(default_list().len(), 31);
        assert_eq!(specs(Some("{^LN-BEG}")).unwrap().len(), 17);
        let d = specs(Some("^[^\\[]*\\[({DATE})\n{^LN-BEG}")).unwrap();
        assert_eq!(d.len(), 15 + 17);
        let e = specs(Some("%Y\n%q")).unwrap_err();
        assert_eq!(e.0, 2);
    }
}
