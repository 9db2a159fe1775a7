//! The prober against a simulated RFC 5780 server behind a simulated NAT, on simulated
//! time: every mapping × filtering combination, port allocation, port sets and the
//! binding-lifetime search. No sockets.

use std::collections::{BTreeMap, VecDeque};
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::{Duration, Instant};

use super::*;
use crate::stun::{Attribute, Class, Message, MessageBuilder, Method};

const LOCAL: Ipv4Addr = Ipv4Addr::new(192, 168, 1, 10);
const PUBLIC: Ipv4Addr = Ipv4Addr::new(203, 0, 113, 5);
const S1: Ipv4Addr = Ipv4Addr::new(198, 18, 0, 10);
const S2: Ipv4Addr = Ipv4Addr::new(198, 18, 0, 11);
const ONE_WAY: Duration = Duration::from_millis(10);

#[derive(Clone, Copy, Debug)]
struct NatModel {
    mapping: Behaviour,
    filtering: Behaviour,
    /// None = preserve; Some(step) = sequential from 30000 with that step; Some(0) = "random".
    sequential: Option<u16>,
    port_set: Option<(u16, u16)>,
    timeout: Duration,
}

#[derive(Debug)]
struct Mapping {
    external: u16,
    contacted: Vec<SocketAddr>,
    last_out: Instant,
}

struct Sim {
    nat: Option<NatModel>,
    maps: BTreeMap<(u16, Option<SocketAddr>), Mapping>,
    next_port: u16,
    rng: u64,
    locals: BTreeMap<SocketId, u16>,
    next_local: u16,
    inflight: VecDeque<(Instant, SocketId, SocketAddr, Vec<u8>)>,
}

impl Sim {
    fn key(&self, _local: u16, dest: SocketAddr) -> Option<SocketAddr> {
        match self.nat.map(|n| n.mapping) {
            Some(Behaviour::EndpointIndependent) | None => None,
            Some(Behaviour::AddressDependent) => Some(SocketAddr::new(dest.ip(), 0)),
            Some(Behaviour::AddressAndPortDependent) => Some(dest),
        }
    }

    fn alloc(&mut self, local: u16) -> u16 {
        let Some(nat) = self.nat else { return local };
        let taken = |p: u16, m: &BTreeMap<_, Mapping>| m.values().any(|x| x.external == p);
        loop {
            let p = match (nat.port_set, nat.sequential) {
                (Some((first, count)), _) => {
                    self.rng = self
                        .rng
                        .wrapping_mul(6364136223846793005)
                        .wrapping_add(1442695040888963407);
                    first + ((self.rng >> 33) as u16 % count)
                }
                (None, None) if !taken(local, &self.maps) => local,
                (None, Some(0)) | (None, None) => {
                    self.rng = self
                        .rng
                        .wrapping_mul(6364136223846793005)
                        .wrapping_add(1442695040888963407);
                    1024 + ((self.rng >> 33) as u16 % 60000)
                }
                (None, Some(step)) => {
                    self.next_port += step;
                    self.next_port
                }
            };
            if !taken(p, &self.maps)
                || nat.port_set.is_some() && nat.mapping != Behaviour::EndpointIndependent
            {
                return p;
            }
        }
    }

    /// Outbound from (socket) to dest at `now`: returns the source the server sees.
    fn outbound(&mut self, now: Instant, socket: SocketId, dest: SocketAddr) -> Option<SocketAddr> {
        let local = *self.locals.get(&socket)?;
        let Some(nat) = self.nat else {
            return Some(SocketAddr::new(PUBLIC.into(), local));
        };
        if dest.ip() == IpAddr::V4(PUBLIC) {
            return None; // no hairpinning
        }
        let key = (local, self.key(local, dest));
        let expired = self
            .maps
            .get(&key)
            .is_some_and(|m| now - m.last_out > nat.timeout);
        if expired {
            self.maps.remove(&key);
        }
        if !self.maps.contains_key(&key) {
            let external = self.alloc(local);
            self.maps.insert(
                key,
                Mapping {
                    external,
                    contacted: vec![],
                    last_out: now,
                },
            );
        }
        let m = self.maps.get_mut(&key)?;
        m.last_out = now;
        m.contacted.push(dest);
        Some(SocketAddr::new(PUBLIC.into(), m.external))
    }

