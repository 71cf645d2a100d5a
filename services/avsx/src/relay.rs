//! Handing accepted mail to the internal server, and turning what it said into the reply
//! our client gets. The rule everything here follows: mail is never lost. avsx says 250
//! to its client only after the internal server said 250 to the end of the data; every
//! other outcome is a refusal the sender's MTA acts on (4xx: it keeps the mail and
//! retries; 5xx: it tells its user), so avsx never needs to send a bounce.
//!
//! * [`session`]: one SMTP conversation with the internal server (lettre's async client),
//!   bounded by one deadline, reporting where it got to.
//! * [`outcome`]: what came of it, and the reply for our client (no I/O, unit-tested).
//!
//! Decisions, and the designs rejected:
//!
//! * **lettre's connection, not its transport.** `AsyncSmtpTransport::send_raw` stops at
//!   the first refused recipient, does not say whether a refusal came from MAIL, RCPT or
//!   the end of the data, takes any 2xx after the data as success, and its timeout only
//!   covers connecting. [`lettre::transport::smtp::client::AsyncSmtpConnection`] (the
//!   client under the transport) lets us ask every recipient, know each stage, and
//!   require 250. Addresses go out exactly as the client gave them (lettre's `Address`
//!   rejects some valid forms, e.g. quoted local parts).
//! * **Some recipients refused: the whole message gets 451.** SMTP gives one reply to
//!   the end of the data for all recipients. Accepting for the others would lose the
//!   mail for the refused ones (avsx sends no bounces); a 550 would refuse it for
//!   recipients that exist. avsx has already checked every recipient (map, LDAP), so an
//!   internal refusal means the two disagree (a mailbox just removed, a stale map, a
//!   full mailbox): something an administrator fixes, while the sender keeps retrying.
//!   If the mismatch stays, the sender bounces after its queue lifetime (days), with
//!   our text. Only when *every* recipient is refused permanently is the reply 550.
//! * **Session refusals are temporary.** A 5xx greeting or EHLO reply says the internal
//!   server will not talk to us (an access rule), not that this mail is bad; like
//!   Postfix (`smtp_skip_5xx_greeting`) it gives 451, so a misconfiguration delays mail
//!   instead of bouncing it. MAIL, RCPT, DATA and end-of-data 5xx give 550 with the
//!   internal server's text.
//! * **One deadline for the whole hand-over** (`relay.timeout_secs`): our client waits
//!   for our reply to its end of data, and RFC 5321 gives it 10 minutes; per-command
//!   timeouts would add up past that. A timeout after our end of data was sent may
//!   leave a delivered mail that we answer 451: the sender retries and the recipient
//!   may get it twice (RFC 1047). A duplicate is the price of never losing one.
//! * **Opportunistic STARTTLS, unauthenticated.** If the internal server offers
//!   STARTTLS the hop is encrypted, without verifying its certificate (internal servers
//!   commonly have self-signed ones; RFC 7435 opportunistic security). If the upgrade
//!   fails, the mail goes on a new, plain connection (as Postfix's `may` level does):
//!   a broken internal TLS setup must not stop the mail.
//! * **8-bit content goes as it is**, with `BODY=8BITMIME` when the server offers it:
//!   the message must arrive byte-identical. Non-ASCII addresses need SMTPUTF8; a server
//!   without it gets no such mail (550 5.6.7), as RFC 6531 says.
//! * **No connection reuse.** One connection per message keeps a failure from leaving a
//!   half-used session behind; internal relaying is not where the latency is.

mod outcome;
mod session;

use std::time::{Duration, Instant};

use anyhow::Context;
use lettre::transport::smtp::client::{CertificateStore, TlsParameters};
use lettre::transport::smtp::extension::ClientId;

use crate::envelope::{Envelope, Reply};

/// Where relayed mail goes, and how.
#[derive(Clone)]
pub struct Relay {
    host: String,
    port: u16,
    timeout: Duration,
    /// The name in our EHLO.
    helo: ClientId,
    /// For opportunistic STARTTLS; built once (no certificates to load: nothing is
    /// verified).
    tls: TlsParameters,
}

impl std::fmt::Debug for Relay {
    // Not derived: TlsParameters is not Debug.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Relay")
            .field("host", &self.host)
            .field("port", &self.port)
            .field("timeout", &self.timeout)
            .field("helo", &self.helo)
            .finish_non_exhaustive()
    }
}

impl Relay {
    /// A relay to `config.address` (`host:port`, `[v6]:port`). Nothing is connected
    /// until [`Relay::send`]. EHLO names this host (`hostname`), see [`Relay::helo`].
    pub fn new(config: &crate::config::Relay) -> anyhow::Result<Relay> {
        let (host, port) = split_host_port(&config.address)
            .with_context(|| format!("relay.address {:?}", config.address))?;
        let tls = TlsParameters::builder(host.clone())
            .certificate_store(CertificateStore::None)
            .dangerous_accept_invalid_certs(true)
            .dangerous_accept_invalid_hostnames(true)
            .build_rustls()
            .with_context(|| format!("setting up STARTTLS towards {}", config.address))?;
        Ok(Relay {
            host,
            port,
            timeout: config.timeout(),
            helo: ClientId::default(),
            tls,
        })
    }

