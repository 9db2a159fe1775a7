//! The sans-IO server core: datagrams in, datagrams out, a dispatcher by method.

use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use tsunagi::stun::{
    Attribute, Class, DecodeError, ErrorCode, Header, Message, MessageBuilder, Method, PacketKind,
    classify,
};

use crate::binding;
use crate::counters::Counters;
use crate::datagrams::Datagrams;
use crate::rendezvous::Rendezvous;
use crate::shared::Shared;
use crate::turn::ports::{RelaySockets, VirtualSockets};
use crate::turn::{Turn, TurnConfig};

/// One datagram to send.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Transmit {
    /// The local socket to send from: one of the addresses the server listens on,
    /// or a relayed address (a socket opened through [`RelaySockets`]).
    pub local: SocketAddr,
    /// Where to send it.
    pub destination: SocketAddr,
    /// The datagram.
    pub payload: Vec<u8>,
}

/// Why an RFC 5780 address pair cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Rfc5780Error {
    /// One address is IPv4 and the other IPv6.
    #[error("primary {primary} and alternate {alternate} must be of the same address family")]
    MixedFamilies {
        /// The primary address.
        primary: SocketAddr,
        /// The alternate address.
        alternate: SocketAddr,
    },
    /// Both addresses have the same IP (RFC 5780 needs two IPs).
    #[error("the alternate address needs a different IP than the primary ({0})")]
    SameIp(IpAddr),
    /// Both addresses have the same port (RFC 5780 needs two ports).
    #[error("the alternate address needs a different port than the primary ({0})")]
    SamePort(u16),
    /// A wildcard IP or port 0: responses must come from known, specific addresses.
    #[error("{0} is not a specific address; RFC 5780 needs specific IPs and ports")]
    NotSpecific(SocketAddr),
}

/// The two IPs and two ports of an RFC 5780 server. It listens on all four
/// combinations and answers CHANGE-REQUEST from the matching one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rfc5780Addresses {
    primary: SocketAddr,
    alternate: SocketAddr,
}

impl Rfc5780Addresses {
    /// The primary and alternate addresses (specific IPs, non-zero ports, one family).
    pub fn new(primary: SocketAddr, alternate: SocketAddr) -> Result<Self, Rfc5780Error> {
        if primary.is_ipv4() != alternate.is_ipv4() {
            return Err(Rfc5780Error::MixedFamilies { primary, alternate });
        }
        for a in [primary, alternate] {
            if a.ip().is_unspecified() || a.port() == 0 {
                return Err(Rfc5780Error::NotSpecific(a));
            }
        }
        if primary.ip() == alternate.ip() {
            return Err(Rfc5780Error::SameIp(primary.ip()));
        }
        if primary.port() == alternate.port() {
            return Err(Rfc5780Error::SamePort(primary.port()));
        }
        Ok(Rfc5780Addresses { primary, alternate })
    }

    /// The primary address.
    pub fn primary(&self) -> SocketAddr {
        self.primary
    }

    /// The alternate address.
    pub fn alternate(&self) -> SocketAddr {
        self.alternate
    }

    /// The four addresses to listen on: primary IP with primary and alternate
    /// port, then alternate IP with both.
    pub fn socket_addresses(&self) -> [SocketAddr; 4] {
        let (pi, ai) = (self.primary.ip(), self.alternate.ip());
        let (pp, ap) = (self.primary.port(), self.alternate.port());
        [
            SocketAddr::new(pi, pp),
            SocketAddr::new(pi, ap),
            SocketAddr::new(ai, pp),
            SocketAddr::new(ai, ap),
        ]
    }

    /// Whether `local` is one of the four addresses.
    pub fn contains(&self, local: SocketAddr) -> bool {
        self.socket_addresses().contains(&local)
    }

    /// The address that differs from `local` in IP if `change_ip` and in port if
    /// `change_port`; `None` if `local` is not one of the four.
    pub fn changed(
        &self,
        local: SocketAddr,
        change_ip: bool,
        change_port: bool,
    ) -> Option<SocketAddr> {
        if !self.contains(local) {
            return None;
        }
        let other_ip = if local.ip() == self.primary.ip() {
            self.alternate.ip()
        } else {
            self.primary.ip()
        };
        let other_port = if local.port() == self.primary.port() {
            self.alternate.port()
        } else {
            self.primary.port()
        };
        Some(SocketAddr::new(
            if change_ip { other_ip } else { local.ip() },
            if change_port {
                other_port
            } else {
                local.port()
            },
        ))
    }

