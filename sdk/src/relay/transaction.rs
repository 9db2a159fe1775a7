//! Outstanding requests: transaction IDs and retransmission (RFC 8489 §6.2.1).

use std::net::{IpAddr, SocketAddr};
use std::time::Instant;

use sha2::{Digest, Sha256};

use super::config::Retransmit;
use crate::stun::{Method, TransactionId};

/// Makes unpredictable transaction IDs: SHA-256 over a secret seed and a counter,
/// so one call to the OS RNG serves the client's whole life.
#[derive(Clone)]
pub(crate) struct TidSource {
    seed: [u8; 32],
    counter: u64,
}

impl std::fmt::Debug for TidSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("TidSource(..)")
    }
}

impl TidSource {
    pub(crate) fn new(seed: [u8; 32]) -> TidSource {
        TidSource { seed, counter: 0 }
    }

    /// A seed from the OS RNG. If that fails (it practically never does), the IDs
    /// are still unique per client, only less unpredictable: say so in the log.
    pub(crate) fn os_seed(now: Instant) -> [u8; 32] {
        let mut seed = [0u8; 32];
        if let Err(e) = getrandom::fill(&mut seed) {
            tracing::warn!(error = %e, "no OS randomness; TURN transaction IDs are guessable");
            let fallback = Sha256::digest(format!("{now:?}{:p}", &seed).as_bytes());
            seed.copy_from_slice(&fallback);
        }
        seed
    }

    pub(crate) fn next(&mut self) -> TransactionId {
        self.counter = self.counter.wrapping_add(1);
        let mut h = Sha256::new();
        h.update(self.seed);
        h.update(self.counter.to_be_bytes());
        let digest = h.finalize();
        let mut tid = [0u8; 12];
        tid.copy_from_slice(digest.get(..12).unwrap_or(&[0; 12]));
        TransactionId::new(tid)
    }
}

/// What a request is for, so its answer can be applied.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Request {
    /// Allocate; `dual` when it carries ADDITIONAL-ADDRESS-FAMILY.
    Allocate { dual: bool },
    /// Refresh with this LIFETIME (0 releases the allocation).
    Refresh { lifetime: u32 },
    /// CreatePermission for one peer IP.
    CreatePermission { peer: IpAddr },
    /// ChannelBind of a channel number to a peer.
    ChannelBind { channel: u16, peer: SocketAddr },
}

impl Request {
    pub(crate) fn method(&self) -> Method {
        match self {
            Request::Allocate { .. } => Method::ALLOCATE,
            Request::Refresh { .. } => Method::REFRESH,
            Request::CreatePermission { .. } => Method::CREATE_PERMISSION,
            Request::ChannelBind { .. } => Method::CHANNEL_BIND,
        }
    }
}

/// One request in flight.
#[derive(Debug, Clone)]
pub(crate) struct Pending {
    pub(crate) request: Request,
    /// The encoded request, resent as is.
    pub(crate) bytes: Vec<u8>,
    /// Whether it carries MESSAGE-INTEGRITY (then so must a success response).
    pub(crate) authenticated: bool,
    /// Transmissions so far.
    pub(crate) sent: u32,
    /// When to retransmit, or give up after the last transmission.
    pub(crate) next_at: Instant,
    /// 438 answers in a row that led to this request.
    pub(crate) stale_nonces: u32,
}

impl Pending {
    /// A request that is being sent for the first time now.
    pub(crate) fn first(
        request: Request,
        bytes: Vec<u8>,
        authenticated: bool,
        stale_nonces: u32,
        now: Instant,
        retransmit: &Retransmit,
    ) -> Pending {
        Pending {
            request,
            bytes,
            authenticated,
            sent: 1,
            next_at: now + retransmit.wait_after(1),
            stale_nonces,
        }
    }

    /// Handles the timer: `true` to retransmit now, `false` to give up.
    pub(crate) fn on_timeout(&mut self, now: Instant, retransmit: &Retransmit) -> bool {
        if self.sent >= retransmit.max_transmissions {
            return false;
        }
        self.sent += 1;
        self.next_at = now + retransmit.wait_after(self.sent);
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tids_differ_and_depend_on_the_seed() {
        let mut a = TidSource::new([1; 32]);
        let mut b = TidSource::new([2; 32]);
        let (a1, a2) = (a.next(), a.next());
        assert_ne!(a1, a2);
        assert_ne!(a1, b.next());
        assert_eq!(TidSource::new([1; 32]).next(), a1);
    }
}
