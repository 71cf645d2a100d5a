//! The probe against real `openssl s_server`s (modern, legacy, server preference,
//! groups, STARTTLS behind a fake SMTP front) and against hostile test listeners, all on
//! loopback.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::time::{Duration, Instant};

use testbed::servers::{Host, SServer, Server};
use tlsaudit::report::Protocol;
use tlsaudit::tls::{Options, Probe, probe};

fn options(addr: SocketAddr, timeout: Duration) -> Options {
    Options {
        target: addr.to_string(),
        sni: None,
        starttls: None,
        timeout,
        ca_file: None,
    }
}

fn probe_server(server: &SServer) -> Probe {
    probe(&options(server.addr(), Duration::from_secs(5))).expect("probe")
}

fn start(args: &[&str]) -> SServer {
    SServer::start_with(Host::Loopback, args).expect("s_server")
}

/// Accepted suite ids of `protocol`, in the order reported.
fn suites(p: &Probe, protocol: Protocol) -> Vec<u16> {
    let r = p
        .protocols
        .iter()
        .find(|r| r.protocol == protocol)
        .expect("every protocol reported");
    assert_eq!(r.accepted, !r.ciphers.is_empty(), "{r:?}");
    r.ciphers.iter().map(|c| c.id).collect()
}

fn sorted(mut v: Vec<u16>) -> Vec<u16> {
    v.sort_unstable();
    v
}

/// The server certificate as DER, to compare with the chain the probe saw.
fn leaf_der(server: &SServer) -> Vec<u8> {
    let out = std::process::Command::new("openssl")
        .args(["x509", "-outform", "DER", "-in"])
        .arg(server.cert())
        .output()
        .expect("openssl x509");
    assert!(out.status.success() && !out.stdout.is_empty());
    out.stdout
}

#[test]
fn modern_server_speaks_only_tls13_with_its_three_suites() {
    let server = start(&["-tls1_3"]);
    let p = probe_server(&server);
    for protocol in [
        Protocol::Ssl3,
        Protocol::Tls10,
        Protocol::Tls11,
        Protocol::Tls12,
    ] {
        assert!(suites(&p, protocol).is_empty(), "{protocol:?}: {p:?}");
    }
    // OpenSSL's default TLS 1.3 suites (no CCM).
    assert_eq!(
        sorted(suites(&p, Protocol::Tls13)),
        [0x1301, 0x1302, 0x1303],
        "{p:?}"
    );
    let tls13 = &p.protocols[4];
    assert!(
        tls13
            .ciphers
            .iter()
            .all(|c| c.forward_secrecy && c.bits >= 128)
    );
    // The certificate is encrypted in TLS 1.3: it came from the rustls handshake.
    assert_eq!(
        p.chain.first(),
        Some(&leaf_der(&server)),
        "chain {}",
        p.chain.len()
    );
    assert!(!p.ocsp_stapled);
    for g in ["x25519", "secp256r1", "secp384r1"] {
        assert!(
            p.groups.iter().any(|x| x == g),
            "{g} missing: {:?}",
            p.groups
        );
    }
    assert_eq!(p.dh_bits, None);
}

#[test]
fn legacy_server_accepts_tls10_and_tls11_with_its_weak_suites() {
    let cipher = "AES128-SHA:DHE-RSA-AES256-SHA:@SECLEVEL=0";
    let server = start(&["-cipher", cipher]);
    // openssl agrees that TLS 1.0 with AES128-SHA works.
    let out = server
        .s_client(&["-tls1", "-cipher", "AES128-SHA:@SECLEVEL=0"], b"")
        .expect("s_client -tls1");
    assert!(out.contains("TLSv1") && out.contains("AES128-SHA"), "{out}");

    let started = Instant::now();
    let p = probe_server(&server);
    eprintln!("probe took {:?}", started.elapsed());
    assert!(
        suites(&p, Protocol::Ssl3).is_empty(),
        "OpenSSL 3 has no SSLv3"
    );
    for protocol in [Protocol::Tls10, Protocol::Tls11, Protocol::Tls12] {
        assert_eq!(
            sorted(suites(&p, protocol)),
            [0x002F, 0x0039],
            "{protocol:?}: {p:?}"
        );
    }
    let tls10 = &p.protocols[1];
    let aes128 = tls10.ciphers.iter().find(|c| c.id == 0x002F).unwrap();
    assert_eq!(aes128.name, "TLS_RSA_WITH_AES_128_CBC_SHA");
    assert_eq!((aes128.bits, aes128.forward_secrecy), (128, false));
    assert!(!suites(&p, Protocol::Tls13).is_empty());
    // From the plaintext TLS 1.2 Certificate and the DHE ServerKeyExchange.
    assert_eq!(p.chain.first(), Some(&leaf_der(&server)));
    assert!(p.dh_bits.is_some_and(|b| b >= 2048), "{:?}", p.dh_bits);
}

