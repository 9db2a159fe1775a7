//! [`IceDriver`]: runs [`IceAgent`]s on a path layer's shared socket.

use std::collections::{BTreeMap, VecDeque};
use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, UdpSocket};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use tokio::sync::Notify;

use super::hardnat::NatDescriber;
use super::{IceAgent, IceConfig, IceError, IceEvent};
use crate::path::{PathHandle, Via};
use crate::signal::{NatDescription, Role, Signal};
use crate::socket::LocalAddrs;

/// An [`IceEvent`] of one peer's agent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DriverEvent {
    /// The peer's virtual address.
    pub peer: SocketAddr,
    /// What its agent reported. [`IceEvent::PathUsable`] has already been
    /// added to the path layer when it shows here.
    pub event: IceEvent,
}

struct Inner {
    agents: BTreeMap<SocketAddr, IceAgent>,
    events: VecDeque<DriverEvent>,
    describer: Option<NatDescriber>,
    local_nat: Option<NatDescription>,
}

/// Runs one [`IceAgent`] per peer over a [`PathHandle`]: STUN that the path
/// layer does not consume goes to the agents, their datagrams leave from the
/// shared socket, usable paths are added to the peer, and everything else is
/// an event for the application (trickle candidates to signal, nomination).
///
/// Owns the path layer's STUN consumer ([`PathHandle::stun_receiver`]): start
/// one driver per socket. Relayed candidates need TURN under the path layer;
/// until `path::relay` drives `crate::relay::Client`, [`Via::Turn`] transmits
/// are dropped with a debug log.
#[derive(Clone)]
pub struct IceDriver {
    paths: PathHandle,
    inner: Arc<Mutex<Inner>>,
    wake: Arc<Notify>,
    event_ready: Arc<Notify>,
    nat_ready: Arc<Notify>,
}

impl fmt::Debug for IceDriver {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("IceDriver").finish_non_exhaustive()
    }
}

fn now() -> Instant {
    tokio::time::Instant::now().into_std()
}

impl IceDriver {
    /// Starts the driver task on `paths`. Call inside a tokio runtime.
    pub fn start(paths: PathHandle) -> IceDriver {
        let driver = IceDriver {
            paths: paths.clone(),
            inner: Arc::new(Mutex::new(Inner {
                agents: BTreeMap::new(),
                events: VecDeque::new(),
                describer: None,
                local_nat: None,
            })),
            wake: Arc::new(Notify::new()),
            event_ready: Arc::new(Notify::new()),
            nat_ready: Arc::new(Notify::new()),
        };
        let mut stun = paths.stun_receiver();
        let d = driver.clone();
        tokio::spawn(async move {
            loop {
                let deadline = d.run(None);
                let sleep = deadline.map_or(Duration::from_secs(1), |t| {
                    t.saturating_duration_since(now())
                });
                tokio::select! {
                    received = stun.recv() => match received {
                        Some(r) => { d.run(Some((r.from, r.bytes))); }
                        None => return,
                    },
                    _ = d.wake.notified() => {}
                    _ = tokio::time::sleep(sleep) => {}
                }
                if Arc::strong_count(&d.inner) == 1 {
                    return;
                }
            }
        });
        driver
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// A new agent for a peer whose host candidates are the shared socket's
    /// addresses (a wildcard socket's are found from the routing table), with
    /// server-reflexive gathering started; add it with [`IceDriver::add_peer`].
    pub fn new_agent(&self, config: IceConfig, controlling: bool, seed: u64) -> IceAgent {
        let mut agent = IceAgent::new(config, controlling, seed);
        for addr in host_addresses(self.paths.local_addrs()) {
            if let Err(e) = agent.add_host(addr) {
                tracing::debug!(error = %e, "host address not usable as a candidate");
            }
        }
        if let Some(nat) = self.local_nat() {
            agent.set_local_nat(nat);
        }
        let now = now();
        agent.handle_timeout(now);
        agent.gather(now);
        agent
    }

    /// Describes our NAT with three Binding requests from the shared socket
    /// to `server` (its RFC 5780 addresses; see [`NatDescriber`]), waiting at
    /// most `timeout`. Agents made afterwards carry the description in their
    /// signals. Returns it, or `None` (no IPv4 socket, or no answer in time).
    pub async fn describe_nat(
        &self,
        server: SocketAddr,
        timeout: Duration,
    ) -> Option<NatDescription> {
        let local_port = self.paths.local_addrs().v4?.port();
        let (describer, (to, bytes)) =
            NatDescriber::start(now(), server, local_port, rand::random());
        self.lock().describer = Some(describer);
        if let Err(e) = self.paths.send_to(to, &bytes) {
            tracing::debug!(%to, error = %e, "NAT description request not sent; retried");
        }
        self.wake.notify_one();
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let notified = self.nat_ready.notified();
            if let Some(nat) = self.local_nat() {
                return Some(nat);
            }
            if tokio::time::timeout_at(deadline, notified).await.is_err() {
                self.lock().describer = None;
                return None;
            }
        }
    }

    /// Our NAT description, once [`IceDriver::describe_nat`] found it.
    pub fn local_nat(&self) -> Option<NatDescription> {
        self.lock().local_nat.clone()
    }

    /// Runs `agent` for the peer at virtual address `peer` (replacing an
    /// earlier one).
    pub fn add_peer(&self, peer: SocketAddr, agent: IceAgent) {
        self.lock().agents.insert(peer, agent);
        self.wake.notify_one();
    }

    /// Stops the peer's agent.
    pub fn remove_peer(&self, peer: SocketAddr) -> bool {
        self.lock().agents.remove(&peer).is_some()
    }

