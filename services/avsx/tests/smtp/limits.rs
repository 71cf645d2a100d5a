//! Limits: message size (declared and actual), line length, recipients, connections
//! overall and per address, the command and DATA timeouts, and the drain at shutdown.

use std::time::{Duration, Instant};

use avsx::smtp::Server;

use crate::harness::*;

#[tokio::test]
async fn oversize_mail_is_refused() {
    let h = Harness::start(config()).await;
    let mut c = h.ehlo().await;
    assert_eq!(
        c.cmd("MAIL FROM:<a@sender.test> SIZE=10001").await,
        "552 5.3.4 message size exceeds fixed maximum of 10000 bytes\r\n"
    );
    // Declared small, sent large: read to the end, refused, nothing handed over.
    let line = format!("{}\r\n", "x".repeat(98));
    let body = line.repeat(101);
    let reply = c.mail("a@sender.test", &["b@example.org"], &body).await;
    assert_eq!(
        reply,
        "552 5.3.4 message size exceeds fixed maximum of 10000 bytes\r\n"
    );
    assert!(h.backend.messages().is_empty());
    // The session is in step; exactly the limit is accepted.
    assert_eq!(c.cmd("NOOP").await, "250 2.0.0 OK\r\n");
    let reply = c
        .mail("a@sender.test", &["b@example.org"], &line.repeat(100))
        .await;
    assert!(reply.starts_with("250 2.0.0 queued as"), "{reply}");
    assert_eq!(h.metric("avsx_rejects_total{reason=\"size\"}"), 2.0);
}

#[tokio::test]
async fn long_lines_are_refused() {
    let h = Harness::start(config()).await;
    let mut c = h.ehlo().await;
    // 999 octets + CRLF: one over max_line_bytes (1000).
    let long = format!("Subject: x\r\n\r\n{}\r\n", "y".repeat(999));
    let reply = c.mail("a@sender.test", &["b@example.org"], &long).await;
    assert_eq!(
        reply,
        "554 5.6.0 line longer than 1000 octets; message refused\r\n"
    );
    assert!(h.backend.messages().is_empty());
    // 998 + CRLF is fine; so is a stuffed dot in front of it.
    let fits = format!("Subject: x\r\n\r\n..{}\r\n", "y".repeat(997));
    let reply = c.mail("a@sender.test", &["b@example.org"], &fits).await;
    assert!(reply.starts_with("250 "), "{reply}");
    // A command line over the limit.
    assert_eq!(
        c.cmd(&format!("NOOP {}", "z".repeat(1000))).await,
        "500 5.5.2 line too long\r\n"
    );
    assert_eq!(c.cmd("NOOP").await, "250 2.0.0 OK\r\n");
}

#[tokio::test]
async fn too_many_recipients() {
    let h = Harness::start(config()).await;
    let mut c = h.ehlo().await;
    c.cmd("MAIL FROM:<a@sender.test>").await;
    for r in ["r1", "r2", "r3"] {
        assert_eq!(
            c.cmd(&format!("RCPT TO:<{r}@example.org>")).await,
            "250 2.1.5 recipient OK\r\n"
        );
    }
    assert_eq!(
        c.cmd("RCPT TO:<r4@example.org>").await,
        "452 4.5.3 too many recipients\r\n"
    );
    assert!(c.cmd("DATA").await.starts_with("354 "));
    c.send("Subject: x\r\n\r\ny\r\n.\r\n").await;
    assert!(c.reply().await.starts_with("250 "));
    let (envelope, _) = h.backend.message();
    assert_eq!(envelope.rcpt_to.len(), 3);
    assert_eq!(
        h.metric("avsx_rejects_total{reason=\"too_many_recipients\"}"),
        1.0
    );
}

#[tokio::test]
async fn connection_limits_overall_and_per_address() {
    let mut cfg = config();
    cfg.max_connections = 3;
    cfg.max_connections_per_ip = 2;
    let h = Harness::start(cfg).await;
    let refused = "421 4.7.0 too many connections\r\n";

    let a1 = h.greeted().await;
    let _a2 = h.greeted().await;
    let mut a3 = h.connect().await;
    assert_eq!(a3.reply().await, refused, "third from 127.0.0.1");
    a3.expect_closed().await;
    assert_eq!(h.metric("avsx_rejects_total{reason=\"per_ip_limit\"}"), 1.0);

    let mut b1 = Client::connect_from("127.0.0.2", h.addr).await;
    assert!(
        b1.reply().await.starts_with("220 "),
        "another address is served"
    );
    let mut c1 = Client::connect_from("127.0.0.3", h.addr).await;
    assert_eq!(c1.reply().await, refused, "fourth overall");
    c1.expect_closed().await;
    assert_eq!(
        h.metric("avsx_rejects_total{reason=\"connection_limit\"}"),
        1.0
    );
    assert_eq!(h.metric("avsx_sessions_total{outcome=\"refused\"}"), 2.0);

    // A session that ends frees its place.
    drop(a1);
    h.wait_metric("avsx_sessions_total{outcome=\"closed\"}", 1.0)
        .await;
    let mut a4 = h.connect().await;
    assert!(a4.reply().await.starts_with("220 "));
}

