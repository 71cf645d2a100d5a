//! SMTP smuggling: ends of DATA that lax servers accept (`\n.\r\n`, `\r.\r\n`, ...) must
//! not end the message; a message with a bare CR or LF is refused after its real end
//! and never reaches the backend; bare newlines in commands are refused too.

use crate::harness::*;

/// A smuggled second transaction behind a fake end of data.
fn smuggle(fake_end: &str) -> String {
    format!(
        "From: a@sender.test\r\nSubject: innocent\r\n\r\nhello{fake_end}\
         MAIL FROM:<ceo@example.org>\r\nRCPT TO:<b@example.org>\r\nDATA\r\n\
         From: ceo@example.org\r\nSubject: smuggled\r\n\r\npay now\r\n"
    )
}

#[tokio::test]
async fn fake_ends_of_data_are_refused_and_nothing_is_handed_over() {
    let h = Harness::start(config()).await;
    let variants = ["\n.\r\n", "\r.\r\n", "\r\n.\n", "\n.\n", "\r\n.\r"];
    for fake in variants {
        let mut c = h.ehlo().await;
        assert_eq!(
            c.cmd("MAIL FROM:<a@sender.test>").await,
            "250 2.1.0 sender OK\r\n"
        );
        assert_eq!(
            c.cmd("RCPT TO:<b@example.org>").await,
            "250 2.1.5 recipient OK\r\n"
        );
        assert!(c.cmd("DATA").await.starts_with("354 "));
        // Everything up to the real end in one write, as an attacker sends it.
        c.send(format!("{}.\r\n", smuggle(fake))).await;
        assert_eq!(
            c.reply().await,
            "554 5.6.0 bare LF/CR not allowed; message refused\r\n",
            "fake end {fake:?}"
        );
        // Exactly one reply: the smuggled MAIL/RCPT/DATA were message text, and the
        // session reads commands again in step.
        assert_eq!(c.cmd("NOOP").await, "250 2.0.0 OK\r\n", "fake end {fake:?}");
        assert_eq!(
            c.cmd("RCPT TO:<b@example.org>").await,
            "503 5.5.1 need MAIL first\r\n"
        );
    }
    assert!(h.backend.messages().is_empty(), "nothing handed over");
    assert_eq!(
        h.metric("avsx_rejects_total{reason=\"smuggling\"}"),
        variants.len() as f64
    );
}

#[tokio::test]
async fn bare_newline_inside_the_text_is_refused() {
    let h = Harness::start(config()).await;
    let mut c = h.ehlo().await;
    for body in [
        "Subject: x\r\n\r\nline one\nline two\r\n",
        "Subject: x\r\n\r\ncr\ralone\r\n",
    ] {
        let reply = c.mail("a@sender.test", &["b@example.org"], body).await;
        assert_eq!(
            reply,
            "554 5.6.0 bare LF/CR not allowed; message refused\r\n"
        );
    }
    assert!(h.backend.messages().is_empty());
    // A clean message on the same connection still goes through.
    let reply = c
        .mail(
            "a@sender.test",
            &["b@example.org"],
            "Subject: ok\r\n\r\nfine\r\n",
        )
        .await;
    assert!(reply.starts_with("250 2.0.0 queued as "), "{reply}");
}

#[tokio::test]
async fn the_connection_ending_inside_data_hands_nothing_over() {
    let h = Harness::start(config()).await;
    let mut c = h.ehlo().await;
    c.cmd("MAIL FROM:<a@sender.test>").await;
    c.cmd("RCPT TO:<b@example.org>").await;
    c.cmd("DATA").await;
    // `\n.\r\n` then the client hangs up: no end of data ever came.
    c.send("Subject: x\r\n\r\nhello\n.\r\n").await;
    drop(c);
    h.wait_metric("avsx_sessions_total{outcome=\"closed\"}", 1.0)
        .await;
    assert!(h.backend.messages().is_empty());
}

#[tokio::test]
async fn bare_newlines_in_commands_are_refused() {
    let h = Harness::start(config()).await;
    let mut c = h.greeted().await;
    c.send("EHLO client.test\nNOOP\r\n").await;
    assert_eq!(
        c.reply().await,
        "500 5.5.2 bare LF/CR not allowed; end lines with CRLF\r\n"
    );
    assert_eq!(c.reply().await, "250 2.0.0 OK\r\n");
    // A bare CR inside a line refuses the whole line, up to its CRLF.
    c.send("HELO a\rMAIL FROM:<a@sender.test>\r\n").await;
    assert_eq!(
        c.reply().await,
        "500 5.5.2 bare LF/CR not allowed; end lines with CRLF\r\n"
    );
    assert_eq!(
        c.cmd("MAIL FROM:<a@sender.test>").await,
        "503 5.5.1 send EHLO or HELO first\r\n",
        "neither EHLO nor HELO was taken"
    );
    assert_eq!(h.metric("avsx_rejects_total{reason=\"bare_newline\"}"), 2.0);
}
