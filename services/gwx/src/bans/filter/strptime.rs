//! strptime-like date fields: the regex each `%` field of a `datepattern` stands for,
//! and how the captured fields become a UTC time.
//!
//! Field set (fail2ban's, which extends Python's `strptime`): `%Y %y %m %d %e %b %B %a
//! %A %H %I %k %l %M %S %f %p %j %z %Z %%`, the exact two-digit forms `%Exd %Exm %ExH
//! %ExM %ExS %Exk %Exl`, `%ExY` (a four-digit year 19xx/20xx, safer than any four
//! digits), `%Exy`, and zone forms `%ExZ` and `%Exz`. Month and day names are English
//! and case-insensitive.
//!
//! Time zones: a zone in the line wins (`Z`, `UTC`, `GMT`, `+hh`, `+hhmm`, `+hh:mm`, or
//! a common abbreviation such as `CET`, `EDT`); a line without one is read as UTC
//! (fail2ban uses the host's local time; our appliances run in UTC, and a fixed rule
//! keeps results independent of the host). An abbreviation we do not know counts as
//! UTC.
//!
//! Missing parts come from `now`: no year means this year, or last year if the date
//! would lie more than a day in the future (a December line read in January); no date
//! at all means today, or yesterday if the time is still to come. Fractions of a second
//! are ignored, like fail2ban does.

use chrono::{DateTime, Datelike, Duration, NaiveDate, TimeZone, Utc};

/// The regex (Python syntax) for the field after `%`, and its length in the pattern.
pub(crate) fn field_regex(rest: &str) -> Option<(&'static str, usize)> {
    const LONG: [(&str, &str); 11] = [
        ("ExY", r"(?P<Y>(?:19|20)[0-9][0-9])"),
        ("Exy", r"(?P<y>[0-9][0-9])"),
        ("Exm", r"(?P<m>0[1-9]|1[0-2])"),
        ("Exd", r"(?P<d>[12][0-9]|0[1-9]|3[01])"),
        ("ExH", r"(?P<H>[01][0-9]|2[0-3])"),
        ("ExM", r"(?P<M>[0-5][0-9])"),
        ("ExS", r"(?P<S>[0-5][0-9]|6[01])"),
        ("Exk", r" ?(?P<H>[01]?[0-9]|2[0-3])"),
        ("Exl", r" ?(?P<I>1[0-2]|[0-9])"),
        ("ExZ", r"(?P<Z>[A-Z](?:[A-Z]{2,4})?)"),
        (
            "Exz",
            r"(?P<z>(?:[A-Z](?:[A-Z]{2,4})?)?[+-][01][0-9](?::?[0-9]{2})?|[A-Z](?:[A-Z]{2,4})?)",
        ),
    ];
    for (key, re) in LONG {
        if rest.starts_with(key) {
            return Some((re, key.len()));
        }
    }
    let re = match rest.chars().next()? {
        'Y' => r"(?P<Y>[0-9]{4})",
        'y' => r"(?P<y>[0-9][0-9])",
        'm' => r"(?P<m>0?[1-9]|1[0-2])",
        'd' | 'e' => r"(?P<d>[12][0-9]|[0 ]?[1-9]|3[01])",
        'H' => r"(?P<H>[01]?[0-9]|2[0-3])",
        'k' => r" ?(?P<H>[0-2]?[0-9])",
        'I' => r"(?P<I>1[0-2]|0[1-9]|[1-9])",
        'l' => r" ?(?P<I>1?[0-9])",
        'M' => r"(?P<M>[0-5]?[0-9])",
        'S' => r"(?P<S>[0-5]?[0-9]|6[01])",
        'f' => r"(?P<f>[0-9]{1,6})",
        'p' => r"(?P<p>am|pm)",
        'b' => r"(?P<b>jan|feb|mar|apr|may|jun|jul|aug|sep|oct|nov|dec)",
        'B' => {
            r"(?P<B>january|february|march|april|may|june|july|august|september|october|november|december)"
        }
        'a' => r"(?P<a>mon|tue|wed|thu|fri|sat|sun)",
        'A' => r"(?P<A>monday|tuesday|wednesday|thursday|friday|saturday|sunday)",
        'j' => {
            r"(?P<j>36[0-6]|3[0-5][0-9]|[12][0-9][0-9]|0[1-9][0-9]|00[1-9]|[1-9][0-9]|0[1-9]|[1-9])"
        }
        'z' => r"(?P<z>Z|UTC|GMT|[+-][01][0-9](?::?[0-9]{2})?)",
        'Z' => r"(?P<Z>Z|[A-Z]{3,5})",
        '%' => "%",
        _ => return None,
    };
    Some((re, 1))
}

/// Does the field make the whole pattern case-insensitive (names of months, days,
/// AM/PM)?
pub(crate) fn field_is_alpha(rest: &str) -> bool {
    matches!(rest.chars().next(), Some('a' | 'A' | 'b' | 'B' | 'p'))
}

