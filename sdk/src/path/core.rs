//! The sans-IO path core: the table of peers and paths, probing, liveness,
//! selection. Time comes in as `now`; datagrams to send and events come out.

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::net::SocketAddr;
use std::time::Instant;

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use super::addr::{PathAddr, PeerKey, Via, canonical, inbound_virtual_addr, virtual_addr};
use super::error::PathError;
use super::event::{PathConfig, PathEvent, PeerStats};
use super::probe::{self, Probe};
use super::table::{CIDS_PER_PEER, Cid, PathEntry, PeerEntry, SUSPECT_AFTER_MISSES};
use crate::socket::{QUIC_CID_LEN, is_quic_initial, is_quic_short_header};
use crate::stun::TransactionId;

/// A datagram the core wants sent (a probe or a probe answer).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CoreTransmit {
    /// How it travels.
    pub via: Via,
    /// The datagram.
    pub bytes: Vec<u8>,
}

/// Where QUIC's datagram for a destination goes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SendRoute {
    /// Over the peer's active path.
    Path(Via),
    /// No path is live yet: over every candidate path (QUIC drops duplicates),
    /// so the handshake starts at once over whichever path works first.
    Flood(Vec<Via>),
    /// Not a virtual address: a real address, sent as it is.
    NotVirtual(SocketAddr),
    /// A virtual address with no candidate path: dropped (QUIC retransmits).
    NoPath,
}

#[derive(Debug, Clone, Copy)]
struct Outstanding {
    peer: SocketAddr,
    via: Via,
    sent: Instant,
}

/// The path table of one [`super::PathSocket`], as a sans-IO state machine.
///
/// Feed it received STUN ([`PathCore::handle_stun`]) and QUIC
/// ([`PathCore::handle_quic`]) with the [`Via`] they came by, and the time
/// ([`PathCore::handle_timeout`]); ask it where QUIC's datagrams go
/// ([`PathCore::route`]); poll it for probes to send
/// ([`PathCore::poll_transmit`]), events ([`PathCore::poll_event`]) and its
/// next deadline ([`PathCore::poll_timeout`]).
#[derive(Debug)]
pub struct PathCore {
    config: PathConfig,
    rng: StdRng,
    peers: BTreeMap<SocketAddr, PeerEntry>,
    by_via: BTreeMap<Via, SocketAddr>,
    by_cid: BTreeMap<Cid, SocketAddr>,
    probes: BTreeMap<TransactionId, Outstanding>,
    relays: BTreeSet<SocketAddr>,
    inbound_count: u64,
    transmits: VecDeque<CoreTransmit>,
    events: VecDeque<PathEvent>,
    /// The NAT keepalive interval: live paths are probed at least this often.
    keepalive: Option<std::time::Duration>,
}

impl PathCore {
    /// A core with no peers. `seed` drives probe transaction IDs (seed from the
    /// OS in production, fixed in simulations).
    pub fn new(config: PathConfig, seed: u64) -> PathCore {
        PathCore {
            config,
            rng: StdRng::seed_from_u64(seed),
            peers: BTreeMap::new(),
            by_via: BTreeMap::new(),
            by_cid: BTreeMap::new(),
            probes: BTreeMap::new(),
            relays: BTreeSet::new(),
            inbound_count: 0,
            transmits: VecDeque::new(),
            events: VecDeque::new(),
            keepalive: None,
        }
    }

    /// The NAT keepalive interval (see [`crate::keepalive`]): a probe on a
    /// live path is also its keepalive, so probes come at least this often
    /// even with a longer `probe_interval`. `None`: `probe_interval` alone.
    pub fn set_keepalive_interval(&mut self, interval: Option<std::time::Duration>) {
        self.keepalive = interval;
    }

    /// The configuration.
    pub fn config(&self) -> &PathConfig {
        &self.config
    }

    /// Adds the peer with this key (or finds it) and returns its virtual address.
    pub fn add_peer(&mut self, key: &PeerKey) -> SocketAddr {
        let addr = virtual_addr(key);
        self.peers
            .entry(addr)
            .or_insert_with(|| PeerEntry::new(addr, Some(*key), false));
        addr
    }

