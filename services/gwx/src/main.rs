//! `gwx`: the DDoS gateway's command line. Each subcommand lives in its own file under
//! `cli/`; this file only parses arguments, starts logging and maps errors to exit codes.

mod cli;

use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    let args = cli::Args::parse();
    if let Err(e) = appliance::logging::init(args.common.log_format, &args.common.log_level) {
        eprintln!("gwx: {e}");
        return ExitCode::from(appliance::cli::EXIT_CONFIG as u8);
    }
    match cli::dispatch(args) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("gwx: {e:#}");
            ExitCode::from(cli::exit_code(&e))
        }
    }
}
