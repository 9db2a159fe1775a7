//! The simulated network: hosts, NATs, links with delay, loss and reordering,
//! and a clock that only moves when the caller says so.

use std::cmp::Reverse;
use std::collections::{BTreeMap, BTreeSet, BinaryHeap, VecDeque};
use std::net::{IpAddr, SocketAddr};
use std::task::Waker;
use std::time::{Duration, Instant};

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use super::nat::{Nat, NatConfig};

/// A NAT in the network.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct NatId(usize);

/// Delay, loss and reordering of the links (one way).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct LinkConfig {
    /// Fixed one-way delay.
    pub delay: Duration,
    /// Extra delay, uniform in 0..=jitter; packets overtake each other when it
    /// exceeds their spacing (reordering).
    pub jitter: Duration,
    /// Probability of dropping each datagram, 0.0..=1.0.
    pub loss: f64,
}

impl Default for LinkConfig {
    /// 10 ms, no jitter, no loss.
    fn default() -> LinkConfig {
        LinkConfig {
            delay: Duration::from_millis(10),
            jitter: Duration::ZERO,
            loss: 0.0,
        }
    }
}

/// A datagram delivered to a bound address.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Datagram {
    /// Its source as the receiver sees it (after any NAT).
    pub from: SocketAddr,
    /// The receiving socket's address.
    pub to: SocketAddr,
    /// The payload.
    pub bytes: Vec<u8>,
}

#[derive(Debug, PartialEq, Eq, PartialOrd, Ord)]
struct InFlight {
    at: Instant,
    seq: u64,
    from: SocketAddr,
    to: SocketAddr,
    bytes: Vec<u8>,
}

/// An in-memory network with simulated time. Deterministic for a given seed
/// and sequence of calls.
///
/// Addressing: a host's IP is either public (reachable by anyone) or private
/// behind one NAT ([`SimNet::add_host`] with `Some(nat)`). Datagrams between
/// two hosts behind the same NAT go straight; otherwise a private source is
/// translated by its NAT, and a datagram to a NAT's public IP is filtered and
/// translated back.
#[derive(Debug)]
pub struct SimNet {
    rng: StdRng,
    seq: u64,
    link: LinkConfig,
    pair_links: BTreeMap<(IpAddr, IpAddr), LinkConfig>,
    blocked: BTreeSet<(IpAddr, IpAddr)>,
    nats: Vec<Nat>,
    behind: BTreeMap<IpAddr, NatId>,
    bound: BTreeSet<SocketAddr>,
    in_flight: BinaryHeap<Reverse<InFlight>>,
    inbox: BTreeMap<SocketAddr, VecDeque<Datagram>>,
    wakers: Vec<Waker>,
    /// Datagrams dropped (loss, no route, filtered, blocked).
    pub dropped: u64,
    /// Datagrams delivered.
    pub delivered: u64,
}

impl SimNet {
    /// An empty network whose random choices follow `seed`.
    pub fn new(seed: u64) -> SimNet {
        SimNet {
            rng: StdRng::seed_from_u64(seed),
            seq: 0,
            link: LinkConfig::default(),
            pair_links: BTreeMap::new(),
            blocked: BTreeSet::new(),
            nats: Vec::new(),
            behind: BTreeMap::new(),
            bound: BTreeSet::new(),
            in_flight: BinaryHeap::new(),
            inbox: BTreeMap::new(),
            wakers: Vec::new(),
            dropped: 0,
            delivered: 0,
        }
    }

    /// Sets the default link behaviour.
    pub fn set_link(&mut self, link: LinkConfig) {
        self.link = link;
    }

    /// Sets the link behaviour between two public IPs (both directions).
    pub fn set_pair_link(&mut self, a: IpAddr, b: IpAddr, link: LinkConfig) {
        self.pair_links.insert(ordered(a, b), link);
    }

    /// Drops (or stops dropping) everything between two public IPs (a NAT's
    /// public IP counts for the hosts behind it): a path dies.
    pub fn block(&mut self, a: IpAddr, b: IpAddr, blocked: bool) {
        if blocked {
            self.blocked.insert(ordered(a, b));
        } else {
            self.blocked.remove(&ordered(a, b));
        }
    }

