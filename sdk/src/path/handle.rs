//! [`PathHandle`]: the application's side of the path layer.

use std::fmt;
use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{broadcast, mpsc};

use super::addr::{PathAddr, PeerKey};
use super::driver::{ReceivedStun, STUN_QUEUE, Shared, now, swallow};
use super::error::PathError;
use super::event::{PathEvent, PeerStats};
use super::keepalive::KeepaliveStats;
use super::relay::RelayStatus;
use crate::keepalive::{CachedTimer, LifetimeCache, NetworkKey, Target};
use crate::socket::{LocalAddrs, Transmit};

/// Adds peers and paths, reads events and statistics. Cheap to clone; every
/// clone drives the same [`super::PathSocket`].
#[derive(Clone)]
pub struct PathHandle {
    shared: Arc<Shared>,
}

impl fmt::Debug for PathHandle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PathHandle").finish_non_exhaustive()
    }
}

impl PathHandle {
    pub(crate) fn new(shared: Arc<Shared>) -> PathHandle {
        PathHandle { shared }
    }

    /// Adds the peer with this key (idempotent) and returns its virtual
    /// address: connect QUIC to it.
    pub fn add_peer(&self, key: &PeerKey) -> SocketAddr {
        self.shared.lock().core.add_peer(key)
    }

    /// Forgets a peer and its paths.
    pub fn remove_peer(&self, peer: SocketAddr) -> bool {
        self.shared.lock().core.remove_peer(peer)
    }

    /// Adds a candidate path to a peer. It is probed at once and used as soon
    /// as it is confirmed live and is the best live path.
    pub fn add_path(&self, peer: SocketAddr, path: PathAddr) -> Result<(), PathError> {
        let family_ok = {
            let local = self.shared.io.local_addrs();
            match path {
                PathAddr::Direct(a) | PathAddr::RemoteRelay(a) => {
                    if crate::path::canonical(a).is_ipv6() {
                        local.v6.is_some()
                    } else {
                        local.v4.is_some()
                    }
                }
                PathAddr::Relay { .. } => true,
            }
        };
        if !family_ok {
            let family = match path {
                PathAddr::Direct(a) | PathAddr::RemoteRelay(a)
                    if crate::path::canonical(a).is_ipv6() =>
                {
                    "IPv6"
                }
                _ => "IPv4",
            };
            return Err(PathError::NoSocketForFamily { path, family });
        }
        let now = now();
        let mut state = self.shared.lock();
        state.core.add_path(now, peer, path)?;
        if let PathAddr::Relay { .. } = path {
            // Ask for the permission and channel now, not on the first send.
            state.relays.resync();
            self.shared.flush(&mut state, now);
        }
        drop(state);
        self.shared.wake_driver.notify_one();
        Ok(())
    }

    /// Adds a TURN relay: allocates on `config.server` from the shared socket
    /// (so the relay sees the same NAT mapping as everything else), keeps the
    /// allocation, its permissions and channels refreshed, and allocates again
    /// if it is lost. [`PathEvent::RelayAllocated`] says when it is ready and
    /// gives the relayed addresses to hand to peers. Then add
    /// [`PathAddr::Relay`] paths through it: data on them goes as ChannelData
    /// to the peer's address (its direct address, or its own relayed address
    /// when both sides relay). Adding a relay that exists replaces it.
    ///
    /// ```no_run
    /// # async fn f(paths: tsunagi::path::PathHandle, peer: std::net::SocketAddr) -> Result<(), Box<dyn std::error::Error>> {
    /// use tsunagi::path::PathAddr;
    /// use tsunagi::relay::{Config, Credentials};
    /// let server = "198.51.100.1:3478".parse()?;
    /// paths.add_relay(Config::new(server, Credentials::new("user", "pass")));
    /// let relayed = paths.wait_relay(server, std::time::Duration::from_secs(5)).await?;
    /// paths.add_path(peer, PathAddr::Relay { server, peer: "203.0.113.7:50000".parse()? })?;
    /// # Ok(()) }
    /// ```
    pub fn add_relay(&self, config: crate::relay::Config) {
        let now = now();
        let mut state = self.shared.lock();
        state.core.add_relay(config.server);
        state
            .keepalives
            .watch(now, config.server, Target::RelayAllocation);
        state.relays.add(now, config);
        self.shared.flush(&mut state, now);
        drop(state);
        self.shared.wake_driver.notify_one();
    }