#[tokio::test]
async fn command_timeout() {
    let mut cfg = config();
    cfg.command_timeout_secs = 1;
    let h = Harness::start(cfg).await;
    let mut c = h.ehlo().await;
    let start = Instant::now();
    // A command that never ends counts as none.
    c.send("NOOP").await;
    assert_eq!(
        c.reply().await,
        "421 4.4.2 mx.test timeout, closing connection\r\n"
    );
    let waited = start.elapsed();
    assert!(
        waited >= Duration::from_millis(900) && waited < Duration::from_secs(5),
        "{waited:?}"
    );
    c.expect_closed().await;
    h.wait_metric("avsx_sessions_total{outcome=\"timeout\"}", 1.0)
        .await;
}

#[tokio::test]
async fn data_timeout_covers_the_whole_message() {
    let mut cfg = config();
    cfg.command_timeout_secs = 5;
    cfg.data_timeout_secs = 1;
    let h = Harness::start(cfg).await;
    let mut c = h.ehlo().await;
    c.cmd("MAIL FROM:<a@sender.test>").await;
    c.cmd("RCPT TO:<b@example.org>").await;
    assert!(c.cmd("DATA").await.starts_with("354 "));
    // A line every 200 ms: never idle for long, but the message takes too long.
    let start = Instant::now();
    let reply = loop {
        c.send("drip\r\n").await;
        if let Some(r) = c.reply_within(Duration::from_millis(200)).await {
            break r;
        }
        assert!(start.elapsed() < Duration::from_secs(5), "no timeout");
    };
    assert_eq!(reply, "421 4.4.2 mx.test timeout, closing connection\r\n");
    assert!(
        start.elapsed() < Duration::from_secs(4),
        "{:?}",
        start.elapsed()
    );
    assert!(h.backend.messages().is_empty());
}

#[tokio::test]
async fn shutdown_finishes_messages_in_flight_and_closes_idle_sessions() {
    let mut h = Harness::start(config()).await;
    let mut idle = h.ehlo().await;
    let mut busy = h.ehlo().await;
    busy.cmd("MAIL FROM:<a@sender.test>").await;
    busy.cmd("RCPT TO:<b@example.org>").await;
    busy.cmd("DATA").await;
    busy.send("Subject: in flight\r\n\r\nfirst half\r\n").await;

    h.cancel();
    let run = h.task();
    assert_eq!(
        idle.reply().await,
        "421 4.3.2 mx.test shutting down, try again later\r\n"
    );
    idle.expect_closed().await;
    // No new connections: the listener is closed (soon after the cancel).
    let until = Instant::now() + PATIENCE;
    while tokio::net::TcpStream::connect(h.addr).await.is_ok() {
        assert!(Instant::now() < until, "listener still open");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(!run.is_finished(), "waits for the message in flight");

    busy.send("second half\r\n.\r\n").await;
    assert!(busy.reply().await.starts_with("250 2.0.0 queued as "));
    assert_eq!(
        busy.reply().await,
        "421 4.3.2 mx.test shutting down, try again later\r\n"
    );
    tokio::time::timeout(PATIENCE, run)
        .await
        .expect("run returns once the sessions ended")
        .unwrap()
        .unwrap();
    let (_, message) = h.backend.message();
    assert!(message.ends_with("\r\n\r\nfirst half\r\nsecond half\r\n"));
}

#[tokio::test]
async fn bind_errors_name_the_address_and_the_file() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let mut cfg = config();
    cfg.listen = vec![taken.local_addr().unwrap()];
    let backend = std::sync::Arc::new(Fake::default());
    let e = Server::bind(&cfg, backend.clone(), Default::default())
        .await
        .err()
        .expect("address in use");
    let e = format!("{e:#}");
    assert!(e.contains(&taken.local_addr().unwrap().to_string()), "{e}");

    let dir = tempfile::tempdir().unwrap();
    let mut cfg = config();
    cfg.tls = Some(avsx::config::Tls {
        cert: dir.path().join("missing-cert.pem"),
        key: dir.path().join("key.pem"),
    });
    let e = Server::bind(&cfg, backend, Default::default())
        .await
        .err()
        .expect("no certificate");
    let e = format!("{e:#}");
    assert!(e.contains("missing-cert.pem"), "{e}");
}
