//! Content judgement against the real scanners (the test bed's spamd and clamd on
//! loopback: GTUBE, EICAR, ordinary mail, size limits, then both daemons stopped) and
//! against scanners that misbehave: nothing listening, garbage, silence. The fakes are
//! small threads of our own; everything runs on loopback or Unix sockets in a temporary
//! directory, and every server is killed when its handle drops.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener};
use std::os::unix::net::UnixListener;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use avsx::config::{OnFailure, Oversize, Scan, Scanner};
use avsx::metrics::Metrics;
use avsx::scan::{Action, Judgement, Scanners};
use prometheus_client::registry::Registry;
use testbed::ports::free_port;
use testbed::servers::{Clamd, EICAR, EICAR_SIGNATURE, Host, Scan as ClamScan, Server, Spamd};

/// SpamAssassin's test string (scores 1000), in two halves so this file is not spam.
const GTUBE: &str = concat!(
    "XJS*C4JDBQADN1.NSBN3*2IDNEN*",
    "GTUBE-STANDARD-ANTI-UBE-TEST-EMAIL*C.34X"
);

/// A mail as the SMTP front hands it over: CRLF lines, avsx's Received field first.
fn mail(subject: &str, extra: &str, body: &str) -> Vec<u8> {
    format!(
        "Received: from client.example (client.example [192.0.2.1])\r\n\
\tby mx1.example.org (avsx) with ESMTP id 5c4n;\r\n\
\tFri, 21 Nov 2025 10:00:00 +0000\r\n\
{extra}\
From: Alice <alice@example.net>\r\n\
To: Bob <bob@example.org>\r\n\
Subject: {subject}\r\n\
Date: Fri, 21 Nov 2025 09:59:58 +0000\r\n\
Message-ID: <20251121095958.4711@mail.example.net>\r\n\
MIME-Version: 1.0\r\n\
Content-Type: text/plain; charset=us-ascii\r\n\
\r\n\
{body}\r\n"
    )
    .into_bytes()
}

fn ordinary() -> Vec<u8> {
    mail(
        "Minutes of Tuesday's meeting",
        "",
        "Hi Bob,\r\n\r\nthe minutes are on the share as usual. Next meeting is on\r\n\
Tuesday at ten; please bring the budget figures.\r\n\r\nAlice",
    )
}

fn scanner(address: impl ToString, timeout_ms: u64, max_bytes: u64) -> Scanner {
    Scanner {
        address: address.to_string(),
        timeout_ms,
        max_bytes,
    }
}

/// The shipped defaults (tag 4.5, kill 16, tempfail on failure and oversize) with a
/// subject tag.
fn policy(spamd: Option<Scanner>, clamd: Option<Scanner>) -> Scan {
    Scan {
        tag_level: 4.5,
        kill_level: 16.0,
        subject_tag: Some("[SPAM]".to_owned()),
        on_failure: OnFailure::Tempfail,
        oversize: Oversize::Tempfail,
        spamd,
        clamd,
    }
}

/// Judges `message` on a runtime of its own, as the daemon's connection task would.
fn judge_with(scanners: &Scanners, message: &[u8]) -> Judgement {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
        .block_on(scanners.judge(message))
}

fn judge(policy: &Scan, message: &[u8]) -> Judgement {
    judge_with(&Scanners::new(policy, Metrics::default()), message)
}

thread_local! {
    static LOG: std::cell::RefCell<Vec<u8>> = const { std::cell::RefCell::new(Vec::new()) };
}

/// Writes log lines into the buffer of the thread that logs them. Tests run on threads
/// of their own and judge on a runtime on that thread, so each test reads its own lines.
struct ThreadLog;

