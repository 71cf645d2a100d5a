//! A Python pattern compiled for the fastest engine that can run it exactly.
//!
//! | pattern uses | engine | how |
//! |---|---|---|
//! | nothing Python-only | `regex` | exact |
//! | backreferences only | `regex` on the relaxed pattern, then a check that each backreference copy equals its group; fancy-regex only when the check fails | exact |
//! | lookarounds, conditionals, atomic groups | `regex` on the relaxed pattern as a prefilter, fancy-regex on lines that pass | exact |
//!
//! The relaxed pattern matches wherever the exact one does (see `translate.rs`), so the
//! prefilter never loses a match, and most lines never reach the backtracking engine.
//! Before that, backreferences to a few single characters are expanded away
//! (`pyregex::expand_backrefs`), and a literal every match must contain is looked for
//! with a plain substring search, which rejects most non-matching lines fastest.
//! Captures are reported by Python group number, whichever engine found them.

use std::sync::Arc;

use super::error::PatternError;
use super::pyregex::{self, Node, Parsed};
use super::translate::{self, Context, Target, Written};

/// Size limits for the `regex` crate: Unicode classes in `<HOST>` (`\w`) and large
/// alternations (sshd) need more than the defaults.
const SIZE_LIMIT: usize = 64 << 20;
const DFA_SIZE_LIMIT: usize = 16 << 20;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    Exact,
    Verified,
    Prefilter,
}

/// A compiled pattern. Cheap to clone.
#[derive(Debug, Clone)]
pub(crate) struct Compiled {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    /// The pattern as fail2ban would compile it (after tag expansion).
    source: String,
    parsed: Parsed,
    mode: Mode,
    fast: regex::Regex,
    fancy: Option<fancy_regex::Regex>,
    /// Python group number -> group indices in `fast` (several when an expanded
    /// backreference repeats a group; the one that took part counts).
    fast_index: Vec<Vec<usize>>,
    /// Text every match contains, as a literal search (memchr's memmem behind the
    /// `regex` crate), the cheapest rejection.
    literal: Option<regex::Regex>,
    /// Cheaper captures: see [`Split`].
    split: Option<Split>,
    /// Backreference checks: (Python group, index of the copy in `fast`, case-insensitive).
    checks: Vec<(usize, usize, bool)>,
}

/// A pattern cut after its last capturing group: `prefix` holds every group, `suffix`
/// none. When the prefix's own first match at the start of the full match can be
/// followed by the suffix, that path is the full match's path (the full pattern tries
/// the prefix's paths in the same order), so the groups come from a capture run over
/// the short prefix instead of over the whole line (`^<HOST> .* "POST ...` spends its
/// time in the `.*`).
#[derive(Debug)]
struct Split {
    prefix: regex::Regex,
    /// `\A(?:suffix)`; `None` when the tail is [`Split::rest`].
    suffix: Option<regex::Regex>,
    /// The tail is a group `(.+)` or `(.*)` to the end of the line (prefregex's
    /// `<F-CONTENT>.+</F-CONTENT>$`): (Python group, minimum length). Its span needs
    /// no regex at all.
    rest: Option<(usize, usize)>,
    /// Python group number -> group indices in `prefix`.
    index: Vec<Vec<usize>>,
    /// Find where the match ends (multi-line buffers consume the matched lines);
    /// otherwise group 0's end is reported as the haystack's end.
    need_end: bool,
}

/// Reusable capture storage; after the first use, matching allocates nothing.
#[derive(Debug)]
pub(crate) struct Slots {
    /// Capture storage per regex (keyed by the compiled pattern's address), so one
    /// `Slots` serves several patterns without reallocating.
    locs: Vec<(usize, regex::CaptureLocations)>,
    /// Span of each Python group (index 0: the whole match).
    spans: Vec<Option<(usize, usize)>>,
}

impl Slots {
    pub fn new() -> Slots {
        Slots {
            locs: Vec::new(),
            spans: Vec::new(),
        }
    }
}

fn locs_for<'a>(
    locs: &'a mut Vec<(usize, regex::CaptureLocations)>,
    key: usize,
    re: &regex::Regex,
) -> &'a mut regex::CaptureLocations {
    let i = match locs.iter().position(|(k, _)| *k == key) {
        Some(i) => i,
        None => {
            locs.push((key, re.capture_locations()));
            locs.len() - 1
        }
    };
    &mut locs[i].1
}

impl Slots {
    pub fn get(&self, group: usize) -> Option<(usize, usize)> {
        self.spans.get(group).copied().flatten()
    }
}

