//! Entries in journalctl's `-o json` format, and the text fail2ban 1.0's
//! `FilterSystemd.formatJournalEntry` builds from the same entries (checked by running
//! that function on them, with python-systemd's field conversions).

use super::*;

fn text_of(json: &str) -> String {
    parse_journal_entry(json.as_bytes()).unwrap().unwrap().text
}

/// Recorded shape of an sshd entry (journalctl 252, `-o json`).
const SSHD: &str = r#"{"__CURSOR":"s=4d7c5f1e2a7b4c0f9d3e8a6b5c4d3e2f;i=1a2b;b=8f0e7d6c5b4a39281706f5e4d3c2b1a0;m=2d5b3c1a;t=61a84d1a3e241;x=9a8b7c6d5e4f3a2b","__REALTIME_TIMESTAMP":"1718000000123456","__MONOTONIC_TIMESTAMP":"760949786","_BOOT_ID":"8f0e7d6c5b4a39281706f5e4d3c2b1a0","_TRANSPORT":"syslog","PRIORITY":"5","SYSLOG_FACILITY":"10","SYSLOG_IDENTIFIER":"sshd","SYSLOG_PID":"2345","SYSLOG_TIMESTAMP":"Jun 10 06:13:20 ","MESSAGE":"Failed password for invalid user admin from 192.0.2.7 port 52144 ssh2","_PID":"2345","_UID":"0","_GID":"0","_COMM":"sshd","_EXE":"/usr/sbin/sshd","_CMDLINE":"sshd: admin [priv]","_CAP_EFFECTIVE":"1ffffffffff","_SYSTEMD_CGROUP":"/system.slice/ssh.service","_SYSTEMD_UNIT":"ssh.service","_SYSTEMD_SLICE":"system.slice","_SYSTEMD_INVOCATION_ID":"0b1c2d3e4f5a69788796a5b4c3d2e1f0","_MACHINE_ID":"1f2e3d4c5b6a79880796a5b4c3d2e1f0","_HOSTNAME":"gw1","_SOURCE_REALTIME_TIMESTAMP":"1718000000120001"}"#;

#[test]
fn an_sshd_entry_reads_like_syslog() {
    let (line, cursor) = parse(SSHD.as_bytes()).unwrap();
    let line = line.unwrap();
    assert_eq!(
        line.text,
        "gw1 sshd[2345]: Failed password for invalid user admin from 192.0.2.7 port 52144 ssh2"
    );
    // fail2ban prefers the source's own time stamp.
    assert_eq!(
        line.source_time
            .unwrap()
            .to_rfc3339_opts(chrono::SecondsFormat::Micros, true),
        "2024-06-10T06:13:20.120001Z"
    );
    assert_eq!(line.unit.as_deref(), Some("ssh.service"));
    assert!(cursor.unwrap().starts_with("s=4d7c5f1e"));
}

#[test]
fn the_receive_time_serves_when_the_source_gives_none() {
    let line = parse_journal_entry(
        br#"{"__REALTIME_TIMESTAMP":"1718000000123456","SYSLOG_IDENTIFIER":"sshd","MESSAGE":"m"}"#,
    )
    .unwrap()
    .unwrap();
    assert_eq!(
        line.source_time.unwrap().timestamp_micros(),
        1_718_000_000_123_456
    );
    // No unit: the identifier.
    assert_eq!(line.unit.as_deref(), Some("sshd"));
}

#[test]
fn a_message_that_is_not_utf8_comes_as_bytes() {
    // "caf\xe9 \xff": journalctl writes such a field as an array of byte values.
    let json = r#"{"_HOSTNAME":"gw1","SYSLOG_IDENTIFIER":"app","SYSLOG_PID":"007","MESSAGE":[99,97,102,233,32,255]}"#;
    assert_eq!(text_of(json), "gw1 app[007]: caf\u{fffd} \u{fffd}");
}

#[test]
fn a_repeated_message_is_joined_by_spaces() {
    let json = r#"{"_HOSTNAME":"gw1","SYSLOG_IDENTIFIER":"app","SYSLOG_PID":" 42 ","MESSAGE":["first",[115,101,255,99,111,110,100]]}"#;
    assert_eq!(text_of(json), "gw1 app[42]: first se\u{fffd}cond");
}

