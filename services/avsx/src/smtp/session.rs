//! One SMTP session's state machine (see LIFECYCLE.md): a command line in, a reply and
//! what to do next out. No sockets and no timers: [`super::connection`] does the I/O,
//! the [`Backend`] decides recipients and messages.

use std::net::SocketAddr;
use std::sync::Arc;

use super::command::{self, Command, ParseError};
use super::data::{DataReceiver, Problem};
use super::line::Line;
use super::{received, replies};
use crate::config::Smtp;
use crate::envelope::{Backend, Envelope, Reply, TlsInfo};
use crate::metrics::Metrics;

/// Protocol errors after which the session is ended (RFC 5321 4.3.2 allows a server
/// to give up on a client that keeps sending nonsense; refused recipients count, so a
/// directory harvest ends early too).
pub const MAX_ERRORS: u32 = 10;

/// What the connection does after sending the reply.
#[derive(Debug)]
pub enum Then {
    /// Read the next command.
    Continue,
    /// Read the message into this receiver, then call [`Session::data_end`].
    Data(DataReceiver),
    /// Send the reply, throw away whatever else the client sent, do the handshake,
    /// then [`Session::tls_started`].
    StartTls,
    /// Send the reply and close; the session's outcome.
    Close(&'static str),
}

#[derive(Debug)]
pub struct Step {
    pub reply: Reply,
    pub then: Then,
}

impl Step {
    fn reply(reply: Reply) -> Step {
        Step {
            reply,
            then: Then::Continue,
        }
    }
}

#[derive(Debug)]
struct Helo {
    name: String,
    /// EHLO rather than HELO.
    extended: bool,
}

pub struct Session {
    config: Arc<Smtp>,
    metrics: Metrics,
    client: SocketAddr,
    /// TLS is configured and not yet active: STARTTLS is offered.
    tls_offered: bool,
    tls: Option<TlsInfo>,
    helo: Option<Helo>,
    /// The transaction since MAIL, if any.
    transaction: Option<Envelope>,
    errors: u32,
    /// Messages the backend accepted, for the session's log line.
    accepted: u32,
}

impl Session {
    pub fn new(
        config: Arc<Smtp>,
        metrics: Metrics,
        client: SocketAddr,
        tls_offered: bool,
    ) -> Session {
        Session {
            config,
            metrics,
            client,
            tls_offered,
            tls: None,
            helo: None,
            transaction: None,
            errors: 0,
            accepted: 0,
        }
    }

    pub fn accepted(&self) -> u32 {
        self.accepted
    }

    pub fn tls(&self) -> Option<&TlsInfo> {
        self.tls.as_ref()
    }

    /// After the handshake: RFC 3207 4.2, everything learnt before is forgotten and the
    /// client must say EHLO again.
    pub fn tls_started(&mut self, info: TlsInfo) {
        self.tls_offered = false;
        self.tls = Some(info);
        self.helo = None;
        self.transaction = None;
    }

    pub async fn handle(&mut self, line: Line, backend: &dyn Backend) -> Step {
        let line = match line {
            Line::Command(l) => l,
            Line::TooLong => {
                self.metrics.rejected("command_too_long");
                return self.error(replies::line_too_long());
            }
            Line::BareNewline => {
                self.metrics.rejected("bare_newline");
                return self.error(replies::bare_newline_in_command());
            }
        };
        match command::parse(&line) {
            Ok(cmd) => self.command(cmd, backend).await,
            Err(e) => self.error(match e {
                ParseError::Unknown => replies::unknown_command(),
                ParseError::NotImplemented => replies::not_implemented(),
                ParseError::Syntax(text) => replies::syntax(text),
                ParseError::BadSender(e) => replies::bad_sender(e.text()),
                ParseError::BadRecipient(e) => replies::bad_recipient(e.text()),
                ParseError::UnknownParameter => replies::unknown_parameter(),
            }),
        }
    }

