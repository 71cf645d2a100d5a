//! `gwx-bans`: fail2ban-regex against `gwx bans regex` on the same filter and a
//! generated log of a million lines (lines/s of each, one core, and the ratio); the
//! time from the line crossing maxretry to the ban in the kernel; the time to load
//! 100,000 saved bans. Needs root (namespaces, nftables) and fail2ban. See
//! `bench/README.md`.
//!
//! Exit status: 0 when every figure was measured (slow is fine), 1 when something was
//! broken or could not be set up.

use std::path::PathBuf;
use std::process::ExitCode;

use bench::gwx_bans::{self, Options};
use bench::gwx_forward::gwx::default_binary;
use clap::Parser;

/// Compares gwx's ban matcher with fail2ban's and times bans into nftables.
#[derive(Parser)]
#[command(version)]
struct Args {
    /// Lines of the generated log gwx reads.
    #[arg(long, default_value_t = 1_000_000, value_parser = clap::value_parser!(u64).range(1000..))]
    lines: u64,
    /// Lines fail2ban-regex reads (a prefix of the same log) [default: all of them].
    #[arg(long)]
    fail2ban_lines: Option<u64>,
    /// A short run: 100,000 lines, 5 latency trials, 10,000 bans to load.
    #[arg(long, conflicts_with_all = ["lines", "fail2ban_lines"])]
    quick: bool,
    /// Ban-latency trials.
    #[arg(long, default_value_t = 20)]
    trials: usize,
    /// Saved bans to load.
    #[arg(long, default_value_t = 100_000)]
    load: usize,
    /// The CPU both matchers are pinned to.
    #[arg(long, default_value_t = 0)]
    cpu: usize,
    /// The gwx binary [default: target/release/gwx in this workspace].
    #[arg(long)]
    gwx: Option<PathBuf>,
    /// Accepted so `scripts/bench` can pass its arguments to every benchmark; unused.
    #[arg(long, hide = true)]
    seconds: Option<u32>,
    /// Accepted so `scripts/bench` can pass its arguments to every benchmark; unused.
    #[arg(long, hide = true)]
    rounds: Option<u32>,
}

fn main() -> ExitCode {
    let args = Args::parse();
    let lines = if args.quick { 100_000 } else { args.lines };
    let opts = Options {
        gwx: args.gwx.unwrap_or_else(default_binary),
        lines,
        fail2ban_lines: args.fail2ban_lines.unwrap_or(lines),
        latency_trials: if args.quick { 5 } else { args.trials.max(1) },
        load_bans: if args.quick { 10_000 } else { args.load.max(1) },
        cpu: args.cpu,
    };
    match gwx_bans::run(&opts, &mut std::io::stdout()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("gwx-bans: {e:#}");
            ExitCode::from(1)
        }
    }
}
