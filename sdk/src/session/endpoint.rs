//! The async endpoint: opens the shared sockets and the path layer, runs QUIC on them,
//! dials and accepts peers, and routes their traffic.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, OnceLock, Weak};
use std::time::{Duration, Instant};

use bytes::Bytes;
use tokio::sync::mpsc;
use tracing::{debug, info};

use super::config::SessionConfig;
use super::error::SessionError;
use super::event::{Event, PathKind, PeerStats, disconnect_reason};
use super::eyeballs;
use super::identity::PeerId;
use super::peer::{self, CODE_CLOSED, CODE_REPLACED, Link};
use super::signalling::Signalling;
use super::tls::{self, SERVER_NAME};
use crate::path::{PathAddr, PathEvent, PathHandle, PathSocket, PeerKey};

/// How long a closed peer's paths stay in the table (QUIC's drain period is 3 PTO).
const PATH_LINGER: Duration = Duration::from_secs(5);

/// State shared by the endpoint handle and its tasks.
#[derive(Debug)]
pub(crate) struct Shared {
    pub(crate) config: SessionConfig,
    pub(crate) transport: Arc<quinn::TransportConfig>,
    pub(crate) runtime: tokio::runtime::Handle,
    pub(crate) paths: PathHandle,
    quic: quinn::Endpoint,
    peers: Mutex<HashMap<PeerId, Arc<Link>>>,
    events: mpsc::UnboundedSender<Event>,
    me: Weak<Shared>,
    /// Offer/answer attempts and the ICE driver, made on first use.
    signalling: OnceLock<Arc<Signalling>>,
}

impl Shared {
    fn peers_weak(&self) -> Weak<Shared> {
        self.me.clone()
    }

    /// The endpoint's connection attempts by offer and answer (one ICE driver
    /// per endpoint: the path layer has one STUN consumer).
    pub(crate) fn signalling(&self) -> Arc<Signalling> {
        self.signalling
            .get_or_init(|| {
                let _runtime = self.runtime.enter();
                Signalling::start(self, self.me.clone())
            })
            .clone()
    }

    /// The identity an offer/answer attempt expects at `vaddr`, if there is one.
    fn expected_at(&self, vaddr: SocketAddr) -> Option<PeerId> {
        self.signalling.get()?.peer_at(vaddr)
    }

    pub(crate) fn emit(&self, event: Event) {
        // The receiver is gone only when the game dropped its `Events`: nothing to tell.
        let _ = self.events.send(event);
    }

    fn link(&self, peer: &PeerId) -> Result<Arc<Link>, SessionError> {
        self.peers
            .lock()
            .ok()
            .and_then(|peers| peers.get(peer).cloned())
            .ok_or(SessionError::NotConnected(*peer))
    }

    /// Whether a live link sits at virtual address `vaddr`.
    pub(crate) fn has_link_at(&self, vaddr: SocketAddr) -> bool {
        self.link_at(vaddr).is_some()
    }

    fn link_at(&self, vaddr: SocketAddr) -> Option<Arc<Link>> {
        let peers = self.peers.lock().ok()?;
        peers.values().find(|l| l.vaddr() == vaddr).cloned()
    }

    /// The path of a link for events: the current one, or failing that the first known.
    fn path_of(&self, link: &Link) -> (PathKind, Option<SocketAddr>) {
        if let Some((kind, addr)) = link.current_path(&self.paths) {
            return (kind, Some(addr));
        }
        let first = self
            .paths
            .stats(link.vaddr())
            .and_then(|s| s.paths.first().map(|p| p.kind));
        (first.unwrap_or(PathKind::Relay), None)
    }

