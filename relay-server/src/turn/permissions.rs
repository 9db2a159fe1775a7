//! Permissions (RFC 8656 §9): the peer IPs an allocation exchanges data with.

use std::net::IpAddr;
use std::time::{Duration, Instant};

use crate::fast_map::FastMap;

/// How long a permission lasts unless refreshed (RFC 8656: 300 s, fixed).
pub(crate) const PERMISSION_LIFETIME: Duration = Duration::from_secs(300);

/// An allocation's permissions, keyed by peer IP (ports do not matter).
#[derive(Debug, Default)]
pub(crate) struct Permissions {
    expires: FastMap<IpAddr, Instant>,
}

impl Permissions {
    /// Whether data to and from `ip` may pass at `now`.
    pub fn allows(&self, ip: IpAddr, now: Instant) -> bool {
        self.expires.get(&ip).is_some_and(|&e| e > now)
    }

    /// Whether installing `ips` would stay within `max` permissions (expired
    /// ones are dropped first, so they do not count).
    pub fn has_room(&mut self, ips: &[IpAddr], max: usize, now: Instant) -> bool {
        let new = ips
            .iter()
            .filter(|ip| !self.expires.contains_key(ip))
            .count();
        if self.expires.len() + new <= max {
            return true;
        }
        self.expires.retain(|_, e| *e > now);
        let new = ips
            .iter()
            .filter(|ip| !self.expires.contains_key(ip))
            .count();
        self.expires.len() + new <= max
    }

    /// Installs or refreshes a permission for `ip`.
    pub fn install(&mut self, ip: IpAddr, now: Instant) {
        self.expires.insert(ip, now + PERMISSION_LIFETIME);
    }
}
