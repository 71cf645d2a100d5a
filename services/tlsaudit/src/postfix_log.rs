//! Postfix logs: which SMTP clients fail the TLS handshake, and why.
//!
//! The Postfix SMTP server (`postfix/smtpd`, `postfix/submission/smtpd`, ...) and
//! postscreen's `postfix/tlsproxy` log a failed handshake as
//!
//! ```text
//! Nov 21 10:00:00 mx postfix/smtpd[123]: connect from mail.example.com[192.0.2.1]
//! Nov 21 10:00:00 mx postfix/smtpd[123]: SSL_accept error from mail.example.com[192.0.2.1]: -1
//! Nov 21 10:00:00 mx postfix/smtpd[123]: warning: TLS library problem: error:0A0000C1:SSL routines:tls_post_process_client_hello:no shared cipher:../ssl/statem/statem_srvr.c:2220:
//! Nov 21 10:00:00 mx postfix/smtpd[123]: lost connection after STARTTLS from mail.example.com[192.0.2.1]
//! ```
//!
//! The `TLS library problem` lines name no client: they belong to the last client the
//! same process (syslog host and pid) logged a `connect from` or `SSL_accept error`
//! for. Each `SSL_accept error` is one failure; the OpenSSL reasons that follow it
//! (`no shared cipher`, `unsupported protocol`, ...) are counted per client, and a
//! failure without any is counted under the reason `SSL_accept error`. A library
//! problem that comes without an `SSL_accept error` (some versions log it first, or
//! only it) is a failure of its own.
//!
//! The parser is line by line and keeps one small state per live process, dropped at
//! its `disconnect` and at the end of each input (a process cut in two by log rotation
//! loses the attribution of its library problems). Lines that are not valid UTF-8, or
//! are longer than [`MAX_LINE`], are skipped and counted.

use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::fs::File;
use std::io::{BufRead, BufReader, Read};
use std::path::PathBuf;
use std::sync::LazyLock;

use anyhow::Context as _;
use regex::Regex;
use serde::Serialize;

/// Lines longer than this are thrown away (and counted in
/// [`LogReport::invalid_lines`]) instead of being buffered.
pub const MAX_LINE: usize = 64 * 1024;

/// The reason recorded for a failure no OpenSSL reason was logged for.
pub const REASON_ACCEPT_ERROR: &str = "SSL_accept error";
/// The reason recorded for a library problem line whose OpenSSL reason is unreadable.
pub const REASON_LIBRARY: &str = "TLS library problem";

/// One client whose TLS handshakes failed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct FailedClient {
    /// Reverse name as Postfix logged it, or "unknown".
    pub host: String,
    /// The address, IPv6 without brackets or `IPv6:` prefix.
    pub ip: String,
    pub failures: u64,
    /// OpenSSL reason ("no shared cipher", "unsupported protocol", "wrong version
    /// number", "sslv3 alert handshake failure", ...) or [`REASON_ACCEPT_ERROR`], and
    /// how often it was logged.
    pub reasons: BTreeMap<String, u64>,
    /// Timestamps of the first and last failure, as written in the log.
    pub first: String,
    pub last: String,
}

/// What [`read`] or [`parse`] found.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct LogReport {
    /// Every line read, invalid ones included.
    pub lines: u64,
    /// Lines of the SMTP server or tlsproxy about TLS: `SSL_accept error`,
    /// `TLS library problem` and `TLS connection established`.
    pub tls_lines: u64,
    /// Lines skipped: not valid UTF-8, or longer than [`MAX_LINE`].
    pub invalid_lines: u64,
    /// `TLS library problem` lines of a process that had named no client yet.
    pub unattributed: u64,
    /// Sorted by failures (most first), then by address (IPv4 before IPv6).
    pub clients: Vec<FailedClient>,
}

/// Reads Postfix logs, in order: plain text, or gzip when the file starts with the
/// gzip magic, whatever its name.
pub fn read(paths: &[PathBuf]) -> anyhow::Result<LogReport> {
    let mut report = LogReport::default();
    for path in paths {
        let file = File::open(path).with_context(|| format!("opening {}", path.display()))?;
        let mut reader = BufReader::new(file);
        let head = reader
            .fill_buf()
            .with_context(|| format!("reading {}", path.display()))?;
        let result = if head.starts_with(&[0x1f, 0x8b]) {
            parse(
                BufReader::new(flate2::bufread::MultiGzDecoder::new(reader)),
                &mut report,
            )
        } else {
            parse(reader, &mut report)
        };
        result.with_context(|| format!("reading {}", path.display()))?;
    }
    Ok(report)
}

