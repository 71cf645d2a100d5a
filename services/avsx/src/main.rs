//! `avsx`: parses arguments, starts logging and maps errors to exit codes; the commands
//! live in `cli/`.

mod cli;

use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    let args = cli::Args::parse();
    let common = args.common.clone();
    appliance::cli::main("avsx", &common, || cli::dispatch(args), |_| false)
}
