//! The TURN client state machine: its public API, timers and requests.
//! Answers from the server are applied in `response.rs`.

use std::collections::{HashMap, VecDeque};
use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, Instant};

use super::config::{Config, RelayFamily};
use super::error::{Error, UseError};
pub(crate) use super::state::{Allocation, Auth, Channel, Permission, Phase};
use super::transaction::{Pending, Request, TidSource};
use super::{Event, Transmit};
use crate::stun::{
    AddressFamily, Attribute, AttributeType, ChannelData, Class, MessageBuilder, Method,
    TransactionId,
};

/// ADDITIONAL-ADDRESS-FAMILY and ADDRESS-ERROR-CODE as coturn numbers them
/// (draft-ietf-tram-turnbis; RFC 8656 assigned 0x8000 and 0x8001).
pub(crate) const DRAFT_ADDITIONAL_ADDRESS_FAMILY: AttributeType = AttributeType(0x8032);
pub(crate) const DRAFT_ADDRESS_ERROR_CODE: AttributeType = AttributeType(0x8033);
/// UDP, in REQUESTED-TRANSPORT.
const UDP: u8 = 17;
/// The most data one Send indication or ChannelData message carries here.
pub(crate) const MAX_DATA: usize = 65_000;
/// Data events kept for a caller that does not poll; later data is dropped.
pub(crate) const MAX_QUEUED_EVENTS: usize = 4096;

/// One TURN allocation on one server, as a sans-IO state machine (see the
/// [module docs](super)).
#[derive(Debug)]
pub struct Client {
    pub(crate) config: Config,
    tids: TidSource,
    pub(crate) phase: Phase,
    pub(crate) auth: Option<Auth>,
    pub(crate) allocation: Option<Allocation>,
    pub(crate) pending: HashMap<TransactionId, Pending>,
    pub(crate) permissions: HashMap<IpAddr, Permission>,
    pub(crate) channels: HashMap<u16, Channel>,
    pub(crate) channel_of: HashMap<SocketAddr, u16>,
    next_channel: u16,
    /// The additional family the server refused with 440, to report it.
    pub(crate) refused_family: Option<super::FamilyUnavailable>,
    /// Requests sent again for want of an answer.
    retransmits: u64,
    transmits: VecDeque<Transmit>,
    pub(crate) events: VecDeque<Event>,
}

impl Client {
    /// Starts allocating: the first Allocate request is ready in
    /// [`Client::poll_transmit`].
    pub fn new(config: Config, now: Instant) -> Client {
        Client::with_seed(config, now, TidSource::os_seed(now))
    }

    /// Like [`Client::new`], with transaction IDs derived from `seed` instead of
    /// the OS RNG: for deterministic tests and simulations only.
    pub fn with_seed(config: Config, now: Instant, seed: [u8; 32]) -> Client {
        let mut client = Client {
            config,
            tids: TidSource::new(seed),
            phase: Phase::Allocating,
            auth: None,
            allocation: None,
            pending: HashMap::new(),
            permissions: HashMap::new(),
            channels: HashMap::new(),
            channel_of: HashMap::new(),
            next_channel: *ChannelData::CHANNELS.start(),
            refused_family: None,
            retransmits: 0,
            transmits: VecDeque::new(),
            events: VecDeque::new(),
        };
        let dual = client.config.family == RelayFamily::Dual;
        client.send_request(now, Request::Allocate { dual }, 0);
        client
    }

    /// The TURN server's address: the only source [`Client::handle_input`] accepts.
    pub fn server(&self) -> SocketAddr {
        self.config.server
    }

    /// Whether the allocation is in place (sending is possible).
    pub fn is_allocated(&self) -> bool {
        self.phase == Phase::Allocated
    }

    /// Whether the client is done (failed, lost or released).
    pub fn is_closed(&self) -> bool {
        self.phase == Phase::Closed
    }

    /// The relayed addresses, once allocated.
    pub fn relayed_addresses(&self) -> &[SocketAddr] {
        self.allocation
            .as_ref()
            .map_or(&[], |a| a.relayed.as_slice())
    }

    /// Our address as the server saw it, once allocated.
    pub fn mapped_address(&self) -> Option<SocketAddr> {
        self.allocation.as_ref().and_then(|a| a.mapped)
    }

    /// The channel bound to `peer`, if the binding is confirmed.
    pub fn channel(&self, peer: SocketAddr) -> Option<u16> {
        let channel = *self.channel_of.get(&peer)?;
        self.channels.get(&channel)?.bound.then_some(channel)
    }