impl Write for ThreadLog {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        LOG.with(|log| log.borrow_mut().extend_from_slice(buf));
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// [`judge`] with the log lines it wrote.
///
/// One global subscriber for the whole test binary: a subscriber set per thread
/// (`with_default`) loses events when tests run concurrently, because tracing caches
/// per call site whether anyone listens.
fn judge_logged(policy: &Scan, message: &[u8]) -> (Judgement, String) {
    static INIT: std::sync::Once = std::sync::Once::new();
    INIT.call_once(|| {
        tracing_subscriber::fmt()
            .with_writer(|| ThreadLog)
            .with_ansi(false)
            .with_max_level(tracing::Level::DEBUG)
            .init();
    });
    LOG.with(|log| log.borrow_mut().clear());
    let judgement = judge(policy, message);
    let text = LOG.with(|log| String::from_utf8_lossy(&log.borrow()).into_owned());
    (judgement, text)
}

/// The relayed message of a delivery, and whether it was tagged.
fn delivered(j: &Judgement) -> (String, bool) {
    match &j.action {
        Action::Deliver { message, tagged } => {
            (String::from_utf8(message.clone()).unwrap(), *tagged)
        }
        other => panic!("expected delivery, got {other:?} ({j:?})"),
    }
}

/// The header section of a message, each field unfolded onto one line.
fn fields(message: &str) -> Vec<String> {
    let head = message.split("\r\n\r\n").next().unwrap();
    let mut out: Vec<String> = Vec::new();
    for line in head.split("\r\n") {
        match out.last_mut() {
            Some(last) if line.starts_with([' ', '\t']) => last.push_str(line),
            _ => out.push(line.to_owned()),
        }
    }
    out
}

fn field<'a>(fields: &'a [String], name: &str) -> Vec<&'a str> {
    fields
        .iter()
        .filter(|f| {
            f.split_once(':')
                .is_some_and(|(n, _)| n.eq_ignore_ascii_case(name))
        })
        .map(String::as_str)
        .collect()
}

/// The reply of a refusal, checked to be `code enhanced`.
#[track_caller]
fn refused(j: &Judgement, code: u16, enhanced: &str) -> String {
    let reply = match &j.action {
        Action::Reject(r) if code >= 500 => r,
        Action::TempFail(r) if code < 500 => r,
        other => panic!("expected {code} {enhanced}, got {other:?} ({j:?})"),
    };
    assert_eq!(
        (reply.code, reply.enhanced.as_str()),
        (code, enhanced),
        "{j:?}"
    );
    reply.lines.join(" ")
}

/// Every header line of avsx's making fits RFC 5322's 998-character limit and ends in CRLF.
#[track_caller]
fn well_formed(message: &str) {
    assert!(message.ends_with("\r\n"));
    for line in message.split("\r\n") {
        assert!(line.len() <= 998, "line of {} characters", line.len());
        assert!(
            !line.contains('\n') && !line.contains('\r'),
            "bare line end in {line:?}"
        );
    }
}

fn scan_counts(registry: &Registry) -> String {
    let mut text = String::new();
    prometheus_client::encoding::text::encode(&mut text, registry).unwrap();
    text.lines()
        .filter(|l| l.starts_with("avsx_scan_seconds_count"))
        .collect::<Vec<_>>()
        .join("\n")
}

