//! The listeners: bind, accept within the connection limits, one task per session,
//! and the drain at shutdown.

use std::net::SocketAddr;
use std::sync::Arc;

use anyhow::Context;
use tokio::net::{TcpListener, TcpSocket, TcpStream};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use super::connection::{self, Shared};
use super::limits::{ConnectionLimits, Refusal};
use super::replies;
use super::tls::TlsConfig;
use crate::config::Smtp;
use crate::envelope::Backend;
use crate::metrics::Metrics;

/// The SMTP server: bound listeners, ready to [`Server::run`].
pub struct Server {
    listeners: Vec<TcpListener>,
    shared: Arc<Shared>,
    limits: Arc<ConnectionLimits>,
}

/// Reloads the TLS certificate of a running server (SIGHUP); [`Server::run`] takes the
/// server, this handle stays with the caller.
#[derive(Clone)]
pub struct TlsReloader(Option<Arc<TlsConfig>>);

impl TlsReloader {
    /// Re-reads the certificate and key; on error keeps the old ones and returns the
    /// error. Without `[smtp.tls]` there is nothing to reload.
    pub fn reload(&self) -> anyhow::Result<()> {
        if let Some(tls) = &self.0 {
            tls.reload().context("reload the SMTP TLS certificate")?;
            tracing::info!("SMTP TLS certificate reloaded");
        }
        Ok(())
    }
}

impl Server {
    /// Binds every smtp.listen address (errors name the address), loads the TLS
    /// cert/key if configured (errors name the file).
    pub async fn bind(
        config: &Smtp,
        backend: Arc<dyn Backend>,
        metrics: Metrics,
    ) -> anyhow::Result<Server> {
        let tls = match &config.tls {
            Some(files) => Some(Arc::new(
                TlsConfig::load(files).context("load the SMTP TLS certificate")?,
            )),
            None => None,
        };
        let listeners = config
            .listen
            .iter()
            .map(|addr| listen(*addr).with_context(|| format!("listen for SMTP on {addr}")))
            .collect::<anyhow::Result<Vec<_>>>()?;
        Ok(Server {
            listeners,
            limits: ConnectionLimits::new(config.max_connections, config.max_connections_per_ip),
            shared: Arc::new(Shared {
                config: Arc::new(config.clone()),
                backend,
                metrics,
                tls,
            }),
        })
    }

    pub fn local_addrs(&self) -> Vec<SocketAddr> {
        self.listeners
            .iter()
            .filter_map(|l| l.local_addr().ok())
            .collect()
    }

    /// Re-reads the certificate and key (SIGHUP); on error keeps the old ones and
    /// returns the error.
    pub fn reload_tls(&self) -> anyhow::Result<()> {
        self.tls_reloader().reload()
    }

    /// A handle for [`Server::reload_tls`] that outlives [`Server::run`]'s taking the server.
    pub fn tls_reloader(&self) -> TlsReloader {
        TlsReloader(self.shared.tls.clone())
    }

    /// Serves until `shutdown` is cancelled, then stops accepting and lets sessions in
    /// flight finish (up to their timeouts): a message being received or judged is
    /// finished; a session waiting for its next command gets 421 4.3.2 and is closed.
    pub async fn run(self, shutdown: CancellationToken) -> anyhow::Result<()> {
        let tracker = TaskTracker::new();
        for listener in self.listeners {
            tracker.spawn(accept(
                listener,
                self.shared.clone(),
                self.limits.clone(),
                tracker.clone(),
                shutdown.clone(),
            ));
        }
        tracker.close();
        tracker.wait().await;
        tracing::info!("SMTP server stopped");
        Ok(())
    }
}

/// A listening socket; IPv6 ones only for IPv6, so `0.0.0.0:25` and `[::]:25` can be
/// listed together.
fn listen(addr: SocketAddr) -> std::io::Result<TcpListener> {
    let socket = if addr.is_ipv4() {
        TcpSocket::new_v4()?
    } else {
        let socket = TcpSocket::new_v6()?;
        nix::sys::socket::setsockopt(&socket, nix::sys::socket::sockopt::Ipv6V6Only, &true)?;
        socket
    };
    socket.set_reuseaddr(true)?;
    socket.bind(addr)?;
    socket.listen(1024)
}

async fn accept(
    listener: TcpListener,
    shared: Arc<Shared>,
    limits: Arc<ConnectionLimits>,
    tracker: TaskTracker,
    shutdown: CancellationToken,
) {
    let local = listener.local_addr().ok();
    tracing::info!(?local, "SMTP listening");
    loop {
        let (tcp, client) = tokio::select! {
            _ = shutdown.cancelled() => break,
            accepted = appliance::accept::accept(&listener) => accepted,
        };
        let active = shared.metrics.connection();
        match limits.acquire(client.ip()) {
            Ok(slot) => {
                let (shared, shutdown) = (shared.clone(), shutdown.clone());
                tracker.spawn(async move {
                    connection::serve(tcp, client, shared, shutdown).await;
                    drop((slot, active));
                });
            }
            Err(refusal) => refuse(&tcp, client, refusal, &shared.metrics),
        }
    }
    tracing::info!(?local, "SMTP listener closed");
}

/// 421 and close. `try_write`: a new socket's send buffer has room for one line, and
/// the accept loop must never wait for a client.
fn refuse(tcp: &TcpStream, client: SocketAddr, refusal: Refusal, metrics: &Metrics) {
    let _ = tcp.try_write(replies::too_many_connections().to_wire().as_bytes());
    metrics.rejected(refusal.reason());
    metrics.session_ended("refused");
    tracing::info!(%client, reason = refusal.reason(), "connection refused");
}
