//! `gwx-forward`: iperf3 throughput and connections per second through gwx (proxy and
//! L3 mode), HAProxy (mode tcp), nginx stream and plain routing, in one run and one set
//! of network namespaces; prints the numbers, the ratios and the gwx issue's goals.
//! Needs root. See `bench/README.md` for how to read the output.
//!
//! Exit status: 0 when every variant that ran gave numbers (slow is fine), 1 when
//! something was broken (a forwarder that did not start, no throughput, every
//! connection failed), 2 when the run itself could not be set up.

use std::path::PathBuf;
use std::process::ExitCode;

use bench::gwx_forward::{self, Options, Variant, gwx, report};
use clap::Parser;

/// Compares gwx's forwarding with HAProxy, nginx stream and direct routing.
#[derive(Parser)]
#[command(version)]
struct Args {
    /// Seconds per measurement (three measurements per variant and round).
    #[arg(long, default_value_t = 3, value_parser = clap::value_parser!(u32).range(1..=600))]
    seconds: u32,
    /// Rounds: every variant is measured once per round, the rounds interleaved, and
    /// each figure is the median over the rounds. On a small shared machine one run of
    /// a variant varies by about 10%; the median of interleaved rounds much less.
    #[arg(long, default_value_t = 3, value_parser = clap::value_parser!(u32).range(1..=20))]
    rounds: u32,
    /// A short run (about 20 s): 1 second per measurement, one round.
    #[arg(long, conflicts_with_all = ["seconds", "rounds"])]
    quick: bool,
    /// Parallel streams of the second iperf3 measurement.
    #[arg(long, default_value_t = 4, value_parser = clap::value_parser!(u32).range(1..=128))]
    streams: u32,
    /// Concurrent workers of the connection-rate client.
    #[arg(long, default_value_t = 32, value_parser = clap::value_parser!(u64).range(1..=1024))]
    connections: u64,
    /// Threads or processes of every forwarder (HAProxy nbthread, nginx
    /// worker_processes, gwx --threads; 1 = one event loop on one thread).
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u64).range(1..=64))]
    workers: u64,
    /// The gwx binary [default: target/release/gwx in this workspace].
    #[arg(long)]
    gwx: Option<PathBuf>,
    /// Variants to run, in this order, each once [default: all].
    #[arg(long, value_enum, value_delimiter = ',')]
    only: Vec<Variant>,
}

fn main() -> ExitCode {
    let args = Args::parse();
    let opts = Options {
        seconds: if args.quick { 1 } else { args.seconds },
        rounds: if args.quick { 1 } else { args.rounds },
        streams: args.streams,
        connections: args.connections as usize,
        workers: args.workers as usize,
        gwx: args.gwx.unwrap_or_else(gwx::default_binary),
        variants: chosen(args.only),
    };
    let mut out = std::io::stdout();
    let outcomes = match gwx_forward::run(&opts, &mut out) {
        Ok(outcomes) => outcomes,
        Err(e) => {
            eprintln!("gwx-forward: {e:#}");
            return ExitCode::from(2);
        }
    };
    if let Err(e) = report::print(&mut out, &outcomes, &opts) {
        eprintln!("gwx-forward: print the report: {e}");
        return ExitCode::from(2);
    }
    if outcomes.iter().any(|(_, o)| !o.problems().is_empty()) {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    }
}

/// The variants asked for, in order and without repeats; all of them when none was.
fn chosen(only: Vec<Variant>) -> Vec<Variant> {
    if only.is_empty() {
        return Variant::ALL.to_vec();
    }
    let mut variants = Vec::new();
    for v in only {
        if !variants.contains(&v) {
            variants.push(v);
        }
    }
    variants
}
