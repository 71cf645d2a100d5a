//! Configuration files: TOML read with serde in two stages, and errors an operator can act on.
//!
//! Stage one deserializes the file into the service's raw config type. Every config type
//! uses `#[serde(deny_unknown_fields)]`, so a misspelt key is an error rather than a
//! silently ignored setting. Stage two is [`Validate`]: checks that serde cannot express
//! (a port range, a file that must exist, two settings that exclude each other), all of
//! them collected so the operator sees every problem in one run instead of one per restart.
//!
//! Every [`Problem`] names the file, the line and column, the dotted key (`services[2].port`)
//! and what was expected. Serde's own errors carry the path through `serde_path_to_error`
//! and the position through toml's spans; validation problems only know their key, so the
//! position is looked up in a span-preserving `toml_edit` parse of the same text.

use std::fmt;
use std::ops::Range;
use std::path::{Path, PathBuf};

use serde::de::DeserializeOwned;

/// One thing wrong with a config file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    /// Dotted path of the offending key, e.g. `metrics.listen` or `services[0].port`;
    /// empty when the problem is not tied to a key (a TOML syntax error).
    pub key: String,
    /// 1-based line and column in the file, when known.
    pub position: Option<(usize, usize)>,
    /// What was wrong and what was expected.
    pub message: String,
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.position {
            Some((line, col)) => write!(f, "line {line}, column {col}")?,
            None => f.write_str("(position unknown)")?,
        }
        if !self.key.is_empty() {
            write!(f, ", key `{}`", self.key)?;
        }
        write!(f, ": {}", self.message)
    }
}

/// Why a config file could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read config file {}: {source}", path.display())]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{}", render_problems(path, problems))]
    Invalid {
        path: PathBuf,
        problems: Vec<Problem>,
    },
}

impl ConfigError {
    /// The problems found in the file (empty for a read error).
    pub fn problems(&self) -> &[Problem] {
        match self {
            ConfigError::Read { .. } => &[],
            ConfigError::Invalid { problems, .. } => problems,
        }
    }
}

fn render_problems(path: &Path, problems: &[Problem]) -> String {
    let mut out = format!("invalid config file {}", path.display());
    if let [one] = problems {
        out.push_str(&format!(": {one}"));
    } else {
        out.push_str(&format!(" ({} problems):", problems.len()));
        for p in problems {
            out.push_str(&format!("\n  {p}"));
        }
    }
    out
}

/// Second-stage checks of a deserialized config. Implementations push every problem they
/// find instead of stopping at the first.
pub trait Validate {
    fn validate(&self, problems: &mut Problems);
}

/// Collector for validation problems, keyed by dotted path.
#[derive(Debug, Default)]
pub struct Problems {
    found: Vec<(String, String)>,
}

impl Problems {
    /// Records that `key` is wrong; `message` says what was expected.
    pub fn push(&mut self, key: impl Into<String>, message: impl Into<String>) {
        self.found.push((key.into(), message.into()));
    }

    /// Records a problem unless `ok` holds; returns `ok` so checks can be chained.
    pub fn check(&mut self, ok: bool, key: impl Into<String>, message: impl Into<String>) -> bool {
        if !ok {
            self.push(key, message);
        }
        ok
    }

    pub fn is_empty(&self) -> bool {
        self.found.is_empty()
    }

    /// Checks that `value` is a name: 1 to 32 characters of `[A-Za-z0-9_-]`. Names end
    /// up in metric labels, file names and firewall comments, where anything else would
    /// need quoting or could not be told apart.
    pub fn check_name(&mut self, key: impl Into<String>, value: &str) -> bool {
        let ok = (1..=32).contains(&value.len())
            && value
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
        self.check(
            ok,
            key,
            format!("expected 1 to 32 characters of [A-Za-z0-9_-], got {value:?}"),
        )
    }

    /// Checks that `value` was not seen before among the `what`s (e.g. "gateway id")
    /// and remembers it.
    pub fn check_unique<'a>(
        &mut self,
        seen: &mut std::collections::HashSet<&'a str>,
        key: impl Into<String>,
        what: &str,
        value: &'a str,
    ) -> bool {
        let ok = seen.insert(value);
        self.check(
            ok,
            key,
            format!("expected a unique {what}, `{value}` is used twice"),
        )
    }
}

/// Reads and parses `path`; see [`parse`].
pub fn load<T: DeserializeOwned + Validate>(path: &Path) -> Result<T, ConfigError> {
    let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
        path: path.to_owned(),
        source,
    })?;
    parse(&text, path)
}

