//! A SPAMC/1.5 client for SpamAssassin's spamd: one `SYMBOLS` request per message,
//! which gives the score and the names of the rules that hit in one answer.
//!
//! No crate fits: no Rust SPAMC client turned up (`rspamd-client` speaks rspamd's HTTP
//! protocol, not spamd's), and the protocol is a few lines of text, written here.
//!
//! The exchange, as spamd 4 implements it (`spamd/PROTOCOL`, and `/usr/sbin/spamd`
//! itself), checked against the real daemon:
//!
//! ```text
//! > SYMBOLS SPAMC/1.5\r\n
//! > Content-length: 1234\r\n
//! > User: avsx\r\n
//! > \r\n
//! > <message>                          then avsx half-closes (see below)
//! < SPAMD/1.1 0 EX_OK\r\n
//! < Content-length: 43\r\n
//! < Spam: True ; 1000.0 / 5.0\r\n
//! < \r\n
//! < GTUBE,MSGID_SHORT,NO_RELAYS        no line end; then spamd closes
//! ```
//!
//! Errors are one status line, e.g. `SPAMD/1.0 76 Bad header line: ...` or
//! `SPAMD/1.0 79 Timeout: ...`, then spamd closes. spamd reads the message line by line
//! and checks the length only after each line, so a message not ending in a line break
//! leaves it waiting for one: the half-close (shutdown of our sending side) ends that wait.
//!
//! [`parse`] is the answer's parser without I/O; [`Client`] owns the socket.

use std::time::Duration;

use tokio::io::AsyncWriteExt;

use super::verdict::Spam;
use super::{Address, Problem, quote, read_answer};

/// spamd's SYMBOLS answer is a status line, two header lines and the rule names; 64 KiB
/// is far more than any real answer and bounds what a broken peer can make us buffer.
const MAX_ANSWER: usize = 64 << 10;
/// A rule name longer than this is not SpamAssassin's (its names are short identifiers).
const MAX_RULE: usize = 128;

/// Why spamd's answer gives no verdict.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ReplyError {
    /// spamd answered, with a non-zero status (EX_* codes from sysexits.h).
    #[error("spamd answered status {code}: {text:?}")]
    Status { code: u32, text: String },
    #[error("malformed answer: {0}")]
    Malformed(String),
    #[error("connection closed after {got} bytes, before a complete answer: {quoted}")]
    Truncated { got: usize, quoted: String },
}

/// The answer in `buf` (everything received so far): `Ok(None)` while more is needed,
/// the verdict once it is complete. With `eof` (spamd closed the connection) an
/// incomplete answer is an error.
pub fn parse(buf: &[u8], eof: bool) -> Result<Option<Spam>, ReplyError> {
    let truncated = || {
        Err(ReplyError::Truncated {
            got: buf.len(),
            quoted: quote(buf),
        })
    };
    let Some(status_end) = find(buf, b"\n") else {
        if buf.len() > 1024 || (!buf.is_empty() && !b"SPAMD/".starts_with(&buf[..buf.len().min(6)]))
        {
            return Err(ReplyError::Malformed(format!(
                "expected a SPAMD/ status line, got {}",
                quote(buf)
            )));
        }
        return if eof { truncated() } else { Ok(None) };
    };
    status(trim_cr(&buf[..status_end]))?;

    // Header lines up to an empty line.
    let mut at = status_end + 1;
    let mut length = None;
    let mut spam = None;
    loop {
        let Some(end) = find(&buf[at..], b"\n") else {
            return if eof { truncated() } else { Ok(None) };
        };
        let line = trim_cr(&buf[at..at + end]);
        at += end + 1;
        if line.is_empty() {
            break;
        }
        let line = std::str::from_utf8(line)
            .map_err(|_| ReplyError::Malformed(format!("header line {}", quote(line))))?;
        let Some((name, value)) = line.split_once(':') else {
            return Err(ReplyError::Malformed(format!(
                "header line without a colon: {line:?}"
            )));
        };
        let value = value.trim();
        if name.eq_ignore_ascii_case("content-length") {
            let n: usize = value.parse().map_err(|_| {
                ReplyError::Malformed(format!("Content-length is not a number: {value:?}"))
            })?;
            if n > MAX_ANSWER {
                return Err(ReplyError::Malformed(format!(
                    "Content-length {n} is over the {MAX_ANSWER}-byte limit"
                )));
            }
            length = Some(n);
        } else if name.eq_ignore_ascii_case("spam") {
            spam = Some(spam_header(value)?);
        }
        // Other headers: none in SPAMC/1.5 answers; ignored if a later spamd adds some.
    }
    let Some(score) = spam else {
        return Err(ReplyError::Malformed(
            "no Spam header in the answer".to_owned(),
        ));
    };

    let body = &buf[at..];
    let body = match length {
        Some(n) if body.len() >= n => &body[..n],
        // Without Content-length (older spamd) the body ends when spamd closes.
        Some(_) | None if !eof => return Ok(None),
        Some(_) => return truncated(),
        None => body,
    };
    Ok(Some(Spam {
        score,
        rules: rules(body)?,
    }))
}

