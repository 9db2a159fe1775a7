//! Errors of the session layer. Each message says what happened and what to do.

use std::time::Duration;

use super::identity::PeerId;
use crate::path::{PathAddr, PathError};
use crate::socket::SocketError;

/// Why a session operation failed.
#[derive(Debug, thiserror::Error)]
pub enum SessionError {
    /// The address answered with a different player's key.
    #[error(
        "peer presented key {presented}, expected {expected}: the address belongs to another player (check the address or the peer id you were given)"
    )]
    WrongPeer {
        /// The key the remote side proved it holds.
        presented: PeerId,
        /// The key this endpoint was told to connect to.
        expected: PeerId,
    },
    /// Nothing answered in time on any path.
    #[error(
        "no answer from {peer} within {timeout:?}: check the addresses, that the peer is running, and that no firewall drops UDP"
    )]
    ConnectTimedOut {
        /// The peer being dialled.
        peer: PeerId,
        /// The time allowed.
        timeout: Duration,
    },
    /// The handshake failed.
    #[error("could not connect to {peer}: {reason}")]
    ConnectFailed {
        /// The peer being dialled.
        peer: PeerId,
        /// What went wrong.
        reason: String,
    },
    /// `connect` was called without any address.
    #[error("no address given for {0}: pass at least one IPv6 or IPv4 address or a relay path")]
    NoAddresses(PeerId),
    /// The endpoint has no socket for the address family of `path`.
    #[error(
        "cannot use {path}: this endpoint has no {family} socket (enable it in the config or pass another address)"
    )]
    NoSocketForFamily {
        /// The unusable path.
        path: PathAddr,
        /// "IPv4" or "IPv6".
        family: &'static str,
    },
    /// The path layer refused a path.
    #[error("path layer: {0}")]
    Path(#[from] PathError),
    /// The rendezvous server or the signalling through it failed.
    #[error("rendezvous: {0}")]
    Rendezvous(String),
    /// An offer or answer blob could not be read (empty, too large, another
    /// format version, corrupted).
    #[error("offer/answer blob refused: {0}")]
    BadSignal(#[from] crate::signal::BlobError),
    /// An answer arrived for which this endpoint has no open offer.
    #[error(
        "got an answer from {0} but no offer to it is open: create an offer first and pass the answer to the endpoint that made it (an offer is replaced by a newer one to the same peer)"
    )]
    AnswerWithoutOffer(PeerId),
    /// An answer belongs to another attempt than the open offer to that peer.
    #[error(
        "the answer from {peer} is for attempt {attempt:#x}, not the open offer to it (an answer to an older offer?): send it the newest offer again"
    )]
    UnknownAttempt {
        /// The peer that answered.
        peer: PeerId,
        /// The attempt the answer names.
        attempt: u64,
    },
    /// A well-formed signal did not fit the attempt (e.g. its ICE credentials changed).
    #[error("the signal from {peer} does not fit its connection attempt: {reason}")]
    SignalRefused {
        /// The sender.
        peer: PeerId,
        /// What did not fit.
        reason: String,
    },
    /// The blob was made by this endpoint.
    #[error(
        "this offer/answer blob was made by this endpoint: pass it to the other player, and apply the blobs the other player sends back"
    )]
    OwnSignal,
    /// There is no live connection to the peer.
    #[error("not connected to {0}: connect first, or wait for the Connected event")]
    NotConnected(PeerId),
    /// An unreliable message is larger than the connection currently allows.
    #[error(
        "datagram of {size} bytes exceeds the current limit of {limit} bytes: split it or send it on a reliable channel"
    )]
    DatagramTooLarge {
        /// The size that was given.
        size: usize,
        /// The limit now in force (it can grow once path MTU discovery finishes).
        limit: usize,
    },
    /// The peer does not accept unreliable messages.
    #[error("the peer does not accept datagrams: use a reliable channel")]
    DatagramsUnsupported,
    /// A reliable message is larger than the configured maximum.
    #[error(
        "message of {size} bytes exceeds the maximum of {limit} bytes: split it or raise max_message_size on both sides"
    )]
    MessageTooLarge {
        /// The size that was given.
        size: usize,
        /// The configured maximum.
        limit: usize,
    },
    /// The channel number is not below the configured channel count.
    #[error("channel {channel} does not exist: channels are numbered 0 to {}", .channels.saturating_sub(1))]
    NoSuchChannel {
        /// The channel that was given.
        channel: u16,
        /// The configured number of channels.
        channels: u16,
    },
    /// The channel's send queue is full (the peer reads slower than the game sends).
    #[error(
        "the send queue of channel {channel} to {peer} is full: send less often or wait for the peer to catch up"
    )]
    SendQueueFull {
        /// The peer.
        peer: PeerId,
        /// The channel.
        channel: u16,
    },
    /// The shared UDP sockets could not be opened.
    #[error("cannot open the UDP sockets: {0}")]
    Socket(#[from] SocketError),
    /// QUIC could not start on the sockets.
    #[error("cannot start QUIC on the sockets: {0}")]
    Quic(std::io::Error),
    /// The TLS configuration could not be built (a bug or a corrupt identity).
    #[error("TLS setup failed: {0}")]
    Tls(String),
    /// The endpoint was closed.
    #[error("the endpoint is closed: create a new one")]
    Closed,
    /// The background runtime of a [`super::PollEndpoint`] could not start.
    #[error("cannot start the networking thread: {0}")]
    Runtime(std::io::Error),
}

impl From<rustls::Error> for SessionError {
    fn from(e: rustls::Error) -> Self {
        Self::Tls(e.to_string())
    }
}
