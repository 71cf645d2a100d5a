//! Health checks of every gateway address, for the DNS answers: an address is handed out
//! only while its gateway answers on a service port and no operator has drained it.
//!
//! * [`hysteresis`]: the rise/fall state machine of one address (no I/O).
//! * [`probe`]: one check: a TCP connect and optionally an HTTP status, within a timeout.
//! * [`metrics`]: `dns_address_up` and `dns_checks` per address.
//!
//! [`Checker::start`] runs one task per address, their first checks spread over one
//! interval so they do not all fire at once. Every change of an address's health is
//! published as a whole new [`Snapshot`] in a [`watch`] channel: the DNS answer path reads
//! it with [`watch::Receiver::borrow`] (a read lock and no allocation) and waiters see
//! each change with [`watch::Receiver::changed`]. Changes are rare (transitions and
//! drains, not checks), so rebuilding the snapshot each time costs nothing that matters.
//!
//! A drain hides all of a gateway's addresses as [`Health::Drained`] while their checks go
//! on, so an undrain shows the real state at once.

pub mod hysteresis;
pub mod metrics;
pub mod probe;

use std::fmt;
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use serde::Serialize;
use tokio::sync::watch;
use tokio::time::MissedTickBehavior;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::info;

use self::hysteresis::Hysteresis;
use self::metrics::AddressCounters;
pub use self::metrics::HealthMetrics;

/// The health of one gateway address as DNS sees it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Health {
    /// No verdict yet: fewer than `rise` successes or `fall` failures in a row so far.
    Unchecked,
    Up,
    Down,
    /// An operator took the gateway out of the answers, whatever its checks say.
    Drained,
}

impl Health {
    pub fn as_str(self) -> &'static str {
        match self {
            Health::Unchecked => "unchecked",
            Health::Up => "up",
            Health::Down => "down",
            Health::Drained => "drained",
        }
    }
}

impl fmt::Display for Health {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Every checked address with its health, in the order of the targets given to
/// [`Checker::start`].
pub type Snapshot = Arc<[(IpAddr, Health)]>;

/// One address to check.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Target {
    /// The gateway address and the service port to connect to.
    pub addr: SocketAddr,
    /// The gateway's id (the unit of drains and a metric label).
    pub gateway: String,
    /// Also ask for an HTTP status, else a connect is enough.
    pub http: Option<HttpCheck>,
}

/// `GET <path>` with `Host: <host>`; a 2xx or 3xx status passes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HttpCheck {
    pub path: String,
    pub host: String,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CheckConfig {
    /// From the start of one check to the start of the next.
    pub interval: Duration,
    /// The most one check (connect and HTTP exchange) may take.
    pub timeout: Duration,
    /// Consecutive successes before an address is up.
    pub rise: u32,
    /// Consecutive failures before an address is down.
    pub fall: u32,
}

impl Default for CheckConfig {
    fn default() -> Self {
        CheckConfig {
            interval: Duration::from_secs(5),
            timeout: Duration::from_secs(2),
            rise: 2,
            fall: 3,
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("health check: rise and fall must be at least 1 (rise {rise}, fall {fall})")]
    ZeroThreshold { rise: u32, fall: u32 },
    #[error("health check: interval and timeout must be above zero")]
    ZeroDuration,
    #[error("health check: address {0} is listed twice")]
    DuplicateAddress(IpAddr),
    #[error("health check of {addr}: HTTP {what} {value:?} must be {rule}")]
    BadHttp {
        addr: SocketAddr,
        what: &'static str,
        value: String,
        rule: &'static str,
    },
    #[error("no gateway {0:?} among the checked addresses")]
    UnknownGateway(String),
}

/// The running health checks of all addresses. Dropping it does not stop them: cancel
/// the token given to [`Checker::start`], then await [`Checker::stopped`].
#[derive(Debug)]
pub struct Checker {
    shared: Arc<Shared>,
    tracker: TaskTracker,
}

impl Checker {
    /// Starts checking `targets` until `stop` is cancelled. Needs a Tokio runtime.
    pub fn start(
        targets: Vec<Target>,
        config: CheckConfig,
        metrics: &HealthMetrics,
        stop: CancellationToken,
    ) -> Result<Checker, Error> {
        validate(&targets, &config)?;
        let entries: Vec<Entry> = targets
            .iter()
            .map(|t| Entry {
                ip: t.addr.ip(),
                gateway: t.gateway.clone(),
                checked: Health::Unchecked,
                drained: false,
                counters: metrics.address(t.addr.ip(), &t.gateway),
            })
            .collect();
        let (tx, _) = watch::channel(snapshot_of(&entries));
        let shared = Arc::new(Shared {
            entries: Mutex::new(entries),
            tx,
        });
        let tracker = TaskTracker::new();
        let n = targets.len() as u32;
        for (index, target) in targets.into_iter().enumerate() {
            let delay = config.interval / n * index as u32;
            tracker.spawn(check_loop(
                shared.clone(),
                index,
                target,
                config,
                delay,
                stop.clone(),
            ));
        }
        tracker.close();
        Ok(Checker { shared, tracker })
    }

