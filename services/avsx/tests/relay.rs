//! The relay against real peers: Postfix's `smtp-sink` as the internal server (it dumps
//! every mail it takes, with the envelope it was given), smtp-sink told to refuse, drop
//! or stall at a chosen command, and a small scripted server of our own for what
//! smtp-sink cannot do (refuse one recipient of several, offer STARTTLS). Everything
//! runs on loopback; every server is killed when its handle drops.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use avsx::envelope::{Envelope, Reply};
use avsx::relay::Relay;
use testbed::servers::{Certs, Host, Server, SmtpSink};

/// A message as the SMTP front hands it over: CRLF lines, dot-unstuffed, 8-bit text, a
/// line that starts with a dot (the wire needs it stuffed), trailing blanks and empty
/// lines that must survive.
const MESSAGE: &str = "Received: from client.example (client.example [192.0.2.1])\r\n\
\tby mx1.example.org (avsx) with ESMTPS id r3l4y;\r\n\
\tMon, 1 Jun 2026 10:00:00 +0000\r\n\
From: Alice <alice@example.net>\r\n\
To: Bob <bob@example.org>, Carol <carol@example.org>\r\n\
Subject: =?UTF-8?Q?Gr=C3=BC=C3=9Fe?=\r\n\
Message-ID: <1@example.net>\r\n\
MIME-Version: 1.0\r\n\
Content-Type: text/plain; charset=utf-8\r\n\
Content-Transfer-Encoding: 8bit\r\n\
\r\n\
Grüße aus Köln.\r\n\
.a line that starts with a dot\r\n\
..and one with two\r\n\
.\r\n\
trailing blanks   \r\n\
\r\n\
\r\n\
the end\r\n";

fn envelope(from: &str, to: &[&str]) -> Envelope {
    Envelope {
        id: "r3l4y".to_owned(),
        client: "192.0.2.1:40000".parse().unwrap(),
        helo: "client.example".to_owned(),
        mail_from: from.to_owned(),
        rcpt_to: to.iter().map(|s| (*s).to_owned()).collect(),
        tls: None,
    }
}

fn relay_to(addr: SocketAddr, timeout_secs: u64) -> Relay {
    Relay::new(&avsx::config::Relay {
        address: addr.to_string(),
        timeout_secs,
    })
    .unwrap()
}

/// Runs one `send` to completion (a runtime per call, as each test is on its own).
fn send(relay: &Relay, env: &Envelope, message: &[u8]) -> Reply {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
        .block_on(relay.send(env, message))
}

/// A mail as smtp-sink dumped it: its `X-...` records, and the message as it arrived
/// (smtp-sink writes LF line ends and adds one empty line; the message has CRLF).
struct Dump {
    records: Vec<(String, String)>,
    message: String,
}

impl Dump {
    fn parse(dump: &str) -> Dump {
        let body = dump
            .strip_suffix('\n')
            .expect("smtp-sink ends a dump with an empty line");
        let received = body.find("\nReceived: ").expect("smtp-sink's Received") + 1;
        let records = body[..received]
            .lines()
            .map(|l| {
                let (k, v) = l.split_once(": ").expect("a record");
                (k.to_owned(), v.to_owned())
            })
            .collect();
        // The Received header is three lines: the first and two continuation lines.
        let mut rest = &body[received..];
        for _ in 0..3 {
            rest = &rest[rest.find('\n').unwrap() + 1..];
        }
        Dump {
            records,
            message: rest.replace('\n', "\r\n"),
        }
    }

