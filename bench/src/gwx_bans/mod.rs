//! `gwx-bans`: fail2ban's matcher against gwx's on the same filter and log, plus the two
//! times an operator cares about when an attack starts: from the line that crosses
//! `maxretry` to the address being in the kernel's ban set, and loading 100,000 saved
//! bans at start.
//!
//! 1. Rate: a generated nginx access log (default 1,000,000 lines, one in ten a
//!    wp-login POST), the wordpress filter of the gwx tests, `fail2ban-regex` and `gwx
//!    bans regex --quiet`, each pinned to one CPU with `taskset`; lines/s of each, the
//!    ratio, and a check that both matched the same number of lines.
//! 2. Ban latency: `gwx apply` in a namespace, `gwx bans run` following a log; for each
//!    trial the test writes `maxretry` lines of a new address, and `nft monitor` in the
//!    namespace timestamps the moment the kernel has the element.
//! 3. Load: a state file of 100,000 bans, `gwx bans run` started on an empty set: the
//!    time until it reports ready (ready means the saved bans are in force), and the
//!    count in the kernel afterwards.

pub mod loggen;
pub mod timing;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};

use crate::cmd;
use crate::table::Table;

/// What to run.
#[derive(Debug, Clone)]
pub struct Options {
    pub gwx: PathBuf,
    pub lines: u64,
    /// Lines fail2ban-regex reads (it is slow: at ~6,000 lines/s a million take three
    /// minutes); gwx always reads the whole log.
    pub fail2ban_lines: u64,
    pub latency_trials: usize,
    pub load_bans: usize,
    /// The CPU both matchers are pinned to.
    pub cpu: usize,
}

/// The wordpress filter the gwx tests use, in fail2ban's format.
pub fn filter_file() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../config/gwx/filter.d/wordpress.conf")
}

/// One matcher's figures.
#[derive(Debug, Clone)]
pub struct Rate {
    pub lines: u64,
    pub matched: u64,
    pub seconds: f64,
}

impl Rate {
    pub fn per_second(&self) -> f64 {
        self.lines as f64 / self.seconds.max(1e-9)
    }
}

/// Runs fail2ban-regex on `log` pinned to `cpu`; its line and match counts from
/// "Lines: 200000 lines, 0 ignored, 20219 matched, 179781 missed".
pub fn fail2ban(log: &Path, filter: &Path, cpu: usize) -> Result<Rate> {
    let mut cmd = Command::new("fail2ban-regex");
    cmd.arg(log).arg(filter);
    let (numbers, seconds) = pinned(cmd, cpu, "Lines:")?;
    let [lines, _ignored, matched, ..] = numbers[..] else {
        bail!("fail2ban-regex's summary has too few numbers: {numbers:?}");
    };
    Ok(Rate {
        lines,
        matched,
        seconds,
    })
}

/// Runs `gwx bans regex --quiet` on `log` pinned to `cpu`; its counts from
/// "lines    1000000 lines, 100000 matched, 0 ignored, ...".
pub fn gwx(gwx: &Path, log: &Path, filter: &Path, cpu: usize) -> Result<Rate> {
    let mut cmd = Command::new(gwx);
    cmd.args(["bans", "regex", "--quiet"]).arg(log).arg(filter);
    let (numbers, seconds) = pinned(cmd, cpu, "lines ")?;
    let [lines, matched, ..] = numbers[..] else {
        bail!("gwx's summary has too few numbers: {numbers:?}");
    };
    Ok(Rate {
        lines,
        matched,
        seconds,
    })
}

/// Runs `cmd` under `taskset -c CPU`, timed from start to exit; the numbers of the
/// first output line starting with `summary`, and the seconds it took.
fn pinned(cmd: Command, cpu: usize, summary: &str) -> Result<(Vec<u64>, f64)> {
    let mut pinned = Command::new("taskset");
    pinned
        .args(["-c", &cpu.to_string()])
        .arg(cmd.get_program())
        .args(cmd.get_args());
    let started = Instant::now();
    let out = cmd::checked(&mut pinned, Duration::from_secs(3600))?;
    let seconds = started.elapsed().as_secs_f64();
    let line = out
        .lines()
        .find(|l| l.starts_with(summary))
        .with_context(|| {
            format!(
                "no `{summary}` summary in the output of `{}`:\n{out}",
                cmd::shown(&pinned)
            )
        })?;
    let numbers = line
        .split(|c: char| !c.is_ascii_digit())
        .filter_map(|w| w.parse().ok())
        .collect();
    Ok((numbers, seconds))
}

