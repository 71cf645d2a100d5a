//! `gwx-forward`: gwx against the forwarders it replaces, as the gwx issue asks: iperf3
//! throughput and a connections-per-second client through gwx (proxy mode and L3
//! mode), HAProxy in tcp mode, nginx stream and a direct connection, all in the same
//! run and the same namespaces, with the ratios printed. The goals (gwx's proxy
//! at least HAProxy's throughput and connection rate; L3 mode within 10% of direct) are
//! reported as information, never asserted.
//!
//! One [`Chain`] (client -> gateway -> backend) serves the whole run. The backend runs
//! an iperf3 server and nginx; the gateway runs one [`Variant`] at a time; from the
//! client, each variant gets iperf3 with one stream, iperf3 with several streams, and
//! the connection-rate client, in that order.
//!
//! * [`variants`]: setting each variant up in the gateway and tearing it down;
//! * [`gwx`]: everything assumed about gwx's command line and inventory;
//! * [`report`]: the tables, ratios and goal lines.

pub mod gwx;
pub mod report;
pub mod variants;

use std::io::Write;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Context, Result};
use testbed::topology::Chain;
use testbed::{Netns, require};

use crate::cmd;
use crate::measure::connrate::{self, ConnRate};
use crate::measure::{gbit, iperf};
pub use variants::Variant;
use variants::{Active, Endpoints};

/// What to run and how hard.
#[derive(Debug, Clone)]
pub struct Options {
    /// Seconds per measurement.
    pub seconds: u32,
    /// Interleaved rounds; each figure is the median over them.
    pub rounds: u32,
    /// Parallel streams of the second throughput measurement.
    pub streams: u32,
    /// Concurrent workers of the connection-rate client.
    pub connections: usize,
    /// Threads (HAProxy, gwx) or processes (nginx) of every forwarder.
    pub workers: usize,
    /// The gwx binary.
    pub gwx: PathBuf,
    /// The variants, in the order they run.
    pub variants: Vec<Variant>,
}

/// What one variant gave.
#[derive(Debug)]
pub enum Outcome {
    /// Cannot run on this machine yet (gwx not built): reported, not a failure.
    Skipped(String),
    /// Did not start.
    Failed(String),
    Measured(Measured),
}

/// A variant's measurements; each can fail on its own.
#[derive(Debug)]
pub struct Measured {
    /// Bits per second with one stream.
    pub single: Result<f64, String>,
    /// Bits per second with [`Options::streams`] streams.
    pub parallel: Result<f64, String>,
    pub conns: Result<ConnRate, String>,
}

impl Outcome {
    /// What is broken in this outcome; the run fails when any variant has a problem.
    /// Slow is never a problem; nothing at all is.
    pub fn problems(&self) -> Vec<String> {
        let m = match self {
            Outcome::Skipped(_) => return Vec::new(),
            Outcome::Failed(e) => return vec![format!("did not start: {e}")],
            Outcome::Measured(m) => m,
        };
        let mut problems = Vec::new();
        for (what, bits) in [("1 stream", &m.single), ("parallel streams", &m.parallel)] {
            match bits {
                Err(e) => problems.push(format!("iperf3 {what}: {e}")),
                Ok(b) if *b <= 0.0 => problems.push(format!("iperf3 {what}: no throughput")),
                Ok(_) => {}
            }
        }
        match &m.conns {
            Err(e) => problems.push(format!("connection rate: {e}")),
            Ok(c) if c.ok == 0 => problems.push(format!(
                "connection rate: all {} connections failed: {}",
                c.failed(),
                c.failure_summary()
            )),
            Ok(_) => {}
        }
        problems
    }
}

