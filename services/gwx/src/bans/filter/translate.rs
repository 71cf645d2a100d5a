//! Writes a parsed Python pattern ([`Parsed`]) for one of three targets:
//!
//! * [`Target::Exact`] for the `regex` crate: only when the pattern needs no
//!   backtracking feature ([`needs_backtracking`] is false). This is the fast path; it
//!   is what nearly every failregex and date pattern becomes.
//! * [`Target::Fancy`] for `fancy-regex`: lookarounds, backreferences, conditionals,
//!   atomic groups.
//! * [`Target::Relaxed`] for the `regex` crate: a superset of a pattern that needs
//!   backtracking: lookarounds dropped, a backreference replaced by the group's own
//!   pattern, a conditional by the alternation of its branches, atomic groups by plain
//!   ones. Wherever the exact pattern matches, the relaxed one matches too, so the
//!   relaxed one rejects most lines cheaply before fancy-regex looks at them.
//!
//! Group numbering is kept: every Python group is written as a capturing group in the
//! same order (except inside relaxed backreference copies, which capture nothing), so
//! group numbers and names mean the same thing in all targets.

use std::fmt::Write as _;

use super::error::PatternError;
use super::pyregex::{ClassItem, Node, Parsed, Perl, width};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Target {
    Exact,
    Relaxed,
    Fancy,
}

/// How a pattern will be searched.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct Context {
    /// The haystack may hold several lines (fail2ban's `maxlines` buffer); otherwise it
    /// is one line followed by one `\n`, where Python's non-multiline `$` and Rust's
    /// `(?m:$)` agree.
    pub multi_line_buffer: bool,
    /// Recognise the word-boundary lookaheads fail2ban wraps date patterns in
    /// (`(?=^|\b|\W)`, `(?=\b|\W|$)`) and write them as Rust's half word boundaries.
    pub date_bounds: bool,
    /// Only named groups are read (failregexes): unnamed ones may go unreported on the
    /// engine's fast capture path.
    pub named_only: bool,
}

/// A pattern written for one target.
#[derive(Debug, Clone)]
pub(crate) struct Written {
    pub text: String,
    /// Relaxed target: each backreference copy is captured as a group of its own,
    /// `(referenced Python group, name of the copy's group, case-insensitive)`, so a
    /// match can be checked: when every copy equals its group, the relaxed match is
    /// the exact match.
    pub backrefs: Vec<(usize, String, bool)>,
}

/// The name a Python group gets in the `regex` crate: named groups keep their name,
/// unnamed ones are called `__g<number>`; `prefix` keeps names apart when several
/// patterns share one regex.
pub(crate) fn group_name(prefix: &str, index: usize, name: Option<&str>) -> String {
    match name {
        Some(n) => format!("{prefix}{n}"),
        None => format!("{prefix}__g{index}"),
    }
}

/// Writes `parsed` for `target`.
pub(crate) fn write(
    parsed: &Parsed,
    target: Target,
    ctx: Context,
    prefix: &str,
) -> Result<Written, PatternError> {
    if let Some(bad) = parsed.groups.iter().flatten().find(|n| !n.is_ascii()) {
        return Err(PatternError::Unsupported(format!(
            "regex uses the non-ASCII group name `{bad}`"
        )));
    }
    let mut w = Writer {
        parsed,
        target,
        ctx,
        prefix,
        out: String::new(),
        backrefs: Vec::new(),
        seen: std::collections::HashMap::new(),
    };
    w.node(&parsed.root, true)?;
    Ok(Written {
        text: w.out,
        backrefs: w.backrefs,
    })
}

/// Is the pattern's only backtracking feature backreferences (so a relaxed match can be
/// verified instead of run through fancy-regex)?
pub(crate) fn only_backrefs(parsed: &Parsed, ctx: Context) -> bool {
    fn walk(n: &Node, ctx: Context) -> bool {
        match n {
            Node::Look { .. } => ctx.date_bounds && date_bound(n),
            Node::Atomic(_) | Node::Conditional { .. } => false,
            Node::Repeat {
                possessive: true, ..
            } => false,
            Node::LineEnd { multiline: false } => !ctx.multi_line_buffer,
            Node::Group { child, .. } | Node::Repeat { child, .. } => walk(child, ctx),
            Node::Concat(v) | Node::Alt(v) => v.iter().all(|n| walk(n, ctx)),
            _ => true,
        }
    }
    walk(&parsed.root, ctx)
}

