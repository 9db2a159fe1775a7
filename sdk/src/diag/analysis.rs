//! Pure conclusions from observations: mapping behaviour, port allocation, the port
//! range, a MAP-E port-set hint. No I/O, no time.

use std::net::SocketAddr;

use super::report::{Behaviour, MapeHint, PortAllocation, PortRange};

/// RFC 5780 §4.3: test I maps to `m1` (primary address), test II to `m2` (alternate IP,
/// primary port), test III to `m3` (alternate IP and port).
pub(crate) fn mapping(m1: SocketAddr, m2: SocketAddr, m3: SocketAddr) -> Behaviour {
    if m2 == m1 {
        Behaviour::EndpointIndependent
    } else if m3 == m2 {
        Behaviour::AddressDependent
    } else {
        Behaviour::AddressAndPortDependent
    }
}

/// One mapping observed: the local port of the socket and the external port, in the
/// order the mappings were created. `first_of_socket` marks a socket's first mapping.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Sample {
    pub local_port: u16,
    pub mapped_port: u16,
    pub first_of_socket: bool,
}

/// The largest step between consecutive new ports still called sequential. Small, so
/// that random ports from a small set (a MAP-E block of 16) are rarely mistaken for it.
const SEQUENTIAL_STEP: i32 = 2;

/// How the NAT allocates ports, or `None` with too few distinct samples.
pub(crate) fn port_allocation(samples: &[Sample]) -> Option<PortAllocation> {
    let firsts: Vec<&Sample> = samples.iter().filter(|s| s.first_of_socket).collect();
    if !firsts.is_empty() && firsts.iter().all(|s| s.local_port == s.mapped_port) {
        // A NAT that keeps the local port of each socket's first mapping preserves ports,
        // whatever it does when the port is taken.
        if samples.iter().all(|s| s.local_port == s.mapped_port) || firsts.len() >= 2 {
            return Some(PortAllocation::Preserving);
        }
    }
    let mut distinct: Vec<u16> = Vec::new();
    for s in samples {
        if !distinct.contains(&s.mapped_port) {
            distinct.push(s.mapped_port);
        }
    }
    if distinct.len() < 3 {
        // One or two ports prove no pattern; a single preserved port is preservation.
        return (distinct.len() == 1 && firsts.iter().all(|s| s.local_port == s.mapped_port))
            .then_some(PortAllocation::Preserving)
            .filter(|_| !firsts.is_empty());
    }
    let sequential = distinct
        .windows(2)
        .all(|w| (1..=SEQUENTIAL_STEP).contains(&(i32::from(w[1]) - i32::from(w[0]))));
    Some(if sequential {
        PortAllocation::Sequential
    } else {
        PortAllocation::Random
    })
}

/// The observed external ports.
pub(crate) fn port_range(samples: &[Sample]) -> Option<PortRange> {
    let mut observed: Vec<u16> = Vec::new();
    for s in samples {
        if !observed.contains(&s.mapped_port) {
            observed.push(s.mapped_port);
        }
    }
    Some(PortRange {
        min: *observed.iter().min()?,
        max: *observed.iter().max()?,
        observed,
    })
}

/// PSID offsets tried, most common first: 4 (Japanese MAP-E services) and RFC 7597's
/// default 6.
const PSID_OFFSETS: [u8; 2] = [4, 6];
/// The smallest block assumed (2^4 = 16 ports) and the shortest PSID (4 bits): wider
/// guesses would fit random ports by chance.
const MIN_BLOCK_BITS: u8 = 4;
const MIN_PSID_LEN: u8 = 4;

/// A MAP-E-like port set consistent with `ports` (distinct external ports of one
/// address), or `None`. Needs three distinct ports, none preserved from the local
/// side (a port-preserving NAT says nothing about its port set).
pub(crate) fn mape_hint(ports: &[u16]) -> Option<MapeHint> {
    if ports.len() < 3 {
        return None;
    }
    for a in PSID_OFFSETS {
        for m in MIN_BLOCK_BITS..=(16 - a - MIN_PSID_LEN) {
            let k = 16 - a - m;
            let psid_of = |p: u16| (p >> m) & ((1u16 << k) - 1);
            let first = *ports.first()?;
            let fits = ports
                .iter()
                .all(|&p| (p >> (16 - a)) != 0 && psid_of(p) == psid_of(first));
            if fits {
                let block_size = 1u16 << m;
                let start = first & !(block_size - 1);
                return Some(MapeHint {
                    psid_offset: a,
                    psid_len: k,
                    psid: psid_of(first),
                    block_size,
                    port_count: ((1u32 << a) - 1) * u32::from(block_size),
                    block: (start, start + (block_size - 1)),
                });
            }
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(local: u16, mapped: u16, first: bool) -> Sample {
        Sample {
            local_port: local,
            mapped_port: mapped,
            first_of_socket: first,
        }
    }

    #[test]
    fn port_allocation_kinds() {
        let preserved = [s(5000, 5000, true), s(6000, 6000, true)];
        assert_eq!(
            port_allocation(&preserved),
            Some(PortAllocation::Preserving)
        );
        let seq = [
            s(5000, 30001, true),
            s(5000, 30002, false),
            s(5000, 30004, false),
        ];
        assert_eq!(port_allocation(&seq), Some(PortAllocation::Sequential));
        let rnd = [
            s(5000, 30001, true),
            s(5000, 41234, false),
            s(5000, 2222, false),
        ];
        assert_eq!(port_allocation(&rnd), Some(PortAllocation::Random));
        assert_eq!(port_allocation(&[s(5000, 30001, true)]), None);
        assert_eq!(
            port_allocation(&[s(5000, 5000, true)]),
            Some(PortAllocation::Preserving)
        );
    }

    #[test]
    fn mape_hint_finds_a_16_port_block_and_ignores_random_ports() {
        let h = mape_hint(&[20003, 20011, 20000, 20015]).unwrap();
        assert_eq!((h.psid_offset, h.psid_len, h.block_size), (4, 8, 16));
        assert_eq!(h.block, (20000, 20015));
        assert_eq!(h.psid, (20000 >> 4) & 0xff);
        assert_eq!(h.port_count, 240);
        assert_eq!(mape_hint(&[1030, 40000, 61234]), None);
        assert_eq!(mape_hint(&[20000, 20001]), None);
    }
}