    /// How many requests were sent again because no answer came within the
    /// retransmission timeout: each cost at least 500 ms (RFC 8489's first RTO).
    /// More than zero means datagrams to or from the server were lost.
    pub fn retransmits(&self) -> u64 {
        self.retransmits
    }

    /// The next datagram to send, if any.
    pub fn poll_transmit(&mut self) -> Option<Transmit> {
        self.transmits.pop_front()
    }

    /// The next event, if any.
    pub fn poll_event(&mut self) -> Option<Event> {
        self.events.pop_front()
    }

    /// When [`Client::handle_timeout`] must next be called, if ever.
    pub fn poll_timeout(&self) -> Option<Instant> {
        let retransmits = self.pending.values().map(|p| p.next_at);
        let allocation = self
            .allocation
            .iter()
            .filter(|_| self.phase == Phase::Allocated)
            .flat_map(|a| [Some(a.expires_at), a.refresh_at])
            .flatten();
        let permissions = self.permissions.values().filter_map(|p| p.refresh_at);
        let channels = self.channels.values().filter_map(|c| c.refresh_at);
        retransmits
            .chain(allocation)
            .chain(permissions)
            .chain(channels)
            .min()
    }

    /// Retransmits, refreshes and expires whatever is due at `now`.
    pub fn handle_timeout(&mut self, now: Instant) {
        let expired = self
            .allocation
            .as_ref()
            .is_some_and(|a| a.expires_at <= now);
        if self.phase == Phase::Allocated && expired {
            tracing::warn!(server = %self.config.server, "TURN allocation expired");
            self.lose(Error::Expired);
            return;
        }
        let due: Vec<TransactionId> = self
            .pending
            .iter()
            .filter(|(_, p)| p.next_at <= now)
            .map(|(tid, _)| *tid)
            .collect();
        for tid in due {
            let retransmit = self.config.retransmit;
            let Some(pending) = self.pending.get_mut(&tid) else {
                continue;
            };
            if pending.on_timeout(now, &retransmit) {
                tracing::debug!(method = %pending.request.method(), try_no = pending.sent, "TURN retransmit");
                let bytes = pending.bytes.clone();
                self.retransmits += 1;
                self.queue(bytes);
            } else if let Some(pending) = self.pending.remove(&tid) {
                let reason = Error::Timeout {
                    server: self.config.server,
                    method: pending.request.method(),
                    transmissions: pending.sent,
                };
                self.fail_request(now, pending.request, reason);
            }
        }
        if self.phase != Phase::Allocated {
            return;
        }
        self.refresh_due(now);
    }

    fn refresh_due(&mut self, now: Instant) {
        let Some(allocation) = self.allocation.as_mut() else {
            return;
        };
        if allocation.refresh_at.is_some_and(|at| at <= now) {
            allocation.refresh_at = None;
            let lifetime = lifetime_secs(self.config.lifetime);
            self.send_request(now, Request::Refresh { lifetime }, 0);
        }
        let permissions: Vec<IpAddr> = self
            .permissions
            .iter()
            .filter(|(_, p)| p.refresh_at.is_some_and(|at| at <= now))
            .map(|(ip, _)| *ip)
            .collect();
        for peer in permissions {
            if let Some(p) = self.permissions.get_mut(&peer) {
                p.refresh_at = None;
            }
            self.send_request(now, Request::CreatePermission { peer }, 0);
        }
        let channels: Vec<(u16, SocketAddr)> = self
            .channels
            .iter()
            .filter(|(_, c)| c.refresh_at.is_some_and(|at| at <= now))
            .map(|(n, c)| (*n, c.peer))
            .collect();
        for (channel, peer) in channels {
            if let Some(c) = self.channels.get_mut(&channel) {
                c.refresh_at = None;
            }
            self.send_request(now, Request::ChannelBind { channel, peer }, 0);
        }
    }

    /// Asks the server to relay datagrams from `peer` (any port). Permissions are
    /// refreshed until the client closes; [`Client::send_to`] creates them too.
    pub fn create_permission(&mut self, now: Instant, peer: IpAddr) -> Result<(), UseError> {
        self.check_peer(SocketAddr::new(peer, 0))?;
        if let std::collections::hash_map::Entry::Vacant(entry) = self.permissions.entry(peer) {
            entry.insert(Permission {
                installed: false,
                refresh_at: None,
            });
            self.send_request(now, Request::CreatePermission { peer }, 0);
        }
        Ok(())
    }

