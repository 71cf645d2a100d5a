//! `tlsaudit-vs-testssl`: the same local TLS servers audited by tlsaudit and by
//! testssl.sh in one run; seconds per target of each (start to exit of the process),
//! the ratio, and every protocol or cipher suite where their findings differ.
//!
//! * The targets ([`targets`]) run on 127.0.0.1 for the whole run: `openssl s_server`
//!   three ways (modern, legacy, TLS 1.3 only) and nginx with Mozilla's intermediate
//!   profile.
//! * Each round audits every target with testssl.sh and then with tlsaudit, so a slow
//!   drift of the machine hits both alike. testssl.sh takes 10 to 30 s per target, so
//!   it runs in the first `testssl_rounds` rounds only (default 1); tlsaudit in the
//!   first `rounds` (default 3). Figures are medians over a tool's runs.
//! * What is compared ([`findings`]): per protocol (SSLv3 to TLS 1.3) whether it is
//!   accepted, and the accepted suites per protocol, by code point. The reference is
//!   testssl.sh's first run; every tlsaudit run is compared with it, and later
//!   testssl.sh runs too (a scanner that disagrees with itself is worth knowing).
//! * What is assumed about each tool is in [`testssl`] and [`service`]; a missing
//!   tlsaudit binary or `tls` command skips tlsaudit and testssl.sh is still measured.
//!
//! The goal of the issue: at least 20 times faster than testssl.sh, with the same
//! protocol and cipher findings.

pub mod findings;
pub mod report;
pub mod service;
pub mod targets;
pub mod testssl;

use std::io::Write;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use anyhow::{Context, Result, bail};

use crate::cmd;
use findings::Findings;

/// How much faster than testssl.sh tlsaudit must be, per target.
pub const GOAL_RATIO: f64 = 20.0;

#[derive(Debug, Clone)]
pub struct Options {
    pub tlsaudit: PathBuf,
    pub testssl: PathBuf,
    /// Rounds with a tlsaudit run per target.
    pub rounds: u32,
    /// Rounds (the first ones) with a testssl.sh run per target.
    pub testssl_rounds: u32,
    /// Audit nginx with the intermediate profile too (needs root).
    pub nginx: bool,
}

/// One audit of one target by one tool.
#[derive(Debug, Clone)]
pub struct Run {
    pub round: u32,
    /// Start to exit of the process.
    pub seconds: f64,
    /// What it found, or why there is nothing to compare.
    pub findings: Result<Findings, String>,
}

/// What became of one target.
#[derive(Debug, Clone)]
pub struct Outcome {
    pub name: &'static str,
    pub what: &'static str,
    pub addr: Option<SocketAddr>,
    /// Why the server did not start, if it did not.
    pub broken: Option<String>,
    pub testssl: Vec<Run>,
    pub tlsaudit: Vec<Run>,
}

impl Outcome {
    /// Median seconds of the tool's runs that produced findings.
    pub fn median(runs: &[Run]) -> Option<f64> {
        let s: Vec<f64> = runs
            .iter()
            .filter(|r| r.findings.is_ok())
            .map(|r| r.seconds)
            .collect();
        (!s.is_empty()).then(|| crate::table::quantile(&s, 0.5))
    }

    /// testssl.sh's first findings: what tlsaudit is compared with.
    pub fn reference(&self) -> Option<&Run> {
        self.testssl.iter().find(|r| r.findings.is_ok())
    }

    /// Disagreements with the reference, each with the runs that show it, e.g.
    /// `TLSv1.1: testssl.sh accepted, tlsaudit not accepted (tlsaudit rounds 1, 2, 3)`.
    pub fn disagreements(&self) -> Vec<String> {
        let Some(reference) = self.reference() else {
            return Vec::new();
        };
        let Ok(base) = &reference.findings else {
            return Vec::new();
        };
        let mut found: Vec<(String, Vec<String>)> = Vec::new();
        let others = self
            .testssl
            .iter()
            .filter(|r| r.round != reference.round)
            .map(|r| ("testssl.sh", r))
            .chain(self.tlsaudit.iter().map(|r| ("tlsaudit", r)));
        for (tool, run) in others {
            let Ok(f) = &run.findings else { continue };
            let label = format!("{tool} round {}", run.round);
            let name = if tool == "testssl.sh" {
                label.clone()
            } else {
                tool.to_owned()
            };
            for line in findings::disagreements("testssl.sh", base, &name, f) {
                match found.iter_mut().find(|(l, _)| *l == line) {
                    Some((_, runs)) => runs.push(label.clone()),
                    None => found.push((line, vec![label.clone()])),
                }
            }
        }
        found
            .into_iter()
            .map(|(line, runs)| format!("{line} ({})", runs.join(", ")))
            .collect()
    }

    /// Everything broken: the server, or a run without findings.
    pub fn problems(&self) -> Vec<String> {
        let runs = self
            .testssl
            .iter()
            .map(|r| ("testssl.sh", r))
            .chain(self.tlsaudit.iter().map(|r| ("tlsaudit", r)));
        self.broken
            .iter()
            .cloned()
            .chain(runs.filter_map(|(tool, r)| {
                r.findings
                    .as_ref()
                    .err()
                    .map(|e| format!("{tool} round {}: {e}", r.round))
            }))
            .collect()
    }
}

/// What the run produced.
#[derive(Debug, Clone)]
pub struct Outcomes {
    /// Why tlsaudit did not run, if it did not.
    pub tlsaudit_skipped: Option<String>,
    pub targets: Vec<Outcome>,
}

