//! `dbm-migrate`: one live migration of a MariaDB master with dbm under a steady write
//! load, against a plain `mariabackup --stream=xbstream | mbstream -x` copy of the same
//! data; the seed rate of each and their ratio, the write freeze dbm reports, the
//! longest time the writing client went without an acknowledged insert, the cutover's
//! duration, and whether any acknowledged write was lost.
//!
//! * Three servers on loopback ([`bed`]): db0 with the data, db2 replicating from it,
//!   db1 empty, stopped and started by dbm with the test bed's control commands.
//! * The data ([`data`]): InnoDB tables filled on db0 until their files hold `--gb`;
//!   db2 replays them; then both servers write every dirty page out.
//! * The reference ([`baseline`]): a plain streamed copy of db0, removed again, under
//!   the same write load as the migration (into a table of its own,
//!   `app.copy_writes`); one warm-up copy first, not counted, then the measured ones,
//!   all before the migration so that the measured copies and dbm's seed read the same
//!   data from the same page cache. Two are measured: the tool with its defaults (the
//!   issue's plain tool) and with dbm's `--log-copy-interval` (the same work as dbm's
//!   seed, so their ratio is the cost of dbm's own streaming alone).
//! * The migration: the test bed's `SqlWriter` inserts into `app.writes` with a
//!   millisecond between inserts, at the address in a target file; `dbm run` migrates,
//!   and its cutover hook points the file at db1; the writer stops a second after dbm.
//!   Every acknowledged id must then be on db1 and, once db2 has caught up with db1,
//!   on db2. What is assumed about dbm is in [`service`].
//!
//! A migration is one-shot: there are no rounds. The goals of the issue: a write freeze
//! under a second with no write lost, and a seed at least 0.9 times the plain tool's
//! rate.

pub mod baseline;
pub mod bed;
pub mod data;
pub mod report;
pub mod service;

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use chrono::{DateTime, Utc};
use testbed::servers::{MariaDb, Server};

use crate::cmd;
use bed::Bed;

/// `seed.log_copy_interval_ms` in the plan, and the second plain copy's
/// `--log-copy-interval` (dbm's default).
pub const LOG_COPY_INTERVAL_MS: u64 = 10;
/// The seed goal: dbm's rate over the plain copy's.
pub const GOAL_RATIO: f64 = 0.9;
/// The freeze goal, in ms.
pub const GOAL_FREEZE_MS: f64 = 1000.0;
/// Free space needed in the temporary directory, in multiples of the data: db0, db2,
/// the plain copy, db1's seed, and binary logs and redo logs besides.
const DISK_FACTOR: f64 = 4.0;

/// What to run.
#[derive(Debug, Clone)]
pub struct Options {
    pub dbm: PathBuf,
    /// The data to generate, in GB (10^9 bytes of tablespace files).
    pub gb: f64,
}

impl Options {
    fn bytes(&self) -> u64 {
        (self.gb * 1e9) as u64
    }

    /// How long a step that copies or reads the data once may take: 5 minutes, plus 5
    /// per GB.
    fn deadline(&self) -> Duration {
        Duration::from_secs_f64(300.0 + 300.0 * self.gb)
    }
}

/// What the run measured.
#[derive(Debug, Clone)]
pub struct Outcome {
    pub data: data::Generated,
    /// The plain copy with the tool's defaults.
    pub plain: Plain,
    /// The plain copy with `--log-copy-interval=`[`LOG_COPY_INTERVAL_MS`], as dbm runs it.
    pub plain_interval: Plain,
    /// Why dbm did not run, if it did not.
    pub skipped: Option<String>,
    pub migration: Option<Migration>,
    /// Everything that was broken (dbm failed, a write lost): exit status 1.
    pub problems: Vec<String>,
}

/// One measured plain copy and the longest time the writer went without an
/// acknowledged insert meanwhile.
#[derive(Debug, Clone, Copy)]
pub struct Plain {
    pub copy: baseline::Copy,
    pub writer_gap_ms: f64,
}

