//! What a [`super::Client`] keeps about its allocation, permissions and channels.

use std::net::SocketAddr;
use std::time::Instant;

use crate::stun::IntegrityKey;

/// Where the allocation stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Phase {
    Allocating,
    Allocated,
    Releasing,
    Closed,
}

/// The long-term credential state after the server's first 401.
#[derive(Debug, Clone)]
pub(crate) struct Auth {
    pub(crate) realm: String,
    pub(crate) nonce: String,
    pub(crate) key: IntegrityKey,
}

/// The allocation the server granted.
#[derive(Debug, Clone)]
pub(crate) struct Allocation {
    pub(crate) relayed: Vec<SocketAddr>,
    pub(crate) mapped: Option<SocketAddr>,
    pub(crate) expires_at: Instant,
    /// When to refresh; `None` while a Refresh is in flight.
    pub(crate) refresh_at: Option<Instant>,
}

/// A permission for one peer IP (RFC 8656 §9).
#[derive(Debug, Clone)]
pub(crate) struct Permission {
    pub(crate) installed: bool,
    /// When to refresh; `None` while a CreatePermission is in flight.
    pub(crate) refresh_at: Option<Instant>,
}

/// A channel bound, or being bound, to a peer (RFC 8656 §12).
#[derive(Debug, Clone)]
pub(crate) struct Channel {
    pub(crate) peer: SocketAddr,
    pub(crate) bound: bool,
    /// When to refresh; `None` while a ChannelBind is in flight.
    pub(crate) refresh_at: Option<Instant>,
}
