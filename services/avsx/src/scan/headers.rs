//! The header section of a message, edited without touching the body: fields a sender
//! must not set are removed, avsx's verdict fields are inserted right below avsx's own
//! Received field, and a tagged Subject gets its prefix.
//!
//! The message is the one the SMTP front received: CRLF lines, avsx's Received field
//! first. Lines ending in a bare LF are still understood (a field is a field whatever
//! its line ending); what avsx adds always ends in CRLF.

use std::borrow::Cow;
use std::ops::Range;

/// RFC 5322 2.1.1: a line MUST NOT exceed 998 characters (without CRLF) ...
const MAX_LINE: usize = 998;
/// ... and SHOULD NOT exceed 78; folding aims for this.
const FOLD_AT: usize = 78;

/// A field avsx adds. The value is one line; [`fold`] wraps it when written.
#[derive(Debug, Clone, PartialEq)]
pub struct Field {
    pub name: &'static str,
    pub value: String,
}

/// Whether a sender could use a field to fake avsx's verdict: every `X-Spam-*` field
/// (SpamAssassin's names, which mail clients and the internal server's filters act on)
/// and avsx's own `X-Avsx-Unscanned`.
fn is_forgeable(name: &[u8]) -> bool {
    name.len() >= 7 && name[..7].eq_ignore_ascii_case(b"x-spam-")
        || name.eq_ignore_ascii_case(b"x-avsx-unscanned")
}

/// The header section split into fields (each with its continuation lines) and where
/// the body begins (at the empty line, which belongs to the body here; the message's
/// length if there is none).
struct Section {
    fields: Vec<Range<usize>>,
    end: usize,
}

fn section(message: &[u8]) -> Section {
    let mut fields: Vec<Range<usize>> = Vec::new();
    let mut at = 0;
    while at < message.len() {
        let line_end = message[at..]
            .iter()
            .position(|&b| b == b'\n')
            .map_or(message.len(), |i| at + i + 1);
        let line = &message[at..line_end];
        if line == b"\r\n" || line == b"\n" {
            break;
        }
        match fields.last_mut() {
            // A line starting with white space continues the field above it.
            Some(last) if line[0] == b' ' || line[0] == b'\t' => last.end = line_end,
            _ => fields.push(at..line_end),
        }
        at = line_end;
    }
    Section { fields, end: at }
}

/// The name of a field (before the colon, trailing white space dropped); empty for a
/// line without a colon.
fn name(field: &[u8]) -> &[u8] {
    let first_line = field.split(|&b| b == b'\n').next().unwrap_or_default();
    match first_line.iter().position(|&b| b == b':') {
        Some(i) => first_line[..i].trim_ascii_end(),
        None => b"",
    }
}

/// The message without `X-Spam-*` and `X-Avsx-Unscanned` fields. Borrowed unchanged
/// when there were none, which is nearly always: no copy of a large mail for nothing.
pub fn strip_forged(message: &[u8]) -> Cow<'_, [u8]> {
    let s = section(message);
    if !s
        .fields
        .iter()
        .any(|f| is_forgeable(name(&message[f.clone()])))
    {
        return Cow::Borrowed(message);
    }
    let mut out = Vec::with_capacity(message.len());
    for f in &s.fields {
        if !is_forgeable(name(&message[f.clone()])) {
            out.extend_from_slice(&message[f.clone()]);
        }
    }
    out.extend_from_slice(&message[s.end..]);
    Cow::Owned(out)
}

/// `message` with `fields` inserted right after the first Received field (avsx's own,
/// so the verdict sits next to the hop that made it; at the very top if the message has
/// no Received field) and, with `subject_tag`, the first Subject field prefixed.
///
/// A message without a Subject field stays without one: inventing a subject would put
/// words in the sender's mouth, and the X-Spam-Flag field already marks the mail.
pub fn rewrite(message: &[u8], fields: &[Field], subject_tag: Option<&str>) -> Vec<u8> {
    let s = section(message);
    let received = s
        .fields
        .iter()
        .position(|f| name(&message[f.clone()]).eq_ignore_ascii_case(b"received"));
    let subject = subject_tag.and_then(|tag| {
        let i = s
            .fields
            .iter()
            .position(|f| name(&message[f.clone()]).eq_ignore_ascii_case(b"subject"))?;
        Some((i, tag))
    });
    let added: String = fields.iter().map(|f| fold(f.name, &f.value)).collect();

    let mut out = Vec::with_capacity(message.len() + added.len() + 64);
    if received.is_none() {
        out.extend_from_slice(added.as_bytes());
    }
    for (i, f) in s.fields.iter().enumerate() {
        let field = &message[f.clone()];
        match subject {
            Some((at, tag)) if at == i => out.extend_from_slice(&tag_subject(field, tag)),
            _ => out.extend_from_slice(field),
        }
        if received == Some(i) {
            out.extend_from_slice(added.as_bytes());
        }
    }
    out.extend_from_slice(&message[s.end..]);
    out
}

