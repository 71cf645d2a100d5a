//! fail2ban's regex tags, expanded into Python regex text before compiling:
//!
//! | tag | becomes |
//! |---|---|
//! | `<HOST>` | an IPv4 or IPv6 address (optionally in brackets, IPv4 optionally `::ffff:`-mapped) or a DNS name (only the address forms when `usedns = no`) |
//! | `<ADDR>`, `<IP4>`, `<IP6>`, `<DNS>` | those parts alone (also as self-closing `<F-IP4/>` etc.) |
//! | `<F-ID/>`, `<F-PORT/>` | a non-blank failure id, a port word |
//! | `<F-NAME>...</F-NAME>` | a named group `name` (lowercase; `ID` and `PORT` map to `fid`, `fport`) |
//!
//! The groups the matcher reads are `ip4`, `ip6`, `dns`, `fid`, `user` (also
//! `alt_user...`), `mlfid`, `nofail`, `mlfforget`, `mlfgained` and `content`. A closing
//! tag that was never opened, and any tag we do not know, stay as literal text, as in
//! fail2ban.
//!
//! Refused: `<SKIPLINES>` (fail2ban's multi-line skipping across a line buffer) and
//! `<CIDR>`/`<SUBNET>` (subnet failures; our bans are per address), with an error that
//! says so rather than a filter that silently matches something else.
//!
//! The address patterns are our own; they match what fail2ban's do (which is what the
//! filters' sample logs were written against): an IPv4 address is four groups of one to
//! three digits, an IPv6 address one to seven groups of hex digits each ending in `:` or
//! `::` (or a bare `::`), then a last group or a final `:`.

use super::error::PatternError;

const IP4: &str = r"(?:::f{4,6}:)?(?P<ip4>(?:[0-9]{1,3}\.){3}[0-9]{1,3})";
const IP6: &str = r"(?P<ip6>(?:[0-9a-fA-F]{1,4}::?|::){1,7}(?:[0-9a-fA-F]{1,4}|:))";
const DNS: &str = r"(?P<dns>[\w\-.^_]*\w)";

fn addr() -> String {
    format!(r"\[?(?:{IP4}|{IP6})\]?")
}

fn host(use_dns: bool) -> String {
    if use_dns {
        format!("(?:{}|{DNS})", addr())
    } else {
        addr()
    }
}

/// Expands the tags of `regex`. `use_dns`: whether `<HOST>` may be a DNS name
/// (fail2ban's `usedns` other than `no`).
pub(crate) fn expand(regex: &str, use_dns: bool) -> Result<String, PatternError> {
    let mut out = String::with_capacity(regex.len() + 128);
    let mut open: Vec<String> = Vec::new();
    let mut rest = regex;
    while let Some(start) = rest.find('<') {
        out.push_str(&rest[..start]);
        let candidate = &rest[start..];
        let Some(len) = tag_len(candidate) else {
            out.push('<');
            rest = &candidate[1..];
            continue;
        };
        let tag = &candidate[..len];
        rest = &candidate[len..];
        let name = &tag[1..len - 1];
        match substitute(name, use_dns, &mut open)? {
            Some(s) => out.push_str(&s),
            None => out.push_str(tag),
        }
    }
    out.push_str(rest);
    Ok(out)
}

/// Length of a tag `</?[\w-]+/?>` at the start of `s`.
fn tag_len(s: &str) -> Option<usize> {
    let mut chars = s.char_indices().skip(1).peekable();
    if chars.peek().is_some_and(|&(_, c)| c == '/') {
        chars.next();
    }
    let mut seen = false;
    while let Some(&(_, c)) = chars.peek() {
        if c.is_alphanumeric() || c == '_' || c == '-' {
            seen = true;
            chars.next();
        } else {
            break;
        }
    }
    if !seen {
        return None;
    }
    if chars.peek().is_some_and(|&(_, c)| c == '/') {
        chars.next();
    }
    match chars.next() {
        Some((i, '>')) => Some(i + 1),
        _ => None,
    }
}