    fn all(&self, key: &str) -> Vec<&str> {
        self.records
            .iter()
            .filter(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
            .collect()
    }
}

fn assert_reply(r: &Reply, code: u16, enhanced: &str, texts: &[&str]) {
    assert_eq!((r.code, r.enhanced.as_str()), (code, enhanced), "{r}");
    for t in texts {
        assert!(r.lines.join(" ").contains(t), "{t:?} not in {r}");
    }
}

#[test]
fn a_mail_arrives_byte_identical_with_its_envelope() {
    let sink = SmtpSink::start(Host::Loopback).unwrap();
    let relay = relay_to(sink.addr(), 10).helo("mx1.example.org");
    let env = envelope("alice@example.net", &["bob@example.org"]);
    let reply = send(&relay, &env, MESSAGE.as_bytes());
    assert_reply(&reply, 250, "2.0.0", &["r3l4y", "Ok"]);

    let dumps = sink.wait_for_messages(1, Duration::from_secs(5)).unwrap();
    assert_eq!(dumps.len(), 1);
    let d = Dump::parse(&dumps[0]);
    assert_eq!(d.message, MESSAGE, "the message changed on the way");
    assert_eq!(d.all("X-Helo-Args"), ["mx1.example.org"]);
    // 8-bit content is announced (smtp-sink offers 8BITMIME) and otherwise untouched.
    assert_eq!(d.all("X-Mail-Args"), ["<alice@example.net> BODY=8BITMIME"]);
    assert_eq!(d.all("X-Rcpt-Args"), ["<bob@example.org>"]);
}

#[test]
fn the_null_sender_and_several_recipients_go_as_given() {
    let sink = SmtpSink::start(Host::Loopback).unwrap();
    let relay = relay_to(sink.addr(), 10);
    let rcpts = [
        "bob@example.org",
        "carol@example.org",
        "\"dave smith\"@example.org",
        "postmaster@example.org",
    ];
    let env = envelope("", &rcpts);
    let ascii = "From: MAILER-DAEMON@example.net\r\nSubject: bounce\r\n\r\nundeliverable\r\n";
    let reply = send(&relay, &env, ascii.as_bytes());
    assert_reply(&reply, 250, "2.0.0", &[]);

    let dumps = sink.wait_for_messages(1, Duration::from_secs(5)).unwrap();
    let d = Dump::parse(&dumps[0]);
    // ASCII content: no BODY parameter.
    assert_eq!(d.all("X-Mail-Args"), ["<>"]);
    let want: Vec<String> = rcpts.iter().map(|r| format!("<{r}>")).collect();
    assert_eq!(d.all("X-Rcpt-Args"), want);
    assert_eq!(d.message, ascii);
}

/// A dumping smtp-sink with extra options (refusals, delays, disconnects).
fn odd_sink(options: &[&str]) -> SmtpSink {
    SmtpSink::start_with(Host::Loopback, options).unwrap()
}

fn send_to_odd_sink(options: &[&str], rcpts: &[&str]) -> Reply {
    let sink = odd_sink(options);
    let relay = relay_to(sink.addr(), 10);
    send(
        &relay,
        &envelope("alice@example.net", rcpts),
        MESSAGE.as_bytes(),
    )
}

#[test]
fn internal_4xx_at_any_stage_is_451_with_its_text() {
    let reply = send_to_odd_sink(
        &["-r", "MAIL", "-b", "452 4.3.1 Insufficient system storage"],
        &["bob@example.org"],
    );
    assert_reply(
        &reply,
        451,
        "4.3.1",
        &["MAIL FROM", "452 4.3.1 Insufficient system storage"],
    );

    let reply = send_to_odd_sink(
        &["-r", "RCPT", "-b", "450 4.2.1 Mailbox busy"],
        &["bob@example.org", "carol@example.org"],
    );
    assert_reply(
        &reply,
        451,
        "4.2.1",
        &["<bob@example.org>: 450 4.2.1 Mailbox busy"],
    );

    let reply = send_to_odd_sink(
        &["-r", ".", "-b", "451 4.3.0 Queue file write error"],
        &["bob@example.org"],
    );
    assert_reply(
        &reply,
        451,
        "4.3.0",
        &["end of data", "451 4.3.0 Queue file write error"],
    );
}

#[test]
fn internal_5xx_is_550_with_its_code_and_text() {
    let reply = send_to_odd_sink(
        &["-f", ".", "-B", "554 5.7.1 Message content rejected"],
        &["bob@example.org"],
    );
    assert_reply(
        &reply,
        550,
        "5.7.1",
        &["end of data", "554 5.7.1 Message content rejected"],
    );

    // Every recipient refused for good: 550 too.
    let reply = send_to_odd_sink(
        &[
            "-f",
            "RCPT",
            "-B",
            "550 5.1.1 Recipient address rejected: User unknown",
        ],
        &["bob@example.org", "carol@example.org"],
    );
    assert_reply(
        &reply,
        550,
        "5.1.1",
        &[
            "<bob@example.org>: 550",
            "<carol@example.org>: 550",
            "User unknown",
        ],
    );
}

#[test]
fn a_session_refused_or_dropped_is_temporary() {
    // A 5xx greeting says "not you", not "not this mail".
    let reply = send_to_odd_sink(
        &["-f", "CONNECT", "-B", "554 5.7.1 Access denied"],
        &["bob@example.org"],
    );
    assert_reply(&reply, 451, "4.7.1", &["554 5.7.1 Access denied"]);

    // 421 and hang up when the recipient is given.
    let reply = send_to_odd_sink(&["-Q", "RCPT"], &["bob@example.org", "carol@example.org"]);
    assert_eq!(reply.code, 451, "{reply}");
    assert!(
        reply.lines[0].contains("RCPT TO") && reply.lines[0].contains("421"),
        "{reply}"
    );

    // Hang up without a word after the end of data: nobody knows if it was taken.
    let reply = send_to_odd_sink(&["-q", "."], &["bob@example.org"]);
    assert_reply(&reply, 451, "4.4.2", &["end of data"]);
}

#[test]
fn nothing_listening_is_451_at_once() {
    let port = testbed::ports::free_port().unwrap();
    let relay = relay_to(([127, 0, 0, 1], port).into(), 10);
    let started = Instant::now();
    let reply = send(
        &relay,
        &envelope("a@example.net", &["b@example.org"]),
        b"x\r\n",
    );
    assert_reply(
        &reply,
        451,
        "4.4.1",
        &["internal server unavailable", &port.to_string()],
    );
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "{:?}",
        started.elapsed()
    );
}

