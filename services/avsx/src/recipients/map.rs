//! The static recipient map (`relay_recipients`): one address per line, optionally
//! followed by whitespace and anything (Postfix's `addr OK`, so an existing Postfix map
//! can be used as it is); `#` comments and blank lines are skipped.
//!
//! Addresses are normalised by [`normalize`]: the domain is case-insensitive by
//! definition, and the local part, although RFC 5321 lets a server treat it
//! case-sensitively, is lowercased too, as every common mail server (Exchange, Postfix
//! with LDAP, Dovecot) does; the map, the directory and the client's `RCPT TO` then
//! compare equal whatever case each uses.
//!
//! A catch-all entry (`@example.org`) is refused: the perimeter exists to reject mail
//! for recipients that do not exist, which a catch-all would silently turn off.

use std::collections::{BTreeSet, HashSet};
use std::fmt::Write;
use std::path::{Path, PathBuf};

/// Why a map entry (or an address) is not usable.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum EntryProblem {
    #[error(
        "is a catch-all (the map must list each address; a catch-all would accept mail for anyone)"
    )]
    CatchAll,
    #[error("is not an address (expected local@domain)")]
    NotAnAddress,
    #[error("contains a space or control character")]
    BadCharacter,
}

/// A map file that cannot be used, with the file (and line) to look at.
#[derive(Debug, thiserror::Error)]
pub enum MapError {
    #[error("cannot read recipient map {}: {source}", path.display())]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("recipient map {}, line {line}: {entry:?} {problem}", path.display())]
    Entry {
        path: PathBuf,
        line: usize,
        entry: String,
        problem: EntryProblem,
    },
}

/// `address` lowercased, with a trailing dot of the domain removed, if it is a single
/// `local@domain` address; the split is at the last `@` (a quoted local part may hold
/// one).
pub fn normalize(address: &str) -> Result<String, EntryProblem> {
    if address.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err(EntryProblem::BadCharacter);
    }
    let (local, domain) = address.rsplit_once('@').ok_or(EntryProblem::NotAnAddress)?;
    let domain = domain.strip_suffix('.').unwrap_or(domain);
    if domain.is_empty() || domain.starts_with('.') || domain.contains("..") {
        return Err(EntryProblem::NotAnAddress);
    }
    if local.is_empty() {
        return Err(EntryProblem::CatchAll);
    }
    Ok(format!(
        "{}@{}",
        local.to_lowercase(),
        domain.to_lowercase()
    ))
}

/// The domain part of a normalised address.
pub fn domain(normalized: &str) -> &str {
    normalized.rsplit_once('@').map_or("", |(_, d)| d)
}

/// Parses the map text; `path` only names the file in errors.
pub fn parse(text: &str, path: &Path) -> Result<HashSet<String>, MapError> {
    let mut out = HashSet::new();
    for (i, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        // The first field is the address; the rest (`OK`, a comment) is Postfix's value.
        let entry = line.split_whitespace().next().unwrap_or(line);
        let address = normalize(entry).map_err(|problem| MapError::Entry {
            path: path.to_owned(),
            line: i + 1,
            entry: entry.to_owned(),
            problem,
        })?;
        out.insert(address);
    }
    Ok(out)
}

/// Reads and parses the map file.
pub fn load(path: &Path) -> Result<HashSet<String>, MapError> {
    let text = std::fs::read_to_string(path).map_err(|source| MapError::Read {
        path: path.to_owned(),
        source,
    })?;
    parse(&text, path)
}

/// The map file for `addresses`: a header saying where it comes from, then one address
/// per line in sorted order, so the file is deterministic and diffs well.
pub fn render(addresses: &BTreeSet<String>, source: &str) -> String {
    let mut out = format!(
        "# Recipients avsx accepts mail for: {} addresses from {source}.\n\
         # Written by `avsx recipients sync`; edits are lost at the next sync.\n",
        addresses.len()
    );
    for a in addresses {
        let _ = writeln!(out, "{a}");
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(text: &str) -> Result<HashSet<String>, MapError> {
        parse(text, Path::new("/etc/avsx/relay_recipients"))
    }

    fn set(items: &[&str]) -> HashSet<String> {
        items.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn plain_and_postfix_lines_comments_and_blanks() {
        let text = "# header\n\nalice@example.org\n  Bob@Example.ORG   OK\n\
                    carol@example.com\tOK # x\n   \n#dave@example.org\n";
        assert_eq!(
            p(text).unwrap(),
            set(&["alice@example.org", "bob@example.org", "carol@example.com"])
        );
    }

    #[test]
    fn empty_map_is_fine() {
        assert!(p("").unwrap().is_empty());
        assert!(p("# nothing yet\n\n").unwrap().is_empty());
    }

    #[test]
    fn crlf_lines_and_duplicates() {
        assert_eq!(
            p("a@example.org\r\nA@EXAMPLE.ORG\r\n").unwrap(),
            set(&["a@example.org"])
        );
    }

    #[test]
    fn catch_all_is_refused_naming_file_and_line() {
        let err = p("alice@example.org\n# comment\n@example.org OK\n").unwrap_err();
        let msg = err.to_string();
        assert!(matches!(
            err,
            MapError::Entry {
                line: 3,
                problem: EntryProblem::CatchAll,
                ..
            }
        ));
        assert!(msg.contains("/etc/avsx/relay_recipients"), "{msg}");
        assert!(msg.contains("line 3"), "{msg}");
        assert!(msg.contains("\"@example.org\""), "{msg}");
        assert!(msg.contains("catch-all"), "{msg}");
    }

    #[test]
    fn entries_that_are_no_address_are_refused() {
        for bad in ["alice", "alice@", "alice@.example.org", "a@example..org"] {
            let err = p(&format!("{bad}\n")).unwrap_err();
            assert!(
                matches!(
                    err,
                    MapError::Entry {
                        line: 1,
                        problem: EntryProblem::NotAnAddress,
                        ..
                    }
                ),
                "{bad}: {err}"
            );
        }
    }

    #[test]
    fn normalize_lowercases_both_parts_and_drops_the_root_dot() {
        assert_eq!(
            normalize("Alice.Smith@Example.ORG.").unwrap(),
            "alice.smith@example.org"
        );
        assert_eq!(
            normalize("\"a@b\"@example.org").unwrap(),
            "\"a@b\"@example.org"
        );
        assert_eq!(normalize("@example.org"), Err(EntryProblem::CatchAll));
        assert_eq!(
            normalize("a b@example.org"),
            Err(EntryProblem::BadCharacter)
        );
        assert_eq!(
            normalize("a\0@example.org"),
            Err(EntryProblem::BadCharacter)
        );
        assert_eq!(domain("a@example.org"), "example.org");
    }

    #[test]
    fn render_round_trips_sorted() {
        let addrs: BTreeSet<String> = ["b@example.org", "a@example.org"]
            .iter()
            .map(|s| s.to_string())
            .collect();
        let text = render(&addrs, "ldap://dc1");
        let body: Vec<&str> = text.lines().filter(|l| !l.starts_with('#')).collect();
        assert_eq!(body, ["a@example.org", "b@example.org"]);
        assert_eq!(p(&text).unwrap(), addrs.into_iter().collect());
    }
}
