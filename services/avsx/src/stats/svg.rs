//! The score distribution as a self-contained SVG bar chart: one bar per histogram
//! bucket, the configured tag and kill levels as vertical lines where they fall, the
//! shares they give underneath. Written by hand (a few dozen elements) rather than
//! with a plotting crate: no dependency, and the output is stable for tests.

use std::fmt::Write;

use super::report::{BUCKETS, Report, bucket_label, level};

const WIDTH: f64 = 760.0;
const HEIGHT: f64 = 400.0;
const LEFT: f64 = 60.0;
const RIGHT: f64 = 20.0;
const TOP: f64 = 50.0;
const BOTTOM: f64 = 80.0;
const PLOT_W: f64 = WIDTH - LEFT - RIGHT;
const PLOT_H: f64 = HEIGHT - TOP - BOTTOM;
const SLOT: f64 = PLOT_W / BUCKETS as f64;

const BAR_FILL: &str = "#4a7ab5";
const TAG_COLOUR: &str = "#d68400";
const KILL_COLOUR: &str = "#c0392b";

/// The x of score `v`: bucket 0 (`< 0`) spans -1..0 and the last (`20+`) 20..21.
fn x(v: f64) -> f64 {
    LEFT + (v.clamp(-1.0, 21.0) + 1.0) * SLOT
}

/// Text for XML content and attribute values.
fn esc(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            c if c.is_control() => out.push(' '),
            c => out.push(c),
        }
    }
    out
}

