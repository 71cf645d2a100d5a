//! Finding the date in a line: the hot path of every line, matching or not.
//!
//! Which template wins when several could match: the one whose match starts earliest;
//! among those starting at the same place, the first in the list. That is what
//! fail2ban's detector converges to (it prefers templates anchored at the line start,
//! then the shortest distance from the line start), without its hit-count reordering.
//!
//! How it stays fast:
//!
//! 1. The template that matched the previous line is tried first, alone, and taken
//!    (as fail2ban does) if it is anchored at the line start (syslog formats) or
//!    matches at the same offset as last time (an access log whose client addresses
//!    have the same length).
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
    named_only: false,
};

/// A regex over the date text alone and its fields: (name, group indices).
type FieldsRegex = (regex::Regex, Vec<(&'static str, Vec<usize>)>);

/// The last date read: template, text, `now` if it mattered, and the time.
#[derive(Debug)]
struct Memo {
    template: usize,
    text: String,
    now: Option<DateTime<Utc>>,
    time: Option<DateTime<Utc>>,
}

#[derive(Debug)]
struct Template {
    spec: Spec,
    compiled: Compiled,
    /// (field name, Python group number).
    fields: Vec<(&'static str, usize)>,
    /// The date text alone, anchored at both ends, with its field groups (name, group
    /// indices): reading the fields this way costs a short run over the date instead
    /// of the whole template. `None` when the date part has assertions that look
    /// outside it.
    fields_re: Option<FieldsRegex>,
    /// The time read from a given date text depends on `now` (no year, or no day).
    needs_now: bool,
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

/// Is `at` between two word characters (where fail2ban's word-bounded dates cannot
/// start)?
fn inside_word(line: &str, at: usize) -> bool {
    let word = |c: char| c.is_alphanumeric() || c == '_';
    line[..at].chars().next_back().is_some_and(word) && line[at..].chars().next().is_some_and(word)
}

/// Is the root `(...)` group 1, possibly between zero-width assertions?
fn date_is_whole(root: &Node) -> bool {
    let is_group1 = |n: &Node| {
        matches!(
            n,
            Node::Group {
                capture: Some((1, _)),
                ..
            }
        )
    };
    match root {
        n if is_group1(n) => true,
        Node::Concat(v) => {
            v.iter().filter(|n| is_group1(n)).count() == 1
                && v.iter().all(|n| is_group1(n) || n.is_zero_width())
        }
        _ => false,
    }
}

/// The date part (group 1) of a template as its own regex anchored at both ends, with
/// the groups of its fields; `None` if the part has assertions (they could look
/// outside the date text) or needs backtracking.
fn fields_regex(tree: &pyregex::Parsed) -> Result<Option<FieldsRegex>, PatternError> {
    fn has_assertion(n: &Node) -> bool {
        match n {
            n if n.is_anchor() => true,
            Node::Look { .. }
            | Node::Backref { .. }
            | Node::Conditional { .. }
            | Node::Atomic(_) => true,
            Node::Repeat {
                possessive: true, ..
            } => true,
            Node::Group { child, .. } | Node::Repeat { child, .. } => has_assertion(child),
            Node::Concat(v) | Node::Alt(v) => v.iter().any(has_assertion),
            _ => false,
        }
    }
    let Some(body) = tree.group_node(1) else {
        return Ok(None);
    };
    if has_assertion(body) {
        return Ok(None);
    }
    let part = pyregex::Parsed {
        root: body.clone(),
        groups: tree.groups.clone(),
    };
    let written = translate::write(&part, Target::Exact, DATE_CONTEXT, "")?;
    let re = engine::build_regex(&format!(r"\A(?:{})\z", written.text))?;
    let index = |name: &str| re.capture_names().position(|n| n == Some(name));
    let fields = strptime::FIELD_NAMES
        .iter()
        .filter_map(|n| {
            let copies = (1..).map_while(|c| index(&format!("{n}__v{c}")));
            let all: Vec<usize> = index(n).into_iter().chain(copies).collect();
            (!all.is_empty()).then_some((*n, all))
        })
        .collect();
    Ok(Some((re, fields)))
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
    /// The last date read: (template, text, `now` if it mattered) -> time. Lines of a
    /// burst share their timestamp, so most failures skip parsing.
    memo: Option<Memo>,
    locs: Option<(usize, regex::CaptureLocations)>,
}

impl DateCache {
    pub fn new() -> DateCache {
        DateCache {
            last: None,
            slots: Slots::new(),
            slots_for: None,
            memo: None,
            locs: None,
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
                    let plain =
                        translate::write(tree, target, DATE_CONTEXT, "").map_err(|e| (i, e))?;
                    let re = engine::build_regex(&format!(r"\A(?:{})", plain.text))
                        .map_err(|e| (i, e))?;
                    Some((re, lead))
                }
                _ => None,
            };
            alternatives.push(format!("(?:{})", written.text));
            let fields_re = fields_regex(tree).map_err(|e| (i, e))?;
            let has = |n: &str| parsed.group_index(n).is_some();
            let needs_now = spec.value == Value::Fields
                && !((has("Y") || has("y")) && (has("m") || has("b") || has("B")) && has("d"));
            templates.push(Template {
                fields_re,
                needs_now,
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

    pub fn len(&self) -> usize {
        self.templates.len()
    }

    /// Finds the date in `line`.
    pub fn find(&self, line: &str, cache: &mut DateCache) -> Option<Hit> {
        cache.slots_for = None;
        if let Some((k, last_start, _)) = cache.last {
            let t = &self.templates[k];
            if (t.spec.anchored() || self.templates.len() == 1)
                && let Some(m) = t.compiled.find_at(line, 0, &mut cache.slots)
                && let Some(hit) = self.confirm(line, cache, k, m)
            {
                return Some(hit);
            }
            // fail2ban takes the last template if it matches at the same offset again.
            if let Some((re, lead)) = &t.at_start
                && let Some(rest) = line.get(last_start..)
                && (*lead != Lead::Word || !inside_word(line, last_start))
                && *lead != Lead::LineStart
                && let Some(m) = re.find(rest)
                && let Some(hit) = self.confirm(line, cache, k, (last_start, last_start + m.end()))
            {
                return Some(hit);
            }
        }
        // The earliest start of any template; the first template in list order that
        // matches there wins.
        let start = self.combined.as_ref()?.find(line)?.start();
        let rest = &line[start..];
        let inside_word = inside_word(line, start);
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
            return self
                .confirm(line, cache, k, m)
                .or_else(|| self.find_slow(line, cache));
        }
        self.find_slow(line, cache)
    }

    /// Template `k` matched at `m`: locate its date and remember it.
    fn confirm(
        &self,
        line: &str,
        cache: &mut DateCache,
        k: usize,
        m: (usize, usize),
    ) -> Option<Hit> {
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
        // (template, whole match, date)
        type Best = Option<(usize, (usize, usize), (usize, usize))>;
        let mut best: Best = None;
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

    fn remember(
        &self,
        cache: &mut DateCache,
        k: usize,
        m: (usize, usize),
        d: (usize, usize),
    ) -> Hit {
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
        let text = &line[hit.start..hit.end];
        let now_key = t.needs_now.then_some(now);
        if let Some(m) = &cache.memo
            && m.template == hit.template
            && m.text == text
            && m.now == now_key
        {
            return m.time;
        }
        let time = Self::read_time(t, line, text, hit, cache, now);
        match &mut cache.memo {
            Some(m) => {
                m.template = hit.template;
                m.text.clear();
                m.text.push_str(text);
                m.now = now_key;
                m.time = time;
            }
            None => {
                cache.memo = Some(Memo {
                    template: hit.template,
                    text: text.to_string(),
                    now: now_key,
                    time,
                })
            }
        }
        time
    }

    /// The time of `date`, the text `hit` found in `line` with template `t`.
    fn read_time(
        t: &Template,
        line: &str,
        date: &str,
        hit: &Hit,
        cache: &mut DateCache,
        now: DateTime<Utc>,
    ) -> Option<DateTime<Utc>> {
        match t.spec.value {
            Value::Nothing => return None,
            Value::Epoch { group: 1, long } => return strptime::epoch_to_time(date, long),
            Value::Tai64n => return strptime::tai64n_to_time(date),
            _ => {}
        }
        if let (Value::Fields, Some((re, fields))) = (t.spec.value, &t.fields_re) {
            let locs = match &mut cache.locs {
                Some((k, locs)) if *k == hit.template => locs,
                slot => &mut slot.insert((hit.template, re.capture_locations())).1,
            };
            if re.captures_read(locs, date).is_some() {
                return strptime::fields_to_time(
                    |name| {
                        let (_, groups) = fields.iter().find(|(n, _)| *n == name)?;
                        groups
                            .iter()
                            .find_map(|&g| locs.get(g))
                            .map(|(a, b)| &date[a..b])
                    },
                    now,
                );
            }
        }
        if cache.slots_for != Some(hit.template) {
            if !t
                .compiled
                .captures_at(line, hit.match_start, &mut cache.slots)
            {
                return None;
            }
            cache.slots_for = Some(hit.template);
        }
        let slots = &cache.slots;
        let text = |g: usize| slots.get(g).map(|(a, b)| &line[a..b]);
        match t.spec.value {
            Value::Epoch { group, long } => strptime::epoch_to_time(text(group)?, long),
            Value::Tai64n => strptime::tai64n_to_time(text(1)?),
            Value::Nothing => None,
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
            (
                "Nov 21 10:00:00 host sshd[1]: x",
                "Nov 21 10:00:00",
                "2026-11-21T10:00:00+00:00",
            ),
            (
                r#"1.2.3.4 - - [21/Nov/2026:10:00:00 +0100] "GET / HTTP/1.1" 200"#,
                "21/Nov/2026:10:00:00 +0100",
                "2026-11-21T09:00:00+00:00",
            ),
            (
                "2026-11-21 10:00:00 x",
                "2026-11-21 10:00:00",
                "2026-11-21T10:00:00+00:00",
            ),
            (
                "2026-11-21T10:00:00.123Z x",
                "2026-11-21T10:00:00.123Z",
                "2026-11-21T10:00:00+00:00",
            ),
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
        let (t, _) = detect(
            Some(r"^[^\[]*\[({DATE})"),
            "1.2.3.4 [21/Nov/2026:10:00:00 +0000] x",
        )
        .unwrap();
        assert_eq!(t, "21/Nov/2026:10:00:00 +0000");
        let (t, tm) = detect(Some("{^LN-BEG}"), "Nov 21 10:00:00 x 2026-01-01 00:00:00").unwrap();
        assert_eq!(
            (t.as_str(), tm.as_str()),
            ("Nov 21 10:00:00", "2026-11-21T10:00:00+00:00")
        );
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
