//! Finding the date in a line: the hot path of every line, matching or not.
//!
//! Which template wins when several could match: the one whose match starts earliest;
//! among those starting at the same place, the first in the list. That is what
//! fail2ban's detector converges to (it prefers templates anchored at the line start,
//! then the shortest distance from the line start), without its hit-count reordering.
//!
//! How it stays fast:
//!
//! 1. When the template that matched the previous line is anchored at the line start
//!    (syslog formats), it is tried first, alone, and taken if it matches (as
//!    fail2ban does). Unanchored templates (an access log's date after the client
//!    address) move with the address length, so for them step 2 is cheaper.
//! 2. Otherwise one `regex` crate search over all templates at once (an alternation of
//!    all of them; leftmost-first semantics give exactly "earliest start, then list
//!    order"), without captures: it gives the earliest start. The first template (in
//!    list order) that really matches there is the winner. Templates that need
//!    backtracking take part in their relaxed form, so the start is never too late.
//! 3. Only if no template confirms that start is every template searched on its own.
//!
//! No captures are taken when a template's date is its whole match (the usual case);
//! parsing the date fields into a time happens only when a failure needs the time.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, OnceLock};

use chrono::{DateTime, Utc};

use super::date::{self, Spec, Value};
use super::engine::{self, Compiled, Slots};
use super::error::PatternError;
use super::pyregex::{self, Node};
use super::strptime;
use super::translate::{self, Context, Target};

const DATE_CONTEXT: Context = Context {
    multi_line_buffer: false,
    date_bounds: true,
};

#[derive(Debug)]
struct Template {
    spec: Spec,
    compiled: Compiled,
    /// (field name, Python group number).
    fields: Vec<(&'static str, usize)>,
    /// The date (group 1) is the whole match: no captures needed to cut it out.
    whole: bool,
    /// The template anchored at the start of the haystack, run on the line from a
    /// candidate start: a match "right here" costs one short DFA run. `None` when the
    /// cut could change the answer (a backtracking engine, or an assertion looking
    /// before the start other than the ones `lead` describes).
    at_start: Option<(regex::Regex, Lead)>,
}

/// What a template requires before its match.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Lead {
    /// Nothing.
    Free,
    /// Not inside a word (fail2ban's `(?=^|\b|\W)`).
    Word,
    /// The line start.
    LineStart,
}

/// A compiled list of date templates.
#[derive(Debug)]
pub(crate) struct Detector {
    templates: Vec<Template>,
    combined: Option<regex::Regex>,
}

/// Is the root `(...)` group 1, possibly between zero-width assertions?
fn date_is_whole(root: &Node) -> bool {
    let is_group1 = |n: &Node| matches!(n, Node::Group { capture: Some((1, _)), .. });
    let zero_width = |n: &Node| {
        matches!(
            n,
            Node::Empty
                | Node::Look { .. }
                | Node::LineStart { .. }
                | Node::LineEnd { .. }
                | Node::TextStart
                | Node::TextEnd
                | Node::WordBoundary { .. }
        )
    };
    match root {
        n if is_group1(n) => true,
        Node::Concat(v) => {
            v.iter().filter(|n| is_group1(n)).count() == 1
                && v.iter().all(|n| is_group1(n) || zero_width(n))
        }
        _ => false,
    }
}

/// What the template requires before its match, if that is all that looks before it:
/// then matching it on the line cut at a start position, with [`Lead`] checked
/// separately, gives the same answer as on the whole line. (Date patterns match at
/// least one character, so the date boundary at their end never sits at the start.)
fn lead(root: &Node) -> Option<Lead> {
    let items: &[Node] = match root {
        Node::Concat(v) => v,
        n => std::slice::from_ref(n),
    };
    let (lead, rest) = match items.first() {
        Some(n) if translate::date_bound(n) => (Lead::Word, &items[1..]),
        Some(Node::LineStart { .. } | Node::TextStart) => (Lead::LineStart, &items[1..]),
        _ => (Lead::Free, items),
    };
    (!rest.iter().any(looks_back)).then_some(lead)
}

