//! One INI file read the way Python's `configparser` reads it for fail2ban, because
//! `filter.d` files are written against that parser's quirks:
//!
//! * `key = value` or `key: value`; the key ends at the first `=` or `:` (so
//!   `journalmatch = _SYSTEMD_UNIT=sshd.service` is the key `journalmatch`); keys are
//!   case-insensitive (stored lowercased), section names are not.
//! * A line indented deeper than its option line continues the value (one regex per
//!   line in `failregex`); continuation lines lose their indentation; blank lines inside
//!   a value are kept as empty lines, trailing ones are dropped.
//! * Comments: a line whose first non-blank character is `#` or `;`, anywhere, even in
//!   the middle of a multi-line value; and an inline comment starting at a `;` that
//!   follows whitespace (fail2ban enables inline `;` comments). `#` is never inline.
//! * Strict like `configparser`: a section or an option given twice in one file is an
//!   error, as is an option before any section.
//!
//! Interpolation (`%(name)s`) is not done here: values are kept raw, see `config.rs`.

use std::path::{Path, PathBuf};

use super::error::FilterError;

/// Name of the section whose options every other section sees.
pub(crate) const DEFAULT_SECTION: &str = "DEFAULT";

/// A parsed file: its sections in file order, `[DEFAULT]` included as a section.
#[derive(Debug, Clone)]
pub(crate) struct IniFile {
    pub path: PathBuf,
    pub sections: Vec<IniSection>,
}

#[derive(Debug, Clone)]
pub(crate) struct IniSection {
    pub name: String,
    pub options: Vec<IniOption>,
}

#[derive(Debug, Clone)]
pub(crate) struct IniOption {
    /// Lowercased key.
    pub key: String,
    /// Raw value, continuation lines joined with `\n`.
    pub value: String,
    /// 1-based line of the `key = value` line.
    pub line: usize,
}

impl IniFile {
    pub fn section(&self, name: &str) -> Option<&IniSection> {
        self.sections.iter().find(|s| s.name == name)
    }
}

impl IniSection {
    pub fn get(&self, key: &str) -> Option<&IniOption> {
        self.options.iter().find(|o| o.key == key)
    }
}

/// Reads and parses `path`.
pub(crate) fn read(path: &Path) -> Result<IniFile, FilterError> {
    let bytes = std::fs::read(path).map_err(|source| FilterError::Read {
        path: path.to_path_buf(),
        source,
    })?;
    let text = String::from_utf8(bytes).map_err(|e| FilterError::Syntax {
        path: path.to_path_buf(),
        line: 1 + e.as_bytes()[..e.utf8_error().valid_up_to()]
            .iter()
            .filter(|&&b| b == b'\n')
            .count(),
        message: "not valid UTF-8".into(),
    })?;
    parse(path, &text)
}

/// Parses INI text; `path` only names the file in errors.
pub(crate) fn parse(path: &Path, text: &str) -> Result<IniFile, FilterError> {
    let err = |line: usize, message: String| FilterError::Syntax {
        path: path.to_path_buf(),
        line,
        message,
    };
    let mut sections: Vec<IniSection> = Vec::new();
    // Values are collected as lists of lines and joined at the end.
    let mut values: Vec<Vec<Vec<String>>> = Vec::new();
    let mut current: Option<usize> = None; // index into `sections`
    let mut option: Option<usize> = None; // index into the current section's options
    let mut indent_level = 0usize;

    for (index, raw) in text.split('\n').enumerate() {
        let lineno = index + 1;
        let line = raw.strip_suffix('\r').unwrap_or(raw);
        let comment_start = comment_start(line);
        let value = match comment_start {
            Some(c) => line[..c].trim(),
            None => line.trim(),
        };
        if value.is_empty() {
            // A blank line (not a comment line) inside a value is kept as an empty line.
            if comment_start.is_none()
                && let (Some(s), Some(o)) = (current, option)
            {
                values[s][o].push(String::new());
            }
            continue;
        }
        let indent = line.find(|c: char| !c.is_whitespace()).unwrap_or(0);
        if let (Some(s), Some(o)) = (current, option)
            && indent > indent_level
        {
            values[s][o].push(value.to_string());
            continue;
        }
        indent_level = indent;
        if let Some(name) = section_header(value) {
            // configparser keeps [DEFAULT] apart and does not check it for duplicates.
            if name == DEFAULT_SECTION
                && let Some(i) = sections.iter().position(|s| s.name == name)
            {
                current = Some(i);
                option = None;
                continue;
            }
            if sections.iter().any(|s| s.name == name) {
                return Err(err(lineno, format!("section [{name}] appears twice")));
            }
            sections.push(IniSection {
                name: name.to_string(),
                options: Vec::new(),
            });
            values.push(Vec::new());
            current = Some(sections.len() - 1);
            option = None;
            continue;
        }
        let Some(s) = current else {
            return Err(err(
                lineno,
                format!("`{value}` comes before any [section] header"),
            ));
        };
        let Some(delim) = value.find(['=', ':']) else {
            return Err(err(
                lineno,
                format!("`{value}` is neither a [section], a `key = value` nor a comment"),
            ));
        };
        let key = value[..delim].trim_end().to_lowercase();
        if key.is_empty() {
            return Err(err(lineno, "option without a name".into()));
        }
        if sections[s].options.iter().any(|o| o.key == key) {
            return Err(err(
                lineno,
                format!(
                    "option `{key}` appears twice in section [{}]",
                    sections[s].name
                ),
            ));
        }
        sections[s].options.push(IniOption {
            key,
            value: String::new(),
            line: lineno,
        });
        values[s].push(vec![value[delim + 1..].trim().to_string()]);
        option = Some(sections[s].options.len() - 1);
    }
    for (section, lines) in sections.iter_mut().zip(values) {
        for (opt, lines) in section.options.iter_mut().zip(lines) {
            opt.value = lines.join("\n").trim_end().to_string();
        }
    }
    Ok(IniFile {
        path: path.to_path_buf(),
        sections,
    })
}