    /// The health of every address now.
    pub fn snapshot(&self) -> Snapshot {
        self.shared.tx.borrow().clone()
    }

    /// A receiver of every new snapshot, for the DNS answer path (`borrow()`) and for
    /// waiting on changes (`changed()`, `wait_for()`).
    pub fn subscribe(&self) -> watch::Receiver<Snapshot> {
        self.shared.tx.subscribe()
    }

    /// Hides all addresses of `gateway` as [`Health::Drained`]. Draining twice is fine.
    pub fn drain(&self, gateway: &str) -> Result<(), Error> {
        self.shared.set_drained(gateway, true)
    }

    /// Shows the addresses of `gateway` with their checked health again.
    pub fn undrain(&self, gateway: &str) -> Result<(), Error> {
        self.shared.set_drained(gateway, false)
    }

    /// The drained gateways, sorted.
    pub fn drained(&self) -> Vec<String> {
        let entries = self.shared.lock();
        let mut gateways: Vec<String> = entries
            .iter()
            .filter(|e| e.drained)
            .map(|e| e.gateway.clone())
            .collect();
        gateways.sort();
        gateways.dedup();
        gateways
    }

    /// Resolves once every check task has seen the stop token.
    pub async fn stopped(&self) {
        self.tracker.wait().await;
    }
}

fn validate(targets: &[Target], config: &CheckConfig) -> Result<(), Error> {
    if config.rise == 0 || config.fall == 0 {
        return Err(Error::ZeroThreshold {
            rise: config.rise,
            fall: config.fall,
        });
    }
    if config.interval.is_zero() || config.timeout.is_zero() {
        return Err(Error::ZeroDuration);
    }
    for (i, t) in targets.iter().enumerate() {
        if targets[..i].iter().any(|o| o.addr.ip() == t.addr.ip()) {
            return Err(Error::DuplicateAddress(t.addr.ip()));
        }
        let Some(http) = &t.http else { continue };
        // Both go into the request verbatim: no room for a second header or request.
        let clean = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_graphic());
        let bad = |what, value: &str, rule| Error::BadHttp {
            addr: t.addr,
            what,
            value: value.to_owned(),
            rule,
        };
        if !http.path.starts_with('/') || !clean(&http.path) {
            return Err(bad(
                "path",
                &http.path,
                "'/' then printable ASCII, no spaces",
            ));
        }
        if !clean(&http.host) {
            return Err(bad("host", &http.host, "printable ASCII, no spaces"));
        }
    }
    Ok(())
}

#[derive(Debug)]
struct Shared {
    entries: Mutex<Vec<Entry>>,
    tx: watch::Sender<Snapshot>,
}

#[derive(Debug)]
struct Entry {
    ip: IpAddr,
    gateway: String,
    /// The verdict of the checks, drained or not.
    checked: Health,
    drained: bool,
    counters: AddressCounters,
}

impl Entry {
    fn health(&self) -> Health {
        if self.drained {
            Health::Drained
        } else {
            self.checked
        }
    }
}

