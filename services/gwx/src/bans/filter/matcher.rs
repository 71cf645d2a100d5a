//! The per-line matcher: fail2ban's `processLine`/`findFailure` for one reader.
//!
//! For each line:
//!
//! 1. Find the date (`detector.rs`) and cut its text out; the rest plus a final `\n` is
//!    what the regexes see (fail2ban searches exactly that, so `^`, `$` and the `[]`
//!    a bracketed date leaves behind behave as the filters expect).
//! 2. `prefregex` must match; its `<F-CONTENT>` becomes what the failregexes see.
//! 3. The first `failregex` that matches wins (fail2ban's behaviour outside its test
//!    tool); an `ignoreregex` match then ignores the line.
//! 4. Groups are merged (failregex over prefregex), and through the multi-line id
//!    cache (`mlcache.rs`) when the line has an `<F-MLFID>`.
//! 5. The host is `ip4`, `ip6`, `dns`, else the failure id; the log-injection guard
//!    (below) checks it; the time is the line's date, else `now`.
//!
//! Log-injection guard: a line can carry attacker-chosen text (a user name, a URL), and
//! an unanchored regex may pick an address out of that text instead of the real
//! client's. So after a failregex found host H, H's text (the whole address-like token
//! around it, so `::ffff:` or a `:port` does not survive) is masked with NUL
//! characters, which no host pattern matches, and every failregex runs again; if one
//! then finds a different address, the line names two hosts and we report
//! [`Outcome::Ambiguous`] instead of a failure, banning nobody. A different DNS name
//! does not count (names are never banned). If the same address turns up elsewhere,
//! that is masked too and the search repeats (a few rounds). Only lines that already
//! matched pay for this. A line-local check cannot tell which of two addresses the
//! daemon wrote and which the attacker did, so the guard withholds both; filters
//! whose regexes anchor the address (sshd's normal modes) are never ambiguous.
//!
//! With `maxlines` above 1 the regexes see the last `maxlines` lines joined (fail2ban's
//! line buffer) and the lines of a match are consumed.
//!
//! Non-matching lines allocate nothing: buffers and capture slots are reused.

use std::collections::VecDeque;
use std::sync::Arc;

use chrono::{DateTime, Utc};

use super::compiled::{Inner, Lookup, Name, Rx};
use super::detector::DateCache;
use super::engine::Slots;
use super::mlcache::{Groups, MlCache, truthy};
use super::{Failure, Host, Outcome};

/// Rounds of masking the same host found again elsewhere before giving up.
const GUARD_ROUNDS: usize = 8;

/// Per-reader matching state: caches and reusable buffers. Create one per log source
/// with [`super::Filter::matcher`].
#[derive(Debug)]
pub struct Matcher {
    inner: Arc<Inner>,
    /// The text the regexes see (line without date, `\n`).
    buf: String,
    /// `prefregex`'s `<F-CONTENT>` plus `\n`.
    content: String,
    /// Multi-line buffer (lines without their date).
    lines: VecDeque<String>,
    date: DateCache,
    pre: Slots,
    fail: Slots,
    scratch_pre: Slots,
    scratch_fail: Slots,
    scratch_content: String,
    /// The line with a host masked (injection guard).
    masked: String,
    ml: MlCache,
    guard: bool,
}

/// Where the failregexes matched.
#[derive(Debug, Clone, Copy)]
struct Found {
    failregex: usize,
    /// Byte offset of the failregexes' haystack in `buf` (the content's start), or 0.
    offset: usize,
    /// The failregexes ran on the content, not on `buf`.
    on_content: bool,
}

impl Matcher {
    pub(crate) fn new(inner: Arc<Inner>) -> Matcher {
        Matcher {
            inner,
            buf: String::with_capacity(512),
            content: String::with_capacity(512),
            lines: VecDeque::new(),
            date: DateCache::new(),
            pre: Slots::new(),
            fail: Slots::new(),
            scratch_pre: Slots::new(),
            scratch_fail: Slots::new(),
            scratch_content: String::new(),
            masked: String::new(),
            ml: MlCache::default(),
            guard: true,
        }
    }

