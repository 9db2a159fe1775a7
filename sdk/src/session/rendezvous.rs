//! Connecting by [`PeerId`] through a rendezvous server (`tsunagi-relay`).
//!
//! [`Endpoint::listen_via`] registers this endpoint's identity with the server
//! using a `tsunagi1.` token, allocates a TURN relay on the same server with the
//! same token, and from then on answers offers; [`Rendezvous::connect`] (or
//! [`Endpoint::connect_via`]) sends an offer to a peer and connects QUIC once the
//! answer is in. Everything runs from the endpoint's one shared socket: the path
//! layer hands rendezvous messages (STUN methods 0x0C0/0x0C1) to this module and
//! the rest of the server's datagrams to the TURN client.
//!
//! On an IPv6-only network with NAT64, an IPv4 server is reached through its
//! synthesized address and the peer's IPv4 candidates get synthesized twins
//! (see `session::nat64`).
//!
//! Both sides run ICE ([`IceDriver`]): host candidates, the server-reflexive
//! address the rendezvous server saw, the relayed address, and a port-mapped
//! candidate when the router grants a PCP or NAT-PMP mapping of the shared
//! socket's IPv4 port (asked in the background; trickled when it arrives). Paths come in this
//! order: the relay path to the peer's relayed candidate at once (relay-first),
//! then every direct path a check proves; the path layer moves the session to the
//! best live one and reports [`super::Event::PathChanged`].

use std::fmt;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard, Weak};
use std::time::{Duration, Instant};

use tokio::sync::{Notify, mpsc};
use tracing::debug;

use super::signalling::{Applied, Local, Origin, Signalling, Trickle, random_u64};
use super::{ConnectInfo, Endpoint, PeerId, SessionError};
use crate::diag::portmap::PortmapOptions;
use crate::diag::portmap_udp::map_udp;
use crate::ice::host_addresses;
use crate::path::{PathEvent, PathEvents, PathHandle, PeerKey, ReceivedStun, canonical};
use crate::relay::{self, Credentials};
use crate::signal::{self, Role, Signal};

/// How long registration and the relay allocation may take.
const SETUP_TIMEOUT: Duration = Duration::from_secs(5);
/// First wait for an answer before the offer is sent again (then doubling).
const OFFER_RESEND: Duration = Duration::from_secs(1);
/// How long a port mapping (PCP / NAT-PMP) is asked for; deleted when the
/// endpoint goes.
const PORT_MAPPING_LIFETIME: Duration = Duration::from_secs(3600);
/// How long describing our NAT may take (three Binding requests; a server
/// without RFC 5780 answers the first and the description ends there).
const DESCRIBE_TIMEOUT: Duration = Duration::from_secs(2);

/// A registration with a rendezvous server: answers offers from other peers and
/// sends ours. Keep it as long as peers should be able to reach this endpoint;
/// dropping it stops signalling (connected sessions carry on).
#[derive(Clone)]
pub struct Rendezvous {
    inner: Arc<Inner>,
}

impl fmt::Debug for Rendezvous {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Rendezvous")
            .field("server", &self.inner.server)
            .finish_non_exhaustive()
    }
}

struct Inner {
    endpoint: Endpoint,
    server: SocketAddr,
    /// The endpoint's attempts (shared with blobs carried by the game).
    signalling: Arc<Signalling>,
    state: Mutex<State>,
    /// Wakes the signalling task (something to send).
    wake: Notify,
    /// Wakes waiters (registration, answers).
    changed: Notify,
}

struct State {
    client: signal::Client,
    mapped: Option<SocketAddr>,
    relayed: Vec<SocketAddr>,
    failure: Option<String>,
}

fn now() -> Instant {
    tokio::time::Instant::now().into_std()
}