impl Report {
    /// A standalone SVG document (UTF-8, no external references) of the score
    /// histogram with the configured levels marked.
    pub fn svg(&self) -> String {
        // Writing to a String cannot fail; `let _ =` keeps the code flat.
        let mut s = String::new();
        let c = self.configured();
        let utc = if self.from.is_some() || self.to.is_some() {
            " UTC"
        } else {
            ""
        };
        let range = format!(
            "{} to {}{utc}",
            self.from.map_or("the start".to_owned(), |t| t
                .format("%Y-%m-%d %H:%M")
                .to_string()),
            self.to
                .map_or("now".to_owned(), |t| t.format("%Y-%m-%d %H:%M").to_string()),
        );
        let title = format!("avsx spam scores, {range} ({} scored)", self.scored);
        let _ = writeln!(s, r#"<?xml version="1.0" encoding="UTF-8"?>"#);
        let _ = writeln!(
            s,
            r#"<svg xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" height="{HEIGHT}" viewBox="0 0 {WIDTH} {HEIGHT}" font-family="sans-serif" font-size="11">"#
        );
        let _ = writeln!(s, "<title>{}</title>", esc(&title));
        let _ = writeln!(
            s,
            r#"<rect width="{WIDTH}" height="{HEIGHT}" fill="white"/>"#
        );
        let _ = writeln!(
            s,
            r#"<text x="{}" y="24" text-anchor="middle" font-size="14">{}</text>"#,
            WIDTH / 2.0,
            esc(&title)
        );

        // Y axis: 0, half and the tallest bar, with light grid lines.
        let max = self.buckets.iter().copied().max().unwrap_or(0).max(1);
        let y = |n: f64| TOP + PLOT_H - n / max as f64 * PLOT_H;
        for tick in [0, max.div_ceil(2), max] {
            let ty = y(tick as f64);
            let _ = writeln!(
                s,
                r##"<line x1="{LEFT}" y1="{ty:.1}" x2="{:.1}" y2="{ty:.1}" stroke="#dddddd"/>"##,
                LEFT + PLOT_W
            );
            let _ = writeln!(
                s,
                r#"<text x="{:.1}" y="{:.1}" text-anchor="end">{tick}</text>"#,
                LEFT - 6.0,
                ty + 4.0
            );
        }

        // The bars, each with a tooltip.
        for (i, &n) in self.buckets.iter().enumerate() {
            let h = n as f64 / max as f64 * PLOT_H;
            let _ = writeln!(
                s,
                r#"<rect x="{:.1}" y="{:.1}" width="{:.1}" height="{h:.1}" fill="{BAR_FILL}"><title>{}: {n} ({:.1}%)</title></rect>"#,
                LEFT + i as f64 * SLOT + SLOT * 0.1,
                TOP + PLOT_H - h,
                SLOT * 0.8,
                esc(&bucket_label(i)),
                self.share_of_scored(n)
            );
        }

        // X axis: ticks at whole scores, labelled every 2; the outer buckets by name on a
        // second row (next to the 0 and 20 ticks they would collide).
        let base = TOP + PLOT_H;
        let _ = writeln!(
            s,
            r#"<line x1="{LEFT}" y1="{base}" x2="{:.1}" y2="{base}" stroke="black"/>"#,
            LEFT + PLOT_W
        );
        for v in 0..=20 {
            let tx = x(v as f64);
            let _ = writeln!(
                s,
                r#"<line x1="{tx:.1}" y1="{base}" x2="{tx:.1}" y2="{:.1}" stroke="black"/>"#,
                base + 4.0
            );
            if v % 2 == 0 {
                let _ = writeln!(
                    s,
                    r#"<text x="{tx:.1}" y="{:.1}" text-anchor="middle">{v}</text>"#,
                    base + 16.0
                );
            }
        }
        for (i, v) in [(0, -0.5), (BUCKETS - 1, 20.5)] {
            let _ = writeln!(
                s,
                r#"<text x="{:.1}" y="{:.1}" text-anchor="middle">{}</text>"#,
                x(v),
                base + 30.0,
                esc(&bucket_label(i))
            );
        }
        let _ = writeln!(
            s,
            r#"<text x="{:.1}" y="{:.1}" text-anchor="middle">score</text>"#,
            LEFT + PLOT_W / 2.0,
            base + 46.0
        );

        // The levels, labelled at the top of the plot (kill one line lower, so close
        // levels stay readable).
        for (v, name, colour, dash, dy) in [
            (c.tag, "tag", TAG_COLOUR, r#" stroke-dasharray="6 3""#, 12.0),
            (c.kill, "kill", KILL_COLOUR, "", 26.0),
        ] {
            let lx = x(v);
            let _ = writeln!(
                s,
                r#"<line x1="{lx:.1}" y1="{TOP}" x2="{lx:.1}" y2="{base}" stroke="{colour}" stroke-width="2"{dash}/>"#
            );
            let _ = writeln!(
                s,
                r#"<text x="{:.1}" y="{:.1}" fill="{colour}">{name} {}</text>"#,
                lx + 4.0,
                TOP + dy,
                esc(&level(v))
            );
        }

        let summary = if self.scored == 0 {
            "no scored verdicts in this range".to_owned()
        } else {
            format!(
                "tag {}: {:.1}% tagged, kill {}: {:.1}% killed, of {} scored ({} without a score)",
                level(c.tag),
                self.share_of_scored(c.tagged),
                level(c.kill),
                self.share_of_scored(c.killed),
                self.scored,
                self.unscored
            )
        };
        let _ = writeln!(
            s,
            r#"<text x="{:.1}" y="{:.1}" text-anchor="middle">{}</text>"#,
            WIDTH / 2.0,
            HEIGHT - 14.0,
            esc(&summary)
        );
        s.push_str("</svg>\n");
        s
    }
}

#[cfg(test)]
mod tests {
    use chrono::{TimeZone, Utc};

    use super::*;
    use crate::stats::Verdict;

    /// A minimal XML well-formedness check: one root, every tag closed in order,
    /// attribute values quoted, no raw `<` or stray `&` in text or attributes.
    fn check_well_formed(doc: &str) -> Result<(), String> {
        let mut rest = doc
            .strip_prefix("<?xml")
            .and_then(|r| r.split_once("?>"))
            .map(|(_, r)| r)
            .ok_or("no XML declaration")?;
        let mut stack: Vec<&str> = Vec::new();
        let mut roots = 0;
        let entity_ok = |text: &str| {
            text.match_indices('&').all(|(i, _)| {
                let t = &text[i..];
                ["&amp;", "&lt;", "&gt;", "&quot;", "&apos;"]
                    .iter()
                    .any(|e| t.starts_with(e))
            })
        };
        while let Some(open) = rest.find('<') {
            let text = &rest[..open];
            if !entity_ok(text) || text.contains('>') {
                return Err(format!("bad text {text:?}"));
            }
            if !text.trim().is_empty() && stack.is_empty() {
                return Err(format!("text outside the root: {text:?}"));
            }
            let close = rest[open..].find('>').ok_or("unclosed tag")? + open;
            let tag = &rest[open + 1..close];
            rest = &rest[close + 1..];
            if tag.contains('<') {
                return Err(format!("'<' inside a tag: {tag:?}"));
            }
            if let Some(name) = tag.strip_prefix('/') {
                match stack.pop() {
                    Some(top) if top == name.trim() => {}
                    other => return Err(format!("</{name}> closes {other:?}")),
                }
                continue;
            }
            let self_closing = tag.ends_with('/');
            let tag = tag.trim_end_matches('/');
            let (name, mut attrs) = tag.split_once(' ').unwrap_or((tag, ""));
            if name.is_empty() || !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '-') {
                return Err(format!("bad element name {name:?}"));
            }
            // name="value" pairs.
            loop {
                attrs = attrs.trim_start();
                if attrs.is_empty() {
                    break;
                }
                let (key, after) = attrs
                    .split_once("=\"")
                    .ok_or(format!("bad attrs {attrs:?}"))?;
                if key.is_empty() || key.contains([' ', '"']) {
                    return Err(format!("bad attribute name {key:?}"));
                }
                let (value, after) = after.split_once('"').ok_or("unterminated value")?;
                if !entity_ok(value) {
                    return Err(format!("bad attribute value {value:?}"));
                }
                attrs = after;
            }
            if stack.is_empty() {
                roots += 1;
            }
            if !self_closing {
                stack.push(name);
            }
        }
        if !rest.trim().is_empty() {
            return Err(format!("trailing text {rest:?}"));
        }
        match (roots, stack.is_empty()) {
            (1, true) => Ok(()),
            _ => Err(format!("{roots} roots, unclosed {stack:?}")),
        }
    }

    #[test]
    fn the_checker_catches_what_it_should() {
        let ok = r#"<?xml version="1.0"?><a x="1"><b/>t &amp; &lt;<c>d</c></a>"#;
        assert_eq!(check_well_formed(ok), Ok(()));
        for bad in [
            r#"<a></a>"#,
            r#"<?xml version="1.0"?><a><b></a></b>"#,
            r#"<?xml version="1.0"?><a>x < y</a>"#,
            r#"<?xml version="1.0"?><a>AT&T</a>"#,
            r#"<?xml version="1.0"?><a x=1></a>"#,
            r#"<?xml version="1.0"?><a></a><b></b>"#,
            r#"<?xml version="1.0"?><a>"#,
        ] {
            assert!(check_well_formed(bad).is_err(), "{bad} passed");
        }
    }

    fn report(scores: &[f64], tag: f64, kill: f64) -> Report {
        let mut r = Report::new(None, None, tag, kill, &[]).unwrap();
        for (i, s) in scores.iter().enumerate() {
            r.add(&Verdict {
                time: Utc.timestamp_opt(1_780_000_000 + i as i64, 0).unwrap(),
                score: Some(*s),
                action: "clean".to_owned(),
                size: 1,
            });
        }
        r
    }

    #[test]
    fn the_chart_is_well_formed_with_a_bar_per_bucket_and_both_levels() {
        let r = report(&[-3.0, 0.2, 0.3, 4.5, 5.0, 12.0, 16.0, 25.0], 4.5, 16.0);
        let svg = r.svg();
        check_well_formed(&svg).unwrap_or_else(|e| panic!("{e}\n{svg}"));
        assert_eq!(
            svg.matches("<rect ").count(),
            1 + BUCKETS,
            "background + bars"
        );
        // "<0" is escaped in the label and the tooltip.
        assert!(svg.contains(">&lt;0</text>") && svg.contains("<title>&lt;0: 1 (12.5%)</title>"));
        assert!(svg.contains(">tag 4.5</text>") && svg.contains(">kill 16</text>"));
        // The levels sit where their scores are: tag 4.5 in the middle of bucket 4-5.
        let tag_x = x(4.5);
        assert!((tag_x - (LEFT + 5.5 * SLOT)).abs() < 1e-9);
        assert!(svg.contains(&format!(r#"<line x1="{tag_x:.1}" y1="{TOP}""#)));
        // The tallest bar fills the plot: 0-1 has two.
        assert!(svg.contains(&format!(
            r#"height="{PLOT_H:.1}" fill="{BAR_FILL}"><title>0-1: 2"#
        )));
        // Tagged: 4.5, 5, 12; killed: 16, 25; of 8.
        assert!(
            svg.contains("37.5% tagged") && svg.contains("25.0% killed"),
            "{svg}"
        );
    }

    #[test]
    fn an_empty_chart_and_levels_off_the_scale_stay_valid() {
        let r = report(&[], -5.0, 40.0);
        let svg = r.svg();
        check_well_formed(&svg).unwrap_or_else(|e| panic!("{e}\n{svg}"));
        assert!(svg.contains("no scored verdicts"));
        // Clamped to the plot's edges.
        assert!(svg.contains(&format!(r#"<line x1="{:.1}" y1="{TOP}""#, LEFT)));
        assert!(svg.contains(&format!(r#"<line x1="{:.1}" y1="{TOP}""#, LEFT + PLOT_W)));
    }
}
