//! The report printed at the end of a run: seconds per target of each tool (medians),
//! the ratio testssl.sh / tlsaudit, the findings compared target by target with every
//! disagreement spelled out, and the goal as a yes/no line.
//!
//! The exit status (see the binary) is 1 when a server did not start, a run produced no
//! findings, or the findings disagree: a disagreement is a wrong answer of one of the
//! two auditors, not slowness.

use std::io::{self, Write};

use super::{GOAL_RATIO, Outcome, Outcomes};
use crate::table::{Table, cell, ratio};

/// Prints the table, the comparison, the goal and every skip or problem.
pub fn print(out: &mut dyn Write, outcomes: &Outcomes) -> io::Result<()> {
    let mut t = Table::new(["target", "testssl.sh s", "tlsaudit s", "ratio"]);
    let (mut sum_peer, mut sum_ours, mut complete) = (0.0, 0.0, true);
    let mut ratios = Vec::new();
    for o in &outcomes.targets {
        let peer = Outcome::median(&o.testssl);
        let ours = Outcome::median(&o.tlsaudit);
        let r = ratio(peer, ours);
        match (peer, ours) {
            (Some(p), Some(u)) => {
                sum_peer += p;
                sum_ours += u;
            }
            _ => complete = false,
        }
        ratios.push((o.name, r));
        t.row([o.name.to_owned(), cell(peer, 2), cell(ours, 3), cell(r, 1)]);
    }
    if complete && outcomes.targets.len() > 1 {
        t.row([
            "all (sum)".to_owned(),
            format!("{sum_peer:.2}"),
            format!("{sum_ours:.3}"),
            cell(ratio(Some(sum_peer), Some(sum_ours)), 1),
        ]);
    }
    writeln!(out, "\n{t}")?;

    writeln!(
        out,
        "findings: testssl.sh's first run is the reference; per protocol accepted or not, suites per protocol by code point"
    )?;
    let mut disagreements = 0;
    for o in &outcomes.targets {
        let Some(reference) = o.reference().and_then(|r| r.findings.as_ref().ok()) else {
            writeln!(out, "  {:<7} not compared (no testssl.sh findings)", o.name)?;
            continue;
        };
        let lines = o.disagreements();
        disagreements += lines.len();
        if o.tlsaudit.iter().all(|r| r.findings.is_err()) {
            writeln!(
                out,
                "  {:<7} testssl.sh: {}; tlsaudit: nothing to compare",
                o.name,
                reference.summary()
            )?;
        } else if lines.is_empty() {
            writeln!(out, "  {:<7} agree: {}", o.name, reference.summary())?;
        } else {
            writeln!(
                out,
                "  {:<7} {} disagreement(s); testssl.sh: {}",
                o.name,
                lines.len(),
                reference.summary()
            )?;
            for line in &lines {
                writeln!(out, "            {line}")?;
            }
        }
    }

    let measured: Vec<f64> = ratios.iter().filter_map(|(_, r)| *r).collect();
    let shown: Vec<String> = ratios
        .iter()
        .map(|(name, r)| format!("{name} {}", cell(*r, 1)))
        .collect();
    let verdict = if measured.is_empty() || measured.len() < ratios.len() {
        format!("not measured ({})", shown.join(", "))
    } else {
        let fast = measured.iter().all(|&r| r >= GOAL_RATIO);
        let same = disagreements == 0;
        format!(
            "{} (ratios {}; {disagreements} disagreement(s))",
            if fast && same { "yes" } else { "no" },
            shown.join(", ")
        )
    };
    writeln!(
        out,
        "goal: at least {GOAL_RATIO:.0} times faster than testssl.sh on every target, with the same protocol and cipher findings: {verdict}"
    )?;

    if let Some(why) = &outcomes.tlsaudit_skipped {
        writeln!(out, "tlsaudit: skipped: {why}")?;
    }
    let problems: Vec<(&str, String)> = outcomes
        .targets
        .iter()
        .flat_map(|o| o.problems().into_iter().map(move |p| (o.name, p)))
        .collect();
    if !problems.is_empty() {
        writeln!(out, "BROKEN:")?;
        for (name, p) in problems {
            writeln!(out, "  {name}: {p}")?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::super::Run;
    use super::super::findings::{Findings, Proto};
    use super::*;

    fn found(accepted: &[Proto], suites: &[u16]) -> Findings {
        let mut f = Findings::default();
        for p in Proto::ALL {
            f.accepted.insert(p, accepted.contains(&p));
        }
        f.suites
            .insert(Proto::Tls12, suites.iter().copied().collect());
        f
    }

    fn run(round: u32, seconds: f64, f: Findings) -> Run {
        Run {
            round,
            seconds,
            findings: Ok(f),
        }
    }

    fn outcome(ours: Vec<Run>) -> Outcome {
        Outcome {
            name: "modern",
            what: "test",
            addr: None,
            broken: None,
            testssl: vec![run(1, 10.0, found(&[Proto::Tls12], &[0xc02f, 0xc030]))],
            tlsaudit: ours,
        }
    }

    fn printed(o: Outcome) -> String {
        let mut buf = Vec::new();
        print(
            &mut buf,
            &Outcomes {
                tlsaudit_skipped: None,
                targets: vec![o],
            },
        )
        .unwrap();
        String::from_utf8(buf).unwrap()
    }

    #[test]
    fn agreeing_and_fast_meets_the_goal() {
        let same = found(&[Proto::Tls12], &[0xc02f, 0xc030]);
        let text = printed(outcome(vec![
            run(1, 0.2, same.clone()),
            run(2, 0.1, same.clone()),
            run(3, 0.3, same),
        ]));
        let row = ["modern", "10.00", "0.200", "50.0"];
        assert!(text.lines().any(|l| l.split_whitespace().eq(row)), "{text}");
        assert!(text.contains("agree: TLSv1.2 (2 suites)"), "{text}");
        assert!(
            text.contains(": yes (ratios modern 50.0; 0 disagreement(s))"),
            "{text}"
        );
    }

    #[test]
    fn a_disagreement_is_listed_with_its_rounds_and_fails_the_goal() {
        let missing = found(&[Proto::Tls12], &[0xc02f]);
        let o = outcome(vec![run(1, 0.1, missing.clone()), run(2, 0.1, missing)]);
        assert_eq!(
            o.disagreements(),
            [
                "TLSv1.2 suites only testssl.sh found (1): 0xc030 (tlsaudit round 1, tlsaudit round 2)"
            ]
        );
        let text = printed(o);
        assert!(text.contains("1 disagreement(s)"), "{text}");
        assert!(
            text.contains(": no (ratios modern 100.0; 1 disagreement(s))"),
            "{text}"
        );
    }

    #[test]
    fn a_skipped_tlsaudit_is_not_measured() {
        let text = printed(outcome(Vec::new()));
        assert!(text.contains("not measured (modern -)"), "{text}");
        assert!(text.contains("tlsaudit: nothing to compare"), "{text}");
    }
}