#[test]
fn real_scanners() {
    let mut spamd = Spamd::start(Host::Loopback).expect("start spamd");
    let mut clamd = Clamd::start(Host::Loopback).expect("start clamd");
    let (spamd_addr, clamd_addr) = (spamd.addr(), clamd.addr());
    let both = |spamd_max: u64| {
        policy(
            Some(scanner(spamd_addr, 30_000, spamd_max)),
            Some(scanner(clamd_addr, 30_000, 25 << 20)),
        )
    };
    let mut registry = Registry::with_prefix("avsx");
    let metrics = Metrics::register(&mut registry);
    let scanners = Scanners::new(&both(512_000), metrics);

    // GTUBE: refused before the queue with spamd's score.
    let gtube = mail("Cheap watches", "", GTUBE);
    let j = judge_with(&scanners, &gtube);
    let text = refused(&j, 550, "5.7.1");
    assert_eq!(j.label, "killed");
    assert_eq!(j.virus, None);
    let score = j.score.expect("a score");
    assert!(score >= 16.0, "{j:?}");
    assert!(text.contains("spam"), "{text}");
    // The reference client agrees on the score.
    let reference = spamd.check(&gtube).expect("spamc -c");
    assert_eq!(score, reference.score);

    // Ordinary mail passes untagged, with X-Spam-Status: No right below the Received field.
    let plain = ordinary();
    let j = judge_with(&scanners, &plain);
    assert_eq!(j.label, "clean", "{j:?}");
    let (out, tagged) = delivered(&j);
    assert!(!tagged);
    well_formed(&out);
    let score = j.score.expect("a score");
    assert!(score < 4.5, "{j:?}");
    assert_eq!(score, spamd.check(&plain).expect("spamc -c").score);
    let f = fields(&out);
    assert!(f[0].starts_with("Received: from client.example"), "{f:?}");
    assert!(
        f[1].starts_with("X-Spam-Status: No, score=") && f[1].contains(" required=4.5"),
        "{f:?}"
    );
    assert!(field(&f, "X-Spam-Flag").is_empty() && field(&f, "X-Spam-Score").is_empty());
    assert_eq!(
        field(&f, "Subject"),
        ["Subject: Minutes of Tuesday's meeting"]
    );
    // The rest of the message is untouched.
    let plain = String::from_utf8(plain).unwrap();
    let (received, rest) = plain.split_at(plain.find("From: Alice").unwrap());
    assert!(out.starts_with(received) && out.ends_with(rest), "{out}");
    assert_eq!(out.len(), plain.len() + f[1].len() + 2);

    // Forged verdict fields are removed; only avsx's own remain.
    let forged = mail(
        "Lunch?",
        "X-Spam-Flag: YES\r\nX-Spam-Status: No, score=-100.0\r\n\tNOTHING_TO_SEE\r\n\
X-Avsx-Unscanned: spamd: trust me\r\n",
        "Lunch at noon?",
    );
    let j = judge_with(&scanners, &forged);
    let (out, _) = delivered(&j);
    let f = fields(&out);
    assert!(field(&f, "X-Spam-Flag").is_empty(), "{out}");
    assert!(field(&f, "X-Avsx-Unscanned").is_empty(), "{out}");
    let status = field(&f, "X-Spam-Status");
    assert_eq!(status.len(), 1, "{out}");
    assert!(!status[0].contains("-100"), "{out}");
    assert!(!out.contains("NOTHING_TO_SEE"), "{out}");

    // Low levels: tagged, with the X-Spam fields and the subject tag, still delivered.
    let low = Scan {
        tag_level: 0.1,
        kill_level: 2000.0,
        ..both(512_000)
    };
    let j = judge(&low, &gtube);
    assert_eq!(j.label, "tagged", "{j:?}");
    let (out, tagged) = delivered(&j);
    assert!(tagged);
    well_formed(&out);
    let f = fields(&out);
    assert_eq!(f[1], "X-Spam-Flag: YES");
    let score = j.score.expect("a score");
    assert_eq!(f[2], format!("X-Spam-Score: {score:.1}"));
    assert!(
        f[3].starts_with(&format!(
            "X-Spam-Status: Yes, score={score:.1} required=0.1 tests="
        )) && f[3].contains("GTUBE"),
        "{f:?}"
    );
    assert_eq!(field(&f, "Subject"), ["Subject: [SPAM] Cheap watches"]);

    // EICAR: refused, naming the signature clamd found (the reference client agrees).
    let virus = mail("Invoice", "", EICAR);
    let j = judge_with(&scanners, &virus);
    let text = refused(&j, 554, "5.7.1");
    assert_eq!(j.label, "virus");
    let name = j.virus.clone().expect("a virus name");
    assert!(name.starts_with(EICAR_SIGNATURE), "{name}");
    assert!(text.contains(&name), "{text}");
    assert_eq!(
        clamd.scan(&virus).expect("clamdscan"),
        ClamScan::Found(name)
    );

    // Over spamd's size limit (2 KiB here), by each oversize policy.
    let big = mail(
        "Report",
        "",
        &"All figures are in the attached table. ".repeat(60),
    );
    assert!(big.len() > 2048);
    let over = |oversize| Scan {
        oversize,
        ..both(2048)
    };
    let j = judge(&over(Oversize::Reject), &big);
    refused(&j, 552, "5.3.4");
    assert_eq!((j.label, j.score), ("oversize_reject", None));
    let j = judge(&over(Oversize::Tempfail), &big);
    refused(&j, 451, "4.3.1");
    assert_eq!(j.label, "tempfail");
    let j = judge(&over(Oversize::AcceptUnscanned), &big);
    assert_eq!((j.label, j.score), ("unscanned", None));
    let (out, tagged) = delivered(&j);
    assert!(!tagged);
    let f = fields(&out);
    assert_eq!(
        field(&f, "X-Avsx-Unscanned"),
        [format!(
            "X-Avsx-Unscanned: spamd: {} bytes, over its 2048-byte limit",
            big.len()
        )]
    );
    assert!(field(&f, "X-Spam-Status").is_empty(), "{out}");
    // clamd still scans what is too big for spamd.
    let big_virus = mail("Report", "", &format!("{}\r\n{EICAR}", "x".repeat(3000)));
    let j = judge(&over(Oversize::AcceptUnscanned), &big_virus);
    refused(&j, 554, "5.7.1");

    // Every scan made is timed, per scanner.
    let counts = scan_counts(&registry);
    assert!(
        counts.contains(r#"avsx_scan_seconds_count{scanner="spamd"} 4"#),
        "{counts}"
    );
    assert!(
        counts.contains(r#"avsx_scan_seconds_count{scanner="clamd"} 4"#),
        "{counts}"
    );

    // Both daemons stopped: 451, never delivery; delivery only when so configured.
    spamd.process().stop();
    clamd.process().stop();
    let (j, log) = judge_logged(&both(512_000), &plain.clone().into_bytes());
    let text = refused(&j, 451, "4.7.1");
    assert_eq!(text, "content scanner unavailable, try again later");
    assert_eq!(j.label, "tempfail");
    assert!(
        log.contains(&format!("spamd at {spamd_addr}: cannot connect")),
        "{log}"
    );
    assert!(
        log.contains(&format!("clamd at {clamd_addr}: cannot connect")),
        "{log}"
    );
    let accept = Scan {
        on_failure: OnFailure::AcceptUnscanned,
        ..both(512_000)
    };
    let j = judge(&accept, plain.as_bytes());
    assert_eq!(j.label, "unscanned");
    let (out, tagged) = delivered(&j);
    assert!(!tagged);
    let f = fields(&out);
    let unscanned = field(&f, "X-Avsx-Unscanned");
    assert_eq!(unscanned.len(), 2, "{out}");
    assert!(
        unscanned[0].starts_with("X-Avsx-Unscanned: spamd: cannot connect"),
        "{out}"
    );
    assert!(
        unscanned[1].starts_with("X-Avsx-Unscanned: clamd: cannot connect"),
        "{out}"
    );
    assert!(field(&f, "X-Spam-Status").is_empty(), "{out}");
}

/// What a fake scanner does with a connection once the client has sent its request.
#[derive(Clone)]
enum Fake {
    Answer(Vec<u8>),
    /// Keeps the connection open and says nothing.
    Silent,
}

/// Serves `fake` on one connection, recording the request: read until the client
/// half-closes or pauses (clamd's client does not half-close), then act.
fn serve(mut conn: impl Read + Write, fake: &Fake, seen: &Mutex<Vec<Vec<u8>>>) {
    let mut request = Vec::new();
    let mut buf = [0u8; 65536];
    loop {
        match conn.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => request.extend_from_slice(&buf[..n]),
        }
    }
    seen.lock().unwrap().push(request);
    match fake {
        Fake::Answer(bytes) => {
            let _ = conn.write_all(bytes);
        }
        Fake::Silent => std::thread::sleep(Duration::from_secs(60)),
    }
}

type Seen = Arc<Mutex<Vec<Vec<u8>>>>;

/// A fake scanner on a loopback port; runs until the test binary exits.
fn fake_tcp(fake: Fake) -> (SocketAddr, Seen) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let seen = Seen::default();
    let record = seen.clone();
    std::thread::spawn(move || {
        for conn in listener.incoming().flatten() {
            let (fake, record) = (fake.clone(), record.clone());
            conn.set_read_timeout(Some(Duration::from_millis(300)))
                .unwrap();
            std::thread::spawn(move || serve(conn, &fake, &record));
        }
    });
    (addr, seen)
}

