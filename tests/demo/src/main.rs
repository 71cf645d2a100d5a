//! `grid-demo`: runs the gateway demo and prints what happens.

use std::path::PathBuf;
use std::process::ExitCode;

use appliance::cli::{EXIT_CONFIG, EXIT_FAILURE};
use clap::Parser;

/// Builds a client -> gwx gateways -> hidden backend grid in network namespaces on this
/// machine, runs gwx with the given inventory, sends traffic through every gateway and
/// prints what happened. Needs root.
#[derive(Parser)]
#[command(version)]
struct Args {
    /// The grid inventory.
    #[arg(short, long, default_value = "config/gwx/grid.toml")]
    config: PathBuf,
    /// The gwx binary (default: next to this program).
    #[arg(long)]
    gwx: Option<PathBuf>,
    /// Requests per service and gateway.
    #[arg(long, default_value_t = 2)]
    requests: usize,
}

fn main() -> ExitCode {
    let args = Args::parse();
    let gwx = args.gwx.unwrap_or_else(|| {
        std::env::current_exe()
            .ok()
            .and_then(|p| p.parent().map(|d| d.join("gwx")))
            .unwrap_or_else(|| PathBuf::from("gwx"))
    });
    let opts = demo::Options {
        inventory: args.config,
        gwx,
        requests_per_service: args.requests,
    };
    match demo::run(&opts, &mut std::io::stdout()) {
        Ok(s) if !s.backend_reachable_directly => ExitCode::SUCCESS,
        Ok(_) => {
            eprintln!("grid-demo: the backend was reachable without a gateway");
            ExitCode::from(EXIT_FAILURE as u8)
        }
        Err(e @ (demo::DemoError::Config(_) | demo::DemoError::Layout(_))) => {
            eprintln!("grid-demo: {e}");
            ExitCode::from(EXIT_CONFIG as u8)
        }
        Err(e) => {
            eprintln!("grid-demo: {e}");
            ExitCode::from(EXIT_FAILURE as u8)
        }
    }
}
