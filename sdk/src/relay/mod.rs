//! A TURN client (RFC 8656) over UDP: relayed addresses for when no direct path
//! between two players can exist.
//!
//! [`Client`] is a sans-IO state machine for one allocation on one server, in the
//! style of quinn-proto: feed it datagrams from the server
//! ([`Client::handle_input`]) and the time ([`Client::handle_timeout`]), and poll
//! it for datagrams to send ([`Client::poll_transmit`]), events
//! ([`Client::poll_event`]) and its next deadline ([`Client::poll_timeout`]). It
//! owns no socket, clock or task, so it shares the SDK's one UDP socket with STUN,
//! ICE and QUIC: the caller hands it the datagrams whose source is the TURN
//! server and whose first byte says STUN (0–3) or ChannelData (64–79), see
//! [`crate::stun::classify`].
//!
//! The client does the long-term credential dance (401 → USERNAME, REALM, NONCE,
//! MESSAGE-INTEGRITY; 438 → new nonce), asks for IPv4, IPv6 or both (falling back
//! to IPv4 alone when the server cannot relay IPv6), refreshes the allocation,
//! its permissions and channel bindings before they expire, sends through Send
//! indications until a channel is bound and through ChannelData after (while
//! taking ChannelData on a channel it asked for at once, before the server's
//! answer is in), and retransmits requests as RFC 8489 says.
//!
//! ```
//! use std::time::Instant;
//! use tsunagi::relay::{Client, Config, Credentials, Event};
//!
//! let now = Instant::now();
//! let server = "192.0.2.1:3478".parse()?;
//! let mut client = Client::new(Config::new(server, Credentials::new("alice", "secret")), now);
//! // The first Allocate request is ready to go to the server.
//! let transmit = client.poll_transmit().expect("an Allocate request");
//! assert_eq!(transmit.to, server);
//! // Nothing answered yet; the next deadline is the first retransmission.
//! assert!(client.poll_timeout().is_some());
//! assert!(client.poll_event().is_none());
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

mod client;
mod config;
mod credentials;
mod error;
mod response;
mod state;
mod transaction;

use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

pub use client::Client;
pub use config::{Config, RelayFamily, Retransmit};
pub use credentials::{
    Credentials, TOKEN_PREFIX, TokenError, TokenPart, rest_credentials, rest_password,
};
pub use error::{Error, UseError};

use crate::stun::AddressFamily;

/// A datagram for the caller to send from the client's socket.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Transmit {
    /// Where to send it: always the TURN server.
    pub to: SocketAddr,
    /// The datagram.
    pub bytes: Vec<u8>,
}

/// A relayed address family that the server could not provide, from a dual
/// allocation (ADDRESS-ERROR-CODE, or a 440 that made the client retry).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FamilyUnavailable {
    /// The family left out.
    pub family: AddressFamily,
    /// The server's error code (440 when it does not relay that family), or
    /// `None` when the server silently ignored the request for it.
    pub code: Option<u16>,
    /// The server's reason phrase.
    pub reason: String,
}

/// What happened, in the order it happened.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    /// The allocation is in place.
    Allocated {
        /// The relayed addresses (one per family) that peers send to.
        relayed: Vec<SocketAddr>,
        /// Our address as the server saw it (XOR-MAPPED-ADDRESS).
        mapped: Option<SocketAddr>,
        /// The lifetime the server granted; the client refreshes before it ends.
        lifetime: Duration,
        /// Families asked for but not granted.
        unavailable: Vec<FamilyUnavailable>,
    },
    /// The allocation was refreshed.
    Refreshed {
        /// The new lifetime.
        lifetime: Duration,
    },
    /// A permission is installed: the relay now forwards datagrams from this IP.
    PermissionCreated {
        /// The peer's IP address.
        peer: IpAddr,
    },
    /// Creating or refreshing a permission failed; it is forgotten.
    PermissionFailed {
        /// The peer's IP address.
        peer: IpAddr,
        /// Why.
        reason: Error,
    },
    /// A channel is bound: data to and from the peer now goes as ChannelData.
    ChannelBound {
        /// The peer.
        peer: SocketAddr,
        /// The channel number.
        channel: u16,
    },
    /// Binding or refreshing a channel failed; the peer is reached through Send
    /// indications again.
    ChannelBindFailed {
        /// The peer.
        peer: SocketAddr,
        /// Why.
        reason: Error,
    },
    /// A datagram from a peer, relayed by the server.
    Data {
        /// The peer that sent it to our relayed address.
        peer: SocketAddr,
        /// The datagram.
        bytes: Vec<u8>,
    },
    /// Allocating failed; the client is closed.
    Failed {
        /// Why.
        reason: Error,
    },
    /// An allocation that was in place is gone (refresh refused, or it expired);
    /// the client is closed.
    AllocationLost {
        /// Why.
        reason: Error,
    },
    /// The allocation was released ([`Client::release`]); the client is closed.
    Released,
}

#[cfg(test)]
mod tests;