    /// Our offer or answer for the peer (see [`IceAgent::signal`]).
    pub fn signal(
        &self,
        peer: SocketAddr,
        role: Role,
        from: [u8; 32],
        attempt: u64,
    ) -> Option<Signal> {
        let mut inner = self.lock();
        Some(inner.agents.get_mut(&peer)?.signal(role, from, attempt))
    }

    /// Applies the peer's offer, answer or trickle update.
    pub fn apply_remote(&self, peer: SocketAddr, signal: &Signal) -> Result<usize, IceError> {
        let added = {
            let mut inner = self.lock();
            let agent = inner
                .agents
                .get_mut(&peer)
                .ok_or(IceError::UnknownPeer(peer))?;
            agent.apply_remote(signal)?
        };
        self.wake.notify_one();
        Ok(added)
    }

    /// Runs `f` on the peer's agent (e.g. [`IceAgent::add_relayed`]).
    pub fn with_agent<R>(&self, peer: SocketAddr, f: impl FnOnce(&mut IceAgent) -> R) -> Option<R> {
        let r = f(self.lock().agents.get_mut(&peer)?);
        self.wake.notify_one();
        Some(r)
    }

    /// The next event, if one is waiting.
    pub fn poll_event(&self) -> Option<DriverEvent> {
        self.lock().events.pop_front()
    }

    /// Waits for the next event.
    pub async fn next_event(&self) -> DriverEvent {
        loop {
            let notified = self.event_ready.notified();
            if let Some(e) = self.poll_event() {
                return e;
            }
            notified.await;
        }
    }

    /// One round: a received datagram, due timers, transmits, events. Returns
    /// the next deadline.
    fn run(&self, received: Option<(SocketAddr, Vec<u8>)>) -> Option<Instant> {
        let now = now();
        let mut inner = self.lock();
        let Inner {
            agents,
            events,
            describer,
            local_nat,
        } = &mut *inner;
        let mut describe_out = Vec::new();
        if let Some((from, bytes)) = received {
            let via = Via::Socket(from);
            let described = describer
                .as_mut()
                .is_some_and(|d| d.handle_response(now, from, &bytes, &mut describe_out));
            if !described && !agents.values_mut().any(|a| a.handle_stun(now, via, &bytes)) {
                tracing::trace!(%from, "STUN datagram for no ICE agent");
            }
        }
        let mut described = false;
        if let Some(d) = describer {
            if d.poll_timeout().is_some_and(|t| t <= now) {
                d.handle_timeout(now, &mut describe_out);
            }
            if let Some(nat) = d.result() {
                tracing::info!(?nat, "NAT described");
                *local_nat = Some(nat);
                *describer = None;
                described = true;
            }
        }
        for (to, bytes) in describe_out {
            if let Err(e) = self.paths.send_to(to, &bytes) {
                tracing::debug!(%to, error = %e, "NAT description request not sent; retried");
            }
        }
        let mut published = false;
        let mut deadline: Option<Instant> = None;
        for (&peer, agent) in agents.iter_mut() {
            if agent.poll_timeout().is_none_or(|t| t <= now) {
                agent.handle_timeout(now);
            }
            while let Some(t) = agent.poll_transmit() {
                match t.via {
                    Via::Socket(to) => {
                        if let Err(e) = self.paths.send_to(to, &t.bytes) {
                            tracing::trace!(%to, error = %e, "ICE send failed; the check is retried");
                        }
                    }
                    Via::Turn { server, peer } => {
                        tracing::debug!(%server, %peer, "no TURN client under the path layer yet; relayed check dropped");
                    }
                }
            }
            while let Some(event) = agent.poll_event() {
                if let IceEvent::PathUsable(path) = event
                    && let Err(e) = self.paths.add_path(peer, path)
                {
                    tracing::debug!(%peer, %path, error = %e, "path not added");
                }
                events.push_back(DriverEvent { peer, event });
                published = true;
            }
            if let Some(t) = agent.poll_timeout() {
                deadline = Some(deadline.map_or(t, |d: Instant| d.min(t)));
            }
        }
        if let Some(t) = describer.as_ref().and_then(NatDescriber::poll_timeout) {
            deadline = Some(deadline.map_or(t, |d: Instant| d.min(t)));
        }
        drop(inner);
        if described {
            self.nat_ready.notify_waiters();
        }
        if published {
            self.event_ready.notify_waiters();
        }
        deadline
    }
}

/// The addresses a shared socket is reachable at: its bound address, or for a
/// wildcard bind the source address the routing table picks toward the
/// Internet (no packet is sent). IPv6 first.
pub(crate) fn host_addresses(local: LocalAddrs) -> Vec<SocketAddr> {
    let probe: [(Option<SocketAddr>, IpAddr); 2] = [
        (
            local.v6,
            IpAddr::V6(Ipv6Addr::new(0x2001, 0x4860, 0, 0, 0, 0, 0, 0x8888)),
        ),
        (local.v4, IpAddr::V4(Ipv4Addr::new(8, 8, 8, 8))),
    ];
    let mut out = Vec::new();
    for (bound, target) in probe {
        let Some(bound) = bound else { continue };
        if !bound.ip().is_unspecified() {
            out.push(bound);
            continue;
        }
        let any = SocketAddr::new(bound.ip(), 0);
        let found = UdpSocket::bind(any)
            .and_then(|s| s.connect((target, 53)).map(|()| s))
            .and_then(|s| s.local_addr());
        match found {
            Ok(a) => out.push(SocketAddr::new(a.ip(), bound.port())),
            Err(e) => {
                tracing::debug!(error = %e, family = ?target, "no route for this family; no host candidate")
            }
        }
    }
    out
}
