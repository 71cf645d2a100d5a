//! L4 proxy mode: gwx itself listens on every public address of this gateway for each
//! proxy-mode service and forwards to the backend (TCP with splice and an optional PROXY
//! header, UDP with per-client sessions).
//!
//! Reload keeps established connections: a listener that stays in the inventory keeps
//! its socket and its connections and only gets new [`Settings`] (used by connections
//! accepted from then on); a listener that left the inventory stops accepting while its
//! connections finish; a new one is bound. New sockets are all bound before anything
//! changes, so a reload that cannot bind one changes nothing.
//!
//! The states of one connection, and how reload and drain meet them: `LIFECYCLE.md`
//! beside this file.

pub mod proxy_header;
pub mod source_limit;
pub mod splice;
mod tcp;
mod udp;

use std::collections::{BTreeMap, HashMap};
use std::net::SocketAddr;
use std::sync::Arc;

use tokio::net::{TcpListener, TcpSocket, UdpSocket};
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::inventory::{Inventory, Limits, Mode, Protocol, ProxyProtocol};
use crate::metrics::{ForwardMetrics, ServiceCounters};
use source_limit::SourceLimit;

/// Listen backlog: a gateway takes bursts of new connections by design.
const BACKLOG: u32 = 4096;

/// What a connection of one service needs, fixed when it is accepted.
#[derive(Debug)]
pub struct Settings {
    pub service: String,
    pub gateway_id: String,
    pub backend: SocketAddr,
    pub proxy_protocol: ProxyProtocol,
    pub limits: Limits,
    pub counters: ServiceCounters,
    pub source_limit: Arc<SourceLimit>,
}

#[derive(Debug, thiserror::Error)]
pub enum ForwardError {
    #[error("gateway `{id}` is not in the inventory (known: {known})")]
    UnknownGateway { id: String, known: String },
    #[error("cannot listen on {protocol}/{addr} for service `{service}`")]
    Bind {
        service: String,
        protocol: &'static str,
        addr: SocketAddr,
        #[source]
        source: std::io::Error,
    },
}

/// One listening socket: a service on one public address.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
struct ListenKey {
    service: String,
    protocol: Protocol,
    addr: SocketAddr,
}

impl std::fmt::Display for ListenKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} {}/{}",
            self.service,
            self.protocol.as_str(),
            self.addr
        )
    }
}

enum Bound {
    Tcp(TcpListener),
    Udp(UdpSocket),
}

struct Listening {
    settings: watch::Sender<Arc<Settings>>,
    stop: CancellationToken,
}

/// What an [`Forwarder::apply`] changed, for the log.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Changes {
    pub added: Vec<String>,
    pub removed: Vec<String>,
    pub kept: usize,
}

/// The set of proxy listeners of this gateway.
pub struct Forwarder {
    gateway_id: String,
    metrics: ForwardMetrics,
    shutdown: CancellationToken,
    tracker: TaskTracker,
    listening: HashMap<ListenKey, Listening>,
    limits: HashMap<String, Arc<SourceLimit>>,
}

impl Forwarder {
    /// A forwarder for `gateway_id`; its tasks stop on `shutdown` and run on `tracker`.
    pub fn new(
        gateway_id: &str,
        metrics: ForwardMetrics,
        shutdown: CancellationToken,
        tracker: TaskTracker,
    ) -> Forwarder {
        Forwarder {
            gateway_id: gateway_id.to_owned(),
            metrics,
            shutdown,
            tracker,
            listening: HashMap::new(),
            limits: HashMap::new(),
        }
    }

    /// Makes the listeners match `inventory` (see the module docs for what is kept).
    pub async fn apply(&mut self, inventory: &Inventory) -> Result<Changes, ForwardError> {
        let gateway =
            inventory
                .gateway(&self.gateway_id)
                .ok_or_else(|| ForwardError::UnknownGateway {
                    id: self.gateway_id.clone(),
                    known: inventory
                        .gateways
                        .iter()
                        .map(|g| g.id.as_str())
                        .collect::<Vec<_>>()
                        .join(", "),
                })?;
        let mut desired = BTreeMap::new();
        for service in inventory.services.iter().filter(|s| s.mode == Mode::Proxy) {
            let limit = self
                .limits
                .get(&service.name)
                .cloned()
                .unwrap_or_else(|| SourceLimit::new(service.limits.connections_per_source));
            let settings = Arc::new(Settings {
                service: service.name.clone(),
                gateway_id: self.gateway_id.clone(),
                backend: service.backend,
                proxy_protocol: service.proxy_protocol,
                limits: service.limits.clone(),
                counters: self
                    .metrics
                    .service(&service.name, service.protocol.as_str()),
                source_limit: limit,
            });
            for ip in &gateway.public {
                let key = ListenKey {
                    service: service.name.clone(),
                    protocol: service.protocol,
                    addr: SocketAddr::new(*ip, service.port),
                };
                desired.insert(key, settings.clone());
            }
        }

        // Bind everything new first: on any failure nothing has changed yet.
        let mut bound = Vec::new();
        for key in desired.keys().filter(|k| !self.listening.contains_key(*k)) {
            bound.push((key.clone(), bind(key).await?));
        }

        let mut changes = Changes::default();
        self.listening.retain(|key, l| {
            if desired.contains_key(key) {
                return true;
            }
            l.stop.cancel();
            changes.removed.push(key.to_string());
            false
        });
        for (key, l) in &self.listening {
            let s = desired[key].clone();
            s.source_limit.set_max(s.limits.connections_per_source);
            l.settings.send_replace(s);
            changes.kept += 1;
        }
        for (key, socket) in bound {
            let settings = desired[&key].clone();
            let (tx, rx) = watch::channel(settings);
            let stop = self.shutdown.child_token();
            match socket {
                Bound::Tcp(l) => {
                    self.tracker
                        .spawn(tcp::serve(l, rx, stop.clone(), self.tracker.clone()))
                }
                Bound::Udp(u) => {
                    self.tracker
                        .spawn(udp::serve(u, rx, stop.clone(), self.tracker.clone()))
                }
            };
            changes.added.push(key.to_string());
            self.listening.insert(key, Listening { settings: tx, stop });
        }
        self.limits = desired
            .values()
            .map(|s| (s.service.clone(), s.source_limit.clone()))
            .collect();
        Ok(changes)
    }
}

async fn bind(key: &ListenKey) -> Result<Bound, ForwardError> {
    let err = |source| ForwardError::Bind {
        service: key.service.clone(),
        protocol: key.protocol.as_str(),
        addr: key.addr,
        source,
    };
    match key.protocol {
        Protocol::Tcp => {
            let socket = if key.addr.is_ipv4() {
                TcpSocket::new_v4()
            } else {
                TcpSocket::new_v6()
            }
            .map_err(err)?;
            socket.set_reuseaddr(true).map_err(err)?;
            socket.bind(key.addr).map_err(err)?;
            socket.listen(BACKLOG).map(Bound::Tcp).map_err(err)
        }
        Protocol::Udp => UdpSocket::bind(key.addr).await.map(Bound::Udp).map_err(err),
    }
}