#[test]
fn a_server_that_never_answers_is_451_within_the_timeout() {
    // The kernel completes the handshake into the backlog; nobody ever speaks.
    let silent = TcpListener::bind("127.0.0.1:0").unwrap();
    let relay = relay_to(silent.local_addr().unwrap(), 2);
    let started = Instant::now();
    let reply = send(
        &relay,
        &envelope("a@example.net", &["b@example.org"]),
        b"x\r\n",
    );
    let took = started.elapsed();
    assert_reply(&reply, 451, "4.4.2", &["greeting", "within 2 s"]);
    assert!(
        (Duration::from_secs(2)..Duration::from_secs(4)).contains(&took),
        "{took:?}"
    );
}

#[test]
fn a_server_stalling_after_the_data_is_451_within_the_timeout() {
    // smtp-sink answers the end of data only after 30 s: we must not wait that long,
    // and must not say 250.
    let sink = odd_sink(&["-W", ".:30"]);
    let relay = relay_to(sink.addr(), 2);
    let started = Instant::now();
    let reply = send(
        &relay,
        &envelope("a@example.net", &["b@example.org"]),
        MESSAGE.as_bytes(),
    );
    let took = started.elapsed();
    assert_reply(&reply, 451, "4.4.2", &["end of data", "within 2 s"]);
    assert!(took < Duration::from_secs(4), "{took:?}");
}

// ---- a scripted server, for what smtp-sink cannot do ----

/// What the scripted server does with STARTTLS.
enum StartTls {
    /// Does not offer it.
    No,
    /// Offers it and completes the handshake with this config.
    Works(Arc<rustls::ServerConfig>),
    /// Offers it, says 220, then sends garbage instead of a handshake.
    Breaks,
}

/// A tiny SMTP server on its own thread: refuses the recipients in `refuse` with 550
/// and takes the rest. Records each connection's commands (prefixed `tls ` once
/// encrypted) and the data it received.
struct Scripted {
    addr: SocketAddr,
    /// One entry per connection: its command lines.
    sessions: Arc<Mutex<Vec<Vec<String>>>>,
    data: Arc<Mutex<Vec<String>>>,
}