/// Byte index where the line's comment starts: a full-line `#`/`;` comment, or an
/// inline `;` at the start of the line or after whitespace.
fn comment_start(line: &str) -> Option<usize> {
    let trimmed = line.trim_start();
    if trimmed.starts_with('#') || trimmed.starts_with(';') {
        return Some(0);
    }
    line.match_indices(';').map(|(i, _)| i).find(|&i| {
        i == 0
            || line[..i]
                .chars()
                .next_back()
                .is_some_and(char::is_whitespace)
    })
}

/// `[name]`: the name runs to the last `]` (configparser's "very permissive" header).
fn section_header(value: &str) -> Option<&str> {
    let rest = value.strip_prefix('[')?;
    let end = rest.rfind(']')?;
    (end > 0).then(|| &rest[..end])
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(text: &str) -> IniFile {
        parse(Path::new("t.conf"), text).unwrap()
    }

    #[test]
    fn keys_values_and_continuations() {
        let f = p("[Definition]\n\
                   Failregex = ^a <HOST>$\n    ^b <HOST>\n\n    ^c\n\n\
                   journalmatch = _SYSTEMD_UNIT=sshd.service + _COMM=sshd\n\
                   key: v:w\n");
        let d = f.section("Definition").unwrap();
        assert_eq!(
            d.get("failregex").unwrap().value,
            "^a <HOST>$\n^b <HOST>\n\n^c"
        );
        assert_eq!(d.get("failregex").unwrap().line, 2);
        assert_eq!(
            d.get("journalmatch").unwrap().value,
            "_SYSTEMD_UNIT=sshd.service + _COMM=sshd"
        );
        assert_eq!(d.get("key").unwrap().value, "v:w");
    }

    #[test]
    fn comments() {
        let f = p(
            "# top\n[S]\na = 1 ; inline\nb = x;y # not a comment\nc = l1\n  # skipped\n  ; skipped\n  l2\n",
        );
        let s = f.section("S").unwrap();
        assert_eq!(s.get("a").unwrap().value, "1");
        assert_eq!(s.get("b").unwrap().value, "x;y # not a comment");
        assert_eq!(s.get("c").unwrap().value, "l1\nl2");
    }

    #[test]
    fn empty_values_and_default() {
        let f = p("[DEFAULT]\nx =\n[Init]\n\n");
        assert_eq!(
            f.section(DEFAULT_SECTION).unwrap().get("x").unwrap().value,
            ""
        );
        assert!(f.section("Init").unwrap().options.is_empty());
    }

    #[test]
    fn errors_name_file_and_line() {
        let e = parse(Path::new("/x/y.conf"), "a = 1\n").unwrap_err();
        assert_eq!(
            e.to_string(),
            "/x/y.conf:1: `a = 1` comes before any [section] header"
        );
        let e = parse(Path::new("y.conf"), "[S]\na = 1\nA = 2\n").unwrap_err();
        assert_eq!(
            e.to_string(),
            "y.conf:3: option `a` appears twice in section [S]"
        );
        let e = parse(Path::new("y.conf"), "[S]\n[S]\n").unwrap_err();
        assert!(e.to_string().contains("section [S] appears twice"));
        let e = parse(Path::new("y.conf"), "[S]\njunk\n").unwrap_err();
        assert!(e.to_string().starts_with("y.conf:2: `junk` is neither"));
    }
}