/// Adds what `reader` holds to `report` (its clients are kept and added to).
pub fn parse(mut reader: impl BufRead, report: &mut LogReport) -> anyhow::Result<()> {
    let mut parser = Parser::new(std::mem::take(&mut report.clients));
    let mut buf = Vec::new();
    loop {
        buf.clear();
        let n = (&mut reader)
            .take(MAX_LINE as u64 + 1)
            .read_until(b'\n', &mut buf)?;
        if n == 0 {
            break;
        }
        report.lines += 1;
        if buf.last() != Some(&b'\n') && buf.len() > MAX_LINE {
            skip_line(&mut reader)?;
            report.invalid_lines += 1;
            continue;
        }
        while matches!(buf.last(), Some(b'\n' | b'\r')) {
            buf.pop();
        }
        match std::str::from_utf8(&buf) {
            Ok(line) => parser.line(line, report),
            Err(_) => report.invalid_lines += 1,
        }
    }
    report.clients = parser.finish();
    Ok(())
}

/// Discards the rest of an oversized line.
fn skip_line(reader: &mut impl BufRead) -> std::io::Result<()> {
    loop {
        let chunk = reader.fill_buf()?;
        if chunk.is_empty() {
            return Ok(());
        }
        match chunk.iter().position(|&b| b == b'\n') {
            Some(i) => {
                reader.consume(i + 1);
                return Ok(());
            }
            None => {
                let n = chunk.len();
                reader.consume(n);
            }
        }
    }
}

/// `timestamp host program[pid]: message`, with a classic syslog or an RFC 3339
/// timestamp, for the Postfix programs that do TLS for SMTP clients.
static HEADER: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(
        r"^(?P<ts>[A-Z][a-z]{2} +\d{1,2} \d{2}:\d{2}:\d{2}|\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}:\d{2}(?:\.\d+)?(?:Z|[+-]\d{2}:?\d{2})?) (?P<host>\S+) postfix[^\s/\[]*(?:/[^\s/\[]+)*/(?:smtpd|tlsproxy|postscreen)\[(?P<pid>\d+)\]: (?P<msg>.*)$",
    )
    .expect("valid regex")
});

/// `name[address]`; the name is empty in tlsproxy's `[address]:port`.
static CLIENT: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r"^(\S*?)\[([^\]\s]+)\]").expect("valid regex"));

/// The OpenSSL error of a library problem line, 1.x (`140..:error:1408A0C1:SSL
/// routines:ssl3_get_client_hello:no shared cipher:s3_srvr.c:1420:`) and 3.x
/// (`error:0A000102:SSL routines::unsupported protocol:...`) alike.
static OPENSSL_ERROR: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"error:[0-9A-Fa-f]+:[^:]*:[^:]*:(?P<reason>[^:]+)").expect("valid regex")
});

/// What one message means.
#[derive(Debug, PartialEq, Eq)]
enum Event<'a> {
    Connect(Client),
    AcceptError(Client),
    LibraryProblem(&'a str),
    Established,
    Disconnect,
    Other,
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct Client {
    host: String,
    ip: String,
}

fn client(text: &str) -> Option<Client> {
    let caps = CLIENT.captures(text)?;
    let host = match &caps[1] {
        "" => "unknown",
        name => name,
    };
    let ip = caps[2].strip_prefix("IPv6:").unwrap_or(&caps[2]);
    Some(Client {
        host: host.to_owned(),
        ip: ip.to_owned(),
    })
}

fn event(msg: &str) -> Event<'_> {
    if let Some(rest) = msg.strip_prefix("connect from ") {
        return client(rest).map_or(Event::Other, Event::Connect);
    }
    // tlsproxy and postscreen: `CONNECT from [192.0.2.1]:12345 to [192.0.2.25]:25`.
    if let Some(rest) = msg.strip_prefix("CONNECT from ") {
        return client(rest).map_or(Event::Other, Event::Connect);
    }
    if let Some(rest) = msg.strip_prefix("SSL_accept error from ") {
        return client(rest).map_or(Event::Other, Event::AcceptError);
    }
    if let Some(rest) = msg.strip_prefix("warning: TLS library problem: ") {
        return Event::LibraryProblem(rest);
    }
    if msg.contains("TLS connection established from ") {
        return Event::Established;
    }
    if msg.starts_with("disconnect from ")
        || msg.starts_with("DISCONNECT ")
        || msg.starts_with("lost connection after ")
        || msg.starts_with("timeout after ")
    {
        return Event::Disconnect;
    }
    Event::Other
}

