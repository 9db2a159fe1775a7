//! TURN over UDP (RFC 8656, with RFC 6156's IPv6 and family bridging), as part of
//! the sans-IO [`crate::Server`].
//!
//! - `allocate.rs`: Allocate and Refresh; `peers.rs`: CreatePermission and
//!   ChannelBind; `data.rs`: Send indications, ChannelData, and datagrams from
//!   peers.
//! - `allocation.rs`: the allocation table, quotas, expiry, bandwidth buckets;
//!   `permissions.rs`, `channels.rs`: per-allocation state; `ports.rs`: relayed
//!   sockets, which the driver binds on the core's behalf ([`RelaySockets`]).
//! - Credentials and nonces are in `crate::auth`, the peer filter in
//!   `crate::policy`, counters in `crate::counters`.
//!
//! Every request except the indications must be authenticated; nothing is relayed
//! for a client without an allocation, or to a peer without a permission.

mod allocate;
mod allocation;
mod channels;
mod data;
mod framing;
mod legacy;
mod peers;
mod permissions;
pub(crate) mod ports;
pub(crate) mod reservations;
#[cfg(test)]
mod tests;
#[cfg(test)]
mod tests_lifecycle;
#[cfg(test)]
mod tests_reservations;

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap};
use std::net::{IpAddr, SocketAddr};
use std::ops::RangeInclusive;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tsunagi::stun::{
    Attribute, AttributeType, Class, ErrorCode, IntegrityKey, Message, MessageBuilder, Method,
};

use crate::auth::{Authenticated, Authenticator, Rejection};
use crate::counters::{Counters, Pending};
use crate::policy::{Cidr, PeerPolicy};
use crate::server::Transmit;
use crate::shared::{Quotas, Shared};
use allocation::{Allocation, Allocations};
use ports::{PortPool, RelaySockets};
use reservations::Reservation;

/// The TURN service's settings.
#[derive(Debug, Clone)]
pub struct TurnConfig {
    /// REALM for long-term credentials (at most 64 bytes keeps 401s small).
    pub realm: String,
    /// Static users: name → password (`--user NAME:PASS`).
    pub users: HashMap<String, String>,
    /// REST shared secrets (`--auth-secret`); any of them validates.
    pub auth_secrets: Vec<String>,
    /// IPs to relay from, at most one per family is used (`--relay-ip`).
    pub relay_ips: Vec<IpAddr>,
    /// The relay port range; `None` lets the OS choose (tests).
    pub relay_ports: Option<RangeInclusive<u16>>,
    /// Peer ranges opened despite the default deny list (`--allow-peer`).
    pub allowed_peers: Vec<Cidr>,
    /// The addresses the server listens on (never relayed to).
    pub listening: Vec<SocketAddr>,
    /// Allocations per user, reserved ports included (0 = unlimited).
    pub user_quota: u32,
    /// Allocations per client IP, reserved ports included (0 = unlimited).
    pub ip_quota: u32,
    /// Allocations in total, reserved ports included.
    pub max_allocations: usize,
    /// Bytes per second per allocation, both directions together (0 = unlimited).
    pub max_bytes_per_sec: u64,
    /// Permissions per allocation.
    pub max_permissions: usize,
    /// Lifetime when the client asks for none or less (RFC 8656: 600 s).
    pub default_lifetime: Duration,
    /// The longest lifetime granted (RFC 8656: 3600 s).
    pub max_lifetime: Duration,
    /// How long a nonce is accepted before 438 Stale Nonce.
    pub nonce_lifetime: Duration,
}

impl Default for TurnConfig {
    fn default() -> Self {
        TurnConfig {
            realm: "tsunagi".to_string(),
            users: HashMap::new(),
            auth_secrets: Vec::new(),
            relay_ips: Vec::new(),
            relay_ports: Some(49152..=65535),
            allowed_peers: Vec::new(),
            listening: Vec::new(),
            user_quota: 32,
            ip_quota: 32,
            max_allocations: 10_000,
            max_bytes_per_sec: 2_000_000,
            max_permissions: 64,
            default_lifetime: Duration::from_secs(600),
            max_lifetime: Duration::from_secs(3600),
            nonce_lifetime: Duration::from_secs(600),
        }
    }
}