impl Endpoint {
    /// Registers with the rendezvous server at `server` using `token` (a
    /// `tsunagi1.` token from the game backend, see `tsunagi token`), allocates
    /// a TURN relay there with the same token, and answers offers from then on.
    /// Fails if the server refuses the token or does not answer within 5 s.
    ///
    /// On an IPv6-only network with NAT64, an IPv4 `server` is reached through
    /// its synthesized IPv6 address (the prefix comes from the DNS64 server,
    /// RFC 7050); [`Rendezvous::server`] then returns that address.
    pub async fn listen_via(
        &self,
        server: SocketAddr,
        token: &str,
    ) -> Result<Rendezvous, SessionError> {
        Rendezvous::start(self.clone(), server, token).await
    }

    /// [`Endpoint::listen_via`], then [`Rendezvous::connect`] to `peer`. Keep
    /// the returned [`Rendezvous`] while the session should be able to upgrade.
    pub async fn connect_via(
        &self,
        server: SocketAddr,
        token: &str,
        peer: PeerId,
    ) -> Result<(Rendezvous, ConnectInfo), SessionError> {
        let rendezvous = self.listen_via(server, token).await?;
        let info = rendezvous.connect(peer).await?;
        Ok((rendezvous, info))
    }
}

impl Rendezvous {
    async fn start(
        endpoint: Endpoint,
        server: SocketAddr,
        token: &str,
    ) -> Result<Rendezvous, SessionError> {
        let creds = Credentials::from_token(token).map_err(|e| {
            SessionError::Rendezvous(format!(
                "the token is not usable ({e}): pass the string `tsunagi token` or the game backend printed"
            ))
        })?;
        let ipv6_only = !super::nat64::has_ipv4_route(match server {
            SocketAddr::V4(a) => Some(*a.ip()),
            SocketAddr::V6(_) => None,
        });
        let signalling = endpoint.shared().signalling();
        let server = match server {
            SocketAddr::V4(v4) if ipv6_only => {
                let prefix = super::nat64::discover_prefix().await;
                signalling.set_nat64(prefix);
                match prefix {
                    Some(prefix) => {
                        let via = super::nat64::synthesize(prefix, v4);
                        tracing::info!(%server, %via, "no IPv4 route: reaching the server through NAT64");
                        via
                    }
                    None => {
                        tracing::warn!(
                            %server,
                            "no IPv4 route to the server and no NAT64 prefix (RFC 7050): give the server's IPv6 address or a hostname"
                        );
                        server
                    }
                }
            }
            _ => server,
        };
        if ipv6_only && signalling.nat64().is_none() {
            // An IPv6 server on an IPv6-only network: NAT64 may still reach IPv4 peers.
            let weak = Arc::downgrade(&signalling);
            tokio::spawn(async move {
                let found = super::nat64::discover_prefix().await;
                if let Some(signalling) = weak.upgrade() {
                    signalling.set_nat64(found);
                }
            });
        }
        let paths = endpoint.path_handle().clone();
        let received = paths.rendezvous_receiver();
        let path_events = paths.subscribe();
        paths.add_relay(relay::Config::new(server, creds.clone()));
        // The registration must stay reachable while the lobby idles (the
        // relay on the same address is kept alive too; this covers a failed
        // allocation).
        paths.keep_alive(server);
        tokio::spawn(map_port(Arc::downgrade(&signalling), paths.clone(), server));
        let me = *endpoint.peer_id().public_key();
        let client = signal::Client::new(server, creds, me, now());
        let inner = Arc::new(Inner {
            endpoint,
            server,
            signalling,
            state: Mutex::new(State {
                client,
                mapped: None,
                relayed: Vec::new(),
                failure: None,
            }),
            wake: Notify::new(),
            changed: Notify::new(),
        });
        tokio::spawn(drive(Arc::downgrade(&inner), received, path_events));
        let rendezvous = Rendezvous { inner };
        rendezvous.wait_registered().await?;
        // Our NAT's mapping behaviour, for the peers' hard-NAT prediction; the
        // registration made the first mapping towards this server already.
        match rendezvous
            .inner
            .signalling
            .describe_nat(server, DESCRIBE_TIMEOUT)
            .await
        {
            Some(nat) => debug!(?nat, "NAT description for offers and answers"),
            None => debug!(%server, "NAT not described: offers carry no NAT description"),
        }
        match paths.wait_relay(server, SETUP_TIMEOUT).await {
            Ok(relayed) => rendezvous.inner.lock().relayed = relayed,
            Err(e) => {
                tracing::warn!(%server, error = %e, "no relay allocation: direct paths only");
            }
        }
        Ok(rendezvous)
    }

