//! Asking the router to forward a UDP port to us (PCP MAP, RFC 6887 §11; NAT-PMP
//! opcode 1, RFC 6886 §3.3, when PCP is absent): the port-mapped ICE candidate.
//!
//! The mapping targets the shared socket's port on this host's LAN address, so a
//! peer whose NAT filters or maps per destination (symmetric) can still reach us
//! at the mapped external address. Optional, like every port-mapping protocol:
//! whatever fails leaves ICE with its other candidates. UPnP-IGD `AddPortMapping`
//! is not used (SOAP over HTTP for what PCP and NAT-PMP do in one datagram;
//! routers with UPnP-IGD nearly always speak NAT-PMP or PCP too).

use std::net::{IpAddr, Ipv4Addr, SocketAddr, SocketAddrV4, UdpSocket};
use std::time::Duration;

use super::portmap::{
    NATPMP_PORT, PortmapOptions, default_gateway, exchange, parse_natpmp, parse_pcp, pcp_map_data,
    pcp_request,
};

const PCP_MAP: u8 = 1;
const NATPMP_MAP_UDP: u8 = 1;

/// The protocol that made a mapping (and is needed to delete it).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MappingProtocol {
    /// PCP MAP with this nonce.
    Pcp([u8; 12]),
    /// NAT-PMP.
    NatPmp,
}

/// A UDP port the gateway forwards to this host.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct UdpMapping {
    /// The gateway that holds it.
    pub gateway: Ipv4Addr,
    /// The address peers send to.
    pub external: SocketAddrV4,
    /// This host's address and port it forwards to.
    pub internal: SocketAddrV4,
    /// How long the gateway keeps it (it may grant less than asked).
    pub lifetime: Duration,
    /// How it was made.
    pub protocol: MappingProtocol,
}

/// A NAT-PMP UDP mapping request (RFC 6886 §3.3): `lifetime` 0 deletes.
pub fn natpmp_map_request(internal_port: u16, external_port: u16, lifetime: u32) -> [u8; 12] {
    let mut m = [0u8; 12];
    m[1] = NATPMP_MAP_UDP;
    m[4..6].copy_from_slice(&internal_port.to_be_bytes());
    m[6..8].copy_from_slice(&external_port.to_be_bytes());
    m[8..12].copy_from_slice(&lifetime.to_be_bytes());
    m
}

/// A NAT-PMP UDP mapping answer: `(result, internal port, external port, lifetime)`.
pub fn parse_natpmp_map(resp: &[u8]) -> Option<(u16, u16, u16, u32)> {
    match resp {
        [
            0,
            129,
            r0,
            r1,
            _,
            _,
            _,
            _,
            i0,
            i1,
            e0,
            e1,
            l0,
            l1,
            l2,
            l3,
            ..,
        ] => Some((
            u16::from_be_bytes([*r0, *r1]),
            u16::from_be_bytes([*i0, *i1]),
            u16::from_be_bytes([*e0, *e1]),
            u32::from_be_bytes([*l0, *l1, *l2, *l3]),
        )),
        _ => None,
    }
}

