//! Replication: db1 from db0 at the backup's coordinates ([`ReplicateDb1`]), the
//! heartbeat that shows how far behind db1 and db2 are ([`CatchUp`]), and the pieces
//! the cutover shares (pointing a replica at a source, waiting until a replica has
//! applied a source's position).
//!
//! Two modes ([`ReplicationMode`], chosen by `preflight`):
//!
//! * `gtid`: MariaDB `gtid_slave_pos` is set to the backup's GTID position and the
//!   replica connects with `MASTER_USE_GTID = slave_pos`; MySQL `gtid_purged` and
//!   `MASTER_AUTO_POSITION = 1`. Waiting uses `MASTER_GTID_WAIT` /
//!   `WAIT_FOR_EXECUTED_GTID_SET`.
//! * `file_pos`: the binary log file and position (`MASTER_LOG_FILE`,
//!   `MASTER_LOG_POS`); waiting uses `MASTER_POS_WAIT`.
//!
//! Lag is measured with a heartbeat row (`dbm.heartbeat`) written on db0 and read on
//! db1 and db2, not only with `Seconds_Behind_Master`: that counts from the event's
//! timestamp on db0, says 0 while the IO thread is itself behind, and NULL while
//! reconnecting; a row that arrives is proof.

use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use serde::{Deserialize, Serialize};

use crate::config::{Config, ReplicationMode, Role, Server};
use crate::db::{self, BinlogPos, Db, Flavour};
use crate::journal::{Journal, Step, StepContext, StepId, Undo};
use crate::seed::Coordinates;

/// How long a replica may take to have both threads running after `START SLAVE`.
const START_TIMEOUT: Duration = Duration::from_secs(30);
/// How often a waiting step says how far it is.
const PROGRESS_EVERY: Duration = Duration::from_secs(5);

/// What `preflight` found, for the steps after it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Setup {
    pub mode: ReplicationMode,
    /// db0's flavour (the three are checked to be the same).
    pub flavour: Flavour,
    pub needs_upgrade: bool,
}

impl Setup {
    pub fn of(journal: &Journal) -> anyhow::Result<Setup> {
        journal
            .get(StepId::Preflight, "setup")
            .context("what preflight found")
    }
}

/// Connects to `role`'s server, the error saying which.
pub async fn connect(config: &Config, role: Role) -> anyhow::Result<Db> {
    Ok(db::connect(role, config.server(role)).await?)
}

/// `s` as an SQL string literal. `CHANGE MASTER` takes no placeholders, so the few
/// values it needs are quoted here: backslash and quote escaped, NUL refused.
pub fn literal(s: &str) -> anyhow::Result<String> {
    if s.contains('\0') {
        bail!("a value for the server contains a NUL byte");
    }
    Ok(format!(
        "'{}'",
        s.replace('\\', "\\\\").replace('\'', "\\'")
    ))
}

/// Where a replica starts reading its source.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StartAt {
    /// At the replica's own GTID position (MariaDB `slave_pos`; MySQL auto-position).
    Gtid,
    /// At this file and position of the source's binary log.
    FilePos { file: String, pos: u64 },
}

/// The `CHANGE MASTER TO` statement pointing a replica at `source`.
pub fn change_master_sql(
    flavour: Flavour,
    host: &str,
    port: u16,
    user: &str,
    password: Option<&str>,
    from: &StartAt,
) -> anyhow::Result<String> {
    let mut sql = format!(
        "CHANGE MASTER TO MASTER_HOST = {}, MASTER_PORT = {port}, MASTER_USER = {}, \
         MASTER_PASSWORD = {}, MASTER_CONNECT_RETRY = 1",
        literal(host)?,
        literal(user)?,
        literal(password.unwrap_or(""))?
    );
    match (from, flavour) {
        (StartAt::Gtid, Flavour::MariaDb) => sql.push_str(", MASTER_USE_GTID = slave_pos"),
        (StartAt::Gtid, Flavour::MySql) => sql.push_str(", MASTER_AUTO_POSITION = 1"),
        (StartAt::FilePos { file, pos }, flavour) => {
            if flavour == Flavour::MariaDb {
                sql.push_str(", MASTER_USE_GTID = no");
            } else {
                sql.push_str(", MASTER_AUTO_POSITION = 0");
            }
            sql.push_str(&format!(
                ", MASTER_LOG_FILE = {}, MASTER_LOG_POS = {pos}",
                literal(file)?
            ));
        }
    }
    Ok(sql)
}

