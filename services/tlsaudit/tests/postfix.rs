//! tlsaudit against a real Postfix: the STARTTLS audit of its smtpd, and the clients
//! that failed TLS found in its own log.

use std::os::unix::fs::PermissionsExt;
use std::process::Command;
use std::time::{Duration, Instant};

use testbed::servers::{Certs, Host, Postfix, PostfixOptions, Server as _, SmtpSink};

fn tlsaudit(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_tlsaudit"))
        .args(args)
        .output()
        .unwrap()
}

/// The protocols the JSON report says were accepted.
fn accepted(report: &serde_json::Value) -> Vec<String> {
    report["audits"][0]["protocols"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|p| p["accepted"] == true)
        .map(|p| p["protocol"].as_str().unwrap().to_owned())
        .collect()
}

#[test]
fn starttls_audit_and_failed_clients_from_the_log() {
    let dir = tempfile::tempdir().unwrap();
    // smtpd reads the certificate as the postfix user: the files must be readable.
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    let certs = Certs::generate(dir.path(), "127.0.0.1".parse().unwrap()).unwrap();
    for f in [&certs.cert, &certs.key] {
        std::fs::set_permissions(f, std::fs::Permissions::from_mode(0o644)).unwrap();
    }
    let sink = SmtpSink::start(Host::Loopback).unwrap();
    let options = PostfixOptions {
        main_cf: vec![
            format!("smtpd_tls_cert_file = {}", certs.cert.display()),
            format!("smtpd_tls_key_file = {}", certs.key.display()),
            "smtpd_tls_security_level = may".into(),
            "smtpd_tls_protocols = >=TLSv1.2".into(),
            "smtpd_tls_loglevel = 1".into(),
        ],
        ..PostfixOptions::new(sink.addr())
    };
    let postfix = Postfix::start(Host::Loopback, options).unwrap();
    let target = postfix.addr().to_string();

    // The STARTTLS audit: TLS 1.2 and 1.3 only, a trusted certificate for the address.
    let out = tlsaudit(&[
        "tls",
        &target,
        "--starttls",
        "smtp",
        "--ca-file",
        certs.ca.to_str().unwrap(),
        "--format",
        "json",
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(accepted(&report), ["TLSv1.2", "TLSv1.3"], "{report:#}");
    let audit = &report["audits"][0];
    assert_eq!(audit["starttls"], "smtp");
    assert_eq!(audit["certificate"]["trusted"], true, "{audit:#}");
    assert_eq!(audit["certificate"]["hostname_matches"], true, "{audit:#}");

    // A client that insists on TLS 1.1 fails; Postfix logs it; tlsaudit finds it. The
    // audit above failed many handshakes on purpose: only the log after it counts.
    let log = postfix.log_path().to_owned();
    let audited = std::fs::read(&log).unwrap().len();
    let openssl = testbed::require::tool("openssl", "openssl").unwrap();
    let client = Command::new(openssl)
        .args([
            "s_client",
            "-starttls",
            "smtp",
            "-tls1_1",
            "-cipher",
            "ALL:@SECLEVEL=0",
            "-connect",
            &target,
        ])
        .stdin(std::process::Stdio::null())
        .output()
        .unwrap();
    assert!(!client.status.success(), "TLS 1.1 was accepted");
    let after = || String::from_utf8_lossy(&std::fs::read(&log).unwrap()[audited..]).into_owned();
    let deadline = Instant::now() + Duration::from_secs(10);
    // smtpd logs the TLS library's reason, then the disconnect: wait for the whole story.
    let told = |t: String| t.contains("SSL_accept error") && t.contains("disconnect from");
    while !told(after()) {
        assert!(
            Instant::now() < deadline,
            "Postfix logged no TLS failure:\n{}",
            postfix.log_tail(30)
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    let tail = dir.path().join("mail.log");
    std::fs::write(&tail, after()).unwrap();
    let out = tlsaudit(&["postfix-log", tail.to_str().unwrap(), "--format", "json"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let clients = report["clients"].as_array().unwrap();
    assert_eq!(clients.len(), 1, "{report:#}");
    assert_eq!(clients[0]["ip"], "127.0.0.1");
    assert_eq!(clients[0]["failures"], 1);
    let reasons: Vec<&String> = clients[0]["reasons"].as_object().unwrap().keys().collect();
    assert!(
        reasons
            .iter()
            .any(|r| r.contains("protocol") || r.contains("version")),
        "{reasons:?} in\n{}",
        postfix.log_tail(30)
    );
}
