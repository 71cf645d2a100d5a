//! The ban engine as a daemon (`gwx bans run`): one task per jail reads its log and
//! judges each line; one writer task places the bans in the kernel's ban sets, in
//! batches; a snapshot of the sets goes to the state file after each batch (at most
//! once a second) and every 30 seconds.
//!
//! ```text
//! log source --lines--> jail task (filter, count) --bans--> writer (nft batches)
//! log source --lines--> jail task                 --bans--^        |
//!                                                        snapshots -> bans.json
//! ```
//!
//! At start, the bans of the state file that have not ended are placed again with their
//! remaining time (after a reboot the sets are empty; after a restart they are still
//! there and re-adding changes nothing).

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::Context;
use chrono::Utc;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use super::counter::{Ban, Counter, now_millis};
use super::filter::Filter;
use super::follow::{self, LogLine, SourceSpec};
use super::guard::Guard;
use super::jails::{BansConfig, Jail, LogSource};
use super::judge::{Judge, Judgement};
use super::metrics::BanMetrics;
use super::nftset::{BanSets, Placement};
use super::state::{Saved, SavedBan, StateFile, VERSION};
use crate::inventory::Inventory;
use crate::nft::command::Nft;

/// How often the sets are snapshot into the state file when nothing happens.
const SNAPSHOT_EVERY: Duration = Duration::from_secs(30);
/// Least time between two snapshots after bans.
const SNAPSHOT_AFTER_BANS: Duration = Duration::from_secs(1);
/// Bans restored at start go to nft in transactions of this many.
const RESTORE_CHUNK: usize = 50_000;
/// How long the start waits for an existing log file to be opened.
const OPEN_TIMEOUT: Duration = Duration::from_secs(5);

/// Everything the daemon needs, loaded and checked before it starts.
pub struct Engine {
    config: BansConfig,
    inventory: Inventory,
    sets: BanSets,
    state: StateFile,
    jails: Vec<JailSetup>,
    metrics: BanMetrics,
}

struct JailSetup {
    jail: Jail,
    filter: Filter,
    counter: Arc<Mutex<Counter>>,
    guard: Guard,
}

impl Engine {
    /// Loads every jail's filter: an unreadable or unsupported filter stops the start
    /// with an error naming the jail and the filter file.
    pub fn new(
        config: BansConfig,
        inventory: Inventory,
        nft: Nft,
        metrics: BanMetrics,
    ) -> anyhow::Result<Engine> {
        let grid_guard =
            Guard::for_grid(&inventory).with_allowlist(config.bans.ignoreip.iter().copied());
        let mut jails = Vec::new();
        for jail in &config.jails {
            let path = config.filter_path(jail);
            let options: Vec<(String, String)> = jail
                .filter_options
                .iter()
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect();
            let filter = Filter::load(&path, &options)
                .with_context(|| format!("jail `{}`: loading its filter", jail.name))?;
            jails.push(JailSetup {
                jail: jail.clone(),
                filter,
                counter: Arc::new(Mutex::new(Counter::new(jail.clone()))),
                guard: grid_guard.with_allowlist(jail.ignoreip.iter().copied()),
            });
        }
        Ok(Engine {
            state: StateFile::new(config.state_file()),
            sets: BanSets::new(nft, &inventory.hardening),
            config,
            inventory,
            jails,
            metrics,
        })
    }

    /// Places the saved bans again (blocking: nft), then the engine is ready to
    /// [`start`](Restored::start).
    pub fn restore(self) -> anyhow::Result<Restored> {
        let saved = self.restore_saved()?;
        Ok(Restored {
            engine: self,
            saved,
        })
    }
}

/// An engine whose saved bans are in place again.
pub struct Restored {
    engine: Engine,
    saved: Saved,
}

