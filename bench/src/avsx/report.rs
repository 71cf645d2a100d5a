//! The report printed at the end of a run: every variant's medians, their ratios to
//! Postfix, and the avsx issue's two goals as yes/no lines. The goals describe this
//! machine and this run, never a verdict on it: the exit status depends only on
//! whether something was broken ([`Outcome::problems`]).

use std::io::{self, Write};

use super::{Options, Outcome, Variant};
use crate::table::{Table, cell, ratio};

/// A goal of the avsx issue: `variant`'s `metric` at least Postfix's.
struct Goal {
    title: &'static str,
    variant: Variant,
    metric: fn(&Outcome) -> Option<f64>,
}

const GOALS: [Goal; 2] = [
    Goal {
        title: "without scanning, at least Postfix's rate (delivered mails/s)",
        variant: Variant::AvsxScanOff,
        metric: Outcome::delivered,
    },
    Goal {
        title: "unknown-recipient rejects at least Postfix's reject rate",
        variant: Variant::AvsxScanOff,
        metric: Outcome::rejects,
    },
];

/// Prints the table, the ratios, the goals and every skip or problem.
pub fn print(out: &mut dyn Write, outcomes: &[Outcome], opts: &Options) -> io::Result<()> {
    let mut t = Table::new([
        "variant",
        "mails",
        "answered mails/s",
        "delivered mails/s",
        "rejects/s",
    ]);
    for o in outcomes {
        t.row([
            o.variant.name().to_owned(),
            opts.messages_for(o.variant).to_string(),
            cell(o.answered(), 0),
            cell(o.delivered(), 0),
            cell(o.rejects(), 0),
        ]);
    }
    writeln!(out, "\n{t}")?;

    let postfix = outcomes.iter().find(|o| o.variant == Variant::Postfix);
    let mut r = Table::new(["ratio to postfix", "answered", "delivered", "rejects"]);
    for o in outcomes.iter().filter(|o| o.variant != Variant::Postfix) {
        let of = |metric: fn(&Outcome) -> Option<f64>| {
            cell(ratio(metric(o), postfix.and_then(metric)), 2)
        };
        r.row([
            o.variant.name().to_owned(),
            of(Outcome::answered),
            of(Outcome::delivered),
            of(Outcome::rejects),
        ]);
    }
    writeln!(out, "{r}")?;

    for goal in &GOALS {
        let variant = outcomes.iter().find(|o| o.variant == goal.variant);
        let value = ratio(variant.and_then(goal.metric), postfix.and_then(goal.metric));
        let verdict = match value {
            Some(v) if v >= 1.0 => format!("yes ({v:.2})"),
            Some(v) => format!("no ({v:.2})"),
            None => "not measured".to_owned(),
        };
        writeln!(out, "goal: {}: {verdict}", goal.title)?;
    }

    for o in outcomes {
        if let Some(why) = &o.skipped {
            writeln!(out, "{}: skipped: {why}", o.variant.name())?;
        }
        let problems = o.problems();
        if !problems.is_empty() {
            writeln!(out, "{}: BROKEN", o.variant.name())?;
            for p in problems {
                writeln!(out, "   {p}")?;
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::path::PathBuf;
    use std::time::Duration;

    use super::*;
    use crate::avsx::load::Run;

    fn run(transactions: u64, answered_ms: u64, delivered_ms: Option<u64>) -> Run {
        Run {
            transactions,
            answered: Some(Duration::from_millis(answered_ms)),
            delivered: delivered_ms.map(Duration::from_millis),
            problems: Vec::new(),
        }
    }

    fn outcome(variant: Variant, mail_ms: u64, reject_ms: u64) -> Outcome {
        Outcome {
            variant,
            skipped: None,
            mail: vec![run(1000, mail_ms, Some(mail_ms * 2))],
            reject: vec![run(1000, reject_ms, None)],
            broken: Vec::new(),
        }
    }

    fn opts() -> Options {
        Options {
            avsx: PathBuf::from("/nonexistent/avsx"),
            messages: 1000,
            scan_messages: 100,
            sessions: 16,
            size: 2048,
            rounds: 1,
        }
    }

    fn printed(outcomes: &[Outcome]) -> String {
        let mut text = Vec::new();
        print(&mut text, outcomes, &opts()).unwrap();
        String::from_utf8(text).unwrap()
    }

    #[test]
    fn goals_compare_avsx_without_scanning_with_postfix() {
        let text = printed(&[
            outcome(Variant::Postfix, 1000, 500),
            outcome(Variant::AvsxScanOff, 500, 1000),
        ]);
        assert!(
            text.contains(
                "goal: without scanning, at least Postfix's rate (delivered mails/s): yes (2.00)"
            ),
            "{text}"
        );
        assert!(
            text.contains(
                "goal: unknown-recipient rejects at least Postfix's reject rate: no (0.50)"
            ),
            "{text}"
        );
        let postfix: Vec<&str> = text
            .lines()
            .find(|l| l.starts_with("postfix "))
            .unwrap()
            .split_whitespace()
            .collect();
        // 1000 mails answered in 1 s, delivered in 2 s; 1000 rejects in 0.5 s.
        assert_eq!(
            postfix,
            ["postfix", "1000", "1000", "500", "2000"],
            "{text}"
        );
        assert!(!text.contains("BROKEN"), "{text}");
    }

    #[test]
    fn skipped_and_broken_variants_are_named() {
        let mut off = Outcome::new(Variant::AvsxScanOff);
        off.skipped = Some("avsx binary not built".into());
        let mut on = outcome(Variant::AvsxScanOn, 1000, 500);
        on.mail[0]
            .problems
            .push("3 of 100 mails reached the sink".into());
        let text = printed(&[outcome(Variant::Postfix, 1000, 500), off, on]);
        assert!(
            text.contains("avsx scan off: skipped: avsx binary not built"),
            "{text}"
        );
        assert!(
            text.contains("avsx scan on: BROKEN\n   3 of 100 mails"),
            "{text}"
        );
        assert!(
            text.contains(
                "goal: without scanning, at least Postfix's rate (delivered mails/s): not measured"
            ),
            "{text}"
        );
    }
}