    async fn wait_registered(&self) -> Result<(), SessionError> {
        let deadline = tokio::time::Instant::now() + SETUP_TIMEOUT;
        loop {
            let notified = self.inner.changed.notified();
            {
                let state = self.inner.lock();
                if state.client.is_registered() {
                    return Ok(());
                }
                if let Some(f) = &state.failure {
                    return Err(SessionError::Rendezvous(f.clone()));
                }
            }
            if tokio::time::timeout_at(deadline, notified).await.is_err() {
                return Err(SessionError::Rendezvous(format!(
                    "no registration with {} within {SETUP_TIMEOUT:?}: is tsunagi-relay running there with --auth-secret, and is UDP to it allowed?",
                    self.inner.server
                )));
            }
        }
    }

    /// The rendezvous server (its NAT64-synthesized address on an IPv6-only
    /// network, see [`Endpoint::listen_via`]).
    pub fn server(&self) -> SocketAddr {
        self.inner.server
    }

    /// Our relayed addresses on the server (empty if the allocation failed).
    pub fn relayed(&self) -> Vec<SocketAddr> {
        self.inner.lock().relayed.clone()
    }

    /// Sends an offer to `peer` through the server, waits for its answer, and
    /// connects QUIC: over the relay first, then over whatever direct path ICE
    /// proves. Fails if the peer is not registered or does not answer within the
    /// endpoint's connect timeout.
    pub async fn connect(&self, peer: PeerId) -> Result<ConnectInfo, SessionError> {
        let inner = &self.inner;
        let timeout = inner.endpoint.shared().config.connect_timeout;
        let vaddr = inner
            .endpoint
            .path_handle()
            .add_peer(&PeerKey(*peer.public_key()));
        inner.signalling.start_agent(
            vaddr,
            peer,
            Role::Offer,
            random_u64(),
            &inner.local(),
            inner.origin(),
            Some(inner.trickle()),
        );
        let offer = inner.signalling.signal(vaddr)?;
        inner.send(peer, &offer)?;
        let deadline = tokio::time::Instant::now() + timeout;
        // The server forwards a signal once; a lost offer or answer is
        // recovered by offering again (the peer answers every repeat).
        let mut resend_after = OFFER_RESEND;
        loop {
            let resend_at = deadline.min(tokio::time::Instant::now() + resend_after);
            match inner.signalling.wait_answer(vaddr, resend_at).await {
                Ok(true) => break,
                Err(f) => return Err(SessionError::Rendezvous(f)),
                Ok(false) if tokio::time::Instant::now() < deadline => {
                    debug!(peer = %peer.short(), "no answer yet: offering again");
                    inner.send(peer, &inner.signalling.signal(vaddr)?)?;
                    resend_after *= 2;
                }
                Ok(false) => {
                    return Err(SessionError::Rendezvous(format!(
                        "{} did not answer through {} within {timeout:?}: is it running `listen` on the same server?",
                        peer.short(),
                        inner.server
                    )));
                }
            }
        }
        let paths = inner.signalling.remote_paths(vaddr, deadline).await;
        inner.endpoint.connect_paths(peer, &paths).await
    }
}

impl Inner {
    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Our server-reflexive address (as the server saw us) and relay allocation.
    fn local(&self) -> Local {
        let state = self.lock();
        let relays = if state.relayed.is_empty() {
            Vec::new()
        } else {
            vec![(self.server, state.relayed.clone())]
        };
        Local {
            mapped: state.mapped.into_iter().collect(),
            relays,
        }
    }

    fn origin(&self) -> Origin {
        Origin::Rendezvous(self.server)
    }

    /// Trickle updates go through the server (while this registration lives).
    fn trickle(self: &Arc<Self>) -> Trickle {
        let inner = Arc::downgrade(self);
        Arc::new(move |to: PeerId, blob: Vec<u8>| {
            if let Some(inner) = inner.upgrade() {
                inner.lock().client.send(now(), *to.public_key(), &blob);
                inner.wake.notify_one();
            }
        })
    }

