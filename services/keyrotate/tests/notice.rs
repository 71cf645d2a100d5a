//! The notice mail against real peers: composed, sent through Postfix's `smtp-sink` (a
//! real SMTP server that dumps what it accepts), taken apart again with a MIME splitter
//! of our own, and its signatures checked by `sqop` (Sequoia's stateless OpenPGP CLI),
//! an implementation independent of the code that made them. Refusals come from
//! smtp-sink told to reject commands; the recipient list from a Postfix log fixture.
//! Everything runs on loopback; every server is killed when its handle drops.

use std::collections::BTreeMap;
use std::net::TcpListener;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use chrono::Utc;
use keyrotate::config::{Notice, Security, Smtp};
use keyrotate::keys::signing_keypair;
use keyrotate::notice::{Mailer, SendError, compose, recipients};
use sequoia_openpgp::cert::{CertBuilder, CipherSuite};
use sequoia_openpgp::parse::{PacketParser, PacketParserResult, Parse};
use sequoia_openpgp::serialize::SerializeInto;
use sequoia_openpgp::types::HashAlgorithm;
use sequoia_openpgp::{Cert, Packet, Profile};
use testbed::servers::{Host, Server, SmtpSink};

const NEW_UIDS: [&str; 2] = ["Alice Example <alice@example.org>", "alice@example.com"];

fn new_cert() -> Cert {
    CertBuilder::general_purpose(NEW_UIDS)
        .set_profile(Profile::RFC4880)
        .unwrap()
        .generate()
        .unwrap()
        .0
}

/// The old key is RSA, the new one Curve25519: the signers differ in algorithm and must
/// still agree on the one hash `micalg` names.
fn old_cert() -> Cert {
    CertBuilder::general_purpose(["Alice Example <alice@example.org>"])
        .set_profile(Profile::RFC4880)
        .unwrap()
        .set_cipher_suite(CipherSuite::RSA2k)
        .generate()
        .unwrap()
        .0
}

fn notice(port: u16) -> Notice {
    Notice {
        from: "alice@example.org".into(),
        recipients: vec!["bob@example.net".into(), "carol@example.com".into()],
        recipients_from_log: None,
        subject: "My OpenPGP key has changed".into(),
        body: None,
        sign_with_old: true,
        smtp: Smtp {
            host: "127.0.0.1".into(),
            port,
            security: Security::None,
            username: None,
            password_file: None,
            password_env: None,
            timeout_secs: 10,
        },
    }
}

// ---- taking a mail apart ------------------------------------------------------------

/// A header block and body, split at the first empty line; headers unfolded.
struct Entity {
    headers: Vec<(String, String)>,
    body: String,
}

impl Entity {
    fn parse(text: &str) -> Entity {
        let (head, body) = text
            .split_once("\r\n\r\n")
            .unwrap_or_else(|| panic!("no empty line after the headers in {text:?}"));
        let mut headers: Vec<(String, String)> = Vec::new();
        for line in head.split("\r\n") {
            if line.starts_with([' ', '\t']) {
                let last = headers
                    .last_mut()
                    .expect("a continuation line follows a header");
                last.1.push(' ');
                last.1.push_str(line.trim_start());
            } else {
                let (name, value) = line
                    .split_once(':')
                    .unwrap_or_else(|| panic!("header line without a colon: {line:?}"));
                headers.push((name.to_ascii_lowercase(), value.trim().to_owned()));
            }
        }
        Entity {
            headers,
            body: body.to_owned(),
        }
    }