fn snapshot_of(entries: &[Entry]) -> Snapshot {
    entries.iter().map(|e| (e.ip, e.health())).collect()
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, Vec<Entry>> {
        // Nothing panics while holding the lock; a poisoned one still holds sane data.
        self.entries.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Sends the new snapshot and sets the gauges; called with the lock held, so
    /// snapshots go out in the order of the changes.
    fn publish(&self, entries: &[Entry]) {
        for e in entries {
            e.counters.up.set(i64::from(e.health() == Health::Up));
        }
        self.tx.send_replace(snapshot_of(entries));
    }

    fn set_checked(&self, index: usize, to: Health, reason: &str) {
        let mut entries = self.lock();
        let e = &mut entries[index];
        let from = e.checked;
        e.checked = to;
        info!(
            address = %e.ip,
            gateway = %e.gateway,
            %from,
            %to,
            reason,
            drained = e.drained,
            "gateway address health changed"
        );
        if !e.drained {
            self.publish(&entries);
        }
    }

    fn set_drained(&self, gateway: &str, drained: bool) -> Result<(), Error> {
        let mut entries = self.lock();
        let (mut found, mut changed) = (false, false);
        for e in entries.iter_mut().filter(|e| e.gateway == gateway) {
            found = true;
            if e.drained == drained {
                continue;
            }
            let from = e.health();
            e.drained = drained;
            changed = true;
            info!(
                address = %e.ip,
                gateway = %e.gateway,
                %from,
                to = %e.health(),
                reason = if drained { "drained" } else { "undrained" },
                "gateway address health changed"
            );
        }
        if !found {
            return Err(Error::UnknownGateway(gateway.to_owned()));
        }
        if changed {
            self.publish(&entries);
        }
        Ok(())
    }
}

/// Checks one address every interval until `stop`.
async fn check_loop(
    shared: Arc<Shared>,
    index: usize,
    target: Target,
    config: CheckConfig,
    delay: Duration,
    stop: CancellationToken,
) {
    let counters = shared.lock()[index].counters.clone();
    let mut hysteresis = Hysteresis::default();
    let mut ticks = tokio::time::interval_at(tokio::time::Instant::now() + delay, config.interval);
    ticks.set_missed_tick_behavior(MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = stop.cancelled() => return,
            _ = ticks.tick() => {}
        }
        let result = tokio::select! {
            _ = stop.cancelled() => return,
            r = probe::check(target.addr, target.http.as_ref(), config.timeout) => r,
        };
        counters.count(match result {
            Ok(_) => "ok",
            Err(f) => f.label(),
        });
        if let Some(to) = hysteresis.observe(result.is_ok(), config.rise, config.fall) {
            let reason = match result {
                Ok(pass) => pass.to_string(),
                Err(failure) => failure.to_string(),
            };
            shared.set_checked(index, to, &reason);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn target(addr: &str, gateway: &str) -> Target {
        Target {
            addr: addr.parse().unwrap(),
            gateway: gateway.into(),
            http: None,
        }
    }

    fn start(targets: Vec<Target>, config: CheckConfig) -> Result<Checker, Error> {
        Checker::start(
            targets,
            config,
            &HealthMetrics::default(),
            CancellationToken::new(),
        )
    }

    #[tokio::test]
    async fn rejects_bad_config() {
        let zero_rise = CheckConfig {
            rise: 0,
            ..CheckConfig::default()
        };
        assert!(matches!(
            start(vec![], zero_rise),
            Err(Error::ZeroThreshold { .. })
        ));
        let zero_interval = CheckConfig {
            interval: Duration::ZERO,
            ..CheckConfig::default()
        };
        assert!(matches!(
            start(vec![], zero_interval),
            Err(Error::ZeroDuration)
        ));
        let twice = vec![target("192.0.2.1:80", "a"), target("192.0.2.1:443", "b")];
        let err = start(twice, CheckConfig::default()).unwrap_err();
        assert_eq!(
            err.to_string(),
            "health check: address 192.0.2.1 is listed twice"
        );
        for (path, host) in [
            ("health", "h"),
            ("/a b", "h"),
            ("/", "h\r\nX: y"),
            ("/", ""),
        ] {
            let mut t = target("192.0.2.1:80", "a");
            t.http = Some(HttpCheck {
                path: path.into(),
                host: host.into(),
            });
            let err = start(vec![t], CheckConfig::default()).unwrap_err();
            assert!(
                matches!(err, Error::BadHttp { .. }),
                "{path:?} {host:?}: {err}"
            );
        }
    }

    #[tokio::test]
    async fn drain_is_per_gateway_and_idempotent() {
        let stop = CancellationToken::new();
        let checker = Checker::start(
            vec![
                target("192.0.2.1:80", "a"),
                target("[2001:db8::1]:80", "a"),
                target("192.0.2.2:80", "b"),
            ],
            // No check runs during this test.
            CheckConfig {
                interval: Duration::from_secs(3600),
                ..CheckConfig::default()
            },
            &HealthMetrics::default(),
            stop.clone(),
        )
        .unwrap();
        // The first target's first check starts at once: stop before it can end.
        stop.cancel();
        checker.stopped().await;
        let healths = |c: &Checker| c.snapshot().iter().map(|e| e.1).collect::<Vec<_>>();
        use Health::{Drained, Unchecked};
        assert_eq!(healths(&checker), [Unchecked; 3]);
        checker.drain("a").unwrap();
        checker.drain("a").unwrap();
        assert_eq!(healths(&checker), [Drained, Drained, Unchecked]);
        assert_eq!(checker.drained(), ["a"]);
        assert!(matches!(checker.drain("c"), Err(Error::UnknownGateway(_))));
        checker.undrain("a").unwrap();
        assert_eq!(healths(&checker), [Unchecked; 3]);
        assert!(checker.drained().is_empty());
    }
}
