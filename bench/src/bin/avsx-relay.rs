//! `avsx-relay`: Postfix's smtp-source sending the same load through avsx (content
//! scanning off and on) and through Postfix relaying to the same smtp-sink, in one run;
//! mails per second, unknown-recipient rejects per second and the ratios to Postfix.
//! Needs root (a network namespace) and Postfix; spamd and clamd for the scanning
//! variant. See `bench/README.md`.
//!
//! Exit status: 0 when every variant that ran gave valid numbers (slow is fine), 1 when
//! something was broken (a server that did not start or died, a mail that never
//! arrived, an unknown recipient accepted), 2 when the run itself could not be set up.

use std::path::PathBuf;
use std::process::ExitCode;

use bench::avsx::{self, Options, report, service};
use clap::Parser;

/// Compares avsx's SMTP relaying with Postfix's.
#[derive(Parser)]
#[command(version)]
struct Args {
    /// Mails per measurement through Postfix and avsx without scanning, and unknown-
    /// recipient transactions per reject measurement.
    #[arg(long, default_value_t = 2000, value_parser = clap::value_parser!(u64).range(10..=1_000_000))]
    messages: u64,
    /// Mails per measurement through avsx with scanning [default: a tenth of
    /// --messages, at least 20].
    #[arg(long, value_parser = clap::value_parser!(u64).range(10..=1_000_000))]
    scan_messages: Option<u64>,
    /// Parallel SMTP sessions of smtp-source.
    #[arg(long, default_value_t = 16, value_parser = clap::value_parser!(u32).range(1..=512))]
    sessions: u32,
    /// Bytes of each mail's body (smtp-source -l).
    #[arg(long, default_value_t = 2048, value_parser = clap::value_parser!(u32).range(0..=10_000_000))]
    size: u32,
    /// Rounds: every variant is measured once per round, the rounds interleaved, and
    /// each figure is the median over the rounds.
    #[arg(long, default_value_t = 3, value_parser = clap::value_parser!(u32).range(1..=20))]
    rounds: u32,
    /// A short run: 500 mails (50 with scanning), one round.
    #[arg(long, conflicts_with_all = ["messages", "scan_messages", "rounds"])]
    quick: bool,
    /// The avsx binary [default: target/release/avsx in this workspace].
    #[arg(long)]
    avsx: Option<PathBuf>,
    /// Accepted so `scripts/bench` can pass its arguments to every benchmark; unused.
    #[arg(long, hide = true)]
    seconds: Option<u32>,
}

fn main() -> ExitCode {
    let args = Args::parse();
    let messages = if args.quick { 500 } else { args.messages };
    let opts = Options {
        avsx: args.avsx.unwrap_or_else(service::default_binary),
        messages,
        scan_messages: if args.quick {
            50
        } else {
            args.scan_messages.unwrap_or((messages / 10).max(20))
        },
        sessions: args.sessions,
        size: args.size,
        rounds: if args.quick { 1 } else { args.rounds },
    };
    let mut out = std::io::stdout();
    let outcomes = match avsx::run(&opts, &mut out) {
        Ok(outcomes) => outcomes,
        Err(e) => {
            eprintln!("avsx-relay: {e:#}");
            return ExitCode::from(2);
        }
    };
    if let Err(e) = report::print(&mut out, &outcomes, &opts) {
        eprintln!("avsx-relay: print the report: {e}");
        return ExitCode::from(2);
    }
    if outcomes.iter().any(|o| !o.problems().is_empty()) {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    }
}