/// Wall-clock time derived from the `Instant`s the driver passes in.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Clock {
    pub instant: Instant,
    pub unix: u64,
}

impl Clock {
    fn unix(&self, now: Instant) -> u64 {
        self.unix
            .saturating_add(now.saturating_duration_since(self.instant).as_secs())
    }
}

/// The TURN state of a server.
#[derive(Debug)]
pub(crate) struct Turn {
    config: TurnConfig,
    auth: Authenticator,
    policy: PeerPolicy,
    allocations: Allocations,
    ports: PortPool,
    /// When the ports this core reserved (EVEN-PORT with the R bit) expire:
    /// its timer then expires the shared table's reservations (see
    /// [`Turn::expire_reservations`]). The table itself is in [`Shared`].
    reservation_deadlines: BinaryHeap<Reverse<Instant>>,
    sockets: Box<dyn RelaySockets>,
    shared: Shared,
    counters: Arc<Counters>,
    /// The data path's counts since the last [`Turn::publish_counters`].
    pending: Pending,
    software: Option<String>,
    pub clock: Clock,
    rng: u64,
}

impl Turn {
    pub fn new(
        config: TurnConfig,
        sockets: Box<dyn RelaySockets>,
        shared: Shared,
        software: Option<String>,
    ) -> Turn {
        let seed = shared.nonce_key();
        let mut own_ips = config.relay_ips.clone();
        own_ips.extend(
            config
                .listening
                .iter()
                .map(|l| l.ip())
                .filter(|ip| !ip.is_unspecified()),
        );
        let policy = PeerPolicy {
            allowed: config.allowed_peers.clone(),
            own_ips,
            listening: config.listening.clone(),
            relay_ports: config.relay_ports.clone(),
        };
        let auth = Authenticator::new(
            config.realm.clone(),
            config.users.clone(),
            config.auth_secrets.clone(),
            seed,
            config.nonce_lifetime.as_secs(),
        );
        let rng = u64::from_le_bytes(seed[..8].try_into().unwrap_or([1; 8])) | 1;
        // Each core its own port order: cores on one `Shared` share the key
        // above, and with one seed they would all try the same ports first
        // and each lose the bind race to the others.
        let port_seed = getrandom::u64().unwrap_or_else(|_| {
            static CORES: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
            let core = CORES.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            rng.rotate_left(17) ^ core.wrapping_mul(0x9E37_79B9_7F4A_7C15)
        });
        Turn {
            ports: PortPool::new(config.relay_ports.clone(), port_seed),
            config,
            auth,
            policy,
            allocations: Allocations::default(),
            reservation_deadlines: BinaryHeap::new(),
            sockets,
            counters: shared.counters(),
            pending: Pending::default(),
            shared,
            software,
            clock: Clock {
                instant: Instant::now(),
                unix: unix_now(),
            },
            rng,
        }
    }

    fn quotas(&self) -> Quotas {
        Quotas {
            per_user: self.config.user_quota,
            per_ip: self.config.ip_quota,
            total: self.config.max_allocations,
        }
    }

    /// A transaction ID for a Data indication (unpredictable enough that a peer
    /// cannot learn anything from it; not a secret).
    fn transaction_id_bytes(&mut self) -> [u8; 12] {
        let mut bytes = [0u8; 12];
        for chunk in bytes.chunks_mut(4) {
            self.rng ^= self.rng << 13;
            self.rng ^= self.rng >> 7;
            self.rng ^= self.rng << 17;
            chunk.copy_from_slice(&self.rng.to_le_bytes()[..chunk.len()]);
        }
        bytes
    }

    /// Adds the data path's counts to the shared counters (once per batch).
    pub fn publish_counters(&mut self) {
        self.pending.publish(&self.counters);
    }

    /// The next allocation or port reservation expiry.
    pub fn poll_timeout(&self) -> Option<Instant> {
        match (
            self.allocations.next_expiry(),
            self.reservation_deadlines.peek().map(|Reverse(at)| *at),
        ) {
            (Some(a), Some(r)) => Some(a.min(r)),
            (a, r) => a.or(r),
        }
    }