/// What the migration measured; a figure is none when dbm did not print or record it.
#[derive(Debug, Clone, Default)]
pub struct Migration {
    /// `dbm run` from start to exit.
    pub seconds: f64,
    /// dbm's own seed rate, MB/s.
    pub seed_rate: Option<f64>,
    /// The seed step in the journal, ms.
    pub seed_ms: Option<i64>,
    /// The verify step in the journal, ms: most of a run's time after the seed.
    pub verify_ms: Option<i64>,
    /// `write freeze: N ms`.
    pub freeze_ms: Option<u64>,
    /// From the journal: start of `freeze` to end of `hook`, and the sum of the four
    /// cutover steps, ms.
    pub cutover_ms: Option<(i64, i64)>,
    pub acked: usize,
    pub failures: u64,
    /// The longest time between two acknowledged inserts, as the client saw it.
    pub client_gap_ms: f64,
    /// The longest time between two inserts by db1's clock (the `at` column) that
    /// overlaps the cutover (start of `freeze` to end of `hook`): the write freeze as
    /// the client lived it.
    pub cutover_gap: Option<Gap>,
    /// The longest such time elsewhere in the run, and the steps it overlapped.
    pub other_gap: Option<Gap>,
    /// Acknowledged ids missing on db1 and db2; none when not checked.
    pub lost_db1: Option<usize>,
    pub lost_db2: Option<usize>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Gap {
    pub ms: f64,
    /// The journal's steps that ran during the gap, in order.
    pub steps: Vec<String>,
}

/// Runs the benchmark, printing progress to `out`; the outcome feeds
/// [`report::print`]. Errors are failures to set the run up (not root, a server or
/// the plain copy failing, too little disk).
pub fn run(opts: &Options, out: &mut impl Write) -> Result<Outcome> {
    testbed::require::root()?;
    for (tool, package) in [
        ("mariadbd", "mariadb-server"),
        ("mariabackup", "mariadb-backup"),
        ("mbstream", "mariadb-backup"),
    ] {
        testbed::require::tool(tool, package)?;
    }
    let tmp = std::env::temp_dir();
    let free = free_bytes(&tmp)?;
    let need = (opts.bytes() as f64 * DISK_FACTOR) as u64;
    if free < need {
        bail!(
            "only {:.1} GB free in {}, {DISK_FACTOR}x the data ({:.1} GB) is needed: db0, db2, \
             the plain copy and db1's seed each hold it; make room or ask for less (--gb)",
            free as f64 / 1e9,
            tmp.display(),
            need as f64 / 1e9
        );
    }
    let skip = service::unavailable(&opts.dbm);
    header(out, opts, &skip)?;

    let dir = crate::daemon::Daemon::dir("dbm")?;
    let started = Instant::now();
    let bed = Bed::start(dir.path())?;
    writeln!(
        out,
        "servers: db0 {} (data), db1 {} (empty), db2 {} (replica of db0), started in {:.1} s",
        bed.db0.addr(),
        bed.db1.addr(),
        bed.db2.addr(),
        started.elapsed().as_secs_f64()
    )?;
    out.flush()?;

    let data = data::generate(&bed.db0, opts.bytes())?;
    let caught_up = Instant::now();
    bed.db2
        .wait_replica_caught_up(&bed.db0, opts.deadline())
        .context("db2 replaying the data")?;
    let caught_up = caught_up.elapsed().as_secs_f64();
    let flushed = Instant::now();
    for (name, db) in [("db0", &bed.db0), ("db2", &bed.db2)] {
        data::flush(db, opts.deadline())
            .with_context(|| format!("flush the data on {name} to disk"))?;
    }
    cmd::checked(&mut Command::new("sync"), opts.deadline())?;
    writeln!(
        out,
        "data: {} rows in {} tables, {:.2} GB of tablespace files on db0, generated in {:.1} s; \
         db2 caught up {caught_up:.1} s later; both flushed to disk in {:.1} s",
        data.rows,
        data::TABLES,
        data.bytes as f64 / 1e9,
        data.seconds,
        flushed.elapsed().as_secs_f64()
    )?;
    out.flush()?;

    // The first mariabackup run on a server came out a whole second slower than the
    // next ones (under load they end on whole seconds, see the README), and it reads
    // db0's files into the page cache, where InnoDB's O_DIRECT writes never put them:
    // a warm-up copy, not counted, so that the measured one and dbm's seed start alike.
    let warm_up = plain_copy(&bed, opts, dir.path(), None)?;
    writeln!(out, "plain copy, warm-up (not counted): {}", warm_up.0)?;
    let (line, plain) = plain_copy(&bed, opts, dir.path(), None)?;
    writeln!(out, "plain copy, the tool's defaults: {line}")?;
    let (line, plain_interval) = plain_copy(&bed, opts, dir.path(), Some(LOG_COPY_INTERVAL_MS))?;
    writeln!(
        out,
        "plain copy, --log-copy-interval={LOG_COPY_INTERVAL_MS} as dbm's seed: {line}"
    )?;
    out.flush()?;

    let mut outcome = Outcome {
        data,
        plain,
        plain_interval,
        skipped: skip,
        migration: None,
        problems: Vec::new(),
    };
    if outcome.skipped.is_none() {
        outcome.migration = migrate(&bed, opts, dir.path(), &mut outcome.problems, out)?;
    }
    Ok(outcome)
}

/// One plain copy under the same load as dbm's seed (mariabackup's end waits for the
/// redo log of the writes made meanwhile, and holds commits while it does): its
/// progress line and figures.
fn plain_copy(
    bed: &Bed,
    opts: &Options,
    dir: &Path,
    log_copy_interval_ms: Option<u64>,
) -> Result<(String, Plain)> {
    let load = bed.writer(bed::COPY_WRITES);
    std::thread::sleep(Duration::from_secs(1));
    let source = baseline::Source {
        db0: &bed.db0,
        user: bed::DBM_USER,
        password: bed::PASSWORD,
        log_copy_interval_ms,
    };
    let plain = baseline::copy(source, &dir.join("plain-copy"), opts.deadline());
    let load = load.stop();
    let plain = plain.context("the plain copy (mariabackup | mbstream)")?;
    // The next writer numbers its inserts from 1 again.
    bed.db0
        .query(&format!("DELETE FROM {}", bed::COPY_WRITES))
        .context("empty the plain copy's writer table")?;
    let line = format!(
        "{:.2} GB in {:.1} s ({:.1} MB/s), removed; meanwhile {} inserts into {} acknowledged, \
         {} failed, longest gap {} ms",
        plain.bytes as f64 / 1e9,
        plain.seconds,
        plain.rate_mb(),
        load.acked.len(),
        bed::COPY_WRITES,
        load.failures,
        load.longest_gap.as_millis()
    );
    let plain = Plain {
        copy: plain,
        writer_gap_ms: load.longest_gap.as_secs_f64() * 1e3,
    };
    Ok((line, plain))
}

fn header(out: &mut impl Write, opts: &Options, skip: &Option<String>) -> Result<()> {
    writeln!(
        out,
        "dbm-migrate: {:.2} GB of data, migrated once under a steady write load",
        opts.gb
    )?;
    writeln!(
        out,
        "mariadbd: {}",
        cmd::version("mariadbd", &["--version"])
    )?;
    writeln!(
        out,
        "mariabackup: {}",
        cmd::version("mariabackup", &["--version"])
    )?;
    let dbm = match skip {
        Some(why) => format!("skipped: {why}"),
        None => cmd::version(&opts.dbm.to_string_lossy(), &["--version"]),
    };
    writeln!(out, "dbm: {dbm}")?;
    writeln!(out, "kernel: {}", cmd::kernel())?;
    out.flush()?;
    Ok(())
}

/// `dbm plan`, then `dbm run` with the writer; none when the plan failed.
fn migrate(
    bed: &Bed,
    opts: &Options,
    dir: &Path,
    problems: &mut Vec<String>,
    out: &mut impl Write,
) -> Result<Option<Migration>> {
    let (ok, text) = service::check_plan(&opts.dbm, &bed.plan)?;
    if !ok {
        problems.push(format!("dbm plan failed:\n{}", text.trim_end()));
        return Ok(None);
    }
    writeln!(out, "dbm plan: every precondition holds")?;

    let writer = bed.writer(bed::WRITES);
    std::thread::sleep(Duration::from_secs(1));
    writeln!(
        out,
        "dbm run, while a client inserts into {} (pause 1 ms):",
        bed::WRITES
    )?;
    out.flush()?;
    let log = dir.join("dbm.log");
    // dbm copies and verifies the data: twice the plain copy's allowance.
    let deadline = opts.deadline() * 2;
    let run = service::run(&opts.dbm, &bed.plan, &log, deadline, out);
    // Writes go on, to db1 by now.
    std::thread::sleep(Duration::from_secs(1));
    let writes = writer.stop();
    let run = run?;
    writeln!(
        out,
        "dbm run: {} after {:.1} s; the writer: {} inserts acknowledged ({:.0}/s), {} failed, \
         targets {}",
        run.status
            .map_or_else(|| format!("killed after {deadline:?}"), |s| s.to_string()),
        run.seconds,
        writes.acked.len(),
        writes.rate(),
        writes.failures,
        writes.targets.join(" -> ")
    )?;
    if !writes.errors.is_empty() {
        writeln!(out, "the writer's errors: {}", writes.errors.join("; "))?;
    }

    let steps = service::journal_steps(&bed.journal);
    let mut m = Migration {
        seconds: run.seconds,
        seed_rate: service::seed_rate(&run.stdout),
        freeze_ms: service::write_freeze(&run.stdout),
        acked: writes.acked.len(),
        failures: writes.failures,
        client_gap_ms: writes.longest_gap.as_secs_f64() * 1e3,
        ..Migration::default()
    };
    if let Ok(steps) = &steps {
        m.seed_ms = steps.get("seed").map(service::Span::millis);
        m.verify_ms = steps.get("verify").map(service::Span::millis);
        m.cutover_ms = service::cutover(steps);
    }

    if !run.succeeded() {
        let log_text = std::fs::read_to_string(&run.log).unwrap_or_default();
        problems.push(format!(
            "dbm run failed ({}); the end of its log ({}):\n{}",
            run.status
                .map_or_else(|| format!("killed after {deadline:?}"), |s| s.to_string()),
            run.log.display(),
            tail(&log_text, 30)
        ));
        return Ok(Some(m));
    }
    if !service::migration_done(&run.stdout) {
        problems.push("dbm run exited 0 but never said `migration done`".to_owned());
    }
    if m.freeze_ms.is_none() {
        problems.push("dbm run printed no `write freeze: N ms` line".to_owned());
    }
    if let Err(e) = &steps {
        problems.push(format!("{e:#}"));
    }
    if writes.acked.is_empty() {
        problems.push("the writer got no insert through".to_owned());
    }
    let db1 = format!("127.0.0.1:{}", bed.db1.addr().port());
    if writes.targets.last() != Some(&db1) {
        problems.push(format!(
            "the writer did not end on db1 ({db1}): targets {:?}",
            writes.targets
        ));
    }

    m.lost_db1 = Some(lost(&bed.db1, &writes.acked, "db1", problems)?);
    match bed
        .db2
        .wait_replica_caught_up(&bed.db1, Duration::from_secs(300))
    {
        Ok(()) => m.lost_db2 = Some(lost(&bed.db2, &writes.acked, "db2", problems)?),
        Err(e) => problems.push(format!("db2 did not catch up with db1: {e}")),
    }
    if let Ok(steps) = &steps {
        match bed::insert_times(&bed.db1) {
            Ok(times) => (m.cutover_gap, m.other_gap) = gaps(&times, steps),
            Err(e) => problems.push(format!("read the insert times on db1: {e:#}")),
        }
    }
    Ok(Some(m))
}

/// How many of `acked` are missing on `db`; notes them as a problem.
fn lost(db: &MariaDb, acked: &[u64], name: &str, problems: &mut Vec<String>) -> Result<usize> {
    let present = bed::ids(db).with_context(|| format!("read the writer's ids on {name}"))?;
    let missing: Vec<u64> = acked
        .iter()
        .copied()
        .filter(|id| present.binary_search(id).is_err())
        .collect();
    if !missing.is_empty() {
        problems.push(format!(
            "{} acknowledged insert(s) missing on {name}, e.g. ids {:?}",
            missing.len(),
            &missing[..missing.len().min(10)]
        ));
    }
    Ok(missing.len())
}

/// The longest gap between two consecutive `times` (seconds since the epoch) that
/// overlaps the cutover of `steps`, and the longest one that does not; each with the
/// steps it overlaps.
fn gaps(times: &[f64], steps: &BTreeMap<String, service::Span>) -> (Option<Gap>, Option<Gap>) {
    let window = service::cutover_window(steps).map(|(a, b)| (secs(a), secs(b)));
    let in_cutover = |from: f64, to: f64| window.is_some_and(|(a, b)| from < b && to > a);
    let longest = |cutover: bool| {
        times
            .windows(2)
            .map(|w| (w[0], w[1]))
            .filter(|&(from, to)| in_cutover(from, to) == cutover)
            .max_by(|a, b| (a.1 - a.0).total_cmp(&(b.1 - b.0)))
            .map(|(from, to)| Gap {
                ms: (to - from) * 1e3,
                steps: steps_between(steps, from, to),
            })
    };
    (longest(true), longest(false))
}

fn secs(t: DateTime<Utc>) -> f64 {
    t.timestamp_micros() as f64 / 1e6
}

/// The steps that ran during `from..to` (seconds since the epoch), in order.
fn steps_between(steps: &BTreeMap<String, service::Span>, from: f64, to: f64) -> Vec<String> {
    let mut during: Vec<(f64, &String)> = steps
        .iter()
        .filter(|(_, s)| secs(s.started) < to && secs(s.finished) > from)
        .map(|(name, s)| (secs(s.started), name))
        .collect();
    during.sort_by(|a, b| a.0.total_cmp(&b.0));
    during.into_iter().map(|(_, n)| n.clone()).collect()
}

/// Free bytes of the file system holding `path` (`df`).
fn free_bytes(path: &Path) -> Result<u64> {
    let text = cmd::checked(
        Command::new("df").args(["--output=avail", "-B1"]).arg(path),
        Duration::from_secs(10),
    )?;
    text.lines()
        .nth(1)
        .and_then(|l| l.trim().parse().ok())
        .with_context(|| {
            format!(
                "read the free space of {} from df: {text:?}",
                path.display()
            )
        })
}

/// The last `lines` lines of `text`: the end of a log for a failure message.
fn tail(text: &str, lines: usize) -> String {
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::{DateTime, Utc};

    #[test]
    fn gaps_in_and_out_of_the_cutover_are_told_apart() {
        let at = |s: &str| DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc);
        let span = |a: &str, b: &str| service::Span {
            started: at(a),
            finished: at(b),
        };
        let steps: BTreeMap<String, service::Span> = [
            ("seed", span("2026-11-21T10:00:00Z", "2026-11-21T10:00:05Z")),
            (
                "catch_up",
                span("2026-11-21T10:00:05Z", "2026-11-21T10:00:10Z"),
            ),
            (
                "freeze",
                span("2026-11-21T10:00:10Z", "2026-11-21T10:00:10.300Z"),
            ),
            (
                "promote",
                span("2026-11-21T10:00:10.300Z", "2026-11-21T10:00:10.400Z"),
            ),
            (
                "unfreeze",
                span("2026-11-21T10:00:10.400Z", "2026-11-21T10:00:10.410Z"),
            ),
            (
                "hook",
                span("2026-11-21T10:00:10.410Z", "2026-11-21T10:00:10.450Z"),
            ),
            (
                "verify",
                span("2026-11-21T10:00:11Z", "2026-11-21T10:00:20Z"),
            ),
        ]
        .into_iter()
        .map(|(n, s)| (n.to_owned(), s))
        .collect();
        let t = |s: &str| secs(at(s));
        let times = [
            t("2026-11-21T10:00:01Z"),
            t("2026-11-21T10:00:03Z"), // 2 s in the seed
            t("2026-11-21T10:00:04Z"),
            t("2026-11-21T10:00:05Z"),
            t("2026-11-21T10:00:06Z"),
            t("2026-11-21T10:00:07Z"),
            t("2026-11-21T10:00:08Z"),
            t("2026-11-21T10:00:09Z"),
            t("2026-11-21T10:00:09.990Z"),
            t("2026-11-21T10:00:10.460Z"), // 470 ms over the cutover
            t("2026-11-21T10:00:10.470Z"),
        ];
        let (cutover, other) = gaps(&times, &steps);
        let cutover = cutover.unwrap();
        assert!((cutover.ms - 470.0).abs() < 0.01, "{cutover:?}");
        assert_eq!(
            cutover.steps,
            ["catch_up", "freeze", "promote", "unfreeze", "hook"]
        );
        let other = other.unwrap();
        assert!((other.ms - 2000.0).abs() < 0.01, "{other:?}");
        assert_eq!(other.steps, ["seed"]);
        assert_eq!(gaps(&times[..1], &steps), (None, None));
    }
}
