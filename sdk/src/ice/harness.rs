//! A deterministic two-peer world for ICE tests: [`crate::sim::SimNet`] with
//! NATs, a STUN server and a minimal TURN relay model on one public address,
//! signalling with a delay, and each peer's [`IceAgent`] feeding a
//! [`PathCore`] — the same wiring `IceDriver` and `PathSocket` do, in
//! simulated time.
//!
//! The relay model keeps TURN's semantics that ICE depends on (a relayed
//! address per client, IP permissions, forwarding to the client's mapping as
//! the server saw it) with a trivial framing between client and server; the
//! TURN protocol itself is tested in `crate::relay`.

use std::collections::{BTreeSet, VecDeque};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::time::{Duration, Instant};

use super::hardnat::{HardNatConfig, NatDescriber};
use super::{IceAgent, IceConfig, IceEvent};
use crate::path::{PathConfig, PathCore, PathKind, PeerKey, Via};
use crate::signal::{Role, Signal};
use crate::sim::{NatConfig, SimNet};
use crate::stun::{Attribute, Class, Message, MessageBuilder, Method};

/// Marks a TURN-model frame: [FRAME, 4|6, ip, port(2), payload].
const FRAME: u8 = 0xEE;
pub(crate) const SERVER: SocketAddr =
    SocketAddr::new(IpAddr::V4(Ipv4Addr::new(203, 0, 113, 1)), 3478);
/// The server's RFC 5780 other port (same IP) and other address.
const SERVER_ALT_PORT: SocketAddr =
    SocketAddr::new(IpAddr::V4(Ipv4Addr::new(203, 0, 113, 1)), 3479);
const SERVER_OTHER: SocketAddr = SocketAddr::new(IpAddr::V4(Ipv4Addr::new(203, 0, 113, 2)), 3479);
const SIGNAL_DELAY: Duration = Duration::from_millis(50);

/// Where a peer sits.
#[derive(Debug, Clone)]
pub(crate) struct Site {
    /// Behind this NAT (IPv4), or public.
    pub nat: Option<NatConfig>,
    /// Has a public IPv6 address too.
    pub v6: bool,
    /// Asks the STUN server for a server-reflexive candidate.
    pub srflx: bool,
    /// Allocates on the relay.
    pub relay: bool,
    /// Describes its NAT with [`NatDescriber`] before its first signal.
    pub describe: bool,
    /// The hard-NAT budget.
    pub hard_nat: HardNatConfig,
}

impl Site {
    pub(crate) fn nat(config: NatConfig) -> Site {
        Site {
            nat: Some(config),
            v6: false,
            srflx: true,
            relay: true,
            describe: false,
            hard_nat: HardNatConfig::default(),
        }
    }

    /// Behind `config`, describing its NAT first.
    pub(crate) fn described(config: NatConfig) -> Site {
        Site {
            describe: true,
            ..Site::nat(config)
        }
    }
}

pub(crate) struct Peer {
    pub ice: IceAgent,
    pub path: PathCore,
    pub v4: SocketAddr,
    pub v6: Option<SocketAddr>,
    /// The other peer's virtual address.
    pub other: SocketAddr,
    relay: bool,
    relayed: bool,
    sent_first: bool,
    /// When the path layer first had an active path.
    pub connected_at: Option<Duration>,
    describer: Option<NatDescriber>,
    describer_out: Vec<(SocketAddr, Vec<u8>)>,
    /// This peer's public IPv4 address.
    pub public: IpAddr,
    /// Datagrams this peer sent to the other peer's public IPv4 address.
    pub sent_to_other: u32,
    /// When the path layer first used a direct path.
    pub direct_at: Option<Duration>,
}

#[derive(Debug)]
struct Alloc {
    owner: SocketAddr,
    relayed: SocketAddr,
    perms: BTreeSet<IpAddr>,
}

pub(crate) struct World {
    pub net: SimNet,
    pub start: Instant,
    pub now: Instant,
    pub peers: Vec<Peer>,
    allocs: Vec<Alloc>,
    signals: VecDeque<(Instant, usize, Signal)>,
    nats: Vec<Option<crate::sim::NatId>>,
}

fn frame(peer: SocketAddr, payload: &[u8]) -> Vec<u8> {
    let mut out = vec![FRAME];
    match peer.ip() {
        IpAddr::V4(ip) => {
            out.push(4);
            out.extend_from_slice(&ip.octets());
        }
        IpAddr::V6(ip) => {
            out.push(6);
            out.extend_from_slice(&ip.octets());
        }
    }
    out.extend_from_slice(&peer.port().to_be_bytes());
    out.extend_from_slice(payload);
    out
}

