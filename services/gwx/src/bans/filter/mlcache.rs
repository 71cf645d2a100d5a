//! The multi-line failure-id cache: what earlier lines of one connection said, keyed by
//! the `<F-MLFID>` text (sshd's prefix `host sshd[1234]: `), so that a failure line
//! without an address ("Disconnecting: Too many authentication failures") gets the
//! address an earlier line of the same connection named ("Connection from ...").
//!
//! Bounded: at most [`MAX_ENTRIES`] ids (the oldest set goes first) and each lives
//! [`TTL_SECONDS`] after it was first set, measured with the caller's `now`.

use std::collections::{HashMap, VecDeque};

use chrono::{DateTime, Utc};

pub(crate) const MAX_ENTRIES: usize = 10_000;
pub(crate) const TTL_SECONDS: i64 = 300;

/// The groups of one line (or of a connection so far) that the merge logic reads.
/// `None`: the group did not take part; `Some("")` took part with empty text (which
/// fail2ban's truthiness tests treat like absent, but which still overwrites).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct Groups {
    pub ip4: Option<String>,
    pub ip6: Option<String>,
    pub dns: Option<String>,
    pub fid: Option<String>,
    pub user: Option<String>,
    pub nofail: Option<String>,
    pub mlfgained: Option<String>,
    pub mlfforget: Option<String>,
    /// All users seen on the connection (only in cached entries).
    pub users: Option<Vec<String>>,
    /// A failure was seen before the connection's address was known.
    pub pending: bool,
}

pub(crate) fn truthy(v: &Option<String>) -> bool {
    v.as_deref().is_some_and(|s| !s.is_empty())
}

impl Groups {
    /// Overwrites with every group of `other` that took part.
    fn update(&mut self, other: &Groups) {
        let set = |dst: &mut Option<String>, src: &Option<String>| {
            if src.is_some() {
                dst.clone_from(src);
            }
        };
        set(&mut self.ip4, &other.ip4);
        set(&mut self.ip6, &other.ip6);
        set(&mut self.dns, &other.dns);
        set(&mut self.fid, &other.fid);
        set(&mut self.user, &other.user);
        set(&mut self.nofail, &other.nofail);
        set(&mut self.mlfgained, &other.mlfgained);
    }

    fn add_user(&mut self, user: &Option<String>) {
        if let Some(u) = user.as_ref().filter(|u| !u.is_empty()) {
            let users = self.users.get_or_insert_with(Vec::new);
            if !users.contains(u) {
                users.push(u.clone());
            }
        }
    }
}

#[derive(Debug)]
struct Entry {
    groups: Groups,
    set_at: DateTime<Utc>,
    seq: u64,
}

/// The bounded id -> groups map.
#[derive(Debug, Default)]
pub(crate) struct MlCache {
    map: HashMap<String, Entry>,
    order: VecDeque<(u64, String)>,
    seq: u64,
}

impl MlCache {
    pub fn len(&self) -> usize {
        self.map.len()
    }

    fn get_mut(&mut self, id: &str, now: DateTime<Utc>) -> Option<&mut Groups> {
        let expired = self
            .map
            .get(id)
            .is_some_and(|e| (now - e.set_at).num_seconds() >= TTL_SECONDS);
        if expired {
            self.map.remove(id);
        }
        self.map.get_mut(id).map(|e| &mut e.groups)
    }

    fn insert(&mut self, id: &str, groups: Groups, now: DateTime<Utc>) {
        while self.map.len() >= MAX_ENTRIES {
            let Some((seq, old)) = self.order.pop_front() else {
                break;
            };
            if self.map.get(&old).is_some_and(|e| e.seq == seq) {
                self.map.remove(&old);
            }
        }
        self.seq += 1;
        self.map.insert(
            id.to_string(),
            Entry {
                groups,
                set_at: now,
                seq: self.seq,
            },
        );
        self.order.push_back((self.seq, id.to_string()));
        // Forgotten ids leave stale queue entries behind; drop them now and then.
        if self.order.len() > 2 * MAX_ENTRIES {
            let map = &self.map;
            self.order
                .retain(|(seq, id)| map.get(id).is_some_and(|e| e.seq == *seq));
        }
    }

