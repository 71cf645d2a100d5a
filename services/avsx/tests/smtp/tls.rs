//! STARTTLS: offered once, state forgotten after it, command injection defeated, TLS
//! 1.2 and 1.3 only (checked with openssl), the Received header naming version and
//! cipher, swaks --tls, and the certificate reload.

use avsx::config::Smtp;
use avsx::envelope::TlsInfo;

use crate::harness::*;

fn tls_config(cert: &Cert) -> Smtp {
    Smtp {
        tls: cert.tls(),
        ..config()
    }
}

#[tokio::test]
async fn starttls_starts_a_fresh_session() {
    let dir = tempfile::tempdir().unwrap();
    let cert = Cert::generate(dir.path(), HOST);
    let h = Harness::start(tls_config(&cert)).await;
    let mut c = h.greeted().await;
    assert_eq!(c.cmd("STARTTLS").await, "503 5.5.1 send EHLO first\r\n");
    let ehlo = c.cmd("EHLO client.test").await;
    assert!(
        ehlo.ends_with("250-ENHANCEDSTATUSCODES\r\n250 STARTTLS\r\n"),
        "{ehlo}"
    );
    c.cmd("MAIL FROM:<before@sender.test>").await;

    let mut c = c.starttls(&cert.cert).await;
    // RFC 3207 4.2: HELO and the transaction are forgotten.
    assert_eq!(
        c.cmd("MAIL FROM:<a@sender.test>").await,
        "503 5.5.1 send EHLO or HELO first\r\n"
    );
    assert_eq!(
        c.cmd("EHLO client.test").await,
        "250-mx.test\r\n250-PIPELINING\r\n250-SIZE 10000\r\n250-8BITMIME\r\n\
         250 ENHANCEDSTATUSCODES\r\n",
        "no STARTTLS once TLS is active"
    );
    assert_eq!(
        c.cmd("RCPT TO:<b@example.org>").await,
        "503 5.5.1 need MAIL first\r\n"
    );
    assert_eq!(c.cmd("STARTTLS").await, "503 5.5.1 TLS already active\r\n");
    let reply = c
        .mail(
            "a@sender.test",
            &["b@example.org"],
            "Subject: tls\r\n\r\nx\r\n",
        )
        .await;
    assert!(reply.starts_with("250 2.0.0 queued as "), "{reply}");

    let (envelope, message) = h.backend.message();
    let tls = TlsInfo {
        version: "TLSv1.3".into(),
        cipher: "TLS13_AES_256_GCM_SHA384".into(),
    };
    assert_eq!(envelope.tls, Some(tls));
    assert_eq!(envelope.mail_from, "a@sender.test");
    let received = received(&message);
    assert!(
        received.starts_with(&format!(
            "Received: from client.test ([127.0.0.1]) by mx.test (avsx) with ESMTPS id {} \
             (using TLSv1.3 with cipher TLS13_AES_256_GCM_SHA384); ",
            envelope.id
        )),
        "{received}"
    );
}

#[tokio::test]
async fn input_pipelined_after_starttls_is_discarded() {
    let dir = tempfile::tempdir().unwrap();
    let cert = Cert::generate(dir.path(), HOST);
    let h = Harness::start(tls_config(&cert)).await;

    // CVE-2011-0411: commands behind STARTTLS in the same packet, which a vulnerable
    // server reads from its buffer after the handshake as if sent over TLS.
    let mut c = h.ehlo().await;
    c.send("STARTTLS\r\nRSET\r\n").await;
    assert_eq!(c.reply().await, "220 2.0.0 ready to start TLS\r\n");
    // No reply to RSET in plain (the handshake would fail on it, and `tls` checks that
    // nothing else arrived)...
    let mut c = c.tls(&cert.cert).await;
    // ...nor in TLS: the first reply there is the one to our EHLO.
    assert!(
        c.cmd("EHLO client.test")
            .await
            .starts_with("250-mx.test\r\n")
    );

    // An injected transaction does not survive either.
    let mut c2 = h.ehlo().await;
    c2.send("STARTTLS\r\nEHLO evil.test\r\nMAIL FROM:<evil@sender.test>\r\n")
        .await;
    assert_eq!(c2.reply().await, "220 2.0.0 ready to start TLS\r\n");
    let mut c2 = c2.tls(&cert.cert).await;
    assert_eq!(c2.cmd("NOOP").await, "250 2.0.0 OK\r\n");
    c2.cmd("EHLO client.test").await;
    assert_eq!(
        c2.cmd("RCPT TO:<b@example.org>").await,
        "503 5.5.1 need MAIL first\r\n"
    );
    assert_eq!(
        h.metric("avsx_rejects_total{reason=\"starttls_injection\"}"),
        2.0
    );
}

#[tokio::test]
async fn swaks_over_starttls() {
    let dir = tempfile::tempdir().unwrap();
    let cert = Cert::generate(dir.path(), HOST);
    let h = Harness::start(tls_config(&cert)).await;
    let port = h.addr.port().to_string();
    let out = run(
        "swaks",
        "swaks",
        &[
            "--server",
            "127.0.0.1",
            "--port",
            &port,
            "--tls",
            "--helo",
            "swaks.client.test",
            "--from",
            "alice@sender.test",
            "--to",
            "bob@example.org",
            "--body",
            "Hello over TLS.",
        ],
        b"",
    )
    .await;
    let transcript = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "swaks --tls failed:\n{transcript}");
    let (envelope, message) = h.backend.message();
    let tls = envelope.tls.expect("TLS in the envelope");
    assert_eq!(tls.version, "TLSv1.3");
    let received = received(&message);
    assert!(
        received.contains(" with ESMTPS id ")
            && received.contains(&format!("(using TLSv1.3 with cipher {})", tls.cipher)),
        "{received}"
    );
}

