//! `gwx-dns`: dnsperf against `gwx dns run` (4 random healthy addresses of 32 per
//! answer) and against NSD serving the same 32 addresses from a static zone, in one
//! namespace; queries per second and the ratio. Needs root, dnsperf, nsd and dig. See
//! `bench/README.md`.
//!
//! Exit status: 0 when both were measured (slow is fine), 1 when something was broken
//! or could not be set up.

use std::path::PathBuf;
use std::process::ExitCode;

use bench::gwx_dns::{self, Options};
use bench::gwx_forward::gwx::default_binary;
use clap::Parser;

/// Compares gwx's DNS with NSD's static answers.
#[derive(Parser)]
#[command(version)]
struct Args {
    /// Seconds per dnsperf measurement.
    #[arg(long, default_value_t = 5, value_parser = clap::value_parser!(u32).range(1..=600))]
    seconds: u32,
    /// Rounds (nsd, then gwx, each round); figures are medians.
    #[arg(long, default_value_t = 3, value_parser = clap::value_parser!(u32).range(1..=20))]
    rounds: u32,
    /// One round of 2 s.
    #[arg(long, conflicts_with_all = ["seconds", "rounds"])]
    quick: bool,
    /// gwx threads and NSD server processes.
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u64).range(1..=64))]
    workers: u64,
    /// dnsperf's concurrent clients.
    #[arg(long, default_value_t = 8)]
    clients: u32,
    /// The gwx binary [default: target/release/gwx in this workspace].
    #[arg(long)]
    gwx: Option<PathBuf>,
}

fn main() -> ExitCode {
    let args = Args::parse();
    let opts = Options {
        gwx: args.gwx.unwrap_or_else(default_binary),
        seconds: if args.quick { 2 } else { args.seconds },
        rounds: if args.quick { 1 } else { args.rounds },
        workers: args.workers as usize,
        clients: args.clients.max(1),
    };
    match gwx_dns::run(&opts, &mut std::io::stdout()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("gwx-dns: {e:#}");
            ExitCode::from(1)
        }
    }
}
