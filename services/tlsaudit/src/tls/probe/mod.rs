//! The probe: what a server speaks, found with raw ClientHellos the way testssl.sh and
//! sslscan do it, but with connections in parallel.
//!
//! * [`suites`]: the cipher suite table (IANA id, name, bits, key exchange).
//! * [`hello`]: ClientHellos as bytes; [`reply`]: ServerHello and the messages after it,
//!   parsed from bytes. Both without I/O.
//! * [`conn`]: connect with a deadline, STARTTLS ([`starttls`]), ask one hello.
//! * [`chain13`]: the certificate of TLS 1.3-only servers, via rustls.
//!
//! How: per protocol, a hello offering every suite known for it; the suite the server
//! picks is removed and the hello sent again until the server refuses (one connection
//! per accepted suite). Two more hellos with the accepted suites in opposite orders
//! tell whether the server has its own preference. Then one hello per named group
//! (TLS 1.3 key_share, TLS 1.2 ECDHE ServerKeyExchange). Certificate, stapled OCSP and
//! DH size come for free from the TLS 1.2-and-below handshakes, which are read up to
//! ServerHelloDone. Protocols run side by side, group probes up to [`WORKERS`] at once;
//! every connection has `Options::timeout`, and a protocol stops at its first
//! connection that fails, so the total work is bounded by the size of the tables.

pub mod chain13;
pub mod conn;
pub mod hello;
pub mod reply;
pub mod starttls;
pub mod suites;

use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};

use anyhow::{Context, bail};

use self::conn::{Answer, ConnError, Target};
use self::hello::ClientHello;
use self::reply::{Reply, ReplyError, ServerHello, Until};
use crate::report::{Protocol, ProtocolResult};
use crate::tls::{Options, Probe};

/// Connections open at once against one target.
pub const WORKERS: usize = 8;

/// Probes `options.target`. Fails when the target cannot be reached, refuses STARTTLS,
/// or does not speak TLS at all; a server that refuses every protocol is a result.
pub fn probe(options: &Options) -> anyhow::Result<Probe> {
    let target = Target::new(options)?;
    // One plain connection first, so that an unreachable target or an SMTP server that
    // turns us away is one clear error rather than a failure per protocol.
    drop(
        target
            .connect()
            .with_context(|| format!("{}: cannot connect", target.name))?,
    );

    let scans = parallel(&Protocol::ALL, Protocol::ALL.len(), |&p| {
        scan_protocol(&target, p)
    });
    check_speaks_tls(&target, &scans)?;
    let result = |p: Protocol| &scans[Protocol::ALL.iter().position(|&q| q == p).unwrap_or(0)];

    // Group probes, and the rustls handshake when no plaintext Certificate was seen.
    let tls12 = result(Protocol::Tls12);
    let tls13 = result(Protocol::Tls13);
    let mut jobs: Vec<Job> = Vec::new();
    if tls13.result.accepted {
        jobs.extend(hello::GROUPS.iter().map(|g| Job::Group13(g.0)));
    }
    let ecdhe12: Vec<u16> = accepted_ids(&tls12.result)
        .filter(|id| suites::by_id(*id).is_some_and(|s| s.ecdhe()))
        .collect();
    if !ecdhe12.is_empty() {
        jobs.extend(hello::ec_groups().into_iter().map(Job::Group12));
    }
    let plain = scans.iter().rev().flat_map(|s| &s.hellos);
    let chain = plain
        .clone()
        .map(|h| &h.chain)
        .find(|c| !c.is_empty())
        .cloned()
        .unwrap_or_default();
    if chain.is_empty() && tls13.result.accepted {
        jobs.push(Job::Chain13);
    }
    let suites13: Vec<u16> = accepted_ids(&tls13.result).collect();
    let outcomes = parallel(&jobs, WORKERS, |job| match *job {
        Job::Group13(g) => JobOutcome::Group(g, group13(&target, &suites13, g)),
        Job::Group12(g) => JobOutcome::Group(g, group12(&target, &ecdhe12, g)),
        Job::Chain13 => JobOutcome::Chain(chain13::fetch(&target)),
    });

    let mut probe = Probe {
        protocols: scans.iter().map(|s| s.result.clone()).collect(),
        groups: Vec::new(),
        dh_bits: plain
            .clone()
            .filter(|h| suites::by_id(h.cipher).is_some_and(|s| s.dhe()))
            .filter_map(|h| h.key_exchange.as_deref().and_then(reply::dh_bits))
            // The weakest prime seen is the one that counts.
            .min(),
        chain,
        ocsp_stapled: plain.clone().any(|h| h.ocsp),
    };
    let mut accepted_groups = Vec::new();
    for outcome in outcomes {
        match outcome {
            JobOutcome::Group(g, true) => accepted_groups.push(g),
            JobOutcome::Group(..) => {}
            JobOutcome::Chain(Ok(seen)) => {
                probe.chain = seen.chain;
                probe.ocsp_stapled |= seen.ocsp;
            }
            JobOutcome::Chain(Err(e)) => {
                tracing::debug!(target = %target.name, "TLS 1.3 certificate: {e}");
            }
        }
    }
    // Report order is the table's, each group once (TLS 1.2 and 1.3 often agree).
    probe.groups = hello::GROUPS
        .iter()
        .filter(|g| accepted_groups.contains(&g.0))
        .map(|g| g.1.to_owned())
        .collect();
    Ok(probe)
}