impl Restored {
    /// Starts the jails' sources and tasks and returns once every log file that exists
    /// is open, so that lines written after the daemon reports ready are never missed
    /// (a file that does not exist yet is read from its start when it appears). The
    /// returned task runs until `stop` and takes a last snapshot before it ends.
    pub async fn start(self, stop: CancellationToken) -> JoinHandle<anyhow::Result<()>> {
        let Restored { engine, saved } = self;
        let engine = Arc::new(engine);

        let (ban_tx, ban_rx) = mpsc::channel::<Ban>(16_384);
        let positions: Arc<Mutex<BTreeMap<String, follow::Position>>> = Arc::default();
        let mut tasks = tokio::task::JoinSet::new();
        let mut opening = Vec::new();
        for j in &engine.jails {
            let (line_tx, line_rx) = mpsc::channel::<LogLine>(4096);
            let spec = source_spec(&j.jail, &j.filter, saved.positions.get(&j.jail.name));
            let exists = matches!(&spec, SourceSpec::File { path, .. } if path.exists());
            let handle = follow::start(spec, line_tx, stop.clone());
            if exists {
                opening.push((j.jail.name.clone(), handle.position()));
            }
            positions
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .insert(j.jail.name.clone(), handle.position());
            let mut matcher = j.filter.matcher();
            matcher.set_injection_guard(j.jail.injection_guard);
            let judge = Judge::new(
                matcher,
                j.counter.clone(),
                j.guard.clone(),
                engine.inventory.hardening.clone(),
                engine.metrics.jail(&j.jail.name),
            );
            tasks.spawn(judge_lines(
                j.jail.name.clone(),
                judge,
                line_rx,
                ban_tx.clone(),
            ));
            tasks.spawn(watch_source(j.jail.name.clone(), handle, stop.clone()));
        }
        drop(ban_tx);
        for (jail, mut position) in opening {
            if tokio::time::timeout(OPEN_TIMEOUT, position.opened())
                .await
                .is_err()
            {
                tracing::warn!(%jail, timeout_s = OPEN_TIMEOUT.as_secs(), "log file not open yet; going on");
            }
        }
        tracing::info!(jails = engine.jails.len(), "ban engine running");
        tokio::spawn(Engine::write_loop(engine, ban_rx, positions, stop, tasks))
    }
}

impl Engine {
    async fn write_loop(
        engine: Arc<Engine>,
        ban_rx: mpsc::Receiver<Ban>,
        positions: Arc<Mutex<BTreeMap<String, follow::Position>>>,
        stop: CancellationToken,
        mut tasks: tokio::task::JoinSet<anyhow::Result<()>>,
    ) -> anyhow::Result<()> {
        // The writer ends when every jail task has ended, which they do when `stop`
        // ends their sources and they have judged every line already read.
        let written = engine.write_bans(ban_rx, positions).await;
        if written.is_err() {
            stop.cancel();
        }
        let mut first_error = written.err();
        while let Some(done) = tasks.join_next().await {
            let r = done.map_err(anyhow::Error::from).and_then(|r| r);
            if let (Err(e), None) = (r, &first_error) {
                first_error = Some(e);
            }
        }
        first_error.map_or(Ok(()), Err)
    }

