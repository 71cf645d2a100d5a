//! The three servers of a migration on loopback, as the service's own end-to-end test
//! sets them up: db0 the master with the data, db2 its replica, db1 the empty new
//! master that dbm stops, fills and starts with the test bed's control commands.
//!
//! Every server gets the same users, created with the binary log off so that db2 does
//! not replay db0's: `dbm` (everything), `repl` (replication), `app` (the writer, on
//! the `app` schema only). db0 and db2 get a larger buffer pool than the test bed's
//! default, so that filling gigabytes is bounded by the disk rather than by page
//! evictions; db1 is seeded, not filled, and keeps the default.

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context, Result};
use testbed::servers::{Host, MariaDb, MariaDbOptions, Server};
use testbed::sql_writer::{SqlWriter, WriterOptions, set_target};

use super::service;

/// The password of every user of the run.
pub const PASSWORD: &str = "bench-dbm-4c1";
pub use testbed::servers::{APP_USER, DBM_USER, REPL_USER};
/// The writer's table during the migration.
pub const WRITES: &str = "app.writes";
/// The writer's table during the plain copy (its ids start at 1 again).
pub const COPY_WRITES: &str = "app.copy_writes";

/// InnoDB buffer pool of the servers that are filled (db0, and db2 replaying it).
const FILLED_BUFFER_POOL: &str = "--innodb-buffer-pool-size=1G";

pub struct Bed {
    pub db0: MariaDb,
    pub db1: MariaDb,
    pub db2: MariaDb,
    /// The plan file.
    pub plan: PathBuf,
    /// dbm's journal (`state_file`).
    pub journal: PathBuf,
    /// The writer's target file.
    pub target: PathBuf,
}

impl Bed {
    /// Starts the servers, creates the users and the writer's table, makes db2 a
    /// replica of db0 and writes the plan into `dir`.
    pub fn start(dir: &Path) -> Result<Bed> {
        let options = |server_id: u32, extra: &[&str]| MariaDbOptions {
            server_id,
            log_bin: true,
            extra_args: extra.iter().map(|s| (*s).to_owned()).collect(),
        };
        let db0 = MariaDb::start_with(Host::Loopback, options(1, &[FILLED_BUFFER_POOL]))
            .context("start db0")?;
        let db1 = MariaDb::start_with(Host::Loopback, options(2, &["--log-slave-updates"]))
            .context("start db1")?;
        let db2 = MariaDb::start_with(Host::Loopback, options(3, &[FILLED_BUFFER_POOL]))
            .context("start db2")?;
        for (name, db) in [("db0", &db0), ("db1", &db1), ("db2", &db2)] {
            db.create_migration_users(PASSWORD)
                .with_context(|| format!("create the users on {name}"))?;
        }
        db2.replicate_from(&db0, REPL_USER, PASSWORD)
            .context("make db2 a replica of db0")?;
        db0.query(&format!(
            "CREATE DATABASE app;
             CREATE TABLE {WRITES} (id BIGINT UNSIGNED PRIMARY KEY, at DATETIME(6) NOT NULL)
                 ENGINE=InnoDB;
             CREATE TABLE {COPY_WRITES} LIKE {WRITES};"
        ))
        .context("create the writer's table on db0")?;

        let password_file = dir.join("pass");
        std::fs::write(&password_file, format!("{PASSWORD}\n"))
            .with_context(|| format!("write {}", password_file.display()))?;
        let target = dir.join("target");
        set_target(&target, "127.0.0.1", db0.addr().port())
            .with_context(|| format!("write {}", target.display()))?;
        let control = db1.control_commands().context("db1's control commands")?;
        let journal = dir.join("journal.json");
        let server = |db: &MariaDb| service::Server {
            port: db.addr().port(),
            datadir: db.datadir().to_owned(),
        };
        let text = service::plan(
            &service::Plan {
                journal: journal.clone(),
                password_file,
                db0: server(&db0),
                db1: server(&db1),
                db2: server(&db2),
                stop: control.stop,
                start: control.start,
                target: target.clone(),
            },
            DBM_USER,
            REPL_USER,
        );
        let plan = dir.join("plan.toml");
        std::fs::write(&plan, text).with_context(|| format!("write {}", plan.display()))?;
        Ok(Bed {
            db0,
            db1,
            db2,
            plan,
            journal,
            target,
        })
    }

    /// A writer inserting into `table` wherever the target file points, with a
    /// millisecond between inserts.
    pub fn writer(&self, table: &str) -> SqlWriter {
        SqlWriter::start(WriterOptions {
            user: APP_USER.to_owned(),
            password: PASSWORD.to_owned(),
            table: table.to_owned(),
            target_file: self.target.clone(),
            pause: Duration::from_millis(1),
        })
    }
}

/// The ids in the writer's table on `db`, sorted.
pub fn ids(db: &MariaDb) -> Result<Vec<u64>> {
    let mut ids = db
        .query(&format!("SELECT id FROM {WRITES}"))?
        .lines()
        .map(|l| {
            l.trim()
                .parse::<u64>()
                .with_context(|| format!("an id: {l:?}"))
        })
        .collect::<Result<Vec<u64>>>()?;
    ids.sort_unstable();
    Ok(ids)
}

/// The times of the writer's inserts on `db` (its clock, seconds since the epoch),
/// in the order of their ids: the order the writer sent them.
pub fn insert_times(db: &MariaDb) -> Result<Vec<f64>> {
    db.query(&format!(
        "SELECT UNIX_TIMESTAMP(at) FROM {WRITES} ORDER BY id"
    ))?
    .lines()
    .map(|l| {
        l.trim()
            .parse::<f64>()
            .with_context(|| format!("a time: {l:?}"))
    })
    .collect()
}
