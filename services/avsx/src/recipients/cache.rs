//! A bounded cache of directory answers: found addresses for one TTL, addresses not found
//! for another (usually shorter, so a new mailbox receives mail soon). Failures are never
//! cached: the next try should ask the directory again.
//!
//! Bounded because the keys come from the Internet: a dictionary attack sends endless
//! made-up addresses, each a negative answer. When full, expired entries go first, then
//! the oldest insertions (a FIFO queue beside the map), so an insert costs amortised O(1)
//! and the cache never scans all of its entries per lookup.

use std::collections::{HashMap, VecDeque};
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// The most entries kept; with the default 60 s negative TTL a cache this size is only
/// full under more than 1600 unknown addresses a second.
pub const DEFAULT_CAPACITY: usize = 100_000;

#[derive(Debug)]
struct Entry {
    known: bool,
    expires: Instant,
    /// Matches the queue element that inserted it; older queue elements for the same key
    /// are stale and skipped.
    seq: u64,
}

#[derive(Debug, Default)]
struct Inner {
    entries: HashMap<String, Entry>,
    /// Insertion order, for evicting the oldest.
    order: VecDeque<(u64, String)>,
    next_seq: u64,
}

#[derive(Debug)]
pub struct Cache {
    positive: Duration,
    negative: Duration,
    capacity: usize,
    inner: Mutex<Inner>,
}

impl Cache {
    pub fn new(positive: Duration, negative: Duration, capacity: usize) -> Cache {
        Cache {
            positive,
            negative,
            capacity: capacity.max(1),
            inner: Mutex::new(Inner::default()),
        }
    }

    /// The cached answer for `key` (found or not), if it has not expired.
    pub fn get(&self, key: &str, now: Instant) -> Option<bool> {
        let mut inner = self.lock();
        match inner.entries.get(key) {
            Some(e) if e.expires > now => Some(e.known),
            Some(_) => {
                inner.entries.remove(key);
                None
            }
            None => None,
        }
    }

    /// Remembers whether `key` was found; a zero TTL means "do not cache".
    pub fn put(&self, key: &str, known: bool, now: Instant) {
        let ttl = if known { self.positive } else { self.negative };
        if ttl.is_zero() {
            return;
        }
        let mut inner = self.lock();
        let seq = inner.next_seq;
        inner.next_seq += 1;
        inner.entries.insert(
            key.to_owned(),
            Entry {
                known,
                expires: now + ttl,
                seq,
            },
        );
        inner.order.push_back((seq, key.to_owned()));
        if inner.entries.len() > self.capacity {
            self.evict(&mut inner, now);
        }
        // Re-inserted keys leave stale queue elements behind; drop them before the queue
        // outgrows the map by much.
        if inner.order.len() > 2 * self.capacity {
            let Inner { entries, order, .. } = &mut *inner;
            order.retain(|(seq, key)| entries.get(key).is_some_and(|e| e.seq == *seq));
        }
    }

    pub fn len(&self) -> usize {
        self.lock().entries.len()
    }

    fn evict(&self, inner: &mut Inner, now: Instant) {
        inner.entries.retain(|_, e| e.expires > now);
        // Free a tenth at once, so a full cache under attack does not evict on every insert.
        let target = self.capacity - self.capacity / 10;
        while inner.entries.len() > target {
            let Some((seq, key)) = inner.order.pop_front() else {
                break;
            };
            if inner.entries.get(&key).is_some_and(|e| e.seq == seq) {
                inner.entries.remove(&key);
            }
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        // A panic while holding the lock leaves the map consistent (every mutation is a
        // single HashMap/VecDeque call), so a poisoned lock is still usable.
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const S: Duration = Duration::from_secs(1);

    #[test]
    fn positive_and_negative_ttls() {
        let c = Cache::new(10 * S, 2 * S, 100);
        let t = Instant::now();
        c.put("found@x", true, t);
        c.put("missing@x", false, t);
        assert_eq!(c.get("found@x", t + S), Some(true));
        assert_eq!(c.get("missing@x", t + S), Some(false));
        assert_eq!(c.get("missing@x", t + 2 * S), None);
        assert_eq!(c.get("found@x", t + 9 * S), Some(true));
        assert_eq!(c.get("found@x", t + 10 * S), None);
        assert_eq!(c.get("other@x", t), None);
        assert_eq!(c.len(), 0, "expired entries are dropped when seen");
    }

    #[test]
    fn zero_ttl_caches_nothing() {
        let c = Cache::new(Duration::ZERO, Duration::ZERO, 100);
        let t = Instant::now();
        c.put("a@x", true, t);
        c.put("b@x", false, t);
        assert_eq!(c.len(), 0);
    }

    #[test]
    fn a_new_answer_replaces_the_old() {
        let c = Cache::new(10 * S, 10 * S, 100);
        let t = Instant::now();
        c.put("a@x", false, t);
        c.put("a@x", true, t + S);
        assert_eq!(c.get("a@x", t + S), Some(true));
        assert_eq!(c.len(), 1);
    }

    #[test]
    fn bounded_expired_first_then_oldest() {
        let c = Cache::new(100 * S, S, 10);
        let t = Instant::now();
        c.put("keep@x", true, t);
        for i in 0..5 {
            c.put(&format!("short{i}@x"), false, t);
        }
        for i in 0..5 {
            c.put(&format!("new{i}@x"), true, t + 2 * S);
        }
        // The eleventh insert evicted: the five expired negatives went, the oldest live
        // one stayed.
        c.put("last@x", true, t + 2 * S);
        assert_eq!(c.get("keep@x", t + 2 * S), Some(true));
        assert_eq!(c.len(), 7);

        // Nothing expired: the oldest insertions go.
        for i in 0..10 {
            c.put(&format!("more{i}@x"), true, t + 3 * S);
        }
        assert!(c.len() <= 10);
        assert_eq!(c.get("keep@x", t + 3 * S), None);
        assert_eq!(c.get("more9@x", t + 3 * S), Some(true));
    }

    #[test]
    fn queue_of_reinserted_keys_stays_bounded() {
        let c = Cache::new(100 * S, 100 * S, 10);
        let t = Instant::now();
        for _ in 0..1000 {
            c.put("same@x", true, t);
        }
        assert_eq!(c.len(), 1);
        assert!(c.lock().order.len() <= 20);
        assert_eq!(c.get("same@x", t), Some(true));
    }
}
