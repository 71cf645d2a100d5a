//! The report printed at the end of a run: one table of figures, the two goals
//! as met / not met lines, and every skip or problem. The goals describe this machine
//! and this run, never a verdict on it: the exit status depends only on whether
//! something was broken ([`Outcome::problems`]).

use std::io::{self, Write};

use super::{GOAL_FREEZE_MS, GOAL_RATIO, LOG_COPY_INTERVAL_MS, Migration, Outcome};
use crate::table::{Table, cell, ratio};

/// Prints the table, the goals and every skip or problem.
pub fn print(out: &mut dyn Write, outcome: &Outcome) -> io::Result<()> {
    let m = outcome.migration.as_ref();
    let plain = Some(outcome.plain.copy.rate_mb());
    let plain_interval = Some(outcome.plain_interval.copy.rate_mb());
    let dbm_rate = m.and_then(|m| m.seed_rate);
    let seed_ratio = ratio(dbm_rate, plain);
    let of = |f: fn(&Migration) -> Option<f64>, decimals| cell(m.and_then(f), decimals);

    let mut t = Table::new(["figure", "value"]);
    t.row([
        "data, tablespace files on db0 (GB)".to_owned(),
        cell(Some(outcome.data.bytes as f64 / 1e9), 2),
    ])
    .row([
        "data, plain stream (GB)".to_owned(),
        cell(Some(outcome.plain.copy.bytes as f64 / 1e9), 2),
    ])
    .row([
        "seed, plain mariabackup | mbstream (MB/s)".to_owned(),
        cell(plain, 1),
    ])
    .row([
        format!("seed, plain, --log-copy-interval={LOG_COPY_INTERVAL_MS} (MB/s)"),
        cell(plain_interval, 1),
    ])
    .row([
        "seed, dbm (MB/s, as dbm reports it)".to_owned(),
        cell(dbm_rate, 1),
    ])
    .row(["seed ratio dbm / plain".to_owned(), cell(seed_ratio, 2)])
    .row([
        format!("seed ratio dbm / plain, both --log-copy-interval={LOG_COPY_INTERVAL_MS}"),
        cell(ratio(dbm_rate, plain_interval), 2),
    ])
    .row([
        "longest write gap in the plain copies, client (ms)".to_owned(),
        format!(
            "{:.0} / {:.0}",
            outcome.plain.writer_gap_ms, outcome.plain_interval.writer_gap_ms
        ),
    ])
    .row([
        "seed step, journal (s)".to_owned(),
        of(|m| m.seed_ms.map(|ms| ms as f64 / 1e3), 1),
    ])
    .row([
        "write freeze reported by dbm (ms)".to_owned(),
        of(|m| m.freeze_ms.map(|ms| ms as f64), 0),
    ])
    .row([
        "longest write gap in the cutover, db1's clock (ms)".to_owned(),
        of(|m| m.cutover_gap.as_ref().map(|g| g.ms), 0),
    ])
    .row([
        "longest write gap elsewhere, db1's clock (ms)".to_owned(),
        of(|m| m.other_gap.as_ref().map(|g| g.ms), 0),
    ])
    .row([
        "longest write gap, whole run, client (ms)".to_owned(),
        of(|m| Some(m.client_gap_ms), 0),
    ])
    .row([
        "cutover, freeze start to hook end, journal (ms)".to_owned(),
        of(|m| m.cutover_ms.map(|c| c.0 as f64), 0),
    ])
    .row([
        "cutover, freeze+promote+unfreeze+hook steps (ms)".to_owned(),
        of(|m| m.cutover_ms.map(|c| c.1 as f64), 0),
    ])
    .row([
        "dbm run, start to exit (s)".to_owned(),
        of(|m| Some(m.seconds), 1),
    ])
    .row([
        "verify step, journal (s)".to_owned(),
        of(|m| m.verify_ms.map(|ms| ms as f64 / 1e3), 1),
    ])
    .row(["acked writes".to_owned(), of(|m| Some(m.acked as f64), 0)])
    .row([
        "lost writes, db1 / db2".to_owned(),
        m.map_or_else(
            || "-".to_owned(),
            |m| format!("{} / {}", count(m.lost_db1), count(m.lost_db2)),
        ),
    ])
    .row([
        "writer failures".to_owned(),
        of(|m| Some(m.failures as f64), 0),
    ]);
    writeln!(out, "\n{t}")?;
    if let Some(gap) = m.and_then(|m| m.other_gap.as_ref()) {
        writeln!(
            out,
            "the longest write gap outside the cutover fell in: {}",
            if gap.steps.is_empty() {
                "no step of dbm's".to_owned()
            } else {
                gap.steps.join(", ")
            }
        )?;
    }
    writeln!(out, "goal: {}", freeze_goal(m))?;
    let seed = match seed_ratio {
        Some(r) if r >= GOAL_RATIO => format!("met ({r:.2})"),
        Some(r) => format!("not met ({r:.2})"),
        None => "not measured".to_owned(),
    };
    writeln!(
        out,
        "goal: seed at least {GOAL_RATIO}x the plain tool's rate: {seed}"
    )?;

    if let Some(why) = &outcome.skipped {
        writeln!(out, "dbm: skipped: {why}")?;
    }
    if !outcome.problems.is_empty() {
        writeln!(out, "dbm: BROKEN")?;
        for p in &outcome.problems {
            for (i, line) in p.lines().enumerate() {
                let lead = if i == 0 { "   " } else { "     " };
                writeln!(out, "{lead}{line}")?;
            }
        }
    }
    Ok(())
}

fn count(n: Option<usize>) -> String {
    n.map_or_else(|| "-".to_owned(), |n| n.to_string())
}

