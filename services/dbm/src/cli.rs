//! The command line: `dbm plan`.

use std::path::Path;
use std::process::ExitCode;

use appliance::cli::CommonArgs;

use dbm::config::Config;

/// Default migration plan.
const DEFAULT_CONFIG: &str = "/etc/dbm/plan.toml";

/// Live MySQL/MariaDB migration with about a second of downtime: seed a new master db1
/// from db0 with a hot physical backup, replicate db0 -> db1 -> db2, cut over, verify.
#[derive(Debug, clap::Parser)]
#[command(name = "dbm", version)]
pub struct Args {
    #[command(flatten)]
    pub common: CommonArgs,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, clap::Subcommand)]
pub enum Command {
    /// Connect to db0, db1 and db2, check every precondition and print the steps the
    /// run will take; changes nothing. Exits 1 when a precondition fails.
    Plan,
}

fn load(path: &Path) -> anyhow::Result<Config> {
    Ok(appliance::config::load::<Config>(path)?)
}

pub fn dispatch(args: Args) -> anyhow::Result<ExitCode> {
    let config = load(&args.common.config_or(DEFAULT_CONFIG))?;
    match args.command {
        Command::Plan => plan(&config),
    }
}

fn plan(config: &Config) -> anyhow::Result<ExitCode> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let report = runtime.block_on(dbm::plan::check(config));
    print!("{report}");
    Ok(if report.ok() {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}