/// Makes `replica` a replica of `source` (`source_role`'s server) from `from`, and
/// waits until both replication threads run. Anything it replicated before is
/// forgotten (`RESET SLAVE ALL`). With `until` (an `UNTIL` clause) the SQL thread
/// stops there, and only the IO thread is waited for.
pub async fn replicate(
    config: &Config,
    setup: &Setup,
    replica: &mut Db,
    source_role: Role,
    from: &StartAt,
    until: Option<&str>,
) -> anyhow::Result<()> {
    let source: &Server = config.server(source_role);
    let host = source
        .source_host()
        .with_context(|| format!("{source_role} has no address for replicas"))?;
    let password = db::read_secret(&config.replication.password(), "replication")?;
    let sql = change_master_sql(
        setup.flavour,
        host,
        source.port,
        &config.replication.user,
        password.as_ref().map(db::Secret::expose),
        from,
    )?;
    replica.run("stopping replication", "STOP SLAVE").await?;
    replica
        .run("forgetting the old source", "RESET SLAVE ALL")
        .await?;
    // Not logged: it holds the password.
    replica
        .run("pointing the replica at its source", &sql)
        .await?;
    match until {
        None => {
            replica.run("starting replication", "START SLAVE").await?;
            wait_running(replica, source_role, false).await
        }
        Some(until) => {
            replica
                .run(
                    "starting replication up to a position",
                    &format!("START SLAVE UNTIL {until}"),
                )
                .await?;
            wait_running(replica, source_role, true).await
        }
    }
}