/// Does the pattern need a backtracking engine (fancy-regex)?
pub(crate) fn needs_backtracking(parsed: &Parsed, ctx: Context) -> bool {
    fn walk(n: &Node, ctx: Context) -> bool {
        match n {
            Node::Look { .. } => !(ctx.date_bounds && date_bound(n)),
            Node::Atomic(_) | Node::Backref { .. } | Node::Conditional { .. } => true,
            Node::Repeat {
                possessive: true, ..
            } => true,
            Node::LineEnd { multiline: false } => ctx.multi_line_buffer,
            Node::Group { child, .. } | Node::Repeat { child, .. } => walk(child, ctx),
            Node::Concat(v) | Node::Alt(v) => v.iter().any(|n| walk(n, ctx)),
            _ => false,
        }
    }
    walk(&parsed.root, ctx)
}

/// Refuses lookbehinds of variable width (Python refuses them too).
pub(crate) fn check_lookbehinds(node: &Node) -> Result<(), PatternError> {
    match node {
        Node::Look {
            ahead: false,
            child,
            ..
        } => {
            let (lo, hi) = width(child);
            if hi != Some(lo) {
                return Err(PatternError::Unsupported(
                    "regex uses a lookbehind of variable width".into(),
                ));
            }
            check_lookbehinds(child)
        }
        Node::Look { child, .. }
        | Node::Group { child, .. }
        | Node::Atomic(child)
        | Node::Repeat { child, .. } => check_lookbehinds(child),
        Node::Concat(v) | Node::Alt(v) => v.iter().try_for_each(check_lookbehinds),
        Node::Conditional { yes, no, .. } => {
            check_lookbehinds(yes)?;
            check_lookbehinds(no)
        }
        _ => Ok(()),
    }
}

/// `(?=^|\b|\W)` or `(?=\b|\W|$)`: "not between two word characters".
pub(crate) fn date_bound(n: &Node) -> bool {
    let Node::Look {
        ahead: true,
        negated: false,
        child,
    } = n
    else {
        return false;
    };
    let Node::Alt(v) = &**child else {
        return false;
    };
    let is = |n: &Node, what: u8| {
        matches!(
            (n, what),
            (Node::LineStart { multiline: false }, b'^')
                | (Node::LineEnd { multiline: false }, b'$')
                | (Node::WordBoundary { negated: false, .. }, b'b')
                | (
                    Node::Perl {
                        kind: Perl::Word,
                        negated: true,
                        ..
                    },
                    b'W'
                )
        )
    };
    v.len() == 3
        && ((is(&v[0], b'^') && is(&v[1], b'b') && is(&v[2], b'W'))
            || (is(&v[0], b'b') && is(&v[1], b'W') && is(&v[2], b'$')))
}

struct Writer<'a> {
    parsed: &'a Parsed,
    target: Target,
    ctx: Context,
    prefix: &'a str,
    out: String,
    backrefs: Vec<(usize, String, bool)>,
    /// How often each group was written (an expanded backreference repeats groups).
    seen: std::collections::HashMap<usize, usize>,
}

