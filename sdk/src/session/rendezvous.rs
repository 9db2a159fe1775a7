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

use std::collections::HashMap;
use std::fmt;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard, Weak};
use std::time::{Duration, Instant};

use tokio::sync::{Notify, mpsc};
use tracing::debug;

use super::{ConnectInfo, Endpoint, PeerId, SessionError};
use crate::diag::nat64::Nat64Prefix;
use crate::diag::portmap::PortmapOptions;
use crate::diag::portmap_udp::{UdpMapping, map_udp, unmap_udp};
use crate::ice::{IceConfig, IceDriver, IceEvent, host_addresses};
use crate::path::{PathAddr, PathHandle, PeerKey, ReceivedStun};
use crate::relay::{self, Credentials};
use crate::signal::{self, CandidateKind, Role, Signal};

/// How long registration and the relay allocation may take.
const SETUP_TIMEOUT: Duration = Duration::from_secs(5);
/// First wait for an answer before the offer is sent again (then doubling).
const OFFER_RESEND: Duration = Duration::from_secs(1);
/// How long a port mapping (PCP / NAT-PMP) is asked for; deleted when the
/// [`Rendezvous`] goes.
const PORT_MAPPING_LIFETIME: Duration = Duration::from_secs(3600);

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
    ice: IceDriver,
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
    /// A router port mapping: (external, base), and what deletes it.
    port_mapped: Option<(SocketAddr, SocketAddr, UdpMapping)>,
    /// The NAT64 prefix of an IPv6-only network: peers' IPv4 candidates get
    /// synthesized twins.
    nat64: Option<Nat64Prefix>,
    failure: Option<String>,
    peers: HashMap<SocketAddr, Attempt>,
}

impl Drop for State {
    fn drop(&mut self) {
        if let Some((_, _, mapping)) = self.port_mapped.take() {
            // Best effort and off the async runtime; unanswered, it expires.
            let _ = std::thread::Builder::new()
                .name("tsunagi-unmap".into())
                .spawn(move || unmap_udp(&mapping, Duration::from_millis(500)));
        }
    }
}

/// One peer's connection attempt, keyed by its virtual address.
struct Attempt {
    peer: PeerId,
    role: Role,
    attempt: u64,
    answered: bool,
    failed: Option<String>,
}

fn now() -> Instant {
    tokio::time::Instant::now().into_std()
}