/// A Binding success response to `request` from `from`, naming `other` as
/// the RFC 5780 OTHER-ADDRESS.
fn binding_response(
    request: &[u8],
    from: SocketAddr,
    other: Option<SocketAddr>,
) -> Option<Vec<u8>> {
    let m = Message::decode(request).ok()?;
    if m.method() != Method::BINDING || m.class() != Class::Request {
        return None;
    }
    let mut b = MessageBuilder::new(Class::SuccessResponse, Method::BINDING, m.transaction_id());
    b.add(&Attribute::XorMappedAddress(from)).ok()?;
    if let Some(o) = other {
        b.add(&Attribute::OtherAddress(o)).ok()?;
    }
    Some(b.finish_with_fingerprint())
}

fn unframe(bytes: &[u8]) -> Option<(SocketAddr, &[u8])> {
    let (&marker, rest) = bytes.split_first()?;
    if marker != FRAME {
        return None;
    }
    let (&fam, rest) = rest.split_first()?;
    let (ip, rest): (IpAddr, &[u8]) = if fam == 4 {
        let o: [u8; 4] = rest.get(..4)?.try_into().ok()?;
        (Ipv4Addr::from(o).into(), rest.get(4..)?)
    } else {
        let o: [u8; 16] = rest.get(..16)?.try_into().ok()?;
        (Ipv6Addr::from(o).into(), rest.get(16..)?)
    };
    let port = u16::from_be_bytes(rest.get(..2)?.try_into().ok()?);
    Some((SocketAddr::new(ip, port), rest.get(2..)?))
}