#[test]
fn server_preference_is_told_from_client_preference() {
    // The probe offers AES256-SHA before AES128-SHA; the server lists them the other way.
    let args = ["-no_tls1_3", "-cipher", "AES128-SHA:AES256-SHA:@SECLEVEL=0"];
    let client_order = start(&args);
    let p = probe_server(&client_order);
    assert_eq!(p.protocols[3].server_order, Some(false), "{p:?}");
    assert_eq!(suites(&p, Protocol::Tls12), [0x0035, 0x002F]);

    let mut with_pref = args.to_vec();
    with_pref.push("-serverpref");
    let server_order = start(&with_pref);
    let p = probe_server(&server_order);
    assert_eq!(p.protocols[3].server_order, Some(true), "{p:?}");
    assert_eq!(suites(&p, Protocol::Tls12), [0x002F, 0x0035]);
    // One suite: nothing to compare.
    assert_eq!(p.protocols[4].server_order, None);
}

#[test]
fn groups_in_tls13_and_tls12() {
    let server = start(&["-groups", "x25519:secp384r1"]);
    let p = probe_server(&server);
    assert_eq!(p.groups, ["x25519", "secp384r1"], "{p:?}");

    // TLS 1.2 only: the groups come from ECDHE ServerKeyExchanges.
    let server = start(&["-no_tls1_3", "-groups", "secp521r1:secp256r1"]);
    let p = probe_server(&server);
    assert!(suites(&p, Protocol::Tls13).is_empty());
    assert_eq!(p.groups, ["secp256r1", "secp521r1"], "{p:?}");
}

/// A fake SMTP server in front of `backend`: greeting (multi-line), EHLO, STARTTLS, then
/// bytes proxied both ways. Runs until the test process ends.
fn smtp_front(backend: SocketAddr) -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    std::thread::spawn(move || {
        for client in listener.incoming().flatten() {
            std::thread::spawn(move || smtp_session(client, backend));
        }
    });
    addr
}

fn smtp_session(mut client: TcpStream, backend: SocketAddr) -> std::io::Result<()> {
    client.set_read_timeout(Some(Duration::from_secs(10)))?;
    client.write_all(b"220-front.test ESMTP\r\n220 welcome\r\n")?;
    expect_line(&mut client, "EHLO ")?;
    client.write_all(b"250-front.test\r\n250-PIPELINING\r\n250-STARTTLS\r\n250 8BITMIME\r\n")?;
    expect_line(&mut client, "STARTTLS")?;
    client.write_all(b"220 2.0.0 go ahead\r\n")?;
    let server = TcpStream::connect(backend)?;
    let (mut c2, mut s2) = (client.try_clone()?, server.try_clone()?);
    let up = std::thread::spawn(move || {
        let _ = std::io::copy(&mut c2, &mut s2);
        let _ = s2.shutdown(std::net::Shutdown::Write);
    });
    let (mut s, mut c) = (server, client);
    let _ = std::io::copy(&mut s, &mut c);
    let _ = c.shutdown(std::net::Shutdown::Both);
    let _ = up.join();
    Ok(())
}

/// Reads one line byte by byte (so nothing after it is consumed) and checks its start.
fn expect_line(s: &mut TcpStream, prefix: &str) -> std::io::Result<()> {
    let mut line = Vec::new();
    let mut b = [0u8];
    while !line.ends_with(b"\r\n") {
        if s.read(&mut b)? == 0 || line.len() > 1000 {
            return Err(std::io::ErrorKind::UnexpectedEof.into());
        }
        line.push(b[0]);
    }
    if line.starts_with(prefix.as_bytes()) {
        Ok(())
    } else {
        Err(std::io::Error::other(format!("unexpected {line:?}")))
    }
}