/// The OpenSSL reason of a library problem line, e.g. `no shared cipher`.
fn reason(problem: &str) -> String {
    OPENSSL_ERROR
        .captures(problem)
        .map(|c| c["reason"].trim().to_owned())
        .filter(|r| !r.is_empty())
        .unwrap_or_else(|| REASON_LIBRARY.to_owned())
}

/// A failure whose reasons may still be coming.
struct Pending {
    ip: String,
    /// An `SSL_accept error` line was seen (else only library problems).
    accept_error: bool,
    reasons: u64,
}

/// One smtpd or tlsproxy process.
#[derive(Default)]
struct Session {
    /// The last client it named.
    client: Option<Client>,
    pending: Option<Pending>,
}

struct Parser {
    clients: HashMap<String, FailedClient>,
    /// By syslog host and pid.
    sessions: HashMap<(String, u32), Session>,
}

impl Parser {
    fn new(clients: Vec<FailedClient>) -> Parser {
        Parser {
            clients: clients.into_iter().map(|c| (c.ip.clone(), c)).collect(),
            sessions: HashMap::new(),
        }
    }

    fn line(&mut self, line: &str, report: &mut LogReport) {
        let Some(caps) = HEADER.captures(line) else {
            return;
        };
        let Ok(pid) = caps["pid"].parse::<u32>() else {
            return;
        };
        let ts = &caps["ts"];
        let key = (caps["host"].to_owned(), pid);
        match event(&caps["msg"]) {
            Event::Connect(client) => {
                let mut session = self.sessions.remove(&key).unwrap_or_default();
                self.flush(&mut session);
                session.client = Some(client);
                self.sessions.insert(key, session);
            }
            Event::AcceptError(client) => {
                report.tls_lines += 1;
                let mut session = self.sessions.remove(&key).unwrap_or_default();
                match &mut session.pending {
                    // Library problems logged first: the same failure.
                    Some(p) if !p.accept_error && p.ip == client.ip => p.accept_error = true,
                    _ => {
                        self.flush(&mut session);
                        self.failure(&client, ts);
                        session.pending = Some(Pending {
                            ip: client.ip.clone(),
                            accept_error: true,
                            reasons: 0,
                        });
                    }
                }
                session.client = Some(client);
                self.sessions.insert(key, session);
            }
            Event::LibraryProblem(problem) => {
                report.tls_lines += 1;
                let reason = reason(problem);
                let Some(session) = self.sessions.get_mut(&key) else {
                    report.unattributed += 1;
                    return;
                };
                if session.pending.is_none() {
                    let Some(client) = session.client.clone() else {
                        report.unattributed += 1;
                        return;
                    };
                    Self::failure_in(&mut self.clients, &client, ts);
                    session.pending = Some(Pending {
                        ip: client.ip,
                        accept_error: false,
                        reasons: 0,
                    });
                }
                let pending = session.pending.as_mut().expect("set above");
                pending.reasons += 1;
                if let Some(c) = self.clients.get_mut(&pending.ip) {
                    *c.reasons.entry(reason).or_default() += 1;
                }
            }
            Event::Established => report.tls_lines += 1,
            Event::Disconnect => {
                if let Some(mut session) = self.sessions.remove(&key) {
                    self.flush(&mut session);
                }
            }
            Event::Other => {}
        }
    }

    fn failure(&mut self, client: &Client, ts: &str) {
        Self::failure_in(&mut self.clients, client, ts);
    }

    fn failure_in(clients: &mut HashMap<String, FailedClient>, client: &Client, ts: &str) {
        let entry = clients
            .entry(client.ip.clone())
            .or_insert_with(|| FailedClient {
                host: client.host.clone(),
                ip: client.ip.clone(),
                failures: 0,
                reasons: BTreeMap::new(),
                first: ts.to_owned(),
                last: ts.to_owned(),
            });
        entry.failures += 1;
        entry.last = ts.to_owned();
        if entry.host == "unknown" && client.host != "unknown" {
            entry.host = client.host.clone();
        }
    }

    /// Closes the session's pending failure: no reason logged means
    /// [`REASON_ACCEPT_ERROR`].
    fn flush(&mut self, session: &mut Session) {
        let Some(p) = session.pending.take() else {
            return;
        };
        if p.reasons == 0 {
            if let Some(c) = self.clients.get_mut(&p.ip) {
                *c.reasons.entry(REASON_ACCEPT_ERROR.to_owned()).or_default() += 1;
            }
        }
    }