/// The index of the group named `name` in `re`.
fn index_of(re: &regex::Regex, name: &str) -> Option<usize> {
    re.capture_names().position(|n| n == Some(name))
}

/// Python group number -> indices in `re` of that group and of its copies (`__v1`, ...);
/// `groups` are the Python groups' names (index 0 is group 1).
fn group_index(re: &regex::Regex, groups: &[Option<String>]) -> Vec<Vec<usize>> {
    let mut index = vec![vec![0]];
    for (i, name) in groups.iter().enumerate() {
        let base = translate::group_name("", i + 1, name.as_deref());
        let copies = (1..).map_while(|n| index_of(re, &format!("{base}__v{n}")));
        index.push(index_of(re, &base).into_iter().chain(copies).collect());
    }
    index
}

/// Builds a `regex::Regex` with our limits.
pub(crate) fn build_regex(text: &str) -> Result<regex::Regex, PatternError> {
    regex::RegexBuilder::new(text)
        .size_limit(SIZE_LIMIT)
        .dfa_size_limit(DFA_SIZE_LIMIT)
        .build()
        .map_err(|e| PatternError::Invalid(format!("regex does not compile: {e}")))
}

fn build_fancy(text: &str) -> Result<fancy_regex::Regex, PatternError> {
    fancy_regex::RegexBuilder::new(text)
        .delegate_size_limit(SIZE_LIMIT)
        .delegate_dfa_size_limit(DFA_SIZE_LIMIT)
        .build()
        .map_err(|e| {
            let msg = e.to_string();
            if msg.to_lowercase().contains("look-behind")
                || msg.to_lowercase().contains("lookbehind")
            {
                PatternError::Unsupported(format!(
                    "regex uses a lookbehind fancy-regex cannot run ({msg})"
                ))
            } else {
                PatternError::Invalid(format!("regex does not compile: {msg}"))
            }
        })
}

impl Compiled {
    /// Compiles Python pattern `source` (`multiline`: Python's `re.MULTILINE`).
    pub fn new(source: &str, multiline: bool, ctx: Context) -> Result<Compiled, PatternError> {
        let rewritten = pyregex::glob_to_local_flags(source);
        let parsed = pyregex::parse(&rewritten, multiline)?;
        translate::check_lookbehinds(&parsed.root)?;
        let expanded = pyregex::expand_backrefs(&parsed);
        let fast_tree = expanded.as_ref().unwrap_or(&parsed);
        let mode = if !translate::needs_backtracking(fast_tree, ctx) {
            Mode::Exact
        } else if translate::only_backrefs(fast_tree, ctx) {
            Mode::Verified
        } else {
            Mode::Prefilter
        };
        let target = if mode == Mode::Exact {
            Target::Exact
        } else {
            Target::Relaxed
        };
        let Written { text, backrefs } = translate::write(fast_tree, target, ctx, "")?;
        let fast = build_regex(&text)?;
        let fancy = if mode == Mode::Exact {
            None
        } else {
            let fancy_text = translate::write(&parsed, Target::Fancy, ctx, "")?.text;
            Some(build_fancy(&fancy_text)?)
        };
        let fast_index = group_index(&fast, &parsed.groups);
        let literal = pyregex::required_literal(&parsed.root);
        let literal = if literal.len() >= 2 {
            Some(build_regex(&regex::escape(&literal))?)
        } else {
            None
        };
        let split = if mode == Mode::Exact {
            split(fast_tree, ctx)?
        } else {
            None
        };
        let checks = backrefs
            .iter()
            .filter_map(|(group, copy, ci)| index_of(&fast, copy).map(|c| (*group, c, *ci)))
            .collect();
        Ok(Compiled {
            inner: Arc::new(Inner {
                source: source.to_string(),
                parsed,
                mode,
                fast,
                fancy,
                fast_index,
                literal,
                split,
                checks,
            }),
        })
    }

    pub fn source(&self) -> &str {
        &self.inner.source
    }

    pub fn parsed(&self) -> &Parsed {
        &self.inner.parsed
    }

    /// Does the pattern need fancy-regex for some lines?
    pub fn is_backtracking(&self) -> bool {
        self.inner.mode != Mode::Exact
    }

    /// The span of the first match at or after `start`, without captures when the
    /// engine allows (the fast path of date detection).
    pub fn find_at(&self, hay: &str, start: usize, slots: &mut Slots) -> Option<(usize, usize)> {
        if self.inner.mode == Mode::Exact {
            if !self.may_match(hay, start) {
                return None;
            }
            return self
                .inner
                .fast
                .find_at(hay, start)
                .map(|m| (m.start(), m.end()));
        }
        if self.captures_at(hay, start, slots) {
            slots.get(0)
        } else {
            None
        }
    }

