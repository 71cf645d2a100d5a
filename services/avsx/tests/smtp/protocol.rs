//! The conversation: greeting, EHLO's extensions, the small commands, errors,
//! transactions, pipelining, and a real client (swaks).

use crate::harness::*;

#[tokio::test]
async fn greeting_ehlo_and_small_commands() {
    let h = Harness::start(config()).await;
    let mut c = h.greeted().await;
    // Without [smtp.tls] no STARTTLS; never AUTH.
    assert_eq!(
        c.cmd("EHLO client.test").await,
        "250-mx.test\r\n250-PIPELINING\r\n250-SIZE 10000\r\n250-8BITMIME\r\n\
         250 ENHANCEDSTATUSCODES\r\n"
    );
    assert_eq!(c.cmd("HELO client.test").await, "250 mx.test\r\n");
    assert_eq!(c.cmd("NOOP").await, "250 2.0.0 OK\r\n");
    assert_eq!(c.cmd("RSET").await, "250 2.0.0 OK\r\n");
    let vrfy = c.cmd("VRFY bob@example.org").await;
    assert!(vrfy.starts_with("252 2.5.0 "), "{vrfy}");
    let vrfy_unknown = c.cmd("VRFY nobody@example.org").await;
    assert_eq!(vrfy, vrfy_unknown, "VRFY tells nothing about who exists");
    assert!(c.cmd("HELP").await.starts_with("214 2.0.0 "));
    assert_eq!(c.cmd("FOO").await, "500 5.5.1 unknown command\r\n");
    assert_eq!(
        c.cmd("EXPN staff").await,
        "502 5.5.1 command not implemented\r\n"
    );
    assert_eq!(
        c.cmd("AUTH PLAIN AGJvYgBzZWNyZXQ=").await,
        "502 5.5.1 command not implemented\r\n"
    );
    assert_eq!(
        c.cmd("STARTTLS").await,
        "502 5.5.1 command not implemented\r\n"
    );
    assert_eq!(
        c.cmd("RSET now").await,
        "501 5.5.4 no arguments allowed\r\n"
    );
    assert_eq!(
        c.cmd("QUIT").await,
        "221 2.0.0 mx.test closing connection\r\n"
    );
    c.expect_closed().await;
    h.wait_metric("avsx_sessions_total{outcome=\"quit\"}", 1.0)
        .await;
}

#[tokio::test]
async fn sequence_and_syntax_errors() {
    let h = Harness::start(config()).await;
    let mut c = h.greeted().await;
    assert_eq!(
        c.cmd("MAIL FROM:<a@sender.test>").await,
        "503 5.5.1 send EHLO or HELO first\r\n"
    );
    assert_eq!(
        c.cmd("EHLO").await,
        "501 5.5.4 a domain name is required\r\n"
    );
    c.cmd("EHLO client.test").await;
    assert_eq!(
        c.cmd("RCPT TO:<b@example.org>").await,
        "503 5.5.1 need MAIL first\r\n"
    );
    assert_eq!(c.cmd("DATA").await, "503 5.5.1 need MAIL first\r\n");
    assert_eq!(
        c.cmd("MAIL FROM:a@sender.test").await,
        "501 5.1.7 bad sender address: address must be enclosed in <>\r\n"
    );
    assert_eq!(
        c.cmd("MAIL FROM:<a b@sender.test>").await,
        "501 5.1.7 bad sender address: bad local part\r\n"
    );
    assert_eq!(
        c.cmd("MAIL FROM:<a@sender.test> SMTPUTF8").await,
        "555 5.5.4 parameter not supported\r\n"
    );
    assert_eq!(
        c.cmd("MAIL FROM:<a@sender.test> BODY=8BITMIME SIZE=100")
            .await,
        "250 2.1.0 sender OK\r\n"
    );
    assert_eq!(
        c.cmd("MAIL FROM:<a@sender.test>").await,
        "503 5.5.1 sender already given\r\n"
    );
    assert_eq!(
        c.cmd("RCPT TO:<b@example.org").await,
        "501 5.1.3 bad recipient address: address must be enclosed in <>\r\n"
    );

    // A fresh session: the errors above count towards the limit of ten.
    let mut c = h.ehlo().await;
    c.cmd("MAIL FROM:<a@sender.test>").await;
    assert_eq!(c.cmd("DATA").await, "554 5.5.1 no valid recipients\r\n");
    assert_eq!(
        c.cmd("RCPT TO:<nobody@elsewhere.test>").await,
        "550 5.1.1 no such user here\r\n"
    );
    assert_eq!(
        c.cmd("RCPT TO:<Postmaster>").await,
        "550 5.1.1 no such user here\r\n"
    );
    assert_eq!(
        c.cmd("RCPT TO:<@relay.test,@hop.test:b@example.org>").await,
        "250 2.1.5 recipient OK\r\n",
        "source route stripped"
    );
    assert_eq!(
        c.cmd("RCPT TO:<\"b c\"@example.org>").await,
        "250 2.1.5 recipient OK\r\n"
    );
    assert_eq!(
        c.cmd("DATA").await,
        "354 end data with <CR><LF>.<CR><LF>\r\n"
    );
    c.send("x\r\n.\r\n").await;
    c.reply().await;
    let (envelope, _) = h.backend.message();
    assert_eq!(envelope.rcpt_to, ["b@example.org", "\"b c\"@example.org"]);
}

