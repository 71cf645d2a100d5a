//! fail2ban filters against fail2ban itself: Debian's `filter.d` files (all must load
//! or be refused with a reason), fail2ban's own sample logs with their expected
//! results, and `fail2ban-regex` on a generated access log.
//!
//! Needs the `fail2ban` Debian package (installed by `scripts/setup`).

use std::collections::HashMap;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::Command;

use chrono::{DateTime, TimeZone, Utc};
use gwx::bans::filter::{Filter, FilterError, Host, Matcher, Outcome};

const FILTER_DIR: &str = "/etc/fail2ban/filter.d";
const F2B_TESTS: &str = "/usr/lib/python3/dist-packages/fail2ban/tests";
/// The filters whose sample logs must agree completely.
const REQUIRED: [&str; 5] = ["sshd", "nginx-http-auth", "apache-auth", "postfix", "dovecot"];

/// fail2ban's test clock: 2005-08-14 10:00:00 UTC.
fn test_now() -> DateTime<Utc> {
    Utc.timestamp_opt(1_124_013_600, 0).unwrap()
}

fn require_fail2ban() {
    assert!(
        Path::new(FILTER_DIR).join("sshd.conf").is_file() && Path::new(F2B_TESTS).is_dir(),
        "the fail2ban package is missing ({FILTER_DIR}, {F2B_TESTS}); run scripts/setup"
    );
}

fn opts(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

fn data_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/bans")
}

#[test]
fn every_debian_filter_loads_or_is_refused_with_a_reason() {
    require_fail2ban();
    let mut names: Vec<PathBuf> = std::fs::read_dir(FILTER_DIR)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "conf"))
        .collect();
    names.sort();
    let mut table = String::new();
    let (mut loaded, mut refused, mut include_only) = (0, 0, 0);
    for path in &names {
        let name = path.file_stem().unwrap().to_string_lossy();
        match Filter::load(path, &[]) {
            Ok(f) => {
                loaded += 1;
                let _ = writeln!(
                    table,
                    "{name:<28} loads: {} failregex, {} backtracking, {} date templates",
                    f.failregex_count(),
                    f.backtracking_regex_count(),
                    f.date_template_count()
                );
            }
            // fail2ban's own sample test skips the include-only `*common.conf` files.
            Err(FilterError::Option { option, .. })
                if option == "failregex" && name.ends_with("common") =>
            {
                include_only += 1;
                let _ = writeln!(table, "{name:<28} include-only (no failregex)");
            }
            Err(e) => {
                refused += 1;
                let _ = writeln!(table, "{name:<28} REFUSED: {e}");
            }
        }
    }
    println!("{table}");
    println!(
        "{} filters: {loaded} load, {refused} refused, {include_only} include-only",
        names.len()
    );
    for (name, modes) in [
        ("sshd", &["normal", "ddos", "extra", "aggressive"][..]),
        ("postfix", &["more", "auth", "rbl", "errors", "ddos", "aggressive"][..]),
        ("dovecot", &["normal", "aggressive"][..]),
        ("nginx-http-auth", &["normal"][..]),
        ("apache-auth", &["normal"][..]),
    ] {
        for mode in modes {
            let path = Path::new(FILTER_DIR).join(format!("{name}.conf"));
            if let Err(e) = Filter::load(&path, &opts(&[("mode", mode)])) {
                panic!("{name}[mode={mode}] must load: {e}");
            }
        }
    }
    Filter::load(&data_dir().join("filter.d/wordpress.conf"), &[]).unwrap();
}

/// One annotated sample line's verdict.
#[derive(Default)]
struct Agreement {
    lines: usize,
    agree: usize,
    mismatches: Vec<String>,
}

/// Evaluates fail2ban's tiny sample-log conditions: `name == 'sshd'`,
/// `opts.get('mode') != 'aggressive'`.
fn condition(expr: &str, name: &str, opts: &serde_json::Map<String, serde_json::Value>) -> bool {
    let re = regex::Regex::new(r"^\s*(name|opts\.get\('([\w.-]+)'\))\s*(==|!=)\s*'([^']*)'\s*$")
        .unwrap();
    let Some(c) = re.captures(expr) else {
        panic!("unsupported sample condition {expr:?}");
    };
    let left = match c.get(2) {
        Some(key) => opts.get(key.as_str()).and_then(|v| v.as_str()).map(str::to_string),
        None => Some(name.to_string()),
    };
    let equal = left.as_deref() == Some(&c[4]);
    if &c[3] == "==" { equal } else { !equal }
}

fn host_matches(ours: &Host, expected: &str) -> bool {
    match ours {
        Host::Ip(ip) => Host::parse(expected).ip() == Some(*ip),
        Host::Name(n) => n == expected,
    }
}

