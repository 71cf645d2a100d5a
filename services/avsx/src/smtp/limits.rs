//! Concurrent connections, overall and per client address. A slot is a guard: dropping
//! it, however the session ends, frees it. One lock covers both counts so a connection
//! is never counted in one and refused by the other.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};

/// Why a connection was refused; also the `rejects` metric's reason.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    Total,
    PerIp,
}

impl Refusal {
    pub fn reason(self) -> &'static str {
        match self {
            Refusal::Total => "connection_limit",
            Refusal::PerIp => "per_ip_limit",
        }
    }
}

#[derive(Debug)]
pub struct ConnectionLimits {
    max_total: usize,
    max_per_ip: usize,
    counts: Mutex<Counts>,
}

#[derive(Debug, Default)]
struct Counts {
    total: usize,
    per_ip: HashMap<IpAddr, usize>,
}

impl ConnectionLimits {
    pub fn new(max_total: usize, max_per_ip: usize) -> Arc<ConnectionLimits> {
        Arc::new(ConnectionLimits {
            max_total,
            max_per_ip,
            counts: Mutex::default(),
        })
    }

    /// A slot for a connection from `ip`, or why there is none.
    pub fn acquire(self: &Arc<Self>, ip: IpAddr) -> Result<Slot, Refusal> {
        // On a dual-stack listener an IPv4 client appears as ::ffff:a.b.c.d.
        let ip = ip.to_canonical();
        let mut c = self.counts.lock().unwrap_or_else(|e| e.into_inner());
        if c.total >= self.max_total {
            return Err(Refusal::Total);
        }
        let n = c.per_ip.entry(ip).or_insert(0);
        if *n >= self.max_per_ip {
            return Err(Refusal::PerIp);
        }
        *n += 1;
        c.total += 1;
        Ok(Slot {
            limits: self.clone(),
            ip,
        })
    }
}

/// One connection's place in the counts; freed on drop.
#[derive(Debug)]
pub struct Slot {
    limits: Arc<ConnectionLimits>,
    ip: IpAddr,
}

impl Drop for Slot {
    fn drop(&mut self) {
        let mut c = self.limits.counts.lock().unwrap_or_else(|e| e.into_inner());
        c.total -= 1;
        if let Some(n) = c.per_ip.get_mut(&self.ip) {
            *n -= 1;
            // Forget idle addresses so the map does not grow with every client ever seen.
            if *n == 0 {
                c.per_ip.remove(&self.ip);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn per_ip_and_total_limits() {
        let limits = ConnectionLimits::new(3, 2);
        let a: IpAddr = "192.0.2.1".parse().unwrap();
        let b: IpAddr = "2001:db8::2".parse().unwrap();
        let a1 = limits.acquire(a).unwrap();
        let _a2 = limits.acquire("::ffff:192.0.2.1".parse().unwrap()).unwrap();
        assert_eq!(limits.acquire(a).unwrap_err(), Refusal::PerIp);
        let _b1 = limits.acquire(b).unwrap();
        assert_eq!(limits.acquire(b).unwrap_err(), Refusal::Total);
        drop(a1);
        let _b2 = limits.acquire(b).unwrap();
    }

    #[test]
    fn idle_addresses_are_forgotten() {
        let limits = ConnectionLimits::new(10, 10);
        let slot = limits.acquire("192.0.2.1".parse().unwrap()).unwrap();
        drop(slot);
        let c = limits.counts.lock().unwrap();
        assert_eq!((c.total, c.per_ip.len()), (0, 0));
    }
}
