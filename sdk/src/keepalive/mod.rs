//! Keepalives sized to the NAT's UDP session timer (mission, finding 5).
//!
//! A NAT drops a mapping that carried nothing for its session timer; the game
//! then silently loses its peer, its relay or its rendezvous registration.
//! Keepalives must come more often than the timer — but not much more often,
//! or N peers and the relay cost battery, bandwidth and carrier state for no
//! reason. [`Keepalive`] turns what is known about the timer into intervals:
//!
//! - the binding lifetime measured by `crate::diag` (seconds; pass the lower
//!   bound of its bracket when you have it — the mapping was *proven* alive that
//!   long), cached per network ([`NetworkKey`], [`LifetimeCache`]) so the next
//!   session on the same network starts with it;
//! - until then a safe default ([`KeepaliveConfig::default_interval`], 15 s:
//!   some CGNs drop idle UDP after 30 s);
//! - shorter at once when a mapping is seen to have expired
//!   ([`Keepalive::mapping_expired`]: a path died after an idle gap, or a
//!   server-reflexive address changed);
//! - never below [`KeepaliveConfig::floor`] nor above
//!   [`KeepaliveConfig::ceiling`].
//!
//! It is sans-IO: [`Keepalive::poll_timeout`] says when the next keepalive is
//! due for each [`Target`], [`Keepalive::on_sent`] records traffic (any
//! datagram on a mapping refreshes it, so the caller reports real traffic too
//! and keepalives are sent only on idle mappings).
//!
//! ```
//! use std::time::{Duration, Instant};
//! use tsunagi::keepalive::{Keepalive, KeepaliveConfig, Target};
//!
//! let now = Instant::now();
//! let mut k = Keepalive::new(KeepaliveConfig::default(), now);
//! assert_eq!(k.interval(Target::SelectedPath), Duration::from_secs(15));
//! k.set_measured(Some(Duration::from_secs(60)));
//! assert_eq!(k.interval(Target::SelectedPath), Duration::from_secs(24));
//! // A path went dead after 20 s of silence: the timer is below 20 s.
//! k.mapping_expired(Duration::from_secs(20));
//! assert_eq!(k.interval(Target::SelectedPath), Duration::from_secs(8));
//! ```

mod cache;

use std::time::{Duration, Instant};

pub use cache::{CachedTimer, FileCache, LifetimeCache, MemoryCache, NetworkKey};

/// What a keepalive refreshes. Behind an endpoint-dependent NAT each has its
/// own mapping and its own timer; behind an endpoint-independent one they share
/// a mapping, and traffic on any refreshes all (report it with
/// [`Keepalive::on_sent`] for each).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Target {
    /// The path QUIC currently uses to a peer.
    SelectedPath,
    /// The mapping toward the TURN server (its refresh, permission and channel
    /// traffic keeps the allocation *and* the NAT mapping).
    RelayAllocation,
    /// The mapping toward the rendezvous/STUN server (registration refresh).
    ServerMapping,
}

const TARGETS: [Target; 3] = [
    Target::SelectedPath,
    Target::RelayAllocation,
    Target::ServerMapping,
];

/// Bounds and defaults.
#[derive(Debug, Clone, PartialEq)]
pub struct KeepaliveConfig {
    /// The interval until the timer is known.
    pub default_interval: Duration,
    /// Never more often than this.
    pub floor: Duration,
    /// Never less often than this (even a NAT that keeps mappings for hours
    /// may be replaced by one that does not, e.g. after roaming).
    pub ceiling: Duration,
    /// The interval as a fraction of the timer: below one half, so one lost
    /// keepalive does not lose the mapping.
    pub fraction: f64,
}

impl Default for KeepaliveConfig {
    /// 15 s until known; 1 s..=120 s; 40 % of the timer.
    fn default() -> KeepaliveConfig {
        KeepaliveConfig {
            default_interval: Duration::from_secs(15),
            floor: Duration::from_secs(1),
            ceiling: Duration::from_secs(120),
            fraction: 0.4,
        }
    }
}

/// Keepalive intervals for one network, as a sans-IO state machine.
#[derive(Debug, Clone)]
pub struct Keepalive {
    config: KeepaliveConfig,
    measured: Option<Duration>,
    expired_after: Option<Duration>,
    last_sent: [Instant; 3],
}