    fn header(&self, name: &str) -> &str {
        let all: Vec<&str> = self
            .headers
            .iter()
            .filter(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
            .collect();
        assert_eq!(all.len(), 1, "expected one {name} header, got {all:?}");
        all[0]
    }

    /// The `name=` parameter of a structured header (quoted or not).
    fn param(&self, header: &str, name: &str) -> String {
        let value = self.header(header);
        let needle = format!("{name}=");
        let at = value
            .split(';')
            .map(str::trim)
            .find_map(|p| p.strip_prefix(needle.as_str()))
            .unwrap_or_else(|| panic!("no {name} parameter in {header}: {value}"));
        at.trim_matches('"').to_owned()
    }
}

/// The body parts of a multipart body, each exactly as RFC 2046 delimits it: from after
/// the delimiter line's CRLF to before the CRLF that precedes the next delimiter.
fn parts<'a>(body: &'a str, boundary: &str) -> Vec<&'a str> {
    let delimiter = format!("\r\n--{boundary}");
    // The preamble ends where the first delimiter starts; it may be empty.
    let mut rest = if body.starts_with(&delimiter[2..]) {
        &body[delimiter.len() - 2..]
    } else {
        let at = body.find(&delimiter).expect("a first delimiter");
        &body[at + delimiter.len()..]
    };
    let mut out = Vec::new();
    loop {
        assert!(!rest.starts_with("--"), "a close delimiter before any part");
        let start = rest.find("\r\n").expect("CRLF after the delimiter") + 2;
        assert!(rest[..start].trim().is_empty(), "junk after the delimiter");
        let end = rest[start..].find(&delimiter).expect("a next delimiter") + start;
        out.push(&rest[start..end]);
        rest = &rest[end + delimiter.len()..];
        if rest.starts_with("--") {
            return out;
        }
    }
}

/// A mail as smtp-sink dumped it: the envelope recipients from its `X-Rcpt-Args` lines,
/// and the message with CRLF line endings (smtp-sink writes LF) after its own headers
/// (`X-...` lines and a three-line `Received:`).
fn undump(dump: &str) -> (Vec<String>, String) {
    let lines: Vec<&str> = dump.lines().collect();
    let rcpts = lines
        .iter()
        .filter_map(|l| l.strip_prefix("X-Rcpt-Args: "))
        .map(|a| a.trim().trim_matches(['<', '>']).to_owned())
        .collect();
    let received = lines
        .iter()
        .position(|l| l.starts_with("Received: "))
        .expect("smtp-sink's Received header");
    let mut start = received + 1;
    while lines[start].starts_with([' ', '\t']) {
        start += 1;
    }
    let mut message = lines[start..].join("\r\n");
    message.push_str("\r\n");
    (rcpts, message)
}

