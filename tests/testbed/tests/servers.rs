//! The real servers of the test bed, each started on loopback and used the way the
//! services will use it; then servers inside namespaces (IPv4 and IPv6), what a dropped
//! handle leaves behind (nothing), and a start that must fail with the server's log.
//!
//! Where a server speaks a simple protocol (SPAMC, clamd's INSTREAM, SMTP, HTTP) the test
//! speaks it over a raw socket, so what is checked is the server, not only its reference
//! client; the helpers that use the reference clients are checked too.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::time::{Duration, Instant};

use testbed::servers::{
    Certs, Clamd, EICAR, EICAR_SIGNATURE, Host, MariaDb, MariaDbOptions, Nginx, Postfix,
    PostfixOptions, SServer, Scan, Server, Slapd, SmtpSink, Spamd,
};
use testbed::{Error, Netns};

const TIMEOUT: Duration = Duration::from_secs(10);

/// Sends `request`, then reads until the server closes the connection.
fn exchange(addr: SocketAddr, request: &[u8]) -> String {
    let mut stream = TcpStream::connect_timeout(&addr, TIMEOUT).unwrap();
    stream.set_read_timeout(Some(TIMEOUT)).unwrap();
    stream.write_all(request).unwrap();
    let mut answer = Vec::new();
    stream.read_to_end(&mut answer).unwrap();
    String::from_utf8_lossy(&answer).into_owned()
}

fn http_get(addr: SocketAddr, path: &str) -> String {
    exchange(
        addr,
        format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n").as_bytes(),
    )
}

const GTUBE: &str = "XJS*C4JDBQADN1.NSBN3*2IDNEN*GTUBE-STANDARD-ANTI-UBE-TEST-EMAIL*C.34X";

/// A short mail with every header a real client sets, so no rule fires on its form.
fn mail(body: &str) -> String {
    format!(
        "From: Alice <alice@perimeter.test>\r\n\
         To: Bob <bob@perimeter.test>\r\n\
         Subject: Minutes of the Tuesday meeting\r\n\
         Date: Tue, 03 Jun 2025 10:00:00 +0000\r\n\
         Message-ID: <minutes-1@perimeter.test>\r\n\
         MIME-Version: 1.0\r\n\
         Content-Type: text/plain; charset=us-ascii\r\n\
         \r\n\
         {body}\r\n"
    )
}

#[test]
fn mariadb_runs_sql_with_binary_log_and_server_id() {
    let db = MariaDb::start_with(
        Host::Loopback,
        MariaDbOptions {
            server_id: 7,
            ..MariaDbOptions::default()
        },
    )
    .unwrap();
    assert_eq!(db.query("SELECT 1").unwrap().trim(), "1");
    db.query(
        "CREATE DATABASE shop;
         CREATE TABLE shop.orders (id INT PRIMARY KEY, item VARCHAR(20)) ENGINE=InnoDB;
         INSERT INTO shop.orders VALUES (1, 'apple'), (2, 'pear');",
    )
    .unwrap();
    assert_eq!(
        db.query("SELECT id, item FROM shop.orders ORDER BY id")
            .unwrap(),
        "1\tapple\n2\tpear\n"
    );
    assert_eq!(
        db.query("SELECT @@server_id, @@log_bin, @@port")
            .unwrap()
            .trim(),
        format!("7\t1\t{}", db.addr().port())
    );
    // Replication reads the binary log: the writes above must be in it.
    let events = db.query("SHOW BINLOG EVENTS IN 'bin.000001'").unwrap();
    assert!(events.contains("INSERT INTO shop.orders"), "{events}");
    let err = db
        .query("SELECT * FROM shop.missing")
        .unwrap_err()
        .to_string();
    assert!(err.contains("doesn't exist"), "{err}");
}

