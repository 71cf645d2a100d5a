//! Content judgement before the queue: every message goes to spamd and clamd at once,
//! and [`Scanners::judge`] turns their answers and the `[scan]` policy into the action
//! for it: deliver (with verdict fields), refuse for good, or refuse for now.
//!
//! * [`spamd`]: SPAMC/1.5 client (`SYMBOLS`: score and rule names).
//! * [`clamd`]: clamd `INSTREAM` client.
//! * [`verdict`]: the decision table, without I/O.
//! * [`headers`]: removing forged fields, inserting avsx's, tagging the Subject.
//!
//! Nothing is ever accepted as if it had been scanned when it was not: a scanner that
//! fails, times out or answers nonsense gives a 451 (or, only if configured, delivery
//! with an `X-Avsx-Unscanned` field saying which scanner and why); mail over a scanner's
//! size limit follows `scan.oversize`. Failures are logged with the scanner's address
//! and the exact problem; the sender only hears "try again later".
//!
//! Design notes:
//!
//! * `SYMBOLS`, not `PROCESS`: spamd returns the score and rule names and nothing else,
//!   so the message is not sent back (half the traffic for big mail) and the fields on
//!   delivered mail are avsx's, judged by avsx's levels, whatever spamd's own
//!   `required_score` and report templates say. `CHECK` would give no rule names.
//! * Forged `X-Spam-*` fields are removed before scanning, so spamd scores the message
//!   that will be delivered and no sender can hand the internal server a verdict.
//! * spamd and clamd run concurrently, each under its own timeout around connect, send
//!   and answer together: a scanner that accepts and then stalls costs at most its
//!   timeout, and a slow spamd does not add clamd's time on top.
//! * A new connection per message (both daemons close after one answer anyway; clamd's
//!   `IDSESSION` would allow reuse, but one stuck session would then hold up others).

mod clamd;
mod headers;
mod spamd;
mod verdict;

use std::io;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite};
use tokio::net::{TcpStream, UnixStream};
use tracing::{debug, info, warn};

use crate::config::{Oversize, Scan, Scanner};
use crate::envelope::Reply;
use crate::metrics::Metrics;

use verdict::{Decision, Outcome, Virus};

/// What to do with a message.
#[derive(Debug, Clone, PartialEq)]
pub enum Action {
    /// Relay `message` (with any added headers / tagged subject already applied).
    Deliver { message: Vec<u8>, tagged: bool },
    /// Answer this and do not relay (550 spam kill, 554 virus, 552 oversize reject).
    Reject(Reply),
    /// Answer this (451 4.x.x) and do not relay.
    TempFail(Reply),
}

/// The judgement on one message.
#[derive(Debug, Clone, PartialEq)]
pub struct Judgement {
    pub action: Action,
    /// spamd's score, when it gave one.
    pub score: Option<f64>,
    /// The signature clamd found, if any.
    pub virus: Option<String>,
    /// short label for stats and metrics: "clean", "tagged", "killed", "virus",
    /// "tempfail", "oversize_reject", "unscanned"
    pub label: &'static str,
}

/// Where a scanner listens: `host:port`, or an absolute path for a Unix socket.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Address {
    Tcp(String),
    Unix(PathBuf),
}

impl Address {
    pub(crate) fn parse(s: &str) -> Address {
        if s.starts_with('/') {
            Address::Unix(PathBuf::from(s))
        } else {
            Address::Tcp(s.to_owned())
        }
    }

    async fn connect(&self) -> io::Result<Box<dyn Conn>> {
        Ok(match self {
            // A host name is resolved on every connect, so a moved scanner is followed.
            Address::Tcp(a) => Box::new(TcpStream::connect(a.as_str()).await?),
            Address::Unix(p) => Box::new(UnixStream::connect(p).await?),
        })
    }
}

impl std::fmt::Display for Address {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Address::Tcp(a) => f.write_str(a),
            Address::Unix(p) => write!(f, "{}", p.display()),
        }
    }
}

