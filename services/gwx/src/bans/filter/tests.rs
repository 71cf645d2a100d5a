//! Tests of the whole filter: loading, matching, the injection guard.

use super::*;

#[test]
#[ignore]
fn bench_parts() {
    use chrono::TimeZone;
    let now = Utc.with_ymd_and_hms(2026, 11, 22, 0, 0, 0).unwrap();
    let lines = [
        r#"203.0.113.7 - - [21/Nov/2026:10:00:01 +0000] "GET /index.php HTTP/1.1" 200 99 "-" "curl line-1""#,
        r#"2001:db8::5 - - [21/Nov/2026:10:00:01 +0000] "GET /index.php HTTP/1.1" 200 99 "-" "curl line-1""#,
        r#"192.0.2.200 - - [21/Nov/2026:10:00:01 +0000] "GET /index.php HTTP/1.1" 200 99 "-" "curl line-1""#,
        r#"crawler.example.net - - [21/Nov/2026:10:00:01 +0000] "GET /index.php HTTP/1.1" 200 99 "-" "curl line-1""#,
    ];
    let det = detector::Detector::shared(None).unwrap();
    let n = 1_000_000;
    for (label, set) in [("fixed", &lines[..1]), ("varying", &lines[..])] {
        let mut cache = detector::DateCache::new();
        let t = std::time::Instant::now();
        for i in 0..n {
            std::hint::black_box(det.find(set[i % set.len()], &mut cache));
        }
        println!("detector {label}: {:?}/line", t.elapsed() / n as u32);
    }
    let c = det.combined_for_bench();
    for (label, set) in [("fixed", &lines[..1]), ("varying", &lines[..])] {
        let t = std::time::Instant::now();
        for i in 0..n {
            std::hint::black_box(c.find(set[i % set.len()]));
        }
        println!("combined find {label}: {:?}/line", t.elapsed() / n as u32);
    }
    let f = Filter::from_regex(r#"^<HOST> .* "POST /wp-login.php"#).unwrap();
    let rx = &f.inner.failregex[0];
    let mut slots = engine::Slots::new();
    let buf = format!("{}\n", lines[0]);
    let t = std::time::Instant::now();
    for _ in 0..n {
        std::hint::black_box(rx.re.is_match(&buf, &mut slots));
    }
    println!("failregex is_match: {:?}/line", t.elapsed() / n as u32);
    let post = format!("{}\n", r#"203.0.113.7 - - [] "POST /wp-login.php HTTP/1.1" 200 1234 "-" "Mozilla/5.0 line-0""#);
    let t = std::time::Instant::now();
    for _ in 0..n {
        std::hint::black_box(rx.re.captures(&post, &mut slots));
    }
    println!("failregex captures (match): {:?}/line", t.elapsed() / n as u32);
    let t = std::time::Instant::now();
    for _ in 0..n {
        std::hint::black_box(rx.re.is_match(&post, &mut slots));
    }
    println!("failregex is_match (match): {:?}/line", t.elapsed() / n as u32);
    let pline = r#"203.0.113.7 - - [21/Nov/2026:10:00:00 +0000] "POST /wp-login.php HTTP/1.1" 200 1234 "-" "Mozilla/5.0 line-0""#;
    let mut cache = detector::DateCache::new();
    let t = std::time::Instant::now();
    for _ in 0..n {
        let h = det.find(pline, &mut cache).unwrap();
        std::hint::black_box(det.time(pline, &h, &mut cache, now));
    }
    println!("date find+time: {:?}/line", t.elapsed() / n as u32);
    for (label, re) in [
        ("unicode dns", r#"\A(?:\[?(?:(?:::f{4,6}:)?(?P<ip4>(?:[0-9]{1,3}\.){3}[0-9]{1,3})|(?P<ip6>(?:[0-9a-fA-F]{1,4}::?|::){1,7}(?:[0-9a-fA-F]{1,4}|:)))\]?|(?P<dns>[\w\-.^_]*\w)) .* "POST /wp-login\.php"#),
        ("ascii dns", r#"\A(?:\[?(?:(?:::f{4,6}:)?(?P<ip4>(?:[0-9]{1,3}\.){3}[0-9]{1,3})|(?P<ip6>(?:[0-9a-fA-F]{1,4}::?|::){1,7}(?:[0-9a-fA-F]{1,4}|:)))\]?|(?P<dns>[0-9A-Za-z_\-.^]*[0-9A-Za-z_])) .* "POST /wp-login\.php"#),
        ("ascii dns, (?s-u) dot", r#"\A(?:\[?(?:(?:::f{4,6}:)?(?P<ip4>(?:[0-9]{1,3}\.){3}[0-9]{1,3})|(?P<ip6>(?:[0-9a-fA-F]{1,4}::?|::){1,7}(?:[0-9a-fA-F]{1,4}|:)))\]?|(?P<dns>[0-9A-Za-z_\-.^]*[0-9A-Za-z_])) [^\n]* "POST /wp-login\.php"#),
    ] {
        let re = regex::Regex::new(re).unwrap();
        let mut locs = re.capture_locations();
        let t = std::time::Instant::now();
        for _ in 0..n {
            std::hint::black_box(re.captures_read(&mut locs, &post));
        }
        println!("raw captures {label}: {:?}/line", t.elapsed() / n as u32);
    }
    let mut m = f.matcher();
    let t = std::time::Instant::now();
    for _ in 0..n {
        std::hint::black_box(m.match_line(pline, now));
    }
    println!("match_line (match): {:?}/line", t.elapsed() / n as u32);
    let mut m = f.matcher();
    for (label, set) in [("fixed", &lines[..1]), ("varying", &lines[..])] {
        let t = std::time::Instant::now();
        for i in 0..n {
            std::hint::black_box(m.match_line(set[i % set.len()], now));
        }
        println!("match_line {label}: {:?}/line", t.elapsed() / n as u32);
    }
}
