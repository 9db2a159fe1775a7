//! Connection attempts by offer and answer, whatever carries them: the
//! rendezvous server ([`super::Rendezvous`]) or the game's own channel
//! (blobs, [`Endpoint::create_offer`] / [`Endpoint::apply_signal`]).
//!
//! One [`Signalling`] per endpoint owns the ICE driver (the path layer has one
//! STUN consumer) and one attempt per peer: its role, its attempt number, and
//! how to trickle candidates found later. Both carriers use the same steps:
//! an agent with our host, server-reflexive and relayed candidates; the peer's
//! relayed candidates become relay paths through our allocations at once
//! (relay-first); direct paths come as ICE checks prove them; the offering
//! side dials QUIC to the PeerId it offered to, so a forged answer cannot make
//! it connect to another identity (the RFC 7250 handshake checks the key).

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard, Weak};
use std::time::Duration;

use tokio::sync::Notify;
use tracing::debug;

use super::endpoint::{Endpoint, Shared};
use super::{PeerId, SessionError};
use crate::diag::nat64::Nat64Prefix;
use crate::diag::portmap_udp::{UdpMapping, unmap_udp};
use crate::ice::{IceConfig, IceDriver, IceEvent, host_addresses};
use crate::path::{PathAddr, PeerKey};
use crate::signal::{Candidate, CandidateKind, Role, Signal};

/// Our own addresses for a new agent, besides the host candidates.
#[derive(Debug, Clone, Default)]
pub(crate) struct Local {
    /// Our address as servers saw it (server-reflexive candidates).
    pub(crate) mapped: Vec<SocketAddr>,
    /// Our relay allocations: the server and our relayed addresses on it.
    pub(crate) relays: Vec<(SocketAddr, Vec<SocketAddr>)>,
}

/// Open attempts at most; a new one beyond this ends the oldest (offers from a
/// lobby member cost an ICE agent each, so their number is bounded).
const MAX_ATTEMPTS: usize = 256;

/// Sends a trickle update (a blob) to the peer.
pub(crate) type Trickle = Arc<dyn Fn(PeerId, Vec<u8>) + Send + Sync>;

/// Who carries an attempt's signals.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Origin {
    /// The rendezvous server at this address.
    Rendezvous(SocketAddr),
    /// The game, as blobs.
    Blob,
}

/// One peer's connection attempt, keyed by its virtual address.
struct Attempt {
    created: std::time::Instant,
    peer: PeerId,
    role: Role,
    attempt: u64,
    answered: bool,
    failed: Option<String>,
    origin: Origin,
    relays: Vec<(SocketAddr, Vec<SocketAddr>)>,
    trickle: Option<Trickle>,
}

/// What applying a peer's signal did.
#[derive(Debug)]
pub(crate) enum Applied {
    /// An offer opened a new attempt: send this answer back.
    Answer(Signal),
    /// The first answer to our offer: the offering side connects now.
    Answered,
    /// More candidates for a known attempt (a trickle update, a repeat).
    Update,
    /// The peer's offer crossed ours and lost (the smaller PeerId's offer wins):
    /// it was not applied; the peer answers ours instead.
    Crossed,
}

/// What the network lends every attempt of this endpoint: a router port
/// mapping of the shared socket, and NAT64 on an IPv6-only network.
#[derive(Default)]
struct Network {
    /// The port-mapped candidate (external, base) and what deletes it.
    port_mapped: Option<(SocketAddr, SocketAddr, UdpMapping)>,
    /// The NAT64 prefix: the peer's IPv4 candidates get synthesized twins.
    nat64: Option<Nat64Prefix>,
    /// Our IPv4 address as seen through the NAT64, signalled as is.
    translated: Option<Candidate>,
}