/// A TCP or Unix stream, for clients that do not care which.
trait Conn: AsyncRead + AsyncWrite + Unpin + Send {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send> Conn for T {}

/// Why a scanner gave no verdict. The message goes into the log (with the scanner and
/// its address, see [`ScanError`]) and, for mail accepted unscanned, into its header.
#[derive(Debug, thiserror::Error)]
pub(crate) enum Problem {
    #[error("cannot connect: {0}")]
    Connect(#[source] io::Error),
    #[error("sending the message failed: {0}")]
    Send(#[source] io::Error),
    #[error("reading the answer failed: {0}")]
    Receive(#[source] io::Error),
    #[error("no complete answer within {0:?}")]
    Timeout(Duration),
    #[error("answer longer than {0} bytes")]
    TooLong(usize),
    #[error(transparent)]
    Spamd(#[from] spamd::ReplyError),
    #[error(transparent)]
    Clamd(#[from] clamd::ReplyError),
}

/// A [`Problem`] with the scanner it happened with.
#[derive(Debug, thiserror::Error)]
#[error("{scanner} at {address}: {problem}")]
pub(crate) struct ScanError {
    pub scanner: &'static str,
    pub address: Address,
    #[source]
    pub problem: Problem,
}

/// Reads until `parse` has a complete answer (or an error), at most `limit` bytes.
async fn read_answer<T, E: Into<Problem>>(
    conn: &mut Box<dyn Conn>,
    limit: usize,
    parse: impl Fn(&[u8], bool) -> Result<Option<T>, E>,
) -> Result<T, Problem> {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    loop {
        let n = conn.read(&mut chunk).await.map_err(Problem::Receive)?;
        buf.extend_from_slice(&chunk[..n]);
        if let Some(answer) = parse(&buf, n == 0).map_err(Into::into)? {
            return Ok(answer);
        }
        if buf.len() > limit {
            return Err(Problem::TooLong(limit));
        }
        // `parse` never asks for more after EOF (it errs), so the loop ends there.
    }
}

/// Bytes from a peer shown in a log line: as text, escaped, at most 100 bytes.
fn quote(bytes: &[u8]) -> String {
    let shown = String::from_utf8_lossy(&bytes[..bytes.len().min(100)]);
    let more = if bytes.len() > 100 { "..." } else { "" };
    format!("{shown:?}{more}")
}

/// The configured scanners and the policy applied to their answers.
#[derive(Debug, Clone)]
pub struct Scanners {
    policy: Scan,
    spamd: Option<(spamd::Client, u64)>,
    clamd: Option<(clamd::Client, u64)>,
    metrics: Metrics,
}

impl Scanners {
    pub fn new(config: &Scan, metrics: Metrics) -> Scanners {
        let client = |s: &Scanner| (Address::parse(&s.address), s.timeout(), s.max_bytes);
        Scanners {
            policy: config.clone(),
            spamd: config
                .spamd
                .as_ref()
                .map(client)
                .map(|(address, timeout, max)| (spamd::Client { address, timeout }, max)),
            clamd: config
                .clamd
                .as_ref()
                .map(client)
                .map(|(address, timeout, max)| (clamd::Client { address, timeout }, max)),
            metrics,
        }
    }

    /// Runs spamd and clamd concurrently on `message` (CRLF lines, with avsx's Received
    /// header first) and decides.
    ///
    /// `X-Spam-*` and `X-Avsx-Unscanned` fields the sender put in are removed first, so
    /// neither the scanners nor the recipients see a verdict avsx did not make. Each
    /// scanner is bounded by its own timeout, so this returns within the larger of the
    /// two.
    pub async fn judge(&self, message: &[u8]) -> Judgement {
        let message = headers::strip_forged(message);
        let message: &[u8] = &message;
        let size = message.len();
        let over = |limit: u64| size as u64 > limit;
        let spam_over = self.spamd.as_ref().is_some_and(|(_, max)| over(*max));
        let virus_over = self.clamd.as_ref().is_some_and(|(_, max)| over(*max));
        // Mail refused for its size is not worth scanning at all.
        let refuse = (spam_over || virus_over) && self.policy.oversize != Oversize::AcceptUnscanned;

        let spam = async {
            match &self.spamd {
                None => Outcome::Off,
                Some((_, max)) if spam_over => self.oversize("spamd", size, *max),
                Some(_) if refuse => Outcome::Skipped,
                Some((c, _)) => {
                    let started = Instant::now();
                    let result = c.check(message).await;
                    self.metrics
                        .scanned("spamd", started.elapsed().as_secs_f64());
                    self.outcome("spamd", &c.address, result)
                }
            }
        };
        let virus = async {
            match &self.clamd {
                None => Outcome::Off,
                Some((_, max)) if virus_over => self.oversize("clamd", size, *max),
                Some(_) if refuse => Outcome::Skipped,
                Some((c, _)) => {
                    let started = Instant::now();
                    let result = c.scan(message).await;
                    self.metrics
                        .scanned("clamd", started.elapsed().as_secs_f64());
                    self.outcome("clamd", &c.address, result)
                }
            }
        };
        let (spam, virus) = tokio::join!(spam, virus);
        let decision = verdict::decide(&self.policy, &spam, &virus);
        let score = match &spam {
            Outcome::Done(s) => Some(s.score),
            _ => None,
        };
        let virus = match virus {
            Outcome::Done(Virus::Found(name)) => Some(name),
            _ => None,
        };
        let (action, label) = match decision {
            Decision::Reject(reply, label) => (Action::Reject(reply), label),
            Decision::TempFail(reply, label) => (Action::TempFail(reply), label),
            Decision::Deliver {
                fields,
                subject_tag,
                tagged,
                label,
            } => {
                let message = headers::rewrite(message, &fields, subject_tag.as_deref());
                (Action::Deliver { message, tagged }, label)
            }
        };
        debug!(label, ?score, ?virus, size, "content judged");
        Judgement {
            action,
            score,
            virus,
            label,
        }
    }

    /// A message too big for `scanner`: not sent to it; `scan.oversize` decides.
    fn oversize<T>(&self, scanner: &'static str, size: usize, limit: u64) -> Outcome<T> {
        info!(
            scanner,
            size,
            limit,
            policy = ?self.policy.oversize,
            "message over a scanner's size limit"
        );
        Outcome::Oversize { size, limit }
    }

    /// A scanner's result as the decision sees it; a failure is logged here, in full.
    fn outcome<T>(
        &self,
        scanner: &'static str,
        address: &Address,
        result: Result<T, Problem>,
    ) -> Outcome<T> {
        match result {
            Ok(v) => Outcome::Done(v),
            Err(problem) => {
                let reason = problem.to_string();
                let e = ScanError {
                    scanner,
                    address: address.clone(),
                    problem,
                };
                warn!(
                    error = %e,
                    on_failure = ?self.policy.on_failure,
                    "content scan failed"
                );
                Outcome::Failed(reason)
            }
        }
    }
}