#[test]
fn slapd_adds_an_entry_and_finds_it_by_proxy_address() {
    let ldap = Slapd::start(Host::Loopback).unwrap();
    ldap.add(&format!(
        "dn: ou=people,{base}\nobjectClass: organizationalUnit\nou: people\n\n\
         dn: uid=alice,ou=people,{base}\nobjectClass: inetOrgPerson\n\
         objectClass: perimeterRecipient\nuid: alice\ncn: Alice\nsn: Liddell\n\
         mail: alice@perimeter.test\nproxyAddresses: SMTP:alice@perimeter.test\n\
         proxyAddresses: smtp:a.liddell@perimeter.test\n",
        base = ldap.base_dn()
    ))
    .unwrap();

    // proxyAddresses matches case-insensitively, as in Active Directory.
    let found = ldap
        .search("(proxyAddresses=smtp:a.liddell@perimeter.test)", &["mail"])
        .unwrap();
    assert!(
        found.contains(&format!("dn: uid=alice,ou=people,{}", ldap.base_dn())),
        "{found}"
    );
    assert!(found.contains("mail: alice@perimeter.test"), "{found}");
    let none = ldap.search("(mail=nobody@perimeter.test)", &[]).unwrap();
    assert_eq!(none.trim(), "");

    // An anonymous client (as a perimeter without credentials) sees the entry too.
    let out = ldap
        .command("ldapsearch")
        .args([
            "-x",
            "-LLL",
            "-H",
            &ldap.url(),
            "-b",
            ldap.base_dn(),
            "(uid=alice)",
            "cn",
        ])
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("cn: Alice"),
        "{out:?}"
    );

    let dup = ldap
        .add(&format!(
            "dn: ou=people,{}\nobjectClass: organizationalUnit\nou: people\n",
            ldap.base_dn()
        ))
        .unwrap_err()
        .to_string();
    assert!(dup.contains("Already exists"), "{dup}");
}

#[test]
fn spamd_scores_gtube_as_spam_and_a_plain_mail_as_ham() {
    let spamd = Spamd::start(Host::Loopback).unwrap();

    // The SPAMC protocol over a raw socket.
    let gtube = mail(GTUBE);
    let answer = exchange(
        spamd.addr(),
        format!(
            "CHECK SPAMC/1.5\r\nContent-length: {}\r\n\r\n{gtube}",
            gtube.len()
        )
        .as_bytes(),
    );
    assert!(answer.starts_with("SPAMD/1.1 0 EX_OK\r\n"), "{answer}");
    let verdict = answer
        .lines()
        .find_map(|l| l.strip_prefix("Spam: "))
        .unwrap_or_else(|| panic!("no Spam header in {answer}"));
    let (flag, scores) = verdict.split_once(" ; ").unwrap();
    assert_eq!(flag, "True");
    let score: f64 = scores.split_once(" / ").unwrap().0.parse().unwrap();
    assert!(score >= 1000.0, "{answer}");

    // The same through the reference client.
    let spam = spamd.check(gtube.as_bytes()).unwrap();
    assert!(spam.score >= 1000.0 && spam.threshold == 5.0, "{spam:?}");
    let ham = spamd
        .check(mail("The minutes are attached below; see you next week.").as_bytes())
        .unwrap();
    assert!(ham.score < ham.threshold, "{ham:?}");
}

/// clamd's INSTREAM command: chunks with a 4-byte big-endian length, then a zero length.
fn instream(addr: SocketAddr, data: &[u8]) -> String {
    let mut request = b"zINSTREAM\0".to_vec();
    for chunk in data.chunks(16) {
        request.extend_from_slice(&(chunk.len() as u32).to_be_bytes());
        request.extend_from_slice(chunk);
    }
    request.extend_from_slice(&0u32.to_be_bytes());
    exchange(addr, &request)
}

