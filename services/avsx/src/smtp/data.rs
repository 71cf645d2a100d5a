//! The DATA phase's receiver: bytes in, a dot-unstuffed message (or the reason it is
//! refused) out. No I/O; the caller feeds what it read until [`DataReceiver::is_done`].
//!
//! The end is `CRLF . CRLF` and nothing else (the CRLF that ended the DATA command
//! counts, so `.` right away is an empty message). `LF . CRLF`, `CR . CRLF`, `. LF`
//! never end the message: servers that accept such ends are what SMTP smuggling
//! exploits. A bare CR or LF anywhere makes the whole message refused, but only once
//! the real end has been read, so the client's next command is read in step with it.
//! Once the message is refused (bare newline, over-long line, too large) nothing more
//! is buffered; the rest is only scanned for the end.

/// Why a message is refused, in order of precedence.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Problem {
    /// A CR not followed by LF, or an LF not preceded by CR.
    BareNewline,
    /// More than the maximum message size.
    TooBig,
    /// A line longer than the maximum (CRLF included, stuffing dot not).
    LineTooLong,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// After CRLF (or at the start): a `.` here is special.
    LineStart,
    /// A `.` at the start of a line, not yet passed on.
    Dot,
    /// `.` CR at the start of a line: LF ends the message.
    DotCr,
    /// Inside a line.
    Text,
    /// A CR inside a line, not yet passed on.
    Cr,
}

#[derive(Debug)]
pub struct DataReceiver {
    max_line: usize,
    max_size: u64,
    /// What is handed on: the prefix (the Received header) and then the message.
    message: Vec<u8>,
    /// Message bytes so far (after unstuffing, without the prefix).
    size: u64,
    /// Bytes of the current line so far, without CRLF.
    line: usize,
    state: State,
    bare_newline: bool,
    too_big: bool,
    long_line: bool,
    done: bool,
}

impl DataReceiver {
    /// A receiver whose message starts with `prefix` (not counted in the size).
    pub fn new(prefix: Vec<u8>, max_size: u64, max_line: usize) -> DataReceiver {
        DataReceiver {
            max_line,
            max_size,
            message: prefix,
            size: 0,
            line: 0,
            state: State::LineStart,
            bare_newline: false,
            too_big: false,
            long_line: false,
            done: false,
        }
    }

    pub fn is_done(&self) -> bool {
        self.done
    }

    /// The message size so far (its real size, also past the limit).
    pub fn size(&self) -> u64 {
        self.size
    }

    /// Takes bytes from `input` up to the end of the message; returns how many it took
    /// (all of them unless the end was among them: the rest are the next commands).
    pub fn feed(&mut self, input: &[u8]) -> usize {
        let mut i = 0;
        while i < input.len() && !self.done {
            if self.state == State::Text {
                // Fast path: the run up to the next CR or LF is plain text.
                let run = input[i..]
                    .iter()
                    .position(|&b| b == b'\r' || b == b'\n')
                    .unwrap_or(input.len() - i);
                if run > 0 {
                    self.text(&input[i..i + run]);
                    i += run;
                    continue;
                }
            }
            self.byte(input[i]);
            i += 1;
        }
        i
    }

    fn byte(&mut self, b: u8) {
        match (self.state, b) {
            (State::LineStart, b'.') => self.state = State::Dot,
            (State::Dot, b'\r') => self.state = State::DotCr,
            (State::DotCr, b'\n') => self.done = true,
            (State::DotCr, _) => {
                // `.` CR x: the dot was stuffing (dropped); the CR is bare.
                self.bare(b'\r');
                self.in_text(b);
            }
            // Any other line starting with `.`: the dot is stuffing, dropped.
            (State::LineStart | State::Dot, _) => self.in_text(b),
            (State::Text, _) => self.in_text(b),
            (State::Cr, b'\n') => {
                self.emit(b"\r\n");
                self.line = 0;
                self.state = State::LineStart;
            }
            (State::Cr, _) => {
                self.bare(b'\r');
                self.in_text(b);
            }
        }
    }

    /// `b` as a byte inside a line.
    fn in_text(&mut self, b: u8) {
        self.state = State::Text;
        match b {
            b'\r' => self.state = State::Cr,
            b'\n' => self.bare(b'\n'),
            _ => self.text(&[b]),
        }
    }

    /// A bare CR or LF: the message is refused; it stays inside the line (only CRLF
    /// starts a new one).
    fn bare(&mut self, b: u8) {
        self.bare_newline = true;
        self.text(&[b]);
    }

    fn text(&mut self, bytes: &[u8]) {
        self.state = State::Text;
        self.line += bytes.len();
        if self.line + 2 > self.max_line {
            self.long_line = true;
        }
        self.emit(bytes);
    }

    fn emit(&mut self, bytes: &[u8]) {
        self.size += bytes.len() as u64;
        if self.size > self.max_size {
            self.too_big = true;
        }
        if self.problem().is_none() {
            self.message.extend_from_slice(bytes);
        }
    }

    pub fn problem(&self) -> Option<Problem> {
        if self.bare_newline {
            Some(Problem::BareNewline)
        } else if self.too_big {
            Some(Problem::TooBig)
        } else if self.long_line {
            Some(Problem::LineTooLong)
        } else {
            None
        }
    }

