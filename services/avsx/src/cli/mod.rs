//! The command line: `avsx run|check|recipients sync|stats`.

mod run;
mod stats;

use std::process::ExitCode;

use anyhow::Context;
use appliance::cli::CommonArgs;
use avsx::config::Config;
use clap::{Parser, Subcommand};

const DEFAULT_CONFIG: &str = "/etc/avsx/avsx.toml";

/// The mail perimeter: accepts mail only for recipients that exist (a recipient map,
/// then LDAP), judges it with spamd and clamd before accepting, and relays clean mail
/// to the internal server. It answers 250 only once the internal server accepted the
/// mail, so it never has to send a bounce. The config is /etc/avsx/avsx.toml unless
/// --config says otherwise.
#[derive(Debug, Parser)]
#[command(name = "avsx", version)]
pub struct Args {
    #[command(flatten)]
    pub common: CommonArgs,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Serve SMTP. SIGHUP re-reads the recipient map and the TLS certificate; SIGTERM
    /// stops accepting and lets transactions in flight finish.
    Run,
    /// Validate the config and print what it sets up.
    Check,
    /// The static recipient map.
    Recipients {
        #[command(subcommand)]
        command: RecipientsCommand,
    },
    /// Score statistics of the verdicts: histogram, and what other tag/kill levels
    /// would have done.
    Stats(stats::StatsArgs),
}

#[derive(Debug, Subcommand)]
pub enum RecipientsCommand {
    /// Rebuild the map from LDAP (every `mail` and `smtp:` proxy address under the base
    /// DN), print what changed and write it atomically. Refuses a shrink beyond
    /// `recipients.ldap.max_shrink_percent` unless --force.
    Sync {
        /// Write the map even if it shrinks by more than allowed.
        #[arg(long)]
        force: bool,
        /// Print what would change; write nothing.
        #[arg(long)]
        dry_run: bool,
    },
}

pub fn dispatch(args: Args) -> anyhow::Result<ExitCode> {
    let path = args.common.config_or(DEFAULT_CONFIG);
    let config: Config = appliance::config::load(&path)?;
    match args.command {
        Command::Run => run::run(&args.common, config),
        Command::Check => {
            print!("{}", run::summary(&config));
            Ok(ExitCode::SUCCESS)
        }
        Command::Recipients {
            command: RecipientsCommand::Sync { force, dry_run },
        } => {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .context("starting the async runtime")?;
            let report = rt.block_on(avsx::recipients::sync(&config.recipients, force, dry_run))?;
            print!("{report}");
            Ok(ExitCode::SUCCESS)
        }
        Command::Stats(a) => stats::run(&config, &a),
    }
}
