//! `avsx-relay`: the same SMTP load, Postfix's `smtp-source`, through avsx (content
//! scanning off, and on with spamd and clamd) and through Postfix set up as the
//! perimeter relay it replaces, all relaying to one smtp-sink, in one run and one
//! network namespace; messages per second, unknown-recipient rejects per second, and
//! the ratios to Postfix.
//!
//! * One namespace (its own loopback only) holds everything: the sink (discarding,
//!   counting), Postfix ([`testbed::servers::Postfix`]: `relay_domains`,
//!   `relay_recipient_maps`, relaying to the sink), and when avsx can run, two avsx
//!   instances (scan off, scan on) and the testbed's spamd and clamd.
//! * Both sides know the same recipients: `1user@perimeter.test` up to at least
//!   10,000 (a map of addresses, one per line, the same content for both).
//! * Each variant first gets a small warm-up load (not counted); then every round
//!   measures every variant once, mail first and then rejects, and each figure printed
//!   at the end is the median over the rounds ([`load`] says what is timed).
//! * What avsx is assumed to be is in [`service`]; a missing binary or subcommand skips
//!   its variants and the rest still runs.
//!
//! The goals of the avsx issue: without scanning, at least Postfix's message rate; and
//! at least Postfix's reject rate for unknown recipients.

pub mod load;
pub mod report;
pub mod service;

use std::io::Write;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use tempfile::TempDir;
use testbed::servers::{Clamd, Host, Postfix, PostfixOptions, Server, SmtpSink, Spamd};
use testbed::{Netns, Process};

use crate::cmd;
use load::{Run, Shape};

/// The domain both sides accept mail for.
pub const DOMAIN: &str = "perimeter.test";
/// Known recipients in the map, at the least.
pub const MIN_KNOWN: u64 = 10_000;
/// Transactions of each variant's warm-up.
const WARM_UP: u64 = 50;

const SINK: &str = "127.0.0.1:2525";
const POSTFIX: &str = "127.0.0.1:2526";
const AVSX_OFF: &str = "127.0.0.1:2527";
const AVSX_ON: &str = "127.0.0.1:2528";
const METRICS_OFF: &str = "127.0.0.1:9125";
const METRICS_ON: &str = "127.0.0.1:9126";
const SPAMD: &str = "127.0.0.1:783";
const CLAMD: &str = "127.0.0.1:3310";

/// What to run.
#[derive(Debug, Clone)]
pub struct Options {
    pub avsx: PathBuf,
    /// Mails per measurement (and unknown-recipient transactions per reject
    /// measurement), for Postfix and avsx without scanning.
    pub messages: u64,
    /// Mails per measurement of avsx with scanning (spamd scores a few dozen a second
    /// on a small machine; the full count would take minutes).
    pub scan_messages: u64,
    /// Parallel SMTP sessions of smtp-source.
    pub sessions: u32,
    /// Bytes of each mail's body.
    pub size: u32,
    pub rounds: u32,
}

impl Options {
    fn shape(&self) -> Shape {
        Shape {
            sessions: self.sessions,
            size: self.size,
        }
    }

    /// Mails per measurement of `variant`.
    pub fn messages_for(&self, variant: Variant) -> u64 {
        match variant {
            Variant::AvsxScanOn => self.scan_messages,
            Variant::Postfix | Variant::AvsxScanOff => self.messages,
        }
    }
}

/// A server the load goes through.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Variant {
    /// Postfix relaying to the sink: the peer.
    Postfix,
    /// avsx without `[scan.spamd]` and `[scan.clamd]`.
    AvsxScanOff,
    /// avsx asking spamd and clamd about every mail.
    AvsxScanOn,
}

impl Variant {
    pub const ALL: [Variant; 3] = [Variant::Postfix, Variant::AvsxScanOff, Variant::AvsxScanOn];

    pub fn name(self) -> &'static str {
        match self {
            Variant::Postfix => "postfix",
            Variant::AvsxScanOff => "avsx scan off",
            Variant::AvsxScanOn => "avsx scan on",
        }
    }
}

/// What became of one variant.
#[derive(Debug, Clone)]
pub struct Outcome {
    pub variant: Variant,
    /// Why it did not run, if it did not.
    pub skipped: Option<String>,
    /// Mail measurements, one per round.
    pub mail: Vec<Run>,
    /// Reject measurements, one per round.
    pub reject: Vec<Run>,
    /// Problems outside the measurements (a warm-up that failed, a server that died).
    pub broken: Vec<String>,
}

impl Outcome {
    fn new(variant: Variant) -> Outcome {
        Outcome {
            variant,
            skipped: None,
            mail: Vec::new(),
            reject: Vec::new(),
            broken: Vec::new(),
        }
    }