    /// Turns the log-injection guard off (on by default). With it off, a line that
    /// names two hosts yields whichever the regex picks, exactly as fail2ban does.
    /// Only for filters whose regexes are known to pick the right host, such as
    /// fail2ban's own injection samples show: sshd's `Bad protocol version
    /// identification 'x' from 192.0.2.1' from <real>` is ambiguous to the guard.
    pub fn set_injection_guard(&mut self, on: bool) {
        self.guard = on;
    }

    /// Matches one log line (without its newline). `now` is the time of lines without
    /// a date and completes dates without a year or day.
    pub fn match_line(&mut self, line: &str, now: DateTime<Utc>) -> Outcome {
        let line = line.trim_end_matches(['\n', '\r']);
        let inner = Arc::clone(&self.inner);
        let hit = inner.detector.find(line, &mut self.date);
        self.buf.clear();
        match hit {
            Some(h) => {
                self.buf.push_str(&line[..h.start]);
                self.buf.push_str(&line[h.end..]);
            }
            None => self.buf.push_str(line),
        }
        let mut outcome = self.evaluate(now);
        if let Outcome::Failure(f) = &mut outcome {
            f.time = hit
                .filter(|h| h.end > h.start)
                .and_then(|h| inner.detector.time(line, &h, &mut self.date, now))
                .unwrap_or(now);
        }
        outcome
    }

    /// Matches a message whose time is already known (a journal entry): no date is
    /// looked for in the text.
    pub fn match_message(&mut self, message: &str, time: DateTime<Utc>) -> Outcome {
        self.buf.clear();
        self.buf.push_str(message.trim_end_matches(['\n', '\r']));
        self.evaluate(time)
    }

    /// Entries in the multi-line id cache (for diagnostics and tests).
    pub fn cached_ids(&self) -> usize {
        self.ml.len()
    }

    /// `self.buf` holds the current line without its date (no newline yet).
    fn evaluate(&mut self, now: DateTime<Utc>) -> Outcome {
        let inner = Arc::clone(&self.inner);
        if inner.maxlines > 1 {
            self.lines.push_back(self.buf.clone());
            while self.lines.len() > inner.maxlines {
                self.lines.pop_front();
            }
            self.buf.clear();
            for (i, l) in self.lines.iter().enumerate() {
                if i > 0 {
                    self.buf.push('\n');
                }
                self.buf.push_str(l);
            }
        }
        self.buf.push('\n');

        // fail2ban checks ignoreregex up front when there are far fewer of them.
        let early_ignore = !inner.ignoreregex.is_empty()
            && inner.ignoreregex.len() + 2 < inner.failregex.len()
            && self.ignored(&inner, false, None);
        let found = scan(
            &inner,
            &self.buf,
            &mut self.content,
            &mut self.pre,
            &mut self.fail,
            None,
        );
        if early_ignore {
            return if found.is_some() {
                Outcome::Ignored
            } else {
                Outcome::NoMatch
            };
        }
        // fail2ban replaces its line buffer by the prefregex content.
        if inner.maxlines > 1 && !self.content.is_empty() {
            self.lines.clear();
            self.lines
                .push_back(self.content.trim_end_matches('\n').to_string());
        }
        let Some(found) = found else {
            return Outcome::NoMatch;
        };
        let target_len = if found.on_content {
            self.content.len()
        } else {
            self.buf.len()
        };
        let span = self.fail.get(0).unwrap_or((0, target_len));
        let consumed = self.consumed_lines(found, span);
        if self.ignored(&inner, true, consumed.clone()) {
            self.consume(consumed);
            return Outcome::Ignored;
        }
        self.consume(consumed);

        let fr = &inner.failregex[found.failregex];
        let get = |name: Name| {
            merged(
                &inner,
                fr,
                name,
                found,
                &self.pre,
                &self.fail,
                &self.buf,
                &self.content,
            )
        };
        let text = |name: Name| get(name).map(|(t, _)| t.to_string());
        // The host this line names itself (an address parses without allocating).
        let own_host = [Name::Ip4, Name::Ip6, Name::Dns, Name::Fid]
            .into_iter()
            .find_map(get)
            .map(|(t, span)| (Host::parse(t), span));
        let mlfid = text(Name::Mlfid);
        let user = text(Name::User).filter(|u| !u.is_empty());
        let groups = mlfid.as_ref().map(|_| Groups {
            ip4: text(Name::Ip4),
            ip6: text(Name::Ip6),
            dns: text(Name::Dns),
            fid: text(Name::Fid),
            user: user.clone(),
            nofail: text(Name::Nofail),
            mlfgained: text(Name::Mlfgained),
            mlfforget: text(Name::Mlfforget),
            users: None,
            pending: false,
        });

        if self.guard
            && let Some((host, span)) = &own_host
            && let Some(other) = self.guard(&inner, host, *span)
        {
            return Outcome::Ambiguous {
                hosts: vec![host.to_string(), other.to_string()],
            };
        }

        let (host, user) = match (mlfid, groups) {
            (Some(id), Some(groups)) => {
                let merged = self.ml.merge(&id, groups, now);
                if truthy(&merged.nofail) {
                    return Outcome::NoFailure;
                }
                let host = [&merged.ip4, &merged.ip6, &merged.dns, &merged.fid]
                    .into_iter()
                    .find_map(|h| h.as_deref().map(Host::parse));
                if host.is_none() {
                    self.ml.set_pending(&id);
                }
                (host, merged.user.filter(|u| !u.is_empty()))
            }
            _ => (own_host.map(|(h, _)| h), user),
        };
        let Some(host) = host else {
            return Outcome::NoFailure;
        };
        Outcome::Failure(Failure {
            host,
            time: now,
            failregex: found.failregex,
            user,
        })
    }

