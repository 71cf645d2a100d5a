//! The path of `MAIL FROM:<...>` and `RCPT TO:<...>` (RFC 5321 4.1.2), parsed strictly
//! but sensibly: angle brackets required, no spaces outside a quoted local part, a
//! source route (`<@a,@b:x@y>`, obsolete since RFC 5321 appendix C) accepted and
//! thrown away, quoted local parts kept as the client wrote them. Only ASCII: avsx
//! does not offer SMTPUTF8, so a client must not send anything else.

/// RFC 5321 4.5.3.1.3: a path is at most 256 octets, brackets included.
const MAX_PATH: usize = 256;

/// Why a path was refused; the text goes into the 501 reply.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AddressError {
    NoBrackets,
    TooLong,
    BadLocalPart,
    BadDomain,
    BadSourceRoute,
    /// `<>` where a mailbox is needed (RCPT).
    Empty,
}

impl AddressError {
    pub fn text(self) -> &'static str {
        match self {
            AddressError::NoBrackets => "address must be enclosed in <>",
            AddressError::TooLong => "address too long",
            AddressError::BadLocalPart => "bad local part",
            AddressError::BadDomain => "bad domain",
            AddressError::BadSourceRoute => "bad source route",
            AddressError::Empty => "empty address",
        }
    }
}

/// Splits `<path> rest` into the mailbox (without brackets; empty for `<>`) and what
/// follows the closing bracket (the ESMTP parameters). `<Postmaster>` without a domain
/// is allowed when `postmaster` is set (RCPT: RFC 5321 4.5.1 requires it).
pub fn parse_path(s: &str, postmaster: bool) -> Result<(String, &str), AddressError> {
    let inner = s.strip_prefix('<').ok_or(AddressError::NoBrackets)?;
    let end = closing_bracket(inner).ok_or(AddressError::NoBrackets)?;
    if end + 2 > MAX_PATH {
        return Err(AddressError::TooLong);
    }
    let (path, rest) = (&inner[..end], &inner[end + 1..]);
    if path.is_empty() {
        return Ok((String::new(), rest));
    }
    let mailbox = strip_source_route(path)?;
    if postmaster && mailbox.eq_ignore_ascii_case("postmaster") {
        return Ok((mailbox.to_owned(), rest));
    }
    check_mailbox(mailbox)?;
    Ok((mailbox.to_owned(), rest))
}

/// The index of the `>` that closes the path, skipping quoted strings (a quoted local
/// part may hold `>`); `None` if there is none.
fn closing_bracket(s: &str) -> Option<usize> {
    let b = s.as_bytes();
    let mut quoted = false;
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'\\' if quoted => i += 1,
            b'"' => quoted = !quoted,
            b'>' if !quoted => return Some(i),
            _ => {}
        }
        i += 1;
    }
    None
}

/// `@a,@b:mailbox` -> `mailbox`, after checking the route's domains.
fn strip_source_route(path: &str) -> Result<&str, AddressError> {
    if !path.starts_with('@') {
        return Ok(path);
    }
    let (route, mailbox) = path.split_once(':').ok_or(AddressError::BadSourceRoute)?;
    for hop in route.split(',') {
        let domain = hop.strip_prefix('@').ok_or(AddressError::BadSourceRoute)?;
        if !is_domain(domain) {
            return Err(AddressError::BadSourceRoute);
        }
    }
    Ok(mailbox)
}

/// `local@domain`, the local part a dot-string or a quoted string, the domain a name
/// or an address literal.
fn check_mailbox(m: &str) -> Result<(), AddressError> {
    // The domain cannot contain `@` (nor can a dot-string); a quoted local part can,
    // so the last `@` separates them.
    let (local, domain) = m.rsplit_once('@').ok_or(AddressError::BadDomain)?;
    if !(is_dot_string(local) || is_quoted_string(local)) {
        return Err(AddressError::BadLocalPart);
    }
    if !(is_domain(domain) || is_address_literal(domain)) {
        return Err(AddressError::BadDomain);
    }
    Ok(())
}

/// RFC 5322 atext.
fn is_atext(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"!#$%&'*+-/=?^_`{|}~".contains(&b)
}

fn is_dot_string(s: &str) -> bool {
    !s.is_empty()
        && s.split('.')
            .all(|atom| !atom.is_empty() && atom.bytes().all(is_atext))
}

