//! fail2ban filters against fail2ban itself: Debian's `filter.d` files (all must load
//! or be refused with a reason), fail2ban's own sample logs with their expected
//! results, and `fail2ban-regex` on a generated access log.
//!
//! Needs the `fail2ban` Debian package (installed by `scripts/setup`).

use std::collections::HashMap;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use chrono::{DateTime, TimeZone, Utc};
use gwx::bans::filter::{Filter, FilterError, Host, Matcher, Outcome};

/// Counts this thread's allocations, to check that non-matching lines allocate nothing.
struct CountingAlloc;

thread_local! {
    static ALLOCATIONS: std::cell::Cell<usize> = const { std::cell::Cell::new(0) };
}

// SAFETY: delegates to the system allocator; the counter is a thread-local `Cell`
// (const-initialised, so touching it never allocates).
unsafe impl std::alloc::GlobalAlloc for CountingAlloc {
    unsafe fn alloc(&self, layout: std::alloc::Layout) -> *mut u8 {
        let _ = ALLOCATIONS.try_with(|c| c.set(c.get() + 1));
        // SAFETY: same contract as ours.
        unsafe { std::alloc::System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: std::alloc::Layout) {
        // SAFETY: same contract as ours.
        unsafe { std::alloc::System.dealloc(ptr, layout) }
    }
}

#[global_allocator]
static GLOBAL: CountingAlloc = CountingAlloc;

fn allocations() -> usize {
    ALLOCATIONS.with(|c| c.get())
}

const FILTER_DIR: &str = "/etc/fail2ban/filter.d";
const F2B_TESTS: &str = "/usr/lib/python3/dist-packages/fail2ban/tests";
/// The filters whose sample logs must agree completely.
const REQUIRED: [&str; 5] = [
    "sshd",
    "nginx-http-auth",
    "apache-auth",
    "postfix",
    "dovecot",
];

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

/// The shipped filters (`config/gwx/filter.d`): the wordpress one is ours.
fn data_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../config/gwx")
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
        (
            "postfix",
            &["more", "auth", "rbl", "errors", "ddos", "aggressive"][..],
        ),
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

/// Verdicts over a sample log. Every line runs through two matchers: one with the
/// log-injection guard (as gwx runs) and one without (fail2ban's behaviour).
#[derive(Default)]
struct Agreement {
    lines: usize,
    /// Lines where the unguarded matcher agrees with fail2ban's expectation.
    agree: usize,
    /// Lines where the guarded matcher agrees.
    agree_guarded: usize,
    /// Guarded disagreements that are the guard at work: `Ambiguous` naming the
    /// expected host (fail2ban's own injection samples).
    withheld: Vec<String>,
    /// Any other disagreement.
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
        Some(key) => opts
            .get(key.as_str())
            .and_then(|v| v.as_str())
            .map(str::to_string),
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
    let mut filters: HashMap<String, (Matcher, Matcher)> = HashMap::new();
    let mut i = 0;
    let json_re =
        regex::Regex::new(r"^#+ ?(failJSON|(?:file|filter)Options|addFILE):(.+)$").unwrap();
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
                let (guarded, plain) = filters.entry(key.clone()).or_insert_with(|| {
                    let options: Vec<(String, String)> = o
                        .iter()
                        .filter(|(k, _)| !k.starts_with("test."))
                        .map(|(k, v)| (k.clone(), v.as_str().unwrap_or_default().to_string()))
                        .collect();
                    let f = Filter::load(filter_path, &options)
                        .unwrap_or_else(|e| panic!("{name} {options:?}: {e}"));
                    let mut plain = f.matcher();
                    plain.set_injection_guard(false);
                    (f.matcher(), plain)
                });
                let journal = o.get("logtype").and_then(|v| v.as_str()) == Some("journal");
                let run = |m: &mut Matcher| {
                    if journal {
                        let prefix = o
                            .get("test.prefix-line")
                            .and_then(|v| v.as_str())
                            .unwrap_or("");
                        m.match_message(&format!("{prefix}{target}"), test_now())
                    } else {
                        m.match_line(target, test_now())
                    }
                };
                let (with_guard, without) = (run(guarded), run(plain));
                let expect_match = faildata.get("match").and_then(|v| v.as_bool()) == Some(true);
                let expect_host = faildata.get("host").and_then(|v| v.as_str());
                let ok = |outcome: &Outcome| match (outcome, expect_match) {
                    (Outcome::Failure(f), true) => {
                        expect_host.is_none_or(|h| host_matches(&f.host, h))
                    }
                    (Outcome::Failure(_), false) => false,
                    (_, true) => false,
                    (_, false) => true,
                };
                let describe = |outcome: &Outcome| {
                    format!(
                        "{}[{key}] expected match={expect_match} host={expect_host:?}, got {outcome:?}\n    {target}",
                        files[i - 1]
                    )
                };
                result.lines += 1;
                if ok(&without) {
                    result.agree += 1;
                } else {
                    result.mismatches.push(describe(&without));
                }
                if ok(&with_guard) {
                    result.agree_guarded += 1;
                } else {
                    match (&with_guard, expect_host) {
                        (Outcome::Ambiguous { hosts }, Some(h))
                            if hosts.iter().any(|x| host_matches(&Host::parse(x), h)) =>
                        {
                            result.withheld.push(describe(&with_guard));
                        }
                        _ => result
                            .mismatches
                            .push(format!("(guarded) {}", describe(&with_guard))),
                    }
                }
            }
        }
    }
    result
}

