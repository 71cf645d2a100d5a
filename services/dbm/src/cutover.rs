//! The cutover: the short window in which nobody can write.
//!
//! ```text
//! freeze     db0 read-only; statements still running after grace_secs killed; its other
//!            clients disconnected; db0's final position recorded; wait (at most
//!            max_catchup_secs) until db1 has applied it, else db0 writable again
//! promote    db1 stops replicating; db1's position recorded; a consistent snapshot of
//!            db1 opened for verify; db1 forgets db0
//! unfreeze   db1 writable
//! hook       the operator's command (DNS, proxy) switches the clients to db1
//!            -> the write freeze is over: measured from freeze to here
//! repoint    db2 applies db0's final position, then replicates from db1 from the
//!            recorded position, held there (UNTIL) for verify
//! ```
//!
//! db2 is repointed after the freeze, not in it: db1's position was recorded before db1
//! took any write, so it is exact whenever db2 gets there, and db2's own catch-up does
//! not lengthen the freeze.
//!
//! Times are wall-clock milliseconds in the journal (`frozen_at`, `writable_at`,
//! `switched_at`), so a freeze interrupted by a crash is still measured from its start.

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};

use crate::config::{Config, ReplicationMode, Role};
use crate::db::{BinlogPos, Db, Flavour};
use crate::journal::{Step, StepContext, StepId, Undo};
use crate::replicate::{self, Setup, StartAt, connect, literal};
use crate::shell;

/// db1's consistent snapshot at the promote, held open for verify (same process only).
pub type Snapshot = Arc<tokio::sync::Mutex<Option<Db>>>;

/// How long `SET GLOBAL read_only` may take once the blocking statements are killed.
const READ_ONLY_TIMEOUT: Duration = Duration::from_secs(30);
/// How often a wait says how far it is.
const PROGRESS_EVERY: Duration = Duration::from_secs(5);

fn now_ms() -> i64 {
    chrono::Utc::now().timestamp_millis()
}

/// Connections `KILL` spares: replication and the server's own threads.
const SPARED_COMMANDS: &str = "'Binlog Dump', 'Binlog Dump GTID', 'Daemon', 'Slave_IO', \
                               'Slave_SQL', 'Slave_worker', 'Killed'";

/// Kills db0's client connections except `spare`; `running_only`: only those in the
/// middle of a statement. Returns how many.
async fn kill_clients(db0: &mut Db, spare: &[u32], running_only: bool) -> anyhow::Result<usize> {
    let mut sql = format!(
        "SELECT ID FROM information_schema.PROCESSLIST WHERE COMMAND NOT IN ({SPARED_COMMANDS}) \
         AND USER NOT IN ('system user', 'event_scheduler')"
    );
    if running_only {
        sql.push_str(" AND COMMAND = 'Query'");
    }
    let ids: Vec<u64> = db0.rows("listing db0's client connections", &sql).await?;
    let mut killed = 0;
    for id in ids {
        if spare.iter().any(|s| u64::from(*s) == id) {
            continue;
        }
        // Gone in the meantime is fine.
        if db0
            .run(
                "killing a client connection",
                &format!("KILL CONNECTION {id}"),
            )
            .await
            .is_ok()
        {
            killed += 1;
        }
    }
    Ok(killed)
}

/// Makes db0 read-only: statements that block it for longer than the grace period are
/// killed; then every other client connection is closed (they cannot write any more,
/// and must reconnect to find db1). Returns how many connections were killed.
async fn freeze_db0(config: &Config, db0: &mut Db) -> anyhow::Result<usize> {
    // On its own connection: it waits for running statements and commits.
    let mut setter = connect(config, Role::Db0).await?;
    let spare = [db0.id(), setter.id()];
    let mut set = Box::pin(async move {
        let r = setter
            .run("making db0 read-only", "SET GLOBAL read_only = ON")
            .await;
        setter.close().await;
        r
    });
    let mut killed = 0;
    match tokio::time::timeout(config.cutover.grace(), &mut set).await {
        Ok(r) => r?,
        Err(_) => {
            killed += kill_clients(db0, &spare, true).await?;
            tracing::warn!(
                killed,
                "db0 still not read-only after the grace period: killed the running statements"
            );
            tokio::time::timeout(READ_ONLY_TIMEOUT, set)
                .await
                .context("db0 did not become read-only even after its statements were killed")??;
        }
    }
    killed += kill_clients(db0, &spare, false).await?;
    Ok(killed)
}