/// Quoted-printable decoding (RFC 2045, section 6.7).
fn unqp(s: &str) -> Vec<u8> {
    let s = s.replace("=\r\n", "");
    let b = s.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'=' {
            out.push(u8::from_str_radix(&s[i + 1..i + 3], 16).expect("=XX"));
            i += 3;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    out
}

/// An unstructured header value with RFC 2047 "Q" encoded words decoded (whitespace
/// between adjacent encoded words dropped, as the RFC says).
fn decode_words(value: &str) -> String {
    let mut out = Vec::new();
    // Whether the previous token was an encoded word; None before the first.
    let mut previous: Option<bool> = None;
    for token in value.split(' ') {
        if let Some(word) = token.strip_prefix("=?").and_then(|t| t.strip_suffix("?=")) {
            let mut pieces = word.splitn(3, '?');
            let charset = pieces.next().unwrap();
            let encoding = pieces.next().unwrap();
            assert!(charset.eq_ignore_ascii_case("utf-8"), "{charset}");
            assert!(encoding.eq_ignore_ascii_case("q"), "{encoding}");
            if previous == Some(false) {
                out.push(b' ');
            }
            out.extend(unqp(&pieces.next().unwrap().replace('_', " ")));
            previous = Some(true);
        } else {
            if previous.is_some() {
                out.push(b' ');
            }
            out.extend(token.as_bytes());
            previous = Some(false);
        }
    }
    String::from_utf8(out).expect("encoded words decode to UTF-8")
}

/// What the tests check of a received notice.
struct Received {
    mail: Entity,
    /// The first part of the multipart/signed, exactly the signed bytes.
    signed: String,
    /// The armored signature block.
    signature: String,
    /// The text of the mail, decoded.
    text: String,
    /// The attached key.
    key: Cert,
    key_filename: String,
}

/// Takes a notice apart and checks its RFC 3156 structure on the way.
fn open(message: &str) -> Received {
    for line in message.split("\r\n") {
        assert!(line.len() < 998, "a line of {} octets", line.len());
        assert!(
            !line.contains('\n') && !line.contains('\r'),
            "a bare line break in {line:?}"
        );
    }
    assert!(message.is_ascii(), "the notice is 7-bit");
    let mail = Entity::parse(message);
    assert_eq!(mail.header("mime-version"), "1.0");
    let ct = mail.header("content-type");
    assert!(ct.starts_with("multipart/signed;"), "{ct}");
    assert_eq!(
        mail.param("content-type", "protocol"),
        "application/pgp-signature"
    );
    assert_eq!(mail.param("content-type", "micalg"), "pgp-sha512");
    let outer = parts(&mail.body, &mail.param("content-type", "boundary"));
    assert_eq!(outer.len(), 2, "multipart/signed has two parts");
    let signed = outer[0].to_owned();

    let sig_part = Entity::parse(outer[1]);
    assert!(
        sig_part
            .header("content-type")
            .starts_with("application/pgp-signature")
    );
    let signature = sig_part.body.clone();
    assert!(
        signature.starts_with("-----BEGIN PGP SIGNATURE-----\r\n"),
        "{signature}"
    );
    assert_eq!(
        signature.matches("-----BEGIN PGP SIGNATURE-----").count(),
        1,
        "one armored block for all signatures"
    );

    let mixed = Entity::parse(&signed);
    assert!(mixed.header("content-type").starts_with("multipart/mixed;"));
    let inner = parts(&mixed.body, &mixed.param("content-type", "boundary"));
    assert_eq!(inner.len(), 2, "the text and the key");
    let text_part = Entity::parse(inner[0]);
    assert_eq!(
        text_part.header("content-type"),
        "text/plain; charset=utf-8"
    );
    let text = match text_part.header("content-transfer-encoding") {
        "7bit" => text_part.body.clone(),
        "quoted-printable" => String::from_utf8(unqp(&text_part.body)).unwrap(),
        other => panic!("unexpected transfer encoding {other}"),
    };
    let key_part = Entity::parse(inner[1]);
    assert!(
        key_part
            .header("content-type")
            .starts_with("application/pgp-keys")
    );
    assert!(
        key_part
            .header("content-disposition")
            .starts_with("attachment")
    );
    let key_filename = key_part.param("content-disposition", "filename");
    assert!(
        key_part
            .body
            .starts_with("-----BEGIN PGP PUBLIC KEY BLOCK-----\r\n")
    );
    for line in key_part.body.split("\r\n") {
        assert!(line.len() <= 76, "key block line {line:?}");
    }
    let key = Cert::from_bytes(key_part.body.as_bytes()).expect("the attachment is a key");
    Received {
        mail,
        signed,
        signature,
        text,
        key,
        key_filename,
    }
}

// ---- the judge --------------------------------------------------------------------------

/// `sqop verify SIG CERT < DATA`: Ok(stdout) when a signature by the cert verifies.
fn sqop_verify(dir: &Path, data: &[u8], signature: &str, cert: &Cert) -> Result<String, String> {
    testbed::require::tool("sqop", "sqop").unwrap();
    let data_file = dir.join("data");
    let sig_file = dir.join("sig.asc");
    let cert_file = dir.join("cert.asc");
    std::fs::write(&data_file, data).unwrap();
    std::fs::write(&sig_file, signature).unwrap();
    std::fs::write(&cert_file, cert.armored().to_vec().unwrap()).unwrap();
    let out = Command::new("sqop")
        .arg("verify")
        .arg(&sig_file)
        .arg(&cert_file)
        .stdin(std::fs::File::open(&data_file).unwrap())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    if out.status.success() {
        Ok(stdout)
    } else {
        Err(format!(
            "{} {stdout}{}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        ))
    }
}

/// The signature packets in an armored block: (hash, issuer fingerprint).
fn signatures(armored: &str) -> Vec<(HashAlgorithm, String)> {
    let mut out = Vec::new();
    let mut ppr = PacketParser::from_bytes(armored.as_bytes()).unwrap();
    while let PacketParserResult::Some(pp) = ppr {
        let (packet, next) = pp.next().unwrap();
        match packet {
            Packet::Signature(sig) => {
                let issuer = sig
                    .issuer_fingerprints()
                    .next()
                    .expect("issuer fingerprint");
                out.push((sig.hash_algo(), issuer.to_hex()));
            }
            other => panic!("unexpected packet {:?} in the signature block", other.tag()),
        }
        ppr = next;
    }
    out
}

// ---- tests --------------------------------------------------------------------------

#[test]
fn notice_sent_through_smtp_sink_verifies_with_sqop() {
    let sink = SmtpSink::start(Host::Loopback).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let new = new_cert();
    let old = old_cert();
    let mut signers = vec![
        signing_keypair(&new, None).unwrap(),
        signing_keypair(&old, None).unwrap(),
    ];
    let new_signer = signers[0].public().fingerprint().to_hex();
    let old_signer = signers[1].public().fingerprint().to_hex();
    let n = notice(sink.addr().port());
    let own: Vec<String> = vec!["alice@example.org".into(), "alice@example.com".into()];
    let to = recipients(&n, &own).unwrap();
    assert_eq!(to, ["bob@example.net", "carol@example.com"]);

    let mailer = Mailer::new(&n.smtp).unwrap();
    let mut sent = BTreeMap::new();
    for rcpt in &to {
        let message = compose(
            &n,
            rcpt,
            &new,
            std::slice::from_ref(&old),
            &mut signers,
            Utc::now(),
        )
        .unwrap();
        mailer.send(&n.from, rcpt, &message).unwrap();
        sent.insert(rcpt.clone(), String::from_utf8(message).unwrap());
    }

    let dumps = sink.wait_for_messages(2, Duration::from_secs(10)).unwrap();
    assert_eq!(dumps.len(), 2);
    let mut message_ids = Vec::new();
    for dump in &dumps {
        let (rcpts, message) = undump(dump);
        assert_eq!(rcpts.len(), 1, "one recipient per mail: {rcpts:?}");
        let rcpt = &rcpts[0];
        assert!(dump.contains("X-Mail-Args: <alice@example.org>"), "{dump}");
        // What arrived is what was composed (the sink appends one empty line).
        assert_eq!(
            message.trim_end(),
            sent[rcpt].trim_end(),
            "the mail to {rcpt} changed"
        );

        let r = open(&message);
        assert_eq!(r.mail.header("from"), "alice@example.org");
        assert_eq!(r.mail.header("to"), rcpt);
        assert_eq!(r.mail.header("subject"), "My OpenPGP key has changed");
        chrono::DateTime::parse_from_rfc2822(r.mail.header("date")).expect("an RFC 5322 date");
        let id = r.mail.header("message-id").to_owned();
        assert!(id.starts_with('<') && id.ends_with("@example.org>"), "{id}");
        message_ids.push(id);

        // Both fingerprints in the default text, and what happened to the old key.
        for fpr in [old.fingerprint(), new.fingerprint()] {
            assert!(
                r.text.contains(&fpr.to_spaced_hex()),
                "{fpr} not in {}",
                r.text
            );
        }
        assert!(r.text.contains("revoked as superseded"), "{}", r.text);
        assert!(
            r.text.contains("attached") && r.text.contains("certified"),
            "{}",
            r.text
        );

        // The attachment is the new public key, without secrets.
        assert_eq!(r.key.fingerprint(), new.fingerprint());
        assert!(!r.key.is_tsk(), "secret key material in the attachment");
        assert_eq!(r.key.userids().count(), 2);
        assert_eq!(
            r.key_filename,
            format!("0x{}.asc", new.fingerprint().to_hex())
        );

        // One signature per signer, new key's first, all with the hash micalg names.
        let sigs = signatures(&r.signature);
        assert_eq!(
            sigs,
            [
                (HashAlgorithm::SHA512, new_signer.clone()),
                (HashAlgorithm::SHA512, old_signer.clone())
            ]
        );

        // sqop checks the signed part, byte for byte, against each key.
        let verified = sqop_verify(dir.path(), r.signed.as_bytes(), &r.signature, &new).unwrap();
        assert!(verified.contains(&new_signer), "sqop: {verified}");
        let verified = sqop_verify(dir.path(), r.signed.as_bytes(), &r.signature, &old).unwrap();
        assert!(verified.contains(&old_signer), "sqop: {verified}");
        // And would notice a change of one byte, or a lost final CRLF's worth of care.
        let tampered = r.signed.replacen("Hello", "Hallo", 1);
        assert!(sqop_verify(dir.path(), tampered.as_bytes(), &r.signature, &new).is_err());
        let with_crlf = format!("{}\r\n", r.signed);
        assert!(sqop_verify(dir.path(), with_crlf.as_bytes(), &r.signature, &new).is_err());
    }
    assert_ne!(message_ids[0], message_ids[1], "Message-IDs are unique");
}

#[test]
fn non_ascii_subject_and_body_are_encoded_and_still_verify() {
    let sink = SmtpSink::start(Host::Loopback).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let new = new_cert();
    let old = old_cert();
    let mut signers = vec![signing_keypair(&new, None).unwrap()];
    let mut n = notice(sink.addr().port());
    n.sign_with_old = false;
    n.subject = "Mein OpenPGP-Schlüssel hat sich geändert – bitte übernehmen 🔑".into();
    let body = "Grüße,\n\nmein Schlüssel ist neu.\nFrom now on: the attached key. \nÄÖÜ äöü ß €\n";
    n.body = Some(body.into());

    let message = compose(
        &n,
        "bob@example.net",
        &new,
        &[old],
        &mut signers,
        Utc::now(),
    )
    .unwrap();
    Mailer::new(&n.smtp)
        .unwrap()
        .send(&n.from, "bob@example.net", &message)
        .unwrap();
    let dumps = sink.wait_for_messages(1, Duration::from_secs(10)).unwrap();
    let (_, received) = undump(&dumps[0]);
    let r = open(&received);

    let subject = r.mail.header("subject");
    assert!(subject.starts_with("=?utf-8?q?"), "{subject}");
    assert_eq!(decode_words(subject), n.subject);
    assert!(
        received.contains("Content-Transfer-Encoding: quoted-printable\r\n"),
        "{received}"
    );
    // The part's content ends before the CRLF that belongs to the delimiter.
    assert_eq!(r.text, body.replace('\n', "\r\n").trim_end_matches("\r\n"));
    assert!(!r.signed.contains("\r\nFrom "), "an unquoted From line");

    let sigs = signatures(&r.signature);
    assert_eq!(
        sigs.len(),
        1,
        "only the new key signs without sign_with_old"
    );
    let new_signer = signers[0].public().fingerprint().to_hex();
    let verified = sqop_verify(dir.path(), r.signed.as_bytes(), &r.signature, &new).unwrap();
    assert!(verified.contains(&new_signer), "sqop: {verified}");
}

/// A dumping smtp-sink with extra options (refusals, delays, disconnects).
fn refusing_sink(options: &[&str]) -> SmtpSink {
    SmtpSink::start_with(Host::Loopback, options).unwrap()
}

/// Composes a notice and sends it to `to` through `port`; the error it fails with.
fn send_error(port: u16, to: &str) -> (String, SendError) {
    let new = new_cert();
    let mut signers = vec![signing_keypair(&new, None).unwrap()];
    let n = notice(port);
    let message = compose(&n, to, &new, &[], &mut signers, Utc::now()).unwrap();
    let err = Mailer::new(&n.smtp)
        .unwrap()
        .send(&n.from, to, &message)
        .expect_err("the server refused; send must fail");
    let text = format!("{err:#}");
    let send = err
        .downcast::<SendError>()
        .expect("a SendError callers can inspect");
    (text, send)
}

#[test]
fn a_5xx_refusal_of_the_recipient_is_a_permanent_error_with_its_code() {
    let sink = refusing_sink(&[
        "-f",
        "RCPT",
        "-B",
        "550 5.1.1 <nobody@example.net>: Recipient address rejected: User unknown",
    ]);
    let (text, e) = send_error(sink.addr().port(), "nobody@example.net");
    assert_eq!(e.code, Some(550), "{text}");
    assert!(e.permanent, "{text}");
    assert!(
        text.contains("550") && text.contains("User unknown"),
        "{text}"
    );
    assert!(
        text.contains("permanent") && text.contains("nobody@example.net"),
        "{text}"
    );
}

#[test]
fn a_4xx_refusal_is_a_temporary_error_with_its_code() {
    let sink = refusing_sink(&["-r", "RCPT", "-b", "451 4.3.0 Try again later"]);
    let (text, e) = send_error(sink.addr().port(), "bob@example.net");
    assert_eq!(e.code, Some(451), "{text}");
    assert!(!e.permanent, "{text}");
    assert!(
        text.contains("451") && text.contains("Try again later"),
        "{text}"
    );
    assert!(text.contains("temporary"), "{text}");
}

#[test]
fn a_refusal_after_the_data_is_an_error_too() {
    // RCPT and DATA are accepted; the end of data (".") is answered 554.
    let sink = refusing_sink(&["-f", ".", "-B", "554 5.7.1 Message content rejected"]);
    let (text, e) = send_error(sink.addr().port(), "bob@example.net");
    assert_eq!(e.code, Some(554), "{text}");
    assert!(
        e.permanent && text.contains("Message content rejected"),
        "{text}"
    );
}

#[test]
fn no_server_is_a_temporary_error_without_a_code() {
    // A port that was free a moment ago: connecting is refused.
    let port = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let (text, e) = send_error(port, "bob@example.net");
    assert_eq!(e.code, None, "{text}");
    assert!(
        !e.permanent && text.contains(&format!("127.0.0.1:{port}")),
        "{text}"
    );
}

#[test]
fn recipients_from_a_postfix_log() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("mail.log");
    let sent = |agent: &str, to: &str| {
        format!(
            "Mar  3 10:00:01 mx postfix/{agent}[4711]: 4F2A31C0: to=<{to}>, relay=mx.example.net[192.0.2.1]:25, delay=1.2, delays=0.1/0/0.6/0.5, dsn=2.0.0, status=sent (250 2.0.0 Ok: queued as 9A)"
        )
    };
    let lines = [
        sent("smtp", "dave@example.net"),
        sent("smtp", "Dave@Example.NET"),
        sent("smtp", "erin@example.org"),
        sent("lmtp", "frank@example.com"),
        // The owner's own address, in another case: left out.
        sent("smtp", "Alice@Example.org"),
        // Local deliveries: system accounts and aliases, not correspondents.
        sent("local", "root@mx.example.org"),
        sent("virtual", "postmaster@example.org"),
        sent("smtp", "grace@example.net").replace("status=sent", "status=deferred"),
        sent("smtp", "heidi@example.net").replace("status=sent", "status=bounced"),
        sent("smtp", "\"not plain\"@example.net"),
        "Mar  3 10:00:00 mx postfix/smtpd[99]: connect from unknown[192.0.2.7]".into(),
        "Mar  3 10:00:02 mx postfix/qmgr[98]: 4F2A31C0: removed".into(),
        // An RFC 3339 timestamp, as rsyslog's default writes; orig_to is not used.
        "2026-03-03T10:00:03.123456+01:00 mx postfix/smtp[4712]: 5B: to=<ivan@example.org>, orig_to=<iv@example.org>, relay=mx[192.0.2.2]:25, delay=1, dsn=2.0.0, status=sent (250 ok)".into(),
    ];
    std::fs::write(&log, lines.join("\n") + "\n").unwrap();
    let mut n = notice(25);
    n.recipients = vec!["Bob@Example.net".into(), "erin@example.org".into()];
    n.recipients_from_log = Some(log);
    let own = [
        "alice@example.org".to_owned(),
        "alice@example.com".to_owned(),
    ];
    assert_eq!(
        recipients(&n, &own).unwrap(),
        [
            "bob@example.net",
            "dave@example.net",
            "erin@example.org",
            "frank@example.com",
            "ivan@example.org",
        ]
    );

    n.recipients_from_log = Some(dir.path().join("missing.log"));
    let e = format!("{:#}", recipients(&n, &own).unwrap_err());
    assert!(e.contains("missing.log") && e.contains("mail log"), "{e}");
}