    /// OTHER-ADDRESS for a request received on `local`: the other IP and other port.
    pub fn other(&self, local: SocketAddr) -> Option<SocketAddr> {
        self.changed(local, true, true)
    }
}

/// What the server does.
#[derive(Debug, Clone, Default)]
pub struct ServerConfig {
    /// SOFTWARE to put in responses; `None` keeps responses small (no amplification).
    pub software: Option<String>,
    /// The RFC 5780 address set, when the server has a second IP and port.
    pub rfc5780: Option<Rfc5780Addresses>,
}

/// The server: feed it datagrams with [`Server::handle`] (from clients) and
/// [`Server::handle_relayed`] (from peers, on relayed sockets), and the time
/// with [`Server::handle_timeout`] by [`Server::poll_timeout`].
///
/// # For drivers
///
/// A driver owns the sockets: the listening ones, and the relayed ones the core
/// opens and closes through the [`RelaySockets`] given to
/// [`Server::with_turn`]. Each call appends [`Transmit`]s to send; a
/// transmit's `local` names the socket to send from. The core keeps no thread,
/// timer or socket, so several driver threads may share it behind a mutex, or a
/// driver may shard clients over several cores by 5-tuple as long as each
/// relayed address maps back to the shard that owns its allocation. Shards
/// built with one [`Shared`] share quotas, nonces and RESERVATION-TOKENs; a
/// reserved port's socket goes to the shard that claims it
/// ([`RelaySockets::adopt`]).
#[derive(Debug)]
pub struct Server {
    config: ServerConfig,
    turn: Option<Turn>,
    counters: Arc<Counters>,
    /// The rendezvous service, shared by every worker (signalling is rare, so a
    /// mutex costs nothing on the relaying path).
    rendezvous: Option<Arc<Mutex<Rendezvous>>>,
}

impl Server {
    /// A STUN-only server (Binding, RFC 5780) with this configuration.
    pub fn new(config: ServerConfig) -> Server {
        Server {
            config,
            turn: None,
            counters: Arc::new(Counters::default()),
            rendezvous: None,
        }
    }

    /// A server that also serves TURN. Its relayed sockets are opened and closed
    /// by `sockets` ([`VirtualSockets`] for tests). Servers built with clones
    /// of one `shared` share quotas, the nonce key and counters.
    pub fn with_turn(
        config: ServerConfig,
        turn: TurnConfig,
        sockets: Box<dyn RelaySockets>,
        shared: &Shared,
    ) -> Server {
        let turn = Turn::new(turn, sockets, shared.clone(), config.software.clone());
        Server {
            config,
            turn: Some(turn),
            counters: shared.counters(),
            rendezvous: None,
        }
    }

    /// A TURN server on [`VirtualSockets`] with its own [`Shared`]: the sans-IO
    /// core alone, for tests and simulations.
    pub fn with_virtual_turn(config: ServerConfig, turn: TurnConfig) -> Server {
        let sockets = Box::new(VirtualSockets::default());
        Server::with_turn(config, turn, sockets, &Shared::new())
    }

    /// Adds the rendezvous service (peer registration and offer/answer passing);
    /// give every worker's server the same `Arc`.
    pub fn with_rendezvous(mut self, rendezvous: Arc<Mutex<Rendezvous>>) -> Server {
        self.rendezvous = Some(rendezvous);
        self
    }

    /// The counters, shared: keep the `Arc` and read it from any thread.
    pub fn counters(&self) -> Arc<Counters> {
        Arc::clone(&self.counters)
    }

    /// Ties the clock to wall time: `at` is `unix_secs` seconds after the Unix
    /// epoch. REST credential expiry and nonces use it. Set at construction from
    /// the system clock; tests set it to stay deterministic.
    pub fn set_clock(&mut self, at: Instant, unix_secs: u64) {
        if let Some(turn) = &mut self.turn {
            turn.clock.instant = at;
            turn.clock.unix = unix_secs;
        }
    }

    /// When [`Server::handle_timeout`] should be called next (an allocation
    /// expires), if ever.
    pub fn poll_timeout(&self) -> Option<Instant> {
        self.turn.as_ref().and_then(Turn::poll_timeout)
    }

    /// Ends what expired at `now` (allocations, and with them their relayed
    /// sockets). Calling it late is harmless: expired allocations relay nothing.
    pub fn handle_timeout(&mut self, now: Instant) {
        if let Some(turn) = &mut self.turn {
            turn.handle_timeout(now);
        }
        if let Some(rv) = &self.rendezvous {
            rv.lock()
                .unwrap_or_else(|p| p.into_inner())
                .handle_timeout(now);
        }
    }