#[tokio::test]
async fn too_many_errors_end_the_session() {
    let h = Harness::start(config()).await;
    let mut c = h.greeted().await;
    c.send("BOGUS\r\n".repeat(12)).await;
    for _ in 0..9 {
        assert_eq!(c.reply().await, "500 5.5.1 unknown command\r\n");
    }
    assert_eq!(
        c.reply().await,
        "421 4.7.0 mx.test too many errors, closing connection\r\n"
    );
    c.expect_closed().await;
    h.wait_metric("avsx_sessions_total{outcome=\"too_many_errors\"}", 1.0)
        .await;
}

#[tokio::test]
async fn a_message_is_handed_over_with_a_received_header() {
    let h = Harness::start(config()).await;
    let mut c = h.ehlo().await;
    let body = "From: a@sender.test\r\nSubject: hi\r\n\r\n..starts with a dot\r\n.\r\nend\r\n";
    let stuffed = body.replace("\r\n.", "\r\n..");
    let reply = c
        .mail(
            "a@sender.test",
            &["b@example.org", "C@Example.org"],
            &stuffed,
        )
        .await;
    let (envelope, message) = h.backend.message();
    assert_eq!(reply, format!("250 2.0.0 queued as {}\r\n", envelope.id));
    assert_eq!(envelope.mail_from, "a@sender.test");
    assert_eq!(envelope.rcpt_to, ["b@example.org", "C@Example.org"]);
    assert_eq!(envelope.helo, "client.test");
    assert_eq!(envelope.tls, None);
    // The Received header, then the message exactly as sent, dot-unstuffed.
    let received = received(&message);
    let (head, date) = received.split_once("; ").expect("a date after ;");
    assert_eq!(
        head,
        format!(
            "Received: from client.test ([127.0.0.1]) by mx.test (avsx) with ESMTP id {}",
            envelope.id
        )
    );
    assert!(
        chrono::DateTime::parse_from_rfc2822(date).is_ok(),
        "RFC 5322 date: {date}"
    );
    assert!(message.ends_with(&format!("\r\n{body}")), "{message}");
    assert_eq!(message.matches("Received:").count(), 1);

    // The transaction is over: RCPT needs a new MAIL, which gets a new id.
    assert_eq!(
        c.cmd("RCPT TO:<b@example.org>").await,
        "503 5.5.1 need MAIL first\r\n"
    );
    let reply = c
        .mail("", &["b@example.org"], "Subject: 2\r\n\r\nx\r\n")
        .await;
    let messages = h.backend.messages();
    assert_eq!(messages.len(), 2);
    let second = &messages[1].0;
    assert_eq!(second.mail_from, "", "null sender");
    assert_ne!(second.id, envelope.id, "ids are unique");
    assert_eq!(reply, format!("250 2.0.0 queued as {}\r\n", second.id));
}

#[tokio::test]
async fn helo_is_plain_smtp_in_received() {
    let h = Harness::start(config()).await;
    let mut c = h.greeted().await;
    c.cmd("HELO old.client.test").await;
    c.mail("a@sender.test", &["b@example.org"], "x\r\n").await;
    let received = received(&h.backend.message().1);
    assert!(
        received.starts_with(
            "Received: from old.client.test ([127.0.0.1]) by mx.test (avsx) with SMTP id "
        ),
        "{received}"
    );
}

