//! Allocate and Refresh (RFC 8656 §7), with RFC 8656's address families:
//! REQUESTED-ADDRESS-FAMILY picks one, ADDITIONAL-ADDRESS-FAMILY asks for both,
//! and ADDRESS-ERROR-CODE reports the family a dual allocation could not get.

use std::cmp::Reverse;
use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use tsunagi::stun::{AddressFamily, Attribute, ErrorCode};

use super::allocation::{Allocation, TokenBucket};
use super::channels::Channels;
use super::permissions::Permissions;
use super::ports::ReservedSocket;
use super::reservations::{RESERVATION_LIFETIME, Reservation};
use super::{Request, Turn};
use crate::auth::Authenticator;
use crate::counters::Counters;
use crate::shared::QuotaError;

/// UDP's IP protocol number, the only REQUESTED-TRANSPORT served.
const UDP: u8 = 17;

/// What an Allocate request asks for.
#[derive(Debug, Default)]
struct AllocateRequest {
    transport: Option<u8>,
    requested_family: Option<AddressFamily>,
    additional_family: Option<AddressFamily>,
    even_port: Option<bool>,
    reservation_token: Option<[u8; 8]>,
    lifetime: Option<u32>,
}

impl Turn {
    fn lifetime(&self, requested: Option<u32>) -> Duration {
        let requested = requested.map_or(self.config.default_lifetime, |s| {
            Duration::from_secs(u64::from(s))
        });
        requested
            .max(self.config.default_lifetime)
            .min(self.config.max_lifetime)
    }

    fn relay_ip(&self, family: AddressFamily) -> Option<IpAddr> {
        self.config
            .relay_ips
            .iter()
            .copied()
            .find(|ip| ip.is_ipv4() == (family == AddressFamily::V4))
    }