/// Does the node contain an assertion that may look before the match start?
fn looks_back(n: &Node) -> bool {
    match n {
        Node::WordBoundary { .. } | Node::LineStart { .. } | Node::TextStart => true,
        Node::Look { .. } => !translate::date_bound(n),
        Node::Group { child, .. } | Node::Atomic(child) | Node::Repeat { child, .. } => {
            looks_back(child)
        }
        Node::Concat(v) | Node::Alt(v) => v.iter().any(looks_back),
        Node::Conditional { .. } | Node::Backref { .. } => true,
        _ => false,
    }
}

/// Where a date was found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Hit {
    pub template: usize,
    /// The date text (to cut out of the line).
    pub start: usize,
    pub end: usize,
    /// The template's whole match.
    match_start: usize,
    match_end: usize,
}

/// Per-reader state: the last template and scratch space.
#[derive(Debug)]
pub(crate) struct DateCache {
    last: Option<(usize, usize, usize)>,
    slots: Slots,
    /// `slots` hold the captures of this template on the current line.
    slots_for: Option<usize>,
}

impl DateCache {
    pub fn new() -> DateCache {
        DateCache {
            last: None,
            slots: Slots::new(),
            slots_for: None,
        }
    }
}

impl Detector {
    /// The detector for a `datepattern` value (`None`: the default list), compiled once
    /// per process: most filters share the default or the `{^LN-BEG}` list, and the
    /// combined regex of 31 templates is the most expensive part of loading a filter.
    /// Errors carry the 1-based pattern line.
    pub fn shared(datepattern: Option<&str>) -> Result<Arc<Detector>, (usize, PatternError)> {
        static CACHE: OnceLock<Mutex<HashMap<Option<String>, Arc<Detector>>>> = OnceLock::new();
        let cache = CACHE.get_or_init(Default::default);
        let key = datepattern.map(str::to_string);
        if let Some(d) = cache.lock().unwrap_or_else(|e| e.into_inner()).get(&key) {
            return Ok(Arc::clone(d));
        }
        let specs = date::specs(datepattern)?;
        let detector = Arc::new(Detector::new(specs).map_err(|(i, e)| (i + 1, e))?);
        let mut map = cache.lock().unwrap_or_else(|e| e.into_inner());
        Ok(Arc::clone(map.entry(key).or_insert(detector)))
    }

    /// Compiles `specs` (errors carry the index of the failing spec).
    pub fn new(specs: Vec<Spec>) -> Result<Detector, (usize, PatternError)> {
        let mut templates = Vec::with_capacity(specs.len());
        let mut alternatives = Vec::with_capacity(specs.len());
        for (i, spec) in specs.into_iter().enumerate() {
            let compiled = Compiled::new(&spec.regex, false, DATE_CONTEXT).map_err(|e| (i, e))?;
            let parsed = compiled.parsed();
            let fields = strptime::FIELD_NAMES
                .iter()
                .filter_map(|n| parsed.group_index(n).map(|g| (*n, g)))
                .collect();
            let tree = pyregex::expand_backrefs(parsed);
            let tree = tree.as_ref().unwrap_or(parsed);
            let target = if compiled.is_backtracking() {
                Target::Relaxed
            } else {
                Target::Exact
            };
            let written = translate::write(tree, target, DATE_CONTEXT, &format!("t{i}_"))
                .map_err(|e| (i, e))?;
            let at_start = match lead(&tree.root) {
                Some(lead) if !compiled.is_backtracking() => {
                    let plain = translate::write(tree, target, DATE_CONTEXT, "").map_err(|e| (i, e))?;
                    let re = engine::build_regex(&format!(r"\A(?:{})", plain.text)).map_err(|e| (i, e))?;
                    Some((re, lead))
                }
                _ => None,
            };
            alternatives.push(format!("(?:{})", written.text));
            templates.push(Template {
                whole: date_is_whole(&parsed.root),
                at_start,
                spec,
                compiled,
                fields,
            });
        }
        let combined = if templates.is_empty() {
            None
        } else {
            Some(engine::build_regex(&alternatives.join("|")).map_err(|e| (0, e))?)
        };
        Ok(Detector {
            templates,
            combined,
        })
    }