/// Runs one sample log (and the files it adds) like fail2ban's `samplestestcase.py`.
fn run_samples(name: &str, filter_path: &Path) -> Agreement {
    let mut result = Agreement::default();
    let mut files = vec![name.to_string()];
    let mut filters: HashMap<String, (Filter, Matcher)> = HashMap::new();
    let mut i = 0;
    let json_re = regex::Regex::new(r"^#+ ?(failJSON|(?:file|filter)Options|addFILE):(.+)$").unwrap();
    while i < files.len() {
        let path = Path::new(F2B_TESTS).join("files/logs").join(&files[i]);
        i += 1;
        let bytes = std::fs::read(&path).unwrap();
        let text = String::from_utf8_lossy(&bytes);
        let mut common: serde_json::Map<String, serde_json::Value> = Default::default();
        // (key, options) of the active option sets.
        let mut active: Vec<(String, serde_json::Map<String, serde_json::Value>)> = Vec::new();
        let mut ignore_block = false;
        let mut lines = text.lines();
        while let Some(line) = lines.next() {
            let line = line.trim_end_matches(['\r', '\n']);
            let mut faildata = serde_json::Map::new();
            let target: &str;
            if let Some(c) = json_re.captures(line) {
                let value: serde_json::Value = serde_json::from_str(c[2].trim()).unwrap();
                match &c[1] {
                    "fileOptions" => {
                        common = value.as_object().unwrap().clone();
                        continue;
                    }
                    "filterOptions" => {
                        active.clear();
                        ignore_block = false;
                        let sets = match value {
                            serde_json::Value::Array(v) => v,
                            v => vec![v],
                        };
                        for set in sets {
                            let mut o = common.clone();
                            o.extend(set.as_object().unwrap().clone());
                            if let Some(cond) = o.get("test.condition").and_then(|v| v.as_str()) {
                                ignore_block = !condition(cond, name, &o);
                            }
                            if !ignore_block {
                                let key = serde_json::to_string(&o).unwrap();
                                active.push((key, o));
                            }
                        }
                        continue;
                    }
                    "addFILE" => {
                        files.push(value.as_str().unwrap().to_string());
                        continue;
                    }
                    _ => {
                        faildata = value.as_object().unwrap().clone();
                        let Some(next) = lines.next() else { break };
                        target = next.trim_end_matches(['\r', '\n']);
                    }
                }
            } else if ignore_block || line.starts_with('#') || line.trim().is_empty() {
                continue;
            } else {
                target = line;
            }
            if ignore_block {
                continue;
            }
            if active.is_empty() {
                active.push((String::new(), common.clone()));
            }
            for (key, o) in &active {
                if let Some(c) = faildata.get("constraint").and_then(|v| v.as_str())
                    && !condition(c, name, o)
                {
                    continue;
                }
                let (_, matcher) = filters.entry(key.clone()).or_insert_with(|| {
                    let options: Vec<(String, String)> = o
                        .iter()
                        .filter(|(k, _)| !k.starts_with("test."))
                        .map(|(k, v)| (k.clone(), v.as_str().unwrap_or_default().to_string()))
                        .collect();
                    let f = Filter::load(filter_path, &options)
                        .unwrap_or_else(|e| panic!("{name} {options:?}: {e}"));
                    let m = f.matcher();
                    (f, m)
                });
                let journal = o.get("logtype").and_then(|v| v.as_str()) == Some("journal");
                let outcome = if journal {
                    let prefix = o.get("test.prefix-line").and_then(|v| v.as_str()).unwrap_or("");
                    matcher.match_message(&format!("{prefix}{target}"), test_now())
                } else {
                    matcher.match_line(target, test_now())
                };
                let expect_match = faildata.get("match").and_then(|v| v.as_bool()) == Some(true);
                let expect_host = faildata.get("host").and_then(|v| v.as_str());
                let ok = match (&outcome, expect_match) {
                    (Outcome::Failure(f), true) => expect_host.is_none_or(|h| host_matches(&f.host, h)),
                    (Outcome::Failure(_), false) => false,
                    (_, true) => false,
                    (_, false) => true,
                };
                result.lines += 1;
                if ok {
                    result.agree += 1;
                } else {
                    result.mismatches.push(format!(
                        "{}[{key}] expected match={expect_match} host={expect_host:?}, got {outcome:?}\n    {target}",
                        files[i - 1]
                    ));
                }
            }
        }
    }
    result
}

/// The filter file for a sample log name, if there is one.
fn filter_for(name: &str) -> Option<PathBuf> {
    [
        Path::new(FILTER_DIR).join(format!("{name}.conf")),
        Path::new(F2B_TESTS).join(format!("config/filter.d/{name}.conf")),
    ]
    .into_iter()
    .find(|p| p.is_file())
}