/// Runs the benchmark, printing progress to `out`; [`report::print`] prints the result.
/// Errors are failures to set the run up (testssl.sh missing, no temporary directory).
pub fn run(opts: &Options, out: &mut impl Write) -> Result<Outcomes> {
    if !opts.testssl.is_file() {
        bail!(
            "testssl.sh not found at {} (Debian package testssl.sh)",
            opts.testssl.display()
        );
    }
    testbed::require::tool("openssl", "openssl")?;
    let skipped = service::unavailable(&opts.tlsaudit);
    let dir = crate::daemon::Daemon::dir("tlsaudit")?;

    let mut targets = Vec::new();
    let mut outcomes = Vec::new();
    for spec in targets::specs(opts.nginx) {
        let (addr, broken) = match spec.start() {
            Ok(t) => {
                let addr = t.addr;
                targets.push(Some(t));
                (Some(addr), None)
            }
            Err(e) => {
                targets.push(None);
                (None, Some(format!("{e:#}")))
            }
        };
        outcomes.push(Outcome {
            name: spec.name,
            what: spec.what,
            addr,
            broken,
            testssl: Vec::new(),
            tlsaudit: Vec::new(),
        });
    }

    header(out, opts, &skipped, &outcomes)?;
    let rounds = opts.rounds.max(opts.testssl_rounds);
    for round in 1..=rounds {
        for (outcome, target) in outcomes.iter_mut().zip(&targets) {
            let Some(target) = target else { continue };
            if round <= opts.testssl_rounds {
                let json = dir
                    .path()
                    .join(format!("testssl-{}-{round}.json", target.name));
                let run = timed(
                    round,
                    testssl::command(&opts.testssl, target.addr, &json),
                    testssl::TIMEOUT,
                    |_| {
                        let text = std::fs::read_to_string(&json)
                            .with_context(|| format!("read {}", json.display()))?;
                        testssl::parse(&text)
                    },
                );
                progress(out, round, target.name, "testssl.sh", &run)?;
                outcome.testssl.push(run);
            }
            if round <= opts.rounds && skipped.is_none() {
                let run = timed(
                    round,
                    service::command(&opts.tlsaudit, target.addr, &target.ca),
                    service::TIMEOUT,
                    service::parse,
                );
                progress(out, round, target.name, "tlsaudit", &run)?;
                outcome.tlsaudit.push(run);
            }
        }
    }
    drop(targets);
    Ok(Outcomes {
        tlsaudit_skipped: skipped,
        targets: outcomes,
    })
}

/// Runs `cmd` to completion and reads its findings with `read` (given its stdout). A
/// run that failed to produce findings says why, with what the program printed.
fn timed(
    round: u32,
    mut cmd: Command,
    timeout: Duration,
    read: impl FnOnce(&str) -> Result<Findings>,
) -> Run {
    let (seconds, findings) = match cmd::run(&mut cmd, timeout) {
        Err(e) => (f64::NAN, Err(format!("{e:#}"))),
        Ok(output) => (
            output.seconds,
            read(&output.stdout).map_err(|e| {
                let lines: Vec<&str> = output.complaint().lines().collect();
                let said = lines[lines.len().saturating_sub(5)..].join(" | ");
                format!("{e:#} (exit {}; it said: {said})", output.status)
            }),
        ),
    };
    Run {
        round,
        seconds,
        findings,
    }
}

fn progress(out: &mut impl Write, round: u32, target: &str, tool: &str, run: &Run) -> Result<()> {
    match &run.findings {
        Ok(f) => writeln!(
            out,
            "   round {round}: {target:<7} {tool:<10} {:>8.3} s  {}",
            run.seconds,
            f.summary()
        )?,
        Err(e) => writeln!(out, "   round {round}: {target:<7} {tool:<10} FAILED: {e}")?,
    }
    out.flush()?;
    Ok(())
}

/// The run's header: the tools, their versions, the targets.
fn header(
    out: &mut impl Write,
    opts: &Options,
    skipped: &Option<String>,
    outcomes: &[Outcome],
) -> Result<()> {
    writeln!(
        out,
        "tlsaudit-vs-testssl: the same local TLS servers audited by testssl.sh and by tlsaudit, protocols and cipher suites per protocol compared"
    )?;
    writeln!(out, "versions  {}", testssl::version(&opts.testssl))?;
    match skipped {
        None => writeln!(
            out,
            "          {}",
            cmd::version(&opts.tlsaudit.to_string_lossy(), &["--version"])
        )?,
        Some(why) => writeln!(out, "          tlsaudit: skipped: {why}")?,
    }
    writeln!(
        out,
        "          servers: {}",
        cmd::version("openssl", &["version"])
    )?;
    if opts.nginx {
        writeln!(out, "          {}", cmd::version("nginx", &["-v"]))?;
    }
    writeln!(out, "          kernel {}", cmd::kernel())?;
    let json = Path::new("FILE");
    let example: SocketAddr = ([127, 0, 0, 1], 0).into();
    writeln!(
        out,
        "commands  {} (first {} round(s))",
        cmd::shown(&testssl::command(&opts.testssl, example, json)).replace(":0", ":PORT"),
        opts.testssl_rounds
    )?;
    writeln!(
        out,
        "          {} (first {} round(s)); medians, rounds interleaved",
        cmd::shown(&service::command(
            &opts.tlsaudit,
            example,
            Path::new("CA.pem")
        ))
        .replace(":0", ":PORT"),
        opts.rounds
    )?;
    for o in outcomes {
        match (&o.addr, &o.broken) {
            (Some(addr), _) => writeln!(out, "target    {:<7} {addr:<16} {}", o.name, o.what)?,
            (None, Some(why)) => writeln!(
                out,
                "target    {:<7} did not start: {}",
                o.name,
                why.lines().next().unwrap_or("")
            )?,
            (None, None) => {}
        }
    }
    out.flush()?;
    Ok(())
}