impl Writer<'_> {
    fn name_of(&self, group: usize) -> String {
        let name = self.parsed.groups.get(group - 1).cloned().flatten();
        group_name(self.prefix, group, name.as_deref())
    }

    fn unsupported_exact(&self, what: &str) -> PatternError {
        PatternError::Invalid(format!(
            "internal: {what} cannot be written for the regex crate"
        ))
    }

    /// `open`, then `child`, then `)`.
    fn wrapped(&mut self, open: &str, child: &Node, capture: bool) -> Result<(), PatternError> {
        self.out.push_str(open);
        self.node(child, capture)?;
        self.out.push(')');
        Ok(())
    }

    /// `capture`: write capturing groups as capturing (false inside relaxed copies).
    fn node(&mut self, n: &Node, capture: bool) -> Result<(), PatternError> {
        match n {
            Node::Empty => self.out.push_str("(?:)"),
            Node::Literal { c, ci } => {
                if *ci && has_case(*c) {
                    self.out.push_str("(?i:");
                    push_char(&mut self.out, *c);
                    self.out.push(')');
                } else {
                    push_char(&mut self.out, *c);
                }
            }
            Node::Any { dotall } => self.out.push_str(if *dotall { "(?s:.)" } else { "." }),
            Node::Class {
                negated,
                items,
                ci,
                ascii,
            } => {
                if *ci {
                    self.out.push_str("(?i:");
                }
                self.out.push('[');
                if *negated {
                    self.out.push('^');
                }
                for item in items {
                    match item {
                        ClassItem::Char(c) => push_char(&mut self.out, *c),
                        ClassItem::Range(a, b) => {
                            push_char(&mut self.out, *a);
                            self.out.push('-');
                            push_char(&mut self.out, *b);
                        }
                        ClassItem::Perl { kind, negated } => {
                            self.out.push_str(&perl(*kind, *negated, *ascii, true));
                        }
                    }
                }
                self.out.push(']');
                if *ci {
                    self.out.push(')');
                }
            }
            Node::Perl {
                kind,
                negated,
                ascii,
            } => self.out.push_str(&perl(*kind, *negated, *ascii, false)),
            Node::LineStart { multiline } => {
                self.out.push_str(if *multiline { "(?m:^)" } else { r"\A" })
            }
            Node::LineEnd { multiline } => {
                if *multiline || !self.ctx.multi_line_buffer {
                    self.out.push_str("(?m:$)");
                } else {
                    match self.target {
                        Target::Fancy => self.out.push_str(r"(?=\n?\z)"),
                        Target::Relaxed => self.out.push_str("(?m:$)"),
                        Target::Exact => return Err(self.unsupported_exact("`$`")),
                    }
                }
            }
            Node::TextStart => self.out.push_str(r"\A"),
            Node::TextEnd => self.out.push_str(r"\z"),
            Node::WordBoundary { negated, ascii } => {
                let b = if *negated { r"\B" } else { r"\b" };
                if *ascii {
                    let _ = write!(self.out, "(?-u:{b})");
                } else {
                    self.out.push_str(b);
                }
            }
            Node::Group {
                capture: cap,
                child,
            } => match cap {
                Some((index, name)) if capture => {
                    let copy = self.seen.entry(*index).or_insert(0);
                    let mut name = group_name(self.prefix, *index, name.as_deref());
                    if *copy > 0 {
                        let _ = write!(name, "__v{copy}");
                    }
                    *copy += 1;
                    self.wrapped(&format!("(?P<{name}>"), child, capture)?;
                }
                _ => self.wrapped("(?:", child, capture)?,
            },
            Node::Look {
                ahead,
                negated,
                child,
            } => {
                if self.ctx.date_bounds && date_bound(n) && self.target != Target::Fancy {
                    self.out.push_str(r"(?:\b{start-half}|\b{end-half})");
                    return Ok(());
                }
                match self.target {
                    Target::Relaxed => self.out.push_str("(?:)"),
                    Target::Exact => return Err(self.unsupported_exact("a lookaround")),
                    Target::Fancy => {
                        let op = match (ahead, negated) {
                            (true, false) => "(?=",
                            (true, true) => "(?!",
                            (false, false) => "(?<=",
                            (false, true) => "(?<!",
                        };
                        self.wrapped(op, child, capture)?;
                    }
                }
            }
            Node::Atomic(child) => {
                let open = match self.target {
                    Target::Fancy => "(?>",
                    Target::Relaxed => "(?:",
                    Target::Exact => return Err(self.unsupported_exact("an atomic group")),
                };
                self.wrapped(open, child, capture)?;
            }
            Node::Repeat {
                child,
                min,
                max,
                greedy,
                possessive,
            } => {
                let atomic = *possessive && self.target == Target::Fancy;
                if *possessive && self.target == Target::Exact {
                    return Err(self.unsupported_exact("a possessive quantifier"));
                }
                if atomic {
                    self.out.push_str("(?>");
                }
                if is_atom(child) {
                    self.node(child, capture)?;
                } else {
                    self.wrapped("(?:", child, capture)?;
                }
                match (min, max) {
                    (0, None) => self.out.push('*'),
                    (1, None) => self.out.push('+'),
                    (0, Some(1)) => self.out.push('?'),
                    (m, None) => {
                        let _ = write!(self.out, "{{{m},}}");
                    }
                    (m, Some(x)) if m == x => {
                        let _ = write!(self.out, "{{{m}}}");
                    }
                    (m, Some(x)) => {
                        let _ = write!(self.out, "{{{m},{x}}}");
                    }
                }
                if !greedy {
                    self.out.push('?');
                }
                if atomic {
                    self.out.push(')');
                }
            }
            Node::Concat(v) => {
                for n in v {
                    self.node(n, capture)?;
                }
            }
            Node::Alt(v) => {
                self.out.push_str("(?:");
                for (i, n) in v.iter().enumerate() {
                    if i > 0 {
                        self.out.push('|');
                    }
                    self.node(n, capture)?;
                }
                self.out.push(')');
            }
            Node::Backref { group, ci } => match self.target {
                Target::Fancy => {
                    let name = self.name_of(*group);
                    let _ = write!(self.out, "(?:\\k<{name}>)");
                }
                Target::Relaxed => {
                    let body = self
                        .parsed
                        .group_node(*group)
                        .ok_or_else(|| PatternError::Invalid("invalid group reference".into()))?
                        .clone();
                    if capture {
                        let name = format!("{}__b{}", self.prefix, self.backrefs.len());
                        self.backrefs.push((*group, name.clone(), *ci));
                        let _ = write!(self.out, "(?P<{name}>");
                    } else {
                        self.out.push('(');
                        self.out.push_str("?:");
                    }
                    self.out.push_str(if *ci { "(?i:" } else { "(?:" });
                    self.node(&body, false)?;
                    self.out.push_str("))");
                }
                Target::Exact => return Err(self.unsupported_exact("a backreference")),
            },
            Node::Conditional { group, yes, no } => match self.target {
                Target::Fancy => {
                    let name = self.name_of(*group);
                    let _ = write!(self.out, "(?(<{name}>)");
                    self.node(yes, capture)?;
                    self.out.push('|');
                    self.node(no, capture)?;
                    self.out.push(')');
                }
                Target::Relaxed => {
                    self.out.push_str("(?:");
                    self.node(yes, capture)?;
                    self.out.push('|');
                    self.node(no, capture)?;
                    self.out.push(')');
                }
                Target::Exact => return Err(self.unsupported_exact("a conditional")),
            },
        }
        Ok(())
    }
}