impl Keepalive {
    /// Nothing known yet; every target counts as refreshed at `now`.
    pub fn new(config: KeepaliveConfig, now: Instant) -> Keepalive {
        Keepalive {
            config,
            measured: None,
            expired_after: None,
            last_sent: [now; 3],
        }
    }

    /// Starts from what the cache remembers for this network, if anything.
    pub fn from_cache(
        config: KeepaliveConfig,
        now: Instant,
        cache: &dyn LifetimeCache,
        key: &NetworkKey,
    ) -> Keepalive {
        let mut k = Keepalive::new(config, now);
        if let Some(t) = cache.get(key) {
            k.measured = t.timer();
        }
        k
    }

    /// Records the timer in the cache for this network (the shorter of the
    /// measurement and any observed expiry).
    pub fn store(&self, cache: &mut dyn LifetimeCache, key: &NetworkKey) {
        if let Some(timer) = self.timer() {
            cache.put(key.clone(), CachedTimer::from_duration(timer));
        }
    }

    /// The binding lifetime measured by diag (`None`: unknown or failed).
    /// `Report::binding_lifetime_s` works; the bracket's `lower_s` is safer.
    pub fn set_measured(&mut self, lifetime: Option<Duration>) {
        self.measured = lifetime.filter(|d| !d.is_zero());
    }

    /// A mapping was seen to have expired after `idle` without traffic (a path
    /// died after an idle gap, or a server-reflexive address changed after
    /// `idle` since the last refresh): the timer is shorter than `idle`, so
    /// every interval shortens at once.
    pub fn mapping_expired(&mut self, idle: Duration) {
        let idle = idle.max(self.config.floor);
        let shorter = self.expired_after.is_none_or(|e| idle < e);
        if shorter {
            tracing::info!(
                ?idle,
                "NAT mapping expired while idle; keepalives shortened"
            );
            self.expired_after = Some(idle);
        }
    }

    /// A server-reflexive address changed: the mapping toward `target`'s server
    /// expired since it was last refreshed.
    pub fn server_reflexive_changed(&mut self, now: Instant, target: Target) {
        let idle = now.saturating_duration_since(self.last(target));
        self.mapping_expired(idle);
    }

    /// The best knowledge of the NAT session timer.
    pub fn timer(&self) -> Option<Duration> {
        match (self.measured, self.expired_after) {
            (Some(m), Some(e)) => Some(m.min(e)),
            (m, e) => m.or(e),
        }
    }

    /// The keepalive interval for a target.
    pub fn interval(&self, _target: Target) -> Duration {
        // One socket, one NAT: the same timer governs every mapping. The
        // targets differ in when they last carried traffic, not in the timer.
        let raw = match self.timer() {
            Some(t) => t.mul_f64(self.config.fraction.clamp(0.05, 0.9)),
            None => self.config.default_interval,
        };
        round_to_ms(raw.clamp(self.config.floor, self.config.ceiling))
    }

    /// Something was sent (or received) on `target`'s mapping at `now`.
    pub fn on_sent(&mut self, target: Target, now: Instant) {
        if let Some(slot) = self.last_sent.get_mut(target as usize) {
            *slot = now;
        }
    }

    fn last(&self, target: Target) -> Instant {
        self.last_sent
            .get(target as usize)
            .copied()
            .unwrap_or_else(|| self.last_sent[0])
    }

    /// When `target` next needs a keepalive (if nothing else is sent first).
    pub fn next_due(&self, target: Target) -> Instant {
        self.last(target) + self.interval(target)
    }

    /// The earliest keepalive due.
    pub fn poll_timeout(&self) -> Instant {
        TARGETS
            .iter()
            .map(|&t| self.next_due(t))
            .min()
            .unwrap_or_else(|| self.last_sent[0])
    }

    /// The targets due at `now`; each counts as refreshed (send one keepalive
    /// on each: a STUN Binding indication or path probe, a TURN Refresh or
    /// empty Send, a registration refresh).
    pub fn poll_due(&mut self, now: Instant) -> Vec<Target> {
        let due: Vec<Target> = TARGETS
            .iter()
            .copied()
            .filter(|&t| self.next_due(t) <= now)
            .collect();
        for &t in &due {
            self.on_sent(t, now);
        }
        due
    }
}

fn round_to_ms(d: Duration) -> Duration {
    Duration::from_millis(u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

#[cfg(test)]
mod tests;
