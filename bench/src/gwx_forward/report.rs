//! The report printed at the end of a run: the numbers of every variant, their ratios
//! to HAProxy and to direct routing, and the gwx issue's two goals as yes/no lines.
//! The goals describe this machine and this run; they are never a verdict on it (the
//! exit status depends only on whether something was broken, see
//! [`Outcome::problems`]).

use std::io::{self, Write};

use super::{Measured, Options, Outcome, Variant};
use crate::measure::gbit;
use crate::table::{Table, cell, ratio};

/// What is compared between variants.
#[derive(Debug, Clone, Copy)]
enum Metric {
    /// Gbit/s with one stream.
    Single,
    /// Gbit/s with several streams.
    Parallel,
    /// Successful connections per second.
    Conns,
}

impl Metric {
    const ALL: [Metric; 3] = [Metric::Single, Metric::Parallel, Metric::Conns];

    fn label(self, opts: &Options) -> String {
        match self {
            Metric::Single => "1 stream".into(),
            Metric::Parallel => format!("{} streams", opts.streams),
            Metric::Conns => "conns/s".into(),
        }
    }

    fn value(self, outcome: &Outcome) -> Option<f64> {
        let Outcome::Measured(m) = outcome else {
            return None;
        };
        match self {
            Metric::Single => m.single.as_ref().ok().map(|b| gbit(*b)),
            Metric::Parallel => m.parallel.as_ref().ok().map(|b| gbit(*b)),
            Metric::Conns => m.conns.as_ref().ok().map(|c| c.per_second()),
        }
    }

    fn decimals(self) -> usize {
        match self {
            Metric::Single | Metric::Parallel => 2,
            Metric::Conns => 0,
        }
    }
}

/// A goal from the gwx issue: `variant` reaches at least `min_ratio` of `base` in
/// every metric.
struct Goal {
    title: &'static str,
    variant: Variant,
    base: Variant,
    min_ratio: f64,
}

const GOALS: [Goal; 2] = [
    Goal {
        title: "gwx proxy >= HAProxy (throughput and conns/s)",
        variant: Variant::GwxProxy,
        base: Variant::Haproxy,
        min_ratio: 1.0,
    },
    Goal {
        title: "gwx L3 within 10% of direct",
        variant: Variant::GwxL3,
        base: Variant::Direct,
        min_ratio: 0.9,
    },
];

/// Prints the results table, the ratio tables, the goals and every skip or problem.
pub fn print(
    out: &mut dyn Write,
    outcomes: &[(Variant, Outcome)],
    opts: &Options,
) -> io::Result<()> {
    writeln!(
        out,
        "\n== results ({} s per measurement, {} worker(s) per forwarder)\n",
        opts.seconds, opts.workers
    )?;
    write!(out, "{}", results(outcomes, opts))?;
    for base in [Variant::Haproxy, Variant::Direct] {
        writeln!(out)?;
        match value_of(outcomes, base, Metric::Single) {
            Some(_) => write!(out, "{}", ratios(outcomes, base, opts))?,
            None => writeln!(
                out,
                "ratio to {}: not available ({} has no result)",
                base.name(),
                base.name()
            )?,
        }
    }
    writeln!(out)?;
    for goal in &GOALS {
        writeln!(out, "goal: {}: {}", goal.title, judge(goal, outcomes, opts))?;
    }
    notes(out, outcomes)
}

fn results(outcomes: &[(Variant, Outcome)], opts: &Options) -> Table {
    let mut header = vec!["variant".to_owned()];
    header.extend(Metric::ALL.map(|m| match m {
        Metric::Conns => m.label(opts),
        _ => format!("{} Gbit/s", m.label(opts)),
    }));
    header.push("failed conns".into());
    let mut table = Table::new(header);
    for (variant, outcome) in outcomes {
        let mut row = vec![variant.name().to_owned()];
        match outcome {
            Outcome::Skipped(_) => row.push("skipped".into()),
            Outcome::Failed(_) => row.push("did not start".into()),
            Outcome::Measured(m) => {
                row.extend(
                    Metric::ALL.map(|metric| cell(metric.value(outcome), metric.decimals())),
                );
                row.push(
                    m.conns
                        .as_ref()
                        .map_or("-".into(), |c| c.failed().to_string()),
                );
            }
        }
        table.row(row);
    }
    table
}

fn ratios(outcomes: &[(Variant, Outcome)], base: Variant, opts: &Options) -> Table {
    let mut header = vec![format!("ratio to {}", base.name())];
    header.extend(Metric::ALL.map(|m| m.label(opts)));
    let mut table = Table::new(header);
    for (variant, outcome) in outcomes {
        let mut row = vec![variant.name().to_owned()];
        row.extend(
            Metric::ALL.map(|m| cell(ratio(m.value(outcome), value_of(outcomes, base, m)), 2)),
        );
        table.row(row);
    }
    table
}

/// `yes (1 stream 1.02, ...)`, `no (...)` or why the goal was not measured.
fn judge(goal: &Goal, outcomes: &[(Variant, Outcome)], opts: &Options) -> String {
    for v in [goal.variant, goal.base] {
        match outcome_of(outcomes, v) {
            None => return format!("not measured ({} not in this run)", v.name()),
            Some(Outcome::Skipped(_)) => return format!("not measured ({} skipped)", v.name()),
            Some(Outcome::Failed(_)) => {
                return format!("not measured ({} did not start)", v.name());
            }
            Some(Outcome::Measured(_)) => {}
        }
    }
    let mut shown = Vec::new();
    let mut met = true;
    for m in Metric::ALL {
        let r = ratio(
            value_of(outcomes, goal.variant, m),
            value_of(outcomes, goal.base, m),
        );
        let Some(r) = r else {
            return format!("not measured ({} failed)", m.label(opts));
        };
        met &= r >= goal.min_ratio;
        shown.push(format!("{} {r:.2}", m.label(opts)));
    }
    format!("{} ({})", if met { "yes" } else { "no" }, shown.join(", "))
}

/// Skips, connection failures and problems, each variant's on its own lines.
fn notes(out: &mut dyn Write, outcomes: &[(Variant, Outcome)]) -> io::Result<()> {
    let mut lines = Vec::new();
    for (variant, outcome) in outcomes {
        if let Outcome::Skipped(why) = outcome {
            lines.push(format!("{}: skipped: {why}", variant.name()));
        }
        if let Outcome::Measured(Measured { conns: Ok(c), .. }) = outcome {
            if c.failed() > 0 {
                lines.push(format!(
                    "{}: failed connections: {}",
                    variant.name(),
                    c.failure_summary()
                ));
            }
        }
        for p in outcome.problems() {
            lines.push(format!("{}: BROKEN: {p}", variant.name()));
        }
    }
    if !lines.is_empty() {
        writeln!(out)?;
    }
    for line in lines {
        writeln!(out, "{line}")?;
    }
    Ok(())
}

fn outcome_of(outcomes: &[(Variant, Outcome)], variant: Variant) -> Option<&Outcome> {
    outcomes.iter().find(|(v, _)| *v == variant).map(|(_, o)| o)
}

fn value_of(outcomes: &[(Variant, Outcome)], variant: Variant, metric: Metric) -> Option<f64> {
    outcome_of(outcomes, variant).and_then(|o| metric.value(o))
}