    /// Makes `link` the connection to its peer. With two connections to one peer, a newer
    /// one from the same dialler replaces the older; when both sides dialled each other at
    /// once, both keep the one dialled by the smaller PeerId. Returns false if `link` lost.
    pub(crate) fn install(&self, link: &Arc<Link>) -> bool {
        let me = self.config.identity.peer_id();
        let Ok(mut peers) = self.peers.lock() else {
            return false;
        };
        let previous = peers.get(&link.peer).cloned();
        if let Some(existing) = &previous {
            if Arc::ptr_eq(existing, link) {
                return true;
            }
            let dialler = |l: &Link| if l.outgoing { me } else { l.peer };
            let keep_new = existing.outgoing == link.outgoing || dialler(link) < dialler(existing);
            if !keep_new {
                link.close(
                    CODE_REPLACED,
                    "both sides dialled; keeping the other connection",
                );
                return false;
            }
            existing.close(CODE_REPLACED, "replaced by a newer connection");
        }
        peers.insert(link.peer, link.clone());
        drop(peers);
        link.mark_ready();
        let (path, remote) = self.path_of(link);
        match previous {
            Some(old) if self.path_of(&old).0 == path => {}
            Some(_) => self.emit(Event::PathChanged {
                peer: link.peer,
                path,
            }),
            None => {
                info!(peer = %link.peer.short(), %path, ?remote, "connected");
                self.emit(Event::Connected {
                    peer: link.peer,
                    path,
                    remote,
                    outgoing: link.outgoing,
                });
            }
        }
        true
    }

    /// Drops a peer's path-table entry once its connection has drained: QUIC's closing
    /// packets still need the paths, or the peer would answer a stray packet with a reset.
    pub(crate) fn forget_paths_later(&self, vaddr: SocketAddr) {
        let paths = self.paths.clone();
        let peers = self.peers_weak();
        self.runtime.spawn(async move {
            tokio::time::sleep(PATH_LINGER).await;
            let in_use = peers
                .upgrade()
                .and_then(|shared| shared.link_at(vaddr))
                .is_some();
            if !in_use {
                paths.remove_peer(vaddr);
            }
        });
    }

    /// Forgets a closed link; reports the end if it was the peer's current connection.
    pub(crate) fn remove(&self, link: &Arc<Link>, error: &quinn::ConnectionError) {
        let was_current = self.peers.lock().is_ok_and(|mut peers| {
            let current = peers.get(&link.peer).is_some_and(|l| Arc::ptr_eq(l, link));
            if current {
                peers.remove(&link.peer);
            }
            current
        });
        self.forget_paths_later(link.vaddr());
        if was_current {
            let reason = disconnect_reason(error);
            info!(peer = %link.peer.short(), %reason, "disconnected");
            self.emit(Event::Disconnected {
                peer: link.peer,
                reason,
            });
        }
    }
}

/// What [`Endpoint::connect`] found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ConnectInfo {
    /// The path in use.
    pub path: PathKind,
    /// The real address packets go to on that path, once known.
    pub remote: Option<SocketAddr>,
    /// Time from the call to a usable session.
    pub took: Duration,
}

/// The events of an endpoint, in arrival order.
#[derive(Debug)]
pub struct Events {
    receiver: mpsc::UnboundedReceiver<Event>,
}

impl Events {
    /// Waits for the next event; `None` once the endpoint is gone.
    pub async fn recv(&mut self) -> Option<Event> {
        self.receiver.recv().await
    }

    /// The next event if one is ready, without waiting.
    pub fn try_recv(&mut self) -> Option<Event> {
        self.receiver.try_recv().ok()
    }
}

/// A Tsunagi endpoint: one identity, one shared socket per address family, any number
/// of peers.
///
/// Cheap to clone; all clones drive the same endpoint. Must be created inside a tokio
/// runtime (use [`super::PollEndpoint`] from a game loop without one).
///
/// ```no_run
/// # async fn demo(friend: tsunagi::session::PeerId, addr: std::net::SocketAddr) -> Result<(), Box<dyn std::error::Error>> {
/// use tsunagi::session::{Endpoint, Event, Identity, SessionConfig};
/// let (endpoint, mut events) = Endpoint::bind(SessionConfig::new(Identity::generate()?)).await?;
/// endpoint.connect(friend, &[addr]).await?;
/// endpoint.send(friend, 0, &b"hello"[..]).await?;
/// while let Some(event) = events.recv().await {
///     if let Event::Message { bytes, .. } = event { println!("{bytes:?}"); }
/// }
/// # Ok(()) }
/// ```
#[derive(Debug, Clone)]
pub struct Endpoint {
    shared: Arc<Shared>,
}