#[test]
fn clamd_finds_eicar_in_a_stream_and_passes_clean_data() {
    let clamd = Clamd::start(Host::Loopback).unwrap();

    assert_eq!(
        instream(clamd.addr(), EICAR.as_bytes()),
        format!("stream: {EICAR_SIGNATURE}.UNOFFICIAL FOUND\0")
    );
    assert_eq!(instream(clamd.addr(), b"just a letter\n"), "stream: OK\0");

    assert_eq!(
        clamd
            .scan(format!("{}{EICAR}", mail("")).as_bytes())
            .unwrap(),
        Scan::Found(format!("{EICAR_SIGNATURE}.UNOFFICIAL"))
    );
    assert_eq!(clamd.scan(b"just a letter\n").unwrap(), Scan::Clean);
}

/// Reads one SMTP reply (all its lines) and checks its code.
fn expect_reply(stream: &mut TcpStream, code: &str) -> String {
    let mut reply = String::new();
    let mut byte = [0u8; 1];
    loop {
        stream.read_exact(&mut byte).unwrap();
        reply.push(byte[0] as char);
        // The last line of a reply is "CODE text"; continuation lines are "CODE-text".
        let last = reply
            .trim_end_matches("\r\n")
            .rsplit("\r\n")
            .next()
            .unwrap_or("");
        if reply.ends_with("\r\n") && last.len() >= 4 && &last[3..4] == " " {
            break;
        }
    }
    assert!(reply.starts_with(code), "expected {code}, got {reply:?}");
    reply
}

#[test]
fn smtp_sink_accepts_a_mail_and_keeps_it() {
    let sink = SmtpSink::start(Host::Loopback).unwrap();
    let mut smtp = TcpStream::connect(sink.addr()).unwrap();
    smtp.set_read_timeout(Some(TIMEOUT)).unwrap();
    expect_reply(&mut smtp, "220");
    for (command, code) in [
        ("EHLO client.perimeter.test", "250"),
        ("MAIL FROM:<alice@perimeter.test>", "250"),
        ("RCPT TO:<bob@perimeter.test>", "250"),
        ("DATA", "354"),
    ] {
        smtp.write_all(format!("{command}\r\n").as_bytes()).unwrap();
        expect_reply(&mut smtp, code);
    }
    smtp.write_all(format!("{}.\r\n", mail("Hello Bob.")).as_bytes())
        .unwrap();
    expect_reply(&mut smtp, "250");
    smtp.write_all(b"QUIT\r\n").unwrap();
    expect_reply(&mut smtp, "221");

    let messages = sink.wait_for_messages(1, TIMEOUT).unwrap();
    assert_eq!(messages.len(), 1);
    let delivered = &messages[0];
    assert!(
        delivered.contains("X-Rcpt-Args: <bob@perimeter.test>"),
        "{delivered}"
    );
    assert!(
        delivered.contains("Subject: Minutes of the Tuesday meeting"),
        "{delivered}"
    );
    assert!(delivered.contains("Hello Bob."), "{delivered}");
}

/// Sends each command and checks the reply's code; returns the replies.
fn converse(smtp: &mut TcpStream, steps: &[(&str, &str)]) -> Vec<String> {
    steps
        .iter()
        .map(|(command, code)| {
            smtp.write_all(format!("{command}\r\n").as_bytes()).unwrap();
            expect_reply(smtp, code)
        })
        .collect()
}

#[test]
fn smtp_sink_discarding_only_counts() {
    let sink = SmtpSink::start_discarding(Host::Loopback).unwrap();
    assert_eq!(sink.delivered().unwrap(), 0);
    let mut smtp = TcpStream::connect(sink.addr()).unwrap();
    smtp.set_read_timeout(Some(TIMEOUT)).unwrap();
    expect_reply(&mut smtp, "220");
    for _ in 0..2 {
        converse(
            &mut smtp,
            &[
                ("EHLO client.perimeter.test", "250"),
                ("MAIL FROM:<alice@perimeter.test>", "250"),
                ("RCPT TO:<bob@perimeter.test>", "250"),
                ("DATA", "354"),
                (&format!("{}.", mail("Hello Bob.")), "250"),
            ],
        );
    }
    converse(&mut smtp, &[("QUIT", "221")]);
    assert_eq!(sink.delivered().unwrap(), 2);
    let err = sink.messages().unwrap_err().to_string();
    assert!(err.contains("keeps no mail"), "{err}");
}