    fn finish(mut self) -> Vec<FailedClient> {
        let mut sessions = std::mem::take(&mut self.sessions);
        for session in sessions.values_mut() {
            self.flush(session);
        }
        let mut clients: Vec<FailedClient> = self.clients.into_values().collect();
        // By address as an address (IPv4 first, 9.x before 10.x), the text as a tie-break.
        clients.sort_by_cached_key(|c| {
            (
                std::cmp::Reverse(c.failures),
                c.ip.parse::<std::net::IpAddr>().ok(),
                c.ip.clone(),
            )
        });
        clients
    }
}

impl fmt::Display for LogReport {
    /// A table: failures, client, address, reasons; then a summary line.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let reasons: Vec<String> = self
            .clients
            .iter()
            .map(|c| {
                let mut r: Vec<(&String, &u64)> = c.reasons.iter().collect();
                r.sort_by(|a, b| b.1.cmp(a.1).then_with(|| a.0.cmp(b.0)));
                r.iter()
                    .map(|(reason, n)| format!("{reason} ({n})"))
                    .collect::<Vec<_>>()
                    .join(", ")
            })
            .collect();
        let host_w = self
            .clients
            .iter()
            .map(|c| c.host.chars().count())
            .chain([6])
            .max()
            .unwrap_or(6);
        let ip_w = self
            .clients
            .iter()
            .map(|c| c.ip.len())
            .chain([2])
            .max()
            .unwrap_or(2);
        if !self.clients.is_empty() {
            writeln!(
                f,
                "{:>8}  {:<host_w$}  {:<ip_w$}  reasons",
                "failures", "client", "ip"
            )?;
            for (c, r) in self.clients.iter().zip(&reasons) {
                writeln!(
                    f,
                    "{:>8}  {:<host_w$}  {:<ip_w$}  {r}",
                    c.failures, c.host, c.ip
                )?;
            }
        }
        let failures: u64 = self.clients.iter().map(|c| c.failures).sum();
        write!(
            f,
            "{} lines ({} about TLS, {} invalid): {} failed handshakes from {} clients",
            self.lines,
            self.tls_lines,
            self.invalid_lines,
            failures,
            self.clients.len()
        )?;
        if self.unattributed > 0 {
            write!(
                f,
                ", {} library problems without a client",
                self.unattributed
            )?;
        }
        writeln!(f)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clients() {
        assert_eq!(
            client("unknown[IPv6:2001:db8::1]: lost connection"),
            Some(Client {
                host: "unknown".into(),
                ip: "2001:db8::1".into()
            })
        );
        assert_eq!(
            client("[192.0.2.1]:4711 to [192.0.2.25]:25").map(|c| c.host),
            Some("unknown".into())
        );
        assert_eq!(client("nothing here"), None);
    }

    #[test]
    fn reasons() {
        assert_eq!(
            reason(
                "140380710438720:error:1408A0C1:SSL routines:ssl3_get_client_hello:no shared cipher:s3_srvr.c:1420:"
            ),
            "no shared cipher"
        );
        assert_eq!(
            reason(
                "error:0A000102:SSL routines::unsupported protocol:../ssl/statem/statem_srvr.c:1657:"
            ),
            "unsupported protocol"
        );
        assert_eq!(
            reason("error:0A000102:SSL routines::unsupported protocol"),
            "unsupported protocol"
        );
        assert_eq!(reason("something else"), REASON_LIBRARY);
    }

    #[test]
    fn events() {
        assert!(matches!(
            event("connect from a[192.0.2.1]"),
            Event::Connect(_)
        ));
        assert!(matches!(
            event("SSL_accept error from a[192.0.2.1]: -1"),
            Event::AcceptError(_)
        ));
        assert_eq!(event("SSL_accept error from nowhere: -1"), Event::Other);
        assert_eq!(
            event("lost connection after STARTTLS from a[192.0.2.1]"),
            Event::Disconnect
        );
        assert_eq!(
            event("NOQUEUE: reject: RCPT from a[192.0.2.1]"),
            Event::Other
        );
    }

    #[test]
    fn oversized_lines_are_skipped() {
        let mut input = vec![b'x'; MAX_LINE * 3];
        input.extend_from_slice(
            b"\nNov 21 10:00:00 mx postfix/smtpd[1]: SSL_accept error from a[192.0.2.1]: -1\n",
        );
        let mut report = LogReport::default();
        parse(&input[..], &mut report).unwrap();
        assert_eq!((report.lines, report.invalid_lines), (2, 1));
        assert_eq!(report.clients.len(), 1);
        assert_eq!(report.clients[0].reasons[REASON_ACCEPT_ERROR], 1);
    }
}