    async fn command(&mut self, cmd: Command, backend: &dyn Backend) -> Step {
        let host = &self.config.hostname;
        match cmd {
            Command::Helo(name) => self.helo(name, false),
            Command::Ehlo(name) => self.helo(name, true),
            Command::Mail { from, size } => self.mail(from, size),
            Command::Rcpt(to) => self.rcpt(to, backend).await,
            Command::Data => self.data(),
            Command::Rset => {
                self.transaction = None;
                Step::reply(replies::ok())
            }
            Command::Noop => Step::reply(replies::ok()),
            Command::Vrfy => Step::reply(replies::vrfy()),
            Command::Help => Step::reply(replies::help()),
            Command::Quit => Step {
                reply: replies::quit(host),
                then: Then::Close("quit"),
            },
            Command::StartTls => self.start_tls(),
        }
    }

    fn helo(&mut self, name: String, extended: bool) -> Step {
        // RFC 5321 4.1.4: HELO/EHLO also resets the transaction.
        self.transaction = None;
        self.helo = Some(Helo { name, extended });
        let host = &self.config.hostname;
        Step::reply(if extended {
            replies::ehlo(host, self.config.max_message_bytes, self.tls_offered)
        } else {
            replies::helo(host)
        })
    }

    fn mail(&mut self, from: String, size: Option<u64>) -> Step {
        let Some(helo) = &self.helo else {
            return self.error(replies::bad_sequence("send EHLO or HELO first"));
        };
        if self.transaction.is_some() {
            return self.error(replies::bad_sequence("sender already given"));
        }
        let max = self.config.max_message_bytes;
        if size.is_some_and(|s| s > max) {
            self.metrics.rejected("size");
            tracing::info!(
                client = %self.client,
                %from,
                size,
                "refused: declared size over the limit"
            );
            return Step::reply(replies::too_big(max));
        }
        self.transaction = Some(Envelope {
            id: received::new_id(),
            client: self.client,
            helo: helo.name.clone(),
            mail_from: from,
            rcpt_to: Vec::new(),
            tls: self.tls.clone(),
        });
        Step::reply(replies::sender_ok())
    }

    async fn rcpt(&mut self, to: String, backend: &dyn Backend) -> Step {
        let Some(envelope) = &self.transaction else {
            return self.error(replies::bad_sequence("need MAIL first"));
        };
        if envelope.rcpt_to.len() >= self.config.max_recipients {
            self.metrics.rejected("too_many_recipients");
            return Step::reply(replies::too_many_recipients());
        }
        let reply = backend.rcpt(envelope, &to).await;
        if reply.is_positive() {
            tracing::debug!(id = %envelope.id, rcpt = %to, "recipient accepted");
            if let Some(e) = &mut self.transaction {
                e.rcpt_to.push(to);
            }
            return Step::reply(reply);
        }
        // Refusals are what an operator looks for ("why did my mail bounce?").
        tracing::info!(
            id = %envelope.id,
            client = %self.client,
            from = %envelope.mail_from,
            rcpt = %to,
            reply = %reply,
            "recipient refused"
        );
        if reply.is_transient() {
            Step::reply(reply)
        } else {
            self.error(reply)
        }
    }

    fn data(&mut self) -> Step {
        let Some(envelope) = &self.transaction else {
            return self.error(replies::bad_sequence("need MAIL first"));
        };
        if envelope.rcpt_to.is_empty() {
            return self.error(replies::no_recipients());
        }
        let extended = self.helo.as_ref().is_some_and(|h| h.extended);
        let header = received::header(envelope, &self.config.hostname, extended, &received::now());
        Step {
            reply: replies::start_data(),
            then: Then::Data(DataReceiver::new(
                header.into_bytes(),
                self.config.max_message_bytes,
                self.config.max_line_bytes,
            )),
        }
    }

