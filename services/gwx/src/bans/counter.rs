//! Failure counting of one jail, as fail2ban counts: a network is banned when it has
//! `maxretry` failures within `findtime`. Failures are counted per ban network (a /64
//! for IPv6 by default), so an attacker cycling through the addresses of one network
//! is counted once. Times are the log lines' own times, so reading a backlog counts the
//! way the failures happened; failures older than `findtime` (relative to now) are not
//! counted, and a ban that would already have ended is not placed.

use std::collections::{HashMap, VecDeque};
use std::time::Duration;

use ipnet::IpNet;

use super::jails::Jail;

/// Milliseconds since the Unix epoch.
pub type Millis = i64;

/// Milliseconds since the epoch, now.
pub fn now_millis() -> Millis {
    chrono::Utc::now().timestamp_millis()
}

/// A ban one jail decided.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ban {
    pub net: IpNet,
    pub jail: String,
    /// When the failure that crossed `maxretry` happened.
    pub at: Millis,
    /// When the ban ends.
    pub until: Millis,
    /// Which ban of this network in this jail it is (1 = first), for increasing bans.
    pub nth: u32,
}

impl Ban {
    /// The ban's remaining time at `now`, at least a second (nft's granularity).
    pub fn remaining(&self, now: Millis) -> Duration {
        let ms = (self.until - now).max(1000);
        Duration::from_millis(u64::try_from(ms).unwrap_or(1000))
    }
}

/// What a failure led to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// Counted; not (yet) enough for a ban.
    Counted(usize),
    /// Older than `findtime`: not counted.
    TooOld,
    /// The network is already banned by this jail.
    AlreadyBanned,
    Ban(Ban),
}

/// Past bans of one network, for the increasing ban time.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct History {
    pub bans: u32,
    pub last: Millis,
}

/// A jail's counting state.
#[derive(Debug)]
pub struct Counter {
    jail: Jail,
    failures: HashMap<IpNet, VecDeque<Millis>>,
    /// Bans this jail placed, until they end: a late line of a banned source must not
    /// ban it again (or extend it).
    banned: HashMap<IpNet, Millis>,
    history: HashMap<IpNet, History>,
    /// Failures recorded since the last sweep of stale entries.
    since_sweep: usize,
}

/// How often stale entries are swept: after this many failures. Sweeping walks every
/// entry, so doing it every failure would make counting quadratic.
const SWEEP_EVERY: usize = 10_000;

impl Counter {
    pub fn new(jail: Jail) -> Counter {
        Counter {
            jail,
            failures: HashMap::new(),
            banned: HashMap::new(),
            history: HashMap::new(),
            since_sweep: 0,
        }
    }

    pub fn jail(&self) -> &Jail {
        &self.jail
    }

    /// Restores what the state file remembered: active bans and ban history.
    pub fn restore(
        &mut self,
        active: impl IntoIterator<Item = (IpNet, Millis)>,
        history: impl IntoIterator<Item = (IpNet, History)>,
    ) {
        self.banned.extend(active);
        self.history.extend(history);
    }

    /// The ban history, for the state file.
    pub fn history(&self) -> impl Iterator<Item = (&IpNet, &History)> {
        self.history.iter()
    }

    /// Forgets the bans for which `still_banned` is false (an operator lifted them), so
    /// their sources can be banned again.
    pub fn forget_unless(&mut self, mut still_banned: impl FnMut(&IpNet) -> bool) {
        self.banned.retain(|net, _| still_banned(net));
    }

    /// One failure of `net` at `at`, seen at `now`.
    pub fn failure(&mut self, net: IpNet, at: Millis, now: Millis) -> Verdict {
        let findtime = millis(self.jail.findtime.0);
        if at < now - findtime {
            return Verdict::TooOld;
        }
        if self.banned.get(&net).is_some_and(|&until| until > now) {
            return Verdict::AlreadyBanned;
        }
        self.since_sweep += 1;
        if self.since_sweep >= SWEEP_EVERY {
            self.sweep(now);
        }
        let times = self.failures.entry(net).or_default();
        // Lines are mostly in time order; a late one is inserted in its place so the
        // window below stays right.
        let pos = times.partition_point(|&t| t <= at);
        times.insert(pos, at);
        let newest = *times.back().expect("just inserted");
        while times.front().is_some_and(|&t| t < newest - findtime) {
            times.pop_front();
        }
        if times.len() < self.jail.maxretry as usize {
            return Verdict::Counted(times.len());
        }
        self.failures.remove(&net);
        let h = self
            .history
            .entry(net)
            .or_insert(History { bans: 0, last: 0 });
        h.bans += 1;
        h.last = at;
        let nth = h.bans;
        let until = at + millis(self.jail.ban_duration(nth));
        if until <= now {
            // The ban would have ended already (an old backlog line).
            return Verdict::TooOld;
        }
        self.banned.insert(net, until);
        Verdict::Ban(Ban {
            net,
            jail: self.jail.name.clone(),
            at,
            until,
            nth,
        })
    }