/// Runs every variant of `opts` once per round, the rounds interleaved (variant A, B, C,
/// then A, B, C again), so slow drifts of the machine hit every variant alike, and
/// returns what each gave: the median of each figure over the rounds. Progress goes to
/// `out`.
pub fn run(opts: &Options, out: &mut dyn Write) -> Result<Vec<(Variant, Outcome)>> {
    require::root()?;
    header(opts, out)?;

    let chain = Chain::new().context("build the client -> gateway -> backend namespaces")?;
    // `direct` and `gwx-l3` need the gateway to route; the proxies do not care.
    chain.gateway.enable_forwarding()?;

    let mut rounds: Vec<(Variant, Vec<Outcome>)> =
        opts.variants.iter().map(|&v| (v, Vec::new())).collect();
    for round in 1..=opts.rounds {
        for (variant, outcomes) in &mut rounds {
            let variant = *variant;
            writeln!(
                out,
                "\n== {} (round {round}/{}): {}",
                variant.name(),
                opts.rounds,
                variant.describe()
            )?;
            let outcome = if let Some(reason) = variant.skip_reason(&opts.gwx) {
                writeln!(out, "   skipped: {reason}")?;
                Outcome::Skipped(reason)
            } else {
                match variant.start(&chain, opts.workers, &opts.gwx) {
                    Ok(active) => Outcome::Measured(measure(&chain.client, &active, opts, out)?),
                    Err(e) => {
                        writeln!(out, "   did not start: {e:#}")?;
                        Outcome::Failed(format!("{e:#}"))
                    }
                }
            };
            outcomes.push(outcome);
        }
    }
    Ok(rounds
        .into_iter()
        .map(|(v, outcomes)| (v, median(outcomes)))
        .collect())
}

/// One outcome for a variant's rounds: skipped or failed if any round was (a failure is
/// never hidden by a good round), else the median of each figure.
fn median(outcomes: Vec<Outcome>) -> Outcome {
    let mut measured = Vec::new();
    for o in outcomes {
        match o {
            Outcome::Measured(m) => measured.push(m),
            other => return other,
        }
    }
    Outcome::Measured(Measured {
        single: median_of(measured.iter().map(|m| m.single.clone()), |b| *b),
        parallel: median_of(measured.iter().map(|m| m.parallel.clone()), |b| *b),
        conns: median_of(
            measured.iter().map(|m| m.conns.clone()),
            ConnRate::per_second,
        ),
    })
}

/// The median of `results` by `key`, or the first error if any round failed.
fn median_of<T>(
    results: impl Iterator<Item = Result<T, String>>,
    key: impl Fn(&T) -> f64,
) -> Result<T, String> {
    let mut values = results.collect::<Result<Vec<T>, String>>()?;
    values.sort_by(|a, b| key(a).total_cmp(&key(b)));
    let middle = (values.len().saturating_sub(1)) / 2;
    values
        .into_iter()
        .nth(middle)
        .ok_or_else(|| "no round measured".to_owned())
}

/// The three measurements through an active variant, each printed as it finishes.
fn measure(
    client: &Netns,
    active: &Active<'_>,
    opts: &Options,
    out: &mut dyn Write,
) -> Result<Measured> {
    let Endpoints { iperf, http } = active.targets;
    // A failed measurement carries the end of the forwarder's log: usually the reason.
    let explain = |e: anyhow::Error| match active.log_tail() {
        Some(tail) if !tail.trim().is_empty() => format!("{e:#}\n--- forwarder log ---\n{tail}"),
        _ => format!("{e:#}"),
    };
    let throughput = |streams: u32, out: &mut dyn Write| -> Result<Result<f64, String>> {
        let label = format!(
            "iperf3 {streams} stream{}",
            if streams == 1 { "" } else { "s" }
        );
        let result = iperf::throughput(client, iperf, opts.seconds, streams).map_err(explain);
        match &result {
            Ok(bits) => writeln!(out, "   {label:<18} {:>8.2} Gbit/s", gbit(*bits))?,
            Err(e) => writeln!(out, "   {label:<18} failed: {e}")?,
        }
        out.flush()?;
        Ok(result)
    };
    let single = throughput(1, out)?;
    let parallel = throughput(opts.streams, out)?;

    let duration = Duration::from_secs(opts.seconds.into());
    let conns = connrate::measure(client, http, duration, opts.connections).map_err(explain);
    match &conns {
        Ok(c) => {
            writeln!(
                out,
                "   {:<18} {:>8.0} /s     ({} ok, {} failed)",
                "connections",
                c.per_second(),
                c.ok,
                c.failed()
            )?;
            if c.failed() > 0 {
                writeln!(out, "   failures: {}", c.failure_summary())?;
            }
        }
        Err(e) => writeln!(out, "   {:<18} failed: {e}", "connections")?,
    }
    out.flush()?;
    Ok(Measured {
        single,
        parallel,
        conns,
    })
}