fn scripted(refuse: &'static [&'static str], starttls: StartTls) -> Scripted {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let sessions = Arc::new(Mutex::new(Vec::new()));
    let data = Arc::new(Mutex::new(Vec::new()));
    let (s, d) = (sessions.clone(), data.clone());
    std::thread::spawn(move || {
        for tcp in listener.incoming() {
            let Ok(tcp) = tcp else { return };
            tcp.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
            s.lock().unwrap().push(Vec::new());
            let script = Script {
                refuse,
                starttls: &starttls,
                sessions: &s,
                data: &d,
            };
            if let Some(tcp) = script.serve(tcp, false) {
                if let StartTls::Works(config) = &starttls {
                    let conn = rustls::ServerConnection::new(config.clone()).unwrap();
                    script.serve(rustls::StreamOwned::new(conn, tcp), true);
                }
            }
        }
    });
    Scripted {
        addr,
        sessions,
        data,
    }
}

struct Script<'a> {
    refuse: &'static [&'static str],
    starttls: &'a StartTls,
    sessions: &'a Mutex<Vec<Vec<String>>>,
    data: &'a Mutex<Vec<String>>,
}

impl Script<'_> {
    /// Speaks SMTP on `stream`; gives the stream back when the client asked for
    /// STARTTLS and the handshake is to happen.
    fn serve<S: Read + Write>(&self, mut stream: S, tls: bool) -> Option<S> {
        if !tls {
            stream.write_all(b"220 scripted ESMTP\r\n").ok()?;
        }
        let mut reader = BufReader::new(&mut stream);
        loop {
            let mut line = String::new();
            if reader.read_line(&mut line).ok()? == 0 {
                return None;
            }
            let line = line.trim_end().to_owned();
            let prefix = if tls { "tls " } else { "" };
            self.sessions
                .lock()
                .unwrap()
                .last_mut()
                .unwrap()
                .push(format!("{prefix}{line}"));
            let verb = line
                .split([' ', ':'])
                .next()
                .unwrap_or("")
                .to_ascii_uppercase();
            let answer = match verb.as_str() {
                "EHLO" => {
                    let offer = !tls && !matches!(self.starttls, StartTls::No);
                    let tls_line = if offer { "250-STARTTLS\r\n" } else { "" };
                    format!("250-scripted\r\n{tls_line}250-8BITMIME\r\n250 ENHANCEDSTATUSCODES\r\n")
                }
                "STARTTLS" => {
                    let w = reader.get_mut();
                    w.write_all(b"220 2.0.0 Ready to start TLS\r\n").ok()?;
                    if let StartTls::Breaks = self.starttls {
                        let _ = w.write_all(b"this is not a TLS handshake\r\n");
                        return None;
                    }
                    drop(reader);
                    return Some(stream);
                }
                "MAIL" => "250 2.1.0 Ok\r\n".to_owned(),
                "RCPT" => {
                    let addr = line
                        .split_once('<')
                        .and_then(|(_, a)| a.split_once('>'))
                        .map_or("", |(a, _)| a);
                    if self.refuse.contains(&addr) {
                        format!("550 5.1.1 <{addr}>: Recipient address rejected: User unknown\r\n")
                    } else {
                        "250 2.1.5 Ok\r\n".to_owned()
                    }
                }
                "DATA" => {
                    reader
                        .get_mut()
                        .write_all(b"354 End data with <CR><LF>.<CR><LF>\r\n")
                        .ok()?;
                    let mut body = String::new();
                    loop {
                        let mut l = String::new();
                        if reader.read_line(&mut l).ok()? == 0 {
                            return None;
                        }
                        if l == ".\r\n" {
                            break;
                        }
                        body.push_str(&l);
                    }
                    self.data.lock().unwrap().push(body);
                    "250 2.0.0 Ok: queued as SCRIPTED1\r\n".to_owned()
                }
                "QUIT" => {
                    let _ = reader.get_mut().write_all(b"221 2.0.0 Bye\r\n");
                    return None;
                }
                _ => "502 5.5.2 Error: command not recognized\r\n".to_owned(),
            };
            reader.get_mut().write_all(answer.as_bytes()).ok()?;
        }
    }
}