    /// The message (prefix first) once the end was read, or why it is refused.
    pub fn finish(self) -> Result<Vec<u8>, Problem> {
        match self.problem() {
            Some(p) => Err(p),
            None => Ok(self.message),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Feeds `input` in chunks of `step` bytes; returns the result and what was left.
    fn receive(input: &[u8], step: usize) -> (Option<Result<Vec<u8>, Problem>>, Vec<u8>) {
        let mut r = DataReceiver::new(b"P\r\n".to_vec(), 100, 20);
        let mut taken = 0;
        for chunk in input.chunks(step) {
            let n = r.feed(chunk);
            taken += n;
            if r.is_done() {
                break;
            }
            assert_eq!(n, chunk.len(), "everything before the end is taken");
        }
        let rest = input[taken..].to_vec();
        if r.is_done() {
            (Some(r.finish()), rest)
        } else {
            (None, rest)
        }
    }

    /// The same outcome whatever the chunking.
    fn check(input: &[u8], expect: Option<Result<&[u8], Problem>>, rest: &[u8]) {
        for step in 1..=input.len().max(1) {
            let (got, left) = receive(input, step);
            let got = got.map(|r| r.map(|m| m[3..].to_vec()));
            assert_eq!(
                got.as_ref()
                    .map(|r| r.as_ref().map(Vec::as_slice).map_err(|p| *p)),
                expect,
                "input {:?}, step {step}",
                String::from_utf8_lossy(input)
            );
            assert_eq!(left, rest, "step {step}");
        }
    }

    #[test]
    fn ends_only_at_crlf_dot_crlf() {
        check(
            b"a\r\nb\r\n.\r\nQUIT\r\n",
            Some(Ok(b"a\r\nb\r\n")),
            b"QUIT\r\n",
        );
        check(b".\r\n", Some(Ok(b"")), b"");
        check(b"\r\n.\r\n", Some(Ok(b"\r\n")), b"");
    }

    #[test]
    fn dots_are_unstuffed() {
        check(
            b"..a\r\n..\r\n.b\r\n.\r\n",
            Some(Ok(b".a\r\n.\r\nb\r\n")),
            b"",
        );
    }

    #[test]
    fn smuggling_ends_do_not_end_the_message() {
        // Each would end the message in a lax server; here they are text with a bare
        // newline, and only the real end (after them) ends it.
        for fake in [
            &b"a\n.\r\n"[..],
            b"a\r.\r\n",
            b"a\r\n.\n",
            b"a\r\n.\r",
            b"a\n.\n",
        ] {
            let mut input = fake.to_vec();
            input.extend_from_slice(b"MAIL FROM:<x@y>\r\n.\r\nNOOP\r\n");
            check(&input, Some(Err(Problem::BareNewline)), b"NOOP\r\n");
        }
    }

    #[test]
    fn bare_newlines_anywhere_are_refused() {
        check(b"a\nb\r\n.\r\n", Some(Err(Problem::BareNewline)), b"");
        check(b"a\rb\r\n.\r\n", Some(Err(Problem::BareNewline)), b"");
        check(b"\n.\r\n\r\n.\r\n", Some(Err(Problem::BareNewline)), b"");
        check(b"a\r\r\n.\r\n", Some(Err(Problem::BareNewline)), b"");
        check(b".\rx\r\n.\r\n", Some(Err(Problem::BareNewline)), b"");
    }

    #[test]
    fn unfinished_message_is_not_done() {
        check(b"a\r\n.\n", None, b"");
        check(b"a\n.\r\n", None, b"");
        check(b"\n.\r\n", None, b"");
        check(b"a\r.\r\n", None, b"");
    }

    #[test]
    fn size_and_line_limits() {
        // max_line 20: 18 octets + CRLF is fine, 19 is not; the stuffing dot is free.
        let ok = format!("{}\r\n.{}\r\n.\r\n", "a".repeat(18), ".".repeat(18));
        check(
            ok.as_bytes(),
            Some(Ok(ok[..41].replace("\r\n..", "\r\n.").as_bytes())),
            b"",
        );
        let long = format!("{}\r\n.\r\n", "a".repeat(19));
        check(long.as_bytes(), Some(Err(Problem::LineTooLong)), b"");
        // max_size 100: exactly 100 is fine.
        let line = format!("{}\r\n", "a".repeat(18));
        let exact = format!("{}.\r\n", line.repeat(5));
        check(exact.as_bytes(), Some(Ok(line.repeat(5).as_bytes())), b"");
        let big = format!("{}a\r\n.\r\n", line.repeat(5));
        check(big.as_bytes(), Some(Err(Problem::TooBig)), b"");
    }

    #[test]
    fn refused_messages_stop_buffering() {
        let mut r = DataReceiver::new(Vec::new(), 10, 1000);
        r.feed(&[b'a'; 500]);
        r.feed(b"\r\n.\r\n");
        assert!(r.is_done());
        assert_eq!(r.size(), 502);
        assert!(r.message.len() <= 10);
        assert_eq!(r.finish(), Err(Problem::TooBig));
    }
}