    /// Runs `f` on the blocking pool: nft and the state file are blocking work.
    async fn blocking<T: Send + 'static>(
        self: Arc<Self>,
        f: impl FnOnce(&Engine) -> anyhow::Result<T> + Send + 'static,
    ) -> anyhow::Result<T> {
        tokio::task::spawn_blocking(move || f(&self))
            .await
            .context("a ban engine task panicked")?
    }

    /// Places the saved bans again and restores the counters' memory; returns what was
    /// saved (for the log positions).
    fn restore_saved(&self) -> anyhow::Result<Saved> {
        let lock = self.state.lock()?;
        let saved = self.state.read(&lock)?;
        let now = now_millis();
        let live: Vec<&SavedBan> = saved.bans.iter().filter(|b| b.until > now + 999).collect();
        let started = Instant::now();
        for chunk in live.chunks(RESTORE_CHUNK) {
            let placements: Vec<Placement> = chunk
                .iter()
                .map(|b| Placement {
                    net: b.net,
                    timeout: Duration::from_millis((b.until - now) as u64),
                    jail: b.jail.clone(),
                    replace: false,
                })
                .collect();
            self.sets.add(&placements).context("restoring saved bans")?;
        }
        if !saved.bans.is_empty() {
            tracing::info!(
                restored = live.len(),
                ended = saved.bans.len() - live.len(),
                elapsed_ms = started.elapsed().as_millis() as u64,
                state = %self.state.path().display(),
                "saved bans placed again with their remaining time"
            );
        }
        for j in &self.jails {
            let active = live
                .iter()
                .filter(|b| b.jail == j.jail.name)
                .map(|b| (b.net, b.until));
            let history = saved.history.get(&j.jail.name).cloned().unwrap_or_default();
            j.counter
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .restore(active, history);
        }
        Ok(saved)
    }

    /// The writer: places bans in batches until every jail task has ended (the
    /// channel closes), snapshotting the sets as it goes and once more at the end, so
    /// the saved log positions never run ahead of the bans placed.
    async fn write_bans(
        self: Arc<Self>,
        mut rx: mpsc::Receiver<Ban>,
        positions: Arc<Mutex<BTreeMap<String, follow::Position>>>,
    ) -> anyhow::Result<()> {
        let mut pending: Vec<Ban> = Vec::new();
        let mut dirty = false;
        let mut last_snapshot = Instant::now();
        let mut tick = tokio::time::interval(Duration::from_millis(500));
        loop {
            tokio::select! {
                got = rx.recv() => match got {
                    Some(ban) => pending.push(ban),
                    None => break,
                },
                _ = tick.tick() => {}
            }
            // Everything already queued joins this batch.
            while pending.len() < self.config.bans.batch_max {
                match rx.try_recv() {
                    Ok(ban) => pending.push(ban),
                    Err(_) => break,
                }
            }
            if !pending.is_empty() {
                let batch = std::mem::take(&mut pending);
                let (batch, placed) = self
                    .clone()
                    .blocking(move |e| {
                        let placed = e.place(&batch);
                        Ok((batch, placed))
                    })
                    .await?;
                match placed {
                    Ok(()) => dirty = true,
                    Err(e) => {
                        // Kept for the next round (at the latest the next tick): nft
                        // may be busy or the table being re-applied; a ban is never
                        // dropped silently.
                        self.metrics.nft_error();
                        tracing::error!(error = %format!("{e:#}"), bans = batch.len(), "placing bans failed; retrying");
                        pending = batch;
                    }
                }
            }
            let due = if dirty {
                last_snapshot.elapsed() >= SNAPSHOT_AFTER_BANS
            } else {
                last_snapshot.elapsed() >= SNAPSHOT_EVERY
            };
            if due {
                self.clone().snapshot_logged(positions.clone()).await;
                dirty = false;
                last_snapshot = Instant::now();
            }
        }
        self.snapshot_logged(positions).await;
        Ok(())
    }

    /// Places one batch; logs each ban.
    fn place(&self, batch: &[Ban]) -> anyhow::Result<()> {
        let now = now_millis();
        let placements: Vec<Placement> = batch
            .iter()
            .map(|b| Placement {
                net: b.net,
                timeout: b.remaining(now),
                jail: b.jail.clone(),
                // A network banned before may still be in the set (its ban about to
                // end, or placed by `gwx bans add`): it gets this ban's time.
                replace: true,
            })
            .collect();
        let started = Instant::now();
        self.sets.add(&placements)?;
        let elapsed_ms = started.elapsed().as_millis() as u64;
        for b in batch {
            tracing::info!(jail = %b.jail, net = %b.net, ban = b.nth, secs = b.remaining(now).as_secs(), elapsed_ms, "banned");
        }
        Ok(())
    }

    async fn snapshot_logged(
        self: Arc<Self>,
        positions: Arc<Mutex<BTreeMap<String, follow::Position>>>,
    ) {
        if let Err(e) = self.blocking(move |e| e.snapshot(&positions)).await {
            tracing::error!(error = %format!("{e:#}"), "saving the ban state failed");
        }
    }

    /// Writes the state file from a listing of the sets (the truth: it includes bans of
    /// `gwx bans add` and leaves out those of `gwx bans del`).
    fn snapshot(
        &self,
        positions: &Mutex<BTreeMap<String, follow::Position>>,
    ) -> anyhow::Result<()> {
        let lock = self.state.lock()?;
        let listed = self.sets.list().context("listing the ban sets")?;
        let now = now_millis();
        let mut per_jail: HashMap<&str, usize> = self
            .jails
            .iter()
            .map(|j| (j.jail.name.as_str(), 0))
            .collect();
        for l in &listed {
            *per_jail.entry(l.jail.as_str()).or_default() += 1;
        }
        self.metrics.set_active(per_jail, listed.len());
        let listed_nets: std::collections::HashSet<_> =
            listed.iter().map(|l| (l.net, l.jail.as_str())).collect();
        let mut history = BTreeMap::new();
        for j in &self.jails {
            let mut c = j.counter.lock().unwrap_or_else(|e| e.into_inner());
            // Bans lifted by an operator are forgotten, so the source can be banned again.
            c.forget_unless(|net| listed_nets.contains(&(*net, j.jail.name.as_str())));
            c.sweep(now);
            history.insert(
                j.jail.name.clone(),
                c.history().map(|(n, h)| (*n, *h)).collect(),
            );
        }
        let positions = positions
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .iter()
            .filter_map(|(jail, p)| p.get().map(|p| (jail.clone(), p)))
            .collect();
        let saved = Saved {
            version: VERSION,
            saved_at: now,
            bans: listed
                .into_iter()
                .map(|l| SavedBan {
                    net: l.net,
                    until: now + l.expires.as_millis() as i64,
                    jail: l.jail,
                })
                .collect(),
            history,
            positions,
        };
        self.state.write(&lock, &saved)
    }
}

