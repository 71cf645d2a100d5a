//! avsx's own trace header (RFC 5321 4.4) and the transaction ids it names.
//!
//! ```text
//! Received: from client.example ([192.0.2.7])
//!         by mx1.example.org (avsx) with ESMTPS id b6fq3x2kd7m4ah5c
//!         (using TLSv1.3 with cipher TLS13_AES_256_GCM_SHA384);
//!         Tue, 1 Jul 2025 10:52:37 +0200
//! ```
//!
//! The continuation lines start with a tab. The protocol is RFC 3848's: `SMTP` after
//! HELO, `ESMTP` after EHLO, `ESMTPS` with TLS. No reverse DNS: the client is named by
//! its HELO and its address only.

use std::net::IpAddr;

use crate::envelope::{Envelope, TlsInfo};

/// A random transaction id: 16 characters of lowercase base32, 80 bits; unique for
/// practical purposes without coordination between listeners or restarts.
pub fn new_id() -> String {
    const ALPHABET: &[u8; 32] = b"abcdefghijklmnopqrstuvwxyz234567";
    let bits: u128 = rand::random::<u128>();
    (0..16)
        .map(|i| ALPHABET[((bits >> (i * 5)) & 31) as usize] as char)
        .collect()
}

/// The header, folded, CRLF-terminated. `extended`: the client said EHLO.
pub fn header(envelope: &Envelope, hostname: &str, extended: bool, date: &str) -> String {
    let protocol = match (&envelope.tls, extended) {
        (Some(_), _) => "ESMTPS",
        (None, true) => "ESMTP",
        (None, false) => "SMTP",
    };
    let mut h = format!(
        "Received: from {} ({})\r\n\tby {hostname} (avsx) with {protocol} id {}",
        sanitize(&envelope.helo),
        address_literal(envelope.client.ip()),
        envelope.id,
    );
    if let Some(TlsInfo { version, cipher }) = &envelope.tls {
        h.push_str(&format!("\r\n\t(using {version} with cipher {cipher})"));
    }
    h.push_str(&format!(";\r\n\t{date}\r\n"));
    h
}

/// Now, as an RFC 5322 date.
pub fn now() -> String {
    chrono::Local::now().to_rfc2822()
}

/// `[192.0.2.7]`, `[IPv6:2001:db8::7]` (RFC 5321 4.1.3); IPv4-mapped IPv6 as IPv4.
fn address_literal(ip: IpAddr) -> String {
    match ip.to_canonical() {
        IpAddr::V4(v4) => format!("[{v4}]"),
        IpAddr::V6(v6) => format!("[IPv6:{v6}]"),
    }
}

/// The client chose its HELO name; in the header it may only use what a domain or an
/// address literal uses, so it cannot forge comments, a `;` or a date.
fn sanitize(helo: &str) -> String {
    helo.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || "-._:[]".contains(c) {
                c
            } else {
                '_'
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn envelope(tls: Option<TlsInfo>) -> Envelope {
        Envelope {
            id: "abcdefghijklmnop".into(),
            client: "[2001:db8::7]:4711".parse().unwrap(),
            helo: "evil (x); Mon".into(),
            mail_from: String::new(),
            rcpt_to: vec![],
            tls,
        }
    }

    #[test]
    fn plain_and_tls_headers() {
        let date = "Tue, 1 Jul 2025 10:52:37 +0200";
        assert_eq!(
            header(&envelope(None), "mx.example.org", false, date),
            "Received: from evil__x___Mon ([IPv6:2001:db8::7])\r\n\
             \tby mx.example.org (avsx) with SMTP id abcdefghijklmnop;\r\n\
             \tTue, 1 Jul 2025 10:52:37 +0200\r\n"
        );
        let tls = TlsInfo {
            version: "TLSv1.3".into(),
            cipher: "TLS13_AES_256_GCM_SHA384".into(),
        };
        assert_eq!(
            header(&envelope(Some(tls)), "mx.example.org", true, date),
            "Received: from evil__x___Mon ([IPv6:2001:db8::7])\r\n\
             \tby mx.example.org (avsx) with ESMTPS id abcdefghijklmnop\r\n\
             \t(using TLSv1.3 with cipher TLS13_AES_256_GCM_SHA384);\r\n\
             \tTue, 1 Jul 2025 10:52:37 +0200\r\n"
        );
    }

    #[test]
    fn mapped_ipv4_is_written_as_ipv4() {
        assert_eq!(
            address_literal("::ffff:192.0.2.7".parse().unwrap()),
            "[192.0.2.7]"
        );
    }

    #[test]
    fn ids_are_distinct() {
        let ids: std::collections::HashSet<String> = (0..10_000).map(|_| new_id()).collect();
        assert_eq!(ids.len(), 10_000);
        assert!(ids.iter().all(|i| i.len() == 16));
    }

    #[test]
    fn date_is_rfc5322() {
        let d = now();
        assert!(chrono::DateTime::parse_from_rfc2822(&d).is_ok(), "{d}");
    }
}