    /// Forgets a peer and its paths. Returns whether it existed.
    pub fn remove_peer(&mut self, peer: SocketAddr) -> bool {
        let Some(entry) = self.peers.remove(&peer) else {
            return false;
        };
        for p in &entry.paths {
            self.by_via.remove(&p.via);
        }
        for cid in &entry.cids {
            self.by_cid.remove(cid);
        }
        self.probes.retain(|_, o| o.peer != peer);
        true
    }

    /// Declares a TURN server through which [`PathAddr::Relay`] paths may go.
    pub fn add_relay(&mut self, server: SocketAddr) {
        self.relays.insert(canonical(server));
    }

    /// Forgets a TURN server: its datagrams are no longer taken for TURN.
    pub fn remove_relay(&mut self, server: SocketAddr) -> bool {
        self.relays.remove(&canonical(server))
    }

    /// The peers (as the relay sees them) of every path through our
    /// allocation on `server`.
    pub fn turn_peers(&self, server: SocketAddr) -> Vec<SocketAddr> {
        let server = canonical(server);
        self.by_via
            .keys()
            .filter_map(|via| match *via {
                Via::Turn { server: s, peer } if s == server => Some(peer),
                _ => None,
            })
            .collect()
    }

    /// Adds a candidate path to a peer; it is probed at once.
    pub fn add_path(
        &mut self,
        now: Instant,
        peer: SocketAddr,
        path: PathAddr,
    ) -> Result<(), PathError> {
        let via = path.via();
        if let Via::Turn { server, .. } = via
            && !self.relays.contains(&server)
        {
            return Err(PathError::UnknownRelay { server, path });
        }
        if let Some(&owner) = self.by_via.get(&via) {
            if owner == peer {
                return Ok(());
            }
            return Err(PathError::PathTaken { path, owner });
        }
        let entry = self
            .peers
            .get_mut(&peer)
            .ok_or(PathError::UnknownPeer(peer))?;
        if entry.paths.len() >= self.config.max_paths_per_peer {
            return Err(PathError::TooManyPaths {
                peer,
                max: self.config.max_paths_per_peer,
            });
        }
        entry.paths.push(PathEntry::new(path, now, &self.config));
        self.by_via.insert(via, peer);
        tracing::debug!(%peer, %path, "path added");
        Ok(())
    }

    /// Removes a path from a peer. Returns whether it existed.
    pub fn remove_path(&mut self, now: Instant, peer: SocketAddr, path: PathAddr) -> bool {
        let via = path.via();
        let Some(entry) = self.peers.get_mut(&peer) else {
            return false;
        };
        let Some(i) = entry.path_index(&via) else {
            return false;
        };
        entry.paths.remove(i);
        entry.active = match entry.active {
            Some(a) if a == i => None,
            Some(a) if a > i => Some(a - 1),
            other => other,
        };
        self.by_via.remove(&via);
        self.reselect(now, peer);
        true
    }

    /// Probes every path of `peer` now (after a network change, say).
    pub fn probe_now(&mut self, now: Instant, peer: SocketAddr) -> Result<(), PathError> {
        let entry = self
            .peers
            .get_mut(&peer)
            .ok_or(PathError::UnknownPeer(peer))?;
        for p in &mut entry.paths {
            p.next_probe = now;
            p.retry = self.config.initial_retry;
        }
        Ok(())
    }

