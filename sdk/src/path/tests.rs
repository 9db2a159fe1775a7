//! The path core in the simulator: two peers, NATs, a toy relay, simulated time.

use std::collections::BTreeMap;
use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, Instant};

use super::*;
use crate::sim::{NatConfig, NatId, SimNet};
use crate::stun::{PacketKind, classify};

const RELAY: &str = "198.51.100.1:3478";
const CID: [u8; 8] = [7; 8];
/// A's allocation on the relay.
const A_RELAYED: &str = "198.51.100.1:40000";

fn sa(s: &str) -> SocketAddr {
    s.parse().unwrap()
}

struct Node {
    core: PathCore,
    v4: SocketAddr,
    v6: SocketAddr,
    events: Vec<PathEvent>,
    /// QUIC datagrams delivered, with the address QUIC saw.
    delivered: Vec<(SocketAddr, Vec<u8>)>,
}

/// Two path cores on a simulated network with a toy relay: a datagram to the
/// relay carries `[len][peer address text][payload]`; the relay forwards the
/// payload from the client's relayed address, and frames what arrives there.
struct World {
    net: SimNet,
    now: Instant,
    nodes: [Node; 2],
    nat_a: NatId,
    relayed: BTreeMap<SocketAddr, SocketAddr>,
    client_of: BTreeMap<SocketAddr, SocketAddr>,
}

fn frame(peer: SocketAddr, payload: &[u8]) -> Vec<u8> {
    let text = peer.to_string();
    let mut v = vec![text.len() as u8];
    v.extend_from_slice(text.as_bytes());
    v.extend_from_slice(payload);
    v
}

fn unframe(bytes: &[u8]) -> (SocketAddr, &[u8]) {
    let len = bytes[0] as usize;
    let peer = std::str::from_utf8(&bytes[1..1 + len])
        .unwrap()
        .parse()
        .unwrap();
    (peer, &bytes[1 + len..])
}

impl World {
    /// A behind a port-restricted cone NAT (IPv4) with public IPv6; B public on
    /// both families. Each core knows the relay.
    fn new(seed: u64) -> World {
        let mut net = SimNet::new(seed);
        let nat_a = net.add_nat(NatConfig::port_restricted("203.0.113.1".parse().unwrap()));
        net.add_host("10.0.0.2".parse().unwrap(), Some(nat_a));
        let node = |v4: &str, v6: &str, seed: u64| {
            let mut core = PathCore::new(PathConfig::default(), seed);
            core.add_relay(sa(RELAY));
            Node {
                core,
                v4: sa(v4),
                v6: sa(v6),
                events: Vec::new(),
                delivered: Vec::new(),
            }
        };
        let nodes = [
            node("10.0.0.2:5000", "[2001:db8:a::2]:5000", seed),
            node("192.0.2.2:6000", "[2001:db8:b::2]:6000", seed + 1),
        ];
        for n in &nodes {
            net.bind(n.v4);
            net.bind(n.v6);
        }
        net.bind(sa(RELAY));
        let mut w = World {
            net,
            now: Instant::now(),
            nodes,
            nat_a,
            relayed: BTreeMap::new(),
            client_of: BTreeMap::new(),
        };
        // Relayed addresses: A's allocation (the only one used here).
        w.allocate(0, sa(A_RELAYED));
        w
    }

    fn allocate(&mut self, node: usize, relayed: SocketAddr) {
        let client = self.nodes[node].v4;
        // The relay sees the client's NAT mapping; the harness learns it on the
        // first framed datagram (client_of is keyed by the mapped address).
        self.relayed.insert(client, relayed);
        self.net.bind(relayed);
    }

    fn peer_keys(&mut self) -> (SocketAddr, SocketAddr) {
        let b_at_a = self.nodes[0].core.add_peer(&PeerKey([2; 32]));
        let a_at_b = self.nodes[1].core.add_peer(&PeerKey([1; 32]));
        (b_at_a, a_at_b)
    }

    /// Adds `to_b` to A's paths to B and `to_a` to B's paths to A.
    fn add_paths(&mut self, (b, a): (SocketAddr, SocketAddr), to_b: PathAddr, to_a: PathAddr) {
        self.nodes[0].core.add_path(self.now, b, to_b).unwrap();
        self.nodes[1].core.add_path(self.now, a, to_a).unwrap();
    }

