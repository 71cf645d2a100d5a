//! `tlsaudit-vs-testssl`: local TLS servers (openssl s_server three ways, nginx with
//! Mozilla's intermediate profile) audited by tlsaudit and by testssl.sh in one run;
//! seconds per target of each, the ratio, and every protocol or cipher suite where the
//! two disagree. Needs testssl.sh and openssl; root for the nginx target. See
//! `bench/README.md`.
//!
//! Exit status: 0 when every audit produced findings and they agree (slow is fine, a
//! tlsaudit that is not built yet is skipped), 1 when a server did not start, an audit
//! failed or the findings disagree, 2 when the run could not be set up.

use std::path::PathBuf;
use std::process::ExitCode;

use bench::tlsaudit::{self, Options, report, service, testssl};
use clap::Parser;

/// Compares tlsaudit's TLS audit with testssl.sh's, for speed and findings.
#[derive(Parser)]
#[command(version)]
struct Args {
    /// Rounds with a tlsaudit audit of every target; its figures are medians.
    #[arg(long, default_value_t = 3, value_parser = clap::value_parser!(u32).range(1..=50))]
    rounds: u32,
    /// Rounds (the first ones) with a testssl.sh audit of every target. testssl.sh takes
    /// 10 to 30 s per target here and varies little.
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..=20))]
    testssl_rounds: u32,
    /// One round of each.
    #[arg(long, conflicts_with_all = ["rounds", "testssl_rounds"])]
    quick: bool,
    /// Leave out the nginx target (it needs root).
    #[arg(long)]
    no_nginx: bool,
    /// The tlsaudit binary [default: target/release/tlsaudit in this workspace].
    #[arg(long)]
    tlsaudit: Option<PathBuf>,
    /// The testssl.sh script.
    #[arg(long, default_value = testssl::DEFAULT)]
    testssl: PathBuf,
    /// Accepted so `scripts/bench` can pass its arguments to every benchmark; unused.
    #[arg(long, hide = true)]
    seconds: Option<u32>,
}

fn main() -> ExitCode {
    let args = Args::parse();
    let opts = Options {
        tlsaudit: args.tlsaudit.unwrap_or_else(service::default_binary),
        testssl: args.testssl,
        rounds: if args.quick { 1 } else { args.rounds },
        testssl_rounds: if args.quick { 1 } else { args.testssl_rounds },
        nginx: !args.no_nginx,
    };
    let mut out = std::io::stdout();
    let outcomes = match tlsaudit::run(&opts, &mut out) {
        Ok(outcomes) => outcomes,
        Err(e) => {
            eprintln!("tlsaudit-vs-testssl: {e:#}");
            return ExitCode::from(2);
        }
    };
    if let Err(e) = report::print(&mut out, &outcomes) {
        eprintln!("tlsaudit-vs-testssl: print the report: {e}");
        return ExitCode::from(2);
    }
    let broken = outcomes
        .targets
        .iter()
        .any(|o| !o.problems().is_empty() || !o.disagreements().is_empty());
    if broken {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    }
}