impl Endpoint {
    /// Binds the configured sockets and starts accepting peers.
    pub async fn bind(config: SessionConfig) -> Result<(Self, Events), SessionError> {
        let runtime = tokio::runtime::Handle::current();
        let transport = config.transport();
        let crypto = tls::server_crypto(&config.identity)?;
        let mut server = quinn::ServerConfig::with_crypto(Arc::new(crypto));
        server.transport_config(transport.clone());
        let (socket, paths) = PathSocket::bind(&config.sockets, config.paths.clone())?;
        let quic = quinn::Endpoint::new_with_abstract_socket(
            crate::socket::endpoint_config(),
            Some(server),
            socket,
            Arc::new(quinn::TokioRuntime),
        )
        .map_err(SessionError::Quic)?;
        let (sender, receiver) = mpsc::unbounded_channel();
        let shared = Arc::new_cyclic(|me| Shared {
            config,
            transport,
            runtime,
            paths,
            quic,
            peers: Mutex::new(HashMap::new()),
            events: sender,
            me: me.clone(),
            signalling: OnceLock::new(),
        });
        shared.runtime.spawn(accept_loop(shared.clone()));
        shared.runtime.spawn(path_events(Arc::downgrade(&shared)));
        let endpoint = Self { shared };
        info!(peer_id = %endpoint.peer_id(), addrs = ?endpoint.local_addrs(), "endpoint up");
        Ok((endpoint, Events { receiver }))
    }

    pub(crate) fn from_shared(shared: Arc<Shared>) -> Self {
        Self { shared }
    }

    /// The state shared with the endpoint's tasks (for `super::rendezvous`).
    pub(crate) fn shared(&self) -> &Shared {
        &self.shared
    }

    /// This endpoint's identity as others see it.
    pub fn peer_id(&self) -> PeerId {
        self.shared.config.identity.peer_id()
    }

    /// The local socket addresses (IPv6 first), to give to peers that will dial in.
    pub fn local_addrs(&self) -> Vec<SocketAddr> {
        let local = self.shared.paths.local_addrs();
        local.v6.into_iter().chain(local.v4).collect()
    }

    /// Dials `peer` at the given addresses (IPv6 first, IPv4 after the Happy Eyeballs head
    /// start) and returns once the session is usable. Fails with
    /// [`SessionError::WrongPeer`] if the address answers with another key.
    pub async fn connect(
        &self,
        peer: PeerId,
        addrs: &[SocketAddr],
    ) -> Result<ConnectInfo, SessionError> {
        self.connect_paths(peer, &eyeballs::prefer_ipv6(addrs))
            .await
    }

    /// Dials `peer` over the given paths: direct addresses and relayed paths
    /// ([`PathAddr::Relay`] through our TURN allocation, [`PathAddr::RemoteRelay`] to the
    /// peer's). The path layer then keeps the best live one (direct IPv6 > direct IPv4 >
    /// relay) and switches under the session as paths come and go.
    pub async fn connect_paths(
        &self,
        peer: PeerId,
        paths: &[PathAddr],
    ) -> Result<ConnectInfo, SessionError> {
        let start = Instant::now();
        if let Ok(link) = self.shared.link(&peer) {
            let (path, remote) = self.shared.path_of(&link);
            return Ok(ConnectInfo {
                path,
                remote,
                took: start.elapsed(),
            });
        }
        let timeout = self.shared.config.connect_timeout;
        let vaddr = eyeballs::add_paths(&self.shared, peer, paths).await?;
        let connection = match tokio::time::timeout(timeout, self.handshake(peer, vaddr)).await {
            Ok(Ok(connection)) => connection,
            failed => {
                self.shared.forget_paths_later(vaddr);
                return Err(match failed {
                    Ok(Err(e)) => e,
                    _ => SessionError::ConnectTimedOut { peer, timeout },
                });
            }
        };
        let link = Link::new(connection, peer, true);
        peer::spawn_tasks(&self.shared, &link);
        peer::send_hello(&link.connection)
            .await
            .map_err(|e| SessionError::ConnectFailed {
                peer,
                reason: e.to_string(),
            })?;
        self.shared.install(&link);
        let current = self.shared.link(&peer)?;
        let (path, remote) = self.shared.path_of(&current);
        Ok(ConnectInfo {
            path,
            remote,
            took: start.elapsed(),
        })
    }

