//! TURN relays under the path layer: one [`crate::relay::Client`] per server,
//! sharing the path socket.
//!
//! Datagrams from a relay's server address reach [`Relays::handle_input`] (the
//! socket's demultiplexer sorts by source first, RFC 9443). Relayed data that
//! comes out of a client is STUN (path probes, ICE checks) or QUIC, and is
//! handed to the path core with `Via::Turn { server, peer }`, so QUIC sees the
//! peer at its virtual address. Sends on a [`super::PathAddr::Relay`] path go
//! through [`Relays::send`]: a permission and a channel to the peer are
//! requested on first use (and again after a re-allocation), and data goes as
//! ChannelData once the channel is bound, as Send indications before.
//!
//! An allocation that fails or is lost (437 after a relay restart, a refresh
//! that timed out, expiry) is reported ([`PathEvent::RelayLost`]) and made again
//! after a back-off; a relay path that goes quiet triggers an early refresh, so
//! a restarted relay is noticed within seconds rather than at the next
//! scheduled refresh.

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use tokio::sync::mpsc;

use super::addr::{Via, canonical};
use super::core::PathCore;
use super::driver::ReceivedStun;
use super::event::PathEvent;
use crate::relay::{self, Client, Event as TurnEvent, UseError};
use crate::socket::{Route, route};

/// The first wait before allocating again after a failure; it doubles.
const FIRST_RETRY: Duration = Duration::from_secs(1);
/// The longest wait between allocation attempts.
const MAX_RETRY: Duration = Duration::from_secs(30);
/// How long to wait before asking again for a permission or channel the server
/// refused.
const PEER_RETRY: Duration = Duration::from_secs(10);

/// A datagram for a TURN server.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct RelayTransmit {
    pub(crate) to: SocketAddr,
    pub(crate) bytes: Vec<u8>,
}

/// Why a datagram could not go through a relay.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum RelaySendError {
    /// No relay is configured for this server.
    #[error("no TURN relay {0} is configured; call PathHandle::add_relay first")]
    UnknownServer(SocketAddr),
    /// The TURN client refused the datagram (no allocation yet, wrong family).
    #[error("the TURN relay {server} cannot send to {peer}: {source}")]
    Unusable {
        /// The TURN server.
        server: SocketAddr,
        /// The peer.
        peer: SocketAddr,
        /// Why.
        source: UseError,
    },
}

/// Why a relay could not reach one peer.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum RelayPeerError {
    /// The server refused the permission or channel (403: the peer's range is
    /// denied by the relay's policy, for instance).
    #[error(transparent)]
    Refused(relay::Error),
    /// The allocation cannot reach the peer (no relayed address of its family).
    #[error(transparent)]
    Unusable(UseError),
}

/// What [`super::PathHandle::relay`] reports about one TURN relay.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct RelayStatus {
    /// The TURN server.
    pub server: SocketAddr,
    /// Whether an allocation is in place now.
    pub allocated: bool,
    /// Our relayed addresses (give them to peers: they are our
    /// [`super::PathAddr::RemoteRelay`] or their `Relay { peer }` target).
    pub relayed: Vec<SocketAddr>,
    /// Our address as the server saw it.
    pub mapped: Option<SocketAddr>,
    /// Allocations made since the relay was added (more than one: re-allocated).
    pub allocations: u32,
    /// Peers with a permission and channel requested on the current allocation.
    pub peers: Vec<SocketAddr>,
    /// TURN requests sent again for want of an answer since the relay was
    /// added (each cost at least 500 ms): zero unless datagrams to or from the
    /// server were lost.
    pub retransmits: u64,
}

/// One TURN server and our allocation on it.
#[derive(Debug)]
struct RelayEntry {
    config: relay::Config,
    client: Client,
    /// Peers with a permission and a channel requested on this allocation.
    peers: BTreeSet<SocketAddr>,
    /// When to allocate again, after a failure or a loss.
    retry_at: Option<Instant>,
    backoff: Duration,
    /// When to ask again for peers whose permission or channel failed.
    resync_at: Option<Instant>,
    allocations: u32,
    /// Retransmissions of the clients replaced by re-allocations.
    retransmits_before: u64,
}

impl RelayEntry {
    /// Asks for a permission and a channel to `peer`, once per allocation.
    fn ensure_peer(&mut self, now: Instant, peer: SocketAddr) -> Result<(), UseError> {
        if self.peers.contains(&peer) {
            return Ok(());
        }
        self.client.create_permission(now, peer.ip())?;
        self.client.bind_channel(now, peer)?;
        self.peers.insert(peer);
        Ok(())
    }
}

/// The relays of one path socket.
#[derive(Debug, Default)]
pub(crate) struct Relays {
    entries: BTreeMap<SocketAddr, RelayEntry>,
    out: VecDeque<RelayTransmit>,
    /// Set when the peers of allocated relays must be compared with the core's
    /// relay paths (a new allocation, a resync).
    dirty: bool,
}