impl Scripted {
    fn sessions(&self) -> Vec<Vec<String>> {
        self.sessions.lock().unwrap().clone()
    }
}

#[test]
fn some_recipients_refused_is_451_for_all_and_nothing_is_sent() {
    let server = scripted(&["carol@example.org"], StartTls::No);
    let relay = relay_to(server.addr, 10);
    let env = envelope(
        "alice@example.net",
        &["bob@example.org", "carol@example.org", "dave@example.org"],
    );
    let reply = send(&relay, &env, MESSAGE.as_bytes());
    assert_reply(
        &reply,
        451,
        "4.1.1",
        &[
            "1 of 3 recipients refused",
            "<carol@example.org>: 550 5.1.1",
        ],
    );
    // Every recipient was asked; DATA never sent.
    let session = &server.sessions()[0];
    let rcpts = session.iter().filter(|l| l.starts_with("RCPT")).count();
    assert_eq!(rcpts, 3, "{session:?}");
    assert!(!session.iter().any(|l| l == "DATA"), "{session:?}");
    assert!(server.data.lock().unwrap().is_empty());
}

#[test]
fn starttls_is_used_when_offered() {
    testbed::require::root().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let certs = Certs::generate(dir.path(), [127, 0, 0, 1].into()).unwrap();
    let server = scripted(&[], StartTls::Works(server_config(&certs)));
    let relay = relay_to(server.addr, 10);
    let env = envelope("alice@example.net", &["bob@example.org"]);
    let reply = send(&relay, &env, MESSAGE.as_bytes());
    assert_reply(&reply, 250, "2.0.0", &["SCRIPTED1"]);

    let sessions = server.sessions();
    assert_eq!(sessions.len(), 1, "{sessions:?}");
    let s = &sessions[0];
    assert_eq!(s[1], "STARTTLS", "{s:?}");
    assert!(
        s.iter()
            .any(|l| l.starts_with("tls MAIL FROM:<alice@example.net>")),
        "the transaction went in the clear: {s:?}"
    );
    // Over TLS the data is dot-stuffed like in the clear: the scripted server does not
    // unstuff, so compare against the stuffed form.
    let stuffed = MESSAGE.replace("\r\n.", "\r\n..");
    assert_eq!(server.data.lock().unwrap()[0], stuffed);
}

#[test]
fn a_failing_starttls_falls_back_to_a_plain_connection() {
    let server = scripted(&[], StartTls::Breaks);
    let relay = relay_to(server.addr, 10);
    let env = envelope("alice@example.net", &["bob@example.org"]);
    let reply = send(&relay, &env, MESSAGE.as_bytes());
    assert_reply(&reply, 250, "2.0.0", &["SCRIPTED1"]);

    let sessions = server.sessions();
    assert_eq!(sessions.len(), 2, "{sessions:?}");
    assert_eq!(sessions[0].last().map(String::as_str), Some("STARTTLS"));
    // The second connection does not try again; the mail goes in the clear.
    assert!(
        !sessions[1].iter().any(|l| l.contains("STARTTLS")),
        "{sessions:?}"
    );
    assert!(sessions[1].iter().any(|l| l == "DATA"), "{sessions:?}");
}

fn server_config(certs: &Certs) -> Arc<rustls::ServerConfig> {
    use rustls_pki_types::pem::PemObject;
    use rustls_pki_types::{CertificateDer, PrivateKeyDer};
    let chain = CertificateDer::pem_file_iter(&certs.cert)
        .unwrap()
        .collect::<Result<Vec<_>, _>>()
        .unwrap();
    let key = PrivateKeyDer::from_pem_file(&certs.key).unwrap();
    let config = rustls::ServerConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_no_client_auth()
    .with_single_cert(chain, key)
    .unwrap();
    Arc::new(config)
}