#[test]
fn postfix_relays_known_recipients_and_refuses_unknown_ones() {
    let sink = SmtpSink::start(Host::Loopback).unwrap();
    let postfix = Postfix::start(
        Host::Loopback,
        PostfixOptions {
            recipients: vec!["bob@perimeter.test".into(), "carol@perimeter.test".into()],
            ..PostfixOptions::new(sink.addr())
        },
    )
    .unwrap();

    let mut smtp = TcpStream::connect(postfix.addr()).unwrap();
    smtp.set_read_timeout(Some(TIMEOUT)).unwrap();
    let greeting = expect_reply(&mut smtp, "220");
    assert!(
        greeting.starts_with("220 postfix.perimeter.test ESMTP"),
        "{greeting}"
    );
    let replies = converse(
        &mut smtp,
        &[
            ("EHLO client.example.net", "250"),
            ("MAIL FROM:<alice@example.net>", "250"),
            // Unknown in a relayed domain: refused at RCPT, as avsx refuses it.
            ("RCPT TO:<nobody@perimeter.test>", "550"),
            // Another domain: no relaying, even from loopback.
            ("RCPT TO:<bob@example.org>", "554"),
            ("RCPT TO:<bob@perimeter.test>", "250"),
            ("DATA", "354"),
            (&format!("{}.", mail("Hello Bob.")), "250"),
            ("QUIT", "221"),
        ],
    );
    assert!(replies[2].starts_with("550 5.1.1 "), "{}", replies[2]);
    assert!(replies[2].contains("User unknown"), "{}", replies[2]);
    assert!(replies[3].contains("Relay access denied"), "{}", replies[3]);

    let messages = sink.wait_for_messages(1, TIMEOUT).unwrap();
    assert_eq!(messages.len(), 1);
    let relayed = &messages[0];
    assert!(
        relayed.contains("X-Rcpt-Args: <bob@perimeter.test>"),
        "{relayed}"
    );
    assert!(
        relayed.contains("X-Helo-Args: postfix.perimeter.test"),
        "{relayed}"
    );
    assert!(
        relayed.contains("by postfix.perimeter.test (Postfix)"),
        "{relayed}"
    );
    assert!(relayed.contains("Hello Bob."), "{relayed}");

    // Relayed means gone from the queue; the log tells the story.
    let deadline = Instant::now() + TIMEOUT;
    while postfix.queued().unwrap() > 0 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(50));
    }
    assert_eq!(postfix.queued().unwrap(), 0);
    let log = postfix.log_tail(100);
    assert!(log.contains("status=sent"), "{log}");
    assert!(log.contains("NOQUEUE: reject: RCPT"), "{log}");

    // master, qmgr, postlogd and more: all gone with the handle, and the directory.
    assert_drop_cleans_up(postfix, 3);
}

#[test]
fn nginx_serves_files_from_its_root() {
    let web = Nginx::start_with(Host::Loopback, "add_header X-Frame-Options DENY always;").unwrap();
    std::fs::write(web.root().join("hello.txt"), "hello from the test bed\n").unwrap();

    let answer = http_get(web.addr(), "/hello.txt");
    assert!(answer.starts_with("HTTP/1.1 200 OK\r\n"), "{answer}");
    assert!(answer.contains("X-Frame-Options: DENY"), "{answer}");
    assert!(
        answer.ends_with("\r\n\r\nhello from the test bed\n"),
        "{answer}"
    );
    let missing = http_get(web.addr(), "/missing.txt");
    assert!(missing.starts_with("HTTP/1.1 404 "), "{missing}");
    assert!(missing.contains("X-Frame-Options: DENY"), "{missing}");
    assert_eq!(
        web.url("hello.txt"),
        format!("http://{}/hello.txt", web.addr())
    );

    let log = std::fs::read_to_string(web.access_log()).unwrap();
    assert!(log.contains("\"GET /hello.txt HTTP/1.1\" 200"), "{log}");
}