/// Named groups a date template may capture and we read.
pub(crate) const FIELD_NAMES: [&str; 15] = [
    "Y", "y", "m", "d", "b", "B", "H", "I", "M", "S", "p", "j", "z", "Z", "f",
];

const MONTHS: [&str; 12] = [
    "january",
    "february",
    "march",
    "april",
    "may",
    "june",
    "july",
    "august",
    "september",
    "october",
    "november",
    "december",
];

/// Common zone abbreviations and their offsets in minutes east of UTC.
const ZONES: [(&str, i32); 36] = [
    ("UTC", 0),
    ("GMT", 0),
    ("UT", 0),
    ("Z", 0),
    ("WET", 0),
    ("WEST", 60),
    ("BST", 60),
    ("CET", 60),
    ("MET", 60),
    ("CEST", 120),
    ("MEST", 120),
    ("EET", 120),
    ("EEST", 180),
    ("MSK", 180),
    ("IST", 330),
    ("ICT", 420),
    ("CST", -360),
    ("CDT", -300),
    ("EST", -300),
    ("EDT", -240),
    ("MST", -420),
    ("MDT", -360),
    ("PST", -480),
    ("PDT", -420),
    ("AKST", -540),
    ("AKDT", -480),
    ("HST", -600),
    ("AST", -240),
    ("ADT", -180),
    ("NST", -210),
    ("NDT", -150),
    ("JST", 540),
    ("KST", 540),
    ("HKT", 480),
    ("SGT", 480),
    ("AEST", 600),
];

/// Offset in minutes east of UTC of a `%z`/`%Z` value (`Z`, `UTC`, `+0100`, `CET`,
/// `CET+01:00`).
pub(crate) fn zone_offset(z: &str) -> i32 {
    let split = z.find(['+', '-']).unwrap_or(z.len());
    let (abbr, offset) = z.split_at(split);
    let base = ZONES
        .iter()
        .find(|(n, _)| n.eq_ignore_ascii_case(abbr))
        .map(|(_, o)| *o)
        .unwrap_or(0);
    if offset.is_empty() {
        return base;
    }
    let sign = if offset.starts_with('-') { -1 } else { 1 };
    let digits: String = offset[1..].chars().filter(char::is_ascii_digit).collect();
    let hours: i32 = digits.get(..2).and_then(|h| h.parse().ok()).unwrap_or(0);
    let minutes: i32 = digits.get(2..4).and_then(|m| m.parse().ok()).unwrap_or(0);
    base + sign * (hours * 60 + minutes)
}

/// Builds the time from captured fields (`get` returns a field's text, if captured).
pub(crate) fn fields_to_time<'a>(
    get: impl Fn(&str) -> Option<&'a str>,
    now: DateTime<Utc>,
) -> Option<DateTime<Utc>> {
    let num = |k: &str| -> Option<Option<u32>> {
        match get(k) {
            None => Some(None),
            Some(v) => v.trim().parse::<u32>().ok().map(Some),
        }
    };
    let mut year: Option<i32> = None;
    if let Some(y) = num("y")? {
        year = Some(if y <= 2000 { y as i32 + 2000 } else { y as i32 });
    }
    if let Some(y) = num("Y")? {
        year = Some(y as i32);
    }
    let mut month = num("m")?;
    let month_name = |k: &str, full: bool| {
        get(k).and_then(|v| {
            let v = v.to_lowercase();
            MONTHS
                .iter()
                .position(|m| if full { *m == v } else { m[..3] == v })
                .map(|i| i as u32 + 1)
        })
    };
    if let Some(m) = month_name("B", true) {
        month = Some(m);
    }
    if let Some(m) = month_name("b", false) {
        month = Some(m);
    }
    let mut day = num("d")?;
    let mut hour = num("H")?.unwrap_or(0);
    if let Some(h) = num("I")? {
        let pm = get("p").is_some_and(|p| p.eq_ignore_ascii_case("pm"));
        hour = match (h, pm) {
            (12, false) => 0,
            (h, false) => h,
            (12, true) => 12,
            (h, true) => h + 12,
        };
    }
    let minute = num("M")?.unwrap_or(0);
    let second = num("S")?.unwrap_or(0);
    let offset = get("z").or_else(|| get("Z")).map(zone_offset);

    let assume_year = year.is_none();
    let year = year.unwrap_or(now.year());
    if (month.is_none() || day.is_none())
        && let Some(j) = num("j")?
    {
        let date = NaiveDate::from_yo_opt(year, j)?;
        month = Some(date.month());
        day = Some(date.day());
    }
    let assume_today = month.is_none() && day.is_none();
    let (month, day) = if assume_today {
        (now.month(), now.day())
    } else {
        (month.unwrap_or(1), day.unwrap_or(1))
    };
    let naive = NaiveDate::from_ymd_opt(year, month, day)?.and_hms_opt(hour, minute, second)?;
    let mut t = Utc.from_utc_datetime(&naive) - Duration::minutes(i64::from(offset.unwrap_or(0)));
    if assume_today && t > now {
        t -= Duration::days(1);
    }
    if assume_year && t > now + Duration::days(1) {
        let naive =
            NaiveDate::from_ymd_opt(year - 1, month, day)?.and_hms_opt(hour, minute, second)?;
        t = Utc.from_utc_datetime(&naive) - Duration::minutes(i64::from(offset.unwrap_or(0)));
    }
    Some(t)
}

