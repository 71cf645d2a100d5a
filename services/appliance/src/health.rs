//! The service's phase as seen from outside: `/healthz` answers 200 only while the
//! service takes work, so a load balancer or the DNS health checker drops a gateway that
//! is starting or draining before it refuses connections.

use std::sync::Arc;
use std::sync::atomic::{AtomicU8, Ordering};

use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;

/// Where the service is in its life.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
pub enum Phase {
    /// Loading config, binding sockets: not taking work yet.
    Starting = 0,
    /// Taking work.
    Ready = 1,
    /// Applying a new config after SIGHUP; the old one keeps serving meanwhile.
    Reloading = 2,
    /// SIGTERM seen: finishing what is in flight, taking nothing new.
    Draining = 3,
}

impl Phase {
    fn from_u8(v: u8) -> Phase {
        match v {
            1 => Phase::Ready,
            2 => Phase::Reloading,
            3 => Phase::Draining,
            _ => Phase::Starting,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Phase::Starting => "starting",
            Phase::Ready => "ready",
            Phase::Reloading => "reloading",
            Phase::Draining => "draining",
        }
    }

    /// Whether new work is accepted in this phase (a reload keeps serving).
    pub fn is_serving(self) -> bool {
        matches!(self, Phase::Ready | Phase::Reloading)
    }
}

/// Shared, lock-free phase holder; also exported as the `ready` gauge.
#[derive(Debug)]
pub struct Health {
    phase: AtomicU8,
    ready: Gauge,
}

impl Health {
    /// A new holder in [`Phase::Starting`], its gauge registered in `registry`.
    pub fn new(registry: &mut Registry) -> Arc<Health> {
        let ready = Gauge::default();
        registry.register(
            "ready",
            "1 while the service takes work (ready or reloading), else 0",
            ready.clone(),
        );
        Arc::new(Health {
            phase: AtomicU8::new(Phase::Starting as u8),
            ready,
        })
    }

    pub fn set(&self, phase: Phase) {
        self.phase.store(phase as u8, Ordering::SeqCst);
        self.ready.set(i64::from(phase.is_serving()));
    }

    pub fn phase(&self) -> Phase {
        Phase::from_u8(self.phase.load(Ordering::SeqCst))
    }
}