    /// Inbound from `from` to our external port: the socket it reaches, if any.
    fn inbound(&mut self, now: Instant, from: SocketAddr, port: u16) -> Option<SocketId> {
        let Some(nat) = self.nat else {
            return self
                .locals
                .iter()
                .find(|(_, p)| **p == port)
                .map(|(s, _)| *s);
        };
        let (key, _) = self.maps.iter().find(|(_, m)| {
            m.external == port
                && now - m.last_out <= nat.timeout
                && match nat.filtering {
                    Behaviour::EndpointIndependent => true,
                    Behaviour::AddressDependent => m.contacted.iter().any(|c| c.ip() == from.ip()),
                    Behaviour::AddressAndPortDependent => m.contacted.contains(&from),
                }
        })?;
        let local = key.0;
        self.locals
            .iter()
            .find(|(_, p)| **p == local)
            .map(|(s, _)| *s)
    }

    /// The RFC 5780 server: answers `data` that arrived at `at` from `src`.
    fn serve(
        &self,
        at: SocketAddr,
        src: SocketAddr,
        data: &[u8],
    ) -> Option<(SocketAddr, SocketAddr, Vec<u8>)> {
        let msg = Message::decode(data).ok()?;
        if msg.class() != Class::Request || msg.method() != Method::BINDING {
            return None;
        }
        let (mut ci, mut cp, mut rp) = (false, false, None);
        for a in msg.attributes() {
            match a {
                Attribute::ChangeRequest {
                    change_ip,
                    change_port,
                } => (ci, cp) = (*change_ip, *change_port),
                Attribute::ResponsePort(p) => rp = Some(*p),
                _ => {}
            }
        }
        let other_ip = |ip: IpAddr| {
            if ip == IpAddr::V4(S1) {
                IpAddr::V4(S2)
            } else {
                IpAddr::V4(S1)
            }
        };
        let other_port = |p: u16| if p == 3478 { 3479 } else { 3478 };
        let from = SocketAddr::new(
            if ci { other_ip(at.ip()) } else { at.ip() },
            if cp { other_port(at.port()) } else { at.port() },
        );
        let mut b = MessageBuilder::new(
            Class::SuccessResponse,
            Method::BINDING,
            msg.transaction_id(),
        );
        b.add(&Attribute::XorMappedAddress(src)).ok()?;
        b.add(&Attribute::OtherAddress(SocketAddr::new(S2.into(), 3479)))
            .ok()?;
        b.add(&Attribute::ResponseOrigin(from)).ok()?;
        let to = SocketAddr::new(src.ip(), rp.unwrap_or(src.port()));
        Some((from, to, b.finish()))
    }
}