    #[cfg(test)]
    pub fn combined_for_bench(&self) -> &regex::Regex {
        self.combined.as_ref().unwrap()
    }

    pub fn len(&self) -> usize {
        self.templates.len()
    }

    /// Finds the date in `line`.
    pub fn find(&self, line: &str, cache: &mut DateCache) -> Option<Hit> {
        cache.slots_for = None;
        if let Some((k, ..)) = cache.last {
            let t = &self.templates[k];
            if (t.spec.anchored() || self.templates.len() == 1)
                && let Some(m) = t.compiled.find_at(line, 0, &mut cache.slots)
                && let Some(hit) = self.confirm(line, cache, k, m)
            {
                return Some(hit);
            }
        }
        // The earliest start of any template; the first template in list order that
        // matches there wins.
        let start = self.combined.as_ref()?.find(line)?.start();
        let rest = &line[start..];
        let word = |c: char| c.is_alphanumeric() || c == '_';
        let inside_word = line[..start].chars().next_back().is_some_and(word)
            && rest.chars().next().is_some_and(word);
        for (k, t) in self.templates.iter().enumerate() {
            let m = match &t.at_start {
                Some((_, Lead::LineStart)) if start > 0 => continue,
                Some((_, Lead::Word)) if inside_word => continue,
                Some((re, _)) => match re.find(rest) {
                    Some(m) => (start, start + m.end()),
                    None => continue,
                },
                None => match t.compiled.find_at(line, start, &mut cache.slots) {
                    Some(m) if m.0 == start => m,
                    _ => continue,
                },
            };
            return self.confirm(line, cache, k, m).or_else(|| self.find_slow(line, cache));
        }
        self.find_slow(line, cache)
    }

    /// Template `k` matched at `m`: locate its date and remember it.
    fn confirm(&self, line: &str, cache: &mut DateCache, k: usize, m: (usize, usize)) -> Option<Hit> {
        let t = &self.templates[k];
        let date = if t.whole {
            m
        } else {
            if !t.compiled.captures_at(line, m.0, &mut cache.slots) {
                return None;
            }
            cache.slots_for = Some(k);
            cache.slots.get(1)?
        };
        Some(self.remember(cache, k, m, date))
    }

    /// Every template on its own: earliest start, then list order.
    fn find_slow(&self, line: &str, cache: &mut DateCache) -> Option<Hit> {
        let mut best: Option<(usize, (usize, usize), (usize, usize))> = None;
        let mut slots = Slots::new();
        for (k, t) in self.templates.iter().enumerate() {
            if t.compiled.captures(line, &mut slots)
                && let (Some(m), Some(d)) = (slots.get(0), slots.get(1))
                && best.is_none_or(|(_, bm, _)| m.0 < bm.0)
            {
                best = Some((k, m, d));
            }
        }
        let (k, m, d) = best?;
        cache.slots_for = None;
        Some(self.remember(cache, k, m, d))
    }

    fn remember(&self, cache: &mut DateCache, k: usize, m: (usize, usize), d: (usize, usize)) -> Hit {
        cache.last = Some((k, m.0, m.1));
        Hit {
            template: k,
            start: d.0,
            end: d.1,
            match_start: m.0,
            match_end: m.1,
        }
    }