    /// A reaches B through A's relay allocation; B reaches A at that allocation.
    fn add_relay_paths(&mut self, peers: (SocketAddr, SocketAddr)) {
        let to_b = PathAddr::Relay {
            server: sa(RELAY),
            peer: self.nodes[1].v4,
        };
        self.add_paths(peers, to_b, PathAddr::RemoteRelay(sa(A_RELAYED)));
    }

    /// A reaches B at B's IPv4 address; B reaches A at A's NAT mapping.
    fn add_direct_v4_paths(&mut self, peers: (SocketAddr, SocketAddr)) {
        let to_b = PathAddr::Direct(self.nodes[1].v4);
        let to_a = PathAddr::Direct(a_public_v4(self));
        self.add_paths(peers, to_b, to_a);
    }

    /// A's NAT loses its mappings; with a sequential allocator, A's next
    /// packets leave from a new port.
    fn rebind_a(&mut self) {
        let nat = self.net.nat_mut(self.nat_a).unwrap();
        nat.config.allocation = crate::sim::Allocation::Sequential;
        nat.rebind();
    }

    fn send(&mut self, node: usize, via: Via, bytes: Vec<u8>) {
        let n = &self.nodes[node];
        match via {
            Via::Socket(to) => {
                let from = if to.is_ipv6() { n.v6 } else { n.v4 };
                self.net.send(self.now, from, to, bytes);
            }
            Via::Turn { server, peer } => {
                self.net.send(self.now, n.v4, server, frame(peer, &bytes));
            }
        }
    }

    /// Sends a fake QUIC short-header packet from `node` to virtual `to`.
    fn quic(&mut self, node: usize, to: SocketAddr) {
        let mut packet = vec![0x41];
        packet.extend_from_slice(&CID);
        packet.extend_from_slice(b"payload");
        match self.nodes[node].core.route(to, packet.len(), 1) {
            SendRoute::Path(via) => self.send(node, via, packet),
            SendRoute::Flood(vias) => {
                for via in vias {
                    self.send(node, via, packet.clone());
                }
            }
            _ => {}
        }
    }

    fn dispatch(&mut self, node: usize, from: SocketAddr, bytes: &[u8]) {
        let (via, payload) = if from == sa(RELAY) {
            let (peer, payload) = unframe(bytes);
            (Via::Turn { server: from, peer }, payload)
        } else {
            (Via::Socket(from), bytes)
        };
        let now = self.now;
        let n = &mut self.nodes[node];
        match classify(payload) {
            PacketKind::Stun => {
                n.core.handle_stun(now, via, payload);
            }
            _ => {
                let seen = n.core.handle_quic(now, via, payload).unwrap_or(from);
                n.delivered.push((seen, payload.to_vec()));
            }
        }
    }

    fn relay_step(&mut self) {
        while let Some(d) = self.net.recv(sa(RELAY)) {
            let (peer, payload) = unframe(&d.bytes);
            // Find the allocation of this client (by private address for the
            // harness's bookkeeping: the only client is node A).
            let Some(&relayed) = self.relayed.values().next() else {
                continue;
            };
            self.client_of.insert(relayed, d.from);
            self.net.send(self.now, relayed, peer, payload.to_vec());
        }
        let allocations: Vec<SocketAddr> = self.relayed.values().copied().collect();
        for relayed in allocations {
            while let Some(d) = self.net.recv(relayed) {
                if let Some(&client) = self.client_of.get(&relayed) {
                    self.net
                        .send(self.now, sa(RELAY), client, frame(d.from, &d.bytes));
                }
            }
        }
    }

    fn step(&mut self) {
        self.net.advance(self.now);
        self.relay_step();
        for i in 0..2 {
            let addrs = [self.nodes[i].v4, self.nodes[i].v6];
            for a in addrs {
                while let Some(d) = self.net.recv(a) {
                    self.dispatch(i, d.from, &d.bytes);
                }
            }
            let now = self.now;
            if self.nodes[i].core.poll_timeout().is_some_and(|t| t <= now) {
                self.nodes[i].core.handle_timeout(now);
            }
            while let Some(t) = self.nodes[i].core.poll_transmit() {
                self.send(i, t.via, t.bytes);
            }
            while let Some(e) = self.nodes[i].core.poll_event() {
                self.nodes[i].events.push(e);
            }
        }
    }

