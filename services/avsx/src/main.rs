//! `avsx`: parses arguments, starts logging and maps errors to exit codes; the commands
//! live in `cli/`.

mod cli;

use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    let args = cli::Args::parse();
    if let Err(e) = appliance::logging::init(args.common.log_format, &args.common.log_level) {
        eprintln!("avsx: {e}");
        return ExitCode::from(appliance::cli::EXIT_CONFIG as u8);
    }
    match cli::dispatch(args) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("avsx: {e:#}");
            ExitCode::from(cli::exit_code(&e))
        }
    }
}
