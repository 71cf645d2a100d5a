//! The store read back: verdicts within a time range, counted by action, their scores
//! as a histogram, and the shares of scored mail that given (tag, kill) levels would
//! tag and kill. The levels are applied to the recorded scores, so the configured
//! levels and every what-if pair are compared on the same footing (SpamAssassin's
//! rule: a score at or above a level reaches it).

use std::collections::BTreeMap;
use std::fmt;
use std::fs::File;
use std::io::{BufRead, BufReader};
use std::path::Path;

use anyhow::{Context, bail};
use chrono::{DateTime, SecondsFormat, Utc};

use super::Verdict;

/// Histogram buckets: below 0, one per point from 0 to 20, and 20 or more.
pub const BUCKETS: usize = 22;

/// The bucket of `score`: 0 for `< 0`, `1 + floor(score)` up to 20, 21 for `>= 20`.
pub fn bucket(score: f64) -> usize {
    if score < 0.0 {
        0
    } else if score >= 20.0 {
        BUCKETS - 1
    } else {
        1 + score as usize
    }
}

/// `<0`, `0-1`, ..., `19-20`, `20+`.
pub fn bucket_label(i: usize) -> String {
    match i {
        0 => "<0".to_owned(),
        i if i >= BUCKETS - 1 => "20+".to_owned(),
        i => format!("{}-{}", i - 1, i),
    }
}

/// What a (tag, kill) pair would have done to the scored verdicts.
#[derive(Debug, Clone, PartialEq)]
pub struct Levels {
    pub tag: f64,
    pub kill: f64,
    /// The levels in the config (else a what-if).
    pub configured: bool,
    /// Scored at or above `tag` and below `kill`.
    pub tagged: u64,
    /// Scored at or above `kill`.
    pub killed: u64,
}

/// The summary of the verdicts in a time range.
#[derive(Debug, Clone, PartialEq)]
pub struct Report {
    /// The range asked for, `[from, to)`; none: unbounded.
    pub from: Option<DateTime<Utc>>,
    pub to: Option<DateTime<Utc>>,
    /// Verdicts in the range.
    pub total: u64,
    /// Well-formed verdicts outside the range.
    pub outside: u64,
    /// Lines that are not a verdict (torn by a crash, edited by hand), skipped.
    pub malformed: u64,
    /// The line number of the first of them, to look at.
    pub first_malformed: Option<u64>,
    /// The earliest and latest verdict in the range.
    pub earliest: Option<DateTime<Utc>>,
    pub latest: Option<DateTime<Utc>>,
    pub by_action: BTreeMap<String, u64>,
    /// Scored verdicts per [`bucket`].
    pub buckets: [u64; BUCKETS],
    pub scored: u64,
    pub unscored: u64,
    /// The configured levels first, then each what-if pair.
    pub levels: Vec<Levels>,
}

/// Reads the store at `path`, keeps the verdicts within `[from, to)` and reports them
/// with the configured `tag` and `kill` levels and the `what_if` pairs.
pub fn report(
    path: &Path,
    from: Option<DateTime<Utc>>,
    to: Option<DateTime<Utc>>,
    tag: f64,
    kill: f64,
    what_if: &[(f64, f64)],
) -> anyhow::Result<Report> {
    let file =
        File::open(path).with_context(|| format!("opening the stats store {}", path.display()))?;
    Report::read(BufReader::new(file), from, to, tag, kill, what_if)
        .with_context(|| format!("reading the stats store {}", path.display()))
}

impl Report {
    /// [`report`] on any reader of JSON lines.
    pub fn read(
        mut reader: impl BufRead,
        from: Option<DateTime<Utc>>,
        to: Option<DateTime<Utc>>,
        tag: f64,
        kill: f64,
        what_if: &[(f64, f64)],
    ) -> anyhow::Result<Report> {
        let mut report = Report::new(from, to, tag, kill, what_if)?;
        let mut line = Vec::new();
        let mut number = 0u64;
        loop {
            line.clear();
            // Bytes, not a String: a line of invalid UTF-8 is one malformed line, not
            // the end of the report.
            if reader.read_until(b'\n', &mut line)? == 0 {
                break;
            }
            number += 1;
            if line.trim_ascii().is_empty() {
                continue;
            }
            match serde_json::from_slice::<Verdict>(&line) {
                Ok(v) if v.score.is_none_or(f64::is_finite) => report.add(&v),
                _ => {
                    report.malformed += 1;
                    report.first_malformed.get_or_insert(number);
                }
            }
        }
        Ok(report)
    }

