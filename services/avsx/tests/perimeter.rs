//! `avsx run` end to end with the real peers: slapd (recipients), spamd and clamd
//! (judgement), and smtp-sink as the internal server. A client talks SMTP to avsx and
//! sees exactly what a sending server would; what reaches the sink is checked too.

use std::io::{BufRead, BufReader, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use testbed::clients::parse_metrics;
use testbed::ports::free_port;
use testbed::process::Process;
use testbed::servers::{Certs, Clamd, EICAR, Host, Server as _, Slapd, SmtpSink, Spamd};

const GTUBE: &str = "XJS*C4JDBQADN1.NSBN3*2IDNEN*GTUBE-STANDARD-ANTI-UBE-TEST-EMAIL*C.34X";

/// A line-by-line SMTP client that reads whole (multi-line) replies.
struct Smtp {
    reader: BufReader<TcpStream>,
}

impl Smtp {
    fn connect(addr: SocketAddr) -> Smtp {
        let stream = TcpStream::connect(addr).unwrap();
        stream
            .set_read_timeout(Some(Duration::from_secs(60)))
            .unwrap();
        let mut s = Smtp {
            reader: BufReader::new(stream),
        };
        assert_eq!(s.reply().0, 220);
        assert_eq!(s.cmd("EHLO client.example.net").0, 250);
        s
    }

    /// The next reply: code and the text of its last line.
    fn reply(&mut self) -> (u16, String) {
        loop {
            let mut line = String::new();
            self.reader.read_line(&mut line).unwrap();
            assert!(line.len() >= 4, "short reply {line:?}");
            if line.as_bytes()[3] == b' ' {
                return (line[..3].parse().unwrap(), line[4..].trim_end().to_owned());
            }
        }
    }

    fn cmd(&mut self, line: &str) -> (u16, String) {
        self.send(format!("{line}\r\n").as_bytes());
        self.reply()
    }

    fn send(&mut self, bytes: &[u8]) {
        self.reader.get_mut().write_all(bytes).unwrap();
    }

    /// A whole transaction: the reply to the end of DATA (or the first refusal).
    fn mail(&mut self, from: &str, to: &[&str], body: &str) -> (u16, String) {
        let r = self.cmd(&format!("MAIL FROM:<{from}>"));
        if r.0 != 250 {
            return r;
        }
        let mut accepted = 0;
        for t in to {
            let r = self.cmd(&format!("RCPT TO:<{t}>"));
            if r.0 == 250 {
                accepted += 1;
            } else if to.len() == 1 {
                self.cmd("RSET");
                return r;
            }
        }
        assert!(accepted > 0);
        assert_eq!(self.cmd("DATA").0, 354);
        let msg = format!(
            "From: <{from}>\r\nTo: <{}>\r\nSubject: test\r\nMessage-ID: <{}@client.example.net>\r\nDate: Sat, 21 Nov 2026 12:00:00 +0000\r\n\r\n{}\r\n.\r\n",
            to[0],
            rand_id(),
            body.replace('\n', "\r\n")
        );
        self.send(msg.as_bytes());
        self.reply()
    }
}

fn rand_id() -> String {
    format!(
        "{:x}",
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_nanos()
    )
}

/// GET over HTTP/1.1 on loopback: status and body.
fn get(addr: &str, path: &str) -> std::io::Result<(u16, String)> {
    use std::io::Read;
    let mut s = TcpStream::connect(addr)?;
    s.set_read_timeout(Some(Duration::from_secs(5)))?;
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: avsx\r\nConnection: close\r\n\r\n"
    )?;
    let mut resp = String::new();
    s.read_to_string(&mut resp)?;
    let code = resp.get(9..12).and_then(|c| c.parse().ok()).unwrap_or(0);
    let body = resp
        .split_once("\r\n\r\n")
        .map(|x| x.1.to_owned())
        .unwrap_or_default();
    Ok((code, body))
}

struct Perimeter {
    dir: tempfile::TempDir,
    smtp: SocketAddr,
    metrics: String,
    config: PathBuf,
    process: Process,
}

