//! Open-connection limits of one listener: in total and per client IP, checked at accept.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex, MutexGuard};

/// Counts of one listener's open client connections (upgraded ones included).
#[derive(Debug)]
pub(crate) struct ConnectionLimits {
    max_connections: usize,
    max_per_ip: usize,
    counts: Mutex<Counts>,
}

#[derive(Debug, Default)]
struct Counts {
    total: usize,
    /// Only IPs with open connections: an entry goes when its count reaches zero, so memory is
    /// bounded by the open connections, not by every client ever seen.
    per_ip: HashMap<IpAddr, usize>,
}

/// One admitted connection; dropping it frees its place.
#[derive(Debug)]
pub(crate) struct ConnectionSlot {
    limits: Arc<ConnectionLimits>,
    ip: IpAddr,
}

impl ConnectionLimits {
    pub(crate) fn new(max_connections: usize, max_per_ip: usize) -> ConnectionLimits {
        ConnectionLimits {
            max_connections,
            max_per_ip,
            counts: Mutex::new(Counts::default()),
        }
    }

    fn lock(&self) -> MutexGuard<'_, Counts> {
        match self.counts.lock() {
            Ok(g) => g,
            Err(poisoned) => poisoned.into_inner(),
        }
    }

    /// A place for a new connection from `ip`, or `None` when the listener or the IP is full.
    pub(crate) fn admit(self: &Arc<Self>, ip: IpAddr) -> Option<ConnectionSlot> {
        // An IPv4 client reaching a dual-stack socket counts as itself, not as `::ffff:a.b.c.d`.
        let ip = ip.to_canonical();
        let mut counts = self.lock();
        if counts.total >= self.max_connections {
            return None;
        }
        let per_ip = counts.per_ip.entry(ip).or_insert(0);
        if *per_ip >= self.max_per_ip {
            if *per_ip == 0 {
                counts.per_ip.remove(&ip);
            }
            return None;
        }
        *per_ip += 1;
        counts.total += 1;
        Some(ConnectionSlot {
            limits: self.clone(),
            ip,
        })
    }

    /// Open connections in total and the number of IPs with any (for tests).
    #[cfg(test)]
    fn open(&self) -> (usize, usize) {
        let counts = self.lock();
        (counts.total, counts.per_ip.len())
    }
}

impl Drop for ConnectionSlot {
    fn drop(&mut self) {
        let mut counts = self.limits.lock();
        counts.total = counts.total.saturating_sub(1);
        if let Some(n) = counts.per_ip.get_mut(&self.ip) {
            *n = n.saturating_sub(1);
            if *n == 0 {
                counts.per_ip.remove(&self.ip);
            }
        }
    }
}

/// Sent to plaintext clients over a limit, before the connection is closed.
pub(crate) const OVER_LIMIT: &[u8] = b"HTTP/1.1 503 Service Unavailable\r\n\
    content-type: text/plain; charset=utf-8\r\ncontent-length: 21\r\n\
    connection: close\r\nretry-after: 1\r\n\r\ntoo many connections\n";

#[cfg(test)]
mod tests {
    use std::net::IpAddr;
    use std::sync::Arc;

    use super::{ConnectionLimits, OVER_LIMIT};

    #[test]
    fn limits_trip_and_free_and_forget_idle_ips() {
        let limits = Arc::new(ConnectionLimits::new(3, 2));
        let a: IpAddr = "10.0.0.1".parse().unwrap_or(IpAddr::from([0, 0, 0, 0]));
        let b: IpAddr = "10.0.0.2".parse().unwrap_or(IpAddr::from([0, 0, 0, 0]));
        let a1 = limits.admit(a);
        let a2 = limits.admit(a);
        assert!(a1.is_some() && a2.is_some());
        assert!(limits.admit(a).is_none(), "per-IP limit");
        let b1 = limits.admit(b);
        assert!(b1.is_some());
        assert!(limits.admit(b).is_none(), "listener limit");
        assert_eq!(limits.open(), (3, 2));
        drop(a1);
        assert!(limits.admit(b).is_some_and(|s| s.ip == b), "freed place");
        drop((a2, b1));
        assert_eq!(limits.open(), (0, 0), "no entry outlives its connections");
    }

    #[test]
    fn over_limit_response_is_well_framed() {
        let text = std::str::from_utf8(OVER_LIMIT).unwrap_or("");
        let (_, body) = text.split_once("\r\n\r\n").unwrap_or(("", ""));
        assert!(text.contains(&format!("content-length: {}\r\n", body.len())));
    }
}