    /// An empty report; fails on levels that make no sense or an empty range.
    pub fn new(
        from: Option<DateTime<Utc>>,
        to: Option<DateTime<Utc>>,
        tag: f64,
        kill: f64,
        what_if: &[(f64, f64)],
    ) -> anyhow::Result<Report> {
        if let (Some(f), Some(t)) = (from, to) {
            if f >= t {
                bail!(
                    "the range is empty: from {} is not before to {}",
                    f.to_rfc3339(),
                    t.to_rfc3339()
                );
            }
        }
        let mut levels = Vec::with_capacity(1 + what_if.len());
        for (i, &(tag, kill)) in std::iter::once(&(tag, kill)).chain(what_if).enumerate() {
            if !(tag.is_finite() && kill.is_finite() && tag < kill) {
                bail!("levels tag {tag} and kill {kill}: expected numbers with tag below kill");
            }
            levels.push(Levels {
                tag,
                kill,
                configured: i == 0,
                tagged: 0,
                killed: 0,
            });
        }
        Ok(Report {
            from,
            to,
            total: 0,
            outside: 0,
            malformed: 0,
            first_malformed: None,
            earliest: None,
            latest: None,
            by_action: BTreeMap::new(),
            buckets: [0; BUCKETS],
            scored: 0,
            unscored: 0,
            levels,
        })
    }

    /// Counts `v` if it is within the range.
    pub fn add(&mut self, v: &Verdict) {
        let after_from = self.from.is_none_or(|f| v.time >= f);
        let before_to = self.to.is_none_or(|t| v.time < t);
        if !(after_from && before_to) {
            self.outside += 1;
            return;
        }
        self.total += 1;
        self.earliest = Some(self.earliest.map_or(v.time, |e| e.min(v.time)));
        self.latest = Some(self.latest.map_or(v.time, |l| l.max(v.time)));
        *self.by_action.entry(v.action.clone()).or_default() += 1;
        let Some(score) = v.score else {
            self.unscored += 1;
            return;
        };
        self.scored += 1;
        self.buckets[bucket(score)] += 1;
        for l in &mut self.levels {
            if score >= l.kill {
                l.killed += 1;
            } else if score >= l.tag {
                l.tagged += 1;
            }
        }
    }

    /// `part` of the scored verdicts, in percent (0 when nothing was scored).
    pub fn share_of_scored(&self, part: u64) -> f64 {
        percent(part, self.scored)
    }

    /// The configured levels.
    pub fn configured(&self) -> &Levels {
        &self.levels[0]
    }
}

fn percent(part: u64, whole: u64) -> f64 {
    if whole == 0 {
        0.0
    } else {
        part as f64 * 100.0 / whole as f64
    }
}

/// A level as written in the config: `4.5`, `16`.
pub(super) fn level(v: f64) -> String {
    format!("{v}")
}

fn time(t: Option<DateTime<Utc>>, open: &str) -> String {
    t.map_or(open.to_owned(), |t| {
        t.to_rfc3339_opts(SecondsFormat::Secs, true)
    })
}

/// Width of the longest histogram bar, in characters.
const BAR: u64 = 40;