    /// Runs for `d` of simulated time; `quic_every` sends fake QUIC both ways.
    fn run(&mut self, d: Duration, peers: (SocketAddr, SocketAddr), quic_every: Option<Duration>) {
        let end = self.now + d;
        let mut next_quic = self.now;
        while self.now < end {
            self.step();
            if let Some(every) = quic_every
                && self.now >= next_quic
            {
                self.quic(0, peers.0);
                self.quic(1, peers.1);
                next_quic = self.now + every;
            }
            let next = [
                self.nodes[0].core.poll_timeout(),
                self.nodes[1].core.poll_timeout(),
                self.net.next_arrival(),
                quic_every.map(|_| next_quic),
                Some(end),
            ]
            .into_iter()
            .flatten()
            .min()
            .unwrap_or(end);
            self.now = next.max(self.now + Duration::from_micros(1));
        }
    }

    fn active(&mut self, node: usize, peer: SocketAddr) -> Option<PathKind> {
        self.nodes[node]
            .core
            .stats(self.now, peer)
            .and_then(|s| s.active)
    }

    fn changes(&self, node: usize) -> Vec<Option<PathKind>> {
        self.nodes[node]
            .events
            .iter()
            .filter_map(|e| match e {
                PathEvent::PathChanged { to, .. } => Some(*to),
                _ => None,
            })
            .collect()
    }
}

fn a_public_v4(w: &World) -> SocketAddr {
    // Port-preserving NAT: A's mapping keeps its port.
    SocketAddr::new(
        "203.0.113.1".parse::<IpAddr>().unwrap(),
        w.nodes[0].v4.port(),
    )
}

/// A world whose peers know each other by the relay and directly over IPv4.
fn relay_and_direct_v4(seed: u64) -> (World, (SocketAddr, SocketAddr)) {
    let mut w = World::new(seed);
    let peers = w.peer_keys();
    w.add_relay_paths(peers);
    w.add_direct_v4_paths(peers);
    (w, peers)
}

/// A world whose peers know each other only directly over IPv4.
fn direct_v4(seed: u64) -> (World, (SocketAddr, SocketAddr)) {
    let mut w = World::new(seed);
    let peers = w.peer_keys();
    w.add_direct_v4_paths(peers);
    (w, peers)
}

#[test]
fn relay_first_then_ipv4_then_ipv6_wins() {
    let mut w = World::new(1);
    let peers = w.peer_keys();
    let (b, a) = peers;
    let (b_v6, a_v6) = (w.nodes[1].v6, w.nodes[0].v6);
    w.add_relay_paths(peers);
    w.run(
        Duration::from_secs(1),
        peers,
        Some(Duration::from_millis(50)),
    );
    assert_eq!(w.active(0, b), Some(PathKind::Relay));
    assert_eq!(w.active(1, a), Some(PathKind::Relay));
    // QUIC sees the virtual address whatever the path.
    assert!(w.nodes[1].delivered.iter().all(|(from, _)| *from == a));

    w.add_direct_v4_paths(peers);
    w.run(
        Duration::from_secs(2),
        peers,
        Some(Duration::from_millis(50)),
    );
    assert_eq!(w.active(0, b), Some(PathKind::DirectV4));
    assert_eq!(w.active(1, a), Some(PathKind::DirectV4));

    w.add_paths(peers, PathAddr::Direct(b_v6), PathAddr::Direct(a_v6));
    w.run(
        Duration::from_secs(2),
        peers,
        Some(Duration::from_millis(50)),
    );
    assert_eq!(w.active(0, b), Some(PathKind::DirectV6));
    assert_eq!(w.active(1, a), Some(PathKind::DirectV6));
    let expected = vec![
        Some(PathKind::Relay),
        Some(PathKind::DirectV4),
        Some(PathKind::DirectV6),
    ];
    assert_eq!(w.changes(0), expected);
    assert_eq!(w.changes(1), expected);
    assert!(w.nodes[0].delivered.iter().all(|(from, _)| *from == b));
}

#[test]
fn ipv6_is_preferred_when_both_families_work_from_the_start() {
    let (mut w, peers) = direct_v4(2);
    let b = peers.0;
    let (b_v6, a_v6) = (w.nodes[1].v6, w.nodes[0].v6);
    w.add_paths(peers, PathAddr::Direct(b_v6), PathAddr::Direct(a_v6));
    w.run(Duration::from_secs(2), peers, None);
    assert_eq!(w.active(0, b), Some(PathKind::DirectV6));
    assert_eq!(w.changes(0).last(), Some(&Some(PathKind::DirectV6)));
}

