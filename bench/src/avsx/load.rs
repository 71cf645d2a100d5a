//! The load: Postfix's `smtp-source`, run inside the benchmark's namespace against one
//! server, timed by the wall clock, and checked against what reached the sink.
//!
//! * Mail: `smtp-source -s SESSIONS -m N -l SIZE -N -t user@DOMAIN`: every
//!   transaction on a new connection (`HELO`, `MAIL`, one `RCPT`, `DATA`, `QUIT`), as
//!   most senders reach an MX; `-N` numbers the recipients (`1user@`, `2user@`, ...), so
//!   each mail goes to a different known address and no lookup cache hits every time.
//!   Two times are taken: when smtp-source exits (every mail *answered* `250`) and when
//!   the sink has counted all N (every mail *delivered*). For a relay that queues,
//!   like Postfix, the two differ; avsx answers only after the internal server took
//!   the mail, so for it they are nearly the same.
//! * Rejects: the same with `-A` (go on after a refusal) to `nobody@DOMAIN`, numbered
//!   too: every transaction is refused at `RCPT`, smtp-source says `RSET` and `QUIT`.
//!   The time until smtp-source exits, a count of the `550` refusals it reports, and a
//!   check that nothing reached the sink.
//!
//! smtp-source's exit is seen within a millisecond (its status is polled that often),
//! the sink's count within 2 ms: well under 1 % of a measurement of a second or more.

use std::io::Read;
use std::net::SocketAddr;
use std::process::Stdio;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use testbed::Netns;
use testbed::servers::SmtpSink;

use crate::cmd;

/// The recipient that `-N` numbers: `1user@DOMAIN`, `2user@DOMAIN`, ...
pub const KNOWN: &str = "user";
/// An unknown recipient, numbered the same way.
pub const UNKNOWN: &str = "nobody";
/// Envelope sender and HELO name of the load.
pub const SENDER: &str = "sender@example.net";
pub const HELO: &str = "client.example.net";

/// The known addresses `1user@domain` .. `{count}user@domain`.
pub fn known_addresses(domain: &str, count: u64) -> Vec<String> {
    (1..=count)
        .map(|i| format!("{i}{KNOWN}@{domain}"))
        .collect()
}

/// The shape of the load.
#[derive(Debug, Clone, Copy)]
pub struct Shape {
    /// Parallel SMTP sessions.
    pub sessions: u32,
    /// Bytes of message body.
    pub size: u32,
}

/// What one smtp-source run did.
#[derive(Debug, Clone)]
pub struct Run {
    /// Transactions sent.
    pub transactions: u64,
    /// From the start until smtp-source exited; none when it was killed.
    pub answered: Option<Duration>,
    /// From the start until the sink had every mail (mail runs only).
    pub delivered: Option<Duration>,
    /// Everything that went wrong; empty when the run is fully valid.
    pub problems: Vec<String>,
}

impl Run {
    /// Transactions per second until smtp-source exited.
    pub fn answered_rate(&self) -> Option<f64> {
        self.answered
            .map(|d| self.transactions as f64 / d.as_secs_f64())
    }

    /// Mails per second until the sink had them all.
    pub fn delivered_rate(&self) -> Option<f64> {
        self.delivered
            .map(|d| self.transactions as f64 / d.as_secs_f64())
    }
}

/// How long a run may take: at least 5 transactions a second, plus a minute.
fn deadline(transactions: u64) -> Duration {
    Duration::from_secs(60 + transactions / 5)
}

/// How long the sink may take to see the last mail after smtp-source exited (Postfix
/// delivers from its queue after answering).
const DELIVERY_GRACE: Duration = Duration::from_secs(60);
/// How long a reject run waits for mail that should not come before checking the sink.
const REJECT_GRACE: Duration = Duration::from_millis(300);

