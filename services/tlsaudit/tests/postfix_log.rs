//! The Postfix log reader on fixture logs written here: classic syslog and RFC 3339
//! timestamps, OpenSSL 1.x and 3.x errors, IPv4 and IPv6, gzip, garbage.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::PathBuf;

use tlsaudit::postfix_log::{self, FailedClient, LogReport};

/// Classic syslog, OpenSSL 1.x, Postfix 3.5-ish. 14 lines, 6 about TLS.
const CLASSIC: &str = "\
Nov 21 10:00:00 mx postfix/smtpd[123]: connect from old.example.com[192.0.2.10]
Nov 21 10:00:00 mx postfix/smtpd[123]: SSL_accept error from old.example.com[192.0.2.10]: -1
Nov 21 10:00:00 mx postfix/smtpd[123]: warning: TLS library problem: 140380710438720:error:1408A0C1:SSL routines:ssl3_get_client_hello:no shared cipher:s3_srvr.c:1420:
Nov 21 10:00:00 mx postfix/smtpd[123]: lost connection after STARTTLS from old.example.com[192.0.2.10]
Nov 21 10:00:00 mx postfix/smtpd[123]: disconnect from old.example.com[192.0.2.10] ehlo=1 starttls=0/1 commands=1/2
Nov  1 10:05:00 mx postfix/smtpd[124]: connect from unknown[IPv6:2001:db8::1]
Nov  1 10:05:01 mx postfix/smtpd[124]: SSL_accept error from unknown[IPv6:2001:db8::1]: lost connection
Nov  1 10:05:01 mx postfix/smtpd[124]: lost connection after STARTTLS from unknown[IPv6:2001:db8::1]
Nov 21 10:06:00 mx postfix/smtpd[125]: connect from good.example.net[198.51.100.7]
Nov 21 10:06:00 mx postfix/smtpd[125]: Anonymous TLS connection established from good.example.net[198.51.100.7]: TLSv1.3 with cipher TLS_AES_256_GCM_SHA384 (256/256 bits)
Nov 21 10:06:01 mx postfix/smtpd[125]: 4Xk2: client=good.example.net[198.51.100.7]
Nov 21 10:07:00 mx postfix/submission/smtpd[200]: connect from laptop.example.org[203.0.113.5]
Nov 21 10:07:00 mx postfix/submission/smtpd[200]: SSL_accept error from laptop.example.org[203.0.113.5]: -1
Nov 21 10:07:00 mx postfix/submission/smtpd[200]: warning: TLS library problem: 139900:error:1408F10B:SSL routines:ssl3_get_record:wrong version number:s3_pkt.c:339:
";

/// RFC 3339 timestamps, OpenSSL 3.x, Postfix 3.7; other programs and noise to ignore.
/// 14 lines (one blank), 7 about TLS.
const RFC3339: &str = "\
2026-11-21T10:00:00.123456+00:00 mx postfix/smtpd[300]: connect from old.example.com[192.0.2.10]
2026-11-21T10:00:00.223456+00:00 mx postfix/smtpd[300]: SSL_accept error from old.example.com[192.0.2.10]: -1
2026-11-21T10:00:00.323456+00:00 mx postfix/smtpd[300]: warning: TLS library problem: error:0A0000C1:SSL routines:tls_post_process_client_hello:no shared cipher:../ssl/statem/statem_srvr.c:2220:
2026-11-21T10:00:01.000000+00:00 mx postfix/smtpd[301]: connect from unknown[2001:db8::1]
2026-11-21T10:00:01.100000+00:00 mx postfix/smtpd[301]: SSL_accept error from unknown[2001:db8::1]: -1
2026-11-21T10:00:01.200000+00:00 mx postfix/smtpd[301]: warning: TLS library problem: error:0A000102:SSL routines::unsupported protocol:../ssl/statem/statem_srvr.c:1657:
2026-11-21T10:00:01.300000+00:00 mx postfix/smtpd[301]: disconnect from unknown[2001:db8::1] ehlo=1 starttls=0/1 commands=1/2
2026-11-21T10:00:02+00:00 mx postfix/tlsproxy[400]: CONNECT from [203.0.113.9]:40000 to [192.0.2.25]:25
2026-11-21T10:00:02+00:00 mx postfix/tlsproxy[400]: warning: TLS library problem: error:0A00042E:SSL routines:ssl3_read_bytes:tlsv1 alert protocol version:../ssl/record/rec_layer_s3.c:1584:SSL alert number 70:
2026-11-21T10:00:02+00:00 mx postfix/tlsproxy[400]: SSL_accept error from [203.0.113.9]:40000: -1
2026-11-21T10:00:03+00:00 mx postfix/qmgr[50]: 4Xk2: from=<a@example.com>, size=100, nrcpt=1 (queue active)
2026-11-21T10:00:03+00:00 mx dovecot[60]: imap-login: SSL_accept error from unknown[192.0.2.99]: -1