    async fn handshake(
        &self,
        peer: PeerId,
        vaddr: SocketAddr,
    ) -> Result<quinn::Connection, SessionError> {
        let mismatch: tls::MismatchSlot = Arc::new(Mutex::new(None));
        let crypto = tls::client_crypto(&self.shared.config.identity, peer, mismatch.clone())?;
        let mut client = quinn::ClientConfig::new(Arc::new(crypto));
        client.transport_config(self.shared.transport.clone());
        let failed = |reason: String| SessionError::ConnectFailed { peer, reason };
        let connecting = self
            .shared
            .quic
            .connect_with(client, vaddr, SERVER_NAME)
            .map_err(|e| failed(e.to_string()))?;
        connecting.await.map_err(
            |e| match mismatch.lock().ok().and_then(|mut slot| slot.take()) {
                Some(presented) => SessionError::WrongPeer {
                    presented,
                    expected: peer,
                },
                None => failed(e.to_string()),
            },
        )
    }

    /// Dials in the background; the outcome arrives as [`Event::Connected`] or
    /// [`Event::ConnectFailed`]. For callers that cannot await.
    pub fn connect_in_background(&self, peer: PeerId, addrs: Vec<SocketAddr>) {
        let endpoint = self.clone();
        self.shared.runtime.spawn(async move {
            if let Err(e) = endpoint.connect(peer, &addrs).await {
                debug!(peer = %peer.short(), "connect failed: {e}");
                endpoint.shared.emit(Event::ConnectFailed {
                    peer,
                    error: e.to_string(),
                });
            }
        });
    }

    /// Queues a reliable message on `channel`, waiting while that channel's queue is full.
    pub async fn send(
        &self,
        peer: PeerId,
        channel: u16,
        message: impl Into<Bytes>,
    ) -> Result<(), SessionError> {
        let (message, sender) = self.message_sender(peer, channel, message.into())?;
        sender
            .send(message)
            .await
            .map_err(|_| SessionError::NotConnected(peer))
    }

    /// Queues a reliable message on `channel` without waiting; fails with
    /// [`SessionError::SendQueueFull`] when the queue is full.
    pub fn try_send(
        &self,
        peer: PeerId,
        channel: u16,
        message: impl Into<Bytes>,
    ) -> Result<(), SessionError> {
        let (message, sender) = self.message_sender(peer, channel, message.into())?;
        sender.try_send(message).map_err(|e| match e {
            mpsc::error::TrySendError::Full(_) => SessionError::SendQueueFull { peer, channel },
            mpsc::error::TrySendError::Closed(_) => SessionError::NotConnected(peer),
        })
    }

    /// Checks a reliable message's size and finds the send queue of `peer`'s `channel`.
    fn message_sender(
        &self,
        peer: PeerId,
        channel: u16,
        message: Bytes,
    ) -> Result<(Bytes, mpsc::Sender<Bytes>), SessionError> {
        let limit = self.shared.config.max_message_size;
        if message.len() > limit {
            return Err(SessionError::MessageTooLarge {
                size: message.len(),
                limit,
            });
        }
        let sender = self
            .shared
            .link(&peer)?
            .channel_sender(&self.shared, channel)?;
        Ok((message, sender))
    }

    /// Sends an unreliable message. Fails with [`SessionError::DatagramTooLarge`] above
    /// [`Endpoint::datagram_limit`].
    pub fn send_datagram(
        &self,
        peer: PeerId,
        message: impl Into<Bytes>,
    ) -> Result<(), SessionError> {
        self.shared.link(&peer)?.send_datagram(message.into())
    }

    /// Sends an unreliable message, waiting while the send buffer is full rather than
    /// dropping the oldest queued one (for bulk senders; a game usually wants
    /// [`Endpoint::send_datagram`], where fresh state displaces stale state).
    pub async fn send_datagram_wait(
        &self,
        peer: PeerId,
        message: impl Into<Bytes>,
    ) -> Result<(), SessionError> {
        let link = self.shared.link(&peer)?;
        link.send_datagram_wait(message.into()).await
    }