    /// Sends an offer or answer to `to` through the server.
    fn send(&self, to: PeerId, signal: &Signal) -> Result<(), SessionError> {
        let blob = signal
            .to_blob()
            .map_err(|e| SessionError::Rendezvous(e.to_string()))?;
        self.lock().client.send(now(), *to.public_key(), &blob);
        self.wake.notify_one();
        Ok(())
    }

    /// A signal from `from` arrived through the server (which vouches for the
    /// sender: it checked the registration's token).
    fn on_signal(self: &Arc<Self>, from: [u8; 32], data: &[u8]) {
        let signal = match Signal::from_blob(data) {
            Ok(s) => s,
            Err(e) => {
                debug!(error = %e, "signal from the rendezvous server dropped");
                return;
            }
        };
        let peer = PeerId::from_public_key(from);
        let applied = self.signalling.apply(
            peer,
            &signal,
            &self.local(),
            self.origin(),
            Some(self.trickle()),
        );
        match applied {
            Ok(Applied::Answer(answer)) => {
                if let Err(e) = self.send(peer, &answer) {
                    debug!(peer = %peer.short(), error = %e, "answer not sent");
                }
            }
            // The offer again (our answer was lost) or a trickle update of it:
            // answer again, with every candidate so far.
            Ok(Applied::Update) if signal.role == Role::Offer => {
                let vaddr = self
                    .endpoint
                    .path_handle()
                    .add_peer(&PeerKey(*peer.public_key()));
                match self.signalling.signal(vaddr) {
                    Ok(answer) => {
                        if let Err(e) = self.send(peer, &answer) {
                            debug!(peer = %peer.short(), error = %e, "answer not sent again");
                        }
                    }
                    Err(e) => debug!(peer = %peer.short(), error = %e, "no answer to send again"),
                }
            }
            Ok(_) => {}
            Err(e) => debug!(peer = %peer.short(), error = %e, "signal not applied"),
        }
        self.changed.notify_waiters();
    }

    /// Runs the client: datagrams out, events in, timers.
    fn pump(self: &Arc<Self>, paths: &PathHandle) -> Option<Instant> {
        let mut signals = Vec::new();
        let deadline = {
            let mut state = self.lock();
            let now = now();
            if state.client.poll_timeout().is_some_and(|t| t <= now) {
                state.client.handle_timeout(now);
            }
            while let Some(t) = state.client.poll_transmit() {
                if let Err(e) = paths.send_to(t.to, &t.bytes) {
                    debug!(to = %t.to, error = %e, "rendezvous send failed; retried");
                }
            }
            while let Some(event) = state.client.poll_event() {
                match event {
                    signal::Event::Registered { mapped } => {
                        if let Some(m) = mapped {
                            paths.observed_mapping(self.server, m);
                            if self.signalling.nat64().is_some() && m.is_ipv4() {
                                self.signalling.set_translated(m);
                            }
                        }
                        state.mapped = mapped;
                        state.failure = None;
                    }
                    signal::Event::RegistrationFailed(reason) => state.failure = Some(reason),
                    signal::Event::Received { from, data } => signals.push((from, data)),
                    signal::Event::Delivered { .. } => {}
                    signal::Event::Undeliverable { to, reason } => {
                        self.signalling.fail_unanswered(to, self.origin(), &reason);
                    }
                }
            }
            state.client.poll_timeout()
        };
        self.changed.notify_waiters();
        for (from, data) in signals {
            self.on_signal(from, &data);
        }
        deadline
    }
}