    /// Adds a NAT.
    pub fn add_nat(&mut self, config: NatConfig) -> NatId {
        self.nats.push(Nat::new(config));
        NatId(self.nats.len() - 1)
    }

    /// The NAT's state (mappings), for inspection or [`Nat::rebind`].
    pub fn nat_mut(&mut self, id: NatId) -> Option<&mut Nat> {
        self.nats.get_mut(id.0)
    }

    /// Declares a host IP, public or behind a NAT.
    pub fn add_host(&mut self, ip: IpAddr, nat: Option<NatId>) {
        if let Some(nat) = nat {
            self.behind.insert(ip, nat);
        }
    }

    /// Opens a socket: datagrams to `addr` are kept for [`SimNet::recv`].
    pub fn bind(&mut self, addr: SocketAddr) {
        self.bound.insert(addr);
    }

    /// Registers a task to wake when a datagram is sent (its delivery time may
    /// be earlier than what the task waits for).
    pub fn register_waker(&mut self, waker: &Waker) {
        if !self.wakers.iter().any(|w| w.will_wake(waker)) {
            self.wakers.push(waker.clone());
        }
    }

    /// Sends a datagram at `now`.
    pub fn send(&mut self, now: Instant, from: SocketAddr, to: SocketAddr, bytes: Vec<u8>) {
        let same_realm = match (self.behind.get(&from.ip()), self.behind.get(&to.ip())) {
            (Some(a), Some(b)) => a == b,
            _ => false,
        };
        let src = match self.behind.get(&from.ip()).copied() {
            Some(nat) if !same_realm => {
                let Some(n) = self.nats.get_mut(nat.0) else {
                    return;
                };
                match n.outbound(now, from, to, &mut self.rng) {
                    Some(ext) => ext,
                    None => {
                        self.dropped += 1;
                        return;
                    }
                }
            }
            _ => from,
        };
        if self.blocked.contains(&ordered(src.ip(), to.ip())) {
            self.dropped += 1;
            return;
        }
        let link = self
            .pair_links
            .get(&ordered(src.ip(), to.ip()))
            .copied()
            .unwrap_or(self.link);
        if link.loss > 0.0 && self.rng.random_bool(link.loss.clamp(0.0, 1.0)) {
            self.dropped += 1;
            return;
        }
        let jitter = if link.jitter.is_zero() {
            Duration::ZERO
        } else {
            link.jitter.mul_f64(self.rng.random_range(0.0..=1.0))
        };
        self.seq += 1;
        self.in_flight.push(Reverse(InFlight {
            at: now + link.delay + jitter,
            seq: self.seq,
            from: src,
            to,
            bytes,
        }));
        for w in self.wakers.drain(..) {
            w.wake();
        }
    }

    /// When the next datagram arrives, if any is in flight.
    pub fn next_arrival(&self) -> Option<Instant> {
        self.in_flight.peek().map(|Reverse(p)| p.at)
    }

    /// Moves every datagram due by `now` to its destination's inbox.
    pub fn advance(&mut self, now: Instant) {
        while self.in_flight.peek().is_some_and(|Reverse(p)| p.at <= now) {
            let Some(Reverse(p)) = self.in_flight.pop() else {
                break;
            };
            self.arrive(p);
        }
    }

    fn arrive(&mut self, p: InFlight) {
        let to = match self
            .nats
            .iter_mut()
            .find(|n| n.config.public_ip == p.to.ip())
        {
            Some(nat) => match nat.inbound(p.at, p.to.port(), p.from) {
                Some(internal) => internal,
                None => {
                    self.dropped += 1;
                    return;
                }
            },
            None => p.to,
        };
        if !self.bound.contains(&to) {
            self.dropped += 1;
            return;
        }
        self.delivered += 1;
        self.inbox.entry(to).or_default().push_back(Datagram {
            from: p.from,
            to,
            bytes: p.bytes,
        });
    }

    /// The next datagram delivered to `at` (after [`SimNet::advance`]).
    pub fn recv(&mut self, at: SocketAddr) -> Option<Datagram> {
        self.inbox.get_mut(&at)?.pop_front()
    }
}

fn ordered(a: IpAddr, b: IpAddr) -> (IpAddr, IpAddr) {
    if a <= b { (a, b) } else { (b, a) }
}