    /// The largest unreliable message `peer` can be sent now, if connected.
    pub fn datagram_limit(&self, peer: PeerId) -> Option<usize> {
        self.shared.link(&peer).ok()?.connection.max_datagram_size()
    }

    /// Statistics of the session with `peer`, if connected.
    pub fn stats(&self, peer: PeerId) -> Option<PeerStats> {
        Some(self.shared.link(&peer).ok()?.stats(&self.shared.paths))
    }

    /// The peers with a live session.
    pub fn peers(&self) -> Vec<PeerId> {
        self.shared
            .peers
            .lock()
            .map(|p| p.keys().copied().collect())
            .unwrap_or_default()
    }

    /// Ends the session with `peer`; it sees [`super::DisconnectReason::ClosedByPeer`].
    pub fn disconnect(&self, peer: PeerId, reason: &str) {
        if let Ok(link) = self.shared.link(&peer) {
            link.close(CODE_CLOSED, reason);
        }
    }

    /// Adds paths to a peer, connected or not: a direct address learned after a
    /// relayed connect (relay first, then upgrade), another relay. The path layer
    /// probes them and moves the session to the best live one
    /// ([`Event::PathChanged`]).
    pub fn add_paths(&self, peer: PeerId, paths: &[PathAddr]) -> Result<(), SessionError> {
        let vaddr = match self.shared.link(&peer) {
            Ok(link) => link.vaddr(),
            Err(_) => self.shared.paths.add_peer(&PeerKey(*peer.public_key())),
        };
        paths
            .iter()
            .try_for_each(|p| eyeballs::add_path(&self.shared, vaddr, *p))
    }

    /// The path layer underneath, for relays, raw STUN and per-path statistics.
    pub fn path_handle(&self) -> &PathHandle {
        &self.shared.paths
    }

    /// Closes every session and waits (briefly) until peers were told.
    pub async fn close(&self) {
        self.shared.quic.close(CODE_CLOSED, b"endpoint closed");
        let _ = tokio::time::timeout(Duration::from_secs(1), self.shared.quic.wait_idle()).await;
    }
}

/// Turns the path layer's switches into session events.
async fn path_events(shared: Weak<Shared>) {
    // Its own subscription: the handle's `next_event` queue belongs to the
    // application, and reading it here stole the application's events.
    let Some(mut events) = shared.upgrade().map(|s| s.paths.subscribe()) else {
        return;
    };
    while let Some(event) = events.recv().await {
        let Some(shared) = shared.upgrade() else {
            return;
        };
        debug!(?event, "path event");
        if let PathEvent::PathChanged {
            peer: vaddr,
            from: Some(_),
            to: Some(path),
            ..
        } = event
            && let Some(link) = shared.link_at(vaddr)
        {
            info!(peer = %link.peer.short(), %path, "path changed");
            shared.emit(Event::PathChanged {
                peer: link.peer,
                path,
            });
        }
    }
}

async fn accept_loop(shared: Arc<Shared>) {
    while let Some(incoming) = shared.quic.accept().await {
        let shared = shared.clone();
        shared.runtime.clone().spawn(async move {
            let connection = match incoming.await {
                Ok(connection) => connection,
                Err(e) => {
                    debug!("incoming handshake failed: {e}");
                    return;
                }
            };
            let Some(peer) = tls::peer_id_of(&connection) else {
                connection.close(peer::CODE_PROTOCOL, b"no Ed25519 key presented");
                return;
            };
            // Paths set up for an offer or answer belong to the identity it named:
            // another key arriving over them (a forged blob) gets no session there.
            if let Some(expected) = shared.expected_at(connection.remote_address())
                && expected != peer
            {
                debug!(peer = %peer.short(), expected = %expected.short(), "incoming identity does not match the attempt's");
                connection.close(
                    peer::CODE_PROTOCOL,
                    b"identity does not match the offer or answer for these paths",
                );
                return;
            }
            debug!(peer = %peer.short(), vaddr = %connection.remote_address(), "incoming connection");
            let link = Link::new(connection, peer, false);
            peer::spawn_tasks(&shared, &link);
        });
    }
}
