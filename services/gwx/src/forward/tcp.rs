//! TCP forwarding: accept, check the source's connection limit, connect to the backend
//! within the connect timeout, send the PROXY header, then relay with splice until both
//! sides are done, an error ends it, or nothing moves for the idle timeout.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::AtomicU8;

use tokio::io::AsyncWriteExt;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use super::Settings;
use super::proxy_header;
use super::source_limit::SourceSlot;
use super::splice::{Activity, one_way};
use crate::inventory::ProxyProtocol;
use crate::metrics::{ActiveGuard, Refusal};

/// Accepts on `listener` until `stop`; each connection runs as a task on `tracker`, so
/// a drain waits for it and a reload (which only replaces `settings`) leaves it alone.
pub async fn serve(
    listener: TcpListener,
    settings: watch::Receiver<Arc<Settings>>,
    stop: CancellationToken,
    tracker: TaskTracker,
) {
    let local = listener.local_addr().ok();
    loop {
        let (client, peer) = tokio::select! {
            _ = stop.cancelled() => break,
            accepted = appliance::accept::accept(&listener) => accepted,
        };
        let s = settings.borrow().clone();
        let Some(slot) = s.source_limit.acquire(peer.ip()) else {
            s.counters.refuse(Refusal::SourceLimit);
            tracing::debug!(service = %s.service, %peer, "refused: source over its connection limit");
            continue;
        };
        tracker.spawn(async move {
            if let Err(e) = relay(client, peer, s.clone(), slot).await {
                tracing::debug!(service = %s.service, %peer, error = %e, "connection ended with an error");
            }
        });
    }
    tracing::info!(?local, "listener closed");
}

async fn relay(
    client: TcpStream,
    peer: SocketAddr,
    s: Arc<Settings>,
    _slot: SourceSlot,
) -> std::io::Result<()> {
    let _active = ActiveGuard::new(&s.counters);
    let backend = match tokio::time::timeout(
        s.limits.connect_timeout(),
        TcpStream::connect(s.backend),
    )
    .await
    {
        Ok(Ok(b)) => b,
        Ok(Err(e)) => {
            s.counters.refuse(Refusal::BackendUnreachable);
            tracing::warn!(service = %s.service, backend = %s.backend, error = %e, "backend unreachable");
            return Ok(());
        }
        Err(_) => {
            s.counters.refuse(Refusal::BackendTimeout);
            tracing::warn!(service = %s.service, backend = %s.backend, timeout_ms = s.limits.connect_timeout_ms, "backend connect timed out");
            return Ok(());
        }
    };
    client.set_nodelay(true)?;
    backend.set_nodelay(true)?;
    let mut backend = backend;
    if s.proxy_protocol != ProxyProtocol::None {
        // Only a header needs the local address (a getsockname per connection).
        let local = client.local_addr()?;
        if let Some(header) = proxy_header::encode(s.proxy_protocol, peer, local, &s.gateway_id)? {
            backend.write_all(&header).await?;
        }
    }

    let activity = Activity::new();
    let ended = AtomicU8::new(0);
    let both_ways = async {
        tokio::try_join!(
            one_way(&client, &backend, &activity, &s.counters.to_backend, &ended),
            one_way(&backend, &client, &activity, &s.counters.to_client, &ended),
        )
    };
    let idle_timeout = s.limits.idle_timeout();
    let idle = async {
        loop {
            let left = idle_timeout.saturating_sub(activity.idle());
            if left.is_zero() {
                return;
            }
            tokio::time::sleep(left).await;
        }
    };
    tokio::select! {
        r = both_ways => r.map(drop),
        _ = idle => {
            tracing::debug!(service = %s.service, %peer, "idle timeout");
            Ok(())
        }
    }
}