config_step!(
    /// Step `freeze`.
    Freeze
);

#[async_trait::async_trait]
impl Step for Freeze {
    fn id(&self) -> StepId {
        StepId::Freeze
    }

    async fn run(&self, ctx: &mut StepContext<'_>) -> anyhow::Result<String> {
        let setup = Setup::of(ctx.journal())?;
        let mut db0 = connect(&self.config, Role::Db0).await?;
        let mut db1 = connect(&self.config, Role::Db1).await?;
        // An earlier attempt that was killed left db0 frozen: the freeze began then.
        let earlier: Option<i64> = ctx.get("frozen_at")?;
        let frozen_at = match earlier {
            Some(t) if db0.read_only().await? => t,
            _ => now_ms(),
        };
        ctx.set("frozen_at", frozen_at)?;
        ctx.checkpoint()?;
        let killed = freeze_db0(&self.config, &mut db0).await?;
        let last = db0.master_status().await?;
        ctx.set("final", &last)?;
        ctx.checkpoint()?;
        tracing::info!(%last, killed, "db0 frozen");

        let bound = Duration::from_secs(self.config.cutover.max_catchup_secs);
        let waited = Instant::now();
        let caught_up = replicate::wait_applied(&mut db1, &setup, &last, bound).await;
        if !matches!(caught_up, Ok(true)) {
            // Writes stay possible: db0 takes them again, and a new attempt freezes anew.
            db0.run("making db0 writable again", "SET GLOBAL read_only = OFF")
                .await?;
            let why = match caught_up {
                Ok(_) => format!(
                    "db1 did not apply db0's final position {last} within {}s",
                    bound.as_secs()
                ),
                Err(e) => format!("{e:#}"),
            };
            bail!(
                "{why}; db0 is writable again (frozen for {} ms). Run again to retry the cutover \
                 (consider a larger cutover.max_catchup_secs), or `dbm abort`",
                now_ms() - frozen_at
            );
        }
        db0.close().await;
        db1.close().await;
        Ok(format!(
            "db0 read-only, {killed} client connection(s) closed; final position {last}; \
             db1 applied it in {} ms",
            waited.elapsed().as_millis()
        ))
    }

    async fn undo(&self, _ctx: &mut StepContext<'_>) -> anyhow::Result<Undo> {
        let mut db0 = connect(&self.config, Role::Db0).await?;
        if !db0.read_only().await? {
            return Ok(Undo::Nothing("db0 is writable".to_owned()));
        }
        db0.run("making db0 writable again", "SET GLOBAL read_only = OFF")
            .await?;
        db0.close().await;
        Ok(Undo::Undone("db0 writable again".to_owned()))
    }
}

/// Step `promote`.
pub struct Promote {
    config: Config,
    snapshot: Snapshot,
}

impl Promote {
    pub fn new(config: &Config, snapshot: Snapshot) -> Promote {
        Promote {
            config: config.clone(),
            snapshot,
        }
    }
}

/// The final position of db0 that `freeze` recorded.
fn final_position(ctx: &StepContext<'_>) -> anyhow::Result<BinlogPos> {
    ctx.journal()
        .get(StepId::Freeze, "final")
        .context("db0's final position")
}

#[async_trait::async_trait]
impl Step for Promote {
    fn id(&self) -> StepId {
        StepId::Promote
    }

    async fn already_done(&self, ctx: &mut StepContext<'_>) -> anyhow::Result<bool> {
        let mut db1 = connect(&self.config, Role::Db1).await?;
        let done =
            ctx.get::<BinlogPos>("position")?.is_some() && db1.replica_status().await?.is_none();
        db1.close().await;
        Ok(done)
    }