impl Drop for Network {
    fn drop(&mut self) {
        if let Some((_, _, mapping)) = self.port_mapped.take() {
            // Best effort and off the async runtime; unanswered, it expires.
            let _ = std::thread::Builder::new()
                .name("tsunagi-unmap".into())
                .spawn(move || unmap_udp(&mapping, Duration::from_millis(500)));
        }
    }
}

/// The attempts of one endpoint.
pub(crate) struct Signalling {
    shared: Weak<Shared>,
    me: [u8; 32],
    ice: IceDriver,
    attempts: Mutex<HashMap<SocketAddr, Attempt>>,
    network: Mutex<Network>,
    /// Wakes waiters: an answer, a failure, a usable path.
    changed: Notify,
}

impl std::fmt::Debug for Signalling {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Signalling")
            .field("attempts", &self.lock().len())
            .finish_non_exhaustive()
    }
}

pub(crate) fn random_u64() -> u64 {
    let mut b = [0u8; 8];
    // A predictable value only makes attempts guessable, never wrong.
    let _ = getrandom::fill(&mut b);
    u64::from_le_bytes(b)
}

impl Signalling {
    /// Starts the ICE driver on the endpoint's path layer. Call inside its runtime.
    pub(crate) fn start(shared: &Shared, weak: Weak<Shared>) -> Arc<Signalling> {
        let signalling = Arc::new(Signalling {
            shared: weak,
            me: *shared.config.identity.peer_id().public_key(),
            ice: IceDriver::start(shared.paths.clone()),
            attempts: Mutex::new(HashMap::new()),
            network: Mutex::new(Network::default()),
            changed: Notify::new(),
        });
        tokio::spawn(ice_events(Arc::downgrade(&signalling)));
        signalling
    }

    /// Describes our NAT through `server`'s RFC 5780 addresses (see
    /// [`IceDriver::describe_nat`]); agents started afterwards carry it.
    pub(crate) async fn describe_nat(
        &self,
        server: SocketAddr,
        timeout: std::time::Duration,
    ) -> Option<crate::signal::NatDescription> {
        self.ice.describe_nat(server, timeout).await
    }

    fn lock(&self) -> MutexGuard<'_, HashMap<SocketAddr, Attempt>> {
        self.attempts.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn network(&self) -> MutexGuard<'_, Network> {
        self.network.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// A router port mapping of the shared socket: a port-mapped candidate
    /// for every agent, present (trickled) and future. Deleted with `self`.
    pub(crate) fn set_port_mapping(&self, mapping: UdpMapping) {
        let external = SocketAddr::V4(mapping.external);
        let base = SocketAddr::V4(mapping.internal);
        debug!(%external, %base, protocol = ?mapping.protocol, "port-mapped candidate");
        let old = self
            .network()
            .port_mapped
            .replace((external, base, mapping));
        if let Some((_, _, old)) = old {
            // Off this task: the exchange blocks (briefly).
            let _ = std::thread::Builder::new()
                .name("tsunagi-unmap".into())
                .spawn(move || unmap_udp(&old, Duration::from_millis(500)));
        }
        let peers: Vec<SocketAddr> = self.lock().keys().copied().collect();
        for vaddr in peers {
            let added = self
                .ice
                .with_agent(vaddr, |agent| agent.add_port_mapped(external, base));
            if let Some(Err(e)) = added {
                debug!(%external, error = %e, "port-mapped candidate not added");
            }
        }
    }

    /// The network's NAT64 prefix (see `session::nat64`).
    pub(crate) fn set_nat64(&self, prefix: Option<Nat64Prefix>) {
        self.network().nat64 = prefix;
    }

    /// The NAT64 prefix, if this host is on an IPv6-only network with NAT64.
    pub(crate) fn nat64(&self) -> Option<Nat64Prefix> {
        self.network().nat64
    }

    /// Our IPv4 address as a server saw it through the NAT64: signalled to
    /// peers (the agent cannot hold it, its base being IPv6).
    pub(crate) fn set_translated(&self, mapped: SocketAddr) {
        self.network().translated = super::nat64::translated_candidate(mapped);
    }

