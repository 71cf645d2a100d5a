//! Scenario (b) of the appliance images: the avsx VM, booted from its image, on a private
//! segment with its real peers, accepts mail for a valid recipient and refuses an
//! unknown one at RCPT, before the queue.
//!
//! ```text
//!            VirtualNet 192.0.2.0/24 (a bridge in a namespace the test creates)
//!   ┌─────────────────────────────┬──────────────────────────────┐
//!   namespace: 192.0.2.3 spamd :783, clamd :3310, slapd :389     avsx VM 192.0.2.25
//!              192.0.2.4 smtp-sink :25 (the internal server)       (eth0, its image's
//!              the SMTP client                                      /etc/avsx/avsx.toml)
//! ```
//!
//! The addresses are the ones the image's config names (`images/files/avsx/avsx.toml`).
//! The test speaks SMTP to the VM from the namespace, as a sending server would, and
//! checks what reaches the sink, what avsx logged in the guest (`/var/log/avsx.log`) and
//! its metrics. Then it switches the appliance to the config variant with LDAP
//! (`/etc/avsx/avsx-ldap.toml`, as an operator would: copy it in place, write the bind
//! password, restart the service) and checks recipients found only in slapd, and that
//! LDAP down means 451, never an accept.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::process::Command;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use appliance_tests::appliance;
use testbed::clients::parse_metrics;
use testbed::servers::{Clamd, EICAR, Host, Server as _, Slapd, SmtpSink, Spamd};
use testbed::vm::{Nic, VirtualNet, Vm};

/// The appliance on the segment.
const AVSX: &str = "192.0.2.25";
/// spamd, clamd and slapd, as the image's config has them.
const SCANNERS: &str = "192.0.2.3";
/// The internal mail server (the sink).
const INTERNAL: &str = "192.0.2.4";

const GTUBE: &str = "XJS*C4JDBQADN1.NSBN3*2IDNEN*GTUBE-STANDARD-ANTI-UBE-TEST-EMAIL*C.34X";

/// Guest commands: quick ones, and the wait for avsx to listen again.
const GUEST: Duration = Duration::from_secs(30);
const GUEST_RESTART: Duration = Duration::from_secs(90);
/// SMTP replies: the end of DATA waits for spamd and clamd under a busy 2-core machine.
const SMTP_REPLY: Duration = Duration::from_secs(90);

fn addr(ip: &str, port: u16) -> SocketAddr {
    SocketAddr::new(ip.parse().unwrap(), port)
}

/// A TCP connection made inside the segment's namespace (the socket stays there).
fn connect(net: &VirtualNet, to: SocketAddr) -> TcpStream {
    net.netns()
        .enter(|| TcpStream::connect_timeout(&to, Duration::from_secs(10)))
        .unwrap()
        .unwrap_or_else(|e| panic!("connect to {to} from {}: {e}", net.name()))
}

/// A line-by-line SMTP client that reads whole (multi-line) replies.
struct Smtp {
    reader: BufReader<TcpStream>,
    /// Every command and reply, for failure messages.
    transcript: String,
}

impl Smtp {
    /// Connects, expects the greeting (with the appliance's host name) and says EHLO.
    fn connect(net: &VirtualNet) -> Smtp {
        let stream = connect(net, addr(AVSX, 25));
        stream.set_read_timeout(Some(SMTP_REPLY)).unwrap();
        let mut s = Smtp {
            reader: BufReader::new(stream),
            transcript: String::new(),
        };
        let (code, text) = s.reply();
        assert_eq!(code, 220, "greeting: {text}");
        assert!(text.starts_with("mx.example.org"), "greeting: {text}");
        s.expect("EHLO client.example.net", 250);
        s
    }

    /// The next reply: code and the text of its last line.
    fn reply(&mut self) -> (u16, String) {
        loop {
            let mut line = String::new();
            self.reader
                .read_line(&mut line)
                .unwrap_or_else(|e| panic!("reading a reply: {e}\n{}", self.transcript));
            self.transcript += &format!("S: {line}");
            assert!(line.len() >= 4, "short reply {line:?}\n{}", self.transcript);
            if line.as_bytes()[3] == b' ' {
                let code = line[..3].parse().unwrap();
                return (code, line[4..].trim_end().to_owned());
            }
        }
    }

