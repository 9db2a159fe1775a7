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
use crate::counters::Counters;
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
        let drop = |counters: &Counters, why: &str| {
            Counters::bump(&counters.unpermitted_drops);
            tracing::trace!(%from, why, "dropping client data");
        };
        let Some(id) = self.allocations.find(from, local) else {
            return drop(&self.counters, "no allocation");
        };
        let Some(allocation) = self.allocations.get_mut(id).filter(|a| a.expires > now) else {
            return drop(&self.counters, "no allocation");
        };
        let peer = match target {
            Target::Peer(p) => p,
            Target::Channel(c) => match allocation.channels.peer(c, now) {
                Some(p) => p,
                None => return drop(&self.counters, "channel not bound"),
            },
        };
        let Some(relayed) = allocation.relayed_for(peer) else {
            return drop(&self.counters, "peer family not allocated");
        };
        if !allocation.permissions.allows(peer.ip(), now) {
            return drop(&self.counters, "no permission");
        }
        // Permissions are per IP; ports on the relay's own IPs are checked per
        // datagram so a permission cannot reach its listening sockets.
        let is_relayed = self.allocations.is_relayed(peer);
        if self.policy.check(peer, is_relayed).is_err() {
            return drop(&self.counters, "peer denied");
        }
        let Some(allocation) = self.allocations.get_mut(id) else {
            return;
        };
        if !allocation.bucket.take(data.len(), now) {
            Counters::bump(&self.counters.bandwidth_drops);
            return;
        }
        Counters::bump(&self.counters.packets_to_peers);
        Counters::add(&self.counters.bytes_to_peers, data.len() as u64);
        out.push(relayed, peer, data);
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
            Counters::bump(&self.counters.malformed);
            return;
        };
        if !indication.unknown_comprehension_required().is_empty() {
            Counters::bump(&self.counters.malformed);
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
                Counters::bump(&self.counters.malformed);
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
            Counters::bump(&self.counters.unpermitted_drops);
            tracing::trace!(%peer, %relayed, "dropping peer data without permission");
            return;
        }
        if !allocation.bucket.take(data.len(), now) {
            Counters::bump(&self.counters.bandwidth_drops);
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
            Counters::bump(&self.counters.packets_to_clients);
            Counters::add(&self.counters.bytes_to_clients, data.len() as u64);
        }
    }
}
