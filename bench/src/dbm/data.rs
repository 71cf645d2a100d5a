//! The data to migrate: a few InnoDB tables of rows of about 200 bytes, filled on db0
//! with `INSERT ... SELECT` from MariaDB's sequence engine (`seq_1_to_N`) in batches,
//! until their tablespace files hold the size asked for. The statements are logged as
//! statements, so db2 replays them instead of reading gigabytes of row events, and the
//! binary log stays small. The rows are a function of their id: db0 and db2 end up
//! with the same data, which dbm's verify step compares.

use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use testbed::servers::MariaDb;

/// The schema of the data, and its tables (`data.t1` ...).
pub const SCHEMA: &str = "data";
pub const TABLES: u32 = 4;
/// Rows per `INSERT ... SELECT`: some 50 MB, well within the client's minute.
const BATCH: u64 = 200_000;

/// What was generated.
#[derive(Debug, Clone, Copy)]
pub struct Generated {
    pub rows: u64,
    /// The tablespace files' size on db0.
    pub bytes: u64,
    pub seconds: f64,
}

/// Creates the tables on db0 and fills them until their files hold `target` bytes.
pub fn generate(db0: &MariaDb, target: u64) -> Result<Generated> {
    let start = Instant::now();
    let mut create = format!("CREATE DATABASE {SCHEMA};");
    for t in 1..=TABLES {
        create += &format!(
            "CREATE TABLE {SCHEMA}.t{t} (
                 id BIGINT UNSIGNED PRIMARY KEY,
                 k INT UNSIGNED NOT NULL,
                 created DATETIME NOT NULL,
                 note VARCHAR(180) NOT NULL
             ) ENGINE=InnoDB;"
        );
    }
    db0.query(&create)
        .context("create the data tables on db0")?;
    let mut rows = 0;
    let mut batch = 0u64;
    loop {
        let bytes = tablespaces(db0.datadir())?;
        if bytes >= target {
            return Ok(Generated {
                rows,
                bytes,
                seconds: start.elapsed().as_secs_f64(),
            });
        }
        let table = batch % u64::from(TABLES) + 1;
        let first = batch / u64::from(TABLES) * BATCH;
        db0.query(&insert(table, first, BATCH))
            .with_context(|| format!("fill {SCHEMA}.t{table} on db0"))?;
        rows += BATCH;
        batch += 1;
    }
}

/// Has InnoDB write every dirty page of `db` to its files and waits until it has (at
/// most `timeout`), then lets it be lazy again: the copies that follow should not
/// compete with the writes of the generation.
pub fn flush(db: &MariaDb, timeout: Duration) -> Result<()> {
    let before = db.query(
        "SELECT @@GLOBAL.innodb_max_dirty_pages_pct, @@GLOBAL.innodb_io_capacity,
                @@GLOBAL.innodb_io_capacity_max",
    )?;
    let before: Vec<&str> = before.split_whitespace().collect();
    let [pct, io, io_max] = before[..] else {
        anyhow::bail!("InnoDB's flushing settings: {before:?}");
    };
    // The default I/O capacity (200 pages a second) would take minutes for gigabytes.
    db.query(
        "SET GLOBAL innodb_io_capacity_max = 100000;
         SET GLOBAL innodb_io_capacity = 50000;
         SET GLOBAL innodb_max_dirty_pages_pct = 0;",
    )?;
    let deadline = Instant::now() + timeout;
    let result = loop {
        let dirty = db.query(
            "SELECT VARIABLE_VALUE FROM information_schema.GLOBAL_STATUS
             WHERE VARIABLE_NAME = 'INNODB_BUFFER_POOL_PAGES_DIRTY'",
        )?;
        match dirty.trim().parse::<u64>() {
            Ok(0) => break Ok(()),
            Ok(n) if Instant::now() >= deadline => {
                break Err(anyhow::anyhow!("{n} dirty pages left after {timeout:?}"));
            }
            Ok(_) => std::thread::sleep(Duration::from_millis(100)),
            Err(e) => break Err(anyhow::anyhow!("dirty pages {dirty:?}: {e}")),
        }
    };
    db.query(&format!(
        "SET GLOBAL innodb_max_dirty_pages_pct = {pct};
         SET GLOBAL innodb_io_capacity = {io};
         SET GLOBAL innodb_io_capacity_max = {io_max};"
    ))?;
    result
}

/// Rows `first + 1 ..= first + count` of table `t`, logged as a statement.
fn insert(t: u64, first: u64, count: u64) -> String {
    format!(
        "SET SESSION binlog_format = 'STATEMENT';
         INSERT INTO {SCHEMA}.t{t} (id, k, created, note)
         SELECT {first} + seq, ({first} + seq) * 2654435761 % 1000003,
                '2026-01-01' + INTERVAL (({first} + seq) % 31536000) SECOND,
                RPAD(CONCAT('row ', {first} + seq, ' of t{t}: '), 180, 'abcdefghijklmnopqrstuvwxyz')
         FROM {SCHEMA}.seq_1_to_{count};"
    )
}

/// The size of the data tables' files in db0's datadir.
fn tablespaces(datadir: &Path) -> Result<u64> {
    let dir = datadir.join(SCHEMA);
    let mut bytes = 0;
    for entry in std::fs::read_dir(&dir).with_context(|| format!("list {}", dir.display()))? {
        let entry = entry.with_context(|| format!("list {}", dir.display()))?;
        if entry.path().extension().is_some_and(|e| e == "ibd") {
            bytes += entry
                .metadata()
                .with_context(|| format!("stat {}", entry.path().display()))?
                .len();
        }
    }
    Ok(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn batches_continue_where_the_last_one_ended() {
        let sql = insert(3, 400_000, 200_000);
        assert!(sql.contains("INSERT INTO data.t3"), "{sql}");
        assert!(sql.contains("SELECT 400000 + seq"), "{sql}");
        assert!(sql.contains("FROM data.seq_1_to_200000"), "{sql}");
        assert!(sql.starts_with("SET SESSION binlog_format = 'STATEMENT'"));
    }
}