    /// Ends every allocation and port reservation expired at `now`, closing
    /// their relayed sockets.
    pub fn handle_timeout(&mut self, now: Instant) {
        for allocation in self.allocations.expire(now) {
            tracing::debug!(client = %allocation.client, "allocation expired");
            self.end(allocation);
        }
        let mut due = false;
        while self
            .reservation_deadlines
            .peek()
            .is_some_and(|Reverse(at)| *at <= now)
        {
            self.reservation_deadlines.pop();
            due = true;
        }
        if due {
            self.expire_reservations(now);
        }
    }

    /// Ends every port reservation expired at `now`, this core's or another's
    /// (whichever core's timer sees one first): closes its socket, releases
    /// its quota.
    fn expire_reservations(&self, now: Instant) {
        let expired = self.shared.reservations().expire(now);
        for reservation in expired {
            tracing::debug!(reserved = %reservation.socket.address(), "port reservation expired");
            self.end_reservation(reservation);
        }
    }

    /// Releases an unclaimed reservation's quota; dropping it closes its socket.
    fn end_reservation(&self, reservation: Reservation) {
        self.shared.release(&reservation.quota_name, reservation.ip);
    }

    /// Releases what an ended allocation held: relayed sockets and quota.
    fn end(&mut self, allocation: Allocation) {
        for r in allocation.relayed {
            self.ports.close(self.sockets.as_mut(), r);
        }
        self.shared
            .release(&allocation.quota_name, allocation.client.ip());
        Counters::drop_one(&self.counters.allocations_active);
        Counters::bump(&self.counters.allocations_ended);
    }

    /// Handles a TURN request (Allocate, Refresh, CreatePermission, ChannelBind).
    pub fn handle_request(
        &mut self,
        now: Instant,
        local: SocketAddr,
        from: SocketAddr,
        request: &Message<'_>,
        out: &mut Vec<Transmit>,
    ) {
        self.handle_request_inner(now, (local, from), request, None, out);
    }

    /// Handles a packet that did not decode; returns whether it was a
    /// ChannelBind with an RFC 5766 channel number (see `legacy.rs`), handled.
    pub fn handle_undecodable(
        &mut self,
        now: Instant,
        local: SocketAddr,
        from: SocketAddr,
        packet: &[u8],
        out: &mut Vec<Transmit>,
    ) -> bool {
        let Some(bind) = legacy::LegacyBind::parse(packet) else {
            return false;
        };
        let Ok(request) = Message::decode(&bind.copy) else {
            return false;
        };
        let check = |key: &IntegrityKey| bind.verify(packet, key);
        let legacy = Legacy {
            channel: bind.channel,
            check: &check,
        };
        self.handle_request_inner(now, (local, from), &request, Some(legacy), out);
        true
    }

    fn handle_request_inner(
        &mut self,
        now: Instant,
        (local, from): (SocketAddr, SocketAddr),
        request: &Message<'_>,
        legacy: Option<Legacy<'_>>,
        out: &mut Vec<Transmit>,
    ) {
        self.handle_timeout(now);
        let now_unix = self.clock.unix(now);
        let raw_check = legacy.as_ref().map(|l| l.check);
        let user = match self.auth.authenticate(request, from, now_unix, raw_check) {
            Ok(user) => user,
            Err(rejection) => {
                let payload = self.rejection(request, from, now_unix, rejection);
                out.push(Transmit {
                    local,
                    destination: from,
                    payload,
                });
                return;
            }
        };
        let unknown: Vec<AttributeType> = request
            .unknown_comprehension_required()
            .iter()
            .copied()
            .take(16)
            .collect();
        let payload = if !unknown.is_empty() {
            let mut b = self.builder(request, Class::ErrorResponse);
            let _ = b.add(&Attribute::ErrorCode(ErrorCode::UNKNOWN_ATTRIBUTE));
            let _ = b.add(&Attribute::UnknownAttributes(unknown));
            self.sign(b, request, &user.key, user.sha256)
        } else {
            let ctx = Request {
                now,
                local,
                from,
                request,
                user: &user,
                channel: legacy.map(|l| l.channel),
            };
            match request.method() {
                Method::ALLOCATE => self.allocate(&ctx),
                Method::REFRESH => self.refresh(&ctx),
                Method::CREATE_PERMISSION => self.create_permission(&ctx),
                Method::CHANNEL_BIND => self.channel_bind(&ctx),
                _ => self.error(&ctx, 400, "Bad Request: unsupported method"),
            }
        };
        out.push(Transmit {
            local,
            destination: from,
            payload,
        });
    }