/// The freeze goal: dbm's freeze and the longest write gap over the cutover under a
/// second, and no acknowledged write lost on db1 or db2.
fn freeze_goal(m: Option<&Migration>) -> String {
    const TITLE: &str = "write freeze under 1 s with zero lost writes";
    let Some(m) = m else {
        return format!("{TITLE}: not measured");
    };
    let (Some(freeze), Some(gap), Some(lost1), Some(lost2)) =
        (m.freeze_ms, m.cutover_gap.as_ref(), m.lost_db1, m.lost_db2)
    else {
        return format!("{TITLE}: not measured");
    };
    let lost = lost1 + lost2;
    let met = (freeze as f64) < GOAL_FREEZE_MS && gap.ms < GOAL_FREEZE_MS && lost == 0;
    format!(
        "{TITLE}: {} (dbm {freeze} ms, the client's longest gap over the cutover {:.0} ms, \
         {lost} lost)",
        if met { "met" } else { "not met" },
        gap.ms
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dbm::{Gap, Plain, baseline, data};

    fn outcome(migration: Option<Migration>) -> Outcome {
        Outcome {
            data: data::Generated {
                rows: 1000,
                bytes: 2_000_000_000,
                seconds: 60.0,
            },
            plain: Plain {
                copy: baseline::Copy {
                    bytes: 2_100_000_000,
                    seconds: 30.0,
                },
                writer_gap_ms: 1012.0,
            },
            plain_interval: Plain {
                copy: baseline::Copy {
                    bytes: 2_100_000_000,
                    seconds: 28.0,
                },
                writer_gap_ms: 21.0,
            },
            skipped: None,
            migration,
            problems: Vec::new(),
        }
    }

    fn migration() -> Migration {
        Migration {
            seconds: 90.0,
            seed_rate: Some(66.5),
            seed_ms: Some(33_000),
            verify_ms: Some(40_000),
            freeze_ms: Some(412),
            cutover_ms: Some((450, 440)),
            acked: 50_000,
            failures: 3,
            client_gap_ms: 530.4,
            cutover_gap: Some(Gap {
                ms: 430.4,
                steps: vec!["freeze".into(), "promote".into()],
            }),
            other_gap: Some(Gap {
                ms: 520.0,
                steps: vec!["seed".into()],
            }),
            lost_db1: Some(0),
            lost_db2: Some(0),
        }
    }

    fn printed(outcome: &Outcome) -> String {
        let mut text = Vec::new();
        print(&mut text, outcome).unwrap();
        String::from_utf8(text).unwrap()
    }

    fn value<'a>(text: &'a str, figure: &str) -> &'a str {
        let line = text
            .lines()
            .find(|l| l.starts_with(figure))
            .unwrap_or_else(|| panic!("no {figure}: {text}"));
        line[figure.len()..].trim()
    }

    #[test]
    fn figures_and_goals_of_a_good_run() {
        let text = printed(&outcome(Some(migration())));
        assert_eq!(
            value(&text, "seed, plain mariabackup | mbstream (MB/s)"),
            "70.0"
        );
        assert_eq!(value(&text, "seed ratio dbm / plain "), "0.95");
        assert_eq!(
            value(&text, "seed ratio dbm / plain, both --log-copy-interval=10"),
            "0.89"
        );
        assert_eq!(
            value(&text, "longest write gap in the plain copies, client (ms)"),
            "1012 / 21"
        );
        assert_eq!(value(&text, "write freeze reported by dbm (ms)"), "412");
        assert_eq!(value(&text, "lost writes, db1 / db2"), "0 / 0");
        assert!(
            text.contains("goal: write freeze under 1 s with zero lost writes: met (dbm 412 ms, the client's longest gap over the cutover 430 ms, 0 lost)"),
            "{text}"
        );
        assert!(
            text.contains("goal: seed at least 0.9x the plain tool's rate: met (0.95)"),
            "{text}"
        );
        assert!(text.contains("outside the cutover fell in: seed"), "{text}");
        assert!(!text.contains("BROKEN"), "{text}");
    }

    #[test]
    fn a_lost_write_or_a_long_gap_misses_the_goal() {
        let mut m = migration();
        m.lost_db2 = Some(2);
        assert!(freeze_goal(Some(&m)).contains(": not met"));
        let mut m = migration();
        m.cutover_gap.as_mut().unwrap().ms = 1500.0;
        assert!(freeze_goal(Some(&m)).contains(": not met"));
        let mut m = migration();
        m.client_gap_ms = 1500.0;
        assert!(
            freeze_goal(Some(&m)).contains(": met"),
            "a stall outside the cutover is no freeze"
        );
        let mut m = migration();
        m.freeze_ms = None;
        assert!(freeze_goal(Some(&m)).ends_with("not measured"));
    }

    #[test]
    fn a_skipped_or_broken_migration_is_said() {
        let mut skipped = outcome(None);
        skipped.skipped = Some("dbm has no `run` command yet".into());
        let text = printed(&skipped);
        assert!(text.contains("dbm: skipped: dbm has no `run`"), "{text}");
        assert!(text.contains("goal: write freeze under 1 s with zero lost writes: not measured"));
        assert_eq!(value(&text, "seed ratio dbm / plain "), "-");

        let mut broken = outcome(Some(migration()));
        broken
            .problems
            .push("dbm run failed (exit status: 1); the end of its log:\nseed: boom".into());
        let text = printed(&broken);
        assert!(
            text.contains("dbm: BROKEN\n   dbm run failed (exit status: 1); the end of its log:\n     seed: boom"),
            "{text}"
        );
    }
}