/// A fake scanner on a Unix socket at `path`.
fn fake_unix(path: &Path, fake: Fake) -> Seen {
    let listener = UnixListener::bind(path).unwrap();
    let seen = Seen::default();
    let record = seen.clone();
    std::thread::spawn(move || {
        for conn in listener.incoming().flatten() {
            let (fake, record) = (fake.clone(), record.clone());
            conn.set_read_timeout(Some(Duration::from_millis(300)))
                .unwrap();
            std::thread::spawn(move || serve(conn, &fake, &record));
        }
    });
    seen
}

/// Loopback ports nothing listens on.
fn unused() -> String {
    format!("127.0.0.1:{}", free_port().unwrap())
}

#[test]
fn scanners_down_tempfail_and_never_deliver() {
    let missing = tempfile::tempdir().unwrap();
    let socket = missing.path().join("no-clamd.sock");
    let p = policy(
        Some(scanner(unused(), 2000, 512_000)),
        Some(scanner(socket.display(), 2000, 25 << 20)),
    );
    let (j, log) = judge_logged(&p, &ordinary());
    refused(&j, 451, "4.7.1");
    assert_eq!(
        (j.label, j.score, j.virus.as_deref()),
        ("tempfail", None, None)
    );
    assert!(log.contains("spamd at 127.0.0.1:"), "{log}");
    assert!(
        log.contains(&format!("clamd at {}: cannot connect", socket.display())),
        "{log}"
    );

    // One scanner down is enough to refuse for now.
    let (addr, _) = fake_tcp(Fake::Answer(b"stream: OK\0".to_vec()));
    let p = policy(
        Some(scanner(unused(), 2000, 512_000)),
        Some(scanner(addr, 2000, 25 << 20)),
    );
    refused(&judge(&p, &ordinary()), 451, "4.7.1");
}

