//! Plain C structs and enums filled by the endpoint: events and statistics.

use std::ffi::c_char;

use tsunagi::session::{DisconnectReason, PathKind};

/// Size of `tsunagi_event.peer_id`: a peer id (58 characters) plus NUL, with room to spare.
pub const TSUNAGI_PEER_ID_SIZE: usize = 64;

/// Size of `tsunagi_stats.remote`: the longest `[IPv6%scope]:port` text plus NUL.
pub const TSUNAGI_ADDRESS_SIZE: usize = 64;

/// The largest offer or answer blob (`tsunagi_endpoint_create_offer`,
/// `tsunagi_endpoint_apply_signal`): a buffer of this many bytes always fits.
pub const TSUNAGI_SIGNAL_MAX_SIZE: usize = 1100;

/// Size of the identity secret in bytes.
pub const TSUNAGI_IDENTITY_SIZE: usize = 32;

/// The kind of path a session's packets take.
#[repr(i32)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum tsunagi_path_kind {
    /// No confirmed path right now (e.g. just after a network change).
    TSUNAGI_PATH_NONE = 0,
    /// Straight to the peer over IPv6.
    TSUNAGI_PATH_DIRECT_IPV6 = 1,
    /// Straight to the peer over IPv4 (through NATs, if any).
    TSUNAGI_PATH_DIRECT_IPV4 = 2,
    /// Through a TURN relay.
    TSUNAGI_PATH_RELAY = 3,
}

pub(crate) fn path_kind(path: Option<PathKind>) -> tsunagi_path_kind {
    use tsunagi_path_kind::*;
    match path {
        None => TSUNAGI_PATH_NONE,
        Some(PathKind::DirectV6) => TSUNAGI_PATH_DIRECT_IPV6,
        Some(PathKind::DirectV4) => TSUNAGI_PATH_DIRECT_IPV4,
        Some(PathKind::Relay) => TSUNAGI_PATH_RELAY,
    }
}

/// What happened (`tsunagi_event.kind`).
#[repr(i32)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum tsunagi_event_kind {
    /// No event (the call returned `TSUNAGI_NO_EVENT`).
    TSUNAGI_EVENT_NONE = 0,
    /// A session is up. `path` is set; `outgoing` is 1 if this side dialled; the payload
    /// is the remote address as text (may be empty).
    TSUNAGI_EVENT_CONNECTED = 1,
    /// A connect attempt failed; the payload is the reason as UTF-8 text.
    TSUNAGI_EVENT_CONNECT_FAILED = 2,
    /// A session ended. `reason` is set; the payload is a description as UTF-8 text.
    TSUNAGI_EVENT_DISCONNECTED = 3,
    /// Packets now take another path (`path`); the session carries on.
    TSUNAGI_EVENT_PATH_CHANGED = 4,
    /// A reliable message arrived on `channel`; the payload is the message.
    TSUNAGI_EVENT_MESSAGE = 5,
    /// An unreliable message arrived; the payload is the message.
    TSUNAGI_EVENT_DATAGRAM = 6,
}

/// Why a session ended (`tsunagi_event.reason`).
#[repr(i32)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum tsunagi_disconnect_reason {
    /// Not a disconnect event.
    TSUNAGI_DISCONNECT_NONE = 0,
    /// The peer closed the session (the payload holds its reason text).
    TSUNAGI_DISCONNECT_CLOSED_BY_PEER = 1,
    /// This side closed it.
    TSUNAGI_DISCONNECT_CLOSED_LOCALLY = 2,
    /// Nothing was heard from the peer for the idle timeout (15 s).
    TSUNAGI_DISCONNECT_TIMED_OUT = 3,
    /// The peer restarted and reset the connection.
    TSUNAGI_DISCONNECT_RESET = 4,
    /// A newer connection to the same peer took over.
    TSUNAGI_DISCONNECT_REPLACED = 5,
    /// The peer broke the protocol (e.g. an oversized message).
    TSUNAGI_DISCONNECT_PROTOCOL_VIOLATION = 6,
    /// Any other transport failure.
    TSUNAGI_DISCONNECT_TRANSPORT = 7,
}

pub(crate) fn disconnect_reason(reason: &DisconnectReason) -> tsunagi_disconnect_reason {
    use tsunagi_disconnect_reason::*;
    match reason {
        DisconnectReason::ClosedByPeer { .. } => TSUNAGI_DISCONNECT_CLOSED_BY_PEER,
        DisconnectReason::ClosedLocally => TSUNAGI_DISCONNECT_CLOSED_LOCALLY,
        DisconnectReason::TimedOut => TSUNAGI_DISCONNECT_TIMED_OUT,
        DisconnectReason::Reset => TSUNAGI_DISCONNECT_RESET,
        DisconnectReason::Replaced => TSUNAGI_DISCONNECT_REPLACED,
        DisconnectReason::ProtocolViolation(_) => TSUNAGI_DISCONNECT_PROTOCOL_VIOLATION,
        DisconnectReason::Transport(_) => TSUNAGI_DISCONNECT_TRANSPORT,
    }
}

/// One event, filled by `tsunagi_endpoint_poll_event`. The payload (message bytes or
/// text) goes into the caller's buffer, not into this struct.
#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct tsunagi_event {
    /// What happened.
    pub kind: tsunagi_event_kind,
    /// The path in use, for CONNECTED and PATH_CHANGED.
    pub path: tsunagi_path_kind,
    /// Why, for DISCONNECTED.
    pub reason: tsunagi_disconnect_reason,
    /// The channel of a MESSAGE.
    pub channel: u16,
    /// 1 if this side dialled (CONNECTED).
    pub outgoing: u8,
    /// 1 if the payload did not fit the buffer: nothing was copied, the event stays
    /// queued, and the call returned `TSUNAGI_ERR_BUFFER_TOO_SMALL`. Call again with a
    /// buffer of at least `payload_len` bytes.
    pub truncated: u8,
    /// The payload's full size in bytes (copied to the buffer unless `truncated`).
    pub payload_len: usize,
    /// The peer's id (`tsu…`), NUL-terminated.
    pub peer_id: [c_char; TSUNAGI_PEER_ID_SIZE],
}

impl tsunagi_event {
    pub(crate) fn empty() -> Self {
        Self {
            kind: tsunagi_event_kind::TSUNAGI_EVENT_NONE,
            path: tsunagi_path_kind::TSUNAGI_PATH_NONE,
            reason: tsunagi_disconnect_reason::TSUNAGI_DISCONNECT_NONE,
            channel: 0,
            outgoing: 0,
            truncated: 0,
            payload_len: 0,
            peer_id: [0; TSUNAGI_PEER_ID_SIZE],
        }
    }
}

/// Statistics of one session, filled by `tsunagi_endpoint_stats`.
#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct tsunagi_stats {
    /// Smoothed round-trip time in microseconds.
    pub rtt_us: u64,
    /// QUIC packets sent.
    pub packets_sent: u64,
    /// QUIC packets declared lost.
    pub packets_lost: u64,
    /// `packets_lost / packets_sent` (0 when nothing was sent).
    pub loss: f64,
    /// UDP payload bytes sent.
    pub bytes_sent: u64,
    /// UDP payload bytes received.
    pub bytes_received: u64,
    /// The largest unreliable message that can be sent now (0: unavailable).
    pub datagram_limit: u64,
    /// The path in use.
    pub path: tsunagi_path_kind,
    /// Where packets go on that path (the relay server for a relayed path), as
    /// NUL-terminated text; empty if unknown.
    pub remote: [c_char; TSUNAGI_ADDRESS_SIZE],
}
