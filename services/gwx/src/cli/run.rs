//! `gwx run`: the gateway daemon. Applies the gateway's nftables ruleset, binds the proxy
//! listeners of this gateway, serves `/metrics` (forwarding metrics and the ruleset's
//! counters) and `/healthz`, re-reads the inventory on SIGHUP (established connections
//! are kept, bans too) and drains on SIGTERM.
//!
//! A reload checks the new ruleset with the kernel first, then changes the listeners
//! (all-or-nothing), then applies the ruleset: a bad inventory or a ruleset the kernel
//! refuses leaves everything as it was.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use appliance::Runtime;
use appliance::cli::CommonArgs;
use gwx::forward::{Changes, Forwarder};
use gwx::inventory::Inventory;
use gwx::metrics::ForwardMetrics;
use gwx::nft::apply::{Options, apply};
use gwx::nft::command::Nft;
use gwx::nft::counters::{self, NftMetrics};
use gwx::nft::gateway;
use tokio::sync::Mutex;
use tokio_util::sync::CancellationToken;

#[derive(Debug, clap::Args)]
pub struct RunArgs {
    /// Leave nftables alone and run the proxy only (the ruleset is managed elsewhere).
    #[arg(long)]
    pub no_ruleset: bool,
    /// Seconds between reads of the ruleset's counters for /metrics.
    #[arg(long, default_value_t = 5, value_name = "SECONDS")]
    pub counter_interval: u64,
}

pub fn run(
    common: &CommonArgs,
    path: &Path,
    gateway: &str,
    args: &RunArgs,
) -> anyhow::Result<ExitCode> {
    let inventory = super::load_for_gateway(path, gateway)?;
    let rt = common.runtime().context("starting the async runtime")?;
    rt.block_on(serve(path.to_owned(), gateway.to_owned(), inventory, args))?;
    Ok(ExitCode::SUCCESS)
}

/// The gateway's ruleset, unless `--no-ruleset`.
#[derive(Clone)]
struct Firewall {
    nft: Option<Nft>,
    gateway: String,
    metrics: NftMetrics,
}

impl Firewall {
    /// Checks (dry run) or applies the ruleset for `inv`.
    fn apply(&self, inv: &Inventory, dry_run: bool) -> anyhow::Result<()> {
        let Some(nft) = &self.nft else { return Ok(()) };
        let rs = gateway::ruleset(inv, &self.gateway)?;
        let plan = apply(nft, &rs, Options { dry_run })?;
        if !dry_run {
            tracing::info!(
                gateway = %self.gateway,
                sets_kept = plan.kept_sets.len(),
                sets_created = plan.created_sets.len() + plan.replaced_sets.len(),
                chains = plan.created_chains.len() + plan.kept_chains.len() + plan.replaced_chains.len(),
                "nftables ruleset applied"
            );
            self.refresh();
        }
        Ok(())
    }

    /// [`Firewall::apply`] on the blocking pool: `nft` is a child process, and a reload
    /// runs while connections are being served on the async workers.
    async fn apply_off_runtime(&self, inv: &Inventory, dry_run: bool) -> anyhow::Result<()> {
        let (this, inv) = (self.clone(), inv.clone());
        tokio::task::spawn_blocking(move || this.apply(&inv, dry_run))
            .await
            .context("the ruleset task panicked")?
    }

    /// Reads the rule counters into the metrics.
    fn refresh(&self) {
        let Some(nft) = &self.nft else { return };
        match counters::read(nft, gateway::TABLE) {
            Ok(c) => {
                tracing::debug!(
                    rules = c.len(),
                    packets = c.iter().map(|r| r.packets).sum::<u64>(),
                    "ruleset counters read"
                );
                self.metrics.update(&c)
            }
            Err(e) => tracing::warn!(error = %e, "cannot read the ruleset's counters"),
        }
    }

    /// Refreshes the counters every `interval` until `stop`.
    async fn refresh_every(self, interval: Duration, stop: CancellationToken) {
        if self.nft.is_none() {
            return;
        }
        let mut tick = tokio::time::interval(interval);
        loop {
            tokio::select! {
                _ = stop.cancelled() => return,
                _ = tick.tick() => {
                    let this = self.clone();
                    // nft is a child process: keep it off the async worker threads.
                    let _ = tokio::task::spawn_blocking(move || this.refresh()).await;
                }
            }
        }
    }
}

async fn serve(
    path: PathBuf,
    gateway: String,
    inventory: Inventory,
    args: &RunArgs,
) -> anyhow::Result<()> {
    let mut runtime = Runtime::new("gwx", env!("CARGO_PKG_VERSION"))
        .with_drain_timeout(inventory.runtime.drain_timeout());
    let forward_metrics = ForwardMetrics::register(runtime.registry());
    let firewall = Firewall {
        nft: (!args.no_ruleset).then(Nft::new),
        gateway: gateway.clone(),
        metrics: NftMetrics::register(runtime.registry()),
    };
    firewall.apply(&inventory, false)?;
    let mut forwarder = Forwarder::new(
        &gateway,
        forward_metrics,
        runtime.shutdown(),
        runtime.tracker(),
    );
    log_changes(&gateway, &forwarder.apply(&inventory).await?);
    let metrics_listener = inventory.runtime.bind_metrics().await?;
    let interval = Duration::from_secs(args.counter_interval.max(1));
    tokio::spawn(firewall.clone().refresh_every(interval, runtime.shutdown()));

    let forwarder = Arc::new(Mutex::new(forwarder));
    let stopped = runtime
        .run(metrics_listener, || {
            let (path, forwarder, gateway, firewall) = (
                path.clone(),
                forwarder.clone(),
                gateway.clone(),
                firewall.clone(),
            );
            async move {
                let inventory = super::load_for_gateway(&path, &gateway)?;
                firewall.apply_off_runtime(&inventory, true).await?;
                let changes = forwarder.lock().await.apply(&inventory).await?;
                log_changes(&gateway, &changes);
                firewall.apply_off_runtime(&inventory, false).await?;
                Ok::<_, anyhow::Error>(())
            }
        })
        .await?;
    if stopped.abandoned > 0 {
        tracing::warn!(
            abandoned = stopped.abandoned,
            "connections cut at the end of the drain"
        );
    }
    Ok(())
}

fn log_changes(gateway: &str, changes: &Changes) {
    for l in &changes.added {
        tracing::info!(gateway, listener = %l, "listening");
    }
    for l in &changes.removed {
        tracing::info!(gateway, listener = %l, "stopped listening; its connections finish");
    }
    tracing::info!(
        gateway,
        added = changes.added.len(),
        removed = changes.removed.len(),
        kept = changes.kept,
        "proxy listeners applied"
    );
}