    /// Cheap necessary condition for a match at or after `start`.
    fn may_match(&self, hay: &str, start: usize) -> bool {
        match &self.inner.literal {
            None => true,
            Some(lit) => lit.is_match_at(hay, start),
        }
    }

    /// Is there a match anywhere in `hay`?
    pub fn is_match(&self, hay: &str, slots: &mut Slots) -> bool {
        let inner = &*self.inner;
        if !self.may_match(hay, 0) {
            return false;
        }
        match inner.mode {
            Mode::Exact => inner.fast.is_match(hay),
            Mode::Verified | Mode::Prefilter => self.captures(hay, slots),
        }
    }

    /// Finds the first match and records its groups in `slots`.
    pub fn captures(&self, hay: &str, slots: &mut Slots) -> bool {
        self.captures_at(hay, 0, slots)
    }

    /// Like [`Compiled::captures`], searching from byte `start` (context before it still
    /// counts for anchors and word boundaries).
    pub fn captures_at(&self, hay: &str, start: usize, slots: &mut Slots) -> bool {
        let inner = &*self.inner;
        let n = inner.parsed.groups.len() + 1;
        slots.spans.clear();
        slots.spans.resize(n, None);
        if !self.may_match(hay, start) {
            return false;
        }
        // The DFA rejects most lines far faster than any capture engine.
        if !inner.fast.is_match_at(hay, start) {
            return false;
        }
        let key = Arc::as_ptr(&self.inner) as usize;
        if let Some(split) = &inner.split {
            // The prefix's leftmost match is where the full match starts if the tail
            // follows it (a full match further left would need a prefix match there).
            let locs = locs_for(&mut slots.locs, key ^ 1, &split.prefix);
            if let Some(p) = split.prefix.captures_read_at(locs, hay, start) {
                let tail = &hay[p.end()..];
                let end = match (&split.suffix, split.rest) {
                    (_, Some((group, min))) => {
                        let len = tail.find('\n').unwrap_or(tail.len());
                        let ok = tail[..len].chars().take(min).count() >= min;
                        if ok {
                            slots.spans[group] = Some((p.end(), p.end() + len));
                        }
                        ok.then_some(p.end() + len)
                    }
                    (Some(suffix), None) if split.need_end => {
                        suffix.find(tail).map(|m| p.end() + m.end())
                    }
                    (Some(suffix), None) => suffix.is_match(tail).then_some(hay.len()),
                    (None, None) => None,
                };
                if let Some(end) = end {
                    for py in 1..n {
                        if let Some(span) = split.index[py].iter().find_map(|&i| locs.get(i)) {
                            slots.spans[py] = Some(span);
                        }
                    }
                    slots.spans[0] = Some((p.start(), end));
                    return true;
                }
                slots.spans.iter_mut().for_each(|s| *s = None);
            }
        }
        if inner.mode != Mode::Prefilter {
            let locs = locs_for(&mut slots.locs, key, &inner.fast);
            if inner.fast.captures_read_at(locs, hay, start).is_none() {
                return false;
            }
            let span = |group: usize| inner.fast_index[group].iter().find_map(|&i| locs.get(i));
            let verified = inner.checks.iter().all(|&(group, copy, ci)| {
                let text = |s: Option<(usize, usize)>| s.map(|(a, b)| &hay[a..b]);
                match (text(span(group)), text(locs.get(copy))) {
                    (Some(g), Some(c)) if ci => g.to_lowercase() == c.to_lowercase(),
                    (Some(g), Some(c)) => g == c,
                    _ => false,
                }
            });
            if verified {
                for py in 0..n {
                    slots.spans[py] = span(py);
                }
                return true;
            }
        }
        let Some(fancy) = &inner.fancy else {
            return false;
        };
        match fancy.captures_from_pos(hay, start) {
            Ok(Some(caps)) => {
                for (i, slot) in slots.spans.iter_mut().enumerate() {
                    *slot = caps.get(i).map(|m| (m.start(), m.end()));
                }
                true
            }
            Ok(None) => false,
            Err(e) => {
                tracing::debug!(pattern = %inner.source, error = %e, "backtracking limit hit, line treated as not matching");
                false
            }
        }
    }
}