fn avsx(config: &Path, args: &[&str]) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_avsx"));
    c.arg("--config").arg(config).args(args);
    c
}

impl Perimeter {
    fn start(slapd: &Slapd, spamd: &Spamd, clamd: &Clamd, sink: &SmtpSink) -> Perimeter {
        let dir = tempfile::tempdir().unwrap();
        let certs = Certs::generate(dir.path(), "127.0.0.1".parse().unwrap()).unwrap();
        let map = dir.path().join("relay_recipients");
        std::fs::write(&map, "# static part\ncarol@perimeter.test OK\n").unwrap();
        let pass = dir.path().join("ldap.pass");
        std::fs::write(&pass, format!("{}\n", slapd.admin_password())).unwrap();
        let smtp: SocketAddr = ([127, 0, 0, 1], free_port().unwrap()).into();
        let metrics = format!("127.0.0.1:{}", free_port().unwrap());
        let text = format!(
            r#"[smtp]
listen = ["{smtp}"]
hostname = "mx1.perimeter.test"
max_message_bytes = 1000000
command_timeout_secs = 60

[smtp.tls]
cert = "{cert}"
key = "{key}"

[recipients]
domains = ["perimeter.test"]
map = "{map}"

[recipients.ldap]
url = "{ldap}"
bind_dn = "{admin}"
password_file = "{pass}"
base = "{base}"
timeout_ms = 2000
cache_secs = 1
negative_cache_secs = 1

[scan]
subject_tag = "[SPAM]"

[scan.spamd]
address = "{spamd}"
max_bytes = 512000
timeout_ms = 30000

[scan.clamd]
address = "{clamd}"
max_bytes = 1000000
timeout_ms = 30000

[relay]
address = "{sink}"
timeout_secs = 20

[stats]
path = "{stats}"

[runtime]
metrics_listen = "{metrics}"
"#,
            cert = certs.cert.display(),
            key = certs.key.display(),
            map = map.display(),
            ldap = slapd.url(),
            admin = slapd.admin_dn(),
            pass = pass.display(),
            base = slapd.base_dn(),
            spamd = spamd.addr(),
            clamd = clamd.addr(),
            sink = sink.addr(),
            stats = dir.path().join("verdicts.jsonl").display(),
        );
        let config = dir.path().join("avsx.toml");
        std::fs::write(&config, text).unwrap();
        let check = avsx(&config, &["check"]).output().unwrap();
        assert!(check.status.success(), "{check:?}");
        let mut process = Process::spawn(
            "avsx",
            avsx(&config, &["run"]),
            &dir.path().join("avsx.log"),
        )
        .unwrap();
        process
            .wait_ready(Duration::from_secs(30), || {
                match get(&metrics, "/healthz") {
                    Ok((200, _)) => Ok(()),
                    Ok((code, body)) => Err(format!("/healthz {code} {body}")),
                    Err(e) => Err(e.to_string()),
                }
            })
            .unwrap();
        Perimeter {
            dir,
            smtp,
            metrics,
            config,
            process,
        }
    }

    fn metric(&self, name: &str, label: (&str, &str)) -> f64 {
        let (code, text) = get(&self.metrics, "/metrics").unwrap();
        assert_eq!(code, 200);
        parse_metrics(&text)
            .iter()
            .filter(|s| s.name == name && s.label(label.0) == Some(label.1))
            .map(|s| s.value)
            .sum()
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("avsx.log")).unwrap_or_default()
    }
}

fn ldif(base: &str) -> String {
    format!(
        "dn: uid=alice,{base}\nobjectClass: inetOrgPerson\nobjectClass: perimeterRecipient\nuid: alice\ncn: Alice\nsn: A\nmail: Alice@Perimeter.Test\n\n\
         dn: uid=bob,{base}\nobjectClass: inetOrgPerson\nobjectClass: perimeterRecipient\nuid: bob\ncn: Bob\nsn: B\nproxyAddresses: SMTP:bob@perimeter.test\nproxyAddresses: smtp:robert@perimeter.test\n"
    )
}