impl Relays {
    /// Starts allocating on `config.server` (replacing an earlier relay there).
    pub(crate) fn add(&mut self, now: Instant, mut config: relay::Config) {
        config.server = canonical(config.server);
        let server = config.server;
        if let Some(mut old) = self.entries.remove(&server) {
            old.client.release(now);
            self.collect(&mut old);
        }
        let mut entry = RelayEntry {
            client: Client::new(config.clone(), now),
            config,
            peers: BTreeSet::new(),
            retry_at: None,
            backoff: FIRST_RETRY,
            resync_at: None,
            allocations: 0,
            retransmits_before: 0,
        };
        self.collect(&mut entry);
        self.entries.insert(server, entry);
    }

    /// Releases the allocation on `server` and forgets the relay.
    pub(crate) fn remove(&mut self, now: Instant, server: SocketAddr) -> bool {
        let Some(mut entry) = self.entries.remove(&canonical(server)) else {
            return false;
        };
        entry.client.release(now);
        self.collect(&mut entry);
        true
    }

    /// The state of every relay, by server address.
    pub(crate) fn statuses(&self) -> Vec<RelayStatus> {
        self.entries
            .keys()
            .filter_map(|server| self.status(*server))
            .collect()
    }

    /// The state of one relay.
    pub(crate) fn status(&self, server: SocketAddr) -> Option<RelayStatus> {
        let server = canonical(server);
        let e = self.entries.get(&server)?;
        Some(RelayStatus {
            server,
            allocated: e.client.is_allocated(),
            relayed: e.client.relayed_addresses().to_vec(),
            mapped: e.client.mapped_address(),
            allocations: e.allocations,
            peers: e.peers.iter().copied().collect(),
            retransmits: e.retransmits_before + e.client.retransmits(),
        })
    }

    /// Sends `bytes` to `peer` through our allocation on `server`.
    pub(crate) fn send(
        &mut self,
        now: Instant,
        server: SocketAddr,
        peer: SocketAddr,
        bytes: &[u8],
    ) -> Result<(), RelaySendError> {
        let entry = self
            .entries
            .get_mut(&server)
            .ok_or(RelaySendError::UnknownServer(server))?;
        let unusable = |source| RelaySendError::Unusable {
            server,
            peer,
            source,
        };
        let result = entry
            .ensure_peer(now, peer)
            .and_then(|()| entry.client.send_to(now, peer, bytes))
            .map_err(unusable);
        while let Some(t) = entry.client.poll_transmit() {
            self.out.push_back(RelayTransmit {
                to: t.to,
                bytes: t.bytes,
            });
        }
        result
    }