/// The Debian filter file for a sample log name, if there is one.
fn filter_for(name: &str) -> Option<PathBuf> {
    Some(Path::new(FILTER_DIR).join(format!("{name}.conf"))).filter(|p| p.is_file())
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
    let (mut total, mut agree, mut agree_guarded) = (0, 0, 0);
    for name in &names {
        let Some(path) = filter_for(name) else {
            continue;
        };
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
        agree_guarded += r.agree_guarded;
        let pct = |n: usize| 100.0 * n as f64 / r.lines.max(1) as f64;
        let _ = writeln!(
            report,
            "{name:<28} {:>4}/{:<4} lines agree ({:.1}%); with the injection guard {:>4} ({:.1}%), {} withheld as ambiguous",
            r.agree,
            r.lines,
            pct(r.agree),
            r.agree_guarded,
            pct(r.agree_guarded),
            r.withheld.len()
        );
        for m in r.mismatches.iter().take(6) {
            let _ = writeln!(report, "    MISMATCH {m}");
        }
        for m in &r.withheld {
            let _ = writeln!(report, "    withheld {m}");
        }
        if REQUIRED.contains(&name.as_str()) && (r.agree != r.lines || !r.mismatches.is_empty()) {
            failures.push(format!(
                "{name}: {}/{} lines agree, {:?}",
                r.agree, r.lines, r.mismatches
            ));
        }
    }
    println!("{report}");
    println!(
        "all sample logs: {agree}/{total} lines agree; with the injection guard {agree_guarded}/{total}"
    );
    assert!(
        failures.is_empty(),
        "required filters disagree: {failures:?}"
    );
}

/// Runs `fail2ban-regex ARGS LOG FILTER`.
fn fail2ban_regex(args: &[&str], log: &Path, filter: &Path) -> Output {
    Command::new("fail2ban-regex")
        .args(args)
        .arg(log)
        .arg(filter)
        .output()
        .expect("fail2ban-regex runs")
}

