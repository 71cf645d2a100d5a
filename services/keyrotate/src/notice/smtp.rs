//! Handing the notice to the configured mail server (lettre's blocking SMTP client).
//!
//! One connection per mail: lettre is built without its pool, so a failure with one
//! recipient leaves no half-used session behind for the next. A failure comes back as
//! a [`SendError`] inside the `anyhow::Error`, so a caller can tell a permanent refusal
//! (5xx: do not retry this recipient) from a temporary one (4xx, or no answer at all:
//! try again later) with `err.downcast_ref::<SendError>()`.

use std::fmt;

use anyhow::{Context, bail};
use lettre::address::{Address, Envelope};
use lettre::transport::smtp::authentication::Credentials;
use lettre::{SmtpTransport, Transport};

use crate::config::{Security, Smtp};
use crate::secrets;

/// An SMTP connection setup per the `[notice.smtp]` config.
pub struct Mailer {
    transport: SmtpTransport,
    /// `host:port (security)`, how errors name the server.
    server: String,
}

impl fmt::Debug for Mailer {
    // Not derived: the transport holds the password.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Mailer")
            .field("server", &self.server)
            .finish_non_exhaustive()
    }
}

/// Why a mail was not accepted.
#[derive(Debug)]
pub struct SendError {
    /// The SMTP reply code, when the server refused with one.
    pub code: Option<u16>,
    /// A 5xx refusal: the same mail will be refused again.
    pub permanent: bool,
    /// What happened, naming the server, the recipient and the reply text.
    pub message: String,
}

impl fmt::Display for SendError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for SendError {}

impl Mailer {
    /// An SMTP connection per the config (the password via [`secrets::read`]). Nothing is
    /// sent and no connection is made until [`Mailer::send`].
    pub fn new(smtp: &Smtp) -> anyhow::Result<Mailer> {
        let server = format!(
            "{}:{} ({})",
            smtp.host,
            smtp.port,
            match smtp.security {
                Security::None => "plain SMTP",
                Security::Starttls => "STARTTLS required",
                Security::Tls => "implicit TLS",
            }
        );
        let builder = match smtp.security {
            Security::None => SmtpTransport::builder_dangerous(&smtp.host),
            // Required, not opportunistic: a server that does not offer STARTTLS gets
            // neither the password nor the mail.
            Security::Starttls => SmtpTransport::starttls_relay(&smtp.host)
                .with_context(|| format!("setting up TLS for {server}"))?,
            Security::Tls => SmtpTransport::relay(&smtp.host)
                .with_context(|| format!("setting up TLS for {server}"))?,
        };
        let mut builder = builder.port(smtp.port).timeout(Some(smtp.timeout()));
        let password = secrets::read(&smtp.password(), "password")
            .with_context(|| format!("reading the SMTP password for {server}"))?;
        match (&smtp.username, password) {
            (Some(user), Some(password)) => {
                builder =
                    builder.credentials(Credentials::new(user.clone(), secrets::reveal(&password)));
            }
            (None, None) => {}
            // Validation pairs them; a config built in code might not.
            _ => bail!("{server}: username and password go together"),
        }
        Ok(Mailer {
            transport: builder.build(),
            server,
        })
    }

    /// Sends `message` (complete RFC 5322 bytes, CRLF line endings) with the envelope
    /// `from` and `to`. Ok only when the server accepted the mail with 250 after the
    /// data; otherwise a [`SendError`] with the reply code and text, saying whether the
    /// refusal is permanent (5xx) or temporary (4xx, or no reply at all).
    pub fn send(&self, from: &str, to: &str, message: &[u8]) -> anyhow::Result<()> {
        let address = |role: &str, a: &str| {
            a.parse::<Address>()
                .with_context(|| format!("the envelope {role} {a:?} is not an address"))
        };
        let envelope = Envelope::new(
            Some(address("sender", from)?),
            vec![address("recipient", to)?],
        )
        .with_context(|| format!("building the envelope {from} -> {to}"))?;
        let what = format!("{} refused the mail from {from} to {to}", self.server);
        match self.transport.send_raw(&envelope, message) {
            Ok(reply) if reply.has_code(250) => Ok(()),
            // lettre takes every 2xx as success; RFC 5321 says 250 after the data.
            Ok(reply) => Err(SendError {
                code: Some(code(&reply.code())),
                permanent: false,
                message: format!(
                    "{what}: unexpected reply {} {} after the data (expected 250); temporary, try again",
                    reply.code(),
                    reply.message().collect::<Vec<_>>().join(" ")
                ),
            }
            .into()),
            Err(e) => Err(classify(&self.server, &what, e).into()),
        }
    }
}

fn code(c: &lettre::transport::smtp::response::Code) -> u16 {
    // `Code` shows as its three digits.
    c.to_string().parse().unwrap_or(0)
}

/// A lettre error as a [`SendError`]. lettre's text already carries the code and the
/// server's reply (`permanent error (550): 5.1.1 <bob@example.net>: User unknown`), or
/// the I/O or TLS error under it; `{:#}` would repeat that source.
fn classify(server: &str, what: &str, e: lettre::transport::smtp::Error) -> SendError {
    let code = e.status().map(|c| code(&c));
    let permanent = e.is_permanent();
    let transient = e.is_transient();
    let text = e.to_string();
    let message = if permanent {
        format!("{what}: {text}; permanent (5xx): sending it again will not help")
    } else if transient {
        format!("{what}: {text}; temporary (4xx): try again later")
    } else {
        format!(
            "could not hand the mail to {server}: {text}; temporary (no SMTP refusal): check the server and try again"
        )
    };
    SendError {
        code,
        permanent,
        message,
    }
}
