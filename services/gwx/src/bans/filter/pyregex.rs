//! A parser for Python's `re` syntax (as of Python 3.11), producing a small syntax tree
//! that `translate.rs` writes back out for Rust's `regex` or `fancy-regex` crate.
//!
//! Why a real parser rather than string rewriting: the dialects differ in many small
//! places, and some differences change what matches:
//!
//! * `{` is a literal in Python unless it forms a quantifier (`\d{2}` vs `{foo}`), and
//!   `{,n}` means `{0,n}`; Rust rejects both stray braces and `{,n}`.
//! * Inside a class Python treats `[`, `&&`, `--` and `~~` literally; Rust gives them
//!   set-operation meanings.
//! * `\<`, `\>` are literals in Python and word boundaries in Rust; `\b` in a class is a
//!   backspace; `\Z` is Rust's `\z`; `(?P=name)`, `(?(name)yes|no)`, lookarounds and
//!   atomic groups exist only in fancy-regex (or not at all in `regex`).
//! * Flags: scoped flags travel with every node here (`ci`, `multiline`, `dotall`), so
//!   the writer never depends on how either engine scopes `(?i)`.
//!
//! The tree also lets us ask questions the engines cannot answer for us: does this
//! pattern need backtracking features, is a lookbehind of fixed width, which named
//! groups exist.

use super::error::PatternError;