    /// Datagrams for the TURN servers.
    pub(crate) fn transmits(&mut self) -> std::collections::vec_deque::Drain<'_, RelayTransmit> {
        self.out.drain(..)
    }

    /// A datagram from `from`, which is one of the relays' server addresses.
    /// Returns whether a TURN client took it (a Binding answer to someone
    /// else's request, e.g. NAT description, is not taken).
    pub(crate) fn handle_input(&mut self, now: Instant, from: SocketAddr, bytes: &[u8]) -> bool {
        match self.entries.get_mut(&from) {
            Some(entry) => entry.client.handle_input(now, from, bytes),
            None => false,
        }
    }

    /// Applies what the clients report: relayed data to the core (QUIC into
    /// `pending` at the peer's virtual address; STUN to the core's probes or
    /// to `stun`), allocation changes as events; requests permissions and
    /// channels for the core's relay paths on new allocations.
    pub(crate) fn pump(
        &mut self,
        now: Instant,
        core: &mut PathCore,
        pending: &mut VecDeque<(SocketAddr, Vec<u8>)>,
        events: &mut VecDeque<PathEvent>,
        stun: Option<&mpsc::Sender<ReceivedStun>>,
    ) {
        let servers: Vec<SocketAddr> = self.entries.keys().copied().collect();
        for server in servers {
            let Some(mut entry) = self.entries.remove(&server) else {
                continue;
            };
            while let Some(event) = entry.client.poll_event() {
                self.on_event(now, server, &mut entry, event, core, pending, events, stun);
            }
            if self.dirty && entry.client.is_allocated() {
                for peer in core.turn_peers(server) {
                    if let Err(e) = entry.ensure_peer(now, peer) {
                        events.push_back(PathEvent::RelayPeerFailed {
                            server,
                            peer,
                            reason: RelayPeerError::Unusable(e),
                        });
                    }
                }
            }
            self.collect(&mut entry);
            self.entries.insert(server, entry);
        }
        self.dirty = false;
    }

    #[allow(clippy::too_many_arguments)]
    fn on_event(
        &mut self,
        now: Instant,
        server: SocketAddr,
        entry: &mut RelayEntry,
        event: TurnEvent,
        core: &mut PathCore,
        pending: &mut VecDeque<(SocketAddr, Vec<u8>)>,
        events: &mut VecDeque<PathEvent>,
        stun: Option<&mpsc::Sender<ReceivedStun>>,
    ) {
        match event {
            TurnEvent::Data { peer, bytes } => {
                let via = Via::Turn {
                    server,
                    peer: canonical(peer),
                };
                match route(&bytes, false) {
                    Route::Quic => {
                        // Relayed QUIC from a source no peer has is dropped: an
                        // answer with the real address would bypass the relay.
                        if let Some(vaddr) = core.handle_quic(now, via, &bytes) {
                            pending.push_back((vaddr, bytes));
                        }
                    }
                    Route::Stun => {
                        if !core.handle_stun(now, via, &bytes)
                            && let Some(tx) = stun
                        {
                            let _ = tx.try_send(ReceivedStun { from: peer, bytes });
                        }
                    }
                    Route::Turn | Route::Drop => {}
                }
            }
            TurnEvent::Allocated {
                relayed, mapped, ..
            } => {
                tracing::info!(%server, ?relayed, ?mapped, "TURN allocation ready");
                entry.allocations += 1;
                entry.backoff = FIRST_RETRY;
                entry.peers.clear();
                self.dirty = true;
                events.push_back(PathEvent::RelayAllocated {
                    server,
                    relayed,
                    mapped,
                });
            }
            TurnEvent::PermissionFailed { peer, reason } => {
                let failed: Vec<SocketAddr> = entry
                    .peers
                    .iter()
                    .filter(|p| p.ip() == peer)
                    .copied()
                    .collect();
                for p in failed {
                    entry.peers.remove(&p);
                    events.push_back(PathEvent::RelayPeerFailed {
                        server,
                        peer: p,
                        reason: RelayPeerError::Refused(reason.clone()),
                    });
                }
                entry.resync_at = Some(now + PEER_RETRY);
            }
            TurnEvent::ChannelBindFailed { peer, reason } => {
                // The client falls back to Send indications; bind again later.
                tracing::debug!(%server, %peer, %reason, "TURN channel bind failed");
                entry.peers.remove(&peer);
                entry.resync_at = Some(now + PEER_RETRY);
            }
            TurnEvent::Failed { reason } | TurnEvent::AllocationLost { reason } => {
                let retry_in = entry.backoff;
                tracing::warn!(%server, %reason, ?retry_in, "TURN allocation lost; allocating again later");
                entry.peers.clear();
                entry.retry_at = Some(now + retry_in);
                entry.backoff = (entry.backoff * 2).min(MAX_RETRY);
                events.push_back(PathEvent::RelayLost {
                    server,
                    reason,
                    retry_in,
                });
            }
            TurnEvent::Refreshed { .. }
            | TurnEvent::PermissionCreated { .. }
            | TurnEvent::ChannelBound { .. }
            | TurnEvent::Released => {}
        }
    }

    /// A relay path through `server` went quiet: refresh the allocation now, so
    /// a relay that restarted (and forgot it) answers 437 and we allocate again.
    pub(crate) fn path_lost(&mut self, now: Instant, server: SocketAddr) {
        if let Some(mut entry) = self.entries.remove(&server) {
            entry.client.refresh(now);
            self.collect(&mut entry);
            self.entries.insert(server, entry);
        }
    }

    /// Marks the relays' peers for comparison with the core's relay paths.
    pub(crate) fn resync(&mut self) {
        self.dirty = true;
    }

    /// Retransmits, refreshes, re-allocates.
    pub(crate) fn handle_timeout(&mut self, now: Instant) {
        let servers: Vec<SocketAddr> = self.entries.keys().copied().collect();
        for server in servers {
            let Some(mut entry) = self.entries.remove(&server) else {
                continue;
            };
            if entry.retry_at.is_some_and(|t| t <= now) {
                entry.retry_at = None;
                tracing::info!(%server, "allocating again on the TURN relay");
                entry.retransmits_before += entry.client.retransmits();
                entry.client = Client::new(entry.config.clone(), now);
            }
            if entry.resync_at.is_some_and(|t| t <= now) {
                entry.resync_at = None;
                self.dirty = true;
            }
            if entry.client.poll_timeout().is_some_and(|t| t <= now) {
                entry.client.handle_timeout(now);
            }
            self.collect(&mut entry);
            self.entries.insert(server, entry);
        }
    }

    /// The next deadline of any relay.
    pub(crate) fn poll_timeout(&self) -> Option<Instant> {
        self.entries
            .values()
            .flat_map(|e| [e.client.poll_timeout(), e.retry_at, e.resync_at])
            .flatten()
            .min()
    }

    fn collect(&mut self, entry: &mut RelayEntry) {
        while let Some(t) = entry.client.poll_transmit() {
            self.out.push_back(RelayTransmit {
                to: t.to,
                bytes: t.bytes,
            });
        }
    }
}