    /// Says `name` in EHLO (the daemon passes `smtp.hostname`).
    pub fn helo(mut self, name: &str) -> Relay {
        self.helo = ClientId::Domain(name.to_owned());
        self
    }

    /// Sends `message` (CRLF lines, dot-unstuffed) to the internal server with the
    /// envelope's MAIL FROM (empty: the null sender `<>`) and every RCPT TO as given,
    /// and returns the reply for our client:
    ///
    /// * 250 2.0.0 only once the internal server answered 250 to the end of the data;
    /// * 451 (4.4.1 no connection, 4.4.2 connection lost or timed out, else the internal
    ///   enhanced code in class 4) for an internal 4xx at any stage, a refusal of the
    ///   session, a refusal of some recipients, a failure or the timeout;
    /// * 550 with the internal server's enhanced code and text for its 5xx to MAIL, DATA
    ///   or the end of data, or to every recipient; 550 5.6.7 for non-ASCII addresses
    ///   when the server lacks SMTPUTF8.
    ///
    /// Logged at info when relayed, at warn when not. Runs on a tokio runtime.
    pub async fn send(&self, envelope: &Envelope, message: &[u8]) -> Reply {
        let started = Instant::now();
        let mut progress = session::Progress::default();
        let target = session::Target {
            host: &self.host,
            port: self.port,
            helo: &self.helo,
            tls: &self.tls,
            id: &envelope.id,
        };
        let run = session::run(&target, envelope, message, &mut progress);
        let result = match tokio::time::timeout(self.timeout, run).await {
            Ok(result) => result,
            Err(_) => Err(outcome::Failure::Timeout(progress.stage)),
        };
        let reply = outcome::reply(&envelope.id, &result, self.timeout);
        let elapsed_ms = started.elapsed().as_millis() as u64;
        let rcpts = envelope.rcpt_to.len();
        let size = message.len();
        match &result {
            Ok(accepted) => tracing::info!(
                id = %envelope.id,
                rcpts,
                size,
                tls = progress.tls,
                elapsed_ms,
                internal = %accepted.text,
                "relayed to {}:{}",
                self.host,
                self.port,
            ),
            Err(failure) => tracing::warn!(
                id = %envelope.id,
                rcpts,
                size,
                tls = progress.tls,
                elapsed_ms,
                stage = %failure.stage(),
                reply = %reply,
                "relay to {}:{} failed",
                self.host,
                self.port,
            ),
        }
        reply
    }
}

/// `host:port`, `[v6]:port` or `v6addr:port` as a host for resolving and a port.
fn split_host_port(address: &str) -> anyhow::Result<(String, u16)> {
    if let Ok(sa) = address.parse::<std::net::SocketAddr>() {
        return Ok((sa.ip().to_string(), sa.port()));
    }
    let (host, port) = address.rsplit_once(':').context("expected host:port")?;
    let port: u16 = port
        .parse()
        .ok()
        .filter(|p| *p > 0)
        .with_context(|| format!("expected a port from 1 to 65535, got {port:?}"))?;
    let host = host.trim_start_matches('[').trim_end_matches(']');
    anyhow::ensure!(!host.is_empty(), "expected a host before the port");
    Ok((host.to_owned(), port))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn host_port_forms() {
        assert_eq!(
            split_host_port("10.0.0.25:25").unwrap(),
            ("10.0.0.25".to_owned(), 25)
        );
        assert_eq!(
            split_host_port("[::1]:2525").unwrap(),
            ("::1".to_owned(), 2525)
        );
        assert_eq!(
            split_host_port("mail.example.org:587").unwrap(),
            ("mail.example.org".to_owned(), 587)
        );
        assert!(split_host_port("mail.example.org").is_err());
        assert!(split_host_port("mail.example.org:0").is_err());
        assert!(split_host_port(":25").is_err());
    }

    #[test]
    fn send_can_run_on_any_worker_thread() {
        // The SMTP front awaits it inside an `async_trait` (Send) backend.
        fn assert_send<T: Send>(_: &T) {}
        let relay = Relay::new(&crate::config::Relay {
            address: "127.0.0.1:25".to_owned(),
            timeout_secs: 7,
        })
        .unwrap();
        let envelope = Envelope {
            id: "t".to_owned(),
            client: "192.0.2.1:1".parse().unwrap(),
            helo: "h".to_owned(),
            mail_from: String::new(),
            rcpt_to: vec!["a@example.org".to_owned()],
            tls: None,
        };
        assert_send(&relay.send(&envelope, b"x\r\n"));
    }

    #[test]
    fn new_accepts_a_validated_address() {
        let relay = Relay::new(&crate::config::Relay {
            address: "127.0.0.1:25".to_owned(),
            timeout_secs: 7,
        })
        .unwrap();
        assert_eq!(relay.timeout, Duration::from_secs(7));
        assert_eq!(relay.port, 25);
    }
}
