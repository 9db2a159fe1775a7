//! Channel bindings (RFC 8656 §12): a 4-byte ChannelData header instead of a
//! 36-byte Send/Data indication, per (allocation, peer transport address).

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use crate::fast_map::FastMap;

/// How long a channel binding lasts unless refreshed (RFC 8656: 600 s).
pub(crate) const CHANNEL_LIFETIME: Duration = Duration::from_secs(600);

/// Why a ChannelBind is refused (all are 400 Bad Request).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum BindError {
    /// The channel number is bound to another peer.
    ChannelTaken,
    /// The peer is bound to another channel number.
    PeerTaken,
}

impl BindError {
    /// The reason phrase for the 400 response.
    pub fn reason(self) -> &'static str {
        match self {
            BindError::ChannelTaken => "Bad Request: channel bound to another peer",
            BindError::PeerTaken => "Bad Request: peer bound to another channel",
        }
    }
}

#[derive(Debug, Clone, Copy)]
struct Binding {
    peer: SocketAddr,
    expires: Instant,
}

/// An allocation's channels, both ways.
#[derive(Debug, Default)]
pub(crate) struct Channels {
    by_number: FastMap<u16, Binding>,
    by_peer: FastMap<SocketAddr, u16>,
}

impl Channels {
    /// The peer bound to `channel` at `now`.
    pub fn peer(&self, channel: u16, now: Instant) -> Option<SocketAddr> {
        self.by_number
            .get(&channel)
            .filter(|b| b.expires > now)
            .map(|b| b.peer)
    }

    /// The channel bound to `peer` at `now`.
    pub fn channel(&self, peer: SocketAddr, now: Instant) -> Option<u16> {
        let channel = *self.by_peer.get(&peer)?;
        self.peer(channel, now).map(|_| channel)
    }

    /// Binds or refreshes `channel` ↔ `peer`. A binding stays exclusive until it
    /// expires; an expired one may be taken over. (RFC 8656 suggests a further
    /// 5-minute quarantine for the number; clients do not depend on it.)
    pub fn bind(&mut self, channel: u16, peer: SocketAddr, now: Instant) -> Result<(), BindError> {
        if let Some(b) = self.by_number.get(&channel)
            && b.peer != peer
            && b.expires > now
        {
            return Err(BindError::ChannelTaken);
        }
        if let Some(&other) = self.by_peer.get(&peer)
            && other != channel
            && self.peer(other, now).is_some()
        {
            return Err(BindError::PeerTaken);
        }
        // Drop stale halves before installing, so the two maps stay inverse.
        if let Some(old) = self.by_number.remove(&channel) {
            self.by_peer.remove(&old.peer);
        }
        if let Some(old) = self.by_peer.remove(&peer) {
            self.by_number.remove(&old);
        }
        self.by_number.insert(
            channel,
            Binding {
                peer,
                expires: now + CHANNEL_LIFETIME,
            },
        );
        self.by_peer.insert(peer, channel);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn binding_rules() {
        let now = Instant::now();
        let p1: SocketAddr = "192.0.2.1:1".parse().unwrap();
        let p2: SocketAddr = "192.0.2.2:2".parse().unwrap();
        let mut c = Channels::default();
        assert_eq!(c.bind(0x4000, p1, now), Ok(()));
        assert_eq!(c.bind(0x4000, p1, now), Ok(()), "refresh");
        assert_eq!(c.bind(0x4000, p2, now), Err(BindError::ChannelTaken));
        assert_eq!(c.bind(0x4001, p1, now), Err(BindError::PeerTaken));
        assert_eq!(c.peer(0x4000, now), Some(p1));
        assert_eq!(c.channel(p1, now), Some(0x4000));
        let later = now + CHANNEL_LIFETIME;
        assert_eq!(c.peer(0x4000, later), None, "expired");
        assert_eq!(c.bind(0x4000, p2, later), Ok(()), "expired number reused");
        assert_eq!(c.channel(p1, later), None);
        assert_eq!(c.bind(0x4001, p1, later), Ok(()));
        assert_eq!(c.channel(p2, later), Some(0x4000));
    }
}
