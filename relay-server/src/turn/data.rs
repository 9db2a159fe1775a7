//! The data path (RFC 8656 §11, §12): Send indications and ChannelData from
//! clients to peers, and datagrams from peers back as ChannelData (when a
//! channel is bound) or Data indications. Anything without an allocation, a
//! permission, a bound channel, or bandwidth left is dropped and counted; a
//! dropped datagram is never answered.
//!
//! This is the per-datagram path: it appends to [`Datagrams`] (no allocation
//! per datagram) and logs only at trace level.

use std::net::SocketAddr;
use std::time::Instant;

use tsunagi::stun::{Attribute, Message};

use super::{Turn, framing, legacy};
use crate::datagrams::Datagrams;

/// Where client data goes.
#[derive(Debug, Clone, Copy)]
enum Target {
    /// The XOR-PEER-ADDRESS of a Send indication.
    Peer(SocketAddr),
    /// The peer bound to a channel.
    Channel(u16),
}

impl Turn {
    /// Relays `data` from the client of 5-tuple (`from`, `local`) to the peer
    /// a Send indication named or a channel is bound to, or drops it.
    fn relay_to_peer(
        &mut self,
        now: Instant,
        (local, from): (SocketAddr, SocketAddr),
        target: Target,
        data: &[u8],
        out: &mut Datagrams,
    ) {
        // Checks with shared borrows only; one mutable lookup at the end.
        let checked = (|| {
            let id = self.allocations.find(from, local).ok_or("no allocation")?;
            let allocation = self
                .allocations
                .get(id)
                .filter(|a| a.expires > now)
                .ok_or("no allocation")?;
            let peer = match target {
                Target::Peer(p) => p,
                Target::Channel(c) => allocation
                    .channels
                    .peer(c, now)
                    .ok_or("channel not bound")?,
            };
            let relayed = allocation
                .relayed_for(peer)
                .ok_or("peer family not allocated")?;
            if !allocation.permissions.allows(peer.ip(), now) {
                return Err("no permission");
            }
            // Permissions are per IP; ports on the relay's own IPs are checked
            // per datagram so a permission cannot reach its listening sockets.
            let allocations = &self.allocations;
            self.policy
                .check_with(peer, || allocations.is_relayed(peer))
                .map_err(|_| "peer denied")?;
            Ok((id, relayed, peer))
        })();
        let (id, relayed, peer) = match checked {
            Ok(found) => found,
            Err(why) => {
                self.pending.unpermitted_drops += 1;
                tracing::trace!(%from, why, "dropping client data");
                return;
            }
        };
        let Some(allocation) = self.allocations.get_mut(id) else {
            return;
        };
        if !allocation.bucket.take(data.len(), now) {
            self.pending.bandwidth_drops += 1;
            return;
        }
        self.pending.packets_to_peers += 1;
        self.pending.bytes_to_peers += data.len() as u64;
        out.push(relayed, peer, data);
    }

    /// A Send indication from a client, as raw bytes: the common shape
    /// (XOR-PEER-ADDRESS, DATA, optional FINGERPRINT) is read in place without
    /// decoding the message; anything else goes through the codec as
    /// [`Turn::handle_send`]. Returns `false`, having done nothing, if the codec
    /// cannot decode it either (the caller takes the general path).
    pub fn handle_send_bytes(
        &mut self,
        now: Instant,
        local: SocketAddr,
        from: SocketAddr,
        packet: &[u8],
        out: &mut Datagrams,
    ) -> bool {
        match framing::parse_send_indication(packet) {
            Some(framing::SendIndication::Relay { peer, data }) => {
                self.relay_to_peer(now, (local, from), Target::Peer(peer), data, out);
            }
            Some(framing::SendIndication::BadFingerprint) => {
                tracing::debug!(%from, "dropping message with a bad FINGERPRINT");
            }
            None => {
                let Ok(message) = Message::decode(packet) else {
                    return false;
                };
                if message.has_fingerprint() && message.verify_fingerprint().is_err() {
                    tracing::debug!(%from, "dropping message with a bad FINGERPRINT");
                } else {
                    self.handle_send(now, local, from, &message, out);
                }
            }
        }
        true
    }

    /// A Send indication from a client.
    pub fn handle_send(
        &mut self,
        now: Instant,
        local: SocketAddr,
        from: SocketAddr,
        indication: &Message<'_>,
        out: &mut Datagrams,
    ) {
        let mut peer = None;
        let mut data = None;
        for attribute in indication.attributes() {
            match attribute {
                Attribute::XorPeerAddress(p) => peer = Some(*p),
                Attribute::Data(d) => data = Some(*d),
                _ => {}
            }
        }
        // RFC 8656 §11.2: an indication with unknown comprehension-required
        // attributes, or without XOR-PEER-ADDRESS and DATA, is discarded.
        let (Some(peer), Some(data)) = (peer, data) else {
            self.pending.malformed += 1;
            return;
        };
        if !indication.unknown_comprehension_required().is_empty() {
            self.pending.malformed += 1;
            return;
        }
        self.relay_to_peer(now, (local, from), Target::Peer(peer), data, out);
    }

    /// A ChannelData message from a client.
    pub fn handle_channel_data(
        &mut self,
        now: Instant,
        local: SocketAddr,
        from: SocketAddr,
        packet: &[u8],
        out: &mut Datagrams,
    ) {
        match legacy::decode_channel_data(packet) {
            Some((channel, data)) => {
                self.relay_to_peer(now, (local, from), Target::Channel(channel), data, out);
            }
            None => {
                self.pending.malformed += 1;
                tracing::trace!(%from, "malformed ChannelData");
            }
        }
    }

    /// A datagram from `peer` to the relayed address `relayed`.
    pub fn handle_relayed(
        &mut self,
        now: Instant,
        relayed: SocketAddr,
        peer: SocketAddr,
        data: &[u8],
        out: &mut Datagrams,
    ) {
        let Some(id) = self.allocations.by_relayed(relayed) else {
            return;
        };
        let tid = self.transaction_id_bytes();
        let Some(allocation) = self.allocations.get_mut(id) else {
            return;
        };
        if allocation.expires <= now || !allocation.permissions.allows(peer.ip(), now) {
            self.pending.unpermitted_drops += 1;
            tracing::trace!(%peer, %relayed, "dropping peer data without permission");
            return;
        }
        if !allocation.bucket.take(data.len(), now) {
            self.pending.bandwidth_drops += 1;
            return;
        }
        let channel = allocation.channels.channel(peer, now);
        let queued = out.push_with(
            allocation.local,
            allocation.client,
            |buffer| match channel {
                Some(channel) => legacy::encode_channel_data(channel, data, buffer),
                // Too large to fit an indication: dropped, as a router would.
                None => framing::encode_data_indication(&tid, peer, data, buffer),
            },
        );
        if queued {
            self.pending.packets_to_clients += 1;
            self.pending.bytes_to_clients += data.len() as u64;
        }
    }
}