    fn endpoint(&self) -> Option<Endpoint> {
        self.shared.upgrade().map(Endpoint::from_shared)
    }

    /// A new attempt (replacing any earlier one to the peer) with an ICE agent
    /// holding our host, server-reflexive and relayed candidates.
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn start_agent(
        &self,
        vaddr: SocketAddr,
        peer: PeerId,
        role: Role,
        attempt: u64,
        local: &Local,
        origin: Origin,
        trickle: Option<Trickle>,
    ) {
        let controlling = role == Role::Offer;
        let mut agent = self
            .ice
            .new_agent(IceConfig::default(), controlling, random_u64());
        if let Some(endpoint) = self.endpoint() {
            let hosts = host_addresses(endpoint.path_handle().local_addrs());
            for mapped in &local.mapped {
                let base = hosts.iter().find(|b| b.is_ipv4() == mapped.is_ipv4());
                if let Some(&base) = base
                    && base != *mapped
                    && let Err(e) = agent.add_server_reflexive(*mapped, base)
                {
                    debug!(%mapped, error = %e, "server-reflexive candidate not added");
                }
            }
        }
        for (server, relayed) in &local.relays {
            for relayed in relayed {
                if let Err(e) = agent.add_relayed(*server, *relayed) {
                    debug!(%relayed, error = %e, "relayed candidate not added");
                }
            }
        }
        let port_mapped = self.network().port_mapped.as_ref().map(|m| (m.0, m.1));
        if let Some((external, base)) = port_mapped
            && let Err(e) = agent.add_port_mapped(external, base)
        {
            debug!(%external, error = %e, "port-mapped candidate not added");
        }
        let evicted = {
            let mut attempts = self.lock();
            let oldest = (attempts.len() >= MAX_ATTEMPTS && !attempts.contains_key(&vaddr))
                .then(|| {
                    attempts
                        .iter()
                        .min_by_key(|(_, a)| a.created)
                        .map(|(v, _)| *v)
                })
                .flatten();
            if let Some(old) = oldest {
                attempts.remove(&old);
            }
            oldest
        };
        if let Some(old) = evicted {
            debug!(%old, "too many open attempts: the oldest ended");
            self.ice.remove_peer(old);
        }
        self.ice.add_peer(vaddr, agent);
        self.lock().insert(
            vaddr,
            Attempt {
                created: std::time::Instant::now(),
                peer,
                role,
                attempt,
                answered: false,
                failed: None,
                origin,
                relays: local.relays.clone(),
                trickle,
            },
        );
    }

    /// The peer an attempt at virtual address `vaddr` was made with, if any: an
    /// incoming session there must prove this identity.
    pub(crate) fn peer_at(&self, vaddr: SocketAddr) -> Option<PeerId> {
        self.lock().get(&vaddr).map(|a| a.peer)
    }

    /// Our offer or answer (every candidate so far) for the attempt at `vaddr`.
    pub(crate) fn signal(&self, vaddr: SocketAddr) -> Result<Signal, SessionError> {
        let (role, attempt) = self
            .lock()
            .get(&vaddr)
            .map(|a| (a.role, a.attempt))
            .ok_or_else(|| SessionError::Rendezvous("no attempt for this peer".into()))?;
        let mut signal = self
            .ice
            .signal(vaddr, role, self.me, attempt)
            .ok_or_else(|| SessionError::Rendezvous("no ICE agent for this peer".into()))?;
        signal.candidates.extend(self.network().translated.clone());
        Ok(signal)
    }

