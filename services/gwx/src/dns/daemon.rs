//! `gwx dns run`: the health checker, the address pool and the DNS server put
//! together. Every change of health (or of the drains) builds a new [`Pool`] that the
//! server swaps in; queries never wait for a check.
//!
//! Drains live in `<state_dir>/drained.json` (a list of gateway ids), written by `gwx
//! dns drain|undrain` and read by the daemon at start, on SIGHUP and every second, so a
//! drain outlives restarts and takes effect within a second without a signal.

use std::collections::{BTreeSet, HashMap};
use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use anyhow::Context;
use appliance::state::{self, MODE_PUBLIC};
use prometheus_client::registry::Registry;
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

use super::answer::Zone;
use super::health::{CheckConfig, Checker, Health, HealthMetrics, HttpCheck, Snapshot, Target};
use super::select::{Candidate, Policy, Pool};
use super::server::{self, DnsMetrics, Handler, Live, Sockets};
use crate::inventory::{Dns, Inventory, Protocol};

/// How often the drains file is looked at.
const DRAINS_POLL: Duration = Duration::from_secs(1);

/// The drains file in `state_dir`.
pub fn drains_path(state_dir: &Path) -> PathBuf {
    state_dir.join("drained.json")
}

/// The drained gateways (none if the file does not exist).
pub fn read_drains(state_dir: &Path) -> anyhow::Result<BTreeSet<String>> {
    let path = drains_path(state_dir);
    Ok(state::read_json(&path)
        .with_context(|| format!("reading the drains {}", path.display()))?
        .unwrap_or_default())
}

pub fn write_drains(state_dir: &Path, drained: &BTreeSet<String>) -> anyhow::Result<()> {
    std::fs::create_dir_all(state_dir)
        .with_context(|| format!("creating {}", state_dir.display()))?;
    let path = drains_path(state_dir);
    state::write_json(&path, drained, MODE_PUBLIC)
        .with_context(|| format!("writing the drains {}", path.display()))
}

/// The `[dns]` section, or an error saying the inventory has none.
pub fn section(inventory: &Inventory) -> anyhow::Result<&Dns> {
    inventory
        .dns
        .as_ref()
        .context("the inventory has no [dns] section: gwx dns has nothing to serve")
}

/// What every address is checked with: the configured port, else the first TCP
/// service's; an HTTP check asks for the first service's name.
fn targets(inventory: &Inventory, dns: &Dns) -> Vec<Target> {
    let port = dns.check.port.unwrap_or_else(|| {
        inventory
            .services
            .iter()
            .find(|s| s.protocol == Protocol::Tcp)
            .map_or(0, |s| s.port)
    });
    let host = hostnames(inventory)
        .first()
        .map(|h| format!("{h}.{}", dns.zone.trim_end_matches('.')))
        .unwrap_or_else(|| dns.zone.clone());
    inventory
        .gateways
        .iter()
        .flat_map(|g| {
            g.public.iter().map(|a| Target {
                addr: SocketAddr::new(*a, port),
                gateway: g.id.clone(),
                http: dns.check.http.as_ref().map(|h| HttpCheck {
                    path: h.path.clone(),
                    host: host.clone(),
                }),
            })
        })
        .collect()
}

/// The names answered, relative to the zone, once each.
fn hostnames(inventory: &Inventory) -> Vec<String> {
    let mut names: Vec<String> = Vec::new();
    for s in &inventory.services {
        let h = s.hostname.clone().unwrap_or_else(|| s.name.clone());
        if !names.contains(&h) {
            names.push(h);
        }
    }
    names
}

/// The draw weight and group of every gateway address.
#[derive(Debug, Clone, Default)]
struct Shape(HashMap<IpAddr, (u32, Option<String>)>);

impl Shape {
    fn of(inventory: &Inventory, dns: &Dns) -> Shape {
        let mut shape = HashMap::new();
        for g in &inventory.gateways {
            for a in &g.public {
                shape.insert(*a, (dns.weight(*a), g.group.clone()));
            }
        }
        Shape(shape)
    }

    fn candidate(&self, addr: IpAddr, health: Health) -> Candidate {
        let c = Candidate::new(addr, health);
        match self.0.get(&addr) {
            Some((weight, group)) => {
                let c = c.with_weight(*weight);
                match group {
                    Some(g) => c.with_group(g.clone()),
                    None => c,
                }
            }
            None => c,
        }
    }
}