#[test]
fn starttls_smtp_through_a_fake_front() {
    let server = start(&["-cipher", "ECDHE-RSA-AES128-GCM-SHA256"]);
    let front = smtp_front(server.addr());
    let mut o = options(front, Duration::from_secs(5));
    o.starttls = Some("smtp".into());
    let p = probe(&o).expect("probe via STARTTLS");
    assert_eq!(suites(&p, Protocol::Tls12), [0xC02F], "{p:?}");
    assert!(!suites(&p, Protocol::Tls13).is_empty());
    assert!(suites(&p, Protocol::Tls10).is_empty());
    assert_eq!(p.chain.first(), Some(&leaf_der(&server)));

    // Without STARTTLS, the SMTP greeting is "not TLS".
    let e = probe(&options(front, Duration::from_secs(5))).unwrap_err();
    assert!(format!("{e:#}").contains("not TLS"), "{e:#}");
}

/// A listener that runs `session` on each connection, in its own thread.
fn listener(session: fn(TcpStream)) -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    std::thread::spawn(move || {
        for s in listener.incoming().flatten() {
            std::thread::spawn(move || session(s));
        }
    });
    addr
}

/// Reads (part of) the ClientHello so that the close is a reply to it.
fn read_some(s: &mut TcpStream) {
    let _ = s.set_read_timeout(Some(Duration::from_secs(5)));
    let _ = s.read(&mut [0u8; 4096]);
}

#[test]
fn busy_smtp_greeting_is_a_clear_error() {
    let addr = listener(|mut s| {
        let _ = s.write_all(b"421-mx.test busy\r\n421 4.3.2 try again later\r\n");
    });
    let mut o = options(addr, Duration::from_secs(1));
    o.starttls = Some("smtp".into());
    let e = format!("{:#}", probe(&o).unwrap_err());
    assert!(
        e.contains("421") && e.contains("try again later") && e.contains(&o.target),
        "{e}"
    );
}

#[test]
fn unreachable_target_is_an_error_naming_it() {
    // A port just freed: nothing listens there.
    let addr = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let o = options(addr, Duration::from_secs(1));
    let e = format!("{:#}", probe(&o).unwrap_err());
    assert!(e.contains(&o.target), "{e}");
}

/// Runs the probe with a 1 s timeout and checks it came back in reasonable time.
fn probe_hostile(addr: SocketAddr) -> anyhow::Result<Probe> {
    let started = Instant::now();
    let r = probe(&options(addr, Duration::from_secs(1)));
    let took = started.elapsed();
    assert!(took < Duration::from_secs(8), "took {took:?}: {r:?}");
    r
}

#[test]
fn server_closing_after_the_hello_accepts_nothing() {
    let addr = listener(|mut s| read_some(&mut s));
    let p = probe_hostile(addr).expect("a refusal is a result");
    assert!(p.protocols.iter().all(|r| !r.accepted), "{p:?}");
    assert_eq!(p.protocols.len(), 5);

    // Half a ServerHello, then close.
    let addr = listener(|mut s| {
        read_some(&mut s);
        let _ = s.write_all(&[22, 3, 3, 0, 80, 2, 0, 0, 76, 3, 3, 1, 2]);
    });
    let p = probe_hostile(addr).expect("a refusal is a result");
    assert!(p.protocols.iter().all(|r| !r.accepted), "{p:?}");
}

#[test]
fn garbage_is_not_tls() {
    let addr = listener(|mut s| {
        read_some(&mut s);
        let _ = s.write_all(b"\x00\x17\xff garbage, not a TLS record at all\r\n");
    });
    let e = format!("{:#}", probe_hostile(addr).unwrap_err());
    assert!(e.contains("not TLS"), "{e}");

    // An SSLv2-style reply.
    let addr = listener(|mut s| {
        read_some(&mut s);
        let _ = s.write_all(&[0x80, 0x2e, 0x04, 0x00, 0x01, 0x00, 0x02, 0, 0]);
    });
    let e = format!("{:#}", probe_hostile(addr).unwrap_err());
    assert!(e.contains("not TLS") && e.contains("SSLv2"), "{e}");
}