    /// The time of a found date (`None`: no usable date, use `now`).
    pub fn time(
        &self,
        line: &str,
        hit: &Hit,
        cache: &mut DateCache,
        now: DateTime<Utc>,
    ) -> Option<DateTime<Utc>> {
        let t = &self.templates[hit.template];
        if cache.slots_for != Some(hit.template) {
            if !t.compiled.captures_at(line, hit.match_start, &mut cache.slots) {
                return None;
            }
            cache.slots_for = Some(hit.template);
        }
        let slots = &cache.slots;
        let text = |g: usize| slots.get(g).map(|(a, b)| &line[a..b]);
        match t.spec.value {
            Value::Nothing => None,
            Value::Epoch { group, long } => strptime::epoch_to_time(text(group)?, long),
            Value::Tai64n => strptime::tai64n_to_time(text(1)?),
            Value::Fields => strptime::fields_to_time(
                |name| {
                    t.fields
                        .iter()
                        .find(|(n, _)| *n == name)
                        .and_then(|(_, g)| text(*g))
                },
                now,
            ),
        }
    }

}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bans::filter::date;
    use chrono::TimeZone;

    fn detect(patterns: Option<&str>, line: &str) -> Option<(String, String)> {
        let d = Detector::new(date::specs(patterns).unwrap()).unwrap();
        let mut cache = DateCache::new();
        let now = Utc.with_ymd_and_hms(2026, 11, 22, 0, 0, 0).unwrap();
        let hit = d.find(line, &mut cache)?;
        let t = d.time(line, &hit, &mut cache, now);
        Some((
            line[hit.start..hit.end].to_string(),
            t.map(|t| t.to_rfc3339()).unwrap_or_default(),
        ))
    }

    #[test]
    fn default_formats() {
        let cases = [
            ("Nov 21 10:00:00 host sshd[1]: x", "Nov 21 10:00:00", "2026-11-21T10:00:00+00:00"),
            (
                r#"1.2.3.4 - - [21/Nov/2026:10:00:00 +0100] "GET / HTTP/1.1" 200"#,
                "21/Nov/2026:10:00:00 +0100",
                "2026-11-21T09:00:00+00:00",
            ),
            ("2026-11-21 10:00:00 x", "2026-11-21 10:00:00", "2026-11-21T10:00:00+00:00"),
            ("2026-11-21T10:00:00.123Z x", "2026-11-21T10:00:00.123Z", "2026-11-21T10:00:00+00:00"),
            ("1763719200 x", "1763719200", "2025-11-21T10:00:00+00:00"),
            ("[1763719200] x", "1763719200", "2025-11-21T10:00:00+00:00"),
            (
                "@400000006920382000000000 x",
                "@400000006920382000000000",
                "2025-11-21T10:00:00+00:00",
            ),
        ];
        for (line, text, time) in cases {
            let (t, tm) = detect(None, line).unwrap_or_default();
            assert_eq!((t.as_str(), tm.as_str()), (text, time), "{line}");
        }
        assert_eq!(detect(None, "no date here"), None);
    }

    #[test]
    fn explicit_patterns() {
        let (t, _) = detect(Some(r"^[^\[]*\[({DATE})"), "1.2.3.4 [21/Nov/2026:10:00:00 +0000] x").unwrap();
        assert_eq!(t, "21/Nov/2026:10:00:00 +0000");
        let (t, tm) = detect(Some("{^LN-BEG}"), "Nov 21 10:00:00 x 2026-01-01 00:00:00").unwrap();
        assert_eq!((t.as_str(), tm.as_str()), ("Nov 21 10:00:00", "2026-11-21T10:00:00+00:00"));
        assert_eq!(detect(Some("{^LN-BEG}"), "x Nov 21 10:00:00"), None);
        let (t, tm) = detect(Some("{NONE}"), "Nov 21 10:00:00 x").unwrap();
        assert_eq!((t.as_str(), tm.as_str()), ("", ""));
    }

    #[test]
    fn cached_template_is_reused_and_switched() {
        let d = Detector::new(date::specs(None).unwrap()).unwrap();
        let mut cache = DateCache::new();
        let a = "Nov 21 10:00:00 host x";
        let b = "2026-11-21 10:00:00 host x";
        let ha = d.find(a, &mut cache).unwrap();
        assert_eq!(d.find(a, &mut cache).unwrap(), ha);
        let hb = d.find(b, &mut cache).unwrap();
        assert_eq!(&b[hb.start..hb.end], "2026-11-21 10:00:00");
    }
}