/// Asks the gateway (PCP first, then NAT-PMP) to forward UDP `internal_port` on
/// this host for `lifetime`. Blocking, a few `options.timeout`s at most; `None`
/// if no gateway, no protocol answered, or the gateway refused.
pub fn map_udp(
    internal_port: u16,
    lifetime: Duration,
    options: &PortmapOptions,
) -> Option<UdpMapping> {
    let gateway = options.gateway.or_else(default_gateway)?;
    let sock = UdpSocket::bind((Ipv4Addr::UNSPECIFIED, 0)).ok()?;
    sock.connect((gateway, NATPMP_PORT)).ok()?;
    let SocketAddr::V4(local) = sock.local_addr().ok()? else {
        return None;
    };
    let internal = SocketAddrV4::new(*local.ip(), internal_port);
    let secs = u32::try_from(lifetime.as_secs()).unwrap_or(u32::MAX);
    let t = options.timeout;

    let nonce = super::ipv6::random_bytes::<12>();
    let data = pcp_map_data(nonce, internal_port);
    let request = pcp_request(PCP_MAP, secs, *local.ip(), &data);
    let pcp = exchange(&sock, &request, t, |r| {
        parse_pcp(r).filter(|a| a.map.is_some_and(|m| m.0 == nonce))
    });
    if let Some(answer) = pcp
        && answer.result == 0
        && let Some((_, port, IpAddr::V4(ip))) = answer.map
        && port != 0
    {
        return Some(UdpMapping {
            gateway,
            external: SocketAddrV4::new(ip, port),
            internal,
            lifetime: Duration::from_secs(answer.lifetime.into()),
            protocol: MappingProtocol::Pcp(nonce),
        });
    }
    if pcp.is_some() {
        tracing::debug!(?pcp, "PCP refused the mapping; trying NAT-PMP");
    }
    let request = natpmp_map_request(internal_port, internal_port, secs);
    let (result, _, port, granted) = exchange(&sock, &request, t, |r| {
        parse_natpmp_map(r).filter(|m| m.1 == internal_port)
    })?;
    if result != 0 || port == 0 {
        tracing::debug!(result, "NAT-PMP refused the mapping");
        return None;
    }
    let address = exchange(&sock, &[0, 0], t, parse_natpmp).filter(|a| a.result == 0)?;
    Some(UdpMapping {
        gateway,
        external: SocketAddrV4::new(address.external, port),
        internal,
        lifetime: Duration::from_secs(granted.into()),
        protocol: MappingProtocol::NatPmp,
    })
}

/// Deletes `mapping` (lifetime 0). Blocking, best effort: a mapping not deleted
/// expires with its lifetime.
pub fn unmap_udp(mapping: &UdpMapping, timeout: Duration) {
    let Ok(sock) = UdpSocket::bind((Ipv4Addr::UNSPECIFIED, 0)) else {
        return;
    };
    if sock.connect((mapping.gateway, NATPMP_PORT)).is_err() {
        return;
    }
    let port = mapping.internal.port();
    let done = match mapping.protocol {
        MappingProtocol::Pcp(nonce) => {
            let request = pcp_request(
                PCP_MAP,
                0,
                *mapping.internal.ip(),
                &pcp_map_data(nonce, port),
            );
            exchange(&sock, &request, timeout, |r| {
                parse_pcp(r).filter(|a| a.map.is_some_and(|m| m.0 == nonce))
            })
            .is_some()
        }
        MappingProtocol::NatPmp => {
            let request = natpmp_map_request(port, 0, 0);
            exchange(&sock, &request, timeout, |r| {
                parse_natpmp_map(r).filter(|m| m.1 == port)
            })
            .is_some()
        }
    };
    tracing::debug!(external = %mapping.external, done, "port mapping deleted");
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn natpmp_map_round_trip() {
        let req = natpmp_map_request(5000, 5000, 3600);
        assert_eq!(req, [0, 1, 0, 0, 0x13, 0x88, 0x13, 0x88, 0, 0, 0x0e, 0x10]);
        let resp = [
            0, 129, 0, 0, 0, 0, 0, 9, 0x13, 0x88, 0x13, 0x89, 0, 0, 0x0e, 0x10,
        ];
        assert_eq!(parse_natpmp_map(&resp), Some((0, 5000, 5001, 3600)));
    }

    #[test]
    fn garbage_is_not_a_natpmp_map_answer() {
        assert_eq!(parse_natpmp_map(&[]), None);
        assert_eq!(
            parse_natpmp_map(&[0, 128, 0, 0, 0, 0, 0, 0, 1, 2, 3, 4]),
            None
        );
        let resp = [
            0, 129, 0, 0, 0, 0, 0, 9, 0x13, 0x88, 0x13, 0x89, 0, 0, 0x0e, 0x10,
        ];
        for n in 0..resp.len() {
            assert_eq!(parse_natpmp_map(&resp[..n]), None);
        }
    }

    #[test]
    fn no_gateway_no_mapping() {
        let o = PortmapOptions {
            gateway: Some(Ipv4Addr::LOCALHOST),
            timeout: Duration::from_millis(50),
            pcp_map: true,
        };
        // Nothing listens on 127.0.0.1:5351 here (or, if something does, it refuses
        // or answers; either way this must return promptly and never panic).
        let _ = map_udp(40000, Duration::from_secs(60), &o);
    }
}