/// The log source of a jail; a file resumes where the state file says it was read up to.
fn source_spec(
    jail: &Jail,
    filter: &Filter,
    position: Option<&follow::FilePosition>,
) -> SourceSpec {
    match &jail.log {
        LogSource::File(path) => SourceSpec::File {
            path: path.clone(),
            from_start: false,
            resume: position.copied(),
        },
        LogSource::Journal(matches) => {
            let matches = if matches.is_empty() {
                filter.journalmatch().unwrap_or("").to_owned()
            } else {
                matches.join(" ")
            };
            SourceSpec::Journal {
                command: follow::journal_command(&matches),
            }
        }
    }
}

/// A jail's task: judges lines until the source ends, sending bans to the writer.
async fn judge_lines(
    jail: String,
    mut judge: Judge,
    mut lines: mpsc::Receiver<LogLine>,
    bans: mpsc::Sender<Ban>,
) -> anyhow::Result<()> {
    let mut batch = Vec::with_capacity(256);
    while lines.recv_many(&mut batch, 256).await > 0 {
        let now = Utc::now();
        for line in batch.drain(..) {
            if let Judgement::Ban(ban) = judge.line(&line.text, line.source_time, now) {
                if bans.send(ban).await.is_err() {
                    // The writer failed; it says why.
                    return Ok(());
                }
            }
        }
    }
    tracing::debug!(%jail, "log source ended");
    Ok(())
}

/// Waits for a source to end; a source that fails stops the engine (and the daemon),
/// as a jail that no longer reads its log would silently protect nothing.
async fn watch_source(
    jail: String,
    handle: follow::Handle,
    stop: CancellationToken,
) -> anyhow::Result<()> {
    let ended = handle.join().await;
    if ended.is_err() {
        stop.cancel();
    }
    ended.with_context(|| format!("jail `{jail}`: its log source failed"))
}