    /// The message was read to its end: refused here, or handed to the backend. Either
    /// way the transaction is over (RFC 5321 4.1.1.4).
    pub async fn data_end(&mut self, receiver: DataReceiver, backend: &dyn Backend) -> Reply {
        let Some(envelope) = self.transaction.take() else {
            return replies::bad_sequence("need MAIL first");
        };
        let size = receiver.size();
        let (reply, reason) = match receiver.finish() {
            Ok(message) => (backend.data(&envelope, message).await, None),
            Err(Problem::BareNewline) => (replies::bare_newline_in_data(), Some("smuggling")),
            Err(Problem::TooBig) => (
                replies::too_big(self.config.max_message_bytes),
                Some("size"),
            ),
            Err(Problem::LineTooLong) => (
                replies::data_line_too_long(self.config.max_line_bytes),
                Some("line_too_long"),
            ),
        };
        if let Some(reason) = reason {
            self.metrics.rejected(reason);
        }
        if reply.is_positive() {
            self.accepted += 1;
        }
        tracing::info!(
            id = %envelope.id,
            client = %self.client,
            from = %envelope.mail_from,
            rcpts = envelope.rcpt_to.len(),
            size,
            reply = %reply,
            reason = reason.unwrap_or(""),
            "{}",
            if reply.is_positive() { "message accepted" } else { "message refused" }
        );
        reply
    }

    fn start_tls(&mut self) -> Step {
        if self.tls.is_some() {
            return self.error(replies::bad_sequence("TLS already active"));
        }
        if !self.tls_offered {
            return self.error(replies::not_implemented());
        }
        if self.helo.is_none() {
            return self.error(replies::bad_sequence("send EHLO first"));
        }
        Step {
            reply: replies::start_tls(),
            then: Then::StartTls,
        }
    }