    /// Median mails per second until smtp-source had every answer.
    pub fn answered(&self) -> Option<f64> {
        median(self.mail.iter().filter_map(Run::answered_rate))
    }

    /// Median mails per second until the sink had every mail.
    pub fn delivered(&self) -> Option<f64> {
        median(self.mail.iter().filter_map(Run::delivered_rate))
    }

    /// Median refused transactions per second.
    pub fn rejects(&self) -> Option<f64> {
        median(self.reject.iter().filter_map(Run::answered_rate))
    }

    /// Everything that went wrong; empty when the variant ran fine or was skipped.
    pub fn problems(&self) -> Vec<String> {
        let runs = self.mail.iter().chain(&self.reject);
        self.broken
            .iter()
            .cloned()
            .chain(runs.flat_map(|r| r.problems.iter().cloned()))
            .collect()
    }
}

fn median(values: impl Iterator<Item = f64>) -> Option<f64> {
    let values: Vec<f64> = values.collect();
    (!values.is_empty()).then(|| crate::table::quantile(&values, 0.5))
}

/// A server under load: where to send, and what to watch for an early exit.
enum Target {
    Postfix(Postfix),
    Avsx(Process),
}

impl Target {
    /// Why the server is gone, if it is.
    fn gone(&mut self) -> Option<String> {
        match self {
            Target::Postfix(p) => {
                (!p.process().is_running()).then(|| format!("postfix exited:\n{}", p.log_tail(20)))
            }
            Target::Avsx(p) => {
                (!p.is_running()).then(|| format!("avsx exited:\n{}", p.log_tail(20)))
            }
        }
    }
}

/// Runs the benchmark, printing progress to `out`; the outcomes feed [`report::print`].
/// Errors are failures to set the run up (not root, no namespace, Postfix or the sink
/// not starting).
pub fn run(opts: &Options, out: &mut impl Write) -> Result<Vec<Outcome>> {
    testbed::require::root()?;
    testbed::require::tool("smtp-source", "postfix")?;
    let ns = Netns::new("avsx")?;
    let at = |addr: &str| Host::Netns(&ns, addr.parse().expect("a fixed address"));
    let dir = crate::daemon::Daemon::dir("avsx")?;

    let sink = SmtpSink::start_discarding(at(SINK)).context("start the sink")?;
    let known = load::known_addresses(DOMAIN, opts.messages.max(opts.scan_messages).max(MIN_KNOWN));
    let map = dir.path().join("relay_recipients");
    let text: String = known.iter().map(|a| format!("{a} OK\n")).collect();
    std::fs::write(&map, text).with_context(|| format!("write {}", map.display()))?;
    let postfix = Postfix::start(
        at(POSTFIX),
        PostfixOptions {
            domains: vec![DOMAIN.to_owned()],
            recipients: known.clone(),
            ..PostfixOptions::new(sink.addr())
        },
    )
    .context("start postfix")?;

    let mut outcomes: Vec<Outcome> = Variant::ALL.iter().map(|&v| Outcome::new(v)).collect();
    let mut targets: Vec<Option<(SocketAddr, Target)>> =
        vec![Some((postfix.addr(), Target::Postfix(postfix))), None, None];
    let skip = service::unavailable(&opts.avsx);
    let mut scanners = None;
    if let Some(why) = &skip {
        outcomes[1].skipped = Some(why.clone());
        outcomes[2].skipped = Some(why.clone());
    } else {
        targets[1] = start_avsx(&ns, &dir, opts, &map, AVSX_OFF, METRICS_OFF, None)
            .map_err(|e| outcomes[1].broken.push(format!("{e:#}")))
            .ok();
        match start_scanners(&ns) {
            Ok((spamd, clamd)) => {
                let scan = service::Scanners {
                    spamd: spamd.addr(),
                    clamd: clamd.addr(),
                };
                scanners = Some((spamd, clamd));
                targets[2] = start_avsx(&ns, &dir, opts, &map, AVSX_ON, METRICS_ON, Some(scan))
                    .map_err(|e| outcomes[2].broken.push(format!("{e:#}")))
                    .ok();
            }
            Err(e) => outcomes[2]
                .broken
                .push(format!("the scanners did not start: {e:#}")),
        }
    }

    header(out, opts, &skip, scanners.is_some())?;
    let shape = opts.shape();
    for (outcome, target) in outcomes.iter_mut().zip(&mut targets) {
        let Some((addr, _)) = target else { continue };
        let n = WARM_UP.min(opts.messages_for(outcome.variant));
        let warm = load::mail(&ns, *addr, &sink, DOMAIN, n, shape)?;
        if !warm.problems.is_empty() {
            outcome
                .broken
                .extend(warm.problems.iter().map(|p| format!("warm-up: {p}")));
            *target = None;
        }
    }
    for round in 1..=opts.rounds {
        for (outcome, target) in outcomes.iter_mut().zip(&mut targets) {
            let Some((addr, server)) = target else {
                continue;
            };
            let name = outcome.variant.name();
            let n = opts.messages_for(outcome.variant);
            let mail = load::mail(&ns, *addr, &sink, DOMAIN, n, shape)?;
            let reject = load::reject(&ns, *addr, &sink, DOMAIN, opts.messages, shape)?;
            writeln!(
                out,
                "   round {round}: {name:<13}  {n} mails: answered {} /s, delivered {} /s;  {} rejects: {} /s{}",
                rate(mail.answered_rate()),
                rate(mail.delivered_rate()),
                opts.messages,
                rate(reject.answered_rate()),
                if mail.problems.is_empty() && reject.problems.is_empty() {
                    ""
                } else {
                    "  (problems, see below)"
                }
            )?;
            out.flush()?;
            outcome.mail.push(mail);
            outcome.reject.push(reject);
            if let Some(why) = server.gone() {
                outcome.broken.push(why);
                *target = None;
            }
        }
    }
    drop(scanners);
    Ok(outcomes)
}

