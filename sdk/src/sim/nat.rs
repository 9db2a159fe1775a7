//! NAT models (RFC 4787): mapping, filtering, port allocation, mapping timeout.

use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, Instant};

use rand::Rng;
use rand::rngs::StdRng;

/// When a NAT reuses a mapping (RFC 4787 §4.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Mapping {
    /// Endpoint-independent (EIM): one mapping per internal address and port.
    EndpointIndependent,
    /// Address-dependent (ADM): one per remote IP.
    AddressDependent,
    /// Address-and-port-dependent (APDM, "symmetric"): one per remote IP and port.
    AddressAndPortDependent,
}

/// Which inbound datagrams a mapping lets in (RFC 4787 §5).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Filtering {
    /// Endpoint-independent (EIF): anyone.
    EndpointIndependent,
    /// Address-dependent (ADF): IPs the internal host has sent to.
    AddressDependent,
    /// Address-and-port-dependent (APDF): IP and port pairs it has sent to.
    AddressAndPortDependent,
}

/// How a NAT picks external ports (RFC 4787 §4.2.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Allocation {
    /// The internal port if free, else the next free one.
    PortPreserving,
    /// The next port of a counter.
    Sequential,
    /// A random free port.
    Random,
}

/// One NAT's behaviour.
#[derive(Debug, Clone)]
pub struct NatConfig {
    /// The external (public) address.
    pub public_ip: IpAddr,
    /// Mapping behaviour.
    pub mapping: Mapping,
    /// Filtering behaviour.
    pub filtering: Filtering,
    /// Port allocation.
    pub allocation: Allocation,
    /// A mapping unused (outbound) for this long is dropped: the UDP session timer.
    pub timeout: Duration,
    /// Public ports limited to `count` ports from `first` (a MAP-E-like port
    /// set); `None`: 1024–65535.
    pub port_range: Option<(u16, u16)>,
}

impl NatConfig {
    /// A "full cone" NAT: EIM, EIF, port preserving, 120 s timer.
    pub fn full_cone(public_ip: IpAddr) -> NatConfig {
        NatConfig {
            public_ip,
            mapping: Mapping::EndpointIndependent,
            filtering: Filtering::EndpointIndependent,
            allocation: Allocation::PortPreserving,
            timeout: Duration::from_secs(120),
            port_range: None,
        }
    }

    /// A "port-restricted cone" NAT: EIM, APDF.
    pub fn port_restricted(public_ip: IpAddr) -> NatConfig {
        NatConfig {
            filtering: Filtering::AddressAndPortDependent,
            ..NatConfig::full_cone(public_ip)
        }
    }

    /// A "symmetric" NAT: APDM, APDF, random ports.
    pub fn symmetric(public_ip: IpAddr) -> NatConfig {
        NatConfig {
            mapping: Mapping::AddressAndPortDependent,
            filtering: Filtering::AddressAndPortDependent,
            allocation: Allocation::Random,
            ..NatConfig::full_cone(public_ip)
        }
    }
}

#[derive(Debug, Clone)]
struct Binding {
    internal: SocketAddr,
    remote_ip: Option<IpAddr>,
    remote_port: Option<u16>,
    external_port: u16,
    /// Remote endpoints the internal host has sent to through this mapping.
    sent_to: Vec<SocketAddr>,
    last_out: Instant,
}

/// A NAT's state: its mappings.
#[derive(Debug, Clone)]
pub struct Nat {
    /// The behaviour.
    pub config: NatConfig,
    bindings: Vec<Binding>,
    next_port: u16,
}

impl Nat {
    /// A NAT with no mappings.
    pub fn new(config: NatConfig) -> Nat {
        Nat {
            config,
            bindings: Vec::new(),
            next_port: 20_000,
        }
    }

    fn expire(&mut self, now: Instant) {
        let timeout = self.config.timeout;
        self.bindings
            .retain(|b| now.saturating_duration_since(b.last_out) < timeout);
    }

    fn port_free(&self, port: u16) -> bool {
        port >= 1024 && !self.bindings.iter().any(|b| b.external_port == port)
    }

    fn allocate(&mut self, internal_port: u16, rng: &mut StdRng) -> Option<u16> {
        let (lo, hi) = match self.config.port_range {
            Some((first, count)) => (first, first.saturating_add(count.saturating_sub(1))),
            None => (1024, u16::MAX),
        };
        if self.config.allocation == Allocation::PortPreserving
            && (lo..=hi).contains(&internal_port)
            && self.port_free(internal_port)
        {
            return Some(internal_port);
        }
        if !(lo..=hi).contains(&self.next_port) {
            self.next_port = lo;
        }
        for _ in 0..(u32::from(hi - lo) + 1) * 4 {
            let port = match self.config.allocation {
                Allocation::Random => rng.random_range(lo..=hi),
                _ => {
                    let p = self.next_port;
                    self.next_port = if p >= hi { lo } else { p + 1 };
                    p
                }
            };
            if self.port_free(port) {
                return Some(port);
            }
        }
        (lo..=hi).find(|&p| self.port_free(p))
    }