fn pool(snapshot: &Snapshot, shape: &Shape, policy: &Policy) -> anyhow::Result<Pool> {
    let candidates: Vec<Candidate> = snapshot
        .iter()
        .map(|(addr, health)| shape.candidate(*addr, *health))
        .collect();
    Pool::new(&candidates, policy).context("building the address pool")
}

/// Waits until every address that is not drained has a verdict, so the first answers
/// hold only checked addresses, but no longer than the slowest verdict can take:
/// `max(rise, fall)` checks, plus one interval over which the first checks are spread,
/// plus one timeout. An address still undecided then (one that flaps) has at least been
/// checked; the pool keeps unchecked addresses out of healthy answers anyway.
async fn first_verdicts(
    changes: &mut watch::Receiver<Snapshot>,
    check: &CheckConfig,
    shutdown: &CancellationToken,
) {
    let bound = check.interval * (check.rise.max(check.fall) + 1) + check.timeout;
    let started = Instant::now();
    let decided = |s: &Snapshot| s.iter().all(|(_, h)| *h != Health::Unchecked);
    let waited = tokio::select! {
        _ = shutdown.cancelled() => return,
        w = tokio::time::timeout(bound, async { changes.wait_for(decided).await.is_ok() }) => w,
    };
    let snapshot = changes.borrow().clone();
    let count = |want: Health| snapshot.iter().filter(|(_, h)| *h == want).count();
    let (up, down, unchecked) = (
        count(Health::Up),
        count(Health::Down),
        count(Health::Unchecked),
    );
    let ms = started.elapsed().as_millis();
    match waited {
        Ok(_) => tracing::info!(ms, up, down, "first health verdicts in"),
        Err(_) => tracing::warn!(
            ms,
            up,
            down,
            unchecked,
            "some addresses have no verdict yet: serving without them"
        ),
    }
}

/// A running DNS service.
#[derive(Clone)]
pub struct Service {
    checker: Arc<Checker>,
    state_dir: PathBuf,
}