    /// 401 / 438 / 400 for a request that is not authenticated. Small on
    /// purpose: header, ERROR-CODE, REALM and a ≤ 41-byte NONCE, no SOFTWARE.
    fn rejection(
        &self,
        request: &Message<'_>,
        from: SocketAddr,
        now_unix: u64,
        rejection: Rejection,
    ) -> Vec<u8> {
        let error = match rejection {
            Rejection::Challenge => ErrorCode::new(401, "Unauthenticated"),
            Rejection::BadCredentials => {
                Counters::bump(&self.counters.auth_failures);
                tracing::debug!(%from, "bad credentials");
                ErrorCode::new(401, "Unauthenticated: check username and password")
            }
            Rejection::StaleNonce => {
                Counters::bump(&self.counters.stale_nonces);
                ErrorCode::STALE_NONCE
            }
            Rejection::MissingAttributes => ErrorCode::new(400, "Bad Request: missing attribute"),
        };
        let mut b = MessageBuilder::new(
            Class::ErrorResponse,
            request.method(),
            request.transaction_id(),
        );
        let _ = b.add(&Attribute::ErrorCode(error));
        if rejection != Rejection::MissingAttributes {
            let nonce = self.auth.nonce(now_unix, from);
            let _ = b.add(&Attribute::Realm(self.auth.realm()));
            let _ = b.add(&Attribute::Nonce(&nonce));
        }
        if request.has_fingerprint() {
            b.finish_with_fingerprint()
        } else {
            b.finish()
        }
    }

    fn builder(&self, request: &Message<'_>, class: Class) -> MessageBuilder {
        let mut b = MessageBuilder::new(class, request.method(), request.transaction_id());
        if let Some(software) = &self.software {
            let _ = b.add(&Attribute::Software(software));
        }
        b
    }

    /// Appends MESSAGE-INTEGRITY(-SHA256) like the request's, and FINGERPRINT
    /// when the request had one.
    fn sign(
        &self,
        mut b: MessageBuilder,
        request: &Message<'_>,
        key: &IntegrityKey,
        sha256: bool,
    ) -> Vec<u8> {
        if sha256 {
            b.add_integrity_sha256(key);
        } else {
            b.add_integrity(key);
        }
        if request.has_fingerprint() {
            b.finish_with_fingerprint()
        } else {
            b.finish()
        }
    }

    /// A signed error response.
    fn error(&self, ctx: &Request<'_, '_>, code: u16, reason: &str) -> Vec<u8> {
        let mut b = self.builder(ctx.request, Class::ErrorResponse);
        let _ = b.add(&Attribute::ErrorCode(ErrorCode::new(code, reason)));
        self.sign(b, ctx.request, &ctx.user.key, ctx.user.sha256)
    }

    /// A signed success response with `attributes`.
    fn success(&self, ctx: &Request<'_, '_>, attributes: &[Attribute<'_>]) -> Vec<u8> {
        let mut b = self.builder(ctx.request, Class::SuccessResponse);
        for a in attributes {
            let _ = b.add(a);
        }
        self.sign(b, ctx.request, &ctx.user.key, ctx.user.sha256)
    }
}

/// One authenticated request being handled.
pub(crate) struct Request<'a, 'm> {
    now: Instant,
    local: SocketAddr,
    from: SocketAddr,
    request: &'a Message<'m>,
    user: &'a Authenticated,
    /// The real CHANNEL-NUMBER of a ChannelBind decoded from a rewritten copy.
    channel: Option<u16>,
}

/// A ChannelBind with an RFC 5766 channel number: the number, and the
/// MESSAGE-INTEGRITY check over the bytes as received.
struct Legacy<'a> {
    channel: u16,
    check: &'a dyn Fn(&IntegrityKey) -> bool,
}

fn unix_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}
