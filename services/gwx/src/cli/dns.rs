//! `gwx dns ...`: the DNS server handing out a random subset of the healthy gateway
//! addresses, and the operator's drains for rolling upgrades.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Context;
use appliance::Runtime;
use appliance::cli::CommonArgs;
use gwx::dns::daemon::{self, Service};
use gwx::inventory::Inventory;
use tokio::sync::Mutex;

#[derive(Debug, clap::Args)]
pub struct DnsArgs {
    /// Where the drains are kept (`drained.json`).
    #[arg(
        long,
        global = true,
        value_name = "DIR",
        default_value = "/var/lib/gwx/dns"
    )]
    pub state_dir: PathBuf,
    #[command(subcommand)]
    pub command: DnsCommand,
}

#[derive(Debug, clap::Subcommand)]
pub enum DnsCommand {
    /// Serve the grid's zone: health checks of every gateway address, answers of
    /// `answer_count` random healthy addresses. Answers start once every address has a
    /// health verdict (unless `allow_unchecked_at_start`). SIGHUP re-reads the drains.
    Run,
    /// Take a gateway's addresses out of the answers (it keeps running); a running
    /// `gwx dns run` applies it within a second.
    Drain { gateway: String },
    /// Put a drained gateway back (its addresses return once healthy).
    Undrain { gateway: String },
    /// The drained gateways.
    Drained,
}

pub fn dispatch(common: &CommonArgs, args: &DnsArgs) -> anyhow::Result<ExitCode> {
    let path = super::inventory_path(common);
    let inventory = super::load_inventory(&path)?;
    match &args.command {
        DnsCommand::Run => run(common, &args.state_dir, inventory),
        DnsCommand::Drain { gateway } | DnsCommand::Undrain { gateway } => {
            super::require_gateway(&inventory, &path, gateway)?;
            let drained = matches!(args.command, DnsCommand::Drain { .. });
            set_drain(&args.state_dir, gateway, drained)
        }
        DnsCommand::Drained => {
            for gw in daemon::read_drains(&args.state_dir)? {
                println!("{gw}");
            }
            Ok(ExitCode::SUCCESS)
        }
    }
}

fn set_drain(state_dir: &Path, gateway: &str, drained: bool) -> anyhow::Result<ExitCode> {
    let mut set = daemon::read_drains(state_dir)?;
    let changed = if drained {
        set.insert(gateway.to_owned())
    } else {
        set.remove(gateway)
    };
    daemon::write_drains(state_dir, &set)?;
    let what = if drained { "drained" } else { "undrained" };
    if changed {
        println!("{gateway} {what}");
    } else {
        println!("{gateway} was already {what}");
    }
    Ok(ExitCode::SUCCESS)
}

fn run(common: &CommonArgs, state_dir: &Path, inventory: Inventory) -> anyhow::Result<ExitCode> {
    let section = daemon::section(&inventory).map_err(|e| super::UsageError(format!("{e:#}")))?;
    // `[dns] metrics_listen`, when set, instead of the runtime's (which `gwx run` on the
    // same gateway binds).
    let mut metrics = inventory.runtime.clone();
    if let Some(addr) = section.metrics_listen {
        metrics.metrics_listen = Some(addr);
    }
    let rt = common.runtime().context("starting the async runtime")?;
    rt.block_on(async {
        let mut runtime = Runtime::new("gwx", env!("CARGO_PKG_VERSION"))
            .with_drain_timeout(inventory.runtime.drain_timeout());
        let listener = metrics.bind_metrics().await?;
        let shutdown = runtime.shutdown();
        let (service, serve) =
            Service::start(&inventory, state_dir, runtime.registry(), shutdown.clone()).await?;
        let server = tokio::spawn(serve);
        let service = Mutex::new(service);
        runtime
            .run(listener, || async {
                // The drains; a changed inventory needs a restart (documented).
                service.lock().await.apply_drains()
            })
            .await?;
        server.await.context("the DNS server panicked")??;
        Ok::<_, anyhow::Error>(())
    })?;
    Ok(ExitCode::SUCCESS)
}