/// Seconds since the epoch (`1234567890`, `1234567890.123`; the long form also in
/// milliseconds or microseconds).
pub(crate) fn epoch_to_time(text: &str, long: bool) -> Option<DateTime<Utc>> {
    let mut v: f64 = text.parse().ok()?;
    if long && text.len() >= 13 {
        v /= if text.len() >= 16 && !text.contains('.') {
            1_000_000.0
        } else {
            1000.0
        };
    }
    DateTime::from_timestamp(v.trunc() as i64, 0)
}

/// A TAI64N label `@4000000037c219bf2ef02e94`: the seconds are the hex digits after
/// the leading `@4` up to the nanoseconds.
pub(crate) fn tai64n_to_time(text: &str) -> Option<DateTime<Utc>> {
    let secs = i64::from_str_radix(text.get(2..17)?, 16).ok()?;
    DateTime::from_timestamp(secs, 0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn t(fields: &[(&str, &str)], now: &str) -> Option<String> {
        let map: HashMap<&str, &str> = fields.iter().copied().collect();
        let now = DateTime::parse_from_rfc3339(now)
            .unwrap()
            .with_timezone(&Utc);
        fields_to_time(|k| map.get(k).copied(), now).map(|t| t.to_rfc3339())
    }

    #[test]
    fn syslog_year_inference() {
        let f = [
            ("b", "Nov"),
            ("d", "21"),
            ("H", "10"),
            ("M", "00"),
            ("S", "05"),
        ];
        assert_eq!(
            t(&f, "2026-11-22T00:00:00Z").unwrap(),
            "2026-11-21T10:00:05+00:00"
        );
        // A December line read in January is from last year.
        let f = [
            ("b", "dec"),
            ("d", "31"),
            ("H", "23"),
            ("M", "59"),
            ("S", "59"),
        ];
        assert_eq!(
            t(&f, "2027-01-01T00:10:00Z").unwrap(),
            "2026-12-31T23:59:59+00:00"
        );
    }

    #[test]
    fn zones_and_twelve_hour() {
        let f = [
            ("d", "21"),
            ("b", "Nov"),
            ("Y", "2026"),
            ("H", "10"),
            ("M", "00"),
            ("S", "00"),
            ("z", "+0200"),
        ];
        assert_eq!(
            t(&f, "2026-12-01T00:00:00Z").unwrap(),
            "2026-11-21T08:00:00+00:00"
        );
        assert_eq!(zone_offset("-05:30"), -330);
        assert_eq!(zone_offset("CEST"), 120);
        assert_eq!(zone_offset("CET+01"), 120);
        let f = [
            ("b", "Jan"),
            ("d", "2"),
            ("Y", "2026"),
            ("I", "12"),
            ("M", "5"),
            ("S", "0"),
            ("p", "AM"),
        ];
        assert_eq!(
            t(&f, "2026-12-01T00:00:00Z").unwrap(),
            "2026-01-02T00:05:00+00:00"
        );
    }

    #[test]
    fn time_only_and_invalid() {
        let f = [("H", "23"), ("M", "00"), ("S", "00")];
        assert_eq!(
            t(&f, "2026-11-21T10:00:00Z").unwrap(),
            "2026-11-20T23:00:00+00:00"
        );
        assert_eq!(
            t(
                &[("m", "2"), ("d", "30"), ("Y", "2026")],
                "2026-11-21T10:00:00Z"
            ),
            None
        );
    }

    #[test]
    fn epoch_and_tai64n() {
        assert_eq!(
            epoch_to_time("1700000000.5", false).unwrap().timestamp(),
            1_700_000_000
        );
        assert_eq!(
            epoch_to_time("1700000000123", true).unwrap().timestamp(),
            1_700_000_000
        );
        assert_eq!(
            tai64n_to_time("@4000000037c219bf2ef02e94")
                .unwrap()
                .timestamp(),
            0x37c219bf
        );
    }

    #[test]
    fn field_table() {
        assert_eq!(field_regex("ExY...").unwrap().1, 3);
        assert_eq!(field_regex("d/").unwrap().1, 1);
        assert!(field_regex("q").is_none());
    }
}
