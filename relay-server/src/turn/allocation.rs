//! Allocations (RFC 8656 §2.2): the table, its indexes, quotas and expiry.
//!
//! Expiry is a `BTreeSet` of `(deadline, id)`: refreshing moves one entry, the
//! next deadline is the first entry, and expiring walks the front. No timers or
//! threads per allocation; the driver calls [`crate::Server::handle_timeout`].

use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use tsunagi::stun::TransactionId;

use super::channels::Channels;
use super::permissions::Permissions;
use crate::fast_map::FastMap;

/// An allocation's identifier within one server.
pub(crate) type AllocationId = u64;

/// A token bucket in bytes: `rate` bytes per second, bursts of up to `burst`.
#[derive(Debug, Clone)]
pub(crate) struct TokenBucket {
    rate: u64,
    burst: u64,
    tokens: u64,
    last: Instant,
}

impl TokenBucket {
    /// A full bucket; `rate` 0 means unlimited.
    pub fn new(rate: u64, now: Instant) -> TokenBucket {
        // One second of traffic, but at least two maximum-size datagrams.
        let burst = rate.max(2 * 65_535);
        TokenBucket {
            rate,
            burst,
            tokens: burst,
            last: now,
        }
    }

    /// Takes `bytes` tokens if there are enough; `false` means drop the datagram.
    pub fn take(&mut self, bytes: usize, now: Instant) -> bool {
        if self.rate == 0 {
            return true;
        }
        let elapsed = now.saturating_duration_since(self.last);
        let refill = elapsed.as_nanos().saturating_mul(u128::from(self.rate)) / 1_000_000_000;
        if refill > 0 {
            let refill = u64::try_from(refill).unwrap_or(u64::MAX);
            self.tokens = self.tokens.saturating_add(refill).min(self.burst);
            self.last = now;
        }
        let bytes = bytes as u64;
        if self.tokens >= bytes {
            self.tokens -= bytes;
            true
        } else {
            false
        }
    }
}

/// One allocation.
#[derive(Debug)]
pub(crate) struct Allocation {
    /// The client's transport address (the 5-tuple's remote half).
    pub client: SocketAddr,
    /// The server address the client talks to (the 5-tuple's local half).
    pub local: SocketAddr,
    /// The USERNAME that created it; later requests must use the same.
    pub username: String,
    /// What quotas count against.
    pub quota_name: String,
    /// Relayed transport addresses: one or two (one per family).
    pub relayed: Vec<SocketAddr>,
    /// When it expires unless refreshed.
    pub expires: Instant,
    /// Installed permissions.
    pub permissions: Permissions,
    /// Bound channels.
    pub channels: Channels,
    /// The bandwidth limit, both directions together.
    pub bucket: TokenBucket,
    /// The Allocate transaction and its success response, replayed when the
    /// client retransmits that request (RFC 8656 §7.2).
    pub allocate_transaction: TransactionId,
    /// See `allocate_transaction`.
    pub allocate_response: Vec<u8>,
}

impl Allocation {
    /// The relayed address for sending to `peer` (same family), if any.
    pub fn relayed_for(&self, peer: SocketAddr) -> Option<SocketAddr> {
        self.relayed
            .iter()
            .copied()
            .find(|r| r.is_ipv4() == peer.is_ipv4())
    }
}

/// Every allocation, indexed by 5-tuple and by relayed address.
#[derive(Debug, Default)]
pub(crate) struct Allocations {
    by_id: FastMap<AllocationId, Allocation>,
    by_five_tuple: FastMap<(SocketAddr, SocketAddr), AllocationId>,
    by_relayed: FastMap<SocketAddr, AllocationId>,
    expiry: BTreeSet<(Instant, AllocationId)>,
    next_id: AllocationId,
}

impl Allocations {
    /// The allocation of a 5-tuple.
    pub fn find(&self, client: SocketAddr, local: SocketAddr) -> Option<AllocationId> {
        self.by_five_tuple.get(&(client, local)).copied()
    }

    /// The allocation owning a relayed address.
    pub fn by_relayed(&self, relayed: SocketAddr) -> Option<AllocationId> {
        self.by_relayed.get(&relayed).copied()
    }

    /// Whether `address` is some allocation's relayed address.
    pub fn is_relayed(&self, address: SocketAddr) -> bool {
        self.by_relayed.contains_key(&address)
    }

    /// An allocation by id.
    pub fn get(&self, id: AllocationId) -> Option<&Allocation> {
        self.by_id.get(&id)
    }

    /// An allocation by id, to change.
    pub fn get_mut(&mut self, id: AllocationId) -> Option<&mut Allocation> {
        self.by_id.get_mut(&id)
    }

    /// Adds an allocation (quotas already checked).
    pub fn insert(&mut self, allocation: Allocation) -> AllocationId {
        let id = self.next_id;
        self.next_id += 1;
        self.by_five_tuple
            .insert((allocation.client, allocation.local), id);
        for &r in &allocation.relayed {
            self.by_relayed.insert(r, id);
        }
        self.expiry.insert((allocation.expires, id));
        self.by_id.insert(id, allocation);
        id
    }

    /// Sets a new lifetime.
    pub fn refresh(&mut self, id: AllocationId, now: Instant, lifetime: Duration) {
        if let Some(a) = self.by_id.get_mut(&id) {
            self.expiry.remove(&(a.expires, id));
            a.expires = now + lifetime;
            self.expiry.insert((a.expires, id));
        }
    }

    /// Drops one family's relayed address of a dual allocation; returns it.
    pub fn drop_family(&mut self, id: AllocationId, ipv4: bool) -> Option<SocketAddr> {
        let a = self.by_id.get_mut(&id)?;
        let index = a.relayed.iter().position(|r| r.is_ipv4() == ipv4)?;
        let relayed = a.relayed.remove(index);
        self.by_relayed.remove(&relayed);
        Some(relayed)
    }

    /// Removes an allocation; the caller closes its relayed sockets.
    pub fn remove(&mut self, id: AllocationId) -> Option<Allocation> {
        let a = self.by_id.remove(&id)?;
        self.by_five_tuple.remove(&(a.client, a.local));
        for r in &a.relayed {
            self.by_relayed.remove(r);
        }
        self.expiry.remove(&(a.expires, id));
        Some(a)
    }

    /// The earliest expiry.
    pub fn next_expiry(&self) -> Option<Instant> {
        self.expiry.first().map(|(t, _)| *t)
    }

    /// Removes and returns every allocation expired at `now`.
    pub fn expire(&mut self, now: Instant) -> Vec<Allocation> {
        let mut ended = Vec::new();
        while let Some(&(deadline, id)) = self.expiry.first() {
            if deadline > now {
                break;
            }
            self.expiry.remove(&(deadline, id));
            ended.extend(self.remove(id));
        }
        ended
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn token_bucket_limits_and_refills() {
        let now = Instant::now();
        let mut b = TokenBucket::new(200_000, now);
        assert!(b.take(200_000, now));
        assert!(!b.take(1, now), "empty");
        assert!(b.take(20_000, now + Duration::from_millis(100)));
        assert!(!b.take(20_000, now + Duration::from_millis(100)));
        let mut unlimited = TokenBucket::new(0, now);
        assert!((0..1000).all(|_| unlimited.take(65_535, now)));
    }
}
