//! `tlsaudit` as an operator runs it: the config generator, and `scan` with a bad
//! targets file, with targets that refuse, and with a target that accepts and never
//! answers (it must be reported, not wait forever).

use std::io::Write;
use std::net::TcpListener;
use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

/// `tlsaudit ARGS...`, killed (and the test failed) if it runs longer than `limit`.
fn tlsaudit(args: &[&str], limit: Duration) -> Output {
    let mut child = Command::new(env!("CARGO_BIN_EXE_tlsaudit"))
        .args(args)
        .env("NO_COLOR", "1")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let started = Instant::now();
    while child.try_wait().unwrap().is_none() {
        if started.elapsed() > limit {
            child.kill().unwrap();
            let out = child.wait_with_output().unwrap();
            panic!(
                "tlsaudit {args:?} still running after {limit:?}; stderr: {}",
                text(&out.stderr)
            );
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    child.wait_with_output().unwrap()
}

fn targets_file(dir: &Path, lines: &str) -> String {
    let path = dir.join("targets.txt");
    std::fs::File::create(&path)
        .unwrap()
        .write_all(lines.as_bytes())
        .unwrap();
    path.to_str().unwrap().to_owned()
}

/// A loopback port nothing listens on.
fn closed_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

const LIMIT: Duration = Duration::from_secs(60);

#[test]
fn config_nginx_modern() {
    let out = tlsaudit(&["config", "nginx", "--profile", "modern"], LIMIT);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let conf = text(&out.stdout);
    assert!(conf.contains("ssl_protocols TLSv1.3;"), "{conf}");
    assert!(!conf.contains("TLSv1.2"), "modern is TLS 1.3 only: {conf}");
}

#[test]
fn scan_names_every_bad_line_and_runs_nothing() {
    let dir = tempfile::tempdir().unwrap();
    // The first target would take its whole timeout if anything ran.
    let file = targets_file(
        dir.path(),
        "# targets\n10.255.255.1:443\nnot a target\nhttps://example.org/\nexample.org:443 starttls=imap\n",
    );
    let started = Instant::now();
    let out = tlsaudit(&["scan", &file, "--timeout", "30s"], LIMIT);
    assert_eq!(out.status.code(), Some(64), "{}", text(&out.stderr));
    let err = text(&out.stderr);
    assert!(
        err.contains(&format!("{file}:3: \"not a target\"")),
        "{err}"
    );
    assert!(err.contains(&format!("{file}:5: ")), "{err}");
    assert!(!err.contains(&format!("{file}:2:")), "{err}");
    assert!(out.stdout.is_empty(), "{}", text(&out.stdout));
    assert!(started.elapsed() < Duration::from_secs(10));
}

#[test]
fn scan_of_refusing_targets_reports_each_in_order_and_exits_1() {
    let dir = tempfile::tempdir().unwrap();
    let (a, b) = (closed_port(), closed_port());
    let file = targets_file(
        dir.path(),
        &format!("127.0.0.1:{a}\nhttp://127.0.0.1:{b}/  # the web server\n"),
    );
    let out = tlsaudit(
        &["scan", &file, "--format", "json", "--timeout", "2s"],
        LIMIT,
    );
    // Nothing could be audited: exit 1, with the report all the same.
    assert_eq!(out.status.code(), Some(1), "{}", text(&out.stderr));
    assert!(
        text(&out.stderr).contains("no target could be audited"),
        "{}",
        text(&out.stderr)
    );
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(json["tool"], "tlsaudit");
    let audits = json["audits"].as_array().unwrap();
    assert_eq!(audits.len(), 2, "{json:#}");
    assert_eq!(audits[0]["kind"], "error");
    assert_eq!(audits[0]["target"], format!("127.0.0.1:{a}"));
    assert_eq!(audits[1]["kind"], "error");
    assert_eq!(audits[1]["target"], format!("http://127.0.0.1:{b}/"));
    assert!(!audits[0]["error"].as_str().unwrap().is_empty());
}

#[test]
fn scan_reports_a_silent_target_as_an_error_in_time() {
    // Accepts every connection and never says a word.
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    std::thread::spawn(move || {
        let mut held = Vec::new();
        for s in listener.incoming() {
            held.push(s);
        }
    });
    let dir = tempfile::tempdir().unwrap();
    let file = targets_file(
        dir.path(),
        &format!("127.0.0.1:{port}\nhttp://127.0.0.1:{port}/\n"),
    );
    let report = dir.path().join("report.json");
    let started = Instant::now();
    let out = tlsaudit(
        &[
            "scan",
            &file,
            "--timeout",
            "1s",
            "--jobs",
            "2",
            "--format",
            "json",
            "--output",
            report.to_str().unwrap(),
        ],
        LIMIT,
    );
    // Bounded by the default deadline, 6 × --timeout, plus start-up.
    assert!(
        started.elapsed() < Duration::from_secs(15),
        "{:?}",
        started.elapsed()
    );
    assert_eq!(out.status.code(), Some(1), "{}", text(&out.stderr));
    assert!(out.stdout.is_empty(), "the report went to --output");
    let json: serde_json::Value = serde_json::from_slice(&std::fs::read(&report).unwrap()).unwrap();
    let audits = json["audits"].as_array().unwrap();
    assert_eq!(audits.len(), 2, "{json:#}");
    assert_eq!(audits[0]["kind"], "error", "{json:#}");
    assert_eq!(audits[0]["target"], format!("127.0.0.1:{port}"));
    assert_eq!(audits[1]["kind"], "error", "{json:#}");
    assert_eq!(audits[1]["target"], format!("http://127.0.0.1:{port}/"));
}

#[test]
fn bad_arguments_are_usage_errors() {
    let out = tlsaudit(&["tls", "example.org"], LIMIT);
    assert_eq!(out.status.code(), Some(64), "{}", text(&out.stderr));
    assert!(text(&out.stderr).contains("expected host:port"));
    let out = tlsaudit(&["headers", "example.org"], LIMIT);
    assert_eq!(out.status.code(), Some(64), "{}", text(&out.stderr));
    let out = tlsaudit(&["tls", "127.0.0.1:443", "--fail-below", "Z"], LIMIT);
    // clap would exit 2, which here means "below --fail-below".
    assert_eq!(out.status.code(), Some(64), "{}", text(&out.stderr));
    let out = tlsaudit(&["scan"], LIMIT);
    assert_eq!(out.status.code(), Some(64), "{}", text(&out.stderr));
    let out = tlsaudit(&["--help"], LIMIT);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
}

#[test]
fn a_single_audit_that_cannot_run_exits_1() {
    let port = closed_port();
    let out = tlsaudit(
        &["tls", &format!("127.0.0.1:{port}"), "--timeout", "2s"],
        LIMIT,
    );
    assert_eq!(out.status.code(), Some(1), "{}", text(&out.stderr));
    assert!(text(&out.stderr).starts_with("tlsaudit: "));
}