fn random_u64() -> u64 {
    let mut b = [0u8; 8];
    // A predictable value only makes attempts guessable, never wrong.
    let _ = getrandom::fill(&mut b);
    u64::from_le_bytes(b)
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
        let mut nat64 = None;
        let server = match server {
            SocketAddr::V4(v4) if ipv6_only => {
                nat64 = super::nat64::discover_prefix().await;
                match nat64 {
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
        let paths = endpoint.path_handle().clone();
        let received = paths.rendezvous_receiver();
        paths.add_relay(relay::Config::new(server, creds.clone()));
        let ice = IceDriver::start(paths.clone());
        let me = *endpoint.peer_id().public_key();
        let client = signal::Client::new(server, creds, me, now());
        let inner = Arc::new(Inner {
            endpoint,
            server,
            ice,
            state: Mutex::new(State {
                client,
                mapped: None,
                relayed: Vec::new(),
                port_mapped: None,
                nat64,
                failure: None,
                peers: HashMap::new(),
            }),
            wake: Notify::new(),
            changed: Notify::new(),
        });
        tokio::spawn(drive(Arc::downgrade(&inner), received));
        tokio::spawn(map_port(Arc::downgrade(&inner)));
        if ipv6_only && nat64.is_none() {
            // An IPv6 server on an IPv6-only network: NAT64 may still reach IPv4 peers.
            let weak = Arc::downgrade(&inner);
            tokio::spawn(async move {
                let found = super::nat64::discover_prefix().await;
                if let Some(this) = weak.upgrade() {
                    this.lock().nat64 = found;
                }
            });
        }
        let rendezvous = Rendezvous { inner };
        rendezvous.wait_registered().await?;
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
        let attempt = random_u64();
        inner.start_agent(vaddr, peer, Role::Offer, attempt, true);
        inner.send_signal(vaddr)?;
        let deadline = tokio::time::Instant::now() + timeout;
        // The server forwards a signal once; a lost offer or answer is
        // recovered by offering again (the peer answers every repeat).
        let mut resend_after = OFFER_RESEND;
        let mut resend_at = tokio::time::Instant::now() + resend_after;
        let answer = loop {
            let notified = inner.changed.notified();
            let answered = match inner.lock().peers.get(&vaddr) {
                Some(a) => {
                    if let Some(f) = &a.failed {
                        return Err(SessionError::Rendezvous(f.clone()));
                    }
                    a.answered
                }
                None => false,
            };
            // A trickle update of the answer can overtake the answer itself
            // (both are signals of role Answer): wait until something is
            // dialable — the relay path from the answer's relayed candidate, or
            // a direct path a check proved (those do not notify, so re-check).
            if answered {
                let paths = inner.remote_paths(vaddr);
                if !paths.is_empty() {
                    break paths;
                }
            }
            let now_t = tokio::time::Instant::now();
            if !answered && now_t >= resend_at {
                debug!(peer = %peer.short(), "no answer yet: offering again");
                inner.send_signal(vaddr)?;
                resend_after *= 2;
                resend_at = now_t + resend_after;
            }
            let wake = if answered {
                deadline.min(now_t + Duration::from_millis(50))
            } else {
                deadline.min(resend_at)
            };
            if tokio::time::timeout_at(wake, notified).await.is_err()
                && tokio::time::Instant::now() >= deadline
            {
                return Err(SessionError::Rendezvous(if answered {
                    format!(
                        "{} answered through {} but no path to it worked within {timeout:?}: neither side got a relay allocation there and no direct check succeeded",
                        peer.short(),
                        inner.server
                    )
                } else {
                    format!(
                        "{} did not answer through {} within {timeout:?}: is it running `listen` on the same server?",
                        peer.short(),
                        inner.server
                    )
                }));
            }
        };
        inner.endpoint.connect_paths(peer, &answer).await
    }
}

impl Inner {
    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// A new ICE agent for `vaddr` with our server-reflexive and relayed candidates.
    fn start_agent(&self, vaddr: SocketAddr, peer: PeerId, role: Role, attempt: u64, ctl: bool) {
        let mut agent = self.ice.new_agent(IceConfig::default(), ctl, random_u64());
        let paths = self.endpoint.path_handle();
        let mut state = self.lock();
        if let Some(mapped) = state.mapped {
            let base = host_addresses(paths.local_addrs())
                .into_iter()
                .find(|b| b.is_ipv4() == mapped.is_ipv4());
            if let Some(base) = base
                && base != mapped
                && let Err(e) = agent.add_server_reflexive(mapped, base)
            {
                debug!(%mapped, error = %e, "server-reflexive candidate not added");
            }
        }
        for relayed in &state.relayed {
            if let Err(e) = agent.add_relayed(self.server, *relayed) {
                debug!(%relayed, error = %e, "relayed candidate not added");
            }
        }
        if let Some((external, base, _)) = state.port_mapped
            && let Err(e) = agent.add_port_mapped(external, base)
        {
            debug!(%external, error = %e, "port-mapped candidate not added");
        }
        self.ice.add_peer(vaddr, agent);
        state.peers.insert(
            vaddr,
            Attempt {
                peer,
                role,
                attempt,
                answered: false,
                failed: None,
            },
        );
    }

    /// Sends our offer or answer (all candidates so far) to the peer at `vaddr`.
    fn send_signal(&self, vaddr: SocketAddr) -> Result<(), SessionError> {
        let me = *self.endpoint.peer_id().public_key();
        let mut state = self.lock();
        let a = state
            .peers
            .get(&vaddr)
            .ok_or_else(|| SessionError::Rendezvous("no attempt for this peer".into()))?;
        let (to, role, attempt) = (*a.peer.public_key(), a.role, a.attempt);
        let mut signal = self
            .ice
            .signal(vaddr, role, me, attempt)
            .ok_or_else(|| SessionError::Rendezvous("no ICE agent for this peer".into()))?;
        if let (Some(_), Some(mapped)) = (state.nat64, state.mapped) {
            signal
                .candidates
                .extend(super::nat64::translated_candidate(mapped));
        }
        let blob = signal
            .to_blob()
            .map_err(|e| SessionError::Rendezvous(e.to_string()))?;
        state.client.send(now(), to, &blob);
        drop(state);
        self.wake.notify_one();
        Ok(())
    }

    /// Relay paths to the peer's relayed candidates (relay-first); direct paths
    /// are added by ICE as its checks succeed.
    fn add_relay_paths(&self, peer: PeerId, signal: &Signal) {
        let relay_paths: Vec<PathAddr> = signal
            .candidates
            .iter()
            .filter(|c| c.kind == CandidateKind::Relayed)
            .filter(|c| {
                self.lock()
                    .relayed
                    .iter()
                    .any(|r| r.is_ipv4() == c.addr.is_ipv4())
            })
            .map(|c| PathAddr::Relay {
                server: self.server,
                peer: c.addr,
            })
            .collect();
        if let Err(e) = self.endpoint.add_paths(peer, &relay_paths) {
            debug!(peer = %peer.short(), error = %e, "relay path not added");
        }
    }

    /// What to dial once the answer is in: the relay paths, or failing those the
    /// peer's candidates as direct paths.
    fn remote_paths(&self, vaddr: SocketAddr) -> Vec<PathAddr> {
        let paths = self.endpoint.path_handle();
        let known: Vec<PathAddr> = paths
            .stats(vaddr)
            .map(|s| s.paths.iter().map(|p| p.path).collect())
            .unwrap_or_default();
        known
    }

    /// A signal from `from` arrived through the server.
    fn on_signal(&self, from: [u8; 32], data: &[u8]) {
        let signal = match Signal::from_blob(data) {
            Ok(s) => s,
            Err(e) => {
                debug!(error = %e, "signal from the rendezvous server dropped");
                return;
            }
        };
        let peer = PeerId::from_public_key(from);
        // The peer's relayed candidates become our relay paths to them
        // (`add_relay_paths`), not ICE pairs: sending to a relayed address
        // straight from our socket needs a permission for our address on the
        // peer's allocation, which nobody asks for, and the relay delivers
        // what gets through from an address the peer does not know.
        let mut for_ice = signal.clone();
        for_ice
            .candidates
            .retain(|c| c.kind != CandidateKind::Relayed);
        let nat64 = self.lock().nat64;
        if let Some(prefix) = nat64 {
            let twins = super::nat64::twins(prefix, &for_ice.candidates);
            for_ice.candidates.extend(twins);
        }
        let vaddr = self.endpoint.path_handle().add_peer(&PeerKey(from));
        let known = self.lock().peers.get(&vaddr).map(|a| a.attempt);
        if signal.role == Role::Offer && known != Some(signal.attempt) {
            if known.is_some() {
                self.ice.remove_peer(vaddr);
            }
            self.start_agent(vaddr, peer, Role::Answer, signal.attempt, false);
            if let Err(e) = self.ice.apply_remote(vaddr, &for_ice) {
                debug!(peer = %peer.short(), error = %e, "offer not applied");
                return;
            }
            self.add_relay_paths(peer, &signal);
            if let Err(e) = self.send_signal(vaddr) {
                debug!(peer = %peer.short(), error = %e, "answer not sent");
            }
            return;
        }
        let added = match self.ice.apply_remote(vaddr, &for_ice) {
            Ok(added) => added,
            Err(e) => {
                debug!(peer = %peer.short(), error = %e, "signal not applied");
                return;
            }
        };
        self.add_relay_paths(peer, &signal);
        if signal.role == Role::Offer && added == 0 {
            // Nothing new: the offerer sent its offer again because our answer
            // did not arrive (the server forwards signals once). Answer again.
            if let Err(e) = self.send_signal(vaddr) {
                debug!(peer = %peer.short(), error = %e, "answer not sent again");
            }
        }
        if signal.role == Role::Answer
            && let Some(a) = self.lock().peers.get_mut(&vaddr)
        {
            a.answered = true;
        }
        self.changed.notify_waiters();
    }

    /// Trickles new local candidates to the peer whose agent found them.
    fn on_ice(&self, vaddr: SocketAddr, event: IceEvent) {
        let IceEvent::LocalCandidates(candidates) = event else {
            return;
        };
        let me = *self.endpoint.peer_id().public_key();
        let Some((to, role, attempt)) = self
            .lock()
            .peers
            .get(&vaddr)
            .map(|a| (*a.peer.public_key(), a.role, a.attempt))
        else {
            return;
        };
        let update = self
            .ice
            .with_agent(vaddr, |agent| agent.trickle(role, me, attempt, candidates));
        if let Some(Ok(blob)) = update.map(|s| s.to_blob()) {
            self.lock().client.send(now(), to, &blob);
        }
    }

    /// Runs the client: datagrams out, events in, timers.
    fn pump(&self, paths: &PathHandle) -> Option<Instant> {
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
                        state.mapped = mapped;
                        state.failure = None;
                    }
                    signal::Event::RegistrationFailed(reason) => state.failure = Some(reason),
                    signal::Event::Received { from, data } => signals.push((from, data)),
                    signal::Event::Delivered { .. } => {}
                    signal::Event::Undeliverable { to, reason } => {
                        for a in state.peers.values_mut() {
                            if *a.peer.public_key() == to && !a.answered {
                                a.failed = Some(reason.clone());
                            }
                        }
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

/// Asks the router to forward the shared socket's IPv4 port (PCP, NAT-PMP) and
/// adds the mapping as a candidate to every agent, present and future. Only
/// from a private or shared (100.64/10) IPv4 address and toward a server that
/// is not on this machine.
async fn map_port(inner: Weak<Inner>) {
    let Some((base, server)) = inner.upgrade().and_then(|this| {
        let base = host_addresses(this.endpoint.path_handle().local_addrs())
            .into_iter()
            .find(|a| a.is_ipv4() && !a.ip().is_loopback())?;
        Some((base, this.server))
    }) else {
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
    let external = SocketAddr::V4(mapping.external);
    let base = SocketAddr::V4(mapping.internal);
    let Some(this) = inner.upgrade() else {
        unmap_udp(&mapping, Duration::from_millis(500));
        return;
    };
    debug!(%external, %base, protocol = ?mapping.protocol, "port-mapped candidate");
    let peers: Vec<SocketAddr> = {
        let mut state = this.lock();
        state.port_mapped = Some((external, base, mapping));
        state.peers.keys().copied().collect()
    };
    for vaddr in peers {
        let added = this
            .ice
            .with_agent(vaddr, |agent| agent.add_port_mapped(external, base));
        if let Some(Err(e)) = added {
            debug!(%external, error = %e, "port-mapped candidate not added");
        }
    }
    this.wake.notify_one();
}

/// The signalling task: ends when the [`Rendezvous`] is dropped.
async fn drive(inner: Weak<Inner>, mut received: mpsc::Receiver<ReceivedStun>) {
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
            e = this.ice.next_event() => this.on_ice(e.peer, e.event),
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