/// Written as one unit, so a quantifier may follow without a group.
fn is_atom(n: &Node) -> bool {
    match n {
        Node::Literal { c, ci } => !(*ci && has_case(*c)),
        Node::Any { .. } | Node::Class { .. } | Node::Perl { .. } | Node::Group { .. } => true,
        _ => false,
    }
}

fn has_case(c: char) -> bool {
    c.to_lowercase().ne(c.to_uppercase())
}

/// A literal character, inside or outside a class, escaped so neither engine reads it
/// as syntax: everything that could be syntax in Rust (in a class also `[`, `]`, `\`,
/// `^`, `-`, `&`, `~`) is escaped; Python means all of them literally.
fn push_char(out: &mut String, c: char) {
    if c.is_ascii_alphanumeric()
        || c == '_'
        || c == ' '
        || (!c.is_ascii() && !c.is_control() && !c.is_whitespace())
    {
        out.push(c);
    } else if c.is_ascii_punctuation() {
        if is_meta(c) {
            out.push('\\');
        }
        out.push(c);
    } else {
        let _ = write!(out, "\\x{{{:X}}}", c as u32);
    }
}

/// Characters with a meaning in Rust regex syntax (inside or outside a class); escaping
/// exactly these is always accepted by both engines.
fn is_meta(c: char) -> bool {
    matches!(
        c,
        '\\' | '.'
            | '+'
            | '*'
            | '?'
            | '('
            | ')'
            | '|'
            | '['
            | ']'
            | '{'
            | '}'
            | '^'
            | '$'
            | '#'
            | '&'
            | '-'
            | '~'
    )
}

