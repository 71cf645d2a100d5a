//! `gwx`: the DDoS gateway's command line. Each subcommand lives in its own file under
//! `cli/`; this file only parses arguments, starts logging and maps errors to exit codes.

mod cli;

use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    let args = cli::Args::parse();
    let common = args.common.clone();
    appliance::cli::main(
        "gwx",
        &common,
        || cli::dispatch(args),
        |c| c.is::<cli::UsageError>(),
    )
}
