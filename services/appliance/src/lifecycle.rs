//! The life of a service process: start, serve, reload on SIGHUP, drain on SIGTERM/SIGINT.
//!
//! A service builds a [`Runtime`], registers its metrics, spawns its listeners on the
//! runtime's [`TaskTracker`] with the [`CancellationToken`] from [`Runtime::shutdown`], and
//! hands control to [`Runtime::run`]. From then on:
//!
//! * SIGHUP: phase `reloading`, systemd RELOADING=1, the service's reload callback runs.
//!   A failed reload is logged and counted and the old config keeps serving: a typo in a
//!   config file must never take a gateway down.
//! * SIGTERM or SIGINT: phase `draining` (`/healthz` turns 503), STOPPING=1, the shutdown
//!   token is cancelled so listeners stop accepting, and in-flight work tracked by the
//!   task tracker gets up to the drain timeout to finish. A second signal stops at once.
//! * The metrics endpoint stays up until the drain ends, so checkers see `draining`.

use std::error::Error;
use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;
use tokio::net::TcpListener;
use tokio::signal::unix::{Signal, SignalKind, signal};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::health::{Health, Phase};
use crate::{endpoint, notify};

#[derive(Debug, thiserror::Error)]
pub enum RuntimeError {
    #[error("cannot install handler for {signal}")]
    Signal {
        signal: &'static str,
        #[source]
        source: std::io::Error,
    },
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ResultLabel {
    result: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct InfoLabels {
    version: &'static str,
}

/// How a run ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Stopped {
    /// The signal that started the drain (`SIGTERM`, `SIGINT`) or `requested` when the
    /// service cancelled its own shutdown token.
    pub cause: &'static str,
    /// Tasks still running when the drain ended (0 for a clean drain).
    pub abandoned: usize,
}

/// Process-wide lifecycle state shared by a service's tasks.
pub struct Runtime {
    service: &'static str,
    registry: Registry,
    health: Arc<Health>,
    shutdown: CancellationToken,
    tracker: TaskTracker,
    drain_timeout: Duration,
    reloads: Family<ResultLabel, Counter>,
}

impl Runtime {
    /// A runtime for `service` (also the prefix of every metric name), in phase `starting`.
    pub fn new(service: &'static str, version: &'static str) -> Runtime {
        let mut registry = Registry::with_prefix(service);
        let health = Health::new(&mut registry);
        let reloads = Family::<ResultLabel, Counter>::default();
        registry.register("reloads", "Config reloads by result", reloads.clone());
        let info = Family::<InfoLabels, Gauge>::default();
        info.get_or_create(&InfoLabels { version }).set(1);
        registry.register("build", "Version of the running binary", info);
        Runtime {
            service,
            registry,
            health,
            shutdown: CancellationToken::new(),
            tracker: TaskTracker::new(),
            drain_timeout: Duration::from_secs(30),
            reloads,
        }
    }

    /// How long in-flight work may take to finish after SIGTERM.
    pub fn with_drain_timeout(mut self, timeout: Duration) -> Runtime {
        self.drain_timeout = timeout;
        self
    }

    /// Where the service registers its own metrics (names get the service prefix).
    pub fn registry(&mut self) -> &mut Registry {
        &mut self.registry
    }

    /// Cancelled when draining starts; listeners stop accepting on it. Cancelling it
    /// from inside the service (a fatal error) starts the same drain.
    pub fn shutdown(&self) -> CancellationToken {
        self.shutdown.clone()
    }

    /// Tracks in-flight work; the drain waits for every task spawned on it.
    pub fn tracker(&self) -> TaskTracker {
        self.tracker.clone()
    }

    pub fn health(&self) -> Arc<Health> {
        self.health.clone()
    }