/// `Subject: hello` -> `Subject: [SPAM] hello`; unchanged if it already starts with the
/// tag (a mail tagged before, e.g. forwarded back in), so tags do not pile up.
fn tag_subject(field: &[u8], tag: &str) -> Vec<u8> {
    let colon = field.iter().position(|&b| b == b':').map_or(0, |i| i + 1);
    let text_at = colon
        + field[colon..]
            .iter()
            .take_while(|&&b| b == b' ' || b == b'\t')
            .count();
    let text = &field[text_at..];
    if text.starts_with(tag.as_bytes()) {
        return field.to_vec();
    }
    let first_line_len = text.iter().position(|&b| b == b'\r' || b == b'\n');
    let mut out = b"Subject: ".to_vec();
    out.extend_from_slice(tag.as_bytes());
    match first_line_len {
        // Nothing on the first line (empty, or folded right after the colon).
        Some(0) => {}
        // The tag would push a line that was legal past 998: fold after the tag.
        Some(n) if 9 + tag.len() + 1 + n > MAX_LINE && text_at + n <= MAX_LINE => {
            out.extend_from_slice(b"\r\n ");
        }
        _ => out.push(b' '),
    }
    out.extend_from_slice(text);
    out
}

/// `name: value` as header lines ending in CRLF, folded (RFC 5322 2.2.3) at spaces and
/// after commas so lines stay within 78 characters where the words allow and within 998
/// always (values are built from short words: see [`clean`]). A fold after a comma
/// inserts CRLF TAB, as SpamAssassin does in its `tests=` list.
pub fn fold(name: &str, value: &str) -> String {
    let mut out = format!("{name}:");
    let mut line = out.len();
    let mut first = true;
    for word in value.split(' ').filter(|w| !w.is_empty()) {
        for (j, part) in word.split_inclusive(',').enumerate() {
            let space = j == 0;
            let needed = usize::from(space) + part.len();
            if !first && line + needed > FOLD_AT {
                out.push_str(if space { "\r\n " } else { "\r\n\t" });
                line = 1;
            } else if space {
                out.push(' ');
                line += 1;
            }
            out.push_str(part);
            line += part.len();
            first = false;
        }
    }
    out.push_str("\r\n");
    out
}