fn perl(kind: Perl, negated: bool, ascii: bool, in_class: bool) -> String {
    if !ascii {
        let c = match kind {
            Perl::Digit => 'd',
            Perl::Word => 'w',
            Perl::Space => 's',
        };
        return format!("\\{}", if negated { c.to_ascii_uppercase() } else { c });
    }
    let set = match kind {
        Perl::Digit => "0-9",
        Perl::Word => "0-9A-Za-z_",
        Perl::Space => r"\t\n\x0B\x0C\r ",
    };
    match (negated, in_class) {
        (false, true) => set.to_string(),
        (false, false) => format!("[{set}]"),
        // A negated ASCII class inside a class: Rust's nested class does it.
        (true, _) => format!("[^{set}]"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bans::filter::pyregex::parse;

    fn exact(p: &str) -> String {
        write(
            &parse(p, false).unwrap(),
            Target::Exact,
            Context::default(),
            "",
        )
        .unwrap()
        .text
    }

    #[test]
    fn python_to_rust() {
        assert_eq!(exact(r"^a{b}$"), r"\Aa\{b\}(?m:$)");
        assert_eq!(exact(r"x{,2}"), r"x{0,2}");
        assert_eq!(exact(r"(?:ab)+"), r"(?:ab)+");
        assert_eq!(exact(r"[[&&~<-]"), r"[\[\&\&\~<\-]");
        assert_eq!(exact(r"\<\Z"), r"<\z");
        assert_eq!(exact(r"(?P<user>\S+)(x)"), r"(?P<user>\S+)(?P<__g2>x)");
        assert_eq!(exact(r"(?i)ab1"), r"(?i:a)(?i:b)1");
        assert_eq!(exact("a|b"), "(?:a|b)");
        let re = regex::Regex::new(&exact(r"^x{a}[[]\d{2}$")).unwrap();
        assert!(re.is_match("x{a}[42\n"));
    }

    #[test]
    fn fancy_and_relaxed() {
        let p = parse(r"(?P<u>\S+)(?(u)a|b)(?! from )(?P=u)", false).unwrap();
        assert!(needs_backtracking(&p, Context::default()));
        let fancy = write(&p, Target::Fancy, Context::default(), "")
            .unwrap()
            .text;
        assert_eq!(fancy, r"(?P<u>\S+)(?(<u>)a|b)(?! from )(?:\k<u>)");
        let relaxed = write(&p, Target::Relaxed, Context::default(), "").unwrap();
        assert_eq!(relaxed.text, r"(?P<u>\S+)(?:a|b)(?:)(?P<__b0>(?:\S+))");
        assert_eq!(relaxed.backrefs, vec![(1, "__b0".to_string(), false)]);
        let relaxed = relaxed.text;
        assert!(write(&p, Target::Exact, Context::default(), "").is_err());
        fancy_regex::Regex::new(&fancy).unwrap();
        regex::Regex::new(&relaxed).unwrap();
    }

    #[test]
    fn lookbehind_width() {
        let p = parse(r"(?<=ab|cd)x", false).unwrap();
        assert!(check_lookbehinds(&p.root).is_ok());
        let p = parse(r"(?<=a+)x", false).unwrap();
        assert_eq!(
            check_lookbehinds(&p.root),
            Err(PatternError::Unsupported(
                "regex uses a lookbehind of variable width".into()
            ))
        );
    }

    #[test]
    fn date_bounds() {
        let ctx = Context {
            date_bounds: true,
            ..Context::default()
        };
        let p = parse(r"(?=^|\b|\W)(\d+)(?=\b|\W|$)", false).unwrap();
        assert!(!needs_backtracking(&p, ctx));
        let re = regex::Regex::new(&write(&p, Target::Exact, ctx, "").unwrap().text).unwrap();
        assert_eq!(re.find("ab 12 x").unwrap().as_str(), "12");
        assert!(re.find("ab12").is_none());
    }
}
