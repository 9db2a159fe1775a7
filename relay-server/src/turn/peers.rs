//! CreatePermission (RFC 8656 §10) and ChannelBind (§11): what a client may
//! exchange data with. Both check the peer against the deny list ([`crate::policy`])
//! and answer 403 Forbidden for a denied peer, installing nothing.

use std::net::{IpAddr, SocketAddr};

use tsunagi::stun::Attribute;

use super::allocation::AllocationId;
use super::{Request, Turn, legacy};
use crate::auth::Authenticator;
use crate::counters::Counters;

impl Turn {
    /// The caller's allocation, or the signed error response to send instead.
    fn own_allocation(&mut self, ctx: &Request<'_, '_>) -> Result<AllocationId, Vec<u8>> {
        let owner = self.allocations.find(ctx.from, ctx.local).and_then(|id| {
            self.allocations
                .get_mut(id)
                .map(|a| (id, a.username.clone()))
        });
        let Some((id, username)) = owner else {
            return Err(self.error(ctx, 437, "Allocation Mismatch: allocate first"));
        };
        if !Authenticator::same_user(ctx.request, &username) {
            Counters::bump(&self.counters.auth_failures);
            return Err(self.error(ctx, 441, "Wrong Credentials: not the allocation's user"));
        }
        Ok(id)
    }

    /// 443 if the allocation has no relayed address of `peer`'s family, 403 if
    /// the peer is denied.
    fn check_peer(
        &mut self,
        ctx: &Request<'_, '_>,
        id: AllocationId,
        peer: SocketAddr,
    ) -> Result<(), Vec<u8>> {
        let has_family = self
            .allocations
            .get_mut(id)
            .is_some_and(|a| a.relayed_for(peer).is_some());
        if !has_family {
            return Err(self.error(ctx, 443, "Peer Address Family Mismatch"));
        }
        let relayed = self.allocations.is_relayed(peer);
        if let Err(why) = self.policy.check(peer, relayed) {
            Counters::bump(&self.counters.denied_peers);
            tracing::debug!(client = %ctx.from, %peer, ?why, "peer denied");
            return Err(self.error(ctx, 403, "Forbidden: peer address not allowed"));
        }
        Ok(())
    }

    pub(super) fn create_permission(&mut self, ctx: &Request<'_, '_>) -> Vec<u8> {
        let id = match self.own_allocation(ctx) {
            Ok(id) => id,
            Err(response) => return response,
        };
        let peers: Vec<SocketAddr> = ctx
            .request
            .attributes()
            .iter()
            .filter_map(|a| match a {
                Attribute::XorPeerAddress(p) => Some(*p),
                _ => None,
            })
            .collect();
        if peers.is_empty() {
            return self.error(ctx, 400, "Bad Request: XOR-PEER-ADDRESS missing");
        }
        for &peer in &peers {
            if let Err(response) = self.check_peer(ctx, id, peer) {
                return response;
            }
        }
        let ips: Vec<IpAddr> = peers.iter().map(|p| p.ip()).collect();
        let max = self.config.max_permissions;
        let Some(allocation) = self.allocations.get_mut(id) else {
            return self.error(ctx, 437, "Allocation Mismatch: allocate first");
        };
        if !allocation.permissions.has_room(&ips, max, ctx.now) {
            return self.error(ctx, 508, "Insufficient Capacity: too many permissions");
        }
        for ip in ips {
            allocation.permissions.install(ip, ctx.now);
        }
        self.success(ctx, &[])
    }

    pub(super) fn channel_bind(&mut self, ctx: &Request<'_, '_>) -> Vec<u8> {
        let id = match self.own_allocation(ctx) {
            Ok(id) => id,
            Err(response) => return response,
        };
        let mut channel = None;
        let mut peer = None;
        for attribute in ctx.request.attributes() {
            match attribute {
                Attribute::ChannelNumber(n) => channel = Some(*n),
                Attribute::XorPeerAddress(p) => peer = Some(*p),
                _ => {}
            }
        }
        let channel = ctx.channel.or(channel);
        let Some(channel) = channel.filter(|c| legacy::CHANNELS.contains(c)) else {
            return self.error(
                ctx,
                400,
                "Bad Request: CHANNEL-NUMBER missing or not 0x4000-0x7FFF",
            );
        };
        let Some(peer) = peer else {
            return self.error(ctx, 400, "Bad Request: XOR-PEER-ADDRESS missing");
        };
        if let Err(response) = self.check_peer(ctx, id, peer) {
            return response;
        }
        let max = self.config.max_permissions;
        let Some(allocation) = self.allocations.get_mut(id) else {
            return self.error(ctx, 437, "Allocation Mismatch: allocate first");
        };
        if !allocation.permissions.has_room(&[peer.ip()], max, ctx.now) {
            return self.error(ctx, 508, "Insufficient Capacity: too many permissions");
        }
        if let Err(e) = allocation.channels.bind(channel, peer, ctx.now) {
            return self.error(ctx, 400, e.reason());
        }
        // A channel binding installs or refreshes the peer's permission (§11.2).
        allocation.permissions.install(peer.ip(), ctx.now);
        self.success(ctx, &[])
    }
}