enum Job {
    Group13(u16),
    Group12(u16),
    Chain13,
}

enum JobOutcome {
    Group(u16, bool),
    Chain(Result<chain13::Seen, ConnError>),
}

/// One protocol's findings.
#[derive(Debug)]
struct Scan {
    result: ProtocolResult,
    /// The plaintext handshakes (TLS 1.2 and below) seen while enumerating.
    hellos: Vec<ServerHello>,
    /// Why the very first hello got no answer, when it failed at the connection level.
    first_error: Option<ConnError>,
}

fn accepted_ids(result: &ProtocolResult) -> impl Iterator<Item = u16> + '_ {
    result.ciphers.iter().map(|c| c.id)
}

/// How far to read for `protocol`: TLS 1.3's later messages are encrypted.
fn until(protocol: Protocol) -> Until {
    if protocol == Protocol::Tls13 {
        Until::ServerHello
    } else {
        Until::ServerHelloDone
    }
}

/// Whether `hello` accepts `protocol`. A server answering a higher version than asked
/// (a broken downgrade) has not accepted the one asked for.
fn speaks(protocol: Protocol, hello: &ServerHello) -> bool {
    hello.version == protocol.wire()
}

/// The ServerHello answering `hello`, if it speaks `protocol` with an offered suite.
fn accepted(target: &Target, hello: &ClientHello) -> Result<Option<ServerHello>, ConnError> {
    match target.ask(hello, until(hello.protocol))? {
        Answer::Reply(Reply::Hello(h))
            if speaks(hello.protocol, &h) && hello.suites.contains(&h.cipher) =>
        {
            Ok(Some(h))
        }
        Answer::Reply(Reply::Hello(h)) => {
            tracing::debug!(
                target = %target.name,
                asked = hello.protocol.name(),
                "answered version {:#06x} suite {:#06x}",
                h.version,
                h.cipher
            );
            Ok(None)
        }
        Answer::Reply(Reply::Alert { .. }) | Answer::Closed => Ok(None),
    }
}

/// Enumerates the suites of one protocol by removal, then the server's preference.
fn scan_protocol(target: &Target, protocol: Protocol) -> Scan {
    let mut offer = suites::for_protocol(protocol);
    let mut found: Vec<u16> = Vec::new();
    let mut hellos = Vec::new();
    let mut first_error = None;
    // At most one connection per suite of the table, plus the last refusal.
    while !offer.is_empty() {
        let hello = ClientHello::new(protocol, offer.clone(), target.sni.clone());
        match accepted(target, &hello) {
            Ok(Some(h)) => {
                offer.retain(|&s| s != h.cipher);
                found.push(h.cipher);
                if protocol != Protocol::Tls13 {
                    hellos.push(h);
                }
            }
            Ok(None) => break,
            Err(e) => {
                // A timeout or reset mid-way ends this protocol; what was found stays.
                tracing::debug!(target = %target.name, protocol = protocol.name(), "{e}");
                if found.is_empty() {
                    first_error = Some(e);
                }
                break;
            }
        }
    }
    let server_order = server_order(target, protocol, &found);
    Scan {
        result: ProtocolResult {
            protocol,
            accepted: !found.is_empty(),
            ciphers: found.iter().map(|&id| suites::describe(id)).collect(),
            server_order,
        },
        hellos,
        first_error,
    }
}