fn substitute(
    name: &str,
    use_dns: bool,
    open: &mut Vec<String>,
) -> Result<Option<String>, PatternError> {
    Ok(Some(match name {
        "HOST" => host(use_dns),
        "ADDR" | "F-ADDR/" => addr(),
        "IP4" | "F-IP4/" => IP4.to_string(),
        "IP6" | "F-IP6/" => IP6.to_string(),
        "DNS" | "F-DNS/" => DNS.to_string(),
        "F-ID/" => r"(?P<fid>\S+)".to_string(),
        "F-PORT/" => r"(?P<fport>\w+)".to_string(),
        "SKIPLINES" => {
            return Err(PatternError::Unsupported(
                "regex uses <SKIPLINES> (multi-line skipping)".into(),
            ));
        }
        "CIDR" | "F-CIDR/" | "SUBNET" | "F-SUBNET/" => {
            return Err(PatternError::Unsupported(format!(
                "regex uses <{name}> (subnet failures; bans are per address)"
            )));
        }
        _ => {
            let (close, custom) = match name.strip_prefix('/') {
                Some(n) => (true, n),
                None => (false, name),
            };
            let Some(custom) = custom.strip_prefix("F-") else {
                return Ok(None);
            };
            let valid = !custom.is_empty()
                && custom
                    .chars()
                    .all(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || c == '_' || c == '-');
            if !valid {
                return Ok(None);
            }
            if close {
                if open.iter().any(|o| o == custom) {
                    ")".to_string()
                } else {
                    return Ok(None);
                }
            } else {
                if custom.starts_with("TUPLE_") {
                    return Err(PatternError::Unsupported(format!(
                        "regex uses <F-{custom}> (composite failure ids)"
                    )));
                }
                if custom == "CIDR" || custom == "SUBNET" {
                    return Err(PatternError::Unsupported(format!(
                        "regex uses <F-{custom}> (subnet failures; bans are per address)"
                    )));
                }
                open.push(custom.to_string());
                format!("(?P<{}>", group_for(custom))
            }
        }
    }))
}

/// The group name fail2ban gives `<F-NAME>`.
fn group_for(custom: &str) -> String {
    let lower = custom.to_lowercase();
    match lower.as_str() {
        "id" => "fid".into(),
        "port" => "fport".into(),
        _ => lower,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn host_and_custom_tags() {
        let r = expand("^<F-USER>\\S+</F-USER> from <HOST>$", true).unwrap();
        assert!(r.starts_with(r"^(?P<user>\S+) from (?:\[?(?:"), "{r}");
        assert!(r.contains("(?P<dns>"));
        assert!(!expand("<HOST>", false).unwrap().contains("dns"));
        assert_eq!(
            expand("<F-ID/> <F-ALT_USER>x</F-ALT_USER>", true).unwrap(),
            r"(?P<fid>\S+) (?P<alt_user>x)"
        );
        assert_eq!(expand("<F-ID>a</F-ID>", true).unwrap(), "(?P<fid>a)");
    }

    #[test]
    fn unknown_and_unopened_tags_stay() {
        assert_eq!(
            expand("<pid> </F-USER> <a b> <", true).unwrap(),
            "<pid> </F-USER> <a b> <"
        );
        assert_eq!(expand(r"<\d+>", true).unwrap(), r"<\d+>");
    }

    #[test]
    fn refused_tags() {
        assert!(matches!(
            expand("a<SKIPLINES>b", true),
            Err(PatternError::Unsupported(_))
        ));
        assert!(matches!(
            expand("<ADDR>/<CIDR>", true),
            Err(PatternError::Unsupported(_))
        ));
    }

    #[test]
    fn address_patterns() {
        let re = regex::Regex::new(&format!("^{}$", host(true).replace("(?P<", "(?P<x_"))).unwrap();
        for ok in [
            "1.2.3.4",
            "[1.2.3.4]",
            "::ffff:1.2.3.4",
            "2001:db8::1",
            "::1",
            "fe80::",
            "host.example.com",
        ] {
            assert!(re.is_match(ok), "{ok}");
        }
    }
}