/// Text from elsewhere (an error, a virus name) made fit for a header value: one line of
/// printable ASCII, runs of white space as one space, at most `max` characters; so what
/// a scanner or a peer says can neither inject a field nor break the line limit.
pub fn clean(text: &str, max: usize) -> String {
    let mut out = String::new();
    for word in text.split(|c: char| c.is_whitespace() || c.is_control()) {
        if word.is_empty() {
            continue;
        }
        if !out.is_empty() {
            out.push(' ');
        }
        out.extend(
            word.chars()
                .map(|c| if c.is_ascii_graphic() { c } else { '?' }),
        );
    }
    if out.len() > max {
        // All ASCII: any byte index is a char boundary.
        out.truncate(max.saturating_sub(3));
        out.push_str("...");
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const MAIL: &[u8] =
        b"Received: from a by mx1.example.org\r\n\twith ESMTP id 1; Fri, 21 Nov 2025\r\n\
From: a@example.com\r\nSubject: hello\r\n\r\nbody\r\nX-Spam-Flag: YES\r\n";

    fn lines_ok(text: &[u8]) {
        for line in text.split(|&b| b == b'\n') {
            assert!(line.len() <= MAX_LINE + 1, "line too long: {}", line.len());
        }
    }

    #[test]
    fn inserts_after_the_first_received_field() {
        let f = [Field {
            name: "X-Spam-Status",
            value: "No, score=0.1 required=4.5".into(),
        }];
        let out = rewrite(MAIL, &f, None);
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "Received: from a by mx1.example.org\r\n\twith ESMTP id 1; Fri, 21 Nov 2025\r\n\
X-Spam-Status: No, score=0.1 required=4.5\r\n\
From: a@example.com\r\nSubject: hello\r\n\r\nbody\r\nX-Spam-Flag: YES\r\n"
        );
    }

    #[test]
    fn inserts_at_the_top_without_received() {
        let f = [Field {
            name: "X-A",
            value: "b".into(),
        }];
        let out = rewrite(b"Subject: x\r\n\r\nbody\r\n", &f, Some("[SPAM]"));
        assert_eq!(out, b"X-A: b\r\nSubject: [SPAM] x\r\n\r\nbody\r\n");
    }

    #[test]
    fn strips_forged_fields_in_the_header_only() {
        let mail = b"Received: x\r\nX-Spam-Flag: YES\r\nx-spam-status: Yes,\r\n\tscore=99\r\n\
X-Avsx-Unscanned: none\r\nX-Spamming: kept\r\nSubject: s\r\n\r\nX-Spam-Flag: YES\r\n";
        let out = strip_forged(mail);
        assert_eq!(
            &*out,
            b"Received: x\r\nX-Spamming: kept\r\nSubject: s\r\n\r\nX-Spam-Flag: YES\r\n"
        );
        assert!(matches!(strip_forged(MAIL), Cow::Borrowed(_)));
    }

    #[test]
    fn header_only_message() {
        let out = strip_forged(b"Received: x\r\nX-Spam-Score: 1\r\n");
        assert_eq!(&*out, b"Received: x\r\n");
        let f = [Field {
            name: "X-A",
            value: "b".into(),
        }];
        assert_eq!(
            rewrite(b"Received: x\r\n", &f, None),
            b"Received: x\r\nX-A: b\r\n"
        );
    }

    #[test]
    fn subject_tagging() {
        let tag = |s: &[u8]| String::from_utf8(tag_subject(s, "[SPAM]")).unwrap();
        assert_eq!(tag(b"Subject: hi\r\n"), "Subject: [SPAM] hi\r\n");
        assert_eq!(tag(b"subject:hi\r\n"), "Subject: [SPAM] hi\r\n");
        assert_eq!(tag(b"Subject: [SPAM] hi\r\n"), "Subject: [SPAM] hi\r\n");
        assert_eq!(tag(b"Subject:\r\n"), "Subject: [SPAM]\r\n");
        assert_eq!(
            tag(b"Subject:\r\n folded\r\n"),
            "Subject: [SPAM]\r\n folded\r\n"
        );
        assert_eq!(
            tag(b"Subject: =?UTF-8?B?w6Q=?=\r\n more\r\n"),
            "Subject: [SPAM] =?UTF-8?B?w6Q=?=\r\n more\r\n"
        );
        // A 994-character subject line stays legal: the tag goes on a line of its own.
        let long = format!("Subject: {}\r\n", "x".repeat(985));
        let out = tag(long.as_bytes());
        assert!(out.starts_with("Subject: [SPAM]\r\n xxx"));
        lines_ok(out.as_bytes());
        // Without a Subject field, none is added.
        let out = rewrite(b"Received: x\r\n\r\nb\r\n", &[], Some("[SPAM]"));
        assert_eq!(out, b"Received: x\r\n\r\nb\r\n");
    }

    #[test]
    fn folds_long_values() {
        let rules: Vec<String> = (0..200).map(|i| format!("SOME_RULE_NAME_{i}")).collect();
        let value = format!("Yes, score=15.3 required=4.5 tests={}", rules.join(","));
        let out = fold("X-Spam-Status", &value);
        assert!(out.ends_with("\r\n"));
        for line in out.trim_end().split("\r\n") {
            assert!(line.len() <= FOLD_AT, "{line:?}");
        }
        // Unfolding gives the value back, with a tab after the commas folded at.
        let unfolded = out.trim_end().replace("\r\n", "");
        assert_eq!(
            unfolded.replace(",\t", ","),
            format!("X-Spam-Status: {value}")
        );
        assert_eq!(fold("X-A", "short"), "X-A: short\r\n");
    }

    #[test]
    fn cleans_foreign_text() {
        assert_eq!(
            clean("bad\r\nX-Injected: 1\t\0 ü", 100),
            "bad X-Injected: 1 ?"
        );
        assert_eq!(clean(&"a".repeat(50), 10), "aaaaaaa...");
    }
}
