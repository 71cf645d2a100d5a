//! `grid-demo`: runs the gateway demo with a config file and prints what happens.

use std::path::PathBuf;
use std::process::ExitCode;

use appliance::cli::{EXIT_CONFIG, EXIT_FAILURE};
use clap::Parser;

/// Builds a client -> gateways -> hidden backend grid in network namespaces on this
/// machine, forwards a service through every gateway and prints what happens. Needs root.
#[derive(Parser)]
#[command(version)]
struct Args {
    /// Demo config file.
    #[arg(short, long, default_value = "config/demo-grid.toml")]
    config: PathBuf,
}

fn main() -> ExitCode {
    let args = Args::parse();
    let config: demo::Config = match appliance::config::load(&args.config) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("grid-demo: {e}");
            return ExitCode::from(EXIT_CONFIG as u8);
        }
    };
    match demo::run(&config, &mut std::io::stdout()) {
        Ok(s) if !s.backend_reachable_directly => ExitCode::SUCCESS,
        Ok(_) => {
            eprintln!("grid-demo: the backend was reachable without a gateway");
            ExitCode::from(EXIT_FAILURE as u8)
        }
        Err(e) => {
            eprintln!("grid-demo: {e}");
            ExitCode::from(EXIT_FAILURE as u8)
        }
    }
}