#[test]
fn sample_logs_agree_with_fail2ban() {
    require_fail2ban();
    let mut names: Vec<String> = std::fs::read_dir(Path::new(F2B_TESTS).join("files/logs"))
        .unwrap()
        .map(|e| e.unwrap())
        .filter(|e| e.path().is_file())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    let mut report = String::new();
    let mut failures = Vec::new();
    let (mut total, mut agree) = (0, 0);
    for name in &names {
        let Some(path) = filter_for(name) else { continue };
        if let Err(e) = Filter::load(&path, &[]) {
            let _ = writeln!(report, "{name:<28} not loaded: {e}");
            continue;
        }
        let r = std::panic::catch_unwind(|| run_samples(name, &path));
        let Ok(r) = r else {
            let _ = writeln!(report, "{name:<28} sample run failed (see panic above)");
            if REQUIRED.contains(&name.as_str()) {
                failures.push(format!("{name}: sample run panicked"));
            }
            continue;
        };
        total += r.lines;
        agree += r.agree;
        let pct = 100.0 * r.agree as f64 / r.lines.max(1) as f64;
        let _ = writeln!(report, "{name:<28} {:>4}/{:<4} lines agree ({pct:.1}%)", r.agree, r.lines);
        for m in r.mismatches.iter().take(6) {
            let _ = writeln!(report, "    {m}");
        }
        if REQUIRED.contains(&name.as_str()) && r.agree != r.lines {
            failures.push(format!("{name}: {}/{} lines agree", r.agree, r.lines));
        }
    }
    println!("{report}");
    println!("all sample logs: {agree}/{total} lines agree");
    assert!(failures.is_empty(), "required filters disagree: {failures:?}");
}

/// `fail2ban-regex -r -o '<ip>|<msg>'`: the host of each line it reports, by the
/// `line-N` marker each generated line carries.
fn fail2ban_regex_hosts(log: &Path, filter: &Path) -> HashMap<usize, String> {
    let out = Command::new("fail2ban-regex")
        .args(["-r", "-o", "<ip>|<msg>"])
        .arg(log)
        .arg(filter)
        .output()
        .expect("fail2ban-regex runs");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let marker = regex::Regex::new(r"line-(\d+)").unwrap();
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| {
            let (ip, msg) = l.split_once('|')?;
            let n = marker.captures(msg)?[1].parse().ok()?;
            Some((n, ip.to_string()))
        })
        .collect()
}

/// An nginx access log: normal traffic, wp-login POSTs, and lines whose URL, referer
/// or user agent carry other addresses and fake request lines.
fn access_log() -> String {
    let mut log = String::new();
    let clients = ["203.0.113.7", "198.51.100.23", "2001:db8::5", "192.0.2.200", "crawler.example.net"];
    for n in 0..300usize {
        let ip = clients[n % clients.len()];
        let sec = n % 60;
        let line = match n % 6 {
            0 | 3 => format!(
                r#"{ip} - - [21/Nov/2026:10:{:02}:{sec:02} +0000] "POST /wp-login.php HTTP/1.1" 200 1234 "-" "Mozilla/5.0 line-{n}""#,
                n / 60
            ),
            1 => format!(
                r#"{ip} - - [21/Nov/2026:10:{:02}:{sec:02} +0000] "GET /index.php HTTP/1.1" 200 99 "-" "curl line-{n}""#,
                n / 60
            ),
            2 => format!(
                r#"{ip} - - [21/Nov/2026:10:{:02}:{sec:02} +0000] "GET /?q=10.0.0.1 - - [x] \"POST /wp-login.php HTTP/1.1\" HTTP/1.1" 404 9 "-" "line-{n}""#,
                n / 60
            ),
            4 => format!(
                r#"{ip} - - [21/Nov/2026:10:{:02}:{sec:02} +0000] "GET / HTTP/1.1" 200 9 "10.9.8.7 \"POST /wp-login.php" "line-{n} from 10.0.0.1""#,
                n / 60
            ),
            _ => format!(
                r#"{ip} - alice [21/Nov/2026:10:{:02}:{sec:02} +0000] "POST /xmlrpc.php HTTP/1.1" 200 9 "-" "line-{n}""#,
                n / 60
            ),
        };
        log.push_str(&line);
        log.push('\n');
    }
    log
}

