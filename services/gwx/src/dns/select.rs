//! Which addresses one DNS answer holds: `N` drawn at random from the healthy gateway
//! addresses of the query's family (A: IPv4, AAAA: IPv6), never an empty answer while
//! the family has an address at all.
//!
//! The caller maps the inventory and the health checker's view onto [`Candidate`]s and
//! builds a [`Pool`] whenever either changes (seconds apart at most). The pool decides
//! once, per family, which addresses answers are drawn from and why ([`Source`]);
//! [`Pool::select`] is the per-query hot path: integer arithmetic over a few dozen
//! entries, no allocation but the answer vector. Share the pool as `Arc<Pool>` and swap
//! it on change.
//!
//! # Which addresses, per family, first rule that applies
//!
//! 1. Some address is [`Health::Up`]: the `Up` ones ([`Source::Healthy`], or
//!    [`Source::Partial`] when fewer than `N` are up: the answer then holds all of them).
//!    Unchecked addresses never join them, so the first answers after a start hold only
//!    addresses a check has confirmed.
//! 2. Nothing was checked yet (every address that is not drained is `Unchecked`) and
//!    [`Policy::allow_unchecked_at_start`]: the unchecked ones ([`Source::UncheckedAtStart`]).
//! 3. [`Fallback::Backup`] with an address of the family: those backup addresses, served
//!    as configured ([`Source::FallbackBackup`]). A backup list without an address of the
//!    family falls through to the next rule.
//! 4. Some address is not drained: all of those, down and unchecked alike
//!    ([`Source::FallbackAll`]).
//! 5. Every address is drained: the drained ones ([`Source::AllDrained`]).
//! 6. The family has no address: an empty answer ([`Source::NoAddress`]); the DNS layer
//!    answers NODATA.
//!
//! Rules 3 to 5 are fallbacks ([`Source::is_fallback`]): log them and count them.
//!
//! **Drained.** The operator drains a gateway to take it out of the rotation, and that
//! is a certain decision, while `Down` may be a false negative or an attack that will
//! lift: so a drained address is never drawn while any address of its family is not
//! drained, not even in the `All` fallback. Draining is a maintenance step, not a way to
//! switch the service off (that is removing the record): when every address of a family
//! is drained, an empty answer would be cached negatively by resolvers and keep the
//! service unreachable for longer than the drain, so the drained ones are served and the
//! source ([`Source::AllDrained`]) makes it loud.
//!
//! # How the draw goes
//!
//! * An answer holds `min(N, pool size)` distinct addresses in draw order, which is
//!   random too: many clients use the first address only.
//! * Weighted sampling without replacement by successive draws: each draw takes an
//!   eligible address with probability `weight / eligible total weight`. That is the
//!   distribution of Efraimidis–Spirakis keys, with exact integer arithmetic and no
//!   per-entry scratch. Weight 0 is a standby: drawn only when no address of positive
//!   weight is left to draw.
//! * Groups (provider, country): each draw is restricted to the addresses whose group
//!   is used least in the answer so far, so an answer covers `min(N, groups)` groups
//!   before it takes a second address from any group. Spreading ranks above weight,
//!   but never brings in a standby. An address without a group is a group of its own:
//!   unlabelled addresses do not constrain the spreading.
//! * An address listed twice is used once, as its first listing says.
//!
//! Rejected: computing Efraimidis–Spirakis keys `u^(1/w)` and keeping the `N` largest
//! needs a float key per entry (scratch per query) and floats; a shuffled copy per query
//! allocates. Successive draws cost `O(N · entries)`, a few hundred steps for 4 of 64.

use std::net::IpAddr;

use rand::Rng;

/// The largest [`Policy::answer_count`]: 64 A records already need EDNS or TCP.
pub const MAX_ANSWER_COUNT: usize = 64;

/// Address family of a query: A answers draw from IPv4, AAAA answers from IPv6.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Family {
    V4,
    V6,
}

impl Family {
    pub fn of(addr: IpAddr) -> Self {
        match addr {
            IpAddr::V4(_) => Self::V4,
            IpAddr::V6(_) => Self::V6,
        }
    }
}

/// The health of an address, as the checker reports it.
pub use super::health::Health;

/// One gateway address as the selection sees it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Candidate {
    pub addr: IpAddr,
    pub health: Health,
    /// Relative share of answers; 1 by default, 0 for a standby.
    pub weight: u32,
    /// Provider, country or site: answers spread over as many groups as they can.
    pub group: Option<String>,
}

