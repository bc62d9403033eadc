//! Failed-authentication throttling per source IP address.

use std::collections::{HashMap, VecDeque};
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// The sliding window over which failures are counted.
const WINDOW: Duration = Duration::from_secs(60);

/// The number of tracked addresses above which stale entries are swept on the next failure,
/// so a scan from many addresses cannot grow the map without bound.
const SWEEP_THRESHOLD: usize = 4096;

/// Counts rejected authentication attempts per source IP over the last minute.
///
/// An address that reached the limit is blocked until its oldest failure in the
/// window is more than a minute old: its new connections are closed at once and
/// its authentication requests are rejected without asking the backend.
#[derive(Debug)]
pub struct AuthThrottle {
    max_failures_per_minute: u32,
    failures: Mutex<HashMap<IpAddr, VecDeque<Instant>>>,
}

/// The result of [`AuthThrottle::record_failure`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FailureOutcome {
    /// The address is still below the limit.
    Counted,
    /// This failure reached the limit: the address is blocked from now on.
    Blocked,
}

impl AuthThrottle {
    /// Creates a throttle allowing `max_failures_per_minute` failures per address; 0 turns throttling off.
    pub fn new(max_failures_per_minute: u32) -> Self {
        AuthThrottle {
            max_failures_per_minute,
            failures: Mutex::new(HashMap::new()),
        }
    }

    /// Returns true when `ip` reached the limit within the last minute.
    pub fn is_blocked(&self, ip: IpAddr) -> bool {
        self.is_blocked_at(ip, Instant::now())
    }

    /// Records one rejected attempt from `ip`.
    pub fn record_failure(&self, ip: IpAddr) -> FailureOutcome {
        self.record_failure_at(ip, Instant::now())
    }

    fn is_blocked_at(&self, ip: IpAddr, now: Instant) -> bool {
        if self.max_failures_per_minute == 0 {
            return false;
        }

        let mut failures = self.failures.lock().unwrap_or_else(|e| e.into_inner());
        let Some(times) = failures.get_mut(&ip) else {
            return false;
        };
        drop_expired(times, now);
        times.len() >= self.max_failures_per_minute as usize
    }

    fn record_failure_at(&self, ip: IpAddr, now: Instant) -> FailureOutcome {
        if self.max_failures_per_minute == 0 {
            return FailureOutcome::Counted;
        }

        let mut failures = self.failures.lock().unwrap_or_else(|e| e.into_inner());
        if failures.len() > SWEEP_THRESHOLD {
            failures.retain(|_, times| {
                drop_expired(times, now);
                !times.is_empty()
            });
        }

        let times = failures.entry(ip).or_default();
        drop_expired(times, now);
        times.push_back(now);

        if times.len() == self.max_failures_per_minute as usize {
            FailureOutcome::Blocked
        } else {
            FailureOutcome::Counted
        }
    }
}

fn drop_expired(times: &mut VecDeque<Instant>, now: Instant) {
    while let Some(oldest) = times.front() {
        if now.duration_since(*oldest) < WINDOW {
            break;
        }
        times.pop_front();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(last: u8) -> IpAddr {
        IpAddr::from([192, 0, 2, last])
    }

    #[test]
    fn throttle_blocks_at_limit() {
        let throttle = AuthThrottle::new(3);
        let now = Instant::now();

        assert_eq!(
            throttle.record_failure_at(ip(1), now),
            FailureOutcome::Counted
        );
        assert_eq!(
            throttle.record_failure_at(ip(1), now),
            FailureOutcome::Counted
        );
        assert!(!throttle.is_blocked_at(ip(1), now));
        assert_eq!(
            throttle.record_failure_at(ip(1), now),
            FailureOutcome::Blocked
        );
        assert!(throttle.is_blocked_at(ip(1), now));
    }

    #[test]
    fn throttle_counts_each_address_apart() {
        let throttle = AuthThrottle::new(1);
        let now = Instant::now();

        throttle.record_failure_at(ip(1), now);

        assert!(throttle.is_blocked_at(ip(1), now));
        assert!(!throttle.is_blocked_at(ip(2), now));
    }

    #[test]
    fn throttle_unblocks_after_window() {
        let throttle = AuthThrottle::new(1);
        let now = Instant::now();

        throttle.record_failure_at(ip(1), now);

        assert!(throttle.is_blocked_at(ip(1), now + Duration::from_secs(59)));
        assert!(!throttle.is_blocked_at(ip(1), now + Duration::from_secs(61)));
    }

    #[test]
    fn throttle_zero_limit_never_blocks() {
        let throttle = AuthThrottle::new(0);
        let now = Instant::now();

        for _ in 0..100 {
            throttle.record_failure_at(ip(1), now);
        }

        assert!(!throttle.is_blocked_at(ip(1), now));
    }
}
