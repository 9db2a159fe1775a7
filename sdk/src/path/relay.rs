//! TURN relays under the path layer: one `crate::relay::Client` per server,
//! sharing the path socket. (Skeleton: wired to the TURN client once it lands.)

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::time::Instant;

use super::core::PathCore;
use super::event::PathEvent;

/// A datagram for a TURN server.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct RelayTransmit {
    pub(crate) to: SocketAddr,
    pub(crate) bytes: Vec<u8>,
}

/// Why a datagram could not go through a relay.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum RelaySendError {
    /// No relay is configured for this server.
    #[error("no TURN relay {0} is configured; call PathHandle::add_relay first")]
    UnknownServer(SocketAddr),
}

/// The relays of one path socket.
#[derive(Debug, Default)]
pub(crate) struct Relays {
    out: VecDeque<RelayTransmit>,
}

impl Relays {
    pub(crate) fn send(
        &mut self,
        _now: Instant,
        server: SocketAddr,
        _peer: SocketAddr,
        _bytes: &[u8],
    ) -> Result<(), RelaySendError> {
        Err(RelaySendError::UnknownServer(server))
    }

    pub(crate) fn transmits(&mut self) -> std::collections::vec_deque::Drain<'_, RelayTransmit> {
        self.out.drain(..)
    }

    pub(crate) fn handle_input(&mut self, _now: Instant, _from: SocketAddr, _bytes: &[u8]) {}

    pub(crate) fn pump(
        &mut self,
        _now: Instant,
        _core: &mut PathCore,
        _pending: &mut VecDeque<(SocketAddr, Vec<u8>)>,
        _events: &mut VecDeque<PathEvent>,
    ) {
    }

    pub(crate) fn handle_timeout(&mut self, _now: Instant) {}

    pub(crate) fn poll_timeout(&self) -> Option<Instant> {
        None
    }
}