#[test]
fn s_server_completes_a_verified_handshake() {
    let tls = SServer::start(Host::Loopback).unwrap();
    // -ign_eof: read the answer after the request is sent, until the server closes.
    let out = tls
        .s_client(&["-ign_eof"], b"GET / HTTP/1.0\r\n\r\n")
        .unwrap();
    assert!(out.contains("Verification: OK"), "{out}");
    assert!(out.contains("Protocol version: TLSv1.3"), "{out}");
    // -www answers with a status page over the encrypted connection.
    assert!(out.contains("HTTP/1.0 200 ok"), "{out}");

    // Without the test CA the certificate does not verify: verification is real.
    let out = tls
        .command("openssl")
        .args(["s_client", "-brief", "-verify_return_error", "-connect"])
        .arg(tls.addr().to_string())
        .stdin(std::process::Stdio::null())
        .output()
        .unwrap();
    assert!(!out.status.success(), "{out:?}");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("unable to get local issuer certificate"),
        "{stderr}"
    );

    // Extra arguments reach s_server: a TLS 1.2-only server.
    let tls12 = SServer::start_with(Host::Loopback, &["-tls1_2"]).unwrap();
    let out = tls12.s_client(&[], b"").unwrap();
    assert!(out.contains("Protocol version: TLSv1.2"), "{out}");
    let err = tls12.s_client(&["-tls1_3"], b"").unwrap_err().to_string();
    assert!(err.contains("alert protocol version"), "{err}");
}

#[test]
fn s_server_serves_a_given_certificate_that_does_not_verify() {
    let ip = "127.0.0.1".parse().unwrap();
    // Without the test CA (or, self-signed, without the certificate itself) a verifying
    // client refuses it: what start_with's readiness probe would have done.
    let refused = |tls: &SServer| {
        let out = tls
            .command("openssl")
            .args(["s_client", "-brief", "-verify_return_error", "-connect"])
            .arg(tls.addr().to_string())
            .stdin(std::process::Stdio::null())
            .output()
            .unwrap();
        assert!(!out.status.success(), "{out:?}");
        String::from_utf8_lossy(&out.stderr).into_owned()
    };

    let dir = tempfile::tempdir().unwrap();
    let certs = Certs::self_signed(dir.path(), ip).unwrap();
    let tls = SServer::start_with_cert(Host::Loopback, &certs.cert, &certs.key, &[]).unwrap();
    assert_eq!(tls.cert(), certs.cert);
    assert_eq!(tls.key(), certs.key);
    let stderr = refused(&tls);
    assert!(stderr.contains("self-signed certificate"), "{stderr}");
    // Trusting the certificate itself, the default ca_cert(), accepts it.
    assert_eq!(tls.ca_cert(), certs.cert);
    let out = tls
        .s_client(&["-ign_eof"], b"GET / HTTP/1.0\r\n\r\n")
        .unwrap();
    assert!(out.contains("Verification: OK"), "{out}");
    assert!(out.contains("HTTP/1.0 200 ok"), "{out}");

    // Expired, signed by a CA valid now; extra arguments reach s_server.
    let dir = tempfile::tempdir().unwrap();
    let certs = Certs::expired(dir.path(), ip).unwrap();
    let tls =
        SServer::start_with_cert(Host::Loopback, &certs.cert, &certs.key, &["-tls1_2"]).unwrap();
    let stderr = refused(&tls);
    assert!(stderr.contains("unable to get local issuer"), "{stderr}");
    let out = tls
        .command("openssl")
        .args(["s_client", "-brief", "-verify_return_error", "-connect"])
        .arg(tls.addr().to_string())
        .arg("-CAfile")
        .arg(&certs.ca)
        .stdin(std::process::Stdio::null())
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{stderr}");
    assert!(stderr.contains("certificate has expired"), "{stderr}");
    // Not verifying, the handshake completes.
    let out = tls
        .command("openssl")
        .args(["s_client", "-brief", "-connect"])
        .arg(tls.addr().to_string())
        .stdin(std::process::Stdio::null())
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(stderr.contains("Protocol version: TLSv1.2"), "{stderr}");

    // A certificate file that is not one: the start fails with s_server's complaint.
    std::fs::write(dir.path().join("junk.pem"), "junk\n").unwrap();
    let err = SServer::start_with_cert(
        Host::Loopback,
        &dir.path().join("junk.pem"),
        &certs.key,
        &[],
    )
    .unwrap_err();
    assert!(matches!(err, Error::NotReady { .. }), "{err:?}");
}