    /// Applies a signal from `peer`: an offer opens an attempt (answered with
    /// our candidates), an answer completes ours, anything else adds
    /// candidates. `local` is used for a new attempt.
    pub(crate) fn apply(
        &self,
        peer: PeerId,
        signal: &Signal,
        local: &Local,
        origin: Origin,
        trickle: Option<Trickle>,
    ) -> Result<Applied, SessionError> {
        // The peer's relayed candidates become our relay paths to them
        // (`add_relay_paths`), not ICE pairs: sending to a relayed address
        // straight from our socket needs a permission for our address on the
        // peer's allocation, which nobody asks for, and the relay delivers
        // what gets through from an address the peer does not know.
        let mut for_ice = signal.clone();
        for_ice
            .candidates
            .retain(|c| c.kind != CandidateKind::Relayed);
        if let Some(prefix) = self.nat64() {
            let twins = super::nat64::twins(prefix, &for_ice.candidates);
            for_ice.candidates.extend(twins);
        }
        let Some(endpoint) = self.endpoint() else {
            return Err(SessionError::Closed);
        };
        let vaddr = endpoint
            .path_handle()
            .add_peer(&PeerKey(*peer.public_key()));
        let known = self
            .lock()
            .get(&vaddr)
            .map(|a| (a.attempt, a.role, a.answered, a.origin));
        let me = PeerId::from_public_key(self.me);
        match (signal.role, known) {
            (Role::Offer, Some((attempt, _, _, _))) if attempt == signal.attempt => {}
            (Role::Offer, known) => {
                if let Some((_, Role::Offer, false, Origin::Blob)) = known
                    && origin == Origin::Blob
                    && me < peer
                {
                    debug!(peer = %peer.short(), "crossed offers: ours wins (smaller PeerId)");
                    return Ok(Applied::Crossed);
                }
                self.start_agent(
                    vaddr,
                    peer,
                    Role::Answer,
                    signal.attempt,
                    local,
                    origin,
                    trickle,
                );
                self.ice
                    .apply_remote(vaddr, &for_ice)
                    .map_err(|e| signal_error(peer, e))?;
                self.add_relay_paths(&endpoint, vaddr, peer, signal);
                return self.signal(vaddr).map(Applied::Answer);
            }
            (Role::Answer, None) => return Err(SessionError::AnswerWithoutOffer(peer)),
            (Role::Answer, Some((attempt, role, _, _)))
                if attempt != signal.attempt || role != Role::Offer =>
            {
                return Err(SessionError::UnknownAttempt {
                    peer,
                    attempt: signal.attempt,
                });
            }
            (Role::Answer, Some(_)) => {}
        }
        self.ice
            .apply_remote(vaddr, &for_ice)
            .map_err(|e| signal_error(peer, e))?;
        self.add_relay_paths(&endpoint, vaddr, peer, signal);
        let first_answer = signal.role == Role::Answer
            && self.lock().get_mut(&vaddr).is_some_and(|a| {
                let first = !a.answered;
                a.answered = true;
                first
            });
        self.changed.notify_waiters();
        Ok(if first_answer {
            Applied::Answered
        } else {
            Applied::Update
        })
    }

    /// Relay paths to the peer's relayed candidates through each of our
    /// allocations of the same family (relay-first); direct paths are added by
    /// ICE as its checks succeed.
    fn add_relay_paths(
        &self,
        endpoint: &Endpoint,
        vaddr: SocketAddr,
        peer: PeerId,
        signal: &Signal,
    ) {
        let ours = self
            .lock()
            .get(&vaddr)
            .map(|a| a.relays.clone())
            .unwrap_or_default();
        let relay_paths: Vec<PathAddr> = signal
            .candidates
            .iter()
            .filter(|c| c.kind == CandidateKind::Relayed)
            .flat_map(|c| {
                ours.iter()
                    .filter(|(_, relayed)| relayed.iter().any(|r| r.is_ipv4() == c.addr.is_ipv4()))
                    .map(|(server, _)| PathAddr::Relay {
                        server: *server,
                        peer: c.addr,
                    })
                    .collect::<Vec<_>>()
            })
            .collect();
        if let Err(e) = endpoint.add_paths(peer, &relay_paths) {
            debug!(peer = %peer.short(), error = %e, "relay path not added");
        }
    }

