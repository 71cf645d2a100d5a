//! Subcommands of `gwx`, one file each, and what they share: the inventory path, the
//! gateway id, and how errors map to exit codes (64 for a bad inventory or arguments,
//! 1 for anything that failed while running).

mod bans;
mod check;
mod dns;
mod ruleset;
mod run;
mod sysctl;

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Context;
use appliance::cli::CommonArgs;
use clap::{Parser, Subcommand};
use gwx::inventory::Inventory;

/// Default inventory location on an appliance.
const DEFAULT_INVENTORY: &str = "/etc/gwx/grid.toml";

/// gwx, the DDoS gateway: forwards service traffic to a hidden backend (L4 proxy or
/// in-kernel DNAT) and hardens the gateway with nftables. One inventory file describes
/// the whole grid; `--gateway` says which gateway this host is.
#[derive(Debug, Parser)]
#[command(version, propagate_version = true)]
pub struct Args {
    #[command(flatten)]
    pub common: CommonArgs,

    /// Which gateway of the inventory this host is.
    #[arg(short, long, global = true, env = "GWX_GATEWAY", value_name = "ID")]
    pub gateway: Option<String>,

    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the gateway: proxy listeners and the metrics endpoint, reload on SIGHUP,
    /// drain on SIGTERM.
    Run(run::RunArgs),
    /// Validate the inventory and print a summary of the grid.
    Check,
    /// Print the gateway's nftables ruleset (JSON for `nft -j -f -`).
    Ruleset,
    /// Apply the gateway's nftables ruleset in one transaction (bans are kept).
    Apply(ruleset::ApplyArgs),
    /// Print (or apply on the backend host) the backend's ruleset: the service ports
    /// accepted only from the gateways.
    BackendRuleset(ruleset::BackendArgs),
    /// Print or write the gateway's sysctl.d file.
    Sysctl(sysctl::SysctlArgs),
    /// Anti-bruteforce bans, fail2ban-compatible: the ban engine, fail2ban-regex for
    /// gwx, and the ban sets.
    Bans(bans::BansArgs),
    /// DNS for the grid: a random subset of the healthy gateway addresses per answer,
    /// and drains for rolling upgrades.
    Dns(dns::DnsArgs),
}

pub fn dispatch(args: Args) -> anyhow::Result<ExitCode> {
    let path = inventory_path(&args.common);
    match args.command {
        Command::Run(run) => run::run(&args.common, &path, &gateway_id(&args.gateway)?, &run),
        Command::Check => check::run(&path),
        Command::Ruleset => ruleset::print_gateway(&path, &gateway_id(&args.gateway)?),
        Command::Apply(a) => ruleset::apply_gateway(&path, &gateway_id(&args.gateway)?, &a),
        Command::BackendRuleset(a) => ruleset::backend(&path, &a),
        Command::Sysctl(a) => sysctl::run(&path, &gateway_id(&args.gateway)?, &a),
        Command::Bans(a) => bans::dispatch(&args.common, &a),
        Command::Dns(a) => dns::dispatch(&args.common, &a),
    }
}

fn inventory_path(common: &CommonArgs) -> PathBuf {
    common.config_or(DEFAULT_INVENTORY)
}

/// `--gateway` is required by the commands that act as one gateway.
fn gateway_id(id: &Option<String>) -> anyhow::Result<String> {
    id.clone().ok_or_else(|| {
        anyhow::Error::new(UsageError(
            "this command needs --gateway ID (or GWX_GATEWAY): which gateway of the inventory this host is".into(),
        ))
    })
}

/// Loads the inventory; its errors keep their type so they map to exit code 64.
pub fn load_inventory(path: &Path) -> anyhow::Result<Inventory> {
    Inventory::load(path).context("loading the grid inventory")
}

/// Loads the inventory for a command acting as gateway `id`, which must be in it: a
/// mistyped id is a usage error (64) naming the ids there are.
pub fn load_for_gateway(path: &Path, id: &str) -> anyhow::Result<Inventory> {
    let inv = load_inventory(path)?;
    require_gateway(&inv, path, id)?;
    Ok(inv)
}

/// A usage error (64) naming the ids there are, unless gateway `id` is in the
/// inventory read from `path`.
pub fn require_gateway(inv: &Inventory, path: &Path, id: &str) -> anyhow::Result<()> {
    if inv.gateway(id).is_some() {
        return Ok(());
    }
    let known: Vec<&str> = inv.gateways.iter().map(|g| g.id.as_str()).collect();
    Err(UsageError(format!(
        "gateway `{id}` is not in {} (it has: {})",
        path.display(),
        known.join(", ")
    ))
    .into())
}

/// A mistake in the command line (exit 64), as a config error is.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct UsageError(pub String);