#[tokio::test]
async fn rset_drops_the_transaction() {
    let h = Harness::start(config()).await;
    let mut c = h.ehlo().await;
    c.cmd("MAIL FROM:<a@sender.test>").await;
    assert_eq!(
        c.cmd("RCPT TO:<b@example.org>").await,
        "250 2.1.5 recipient OK\r\n"
    );
    assert_eq!(c.cmd("RSET").await, "250 2.0.0 OK\r\n");
    assert_eq!(c.cmd("DATA").await, "503 5.5.1 need MAIL first\r\n");
    // A new transaction starts with no recipients of the old one.
    c.cmd("MAIL FROM:<a@sender.test>").await;
    assert_eq!(c.cmd("DATA").await, "554 5.5.1 no valid recipients\r\n");
    // EHLO resets too.
    c.cmd("EHLO client.test").await;
    assert_eq!(
        c.cmd("RCPT TO:<b@example.org>").await,
        "503 5.5.1 need MAIL first\r\n"
    );
    assert!(h.backend.messages().is_empty());
}

#[tokio::test]
async fn pipelined_commands_are_answered_in_order() {
    let h = Harness::start(config()).await;
    let mut c = h.greeted().await;
    c.send(
        "EHLO client.test\r\nNOOP\r\nMAIL FROM:<a@sender.test>\r\nRCPT TO:<b@example.org>\r\n\
         RCPT TO:<nobody@elsewhere.test>\r\nVRFY x\r\nRCPT TO:<c@example.org>\r\nDATA\r\n",
    )
    .await;
    assert!(c.reply().await.starts_with("250-mx.test\r\n"));
    assert_eq!(c.reply().await, "250 2.0.0 OK\r\n");
    assert_eq!(c.reply().await, "250 2.1.0 sender OK\r\n");
    assert_eq!(c.reply().await, "250 2.1.5 recipient OK\r\n");
    assert_eq!(c.reply().await, "550 5.1.1 no such user here\r\n");
    assert!(c.reply().await.starts_with("252 2.5.0 "));
    assert_eq!(c.reply().await, "250 2.1.5 recipient OK\r\n");
    assert_eq!(c.reply().await, "354 end data with <CR><LF>.<CR><LF>\r\n");
    // The message, its end and the next commands in one write.
    c.send("Subject: p\r\n\r\nbody\r\n.\r\nMAIL FROM:<>\r\nRSET\r\nQUIT\r\n")
        .await;
    let queued = c.reply().await;
    let (envelope, _) = h.backend.message();
    assert_eq!(envelope.rcpt_to, ["b@example.org", "c@example.org"]);
    assert_eq!(queued, format!("250 2.0.0 queued as {}\r\n", envelope.id));
    assert_eq!(c.reply().await, "250 2.1.0 sender OK\r\n");
    assert_eq!(c.reply().await, "250 2.0.0 OK\r\n");
    assert_eq!(c.reply().await, "221 2.0.0 mx.test closing connection\r\n");
    c.expect_closed().await;
}

#[tokio::test]
async fn swaks_delivers_a_mail() {
    let h = Harness::start(config()).await;
    let port = h.addr.port().to_string();
    let out = run(
        "swaks",
        "swaks",
        &[
            "--server",
            "127.0.0.1",
            "--port",
            &port,
            "--helo",
            "swaks.client.test",
            "--from",
            "alice@sender.test",
            "--to",
            "bob@example.org",
            "--header",
            "Subject: swaks test",
            "--body",
            "Hello from swaks.",
            "--pipeline",
        ],
        b"",
    )
    .await;
    let transcript = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "swaks failed:\n{transcript}");
    let (envelope, message) = h.backend.message();
    assert_eq!(envelope.helo, "swaks.client.test");
    assert_eq!(envelope.mail_from, "alice@sender.test");
    assert_eq!(envelope.rcpt_to, ["bob@example.org"]);
    assert!(message.starts_with("Received: from swaks.client.test ([127.0.0.1])\r\n"));
    assert!(message.contains("\r\nSubject: swaks test\r\n"), "{message}");
    assert!(
        message.contains("\r\n\r\nHello from swaks.\r\n"),
        "{message}"
    );
    assert!(
        transcript.contains(&format!("queued as {}", envelope.id)),
        "{transcript}"
    );
}
