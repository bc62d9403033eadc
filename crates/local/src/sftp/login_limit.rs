//! Limits on connections that have not authenticated yet.
//!
//! Before authentication a connection costs memory, a task and a key exchange,
//! and anyone can open one. The server admits at most a fixed number of such
//! connections in total and per source IP address; a connection leaves the count
//! when it authenticates or closes.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};

/// Counts the connections of one server that have not authenticated yet.
#[derive(Debug, Clone)]
pub struct PendingLogins {
    max_total: usize,
    max_per_ip: usize,
    counts: Arc<Mutex<Counts>>,
}

#[derive(Debug, Default)]
struct Counts {
    total: usize,
    per_ip: HashMap<IpAddr, usize>,
}

/// Why [`PendingLogins::admit`] turned a connection away.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// The server holds its maximum of unauthenticated connections.
    TotalLimit,
    /// The source address holds its maximum of unauthenticated connections.
    PerIpLimit,
}

/// One admitted unauthenticated connection; dropping it frees its place.
#[derive(Debug)]
pub struct PendingLogin {
    ip: IpAddr,
    counts: Arc<Mutex<Counts>>,
}

impl PendingLogins {
    /// Creates a limit of `max_total` unauthenticated connections, `max_per_ip` of them from one address.
    pub fn new(max_total: usize, max_per_ip: usize) -> Self {
        PendingLogins {
            max_total,
            max_per_ip,
            counts: Arc::default(),
        }
    }

    /// Admits a new connection from `ip`, or returns which limit it would exceed.
    pub fn admit(&self, ip: IpAddr) -> Result<PendingLogin, Refusal> {
        let mut counts = self.counts.lock().unwrap_or_else(|e| e.into_inner());
        if counts.total >= self.max_total {
            return Err(Refusal::TotalLimit);
        }
        let from_ip = counts.per_ip.get(&ip).copied().unwrap_or(0);
        if from_ip >= self.max_per_ip {
            return Err(Refusal::PerIpLimit);
        }

        counts.total += 1;
        counts.per_ip.insert(ip, from_ip + 1);
        Ok(PendingLogin {
            ip,
            counts: Arc::clone(&self.counts),
        })
    }
}

impl Drop for PendingLogin {
    fn drop(&mut self) {
        let mut counts = self.counts.lock().unwrap_or_else(|e| e.into_inner());
        counts.total = counts.total.saturating_sub(1);
        if let Some(count) = counts.per_ip.get_mut(&self.ip) {
            *count -= 1;
            if *count == 0 {
                counts.per_ip.remove(&self.ip);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(last: u8) -> IpAddr {
        IpAddr::from([192, 0, 2, last])
    }

    #[test]
    fn admit_enforces_per_ip_limit() {
        let limits = PendingLogins::new(10, 2);

        let first = limits.admit(ip(1)).unwrap();
        let _second = limits.admit(ip(1)).unwrap();

        assert_eq!(limits.admit(ip(1)).unwrap_err(), Refusal::PerIpLimit);
        assert!(limits.admit(ip(2)).is_ok());
        drop(first);
        assert!(limits.admit(ip(1)).is_ok());
    }

    #[test]
    fn admit_enforces_total_limit() {
        let limits = PendingLogins::new(2, 2);

        let _first = limits.admit(ip(1)).unwrap();
        let second = limits.admit(ip(2)).unwrap();

        assert_eq!(limits.admit(ip(3)).unwrap_err(), Refusal::TotalLimit);
        drop(second);
        assert!(limits.admit(ip(3)).is_ok());
    }
}