/// RFC 5321 Quoted-string: printable ASCII and space, `\` escaping one printable.
fn is_quoted_string(s: &str) -> bool {
    let Some(inner) = s.strip_prefix('"').and_then(|s| s.strip_suffix('"')) else {
        return false;
    };
    let b = inner.as_bytes();
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'\\' => {
                if !b.get(i + 1).is_some_and(|c| (32..=126).contains(c)) {
                    return false;
                }
                i += 1;
            }
            b'"' => return false,
            c if !(32..=126).contains(&c) => return false,
            _ => {}
        }
        i += 1;
    }
    true
}

/// Letters, digits and hyphens in dot-separated labels (a single label is allowed too:
/// RFC 5321 does not forbid it, and the backend decides whether it is ours); no
/// trailing dot in an address.
fn is_domain(s: &str) -> bool {
    !s.ends_with('.') && appliance::config::is_hostname(s)
}

/// `[192.0.2.1]` or `[IPv6:2001:db8::1]`.
fn is_address_literal(s: &str) -> bool {
    let Some(inner) = s.strip_prefix('[').and_then(|s| s.strip_suffix(']')) else {
        return false;
    };
    match inner.get(..5) {
        Some(tag) if tag.eq_ignore_ascii_case("IPv6:") => {
            inner[5..].parse::<std::net::Ipv6Addr>().is_ok()
        }
        _ => inner.parse::<std::net::Ipv4Addr>().is_ok(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ok(s: &str) -> (String, String) {
        let (m, rest) = parse_path(s, false).unwrap_or_else(|e| panic!("{s}: {e:?}"));
        (m, rest.to_owned())
    }

    #[test]
    fn plain_and_null_paths() {
        assert_eq!(ok("<a.b@example.org>").0, "a.b@example.org");
        assert_eq!(ok("<>").0, "");
        assert_eq!(
            ok("<a@example.org> SIZE=10"),
            ("a@example.org".into(), " SIZE=10".into())
        );
        assert_eq!(ok("<x@[192.0.2.1]>").0, "x@[192.0.2.1]");
        assert_eq!(ok("<x@[IPv6:2001:db8::1]>").0, "x@[IPv6:2001:db8::1]");
    }

    #[test]
    fn source_routes_are_stripped() {
        assert_eq!(
            ok("<@a.example,@b.example:x@example.org>").0,
            "x@example.org"
        );
        assert_eq!(
            parse_path("<@a..example:x@example.org>", false),
            Err(AddressError::BadSourceRoute)
        );
        assert_eq!(
            parse_path("<@a.example>", false),
            Err(AddressError::BadSourceRoute)
        );
    }

    #[test]
    fn quoted_local_parts_are_kept() {
        assert_eq!(
            ok(r#"<"john doe"@example.org>"#).0,
            r#""john doe"@example.org"#
        );
        assert_eq!(ok(r#"<"a>b@c"@example.org> X"#).1, " X");
        assert_eq!(ok(r#"<"a\"b"@example.org>"#).0, r#""a\"b"@example.org"#);
        assert_eq!(
            parse_path(r#"<"a"b@example.org>"#, false),
            Err(AddressError::BadLocalPart)
        );
    }

    #[test]
    fn bad_paths_are_refused() {
        for (s, e) in [
            ("a@example.org", AddressError::NoBrackets),
            ("<a@example.org", AddressError::NoBrackets),
            ("<a b@example.org>", AddressError::BadLocalPart),
            ("<a@exa mple.org>", AddressError::BadDomain),
            ("<a..b@example.org>", AddressError::BadLocalPart),
            ("<.a@example.org>", AddressError::BadLocalPart),
            ("<@example.org>", AddressError::BadSourceRoute),
            ("<a@>", AddressError::BadDomain),
            ("<a@-x.org>", AddressError::BadDomain),
            ("<a@[300.1.1.1]>", AddressError::BadDomain),
            ("<user>", AddressError::BadDomain),
            ("<ü@example.org>", AddressError::BadLocalPart),
        ] {
            assert_eq!(parse_path(s, false), Err(e), "{s}");
        }
        let long = format!("<{}@example.org>", "a".repeat(250));
        assert_eq!(parse_path(&long, false), Err(AddressError::TooLong));
    }

    #[test]
    fn postmaster_only_where_allowed() {
        assert_eq!(parse_path("<Postmaster>", true).unwrap().0, "Postmaster");
        assert!(parse_path("<Postmaster>", false).is_err());
    }
}