    /// Does an ignoreregex match? Before a failregex matched (`after_match` false) the
    /// whole buffer counts; after, what the failregex saw (the content, or in
    /// multi-line mode only the lines of the match).
    fn ignored(
        &mut self,
        inner: &Inner,
        after_match: bool,
        lines: Option<std::ops::Range<usize>>,
    ) -> bool {
        if inner.ignoreregex.is_empty() {
            return false;
        }
        let hay: &str = match lines {
            _ if !after_match => &self.buf,
            Some(r) => {
                self.scratch_content.clear();
                for i in r {
                    if let Some(l) = self.lines.get(i) {
                        self.scratch_content.push_str(l);
                        self.scratch_content.push('\n');
                    }
                }
                &self.scratch_content
            }
            None if !self.content.is_empty() => &self.content,
            None => &self.buf,
        };
        let slots = &mut self.scratch_fail;
        inner.ignoreregex.iter().any(|re| re.is_match(hay, slots))
    }

    /// Multi-line mode: the buffered lines the match covers (fail2ban's
    /// `getMatchedTupleLines`).
    fn consumed_lines(&self, found: Found, span: (usize, usize)) -> Option<std::ops::Range<usize>> {
        if self.inner.maxlines <= 1 {
            return None;
        }
        let target = if found.on_content {
            &self.content
        } else {
            &self.buf
        };
        let (start, end) = span;
        let line_start = target[..(start + 1).min(target.len())]
            .rfind('\n')
            .map_or(0, |i| i + 1);
        let from = end.saturating_sub(1).min(target.len());
        let line_end = target[from..]
            .find('\n')
            .map_or(target.len(), |i| from + i + 1);
        let first = target[..line_start].matches('\n').count();
        let last = target[..line_end].matches('\n').count();
        Some(first..last)
    }

    fn consume(&mut self, lines: Option<std::ops::Range<usize>>) {
        if let Some(r) = lines {
            let r = r.start.min(self.lines.len())..r.end.min(self.lines.len());
            self.lines.drain(r);
        }
    }

    /// The log-injection guard: with `host`'s text masked, does any failregex find a
    /// different host?
    fn guard(&mut self, inner: &Inner, host: &Host, span: (usize, usize)) -> Option<Host> {
        let mut masked = std::mem::take(&mut self.masked);
        masked.clear();
        masked.push_str(&self.buf);
        mask(&mut masked, span);
        let other = self.guard_rounds(inner, host, &mut masked);
        self.masked = masked;
        other
    }