    async fn run(&self, ctx: &mut StepContext<'_>) -> anyhow::Result<String> {
        let setup = Setup::of(ctx.journal())?;
        let last = final_position(ctx)?;
        let mut db1 = connect(&self.config, Role::Db1).await?;
        // A dbm killed between STOP SLAVE and recording the position left it stopped.
        if db1.replica_status().await?.is_some_and(|s| !s.running()) {
            db1.run("restarting replication", "START SLAVE").await?;
            replicate::wait_running(&mut db1, Role::Db0, false).await?;
        }
        // After a crash between freeze and here db1 may still be applying.
        if !replicate::wait_applied(&mut db1, &setup, &last, READ_ONLY_TIMEOUT).await? {
            bail!("db1 has not applied db0's final position {last}");
        }
        db1.run("stopping replication", "STOP SLAVE").await?;
        let position = db1.master_status().await?;
        ctx.set("position", &position)?;
        ctx.checkpoint()?;

        // Before db1 takes a write: the state verify compares with db0 and db2.
        let mut snap = connect(&self.config, Role::Db1).await?;
        snap.run(
            "setting the snapshot's isolation",
            "SET SESSION TRANSACTION ISOLATION LEVEL REPEATABLE READ",
        )
        .await?;
        snap.run(
            "opening a snapshot of db1",
            "START TRANSACTION WITH CONSISTENT SNAPSHOT",
        )
        .await?;
        if let Some(old) = self.snapshot.lock().await.replace(snap) {
            old.close().await;
        }

        db1.run("forgetting db0", "RESET SLAVE ALL").await?;
        db1.close().await;
        Ok(format!(
            "db1 no longer replicates; its position is {position}"
        ))
    }

    async fn undo(&self, ctx: &mut StepContext<'_>) -> anyhow::Result<Undo> {
        let mut db1 = connect(&self.config, Role::Db1).await?;
        if !db1.read_only().await? {
            return Ok(Undo::Impossible(
                "db1 is writable and may have taken writes db0 does not have".to_owned(),
            ));
        }
        if db1.replica_status().await?.is_some() {
            return Ok(Undo::Nothing("db1 still replicates from db0".to_owned()));
        }
        let setup = Setup::of(ctx.journal())?;
        let last = final_position(ctx)?;
        let from = match setup.mode {
            // gtid_slave_pos survived RESET SLAVE ALL: it is db0's final position.
            ReplicationMode::Gtid => StartAt::Gtid,
            ReplicationMode::FilePos => StartAt::FilePos {
                file: last.file.clone(),
                pos: last.pos,
            },
        };
        replicate::replicate(&self.config, &setup, &mut db1, Role::Db0, &from, None).await?;
        db1.close().await;
        Ok(Undo::Undone(format!(
            "db1 replicates from db0 again from {last}"
        )))
    }
}

config_step!(
    /// Step `unfreeze`: db1 writable.
    Unfreeze
);

/// Milliseconds since the freeze began.
fn frozen_for(ctx: &StepContext<'_>, at: i64) -> anyhow::Result<i64> {
    let frozen_at: i64 = ctx
        .journal()
        .get(StepId::Freeze, "frozen_at")
        .context("when the freeze began")?;
    Ok(at - frozen_at)
}

#[async_trait::async_trait]
impl Step for Unfreeze {
    fn id(&self) -> StepId {
        StepId::Unfreeze
    }

    async fn already_done(&self, _ctx: &mut StepContext<'_>) -> anyhow::Result<bool> {
        let mut db1 = connect(&self.config, Role::Db1).await?;
        let writable = !db1.read_only().await?;
        db1.close().await;
        Ok(writable)
    }

    async fn run(&self, ctx: &mut StepContext<'_>) -> anyhow::Result<String> {
        let mut db1 = connect(&self.config, Role::Db1).await?;
        db1.run("making db1 writable", "SET GLOBAL read_only = OFF")
            .await?;
        db1.close().await;
        let at = now_ms();
        ctx.set("writable_at", at)?;
        let frozen = frozen_for(ctx, at)?;
        if self.config.cutover.hook.is_none() {
            ctx.set("freeze_ms", frozen)?;
            Ok(format!("db1 writable; write freeze {frozen} ms"))
        } else {
            Ok(format!(
                "db1 writable {frozen} ms after the freeze began; the hook is next"
            ))
        }
    }

    async fn undo(&self, _ctx: &mut StepContext<'_>) -> anyhow::Result<Undo> {
        Ok(Undo::Impossible(
            "db1 is writable: writes it took would be lost by going back to db0".to_owned(),
        ))
    }
}

config_step!(
    /// Step `hook`: the operator's switch to db1.
    Hook
);

#[async_trait::async_trait]
impl Step for Hook {
    fn id(&self) -> StepId {
        StepId::Hook
    }

