//! The verdict store and its report end to end, as `avsx stats` uses them: verdicts
//! appended by a [`Store`], read back from the file over a time range, and the SVG
//! chart checked by an XML parser that is not ours (`xmllint` from libxml2-utils).

use std::process::Command;

use avsx::stats::{Store, Verdict, parse_time_bound, parse_what_if, report};
use chrono::{DateTime, Duration, TimeZone, Utc};

fn now() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 6, 1, 12, 0, 0).unwrap()
}

/// Ten days of verdicts, one an hour: scores cycling through -1..=24, every fifth
/// unscored (a virus).
fn fill(store: &Store) -> Vec<Verdict> {
    let mut all = Vec::new();
    for h in 0..240i64 {
        let time = now() - Duration::hours(240 - h);
        let v = if h % 5 == 4 {
            Verdict {
                time,
                score: None,
                action: "virus".to_owned(),
                size: 5000,
            }
        } else {
            let score = (h % 26) as f64 - 1.0;
            let action = if score >= 16.0 {
                "killed"
            } else if score >= 4.5 {
                "tagged"
            } else {
                "clean"
            };
            Verdict {
                time,
                score: Some(score),
                action: action.to_owned(),
                size: 1000 + h as u64,
            }
        };
        store.append(&v).unwrap();
        all.push(v);
    }
    all
}

#[test]
fn what_the_store_keeps_the_report_reads_back_over_a_range() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("var/lib/avsx/verdicts.jsonl");
    let store = Store::open(&path).unwrap();
    let all = fill(&store);
    drop(store);

    // The last 7 days, as `avsx stats --from 7d --what-if 4.5:12` would ask.
    let from = parse_time_bound("7d", now()).unwrap();
    let what_if = [parse_what_if("4.5:12").unwrap()];
    let r = report(&path, Some(from), None, 4.5, 16.0, &what_if).unwrap();

    let kept: Vec<&Verdict> = all.iter().filter(|v| v.time >= from).collect();
    assert_eq!(r.total, kept.len() as u64);
    assert_eq!(r.total, 7 * 24);
    assert_eq!(r.outside, 240 - 7 * 24);
    assert_eq!(r.malformed, 0);
    let scores: Vec<f64> = kept.iter().filter_map(|v| v.score).collect();
    assert_eq!(r.scored, scores.len() as u64);
    let killed_at_12 = scores.iter().filter(|s| **s >= 12.0).count() as u64;
    let tagged_at_12 = scores.iter().filter(|s| (4.5..12.0).contains(*s)).count() as u64;
    assert_eq!(
        (r.levels[1].tagged, r.levels[1].killed),
        (tagged_at_12, killed_at_12)
    );
    // The configured levels agree with the actions the fixture recorded.
    assert_eq!(r.configured().killed, r.by_action["killed"]);
    assert_eq!(r.configured().tagged, r.by_action["tagged"]);

    let text = r.to_string();
    assert!(
        text.starts_with("Verdicts from 2026-05-25T12:00:00Z to now: 168\n"),
        "{text}"
    );
    assert!(!text.contains(['{', '"']), "no JSON in the report: {text}");
}

#[test]
fn the_store_holds_nothing_but_the_verdict() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("verdicts.jsonl");
    let store = Store::open(&path).unwrap();
    store
        .append(&Verdict {
            time: now(),
            score: Some(5.5),
            action: "tagged".to_owned(),
            size: 2048,
        })
        .unwrap();
    let text = std::fs::read_to_string(&path).unwrap();
    let object: serde_json::Map<String, serde_json::Value> =
        serde_json::from_str(text.trim_end()).unwrap();
    let keys: Vec<&str> = object.keys().map(String::as_str).collect();
    assert_eq!(keys, ["action", "score", "size", "time"]);
}

#[test]
fn the_chart_is_valid_xml_to_xmllint() {
    let xmllint = testbed::require::tool("xmllint", "libxml2-utils").unwrap();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("verdicts.jsonl");
    fill(&Store::open(&path).unwrap());
    let r = report(&path, None, None, 4.5, 16.0, &[]).unwrap();
    let svg_path = dir.path().join("scores.svg");
    std::fs::write(&svg_path, r.svg()).unwrap();
    let out = Command::new(xmllint)
        .arg("--noout")
        .arg(&svg_path)
        .output()
        .unwrap();
    assert!(
        out.status.success() && out.stderr.is_empty(),
        "xmllint: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}