#[test]
fn servers_run_inside_a_namespace() {
    let ns = Netns::new("servers").unwrap();
    ns.ip(&["addr", "add", "192.0.2.5/32", "dev", "lo"])
        .unwrap();

    let addr: SocketAddr = "192.0.2.5:80".parse().unwrap();
    let web = Nginx::start(Host::Netns(&ns, addr)).unwrap();
    std::fs::write(web.root().join("index.html"), "inside\n").unwrap();
    assert_eq!(web.addr(), addr);
    assert_eq!(web.netns(), Some(ns.name()));
    let answer = ns.enter(|| http_get(addr, "/")).unwrap();
    assert!(answer.starts_with("HTTP/1.1 200 OK\r\n"), "{answer}");
    assert!(answer.ends_with("\r\n\r\ninside\n"), "{answer}");
    // From the test's own namespace the address is not there.
    assert!(TcpStream::connect_timeout(&addr, Duration::from_millis(500)).is_err());

    // The namespace's own loopback, on the standard port: the helpers' clients run in
    // the namespace too.
    let ldap = Slapd::start(Host::Netns(&ns, "127.0.0.1:389".parse().unwrap())).unwrap();
    ldap.add(&format!(
        "dn: cn=probe,{}\nobjectClass: organizationalRole\ncn: probe\n",
        ldap.base_dn()
    ))
    .unwrap();
    assert!(
        ldap.search("(cn=probe)", &["cn"])
            .unwrap()
            .contains("cn: probe")
    );
}

/// `(pid, state)` of the processes in process group `pgid`, from /proc.
fn group_members(pgid: u32) -> Vec<(u32, char)> {
    let mut members = Vec::new();
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        let Ok(pid) = entry.file_name().to_string_lossy().parse::<u32>() else {
            continue;
        };
        let Ok(stat) = std::fs::read_to_string(entry.path().join("stat")) else {
            continue;
        };
        // "pid (comm) state ppid pgrp ...": comm may hold spaces, so split after ')'.
        let Some((_, rest)) = stat.rsplit_once(')') else {
            continue;
        };
        let fields: Vec<&str> = rest.split_whitespace().collect();
        if fields.get(2) == Some(&pgid.to_string().as_str()) {
            members.push((pid, fields[0].chars().next().unwrap_or('?')));
        }
    }
    members
}

