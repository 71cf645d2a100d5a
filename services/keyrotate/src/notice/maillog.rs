//! Correspondents from a Postfix mail log: every address Postfix delivered a mail to.
//!
//! A delivery line looks like
//!
//! ```text
//! Mar  3 10:00:01 mx postfix/smtp[123]: 4F2A31: to=<bob@example.net>, relay=mx.example.net[192.0.2.1]:25, delay=1, delays=0/0/0.5/0.5, dsn=2.0.0, status=sent (250 2.0.0 Ok)
//! ```
//!
//! (or with an RFC 3339 timestamp, as rsyslog and journald write it). Taken are the
//! `to=<...>` of lines with `status=sent` from these delivery agents:
//!
//! * `smtp` (and Debian's `relay`, the same client under another service name): mail
//!   handed to another mail server, the correspondents we want to tell;
//! * `lmtp`: mail handed to a mailbox server (Dovecot, Cyrus), i.e. people with a
//!   mailbox who received mail through this host.
//!
//! Left out are `local`, `virtual`, `pipe`, `discard` and `error`: deliveries to system
//! accounts, aliases and programs on this host (`root`, `postmaster`, list pipes), which
//! are not people who keep our key. `orig_to=` (the address before alias expansion) is
//! ignored: `to=` is where the mail actually went. `status=deferred` and `bounced` did not
//! reach anybody. Addresses that are not plain `local@domain` (quoted local parts, `<>`)
//! are skipped. Compressed (rotated, `.gz`) logs are not read; name the live log.

use std::io::{BufRead, BufReader};
use std::path::Path;

use anyhow::Context;

use crate::config::is_address;

/// The delivery agents (the last part of the syslog program name, `postfix/smtp`) whose
/// deliveries count; see the module documentation for why.
const AGENTS: &[&str] = &["smtp", "relay", "lmtp"];

/// Lines longer than this are not Postfix delivery lines; they are skipped rather than
/// buffered without bound.
const MAX_LINE: usize = 64 * 1024;

/// Every address in `path` a mail was delivered to, lowercased, in log order with
/// repetitions (the caller deduplicates).
pub fn delivered(path: &Path) -> anyhow::Result<Vec<String>> {
    let file = std::fs::File::open(path)
        .with_context(|| format!("opening the mail log {}", path.display()))?;
    let mut reader = BufReader::new(file);
    let mut found = Vec::new();
    let mut line = Vec::new();
    let mut number = 0usize;
    loop {
        line.clear();
        number += 1;
        let n = reader
            .read_until(b'\n', &mut line)
            .with_context(|| format!("reading the mail log {} at line {number}", path.display()))?;
        if n == 0 {
            break;
        }
        if line.len() > MAX_LINE {
            continue;
        }
        // Log lines are ASCII in practice; anything else cannot hold a plain address.
        let text = String::from_utf8_lossy(&line);
        if let Some(addr) = delivery(&text) {
            found.push(addr);
        }
    }
    Ok(found)
}

/// The recipient of a successful smtp/lmtp delivery line, lowercased.
pub fn delivery(line: &str) -> Option<String> {
    let mut words = line.split_ascii_whitespace();
    // The program: the first word like `postfix/smtp[123]:` or `postfix-out/relay[9]:`.
    let program = words.find(|w| w.ends_with("]:") && w.contains('['))?;
    let name = &program[..program.find('[')?];
    let (system, agent) = name.rsplit_once('/')?;
    if !system.starts_with("postfix") || !AGENTS.contains(&agent) {
        return None;
    }
    let rest: Vec<&str> = words.collect();
    // Fields are `name=value,`; the status field is followed by its explanation.
    let sent = rest.contains(&"status=sent");
    if !sent {
        return None;
    }
    let to = rest.iter().find_map(|w| w.strip_prefix("to=<"))?;
    let addr = to.strip_suffix(">,").or_else(|| to.strip_suffix('>'))?;
    is_address(addr).then(|| addr.to_lowercase())
}

#[cfg(test)]
mod tests {
    use super::*;

    const SENT: &str = "Mar  3 10:00:01 mx postfix/smtp[123]: 4F2A31: to=<Bob@Example.NET>, relay=mx.example.net[192.0.2.1]:25, delay=1, delays=0/0/0.5/0.5, dsn=2.0.0, status=sent (250 2.0.0 Ok: queued as 77)";

    #[test]
    fn sent_smtp_and_lmtp_deliveries_count() {
        assert_eq!(delivery(SENT).as_deref(), Some("bob@example.net"));
        let lmtp = "2026-03-03T10:00:01.123456+01:00 mx postfix/lmtp[9]: 1A: to=<carol@example.org>, orig_to=<c@example.org>, relay=mail.example.org[private/dovecot-lmtp], delay=0.1, dsn=2.0.0, status=sent (250 2.0.0 <carol@example.org> Saved)";
        assert_eq!(delivery(lmtp).as_deref(), Some("carol@example.org"));
        let relay = SENT.replace("postfix/smtp", "postfix-out/relay");
        assert_eq!(delivery(&relay).as_deref(), Some("bob@example.net"));
    }

    #[test]
    fn other_lines_do_not() {
        for line in [
            SENT.replace("status=sent", "status=deferred"),
            SENT.replace("status=sent", "status=bounced"),
            SENT.replace("postfix/smtp", "postfix/local"),
            SENT.replace("postfix/smtp", "postfix/virtual"),
            SENT.replace("postfix/smtp", "postfix/pipe"),
            SENT.replace("postfix/smtp", "notpostfix/smtp"),
            SENT.replace("to=<Bob@Example.NET>", "to=<\"bob smith\"@example.net>"),
            SENT.replace("to=<Bob@Example.NET>", "to=<>"),
            SENT.replace("to=<Bob@Example.NET>", "orig_to=<bob@example.net>"),
            "Mar  3 10:00:01 mx postfix/smtpd[5]: connect from x[192.0.2.9] status=sent to=<a@b.c>"
                .to_owned(),
            "garbage".to_owned(),
            String::new(),
        ] {
            assert_eq!(delivery(&line), None, "{line}");
        }
    }

    #[test]
    fn a_missing_log_is_an_error_naming_it() {
        let e = format!(
            "{:#}",
            delivered(Path::new("/nonexistent/mail.log")).unwrap_err()
        );
        assert!(
            e.contains("/nonexistent/mail.log") && e.contains("No such file"),
            "{e}"
        );
    }
}