    /// The peers' virtual addresses.
    pub fn peers(&self) -> impl Iterator<Item = SocketAddr> + '_ {
        self.peers.keys().copied()
    }

    /// Whether `via` is a TURN server's address (its datagrams are TURN).
    pub fn is_relay_server(&self, addr: SocketAddr) -> bool {
        self.relays.contains(&canonical(addr))
    }

    /// Statistics of one peer.
    pub fn stats(&self, now: Instant, peer: SocketAddr) -> Option<PeerStats> {
        Some(self.peers.get(&peer)?.stats(now, &self.config))
    }

    /// Where QUIC's datagram to `destination` goes; counts `bytes` in `packets`
    /// datagrams against the path taken (each candidate, while flooding).
    pub fn route(&mut self, destination: SocketAddr, bytes: usize, packets: usize) -> SendRoute {
        let Some(entry) = self.peers.get_mut(&destination) else {
            return SendRoute::NotVirtual(canonical(destination));
        };
        if let Some(p) = entry.active.and_then(|i| entry.paths.get_mut(i)) {
            p.packets_sent += packets as u64;
            p.bytes_sent += bytes as u64;
            return SendRoute::Path(p.via);
        }
        if entry.paths.is_empty() {
            return SendRoute::NoPath;
        }
        // Flooded datagrams go out on every candidate: count them on each.
        for p in &mut entry.paths {
            p.packets_sent += packets as u64;
            p.bytes_sent += bytes as u64;
        }
        SendRoute::Flood(entry.paths.iter().map(|p| p.via).collect())
    }

    /// A QUIC datagram arrived by `via`. Returns the virtual address to hand it
    /// to QUIC with, or `None` to hand it over with its real source address.
    ///
    /// Unknown sources: a short-header packet whose destination connection ID
    /// belongs to a known peer is that peer on a new path (NAT rebinding); the
    /// path is added, probed, and used once a probe confirms it. A long-header
    /// Initial creates an inbound peer with a fresh virtual address
    /// ([`PathEvent::PeerDiscovered`]). Anything else keeps its real address.
    pub fn handle_quic(&mut self, now: Instant, via: Via, datagram: &[u8]) -> Option<SocketAddr> {
        let cid = short_header_cid(datagram);
        let peer = match self.by_via.get(&via) {
            Some(&peer) => peer,
            None => {
                let known = cid.or_else(|| long_header_cids(datagram).0);
                self.discover(now, via, datagram, known)?
            }
        };
        let entry = self.peers.get_mut(&peer)?;
        if let Some(i) = entry.path_index(&via)
            && let Some(p) = entry.paths.get_mut(i)
        {
            p.last_seen = Some(now);
            p.packets_received += 1;
            p.bytes_received += datagram.len() as u64;
        }
        if let Some(cid) = cid {
            self.remember_cid(peer, cid);
        }
        Some(peer)
    }

    /// Records that connection ID `cid` belongs to `peer` (at most
    /// [`CIDS_PER_PEER`] per peer, newest first).
    fn remember_cid(&mut self, peer: SocketAddr, cid: Cid) {
        let Some(entry) = self.peers.get_mut(&peer) else {
            return;
        };
        if entry.cids.front() == Some(&cid) {
            return;
        }
        entry.cids.retain(|c| *c != cid);
        entry.cids.push_front(cid);
        if entry.cids.len() > CIDS_PER_PEER
            && let Some(old) = entry.cids.pop_back()
        {
            self.by_cid.remove(&old);
        }
        self.by_cid.insert(cid, peer);
    }

    /// QUIC is sending `datagram` to `destination`: a long-header packet names
    /// our source connection ID, which the peer's handshake replies carry as
    /// their destination ID. Remembered, a reply that arrives by a path we do
    /// not know yet (the peer's ICE proved it first) is that peer on a new
    /// path, not a new inbound peer.
    pub fn note_sent(&mut self, destination: SocketAddr, datagram: &[u8]) {
        if let Some(scid) = long_header_cids(datagram).1
            && self.peers.contains_key(&destination)
        {
            self.remember_cid(destination, scid);
        }
    }

    fn discover(
        &mut self,
        now: Instant,
        via: Via,
        datagram: &[u8],
        cid: Option<Cid>,
    ) -> Option<SocketAddr> {
        let path = match via {
            Via::Socket(a) => PathAddr::Direct(a),
            Via::Turn { server, peer } => PathAddr::Relay { server, peer },
        };
        if let Some(peer) = cid.and_then(|c| self.by_cid.get(&c).copied()) {
            if self.add_path(now, peer, path).is_ok() {
                if let Some(p) = self.peers.get_mut(&peer).and_then(|e| e.paths.last_mut()) {
                    p.discovered_at = Some(now);
                }
                tracing::info!(%peer, %path, "peer seen on a new path (NAT rebinding?)");
                self.events
                    .push_back(PathEvent::PathDiscovered { peer, path });
            }
            return Some(peer);
        }
        if !is_quic_initial(datagram) {
            return None;
        }
        let inbound = self.peers.values().filter(|p| p.inbound).count();
        if inbound >= self.config.max_inbound_peers {
            tracing::warn!(%path, "too many inbound peers; not giving this one a virtual address");
            return None;
        }
        let from = match via {
            Via::Socket(a) | Via::Turn { peer: a, .. } => a,
        };
        let peer = inbound_virtual_addr(from, self.inbound_count);
        self.inbound_count += 1;
        self.peers.insert(peer, PeerEntry::new(peer, None, true));
        self.add_path(now, peer, path).ok()?;
        tracing::info!(%peer, %path, "new inbound peer");
        self.events
            .push_back(PathEvent::PeerDiscovered { peer, from: path });
        Some(peer)
    }

    /// A STUN message arrived by `via`. Returns whether it was a path probe or
    /// the answer to one (consumed); other STUN is for ICE or diagnosis.
    pub fn handle_stun(&mut self, now: Instant, via: Via, datagram: &[u8]) -> bool {
        match probe::parse(datagram) {
            Some(Probe::Request(tid)) => {
                let seen_from = match via {
                    Via::Socket(a) | Via::Turn { peer: a, .. } => a,
                };
                self.transmits.push_back(CoreTransmit {
                    via,
                    bytes: probe::response(tid, seen_from),
                });
                true
            }
            Some(Probe::Response(tid)) => {
                let Some(out) = self.probes.remove(&tid) else {
                    return false;
                };
                if out.via == via {
                    self.probe_answered(now, out);
                }
                true
            }
            None => false,
        }
    }

    fn probe_answered(&mut self, now: Instant, out: Outstanding) {
        let Some(entry) = self.peers.get_mut(&out.peer) else {
            return;
        };
        let Some(p) = entry
            .path_index(&out.via)
            .and_then(|i| entry.paths.get_mut(i))
        else {
            return;
        };
        p.confirmed = true;
        p.last_seen = Some(now);
        p.probes_answered += 1;
        if p.is_suspect() {
            tracing::debug!(peer = %out.peer, path = %p.addr, "path answers again");
        }
        p.misses = 0;
        p.answer_due = None;
        p.rtt_sample(now.saturating_duration_since(out.sent));
        p.retry = self.config.initial_retry;
        self.reselect(now, out.peer);
    }

    /// Sends due probes, expires silent paths and re-selects.
    pub fn handle_timeout(&mut self, now: Instant) {
        let live_timeout = self.config.live_timeout;
        self.probes
            .retain(|_, o| now.saturating_duration_since(o.sent) < live_timeout);
        let mut due = Vec::new();
        for (peer, entry) in &mut self.peers {
            for p in &mut entry.paths {
                if let Some((sent, due)) = p.answer_due
                    && due <= now
                {
                    p.answer_due = None;
                    // QUIC packets that came by the path since count as an
                    // answer: a busy path on a lossy link is not suspect.
                    let heard = p.last_seen.is_some_and(|t| t > sent);
                    if heard {
                        p.misses = 0;
                    } else if p.is_live(now, &self.config) {
                        p.misses += 1;
                        if p.misses == SUSPECT_AFTER_MISSES {
                            tracing::debug!(%peer, path = %p.addr, "probes unanswered; path suspect");
                        }
                        // Ask again at once: one lost probe is not a dead path.
                        if p.misses < SUSPECT_AFTER_MISSES {
                            p.next_probe = now;
                        }
                    }
                }
                if p.next_probe <= now {
                    if p.answer_due.is_none() && p.is_live(now, &self.config) {
                        p.answer_due = Some((now, now + p.probe_timeout(&self.config)));
                    }
                    due.push((*peer, p.via));
                    let wait = if p.is_live(now, &self.config) {
                        self.keepalive.map_or(self.config.probe_interval, |k| {
                            self.config.probe_interval.min(k)
                        })
                    } else {
                        let wait = p.retry;
                        p.retry = (p.retry * 2).min(self.config.probe_interval);
                        wait
                    };
                    p.next_probe = now + wait;
                    p.probes_sent += 1;
                }
            }
        }
        for (peer, via) in due {
            let tid = TransactionId::new(self.rng.random());
            self.probes.insert(
                tid,
                Outstanding {
                    peer,
                    via,
                    sent: now,
                },
            );
            self.transmits.push_back(CoreTransmit {
                via,
                bytes: probe::request(tid),
            });
        }
        let peers: Vec<SocketAddr> = self.peers.keys().copied().collect();
        for peer in peers {
            self.reselect(now, peer);
        }
    }

    /// Reports liveness transitions and switches the active path if needed.
    fn reselect(&mut self, now: Instant, peer: SocketAddr) {
        let Some(entry) = self.peers.get_mut(&peer) else {
            return;
        };
        for p in &mut entry.paths {
            let live = p.is_live(now, &self.config);
            if live != p.was_live {
                p.was_live = live;
                let (path, kind) = (p.addr, p.kind());
                self.events.push_back(if live {
                    tracing::debug!(%peer, %path, "path live");
                    PathEvent::PathLive { peer, path, kind }
                } else {
                    tracing::info!(%peer, %path, "path lost");
                    PathEvent::PathLost { peer, path, kind }
                });
            }
        }
        let next = entry.select(now, &self.config);
        if next != entry.active {
            let from = entry.active_kind();
            entry.active = next;
            let path = next.and_then(|i| entry.paths.get(i)).map(|p| p.addr);
            let to = entry.active_kind();
            tracing::info!(%peer, ?from, ?to, "active path changed");
            self.events.push_back(PathEvent::PathChanged {
                peer,
                from,
                to,
                path,
            });
        }
    }

    /// When [`PathCore::handle_timeout`] must next run.
    pub fn poll_timeout(&self) -> Option<Instant> {
        self.peers
            .values()
            .flat_map(|e| e.paths.iter())
            .flat_map(|p| {
                [
                    Some(p.next_probe),
                    p.live_until(&self.config).filter(|_| p.was_live),
                    p.answer_due.map(|(_, due)| due),
                ]
            })
            .flatten()
            .min()
    }

    /// The next datagram to send.
    pub fn poll_transmit(&mut self) -> Option<CoreTransmit> {
        self.transmits.pop_front()
    }

    /// The next event.
    pub fn poll_event(&mut self) -> Option<PathEvent> {
        self.events.pop_front()
    }
}