/// Drops `server` and checks that its whole process group is gone (a zombie left for
/// init to reap counts as gone: it runs no more) and its directory removed.
fn assert_drop_cleans_up(server: impl Server, at_least: usize) {
    let (pid, dir, addr) = (server.pid(), server.dir().to_owned(), server.addr());
    let members = group_members(pid);
    assert!(members.len() >= at_least, "{members:?}");
    assert!(members.iter().any(|&(p, _)| p == pid), "{members:?}");

    drop(server);
    // SIGKILL is delivered at once but a busy machine may take a moment to tear a
    // process down; the drop waits for the leader, not for every member.
    let deadline = Instant::now() + Duration::from_secs(5);
    let alive = loop {
        let alive: Vec<_> = group_members(pid)
            .into_iter()
            .filter(|&(_, s)| s != 'Z')
            .collect();
        if alive.is_empty() || Instant::now() > deadline {
            break alive;
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    assert!(alive.is_empty(), "survived: {alive:?}");
    assert!(!dir.exists(), "{} survived", dir.display());
    assert!(TcpStream::connect(addr).is_err());
}

#[test]
fn dropping_a_server_kills_its_processes_and_removes_its_directory() {
    // nginx: a master and its worker. spamd: a master and forked children, started
    // through unshare and sh, which exec, so the pid the test holds is spamd's.
    assert_drop_cleans_up(Nginx::start(Host::Loopback).unwrap(), 2);
    assert_drop_cleans_up(Spamd::start(Host::Loopback).unwrap(), 2);
}

#[test]
fn a_taken_port_fails_the_start_with_the_servers_log() {
    let holder = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = holder.local_addr().unwrap();
    let started = Instant::now();
    let err = SmtpSink::start(Host::At(addr)).unwrap_err();
    assert!(
        started.elapsed() < Duration::from_secs(15),
        "{:?}",
        started.elapsed()
    );
    let Error::NotReady { reason, tail, .. } = &err else {
        panic!("expected NotReady, got {err}");
    };
    assert!(reason.contains("exited"), "{err}");
    assert!(tail.contains("Address already in use"), "{err}");
}

#[test]
fn every_server_works_on_ipv6_inside_a_namespace() {
    let ns = Netns::new("v6").unwrap();
    let at = |port| Host::Netns(&ns, SocketAddr::new("::1".parse().unwrap(), port));
    // Each start already waits for a protocol-level answer on [::1]; each helper's
    // reference client runs in the namespace. ::1 is not in this machine's /etc/hosts,
    // and spamd would drop every client whose name lookup fails for want of DNS.
    let db = MariaDb::start(at(3306)).unwrap();
    assert_eq!(db.query("SELECT @@bind_address").unwrap().trim(), "::1");
    let ldap = Slapd::start(at(389)).unwrap();
    assert!(ldap.url().starts_with("ldap://[::1]:389"));
    assert!(
        ldap.search("(objectClass=organization)", &["o"])
            .unwrap()
            .contains("o: perimeter")
    );
    let spamd = Spamd::start(at(783)).unwrap();
    assert!(spamd.check(mail(GTUBE).as_bytes()).unwrap().score >= 1000.0);
    let clamd = Clamd::start(at(3310)).unwrap();
    assert!(matches!(
        clamd.scan(EICAR.as_bytes()).unwrap(),
        Scan::Found(_)
    ));
    let tls = SServer::start(at(443)).unwrap();
    assert!(tls.s_client(&[], b"").unwrap().contains("Verification: OK"));
    let sink = SmtpSink::start(at(25)).unwrap();
    let postfix = Postfix::start(at(587), PostfixOptions::new(sink.addr())).unwrap();
    let web = Nginx::start(at(80)).unwrap();
    let (greeting, relayed, page) = ns
        .enter(|| {
            let mut smtp = TcpStream::connect(sink.addr()).unwrap();
            smtp.set_read_timeout(Some(TIMEOUT)).unwrap();
            let mut relay = TcpStream::connect(postfix.addr()).unwrap();
            relay.set_read_timeout(Some(TIMEOUT)).unwrap();
            (
                expect_reply(&mut smtp, "220"),
                expect_reply(&mut relay, "220"),
                http_get(web.addr(), "/.testbed-ready"),
            )
        })
        .unwrap();
    assert!(greeting.starts_with("220 "), "{greeting}");
    assert!(
        relayed.starts_with("220 postfix.perimeter.test "),
        "{relayed}"
    );
    assert!(page.starts_with("HTTP/1.1 200 OK\r\n"), "{page}");
}
