//! `gwx run`: the gateway daemon. Binds the proxy listeners of this gateway, serves
//! `/metrics` and `/healthz`, re-reads the inventory on SIGHUP (established connections
//! are kept) and drains on SIGTERM.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::Context;
use appliance::Runtime;
use gwx::forward::{Changes, Forwarder};
use gwx::metrics::ForwardMetrics;
use tokio::net::TcpListener;
use tokio::sync::Mutex;

#[derive(Debug, clap::Args)]
pub struct RunArgs {}

pub fn run(path: &Path, gateway: &str, _args: &RunArgs) -> anyhow::Result<ExitCode> {
    let inventory = super::load_inventory(path)?;
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    rt.block_on(serve(path.to_owned(), gateway.to_owned(), inventory))?;
    Ok(ExitCode::SUCCESS)
}

async fn serve(
    path: PathBuf,
    gateway: String,
    inventory: gwx::inventory::Inventory,
) -> anyhow::Result<()> {
    let mut runtime = Runtime::new("gwx", env!("CARGO_PKG_VERSION"))
        .with_drain_timeout(inventory.runtime.drain_timeout());
    let metrics = ForwardMetrics::register(runtime.registry());
    let mut forwarder = Forwarder::new(&gateway, metrics, runtime.shutdown(), runtime.tracker());
    let changes = forwarder.apply(&inventory).await?;
    log_changes(&gateway, &changes);
    let metrics_listener = match inventory.runtime.metrics_listen {
        Some(addr) => Some(
            TcpListener::bind(addr)
                .await
                .with_context(|| format!("cannot listen on {addr} for metrics"))?,
        ),
        None => None,
    };

    let forwarder = Arc::new(Mutex::new(forwarder));
    let stopped = runtime
        .run(metrics_listener, || {
            let (path, forwarder, gateway) = (path.clone(), forwarder.clone(), gateway.clone());
            async move {
                let inventory = super::load_inventory(&path)?;
                let changes = forwarder.lock().await.apply(&inventory).await?;
                log_changes(&gateway, &changes);
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