#[test]
fn a_dead_direct_path_falls_back_to_the_relay() {
    let (mut w, peers) = relay_and_direct_v4(3);
    let (b, a) = peers;
    let a_v4 = a_public_v4(&w);
    let b_v4 = w.nodes[1].v4;
    w.run(
        Duration::from_secs(2),
        peers,
        Some(Duration::from_millis(50)),
    );
    assert_eq!(w.active(0, b), Some(PathKind::DirectV4));
    // The direct path dies (a firewall starts dropping it); the relay goes on.
    w.net.block(a_v4.ip(), b_v4.ip(), true);
    let died = w.now;
    // Both sides move once three probes in a row go unanswered: within the
    // probe interval plus three probe timeouts, well before the live timeout.
    let mut moved = None;
    while w.now - died < Duration::from_secs(5) {
        w.run(
            Duration::from_millis(50),
            peers,
            Some(Duration::from_millis(50)),
        );
        if moved.is_none()
            && w.active(0, b) == Some(PathKind::Relay)
            && w.active(1, a) == Some(PathKind::Relay)
        {
            moved = Some(w.now - died);
        }
    }
    let moved = moved.expect("both sides on the relay");
    assert!(moved <= Duration::from_millis(1800), "{moved:?}");
    assert_eq!(w.active(0, b), Some(PathKind::Relay));
    assert_eq!(w.active(1, a), Some(PathKind::Relay));
    assert!(w.nodes[0].events.iter().any(|e| matches!(
        e,
        PathEvent::PathLost {
            kind: PathKind::DirectV4,
            ..
        }
    )));
    // QUIC packets kept arriving over the relay after the switch.
    let stats = w.nodes[1].core.stats(w.now, a).unwrap();
    let relay = stats
        .paths
        .iter()
        .find(|p| p.kind == PathKind::Relay)
        .unwrap();
    assert!(relay.packets_received > 0);
    // The direct path heals: back to it.
    w.net.block(a_v4.ip(), b_v4.ip(), false);
    w.run(
        Duration::from_secs(3),
        peers,
        Some(Duration::from_millis(50)),
    );
    assert_eq!(w.active(0, b), Some(PathKind::DirectV4));
    assert_eq!(w.active(1, a), Some(PathKind::DirectV4));
}

#[test]
fn one_lost_probe_on_a_lossy_idle_path_is_not_a_switch() {
    // 10 % loss each way, no QUIC traffic: a switch needs three probes in a
    // row lost, so over a simulated minute the direct path stays chosen nearly
    // all the time.
    let (mut w, peers) = relay_and_direct_v4(6);
    let b = peers.0;
    w.run(Duration::from_secs(2), peers, None);
    assert_eq!(w.active(0, b), Some(PathKind::DirectV4));
    w.net.set_link(crate::sim::LinkConfig {
        delay: Duration::from_millis(10),
        jitter: Duration::ZERO,
        loss: 0.1,
    });
    let before = w.changes(0).len();
    let mut direct = 0;
    for _ in 0..600 {
        w.run(Duration::from_millis(100), peers, None);
        if w.active(0, b) == Some(PathKind::DirectV4) {
            direct += 1;
        }
    }
    let switches = w.changes(0).len() - before;
    assert!(
        direct >= 570,
        "direct {direct}/600 samples, {switches} switches"
    );
}