/// Sends `messages` mails to known recipients through `server`; waits until the sink
/// has them all.
pub fn mail(
    ns: &Netns,
    server: SocketAddr,
    sink: &SmtpSink,
    domain: &str,
    messages: u64,
    shape: Shape,
) -> Result<Run> {
    let to = format!("{KNOWN}@{domain}");
    let args = source_args(server, &to, messages, shape, false);
    let before = sink.delivered()?;
    let (mut run, output) = smtp_source(ns, &args, messages, Some((sink, before)))?;
    if let Some(status) = output.failed {
        run.problems.push(format!(
            "smtp-source failed ({status}): {}",
            first_complaint(&output.stderr)
        ));
    }
    if run.delivered.is_none() {
        let arrived = sink.delivered()?.saturating_sub(before);
        run.problems.push(format!(
            "{arrived} of {messages} mails reached the sink within {DELIVERY_GRACE:?} of the end"
        ));
    }
    Ok(run)
}

/// Sends `transactions` transactions to unknown recipients; each must be refused with
/// 550 at RCPT and nothing may reach the sink.
pub fn reject(
    ns: &Netns,
    server: SocketAddr,
    sink: &SmtpSink,
    domain: &str,
    transactions: u64,
    shape: Shape,
) -> Result<Run> {
    let to = format!("{UNKNOWN}@{domain}");
    let args = source_args(server, &to, transactions, shape, true);
    let before = sink.delivered()?;
    let (mut run, output) = smtp_source(ns, &args, transactions, None)?;
    if let Some(status) = output.failed {
        run.problems.push(format!(
            "smtp-source failed ({status}): {}",
            first_complaint(&output.stderr)
        ));
    }
    let refused = refusals(&output.stderr);
    if refused != transactions {
        run.problems.push(format!(
            "{refused} of {transactions} transactions refused at RCPT with 550 (first complaint: {})",
            first_complaint(&output.stderr)
        ));
    }
    std::thread::sleep(REJECT_GRACE);
    let arrived = sink.delivered()?.saturating_sub(before);
    if arrived > 0 {
        run.problems.push(format!(
            "{arrived} mails for unknown recipients reached the sink"
        ));
    }
    Ok(run)
}

fn source_args(server: SocketAddr, to: &str, count: u64, shape: Shape, go_on: bool) -> Vec<String> {
    let mut args: Vec<String> = vec![
        "-s".into(),
        shape.sessions.to_string(),
        "-m".into(),
        count.to_string(),
        "-l".into(),
        shape.size.to_string(),
        "-N".into(),
        "-f".into(),
        SENDER.into(),
        "-t".into(),
        to.into(),
        "-M".into(),
        HELO.into(),
        "-S".into(),
        "Load test".into(),
    ];
    if go_on {
        args.push("-A".into());
    }
    args.push(format!("inet:{server}"));
    args
}

/// What smtp-source said, and its failure status if it failed.
struct Output {
    stderr: String,
    failed: Option<String>,
}