    fn cmd(&mut self, line: &str) -> (u16, String) {
        self.transcript += &format!("C: {line}\n");
        self.send(format!("{line}\r\n").as_bytes());
        self.reply()
    }

    /// `cmd`, asserting the reply code; returns the text.
    fn expect(&mut self, line: &str, code: u16) -> String {
        let (got, text) = self.cmd(line);
        assert_eq!(got, code, "{line}: {got} {text}\n{}", self.transcript);
        text
    }

    fn send(&mut self, bytes: &[u8]) {
        self.reader.get_mut().write_all(bytes).unwrap();
    }

    /// DATA with a small well-formed mail dated now; the reply to its end.
    fn data(&mut self, from: &str, to: &str, subject: &str, body: &str) -> (u16, String) {
        self.data_dated(from, to, subject, body, Duration::ZERO)
    }

    /// DATA with a mail whose `Date:` lies `age` in the past.
    fn data_dated(
        &mut self,
        from: &str,
        to: &str,
        subject: &str,
        body: &str,
        age: Duration,
    ) -> (u16, String) {
        self.expect("DATA", 354);
        let msg = format!(
            "From: <{from}>\r\nTo: <{to}>\r\nSubject: {subject}\r\n\
             Message-ID: <{}@client.example.net>\r\nDate: {}\r\n\
             \r\n{}\r\n.\r\n",
            unique(),
            rfc5322_date(SystemTime::now() - age),
            body.replace('\n', "\r\n")
        );
        self.transcript += &format!("C: (message {subject:?}, {} bytes)\n", msg.len());
        self.send(msg.as_bytes());
        self.reply()
    }

    /// A whole transaction for one recipient: the reply to the end of DATA.
    fn mail(&mut self, from: &str, to: &str, subject: &str, body: &str) -> (u16, String) {
        self.expect(&format!("MAIL FROM:<{from}>"), 250);
        self.expect(&format!("RCPT TO:<{to}>"), 250);
        self.data(from, to, subject, body)
    }

    fn quit(mut self) {
        self.expect("QUIT", 221);
    }
}

fn unique() -> String {
    format!(
        "{:x}",
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap()
            .as_nanos()
    )
}

/// `t` as a mail's `Date:` (`date -R`: "Sat, 21 Nov 2026 12:00:00 +0000").
fn rfc5322_date(t: SystemTime) -> String {
    let secs = t.duration_since(UNIX_EPOCH).unwrap().as_secs();
    let out = Command::new("date")
        .args(["-u", "-R", "-d", &format!("@{secs}")])
        .output()
        .unwrap();
    assert!(out.status.success(), "date -R: {out:?}");
    String::from_utf8(out.stdout).unwrap().trim().to_owned()
}

/// The appliance's metrics (`GET /metrics` on 192.0.2.25:9125, from the namespace).
fn metrics(net: &VirtualNet) -> String {
    let mut s = connect(net, addr(AVSX, 9125));
    s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    write!(
        s,
        "GET /metrics HTTP/1.1\r\nHost: {AVSX}\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut resp = String::new();
    s.read_to_string(&mut resp).unwrap();
    assert!(resp.starts_with("HTTP/1.1 200"), "{resp}");
    resp.split_once("\r\n\r\n").unwrap().1.to_owned()
}

fn metric(text: &str, name: &str, label: (&str, &str)) -> f64 {
    parse_metrics(text)
        .iter()
        .filter(|s| s.name == name && s.label(label.0) == Some(label.1))
        .map(|s| s.value)
        .sum()
}

/// The sink's mail whose subject is `subject`.
fn delivered<'a>(mails: &'a [String], subject: &str) -> &'a str {
    // smtp-sink writes the mail with plain newlines.
    let want = format!("Subject: {subject}\n");
    let found: Vec<&String> = mails.iter().filter(|m| m.contains(&want)).collect();
    assert_eq!(
        found.len(),
        1,
        "mails with {subject:?} at the sink: {mails:#?}"
    );
    found[0]
}

