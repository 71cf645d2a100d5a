//! One SMTP conversation with the internal server, over lettre's
//! [`AsyncSmtpConnection`]: connect, greeting and EHLO, opportunistic STARTTLS, MAIL,
//! every RCPT, DATA, the message. The caller bounds it with its deadline and reads
//! [`Progress`] to tell where a timeout struck.

use std::fmt;
use std::time::Duration;

use lettre::transport::smtp::client::{AsyncSmtpConnection, TlsParameters};
use lettre::transport::smtp::commands::Data;
use lettre::transport::smtp::extension::{ClientId, Extension, MailBodyParameter, MailParameter};
use lettre::transport::smtp::response::Response;
use tokio::net::TcpStream;

use super::outcome::{Accepted, Answer, Failure, Stage};
use crate::envelope::Envelope;

/// How long a QUIT may take once the outcome is decided; it runs on its own task, so it
/// never delays our reply.
const QUIT_GRACE: Duration = Duration::from_secs(10);

pub struct Target<'a> {
    pub host: &'a str,
    pub port: u16,
    pub helo: &'a ClientId,
    pub tls: &'a TlsParameters,
    /// The transaction id, for the logs.
    pub id: &'a str,
}

/// Where the conversation is, readable after the caller's deadline dropped it.
#[derive(Debug, Default)]
pub struct Progress {
    pub stage: Stage,
    /// The connection the mail goes over is encrypted.
    pub tls: bool,
}

/// Hands `message` over; Ok only for a 250 to the end of data.
pub async fn run(
    target: &Target<'_>,
    envelope: &Envelope,
    message: &[u8],
    progress: &mut Progress,
) -> Result<Accepted, Failure> {
    check_addresses(envelope)?;
    let mut conn = open(target, progress).await?;
    let result = transaction(&mut conn, envelope, message, progress).await;
    // The outcome is decided: say goodbye politely on the side, so a server slow to
    // answer QUIT cannot turn a relayed mail into a timeout. A broken connection is
    // only dropped.
    if !matches!(result, Err(Failure::Broken(..))) {
        tokio::spawn(async move {
            let _ = tokio::time::timeout(QUIT_GRACE, conn.quit()).await;
        });
    }
    result
}

/// A connection past EHLO, encrypted if the server offers STARTTLS and the upgrade
/// works; otherwise a new plain one.
async fn open(
    target: &Target<'_>,
    progress: &mut Progress,
) -> Result<AsyncSmtpConnection, Failure> {
    let mut conn = connect(target, progress).await?;
    if !conn.can_starttls() {
        return Ok(conn);
    }
    progress.stage = Stage::Starttls;
    match conn.starttls(target.tls.clone(), target.helo).await {
        Ok(()) => {
            progress.tls = true;
            Ok(conn)
        }
        Err(e) => {
            // Opportunistic: the mail matters more than the encryption of this hop.
            tracing::warn!(
                id = target.id,
                "STARTTLS with the internal server {}:{} failed ({e}); relaying without TLS on a new connection",
                target.host,
                target.port,
            );
            drop(conn);
            connect(target, progress).await
        }
    }
}

async fn connect(
    target: &Target<'_>,
    progress: &mut Progress,
) -> Result<AsyncSmtpConnection, Failure> {
    progress.stage = Stage::Connect;
    let tcp = TcpStream::connect((target.host, target.port))
        .await
        .map_err(|e| Failure::Unreachable(format!("{}:{}: {e}", target.host, target.port)))?;
    // Mail is small enough per segment that Nagle only adds latency to each command.
    let _ = tcp.set_nodelay(true);
    progress.stage = Stage::Greeting;
    AsyncSmtpConnection::connect_with_transport(Box::new(tcp), target.helo)
        .await
        .map_err(|e| failure(Stage::Greeting, e))
}