fn find(buf: &[u8], needle: &[u8]) -> Option<usize> {
    buf.windows(needle.len()).position(|w| w == needle)
}

fn trim_cr(line: &[u8]) -> &[u8] {
    line.strip_suffix(b"\r").unwrap_or(line)
}

/// `SPAMD/1.1 0 EX_OK`: anything but status 0 is spamd refusing the request.
fn status(line: &[u8]) -> Result<(), ReplyError> {
    let malformed = || ReplyError::Malformed(format!("status line {}", quote(line)));
    let text = std::str::from_utf8(line).map_err(|_| malformed())?;
    let rest = text.strip_prefix("SPAMD/").ok_or_else(malformed)?;
    let mut parts = rest.splitn(3, ' ');
    let version = parts.next().unwrap_or_default();
    if version.is_empty() || !version.bytes().all(|b| b.is_ascii_digit() || b == b'.') {
        return Err(malformed());
    }
    let code: u32 = parts
        .next()
        .and_then(|c| c.parse().ok())
        .ok_or_else(malformed)?;
    let message = parts.next().unwrap_or_default();
    if code != 0 {
        return Err(ReplyError::Status {
            code,
            text: message.to_owned(),
        });
    }
    Ok(())
}

/// `True ; 15.3 / 5.0` -> 15.3. spamd's own verdict (True/False, against its own
/// threshold) is not used: avsx has its own levels.
fn spam_header(value: &str) -> Result<f64, ReplyError> {
    let malformed = || {
        ReplyError::Malformed(format!(
            "expected `Spam: True|False ; SCORE / THRESHOLD`, got {value:?}"
        ))
    };
    let (flag, numbers) = value.split_once(';').ok_or_else(malformed)?;
    if !["true", "false", "yes", "no"]
        .iter()
        .any(|f| flag.trim().eq_ignore_ascii_case(f))
    {
        return Err(malformed());
    }
    let (score, threshold) = numbers.split_once('/').ok_or_else(malformed)?;
    let score: f64 = score.trim().parse().map_err(|_| malformed())?;
    let threshold: f64 = threshold.trim().parse().map_err(|_| malformed())?;
    if !score.is_finite() || !threshold.is_finite() {
        return Err(malformed());
    }
    Ok(score)
}

/// `RULE1,RULE2`: names of printable ASCII, none too long, since they go into a header.
fn rules(body: &[u8]) -> Result<Vec<String>, ReplyError> {
    let text = std::str::from_utf8(body)
        .map_err(|_| ReplyError::Malformed(format!("rule names {}", quote(body))))?;
    text.split(',')
        .map(str::trim)
        .filter(|r| !r.is_empty())
        .map(|r| {
            if r.len() <= MAX_RULE && r.bytes().all(|b| b.is_ascii_graphic()) {
                Ok(r.to_owned())
            } else {
                Err(ReplyError::Malformed(format!(
                    "rule name {}",
                    quote(r.as_bytes())
                )))
            }
        })
        .collect()
}

/// spamd at one address.
#[derive(Debug, Clone)]
pub struct Client {
    pub address: Address,
    pub timeout: Duration,
}

impl Client {
    /// Scores `message`: connect, send, read the answer, all within the timeout.
    pub async fn check(&self, message: &[u8]) -> Result<Spam, Problem> {
        tokio::time::timeout(self.timeout, self.exchange(message))
            .await
            .unwrap_or(Err(Problem::Timeout(self.timeout)))
    }