impl Candidate {
    /// An address of weight 1 and no group.
    pub fn new(addr: IpAddr, health: Health) -> Self {
        Self {
            addr,
            health,
            weight: 1,
            group: None,
        }
    }

    pub fn with_weight(mut self, weight: u32) -> Self {
        self.weight = weight;
        self
    }

    pub fn with_group(mut self, group: impl Into<String>) -> Self {
        self.group = Some(group.into());
        self
    }
}

/// What answers hold when no address of the family is up (the inventory's
/// `dns.fallback`).
pub use crate::inventory::Fallback;

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Policy {
    /// `N`: addresses per answer, 1 to [`MAX_ANSWER_COUNT`].
    pub answer_count: usize,
    pub fallback: Fallback,
    /// Serve unchecked addresses while nothing of the family has been checked yet.
    pub allow_unchecked_at_start: bool,
}

impl Policy {
    pub fn validate(&self) -> Result<(), PolicyError> {
        if (1..=MAX_ANSWER_COUNT).contains(&self.answer_count) {
            Ok(())
        } else {
            Err(PolicyError::AnswerCount(self.answer_count))
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum PolicyError {
    #[error("answer_count must be between 1 and {MAX_ANSWER_COUNT}, got {0}")]
    AnswerCount(usize),
}

/// Why an answer holds the addresses it holds (module docs: rules 1 to 6).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Source {
    /// At least `N` addresses are up; the answer holds `N` of them.
    Healthy,
    /// Fewer than `N` addresses are up; the answer holds all of them.
    Partial,
    /// Nothing checked yet and the policy allows unchecked addresses.
    UncheckedAtStart,
    /// None up: the backup addresses.
    FallbackBackup,
    /// None up: every address that is not drained.
    FallbackAll,
    /// Every address of the family is drained: the drained ones.
    AllDrained,
    /// The family has no address: the answer is empty.
    NoAddress,
}

impl Source {
    /// No address is up (or none exists): worth a log line and a metric.
    pub fn is_fallback(self) -> bool {
        matches!(
            self,
            Self::FallbackBackup | Self::FallbackAll | Self::AllDrained | Self::NoAddress
        )
    }
}

/// One answer's addresses, in the order to put them in the answer.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Selection {
    pub addrs: Vec<IpAddr>,
    pub source: Source,
}

/// The addresses answers are drawn from, decided per family from one health snapshot.
#[derive(Clone, Debug)]
pub struct Pool {
    answer_count: usize,
    v4: Draw,
    v6: Draw,
}

impl Pool {
    pub fn new(candidates: &[Candidate], policy: &Policy) -> Result<Self, PolicyError> {
        policy.validate()?;
        let mut groups = Vec::new();
        Ok(Self {
            answer_count: policy.answer_count,
            v4: Draw::build(candidates, Family::V4, policy, &mut groups),
            v6: Draw::build(candidates, Family::V6, policy, &mut groups),
        })
    }

    /// The addresses of one answer for `family`.
    pub fn select<R: Rng + ?Sized>(&self, family: Family, rng: &mut R) -> Selection {
        let draw = self.draw(family);
        Selection {
            addrs: draw.sample(self.answer_count, rng),
            source: draw.source,
        }
    }

    /// Why answers for `family` hold what they hold, without drawing (for a gauge).
    pub fn source(&self, family: Family) -> Source {
        self.draw(family).source
    }