/// What is compared, how, and with which versions.
fn header(opts: &Options, out: &mut dyn Write) -> Result<()> {
    let version = |program: &str, package: &str, args: &[&str]| {
        require::tool(program, package).map_or_else(
            |e| e.to_string(),
            |path| cmd::version(&path.to_string_lossy(), args),
        )
    };
    let gwx = if opts.gwx.is_file() {
        cmd::version(&opts.gwx.to_string_lossy(), &["--version"])
    } else {
        "not built".to_owned()
    };
    let (w, s, r) = (opts.workers, opts.seconds, opts.rounds);
    let lines = [
        "gwx-forward: gwx against HAProxy (mode tcp), nginx stream and plain routing, \
         in one run and one set of namespaces"
            .to_owned(),
        format!(
            "chain     client {} -> gateway {} | {} -> backend {}",
            Chain::CLIENT,
            Chain::GATEWAY_FRONT,
            Chain::GATEWAY_BACK,
            Chain::BACKEND
        ),
        format!(
            "backend   started per variant: iperf3 -s on port {}+n, nginx (1 worker, fixed \
             reply) on port {}+n",
            iperf::PORT,
            connrate::PORT
        ),
        format!(
            "workers   {w} per forwarder (HAProxy nbthread {w}, nginx worker_processes {w}, \
             gwx --threads {w})"
        ),
        format!(
            "load      iperf3 -t {s} with 1 and {} streams; {s} s of connections (HTTP \
             request, Connection: close) from {} concurrent workers on {} client thread(s)",
            opts.streams,
            opts.connections,
            connrate::client_threads()
        ),
        format!("rounds    {r}, interleaved; every figure is the median over the rounds"),
        format!("versions  {}", version("haproxy", "haproxy", &["-v"])),
        format!("          {}", version("nginx", "nginx-light", &["-v"])),
        format!("          {}", version("iperf3", "iperf3", &["--version"])),
        format!("          kernel {}", cmd::kernel()),
        format!("          gwx: {gwx}"),
    ];
    for line in lines {
        writeln!(out, "{line}")?;
    }
    out.flush()?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn measured(single: Result<f64, String>) -> Outcome {
        Outcome::Measured(Measured {
            single,
            parallel: Ok(1.0),
            conns: Ok(ConnRate::default()),
        })
    }

    fn single(o: &Outcome) -> Result<f64, String> {
        match o {
            Outcome::Measured(m) => m.single.clone(),
            other => panic!("expected a measurement, got {other:?}"),
        }
    }

    #[test]
    fn median_of_three_rounds_is_the_middle_value() {
        let o = median(vec![
            measured(Ok(9.0)),
            measured(Ok(7.0)),
            measured(Ok(8.0)),
        ]);
        assert_eq!(single(&o), Ok(8.0));
    }

    #[test]
    fn a_failed_round_is_never_hidden_by_good_ones() {
        let o = median(vec![
            measured(Ok(9.0)),
            measured(Err("reset".into())),
            measured(Ok(8.0)),
        ]);
        assert_eq!(single(&o), Err("reset".into()));
        let o = median(vec![measured(Ok(9.0)), Outcome::Failed("no start".into())]);
        assert!(matches!(o, Outcome::Failed(_)));
    }
}