async fn transaction(
    conn: &mut AsyncSmtpConnection,
    envelope: &Envelope,
    message: &[u8],
    progress: &mut Progress,
) -> Result<Accepted, Failure> {
    progress.stage = Stage::Mail;
    let info = conn.server_info();
    let mut params = Vec::new();
    let non_ascii =
        !envelope.mail_from.is_ascii() || envelope.rcpt_to.iter().any(|r| !r.is_ascii());
    if non_ascii {
        if !info.supports_feature(Extension::SmtpUtfEight) {
            return Err(Failure::Unsupported(
                "the internal server does not offer SMTPUTF8, which non-ASCII addresses need"
                    .to_owned(),
            ));
        }
        params.push(MailParameter::SmtpUtfEight);
    }
    // Without 8BITMIME the bytes still go as they are: they must arrive unchanged.
    if !message.is_ascii() && info.supports_feature(Extension::EightBitMime) {
        params.push(MailParameter::Body(MailBodyParameter::EightBitMime));
    }
    conn.command(Line::mail(&envelope.mail_from, &params))
        .await
        .map_err(|e| failure(Stage::Mail, e))?;

    // Every recipient is asked, so the reply can tell "all refused" from "some".
    progress.stage = Stage::Rcpt;
    let mut refused = Vec::new();
    for rcpt in &envelope.rcpt_to {
        if let Err(e) = conn.command(Line::rcpt(rcpt)).await {
            match failure(Stage::Rcpt, e) {
                // 421: the server is closing the connection, not judging a recipient.
                Failure::Refused(_, answer) if answer.code != 421 => {
                    refused.push((rcpt.clone(), answer));
                }
                other => return Err(other),
            }
        }
    }
    if !refused.is_empty() {
        return Err(Failure::Recipients {
            refused,
            total: envelope.rcpt_to.len(),
        });
    }

    progress.stage = Stage::Data;
    let go = conn
        .command(Data)
        .await
        .map_err(|e| failure(Stage::Data, e))?;
    if !go.has_code(354) {
        return Err(Failure::Broken(
            Stage::Data,
            format!("unexpected reply {} to DATA", answer(&go)),
        ));
    }

    // lettre dot-stuffs and ends the data with CRLF.CRLF; the message's own last CRLF
    // is that terminator's first half, else the server would get an extra empty line.
    progress.stage = Stage::EndOfData;
    let body = message.strip_suffix(b"\r\n").unwrap_or(message);
    let done = conn
        .message(body)
        .await
        .map_err(|e| failure(Stage::EndOfData, e))?;
    if done.has_code(250) {
        progress.stage = Stage::Quit;
        Ok(Accepted {
            text: answer(&done).text,
        })
    } else {
        Err(Failure::NotQueued(answer(&done)))
    }
}

/// The server's text is ours to pass on; our own addresses must not smuggle commands
/// onto the wire. The SMTP front checked them, this is the last line of defence.
fn check_addresses(envelope: &Envelope) -> Result<(), Failure> {
    if envelope.rcpt_to.is_empty() {
        return Err(Failure::Local("no recipients".to_owned()));
    }
    let bad = |a: &str| a.chars().any(|c| c.is_control() || c == '<' || c == '>');
    let refuse = |a: &str| {
        Err(Failure::Local(format!(
            "the address {a:?} cannot be sent on"
        )))
    };
    if bad(&envelope.mail_from) {
        return refuse(&envelope.mail_from);
    }
    if let Some(r) = envelope.rcpt_to.iter().find(|r| r.is_empty() || bad(r)) {
        return refuse(r);
    }
    Ok(())
}

/// A lettre error at `stage`: a refusal if the server answered, else a broken session.
fn failure(stage: Stage, e: lettre::transport::smtp::Error) -> Failure {
    match e.status() {
        Some(code) => Failure::Refused(
            stage,
            Answer {
                code: code.into(),
                // The reply text (lines joined) is the error's source.
                text: std::error::Error::source(&e)
                    .map(|s| s.to_string())
                    .unwrap_or_default(),
            },
        ),
        // lettre's words for end of file before a complete reply.
        None if e.is_response() && e.to_string().ends_with("incomplete response") => {
            Failure::Broken(
                stage,
                "the server closed the connection without a reply".to_owned(),
            )
        }
        None => Failure::Broken(stage, e.to_string()),
    }
}

fn answer(r: &Response) -> Answer {
    Answer {
        code: r.code().into(),
        text: r.message().collect::<Vec<_>>().join(" "),
    }
}

/// A command line as we write it (lettre's `Mail`/`Rcpt` take only the addresses its
/// parser likes).
struct Line(String);

impl Line {
    fn mail(from: &str, params: &[MailParameter]) -> Line {
        let mut s = format!("MAIL FROM:<{from}>");
        for p in params {
            s.push(' ');
            s.push_str(&p.to_string());
        }
        Line(s)
    }

    fn rcpt(to: &str) -> Line {
        Line(format!("RCPT TO:<{to}>"))
    }
}

impl fmt::Display for Line {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}\r\n", self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn envelope(from: &str, to: &[&str]) -> Envelope {
        Envelope {
            id: "t1".to_owned(),
            client: "192.0.2.1:4000".parse().unwrap(),
            helo: "client.example".to_owned(),
            mail_from: from.to_owned(),
            rcpt_to: to.iter().map(|s| (*s).to_owned()).collect(),
            tls: None,
        }
    }

    #[test]
    fn command_lines() {
        assert_eq!(Line::mail("", &[]).to_string(), "MAIL FROM:<>\r\n");
        assert_eq!(
            Line::mail(
                "a@x.org",
                &[MailParameter::Body(MailBodyParameter::EightBitMime)]
            )
            .to_string(),
            "MAIL FROM:<a@x.org> BODY=8BITMIME\r\n"
        );
        assert_eq!(
            Line::rcpt("\"john doe\"@x.org").to_string(),
            "RCPT TO:<\"john doe\"@x.org>\r\n"
        );
    }

    #[test]
    fn addresses_that_would_break_the_command_are_refused() {
        assert!(check_addresses(&envelope("", &["a@x.org"])).is_ok());
        assert!(check_addresses(&envelope("a@x.org", &[])).is_err());
        assert!(check_addresses(&envelope("a@x.org", &[""])).is_err());
        assert!(check_addresses(&envelope("a@x.org\r\nRSET", &["b@x.org"])).is_err());
        assert!(check_addresses(&envelope("a@x.org", &["b@x.org>"])).is_err());
    }
}