    /// Drops failure windows that can no longer lead to a ban, ended bans, and history
    /// older than the longest ban (after that a repeat offender starts over, as with
    /// fail2ban's purged database).
    pub fn sweep(&mut self, now: Millis) {
        self.since_sweep = 0;
        let findtime = millis(self.jail.findtime.0);
        self.failures
            .retain(|_, t| t.back().is_some_and(|&last| last >= now - findtime));
        self.banned.retain(|_, until| *until > now);
        let keep = millis(
            self.jail
                .bantime_increment
                .as_ref()
                .map_or(self.jail.bantime.0, |i| i.max.0)
                .max(Duration::from_secs(86_400)),
        );
        self.history.retain(|_, h| h.last >= now - keep);
    }

    /// Networks with failures counted and not banned yet.
    pub fn watched(&self) -> usize {
        self.failures.len()
    }
}

fn millis(d: Duration) -> Millis {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX / 4)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bans::jails::{Increment, LogSource, Span};

    fn jail() -> Jail {
        Jail {
            name: "wp".into(),
            filter: "wordpress".into(),
            filter_options: Default::default(),
            log: LogSource::File("/var/log/x".into()),
            maxretry: 3,
            findtime: Span(Duration::from_secs(60)),
            bantime: Span(Duration::from_secs(100)),
            bantime_increment: Some(Increment {
                factor: 2.0,
                max: Span(Duration::from_secs(300)),
            }),
            ignoreip: vec![],
            injection_guard: true,
        }
    }

    const NOW: Millis = 1_000_000_000;

    fn net(s: &str) -> IpNet {
        s.parse().unwrap()
    }

    #[test]
    fn maxretry_failures_within_findtime_ban() {
        let mut c = Counter::new(jail());
        let n = net("198.18.0.1/32");
        assert_eq!(c.failure(n, NOW - 50_000, NOW), Verdict::Counted(1));
        assert_eq!(c.failure(n, NOW - 20_000, NOW), Verdict::Counted(2));
        let Verdict::Ban(b) = c.failure(n, NOW, NOW) else {
            panic!()
        };
        assert_eq!((b.nth, b.until), (1, NOW + 100_000));
        assert_eq!(c.failure(n, NOW + 1, NOW + 1), Verdict::AlreadyBanned);
    }

    #[test]
    fn failures_spread_wider_than_findtime_do_not_ban() {
        let mut c = Counter::new(jail());
        let n = net("198.18.0.2/32");
        for i in 0..10 {
            let at = NOW + i * 40_000;
            let v = c.failure(n, at, at);
            assert!(matches!(v, Verdict::Counted(1 | 2)), "{v:?}");
        }
    }

    #[test]
    fn old_lines_count_for_nothing() {
        let mut c = Counter::new(jail());
        assert_eq!(
            c.failure(net("198.18.0.3/32"), NOW - 61_000, NOW),
            Verdict::TooOld
        );
    }

    #[test]
    fn repeat_offenders_are_banned_longer() {
        let mut c = Counter::new(jail());
        let n = net("2001:db8:5::/64");
        let mut t = NOW;
        let mut lengths = vec![];
        for _ in 0..4 {
            let mut last = Verdict::TooOld;
            for _ in 0..3 {
                last = c.failure(n, t, t);
            }
            let Verdict::Ban(b) = last else {
                panic!("{last:?}")
            };
            lengths.push((b.until - b.at) / 1000);
            t = b.until + 1;
        }
        assert_eq!(lengths, [100, 200, 300, 300]);
    }
}