2026-11-21T10:00:04+00:00 mx postfix/smtpd[302]: warning: TLS library problem: error:0A000126:SSL routines::unexpected eof while reading:../ssl/record/rec_layer_s3.c:317:
";

fn reasons(pairs: &[(&str, u64)]) -> BTreeMap<String, u64> {
    pairs.iter().map(|(r, n)| (r.to_string(), *n)).collect()
}

fn parse(text: &[u8]) -> LogReport {
    let mut report = LogReport::default();
    postfix_log::parse(text, &mut report).unwrap();
    report
}

#[test]
fn classic_syslog_openssl1() {
    let report = parse(CLASSIC.as_bytes());
    assert_eq!(report.lines, 14);
    assert_eq!(report.tls_lines, 6);
    assert_eq!(report.invalid_lines, 0);
    assert_eq!(report.unattributed, 0);
    assert_eq!(
        report.clients,
        vec![
            FailedClient {
                host: "old.example.com".into(),
                ip: "192.0.2.10".into(),
                failures: 1,
                reasons: reasons(&[("no shared cipher", 1)]),
                first: "Nov 21 10:00:00".into(),
                last: "Nov 21 10:00:00".into(),
            },
            FailedClient {
                host: "laptop.example.org".into(),
                ip: "203.0.113.5".into(),
                failures: 1,
                reasons: reasons(&[("wrong version number", 1)]),
                first: "Nov 21 10:07:00".into(),
                last: "Nov 21 10:07:00".into(),
            },
            FailedClient {
                host: "unknown".into(),
                ip: "2001:db8::1".into(),
                failures: 1,
                reasons: reasons(&[("SSL_accept error", 1)]),
                first: "Nov  1 10:05:01".into(),
                last: "Nov  1 10:05:01".into(),
            },
        ]
    );
}

#[test]
fn rfc3339_openssl3_and_tlsproxy() {
    let report = parse(RFC3339.as_bytes());
    assert_eq!(report.lines, 14);
    // Two SSL_accept errors and two library problems of smtpd, one of each of
    // tlsproxy, one library problem without a client; not dovecot's.
    assert_eq!(report.tls_lines, 7);
    assert_eq!(report.unattributed, 1);
    let by_ip: BTreeMap<&str, &FailedClient> =
        report.clients.iter().map(|c| (c.ip.as_str(), c)).collect();
    assert_eq!(by_ip.len(), 3);
    assert_eq!(by_ip["192.0.2.10"].failures, 1);
    assert_eq!(
        by_ip["192.0.2.10"].reasons,
        reasons(&[("no shared cipher", 1)])
    );
    assert_eq!(
        by_ip["192.0.2.10"].first,
        "2026-11-21T10:00:00.223456+00:00"
    );
    assert_eq!(
        by_ip["2001:db8::1"].reasons,
        reasons(&[("unsupported protocol", 1)])
    );
    // The library problem came first: one failure, not two.
    let proxy = by_ip["203.0.113.9"];
    assert_eq!((proxy.host.as_str(), proxy.failures), ("unknown", 1));
    assert_eq!(
        proxy.reasons,
        reasons(&[("tlsv1 alert protocol version", 1)])
    );
    assert_eq!(proxy.first, "2026-11-21T10:00:02+00:00");
}