    fn draw(&self, family: Family) -> &Draw {
        match family {
            Family::V4 => &self.v4,
            Family::V6 => &self.v6,
        }
    }
}

/// The addresses one family's answers are drawn from.
#[derive(Clone, Debug)]
struct Draw {
    entries: Vec<Entry>,
    source: Source,
    /// Some entry has a group: draws must spread.
    grouped: bool,
}

#[derive(Clone, Copy, Debug)]
struct Entry {
    addr: IpAddr,
    weight: u32,
    /// Index into the pool's group names.
    group: Option<usize>,
}

impl Draw {
    fn build<'a>(
        candidates: &'a [Candidate],
        family: Family,
        policy: &Policy,
        groups: &mut Vec<&'a str>,
    ) -> Self {
        let mut own: Vec<&Candidate> = Vec::new();
        for c in candidates.iter().filter(|c| Family::of(c.addr) == family) {
            if !own.iter().any(|o| o.addr == c.addr) {
                own.push(c);
            }
        }
        let up: Vec<&Candidate> = own
            .iter()
            .copied()
            .filter(|c| c.health == Health::Up)
            .collect();
        if !up.is_empty() {
            let source = if up.len() >= policy.answer_count {
                Source::Healthy
            } else {
                Source::Partial
            };
            return Self::of(&up, source, groups);
        }
        let live: Vec<&Candidate> = own
            .iter()
            .copied()
            .filter(|c| c.health != Health::Drained)
            .collect();
        if policy.allow_unchecked_at_start
            && !live.is_empty()
            && live.iter().all(|c| c.health == Health::Unchecked)
        {
            return Self::of(&live, Source::UncheckedAtStart, groups);
        }
        if let Fallback::Backup(backup) = &policy.fallback {
            let mut entries: Vec<Entry> = Vec::new();
            for &addr in backup.iter().filter(|a| Family::of(**a) == family) {
                if !entries.iter().any(|e| e.addr == addr) {
                    entries.push(Entry {
                        addr,
                        weight: 1,
                        group: None,
                    });
                }
            }
            if !entries.is_empty() {
                return Self {
                    entries,
                    source: Source::FallbackBackup,
                    grouped: false,
                };
            }
        }
        if !live.is_empty() {
            return Self::of(&live, Source::FallbackAll, groups);
        }
        let source = if own.is_empty() {
            Source::NoAddress
        } else {
            Source::AllDrained
        };
        Self::of(&own, source, groups)
    }

    fn of<'a>(candidates: &[&'a Candidate], source: Source, groups: &mut Vec<&'a str>) -> Self {
        let entries: Vec<Entry> = candidates
            .iter()
            .map(|c| Entry {
                addr: c.addr,
                weight: c.weight,
                group: c.group.as_deref().map(|g| intern(groups, g)),
            })
            .collect();
        let grouped = entries.iter().any(|e| e.group.is_some());
        Self {
            entries,
            source,
            grouped,
        }
    }

    /// `min(n, entries)` distinct addresses by successive weighted draws (module docs).
    fn sample<R: Rng + ?Sized>(&self, n: usize, rng: &mut R) -> Vec<IpAddr> {
        let n = n.min(self.entries.len()).min(MAX_ANSWER_COUNT);
        let mut chosen = [0usize; MAX_ANSWER_COUNT];
        let mut addrs = Vec::with_capacity(n);
        for round in 0..n {
            let taken = &chosen[..round];
            // Standbys (weight 0) only once no address of positive weight is left, even
            // where spreading would favour a standby's group: the operator said "not
            // unless needed", and that ranks above spreading.
            let standby_only = self
                .entries
                .iter()
                .enumerate()
                .all(|(i, e)| taken.contains(&i) || e.weight == 0);
            let open =
                move |i: usize, e: &Entry| !taken.contains(&i) && (e.weight > 0 || standby_only);
            let least = if self.grouped {
                self.entries
                    .iter()
                    .enumerate()
                    .filter(|(i, e)| open(*i, e))
                    .map(|(_, e)| self.uses(e, taken))
                    .min()
                    .unwrap_or(0)
            } else {
                0
            };
            let eligible = || {
                self.entries
                    .iter()
                    .enumerate()
                    .filter(move |(i, e)| open(*i, e) && self.uses(e, taken) == least)
            };
            let (total, count) = eligible().fold((0u64, 0usize), |(total, count), (_, e)| {
                (total + u64::from(e.weight), count + 1)
            });
            // round < entries.len(), so some entry is eligible and the fallbacks below
            // are never taken; they keep the hot path free of panics.
            let pick = if total > 0 {
                let mut x = rng.random_range(0..total);
                eligible().find(|(_, e)| {
                    let w = u64::from(e.weight);
                    if x < w {
                        true
                    } else {
                        x -= w;
                        false
                    }
                })
            } else {
                eligible().nth(rng.random_range(0..count.max(1)))
            };
            let Some((index, entry)) = pick else { break };
            chosen[round] = index;
            addrs.push(entry.addr);
        }
        addrs
    }

    /// How many addresses of `entry`'s group the answer holds already.
    fn uses(&self, entry: &Entry, taken: &[usize]) -> usize {
        match entry.group {
            None => 0,
            Some(g) => taken
                .iter()
                .filter(|&&j| self.entries[j].group == Some(g))
                .count(),
        }
    }
}

fn intern<'a>(groups: &mut Vec<&'a str>, group: &'a str) -> usize {
    groups.iter().position(|g| *g == group).unwrap_or_else(|| {
        groups.push(group);
        groups.len() - 1
    })
}

#[cfg(test)]
mod tests;