/// Offers the accepted suites in their order and reversed: the same pick both times
/// means the server chooses by its own preference.
fn server_order(target: &Target, protocol: Protocol, found: &[u16]) -> Option<bool> {
    if found.len() < 2 {
        return None;
    }
    let reversed: Vec<u16> = found.iter().rev().copied().collect();
    let pick = |suites: Vec<u16>| {
        let hello = ClientHello::new(protocol, suites, target.sni.clone());
        accepted(target, &hello).ok().flatten().map(|h| h.cipher)
    };
    let (a, b) = std::thread::scope(|s| {
        let a = s.spawn(|| pick(found.to_vec()));
        let b = pick(reversed);
        (a.join().ok().flatten(), b)
    });
    Some(a? == b?)
}

/// TLS 1.3 with only `group` in supported_groups and no key share: a HelloRetryRequest
/// asking for it (or a ServerHello) means the server accepts it.
fn group13(target: &Target, suites13: &[u16], group: u16) -> bool {
    let mut hello = ClientHello::new(Protocol::Tls13, suites13.to_vec(), target.sni.clone());
    hello.groups = vec![group];
    hello.key_shares = Vec::new();
    matches!(accepted(target, &hello), Ok(Some(h)) if h.group.is_none_or(|g| g == group))
}

/// TLS 1.2 with ECDHE suites and only `group` offered: the ServerKeyExchange says
/// whether the server used it.
fn group12(target: &Target, ecdhe: &[u16], group: u16) -> bool {
    let mut hello = ClientHello::new(Protocol::Tls12, ecdhe.to_vec(), target.sni.clone());
    hello.groups = vec![group];
    matches!(
        accepted(target, &hello),
        Ok(Some(h)) if h.key_exchange.as_deref().and_then(reply::ecdhe_group) == Some(group)
    )
}

/// Nothing accepted because the server does not speak TLS (or never answers) is an
/// error, not a server that merely refuses every protocol.
fn check_speaks_tls(target: &Target, scans: &[Scan]) -> anyhow::Result<()> {
    if scans.iter().any(|s| s.result.accepted) {
        return Ok(());
    }
    let errors: Vec<&ConnError> = scans
        .iter()
        .filter_map(|s| s.first_error.as_ref())
        .collect();
    if let Some(e) = errors
        .iter()
        .find(|e| matches!(e, ConnError::Reply(ReplyError::NotTls(_))))
    {
        bail!("{}: {e}", target.name);
    }
    if errors.len() == scans.len() && errors.iter().all(|e| matches!(e, ConnError::Timeout(_))) {
        bail!(
            "{}: no TLS answer within {:?} for any protocol",
            target.name,
            target.timeout
        );
    }
    Ok(())
}

/// Runs `f` on every item with up to `workers` threads; results in item order.
fn parallel<T: Sync, R: Send>(items: &[T], workers: usize, f: impl Fn(&T) -> R + Sync) -> Vec<R> {
    let next = AtomicUsize::new(0);
    let results: Mutex<Vec<(usize, R)>> = Mutex::new(Vec::with_capacity(items.len()));
    std::thread::scope(|s| {
        for _ in 0..workers.min(items.len()) {
            s.spawn(|| {
                loop {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    let Some(item) = items.get(i) else { break };
                    let r = f(item);
                    results
                        .lock()
                        .unwrap_or_else(|e| e.into_inner())
                        .push((i, r));
                }
            });
        }
    });
    let mut results = results.into_inner().unwrap_or_else(|e| e.into_inner());
    results.sort_by_key(|r| r.0);
    results.into_iter().map(|r| r.1).collect()
}
