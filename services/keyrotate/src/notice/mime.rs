//! The MIME encodings the notice needs, and no more: quoted-printable bodies (RFC 2045),
//! encoded words for a non-ASCII subject (RFC 2047), CRLF canonical text and header
//! folding. No I/O; every output line stays under 78 octets where the input allows it
//! and always under SMTP's 998.
//!
//! Hand-written rather than taken from a MIME crate because RFC 3156 signs the exact
//! bytes of a body part: we must know every octet we put on the wire, and a builder that
//! re-encodes or re-folds on output would break the signature.

/// Encoded lines (quoted-printable, folded headers) are kept to this length, RFC 2045's
/// limit for quoted-printable and RFC 5322's recommendation for all lines.
const LINE: usize = 76;

/// `text` with every line ending (LF, CRLF or a lone CR) made CRLF, ending with one.
/// RFC 3156 signs the canonical form, and SMTP carries nothing else.
pub fn crlf_lines(text: &str) -> String {
    let mut out = String::with_capacity(text.len() + text.len() / 32 + 2);
    let normalized = text.replace("\r\n", "\n").replace('\r', "\n");
    for line in normalized.lines() {
        out.push_str(line);
        out.push_str("\r\n");
    }
    if out.is_empty() {
        out.push_str("\r\n");
    }
    out
}

/// Whether a CRLF text can go as `7bit` without any transport touching it: ASCII without
/// control characters other than tab, short lines, no trailing whitespace (some relays
/// strip it) and no line starting with "From " (mbox stores quote it as ">From "). Each
/// of these would change the bytes and break the signature (RFC 3156, section 3).
pub fn is_7bit_safe(text: &str) -> bool {
    text.split("\r\n").all(|line| {
        line.len() <= LINE
            && line
                .bytes()
                .all(|b| b == b'\t' || (b' '..=b'~').contains(&b))
            && !line.ends_with([' ', '\t'])
            && !line.starts_with("From ")
    })
}

/// Quoted-printable (RFC 2045, section 6.7) of a CRLF text: line breaks stay hard
/// breaks, long lines get soft breaks (`=` CRLF) so no encoded line exceeds 76 octets.
/// Trailing whitespace and a leading "From " are encoded too, for the reasons in
/// [`is_7bit_safe`].
pub fn quoted_printable(text: &str) -> String {
    let mut out = String::with_capacity(text.len() * 3 / 2);
    let lines: Vec<&str> = text.split("\r\n").collect();
    // A CRLF-terminated text splits into a last, empty piece: no line of its own.
    let lines = match lines.split_last() {
        Some((&"", rest)) => rest,
        _ => &lines[..],
    };
    for line in lines {
        let bytes = line.as_bytes();
        let mut column = 0;
        for (i, &b) in bytes.iter().enumerate() {
            let last = i + 1 == bytes.len();
            let mut literal = match b {
                b'=' => false,
                b' ' | b'\t' => !last,
                b'!'..=b'~' => true,
                _ => false,
            };
            // Room for the soft break's `=` unless this is the line's last character.
            let limit = if last { LINE } else { LINE - 1 };
            if column + if literal { 1 } else { 3 } > limit {
                out.push_str("=\r\n");
                column = 0;
            }
            // Also after a soft break: mbox quoting looks at the encoded lines.
            if column == 0 && bytes[i..].starts_with(b"From ") {
                literal = false;
            }
            if literal {
                out.push(char::from(b));
            } else {
                out.push_str(&format!("={b:02X}"));
            }
            column += if literal { 1 } else { 3 };
        }
        out.push_str("\r\n");
    }
    out
}

/// Characters an RFC 2047 "Q" encoded word may carry literally in unstructured text
/// (section 5, rule 3), chosen conservatively.
fn q_literal(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"!*+-/".contains(&b)
}

/// Encoded-word payloads are cut at this many octets, so that even the first word after
/// "Subject: " leaves the line under 78 octets (RFC 2047 allows 75 for the whole word).
const WORD_PAYLOAD: usize = 45;

/// An unstructured header value (the subject) ready to follow `Name: `: as it is when it
/// is plain printable ASCII that cannot be mistaken for an encoded word, folded at spaces;
/// otherwise as UTF-8 "Q" encoded words (RFC 2047), one per folded line, never splitting
/// a character between words.
pub fn unstructured(name: &str, value: &str) -> String {
    let plain = value.bytes().all(|b| (b' '..=b'~').contains(&b))
        && !value.contains("=?")
        && !value.starts_with(' ')
        && !value.ends_with(' ')
        && value
            .split(' ')
            .all(|word| name.len() + 2 + word.len() <= LINE);
    if plain {
        return fold(name, value);
    }
    let mut words = Vec::new();
    let mut payload = String::new();
    for c in value.chars() {
        let mut utf8 = [0; 4];
        let mut encoded = String::new();
        for &b in c.encode_utf8(&mut utf8).as_bytes() {
            match b {
                b' ' => encoded.push('_'),
                b if q_literal(b) => encoded.push(char::from(b)),
                b => encoded.push_str(&format!("={b:02X}")),
            }
        }
        if payload.len() + encoded.len() > WORD_PAYLOAD {
            words.push(std::mem::take(&mut payload));
        }
        payload.push_str(&encoded);
    }
    words.push(payload);
    let words: Vec<String> = words.iter().map(|p| format!("=?utf-8?q?{p}?=")).collect();
    format!("{name}: {}\r\n", words.join("\r\n "))
}