/// The [`Split`] of a pattern, if it has a tail without (needed) groups that looks
/// only forward, or ends in a group running to the end of the line.
fn split(tree: &Parsed, ctx: Context) -> Result<Option<Split>, PatternError> {
    fn has_capture(n: &Node, named_only: bool) -> bool {
        match n {
            Node::Group {
                capture: Some((_, name)),
                child,
            } => !named_only || name.is_some() || has_capture(child, named_only),
            Node::Group { child, .. }
            | Node::Look { child, .. }
            | Node::Atomic(child)
            | Node::Repeat { child, .. } => has_capture(child, named_only),
            Node::Concat(v) | Node::Alt(v) => v.iter().any(|n| has_capture(n, named_only)),
            Node::Conditional { yes, no, .. } => {
                has_capture(yes, named_only) || has_capture(no, named_only)
            }
            _ => false,
        }
    }
    /// `(?P<g>.+)` / `(?P<g>.*)`: (group, minimum length).
    fn rest_group(n: &Node) -> Option<(usize, usize)> {
        let Node::Group {
            capture: Some((g, _)),
            child,
        } = n
        else {
            return None;
        };
        match &**child {
            Node::Repeat {
                child,
                min: min @ (0 | 1),
                max: None,
                greedy: true,
                possessive: false,
            } if matches!(**child, Node::Any { dotall: false }) => Some((*g, *min as usize)),
            _ => None,
        }
    }
    fn looks_back(n: &Node) -> bool {
        match n {
            Node::WordBoundary { .. }
            | Node::LineStart { .. }
            | Node::TextStart
            | Node::Look { .. }
            | Node::Backref { .. }
            | Node::Conditional { .. } => true,
            Node::Group { child, .. } | Node::Atomic(child) | Node::Repeat { child, .. } => {
                looks_back(child)
            }
            Node::Concat(v) | Node::Alt(v) => v.iter().any(looks_back),
            _ => false,
        }
    }
    let Node::Concat(items) = &tree.root else {
        return Ok(None);
    };
    let Some(last) = items.iter().rposition(|n| has_capture(n, ctx.named_only)) else {
        return Ok(None);
    };
    let part = |nodes: &[Node]| Parsed {
        root: Node::Concat(nodes.to_vec()),
        groups: tree.groups.clone(),
    };
    let line_ends = |v: &[Node]| v.iter().all(|n| matches!(n, Node::LineEnd { .. }));
    let (cut, suffix, rest) = match rest_group(&items[last]) {
        Some(rest) if last > 0 && !ctx.multi_line_buffer && line_ends(&items[last + 1..]) => {
            (last, None, Some(rest))
        }
        _ => {
            let tail = &items[last + 1..];
            if tail.is_empty() || tail.iter().any(looks_back) {
                return Ok(None);
            }
            let text = translate::write(&part(tail), Target::Exact, ctx, "")?.text;
            (
                last + 1,
                Some(build_regex(&format!(r"\A(?:{text})"))?),
                None,
            )
        }
    };
    let prefix =
        build_regex(&translate::write(&part(&items[..cut]), Target::Exact, ctx, "")?.text)?;
    let index = group_index(&prefix, &tree.groups);
    Ok(Some(Split {
        prefix,
        suffix,
        rest,
        index,
        need_end: ctx.multi_line_buffer,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn c(p: &str) -> Compiled {
        Compiled::new(p, false, Context::default()).unwrap()
    }

    #[test]
    fn exact_and_groups() {
        let p = c(r"^(?P<a>\d+)-(x)?$");
        assert!(!p.is_backtracking());
        let mut s = Slots::new();
        assert!(p.captures("12-x\n", &mut s));
        assert_eq!(s.get(1), Some((0, 2)));
        assert_eq!(s.get(2), Some((3, 4)));
        assert!(p.captures("12-\n", &mut s));
        assert_eq!(s.get(2), None);
        assert!(!p.is_match("a-x\n", &mut s));
    }

    #[test]
    fn verified_backrefs() {
        let p = c(r"(?P<sep>\W)\d+(?P=sep)");
        assert!(p.is_backtracking());
        let mut s = Slots::new();
        assert!(p.captures("a-12-b", &mut s));
        assert_eq!(s.get(0), Some((1, 5)));
        // The relaxed regex finds "-12/" first; the check fails and fancy-regex finds
        // the real match further on.
        assert!(p.captures("-12/34/", &mut s));
        assert_eq!(s.get(0), Some((3, 7)));
        assert!(!p.is_match("-12/", &mut s));
    }

    #[test]
    fn prefilter_then_fancy() {
        let p = c(r"^user (?P<u>(?:(?! from ).)+) from (?P<h>\S+)$");
        let mut s = Slots::new();
        assert!(p.captures("user a b from 1.2.3.4\n", &mut s));
        assert_eq!(s.get(2), Some((14, 21)));
        assert!(!p.is_match("user x from y from 1.2.3.4\n", &mut s));
    }
}