#[test]
fn wordpress_filter_agrees_with_fail2ban_regex() {
    require_fail2ban();
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("access.log");
    std::fs::write(&log, access_log()).unwrap();
    let filter_path = data_dir().join("filter.d/wordpress.conf");
    let theirs = fail2ban_regex_hosts(&log, &filter_path);
    let filter = Filter::load(&filter_path, &[]).unwrap();
    let mut m = filter.matcher();
    let now = Utc.with_ymd_and_hms(2026, 11, 22, 0, 0, 0).unwrap();
    let marker = regex::Regex::new(r"line-(\d+)").unwrap();
    let mut ours = HashMap::new();
    for line in std::fs::read_to_string(&log).unwrap().lines() {
        let n: usize = marker.captures(line).unwrap()[1].parse().unwrap();
        match m.match_line(line, now) {
            Outcome::Failure(f) => {
                assert_eq!(f.time.to_rfc3339()[..13], *"2026-11-21T10");
                ours.insert(n, f.host.to_string());
            }
            Outcome::NoMatch => {}
            other => panic!("line-{n}: unexpected {other:?}"),
        }
    }
    assert!(theirs.len() >= 100, "fail2ban-regex matched only {} lines", theirs.len());
    let mut diff: Vec<String> = Vec::new();
    for n in 0..300 {
        let (a, b) = (ours.get(&n), theirs.get(&n));
        let same = match (a, b) {
            (Some(a), Some(b)) => host_matches(&Host::parse(a), b),
            (None, None) => true,
            _ => false,
        };
        if !same {
            diff.push(format!("line-{n}: ours {a:?}, fail2ban {b:?}"));
        }
    }
    assert!(diff.is_empty(), "{diff:#?}");
}

/// The log-injection guard with real filters: an address inside a user name is never
/// banned.
#[test]
fn injected_addresses_are_not_banned() {
    require_fail2ban();
    let now = test_now();
    let sshd = Filter::load(&Path::new(FILTER_DIR).join("sshd.conf"), &[]).unwrap();
    let mut m = sshd.matcher();
    let line = "Aug 14 09:59:00 host sshd[4242]: Failed password for invalid user from 10.0.0.1 from 192.0.2.9 port 4711 ssh2";
    let got = m.match_line(line, now);
    println!("sshd: {got:?}");
    match got {
        Outcome::Failure(f) => assert_eq!(f.host.to_string(), "192.0.2.9"),
        Outcome::Ambiguous { hosts } => assert!(!hosts.is_empty()),
        other => panic!("{other:?}"),
    }
    // An unanchored custom regex would take the injected address; the guard notices
    // the line names two hosts.
    let naive = Filter::from_regex(r"Failed password for .* from <HOST>").unwrap();
    let mut m = naive.matcher();
    let line = "Aug 14 09:59:00 host sshd[4242]: Failed password for invalid user x from 192.0.2.9 port 22 ssh2 from 10.0.0.1";
    match m.match_line(line, now) {
        Outcome::Ambiguous { hosts } => {
            assert!(hosts.contains(&"10.0.0.1".to_string()), "{hosts:?}");
            assert!(hosts.contains(&"192.0.2.9".to_string()), "{hosts:?}");
        }
        other => panic!("{other:?}"),
    }
}

/// Throughput, for the record (not asserted): `cargo test --release -p gwx --test
/// bans_filter -- --ignored --nocapture throughput`.
#[test]
#[ignore]
fn throughput() {
    let filter = Filter::load(&data_dir().join("filter.d/wordpress.conf"), &[]).unwrap();
    let lines: Vec<String> = access_log().lines().map(str::to_string).collect();
    let now = Utc.with_ymd_and_hms(2026, 11, 22, 0, 0, 0).unwrap();
    for (label, sample) in [
        ("GET (no match)", vec![lines[1].clone()]),
        ("POST wp-login (match)", vec![lines[0].clone()]),
        ("mixed generated log", lines.clone()),
    ] {
        let mut m = filter.matcher();
        let n = 2_000_000usize;
        let start = std::time::Instant::now();
        let mut failures = 0usize;
        for i in 0..n {
            if let Outcome::Failure(_) = m.match_line(&sample[i % sample.len()], now) {
                failures += 1;
            }
        }
        let secs = start.elapsed().as_secs_f64();
        println!("{label:<24} {:>10.0} lines/s ({failures} failures)", n as f64 / secs);
    }
}

#[test]
#[ignore]
fn load_timing() {
    for name in ["sshd", "postfix", "apache-auth", "nginx-http-auth"] {
        let t = std::time::Instant::now();
        let f = Filter::load(&Path::new(FILTER_DIR).join(format!("{name}.conf")), &[]).unwrap();
        let mut m = f.matcher();
        m.match_line("Nov 21 10:00:00 host sshd[1]: x", test_now());
        println!("{name}: {:?}", t.elapsed());
    }
    let t = std::time::Instant::now();
    let f = Filter::from_regex("^<HOST> x").unwrap();
    let mut m = f.matcher();
    m.match_line("Nov 21 10:00:00 host sshd[1]: x", test_now());
    println!("from_regex: {:?}", t.elapsed());
}