/// `Name: value` CRLF, folded (RFC 5322, section 2.2.3) before a space where a line
/// would pass 76 octets; the space starts the continuation line.
pub fn fold(name: &str, value: &str) -> String {
    let mut out = format!("{name}:");
    let mut column = out.len();
    for word in value.split(' ') {
        // Never before the first word: a header line must hold more than its name.
        if column + 1 + word.len() > LINE && column > name.len() + 1 {
            out.push_str("\r\n");
            column = 0;
        }
        out.push(' ');
        out.push_str(word);
        column += 1 + word.len();
    }
    out.push_str("\r\n");
    out
}

/// 2 * `n` random hexadecimal digits, for boundaries and Message-IDs.
pub fn random_hex(n: usize) -> anyhow::Result<String> {
    use std::fmt::Write;
    let mut buf = vec![0u8; n];
    sequoia_openpgp::crypto::random(&mut buf)
        .map_err(|e| anyhow::anyhow!("drawing random bytes for a MIME boundary: {e}"))?;
    Ok(buf.iter().fold(String::new(), |mut s, b| {
        let _ = write!(s, "{b:02x}");
        s
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Quoted-printable decoding, to check the encoder round-trips.
    fn unqp(s: &str) -> String {
        let s = s.replace("=\r\n", "");
        let mut out = Vec::new();
        let b = s.as_bytes();
        let mut i = 0;
        while i < b.len() {
            if b[i] == b'=' {
                out.push(u8::from_str_radix(&s[i + 1..i + 3], 16).unwrap());
                i += 3;
            } else {
                out.push(b[i]);
                i += 1;
            }
        }
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn crlf_normalizes_every_line_ending() {
        assert_eq!(crlf_lines("a\nb\r\nc\rd"), "a\r\nb\r\nc\r\nd\r\n");
        assert_eq!(crlf_lines("a\n"), "a\r\n");
        assert_eq!(crlf_lines(""), "\r\n");
    }

    #[test]
    fn seven_bit_safety() {
        assert!(is_7bit_safe("Hello,\r\n\tindented\r\n"));
        assert!(!is_7bit_safe("Grüße\r\n"));
        assert!(!is_7bit_safe("trailing \r\n"));
        assert!(!is_7bit_safe("From me\r\n"));
        assert!(!is_7bit_safe(&format!("{}\r\n", "x".repeat(77))));
        assert!(!is_7bit_safe("bell\x07\r\n"));
    }

    #[test]
    fn quoted_printable_round_trips_and_keeps_lines_short() {
        let text = crlf_lines(&format!(
            "Grüße, Jürgen = 1 \nFrom here\n{}\n\n{}é\nend\t",
            "ä".repeat(60),
            "y".repeat(200)
        ));
        let qp = quoted_printable(&text);
        assert!(qp.is_ascii());
        for line in qp.split("\r\n") {
            assert!(line.len() <= 76, "{line:?} is {} long", line.len());
            assert!(
                !line.ends_with([' ', '\t']),
                "trailing whitespace in {line:?}"
            );
            assert!(!line.starts_with("From "), "{line:?}");
        }
        assert!(qp.contains("J=C3=BCrgen =3D 1=20\r\n"), "{qp}");
        assert!(qp.contains("\r\n=46rom here"), "{qp}");
        // A soft break right before "From " must not leave it at a line start.
        assert_eq!(unqp(&qp), text);
        let tricky = crlf_lines(&format!("{}From x", "a".repeat(75)));
        let qp = quoted_printable(&tricky);
        assert!(qp.contains("=\r\n=46rom x"), "{qp}");
        assert_eq!(unqp(&qp), tricky);
    }

    #[test]
    fn plain_subjects_fold_and_others_are_encoded_words() {
        assert_eq!(
            unstructured("Subject", "My OpenPGP key has changed"),
            "Subject: My OpenPGP key has changed\r\n"
        );
        let long = "word ".repeat(30);
        let long = long.trim_end();
        let folded = unstructured("Subject", long);
        assert!(folded.split("\r\n").all(|l| l.len() <= 76), "{folded}");
        assert_eq!(
            folded.replace("\r\n", ""),
            format!("Subject: {long}\r\n").replace("\r\n", "")
        );

        let s = unstructured(
            "Subject",
            "Mein OpenPGP-Schlüssel hat sich geändert: 🔑🔑🔑🔑🔑",
        );
        assert!(
            s.is_ascii() && s.starts_with("Subject: =?utf-8?q?Mein_OpenPGP-"),
            "{s}"
        );
        for line in s.trim_end().split("\r\n") {
            assert!(line.len() <= 76, "{line:?}");
            let word = line.trim_start().trim_start_matches("Subject: ");
            assert!(
                word.starts_with("=?utf-8?q?") && word.ends_with("?="),
                "{word}"
            );
            assert!(word.len() <= 75);
            // Every word decodes to whole UTF-8 characters.
            let payload = &word[10..word.len() - 2].replace('_', " ");
            assert!(String::from_utf8(unqp(payload).into_bytes()).is_ok());
        }
        // Text that would read as an encoded word is encoded itself.
        assert!(unstructured("Subject", "=?x?q?y?=").contains("=3D=3F"));
    }

    #[test]
    fn random_hex_is_random() {
        let a = random_hex(16).unwrap();
        assert_eq!(a.len(), 32);
        assert_ne!(a, random_hex(16).unwrap());
    }
}