#[test]
fn a_nat_rebinding_is_recognised_by_the_quic_connection_id() {
    let (mut w, peers) = direct_v4(4);
    let a = peers.1;
    let a_v4 = a_public_v4(&w);
    w.run(
        Duration::from_secs(2),
        peers,
        Some(Duration::from_millis(50)),
    );
    assert_eq!(w.active(1, a), Some(PathKind::DirectV4));
    // A's NAT loses its mappings: A's next packets leave from a new port.
    w.rebind_a();
    let before = w.nodes[1].delivered.len();
    w.run(
        Duration::from_secs(3),
        peers,
        Some(Duration::from_millis(50)),
    );
    let discovered = w.nodes[1].events.iter().find_map(|e| match e {
        PathEvent::PathDiscovered { peer, path } => Some((*peer, *path)),
        _ => None,
    });
    let (peer, path) = discovered.expect("B found A's new address");
    assert_eq!(peer, a);
    assert_ne!(path, PathAddr::Direct(a_v4));
    // B followed as soon as a probe confirmed the new address, not after the
    // old path's silence (probe interval or live timeout): one round trip.
    let switched = w.nodes[1]
        .events
        .iter()
        .any(|e| matches!(e, PathEvent::PathChanged { path: Some(p), .. } if *p == path));
    assert!(switched, "{:?}", w.nodes[1].events);
    // Every packet after the rebinding still reached QUIC as A.
    assert!(
        w.nodes[1].delivered[before..]
            .iter()
            .all(|(from, _)| *from == a)
    );
    // B's sends moved to the new address.
    let stats = w.nodes[1].core.stats(w.now, a).unwrap();
    assert_eq!(stats.active_path().map(|p| p.path), Some(path));
}

#[test]
fn after_a_rebinding_sends_follow_the_peer_within_a_round_trip() {
    let (mut w, peers) = direct_v4(5);
    let a = peers.1;
    let a_v4 = a_public_v4(&w);
    w.run(
        Duration::from_secs(2),
        peers,
        Some(Duration::from_millis(20)),
    );
    w.rebind_a();
    let rebound_at = w.now;
    let mut followed = None;
    for _ in 0..100 {
        w.run(
            Duration::from_millis(10),
            peers,
            Some(Duration::from_millis(20)),
        );
        let active = w.nodes[1].core.stats(w.now, a).unwrap();
        if let Some(p) = active.active_path()
            && p.path != PathAddr::Direct(a_v4)
        {
            followed = Some(w.now - rebound_at);
            break;
        }
    }
    let followed = followed.expect("B never moved to A's new address");
    // QUIC every 20 ms, then one probe round trip on the new path; before,
    // B waited for the old path to be silent for a probe interval (1 s).
    assert!(followed < Duration::from_millis(300), "{followed:?}");
}

#[test]
fn the_simulation_is_deterministic() {
    let trace = |seed| {
        let (mut w, peers) = direct_v4(seed);
        w.net.set_link(crate::sim::LinkConfig {
            delay: Duration::from_millis(20),
            jitter: Duration::from_millis(15),
            loss: 0.2,
        });
        let b = peers.0;
        w.run(
            Duration::from_secs(5),
            peers,
            Some(Duration::from_millis(30)),
        );
        let s = w.nodes[0].core.stats(w.now, b).unwrap();
        (
            s.paths[0].probes_sent,
            s.paths[0].probes_answered,
            w.net.dropped,
            w.nodes[1].delivered.len(),
        )
    };
    assert_eq!(trace(9), trace(9));
}

/// A QUIC Initial (long header) with these connection IDs.
fn initial<const D: usize>(dcid: [u8; D], scid: [u8; 8]) -> Vec<u8> {
    let mut p = vec![0xC0, 0, 0, 0, 1, D as u8];
    p.extend_from_slice(&dcid);
    p.push(8);
    p.extend_from_slice(&scid);
    p.resize(1200, 0);
    p
}

#[test]
fn a_handshake_reply_by_an_unknown_path_is_the_peer_we_dialled() {
    // We dial a peer (over the relay, say); its ICE proves a direct path first
    // and its handshake reply arrives from there. The reply carries our source
    // connection ID: it is that peer on a new path, not a new inbound peer.
    let now = Instant::now();
    let mut core = PathCore::new(PathConfig::default(), 1);
    let peer = core.add_peer(&PeerKey([1; 32]));
    // quinn's first Initial: a random 20-byte destination ID, our 8-byte source ID.
    core.note_sent(peer, &initial([5; 20], [9; 8]));
    let from = Via::Socket(sa("[2001:db8:15::10]:58809"));
    assert_eq!(
        core.handle_quic(now, from, &initial([9; 8], [6; 8])),
        Some(peer)
    );
    assert_eq!(core.peers().count(), 1);
    // An Initial with an ID we never sent still opens an inbound peer.
    let other = Via::Socket(sa("[2001:db8:16::10]:4000"));
    let inbound = core.handle_quic(now, other, &initial([3; 8], [4; 8]));
    assert!(inbound.is_some_and(|p| p != peer));
    assert_eq!(core.peers().count(), 2);
}
