//! Forwarding metrics per service: connections (or UDP sessions), active ones, bytes each
//! way, and refusals by reason. Each service resolves its label sets once into
//! [`ServiceCounters`], so the per-connection path only touches atomics.

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ServiceLabels {
    service: String,
    protocol: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct BytesLabels {
    service: String,
    direction: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RefusedLabels {
    service: String,
    reason: &'static str,
}

/// Why the proxy refused a connection or datagram.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Refusal {
    /// The source already holds `connections_per_source`.
    SourceLimit,
    /// UDP: the service already has `udp_sessions` sessions.
    SessionCap,
    /// The backend refused or was unreachable.
    BackendUnreachable,
    /// The backend did not answer within `connect_timeout_ms`.
    BackendTimeout,
}

impl Refusal {
    const ALL: [Refusal; 4] = [
        Refusal::SourceLimit,
        Refusal::SessionCap,
        Refusal::BackendUnreachable,
        Refusal::BackendTimeout,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Refusal::SourceLimit => "source_limit",
            Refusal::SessionCap => "session_cap",
            Refusal::BackendUnreachable => "backend_unreachable",
            Refusal::BackendTimeout => "backend_timeout",
        }
    }
}

/// The metric families of the forwarder, registered once per process.
#[derive(Clone, Debug, Default)]
pub struct ForwardMetrics {
    connections: Family<ServiceLabels, Counter>,
    active: Family<ServiceLabels, Gauge>,
    bytes: Family<BytesLabels, Counter>,
    refused: Family<RefusedLabels, Counter>,
}

impl ForwardMetrics {
    pub fn register(registry: &mut Registry) -> ForwardMetrics {
        let m = ForwardMetrics::default();
        registry.register(
            "connections",
            "Connections (TCP) or sessions (UDP) forwarded, per service",
            m.connections.clone(),
        );
        registry.register(
            "active_connections",
            "Connections or sessions open now, per service",
            m.active.clone(),
        );
        registry.register(
            "bytes",
            "Payload bytes forwarded, per service and direction",
            m.bytes.clone(),
        );
        registry.register(
            "refused",
            "Connections or datagrams refused by the proxy, per service and reason",
            m.refused.clone(),
        );
        m
    }

    /// The handles of one service.
    pub fn service(&self, service: &str, protocol: &'static str) -> ServiceCounters {
        let labels = ServiceLabels {
            service: service.to_owned(),
            protocol,
        };
        let bytes = |direction| {
            self.bytes
                .get_or_create(&BytesLabels {
                    service: service.to_owned(),
                    direction,
                })
                .clone()
        };
        let refused = Refusal::ALL.map(|r| {
            self.refused
                .get_or_create(&RefusedLabels {
                    service: service.to_owned(),
                    reason: r.as_str(),
                })
                .clone()
        });
        ServiceCounters {
            connections: self.connections.get_or_create(&labels).clone(),
            active: self.active.get_or_create(&labels).clone(),
            to_backend: bytes("to_backend"),
            to_client: bytes("to_client"),
            refused,
        }
    }
}

/// Pre-resolved metric handles of one service.
#[derive(Clone, Debug)]
pub struct ServiceCounters {
    pub connections: Counter,
    pub active: Gauge,
    pub to_backend: Counter,
    pub to_client: Counter,
    refused: [Counter; 4],
}

impl ServiceCounters {
    pub fn refuse(&self, why: Refusal) {
        self.refused[why as usize].inc();
    }
}

/// Counts a connection as active while alive.
pub struct ActiveGuard(Gauge);

impl ActiveGuard {
    pub fn new(counters: &ServiceCounters) -> ActiveGuard {
        counters.connections.inc();
        counters.active.inc();
        ActiveGuard(counters.active.clone())
    }
}

impl Drop for ActiveGuard {
    fn drop(&mut self) {
        self.0.dec();
    }
}