/// `openssl s_client -starttls smtp` with `args`, verifying the certificate, sending
/// `input` (LF lines, sent as CRLF); returns its status, stdout and stderr.
async fn s_client(h: &Harness, cert: &Cert, args: &[&str], input: &str) -> (bool, String) {
    let connect = h.addr.to_string();
    let mut all = vec![
        "s_client",
        "-starttls",
        "smtp",
        "-name",
        "ossl.client.test",
        "-connect",
        &connect,
        "-brief",
        "-ign_eof",
        "-nocommands",
        "-crlf",
        "-verify_return_error",
        "-verify_hostname",
        HOST,
        "-CAfile",
    ];
    let ca = cert.cert.to_str().unwrap();
    all.push(ca);
    all.extend_from_slice(args);
    let out = run("openssl", "openssl", &all, input.as_bytes()).await;
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stderr),
        String::from_utf8_lossy(&out.stdout)
    );
    (out.status.success(), text)
}

const MAIL: &str = "EHLO ossl.client.test\nMAIL FROM:<a@sender.test>\nRCPT TO:<b@example.org>\n\
                    DATA\nSubject: openssl\n\nvia s_client\n.\nQUIT\n";

#[tokio::test]
async fn tls_1_2_and_1_3_only_and_received_names_them() {
    let dir = tempfile::tempdir().unwrap();
    let cert = Cert::generate(dir.path(), HOST);
    let h = Harness::start(tls_config(&cert)).await;

    for (flag, version, openssl_says, cipher_prefix) in [
        ("-tls1_3", "TLSv1.3", "Protocol version: TLSv1.3", "TLS13_"),
        (
            "-tls1_2",
            "TLSv1.2",
            "Protocol version: TLSv1.2",
            "TLS_ECDHE_ECDSA_WITH_",
        ),
    ] {
        let (ok, out) = s_client(&h, &cert, &[flag], MAIL).await;
        assert!(ok, "{flag}: {out}");
        assert!(out.contains(openssl_says), "{flag}: {out}");
        assert!(out.contains("250 2.0.0 queued as "), "{flag}: {out}");
        let messages = h.backend.messages();
        let (envelope, message) = messages.last().unwrap();
        let tls = envelope.tls.as_ref().expect("TLS in the envelope");
        assert_eq!(tls.version, version);
        assert!(tls.cipher.starts_with(cipher_prefix), "{flag}: {tls:?}");
        assert!(
            tls.cipher.contains("_GCM_") || tls.cipher.contains("CHACHA20"),
            "{tls:?}"
        );
        let received = received(message);
        assert!(
            received.contains(&format!(
                " with ESMTPS id {} (using {version} with cipher {}); ",
                envelope.id, tls.cipher
            )),
            "{received}"
        );
        assert!(message.ends_with("\r\nSubject: openssl\r\n\r\nvia s_client\r\n"));
    }

    // Older protocols are refused by the server, even when the client is willing
    // (SECLEVEL=0 lets OpenSSL 3 offer them at all): the client receives the server's
    // alert (rustls answers a ClientHello without TLS 1.2 with handshake_failure).
    for flag in ["-tls1_1", "-tls1"] {
        let args = [flag, "-cipher", "DEFAULT@SECLEVEL=0"];
        let (ok, out) = s_client(&h, &cert, &args, "QUIT\n").await;
        assert!(!ok, "{flag} accepted: {out}");
        assert!(
            out.contains("SSL alert number 40") || out.contains("SSL alert number 70"),
            "{flag}: no alert from the server: {out}"
        );
    }
    h.wait_metric("avsx_sessions_total{outcome=\"tls_failed\"}", 2.0)
        .await;
    assert_eq!(h.backend.messages().len(), 2);
}

/// The subject of the certificate the server presents now.
async fn served_subject(h: &Harness, cert: &Cert) -> String {
    let (ok, out) = s_client(h, cert, &[], "QUIT\n").await;
    assert!(ok, "{out}");
    out.lines()
        .find_map(|l| l.strip_prefix("Peer certificate: "))
        .unwrap_or_else(|| panic!("no peer certificate in {out}"))
        .to_owned()
}

#[tokio::test]
async fn reload_swaps_the_certificate() {
    let dir = tempfile::tempdir().unwrap();
    let cert = Cert::generate(dir.path(), HOST);
    let h = Harness::start(tls_config(&cert)).await;
    // The test client trusts whatever is in cert.pem now, so the subject tells which
    // certificate is served.
    let untrusted = tempfile::tempdir().unwrap();
    let old = Cert {
        cert: untrusted.path().join("old.pem"),
        key: untrusted.path().join("unused.pem"),
    };
    std::fs::copy(&cert.cert, &old.cert).unwrap();
    assert_eq!(served_subject(&h, &cert).await, "CN = mx.test");

    cert.replace("mx2.test");
    // New files alone change nothing...
    let (ok, out) = s_client(&h, &cert, &[], "QUIT\n").await;
    assert!(!ok, "the old certificate is still served: {out}");
    assert_eq!(served_subject(&h, &old).await, "CN = mx.test");
    // ...the reload does.
    h.reloader.reload().expect("reload");
    assert_eq!(served_subject(&h, &cert).await, "CN = mx2.test");

    // A broken key: the error names it, the certificate in use stays.
    std::fs::write(
        &cert.key,
        "-----BEGIN PRIVATE KEY-----\nnope\n-----END PRIVATE KEY-----\n",
    )
    .unwrap();
    let e = format!("{:#}", h.reloader.reload().unwrap_err());
    assert!(e.contains("key.pem"), "{e}");
    assert_eq!(served_subject(&h, &cert).await, "CN = mx2.test");
}