/// Runs smtp-source with `args` and times it; with `sink`, also waits (up to
/// [`DELIVERY_GRACE`] after smtp-source's exit) until the sink's count has grown by
/// `transactions` from the given start.
fn smtp_source(
    ns: &Netns,
    args: &[String],
    transactions: u64,
    sink: Option<(&SmtpSink, u64)>,
) -> Result<(Run, Output)> {
    let mut cmd = ns.command("smtp-source");
    cmd.args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let shown = cmd::shown(&cmd);
    let limit = deadline(transactions);
    let start = Instant::now();
    let mut child = cmd.spawn().with_context(|| format!("start `{shown}`"))?;
    let (mut out, mut err) = (child.stdout.take(), child.stderr.take());
    std::thread::scope(|s| {
        // Drained while it runs: thousands of warnings would fill the pipe and stall it.
        let out = s.spawn(move || read_all(out.as_mut()));
        let err = s.spawn(move || read_all(err.as_mut()));
        // When smtp-source ended (by itself or killed), and how, if not well.
        let mut exited: Option<Duration> = None;
        let mut failed: Option<String> = None;
        let mut delivered = None;
        let mut last_sink_check = Instant::now() - Duration::from_secs(1);
        let mut problems = Vec::new();
        loop {
            let now = Instant::now();
            if exited.is_none() {
                if let Some(status) = child
                    .try_wait()
                    .with_context(|| format!("wait for `{shown}`"))?
                {
                    exited = Some(start.elapsed());
                    if !status.success() {
                        failed = Some(status.to_string());
                    }
                } else if now - start > limit {
                    let _ = child.kill();
                    let _ = child.wait();
                    exited = Some(start.elapsed());
                    failed = Some(format!("killed after {limit:?}"));
                    problems.push(format!("`{shown}` did not finish within {limit:?}"));
                }
            }
            match sink {
                Some((sink, before)) if delivered.is_none() => {
                    if now - last_sink_check >= Duration::from_millis(2) {
                        last_sink_check = now;
                        if sink.delivered()?.saturating_sub(before) >= transactions {
                            delivered = Some(start.elapsed());
                        }
                    }
                    if exited.is_some_and(|t| now - start > t + DELIVERY_GRACE) {
                        break;
                    }
                }
                _ if exited.is_some() => break,
                _ => {}
            }
            std::thread::sleep(Duration::from_millis(1));
        }
        // A killed smtp-source has no meaningful time.
        let killed = failed.as_deref().is_some_and(|f| f.starts_with("killed"));
        let answered = if killed { None } else { exited };
        let _ = out.join();
        let stderr = err.join().unwrap_or_default();
        Ok((
            Run {
                transactions,
                answered,
                delivered,
                problems,
            },
            Output { stderr, failed },
        ))
    })
}

/// smtp-source's warnings about recipients refused with 550.
fn refusals(stderr: &str) -> u64 {
    stderr
        .lines()
        .filter(|l| l.contains("recipient rejected: 550"))
        .count() as u64
}

/// The first line of smtp-source's complaints, or a note that there were none.
fn first_complaint(stderr: &str) -> String {
    stderr
        .lines()
        .map(str::trim)
        .find(|l| !l.is_empty())
        .unwrap_or("(smtp-source said nothing)")
        .to_owned()
}

fn read_all(pipe: Option<&mut impl Read>) -> String {
    let mut bytes = Vec::new();
    if let Some(pipe) = pipe {
        let _ = pipe.read_to_end(&mut bytes);
    }
    String::from_utf8_lossy(&bytes).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_only_550_refusals() {
        let stderr = "\
smtp-source: warning: recipient rejected: 550 5.1.1 <1nobody@perimeter.test>: Recipient address rejected: User unknown in relay recipient table
smtp-source: warning: recipient rejected: 450 4.7.1 <2nobody@perimeter.test>: try again later
smtp-source: warning: recipient rejected: 550 5.1.1 <3nobody@perimeter.test>: User unknown
";
        assert_eq!(refusals(stderr), 2);
        assert!(first_complaint(stderr).contains("1nobody"));
        assert_eq!(first_complaint(""), "(smtp-source said nothing)");
    }

    #[test]
    fn mail_runs_number_known_recipients_and_reject_runs_go_on() {
        let server = "127.0.0.1:2526".parse().unwrap();
        let shape = Shape {
            sessions: 16,
            size: 2048,
        };
        let mail = source_args(server, "user@perimeter.test", 2000, shape, false);
        assert_eq!(
            mail.join(" "),
            "-s 16 -m 2000 -l 2048 -N -f sender@example.net -t user@perimeter.test \
             -M client.example.net -S Load test inet:127.0.0.1:2526"
        );
        let reject = source_args(server, "nobody@perimeter.test", 10, shape, true);
        assert!(reject.contains(&"-A".to_owned()));
        assert_eq!(
            known_addresses("perimeter.test", 2),
            ["1user@perimeter.test", "2user@perimeter.test"]
        );
    }

    #[test]
    fn rates_are_transactions_over_time() {
        let run = Run {
            transactions: 1000,
            answered: Some(Duration::from_millis(500)),
            delivered: Some(Duration::from_secs(2)),
            problems: Vec::new(),
        };
        assert_eq!(run.answered_rate(), Some(2000.0));
        assert_eq!(run.delivered_rate(), Some(500.0));
    }
}
