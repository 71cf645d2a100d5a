//! `dbm`: parses arguments, starts logging and maps errors to exit codes; the commands
//! are in `cli.rs`, the work in the library.

mod cli;

use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    let args = cli::Args::parse();
    let common = args.common.clone();
    appliance::cli::main("dbm", &common, || cli::dispatch(args), |_| false)
}