#[test]
fn accept_unscanned_delivers_with_the_reason() {
    let p = Scan {
        on_failure: OnFailure::AcceptUnscanned,
        subject_tag: None,
        ..policy(
            Some(scanner(unused(), 2000, 512_000)),
            Some(scanner(unused(), 2000, 25 << 20)),
        )
    };
    let j = judge(&p, &ordinary());
    assert_eq!((j.label, j.score), ("unscanned", None));
    let (out, tagged) = delivered(&j);
    assert!(!tagged);
    well_formed(&out);
    let f = fields(&out);
    assert!(
        f[1].starts_with("X-Avsx-Unscanned: spamd: cannot connect: "),
        "{f:?}"
    );
    assert!(
        f[2].starts_with("X-Avsx-Unscanned: clamd: cannot connect: "),
        "{f:?}"
    );
    // Internal addresses stay in the log, out of the mail.
    assert!(!f[1].contains("127.0.0.1"), "{f:?}");
}

#[test]
fn garbage_from_spamd_tempfails_with_a_precise_log() {
    let (garbage, seen) = fake_tcp(Fake::Answer(b"HTTP/1.0 400 Bad Request\r\n\r\n".to_vec()));
    let (clamd, _) = fake_tcp(Fake::Answer(b"stream: OK\0".to_vec()));
    let p = policy(
        Some(scanner(garbage, 5000, 512_000)),
        Some(scanner(clamd, 5000, 25 << 20)),
    );
    let (j, log) = judge_logged(&p, &ordinary());
    refused(&j, 451, "4.7.1");
    assert!(
        log.contains(&format!(
            "spamd at {garbage}: malformed answer: status line \"HTTP/1.0 400 Bad Request\""
        )),
        "{log}"
    );
    // The request was SPAMC/1.5 SYMBOLS with the exact length, then the message.
    let message = ordinary();
    let mut expected = format!(
        "SYMBOLS SPAMC/1.5\r\nContent-length: {}\r\nUser: avsx\r\n\r\n",
        message.len()
    )
    .into_bytes();
    expected.extend_from_slice(&message);
    assert_eq!(seen.lock().unwrap().as_slice(), [expected]);

    // A spamd refusing the request (non-zero status) is named with its status.
    let (refusing, _) = fake_tcp(Fake::Answer(
        b"SPAMD/1.0 76 Bad header line: (Content-Length mismatch)\r\n".to_vec(),
    ));
    let (clamd, _) = fake_tcp(Fake::Answer(b"stream: OK\0".to_vec()));
    let p = policy(
        Some(scanner(refusing, 5000, 512_000)),
        Some(scanner(clamd, 5000, 25 << 20)),
    );
    let (j, log) = judge_logged(&p, &ordinary());
    refused(&j, 451, "4.7.1");
    assert!(
        log.contains(&format!("spamd at {refusing}: spamd answered status 76")),
        "{log}"
    );

    // A spamd that closes mid-answer.
    let (cut, _) = fake_tcp(Fake::Answer(
        b"SPAMD/1.1 0 EX_OK\r\nContent-length: 40\r\nSpam: True ; 9.0 / 5.0\r\n\r\nRULE".to_vec(),
    ));
    let p = policy(Some(scanner(cut, 5000, 512_000)), None);
    let (j, log) = judge_logged(&p, &ordinary());
    refused(&j, 451, "4.7.1");
    assert!(
        log.contains(&format!("spamd at {cut}: connection closed after")),
        "{log}"
    );

    // Garbage from clamd likewise.
    let (garbage, _) = fake_tcp(Fake::Answer(b"UNKNOWN COMMAND\0".to_vec()));
    let p = policy(None, Some(scanner(garbage, 5000, 25 << 20)));
    let (j, log) = judge_logged(&p, &ordinary());
    refused(&j, 451, "4.7.1");
    assert!(
        log.contains(&format!(
            "clamd at {garbage}: malformed answer: \"UNKNOWN COMMAND\""
        )),
        "{log}"
    );
}