impl fmt::Display for Report {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "Verdicts from {} to {}: {}",
            time(self.from, "the start"),
            time(self.to, "now"),
            self.total
        )?;
        if let (Some(e), Some(l)) = (self.earliest, self.latest) {
            writeln!(
                f,
                "  first {}, last {}",
                time(Some(e), ""),
                time(Some(l), "")
            )?;
        }
        if self.malformed > 0 {
            writeln!(
                f,
                "  {} malformed line(s) skipped, the first is line {}",
                self.malformed,
                self.first_malformed.unwrap_or(0)
            )?;
        }
        if self.total == 0 {
            return Ok(());
        }

        writeln!(f, "\nBy action")?;
        let width = self.by_action.keys().map(String::len).max().unwrap_or(0);
        for (action, n) in &self.by_action {
            writeln!(
                f,
                "  {action:<width$}  {n:>8}  {:5.1}%",
                percent(*n, self.total)
            )?;
        }

        writeln!(
            f,
            "\nSpam scores ({} scored, {} without a score)",
            self.scored, self.unscored
        )?;
        if self.scored > 0 {
            let max = self.buckets.iter().copied().max().unwrap_or(0).max(1);
            let c = self.configured();
            for (i, &n) in self.buckets.iter().enumerate() {
                // Rounded up: a bucket with any verdict shows at least one mark.
                let bar = (n * BAR).div_ceil(max) as usize;
                let mut marks = Vec::new();
                if bucket(c.tag) == i {
                    marks.push(format!("tag {}", level(c.tag)));
                }
                if bucket(c.kill) == i {
                    marks.push(format!("kill {}", level(c.kill)));
                }
                let marks = if marks.is_empty() {
                    String::new()
                } else {
                    format!("  <- {}", marks.join(", "))
                };
                writeln!(
                    f,
                    "  {:>5} |{:<w$}| {n:>8} {:5.1}%{marks}",
                    bucket_label(i),
                    "#".repeat(bar),
                    self.share_of_scored(n),
                    w = BAR as usize
                )?;
            }

            writeln!(f, "\nTagged and killed, of the scored mail")?;
            let names: Vec<String> = self
                .levels
                .iter()
                .map(|l| {
                    let what = if l.configured {
                        "configured"
                    } else {
                        "what if"
                    };
                    format!("tag {}, kill {} ({what})", level(l.tag), level(l.kill))
                })
                .collect();
            let width = names.iter().map(String::len).max().unwrap_or(0);
            writeln!(f, "  {:<width$}  {:>15}  {:>15}", "", "tagged", "killed")?;
            for (name, l) in names.iter().zip(&self.levels) {
                writeln!(
                    f,
                    "  {name:<width$}  {:>8} {:5.1}%  {:>8} {:5.1}%",
                    l.tagged,
                    self.share_of_scored(l.tagged),
                    l.killed,
                    self.share_of_scored(l.killed)
                )?;
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use chrono::TimeZone;

    use super::*;

    fn at(minute: u32) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 6, 1, 10, minute, 0).unwrap()
    }

    fn line(minute: u32, score: Option<f64>, action: &str) -> String {
        let v = Verdict {
            time: at(minute),
            score,
            action: action.to_owned(),
            size: 1000,
        };
        serde_json::to_string(&v).unwrap()
    }

    /// 20 verdicts at minutes 0..20 with known scores, and two without one.
    fn fixture() -> String {
        let scores = [
            -2.0, -0.1, 0.0, 0.5, 0.999, 1.0, 2.5, 4.4, 4.5, 4.6, 7.0, 11.9, 12.0, 15.9, 16.0,
            19.99, 20.0, 35.0, 3.0, 3.0,
        ];
        let mut out = String::new();
        for (i, s) in scores.iter().enumerate() {
            let action = if *s >= 16.0 {
                "killed"
            } else if *s >= 4.5 {
                "tagged"
            } else {
                "clean"
            };
            out.push_str(&line(i as u32, Some(*s), action));
            out.push('\n');
        }
        out.push_str(&line(20, None, "virus"));
        out.push('\n');
        out.push_str(&line(21, None, "tempfail"));
        out.push('\n');
        out
    }

    fn read(text: &str, from: Option<u32>, to: Option<u32>, what_if: &[(f64, f64)]) -> Report {
        Report::read(
            text.as_bytes(),
            from.map(at),
            to.map(at),
            4.5,
            16.0,
            what_if,
        )
        .unwrap()
    }

    #[test]
    fn buckets_have_closed_lower_and_open_upper_bounds() {
        assert_eq!(bucket(-0.001), 0);
        assert_eq!(bucket(0.0), 1);
        assert_eq!(bucket(0.999), 1);
        assert_eq!(bucket(1.0), 2);
        assert_eq!(bucket(19.999), 20);
        assert_eq!(bucket(20.0), 21);
        assert_eq!(bucket(1e9), 21);
        assert_eq!(bucket_label(0), "<0");
        assert_eq!(bucket_label(1), "0-1");
        assert_eq!(bucket_label(20), "19-20");
        assert_eq!(bucket_label(21), "20+");
    }

    #[test]
    fn histogram_counts_on_the_fixture() {
        let r = read(&fixture(), None, None, &[]);
        assert_eq!((r.total, r.scored, r.unscored), (22, 20, 2));
        let mut want = [0u64; BUCKETS];
        want[0] = 2; // -2, -0.1
        want[1] = 3; // 0, 0.5, 0.999
        want[2] = 1; // 1
        want[3] = 1; // 2.5
        want[4] = 2; // 3, 3
        want[5] = 3; // 4.4, 4.5, 4.6
        want[8] = 1; // 7
        want[12] = 1; // 11.9
        want[13] = 1; // 12
        want[16] = 1; // 15.9
        want[17] = 1; // 16
        want[20] = 1; // 19.99
        want[21] = 2; // 20, 35
        assert_eq!(r.buckets, want);
        assert_eq!(r.buckets.iter().sum::<u64>(), r.scored);
        let actions: Vec<(&str, u64)> = r.by_action.iter().map(|(a, n)| (a.as_str(), *n)).collect();
        assert_eq!(
            actions,
            [
                ("clean", 10),
                ("killed", 4),
                ("tagged", 6),
                ("tempfail", 1),
                ("virus", 1)
            ]
        );
        assert_eq!((r.earliest, r.latest), (Some(at(0)), Some(at(21))));
    }

    #[test]
    fn what_if_shares_are_exact() {
        let r = read(
            &fixture(),
            None,
            None,
            &[(4.5, 12.0), (5.0, 20.0), (-1.0, 0.0)],
        );
        let counts: Vec<(f64, f64, bool, u64, u64)> = r
            .levels
            .iter()
            .map(|l| (l.tag, l.kill, l.configured, l.tagged, l.killed))
            .collect();
        assert_eq!(
            counts,
            [
                // 4.5 4.6 7 11.9 12 15.9 tagged; 16 19.99 20 35 killed
                (4.5, 16.0, true, 6, 4),
                // 12 and 15.9 move from tagged to killed
                (4.5, 12.0, false, 4, 6),
                // 4.5 and 4.6 below 5; 16 and 19.99 only tagged now
                (5.0, 20.0, false, 6, 2),
                // -0.1 tagged; everything from 0 killed
                (-1.0, 0.0, false, 1, 18),
            ]
        );
        assert_eq!(r.share_of_scored(r.levels[0].tagged), 30.0);
        assert_eq!(r.share_of_scored(r.levels[1].killed), 30.0);
        assert_eq!(r.share_of_scored(r.levels[3].killed), 90.0);
        let text = r.to_string();
        assert!(text.contains("tag 4.5, kill 16 (configured)"), "{text}");
        assert!(
            text.contains("tag 4.5, kill 12 (what if)            4  20.0%         6  30.0%"),
            "{text}"
        );
    }

    #[test]
    fn the_range_is_from_inclusive_to_exclusive() {
        let r = read(&fixture(), Some(5), Some(10), &[]);
        // Minutes 5..=9: scores 1.0 2.5 4.4 4.5 4.6.
        assert_eq!((r.total, r.outside), (5, 17));
        assert_eq!((r.earliest, r.latest), (Some(at(5)), Some(at(9))));
        assert_eq!(r.buckets[2..6], [1, 1, 0, 3]);
        let r = read(&fixture(), Some(20), None, &[]);
        assert_eq!((r.total, r.scored, r.unscored), (2, 0, 2));
        let r = read(&fixture(), None, Some(0), &[]);
        assert_eq!(r.total, 0);
        assert!(Report::read(&b""[..], Some(at(5)), Some(at(5)), 4.5, 16.0, &[]).is_err());
    }

    #[test]
    fn malformed_lines_are_counted_and_skipped() {
        let good = fixture();
        let mut lines: Vec<&str> = good.lines().collect();
        let bad = [
            "not json",
            r#"{"time":"2026-06-01T10:00:00Z","score":1.0,"action":"clean"}"#, // no size
            r#"{"time":"yesterday","score":1.0,"action":"clean","size":1}"#,
            r#"{"time":"2026-06-01T10:00:00Z","score":"high","action":"clean","size":1}"#,
            r#"{"time":"2026-06-01T10:00:00Z","score":1.0,"action":"cl"#, // torn
        ];
        lines.insert(3, bad[0]);
        lines.insert(7, bad[1]);
        lines.insert(8, "");
        lines.push(bad[2]);
        lines.push(bad[3]);
        lines.push(bad[4]);
        let mut text = lines.join("\n").into_bytes();
        text.extend_from_slice(b"\n\xff\xfe not utf-8\n");
        let r = Report::read(&text[..], None, None, 4.5, 16.0, &[]).unwrap();
        assert_eq!(r.total, 22);
        assert_eq!(r.malformed, 6);
        assert_eq!(r.first_malformed, Some(4));
        assert_eq!(r, {
            let mut clean = read(&good, None, None, &[]);
            clean.malformed = 6;
            clean.first_malformed = Some(4);
            clean
        });
        assert!(
            r.to_string()
                .contains("6 malformed line(s) skipped, the first is line 4")
        );
    }

    #[test]
    fn bad_levels_are_refused() {
        assert!(Report::new(None, None, 16.0, 4.5, &[]).is_err());
        assert!(Report::new(None, None, 4.5, 16.0, &[(5.0, f64::NAN)]).is_err());
        assert!(Report::new(None, None, 4.5, 16.0, &[(5.0, 5.0)]).is_err());
    }

    #[test]
    fn the_text_report() {
        let r = read(&fixture(), None, None, &[(4.5, 12.0)]);
        let text = r.to_string();
        let expected = "\
Verdicts from the start to now: 22
  first 2026-06-01T10:00:00Z, last 2026-06-01T10:21:00Z

By action
  clean           10   45.5%
  killed           4   18.2%
  tagged           6   27.3%
  tempfail         1    4.5%
  virus            1    4.5%

Spam scores (20 scored, 2 without a score)
     <0 |###########################             |        2  10.0%
    0-1 |########################################|        3  15.0%
    1-2 |##############                          |        1   5.0%
    2-3 |##############                          |        1   5.0%
    3-4 |###########################             |        2  10.0%
    4-5 |########################################|        3  15.0%  <- tag 4.5
    5-6 |                                        |        0   0.0%
    6-7 |                                        |        0   0.0%
    7-8 |##############                          |        1   5.0%
    8-9 |                                        |        0   0.0%
   9-10 |                                        |        0   0.0%
  10-11 |                                        |        0   0.0%
  11-12 |##############                          |        1   5.0%
  12-13 |##############                          |        1   5.0%
  13-14 |                                        |        0   0.0%
  14-15 |                                        |        0   0.0%
  15-16 |##############                          |        1   5.0%
  16-17 |##############                          |        1   5.0%  <- kill 16
  17-18 |                                        |        0   0.0%
  18-19 |                                        |        0   0.0%
  19-20 |##############                          |        1   5.0%
    20+ |###########################             |        2  10.0%

Tagged and killed, of the scored mail
                                          tagged           killed
  tag 4.5, kill 16 (configured)         6  30.0%         4  20.0%
  tag 4.5, kill 12 (what if)            4  20.0%         6  30.0%
";
        assert_eq!(text, expected, "got:\n{text}");
    }

    #[test]
    fn an_empty_range_says_so_briefly() {
        let r = read("", None, None, &[]);
        assert_eq!(r.to_string(), "Verdicts from the start to now: 0\n");
    }
}