    /// Binds a channel to `peer` (or returns the one already bound or binding).
    /// Until [`Event::ChannelBound`], [`Client::send_to`] uses Send indications.
    pub fn bind_channel(&mut self, now: Instant, peer: SocketAddr) -> Result<u16, UseError> {
        self.check_peer(peer)?;
        if let Some(channel) = self.channel_of.get(&peer) {
            return Ok(*channel);
        }
        // Numbers are never reused, so a late answer cannot confuse two peers
        // (RFC 8656 §12: a number stays tied to its peer until it expires).
        if !ChannelData::CHANNELS.contains(&self.next_channel) {
            return Err(UseError::ChannelsExhausted);
        }
        let channel = self.next_channel;
        self.next_channel += 1;
        self.channels.insert(
            channel,
            Channel {
                peer,
                bound: false,
                refresh_at: None,
            },
        );
        self.channel_of.insert(peer, channel);
        self.send_request(now, Request::ChannelBind { channel, peer }, 0);
        Ok(channel)
    }

    /// Sends `data` to `peer` through the relay: as ChannelData if a channel is
    /// bound, else as a Send indication, creating the permission first if needed.
    pub fn send_to(&mut self, now: Instant, peer: SocketAddr, data: &[u8]) -> Result<(), UseError> {
        self.check_peer(peer)?;
        if data.len() > MAX_DATA {
            return Err(UseError::DataTooLong { len: data.len() });
        }
        if let Some(channel) = self.channel(peer) {
            let mut bytes = Vec::with_capacity(4 + data.len());
            let framed = ChannelData { channel, data }.encode(false, &mut bytes);
            if framed.is_ok() {
                self.queue(bytes);
                return Ok(());
            }
        }
        self.create_permission(now, peer.ip())?;
        let tid = self.tids.next();
        let mut b = MessageBuilder::new(Class::Indication, Method::SEND, tid);
        let built = b
            .add(&Attribute::XorPeerAddress(peer))
            .and_then(|b| b.add(&Attribute::Data(data)));
        if built.is_err() {
            return Err(UseError::DataTooLong { len: data.len() });
        }
        self.queue(b.finish());
        Ok(())
    }

    /// Refreshes the allocation now instead of at the scheduled time (e.g. after
    /// the device woke up). Does nothing unless allocated or while a refresh is
    /// already in flight.
    pub fn refresh(&mut self, now: Instant) {
        let idle = self
            .allocation
            .as_ref()
            .is_some_and(|a| a.refresh_at.is_some());
        if self.phase == Phase::Allocated && idle {
            if let Some(a) = self.allocation.as_mut() {
                a.refresh_at = None;
            }
            let lifetime = lifetime_secs(self.config.lifetime);
            self.send_request(now, Request::Refresh { lifetime }, 0);
        }
    }

    /// Releases the allocation (Refresh with LIFETIME 0). [`Event::Released`]
    /// follows when the server confirms, or when it does not answer.
    pub fn release(&mut self, now: Instant) {
        match self.phase {
            Phase::Allocated => {
                self.phase = Phase::Releasing;
                self.pending.clear();
                self.permissions.clear();
                self.channels.clear();
                self.channel_of.clear();
                self.send_request(now, Request::Refresh { lifetime: 0 }, 0);
            }
            Phase::Allocating => {
                // The server may still allocate; it will expire on its own.
                self.close();
                self.events.push_back(Event::Released);
            }
            Phase::Releasing | Phase::Closed => {}
        }
    }

    fn check_peer(&self, peer: SocketAddr) -> Result<(), UseError> {
        if self.phase != Phase::Allocated {
            return Err(UseError::NotAllocated);
        }
        let family = AddressFamily::of(&peer);
        if !self
            .relayed_addresses()
            .iter()
            .any(|r| AddressFamily::of(r) == family)
        {
            return Err(UseError::NoRelayedAddressForFamily { peer, family });
        }
        Ok(())
    }

    pub(crate) fn queue(&mut self, bytes: Vec<u8>) {
        self.transmits.push_back(Transmit {
            to: self.config.server,
            bytes,
        });
    }

    /// Writes and sends a request, authenticated once the server gave a nonce.
    pub(crate) fn send_request(&mut self, now: Instant, request: Request, stale_nonces: u32) {
        let tid = self.tids.next();
        match self.build(tid, &request) {
            Ok(bytes) => {
                tracing::debug!(method = %request.method(), server = %self.config.server, "TURN request");
                let authenticated = self.auth.is_some();
                let retransmit = self.config.retransmit;
                let pending = Pending::first(
                    request,
                    bytes.clone(),
                    authenticated,
                    stale_nonces,
                    now,
                    &retransmit,
                );
                self.pending.insert(tid, pending);
                self.queue(bytes);
            }
            Err(source) => {
                let method = request.method();
                self.fail_request(now, request, Error::CannotEncode { method, source });
            }
        }
    }

