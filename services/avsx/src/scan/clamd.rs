//! A clamd client: the message goes over the socket with `INSTREAM`, so clamd needs no
//! access to avsx's files and may run on another host.
//!
//! No crate fits well enough to depend on: `clamav-client` (tokio feature) does
//! INSTREAM over TCP and Unix sockets, but hands back clamd's raw answer for the caller
//! to parse, so the parser would be ours anyway; the exchange is forty lines more, and
//! owning it keeps the timeout, the answer-size limit and the error context (address,
//! which step failed, what clamd said after a refused write) in one place. From
//! clamd(8), checked against the real daemon:
//!
//! ```text
//! > zINSTREAM\0
//! > <u32 big-endian length><data> ...  chunks, each at most StreamMaxLength
//! > <0u32>                             end of stream
//! < stream: OK\0
//! < stream: Eicar-Test-Signature.UNOFFICIAL FOUND\0
//! < INSTREAM size limit exceeded. ERROR\0     (and clamd closes)
//! ```
//!
//! The `z` prefix asks for NUL-terminated answers, so the end of an answer is a byte,
//! not a guess. [`parse`] reads answers without I/O; [`Client`] owns the socket.

use std::time::Duration;

use tokio::io::AsyncWriteExt;

use super::verdict::Virus;
use super::{Address, Problem, quote, read_answer};

/// Small enough for any StreamMaxLength, large enough that the framing costs nothing.
const CHUNK: usize = 64 << 10;
/// clamd's answers are one short line; a signature name is well under 200 bytes.
const MAX_ANSWER: usize = 4096;

/// Why clamd's answer gives no verdict.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ReplyError {
    /// clamd could not scan, e.g. `INSTREAM size limit exceeded. ERROR`.
    #[error("clamd reported {0:?}")]
    Scanner(String),
    #[error("malformed answer: {0}")]
    Malformed(String),
    #[error("connection closed after {got} bytes, before a complete answer: {quoted}")]
    Truncated { got: usize, quoted: String },
}

/// The answer in `buf` (everything received so far): `Ok(None)` until its NUL arrives.
pub fn parse(buf: &[u8], eof: bool) -> Result<Option<Virus>, ReplyError> {
    let Some(end) = buf.iter().position(|&b| b == 0) else {
        return if eof {
            Err(ReplyError::Truncated {
                got: buf.len(),
                quoted: quote(buf),
            })
        } else {
            Ok(None)
        };
    };
    let line = &buf[..end];
    let malformed = || ReplyError::Malformed(quote(line));
    let text = std::str::from_utf8(line).map_err(|_| malformed())?;
    if text.ends_with(" ERROR") {
        return Err(ReplyError::Scanner(text.to_owned()));
    }
    // clamd names the stream `stream`; older versions `stream(<peer>)`.
    let (name, result) = text.split_once(": ").ok_or_else(malformed)?;
    if !name.starts_with("stream") {
        return Err(malformed());
    }
    if result == "OK" {
        return Ok(Some(Virus::Clean));
    }
    match result.strip_suffix(" FOUND") {
        Some(sig)
            if !sig.is_empty()
                && sig.len() <= 200
                && sig.bytes().all(|b| b.is_ascii_graphic() || b == b' ') =>
        {
            Ok(Some(Virus::Found(sig.to_owned())))
        }
        _ => Err(malformed()),
    }
}

/// clamd at one address.
#[derive(Debug, Clone)]
pub struct Client {
    pub address: Address,
    pub timeout: Duration,
}

impl Client {
    /// Scans `message`: connect, stream, read the answer, all within the timeout.
    pub async fn scan(&self, message: &[u8]) -> Result<Virus, Problem> {
        tokio::time::timeout(self.timeout, self.exchange(message))
            .await
            .unwrap_or(Err(Problem::Timeout(self.timeout)))
    }

    async fn exchange(&self, message: &[u8]) -> Result<Virus, Problem> {
        let mut conn = self.address.connect().await.map_err(Problem::Connect)?;
        let sent = async {
            conn.write_all(b"zINSTREAM\0").await?;
            for chunk in message.chunks(CHUNK) {
                // chunks() never yields more than CHUNK bytes, which fits a u32.
                conn.write_all(&(chunk.len() as u32).to_be_bytes()).await?;
                conn.write_all(chunk).await?;
            }
            conn.write_all(&0u32.to_be_bytes()).await?;
            conn.flush().await
        }
        .await;
        match sent {
            Ok(()) => read_answer(&mut conn, MAX_ANSWER, parse).await,
            // clamd answers and closes as soon as the stream passes StreamMaxLength;
            // that answer says more than the broken pipe.
            Err(e) => match read_answer(&mut conn, MAX_ANSWER, parse).await {
                Err(answered @ Problem::Clamd(ReplyError::Scanner(_))) => Err(answered),
                _ => Err(Problem::Send(e)),
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_real_answers() {
        assert_eq!(parse(b"stream: OK\0", false), Ok(Some(Virus::Clean)));
        assert_eq!(
            parse(b"stream: Eicar-Test-Signature.UNOFFICIAL FOUND\0", false),
            Ok(Some(Virus::Found("Eicar-Test-Signature.UNOFFICIAL".into())))
        );
        assert_eq!(
            parse(
                b"stream(127.0.0.1@4242): Win.Test.EICAR_HDB-1 FOUND\0",
                true
            ),
            Ok(Some(Virus::Found("Win.Test.EICAR_HDB-1".into())))
        );
        assert_eq!(
            parse(b"INSTREAM size limit exceeded. ERROR\0", true),
            Err(ReplyError::Scanner(
                "INSTREAM size limit exceeded. ERROR".into()
            ))
        );
    }

    #[test]
    fn waits_for_the_nul() {
        let answer = b"stream: OK\0";
        for n in 0..answer.len() {
            assert_eq!(parse(&answer[..n], false), Ok(None));
            assert!(matches!(
                parse(&answer[..n], true),
                Err(ReplyError::Truncated { .. })
            ));
        }
    }

    #[test]
    fn malformed_answers() {
        for case in [
            &b"UNKNOWN COMMAND\0"[..],
            b"stream: \0",
            b"stream:  FOUND\0",
            b"stream: Bad\r\nName FOUND\0",
            b"PONG\0",
            b"stream: maybe\0",
            b"\xff\xfe\0",
        ] {
            assert!(
                matches!(parse(case, true), Err(ReplyError::Malformed(_))),
                "{:?}",
                String::from_utf8_lossy(case)
            );
        }
    }
}