    /// Handles one datagram that `peer` sent to the relayed address `relayed`.
    pub fn handle_relayed(
        &mut self,
        now: Instant,
        relayed: SocketAddr,
        peer: SocketAddr,
        packet: &[u8],
        out: &mut Vec<Transmit>,
    ) {
        let mut data = Datagrams::default();
        self.handle_peer_data(now, relayed, peer, packet, &mut data);
        self.flush_counters();
        data.drain_into(out);
    }

    /// [`Server::handle_relayed`] for drivers: appends the ChannelData or Data
    /// indication for the client to `out` with no allocation per datagram.
    pub fn handle_peer_data(
        &mut self,
        now: Instant,
        relayed: SocketAddr,
        peer: SocketAddr,
        packet: &[u8],
        out: &mut Datagrams,
    ) {
        if let Some(turn) = &mut self.turn {
            turn.handle_relayed(now, relayed, peer, packet, out);
        }
    }

    /// The data path from clients, for drivers: if `packet` (received on the
    /// listening address `local` from `from`) is ChannelData or a Send
    /// indication, relays it (appending to `out`, no allocation per datagram)
    /// or drops it, and returns `true`. Returns `false`, having done nothing,
    /// for anything else: pass that to [`Server::handle_at`].
    pub fn handle_client_data(
        &mut self,
        now: Instant,
        local: SocketAddr,
        from: SocketAddr,
        packet: &[u8],
        out: &mut Datagrams,
    ) -> bool {
        let Some(turn) = &mut self.turn else {
            return false;
        };
        match classify(packet) {
            PacketKind::ChannelData => turn.handle_channel_data(now, local, from, packet, out),
            // RFC 5766 channels 0x5000-0x7FFF (coturn's clients use them).
            PacketKind::Quic if matches!(packet.first(), Some(0x50..=0x7F)) => {
                turn.handle_channel_data(now, local, from, packet, out);
            }
            // A Send indication (method 0x006, class indication) that decodes;
            // anything else, malformed ones included, takes the general path.
            PacketKind::Stun if packet.get(..2) == Some(&[0x00, 0x16]) => {
                return turn.handle_send_bytes(now, local, from, packet, out);
            }
            _ => return false,
        }
        true
    }

    /// Adds the data path's counts to [`Server::counters`]. The data path
    /// ([`Server::handle_client_data`], [`Server::handle_peer_data`]) counts
    /// in plain integers so it touches no shared cache line per datagram;
    /// drivers call this once per batch. [`Server::handle_at`] and
    /// [`Server::handle_relayed`] call it themselves.
    pub fn flush_counters(&mut self) {
        if let Some(turn) = &mut self.turn {
            turn.publish_counters();
        }
    }

    /// The configuration.
    pub fn config(&self) -> &ServerConfig {
        &self.config
    }

    /// [`Server::handle_at`] with the time read from the system clock.
    pub fn handle(
        &mut self,
        local: SocketAddr,
        from: SocketAddr,
        packet: &[u8],
        out: &mut Vec<Transmit>,
    ) {
        self.handle_at(Instant::now(), local, from, packet, out);
    }

    /// Handles one datagram received on the listening address `local` from
    /// `from` at `now`; appends what to send to `out`. Never panics, whatever
    /// `packet` holds.
    pub fn handle_at(
        &mut self,
        now: Instant,
        local: SocketAddr,
        from: SocketAddr,
        packet: &[u8],
        out: &mut Vec<Transmit>,
    ) {
        let mut data = Datagrams::default();
        if self.handle_client_data(now, local, from, packet, &mut data) {
            self.flush_counters();
            data.drain_into(out);
            return;
        }
        match classify(packet) {
            PacketKind::Stun => self.handle_stun(now, local, from, packet, out),
            _ => {
                Counters::bump(&self.counters.malformed);
                tracing::trace!(%from, len = packet.len(), "dropping datagram that is not ours");
            }
        }
        self.flush_counters();
    }