    /// Serves until SIGTERM/SIGINT (or the shutdown token), calling `reload` on SIGHUP,
    /// then drains. `metrics` is the bound listener of the `/metrics` + `/healthz`
    /// endpoint, if the service has one.
    pub async fn run<F, Fut, E>(
        self,
        metrics: Option<TcpListener>,
        mut reload: F,
    ) -> Result<Stopped, RuntimeError>
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = Result<(), E>>,
        E: Into<Box<dyn Error + Send + Sync>>,
    {
        let mut signals = Signals::install()?;
        let registry = Arc::new(self.registry);
        let endpoint_stop = CancellationToken::new();
        if let Some(listener) = metrics {
            let addr = listener.local_addr().ok();
            let (registry, health, stop) =
                (registry.clone(), self.health.clone(), endpoint_stop.clone());
            tokio::spawn(async move {
                if let Err(e) = endpoint::serve(listener, registry, health, stop).await {
                    tracing::error!(error = %e, ?addr, "metrics endpoint failed");
                }
            });
            tracing::info!(?addr, "metrics endpoint listening");
        }

        self.health.set(Phase::Ready);
        notify::ready(&format!("{} ready", self.service));
        let watchdog = notify::spawn_watchdog(endpoint_stop.clone());
        tracing::info!(service = self.service, "ready");

        let cause = loop {
            tokio::select! {
                sig = signals.next() => match sig {
                    Event::Reload => {
                        self.health.set(Phase::Reloading);
                        notify::reloading();
                        let started = Instant::now();
                        let result = match reload().await {
                            Ok(()) => {
                                tracing::info!(elapsed_ms = started.elapsed().as_millis() as u64, "config reloaded");
                                "ok"
                            }
                            Err(e) => {
                                let e = e.into();
                                tracing::error!(error = %error_chain(&*e), "reload failed; keeping the previous config");
                                "error"
                            }
                        };
                        self.reloads.get_or_create(&ResultLabel { result }).inc();
                        self.health.set(Phase::Ready);
                        notify::ready(&format!("{} ready (reload {result})", self.service));
                    }
                    Event::Terminate(name) => break name,
                },
                _ = self.shutdown.cancelled() => break "requested",
            }
        };

        self.health.set(Phase::Draining);
        notify::stopping(&format!("{} draining", self.service));
        self.shutdown.cancel();
        self.tracker.close();
        let in_flight = self.tracker.len();
        tracing::info!(
            cause,
            in_flight,
            timeout_s = self.drain_timeout.as_secs_f64(),
            "draining"
        );
        let abandoned = tokio::select! {
            _ = self.tracker.wait() => 0,
            _ = tokio::time::sleep(self.drain_timeout) => {
                tracing::warn!(left = self.tracker.len(), "drain timeout reached; abandoning in-flight work");
                self.tracker.len()
            }
            sig = signals.next() => {
                tracing::warn!(?sig, left = self.tracker.len(), "second signal during drain; stopping now");
                self.tracker.len()
            }
        };
        endpoint_stop.cancel();
        if let Some(w) = watchdog {
            let _ = w.await;
        }
        tracing::info!(abandoned, "stopped");
        Ok(Stopped { cause, abandoned })
    }
}

/// Renders an error and its sources as `outer: inner: root`.
pub fn error_chain(e: &(dyn Error + 'static)) -> String {
    let mut out = e.to_string();
    let mut cur = e.source();
    while let Some(s) = cur {
        out.push_str(": ");
        out.push_str(&s.to_string());
        cur = s.source();
    }
    out
}

#[derive(Debug)]
enum Event {
    Reload,
    Terminate(&'static str),
}

struct Signals {
    hup: Signal,
    term: Signal,
    int: Signal,
}

impl Signals {
    fn install() -> Result<Signals, RuntimeError> {
        let one = |kind, name| {
            signal(kind).map_err(|source| RuntimeError::Signal {
                signal: name,
                source,
            })
        };
        Ok(Signals {
            hup: one(SignalKind::hangup(), "SIGHUP")?,
            term: one(SignalKind::terminate(), "SIGTERM")?,
            int: one(SignalKind::interrupt(), "SIGINT")?,
        })
    }

    async fn next(&mut self) -> Event {
        tokio::select! {
            _ = self.hup.recv() => Event::Reload,
            _ = self.term.recv() => Event::Terminate("SIGTERM"),
            _ = self.int.recv() => Event::Terminate("SIGINT"),
        }
    }
}