    pub(super) fn allocate(&mut self, ctx: &Request<'_, '_>) -> Vec<u8> {
        if let Some(id) = self.allocations.find(ctx.from, ctx.local) {
            match self.allocations.get_mut(id) {
                // A retransmission of the request that created it: same answer.
                Some(a) if a.allocate_transaction == ctx.request.transaction_id() => {
                    return a.allocate_response.clone();
                }
                // A new, authenticated Allocate by the same user from this
                // 5-tuple: a NAT hands a 5-tuple to one flow at a time, so the
                // client that made the old allocation is gone (a restarted game
                // behind a NAT that gave it the same port again). The new one
                // replaces it rather than waiting for it to expire.
                Some(a) if a.quota_name == ctx.user.quota_name => {
                    if let Some(stale) = self.allocations.remove(id) {
                        tracing::debug!(
                            client = %ctx.from,
                            user = %ctx.user.quota_name,
                            "Allocate by the same user replaces the 5-tuple's allocation"
                        );
                        self.end(stale);
                    }
                }
                _ => return self.error(ctx, 437, "Allocation Mismatch: this 5-tuple has one"),
            }
        }
        let mut r = AllocateRequest::default();
        for attribute in ctx.request.attributes() {
            match attribute {
                Attribute::RequestedTransport(t) => r.transport = Some(*t),
                Attribute::RequestedAddressFamily(f) => r.requested_family = Some(*f),
                Attribute::AdditionalAddressFamily(f) => r.additional_family = Some(*f),
                Attribute::EvenPort { reserve_next } => r.even_port = Some(*reserve_next),
                Attribute::ReservationToken(t) => r.reservation_token = Some(**t),
                Attribute::Lifetime(s) => r.lifetime = Some(*s),
                _ => {}
            }
        }
        match r.transport {
            None => return self.error(ctx, 400, "Bad Request: REQUESTED-TRANSPORT missing"),
            Some(UDP) => {}
            Some(_) => return self.error(ctx, 442, "Unsupported Transport Protocol: UDP only"),
        }
        let families = match (r.requested_family, r.additional_family) {
            (Some(_), Some(_)) => {
                return self.error(ctx, 400, "Bad Request: both address family attributes");
            }
            (_, Some(AddressFamily::V4)) => {
                return self.error(
                    ctx,
                    400,
                    "Bad Request: ADDITIONAL-ADDRESS-FAMILY must be IPv6",
                );
            }
            (_, Some(AddressFamily::V6)) => vec![AddressFamily::V4, AddressFamily::V6],
            (Some(family), None) => vec![family],
            (None, None) => vec![AddressFamily::V4],
        };
        let dual = families.len() == 2;
        if r.reservation_token.is_some()
            && (r.even_port.is_some() || r.requested_family.is_some() || dual)
        {
            return self.error(
                ctx,
                400,
                "Bad Request: RESERVATION-TOKEN with other options",
            );
        }
        if dual && r.even_port.is_some() {
            return self.error(ctx, 400, "Bad Request: EVEN-PORT with a dual allocation");
        }
        if let Some(token) = r.reservation_token {
            return self.claim(ctx, &r, token);
        }
        // An allocation counts against the quotas, and so does the port it
        // reserves (until claimed or expired): one user cannot hold many.
        let reserve_next = r.even_port == Some(true);
        if let Err(response) = self.take_quota(ctx) {
            return response;
        }
        if reserve_next && let Err(response) = self.take_quota(ctx) {
            self.shared.release(&ctx.user.quota_name, ctx.from.ip());
            return response;
        }
        let counted = if reserve_next { 2 } else { 1 };

        let even = r.even_port.is_some();
        let mut relayed: Vec<SocketAddr> = Vec::new();
        let mut reserved: Option<ReservedSocket> = None;
        let mut failed: Vec<(AddressFamily, ErrorCode<'static>)> = Vec::new();
        for &family in &families {
            let Some(ip) = self.relay_ip(family) else {
                failed.push((family, ErrorCode::new(440, "Address Family not Supported")));
                continue;
            };
            let opened = if reserve_next {
                self.ports
                    .open_pair(self.sockets.as_mut(), ip)
                    .map(|(even, next)| {
                        reserved = Some(next);
                        even
                    })
            } else {
                self.ports.open(self.sockets.as_mut(), ip, even)
            };
            match opened {
                Some(address) => relayed.push(address),
                None => failed.push((family, ErrorCode::new(508, "Insufficient Capacity"))),
            }
        }
        if relayed.is_empty() {
            self.give_back_quota(ctx, counted);
            let (code, reason) = failed
                .first()
                .map_or((508, "Insufficient Capacity"), |(_, e)| (e.code, e.reason));
            if code == 508 {
                Counters::bump(&self.counters.capacity_rejections);
            }
            return self.error(ctx, code, reason);
        }
        let token = match reserved {
            Some(next) => match reservation_token() {
                Some(token) => Some((token, next)),
                None => {
                    // No randomness for an unguessable token: give it all back
                    // (dropping the reserved socket closes it).
                    for a in relayed {
                        self.ports.close(self.sockets.as_mut(), a);
                    }
                    self.give_back_quota(ctx, counted);
                    return self.error(ctx, 508, "Insufficient Capacity: try again");
                }
            },
            None => None,
        };
        self.allocated(ctx, &r, relayed, &failed, token)
    }

    /// Counts one allocation or reservation for the request's user and client
    /// IP; the error response (486 or 508) if a quota is full.
    fn take_quota(&self, ctx: &Request<'_, '_>) -> Result<(), Vec<u8>> {
        match self
            .shared
            .reserve(self.quotas(), &ctx.user.quota_name, ctx.from.ip())
        {
            Ok(()) => Ok(()),
            Err(QuotaError::Global) => {
                Counters::bump(&self.counters.capacity_rejections);
                Err(self.error(ctx, 508, "Insufficient Capacity: relay full, try another"))
            }
            Err(which) => {
                Counters::bump(&self.counters.quota_rejections);
                tracing::debug!(client = %ctx.from, user = %ctx.user.quota_name, ?which, "quota");
                Err(self.error(ctx, 486, "Allocation Quota Reached"))
            }
        }
    }

    /// Gives back `count` quota units taken by [`Turn::take_quota`].
    fn give_back_quota(&self, ctx: &Request<'_, '_>, count: usize) {
        for _ in 0..count {
            self.shared.release(&ctx.user.quota_name, ctx.from.ip());
        }
    }

    /// An Allocate with a RESERVATION-TOKEN: the port an earlier EVEN-PORT (R)
    /// Allocate reserved, once, whichever core reserved it. The reservation's
    /// quota count becomes the allocation's (moved if another user or client
    /// IP claims it).
    fn claim(&mut self, ctx: &Request<'_, '_>, r: &AllocateRequest, token: [u8; 8]) -> Vec<u8> {
        let (expired, taken) = {
            let mut reservations = self.shared.reservations();
            (
                reservations.expire(ctx.now),
                reservations.take(&token, ctx.now),
            )
        };
        for reservation in expired {
            self.end_reservation(reservation);
        }
        let Some(reservation) = taken else {
            Counters::bump(&self.counters.capacity_rejections);
            return self.error(
                ctx,
                508,
                "Insufficient Capacity: RESERVATION-TOKEN unknown, used or expired",
            );
        };
        if reservation.quota_name != ctx.user.quota_name || reservation.ip != ctx.from.ip() {
            if let Err(response) = self.take_quota(ctx) {
                // Not this client's to take: the reservation stays for another.
                let back = self.shared.reservations().insert(token, reservation);
                if let Err(lost) = back {
                    self.end_reservation(lost);
                }
                return response;
            }
            self.shared.release(&reservation.quota_name, reservation.ip);
        }
        match self.ports.adopt(self.sockets.as_mut(), reservation.socket) {
            Some(address) => self.allocated(ctx, r, vec![address], &[], None),
            None => {
                self.give_back_quota(ctx, 1);
                Counters::bump(&self.counters.capacity_rejections);
                self.error(ctx, 508, "Insufficient Capacity: try again")
            }
        }
    }

    /// Answers a granted Allocate and installs the allocation (quota already
    /// taken, relayed sockets open); with `token`, also reserves its port.
    fn allocated(
        &mut self,
        ctx: &Request<'_, '_>,
        r: &AllocateRequest,
        relayed: Vec<SocketAddr>,
        failed: &[(AddressFamily, ErrorCode<'static>)],
        token: Option<([u8; 8], ReservedSocket)>,
    ) -> Vec<u8> {
        let dual = r.additional_family.is_some();
        let lifetime = self.lifetime(r.lifetime);
        let mut attributes: Vec<Attribute<'_>> = relayed
            .iter()
            .map(|&a| Attribute::XorRelayedAddress(a))
            .collect();
        attributes.push(Attribute::Lifetime(lifetime.as_secs() as u32));
        attributes.push(Attribute::XorMappedAddress(ctx.from));
        if dual {
            for &(family, error) in failed {
                attributes.push(Attribute::AddressErrorCode { family, error });
            }
        }
        if let Some((token, _)) = &token {
            attributes.push(Attribute::ReservationToken(token));
        }
        let response = self.success(ctx, &attributes);
        if let Some((token, socket)) = token {
            let expires = ctx.now + RESERVATION_LIFETIME;
            self.reservation_deadlines.push(Reverse(expires));
            let reservation = Reservation {
                socket,
                quota_name: ctx.user.quota_name.clone(),
                ip: ctx.from.ip(),
                expires,
            };
            let inserted = self.shared.reservations().insert(token, reservation);
            if let Err(lost) = inserted {
                // 2^-64: a token collision; the port is released, the client
                // gets 508 when it uses the token.
                self.end_reservation(lost);
            }
        }
        tracing::debug!(client = %ctx.from, ?relayed, user = %ctx.user.username, "allocated");
        self.allocations.insert(Allocation {
            client: ctx.from,
            local: ctx.local,
            username: ctx.user.username.clone(),
            quota_name: ctx.user.quota_name.clone(),
            relayed,
            expires: ctx.now + lifetime,
            permissions: Permissions::default(),
            channels: Channels::default(),
            bucket: TokenBucket::new(self.config.max_bytes_per_sec, ctx.now),
            allocate_transaction: ctx.request.transaction_id(),
            allocate_response: response.clone(),
        });
        Counters::bump(&self.counters.allocations_created);
        Counters::bump(&self.counters.allocations_active);
        response
    }

    pub(super) fn refresh(&mut self, ctx: &Request<'_, '_>) -> Vec<u8> {
        let Some(id) = self.allocations.find(ctx.from, ctx.local) else {
            return self.error(ctx, 437, "Allocation Mismatch: no allocation to refresh");
        };
        let Some(allocation) = self.allocations.get_mut(id) else {
            return self.error(ctx, 437, "Allocation Mismatch: no allocation to refresh");
        };
        if !Authenticator::same_user(ctx.request, &allocation.username) {
            Counters::bump(&self.counters.auth_failures);
            return self.error(ctx, 441, "Wrong Credentials: not the allocation's user");
        }
        let families: Vec<bool> = allocation.relayed.iter().map(|r| r.is_ipv4()).collect();
        let mut lifetime = None;
        let mut family = None;
        for attribute in ctx.request.attributes() {
            match attribute {
                Attribute::Lifetime(s) => lifetime = Some(*s),
                Attribute::RequestedAddressFamily(f) => family = Some(*f == AddressFamily::V4),
                _ => {}
            }
        }
        if let Some(v4) = family
            && !families.contains(&v4)
        {
            return self.error(ctx, 443, "Peer Address Family Mismatch");
        }
        if lifetime == Some(0) {
            // With REQUESTED-ADDRESS-FAMILY, a dual allocation gives up one family.
            if let Some(v4) = family
                && families.len() > 1
            {
                if let Some(r) = self.allocations.drop_family(id, v4) {
                    self.ports.close(self.sockets.as_mut(), r);
                }
                let left = self
                    .allocations
                    .get_mut(id)
                    .map(|a| a.expires.saturating_duration_since(ctx.now));
                let secs = left.unwrap_or_default().as_secs() as u32;
                return self.success(ctx, &[Attribute::Lifetime(secs)]);
            }
            if let Some(a) = self.allocations.remove(id) {
                tracing::debug!(client = %ctx.from, "allocation deleted");
                self.end(a);
            }
            return self.success(ctx, &[Attribute::Lifetime(0)]);
        }
        let granted = self.lifetime(lifetime);
        self.allocations.refresh(id, ctx.now, granted);
        self.success(ctx, &[Attribute::Lifetime(granted.as_secs() as u32)])
    }
}

/// A fresh, unguessable RESERVATION-TOKEN (another client must not be able to
/// take a reservation by guessing it); `None` if the OS has no randomness.
fn reservation_token() -> Option<[u8; 8]> {
    let mut token = [0u8; 8];
    getrandom::fill(&mut token).ok()?;
    Some(token)
}
