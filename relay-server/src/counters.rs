//! Counters the TURN core keeps, for metrics exporters and tests.
//!
//! The core owns an `Arc<Counters>` and bumps plain relaxed atomics, so an
//! exporter (Prometheus, a health endpoint, a benchmark) reads them from any
//! thread without taking the server's lock: get the handle once with
//! [`crate::Server::counters`] and read it whenever it scrapes. Counters only
//! grow, except [`Counters::allocations_active`], which is a gauge.

use std::sync::atomic::{AtomicU64, Ordering};

/// What the relay has done since it started. Every field is a relaxed atomic.
#[derive(Debug, Default)]
pub struct Counters {
    /// Allocations in place now (a gauge).
    pub allocations_active: AtomicU64,
    /// Allocations created.
    pub allocations_created: AtomicU64,
    /// Allocations that ended: deleted by the client (lifetime 0) or expired.
    pub allocations_ended: AtomicU64,
    /// Datagrams relayed from clients to peers.
    pub packets_to_peers: AtomicU64,
    /// Application bytes relayed from clients to peers.
    pub bytes_to_peers: AtomicU64,
    /// Datagrams relayed from peers to clients (Data indications and ChannelData).
    pub packets_to_clients: AtomicU64,
    /// Application bytes relayed from peers to clients.
    pub bytes_to_clients: AtomicU64,
    /// Requests rejected for credentials: unknown user, expired REST username,
    /// wrong MESSAGE-INTEGRITY, or a username that does not own the allocation.
    pub auth_failures: AtomicU64,
    /// Requests answered 438 Stale Nonce (a normal part of long sessions).
    pub stale_nonces: AtomicU64,
    /// Allocate requests refused with 486 (per-user or per-IP quota).
    pub quota_rejections: AtomicU64,
    /// Allocate requests refused with 508 (global cap or no free relay port).
    pub capacity_rejections: AtomicU64,
    /// CreatePermission / ChannelBind requests refused with 403 (peer denied).
    pub denied_peers: AtomicU64,
    /// Datagrams dropped because the allocation exceeded its bandwidth limit.
    pub bandwidth_drops: AtomicU64,
    /// Datagrams dropped for lack of a permission or a bound channel (both ways),
    /// or because they came from a client with no allocation.
    pub unpermitted_drops: AtomicU64,
    /// Datagrams that are not well-formed STUN or ChannelData.
    pub malformed: AtomicU64,
}

/// The data path's counts, kept in plain integers by one core and added to
/// the shared [`Counters`] once per batch ([`Pending::publish`]): one atomic
/// add per counter per batch instead of several per datagram, and no cache
/// line bouncing between workers on every datagram.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Pending {
    pub packets_to_peers: u64,
    pub bytes_to_peers: u64,
    pub packets_to_clients: u64,
    pub bytes_to_clients: u64,
    pub bandwidth_drops: u64,
    pub unpermitted_drops: u64,
    pub malformed: u64,
}

impl Pending {
    /// Adds what is pending to `counters` and starts again from zero.
    pub fn publish(&mut self, counters: &Counters) {
        if *self == Pending::default() {
            return;
        }
        let pairs = [
            (&counters.packets_to_peers, self.packets_to_peers),
            (&counters.bytes_to_peers, self.bytes_to_peers),
            (&counters.packets_to_clients, self.packets_to_clients),
            (&counters.bytes_to_clients, self.bytes_to_clients),
            (&counters.bandwidth_drops, self.bandwidth_drops),
            (&counters.unpermitted_drops, self.unpermitted_drops),
            (&counters.malformed, self.malformed),
        ];
        for (counter, n) in pairs {
            if n > 0 {
                Counters::add(counter, n);
            }
        }
        *self = Pending::default();
    }
}

impl Counters {
    /// Adds `n` to a counter.
    pub(crate) fn add(counter: &AtomicU64, n: u64) {
        counter.fetch_add(n, Ordering::Relaxed);
    }

    /// Adds one to a counter.
    pub(crate) fn bump(counter: &AtomicU64) {
        counter.fetch_add(1, Ordering::Relaxed);
    }

    /// Subtracts one from a gauge, never below zero.
    pub(crate) fn drop_one(gauge: &AtomicU64) {
        let _ = gauge.fetch_update(Ordering::Relaxed, Ordering::Relaxed, |v| v.checked_sub(1));
    }

    /// Reads a counter (a convenience for exporters and tests).
    pub fn get(counter: &AtomicU64) -> u64 {
        counter.load(Ordering::Relaxed)
    }

    /// Every counter with a stable snake_case name, e.g. for a metrics exporter:
    /// `for (name, value) in counters.snapshot() { ... }`.
    pub fn snapshot(&self) -> [(&'static str, u64); 15] {
        let g = Counters::get;
        [
            ("allocations_active", g(&self.allocations_active)),
            ("allocations_created", g(&self.allocations_created)),
            ("allocations_ended", g(&self.allocations_ended)),
            ("packets_to_peers", g(&self.packets_to_peers)),
            ("bytes_to_peers", g(&self.bytes_to_peers)),
            ("packets_to_clients", g(&self.packets_to_clients)),
            ("bytes_to_clients", g(&self.bytes_to_clients)),
            ("auth_failures", g(&self.auth_failures)),
            ("stale_nonces", g(&self.stale_nonces)),
            ("quota_rejections", g(&self.quota_rejections)),
            ("capacity_rejections", g(&self.capacity_rejections)),
            ("denied_peers", g(&self.denied_peers)),
            ("bandwidth_drops", g(&self.bandwidth_drops)),
            ("unpermitted_drops", g(&self.unpermitted_drops)),
            ("malformed", g(&self.malformed)),
        ]
    }
}