impl Service {
    /// Registers the metrics, starts the checks and binds the sockets; the returned
    /// future serves until `shutdown`.
    pub async fn start(
        inventory: &Inventory,
        state_dir: &Path,
        registry: &mut Registry,
        shutdown: CancellationToken,
    ) -> anyhow::Result<(Service, impl Future<Output = anyhow::Result<()>> + use<>)> {
        let dns = section(inventory)?.clone();
        let check = CheckConfig {
            interval: Duration::from_millis(dns.check.interval_ms),
            timeout: Duration::from_millis(dns.check.timeout_ms),
            rise: dns.check.rise,
            fall: dns.check.fall,
        };
        let health_metrics = HealthMetrics::register(registry);
        let checker = Arc::new(
            Checker::start(
                targets(inventory, &dns),
                check,
                &health_metrics,
                shutdown.clone(),
            )
            .context("starting the health checks")?,
        );
        let service = Service {
            checker: checker.clone(),
            state_dir: state_dir.to_owned(),
        };
        service.apply_drains()?;
        let policy = Policy {
            answer_count: dns.answer_count,
            fallback: dns.fallback.clone(),
            allow_unchecked_at_start: dns.allow_unchecked_at_start,
        };
        let serial = SystemTime::now()
            .duration_since(SystemTime::UNIX_EPOCH)
            .map_or(1, |d| u32::try_from(d.as_secs()).unwrap_or(u32::MAX));
        let zone = Zone::from_inventory(&dns, &hostnames(inventory), serial)
            .context("building the zone")?;
        // Bound before the first verdicts so a taken port fails the start at once;
        // queries that arrive meanwhile wait in the socket buffer.
        let sockets = Sockets::bind(&dns.listen)
            .await
            .context("binding the DNS sockets")?;
        let mut changes = checker.subscribe();
        if !dns.allow_unchecked_at_start {
            first_verdicts(&mut changes, &check, &shutdown).await;
        }
        let shape = Shape::of(inventory, &dns);
        let live = Live::new(zone, pool(&changes.borrow_and_update(), &shape, &policy)?);
        let handler = Handler::new(live.clone(), DnsMetrics::register(registry));
        tracing::info!(zone = %dns.zone, listen = ?dns.listen, addresses = checker.snapshot().len(), "serving DNS");

        let stop = shutdown.clone();
        tokio::spawn(async move {
            loop {
                tokio::select! {
                    _ = stop.cancelled() => return,
                    changed = changes.changed() => if changed.is_err() { return },
                }
                let snapshot = changes.borrow_and_update().clone();
                match pool(&snapshot, &shape, &policy) {
                    Ok(p) => {
                        for family in [super::select::Family::V4, super::select::Family::V6] {
                            let source = p.source(family);
                            if source.is_fallback() {
                                tracing::warn!(
                                    ?family,
                                    ?source,
                                    "no healthy address: answering with the fallback"
                                );
                            }
                        }
                        live.set_pool(p);
                    }
                    Err(e) => {
                        tracing::error!(error = %format!("{e:#}"), "keeping the previous pool")
                    }
                }
            }
        });
        let poller = service.clone();
        let stop = shutdown.clone();
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(DRAINS_POLL);
            loop {
                tokio::select! {
                    _ = stop.cancelled() => return,
                    _ = tick.tick() => {
                        if let Err(e) = poller.apply_drains() {
                            tracing::warn!(error = %format!("{e:#}"), "cannot apply the drains");
                        }
                    }
                }
            }
        });
        let serve = async move {
            server::run(sockets, handler, shutdown)
                .await
                .context("serving DNS")
        };
        Ok((service, serve))
    }

    /// Makes the checker's drains those of the drains file.
    pub fn apply_drains(&self) -> anyhow::Result<()> {
        let want = read_drains(&self.state_dir)?;
        let have: BTreeSet<String> = self.checker.drained().into_iter().collect();
        for gw in want.difference(&have) {
            self.checker
                .drain(gw)
                .with_context(|| format!("draining {gw}"))?;
            tracing::info!(gateway = %gw, "drained: out of the answers");
        }
        for gw in have.difference(&want) {
            self.checker
                .undrain(gw)
                .with_context(|| format!("undraining {gw}"))?;
            tracing::info!(gateway = %gw, "undrained: back in the answers when healthy");
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dns::select::Family;
    use appliance::config;

    /// Four gateways: three of provider a, one of provider b, whose address has weight
    /// 0 in `weights` when asked.
    fn inventory(weights: &str) -> Inventory {
        let mut text = String::from("[grid]\nname = \"g\"\n");
        for (i, group) in ["a", "a", "a", "b"].iter().enumerate() {
            text += &format!(
                "[[gateway]]\nid = \"gw{i}\"\npublic = [\"203.0.113.{}\"]\nprivate = [\"192.0.2.{}\"]\ngroup = \"{group}\"\n",
                10 + i,
                10 + i
            );
        }
        text += "[[service]]\nname = \"web\"\nprotocol = \"tcp\"\nport = 443\nbackend = \"192.0.2.2:443\"\nmode = \"proxy\"\n\
                 [dns]\nzone = \"example.net\"\nlisten = [\"127.0.0.1:5300\"]\nnameservers = [\"ns.example.org\"]\nanswer_count = 2\n";
        text += weights;
        config::parse(&text, Path::new("grid.toml")).unwrap()
    }

    fn draws(inv: &Inventory, health: impl Fn(usize) -> Health) -> Vec<Vec<IpAddr>> {
        let dns = inv.dns.as_ref().unwrap();
        let snapshot: Snapshot = (0..4)
            .map(|i| (IpAddr::from([203, 0, 113, 10 + i as u8]), health(i)))
            .collect();
        let policy = Policy {
            answer_count: dns.answer_count,
            fallback: dns.fallback.clone(),
            allow_unchecked_at_start: false,
        };
        let pool = pool(&snapshot, &Shape::of(inv, dns), &policy).unwrap();
        let mut rng = rand::rng();
        (0..200)
            .map(|_| pool.select(Family::V4, &mut rng).addrs)
            .collect()
    }

    #[test]
    fn groups_and_weights_from_the_inventory_shape_the_answers() {
        let b: IpAddr = "203.0.113.13".parse().unwrap();
        // Spreading over the two groups puts b's only address in every answer.
        let inv = inventory("");
        assert!(draws(&inv, |_| Health::Up).iter().all(|a| a.contains(&b)));
        // Weight 0 makes it a standby: never drawn while others are up ...
        let inv = inventory("[dns.weights]\n\"203.0.113.13\" = 0\n");
        assert!(draws(&inv, |_| Health::Up).iter().all(|a| !a.contains(&b)));
        // ... and drawn when it is the only healthy one.
        let only_b = draws(&inv, |i| if i == 3 { Health::Up } else { Health::Down });
        assert!(only_b.iter().all(|a| a == &[b]));
    }
}