#[test]
fn several_files_in_order_plain_and_gzip() {
    let dir = tempfile::tempdir().unwrap();
    // Rotated, compressed, with a name that does not say so.
    let old = dir.path().join("mail.log.1");
    let mut gz = flate2::write::GzEncoder::new(
        std::fs::File::create(&old).unwrap(),
        flate2::Compression::default(),
    );
    gz.write_all(CLASSIC.as_bytes()).unwrap();
    gz.finish().unwrap();
    let new = dir.path().join("mail.log");
    std::fs::write(&new, RFC3339).unwrap();

    let report = postfix_log::read(&[old.clone(), new.clone()]).unwrap();
    assert_eq!(report.lines, 28);
    assert_eq!(report.tls_lines, 13);
    assert_eq!(report.unattributed, 1);
    let ips: Vec<(&str, u64)> = report
        .clients
        .iter()
        .map(|c| (c.ip.as_str(), c.failures))
        .collect();
    assert_eq!(
        ips,
        [
            ("192.0.2.10", 2),
            ("2001:db8::1", 2),
            ("203.0.113.5", 1),
            ("203.0.113.9", 1)
        ]
    );
    let old_client = &report.clients[0];
    assert_eq!(old_client.reasons, reasons(&[("no shared cipher", 2)]));
    assert_eq!(old_client.first, "Nov 21 10:00:00");
    assert_eq!(old_client.last, "2026-11-21T10:00:00.223456+00:00");
    assert_eq!(
        report.clients[1].reasons,
        reasons(&[("SSL_accept error", 1), ("unsupported protocol", 1)])
    );

    // The same with the files the other way round: `last` follows the order.
    let report = postfix_log::read(&[new, old]).unwrap();
    assert_eq!(report.clients[0].last, "Nov 21 10:00:00");

    let text = report.to_string();
    assert!(text.starts_with("failures  client"), "{text}");
    assert!(text.contains("old.example.com"), "{text}");
    assert!(text.contains("no shared cipher (2)"), "{text}");
    assert!(
        text.contains("28 lines (13 about TLS, 0 invalid): 6 failed handshakes from 4 clients"),
        "{text}"
    );
}

#[test]
fn same_client_many_failures_and_reasons() {
    let mut log = String::new();
    for (i, reason) in [
        "error:0A00010B:SSL routines::wrong version number:../ssl/record/ssl3_record.c:354:",
        "error:0A000410:SSL routines::sslv3 alert handshake failure:../ssl/record/rec_layer_s3.c:1584:SSL alert number 40:",
        "error:0A00018C:SSL routines::version too low:../ssl/statem/statem_srvr.c:1657:",
        "error:0A00018C:SSL routines::version too low:../ssl/statem/statem_srvr.c:1657:",
    ]
    .iter()
    .enumerate()
    {
        log += &format!(
            "Nov 21 11:0{i}:00 mx postfix/smtpd[9{i}]: connect from scanner.example[198.51.100.66]\n\
             Nov 21 11:0{i}:00 mx postfix/smtpd[9{i}]: SSL_accept error from scanner.example[198.51.100.66]: -1\n\
             Nov 21 11:0{i}:00 mx postfix/smtpd[9{i}]: warning: TLS library problem: {reason}\n"
        );
    }
    // A second client with fewer failures sorts after it.
    log += "Nov 21 11:09:00 mx postfix/smtpd[99]: SSL_accept error from a.example[192.0.2.1]: -1\n";
    let report = parse(log.as_bytes());
    assert_eq!((report.lines, report.tls_lines), (13, 9));
    assert_eq!(report.clients.len(), 2);
    let c = &report.clients[0];
    assert_eq!((c.ip.as_str(), c.failures), ("198.51.100.66", 4));
    assert_eq!(
        c.reasons,
        reasons(&[
            ("sslv3 alert handshake failure", 1),
            ("version too low", 2),
            ("wrong version number", 1)
        ])
    );
    assert_eq!(
        (c.first.as_str(), c.last.as_str()),
        ("Nov 21 11:00:00", "Nov 21 11:03:00")
    );
    assert_eq!(
        report.clients[1].reasons,
        reasons(&[("SSL_accept error", 1)])
    );
}