#[test]
fn silent_scanners_tempfail_within_their_timeout() {
    let (spamd, _) = fake_tcp(Fake::Silent);
    let (clamd, _) = fake_tcp(Fake::Silent);
    let p = policy(
        Some(scanner(spamd, 1000, 512_000)),
        Some(scanner(clamd, 1000, 25 << 20)),
    );
    let started = Instant::now();
    let (j, log) = judge_logged(&p, &ordinary());
    let took = started.elapsed();
    refused(&j, 451, "4.7.1");
    // Both time out at once, not one after the other (that would take 2 s).
    assert!(took >= Duration::from_millis(1000), "{took:?}");
    assert!(took < Duration::from_millis(1900), "{took:?}");
    assert!(
        log.contains(&format!("spamd at {spamd}: no complete answer within 1s")),
        "{log}"
    );
    assert!(
        log.contains(&format!("clamd at {clamd}: no complete answer within 1s")),
        "{log}"
    );
}

#[test]
fn unix_socket_scanners() {
    let dir = tempfile::tempdir().unwrap();
    let spamd_path = dir.path().join("spamd.sock");
    let clamd_path = dir.path().join("clamd.sock");
    let spamd = fake_unix(
        &spamd_path,
        Fake::Answer(
            b"SPAMD/1.1 0 EX_OK\r\nContent-length: 19\r\nSpam: False ; 1.2 / 5.0\r\n\r\n\
HTML_MESSAGE,RULE_2"
                .to_vec(),
        ),
    );
    let clamd = fake_unix(&clamd_path, Fake::Answer(b"stream: OK\0".to_vec()));
    let p = policy(
        Some(scanner(spamd_path.display(), 5000, 512_000)),
        Some(scanner(clamd_path.display(), 5000, 25 << 20)),
    );
    // Larger than one INSTREAM chunk, to see the framing.
    let message = mail("Big", "", &"0123456789abcdef".repeat(5000));
    let j = judge(&p, &message);
    assert_eq!((j.label, j.score), ("clean", Some(1.2)));
    let (out, _) = delivered(&j);
    let f = fields(&out);
    assert_eq!(
        f[1],
        "X-Spam-Status: No, score=1.2 required=4.5 tests=HTML_MESSAGE,RULE_2"
    );

    assert!(spamd.lock().unwrap()[0].ends_with(&message));
    // clamd got zINSTREAM, the message in length-prefixed chunks, and a zero-length end.
    let request = clamd.lock().unwrap()[0].clone();
    let mut rest = request.strip_prefix(b"zINSTREAM\0").expect("zINSTREAM");
    let mut streamed = Vec::new();
    loop {
        let (len, tail) = rest.split_at(4);
        let len = u32::from_be_bytes(len.try_into().unwrap()) as usize;
        if len == 0 {
            assert!(tail.is_empty());
            break;
        }
        streamed.extend_from_slice(&tail[..len]);
        rest = &tail[len..];
    }
    assert_eq!(streamed, message);
}

#[test]
fn oversize_is_refused_without_scanning() {
    // Nothing listens: a refusal for size must come before any connection attempt.
    let message = ordinary();
    let p = |oversize| Scan {
        oversize,
        ..policy(
            Some(scanner(unused(), 2000, 512_000)),
            Some(scanner(unused(), 2000, 100)),
        )
    };
    let j = judge(&p(Oversize::Reject), &message);
    let text = refused(&j, 552, "5.3.4");
    assert!(text.contains("too big"), "{text}");
    assert_eq!(j.label, "oversize_reject");
    let j = judge(&p(Oversize::Tempfail), &message);
    refused(&j, 451, "4.3.1");
    // Accepting oversize mail unscanned still needs the other scanner's verdict.
    let j = judge(&p(Oversize::AcceptUnscanned), &message);
    refused(&j, 451, "4.7.1");
}