    async fn exchange(&self, message: &[u8]) -> Result<Spam, Problem> {
        let mut conn = self.address.connect().await.map_err(Problem::Connect)?;
        let head = format!(
            "SYMBOLS SPAMC/1.5\r\nContent-length: {}\r\nUser: avsx\r\n\r\n",
            message.len()
        );
        let sent = async {
            conn.write_all(head.as_bytes()).await?;
            conn.write_all(message).await?;
            conn.shutdown().await
        }
        .await;
        match sent {
            Ok(()) => read_answer(&mut conn, MAX_ANSWER, parse).await,
            // spamd may have answered (an error status) and closed before taking it all;
            // its answer says more than the broken pipe.
            Err(e) => match read_answer(&mut conn, MAX_ANSWER, parse).await {
                Ok(_)
                | Err(Problem::Receive(_))
                | Err(Problem::Spamd(ReplyError::Truncated { .. })) => Err(Problem::Send(e)),
                Err(answered) => Err(answered),
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const GTUBE: &[u8] =
        b"SPAMD/1.1 0 EX_OK\r\nContent-length: 43\r\nSpam: True ; 1000.0 / 5.0\r\n\r\n\
GTUBE,MSGID_SHORT,NO_RELAYS,TVD_SPACE_RATIO";

    #[test]
    fn parses_the_real_answers() {
        let v = parse(GTUBE, false).unwrap().unwrap();
        assert_eq!(v.score, 1000.0);
        assert_eq!(
            v.rules,
            ["GTUBE", "MSGID_SHORT", "NO_RELAYS", "TVD_SPACE_RATIO"]
        );
        let ham = b"SPAMD/1.1 0 EX_OK\r\nContent-length: 33\r\nSpam: False ; -0.0 / 5.0\r\n\r\n\
MSGID_SHORT,NO_RECEIVED,NO_RELAYS";
        let v = parse(ham, true).unwrap().unwrap();
        assert_eq!(v.score, 0.0);
        assert_eq!(v.rules.len(), 3);
        let none = b"SPAMD/1.1 0 EX_OK\r\nContent-length: 0\r\nSpam: False ; 0.1 / 5.0\r\n\r\n";
        assert_eq!(
            parse(none, false).unwrap().unwrap().rules,
            Vec::<String>::new()
        );
    }

    #[test]
    fn waits_for_the_whole_answer() {
        for n in 0..GTUBE.len() {
            assert_eq!(parse(&GTUBE[..n], false), Ok(None), "after {n} bytes");
            assert!(
                matches!(parse(&GTUBE[..n], true), Err(ReplyError::Truncated { .. })),
                "cut at {n} bytes"
            );
        }
        // Without Content-length, the body ends at EOF.
        let old = b"SPAMD/1.1 0 EX_OK\r\nSpam: True ; 20.0 / 5.0\r\n\r\nA,B\r\n";
        assert_eq!(parse(old, false), Ok(None));
        assert_eq!(parse(old, true).unwrap().unwrap().rules, ["A", "B"]);
    }

    #[test]
    fn error_statuses() {
        let e = parse(b"SPAMD/1.0 76 Bad header line: BOGUS SPAMC/1.5\r\n", false);
        assert_eq!(
            e,
            Err(ReplyError::Status {
                code: 76,
                text: "Bad header line: BOGUS SPAMC/1.5".into()
            })
        );
        let e = parse(b"SPAMD/1.0 79 Timeout: (300 second timeout)\r\n", true).unwrap_err();
        assert!(e.to_string().contains("status 79"), "{e}");
    }

    #[test]
    fn malformed_answers() {
        let cases: &[&[u8]] = &[
            b"HTTP/1.1 200 OK\r\n\r\n",
            b"garbage",
            b"SPAMD/1.1 zero EX_OK\r\n",
            b"SPAMD/x 0 EX_OK\r\n",
            b"SPAMD/1.1 0 EX_OK\r\nContent-length: 3\r\n\r\nA,B",
            b"SPAMD/1.1 0 EX_OK\r\nSpam: Maybe ; 1 / 5\r\n\r\n",
            b"SPAMD/1.1 0 EX_OK\r\nSpam: True ; NaN / 5.0\r\n\r\n",
            b"SPAMD/1.1 0 EX_OK\r\nSpam: True ; 1.0\r\n\r\n",
            b"SPAMD/1.1 0 EX_OK\r\nContent-length: many\r\n",
            b"SPAMD/1.1 0 EX_OK\r\nContent-length: 99999999\r\n",
            b"SPAMD/1.1 0 EX_OK\r\nno colon here\r\n",
            b"SPAMD/1.1 0 EX_OK\r\nContent-length: 7\r\nSpam: True ; 9.0 / 5.0\r\n\r\nA\r\nX: B",
        ];
        for case in cases {
            let r = parse(case, true);
            assert!(
                matches!(r, Err(ReplyError::Malformed(_))),
                "{:?}: {r:?}",
                String::from_utf8_lossy(case)
            );
        }
        // Garbage is recognised before the peer closes.
        assert!(matches!(
            parse(b"220 smtp ready", false),
            Err(ReplyError::Malformed(_))
        ));
        assert!(matches!(
            parse(&[b'S'; 2000], false),
            Err(ReplyError::Malformed(_))
        ));
    }
}