/// Asks the router to forward the shared socket's IPv4 port (PCP, NAT-PMP)
/// and hands the mapping to `signalling` (a candidate for every agent). Only
/// from a private or shared (100.64/10) IPv4 address and toward a server that
/// is not on this machine.
async fn map_port(signalling: Weak<Signalling>, paths: PathHandle, server: SocketAddr) {
    let Some(base) = host_addresses(paths.local_addrs())
        .into_iter()
        .find(|a| a.is_ipv4() && !a.ip().is_loopback())
    else {
        return;
    };
    // Nobody to ask: a server on this machine (tests, local play) means no NAT
    // in between, and a public address means no NAT at all.
    let behind_nat = match base.ip() {
        std::net::IpAddr::V4(ip) => {
            ip.is_private() || (ip.octets()[0] == 100 && ip.octets()[1] & 0xc0 == 64)
        }
        std::net::IpAddr::V6(_) => false,
    };
    if server.ip().is_loopback() || !behind_nat {
        return;
    }
    let port = base.port();
    let options = PortmapOptions::default();
    let mapping =
        tokio::task::spawn_blocking(move || map_udp(port, PORT_MAPPING_LIFETIME, &options)).await;
    let Ok(Some(mapping)) = mapping else {
        debug!(port, "no port mapping from the router (PCP, NAT-PMP)");
        return;
    };
    match signalling.upgrade() {
        Some(s) => s.set_port_mapping(mapping),
        None => crate::diag::portmap_udp::unmap_udp(&mapping, Duration::from_millis(500)),
    }
}

/// The signalling task: ends when the [`Rendezvous`] is dropped.
async fn drive(
    inner: Weak<Inner>,
    mut received: mpsc::Receiver<ReceivedStun>,
    mut path_events: PathEvents,
) {
    loop {
        let Some(this) = inner.upgrade() else { return };
        let paths = this.endpoint.path_handle().clone();
        let deadline = this.pump(&paths);
        let sleep = deadline.map_or(Duration::from_secs(1), |t| {
            t.saturating_duration_since(now())
        });
        tokio::select! {
            r = received.recv() => match r {
                Some(r) => {
                    let mut state = this.lock();
                    if !state.client.handle_input(now(), r.from, &r.bytes) {
                        debug!(
                            from = %r.from,
                            len = r.bytes.len(),
                            decoded = ?crate::stun::Message::decode(&r.bytes).map(|m| (m.class(), m.method())),
                            "rendezvous message not for this client dropped"
                        );
                    }
                }
                None => return,
            },
            Some(e) = path_events.recv() => match e {
                PathEvent::MappingChanged { server, to, .. } if server == canonical(this.server) => {
                    tracing::info!(%server, mapped = %to, "registering again from the new mapping");
                    this.lock().client.renew(now());
                }
                // Made again (relay restart, new mapping): offer the new
                // relayed addresses from now on.
                PathEvent::RelayAllocated { server, relayed, .. } if server == canonical(this.server) => {
                    this.lock().relayed = relayed;
                }
                _ => {}
            },
            _ = this.wake.notified() => {}
            _ = tokio::time::sleep(sleep.min(Duration::from_secs(1))) => {}
        }
    }
}

impl super::PollEndpoint {
    /// [`Endpoint::listen_via`] for callers without async: blocks until the
    /// registration and the relay allocation are done (at most about 10 s).
    /// Call it from the game thread, never from async code.
    pub fn listen_via(&self, server: SocketAddr, token: &str) -> Result<Rendezvous, SessionError> {
        let endpoint = self.endpoint().clone();
        let token = token.to_owned();
        let (tx, rx) = tokio::sync::oneshot::channel();
        endpoint.shared().runtime.clone().spawn(async move {
            let _ = tx.send(endpoint.listen_via(server, &token).await);
        });
        rx.blocking_recv().map_err(|_| SessionError::Closed)?
    }

    /// Starts [`Rendezvous::connect`] to `peer` in the background; watch for
    /// [`super::Event::Connected`] or [`super::Event::ConnectFailed`].
    pub fn connect_via(&self, rendezvous: &Rendezvous, peer: PeerId) {
        let endpoint = self.endpoint().clone();
        let rendezvous = rendezvous.clone();
        endpoint.shared().runtime.clone().spawn(async move {
            if let Err(e) = rendezvous.connect(peer).await {
                endpoint.shared().emit(super::Event::ConnectFailed {
                    peer,
                    error: e.to_string(),
                });
            }
        });
    }
}
