//! SMTP STARTTLS (RFC 3207) before the TLS handshake: greeting, EHLO, STARTTLS.
//!
//! [`ReplyReader`] is the sans-io part (bytes in, complete multi-line replies out);
//! [`smtp`] drives it over a socket. Lines and replies are bounded so a hostile server
//! cannot make the probe buffer without end.

use std::io::{Read, Write};

/// The longest reply line accepted (RFC 5321 allows 512; servers are generous).
const MAX_LINE: usize = 4096;
/// The most lines one reply may have (an EHLO reply lists one extension a line).
const MAX_LINES: usize = 100;

/// The name the probe gives in EHLO. `.invalid` cannot belong to anyone (RFC 2606).
const EHLO_NAME: &str = "tlsaudit.invalid";

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum StarttlsError {
    /// The server answered a stage with a non-success code, e.g. a 421 greeting.
    #[error("SMTP server refused at {stage}: {reply}")]
    Refused { stage: &'static str, reply: String },
    #[error("SMTP server does not offer STARTTLS (EHLO reply: {0})")]
    NotOffered(String),
    #[error("not an SMTP reply: {0:?}")]
    Malformed(String),
    #[error("SMTP server closed the connection at {0}")]
    Closed(&'static str),
    #[error("unsupported STARTTLS protocol {0:?} (only \"smtp\")")]
    Unsupported(String),
}

/// One complete SMTP reply.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SmtpReply {
    pub code: u16,
    /// The text of each line, without code and separator.
    pub lines: Vec<String>,
}

impl SmtpReply {
    /// The reply as the server sent it, one line, for error messages.
    pub fn summary(&self) -> String {
        format!("{} {}", self.code, self.lines.join(" / "))
    }
}

/// Collects the lines of one (possibly multi-line, `250-...`) reply.
#[derive(Debug, Default)]
pub struct ReplyReader {
    pending: Vec<u8>,
    lines: Vec<String>,
    code: Option<u16>,
}

impl ReplyReader {
    /// Takes bytes; returns the reply once its last line (`ddd ` or `ddd` alone) came.
    /// Bytes after that line stay buffered for [`ReplyReader::next_reply`].
    pub fn feed(&mut self, data: &[u8]) -> Result<Option<SmtpReply>, StarttlsError> {
        self.pending.extend_from_slice(data);
        self.next_reply()
    }

    /// Takes the next reply from bytes already buffered.
    pub fn next_reply(&mut self) -> Result<Option<SmtpReply>, StarttlsError> {
        while let Some(end) = self.pending.iter().position(|&b| b == b'\n') {
            let raw: Vec<u8> = self.pending.drain(..=end).collect();
            let line = String::from_utf8_lossy(&raw)
                .trim_end_matches(['\r', '\n'])
                .to_owned();
            let bytes = line.as_bytes();
            let code = line
                .get(..3)
                .filter(|c| c.bytes().all(|b| b.is_ascii_digit()))
                .and_then(|c| c.parse::<u16>().ok())
                .ok_or_else(|| StarttlsError::Malformed(line.clone()))?;
            if self.code.is_some_and(|c| c != code) {
                return Err(StarttlsError::Malformed(line));
            }
            self.code = Some(code);
            let last = match bytes.get(3) {
                None | Some(b' ') => true,
                Some(b'-') => false,
                Some(_) => return Err(StarttlsError::Malformed(line)),
            };
            self.lines.push(line.get(4..).unwrap_or("").to_owned());
            if last {
                self.code = None;
                return Ok(Some(SmtpReply {
                    code,
                    lines: std::mem::take(&mut self.lines),
                }));
            }
            if self.lines.len() > MAX_LINES {
                return Err(StarttlsError::Malformed(format!(
                    "reply of more than {MAX_LINES} lines"
                )));
            }
        }
        if self.pending.len() > MAX_LINE {
            return Err(StarttlsError::Malformed(format!(
                "line longer than {MAX_LINE} bytes"
            )));
        }
        Ok(None)
    }
}

/// Runs the SMTP dialogue up to the point where TLS starts. `S` is the socket, whose
/// timeouts the caller sets; an I/O error (timeout included) comes back unchanged.
pub fn smtp<S: Read + Write>(stream: &mut S) -> Result<Result<(), StarttlsError>, std::io::Error> {
    let mut reader = ReplyReader::default();
    let greeting = match read_reply(stream, &mut reader, "greeting")? {
        Ok(r) => r,
        Err(e) => return Ok(Err(e)),
    };
    // 4xx/5xx greetings (421 busy, 554 no service) end the audit with the server's words.
    if greeting.code != 220 {
        return Ok(Err(StarttlsError::Refused {
            stage: "greeting",
            reply: greeting.summary(),
        }));
    }
    stream.write_all(format!("EHLO {EHLO_NAME}\r\n").as_bytes())?;
    let ehlo = match read_reply(stream, &mut reader, "EHLO")? {
        Ok(r) => r,
        Err(e) => return Ok(Err(e)),
    };
    if ehlo.code != 250 {
        return Ok(Err(StarttlsError::Refused {
            stage: "EHLO",
            reply: ehlo.summary(),
        }));
    }
    let offered = ehlo.lines.iter().skip(1).any(|l| {
        l.split_whitespace()
            .next()
            .is_some_and(|k| k.eq_ignore_ascii_case("STARTTLS"))
    });
    if !offered {
        return Ok(Err(StarttlsError::NotOffered(ehlo.summary())));
    }
    stream.write_all(b"STARTTLS\r\n")?;
    let go = match read_reply(stream, &mut reader, "STARTTLS")? {
        Ok(r) => r,
        Err(e) => return Ok(Err(e)),
    };
    if go.code != 220 {
        return Ok(Err(StarttlsError::Refused {
            stage: "STARTTLS",
            reply: go.summary(),
        }));
    }
    Ok(Ok(()))
}

fn read_reply<S: Read>(
    stream: &mut S,
    reader: &mut ReplyReader,
    stage: &'static str,
) -> Result<Result<SmtpReply, StarttlsError>, std::io::Error> {
    match reader.next_reply() {
        Ok(Some(r)) => return Ok(Ok(r)),
        Ok(None) => {}
        Err(e) => return Ok(Err(e)),
    }
    let mut buf = [0u8; 2048];
    loop {
        let n = stream.read(&mut buf)?;
        if n == 0 {
            return Ok(Err(StarttlsError::Closed(stage)));
        }
        match reader.feed(&buf[..n]) {
            Ok(Some(r)) => return Ok(Ok(r)),
            Ok(None) => {}
            Err(e) => return Ok(Err(e)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A scripted server: what it sends, and what the client wrote.
    struct Script {
        input: std::io::Cursor<Vec<u8>>,
        output: Vec<u8>,
    }

    impl Read for Script {
        fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
            // At most 5 bytes a read, to split lines across reads.
            let n = buf.len().min(5);
            self.input.read(&mut buf[..n])
        }
    }

    impl Write for Script {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.output.extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    fn run(server: &str) -> (Result<(), StarttlsError>, String) {
        let mut s = Script {
            input: std::io::Cursor::new(server.as_bytes().to_vec()),
            output: Vec::new(),
        };
        let r = smtp(&mut s).expect("no I/O error");
        (r, String::from_utf8(s.output).unwrap())
    }

    #[test]
    fn multi_line_greeting_and_ehlo_then_starttls() {
        let (r, sent) = run("220-mx.example ESMTP\r\n220-second line\r\n220 last\r\n\
             250-mx.example\r\n250-PIPELINING\r\n250-STARTTLS\r\n250 8BITMIME\r\n\
             220 2.0.0 Ready to start TLS\r\n");
        assert_eq!(r, Ok(()));
        assert_eq!(sent, "EHLO tlsaudit.invalid\r\nSTARTTLS\r\n");
    }

    #[test]
    fn busy_greeting_is_a_clear_error() {
        let (r, sent) = run("421-mx.example busy\r\n421 try later\r\n");
        let e = r.unwrap_err();
        assert!(
            e.to_string().contains("421 mx.example busy / try later"),
            "{e}"
        );
        assert_eq!(sent, "");
    }

    #[test]
    fn missing_starttls_and_garbage() {
        let (r, _) = run("220 mx\r\n250-mx\r\n250 SIZE 1000\r\n");
        assert!(matches!(r, Err(StarttlsError::NotOffered(_))));
        let (r, _) = run("HTTP/1.1 400 Bad Request\r\n");
        assert!(matches!(r, Err(StarttlsError::Malformed(_))));
        let (r, _) = run("220 mx\r\n");
        assert_eq!(r, Err(StarttlsError::Closed("EHLO")));
        let mut reader = ReplyReader::default();
        assert!(reader.feed(&[b'2'; MAX_LINE + 1]).is_err());
    }
}
