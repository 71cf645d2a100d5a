//! `gwx ruleset`, `gwx apply` and `gwx backend-ruleset`: the gateway's and the backend's
//! nftables rulesets, printed (the JSON `nft -j -f -` reads) or applied in one
//! transaction (`--dry-run`: checked by the kernel with `nft --check`, nothing changes).

use std::path::Path;
use std::process::ExitCode;

use gwx::nft::apply::{Options, Plan, apply};
use gwx::nft::command::Nft;
use gwx::nft::ruleset::Ruleset;
use gwx::nft::{backend, gateway};

#[derive(Debug, clap::Args)]
pub struct ApplyArgs {
    /// Only check the ruleset with `nft --check`; change nothing.
    #[arg(long)]
    pub dry_run: bool,
}

#[derive(Debug, clap::Args)]
pub struct BackendArgs {
    /// Apply the ruleset on this host (the backend) instead of printing it.
    #[arg(long)]
    pub apply: bool,
    /// With --apply: only check it with `nft --check`.
    #[arg(long, requires = "apply")]
    pub dry_run: bool,
}

/// `gwx ruleset`: prints the gateway's ruleset.
pub fn print_gateway(path: &Path, gateway_id: &str) -> anyhow::Result<ExitCode> {
    let inv = super::load_for_gateway(path, gateway_id)?;
    print(&gateway::ruleset(&inv, gateway_id)?)
}

/// `gwx apply`: applies (or checks) the gateway's ruleset.
pub fn apply_gateway(path: &Path, gateway_id: &str, args: &ApplyArgs) -> anyhow::Result<ExitCode> {
    let inv = super::load_for_gateway(path, gateway_id)?;
    apply_and_report(&gateway::ruleset(&inv, gateway_id)?, args.dry_run)
}

/// `gwx backend-ruleset`: prints or applies the backend's ruleset.
pub fn backend(path: &Path, args: &BackendArgs) -> anyhow::Result<ExitCode> {
    let inv = super::load_inventory(path)?;
    let rs = backend::ruleset(&inv);
    if !args.apply {
        return print(&rs);
    }
    apply_and_report(&rs, args.dry_run)
}

/// Applies `rs` on this host (or checks it) and says what was kept and replaced.
fn apply_and_report(rs: &Ruleset, dry_run: bool) -> anyhow::Result<ExitCode> {
    let plan = apply(&Nft::new(), rs, Options { dry_run })?;
    report(rs, &plan, dry_run);
    Ok(ExitCode::SUCCESS)
}

fn print(rs: &Ruleset) -> anyhow::Result<ExitCode> {
    println!("{}", rs.to_json());
    Ok(ExitCode::SUCCESS)
}

/// One line per fate, so an operator sees what a (dry) run keeps and replaces.
fn report(rs: &Ruleset, plan: &Plan, dry_run: bool) {
    let verb = if dry_run {
        "checked (nothing changed)"
    } else {
        "applied"
    };
    println!("{}: table inet {} {verb}", rs.owner, rs.table);
    for (what, names) in [
        ("sets kept (elements preserved)", &plan.kept_sets),
        ("sets created", &plan.created_sets),
        ("sets replaced", &plan.replaced_sets),
        ("sets deleted", &plan.deleted_sets),
        ("chains created", &plan.created_chains),
        ("chains refilled", &plan.kept_chains),
        ("chains replaced", &plan.replaced_chains),
        ("chains deleted", &plan.deleted_chains),
    ] {
        if !names.is_empty() {
            println!("  {what}: {}", names.join(", "));
        }
    }
}