impl World {
    /// Two peers at `a` and `b`; A is controlling. `seed` drives everything.
    pub(crate) fn new(a: Site, b: Site, seed: u64) -> World {
        let mut net = SimNet::new(seed);
        net.bind(SERVER);
        net.add_host(SERVER_OTHER.ip(), None);
        net.bind(SERVER_ALT_PORT);
        net.bind(SERVER_OTHER);
        let now = Instant::now();
        let mut peers = Vec::new();
        let mut realms = Vec::new();
        let mut nats = Vec::new();
        for (i, site) in [a, b].into_iter().enumerate() {
            let n = u8::try_from(i).unwrap_or(0) + 1;
            let (v4, public) = match site.nat.clone() {
                Some(mut cfg) => {
                    cfg.public_ip = IpAddr::V4(Ipv4Addr::new(198, 51, 100, n));
                    let public = cfg.public_ip;
                    let id = net.add_nat(cfg);
                    nats.push(Some(id));
                    let private = IpAddr::V4(Ipv4Addr::new(10, 0, n, 2));
                    net.add_host(private, Some(id));
                    (SocketAddr::new(private, 5000), public)
                }
                None => {
                    nats.push(None);
                    let ip = IpAddr::V4(Ipv4Addr::new(192, 0, 2, n));
                    net.add_host(ip, None);
                    (SocketAddr::new(ip, 5000), ip)
                }
            };
            net.bind(v4);
            let v6 = site.v6.then(|| {
                let a = SocketAddr::new(
                    IpAddr::V6(Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, n.into())),
                    5000,
                );
                net.bind(a);
                a
            });
            realms.push((v4.ip(), public));
            let config = IceConfig {
                stun_servers: if site.srflx { vec![SERVER] } else { Vec::new() },
                hard_nat: site.hard_nat.clone(),
                ..IceConfig::default()
            };
            let mut describer_out = Vec::new();
            let describer = site.describe.then(|| {
                let (d, first) = NatDescriber::start(now, SERVER, v4.port(), seed + i as u64);
                describer_out.push(first);
                d
            });
            let mut ice = IceAgent::new(config, i == 0, seed.wrapping_add(i as u64 * 7919));
            if let Some(v6) = v6 {
                ice.add_host(v6).unwrap_or(());
            }
            ice.add_host(v4).unwrap_or(());
            ice.handle_timeout(now);
            ice.gather(now);
            let mut path = PathCore::new(PathConfig::default(), seed ^ (i as u64 + 1));
            let other = path.add_peer(&PeerKey([2 - u8::try_from(i).unwrap_or(0); 32]));
            peers.push(Peer {
                ice,
                path,
                v4,
                v6,
                other,
                relay: site.relay,
                relayed: false,
                sent_first: false,
                connected_at: None,
                describer,
                describer_out,
                public,
                sent_to_other: 0,
                direct_at: None,
            });
        }
        // SimNet routes private addresses globally; a peer behind another NAT
        // must not reach them.
        for (i, &(_, public_i)) in realms.iter().enumerate() {
            for (j, &(private_j, public_j)) in realms.iter().enumerate() {
                if i != j && private_j != public_j {
                    net.block(public_i, private_j, true);
                }
            }
        }
        let mut w = World {
            net,
            start: now,
            now,
            peers,
            allocs: Vec::new(),
            signals: VecDeque::new(),
            nats,
        };
        for i in 0..2 {
            if w.peers.get(i).is_some_and(|p| p.describer.is_none()) {
                w.send_first_signal(i);
            }
        }
        w
    }

    /// The other peer of `i`.
    fn other_public(&self, i: usize) -> Option<IpAddr> {
        self.peers.get(1 - i).map(|p| p.public)
    }

    fn send_first_signal(&mut self, i: usize) {
        let role = if i == 0 { Role::Offer } else { Role::Answer };
        let Some(p) = self.peers.get_mut(i) else {
            return;
        };
        p.sent_first = true;
        let s = p
            .ice
            .signal(role, [u8::try_from(i).unwrap_or(0) + 1; 32], 1);
        self.signals.push_back((self.now + SIGNAL_DELAY, 1 - i, s));
    }

    /// The active path kind of peer `i`.
    pub(crate) fn active(&self, i: usize) -> Option<PathKind> {
        let p = self.peers.get(i)?;
        p.path.stats(self.now, p.other)?.active
    }

    /// Runs until `until` of simulated time has passed since the start.
    pub(crate) fn run(&mut self, until: Duration) {
        let end = self.start + until;
        // A bound on rounds, so a timer that never advances fails the test
        // instead of hanging it.
        for _ in 0..1_000_000 {
            let mut next = end;
            let mut consider = |t: Option<Instant>| {
                if let Some(t) = t {
                    next = next.min(t.max(self.now));
                }
            };
            consider(self.net.next_arrival());
            consider(self.signals.front().map(|s| s.0));
            for p in &mut self.peers {
                consider(p.ice.poll_timeout());
                consider(p.path.poll_timeout());
                consider(p.describer.as_ref().and_then(NatDescriber::poll_timeout));
            }
            if next >= end && self.now >= end {
                return;
            }
            self.now = next;
            self.step();
            if self.now >= end {
                return;
            }
        }
        panic!("simulation did not advance to {until:?}");
    }

    fn step(&mut self) {
        let now = self.now;
        self.net.advance(now);
        self.relay_in();
        while self.signals.front().is_some_and(|s| s.0 <= now) {
            if let Some((_, to, s)) = self.signals.pop_front()
                && let Some(p) = self.peers.get_mut(to)
            {
                let _ = p.ice.apply_remote(&s);
            }
        }
        for i in 0..self.peers.len() {
            self.peer_in(i);
            self.peer_out(i);
        }
    }

    fn relay_in(&mut self) {
        let now = self.now;
        while let Some(d) = self.net.recv(SERVER) {
            if let Some((peer, payload)) = unframe(&d.bytes) {
                if let Some(a) = self.allocs.iter_mut().find(|a| a.owner == d.from) {
                    a.perms.insert(peer.ip());
                    self.net.send(now, a.relayed, peer, payload.to_vec());
                }
            } else if let Some(r) = binding_response(&d.bytes, d.from, Some(SERVER_OTHER)) {
                self.net.send(now, SERVER, d.from, r);
            }
        }
        for at in [SERVER_ALT_PORT, SERVER_OTHER] {
            while let Some(d) = self.net.recv(at) {
                if let Some(r) = binding_response(&d.bytes, d.from, None) {
                    self.net.send(now, at, d.from, r);
                }
            }
        }
        for i in 0..self.allocs.len() {
            let Some(relayed) = self.allocs.get(i).map(|a| a.relayed) else {
                continue;
            };
            while let Some(d) = self.net.recv(relayed) {
                let Some(a) = self.allocs.get(i) else { break };
                if a.perms.contains(&d.from.ip()) {
                    let owner = a.owner;
                    self.net.send(now, SERVER, owner, frame(d.from, &d.bytes));
                }
            }
        }
    }

    fn peer_in(&mut self, i: usize) {
        let now = self.now;
        let Some(p) = self.peers.get_mut(i) else {
            return;
        };
        for local in [Some(p.v4), p.v6].into_iter().flatten() {
            while let Some(d) = self.net.recv(local) {
                if let Some(desc) = &mut p.describer
                    && desc.handle_response(now, d.from, &d.bytes, &mut p.describer_out)
                {
                    continue;
                }
                let (via, payload) = match unframe(&d.bytes) {
                    Some((peer, payload)) if d.from == SERVER => (
                        Via::Turn {
                            server: SERVER,
                            peer,
                        },
                        payload,
                    ),
                    _ => (Via::Socket(d.from), &d.bytes[..]),
                };
                if payload.first().is_some_and(|b| *b < 4) && !p.path.handle_stun(now, via, payload)
                {
                    p.ice.handle_stun(now, via, payload);
                }
            }
        }
    }

    fn peer_out(&mut self, i: usize) {
        let now = self.now;
        let mut out = Vec::new();
        let mut trickle = Vec::new();
        let mut allocate = None;
        let mut perms = Vec::new();
        let mut described = false;
        let other_public = self.other_public(i);
        {
            let Some(p) = self.peers.get_mut(i) else {
                return;
            };
            if let Some(d) = &mut p.describer {
                if d.poll_timeout().is_some_and(|t| t <= now) {
                    d.handle_timeout(now, &mut p.describer_out);
                }
                if let Some(nat) = d.result() {
                    p.ice.set_local_nat(nat);
                    p.describer = None;
                    described = true;
                }
            }
            for (to, bytes) in p.describer_out.drain(..) {
                out.push((Via::Socket(to), bytes));
            }
            if p.ice.poll_timeout().is_some_and(|t| t <= now) {
                p.ice.handle_timeout(now);
            }
            if p.path.poll_timeout().is_some_and(|t| t <= now) {
                p.path.handle_timeout(now);
            }
            while let Some(e) = p.ice.poll_event() {
                match e {
                    IceEvent::LocalCandidates(c) if p.sent_first => trickle.push(c),
                    IceEvent::PathUsable(path) => {
                        let _ = p.path.add_path(now, p.other, path);
                    }
                    IceEvent::ServerReflexive { mapped, .. } if p.relay && !p.relayed => {
                        p.relayed = true;
                        allocate = Some(mapped);
                    }
                    IceEvent::PermissionNeeded { peer, .. } => perms.push(peer),
                    _ => {}
                }
            }
            while let Some(t) = p.ice.poll_transmit() {
                out.push((t.via, t.bytes));
            }
            while let Some(t) = p.path.poll_transmit() {
                out.push((t.via, t.bytes));
            }
            let active = p.path.stats(now, p.other).and_then(|s| s.active);
            if p.connected_at.is_none() && active.is_some() {
                p.connected_at = Some(now - self.start);
            }
            if p.direct_at.is_none()
                && matches!(active, Some(PathKind::DirectV4 | PathKind::DirectV6))
            {
                p.direct_at = Some(now - self.start);
            }
        }
        if described {
            self.send_first_signal(i);
        }
        if let Some(owner) = allocate {
            let relayed = SocketAddr::new(
                SERVER.ip(),
                49_152 + u16::try_from(self.allocs.len()).unwrap_or(0),
            );
            self.net.bind(relayed);
            self.allocs.push(Alloc {
                owner,
                relayed,
                perms: BTreeSet::new(),
            });
            if let Some(p) = self.peers.get_mut(i) {
                let _ = p.ice.add_relayed(SERVER, relayed);
                while let Some(e) = p.ice.poll_event() {
                    match e {
                        IceEvent::LocalCandidates(c) => trickle.push(c),
                        IceEvent::PermissionNeeded { peer, .. } => perms.push(peer),
                        _ => {}
                    }
                }
            }
        }
        let own: Vec<usize> = self
            .allocs
            .iter()
            .enumerate()
            .filter(|(k, _)| self.owner_of(*k) == Some(i))
            .map(|(k, _)| k)
            .collect();
        for k in own {
            if let Some(a) = self.allocs.get_mut(k) {
                a.perms.extend(perms.iter().copied());
            }
        }
        let role = if i == 0 { Role::Offer } else { Role::Answer };
        for batch in trickle {
            if let Some(p) = self.peers.get(i) {
                let s = p
                    .ice
                    .trickle(role, [u8::try_from(i).unwrap_or(0) + 1; 32], 1, batch);
                self.signals.push_back((now + SIGNAL_DELAY, 1 - i, s));
            }
        }
        let Some(p) = self.peers.get(i) else { return };
        let (v4, v6) = (p.v4, p.v6);
        for (via, bytes) in out {
            let (to, bytes) = match via {
                Via::Socket(to) => (to, bytes),
                Via::Turn { server, peer } => (server, frame(peer, &bytes)),
            };
            let from = if to.is_ipv4() { Some(v4) } else { v6 };
            if Some(to.ip()) == other_public
                && let Some(p) = self.peers.get_mut(i)
            {
                p.sent_to_other += 1;
            }
            if let Some(from) = from {
                self.net.send(now, from, to, bytes);
            }
        }
    }

    /// How many mappings peer `i`'s NAT holds (`None` when public).
    pub(crate) fn nat_mappings(&mut self, i: usize) -> Option<usize> {
        let id = *self.nats.get(i)?;
        Some(self.net.nat_mut(id?)?.mapping_count())
    }

    /// Which peer owns allocation `k` (allocations are made in peer order of
    /// their first server-reflexive answer; the relayed candidate tells).
    fn owner_of(&self, k: usize) -> Option<usize> {
        let relayed = self.allocs.get(k)?.relayed;
        self.peers
            .iter()
            .position(|p| p.ice.local_relayed().any(|r| r == relayed))
    }
}