    /// Waits until our offer at `vaddr` is answered (`Ok(true)`), the carrier
    /// reported it undeliverable (`Err`), or `deadline` passed (`Ok(false)`).
    pub(crate) async fn wait_answer(
        &self,
        vaddr: SocketAddr,
        deadline: tokio::time::Instant,
    ) -> Result<bool, String> {
        loop {
            let notified = self.changed.notified();
            if let Some(a) = self.lock().get(&vaddr) {
                if let Some(f) = &a.failed {
                    return Err(f.clone());
                }
                if a.answered {
                    return Ok(true);
                }
            }
            if tokio::time::timeout_at(deadline, notified).await.is_err() {
                return Ok(false);
            }
        }
    }

    /// The paths to dial once the answer is in: those already in the path
    /// table (relay paths, proven direct ones), waiting for ICE to prove one
    /// if there are none yet (no relay configured). Empty at `deadline`.
    pub(crate) async fn remote_paths(
        &self,
        vaddr: SocketAddr,
        deadline: tokio::time::Instant,
    ) -> Vec<PathAddr> {
        loop {
            let notified = self.changed.notified();
            let known: Vec<PathAddr> = self
                .endpoint()
                .and_then(|e| e.path_handle().stats(vaddr))
                .map(|s| s.paths.iter().map(|p| p.path).collect())
                .unwrap_or_default();
            if !known.is_empty() {
                return known;
            }
            if tokio::time::timeout_at(deadline, notified).await.is_err() {
                return Vec::new();
            }
        }
    }

    /// The carrier could not deliver to `to`: unanswered offers it carried fail.
    pub(crate) fn fail_unanswered(&self, to: [u8; 32], origin: Origin, reason: &str) {
        for a in self.lock().values_mut() {
            if *a.peer.public_key() == to && a.origin == origin && !a.answered {
                a.failed = Some(reason.to_owned());
            }
        }
        self.changed.notify_waiters();
    }

    /// Trickles new local candidates to the peer whose agent found them (if its
    /// carrier trickles); wakes path waiters when a path became usable.
    fn on_ice(&self, vaddr: SocketAddr, event: IceEvent) {
        match event {
            IceEvent::LocalCandidates(candidates) => {
                let Some((peer, role, attempt, trickle)) = self
                    .lock()
                    .get(&vaddr)
                    .map(|a| (a.peer, a.role, a.attempt, a.trickle.clone()))
                else {
                    return;
                };
                let Some(trickle) = trickle else {
                    debug!(peer = %peer.short(), n = candidates.len(), "late candidates not sent: the blob carrier does not trickle");
                    return;
                };
                let update = self.ice.with_agent(vaddr, |agent| {
                    agent.trickle(role, self.me, attempt, candidates)
                });
                if let Some(Ok(blob)) = update.map(|s| s.to_blob()) {
                    trickle(peer, blob);
                }
            }
            IceEvent::PathUsable(_) | IceEvent::Nominated(_) => self.changed.notify_waiters(),
            _ => {}
        }
    }
}

fn signal_error(peer: PeerId, e: crate::ice::IceError) -> SessionError {
    SessionError::SignalRefused {
        peer,
        reason: e.to_string(),
    }
}

/// Hands the ICE driver's events to [`Signalling::on_ice`]; ends with it.
async fn ice_events(signalling: Weak<Signalling>) {
    loop {
        let Some(ice) = signalling.upgrade().map(|s| s.ice.clone()) else {
            return;
        };
        let event = tokio::time::timeout(Duration::from_secs(1), ice.next_event()).await;
        drop(ice);
        let Some(this) = signalling.upgrade() else {
            return;
        };
        if let Ok(e) = event {
            this.on_ice(e.peer, e.event);
        }
    }
}