/// The rate part of the report.
pub fn rate_table(f2b: &Rate, ours: &Rate) -> String {
    let mut t = Table::new(["matcher", "lines", "matched", "seconds", "lines/s"]);
    for (name, r) in [("fail2ban-regex", f2b), ("gwx bans regex", ours)] {
        t.row([
            name.to_owned(),
            r.lines.to_string(),
            r.matched.to_string(),
            format!("{:.2}", r.seconds),
            format!("{:.0}", r.per_second()),
        ]);
    }
    format!("{t}")
}

/// Runs the three measurements and prints the report; `Err` only when the run could
/// not be set up or something was broken (a matcher that failed, matches that differ,
/// a ban that never came).
pub fn run(opts: &Options, out: &mut impl std::io::Write) -> Result<()> {
    let dir = tempfile::Builder::new()
        .prefix("bench-gwx-bans-")
        .tempdir()?;
    let filter = filter_file();
    let shape = loggen::Shape {
        lines: opts.lines,
        attack_every: 10,
    };
    let log = dir.path().join("access.log");
    loggen::write(&log, shape)?;
    let f2b_log = if opts.fail2ban_lines < opts.lines {
        let p = dir.path().join("access-head.log");
        loggen::write(
            &p,
            loggen::Shape {
                lines: opts.fail2ban_lines,
                ..shape
            },
        )?;
        p
    } else {
        log.clone()
    };
    writeln!(
        out,
        "gwx-bans: fail2ban-regex against gwx bans regex, ban latency, loading saved bans"
    )?;
    writeln!(out, "filter    {}", filter.display())?;
    writeln!(
        out,
        "log       generated nginx access log: gwx {} lines, fail2ban-regex {} lines (same generator, a prefix), 1 in 10 a wp-login POST",
        opts.lines,
        opts.fail2ban_lines.min(opts.lines)
    )?;
    writeln!(
        out,
        "cpu       both matchers pinned to CPU {} (taskset)",
        opts.cpu
    )?;
    writeln!(
        out,
        "versions  {}",
        cmd::version("fail2ban-regex", &["--version"])
    )?;
    writeln!(
        out,
        "          {}",
        cmd::version(&opts.gwx.to_string_lossy(), &["--version"])
    )?;
    out.flush()?;

    let ours = gwx(&opts.gwx, &log, &filter, opts.cpu)?;
    let f2b = fail2ban(&f2b_log, &filter, opts.cpu)?;
    writeln!(
        out,
        "\n== match rate (one core)\n{}",
        rate_table(&f2b, &ours)
    )?;
    let expected = loggen::attacks(shape);
    let f2b_expected = loggen::attacks(loggen::Shape {
        lines: opts.fail2ban_lines.min(opts.lines),
        ..shape
    });
    if ours.matched != expected || f2b.matched != f2b_expected {
        bail!(
            "matches differ from the log's attacks: gwx {} of {expected}, fail2ban {} of {f2b_expected}",
            ours.matched,
            f2b.matched
        );
    }
    let ratio = ours.per_second() / f2b.per_second();
    writeln!(
        out,
        "ratio gwx / fail2ban lines/s: {ratio:.1}\ngoal: at least 100x fail2ban's rate on one core: {}",
        if ratio >= 100.0 { "yes" } else { "no" }
    )?;
    out.flush()?;

    let maxretry = 3;
    let gw = timing::Gateway::new(&opts.gwx, &filter, maxretry)?;
    let lat = timing::latency(&gw, maxretry, opts.latency_trials)?;
    writeln!(
        out,
        "\n== ban latency: the line crossing maxretry written -> element in the nftables set ({} trials)\nmedian {:.1} ms, p90 {:.1} ms, max {:.1} ms",
        lat.samples.len(),
        lat.quantile(0.5),
        lat.quantile(0.9),
        lat.quantile(1.0)
    )?;
    out.flush()?;

    let (ready, count) = timing::load(&gw, opts.load_bans)?;
    writeln!(
        out,
        "\n== loading {} saved bans at start (empty sets, as after a reboot)\nready after {:.2} s; the kernel holds {count} bans",
        opts.load_bans,
        ready.as_secs_f64()
    )?;
    if count != opts.load_bans {
        bail!(
            "the kernel holds {count} bans after loading {}",
            opts.load_bans
        );
    }
    Ok(())
}