#[test]
fn interleaved_processes_keep_their_clients() {
    let log = "\
Nov 21 12:00:00 mx postfix/smtpd[1]: connect from a.example[192.0.2.1]
Nov 21 12:00:00 mx postfix/smtpd[2]: connect from b.example[192.0.2.2]
Nov 21 12:00:01 mx postfix/smtpd[2]: SSL_accept error from b.example[192.0.2.2]: -1
Nov 21 12:00:01 mx postfix/smtpd[1]: SSL_accept error from a.example[192.0.2.1]: -1
Nov 21 12:00:01 mx postfix/smtpd[2]: warning: TLS library problem: error:0A0000C1:SSL routines:tls_post_process_client_hello:no shared cipher:../ssl/statem/statem_srvr.c:2220:
Nov 21 12:00:01 mx postfix/smtpd[1]: warning: TLS library problem: error:0A000102:SSL routines::unsupported protocol:../ssl/statem/statem_srvr.c:1657:
Nov 21 12:00:01 other postfix/smtpd[1]: warning: TLS library problem: error:0A000102:SSL routines::unsupported protocol:x.c:1:
";
    let report = parse(log.as_bytes());
    assert_eq!(
        report.unattributed, 1,
        "another host's pid 1 named no client"
    );
    assert_eq!(report.clients[0].ip, "192.0.2.1");
    assert_eq!(
        report.clients[0].reasons,
        reasons(&[("unsupported protocol", 1)])
    );
    assert_eq!(
        report.clients[1].reasons,
        reasons(&[("no shared cipher", 1)])
    );
}

#[test]
fn garbage_and_binary_input() {
    let mut input = Vec::new();
    input.extend_from_slice(b"\xff\xfe\x00binary\x80\x81\n");
    input.extend_from_slice(
        b"Nov 21 10:00:00 mx postfix/smtpd[1]: SSL_accept error from a[\xc3\x28]: -1\n",
    );
    input.extend_from_slice(b"\r\n\n");
    input
        .extend_from_slice(b"Nov 99 xx postfix/smtpd[1]: SSL_accept error from a[192.0.2.1]: -1\n");
    input.extend_from_slice(
        b"Nov 21 10:00:00 mx postfix/smtpd[99999999999]: SSL_accept error from a[192.0.2.1]: -1\n",
    );
    input.extend_from_slice(b"Nov 21 10:00:00 mx postfix/smtpd[1]: SSL_accept error from a[: -1\n");
    input.extend_from_slice(
        b"Nov 21 10:00:00 mx postfix/smtpd[1]: warning: TLS library problem: :::::\n",
    );
    input.extend_from_slice(b"\x1f\x8b\x08\x00garbage gzip header in a plain stream");
    let report = parse(&input);
    assert_eq!(report.lines, 9);
    // The binary line, the bad address, the gzip bytes.
    assert_eq!(report.invalid_lines, 3);
    assert_eq!(report.tls_lines, 1);
    assert_eq!(report.unattributed, 1);
    assert!(report.clients.is_empty());
    assert!(
        report
            .to_string()
            .contains("9 lines (1 about TLS, 3 invalid)")
    );

    // Random bytes, and a broken gzip file: no panic, an error at most.
    let mut state = 0x2545_f491_4f6c_dd1d_u64;
    let random: Vec<u8> = (0..200_000)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state as u8
        })
        .collect();
    let report = parse(&random);
    assert!(report.lines > 0 && report.clients.is_empty());

    let dir = tempfile::tempdir().unwrap();
    let path: PathBuf = dir.path().join("broken.gz");
    let mut bytes = vec![0x1f, 0x8b];
    bytes.extend_from_slice(&random[..1000]);
    std::fs::write(&path, bytes).unwrap();
    let err = postfix_log::read(&[path]).unwrap_err();
    assert!(format!("{err:#}").contains("broken.gz"), "{err:#}");

    let empty = dir.path().join("empty");
    std::fs::write(&empty, b"").unwrap();
    assert_eq!(postfix_log::read(&[empty]).unwrap(), LogReport::default());
    assert!(postfix_log::read(&[dir.path().join("missing")]).is_err());
}