/// Waits until `replica`'s IO and SQL threads both run; an error carries the
/// replica's own last error. `until`: started with `START SLAVE UNTIL`, where the SQL
/// thread stops at the position (with GTIDs MariaDB stops the IO thread too), so
/// threads stopped without an error are fine.
pub async fn wait_running(replica: &mut Db, source_role: Role, until: bool) -> anyhow::Result<()> {
    let started = Instant::now();
    loop {
        let status = replica
            .replica_status()
            .await?
            .with_context(|| format!("{} is not a replica after START SLAVE", replica.endpoint))?;
        let sql_ok = until || status.sql_running;
        let io_ok = status.io_running == "Yes" || (until && !status.sql_running);
        if io_ok && sql_ok && status.last_error.is_none() {
            return Ok(());
        }
        let stuck = status.io_running == "No" || !sql_ok;
        let failing =
            status.last_error.is_some() && (stuck || started.elapsed() > Duration::from_secs(5));
        if started.elapsed() > START_TIMEOUT || failing {
            bail!(
                "{}'s replication from {source_role} does not run (IO {}, SQL {}): {}",
                replica.endpoint,
                status.io_running,
                if status.sql_running { "Yes" } else { "No" },
                status
                    .last_error
                    .as_deref()
                    .unwrap_or("no error reported yet")
            );
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Waits until `replica` has applied `target` (a position of its source's binary log),
/// at most `timeout`. `Ok(false)`: not within `timeout`. An error when the replica's
/// SQL thread is not running (the wait functions answer NULL then).
pub async fn wait_applied(
    replica: &mut Db,
    setup: &Setup,
    target: &BinlogPos,
    timeout: Duration,
) -> anyhow::Result<bool> {
    let secs = timeout.as_secs_f64().max(0.001);
    let result: Option<Option<i64>> = match (setup.mode, setup.flavour, &target.gtid) {
        (ReplicationMode::Gtid, Flavour::MariaDb, Some(gtid)) => {
            replica
                .exec_first(
                    "waiting for the replica (MASTER_GTID_WAIT)",
                    "SELECT MASTER_GTID_WAIT(?, ?)",
                    (gtid.as_str(), secs),
                )
                .await?
        }
        (ReplicationMode::Gtid, Flavour::MySql, Some(gtid)) => {
            // WAIT_FOR_EXECUTED_GTID_SET: 0 done, 1 timeout.
            replica
                .exec_first(
                    "waiting for the replica (WAIT_FOR_EXECUTED_GTID_SET)",
                    "SELECT -WAIT_FOR_EXECUTED_GTID_SET(?, ?)",
                    (gtid.as_str(), secs),
                )
                .await?
        }
        _ => {
            // MASTER_POS_WAIT: events waited for (>= 0), -1 timeout, NULL not running.
            let waited: Option<Option<i64>> = replica
                .exec_first(
                    "waiting for the replica (MASTER_POS_WAIT)",
                    "SELECT MASTER_POS_WAIT(?, ?, ?)",
                    (target.file.as_str(), target.pos, secs),
                )
                .await?;
            waited.map(|w| w.map(|n| if n >= 0 { 0 } else { -1 }))
        }
    };
    match result.flatten() {
        Some(0) => Ok(true),
        Some(_) => Ok(false),
        None => {
            let why = match replica.replica_status().await? {
                None => "it is no replica".to_owned(),
                Some(s) => format!(
                    "replication is not running (IO {}, SQL {}){}",
                    s.io_running,
                    if s.sql_running { "Yes" } else { "No" },
                    s.last_error.map(|e| format!(": {e}")).unwrap_or_default()
                ),
            };
            bail!("{} cannot apply {target}: {why}", replica.endpoint)
        }
    }
}

config_step!(
    /// Step `replicate_db1`: db1 read-only, replicating from db0 from the backup's
    /// coordinates.
    ReplicateDb1
);

/// Whether `replica` replicates from `source_role`'s server, both threads running.
pub async fn follows(config: &Config, replica: &mut Db, source_role: Role) -> anyhow::Result<bool> {
    let source = config.server(source_role);
    let host = source.source_host().unwrap_or_default();
    Ok(replica
        .replica_status()
        .await?
        .is_some_and(|s| s.running() && s.follows(host, source.port)))
}

#[async_trait::async_trait]
impl Step for ReplicateDb1 {
    fn id(&self) -> StepId {
        StepId::ReplicateDb1
    }

    async fn already_done(&self, _ctx: &mut StepContext<'_>) -> anyhow::Result<bool> {
        let mut db1 = connect(&self.config, Role::Db1).await?;
        let done = follows(&self.config, &mut db1, Role::Db0).await? && db1.read_only().await?;
        db1.close().await;
        Ok(done)
    }

    async fn run(&self, ctx: &mut StepContext<'_>) -> anyhow::Result<String> {
        let setup = Setup::of(ctx.journal())?;
        let at: Coordinates = ctx
            .journal()
            .get(StepId::Prepare, "coordinates")
            .context("the backup's coordinates")?;
        let mut db1 = connect(&self.config, Role::Db1).await?;
        // Nobody but replication writes to db1 until the cutover opens it.
        db1.run("making db1 read-only", "SET GLOBAL read_only = ON")
            .await?;
        let from = match setup.mode {
            ReplicationMode::FilePos => StartAt::FilePos {
                file: at.file.clone(),
                pos: at.pos,
            },
            ReplicationMode::Gtid => {
                let Some(gtid) = &at.gtid else {
                    bail!(
                        "the backup recorded no GTID position for db0 ({}:{}); set \
                         replication.mode = \"file_pos\"",
                        at.file,
                        at.pos
                    );
                };
                let sql = match setup.flavour {
                    Flavour::MariaDb => "SET GLOBAL gtid_slave_pos = ?",
                    Flavour::MySql => "SET GLOBAL gtid_purged = ?",
                };
                db1.run("stopping replication", "STOP SLAVE").await?;
                if setup.flavour == Flavour::MySql {
                    // gtid_purged can only be set on an empty GTID history.
                    db1.run("clearing db1's GTID history", "RESET MASTER")
                        .await?;
                }
                db1.exec(
                    "setting db1's GTID position to the backup's",
                    sql,
                    (gtid.as_str(),),
                )
                .await?;
                StartAt::Gtid
            }
        };
        replicate(&self.config, &setup, &mut db1, Role::Db0, &from, None).await?;
        db1.close().await;
        Ok(match from {
            StartAt::Gtid => format!(
                "db1 replicates from db0 with GTIDs from {}",
                at.gtid.unwrap_or_default()
            ),
            StartAt::FilePos { file, pos } => format!("db1 replicates from db0 from {file}:{pos}"),
        })
    }

    async fn undo(&self, _ctx: &mut StepContext<'_>) -> anyhow::Result<Undo> {
        let mut db1 = connect(&self.config, Role::Db1).await?;
        db1.run("stopping replication", "STOP SLAVE").await?;
        db1.run("forgetting the source", "RESET SLAVE ALL").await?;
        db1.close().await;
        Ok(Undo::Undone("db1 no longer replicates from db0".to_owned()))
    }
}

/// The heartbeat table on db0; replication brings it to db1 and db2.
const HEARTBEAT_DDL: [&str; 2] = [
    "CREATE DATABASE IF NOT EXISTS dbm",
    "CREATE TABLE IF NOT EXISTS dbm.heartbeat (id TINYINT UNSIGNED PRIMARY KEY, \
     token BIGINT UNSIGNED NOT NULL, written_at DATETIME(6) NOT NULL) ENGINE=InnoDB",
];

/// Writes a new heartbeat on db0 and waits (up to `timeout`) until db1 and db2 have it;
/// `None` for a replica that did not get it in time.
pub async fn heartbeat(
    db0: &mut Db,
    db1: &mut Db,
    db2: &mut Db,
    timeout: Duration,
) -> anyhow::Result<(Option<Duration>, Option<Duration>)> {
    for ddl in HEARTBEAT_DDL {
        db0.run("creating the heartbeat table on db0", ddl).await?;
    }
    let token: u64 = rand_token();
    db0.exec(
        "writing the heartbeat on db0",
        "REPLACE INTO dbm.heartbeat (id, token, written_at) VALUES (1, ?, NOW(6))",
        (token,),
    )
    .await?;
    let written = Instant::now();
    let mut lags: [Option<Duration>; 2] = [None, None];
    while written.elapsed() < timeout && lags.iter().any(Option::is_none) {
        for (lag, db) in lags.iter_mut().zip([&mut *db1, &mut *db2]) {
            if lag.is_none() && has_heartbeat(db, token).await? {
                *lag = Some(written.elapsed());
            }
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    Ok((lags[0], lags[1]))
}

async fn has_heartbeat(db: &mut Db, token: u64) -> anyhow::Result<bool> {
    // The table arrives with the first heartbeat: until then the query fails.
    let found: Result<Option<u64>, _> = db
        .exec_first(
            "reading the heartbeat",
            "SELECT token FROM dbm.heartbeat WHERE id = 1",
            (),
        )
        .await;
    Ok(matches!(found, Ok(Some(t)) if t == token))
}

/// A token that differs between heartbeats (and between runs).
fn rand_token() -> u64 {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or(0);
    nanos ^ (u64::from(std::process::id()) << 40)
}

config_step!(
    /// Step `catch_up`: heartbeats until one reaches db1 and db2 within
    /// `cutover.max_lag_ms`, so the freeze that follows is short.
    CatchUp
);

fn ms(d: Option<Duration>) -> String {
    d.map_or("not yet".to_owned(), |d| format!("{} ms", d.as_millis()))
}

#[async_trait::async_trait]
impl Step for CatchUp {
    fn id(&self) -> StepId {
        StepId::CatchUp
    }

    async fn run(&self, _ctx: &mut StepContext<'_>) -> anyhow::Result<String> {
        let target = Duration::from_millis(self.config.cutover.max_lag_ms);
        let mut db0 = connect(&self.config, Role::Db0).await?;
        let mut db1 = connect(&self.config, Role::Db1).await?;
        let mut db2 = connect(&self.config, Role::Db2).await?;
        let started = Instant::now();
        let mut last_log = Instant::now();
        let mut beats = 0u32;
        loop {
            beats += 1;
            // A heartbeat gets at least a few seconds: one that missed the target still
            // says how far behind a replica is.
            let (l1, l2) =
                heartbeat(&mut db0, &mut db1, &mut db2, target.max(PROGRESS_EVERY)).await?;
            if let (Some(a), Some(b)) = (l1, l2)
                && a <= target
                && b <= target
            {
                return Ok(format!(
                    "a heartbeat reached db1 in {} ms and db2 in {} ms (after {beats} \
                     heartbeat(s), {:.1} s)",
                    a.as_millis(),
                    b.as_millis(),
                    started.elapsed().as_secs_f64()
                ));
            }
            for (role, db) in [(Role::Db1, &mut db1), (Role::Db2, &mut db2)] {
                if let Some(s) = db.replica_status().await?
                    && !s.running()
                {
                    bail!(
                        "{role}'s replication stopped (IO {}, SQL {}): {}",
                        s.io_running,
                        if s.sql_running { "Yes" } else { "No" },
                        s.last_error.as_deref().unwrap_or("no error reported")
                    );
                }
            }
            if last_log.elapsed() >= PROGRESS_EVERY {
                last_log = Instant::now();
                let behind = db1.replica_status().await?.and_then(|s| s.seconds_behind);
                tracing::info!(
                    "catching up: heartbeat on db1 {}, on db2 {}; db1 Seconds_Behind_Master {}",
                    ms(l1),
                    ms(l2),
                    behind.map_or("NULL".to_owned(), |s| s.to_string())
                );
            }
        }
    }

    async fn undo(&self, _ctx: &mut StepContext<'_>) -> anyhow::Result<Undo> {
        Ok(Undo::Nothing(
            "it only wrote heartbeat rows (dbm.heartbeat on db0)".to_owned(),
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn literals_escape_quotes_and_backslashes() {
        assert_eq!(literal("a'b\\c").unwrap(), "'a\\'b\\\\c'");
        assert!(literal("a\0").is_err());
    }

    #[test]
    fn change_master_by_mode_and_flavour() {
        let gtid = change_master_sql(
            Flavour::MariaDb,
            "10.0.0.1",
            3306,
            "repl",
            Some("p'w"),
            &StartAt::Gtid,
        )
        .unwrap();
        assert!(
            gtid.contains("MASTER_HOST = '10.0.0.1', MASTER_PORT = 3306"),
            "{gtid}"
        );
        assert!(gtid.contains("MASTER_PASSWORD = 'p\\'w'"), "{gtid}");
        assert!(gtid.ends_with("MASTER_USE_GTID = slave_pos"), "{gtid}");
        let pos = StartAt::FilePos {
            file: "bin.000002".to_owned(),
            pos: 1234,
        };
        let fp = change_master_sql(Flavour::MariaDb, "h", 1, "u", None, &pos).unwrap();
        assert!(
            fp.ends_with(
                "MASTER_USE_GTID = no, MASTER_LOG_FILE = 'bin.000002', MASTER_LOG_POS = 1234"
            ),
            "{fp}"
        );
        let my = change_master_sql(Flavour::MySql, "h", 1, "u", None, &StartAt::Gtid).unwrap();
        assert!(my.ends_with("MASTER_AUTO_POSITION = 1"), "{my}");
    }
}