/// `fail2ban-regex -r -o '<ip>|<msg>'`: the host of each line it reports, by the
/// `line-N` marker each generated line carries.
fn fail2ban_regex_hosts(log: &Path, filter: &Path) -> HashMap<usize, String> {
    let out = fail2ban_regex(&["-r", "-o", "<ip>|<msg>"], log, filter);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
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
    let clients = [
        "203.0.113.7",
        "198.51.100.23",
        "2001:db8::5",
        "192.0.2.200",
        "crawler.example.net",
    ];
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
            // A referer that reads like the request line: both count it, for the
            // client at the start of the line.
            2 => format!(
                r#"{ip} - - [21/Nov/2026:10:{:02}:{sec:02} +0000] "GET /?q=10.0.0.1 HTTP/1.1" 404 9 "POST /wp-login.php" "line-{n}""#,
                n / 60
            ),
            // nginx escapes quotes in what clients send.
            4 => format!(
                r#"{ip} - - [21/Nov/2026:10:{:02}:{sec:02} +0000] "GET / HTTP/1.1" 200 9 "10.9.8.7 \x22POST /wp-login.php" "line-{n} from 10.0.0.1""#,
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
    assert!(
        theirs.len() >= 100,
        "fail2ban-regex matched only {} lines",
        theirs.len()
    );
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

#[test]
fn non_matching_lines_allocate_nothing() {
    require_fail2ban();
    let now = Utc.with_ymd_and_hms(2026, 11, 22, 0, 0, 0).unwrap();
    let wordpress = Filter::load(&data_dir().join("filter.d/wordpress.conf"), &[]).unwrap();
    let sshd = Filter::load(&Path::new(FILTER_DIR).join("sshd.conf"), &[]).unwrap();
    let web: Vec<String> = access_log()
        .lines()
        .filter(|l| !l.contains("POST"))
        .map(str::to_string)
        .collect();
    let auth = [
        "Nov 21 10:00:00 gw sshd[1]: Server listening on 0.0.0.0 port 22.",
        "Nov 21 10:00:01 gw sshd[2]: pam_unix(sshd:session): session opened for user alice",
        "Nov 21 10:00:02 gw CRON[3]: (root) CMD (run-parts /etc/cron.hourly)",
        "Nov 21 10:00:03 gw kernel: [123.456] eth0: link up",
    ];
    for (filter, lines) in [
        (&wordpress, web),
        (&sshd, auth.iter().map(|s| s.to_string()).collect()),
    ] {
        let mut m = filter.matcher();
        // Warm up: the first lines size the reusable buffers.
        for line in &lines {
            m.match_line(line, now);
        }
        let before = allocations();
        for _ in 0..10 {
            for line in &lines {
                assert_eq!(m.match_line(line, now), Outcome::NoMatch, "{line}");
            }
        }
        assert_eq!(allocations() - before, 0, "{}", filter.path().display());
    }
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
    // sshd's regex is strict enough to take the address sshd wrote itself.
    match m.match_line(line, now) {
        Outcome::Failure(f) => {
            assert_eq!(f.host.to_string(), "192.0.2.9");
            assert_eq!(f.user.as_deref(), Some("from 10.0.0.1"));
        }
        other => panic!("{other:?}"),
    }
    // An unanchored custom regex would take the injected address; the guard notices
    // the line names two hosts.
    let naive = Filter::from_regex(r"Failed password for .* from <HOST>").unwrap();
    let mut m = naive.matcher();
    let line = "Aug 14 09:59:00 host sshd[4242]: Failed password for invalid user from 10.0.0.1 from 192.0.2.9 port 4711 ssh2";
    match m.match_line(line, now) {
        Outcome::Ambiguous { hosts } => {
            assert!(hosts.contains(&"10.0.0.1".to_string()), "{hosts:?}");
            assert!(hosts.contains(&"192.0.2.9".to_string()), "{hosts:?}");
        }
        other => panic!("{other:?}"),
    }
}

/// Throughput against fail2ban-regex on the same generated access log, for the record
/// (tests assert behaviour, not timings):
/// `cargo test --release -p gwx --test bans_filter -- --ignored --nocapture throughput`.
#[test]
#[ignore]
fn throughput() {
    require_fail2ban();
    let clients = [
        "203.0.113.7",
        "198.51.100.23",
        "2001:db8::5",
        "192.0.2.200",
        "10.1.2.3",
    ];
    let lines: Vec<String> = (0..20_000usize)
        .map(|n| {
            let (ip, s) = (clients[n % clients.len()], n % 60);
            if n % 6 == 0 {
                format!(r#"{ip} - - [21/Nov/2026:10:00:{s:02} +0000] "POST /wp-login.php HTTP/1.1" 200 1234 "-" "Mozilla/5.0""#)
            } else {
                format!(r#"{ip} - - [21/Nov/2026:10:00:{s:02} +0000] "GET /index.php?p={n} HTTP/1.1" 200 99 "-" "curl/8""#)
            }
        })
        .collect();
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("access.log");
    std::fs::write(&log, lines.join("\n") + "\n").unwrap();
    let filter_path = data_dir().join("filter.d/wordpress.conf");

    let out = fail2ban_regex(&[], &log, &filter_path);
    let text = String::from_utf8_lossy(&out.stdout);
    let secs: f64 = regex::Regex::new(r"\[processed in ([0-9.]+) sec\]")
        .unwrap()
        .captures(&text)
        .and_then(|c| c[1].parse().ok())
        .expect("fail2ban-regex reports its time");
    let theirs = lines.len() as f64 / secs;

    let filter = Filter::load(&filter_path, &[]).unwrap();
    let now = Utc.with_ymd_and_hms(2026, 11, 22, 0, 0, 0).unwrap();
    let measure = |sample: &[String]| {
        let mut m = filter.matcher();
        let n = 2_000_000usize;
        let start = std::time::Instant::now();
        let mut failures = 0usize;
        for i in 0..n {
            if let Outcome::Failure(_) = m.match_line(&sample[i % sample.len()], now) {
                failures += 1;
            }
        }
        (
            n as f64 / start.elapsed().as_secs_f64(),
            failures * sample.len() / n,
        )
    };
    println!("fail2ban-regex              {theirs:>10.0} lines/s (the whole log)");
    for (label, sample) in [
        ("gwx, the whole log", &lines[..]),
        ("gwx, one GET line", &lines[1..2]),
        ("gwx, one POST line", &lines[..1]),
    ] {
        let (ours, _) = measure(sample);
        println!("{label:<27} {ours:>10.0} lines/s ({:.0}x)", ours / theirs);
    }

    // sshd (22 regexes, two of them needing backtracking) on fail2ban's sshd sample.
    let sample = Path::new(F2B_TESTS).join("files/logs/sshd");
    let sshd = Path::new(FILTER_DIR).join("sshd.conf");
    let out = fail2ban_regex(&[], &sample, &sshd);
    let text = String::from_utf8_lossy(&out.stdout);
    let re = regex::Regex::new(r"Lines: (\d+) lines[\s\S]*\[processed in ([0-9.]+) sec\]").unwrap();
    let c = re.captures(&text).expect("fail2ban-regex summary");
    let theirs = c[1].parse::<f64>().unwrap() / c[2].parse::<f64>().unwrap();
    let lines: Vec<String> = std::fs::read_to_string(&sample)
        .unwrap()
        .lines()
        .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
        .map(str::to_string)
        .collect();
    let filter = Filter::load(&sshd, &[]).unwrap();
    let mut m = filter.matcher();
    let n = 500_000usize;
    let start = std::time::Instant::now();
    for i in 0..n {
        std::hint::black_box(m.match_line(&lines[i % lines.len()], test_now()));
    }
    let ours = n as f64 / start.elapsed().as_secs_f64();
    println!("fail2ban-regex, sshd sample {theirs:>10.0} lines/s");
    println!(
        "gwx, sshd sample            {ours:>10.0} lines/s ({:.0}x)",
        ours / theirs
    );
}