    fn handle_stun(
        &mut self,
        now: Instant,
        local: SocketAddr,
        from: SocketAddr,
        packet: &[u8],
        out: &mut Vec<Transmit>,
    ) {
        let message = match Message::decode(packet) {
            Ok(message) => message,
            Err(error) => {
                if let Some(turn) = &mut self.turn
                    && turn.handle_undecodable(now, local, from, packet, out)
                {
                    return;
                }
                Counters::bump(&self.counters.malformed);
                self.reject_malformed(local, from, packet, &error, out);
                return;
            }
        };
        if message.has_fingerprint() && message.verify_fingerprint().is_err() {
            // RFC 8489 §7.3: a bad FINGERPRINT means it is not STUN; drop silently.
            tracing::debug!(%from, "dropping message with a bad FINGERPRINT");
            return;
        }
        // The dispatcher: one arm per method.
        match (message.class(), message.method(), &mut self.turn) {
            (Class::Request, Method::BINDING, _) => {
                binding::handle(&self.config, local, from, &message, out);
            }
            (
                Class::Request,
                Method::ALLOCATE
                | Method::REFRESH
                | Method::CREATE_PERMISSION
                | Method::CHANNEL_BIND,
                Some(turn),
            ) => turn.handle_request(now, local, from, &message, out),
            (Class::Request, method, _)
                if (method == Method::RENDEZVOUS_REGISTER
                    || method == Method::RENDEZVOUS_SIGNAL)
                    && self.rendezvous.is_some() =>
            {
                if let Some(rv) = &self.rendezvous {
                    let unix = SystemTime::now()
                        .duration_since(UNIX_EPOCH)
                        .map_or(0, |d| d.as_secs());
                    let mut rv = rv.lock().unwrap_or_else(|p| p.into_inner());
                    rv.handle(now, unix, local, from, &message, out);
                }
            }
            (Class::Indication, Method::SEND, Some(turn)) => {
                let mut data = Datagrams::default();
                turn.handle_send(now, local, from, &message, &mut data);
                data.drain_into(out);
            }
            (Class::Request, method, _) => {
                tracing::debug!(%from, %method, "request for a method this server does not serve");
                let error = ErrorCode::new(400, "Unsupported method");
                out.push(self.error_response(local, from, &message, error, &[]));
            }
            // Binding indications are keepalives; responses are not for a server.
            _ => {}
        }
    }

    /// Answers 400 when the header is a valid request's but its attributes are
    /// not; drops anything whose header is broken (it may not be STUN at all).
    fn reject_malformed(
        &self,
        local: SocketAddr,
        from: SocketAddr,
        packet: &[u8],
        error: &DecodeError,
        out: &mut Vec<Transmit>,
    ) {
        let Ok(header) = Header::decode(packet) else {
            tracing::trace!(%from, %error, "dropping datagram that is not STUN");
            return;
        };
        tracing::debug!(%from, %error, "malformed STUN message");
        if header.class != Class::Request {
            return;
        }
        let mut response =
            MessageBuilder::new(Class::ErrorResponse, header.method, header.transaction_id);
        let reason = ErrorCode::new(400, "Bad Request: malformed attribute");
        if response.add(&Attribute::ErrorCode(reason)).is_ok() {
            self.add_software(&mut response);
            out.push(Transmit {
                local,
                destination: from,
                payload: response.finish(),
            });
        }
    }

    /// An error response to `request`, with UNKNOWN-ATTRIBUTES when `unknown` is
    /// not empty, and FINGERPRINT when the request had one.
    pub(crate) fn error_response(
        &self,
        local: SocketAddr,
        from: SocketAddr,
        request: &Message<'_>,
        error: ErrorCode<'_>,
        unknown: &[tsunagi::stun::AttributeType],
    ) -> Transmit {
        error_response(&self.config, local, from, request, error, unknown)
    }

    fn add_software(&self, builder: &mut MessageBuilder) {
        add_software(&self.config, builder);
    }
}

/// Adds SOFTWARE if configured; a too-long value is skipped, not fatal.
pub(crate) fn add_software(config: &ServerConfig, builder: &mut MessageBuilder) {
    if let Some(software) = &config.software
        && builder.add(&Attribute::Software(software)).is_err()
    {
        tracing::warn!("SOFTWARE value too long; sending responses without it");
    }
}

/// Builds an error response (see [`Server::error_response`]).
pub(crate) fn error_response(
    config: &ServerConfig,
    local: SocketAddr,
    from: SocketAddr,
    request: &Message<'_>,
    error: ErrorCode<'_>,
    unknown: &[tsunagi::stun::AttributeType],
) -> Transmit {
    let mut response = MessageBuilder::new(
        Class::ErrorResponse,
        request.method(),
        request.transaction_id(),
    );
    // Both adds are within every limit (reason < 763 bytes, a few types).
    let _ = response.add(&Attribute::ErrorCode(error));
    if !unknown.is_empty() {
        let _ = response.add(&Attribute::UnknownAttributes(unknown.to_vec()));
    }
    add_software(config, &mut response);
    let payload = if request.has_fingerprint() {
        response.finish_with_fingerprint()
    } else {
        response.finish()
    };
    Transmit {
        local,
        destination: from,
        payload,
    }
}