    /// Marks the connection as having a failure whose address is not known yet.
    pub fn set_pending(&mut self, id: &str) {
        if let Some(e) = self.map.get_mut(id) {
            e.groups.pending = true;
        }
    }

    /// Merges a line's groups into the connection's, the way fail2ban does, and
    /// returns the merged groups the line is judged by (with `nofail` set when the line
    /// is not a failure: a `<F-NOFAIL>` line, or a success `<F-MLFGAINED>`, unless the
    /// connection had failures pending or tried several users).
    pub fn merge(&mut self, id: &str, mut cur: Groups, now: DateTime<Utc>) -> Groups {
        const NOFAIL: u8 = 1;
        const FORGET: u8 = 2;
        const HAD_NOFAIL: u8 = 4;
        const GAINED: u8 = 8;
        let mut flags = 0u8;
        if truthy(&cur.mlfgained) {
            flags |= GAINED | NOFAIL;
            if !truthy(&cur.nofail) {
                cur.nofail.clone_from(&cur.mlfgained);
            }
        } else if truthy(&cur.nofail) {
            flags |= NOFAIL;
        }
        if truthy(&cur.mlfforget.take()) {
            flags |= FORGET;
        }
        let mut merged = if let Some(cached) = self.get_mut(id, now) {
            cached.add_user(&cur.user);
            if truthy(&cached.nofail.take()) {
                flags |= HAD_NOFAIL;
            }
            if truthy(&cached.mlfgained.take()) {
                flags |= HAD_NOFAIL;
            }
            if flags & GAINED != 0 {
                cached.pending = false;
            }
            cached.update(&cur);
            let merged = cached.clone();
            if flags & FORGET != 0 {
                self.map.remove(id);
            }
            merged
        } else if flags & FORGET == 0 {
            cur.add_user(&cur.user.clone());
            self.insert(id, cur.clone(), now);
            cur
        } else {
            cur
        };
        let several_users = merged.users.as_ref().is_some_and(|u| u.len() > 1);
        if merged.pending || several_users {
            merged.pending = false;
            merged.nofail = None;
            merged.mlfgained = None;
            if let Some(e) = self.map.get_mut(id) {
                e.groups.pending = false;
                e.groups.nofail = None;
                e.groups.mlfgained = None;
            }
        }
        merged
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn g(ip4: Option<&str>, nofail: bool) -> Groups {
        Groups {
            ip4: ip4.map(String::from),
            nofail: nofail.then(|| "x".to_string()),
            ..Groups::default()
        }
    }

    #[test]
    fn address_carries_to_later_lines() {
        let now = Utc::now();
        let mut c = MlCache::default();
        let m = c.merge("c1", g(Some("1.2.3.4"), true), now);
        assert!(truthy(&m.nofail));
        let m = c.merge("c1", g(None, false), now);
        assert_eq!(m.ip4.as_deref(), Some("1.2.3.4"));
        assert!(!truthy(&m.nofail));
        // Forgetting removes the id.
        let forget = Groups {
            mlfforget: Some("disconnect".into()),
            ..Groups::default()
        };
        c.merge("c1", forget, now);
        assert_eq!(c.len(), 0);
    }

    #[test]
    fn pending_failure_resets_nofail() {
        let now = Utc::now();
        let mut c = MlCache::default();
        c.merge("c1", g(None, false), now);
        c.set_pending("c1");
        let m = c.merge("c1", g(Some("1.2.3.4"), true), now);
        assert!(!truthy(&m.nofail));
    }

    #[test]
    fn bounded_and_expiring() {
        let now = Utc::now();
        let mut c = MlCache::default();
        for i in 0..MAX_ENTRIES + 10 {
            c.merge(&format!("id{i}"), g(Some("1.2.3.4"), true), now);
        }
        assert_eq!(c.len(), MAX_ENTRIES);
        assert!(c.get_mut("id0", now).is_none());
        let later = now + chrono::Duration::seconds(TTL_SECONDS);
        assert!(c.get_mut("id20", later).is_none());
    }
}