#[test]
fn silent_and_stalling_servers_time_out() {
    // Never answers.
    let addr = listener(|mut s| {
        read_some(&mut s);
        std::thread::sleep(Duration::from_secs(30));
    });
    let e = format!("{:#}", probe_hostile(addr).unwrap_err());
    assert!(e.contains("no TLS answer within"), "{e}");

    // A record header, then nothing.
    let addr = listener(|mut s| {
        read_some(&mut s);
        let _ = s.write_all(&[22, 3, 3, 0, 80, 2]);
        std::thread::sleep(Duration::from_secs(30));
    });
    let e = format!("{:#}", probe_hostile(addr).unwrap_err());
    assert!(e.contains("no TLS answer within"), "{e}");
}

/// An OCSP response ("good") for the testbed's server certificate, signed by the
/// certificate itself: the probe only checks that one is stapled, not that it verifies.
fn ocsp_response(dir: &std::path::Path) -> std::path::PathBuf {
    let (ca, cert, key) = (
        dir.join("ca.pem"),
        dir.join("server.pem"),
        dir.join("server.key"),
    );
    let index = dir.join("ocsp-index.txt");
    std::fs::write(
        &index,
        "V\t301231000000Z\t\t02\tunknown\t/CN=testbed server\n",
    )
    .unwrap();
    let resp = dir.join("ocsp.der");
    let out = std::process::Command::new("openssl")
        .args(["ocsp", "-ndays", "1", "-index"])
        .arg(&index)
        .arg("-rsigner")
        .arg(&cert)
        .arg("-rkey")
        .arg(&key)
        .arg("-CA")
        .arg(&ca)
        .arg("-issuer")
        .arg(&ca)
        .arg("-cert")
        .arg(&cert)
        .arg("-respout")
        .arg(&resp)
        .output()
        .expect("openssl ocsp");
    assert!(out.status.success(), "{out:?}");
    resp
}

#[test]
fn stapled_ocsp_is_seen_in_tls12_and_tls13() {
    // The certificates are made at start; a first server provides them for the others.
    let plain = start(&[]);
    let p = probe_server(&plain);
    assert!(!p.ocsp_stapled);
    // Written into the first server's private directory, removed when it drops.
    let resp = ocsp_response(plain.cert().parent().expect("certificate directory"));
    let resp = resp.to_str().expect("UTF-8 path");

    // TLS 1.2: the CertificateStatus message; TLS 1.3 only: rustls's OCSP response.
    for extra in [&[][..], &["-tls1_3"][..]] {
        let mut args = vec!["-status_file", resp];
        args.extend_from_slice(extra);
        let server = start(&args);
        let p = probe_server(&server);
        assert!(p.ocsp_stapled, "{extra:?}: {p:?}");
    }
}

#[test]
fn server_answering_tls12_to_every_hello_accepts_only_tls12() {
    // Whatever is asked: a TLS 1.2 ServerHello with TLS_RSA_WITH_AES_128_CBC_SHA, then
    // ServerHelloDone.
    let addr = listener(|mut s| {
        read_some(&mut s);
        let mut hs = vec![2, 0, 0, 38, 3, 3];
        hs.extend_from_slice(&[7; 32]);
        hs.extend_from_slice(&[0, 0x00, 0x2F, 0]);
        hs.extend_from_slice(&[14, 0, 0, 0]);
        let mut record = vec![22, 3, 3, 0, hs.len() as u8];
        record.extend_from_slice(&hs);
        let _ = s.write_all(&record);
    });
    let p = probe_hostile(addr).expect("probe");
    assert_eq!(suites(&p, Protocol::Tls12), [0x002F], "{p:?}");
    for protocol in [
        Protocol::Ssl3,
        Protocol::Tls10,
        Protocol::Tls11,
        Protocol::Tls13,
    ] {
        assert!(suites(&p, protocol).is_empty(), "{protocol:?}: {p:?}");
    }
}
