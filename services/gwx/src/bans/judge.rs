//! One jail's judgement of one log line: the filter says whether it is a failure and of
//! which host; the judge turns the host into the network a ban would cover, refuses
//! protected and allowlisted ones, and counts the failure. Kept apart from the tasks
//! and channels of the daemon so it can be driven line by line.

use std::net::IpAddr;
use std::sync::{Arc, Mutex};

use chrono::{DateTime, Utc};
use ipnet::IpNet;

use super::counter::{Ban, Counter, Verdict};
use super::filter::{Host, Matcher, Outcome};
use super::guard::{Guard, Refusal};
use super::metrics::JailCounters;
use crate::inventory::Hardening;

/// What became of one line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Judgement {
    /// Not a failure (no match, ignoreregex, a no-failure line).
    Nothing,
    /// A failure that did not count, and why.
    Skipped(&'static str),
    /// A failure counted: the network has this many within findtime.
    Counted { net: IpNet, count: usize },
    /// A failure of a network this jail has banned already.
    AlreadyBanned(IpNet),
    /// The failure that crossed maxretry.
    Ban(Ban),
}

pub struct Judge {
    matcher: Matcher,
    counter: Arc<Mutex<Counter>>,
    guard: Guard,
    hardening: Hardening,
    metrics: JailCounters,
    jail: String,
}

impl Judge {
    /// `guard` must already hold this jail's allowlist.
    pub fn new(
        matcher: Matcher,
        counter: Arc<Mutex<Counter>>,
        guard: Guard,
        hardening: Hardening,
        metrics: JailCounters,
    ) -> Judge {
        let jail = counter
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .jail()
            .name
            .clone();
        Judge {
            matcher,
            counter,
            guard,
            hardening,
            metrics,
            jail,
        }
    }

    /// Judges `line`. `line_time` is the time the source gave the line (the journal's),
    /// if any; otherwise the time is the line's date, else `now`.
    pub fn line(
        &mut self,
        line: &str,
        line_time: Option<DateTime<Utc>>,
        now: DateTime<Utc>,
    ) -> Judgement {
        self.metrics.lines.inc();
        // A journal entry carries its time; its text has no date to look for (fail2ban's
        // journal backend does the same).
        let outcome = match line_time {
            Some(t) => self.matcher.match_message(line, t),
            None => self.matcher.match_line(line, now),
        };
        let failure = match outcome {
            Outcome::NoMatch | Outcome::NoFailure => return Judgement::Nothing,
            Outcome::Ignored => {
                self.metrics.matches.inc();
                return self.skip("ignoreregex");
            }
            Outcome::Ambiguous { hosts } => {
                self.metrics.matches.inc();
                // Debug, not warn: an attacker could write such lines by the million.
                tracing::debug!(jail = %self.jail, ?hosts, line, "line names more than one host (log injection?): not counted");
                return self.skip("ambiguous");
            }
            Outcome::Failure(f) => f,
        };
        self.metrics.matches.inc();
        let ip: IpAddr = match failure.host {
            Host::Ip(ip) => ip,
            Host::Name(name) => {
                tracing::debug!(jail = %self.jail, %name, "host is a name, not an address: not resolved, not counted");
                return self.skip("hostname");
            }
        };
        // An IPv4-mapped IPv6 address is the IPv4 host.
        let ip = match ip {
            IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
            v4 => v4,
        };
        let net = self.hardening.ban_net(ip);
        if let Err(refusal) = self.guard.check(&net) {
            tracing::debug!(jail = %self.jail, %ip, %refusal, "failure not counted");
            return self.skip(match refusal {
                Refusal::Protected { .. } => "protected",
                Refusal::Allowlisted { .. } => "ignoreip",
            });
        }
        let at = failure.time.timestamp_millis();
        let verdict = self
            .counter
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .failure(net, at, now.timestamp_millis());
        match verdict {
            Verdict::Counted(count) => Judgement::Counted { net, count },
            Verdict::TooOld => self.skip("too_old"),
            Verdict::AlreadyBanned => Judgement::AlreadyBanned(net),
            Verdict::Ban(ban) => {
                self.metrics.bans.inc();
                Judgement::Ban(ban)
            }
        }
    }

    fn skip(&self, reason: &'static str) -> Judgement {
        self.metrics.skip(reason);
        Judgement::Skipped(reason)
    }
}
