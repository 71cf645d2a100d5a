//! What the SMTP front hands to the rest of avsx, and what it gets back: the envelope
//! of a transaction, the reply to give the client, and the [`Backend`] that decides
//! recipients and messages. The SMTP code knows nothing of LDAP, scanners or relays;
//! the daemon's backend knows nothing of SMTP syntax.

use std::fmt;
use std::net::SocketAddr;

/// An SMTP reply: code, enhanced status code (RFC 3463) and text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reply {
    pub code: u16,
    /// `"2.1.5"`; empty for replies that carry none (the greeting, EHLO).
    pub enhanced: String,
    /// One line per element (a multi-line reply has several).
    pub lines: Vec<String>,
}

impl Reply {
    pub fn new(code: u16, enhanced: &str, text: impl Into<String>) -> Reply {
        Reply {
            code,
            enhanced: enhanced.to_owned(),
            lines: vec![text.into()],
        }
    }

    pub fn is_positive(&self) -> bool {
        (200..400).contains(&self.code)
    }

    pub fn is_transient(&self) -> bool {
        (400..500).contains(&self.code)
    }

    /// The wire form, CRLF-terminated lines, `code-` on all but the last.
    pub fn to_wire(&self) -> String {
        let mut out = String::new();
        let n = self.lines.len().max(1);
        for i in 0..n {
            let text = self.lines.get(i).map_or("", String::as_str);
            let sep = if i + 1 < n { '-' } else { ' ' };
            out.push_str(&self.code.to_string());
            out.push(sep);
            if !self.enhanced.is_empty() {
                out.push_str(&self.enhanced);
                out.push(' ');
            }
            // A reply line never carries a line break of its own.
            out.extend(text.chars().filter(|c| *c != '\r' && *c != '\n'));
            out.push_str("\r\n");
        }
        out
    }
}

impl fmt::Display for Reply {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} {} {}",
            self.code,
            self.enhanced,
            self.lines.join(" / ")
        )
    }
}

/// The TLS session of a connection, for the Received header and the logs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsInfo {
    /// `TLSv1.3`
    pub version: String,
    /// `TLS13_AES_256_GCM_SHA384`
    pub cipher: String,
}

/// One mail transaction.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Envelope {
    /// A short id for logs and the Received header, unique per transaction.
    pub id: String,
    pub client: SocketAddr,
    /// What the client said in HELO/EHLO.
    pub helo: String,
    /// The reverse path without brackets; empty for the null sender `<>`.
    pub mail_from: String,
    /// The accepted recipients, in order, without brackets.
    pub rcpt_to: Vec<String>,
    pub tls: Option<TlsInfo>,
}

/// Decides recipients and messages for the SMTP front.
#[async_trait::async_trait]
pub trait Backend: Send + Sync + 'static {
    /// Whether `rcpt` (address without brackets, as the client wrote it) is accepted:
    /// 250, 550 5.1.1 (unknown), 451 4.3.0 (cannot tell now), 554 5.7.1 (relaying).
    async fn rcpt(&self, envelope: &Envelope, rcpt: &str) -> Reply;

    /// The complete message (CRLF lines, dot-unstuffed, with avsx's Received header on
    /// top): judged and relayed; the reply is given to the client as it is. 250 only
    /// once the internal server accepted it.
    async fn data(&self, envelope: &Envelope, message: Vec<u8>) -> Reply;
}