fn run(nat: Option<NatModel>, quick: bool) -> Report {
    let t0 = Instant::now();
    let server = SocketAddr::new(S1.into(), 3478);
    let mut sim = Sim {
        nat,
        maps: BTreeMap::new(),
        next_port: 30000,
        rng: 42,
        locals: BTreeMap::new(),
        next_local: 40001,
        inflight: VecDeque::new(),
    };
    sim.locals.insert(MAIN_SOCKET, 40000);
    let cfg = ProbeConfig {
        quick,
        lifetime: LifetimeConfig {
            max: Duration::from_secs(60),
            ..LifetimeConfig::default()
        },
        ..ProbeConfig::default()
    };
    let local = SocketAddr::new(
        if nat.is_some() {
            LOCAL.into()
        } else {
            PUBLIC.into()
        },
        40000,
    );
    let mut p = Prober::new(cfg, "sim:3478", server, local, t0);
    let mut now = t0;
    for _ in 0..200_000 {
        while let Some(out) = p.poll_output() {
            match out {
                Output::Transmit {
                    socket,
                    destination,
                    payload,
                } => {
                    if let Some(src) = sim.outbound(now, socket, destination)
                        && let Some((from, to, resp)) = sim.serve(destination, src, &payload)
                    {
                        sim.inflight
                            .push_back((now + 2 * ONE_WAY, SocketId(u32::MAX), from, resp));
                        let _ = to;
                        if let Some(last) = sim.inflight.back_mut() {
                            last.1 = SocketId(u32::from(to.port()));
                        }
                    }
                }
                Output::OpenSocket(id) => {
                    let port = sim.next_local;
                    sim.next_local += 1;
                    sim.locals.insert(id, port);
                    p.handle_socket_opened(now, id, Ok(SocketAddr::new(local.ip(), port)));
                }
                Output::CloseSocket(id) => {
                    sim.locals.remove(&id);
                }
                Output::Progress(_) => {}
            }
        }
        if p.is_finished() {
            return p.into_report();
        }
        let next_packet = sim.inflight.iter().map(|x| x.0).min();
        now = match (p.poll_timeout(), next_packet) {
            (Some(a), Some(b)) => a.min(b),
            (a, b) => a.or(b).unwrap_or(now),
        };
        if let Some(i) = sim.inflight.iter().position(|x| x.0 <= now) {
            let (_, port, from, data) = sim.inflight.remove(i).unwrap_or_else(|| unreachable!());
            if let Some(socket) = sim.inbound(now, from, port.0 as u16) {
                p.handle_datagram(now, socket, from, &data);
            }
        } else {
            p.handle_timeout(now);
        }
    }
    panic!("the prober did not finish");
}

fn nat(mapping: Behaviour, filtering: Behaviour) -> NatModel {
    NatModel {
        mapping,
        filtering,
        sequential: None,
        port_set: None,
        timeout: Duration::from_secs(30),
    }
}

use Behaviour::{
    AddressAndPortDependent as APD, AddressDependent as AD, EndpointIndependent as EI,
};

#[test]
fn every_mapping_and_filtering_combination_is_recognised() {
    for m in [EI, AD, APD] {
        for f in [EI, AD, APD] {
            let r = run(Some(nat(m, f)), true);
            assert_eq!(
                (r.mapping, r.filtering),
                (Some(m), Some(f)),
                "{m:?}/{f:?}: {:?}",
                r.warnings
            );
            assert_eq!(r.hairpinning, Some(false));
            assert_eq!(r.nat_layers_at_least, Some(1));
        }
    }
}

#[test]
fn no_nat_is_open_internet() {
    let r = run(None, false);
    assert_eq!((r.mapping, r.filtering), (Some(EI), Some(EI)));
    assert_eq!(r.nat_layers, Some(0));
    assert!(r.binding_lifetime_s.is_none());
}

#[test]
fn port_allocation_and_map_e_sets() {
    let seq = run(
        Some(NatModel {
            sequential: Some(1),
            ..nat(APD, APD)
        }),
        true,
    );
    assert_eq!(
        seq.port_allocation,
        Some(PortAllocation::Sequential),
        "{:?}",
        seq.port_range
    );
    let rnd = run(
        Some(NatModel {
            sequential: Some(0),
            ..nat(APD, APD)
        }),
        true,
    );
    assert_eq!(rnd.port_allocation, Some(PortAllocation::Random));
    let kept = run(Some(nat(EI, APD)), true);
    assert_eq!(kept.port_allocation, Some(PortAllocation::Preserving));
    let set = run(
        Some(NatModel {
            port_set: Some((20000, 16)),
            ..nat(EI, APD)
        }),
        true,
    );
    let range = set.port_range.clone().unwrap_or_default();
    assert!(
        range.min >= 20000 && range.max <= 20015 && range.observed.len() >= 3,
        "{range:?}"
    );
    assert_eq!(set.mape_hint.map(|h| h.block), Some((20000, 20015)));
}

#[test]
fn binding_lifetime_is_found_within_the_resolution() {
    for secs in [5u64, 30] {
        let r = run(
            Some(NatModel {
                timeout: Duration::from_secs(secs),
                ..nat(EI, APD)
            }),
            false,
        );
        let est = r.binding_lifetime_s.unwrap_or_default();
        assert!(
            (est - secs as f64).abs() <= secs as f64 * 0.15,
            "{secs}: {:?}",
            r.binding_lifetime
        );
    }
}
