//! Concurrent connections per source address, enforced by the proxy itself so the limit
//! holds even where the nftables ruleset is not loaded (and so a refusal is counted per
//! service). A slot is a guard: dropping it, however the connection ends, frees it.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};

/// Connection counts per source for one service; shared by all its listeners and kept
/// across reloads (only the maximum changes).
#[derive(Debug, Default)]
pub struct SourceLimit {
    max: AtomicU32,
    counts: Mutex<HashMap<IpAddr, u32>>,
}

impl SourceLimit {
    /// `max` concurrent connections per source; 0 means unlimited.
    pub fn new(max: u32) -> Arc<SourceLimit> {
        Arc::new(SourceLimit {
            max: AtomicU32::new(max),
            counts: Mutex::default(),
        })
    }

    /// Changes the maximum for new connections. Connections accepted while the limit
    /// was 0 (unlimited) were not counted, so they do not count against a limit set later.
    pub fn set_max(&self, max: u32) {
        self.max.store(max, Ordering::Relaxed);
    }

    /// A slot for `source`, or `None` when it already holds the maximum.
    pub fn acquire(self: &Arc<Self>, source: IpAddr) -> Option<SourceSlot> {
        let max = self.max.load(Ordering::Relaxed);
        if max == 0 {
            // Unlimited: no count to keep, so no lock on the accept path.
            return Some(SourceSlot {
                counted: None,
                source,
            });
        }
        let mut counts = self.counts.lock().unwrap_or_else(|e| e.into_inner());
        let n = counts.entry(source).or_insert(0);
        if max != 0 && *n >= max {
            return None;
        }
        *n += 1;
        Some(SourceSlot {
            counted: Some(self.clone()),
            source,
        })
    }

    /// Sources currently holding connections (for tests and diagnostics).
    pub fn holders(&self) -> usize {
        self.counts.lock().unwrap_or_else(|e| e.into_inner()).len()
    }
}

/// One held connection slot; freed on drop.
#[derive(Debug)]
pub struct SourceSlot {
    /// The limit this slot was counted in; `None` when the limit was unlimited.
    counted: Option<Arc<SourceLimit>>,
    source: IpAddr,
}

impl Drop for SourceSlot {
    fn drop(&mut self) {
        let Some(limit) = &self.counted else { return };
        let mut counts = limit.counts.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(n) = counts.get_mut(&self.source) {
            *n -= 1;
            // Forget idle sources so the map does not grow with every address ever seen.
            if *n == 0 {
                counts.remove(&self.source);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refuses_over_the_limit_and_frees_on_drop() {
        let limit = SourceLimit::new(2);
        let a: IpAddr = "198.51.100.2".parse().unwrap();
        let b: IpAddr = "198.51.100.3".parse().unwrap();
        let s1 = limit.acquire(a).unwrap();
        let _s2 = limit.acquire(a).unwrap();
        assert!(
            limit.acquire(a).is_none(),
            "third connection from a must be refused"
        );
        assert!(limit.acquire(b).is_some(), "another source is unaffected");
        drop(s1);
        assert!(limit.acquire(a).is_some(), "a slot is free again");
    }

    #[test]
    fn zero_is_unlimited_and_keeps_no_counts() {
        let limit = SourceLimit::new(0);
        let a: IpAddr = "2001:db8::1".parse().unwrap();
        let slots: Vec<_> = (0..1000).map(|_| limit.acquire(a).unwrap()).collect();
        assert_eq!(limit.holders(), 0);
        drop(slots);
    }

    #[test]
    fn idle_sources_are_forgotten() {
        let limit = SourceLimit::new(2000);
        let a: IpAddr = "2001:db8::1".parse().unwrap();
        let slots: Vec<_> = (0..1000).map(|_| limit.acquire(a).unwrap()).collect();
        assert_eq!(limit.holders(), 1);
        drop(slots);
        assert_eq!(limit.holders(), 0);
    }

    #[test]
    fn lowering_the_maximum_applies_to_new_connections() {
        let limit = SourceLimit::new(5);
        let a: IpAddr = "192.0.2.9".parse().unwrap();
        let _held: Vec<_> = (0..3).map(|_| limit.acquire(a).unwrap()).collect();
        limit.set_max(3);
        assert!(limit.acquire(a).is_none());
    }
}