    fn build(
        &self,
        tid: TransactionId,
        request: &Request,
    ) -> Result<Vec<u8>, crate::stun::EncodeError> {
        let mut b = MessageBuilder::new(Class::Request, request.method(), tid);
        match request {
            Request::Allocate { dual } => {
                b.add(&Attribute::RequestedTransport(UDP))?;
                if *dual {
                    b.add(&Attribute::AdditionalAddressFamily(AddressFamily::V6))?;
                    // coturn (4.6) implements the pre-RFC draft's code point; RFC
                    // servers ignore it, being comprehension-optional.
                    b.add(&Attribute::Unknown {
                        typ: DRAFT_ADDITIONAL_ADDRESS_FAMILY,
                        value: &[AddressFamily::V6.to_byte(), 0, 0, 0],
                    })?;
                } else if self.config.family == RelayFamily::V6 {
                    b.add(&Attribute::RequestedAddressFamily(AddressFamily::V6))?;
                }
                b.add(&Attribute::Lifetime(lifetime_secs(self.config.lifetime)))?;
            }
            Request::Refresh { lifetime } => {
                b.add(&Attribute::Lifetime(*lifetime))?;
            }
            Request::CreatePermission { peer } => {
                b.add(&Attribute::XorPeerAddress(SocketAddr::new(*peer, 0)))?;
            }
            Request::ChannelBind { channel, peer } => {
                b.add(&Attribute::ChannelNumber(*channel))?;
                b.add(&Attribute::XorPeerAddress(*peer))?;
            }
        }
        if let Some(software) = &self.config.software {
            b.add(&Attribute::Software(software))?;
        }
        if let Some(auth) = &self.auth {
            b.add(&Attribute::Username(&self.config.credentials.username))?;
            b.add(&Attribute::Realm(&auth.realm))?;
            b.add(&Attribute::Nonce(&auth.nonce))?;
            b.add_integrity(&auth.key);
        }
        Ok(b.finish())
    }

    /// A request failed for good: apply the consequences.
    pub(crate) fn fail_request(&mut self, now: Instant, request: Request, reason: Error) {
        tracing::info!(method = %request.method(), %reason, "TURN request failed");
        match request {
            Request::Allocate { .. } => {
                self.close();
                self.events.push_back(Event::Failed { reason });
            }
            Request::Refresh { lifetime: 0 } => {
                self.close();
                self.events.push_back(Event::Released);
            }
            Request::Refresh { .. } => {
                let expires_at = self.allocation.as_ref().map(|a| a.expires_at);
                match (&reason, expires_at) {
                    // Try again at once while the allocation lasts; expiry ends it.
                    (Error::Timeout { .. }, Some(at)) if now < at => {
                        if let Some(a) = self.allocation.as_mut() {
                            a.refresh_at = Some(now);
                        }
                    }
                    _ => self.lose(reason),
                }
            }
            Request::CreatePermission { peer } => {
                if self.permissions.remove(&peer).is_some() {
                    self.events
                        .push_back(Event::PermissionFailed { peer, reason });
                }
            }
            Request::ChannelBind { channel, peer } => {
                if self.channels.remove(&channel).is_some() {
                    self.channel_of.remove(&peer);
                    self.events
                        .push_back(Event::ChannelBindFailed { peer, reason });
                }
            }
        }
    }

    /// The allocation is gone.
    pub(crate) fn lose(&mut self, reason: Error) {
        self.close();
        self.events.push_back(Event::AllocationLost { reason });
    }

    pub(crate) fn close(&mut self) {
        self.phase = Phase::Closed;
        self.allocation = None;
        self.pending.clear();
        self.permissions.clear();
        self.channels.clear();
        self.channel_of.clear();
    }

    /// Queues an event carrying relayed data, unless the caller stopped polling.
    pub(crate) fn push_data(&mut self, peer: SocketAddr, data: &[u8]) {
        if self.events.len() >= MAX_QUEUED_EVENTS {
            tracing::debug!(%peer, "TURN event queue full; relayed datagram dropped");
            return;
        }
        self.events.push_back(Event::Data {
            peer,
            bytes: data.to_vec(),
        });
    }
}

/// A lifetime in whole seconds for LIFETIME.
pub(crate) fn lifetime_secs(lifetime: Duration) -> u32 {
    u32::try_from(lifetime.as_secs()).unwrap_or(u32::MAX)
}
