//! Verdict statistics: what the judged mail scored and what was done with it, kept so an
//! administrator can see the score distribution and ask "what if the kill level were
//! 12?" before changing it.
//!
//! * [`store`]: the append-only store, one JSON object per line (`verdicts.jsonl`):
//!   time, score, action, size. Never an address, a subject or any content.
//! * [`report`](mod@report): reads the store back over a time range and summarises it
//!   (counts by action, a score histogram, the shares tagged and killed at the
//!   configured levels and at what-if levels), as text.
//! * [`svg`]: the same distribution as a self-contained SVG bar chart.
//!
//! The `avsx stats` command is a thin layer over [`report()`], [`parse_time_bound`],
//! [`parse_what_if`] and [`Report::svg`].
//!
//! JSON lines rather than a database: appending is one `write(2)` with `O_APPEND`
//! (whole lines, even from two processes), the file survives a crash up to its last
//! line, rotates with `logrotate copytruncate`, and `jq` reads it.

pub mod report;
pub mod store;
pub mod svg;

use anyhow::{Context, bail};
use chrono::{DateTime, NaiveDate, Utc};
use serde::{Deserialize, Serialize};

pub use report::{Levels, Report, report};
pub use store::Store;

/// The actions a verdict records, as the daemon writes them.
pub const ACTIONS: [&str; 8] = [
    "clean",
    "tagged",
    "killed",
    "virus",
    "tempfail",
    "oversize_reject",
    "unscanned",
    "relay_failed",
];

/// What became of one message.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Verdict {
    /// When it was judged; RFC 3339 in the store.
    #[serde(with = "rfc3339")]
    pub time: DateTime<Utc>,
    /// spamd's score; none when spamd did not judge it (a virus, a scanner down, ...).
    #[serde(default)]
    pub score: Option<f64>,
    /// One of [`ACTIONS`]; others are counted as they come.
    pub action: String,
    /// The message size in bytes.
    pub size: u64,
}

/// RFC 3339 for the store's `time`, without chrono's serde feature: UTC, milliseconds.
mod rfc3339 {
    use chrono::{DateTime, SecondsFormat, Utc};
    use serde::{Deserialize, Deserializer, Serializer, de::Error};

    pub fn serialize<S: Serializer>(t: &DateTime<Utc>, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&t.to_rfc3339_opts(SecondsFormat::Millis, true))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<DateTime<Utc>, D::Error> {
        let s = <std::borrow::Cow<'de, str>>::deserialize(d)?;
        DateTime::parse_from_rfc3339(&s)
            .map(|t| t.with_timezone(&Utc))
            .map_err(|e| D::Error::custom(format!("time {s:?}: {e}")))
    }
}

/// A `--from`/`--to` bound: an RFC 3339 time (`2026-05-01T08:00:00+02:00`), a date
/// (`2026-05-01`, midnight UTC), `now`, or a duration before `now` (`7d`, `12h`,
/// `1w 2d`; humantime's syntax).
pub fn parse_time_bound(s: &str, now: DateTime<Utc>) -> anyhow::Result<DateTime<Utc>> {
    let s = s.trim();
    if s == "now" {
        return Ok(now);
    }
    if let Ok(t) = DateTime::parse_from_rfc3339(s) {
        return Ok(t.with_timezone(&Utc));
    }
    if let Ok(d) = NaiveDate::parse_from_str(s, "%Y-%m-%d") {
        return Ok(d.and_time(chrono::NaiveTime::MIN).and_utc());
    }
    if let Ok(ago) = humantime::parse_duration(s) {
        let ago = chrono::Duration::from_std(ago)
            .ok()
            .filter(|d| *d <= chrono::Duration::days(100 * 366))
            .with_context(|| format!("{s:?} reaches back more than a century"))?;
        return Ok(now - ago);
    }
    bail!(
        "expected an RFC 3339 time (2026-05-01T00:00:00Z), a date (2026-05-01), \"now\" \
         or a duration before now (7d, 12h), got {s:?}"
    )
}

/// A `--what-if TAG:KILL` pair, e.g. `5:12`.
pub fn parse_what_if(s: &str) -> anyhow::Result<(f64, f64)> {
    let (tag, kill) = s
        .split_once(':')
        .with_context(|| format!("expected TAG:KILL (e.g. 5:12), got {s:?}"))?;
    let level = |v: &str, what: &str| {
        v.trim()
            .parse::<f64>()
            .ok()
            .filter(|v| v.is_finite())
            .with_context(|| format!("{s:?}: the {what} level {v:?} is not a number"))
    };
    let (tag, kill) = (level(tag, "tag")?, level(kill, "kill")?);
    if tag >= kill {
        bail!("{s:?}: the tag level must be below the kill level");
    }
    Ok((tag, kill))
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn now() -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 6, 1, 12, 0, 0).unwrap()
    }

    #[test]
    fn time_bounds() {
        let now = now();
        assert_eq!(parse_time_bound("now", now).unwrap(), now);
        assert_eq!(
            parse_time_bound("2026-05-01T08:00:00+02:00", now).unwrap(),
            Utc.with_ymd_and_hms(2026, 5, 1, 6, 0, 0).unwrap()
        );
        assert_eq!(
            parse_time_bound("2026-05-01", now).unwrap(),
            Utc.with_ymd_and_hms(2026, 5, 1, 0, 0, 0).unwrap()
        );
        assert_eq!(
            parse_time_bound("7d", now).unwrap(),
            Utc.with_ymd_and_hms(2026, 5, 25, 12, 0, 0).unwrap()
        );
        assert_eq!(
            parse_time_bound("1d 12h", now).unwrap(),
            Utc.with_ymd_and_hms(2026, 5, 31, 0, 0, 0).unwrap()
        );
        for bad in ["", "yesterday", "2026-13-01", "-7d", "7", "100000y"] {
            assert!(parse_time_bound(bad, now).is_err(), "{bad:?} was taken");
        }
    }

    #[test]
    fn what_if_pairs() {
        assert_eq!(parse_what_if("5:12").unwrap(), (5.0, 12.0));
        assert_eq!(parse_what_if(" 4.5 : 16 ").unwrap(), (4.5, 16.0));
        for bad in ["5", "5:", "x:12", "12:5", "5:5", "nan:12", "5:inf"] {
            assert!(parse_what_if(bad).is_err(), "{bad:?} was taken");
        }
    }

    #[test]
    fn a_verdict_is_one_flat_json_object() {
        let v = Verdict {
            time: Utc.with_ymd_and_hms(2026, 6, 1, 12, 0, 0).unwrap(),
            score: Some(3.2),
            action: "clean".to_owned(),
            size: 1234,
        };
        let json = serde_json::to_string(&v).unwrap();
        assert_eq!(
            json,
            r#"{"time":"2026-06-01T12:00:00.000Z","score":3.2,"action":"clean","size":1234}"#
        );
        assert_eq!(serde_json::from_str::<Verdict>(&json).unwrap(), v);
        // No score: null, or left out.
        let none: Verdict = serde_json::from_str(
            r#"{"time":"2026-06-01T14:00:00+02:00","action":"virus","size":9}"#,
        )
        .unwrap();
        assert_eq!(none.score, None);
        assert_eq!(none.time, v.time);
    }
}
