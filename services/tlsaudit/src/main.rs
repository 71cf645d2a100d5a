//! `tlsaudit`: parses arguments, starts logging and maps errors to exit codes (64 for a
//! bad command line or targets file, 1 for a failure); the commands live in `cli/`, one
//! file each.

mod cli;

use std::process::ExitCode;

use appliance::cli::EXIT_CONFIG as EXIT_USAGE;
use clap::Parser;

fn main() -> ExitCode {
    // clap exits 2 on a bad command line; here 2 means "below --fail-below", so bad
    // usage exits 64, as everywhere else.
    let args = cli::Args::try_parse().unwrap_or_else(|e| {
        let _ = e.print();
        std::process::exit(if e.exit_code() == 0 { 0 } else { EXIT_USAGE });
    });
    let common = args.common.clone();
    appliance::cli::main(
        "tlsaudit",
        &common,
        || cli::dispatch(args),
        |c| c.is::<cli::UsageError>(),
    )
}