fn rate(value: Option<f64>) -> String {
    crate::table::cell(value, 0)
}

/// The run's header: what runs where, the versions, the load.
fn header(
    out: &mut impl Write,
    opts: &Options,
    skip: &Option<String>,
    scanners: bool,
) -> Result<()> {
    writeln!(
        out,
        "avsx-relay: smtp-source through Postfix and avsx (scan off, scan on), all relaying to one smtp-sink, in one namespace"
    )?;
    let postfix = cmd::version("postconf", &["-d", "-h", "mail_version"]);
    writeln!(out, "versions  Postfix {postfix} (relay and smtp-source)")?;
    match skip {
        None => writeln!(
            out,
            "          {}",
            cmd::version(&opts.avsx.to_string_lossy(), &["--version"])
        )?,
        Some(why) => writeln!(out, "          avsx: {why}")?,
    }
    if scanners {
        writeln!(out, "          {}", cmd::version("spamd", &["--version"]))?;
        writeln!(out, "          {}", cmd::version("clamd", &["--version"]))?;
    }
    writeln!(out, "          kernel {}", cmd::kernel())?;
    writeln!(
        out,
        "load      smtp-source -s {s} -l {l}: {m} mails ({sm} with scanning) to distinct known recipients, {m} to unknown ones, a new connection each; {r} round(s) interleaved, medians",
        s = opts.sessions,
        l = opts.size,
        m = opts.messages,
        sm = opts.scan_messages,
        r = opts.rounds,
    )?;
    out.flush()?;
    Ok(())
}

/// The testbed's spamd and clamd in `ns`.
fn start_scanners(ns: &Netns) -> Result<(Spamd, Clamd)> {
    let at = |addr: &str| Host::Netns(ns, addr.parse().expect("a fixed address"));
    let spamd = Spamd::start(at(SPAMD)).context("start spamd")?;
    let clamd = Clamd::start(at(CLAMD)).context("start clamd")?;
    Ok((spamd, clamd))
}

/// Starts one avsx instance and waits for its `/healthz`.
fn start_avsx(
    ns: &Netns,
    dir: &TempDir,
    opts: &Options,
    map: &std::path::Path,
    smtp: &str,
    metrics: &str,
    scan: Option<service::Scanners>,
) -> Result<(SocketAddr, Target)> {
    let label = if scan.is_some() { "on" } else { "off" };
    let instance = service::Instance {
        smtp: smtp.parse()?,
        metrics: metrics.parse()?,
        map: map.to_owned(),
        relay: SINK.parse()?,
        stats: dir.path().join(format!("verdicts-scan-{label}.jsonl")),
        scan,
    };
    let config = dir.path().join(format!("avsx-scan-{label}.toml"));
    std::fs::write(&config, service::config(&instance, DOMAIN))
        .with_context(|| format!("write {}", config.display()))?;
    let cmd = service::command(ns, &opts.avsx, &config);
    let log = dir.path().join(format!("avsx-scan-{label}.log"));
    let mut process = Process::spawn(&format!("avsx scan {label}"), cmd, &log)?;
    process
        .wait_ready(Duration::from_secs(30), || {
            testbed::clients::healthz(ns, metrics)
        })
        .with_context(|| format!("start avsx (scan {label})"))?;
    if !crate::cmd::listening(ns, instance.smtp)? {
        bail!(
            "avsx (scan {label}) is healthy but does not listen on {}:\n{}",
            instance.smtp,
            process.log_tail(20)
        );
    }
    Ok((instance.smtp, Target::Avsx(process)))
}