    async fn run(&self, ctx: &mut StepContext<'_>) -> anyhow::Result<String> {
        let c = &self.config.cutover;
        let hook = c.hook.as_deref().context("cutover.hook is not set")?;
        let db1 = &self.config.db1;
        let env = [
            (
                "DBM_DB1_HOST",
                db1.source_host().unwrap_or_default().to_owned(),
            ),
            ("DBM_DB1_PORT", db1.port.to_string()),
        ];
        shell::run_with_timeout(
            "cutover.hook",
            hook,
            &env,
            Duration::from_secs(c.hook_timeout_secs),
        )
        .await?;
        let frozen = frozen_for(ctx, now_ms())?;
        ctx.set("freeze_ms", frozen)?;
        Ok(format!("clients switched to db1; write freeze {frozen} ms"))
    }
}

config_step!(
    /// Step `repoint_db2`.
    RepointDb2
);

/// db1's position at the promote.
fn promoted_position(ctx: &StepContext<'_>) -> anyhow::Result<BinlogPos> {
    ctx.journal()
        .get(StepId::Promote, "position")
        .context("db1's position at the promote")
}

/// The `UNTIL` clause that stops a replica of db1 at `position`.
pub fn until_clause(setup: &Setup, position: &BinlogPos) -> anyhow::Result<String> {
    Ok(match (setup.mode, setup.flavour, &position.gtid) {
        (ReplicationMode::Gtid, Flavour::MariaDb, Some(gtid)) => {
            format!("master_gtid_pos = {}", literal(gtid)?)
        }
        (ReplicationMode::Gtid, Flavour::MySql, Some(gtid)) => {
            format!("SQL_AFTER_GTIDS = {}", literal(gtid)?)
        }
        _ => format!(
            "MASTER_LOG_FILE = {}, MASTER_LOG_POS = {}",
            literal(&position.file)?,
            position.pos
        ),
    })
}

#[async_trait::async_trait]
impl Step for RepointDb2 {
    fn id(&self) -> StepId {
        StepId::RepointDb2
    }

    async fn already_done(&self, _ctx: &mut StepContext<'_>) -> anyhow::Result<bool> {
        let mut db2 = connect(&self.config, Role::Db2).await?;
        let db1 = &self.config.db1;
        let done = db2.replica_status().await?.is_some_and(|s| {
            s.follows(db1.source_host().unwrap_or_default(), db1.port) && s.io_running == "Yes"
        });
        db2.close().await;
        Ok(done)
    }

    async fn run(&self, ctx: &mut StepContext<'_>) -> anyhow::Result<String> {
        let setup = Setup::of(ctx.journal())?;
        let last = final_position(ctx)?;
        let position = promoted_position(ctx)?;
        let mut db2 = connect(&self.config, Role::Db2).await?;
        let db1 = &self.config.db1;
        let status = db2.replica_status().await?;
        // A dbm killed after the CHANGE MASTER left db2 on db1, not started: it has
        // applied nothing of db1's since, so it is pointed at the position again.
        let on_db1 = status
            .as_ref()
            .is_some_and(|s| s.follows(db1.source_host().unwrap_or_default(), db1.port));
        if !on_db1 {
            // A dbm killed after STOP SLAVE left db2 stopped on db0.
            if status.is_some_and(|s| !s.running()) {
                db2.run("restarting replication", "START SLAVE").await?;
                replicate::wait_running(&mut db2, Role::Db0, false).await?;
            }
            let started = Instant::now();
            while !replicate::wait_applied(&mut db2, &setup, &last, PROGRESS_EVERY).await? {
                tracing::info!(
                    "db2 has not applied db0's final position {last} yet ({:.0} s)",
                    started.elapsed().as_secs_f64()
                );
            }
        }
        db2.run("stopping replication", "STOP SLAVE").await?;
        let from = match setup.mode {
            // db2's GTID position is db0's final one, which db1's binary log has.
            ReplicationMode::Gtid => StartAt::Gtid,
            ReplicationMode::FilePos => StartAt::FilePos {
                file: position.file.clone(),
                pos: position.pos,
            },
        };
        // Held at the cutover's position until verify has compared it.
        let until = until_clause(&setup, &position)?;
        replicate::replicate(
            &self.config,
            &setup,
            &mut db2,
            Role::Db1,
            &from,
            Some(&until),
        )
        .await?;
        db2.close().await;
        Ok(format!(
            "db2 replicates from db1 from {position} (held there until verify)"
        ))
    }
}
