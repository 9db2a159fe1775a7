//! What the game hears from a session: events and statistics, as plain values.

use std::net::SocketAddr;
use std::time::Duration;

use bytes::Bytes;

use super::identity::PeerId;
pub use crate::path::PathKind;

/// Why a connection ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DisconnectReason {
    /// The peer closed the session (e.g. it left the game).
    ClosedByPeer {
        /// The peer's reason text, if any.
        reason: String,
    },
    /// This side closed it.
    ClosedLocally,
    /// Nothing was heard from the peer for the idle timeout.
    TimedOut,
    /// The peer lost its state (restarted) and reset the connection.
    Reset,
    /// A newer connection to the same peer took over.
    Replaced,
    /// The peer broke the protocol (e.g. an oversized message).
    ProtocolViolation(String),
    /// Any other transport failure.
    Transport(String),
}

impl std::fmt::Display for DisconnectReason {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::ClosedByPeer { reason } if reason.is_empty() => f.write_str("closed by peer"),
            Self::ClosedByPeer { reason } => write!(f, "closed by peer: {reason}"),
            Self::ClosedLocally => f.write_str("closed locally"),
            Self::TimedOut => f.write_str("timed out (no packets from the peer)"),
            Self::Reset => f.write_str("reset by peer (it restarted)"),
            Self::Replaced => f.write_str("replaced by a newer connection"),
            Self::ProtocolViolation(s) => write!(f, "protocol violation: {s}"),
            Self::Transport(s) => write!(f, "transport error: {s}"),
        }
    }
}

/// Something that happened on an endpoint. Drain them on every game tick.
#[derive(Debug, Clone)]
pub enum Event {
    /// A session with `peer` is up and can carry messages.
    Connected {
        /// Who.
        peer: PeerId,
        /// The path in use.
        path: PathKind,
        /// The real address packets go to on that path, once known.
        remote: Option<SocketAddr>,
        /// True when this side dialled.
        outgoing: bool,
    },
    /// A background connect (from [`super::PollEndpoint::connect`]) failed.
    ConnectFailed {
        /// Who.
        peer: PeerId,
        /// The error, as text (see [`super::SessionError`] for the variants).
        error: String,
    },
    /// The session with `peer` ended.
    Disconnected {
        /// Who.
        peer: PeerId,
        /// Why.
        reason: DisconnectReason,
    },
    /// Packets to `peer` now take another path; the session carries on.
    PathChanged {
        /// Who.
        peer: PeerId,
        /// The new path.
        path: PathKind,
    },
    /// A reliable message arrived, in order within its channel.
    Message {
        /// From whom.
        peer: PeerId,
        /// On which channel.
        channel: u16,
        /// The message.
        bytes: Bytes,
    },
    /// An unreliable message arrived.
    Datagram {
        /// From whom.
        peer: PeerId,
        /// The message.
        bytes: Bytes,
    },
}

/// A snapshot of one peer connection's statistics.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct PeerStats {
    /// The path in use (`None` while no path is confirmed, e.g. after a network change).
    pub path: Option<PathKind>,
    /// The real address packets go to on that path (the relay server for a relayed path).
    pub remote: Option<SocketAddr>,
    /// Smoothed round-trip time, measured by QUIC.
    pub rtt: Duration,
    /// QUIC packets sent so far.
    pub packets_sent: u64,
    /// QUIC packets declared lost so far.
    pub packets_lost: u64,
    /// `packets_lost / packets_sent` (0 when nothing was sent).
    pub loss: f64,
    /// UDP payload bytes sent.
    pub bytes_sent: u64,
    /// UDP payload bytes received.
    pub bytes_received: u64,
    /// The largest unreliable message that can be sent now (0: datagrams unavailable).
    pub datagram_limit: usize,
}

impl PeerStats {
    pub(crate) fn new(
        connection: &quinn::Connection,
        path: Option<(PathKind, SocketAddr)>,
    ) -> Self {
        let stats = connection.stats();
        let sent = stats.path.sent_packets;
        let lost = stats.path.lost_packets;
        Self {
            path: path.map(|p| p.0),
            remote: path.map(|p| p.1),
            rtt: stats.path.rtt,
            packets_sent: sent,
            packets_lost: lost,
            loss: if sent == 0 {
                0.0
            } else {
                lost as f64 / sent as f64
            },
            bytes_sent: stats.udp_tx.bytes,
            bytes_received: stats.udp_rx.bytes,
            datagram_limit: connection.max_datagram_size().unwrap_or(0),
        }
    }
}

/// Converts quinn's close reason into ours.
pub(crate) fn disconnect_reason(error: &quinn::ConnectionError) -> DisconnectReason {
    use quinn::ConnectionError as E;
    match error {
        E::ApplicationClosed(close) if close.error_code == super::peer::CODE_REPLACED => {
            DisconnectReason::Replaced
        }
        E::ApplicationClosed(close) if close.error_code == super::peer::CODE_PROTOCOL => {
            DisconnectReason::ProtocolViolation(String::from_utf8_lossy(&close.reason).into_owned())
        }
        E::ApplicationClosed(close) => DisconnectReason::ClosedByPeer {
            reason: String::from_utf8_lossy(&close.reason).into_owned(),
        },
        E::ConnectionClosed(close) => DisconnectReason::ClosedByPeer {
            reason: format!("{close}"),
        },
        E::LocallyClosed => DisconnectReason::ClosedLocally,
        E::TimedOut => DisconnectReason::TimedOut,
        E::Reset => DisconnectReason::Reset,
        other => DisconnectReason::Transport(other.to_string()),
    }
}