    /// An error reply; past [`MAX_ERRORS`], the end of the session instead.
    fn error(&mut self, reply: Reply) -> Step {
        self.errors += 1;
        if self.errors < MAX_ERRORS {
            return Step::reply(reply);
        }
        self.metrics.rejected("too_many_errors");
        tracing::info!(client = %self.client, last = %reply, "too many errors");
        Step {
            reply: replies::too_many_errors(&self.config.hostname),
            then: Then::Close("too_many_errors"),
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Mutex;

    use super::*;

    /// Accepts recipients at example.org; records messages.
    #[derive(Default)]
    struct Fake {
        messages: Mutex<Vec<(Envelope, Vec<u8>)>>,
    }

    #[async_trait::async_trait]
    impl Backend for Fake {
        async fn rcpt(&self, _: &Envelope, rcpt: &str) -> Reply {
            if rcpt.ends_with("@example.org") {
                Reply::new(250, "2.1.5", "OK")
            } else {
                Reply::new(550, "5.1.1", "no such user")
            }
        }
        async fn data(&self, e: &Envelope, message: Vec<u8>) -> Reply {
            self.messages.lock().unwrap().push((e.clone(), message));
            Reply::new(250, "2.0.0", format!("queued as {}", e.id))
        }
    }

    fn config() -> Arc<Smtp> {
        Arc::new(Smtp {
            listen: vec![],
            hostname: "mx.example.org".into(),
            max_message_bytes: 1000,
            max_recipients: 2,
            max_line_bytes: 1000,
            command_timeout_secs: 1,
            data_timeout_secs: 1,
            max_connections: 10,
            max_connections_per_ip: 10,
            tls: None,
        })
    }

    struct T {
        s: Session,
        b: Fake,
    }

    impl T {
        fn new(tls: bool) -> T {
            T {
                s: Session::new(
                    config(),
                    Metrics::default(),
                    "192.0.2.7:4711".parse().unwrap(),
                    tls,
                ),
                b: Fake::default(),
            }
        }
        async fn send(&mut self, line: &str) -> Step {
            self.s
                .handle(Line::Command(line.as_bytes().to_vec()), &self.b)
                .await
        }
        async fn code(&mut self, line: &str) -> (u16, String) {
            let r = self.send(line).await.reply;
            (r.code, r.enhanced)
        }
    }

    fn c(code: u16, enhanced: &str) -> (u16, String) {
        (code, enhanced.to_owned())
    }

    #[tokio::test]
    async fn transaction_sequence() {
        let mut t = T::new(false);
        assert_eq!(t.code("MAIL FROM:<a@example.com>").await, c(503, "5.5.1"));
        assert_eq!(t.code("EHLO client.example").await, c(250, ""));
        assert_eq!(t.code("RCPT TO:<b@example.org>").await, c(503, "5.5.1"));
        assert_eq!(t.code("DATA").await, c(503, "5.5.1"));
        assert_eq!(t.code("MAIL FROM:<a@example.com>").await, c(250, "2.1.0"));
        assert_eq!(t.code("MAIL FROM:<a@example.com>").await, c(503, "5.5.1"));
        assert_eq!(t.code("DATA").await, c(554, "5.5.1"));
        assert_eq!(t.code("RCPT TO:<x@example.net>").await, c(550, "5.1.1"));
        assert_eq!(t.code("RCPT TO:<b@example.org>").await, c(250, "2.1.5"));
        assert_eq!(t.code("RCPT TO:<c@example.org>").await, c(250, "2.1.5"));
        assert_eq!(t.code("RCPT TO:<d@example.org>").await, c(452, "4.5.3"));
        let Then::Data(mut rx) = t.send("DATA").await.then else {
            panic!("DATA accepted")
        };
        rx.feed(b"Subject: x\r\n\r\nhi\r\n.\r\n");
        let reply = t.s.data_end(rx, &t.b).await;
        assert_eq!(reply.code, 250);
        // The transaction is over: RCPT needs a new MAIL.
        assert_eq!(t.code("RCPT TO:<b@example.org>").await, c(503, "5.5.1"));
        let messages = t.b.messages.lock().unwrap();
        let (env, msg) = &messages[0];
        assert_eq!(env.rcpt_to, ["b@example.org", "c@example.org"]);
        let msg = String::from_utf8_lossy(msg);
        let top = "Received: from client.example ([192.0.2.7])\r\n\
                   \tby mx.example.org (avsx) with ESMTP id ";
        assert!(msg.starts_with(top), "{msg}");
        assert!(msg.ends_with("\r\nSubject: x\r\n\r\nhi\r\n"), "{msg}");
    }

    #[tokio::test]
    async fn rset_and_ehlo_reset_the_transaction() {
        let mut t = T::new(false);
        t.send("HELO client.example").await;
        assert_eq!(t.code("MAIL FROM:<>").await, c(250, "2.1.0"));
        assert_eq!(t.code("RSET").await, c(250, "2.0.0"));
        assert_eq!(t.code("MAIL FROM:<>").await, c(250, "2.1.0"));
        t.send("EHLO client.example").await;
        assert_eq!(t.code("MAIL FROM:<>").await, c(250, "2.1.0"));
    }

    #[tokio::test]
    async fn size_over_the_limit() {
        let mut t = T::new(false);
        t.send("EHLO client.example").await;
        assert_eq!(
            t.code("MAIL FROM:<a@example.com> SIZE=1001").await,
            c(552, "5.3.4")
        );
        assert_eq!(
            t.code("MAIL FROM:<a@example.com> SIZE=1000").await,
            c(250, "2.1.0")
        );
    }

    #[tokio::test]
    async fn starttls_offered_once() {
        let mut t = T::new(true);
        assert_eq!(t.code("STARTTLS").await, c(503, "5.5.1"));
        let ehlo = t.send("EHLO client.example").await.reply;
        assert_eq!(ehlo.lines.last().unwrap(), "STARTTLS");
        assert!(matches!(t.send("STARTTLS").await.then, Then::StartTls));
        t.s.tls_started(TlsInfo {
            version: "TLSv1.3".into(),
            cipher: "TLS13_AES_128_GCM_SHA256".into(),
        });
        assert_eq!(
            t.code("MAIL FROM:<>").await,
            c(503, "5.5.1"),
            "EHLO again after TLS"
        );
        let ehlo = t.send("EHLO client.example").await.reply;
        assert!(!ehlo.lines.iter().any(|l| l == "STARTTLS"));
        assert_eq!(t.code("STARTTLS").await, c(503, "5.5.1"));

        let mut plain = T::new(false);
        plain.send("EHLO client.example").await;
        assert_eq!(plain.code("STARTTLS").await, c(502, "5.5.1"));
    }

    #[tokio::test]
    async fn too_many_errors_end_the_session() {
        let mut t = T::new(false);
        for _ in 1..MAX_ERRORS {
            assert_eq!(t.code("BOGUS").await, c(500, "5.5.1"));
        }
        let step = t.send("BOGUS").await;
        assert_eq!(
            (step.reply.code, step.reply.enhanced.as_str()),
            (421, "4.7.0")
        );
        assert!(matches!(step.then, Then::Close("too_many_errors")));
    }
}