    /// Releases the allocation on `server` and forgets the relay. Paths through
    /// it stay in the table but carry nothing; remove them too.
    pub fn remove_relay(&self, server: SocketAddr) -> bool {
        let now = now();
        let mut state = self.shared.lock();
        let removed = state.relays.remove(now, server);
        state.core.remove_relay(server);
        state.keepalives.unwatch(server);
        self.shared.flush(&mut state, now);
        removed
    }

    /// The state of the relay on `server`, if one was added.
    pub fn relay(&self, server: SocketAddr) -> Option<RelayStatus> {
        self.shared.lock().relays.status(server)
    }

    /// The state of every relay added, by server address.
    pub fn relays(&self) -> Vec<RelayStatus> {
        self.shared.lock().relays.statuses()
    }

    /// Waits until the relay on `server` has an allocation and returns its
    /// relayed addresses.
    pub async fn wait_relay(
        &self,
        server: SocketAddr,
        timeout: std::time::Duration,
    ) -> Result<Vec<SocketAddr>, PathError> {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let notified = self.shared.event_ready.notified();
            match self.relay(server) {
                None => return Err(PathError::NoRelay(server)),
                Some(s) if s.allocated => return Ok(s.relayed),
                Some(_) => {}
            }
            if tokio::time::timeout_at(deadline, notified).await.is_err() {
                return Err(PathError::RelayNotReady { server, timeout });
            }
        }
    }

    /// Keeps the NAT mapping toward `server` (a rendezvous or STUN server the
    /// application talks to through [`PathHandle::send_to`]) alive: a STUN
    /// Binding request whenever nothing went there for one keepalive interval.
    /// Relays added with [`PathHandle::add_relay`] are kept alive already.
    pub fn keep_alive(&self, server: SocketAddr) {
        let mut state = self.shared.lock();
        state.keepalives.watch(now(), server, Target::ServerMapping);
        drop(state);
        self.shared.wake_driver.notify_one();
    }

    /// Tells the path layer the address `server` saw us at (a registration's
    /// mapped address): a change from the last one seen means the mapping
    /// expired and shortens the keepalives.
    pub fn observed_mapping(&self, server: SocketAddr, mapped: SocketAddr) {
        let now = now();
        let mut state = self.shared.lock();
        state.keepalives.observed(server, mapped);
        self.shared.flush(&mut state, now);
    }

    /// The NAT's UDP session timer as far as known: configured or measured
    /// ([`PathHandle::set_nat_timer`]), shortened by mappings seen to expire.
    /// `None` while unknown (or with keepalives off).
    pub fn nat_timer(&self) -> Option<Duration> {
        self.shared.lock().keepalives.nat_timer()
    }

    /// Sets the measured binding lifetime (`diag`'s, its lower bound; or one
    /// remembered for this network): keepalives come at 40 % of it from now on.
    pub fn set_nat_timer(&self, lifetime: Option<Duration>) {
        let now = now();
        let mut state = self.shared.lock();
        state.keepalives.set_measured(lifetime);
        self.shared.flush(&mut state, now);
        drop(state);
        self.shared.wake_driver.notify_one();
    }

    /// Starts from the timer remembered for this network, if any; returns it.
    pub fn load_nat_timer(&self, cache: &dyn LifetimeCache, key: &NetworkKey) -> Option<Duration> {
        let timer = cache.get(key).and_then(|t| t.timer());
        if timer.is_some() {
            self.set_nat_timer(timer);
        }
        timer
    }

    /// Remembers the current timer knowledge for this network (nothing when
    /// nothing is known).
    pub fn store_nat_timer(&self, cache: &mut dyn LifetimeCache, key: &NetworkKey) {
        if let Some(timer) = self.nat_timer() {
            cache.put(key.clone(), CachedTimer::from_duration(timer));
        }
    }

    /// The current keepalive interval (`None`: keepalives are off).
    pub fn keepalive_interval(&self) -> Option<Duration> {
        self.shared.lock().keepalives.interval()
    }

    /// The keepalives toward `server` (`None`: its mapping is not kept alive).
    pub fn keepalive_stats(&self, server: SocketAddr) -> Option<KeepaliveStats> {
        self.shared.lock().keepalives.stats(server)
    }

    /// Removes a path; if it was active, the next best live path takes over.
    pub fn remove_path(&self, peer: SocketAddr, path: PathAddr) -> bool {
        let now = now();
        let mut state = self.shared.lock();
        let removed = state.core.remove_path(now, peer, path);
        self.shared.flush(&mut state, now);
        removed
    }

    /// Probes every path of a peer now.
    pub fn probe_now(&self, peer: SocketAddr) -> Result<(), PathError> {
        self.shared.lock().core.probe_now(now(), peer)?;
        self.shared.wake_driver.notify_one();
        Ok(())
    }

    /// The peer's paths and which one is active.
    pub fn stats(&self, peer: SocketAddr) -> Option<PeerStats> {
        self.shared.lock().core.stats(now(), peer)
    }

    /// The virtual addresses of all peers.
    pub fn peers(&self) -> Vec<SocketAddr> {
        self.shared.lock().core.peers().collect()
    }

    /// A subscription to every event from now on, independent of other
    /// subscribers and of [`PathHandle::next_event`] (which all clones of the
    /// handle share: one consumer takes each event from that queue, so a
    /// second reader there — the session layer, say — would steal events).
    pub fn subscribe(&self) -> PathEvents {
        PathEvents {
            receiver: self.shared.broadcast.subscribe(),
        }
    }

    /// The next event, if one is waiting. One queue for all clones of the
    /// handle; use [`PathHandle::subscribe`] when more than one task reads
    /// events.
    pub fn poll_event(&self) -> Option<PathEvent> {
        self.shared.lock().events.pop_front()
    }

    /// Waits for the next event (see [`PathHandle::poll_event`]).
    pub async fn next_event(&self) -> PathEvent {
        loop {
            let notified = self.shared.event_ready.notified();
            if let Some(e) = self.poll_event() {
                return e;
            }
            notified.await;
        }
    }

    /// The shared sockets' local addresses.
    pub fn local_addrs(&self) -> LocalAddrs {
        self.shared.io.local_addrs()
    }

    /// Sends a raw datagram from the shared socket (STUN to a server, an ICE
    /// check): the NAT mapping it creates is the one QUIC uses.
    pub fn send_to(&self, to: SocketAddr, bytes: &[u8]) -> io::Result<()> {
        let to = crate::path::canonical(to);
        // Traffic to a server refreshes its mapping: no keepalive needed.
        self.shared.lock().keepalives.on_sent(now(), to);
        let t = Transmit {
            destination: to,
            ecn: None,
            contents: bytes,
            segment_size: None,
            src_ip: None,
        };
        swallow(self.shared.io.try_send(&t), to)
    }

    /// Receives the STUN datagrams that are not path probes (answers to
    /// [`PathHandle::send_to`], ICE checks). Replaces an earlier receiver; at
    /// most 256 wait, newer ones are dropped while the queue is full.
    pub fn stun_receiver(&self) -> mpsc::Receiver<ReceivedStun> {
        let (tx, rx) = mpsc::channel(STUN_QUEUE);
        self.shared.lock().stun_consumer = Some(tx);
        rx
    }

    /// Receives the rendezvous messages (STUN methods 0x0C0/0x0C1, see
    /// `crate::signal::wire`) from any source, the relay's address included:
    /// they never reach the TURN clients or [`PathHandle::stun_receiver`].
    /// Replaces an earlier receiver; without one they are dropped.
    pub fn rendezvous_receiver(&self) -> mpsc::Receiver<ReceivedStun> {
        let (tx, rx) = mpsc::channel(STUN_QUEUE);
        self.shared.lock().rendezvous_consumer = Some(tx);
        rx
    }
}

/// Every [`PathEvent`] since [`PathHandle::subscribe`], for one reader.
#[derive(Debug)]
pub struct PathEvents {
    receiver: broadcast::Receiver<PathEvent>,
}

impl PathEvents {
    /// Waits for the next event; `None` once the path layer is gone. A reader
    /// that fell more than 1024 events behind skips the oldest (logged).
    pub async fn recv(&mut self) -> Option<PathEvent> {
        loop {
            match self.receiver.recv().await {
                Ok(e) => return Some(e),
                Err(broadcast::error::RecvError::Lagged(n)) => {
                    tracing::warn!(
                        missed = n,
                        "path event reader fell behind; oldest events skipped"
                    );
                }
                Err(broadcast::error::RecvError::Closed) => return None,
            }
        }
    }

    /// The next event if one is waiting.
    pub fn try_recv(&mut self) -> Option<PathEvent> {
        loop {
            match self.receiver.try_recv() {
                Ok(e) => return Some(e),
                Err(broadcast::error::TryRecvError::Lagged(n)) => {
                    tracing::warn!(
                        missed = n,
                        "path event reader fell behind; oldest events skipped"
                    );
                }
                Err(_) => return None,
            }
        }
    }
}