#[test]
fn the_perimeter_with_its_real_peers() {
    let slapd = Slapd::start(Host::Loopback).unwrap();
    slapd.add(&ldif(slapd.base_dn())).unwrap();
    let spamd = Spamd::start(Host::Loopback).unwrap();
    let clamd = Clamd::start(Host::Loopback).unwrap();
    let sink = SmtpSink::start(Host::Loopback).unwrap();
    let avsx_run = Perimeter::start(&slapd, &spamd, &clamd, &sink);
    let mut c = Smtp::connect(avsx_run.smtp);

    // Recipients: LDAP by mail (any case), by proxyAddresses, the static map; unknown
    // ones refused at RCPT (no bounce later), other domains are relaying.
    assert_eq!(c.cmd("MAIL FROM:<sender@example.net>").0, 250);
    for (rcpt, want) in [
        ("alice@perimeter.test", 250),
        ("ALICE@perimeter.TEST", 250),
        ("robert@perimeter.test", 250),
        ("carol@perimeter.test", 250),
        ("nobody@perimeter.test", 550),
        ("*@perimeter.test", 550),
        ("someone@elsewhere.example", 554),
    ] {
        let (code, text) = c.cmd(&format!("RCPT TO:<{rcpt}>"));
        assert_eq!(code, want, "{rcpt}: {text}");
        if code == 550 {
            assert!(text.starts_with("5.1.1"), "{text}");
        }
    }
    assert_eq!(c.cmd("RSET").0, 250);

    // A plain mail is relayed with avsx's Received and X-Spam-Status fields.
    let (code, text) = c.mail(
        "sender@example.net",
        &["alice@perimeter.test", "carol@perimeter.test"],
        "Hello Alice,\nlunch tomorrow?\n",
    );
    assert_eq!(code, 250, "{text}");
    let mails = sink.wait_for_messages(1, Duration::from_secs(30)).unwrap();
    let m = &mails[0];
    assert!(
        m.contains("X-Rcpt-Args: <alice@perimeter.test>")
            && m.contains("X-Rcpt-Args: <carol@perimeter.test>"),
        "{m}"
    );
    assert!(m.contains("by mx1.perimeter.test (avsx)"), "{m}");
    assert!(m.contains("X-Spam-Status: No"), "{m}");
    assert!(m.contains("lunch tomorrow?"), "{m}");

    // GTUBE is refused before the queue, EICAR too; neither reaches the sink.
    let (code, text) = c.mail("spammer@example.net", &["bob@perimeter.test"], GTUBE);
    assert_eq!(code, 550, "{text}");
    let (code, text) = c.mail("sender@example.net", &["bob@perimeter.test"], EICAR);
    assert_eq!(code, 554, "{text}");
    assert!(text.contains("Eicar"), "{text}");
    assert_eq!(sink.messages().unwrap().len(), 1);
    assert_eq!(c.cmd("QUIT").0, 221);

    // STARTTLS with a real client: the Received field names the TLS version and cipher.
    let mail = avsx_run.dir.path().join("tls.eml");
    std::fs::write(&mail, "Subject: over TLS\r\n\r\nsecret\r\n").unwrap();
    let swaks = Command::new(testbed::require::tool("swaks", "swaks").unwrap())
        .args([
            "--server",
            &avsx_run.smtp.to_string(),
            "--tls",
            "--from",
            "sender@example.net",
            "--to",
            "bob@perimeter.test",
            "--data",
        ])
        .arg(&mail)
        .output()
        .unwrap();
    assert!(
        swaks.status.success(),
        "{}",
        String::from_utf8_lossy(&swaks.stdout)
    );
    let mails = sink.wait_for_messages(2, Duration::from_secs(30)).unwrap();
    let tls = mails.iter().find(|m| m.contains("over TLS")).unwrap();
    assert!(
        tls.contains("ESMTPS") && tls.contains("TLSv1.3") && tls.contains("TLS13_"),
        "{tls}"
    );

    // The statistics saw the verdicts; the metrics counted them.
    let stats = avsx(&avsx_run.config, &["stats", "--what-if", "5:12"])
        .output()
        .unwrap();
    let out = String::from_utf8_lossy(&stats.stdout);
    assert!(stats.status.success(), "{out}");
    for want in ["killed", "virus", "clean"] {
        assert!(out.contains(want), "{want} missing:\n{out}");
    }
    assert_eq!(
        avsx_run.metric("avsx_messages_total", ("action", "killed")),
        1.0
    );
    assert_eq!(
        avsx_run.metric("avsx_messages_total", ("action", "virus")),
        1.0
    );
    assert!(avsx_run.metric("avsx_rejects_total", ("reason", "unknown_recipient")) >= 2.0);

    // The internal server gone: the sender gets 451 and retries later; nothing lost.
    drop(sink);
    let mut c = Smtp::connect(avsx_run.smtp);
    let (code, text) = c.mail("sender@example.net", &["alice@perimeter.test"], "not yet\n");
    assert_eq!(code, 451, "{text}");

    // Scanners down: 451, never accepted unscanned.
    drop(clamd);
    let (code, text) = c.mail(
        "sender@example.net",
        &["alice@perimeter.test"],
        "hello again\n",
    );
    assert_eq!(code, 451, "{text}");
    drop(spamd);
    let (code, text) = c.mail(
        "sender@example.net",
        &["alice@perimeter.test"],
        "and again\n",
    );
    assert_eq!(code, 451, "{text}");

    // `avsx recipients sync --dry-run` lists what LDAP holds and writes nothing; a map
    // change is picked up on SIGHUP.
    let map = avsx_run.dir.path().join("relay_recipients");
    let before = std::fs::read_to_string(&map).unwrap();
    let sync = avsx(&avsx_run.config, &["recipients", "sync", "--dry-run"])
        .output()
        .unwrap();
    let out = String::from_utf8_lossy(&sync.stdout);
    assert!(
        sync.status.success(),
        "{out}{}",
        String::from_utf8_lossy(&sync.stderr)
    );
    for a in [
        "alice@perimeter.test",
        "bob@perimeter.test",
        "robert@perimeter.test",
    ] {
        assert!(out.contains(a), "{a} missing:\n{out}");
    }
    assert_eq!(std::fs::read_to_string(&map).unwrap(), before);
    assert_eq!(c.cmd("MAIL FROM:<sender@example.net>").0, 250);
    assert_eq!(c.cmd("RCPT TO:<dave@perimeter.test>").0, 550);
    std::fs::write(&map, format!("{before}dave@perimeter.test\n")).unwrap();
    avsx_run
        .process
        .signal(nix::sys::signal::Signal::SIGHUP)
        .unwrap();
    // Each refused RCPT counts toward the session's error limit: wait for the reload's
    // log line instead of asking until it works.
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while !avsx_run.log().contains("recipient map re-read") {
        assert!(
            std::time::Instant::now() < deadline,
            "no reload on SIGHUP:\n{}",
            avsx_run.log()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    assert_eq!(c.cmd("RCPT TO:<dave@perimeter.test>").0, 250);
    assert_eq!(c.cmd("RSET").0, 250);

    // LDAP down: an address it would have to ask for is 451, never accepted; the static
    // map still answers.
    drop(slapd);
    std::thread::sleep(Duration::from_millis(1100)); // past the 1 s cache
    assert_eq!(c.cmd("MAIL FROM:<sender@example.net>").0, 250);
    let (code, text) = c.cmd("RCPT TO:<bob@perimeter.test>");
    assert_eq!(code, 451, "{text}");
    assert!(text.starts_with("4.3.0"), "{text}");
    assert_eq!(c.cmd("RCPT TO:<carol@perimeter.test>").0, 250);
    assert_eq!(c.cmd("RSET").0, 250);

    let log = avsx_run.log();
    assert!(!log.contains("lunch tomorrow"), "a message body was logged");
    drop(avsx_run);
}