/// The destination and source connection IDs of a QUIC long-header packet,
/// when both have our length (RFC 9000 §17.2).
fn long_header_cids(datagram: &[u8]) -> (Option<Cid>, Option<Cid>) {
    // Each ID is taken on its own: a client's first Initial carries a random
    // destination ID of up to 20 bytes (quinn uses 20), while its source ID is
    // ours (QUIC_CID_LEN); failing on the first must not lose the second.
    if datagram.first().is_none_or(|b| b & 0x80 == 0) {
        return (None, None);
    }
    let Some(dlen) = datagram.get(5).map(|&l| usize::from(l)) else {
        return (None, None);
    };
    let dcid = datagram
        .get(6..6 + dlen)
        .and_then(|d| Cid::try_from(d).ok());
    let scid = datagram.get(6 + dlen).and_then(|&slen| {
        let slen = usize::from(slen);
        datagram
            .get(7 + dlen..7 + dlen + slen)
            .and_then(|s| Cid::try_from(s).ok())
    });
    (dcid, scid)
}

/// The destination connection ID of a QUIC short-header packet.
fn short_header_cid(datagram: &[u8]) -> Option<Cid> {
    if !is_quic_short_header(datagram) {
        return None;
    }
    datagram.get(1..1 + QUIC_CID_LEN)?.try_into().ok()
}