/// Flags in effect at a node.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct Flags {
    pub ci: bool,
    pub multiline: bool,
    pub dotall: bool,
    pub verbose: bool,
    pub ascii: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Perl {
    Digit,
    Word,
    Space,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum ClassItem {
    Char(char),
    Range(char, char),
    Perl { kind: Perl, negated: bool },
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Node {
    Empty,
    Literal {
        c: char,
        ci: bool,
    },
    /// `.`
    Any {
        dotall: bool,
    },
    Class {
        negated: bool,
        items: Vec<ClassItem>,
        ci: bool,
        ascii: bool,
    },
    Perl {
        kind: Perl,
        negated: bool,
        ascii: bool,
    },
    /// `^`
    LineStart {
        multiline: bool,
    },
    /// `$`
    LineEnd {
        multiline: bool,
    },
    /// `\A`
    TextStart,
    /// `\Z`
    TextEnd,
    /// `\b` / `\B`
    WordBoundary {
        negated: bool,
        ascii: bool,
    },
    Group {
        /// Python group number (1-based) and name, for capturing groups.
        capture: Option<(usize, Option<String>)>,
        child: Box<Node>,
    },
    Look {
        ahead: bool,
        negated: bool,
        child: Box<Node>,
    },
    Atomic(Box<Node>),
    Repeat {
        child: Box<Node>,
        min: u32,
        max: Option<u32>,
        greedy: bool,
        possessive: bool,
    },
    Concat(Vec<Node>),
    Alt(Vec<Node>),
    Backref {
        group: usize,
        ci: bool,
    },
    Conditional {
        group: usize,
        yes: Box<Node>,
        no: Box<Node>,
    },
}

impl Node {
    /// `^`, `$`, `\A`, `\Z`, `\b`, `\B`: what Python calls an anchor, which nothing
    /// may repeat.
    pub(crate) fn is_anchor(&self) -> bool {
        matches!(
            self,
            Node::LineStart { .. }
                | Node::LineEnd { .. }
                | Node::TextStart
                | Node::TextEnd
                | Node::WordBoundary { .. }
        )
    }

    /// Matches no text: the empty pattern, anchors, lookarounds.
    pub(crate) fn is_zero_width(&self) -> bool {
        matches!(self, Node::Empty | Node::Look { .. }) || self.is_anchor()
    }
}

/// A parsed pattern: its tree and its capture groups (index 0 is group 1).
#[derive(Debug, Clone)]
pub(crate) struct Parsed {
    pub root: Node,
    pub groups: Vec<Option<String>>,
}

impl Parsed {
    /// The Python group number of a named group.
    pub fn group_index(&self, name: &str) -> Option<usize> {
        self.groups
            .iter()
            .position(|g| g.as_deref() == Some(name))
            .map(|i| i + 1)
    }

    /// The body of group `index`, as written.
    pub fn group_node(&self, index: usize) -> Option<&Node> {
        fn find(node: &Node, index: usize) -> Option<&Node> {
            match node {
                Node::Group { capture, child } => {
                    if capture.as_ref().is_some_and(|(i, _)| *i == index) {
                        return Some(child);
                    }
                    find(child, index)
                }
                Node::Look { child, .. } | Node::Atomic(child) | Node::Repeat { child, .. } => {
                    find(child, index)
                }
                Node::Concat(v) | Node::Alt(v) => v.iter().find_map(|n| find(n, index)),
                Node::Conditional { yes, no, .. } => find(yes, index).or_else(|| find(no, index)),
                _ => None,
            }
        }
        find(&self.root, index)
    }
}

/// fail2ban rewrites `((?i)x)` and `(?:(?i)x)` into the local-flag group `(?i:x)`
/// before compiling (Python rejects global flags that are not at the start), so we do
/// the same to read the same patterns.
pub(crate) fn glob_to_local_flags(pattern: &str) -> String {
    let chars: Vec<char> = pattern.chars().collect();
    let mut out = String::with_capacity(pattern.len());
    let mut i = 0;
    while i < chars.len() {
        if chars[i] == '(' && (i == 0 || chars[i - 1] != '\\') {
            let mut j = i + 1;
            if chars.get(j) == Some(&'?') && chars.get(j + 1) == Some(&':') {
                j += 2;
            }
            if chars.get(j) == Some(&'(') && chars.get(j + 1) == Some(&'?') {
                let mut k = j + 2;
                while k < chars.len() && chars[k].is_ascii_lowercase() {
                    k += 1;
                }
                if k > j + 2 && chars.get(k) == Some(&')') {
                    out.push_str("(?");
                    out.extend(&chars[j + 2..k]);
                    out.push(':');
                    i = k + 1;
                    continue;
                }
            }
        }
        out.push(chars[i]);
        i += 1;
    }
    out
}

/// Parses a Python regex. `multiline` is the `re.MULTILINE` compile flag.
pub(crate) fn parse(pattern: &str, multiline: bool) -> Result<Parsed, PatternError> {
    let mut p = Parser {
        chars: pattern.chars().collect(),
        pos: 0,
        groups: Vec::new(),
        open: Vec::new(),
    };
    let flags = Flags {
        multiline,
        ..Flags::default()
    };
    let root = p.alternation(flags, 0)?;
    if p.pos < p.chars.len() {
        // Only an unbalanced `)` stops the top level early.
        return Err(p.invalid("unbalanced parenthesis"));
    }
    Ok(Parsed {
        root,
        groups: p.groups,
    })
}

struct Parser {
    chars: Vec<char>,
    pos: usize,
    groups: Vec<Option<String>>,
    /// Groups currently open (cannot be referred to yet).
    open: Vec<usize>,
}

const MAX_DEPTH: usize = 200;

impl Parser {
    fn invalid(&self, what: &str) -> PatternError {
        PatternError::Invalid(format!("{what} at position {}", self.pos))
    }

    fn peek(&self) -> Option<char> {
        self.chars.get(self.pos).copied()
    }

    fn peek_at(&self, off: usize) -> Option<char> {
        self.chars.get(self.pos + off).copied()
    }

    fn eat(&mut self, c: char) -> bool {
        if self.peek() == Some(c) {
            self.pos += 1;
            true
        } else {
            false
        }
    }

    fn eat_str(&mut self, s: &str) -> bool {
        let n = s.chars().count();
        if self.chars[self.pos.min(self.chars.len())..]
            .iter()
            .take(n)
            .copied()
            .eq(s.chars())
        {
            self.pos += n;
            true
        } else {
            false
        }
    }

    /// Skips whitespace and `#` comments in verbose mode.
    fn skip_verbose(&mut self, flags: Flags) {
        if !flags.verbose {
            return;
        }
        while let Some(c) = self.peek() {
            if c.is_whitespace() {
                self.pos += 1;
            } else if c == '#' {
                while let Some(c) = self.peek() {
                    self.pos += 1;
                    if c == '\n' {
                        break;
                    }
                }
            } else {
                break;
            }
        }
    }

    fn alternation(&mut self, flags: Flags, depth: usize) -> Result<Node, PatternError> {
        if depth > MAX_DEPTH {
            return Err(self.invalid("pattern nested too deeply"));
        }
        let mut flags = flags;
        let mut branches = vec![self.concat(&mut flags, depth)?];
        while self.eat('|') {
            branches.push(self.concat(&mut flags, depth)?);
        }
        Ok(if branches.len() == 1 {
            branches.pop().unwrap_or(Node::Empty)
        } else {
            Node::Alt(branches)
        })
    }

    /// A sequence up to `|`, `)` or the end. Inline global flags change `flags` for the
    /// rest of the enclosing group.
    fn concat(&mut self, flags: &mut Flags, depth: usize) -> Result<Node, PatternError> {
        let mut items: Vec<Node> = Vec::new();
        loop {
            self.skip_verbose(*flags);
            let Some(c) = self.peek() else { break };
            if c == '|' || c == ')' {
                break;
            }
            if matches!(c, '*' | '+' | '?') || (c == '{' && self.quantifier_ahead()) {
                let Some(last) = items.pop() else {
                    return Err(self.invalid("nothing to repeat"));
                };
                if last.is_anchor() {
                    return Err(self.invalid("nothing to repeat"));
                }
                if matches!(last, Node::Repeat { .. }) {
                    return Err(self.invalid("multiple repeat"));
                }
                let (min, max) = self.quantifier()?;
                let mut greedy = true;
                let mut possessive = false;
                if self.eat('?') {
                    greedy = false;
                } else if self.eat('+') {
                    possessive = true;
                }
                items.push(Node::Repeat {
                    child: Box::new(last),
                    min,
                    max,
                    greedy,
                    possessive,
                });
                continue;
            }
            if let Some(node) = self.atom(flags, depth)? {
                items.push(node);
            }
        }
        Ok(match items.len() {
            0 => Node::Empty,
            1 => items.pop().unwrap_or(Node::Empty),
            _ => Node::Concat(items),
        })
    }

    /// Is the `{` at the cursor a quantifier (`{n}`, `{n,}`, `{,m}`, `{n,m}`, `{,}`)?
    fn quantifier_ahead(&self) -> bool {
        let mut i = self.pos + 1;
        let digits = |i: &mut usize| {
            while self.chars.get(*i).is_some_and(|c| c.is_ascii_digit()) {
                *i += 1;
            }
        };
        if self.chars.get(i) == Some(&'}') {
            return false;
        }
        digits(&mut i);
        if self.chars.get(i) == Some(&',') {
            i += 1;
            digits(&mut i);
        }
        self.chars.get(i) == Some(&'}')
    }

    fn quantifier(&mut self) -> Result<(u32, Option<u32>), PatternError> {
        let c = self.peek().ok_or_else(|| self.invalid("quantifier"))?;
        self.pos += 1;
        Ok(match c {
            '*' => (0, None),
            '+' => (1, None),
            '?' => (0, Some(1)),
            _ => {
                let lo = self.number();
                let hi = if self.eat(',') {
                    self.number()
                } else {
                    Some(lo.unwrap_or(0))
                };
                if !self.eat('}') {
                    return Err(self.invalid("bad quantifier"));
                }
                let min = lo.unwrap_or(0);
                if let Some(max) = hi
                    && max < min
                {
                    return Err(self.invalid("min repeat greater than max repeat"));
                }
                (min, hi)
            }
        })
    }

    fn number(&mut self) -> Option<u32> {
        let start = self.pos;
        while self.peek().is_some_and(|c| c.is_ascii_digit()) {
            self.pos += 1;
        }
        (self.pos > start).then(|| {
            self.chars[start..self.pos]
                .iter()
                .collect::<String>()
                .parse()
                .unwrap_or(u32::MAX)
        })
    }

    /// One atom, or `None` for something that produces no node (a comment, a flag).
    fn atom(&mut self, flags: &mut Flags, depth: usize) -> Result<Option<Node>, PatternError> {
        let f = *flags;
        let c = self.peek().ok_or_else(|| self.invalid("unexpected end"))?;
        self.pos += 1;
        Ok(Some(match c {
            '(' => return self.group(flags, depth),
            '[' => self.class(f)?,
            '.' => Node::Any { dotall: f.dotall },
            '^' => Node::LineStart {
                multiline: f.multiline,
            },
            '$' => Node::LineEnd {
                multiline: f.multiline,
            },
            '\\' => self.escape(f)?,
            c => Node::Literal { c, ci: f.ci },
        }))
    }

    fn group(&mut self, flags: &mut Flags, depth: usize) -> Result<Option<Node>, PatternError> {
        let f = *flags;
        if !self.eat('?') {
            let index = self.groups.len() + 1;
            self.groups.push(None);
            return self.group_body(f, depth, Some((index, None))).map(Some);
        }
        if self.eat('P') {
            if self.eat('<') {
                let name = self.name('>')?;
                if self
                    .groups
                    .iter()
                    .any(|g| g.as_deref() == Some(name.as_str()))
                {
                    return Err(self.invalid(&format!("redefinition of group name `{name}`")));
                }
                let index = self.groups.len() + 1;
                self.groups.push(Some(name.clone()));
                return self
                    .group_body(f, depth, Some((index, Some(name))))
                    .map(Some);
            }
            if self.eat('=') {
                let name = self.name(')')?;
                let group = self.lookup_group(&name)?;
                if self.open.contains(&group) {
                    return Err(self.invalid("cannot refer to an open group"));
                }
                return Ok(Some(Node::Backref { group, ci: f.ci }));
            }
            return Err(self.invalid("unknown extension ?P"));
        }
        if self.eat(':') {
            return self.group_body(f, depth, None).map(Some);
        }
        if self.eat('#') {
            while let Some(c) = self.peek() {
                self.pos += 1;
                if c == ')' {
                    return Ok(None);
                }
            }
            return Err(self.invalid("missing ), unterminated comment"));
        }
        let ahead = if self.eat('=') || self.eat('!') {
            Some(true)
        } else if self.eat_str("<=") || self.eat_str("<!") {
            Some(false)
        } else {
            None
        };
        if let Some(ahead) = ahead {
            let negated = self.chars[self.pos - 1] == '!';
            let child = self.group_rest(f, depth)?;
            return Ok(Some(Node::Look {
                ahead,
                negated,
                child: Box::new(child),
            }));
        }
        if self.eat('>') {
            let child = self.group_rest(f, depth)?;
            return Ok(Some(Node::Atomic(Box::new(child))));
        }
        if self.eat('(') {
            let start = self.pos;
            while self.peek().is_some_and(|c| c != ')') {
                self.pos += 1;
            }
            let reference: String = self.chars[start..self.pos].iter().collect();
            if !self.eat(')') {
                return Err(self.invalid("missing ) in conditional group reference"));
            }
            let group = match reference.parse::<usize>() {
                Ok(n) if n >= 1 && n <= self.groups.len() => n,
                Ok(_) => return Err(self.invalid("invalid group reference in conditional")),
                Err(_) => self.lookup_group(&reference)?,
            };
            let body = self.group_rest(f, depth)?;
            let (yes, no) = match body {
                Node::Alt(mut v) if v.len() == 2 => {
                    let no = v.pop().unwrap_or(Node::Empty);
                    (v.pop().unwrap_or(Node::Empty), no)
                }
                Node::Alt(_) => {
                    return Err(self.invalid("conditional group with more than two branches"));
                }
                other => (other, Node::Empty),
            };
            return Ok(Some(Node::Conditional {
                group,
                yes: Box::new(yes),
                no: Box::new(no),
            }));
        }
        // Flags: `(?aiLmsux)`, `(?aiLmsux-imsx:...)`.
        let mut on = Vec::new();
        let mut off = Vec::new();
        let mut negative = false;
        loop {
            match self.peek() {
                Some(c @ ('a' | 'i' | 'L' | 'm' | 's' | 'u' | 'x')) => {
                    self.pos += 1;
                    if negative { &mut off } else { &mut on }.push(c);
                }
                Some('-') if !negative => {
                    self.pos += 1;
                    negative = true;
                }
                _ => break,
            }
        }
        if on.is_empty() && off.is_empty() {
            return Err(self.invalid("unknown extension"));
        }
        if on.contains(&'L') {
            return Err(PatternError::Unsupported(
                "regex uses the locale flag (?L)".into(),
            ));
        }
        let mut scoped = f;
        for c in &on {
            apply_flag(&mut scoped, *c, true);
        }
        for c in &off {
            apply_flag(&mut scoped, *c, false);
        }
        if self.eat(':') {
            return self.group_body(scoped, depth, None).map(Some);
        }
        if !off.is_empty() || !self.eat(')') {
            return Err(self.invalid("missing : or ) after flags"));
        }
        *flags = scoped;
        Ok(None)
    }

    fn group_body(
        &mut self,
        flags: Flags,
        depth: usize,
        capture: Option<(usize, Option<String>)>,
    ) -> Result<Node, PatternError> {
        if let Some((i, _)) = &capture {
            self.open.push(*i);
        }
        let child = self.group_rest(flags, depth)?;
        if capture.is_some() {
            self.open.pop();
        }
        Ok(Node::Group {
            capture,
            child: Box::new(child),
        })
    }

    /// What a group holds, up to and including its `)`.
    fn group_rest(&mut self, flags: Flags, depth: usize) -> Result<Node, PatternError> {
        let child = self.alternation(flags, depth + 1)?;
        self.close()?;
        Ok(child)
    }

    fn close(&mut self) -> Result<(), PatternError> {
        if self.eat(')') {
            Ok(())
        } else {
            Err(self.invalid("missing ), unterminated subpattern"))
        }
    }

    fn name(&mut self, end: char) -> Result<String, PatternError> {
        let start = self.pos;
        while self.peek().is_some_and(|c| c != end) {
            self.pos += 1;
        }
        let name: String = self.chars[start..self.pos].iter().collect();
        if !self.eat(end) {
            return Err(self.invalid("missing group name terminator"));
        }
        let valid = name
            .chars()
            .next()
            .is_some_and(|c| c.is_alphabetic() || c == '_')
            && name.chars().all(|c| c.is_alphanumeric() || c == '_');
        if !valid {
            return Err(self.invalid(&format!("bad character in group name `{name}`")));
        }
        Ok(name)
    }

    fn lookup_group(&self, name: &str) -> Result<usize, PatternError> {
        self.groups
            .iter()
            .position(|g| g.as_deref() == Some(name))
            .map(|i| i + 1)
            .ok_or_else(|| self.invalid(&format!("unknown group name `{name}`")))
    }

    fn escape(&mut self, f: Flags) -> Result<Node, PatternError> {
        let c = self
            .peek()
            .ok_or_else(|| self.invalid("bad escape (end of pattern)"))?;
        self.pos += 1;
        let perl = |kind, negated| Node::Perl {
            kind,
            negated,
            ascii: f.ascii,
        };
        Ok(match c {
            'd' => perl(Perl::Digit, false),
            'D' => perl(Perl::Digit, true),
            'w' => perl(Perl::Word, false),
            'W' => perl(Perl::Word, true),
            's' => perl(Perl::Space, false),
            'S' => perl(Perl::Space, true),
            'b' => Node::WordBoundary {
                negated: false,
                ascii: f.ascii,
            },
            'B' => Node::WordBoundary {
                negated: true,
                ascii: f.ascii,
            },
            'A' => Node::TextStart,
            'Z' => Node::TextEnd,
            '1'..='9' => {
                // Three octal digits make a character, otherwise a group reference.
                let d1 = self.peek();
                let d2 = self.peek_at(1);
                if c <= '7'
                    && d1.is_some_and(|d| ('0'..='7').contains(&d))
                    && d2.is_some_and(|d| ('0'..='7').contains(&d))
                {
                    self.pos += 2;
                    let s: String = [c, d1.unwrap_or('0'), d2.unwrap_or('0')].iter().collect();
                    let v = u32::from_str_radix(&s, 8).unwrap_or(0);
                    if v > 0o377 {
                        return Err(self.invalid("octal escape value outside of range"));
                    }
                    return Ok(Node::Literal {
                        c: char::from_u32(v).unwrap_or('\0'),
                        ci: f.ci,
                    });
                }
                let mut n = c.to_digit(10).unwrap_or(0) as usize;
                if let Some(d) = d1.and_then(|d| d.to_digit(10)) {
                    n = n * 10 + d as usize;
                    self.pos += 1;
                }
                if n > self.groups.len() || self.open.contains(&n) {
                    return Err(self.invalid("invalid group reference"));
                }
                Node::Backref { group: n, ci: f.ci }
            }
            _ => Node::Literal {
                c: self.char_escape(c)?,
                ci: f.ci,
            },
        })
    }

    /// Escapes that stand for one character (shared by classes and the top level).
    /// An octal escape whose first digit was `first`: up to two more digits follow.
    fn octal(&mut self, first: u32) -> char {
        let mut v = first;
        for _ in 0..2 {
            match self.peek().and_then(|d| d.to_digit(8)) {
                Some(d) => {
                    v = v * 8 + d;
                    self.pos += 1;
                }
                None => break,
            }
        }
        char::from_u32(v).unwrap_or('\0')
    }

    fn char_escape(&mut self, c: char) -> Result<char, PatternError> {
        Ok(match c {
            'a' => '\x07',
            'f' => '\x0c',
            'n' => '\n',
            'r' => '\r',
            't' => '\t',
            'v' => '\x0b',
            '0' => self.octal(0),
            'x' => self.hex(2)?,
            'u' => self.hex(4)?,
            'U' => self.hex(8)?,
            'N' => {
                return Err(PatternError::Unsupported(
                    "regex uses a named Unicode escape \\N{...}".into(),
                ));
            }
            c if c.is_ascii_alphanumeric() => {
                return Err(self.invalid(&format!("bad escape \\{c}")));
            }
            c => c,
        })
    }

    fn hex(&mut self, n: usize) -> Result<char, PatternError> {
        let s: String = self.chars[self.pos.min(self.chars.len())..]
            .iter()
            .take(n)
            .collect();
        if s.chars().count() != n || !s.chars().all(|c| c.is_ascii_hexdigit()) {
            return Err(self.invalid("incomplete hex escape"));
        }
        self.pos += n;
        u32::from_str_radix(&s, 16)
            .ok()
            .and_then(char::from_u32)
            .ok_or_else(|| self.invalid("bad escape value"))
    }

    fn class(&mut self, f: Flags) -> Result<Node, PatternError> {
        let negated = self.eat('^');
        let mut items: Vec<ClassItem> = Vec::new();
        let mut first = true;
        loop {
            let c = self
                .peek()
                .ok_or_else(|| self.invalid("unterminated character set"))?;
            self.pos += 1;
            if c == ']' && !first {
                break;
            }
            first = false;
            let item = if c == '\\' {
                let e = self
                    .peek()
                    .ok_or_else(|| self.invalid("bad escape (end of pattern)"))?;
                self.pos += 1;
                match e {
                    'd' | 'D' | 'w' | 'W' | 's' | 'S' => ClassItem::Perl {
                        kind: match e.to_ascii_lowercase() {
                            'd' => Perl::Digit,
                            'w' => Perl::Word,
                            _ => Perl::Space,
                        },
                        negated: e.is_ascii_uppercase(),
                    },
                    'b' => ClassItem::Char('\x08'),
                    '1'..='7' => ClassItem::Char(self.octal(e.to_digit(8).unwrap_or(0))),
                    e => ClassItem::Char(self.char_escape(e)?),
                }
            } else {
                ClassItem::Char(c)
            };
            // A range `a-z` (a trailing `-` before `]` is a literal).
            if let ClassItem::Char(lo) = item
                && self.peek() == Some('-')
                && self.peek_at(1).is_some_and(|c| c != ']')
            {
                self.pos += 1;
                let hc = self.peek().ok_or_else(|| self.invalid("bad range"))?;
                self.pos += 1;
                let hi = if hc == '\\' {
                    let e = self.peek().ok_or_else(|| self.invalid("bad range"))?;
                    self.pos += 1;
                    if matches!(e, 'd' | 'D' | 'w' | 'W' | 's' | 'S') {
                        return Err(self.invalid("bad character range"));
                    }
                    if e == 'b' {
                        '\x08'
                    } else {
                        self.char_escape(e)?
                    }
                } else {
                    hc
                };
                if hi < lo {
                    return Err(self.invalid("bad character range"));
                }
                items.push(ClassItem::Range(lo, hi));
                continue;
            }
            if matches!(item, ClassItem::Perl { .. })
                && self.peek() == Some('-')
                && self.peek_at(1).is_some_and(|c| c != ']')
            {
                return Err(self.invalid("bad character range"));
            }
            items.push(item);
        }
        Ok(Node::Class {
            negated,
            items,
            ci: f.ci,
            ascii: f.ascii,
        })
    }
}

fn apply_flag(flags: &mut Flags, c: char, on: bool) {
    match c {
        'i' => flags.ci = on,
        'm' => flags.multiline = on,
        's' => flags.dotall = on,
        'x' => flags.verbose = on,
        'a' => flags.ascii = on,
        _ => {} // 'u' is the default for str patterns
    }
}

/// Rewrites backreferences to a group that matches one of a few single characters
/// (`(?P<_sep>[-/])...(?P=_sep)`, common in date patterns) into an alternation with one
/// branch per character, so the pattern no longer needs a backtracking engine. The
/// group appears once per branch (same number); the writer names the copies apart.
/// Returns `None` when nothing was rewritten.
pub(crate) fn expand_backrefs(parsed: &Parsed) -> Option<Parsed> {
    fn small_set(n: &Node) -> Option<Vec<char>> {
        let has_case = |c: char| c.to_lowercase().ne(c.to_uppercase());
        match n {
            Node::Literal { c, ci } if !(*ci && has_case(*c)) => Some(vec![*c]),
            Node::Class {
                negated: false,
                items,
                ci,
                ..
            } if items.len() <= 8 => items
                .iter()
                .map(|i| match i {
                    ClassItem::Char(c) if !(*ci && has_case(*c)) => Some(*c),
                    _ => None,
                })
                .collect(),
            _ => None,
        }
    }
    fn walk(n: &mut Node, changed: &mut bool) {
        match n {
            Node::Concat(items) => {
                for item in items.iter_mut() {
                    walk(item, changed);
                }
                'again: loop {
                    for i in 0..items.len() {
                        let Node::Group {
                            capture: Some((g, name)),
                            child,
                        } = &items[i]
                        else {
                            continue;
                        };
                        let Some(chars) = small_set(child) else {
                            continue;
                        };
                        let Some(j) = items[i + 1..]
                            .iter()
                            .position(|x| matches!(x, Node::Backref { group, .. } if group == g))
                            .map(|p| i + 1 + p)
                        else {
                            continue;
                        };
                        let (g, name) = (*g, name.clone());
                        let between: Vec<Node> = items[i + 1..j].to_vec();
                        let branches = chars
                            .iter()
                            .map(|&c| {
                                let mut v = vec![Node::Group {
                                    capture: Some((g, name.clone())),
                                    child: Box::new(Node::Literal { c, ci: false }),
                                }];
                                v.extend(between.iter().cloned());
                                v.push(Node::Literal { c, ci: false });
                                Node::Concat(v)
                            })
                            .collect();
                        items.splice(i..=j, [Node::Alt(branches)]);
                        *changed = true;
                        continue 'again;
                    }
                    break;
                }
            }
            Node::Group { child, .. }
            | Node::Look { child, .. }
            | Node::Atomic(child)
            | Node::Repeat { child, .. } => walk(child, changed),
            Node::Alt(v) => v.iter_mut().for_each(|n| walk(n, changed)),
            Node::Conditional { yes, no, .. } => {
                walk(yes, changed);
                walk(no, changed);
            }
            _ => {}
        }
    }
    let mut root = parsed.root.clone();
    let mut changed = false;
    walk(&mut root, &mut changed);
    changed.then(|| Parsed {
        root,
        groups: parsed.groups.clone(),
    })
}

/// The longest run of case-sensitive literal text every match must contain (looking
/// through groups, not into optional or repeated parts): a cheap `contains` check
/// before the regex runs.
pub(crate) fn required_literal(root: &Node) -> String {
    fn walk(n: &Node, run: &mut String, best: &mut String) {
        let flush = |run: &mut String, best: &mut String| {
            if run.len() > best.len() {
                *best = run.clone();
            }
            run.clear();
        };
        match n {
            Node::Literal { c, ci: false } => run.push(*c),
            Node::Literal { c, ci: true } if c.to_lowercase().eq(c.to_uppercase()) => run.push(*c),
            Node::Concat(v) => v.iter().for_each(|n| walk(n, run, best)),
            Node::Group { child, .. } | Node::Atomic(child) => walk(child, run, best),
            Node::Repeat {
                child, min, max, ..
            } if *min == 1 && *max == Some(1) => walk(child, run, best),
            n if n.is_zero_width() => {}
            _ => flush(run, best),
        }
    }
    let mut run = String::new();
    let mut best = String::new();
    walk(root, &mut run, &mut best);
    if run.len() > best.len() {
        best = run;
    }
    best
}

/// Width of what a node matches, in characters: (min, max or unbounded).
pub(crate) fn width(node: &Node) -> (u64, Option<u64>) {
    match node {
        Node::Empty
        | Node::LineStart { .. }
        | Node::LineEnd { .. }
        | Node::TextStart
        | Node::TextEnd
        | Node::WordBoundary { .. }
        | Node::Look { .. } => (0, Some(0)),
        Node::Literal { .. } | Node::Any { .. } | Node::Class { .. } | Node::Perl { .. } => {
            (1, Some(1))
        }
        Node::Group { child, .. } | Node::Atomic(child) => width(child),
        Node::Repeat {
            child, min, max, ..
        } => {
            let (lo, hi) = width(child);
            let lo = lo.saturating_mul(u64::from(*min));
            let hi = match (hi, max) {
                (Some(0), _) => Some(0),
                (Some(h), Some(m)) => Some(h.saturating_mul(u64::from(*m))),
                _ => None,
            };
            (lo, hi)
        }
        Node::Concat(v) => v.iter().fold((0, Some(0)), |(lo, hi), n| {
            let (l, h) = width(n);
            (lo + l, hi.zip(h).map(|(a, b)| a + b))
        }),
        Node::Alt(v) => {
            let ws: Vec<_> = v.iter().map(width).collect();
            let lo = ws.iter().map(|w| w.0).min().unwrap_or(0);
            let hi = ws.iter().try_fold(0u64, |acc, w| w.1.map(|h| acc.max(h)));
            (lo, hi)
        }
        Node::Conditional { yes, no, .. } => {
            width(&Node::Alt(vec![(**yes).clone(), (**no).clone()]))
        }
        Node::Backref { .. } => (0, None),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lit(c: char) -> Node {
        Node::Literal { c, ci: false }
    }

    #[test]
    fn braces_are_literal_unless_quantifier() {
        let p = parse("a{b}", false).unwrap();
        assert_eq!(
            p.root,
            Node::Concat(vec![lit('a'), lit('{'), lit('b'), lit('}')])
        );
        let p = parse("a{,3}", false).unwrap();
        assert!(matches!(
            p.root,
            Node::Repeat {
                min: 0,
                max: Some(3),
                ..
            }
        ));
        let p = parse("{}", false).unwrap();
        assert_eq!(p.root, Node::Concat(vec![lit('{'), lit('}')]));
    }

    #[test]
    fn groups_and_backrefs() {
        let p = parse("(?P<a>x)(y)(?P=a)\\2", false).unwrap();
        assert_eq!(p.groups, vec![Some("a".to_string()), None]);
        let Node::Concat(v) = &p.root else { panic!() };
        assert_eq!(
            v[2],
            Node::Backref {
                group: 1,
                ci: false
            }
        );
        assert_eq!(
            v[3],
            Node::Backref {
                group: 2,
                ci: false
            }
        );
        assert!(parse("(?P<a>x(?P=a))", false).is_err());
        assert!(parse("(?P<a>x)(?P<a>y)", false).is_err());
    }

    #[test]
    fn conditionals_and_flags() {
        let p = parse("(?P<c>x)?(?(c)a|b)", false).unwrap();
        let Node::Concat(v) = &p.root else { panic!() };
        assert!(matches!(v[1], Node::Conditional { group: 1, .. }));
        let p = parse("(?i)a(?-i:b)", false).unwrap();
        assert_eq!(
            p.root,
            Node::Concat(vec![
                Node::Literal { c: 'a', ci: true },
                Node::Group {
                    capture: None,
                    child: Box::new(lit('b'))
                }
            ])
        );
    }

    #[test]
    fn classes() {
        let p = parse(r"[]a\d\b-]", false).unwrap();
        let Node::Class { items, .. } = p.root else {
            panic!()
        };
        assert_eq!(
            items,
            vec![
                ClassItem::Char(']'),
                ClassItem::Char('a'),
                ClassItem::Perl {
                    kind: Perl::Digit,
                    negated: false
                },
                ClassItem::Char('\x08'),
                ClassItem::Char('-'),
            ]
        );
        assert!(parse(r"[\w-z]", false).is_err());
        assert!(parse(r"[z-a]", false).is_err());
    }

    #[test]
    fn errors() {
        assert!(parse("*a", false).is_err());
        assert!(parse("a**", false).is_err());
        assert!(parse("(a", false).is_err());
        assert!(parse("a)", false).is_err());
        assert!(parse(r"\e", false).is_err());
        assert!(matches!(
            parse(r"\N{DIGIT ONE}", false),
            Err(PatternError::Unsupported(_))
        ));
    }

    #[test]
    fn local_flags_rewrite() {
        assert_eq!(glob_to_local_flags("a((?i)b)c"), "a(?i:b)c");
        assert_eq!(glob_to_local_flags("(?:(?i)b)"), "(?i:b)");
        assert_eq!(glob_to_local_flags("(?i)b"), "(?i)b");
        assert_eq!(glob_to_local_flags(r"\((?i)b)"), r"\((?i)b)");
    }

    #[test]
    fn backref_expansion() {
        let p = parse(r"(?P<s>[-/])(?P<m>\d)(?P=s)", false).unwrap();
        let e = expand_backrefs(&p).unwrap();
        let Node::Concat(v) = &e.root else {
            panic!("{:?}", e.root)
        };
        let Node::Alt(branches) = &v[0] else {
            panic!("{:?}", e.root)
        };
        assert_eq!(branches.len(), 2);
        assert!(expand_backrefs(&parse(r"(?P<s>\w)(?P=s)", false).unwrap()).is_none());
    }

    #[test]
    fn literals() {
        let p = parse(r#"^(?P<h>\S+) .* "POST /wp-login\.php"#, false).unwrap();
        assert_eq!(required_literal(&p.root), r#" "POST /wp-login.php"#);
        let p = parse(r"(?:ab|cd)xyz(?i:Q)", false).unwrap();
        assert_eq!(required_literal(&p.root), "xyz");
    }

    #[test]
    fn widths() {
        assert_eq!(width(&parse("ab|cd", false).unwrap().root), (2, Some(2)));
        assert_eq!(width(&parse("a|bc", false).unwrap().root), (1, Some(2)));
        assert_eq!(width(&parse(r"\d+", false).unwrap().root), (1, None));
    }
}
