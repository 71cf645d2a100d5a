//! avsx's metrics (prefix `avsx_`): connections, sessions by outcome, rejects by
//! reason, messages by action and scan latencies. Every part of avsx gets a clone of
//! [`Metrics`] and counts what it sees; the label values are fixed strings.

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct Outcome {
    outcome: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct Reason {
    reason: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct Action {
    action: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ScannerLabel {
    scanner: &'static str,
}

fn scan_histogram() -> Histogram {
    // 5 ms to ~40 s: clamd on a small mail answers in milliseconds, spamd in tenths.
    Histogram::new(prometheus_client::metrics::histogram::exponential_buckets(
        0.005, 2.0, 14,
    ))
}

#[derive(Clone, Debug)]
pub struct Metrics {
    connections: Counter,
    active: Gauge,
    sessions: Family<Outcome, Counter>,
    rejects: Family<Reason, Counter>,
    messages: Family<Action, Counter>,
    scan_seconds: Family<ScannerLabel, Histogram, fn() -> Histogram>,
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics {
            connections: Counter::default(),
            active: Gauge::default(),
            sessions: Family::default(),
            rejects: Family::default(),
            messages: Family::default(),
            scan_seconds: Family::new_with_constructor(scan_histogram),
        }
    }
}

impl Metrics {
    /// Registers on the runtime's registry, which prefixes every name with `avsx_`.
    pub fn register(r: &mut Registry) -> Metrics {
        let m = Metrics::default();
        r.register(
            "connections",
            "SMTP connections accepted",
            m.connections.clone(),
        );
        r.register(
            "active_connections",
            "SMTP connections open now",
            m.active.clone(),
        );
        r.register(
            "sessions",
            "SMTP sessions ended, by outcome (quit, timeout, error, tls_failed, refused, ...)",
            m.sessions.clone(),
        );
        r.register(
            "rejects",
            "Commands or messages refused, by reason",
            m.rejects.clone(),
        );
        r.register(
            "messages",
            "Messages judged, by action (relayed, tagged, killed, virus, tempfail, ...)",
            m.messages.clone(),
        );
        r.register(
            "scan_seconds",
            "Time a scanner took per message",
            m.scan_seconds.clone(),
        );
        m
    }

    /// A connection was accepted; the returned guard counts it active until dropped.
    pub fn connection(&self) -> ActiveGuard {
        self.connections.inc();
        self.active.inc();
        ActiveGuard(self.active.clone())
    }

    pub fn session_ended(&self, outcome: &'static str) {
        self.sessions.get_or_create(&Outcome { outcome }).inc();
    }

    pub fn rejected(&self, reason: &'static str) {
        self.rejects.get_or_create(&Reason { reason }).inc();
    }

    pub fn message(&self, action: &'static str) {
        self.messages.get_or_create(&Action { action }).inc();
    }

    pub fn scanned(&self, scanner: &'static str, seconds: f64) {
        self.scan_seconds
            .get_or_create(&ScannerLabel { scanner })
            .observe(seconds);
    }
}

/// Decrements the active connections when the connection ends, however it ends.
#[derive(Debug)]
pub struct ActiveGuard(Gauge);

impl Drop for ActiveGuard {
    fn drop(&mut self) {
        self.0.dec();
    }
}