    fn guard_rounds(&mut self, inner: &Inner, host: &Host, masked: &mut String) -> Option<Host> {
        for _ in 0..GUARD_ROUNDS {
            let mut same: Option<(usize, usize)> = None;
            for i in 0..inner.failregex.len() {
                let Some(found) = scan(
                    inner,
                    masked,
                    &mut self.scratch_content,
                    &mut self.scratch_pre,
                    &mut self.scratch_fail,
                    Some(i),
                ) else {
                    continue;
                };
                let fr = &inner.failregex[i];
                let other = [Name::Ip4, Name::Ip6, Name::Dns, Name::Fid]
                    .into_iter()
                    .find_map(|n| {
                        merged(
                            inner,
                            fr,
                            n,
                            found,
                            &self.scratch_pre,
                            &self.scratch_fail,
                            masked,
                            &self.scratch_content,
                        )
                    });
                if let Some((text, s)) = other {
                    let h = Host::parse(text);
                    // Names are never banned, so only a different address competes.
                    if h != *host && h.ip().is_some() {
                        return Some(h);
                    }
                    if s.1 > s.0 && same.is_none() {
                        same = Some(s);
                    }
                }
            }
            match same {
                Some(s) => mask(masked, s),
                None => break,
            }
        }
        None
    }
}

/// Replaces the address token around `span` with NULs (same length, still UTF-8).
/// The whole token goes, not just the captured group: in `::ffff:1.2.3.4` or
/// `[2001:db8::1]:22` the rest would otherwise still read as an address.
fn mask(s: &mut String, (a, b): (usize, usize)) {
    let token =
        |c: char| c.is_alphanumeric() || matches!(c, '_' | '.' | ':' | '-' | '[' | ']' | '^');
    let b = b.min(s.len());
    if a >= b || !s.is_char_boundary(a) || !s.is_char_boundary(b) {
        return;
    }
    let start = s[..a]
        .char_indices()
        .rev()
        .take_while(|&(_, c)| token(c))
        .last()
        .map_or(a, |(i, _)| i);
    let end = s[b..]
        .char_indices()
        .find(|&(_, c)| !token(c))
        .map_or(s.len(), |(i, _)| b + i);
    const NULS: &str = "\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0";
    let mut at = start;
    while at < end {
        let n = (end - at).min(NULS.len());
        s.replace_range(at..at + n, &NULS[..n]);
        at += n;
    }
}

/// Runs prefregex and the failregexes (all, or only `only`) over `buf`.
fn scan(
    inner: &Inner,
    buf: &str,
    content: &mut String,
    pre: &mut Slots,
    fail: &mut Slots,
    only: Option<usize>,
) -> Option<Found> {
    content.clear();
    let mut offset = 0;
    let mut on_content = false;
    if let Some(p) = &inner.prefregex {
        if !p.re.captures(buf, pre) {
            return None;
        }
        if let Lookup::Value(Some((a, b))) = p.lookup(Name::Content, pre)
            && b > a
        {
            content.push_str(&buf[a..b]);
            content.push('\n');
            offset = a;
            on_content = true;
        }
    }
    let target: &str = if on_content { content } else { buf };
    let range = match only {
        Some(i) => i..i + 1,
        None => 0..inner.failregex.len(),
    };
    for i in range {
        if inner.failregex[i].re.captures(target, fail) {
            return Some(Found {
                failregex: i,
                offset,
                on_content,
            });
        }
    }
    None
}

/// A group's text and its span in `buf`, as fail2ban's merged dictionary (failregex
/// over prefregex) has it. `None`: absent or did not take part.
#[allow(clippy::too_many_arguments)]
fn merged<'a>(
    inner: &Inner,
    fr: &Rx,
    name: Name,
    found: Found,
    pre: &Slots,
    fail: &Slots,
    buf: &'a str,
    content: &'a str,
) -> Option<(&'a str, (usize, usize))> {
    match fr.lookup(name, fail) {
        Lookup::Value(Some((a, b))) => {
            let target = if found.on_content { content } else { buf };
            Some((target.get(a..b)?, (a + found.offset, b + found.offset)))
        }
        Lookup::Value(None) => None,
        Lookup::Absent => match inner.prefregex.as_ref().map(|p| p.lookup(name, pre)) {
            Some(Lookup::Value(Some((a, b)))) => Some((buf.get(a..b)?, (a, b))),
            _ => None,
        },
    }
}