    /// Translates an outbound datagram's source; `None` if the NAT ran out of ports.
    pub fn outbound(
        &mut self,
        now: Instant,
        internal: SocketAddr,
        remote: SocketAddr,
        rng: &mut StdRng,
    ) -> Option<SocketAddr> {
        self.expire(now);
        let (remote_ip, remote_port) = match self.config.mapping {
            Mapping::EndpointIndependent => (None, None),
            Mapping::AddressDependent => (Some(remote.ip()), None),
            Mapping::AddressAndPortDependent => (Some(remote.ip()), Some(remote.port())),
        };
        let found = self.bindings.iter().position(|b| {
            b.internal == internal && b.remote_ip == remote_ip && b.remote_port == remote_port
        });
        let i = match found {
            Some(i) => i,
            None => {
                let external_port = self.allocate(internal.port(), rng)?;
                self.bindings.push(Binding {
                    internal,
                    remote_ip,
                    remote_port,
                    external_port,
                    sent_to: Vec::new(),
                    last_out: now,
                });
                self.bindings.len() - 1
            }
        };
        let b = self.bindings.get_mut(i)?;
        b.last_out = now;
        if !b.sent_to.contains(&remote) {
            b.sent_to.push(remote);
        }
        Some(SocketAddr::new(self.config.public_ip, b.external_port))
    }

    /// Translates an inbound datagram to `external_port` from `remote`; `None`
    /// if no mapping lets it in.
    pub fn inbound(
        &mut self,
        now: Instant,
        external_port: u16,
        remote: SocketAddr,
    ) -> Option<SocketAddr> {
        self.expire(now);
        let filtering = self.config.filtering;
        self.bindings
            .iter()
            .filter(|b| b.external_port == external_port)
            .find(|b| match filtering {
                Filtering::EndpointIndependent => true,
                Filtering::AddressDependent => b.sent_to.iter().any(|r| r.ip() == remote.ip()),
                Filtering::AddressAndPortDependent => b.sent_to.contains(&remote),
            })
            .map(|b| b.internal)
    }

    /// Drops every mapping, as a NAT reboot or a carrier re-assignment does: the
    /// next outbound datagram gets a new external port.
    pub fn rebind(&mut self) {
        self.bindings.clear();
        // A fresh range, so the new mapping visibly differs.
        self.next_port = self.next_port.wrapping_add(1000).max(1024);
        if let Some((first, count)) = self.config.port_range {
            self.next_port = first.saturating_add(self.next_port % count.max(1));
        }
    }

    /// How many mappings are in place.
    pub fn mapping_count(&self) -> usize {
        self.bindings.len()
    }
}

#[cfg(test)]
mod tests {
    use rand::SeedableRng;

    use super::*;

    fn addr(s: &str) -> SocketAddr {
        s.parse().unwrap()
    }

    #[test]
    fn eim_reuses_the_mapping_apdm_does_not() {
        let mut rng = StdRng::seed_from_u64(1);
        let now = Instant::now();
        let ip: IpAddr = "203.0.113.1".parse().unwrap();
        let mut cone = Nat::new(NatConfig::port_restricted(ip));
        let a = cone.outbound(now, addr("10.0.0.2:5000"), addr("198.51.100.1:1"), &mut rng);
        let b = cone.outbound(now, addr("10.0.0.2:5000"), addr("198.51.100.2:1"), &mut rng);
        assert_eq!(a, b);
        assert_eq!(a, Some(addr("203.0.113.1:5000")));
        let mut sym = Nat::new(NatConfig::symmetric(ip));
        let a = sym.outbound(now, addr("10.0.0.2:5000"), addr("198.51.100.1:1"), &mut rng);
        let b = sym.outbound(now, addr("10.0.0.2:5000"), addr("198.51.100.1:2"), &mut rng);
        assert_ne!(a, b);
    }

    #[test]
    fn a_port_set_bounds_every_allocator() {
        let mut rng = StdRng::seed_from_u64(1);
        let now = Instant::now();
        let ip: IpAddr = "203.0.113.1".parse().unwrap();
        let mut nat = Nat::new(NatConfig {
            port_range: Some((20000, 16)),
            ..NatConfig::symmetric(ip)
        });
        let mut seen = Vec::new();
        for i in 0..16 {
            let to = SocketAddr::new("198.51.100.1".parse().unwrap(), 1000 + i);
            let m = nat
                .outbound(now, addr("10.0.0.2:5000"), to, &mut rng)
                .unwrap();
            assert!((20000..20016).contains(&m.port()));
            seen.push(m.port());
        }
        seen.sort_unstable();
        seen.dedup();
        assert_eq!(seen.len(), 16);
        // The set is full: the 17th flow gets no mapping.
        assert!(
            nat.outbound(now, addr("10.0.0.2:5000"), addr("198.51.100.1:9"), &mut rng)
                .is_none()
        );
    }

    #[test]
    fn filtering_and_timeout() {
        let mut rng = StdRng::seed_from_u64(1);
        let now = Instant::now();
        let ip: IpAddr = "203.0.113.1".parse().unwrap();
        let mut nat = Nat::new(NatConfig::port_restricted(ip));
        let ext = nat
            .outbound(now, addr("10.0.0.2:5000"), addr("198.51.100.1:1"), &mut rng)
            .unwrap();
        assert!(
            nat.inbound(now, ext.port(), addr("198.51.100.1:1"))
                .is_some()
        );
        assert!(
            nat.inbound(now, ext.port(), addr("198.51.100.1:2"))
                .is_none()
        );
        let later = now + nat.config.timeout;
        assert!(
            nat.inbound(later, ext.port(), addr("198.51.100.1:1"))
                .is_none()
        );
        assert_eq!(nat.mapping_count(), 0);
    }
}