/// Parses `text` (the contents of `path`, used only in messages) into `T` and validates it.
pub fn parse<T: DeserializeOwned + Validate>(text: &str, path: &Path) -> Result<T, ConfigError> {
    let invalid = |problems| ConfigError::Invalid {
        path: path.to_owned(),
        problems,
    };
    let deserializer = toml::Deserializer::parse(text).map_err(|e| {
        invalid(vec![Problem {
            key: String::new(),
            position: e.span().map(|s| line_col(text, s.start)),
            message: e.message().trim_end().to_owned(),
        }])
    })?;
    let value: T = serde_path_to_error::deserialize(deserializer).map_err(|e| {
        let key = path_string(e.path());
        let inner = e.inner();
        let span = inner.span().or_else(|| locate(text, &key));
        invalid(vec![Problem {
            position: span.map(|s| line_col(text, s.start)),
            key,
            message: inner.message().trim_end().to_owned(),
        }])
    })?;

    let mut problems = Problems::default();
    value.validate(&mut problems);
    if problems.is_empty() {
        return Ok(value);
    }
    let problems = problems
        .found
        .into_iter()
        .map(|(key, message)| Problem {
            position: locate(text, &key).map(|s| line_col(text, s.start)),
            key,
            message,
        })
        .collect();
    Err(invalid(problems))
}

/// serde_path_to_error renders an unknown position as `.`; an empty key reads better.
fn path_string(path: &serde_path_to_error::Path) -> String {
    let s = path.to_string();
    if s == "." { String::new() } else { s }
}

/// 1-based line and column (in characters) of byte `offset` in `text`.
fn line_col(text: &str, offset: usize) -> (usize, usize) {
    let before = &text[..offset.min(text.len())];
    let line = before.matches('\n').count() + 1;
    let line_start = before.rfind('\n').map_or(0, |i| i + 1);
    (line, before[line_start..].chars().count() + 1)
}

/// One step of a dotted key path.
#[derive(Debug, PartialEq)]
enum Segment<'a> {
    Key(&'a str),
    Index(usize),
}

/// Splits `a.b[2].c` into segments. Keys containing dots or brackets cannot be told apart
/// from paths; that only costs the position of such a problem, never the message.
fn segments(path: &str) -> Vec<Segment<'_>> {
    let mut out = Vec::new();
    for part in path.split('.').filter(|p| !p.is_empty()) {
        let (name, mut rest) = part.split_at(part.find('[').unwrap_or(part.len()));
        if !name.is_empty() {
            out.push(Segment::Key(name));
        }
        while let Some(close) = rest.find(']') {
            if let Ok(i) = rest[1..close].parse() {
                out.push(Segment::Index(i));
            }
            rest = &rest[close + 1..];
        }
    }
    out
}

/// Span of the deepest existing part of `path` in `text`: the key itself when it exists,
/// else its nearest existing parent (a missing key is reported at the table that lacks it).
fn locate(text: &str, path: &str) -> Option<Range<usize>> {
    let doc = toml_edit::Document::parse(text).ok()?;
    let mut node = Node::Item(doc.as_item());
    let mut best = None;
    for seg in segments(path) {
        let step = match seg {
            Segment::Key(k) => node
                .table()
                .and_then(|t| t.get_key_value(k))
                .map(|(key, item)| (key.span(), Node::Item(item))),
            Segment::Index(i) => node.index(i),
        };
        let Some((span, next)) = step else { break };
        best = span.or(best);
        node = next;
    }
    best
}

/// A place in a `toml_edit` document: tables in arrays of tables and values in arrays are
/// not `Item`s, so walking a path needs all three.
enum Node<'a> {
    Item(&'a toml_edit::Item),
    Table(&'a toml_edit::Table),
    Value(&'a toml_edit::Value),
}

impl<'a> Node<'a> {
    fn table(&self) -> Option<&'a dyn toml_edit::TableLike> {
        match *self {
            Node::Item(i) => i.as_table_like(),
            Node::Table(t) => Some(t),
            Node::Value(v) => v.as_inline_table().map(|t| t as &dyn toml_edit::TableLike),
        }
    }

    fn index(&self, i: usize) -> Option<(Option<Range<usize>>, Node<'a>)> {
        let array = match *self {
            Node::Item(toml_edit::Item::ArrayOfTables(a)) => {
                return a.get(i).map(|t| (t.span(), Node::Table(t)));
            }
            Node::Item(toml_edit::Item::Value(v)) | Node::Value(v) => v.as_array()?,
            _ => return None,
        };
        array.get(i).map(|v| (v.span(), Node::Value(v)))
    }
}

/// A host or domain name: dot-separated labels of 1 to 63 letters, digits and hyphens,
/// not starting or ending with a hyphen, 253 characters at most, one trailing dot
/// allowed. A single label (`localhost`) is one too.
pub fn is_hostname(name: &str) -> bool {
    let name = name.strip_suffix('.').unwrap_or(name);
    !name.is_empty()
        && name.len() <= 253
        && name.split('.').all(|l| {
            (1..=63).contains(&l.len())
                && l.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
                && !l.starts_with('-')
                && !l.ends_with('-')
        })
}

#[cfg(test)]
mod tests;