#[test]
fn kernel_lines_carry_the_monotonic_time() {
    let json = r#"{"_HOSTNAME":"gw1","SYSLOG_IDENTIFIER":"kernel","_TRANSPORT":"kernel","__MONOTONIC_TIMESTAMP":"9999999","_SOURCE_MONOTONIC_TIMESTAMP":"5500000","MESSAGE":"nft drop"}"#;
    assert_eq!(text_of(json), "gw1 kernel: [    5.500000] nft drop");
    let json =
        r#"{"SYSLOG_IDENTIFIER":"kernel","__MONOTONIC_TIMESTAMP":"123456789012","MESSAGE":"x"}"#;
    assert_eq!(text_of(json), "kernel: [123456.789012] x");
}

#[test]
fn absent_and_empty_parts_are_left_out() {
    assert_eq!(
        text_of(r#"{"_COMM":"dropbear","_PID":"77","MESSAGE":"x"}"#),
        "dropbear[77]: x"
    );
    assert_eq!(
        text_of(r#"{"_HOSTNAME":"gw1","MESSAGE":"only host"}"#),
        "gw1 only host"
    );
    assert_eq!(
        text_of(
            r#"{"_HOSTNAME":"","SYSLOG_IDENTIFIER":"","_COMM":"c","_PID":"","SYSLOG_PID":"","MESSAGE":"m"}"#
        ),
        "c: m"
    );
    assert_eq!(
        text_of(r#"{"_HOSTNAME":"gw1","SYSLOG_IDENTIFIER":"sshd","_PID":"1"}"#),
        "gw1 sshd[1]: "
    );
}

#[test]
fn pids_are_read_as_python_reads_integers() {
    assert_eq!(
        text_of(
            r#"{"_HOSTNAME":"gw1","SYSLOG_IDENTIFIER":"app","SYSLOG_PID":"0x1f","MESSAGE":"a\nb"}"#
        ),
        "gw1 app[31]: a\\nb"
    );
    assert_eq!(py_int("12"), Some(12));
    assert_eq!(py_int(" -3 "), Some(-3));
    assert_eq!(py_int("0b101"), Some(5));
    assert_eq!(py_int("0o_17"), Some(15));
    assert_eq!(py_int("1_000"), Some(1000));
    assert_eq!(py_int("000"), Some(0));
    assert_eq!(py_int("007"), None);
    assert_eq!(py_int("1__0"), None);
    assert_eq!(py_int("12a"), None);
    assert_eq!(py_int(""), None);
}

#[test]
fn a_null_message_is_skipped_and_bad_json_refused() {
    assert_eq!(
        parse_journal_entry(br#"{"SYSLOG_IDENTIFIER":"app","MESSAGE":null}"#).unwrap(),
        None
    );
    assert!(parse_journal_entry(b"{\"MESSAGE\":").is_err());
    assert!(parse_journal_entry(b"[1,2]").is_err());
}

#[test]
fn the_default_command_takes_the_journalmatch() {
    assert_eq!(
        journal_command("_SYSTEMD_UNIT=sshd.service + _COMM=sshd"),
        [
            "journalctl",
            "-f",
            "-o",
            "json",
            "-n",
            "0",
            "_SYSTEMD_UNIT=sshd.service",
            "+",
            "_COMM=sshd"
        ]
    );
}

#[test]
fn a_restart_continues_after_the_last_entry() {
    let args: Vec<String> = journal_command("_COMM=sshd")[1..].to_vec();
    assert_eq!(args_after(&args, None), args);
    assert_eq!(
        args_after(&args, Some("s=1;i=2")),
        [
            "-f",
            "-o",
            "json",
            "_COMM=sshd",
            "--lines=all",
            "--after-cursor=s=1;i=2"
        ]
    );
    let args: Vec<String> = [
        "-f",
        "-n10",
        "--lines=5",
        "--lines",
        "all",
        "-n",
        "_COMM=x",
        "--after-cursor",
        "old",
    ]
    .map(String::from)
    .to_vec();
    assert_eq!(
        args_after(&args, Some("c")),
        ["-f", "_COMM=x", "--lines=all", "--after-cursor=c"]
    );
}