/// The `X-Spam-Status` field of a delivered mail, folded lines joined.
fn spam_status(mail: &str) -> String {
    let Some(at) = mail.find("X-Spam-Status:") else {
        return "(no X-Spam-Status)".to_owned();
    };
    let mut lines = mail[at..].lines();
    let mut field = lines.next().unwrap_or_default().to_owned();
    for l in lines.take_while(|l| l.starts_with([' ', '\t'])) {
        field.push(' ');
        field.push_str(l.trim());
    }
    field
}

/// The LDAP-only recipients: carol by `mail`, dave by `proxyAddresses` only.
fn ldif(base: &str) -> String {
    format!(
        "dn: uid=carol,{base}\nobjectClass: inetOrgPerson\nobjectClass: perimeterRecipient\n\
         uid: carol\ncn: Carol\nsn: C\nmail: Carol@Example.Org\n\n\
         dn: uid=dave,{base}\nobjectClass: inetOrgPerson\nobjectClass: perimeterRecipient\n\
         uid: dave\ncn: Dave\nsn: D\nproxyAddresses: SMTP:dave@example.org\n"
    )
}

#[test]
#[ignore = "tier 2: boots the avsx VM image (target/release/imgbuild build)"]
fn avsx_vm_accepts_valid_recipients_and_refuses_unknown_ones() {
    let image = appliance("avsx");

    // The segment and the peers, on the addresses the image's config names. clamd knows
    // one signature (EICAR), so it is ready in about a second.
    let net = VirtualNet::new("avsx").unwrap();
    net.add_address(&format!("{SCANNERS}/24")).unwrap();
    net.add_address(&format!("{INTERNAL}/24")).unwrap();
    let ns = net.netns();
    let spamd = Spamd::start(Host::Netns(ns, addr(SCANNERS, 783))).unwrap();
    let clamd = Clamd::start(Host::Netns(ns, addr(SCANNERS, 3310))).unwrap();
    let slapd = Slapd::start(Host::Netns(ns, addr(SCANNERS, 389))).unwrap();
    let sink = SmtpSink::start(Host::Netns(ns, addr(INTERNAL, 25))).unwrap();
    println!(
        "peers in {}: spamd {}, clamd {}, slapd {}, smtp-sink {}",
        net.name(),
        spamd.addr(),
        clamd.addr(),
        slapd.addr(),
        sink.addr()
    );

    let vm = Vm::boot(image.vm(
        "avsx",
        vec![Nic::net(&net)],
        &[format!("appliance.net=eth0={AVSX}/24")],
    ))
    .unwrap();
    println!(
        "avsx VM ({}): boot to ready {:.1} s",
        vm.accelerator(),
        vm.boot_to_ready().as_secs_f64()
    );

    // Recipients at RCPT: the static map, unknown addresses of the domain refused with
    // 550 5.1.1 (no bounce later), other domains are relaying.
    let mut c = Smtp::connect(&net);
    c.expect("MAIL FROM:<sender@example.net>", 250);
    for (rcpt, want, status) in [
        ("alice@example.org", 250, "2.1.5"),
        ("Bob@Example.ORG", 250, "2.1.5"),
        ("nobody@example.org", 550, "5.1.1"),
        ("someone@elsewhere.example", 554, "5.7.1"),
    ] {
        let text = c.expect(&format!("RCPT TO:<{rcpt}>"), want);
        assert!(text.starts_with(status), "{rcpt}: {want} {text}");
    }
    c.expect("RSET", 250);

    // A plain mail for alice (and an unknown recipient in the same transaction): 250
    // after DATA only once the internal server took it; it arrives with avsx's fields,
    // for alice only, relayed by the VM.
    let subject = format!("avsx VM test {}", unique());
    c.expect("MAIL FROM:<sender@example.net>", 250);
    c.expect("RCPT TO:<alice@example.org>", 250);
    c.expect("RCPT TO:<nobody@example.org>", 550);
    let (code, text) = c.data(
        "sender@example.net",
        "alice@example.org",
        &subject,
        "Hello Alice,\nlunch tomorrow?\n",
    );
    assert_eq!(code, 250, "end of DATA: {text}\n{}", c.transcript);
    let mails = sink.wait_for_messages(1, Duration::from_secs(30)).unwrap();
    let m = delivered(&mails, &subject);
    for want in [
        format!("X-Client-Addr: {AVSX}"),
        "X-Mail-Args: <sender@example.net>".to_owned(),
        "X-Rcpt-Args: <alice@example.org>".to_owned(),
        "by mx.example.org (avsx)".to_owned(),
        "X-Spam-Status: No".to_owned(),
        "lunch tomorrow?".to_owned(),
    ] {
        assert!(
            m.contains(&want),
            "{want:?} missing in the delivered mail:\n{m}"
        );
    }
    assert!(!m.contains("nobody@example.org"), "{m}");
    let received = m.find("Received: from client.example.net ([192.0.2.");
    assert!(
        received.is_some_and(|at| Some(at) < m.find("Subject:")),
        "avsx's Received field must come first, naming the client's address:\n{m}"
    );
    assert!(!m.contains("X-Spam-Flag"), "{m}");
    println!("plain mail: {}", spam_status(m));

    // A mail dated 8 hours back: spamd adds DATE_IN_PAST_06_12 to what every mail on
    // this segment scores (RCVD_ILLEGAL_IP: 192.0.2.0/24 is TEST-NET; RDNS_NONE), which
    // lands between tag (4.5) and kill (16): relayed, tagged.
    let tagged = format!("avsx VM tagged {}", unique());
    c.expect("MAIL FROM:<sender@example.net>", 250);
    c.expect("RCPT TO:<bob@example.org>", 250);
    let (code, text) = c.data_dated(
        "sender@example.net",
        "bob@example.org",
        &tagged,
        "Hello Bob,
this was written this morning.
",
        Duration::from_secs(8 * 3600),
    );
    assert_eq!(code, 250, "end of DATA: {text}\n{}", c.transcript);
    let mails = sink.wait_for_messages(2, Duration::from_secs(30)).unwrap();
    let m = delivered(&mails, &tagged);
    for want in [
        "X-Rcpt-Args: <bob@example.org>",
        "by mx.example.org (avsx)",
        "X-Spam-Flag: YES",
        "X-Spam-Score: ",
        "X-Spam-Status: Yes, score=",
        "DATE_IN_PAST_06_12",
    ] {
        assert!(
            m.contains(want),
            "{want:?} missing in the tagged mail:\n{m}"
        );
    }
    println!("mail dated 8 h back: {}", spam_status(m));

    // Spam (GTUBE, score ~1000 >= kill 16) and a virus (EICAR) are refused before the
    // queue; neither reaches the sink.
    let (code, text) = c.mail("spammer@example.net", "bob@example.org", "offer", GTUBE);
    assert_eq!(code, 550, "GTUBE: {text}\n{}", c.transcript);
    assert!(text.starts_with("5.7.1"), "GTUBE: {text}");
    let (code, text) = c.mail("sender@example.net", "bob@example.org", "file", EICAR);
    assert_eq!(code, 554, "EICAR: {text}\n{}", c.transcript);
    assert!(text.contains("Eicar"), "EICAR: {text}");
    c.quit();
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(
        sink.messages().unwrap().len(),
        2,
        "spam or virus was relayed"
    );

    // avsx logged the verdicts in the guest; its metrics counted them.
    let log = vm.succeed("cat /var/log/avsx.log", GUEST).unwrap();
    for want in [
        "serving SMTP",
        "unknown recipient refused",
        "nobody@example.org",
        "relaying refused",
        "message judged",
        "clean",
        "tagged",
        "killed",
        "virus",
        "relayed to 192.0.2.4:25",
    ] {
        assert!(log.contains(want), "{want:?} missing in avsx.log:\n{log}");
    }
    assert!(
        !log.contains("lunch tomorrow"),
        "a message body was logged:\n{log}"
    );
    let text = metrics(&net);
    for (name, label, at_least) in [
        ("avsx_rejects_total", ("reason", "unknown_recipient"), 2.0),
        ("avsx_rejects_total", ("reason", "relay_denied"), 1.0),
        ("avsx_messages_total", ("action", "clean"), 1.0),
        ("avsx_messages_total", ("action", "tagged"), 1.0),
        ("avsx_messages_total", ("action", "killed"), 1.0),
        ("avsx_messages_total", ("action", "virus"), 1.0),
    ] {
        let v = metric(&text, name, label);
        assert!(
            v >= at_least,
            "{name}{label:?} = {v}, want >= {at_least}:\n{text}"
        );
    }

    // The config variant with LDAP, switched to as an operator would: the bind password
    // (not in the image), the config in place, avsx restarted (init starts it again) and
    // waited for until /healthz says it takes mail. (`timeout 2 wget`, not `wget -T 2`:
    // Debian 12's static busybox wget segfaults with -T.)
    slapd.add(&ldif(slapd.base_dn())).unwrap();
    let switched = Instant::now();
    vm.succeed(
        &format!(
            "umask 077 && printf '%s\\n' '{}' > /etc/avsx/ldap.pass && \
             cp /etc/avsx/avsx-ldap.toml /etc/avsx/avsx.toml && \
             old=$(pidof avsx) && kill $old && \
             while pidof avsx | grep -qw \"$old\"; do sleep 0.2; done && \
             until timeout 2 wget -q -O /dev/null http://127.0.0.1:9125/healthz; do sleep 0.2; done && \
             pidof avsx",
            slapd.admin_password()
        ),
        GUEST_RESTART,
    )
    .unwrap();
    println!(
        "avsx restarted with LDAP in {:.1} s",
        switched.elapsed().as_secs_f64()
    );
    let mut c = Smtp::connect(&net);
    c.expect("MAIL FROM:<sender@example.net>", 250);
    for (rcpt, want) in [
        ("carol@example.org", 250),  // LDAP mail, any case
        ("dave@example.org", 250),   // LDAP proxyAddresses only
        ("alice@example.org", 250),  // the static map still first
        ("nobody@example.org", 550), // LDAP says no such entry
        ("*@example.org", 550),      // no filter injection
        ("carol@elsewhere.example", 554),
    ] {
        c.expect(&format!("RCPT TO:<{rcpt}>"), want);
    }
    c.expect("RSET", 250);
    let subject = format!("avsx VM LDAP test {}", unique());
    let (code, text) = c.mail(
        "sender@example.net",
        "dave@example.org",
        &subject,
        "Hi Dave\n",
    );
    assert_eq!(code, 250, "end of DATA: {text}\n{}", c.transcript);
    let mails = sink.wait_for_messages(3, Duration::from_secs(30)).unwrap();
    let m = delivered(&mails, &subject);
    assert!(m.contains("X-Rcpt-Args: <dave@example.org>"), "{m}");

    // LDAP down: an address only the directory could vouch for is 451 4.3.0, never
    // accepted; the static map still answers.
    drop(slapd);
    c.expect("MAIL FROM:<sender@example.net>", 250);
    let text = c.expect("RCPT TO:<erin@example.org>", 451);
    assert!(text.starts_with("4.3.0"), "{text}");
    c.expect("RCPT TO:<bob@example.org>", 250);
    c.expect("RSET", 250);
    c.quit();
    let log = vm.succeed("cat /var/log/avsx.log", GUEST).unwrap();
    assert!(
        log.matches("serving SMTP").count() >= 2,
        "no restart in avsx.log:\n{log}"
    );

    drop(vm);
    drop((spamd, clamd, sink));
}
