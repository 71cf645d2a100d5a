//! RFC 4515 escaping of an address before it goes into the configured LDAP filter.
//!
//! The address comes from whoever connects to port 25, so it is hostile input: without
//! escaping, `*@example.org` would match every mailbox (a wildcard turning "unknown" into
//! "known") and `a)(mail=*` would rewrite the filter (LDAP injection). Every byte that
//! has a meaning in a filter value, NUL, and every non-ASCII byte becomes `\XX`; RFC 4515
//! requires the first four, and escaping non-ASCII too means the filter string is plain
//! ASCII whatever the client sent, so no server or library can mis-decode it.

use std::fmt::Write;

/// `value` escaped for use as an assertion value in a filter (RFC 4515 section 3).
pub fn filter_value(value: &str) -> String {
    let mut out = String::with_capacity(value.len() + 8);
    for &b in value.as_bytes() {
        if matches!(b, b'*' | b'(' | b')' | b'\\' | 0) || !b.is_ascii() {
            // Writing to a String cannot fail.
            let _ = write!(out, "\\{b:02x}");
        } else {
            out.push(char::from(b));
        }
    }
    out
}

/// The filter with every `%s` replaced by the escaped `value`. The replacement is not
/// scanned again, so a `%s` inside the value stays literal.
pub fn fill(filter: &str, value: &str) -> String {
    filter.replace("%s", &filter_value(value))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_addresses_pass_unchanged() {
        assert_eq!(
            filter_value("alice.smith+tag@example.org"),
            "alice.smith+tag@example.org"
        );
        assert_eq!(filter_value(""), "");
    }

    #[test]
    fn filter_metacharacters_are_escaped() {
        assert_eq!(filter_value("*"), "\\2a");
        assert_eq!(filter_value("*@example.org"), "\\2a@example.org");
        assert_eq!(filter_value("a)(mail=*"), "a\\29\\28mail=\\2a");
        assert_eq!(filter_value("x\\2a"), "x\\5c2a");
        assert_eq!(filter_value("nul\0byte"), "nul\\00byte");
    }

    #[test]
    fn non_ascii_is_escaped_bytewise() {
        // U+00E9 is C3 A9 in UTF-8.
        assert_eq!(
            filter_value("ren\u{e9}@example.org"),
            "ren\\c3\\a9@example.org"
        );
    }

    #[test]
    fn fill_replaces_every_placeholder() {
        assert_eq!(
            fill("(|(mail=%s)(proxyAddresses=smtp:%s))", "a*@b.test"),
            "(|(mail=a\\2a@b.test)(proxyAddresses=smtp:a\\2a@b.test))"
        );
    }

    #[test]
    fn placeholder_inside_the_value_stays_literal() {
        assert_eq!(fill("(mail=%s)", "%s@b.test"), "(mail=%s@b.test)");
    }

    #[test]
    fn escaped_filters_parse_as_single_equality_assertions() {
        // The injection attempts must still be one well-formed filter after escaping.
        for hostile in [
            "*",
            "a)(mail=*",
            "x\\2a",
            ")(|(objectClass=*",
            "\0",
            "\u{e9}*",
        ] {
            let filter = fill("(mail=%s)", hostile);
            assert!(ldap3::parse_filter(&filter).is_ok(), "{filter}");
            assert!(filter.is_ascii(), "{filter}");
        }
    }
}
