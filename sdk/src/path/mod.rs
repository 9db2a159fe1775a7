//! Paths: each remote peer appears to QUIC at a stable *virtual* address while
//! its datagrams take the best live real path underneath (the design iroh uses).
//!
//! A peer's path table holds direct IPv6, direct IPv4 and relayed paths, each
//! probed with STUN Binding requests (RTT, liveness). Sends take the best live
//! path — direct IPv6 > direct IPv4 > relay, among equals the lower RTT — and a
//! switch never shows to QUIC (same virtual address; anything in flight is
//! retransmitted by QUIC). Until a path is confirmed, QUIC's datagrams go over
//! every candidate, so data flows over the relay as soon as it works
//! (relay-first) and moves to a direct path once one is confirmed.
//!
//! Use:
//!
//! 1. [`PathSocket::bind`] (real UDP) or [`PathSocket::new`] (any
//!    [`crate::socket::DatagramIo`], e.g. the simulator) → a socket for quinn
//!    and a [`PathHandle`].
//! 2. [`PathHandle::add_peer`] with the peer's key → its virtual address.
//! 3. [`PathHandle::add_path`] with each known address (and relays).
//! 4. `quinn::Endpoint::new_with_abstract_socket(socket::endpoint_config(), …,
//!    socket, Arc::new(quinn::TokioRuntime))`, with
//!    [`crate::socket::transport_config`] in the client and server configs;
//!    connect to the virtual address.
//! 5. Read [`PathHandle::next_event`] / [`PathHandle::stats`].
//!
//! Unknown sources. A QUIC Initial from an address no peer has creates an
//! *inbound peer* with a fresh virtual address ([`PathEvent::PeerDiscovered`]),
//! so an incoming connection is accepted and can switch paths later (add paths
//! to that virtual address). A short-header packet from an unknown address whose
//! destination connection ID belongs to a known peer's connection is that peer
//! after a NAT rebinding: the address becomes a new path
//! ([`PathEvent::PathDiscovered`]), the packet is delivered at the peer's virtual
//! address (QUIC's own crypto authenticates it), and the path carries our sends
//! once a probe on it is answered. Other packets from unknown sources are
//! delivered with their real address.
//!
//! The logic is the sans-IO [`PathCore`]; [`PathSocket`] and a small tokio task
//! drive it. See `README.md` beside this file.

mod addr;
mod core;
mod driver;
mod error;
mod event;
mod handle;
mod keepalive;
mod probe;
mod relay;
mod socket;
mod table;

pub use addr::{
    PathAddr, PathKind, PeerKey, VIRTUAL_PORT, Via, add_nat64_prefix, canonical, is_nat64,
    is_virtual, virtual_addr,
};
pub use core::{CoreTransmit, PathCore, SendRoute};
pub use driver::ReceivedStun;
pub use error::PathError;
pub use event::{PathConfig, PathEvent, PathStats, PeerStats};
pub use handle::{PathEvents, PathHandle};
pub use keepalive::KeepaliveStats;
pub use relay::{RelayPeerError, RelaySendError, RelayStatus};
pub use socket::PathSocket;

#[cfg(test)]
mod tests;
