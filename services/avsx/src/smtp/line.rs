//! Command lines off the front of the read buffer. A line ends at LF; it is a command
//! only if that LF follows a CR and no other CR is in it. A bare LF or bare CR is
//! refused rather than "fixed": a server that reads `\n` as a line end where the next
//! hop does not is half of an SMTP smuggling attack. Lines longer than the limit are
//! thrown away as they arrive, so the buffer never holds more than one limit's worth.

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Line {
    /// A command, without its CRLF.
    Command(Vec<u8>),
    /// Longer than the limit (CRLF included); its bytes were discarded.
    TooLong,
    /// Ended by a bare LF, or held a bare CR.
    BareNewline,
}

#[derive(Debug)]
pub struct LineSplitter {
    /// The longest line, CRLF included.
    max: usize,
    /// Inside an over-long line whose start was thrown away.
    discarding: bool,
}

impl LineSplitter {
    pub fn new(max: usize) -> LineSplitter {
        LineSplitter {
            max,
            discarding: false,
        }
    }

    /// Takes the next line off the front of `buf`; `None` means "need more data"
    /// (`buf` then holds the start of a line, shorter than the limit).
    pub fn next(&mut self, buf: &mut Vec<u8>) -> Option<Line> {
        let Some(lf) = buf.iter().position(|&b| b == b'\n') else {
            // With no LF yet, a buffer of `max` bytes can only become a line longer
            // than `max`: drop it now instead of buffering it.
            if buf.len() >= self.max {
                buf.clear();
                self.discarding = true;
            }
            return None;
        };
        let line: Vec<u8> = buf.drain(..=lf).collect();
        if std::mem::take(&mut self.discarding) || line.len() > self.max {
            return Some(Line::TooLong);
        }
        let Some(body) = line[..lf].strip_suffix(b"\r") else {
            return Some(Line::BareNewline);
        };
        if body.contains(&b'\r') {
            return Some(Line::BareNewline);
        }
        Some(Line::Command(body.to_vec()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn all(max: usize, chunks: &[&[u8]]) -> (Vec<Line>, Vec<u8>) {
        let mut s = LineSplitter::new(max);
        let mut buf = Vec::new();
        let mut out = Vec::new();
        for c in chunks {
            buf.extend_from_slice(c);
            while let Some(l) = s.next(&mut buf) {
                out.push(l);
            }
            assert!(buf.len() < max, "buffer bounded by the limit");
        }
        (out, buf)
    }

    fn cmd(s: &str) -> Line {
        Line::Command(s.as_bytes().to_vec())
    }

    #[test]
    fn splits_pipelined_and_fragmented_lines() {
        let (lines, rest) = all(
            1000,
            &[b"EHLO a\r\nMAIL FROM:<>\r\nRC", b"PT TO:<b@c>\r", b"\nDA"],
        );
        assert_eq!(
            lines,
            [cmd("EHLO a"), cmd("MAIL FROM:<>"), cmd("RCPT TO:<b@c>")]
        );
        assert_eq!(rest, b"DA");
    }

    #[test]
    fn bare_newlines_are_refused() {
        let (lines, _) = all(1000, &[b"NOOP\nNOOP\r\nNO\rOP\r\nNOOP\r\r\n"]);
        assert_eq!(
            lines,
            [
                Line::BareNewline,
                cmd("NOOP"),
                Line::BareNewline,
                Line::BareNewline
            ]
        );
    }

    #[test]
    fn long_lines_are_dropped_as_they_come() {
        let long = vec![b'a'; 700];
        let (lines, _) = all(1000, &[&long, &long, &long, b"\r\nNOOP\r\n"]);
        assert_eq!(lines, [Line::TooLong, cmd("NOOP")]);
        // Exactly at the limit (CRLF included) is fine, one more is not.
        let ok = format!("{}\r\n", "a".repeat(998));
        let (lines, _) = all(1000, &[ok.as_bytes()]);
        assert_eq!(lines, [cmd(&ok[..998])]);
        let over = format!("{}\r\n", "a".repeat(999));
        let (lines, _) = all(1000, &[over.as_bytes()]);
        assert_eq!(lines, [Line::TooLong]);
    }
}
